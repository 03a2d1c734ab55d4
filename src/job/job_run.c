/*
 * job_run: carry out a job - before-hook, backup, after-hook, forget,
 * prune and check when due, on-error hook - and report it (alert.h).
 *
 * Each step re-executes the mailvault binary (docs/JOBS.md says why): its
 * exit code is the step's documented code, its output goes both to our
 * stdout (the journal) and to a log whose tail the alerts carry.  Every
 * child runs in its own process group so a timeout or a SIGTERM reaches
 * all it started (ssh, docker, tar).
 *
 * The after-hook runs right after the backup whatever happened before it
 * - a failed before-hook, a failed stream, an interrupted backup - because
 * it is where a stopped service is started again; forget, prune and check
 * follow it, so the service is down for the backup only.
 */
#include "job.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alert.h"
#include "../cli/cli.h" /* the MV_EXIT_ codes steps return */
#include "util.h"

#define LOG_KEEP (64 * 1024) /* the log tail kept for mail and pings */
#define MAX_ARGS (64 + 2 * JOB_MAX_SOURCES)

struct run {
	const struct job *j;
	const struct job_run_opts *o;
	char *log; /* the last LOG_KEEP bytes of everything */
	size_t log_len;
	int worst;	  /* the worst exit code so far */
	char spool[4096]; /* spooled command sources, "" when none */
	bool have_backup;
	uint64_t bytes_added;
	bool have_repo;
	uint64_t snapshots, repo_bytes;
	/* The command source on the backup's stdin: its output reaches the
	 * backup through a pipe whose write end we hold too, so the backup
	 * sees the end of the stream only once the command exited 0; a
	 * failed command stops the backup before it commits. */
	pid_t gate_pid;	 /* the command, 0 when none or reaped */
	int gate_pidfd;	 /* polled for its exit, -1 when none */
	int gate_fd;	 /* our copy of the pipe's write end, or -1 */
	pid_t gate_stop; /* the backup to stop when the command fails */
	int gate_code;	 /* the command's exit code once reaped */
};

static volatile sig_atomic_t stop_sig;
static volatile pid_t cur_pgid[JOB_MAX_SOURCES + 2];

static void on_stop(int sig)
{
	size_t i;

	stop_sig = sig;
	for (i = 0; i < sizeof(cur_pgid) / sizeof(cur_pgid[0]); i++)
		if (cur_pgid[i] > 0)
			kill(-cur_pgid[i], SIGTERM);
}

/* Set up r for job j; o may be NULL (a report, no steps).  Unless it is a
 * dry run, SIGINT and SIGTERM stop the steps' process groups until
 * run_release().  0 or -ENOMEM. */
static int run_init(struct run *r, const struct job *j,
		    const struct job_run_opts *o)
{
	memset(r, 0, sizeof(*r));
	r->j = j;
	r->o = o;
	r->gate_pidfd = r->gate_fd = -1;
	r->log = malloc(LOG_KEEP);
	if (!r->log)
		return -ENOMEM;
	if (o && !o->dry_run) {
		signal(SIGINT, on_stop);
		signal(SIGTERM, on_stop);
	}
	return 0;
}

static void run_release(struct run *r)
{
	if (r->o && !r->o->dry_run) {
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
	}
	free(r->log);
	r->log = NULL;
}

int job_exit_rank(int code)
{
	switch (code) {
	case MV_EXIT_OK:
		return 0;
	case MV_EXIT_WARN:
		return 1;
	case MV_EXIT_PARTIAL:
		return 2;
	case MV_EXIT_FAIL:
		return 3;
	case MV_EXIT_USAGE:
		return 4;
	case MV_EXIT_LOCKED:
		return 5;
	case MV_EXIT_NOREPO:
		return 6;
	case MV_EXIT_BADKEY:
		return 7;
	case MV_EXIT_INTERRUPTED:
		return 8;
	case MV_EXIT_DAMAGED:
		return 9;
	default:
		return 3; /* an unknown code is a failure */
	}
}

static void note(struct run *r, int code)
{
	if (job_exit_rank(code) == job_exit_rank(MV_EXIT_FAIL))
		code = MV_EXIT_FAIL; /* a crash or 127 is not a documented code
				      */
	if (job_exit_rank(code) > job_exit_rank(r->worst))
		r->worst = code;
}

static bool failed(int code)
{
	return code != MV_EXIT_OK && code != MV_EXIT_WARN;
}

/* The run's outcome so far, in words. */
static const char *outcome(const struct run *r)
{
	if (failed(r->worst))
		return "FAILED";
	return r->worst ? "done with warnings" : "done";
}

static void log_add(struct run *r, const char *p, size_t n)
{
	if (n >= LOG_KEEP) {
		p += n - LOG_KEEP;
		n = LOG_KEEP;
	}
	if (r->log_len + n > LOG_KEEP) {
		size_t drop = r->log_len + n - LOG_KEEP;

		memmove(r->log, r->log + drop, r->log_len - drop);
		r->log_len -= drop;
	}
	memcpy(r->log + r->log_len, p, n);
	r->log_len += n;
}

static void say(struct run *r, const char *fmt, ...) MV_PRINTF(2, 3);

/* A line of our own, to stdout and into the log. */
static void say(struct run *r, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	n = snprintf(line, sizeof(line), "mailvault run %s: ", r->j->name);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	fputs(line, stdout);
	fflush(stdout);
	log_add(r, line, strlen(line));
}

static void print_argv(struct run *r, const char *what, char *const argv[])
{
	char line[2048];
	size_t n = 0, i;

	for (i = 0; argv[i] && n < sizeof(line) - 1; i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s",
				      i ? " " : "", argv[i]);
	say(r, "%s: %s", what, line);
}

/* The argument vector of a mailvault step, built word by word; words
 * made with argv_addf are owned.  One that does not fit or cannot be
 * made marks the vector failed, and the step is not run. */
struct argv {
	char *v[MAX_ARGS];
	char *own[MAX_ARGS];
	size_t n, nown;
	bool failed;
};

static void argv_add(struct argv *a, const char *word)
{
	if (a->n + 1 >= MAX_ARGS) {
		a->failed = true;
		return;
	}
	a->v[a->n++] = (char *)word;
	a->v[a->n] = NULL;
}

static void argv_addf(struct argv *a, const char *fmt, ...) MV_PRINTF(2, 3);

static void argv_addf(struct argv *a, const char *fmt, ...)
{
	va_list ap;
	char *word;

	va_start(ap, fmt);
	if (vasprintf(&word, fmt, ap) < 0)
		word = NULL;
	va_end(ap);
	if (!word || a->nown == MAX_ARGS) {
		free(word);
		a->failed = true;
		return;
	}
	a->own[a->nown++] = word;
	argv_add(a, word);
}

/* "mailvault VERB" */
static void argv_start(struct argv *a, const struct run *r, const char *verb)
{
	memset(a, 0, sizeof(*a));
	argv_add(a, r->o->self);
	argv_add(a, verb);
}

static void argv_release(struct argv *a)
{
	while (a->nown)
		free(a->own[--a->nown]);
}

/* Start argv with the given stdin, stdout and stderr in a process group
 * of its own; fds in keep stay open in the child. */
static pid_t spawn(char *const argv[], int in, int out, int errfd,
		   const int *keep, size_t nkeep)
{
	pid_t pid = fork();
	size_t i;

	if (pid)
		return pid;
	setpgid(0, 0);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	if (in < 0)
		in = open("/dev/null", O_RDONLY);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(errfd, 2) < 0)
		_exit(127);
	for (i = 0; i < nkeep; i++)
		fcntl(keep[i], F_SETFD, 0);
	execv(argv[0], argv);
	fprintf(stderr, "cannot run '%s': %s\n", argv[0], strerror(errno));
	_exit(127);
}

static int exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status) &&
	    (WTERMSIG(status) == SIGINT || WTERMSIG(status) == SIGTERM))
		return MV_EXIT_INTERRUPTED;
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE)
		return 128 + SIGPIPE; /* as sh reports it: a reader went away */
	return MV_EXIT_FAIL;
}

/* The gated command exited (or we wait for it): reap it; on success let
 * the backup see the end of its stdin, else stop the backup first. */
static void gate_reap(struct run *r)
{
	int status;

	if (r->gate_pid <= 0)
		return;
	while (waitpid(r->gate_pid, &status, 0) < 0 && errno == EINTR)
		;
	r->gate_code = exit_code(status);
	if (r->gate_code && r->gate_stop > 0)
		kill(-r->gate_stop, SIGTERM);
	if (r->gate_fd >= 0)
		close(r->gate_fd);
	if (r->gate_pidfd >= 0)
		close(r->gate_pidfd);
	r->gate_fd = r->gate_pidfd = -1;
	r->gate_pid = 0;
}

/*
 * Read the children's merged output (log_rd) and, when out_rd >= 0, their
 * stdout into *cap, until both end; then reap the n pids into codes.  With
 * a timeout (seconds, 0 none) every group gets SIGTERM when it passes and
 * SIGKILL 10 s later.  Returns true when the timeout hit.
 */
static bool pump(struct run *r, int log_rd, int out_rd, char **cap,
		 size_t *cap_len, const pid_t *pids, int *codes, size_t n,
		 int64_t timeout)
{
	time_t deadline = timeout > 0 ? time(NULL) + timeout : 0;
	bool timed_out = false, killed = false;
	struct pollfd pf[3];
	char buf[8192];
	size_t i;
	int status;

	pf[0].fd = log_rd;
	pf[1].fd = out_rd;
	/* readable when the gated command exits */
	pf[2].fd = r->gate_pid > 0 ? r->gate_pidfd : -1;
	pf[0].events = pf[1].events = pf[2].events = POLLIN;
	while (pf[0].fd >= 0 || pf[1].fd >= 0) {
		int wait_ms = -1;
		ssize_t got;

		if (deadline) {
			time_t now = time(NULL);

			if (now >= deadline && !timed_out) {
				timed_out = true;
				deadline = now + 10;
				for (i = 0; i < n; i++)
					kill(-pids[i], SIGTERM);
			} else if (now >= deadline && !killed) {
				killed = true;
				for (i = 0; i < n; i++)
					kill(-pids[i], SIGKILL);
			}
			wait_ms = killed ? 1000 : (int)(deadline - now) * 1000;
			if (wait_ms <= 0)
				wait_ms = 100;
		}
		if (poll(pf, 3, wait_ms) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[2].fd >= 0 && pf[2].revents) {
			pf[2].fd = -1;
			gate_reap(r);
		}
		for (i = 0; i < 2; i++) {
			if (pf[i].fd < 0 || !pf[i].revents)
				continue;
			got = read(pf[i].fd, buf, sizeof(buf));
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				close(pf[i].fd);
				pf[i].fd = -1;
				continue;
			}
			if (i == 0) {
				fwrite(buf, 1, (size_t)got, stdout);
				fflush(stdout);
				log_add(r, buf, (size_t)got);
			} else {
				char *nc = realloc(*cap,
						   *cap_len + (size_t)got + 1);

				if (!nc)
					continue;
				*cap = nc;
				memcpy(nc + *cap_len, buf, (size_t)got);
				*cap_len += (size_t)got;
				nc[*cap_len] = '\0';
			}
		}
	}
	gate_reap(r); /* its output ended with the others' */
	for (i = 0; i < n; i++) {
		while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR)
			;
		codes[i] = exit_code(status);
	}
	for (i = 0; i < sizeof(cur_pgid) / sizeof(cur_pgid[0]); i++)
		cur_pgid[i] = 0;
	return timed_out;
}

/* Run one command with its output logged; returns its exit code. */
static int run_simple(struct run *r, char *const argv[], int64_t timeout,
		      char **cap, size_t *cap_len)
{
	int lp[2], op[2] = {-1, -1}, code;
	pid_t pid;

	if (pipe2(lp, O_CLOEXEC) < 0)
		return MV_EXIT_FAIL;
	if (cap && pipe2(op, O_CLOEXEC) < 0) {
		close(lp[0]);
		close(lp[1]);
		return MV_EXIT_FAIL;
	}
	pid = spawn(argv, -1, cap ? op[1] : lp[1], lp[1], NULL, 0);
	close(lp[1]);
	if (cap)
		close(op[1]);
	if (pid < 0) {
		close(lp[0]);
		if (cap)
			close(op[0]);
		return MV_EXIT_FAIL;
	}
	cur_pgid[0] = pid;
	if (pump(r, lp[0], cap ? op[0] : -1, cap, cap_len, &pid, &code, 1,
		 timeout)) {
		say(r, "'%s' did not finish within %lld s and was stopped",
		    argv[argv[1] && !strcmp(argv[1], "-c") ? 2 : 0],
		    (long long)timeout);
		return MV_EXIT_FAIL;
	}
	return code;
}

static int hook(struct run *r, enum job_hook_kind k)
{
	static const char *const names[] = {"before", "after", "on-error"};
	const struct job_hook *h = &r->j->hooks[k];
	char *argv[] = {(char *)"/bin/sh", (char *)"-c", h->command, NULL};
	char what[64];
	int code;

	if (!h->command)
		return MV_EXIT_OK;
	snprintf(what, sizeof(what), "hook %s (timeout %llds)", names[k],
		 (long long)h->timeout);
	print_argv(r, what, argv + 2);
	if (r->o->dry_run)
		return MV_EXIT_OK;
	code = run_simple(r, argv, h->timeout, NULL, NULL);
	if (code)
		say(r, "hook %s failed (exit %d)", names[k], code);
	return code == MV_EXIT_INTERRUPTED ? code : code ? MV_EXIT_FAIL : 0;
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 ? -1 : 0;
}

static void spool_remove(struct run *r)
{
	if (r->spool[0])
		nftw(r->spool, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A command source other than the one on the backup's stdin becomes a
 * file in a private spool directory, backed up as a directory source;
 * returns an exit code. */
static int spool_source(struct run *r, const struct job_source *s, char *dir,
			size_t dir_len)
{
	int code;

	if (!r->spool[0]) {
		snprintf(r->spool, sizeof(r->spool), "%s/%s.spool",
			 job_state_dir(), r->j->name);
		if (!r->o->dry_run) {
			spool_remove(r); /* a killed run's leftovers */
			if (mv_mkdir_p(r->spool, 0700)) {
				say(r, "cannot create '%s': %s", r->spool,
				    strerror(errno));
				return MV_EXIT_FAIL;
			}
		}
	}
	if (snprintf(dir, dir_len, "%s/%s", r->spool, s->label) >=
	    (int)dir_len) {
		say(r, "source %s: path too long", s->label);
		return MV_EXIT_FAIL;
	}
	if (r->o->dry_run) {
		say(r, "command %s: %s -> %s/%s", s->label, s->value, dir,
		    s->file_name ? s->file_name : s->label);
		return MV_EXIT_OK;
	}
	if (mkdir(dir, 0700) < 0) {
		say(r, "cannot create '%s': %s", dir, strerror(errno));
		return MV_EXIT_FAIL;
	}
	{
		char path[4096 + 256];
		char *argv[] = {(char *)"/bin/sh", (char *)"-c", s->value,
				NULL};
		int lp[2], fd;
		pid_t pid;

		snprintf(path, sizeof(path), "%s/%s", dir,
			 s->file_name ? s->file_name : s->label);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || pipe2(lp, O_CLOEXEC) < 0) {
			say(r, "cannot create '%s': %s", path, strerror(errno));
			if (fd >= 0)
				close(fd);
			return MV_EXIT_FAIL;
		}
		say(r, "command %s: %s", s->label, s->value);
		pid = spawn(argv, -1, fd, lp[1], NULL, 0);
		close(fd);
		close(lp[1]);
		cur_pgid[0] = pid;
		pump(r, lp[0], -1, NULL, NULL, &pid, &code, 1, 0);
		if (code) {
			say(r, "command %s failed (exit %d); no backup",
			    s->label, code);
			return code == MV_EXIT_INTERRUPTED ? code
							   : MV_EXIT_FAIL;
		}
	}
	return MV_EXIT_OK;
}

/* One run of a job at a time: a second would share its spool directory
 * and state.  Returns the locked fd (closed at the end of the run), or
 * -EBUSY or another -errno after saying why. */
static int lock_job(struct run *r)
{
	char path[4096];
	int fd, rc;

	rc = mv_mkdir_p(job_state_dir(), 0700);
	if (rc) {
		say(r, "cannot create '%s': %s", job_state_dir(),
		    strerror(-rc));
		return rc;
	}
	snprintf(path, sizeof(path), "%s/%s.lock", job_state_dir(), r->j->name);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		say(r, "cannot open '%s': %s", path, strerror(errno));
		return rc;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		say(r,
		    "another run of this job holds '%s'; not running it "
		    "twice",
		    path);
		close(fd);
		return -EBUSY;
	}
	return fd;
}

static void backup_figures(struct run *r, const char *out)
{
	json_t *root, *v;

	if (!out)
		return;
	root = json_loads(out, 0, NULL);
	if (!root)
		return;
	v = json_object_get(root, "bytes_stored");
	if (json_is_integer(v)) {
		r->have_backup = true;
		r->bytes_added = (uint64_t)json_integer_value(v);
	}
	json_decref(root);
}

/* Start the command source that feeds the backup's stdin (struct run's
 * gate); *rd gets the pipe's read end.  Returns an exit code. */
static int gate_start(struct run *r, const struct job_source *s, int log_wr,
		      int *rd)
{
	char *argv[] = {(char *)"/bin/sh", (char *)"-c", s->value, NULL};
	int p[2];

	say(r, "command %s: %s", s->label, s->value);
	if (r->o->dry_run)
		return MV_EXIT_OK;
	if (pipe2(p, O_CLOEXEC) < 0) {
		say(r, "cannot create a pipe: %s", strerror(errno));
		return MV_EXIT_FAIL;
	}
	r->gate_pid = spawn(argv, -1, p[1], log_wr, NULL, 0);
	cur_pgid[JOB_MAX_SOURCES + 1] = r->gate_pid;
	r->gate_pidfd = (int)syscall(SYS_pidfd_open, r->gate_pid, 0);
	if (r->gate_pidfd < 0) {
		/* no pidfd (a kernel before 5.3): the stream ends when the
		 * command does, and a failure is only reported after */
		close(p[1]);
		p[1] = -1;
	}
	r->gate_fd = p[1];
	r->gate_code = 0;
	*rd = p[0];
	return r->gate_pid > 0 ? MV_EXIT_OK : MV_EXIT_FAIL;
}

static int backup(struct run *r)
{
	const struct job *j = r->j;
	char *sargv[JOB_MAX_SOURCES][4], *cap = NULL;
	int sfd[JOB_MAX_SOURCES], codes[JOB_MAX_SOURCES + 1];
	const char *sname[JOB_MAX_SOURCES];
	pid_t pids[JOB_MAX_SOURCES + 1];
	size_t ns = 0, cap_len = 0, i;
	int lp[2] = {-1, -1}, op[2] = {-1, -1}, code = MV_EXIT_OK;
	int stdin_rd = -1;
	size_t gate = j->nsources; /* the command source on stdin */
	struct argv a;

	argv_start(&a, r, "backup");
	argv_add(&a, j->repository);
	argv_add(&a, "--name");
	argv_add(&a, j->snapshot);
	argv_add(&a, "--json");
	if (j->wait > 0)
		argv_addf(&a, "--wait=%lld", (long long)j->wait);
	for (i = 0; i < j->ntags; i++) {
		argv_add(&a, "--tag");
		argv_add(&a, j->tags[i]);
	}
	/* the first command source is stored from the backup's stdin as
	 * one file (LABEL=- --stdin-name); the backup has one stdin, so
	 * further ones are spooled */
	for (i = 0; i < j->nsources && gate == j->nsources; i++)
		if (j->sources[i].kind == JOB_SRC_COMMAND)
			gate = i;
	if (gate < j->nsources) {
		const struct job_source *s = &j->sources[gate];

		argv_add(&a, "--stdin-name");
		argv_add(&a, s->file_name ? s->file_name : s->label);
	}
	if (!r->o->dry_run && pipe2(lp, O_CLOEXEC) < 0)
		return MV_EXIT_FAIL;
	/* spooled sources first, so no stream waits on a full pipe while
	 * a dump runs */
	for (i = 0; i < 2 * j->nsources && code == MV_EXIT_OK; i++) {
		const struct job_source *s = &j->sources[i % j->nsources];
		char dir[4096];

		size_t at = i % j->nsources;

		if ((i < j->nsources) ==
		    (s->kind == JOB_SRC_STREAM || at == gate))
			continue;
		if (at == gate) {
			code = gate_start(r, s, lp[1], &stdin_rd);
			argv_addf(&a, "%s=-", s->label);
			continue;
		}
		switch (s->kind) {
		case JOB_SRC_PATH:
			argv_addf(&a, "%s=%s", s->label, s->value);
			break;
		case JOB_SRC_FILE:
			argv_addf(&a, "%s=file:%s", s->label, s->value);
			break;
		case JOB_SRC_STREAM: {
			int p[2] = {-1, -1};

			sargv[ns][0] = (char *)"/bin/sh";
			sargv[ns][1] = (char *)"-c";
			sargv[ns][2] = s->value;
			sargv[ns][3] = NULL;
			say(r, "stream %s: %s", s->label, s->value);
			if (!r->o->dry_run && pipe2(p, O_CLOEXEC) < 0) {
				code = MV_EXIT_FAIL;
				break;
			}
			/* the backup reads each stream as /dev/fd/N, a
			 * tar source like LABEL=- but as many as needed */
			if (!r->o->dry_run) {
				pids[ns] = spawn(sargv[ns], -1, p[1], lp[1],
						 NULL, 0);
				cur_pgid[ns + 1] = pids[ns];
				close(p[1]);
			}
			sfd[ns] = p[0];
			sname[ns] = s->label;
			if (r->o->dry_run)
				argv_addf(&a, "%s=/dev/fd/N", s->label);
			else
				argv_addf(&a, "%s=/dev/fd/%d", s->label, p[0]);
			ns++;
			break;
		}
		default:
			code = spool_source(r, s, dir, sizeof(dir));
			argv_addf(&a, "%s=%s", s->label, dir);
			break;
		}
	}
	if (a.failed && code == MV_EXIT_OK) {
		say(r, "backup: cannot build its command line");
		code = MV_EXIT_FAIL;
	}
	print_argv(r, "backup", a.v);
	if (r->o->dry_run || code != MV_EXIT_OK) {
		/* a stream started before a failed spool ends with EPIPE */
		for (i = 0; i < ns; i++)
			if (sfd[i] >= 0)
				close(sfd[i]);
		if (stdin_rd >= 0)
			close(stdin_rd);
		stdin_rd = -1;
		if (r->gate_fd >= 0)
			close(r->gate_fd);
		r->gate_fd = -1;
		if (lp[1] >= 0) {
			close(lp[1]);
			lp[1] = -1;
			pump(r, lp[0], -1, NULL, NULL, pids, codes, ns, 0);
		}
		goto out;
	}
	if (pipe2(op, O_CLOEXEC) < 0) {
		code = MV_EXIT_FAIL;
		goto out;
	}
	pids[ns] = spawn(a.v, stdin_rd, op[1], lp[1], sfd, ns);
	cur_pgid[0] = pids[ns];
	r->gate_stop = pids[ns];
	close(op[1]);
	close(lp[1]);
	if (stdin_rd >= 0)
		close(stdin_rd);
	stdin_rd = -1;
	for (i = 0; i < ns; i++)
		close(sfd[i]);
	pump(r, lp[0], op[0], &cap, &cap_len, pids, codes, ns + 1, 0);
	r->gate_stop = 0;
	code = codes[ns];
	backup_figures(r, cap);
	/* a failed command stopped the backup before it committed: the
	 * failure is the command's; one cut short by a failed backup is
	 * the backup's */
	if (gate < j->nsources && r->gate_code &&
	    !(failed(code) && code != MV_EXIT_INTERRUPTED &&
	      r->gate_code == 128 + SIGPIPE)) {
		say(r, "command %s failed (exit %d); no snapshot",
		    j->sources[gate].label, r->gate_code);
		code = r->gate_code == MV_EXIT_INTERRUPTED && stop_sig
			       ? MV_EXIT_INTERRUPTED
			       : MV_EXIT_FAIL;
	}
	for (i = 0; i < ns; i++) {
		/* a stream cut short by a backup that stopped reading is
		 * the backup's failure, already counted */
		if (!codes[i] || (code && codes[i] == 128 + SIGPIPE))
			continue;
		say(r, "stream %s failed (exit %d)", sname[i], codes[i]);
		if (!failed(code))
			code = codes[i] == MV_EXIT_INTERRUPTED
				       ? MV_EXIT_INTERRUPTED
				       : MV_EXIT_FAIL;
	}
	say(r, "backup %s (exit %d)", failed(code) ? "failed" : "done", code);
out:
	free(cap);
	argv_release(&a);
	return code;
}

/* mailvault VERB ARGS... REPO as a step; returns its exit code. */
static int step(struct run *r, const char *verb, char **args, size_t nargs,
		char **cap, size_t *cap_len)
{
	struct argv a;
	size_t i;
	int code;

	argv_start(&a, r, verb);
	for (i = 0; i < nargs; i++)
		argv_add(&a, args[i]);
	argv_add(&a, r->j->repository);
	print_argv(r, verb, a.v);
	if (r->o->dry_run)
		return MV_EXIT_OK;
	code = a.failed ? MV_EXIT_FAIL : run_simple(r, a.v, 0, cap, cap_len);
	if (code)
		say(r, "%s %s (exit %d)", verb,
		    code == MV_EXIT_WARN ? "warned" : "failed", code);
	return code;
}

static bool due(int64_t every, int64_t last, int64_t now)
{
	/* a minute's slack: a daily timer that fires a little early on
	 * the next day still finds a daily step due */
	return every >= 0 && (!last || now - last >= every - 60);
}

static void repo_figures(struct run *r)
{
	char *cap = NULL, *args[] = {(char *)"--json"};
	size_t cap_len = 0;
	json_t *root;

	if (step(r, "stats", args, 1, &cap, &cap_len) == MV_EXIT_OK && cap &&
	    (root = json_loads(cap, 0, NULL))) {
		json_t *s = json_object_get(root, "snapshots");
		json_t *b = json_object_get(root, "pack_bytes");

		if (json_is_integer(s) && json_is_integer(b)) {
			r->have_repo = true;
			r->snapshots = (uint64_t)json_integer_value(s);
			r->repo_bytes = (uint64_t)json_integer_value(b);
		}
		json_decref(root);
	}
	free(cap);
}

/* Mail (on failure, or always when asked) and the healthcheck ping of the
 * outcome "what" (exit r->worst), the log as body.  Returns how many
 * channels failed; each failure is a warning in the log. */
static int send_alerts(struct run *r, const char *what, bool bad)
{
	const struct job *j = r->j;
	struct mv_err err = MV_ERR_INIT;
	char host[256] = "";
	size_t tail = r->log_len > ALERT_TAIL_MAX ? ALERT_TAIL_MAX : r->log_len;
	int nfail = 0;

	gethostname(host, sizeof(host) - 1);
	if (j->nmail_to && (bad || j->mail_always)) {
		char subject[512];

		snprintf(subject, sizeof(subject),
			 "mailvault job %s on %s: %s (exit %d)", j->name, host,
			 what, r->worst);
		if (alert_mail((const char *const *)j->mail_to, j->nmail_to,
			       j->mail_from, subject, r->log, r->log_len,
			       &err)) {
			say(r, "warning: %s", mv_err_msg(&err));
			mv_err_clear(&err);
			nfail++;
		}
	}
	if (j->healthcheck &&
	    alert_ping(j->healthcheck, bad ? "/fail" : "",
		       r->log + r->log_len - tail, tail, &err)) {
		say(r, "warning: %s", mv_err_msg(&err));
		mv_err_clear(&err);
		nfail++;
	}
	return nfail;
}

static void report(struct run *r, int64_t started, double secs,
		   struct job_state *st)
{
	const struct job *j = r->j;
	struct mv_err err = MV_ERR_INIT;
	bool bad = failed(r->worst);

	(void)started;
	if (j->textfile) {
		struct alert_metrics m = {
			.job = j->name,
			.exit_code = r->worst,
			.run_time = time(NULL),
			.last_success = st->last_success,
			.duration = secs,
			.have_backup = r->have_backup,
			.bytes_added = r->bytes_added,
			.have_repo = r->have_repo,
			.snapshots = r->snapshots,
			.repo_bytes = r->repo_bytes,
		};

		if (alert_textfile(j->textfile, &m, &err)) {
			say(r, "warning: %s", mv_err_msg(&err));
			mv_err_clear(&err);
		}
	}
	send_alerts(r,
		    bad			       ? "FAILED"
		    : r->worst == MV_EXIT_WARN ? "completed with warnings"
					       : "ok",
		    bad);
}

int job_run(const struct job *j, const struct job_run_opts *o)
{
	struct mv_err err = MV_ERR_INIT;
	struct job_state st;
	struct timespec t0, t1;
	struct run r;
	int64_t now = time(NULL);
	int code, lock_fd = -1;

	if (run_init(&r, j, o))
		return MV_EXIT_FAIL;
	if (!o->dry_run && (lock_fd = lock_job(&r)) < 0) {
		run_release(&r);
		return lock_fd == -EBUSY ? MV_EXIT_LOCKED : MV_EXIT_FAIL;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (job_state_load(j->name, &st, &err)) {
		say(&r, "warning: %s; starting afresh", mv_err_msg(&err));
		mv_err_clear(&err);
		memset(&st, 0, sizeof(st));
		st.next_part = 1;
	}
	say(&r, "%sjob '%s' from '%s' into '%s'", o->dry_run ? "plan of " : "",
	    j->name, j->path, j->repository);
	if (j->healthcheck) {
		say(&r, "ping %s/start", j->healthcheck);
		if (!o->dry_run &&
		    alert_ping(j->healthcheck, "/start", NULL, 0, &err)) {
			say(&r, "warning: %s", mv_err_msg(&err));
			mv_err_clear(&err);
		}
	}
	code = hook(&r, JOB_HOOK_BEFORE);
	note(&r, code);
	if (!failed(code) && !stop_sig)
		note(&r, backup(&r));
	else
		say(&r, "no backup: the before-hook failed");
	spool_remove(&r);
	/* whatever happened: the service the before-hook stopped starts */
	note(&r, hook(&r, JOB_HOOK_AFTER));
	if (!failed(r.worst) && !stop_sig && j->nkeep) {
		char *args[16];
		size_t na = 0, i;

		args[na++] = (char *)"--name";
		args[na++] = j->snapshot;
		if (j->wait)
			args[na++] = (char *)"--wait";
		for (i = 0; i < j->nkeep; i++)
			args[na++] = j->keep[i];
		note(&r, step(&r, "forget", args, na, NULL, NULL));
	}
	if (!failed(r.worst) && !stop_sig &&
	    due(j->prune_every, st.last_prune, now)) {
		char *args[] = {(char *)"--wait"};

		code = step(&r, "prune", args, j->wait ? 1 : 0, NULL, NULL);
		note(&r, code);
		if (!failed(code))
			st.last_prune = now;
	}
	if (!failed(r.worst) && !stop_sig &&
	    due(j->check_every, st.last_check, now)) {
		char sub[64], *args[] = {(char *)"--read-data-subset", sub};

		if (st.next_part < 1 || st.next_part > j->check_parts)
			st.next_part = 1;
		snprintf(sub, sizeof(sub), "%u/%u", st.next_part,
			 j->check_parts);
		code = step(&r, "check", args, j->check_parts ? 2 : 0, NULL,
			    NULL);
		note(&r, code);
		if (!failed(code)) {
			st.last_check = now;
			if (j->check_parts)
				st.next_part =
					st.next_part % j->check_parts + 1;
		}
	}
	if (stop_sig)
		note(&r, MV_EXIT_INTERRUPTED);
	if (failed(r.worst))
		hook(&r, JOB_HOOK_ON_ERROR);
	if (j->textfile && !stop_sig)
		repo_figures(&r);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (!failed(r.worst))
		st.last_success = time(NULL);
	say(&r, "%s (exit %d)", outcome(&r), r.worst);
	if (!o->dry_run) {
		if (job_state_save(j->name, &st, &err)) {
			say(&r, "warning: %s", mv_err_msg(&err));
			mv_err_clear(&err);
		}
		report(&r, now,
		       (double)(t1.tv_sec - t0.tv_sec) +
			       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
		       &st);
	}
	code = r.worst;
	run_release(&r);
	if (lock_fd >= 0)
		close(lock_fd);
	return code;
}

int job_read_data(const struct job *j, const struct job_run_opts *o)
{
	char *args[] = {(char *)"--read-data"};
	struct run r;
	int code;

	if (run_init(&r, j, o))
		return MV_EXIT_FAIL;
	say(&r, "%sfull check of '%s'", o->dry_run ? "plan of " : "",
	    j->repository);
	note(&r, step(&r, "check", args, 1, NULL, NULL));
	if (stop_sig)
		note(&r, MV_EXIT_INTERRUPTED);
	say(&r, "full check %s (exit %d)", outcome(&r), r.worst);
	/* a failure only: a success ping would reset the nightly run's
	 * healthcheck schedule */
	if (!o->dry_run && failed(r.worst))
		send_alerts(&r, "full check FAILED", true);
	code = r.worst;
	run_release(&r);
	return code;
}

int job_report_failure(const struct job *j, const char *what, const char *log,
		       size_t len)
{
	struct run r;
	int nfail;

	if (!j->healthcheck && !j->nmail_to) {
		fprintf(stderr,
			"mailvault run: job '%s' has no healthcheck and no "
			"mail-to to report '%s' with\n",
			j->name, what);
		return MV_EXIT_FAIL;
	}
	if (run_init(&r, j, NULL))
		return MV_EXIT_FAIL;
	r.worst = MV_EXIT_FAIL;
	log_add(&r, log, len);
	say(&r, "%s", what);
	nfail = send_alerts(&r, what, true);
	run_release(&r);
	return nfail ? MV_EXIT_FAIL : MV_EXIT_OK;
}
