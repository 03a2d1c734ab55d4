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

static const char usage[] =
	"usage: mailvault run [--dry-run] JOB...\n"
	"       mailvault run [--dry-run] --all\n"
	"\n"
	"Run a job described by /etc/mailvault/JOB.conf (or the file JOB\n"
	"when it has a '/'): before-hook, backup, after-hook, forget, prune\n"
	"and check when due, on-error hook; then the healthcheck ping, mail\n"
	"and textfile of its [notify] section.  The file format is\n"
	"mailvault-job(5); $MAILVAULT_JOB_DIR and $MAILVAULT_STATE_DIR\n"
	"replace /etc/mailvault and /var/lib/mailvault.\n"
	"\n"
	"  --all      every *.conf of the job directory, in name order\n"
	"  --dry-run  check the job files and print the plan; run nothing\n"
	"  --help     this text\n"
	"\n"
	"Exit code: the worst of the steps' (mailvault(1)); 2 for a job file\n"
	"that does not validate, naming file, line and key.\n"
	"\n"
	"Example:\n"
	"  mailvault run --dry-run stalwart && mailvault run stalwart\n";

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
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct mv_err err = MV_ERR_INIT;
	struct job_run_opts o = {NULL, false};
	struct job **jobs = NULL;
	char self[PATH_MAX], **paths = NULL;
	size_t njobs = 0, npaths = 0, i;
	bool all = false;
	int c, code, worst = MV_EXIT_OK, ret;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'a')
			all = true;
		else if (c == 'n')
			o.dry_run = true;
		else if (c == 'h') {
			fputs(usage, stdout);
			return MV_EXIT_OK;
		} else {
			fputs(usage, stderr);
			return MV_EXIT_USAGE;
		}
	}
	if (all == (optind < argc))
		return cli_usage("run", all ? "--all or JOB names, not both"
					    : "name a JOB or give --all");
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
		code = job_run(jobs[i], &o);
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
