/* mailvault run: carry out the jobs of /etc/mailvault (include/job.h). */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "job.h"

#define REPORT_LOG_MAX (64 * 1024) /* stdin kept for --report-failure */

/* Did the unit that failed end the way a run reports by itself?  systemd
 * (251 and later) tells an OnFailure= unit how the monitored one ended:
 * an exit code of run's own, other than 2 (the job file did not load, so
 * nothing was reported), was mailed and pinged already. */
static bool reported_by_run(void)
{
	const char *res = getenv("MONITOR_SERVICE_RESULT");
	const char *st = getenv("MONITOR_EXIT_STATUS");
	char *end;
	long n;

	if (!res || !st || strcmp(res, "exit-code"))
		return false;
	n = strtol(st, &end, 10);
	return end != st && !*end && n != MV_EXIT_USAGE && n > 0 && n < 200;
}

/* --report-failure: stdin (its last REPORT_LOG_MAX bytes) is the log. */
static int report_failure(const char *name, const char *unit)
{
	struct mv_err err = MV_ERR_INIT;
	struct job *j = NULL;
	char *log = NULL, what[512];
	size_t len = 0;
	int ret;

	if (reported_by_run()) {
		printf("mailvault run: %s ended with exit %s, which the run "
		       "reported itself\n",
		       unit ? unit : name, getenv("MONITOR_EXIT_STATUS"));
		return MV_EXIT_OK;
	}
	if (job_load_named(name, &j, &err)) {
		fprintf(stderr, "mailvault run: %s\n", mv_err_msg(&err));
		return MV_EXIT_FAIL;
	}
	log = malloc(REPORT_LOG_MAX);
	if (!log) {
		job_free(j);
		return MV_EXIT_FAIL;
	}
	for (;;) {
		ssize_t n = read(0, log + len, REPORT_LOG_MAX - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == REPORT_LOG_MAX) {
			/* keep the tail: the end of a log says why */
			memmove(log, log + REPORT_LOG_MAX / 2,
				REPORT_LOG_MAX / 2);
			len = REPORT_LOG_MAX / 2;
		}
	}
	if (getenv("MONITOR_SERVICE_RESULT"))
		snprintf(what, sizeof(what), "%s FAILED (%s, %s)",
			 unit ? unit : name, getenv("MONITOR_SERVICE_RESULT"),
			 getenv("MONITOR_EXIT_STATUS")
				 ? getenv("MONITOR_EXIT_STATUS")
				 : "?");
	else
		snprintf(what, sizeof(what), "%s FAILED", unit ? unit : name);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	ret = job_report_failure(j, what, log, len);
	curl_global_cleanup();
	free(log);
	job_free(j);
	return ret;
}

/* The binary to re-execute for each step: ourselves. */
static int self_path(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);

	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"all", no_argument, NULL, 'a'},
		{"dry-run", no_argument, NULL, 'n'},
		{"read-data", no_argument, NULL, 'r'},
		{"report-failure", optional_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct mv_err err = MV_ERR_INIT;
	struct job_run_opts o = {NULL, false};
	struct job **jobs = NULL;
	char self[PATH_MAX], **paths = NULL;
	size_t njobs = 0, npaths = 0, i;
	bool all = false, read_data = false, report = false;
	const char *unit = NULL;
	int c, code, worst = MV_EXIT_OK, ret;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'a')
			all = true;
		else if (c == 'n')
			o.dry_run = true;
		else if (c == 'r')
			read_data = true;
		else if (c == 'f') {
			report = true;
			unit = optarg;
		} else if (c == 'h') {
			cli_help_print("run", stdout);
			return MV_EXIT_OK;
		} else {
			/* getopt said what is wrong */
			fputs("(see 'mailvault run --help' or mailvault(1))\n",
			      stderr);
			return MV_EXIT_USAGE;
		}
	}
	if (all == (optind < argc))
		return cli_usage("run", all ? "--all or JOB names, not both"
					    : "name a JOB or give --all");
	if (report) {
		if (all || read_data || o.dry_run || argc - optind != 1)
			return cli_usage("run", "--report-failure takes one "
						"JOB and nothing else");
		return report_failure(argv[optind], unit);
	}
	if (self_path(self, sizeof(self)))
		return cli_usage("run", "cannot find the mailvault binary "
					"(/proc/self/exe)");
	o.self = self;
	if (all) {
		if (job_list(&paths, &npaths, &err))
			return cli_fail(&err);
		if (!npaths) {
			fprintf(stderr, "mailvault run: no *.conf in '%s'\n",
				job_dir());
			job_paths_free(paths, npaths);
			return MV_EXIT_USAGE;
		}
	}
	njobs = all ? npaths : (size_t)(argc - optind);
	jobs = calloc(njobs, sizeof(*jobs));
	if (!jobs) {
		job_paths_free(paths, npaths);
		return cli_fail(&err);
	}
	/* every file validates before anything runs: a typo in one job
	 * must not be found after the others have run for an hour */
	for (i = 0; i < njobs; i++) {
		int rc = all ? job_load(paths[i], &jobs[i], &err)
			     : job_load_named(argv[optind + (int)i], &jobs[i],
					      &err);

		if (rc) {
			fprintf(stderr, "mailvault run: %s\n",
				mv_err_msg(&err));
			ret = rc == -EINVAL ? MV_EXIT_USAGE : MV_EXIT_FAIL;
			goto out;
		}
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	for (i = 0; i < njobs; i++) {
		code = read_data ? job_read_data(jobs[i], &o)
				 : job_run(jobs[i], &o);
		if (job_exit_rank(code) > job_exit_rank(worst))
			worst = code;
		if (code == MV_EXIT_INTERRUPTED)
			break;
	}
	curl_global_cleanup();
	ret = worst;
out:
	for (i = 0; i < njobs; i++)
		job_free(jobs[i]);
	free(jobs);
	job_paths_free(paths, npaths);
	return ret;
}
