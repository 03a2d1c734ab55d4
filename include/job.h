/*
 * job: a nightly job described by a file, /etc/mailvault/<job>.conf
 * (man mailvault-job(5), docs/JOBS.md), and the run that carries it out.
 *
 * The file is INI, read with libinih: sections [job], [source LABEL],
 * [retention], [prune], [check], [hook before|after|on-error], [notify].
 * job_load() reads and validates it; every error names the file, the line
 * and the key ("stalwart.conf:12: [retention] keep-daly: unknown key"),
 * and unknown sections and keys are errors, so a typo never turns into a
 * silently ignored setting.  job_run() re-executes the mailvault binary for
 * each step (backup, forget, prune, check), runs the hooks with their
 * timeouts, remembers in a state file when prune and check last ran, and
 * reports through alert.h.
 */
#ifndef MV_JOB_H
#define MV_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mv_err.h"

#define JOB_DIR_DEFAULT "/etc/mailvault"
#define JOB_STATE_DIR_DEFAULT "/var/lib/mailvault"
#define JOB_MAX_SOURCES 32
#define JOB_MAX_TAGS 16
#define JOB_MAX_MAILTO 8

enum job_source_kind {
	JOB_SRC_PATH,	 /* a directory, tar archive or ssh:// location */
	JOB_SRC_STREAM,	 /* a command writing a tar stream */
	JOB_SRC_COMMAND, /* a command whose output is stored as one file */
	JOB_SRC_FILE,	 /* one file, stored as it is */
};

struct job_source {
	char *label;		   /* top-level directory in the snapshot */
	enum job_source_kind kind; /* which key named it */
	char *value;		   /* the path, URL or shell command */
	char *file_name;	   /* COMMAND: the stored file's name */
	int line;		   /* where the section starts */
};

enum job_hook_kind { JOB_HOOK_BEFORE, JOB_HOOK_AFTER, JOB_HOOK_ON_ERROR };
#define JOB_NHOOKS 3

struct job_hook {
	char *command;	 /* shell command, NULL when not set */
	int64_t timeout; /* seconds */
};

struct job {
	char *name;	  /* job name: the file name without .conf */
	char *path;	  /* the file read */
	char *repository; /* [job] repository */
	char *snapshot;	  /* [job] snapshot name, default the job name */
	char *tags[JOB_MAX_TAGS]; /* [job] tag = K=V */
	size_t ntags;
	int64_t wait; /* [job] wait: seconds to wait for the lock */
	struct job_source sources[JOB_MAX_SOURCES];
	size_t nsources;
	/* [retention]: forget's options as given, "--keep-daily=7" */
	char *keep[8];
	size_t nkeep;
	int64_t prune_every;  /* seconds; -1 never */
	int64_t check_every;  /* seconds; -1 never */
	uint32_t check_parts; /* rotating --read-data-subset N/parts; 0 none */
	struct job_hook hooks[JOB_NHOOKS];
	char *healthcheck;	       /* [notify] healthcheck URL */
	char *mail_to[JOB_MAX_MAILTO]; /* [notify] mail-to */
	size_t nmail_to;
	char *mail_from;  /* [notify] mail-from */
	bool mail_always; /* [notify] mail-on = always */
	char *textfile;	  /* [notify] textfile (.prom) */
};

/* The directory of job files: $MAILVAULT_JOB_DIR, else JOB_DIR_DEFAULT. */
const char *job_dir(void);
/* The directory of state files: $MAILVAULT_STATE_DIR, else
 * JOB_STATE_DIR_DEFAULT. */
const char *job_state_dir(void);

/* Read and validate the job file at path; the job is named after the file
 * (without ".conf").  On success *out is the caller's (job_free). */
int job_load(const char *path, struct job **out, struct mv_err *err);
/* The same for a job given by name or path: a name is looked up as
 * job_dir()/NAME.conf. */
int job_load_named(const char *name_or_path, struct job **out,
		   struct mv_err *err);
/* Every *.conf of job_dir(), sorted; *out is an array of n malloc'ed
 * paths (job_paths_free). */
int job_list(char ***out, size_t *out_n, struct mv_err *err);
void job_paths_free(char **paths, size_t n);
void job_free(struct job *j);

/* "90", "30s", "10m", "2h", "7d", "1w" -> seconds; "never" -> -1. */
int job_parse_duration(const char *s, int64_t *out);

/* What job_run remembers between runs, job_state_dir()/<job>.state. */
struct job_state {
	int64_t last_prune;   /* unix seconds, 0 never */
	int64_t last_check;   /* unix seconds, 0 never */
	uint32_t next_part;   /* the next --read-data-subset part, 1-based */
	int64_t last_success; /* unix seconds, 0 never */
};
int job_state_load(const char *job, struct job_state *out, struct mv_err *err);
int job_state_save(const char *job, const struct job_state *s,
		   struct mv_err *err);

struct job_run_opts {
	const char *self; /* the mailvault binary to run for each step */
	bool dry_run;	  /* print the plan only */
};

/* Run the job; returns the run's exit code (the worst step's MV_EXIT_
 * code, cli.h) - a run never fails silently: alerts are sent from here. */
int job_run(const struct job *j, const struct job_run_opts *o);

/* Only the job's full check: check --read-data of its repository, for a
 * weekly timer.  A failure is reported as job_run() does (mail, the
 * healthcheck's /fail); a success is not pinged.  Returns check's code. */
int job_read_data(const struct job *j, const struct job_run_opts *o);

/* Report a failure that the run could not report itself (systemd's
 * OnFailure=: a run killed at its time limit, a missing binary): mail to
 * mail-to and the healthcheck's
 * /fail, "what" as the subject, log (len bytes, its tail kept) as the
 * body.  Returns MV_EXIT_OK when every channel took it, MV_EXIT_FAIL when
 * one failed or the job has none. */
int job_report_failure(const struct job *j, const char *what, const char *log,
		       size_t len);

/* How bad an exit code is, to pick the worst of a run's steps. */
int job_exit_rank(int code);

#endif
