/* alert: healthcheck pings, mail and the node-exporter textfile. */
#include "alert.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

static int ping_once(const char *url, const char *body, size_t len, char *why,
		     size_t why_len)
{
	char ebuf[CURL_ERROR_SIZE] = "";
	CURLcode cc;
	long status = 0;
	CURL *c;

	c = curl_easy_init();
	if (!c) {
		snprintf(why, why_len, "cannot start libcurl");
		return -ENOMEM;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_USERAGENT, "mailvault");
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)len);
	}
	cc = curl_easy_perform(c);
	if (cc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	if (cc != CURLE_OK) {
		snprintf(why, why_len, "%s",
			 *ebuf ? ebuf : curl_easy_strerror(cc));
		return -EIO;
	}
	if (status < 200 || status >= 300) {
		snprintf(why, why_len, "HTTP status %ld", status);
		return -EIO;
	}
	return 0;
}

int alert_ping(const char *url, const char *suffix, const char *body,
	       size_t len, struct mv_err *err)
{
	char *full = NULL, why[CURL_ERROR_SIZE + 32];
	int rc, tries;

	if (asprintf(&full, "%s%s", url, suffix) < 0)
		return mv_err_set(err, -ENOMEM, "out of memory");
	/* one retry: a monitoring endpoint that drops one request must not
	 * turn a failed backup into a silent one */
	for (tries = 0; tries < 2; tries++) {
		rc = ping_once(full, body, len, why, sizeof(why));
		if (!rc)
			break;
		if (!tries)
			sleep(1);
	}
	if (rc)
		mv_err_set(err, rc, "cannot ping '%s': %s", full, why);
	free(full);
	return rc;
}

int alert_mail(const char *const *to, size_t nto, const char *from,
	       const char *subject, const char *body, size_t len,
	       struct mv_err *err)
{
	const char *sendmail = getenv("MAILVAULT_SENDMAIL");
	int pfd[2], status, rc = 0;
	pid_t pid;
	FILE *f;

	if (!sendmail || !*sendmail)
		sendmail = "sendmail";
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return mv_err_set(err, -errno, "cannot mail: %s",
				  strerror(errno));
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return mv_err_set(err, -errno, "cannot mail: %s",
				  strerror(errno));
	}
	if (pid == 0) {
		dup2(pfd[0], 0);
		execlp(sendmail, sendmail, "-t", "-i", (char *)NULL);
		_exit(127);
	}
	close(pfd[0]);
	f = fdopen(pfd[1], "w");
	if (!f) {
		close(pfd[1]);
		rc = -errno;
	} else {
		size_t i;

		if (from)
			fprintf(f, "From: %s\n", from);
		for (i = 0; i < nto; i++)
			fprintf(f, "To: %s\n", to[i]);
		fprintf(f,
			"Subject: %s\nMIME-Version: 1.0\n"
			"Content-Type: text/plain; charset=utf-8\n\n",
			subject);
		fwrite(body, 1, len, f);
		if (fclose(f))
			rc = -EIO;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (rc || !WIFEXITED(status) || WEXITSTATUS(status))
		return mv_err_set(
			err, -EIO, "cannot mail through '%s': it exited %d",
			sendmail, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}

int alert_textfile(const char *path, const struct alert_metrics *m,
		   struct mv_err *err)
{
	char buf[4096];
	size_t n = 0;
	const char *j = m->job;

#define ADD(...)                                                          \
	do {                                                              \
		int k_ = snprintf(buf + n, sizeof(buf) - n, __VA_ARGS__); \
		if (k_ > 0 && (size_t)k_ < sizeof(buf) - n)               \
			n += (size_t)k_;                                  \
	} while (0)
	ADD("# HELP mailvault_job_last_run_timestamp_seconds When the job "
	    "last ran.\n# TYPE mailvault_job_last_run_timestamp_seconds "
	    "gauge\nmailvault_job_last_run_timestamp_seconds{job=\"%s\"} "
	    "%lld\n",
	    j, (long long)m->run_time);
	ADD("# HELP mailvault_job_last_success_timestamp_seconds When the "
	    "job last succeeded (0: never).\n# TYPE "
	    "mailvault_job_last_success_timestamp_seconds gauge\n"
	    "mailvault_job_last_success_timestamp_seconds{job=\"%s\"} %lld\n",
	    j, (long long)m->last_success);
	ADD("# HELP mailvault_job_exit_code The last run's exit code "
	    "(mailvault(1)).\n# TYPE mailvault_job_exit_code gauge\n"
	    "mailvault_job_exit_code{job=\"%s\"} %d\n",
	    j, m->exit_code);
	ADD("# HELP mailvault_job_duration_seconds How long the last run "
	    "took.\n# TYPE mailvault_job_duration_seconds gauge\n"
	    "mailvault_job_duration_seconds{job=\"%s\"} %.3f\n",
	    j, m->duration);
	if (m->have_backup)
		ADD("# HELP mailvault_job_bytes_added Bytes the last backup "
		    "added to the repository.\n# TYPE "
		    "mailvault_job_bytes_added gauge\n"
		    "mailvault_job_bytes_added{job=\"%s\"} %llu\n",
		    j, (unsigned long long)m->bytes_added);
	if (m->have_repo) {
		ADD("# HELP mailvault_repository_snapshots Snapshots in the "
		    "job's repository.\n# TYPE mailvault_repository_snapshots "
		    "gauge\nmailvault_repository_snapshots{job=\"%s\"} %llu\n",
		    j, (unsigned long long)m->snapshots);
		ADD("# HELP mailvault_repository_size_bytes Bytes of packs "
		    "in the job's repository.\n# TYPE "
		    "mailvault_repository_size_bytes gauge\n"
		    "mailvault_repository_size_bytes{job=\"%s\"} %llu\n",
		    j, (unsigned long long)m->repo_bytes);
	}
#undef ADD
	/* node-exporter must never read half a file: write, then rename */
	return mv_write_file_atomic(path, buf, n, err);
}
