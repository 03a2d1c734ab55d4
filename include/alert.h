/*
 * alert: how a job run tells someone how it went (docs/JOBS.md).
 *
 * Three channels, each independent of the others so one that fails
 * cannot silence the rest: healthcheck-style pings over HTTP (libcurl;
 * the protocol of healthchecks.io and Uptime Kuma: URL/start, URL on
 * success, URL/fail with the log's tail as the POST body), mail handed to
 * sendmail -t, and a Prometheus node-exporter textfile written atomically.
 */
#ifndef MV_ALERT_H
#define MV_ALERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mv_err.h"

#define ALERT_TAIL_MAX (10 * 1024) /* log tail sent with a failure */

/* GET url+suffix ("" success, "/start", "/fail"); with a body, POST it.
 * Times out after 10 s, retried once.  Returns 0 or -EIO with the reason. */
int alert_ping(const char *url, const char *suffix, const char *body,
	       size_t len, struct mv_err *err);

/* Mail subject and the log as body to each address, through
 * $MAILVAULT_SENDMAIL or sendmail on PATH, as "sendmail -t -i". */
int alert_mail(const char *const *to, size_t nto, const char *from,
	       const char *subject, const char *body, size_t len,
	       struct mv_err *err);

struct alert_metrics {
	const char *job;
	int exit_code;	      /* the run's exit code */
	int64_t run_time;     /* unix seconds the run ended */
	int64_t last_success; /* unix seconds, 0 never */
	double duration;      /* seconds the run took */
	bool have_backup;     /* the backup step reported its figures */
	uint64_t bytes_added; /* stored by this backup */
	bool have_repo;	      /* stats ran */
	uint64_t snapshots;   /* in the repository */
	uint64_t repo_bytes;  /* pack bytes */
};

/* Write the node-exporter textfile: PATH.tmp, then rename. */
int alert_textfile(const char *path, const struct alert_metrics *m,
		   struct mv_err *err);

#endif
