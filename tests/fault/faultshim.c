/* faultshim: an LD_PRELOAD library that makes chosen system calls on chosen
 * paths fail, write or read short, or kill the process, so that tests can
 * put mailvault (or an sftp-server) through the faults of a real disk and a
 * real network (docs/TESTING.md).  Test-only: built into
 * $(BUILD)/tests/faultshim.so, never installed.
 *
 *	MVFAULT='RULE[;RULE...]'  with RULE = OP:GLOB:WHEN:ACTION
 *	MVFAULT=@FILE             the rules are read from FILE when a process
 *	                          starts (a server's new sessions pick up
 *	                          changes without a restart)
 *
 *   OP      open   open, open64, openat, openat64, creat (and __open_2...)
 *           write  write, pwrite, pwrite64, writev
 *           read   read, pread, pread64
 *           fsync  fsync, fdatasync
 *           rename rename, renameat, renameat2, link, linkat (the source
 *                  or target path; OpenSSH's sftp-server renames by link
 *                  and unlink)
 *           unlink unlink, unlinkat
 *           mkdir  mkdir, mkdirat
 *           any    all of the above
 *           several joined by ',' (fsync,rename) count as one sequence
 *   GLOB    fnmatch(3) pattern, without FNM_PATHNAME ('*' crosses '/'),
 *           against the absolute path (for descriptors: /proc/self/fd/N)
 *   WHEN    always | nth=N (only the Nth matching call) | after=N (every
 *           call after the first N) | count (never: only counts and logs)
 *   ACTION  eio | enospc | errno=N | short (read or write half the bytes,
 *           at least one; other calls pass) | kill (SIGKILL before the
 *           call is made) | killparent (SIGKILL the parent first: an
 *           sftp-server's sshd session, which drops the TCP connection)
 *
 *	MVFAULT_LOG=FILE  append "pid rule-index call-number op path action"
 *	                  for every matching call (counted or faulted)
 *	MVFAULT_ONCE=FILE a fault fires only in the process that creates
 *	                  FILE first: one fault across a server's sessions
 *	                  (a client that reconnects and retries then succeeds)
 *
 * Only calls into libc from outside it are seen: fopen, fwrite and friends
 * are not (mailvault and SQLite use the calls above).  Descriptors are
 * named with readlink, which a seccomp sandbox (OpenSSH's pre-auth
 * process) may forbid.  Each rule counts its matching calls on its own
 * (atomically: mailvault's workers write from several threads); the first
 * rule that fires wins.  Example: kill a backup at its third rename of a
 * temporary file (a sealed pack put in place):
 *
 *	MVFAULT='rename:*.tmp:nth=3:kill' mailvault backup ...
 *
 * Under ASan the shim comes before the sanitizer runtime in the library
 * list: run with ASAN_OPTIONS=verify_asan_link_order=0. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum op {
	OP_OPEN,
	OP_WRITE,
	OP_READ,
	OP_FSYNC,
	OP_RENAME,
	OP_UNLINK,
	OP_MKDIR,
	OP_ANY
};
enum when { W_ALWAYS, W_NTH, W_AFTER, W_COUNT };
enum act { A_ERRNO, A_SHORT, A_KILL, A_KILL_PARENT, A_NONE };

static const char *const op_names[] = {"open",	 "write",  "read",  "fsync",
				       "rename", "unlink", "mkdir", "any"};

struct rule {
	unsigned ops; /* 1 << enum op */
	char glob[PATH_MAX];
	enum when when;
	unsigned long n;
	enum act act;
	int err;
	atomic_ulong calls;
};

#define MAX_RULES 16
static struct rule rules[MAX_RULES];
static int nrules;
static int log_fd = -1;
static const char *once_path;
static int (*open_once)(const char *, int, ...);
static pthread_once_t once = PTHREAD_ONCE_INIT;

static ssize_t (*real_write)(int, const void *, size_t);

static void *next(const char *name)
{
	return dlsym(RTLD_NEXT, name);
}

static int parse_rule(char *s, struct rule *r)
{
	char *op = strtok_r(s, ":", &s), *glob = strtok_r(NULL, ":", &s);
	char *when = strtok_r(NULL, ":", &s), *act = strtok_r(NULL, ":", &s);
	char *one, *save = NULL;
	size_t i;

	if (!op || !glob || !when || !act)
		return -1;
	r->ops = 0;
	for (one = strtok_r(op, ",", &save); one;
	     one = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < sizeof(op_names) / sizeof(*op_names); i++)
			if (!strcmp(one, op_names[i]))
				break;
		if (i == sizeof(op_names) / sizeof(*op_names))
			return -1;
		r->ops |= i == OP_ANY ? ~0u : 1u << i;
	}
	snprintf(r->glob, sizeof(r->glob), "%s", glob);
	if (!strcmp(when, "always"))
		r->when = W_ALWAYS;
	else if (!strcmp(when, "count"))
		r->when = W_COUNT;
	else if (!strncmp(when, "nth=", 4))
		r->when = W_NTH, r->n = strtoul(when + 4, NULL, 10);
	else if (!strncmp(when, "after=", 6))
		r->when = W_AFTER, r->n = strtoul(when + 6, NULL, 10);
	else
		return -1;
	r->act = A_ERRNO;
	if (!strcmp(act, "eio"))
		r->err = EIO;
	else if (!strcmp(act, "enospc"))
		r->err = ENOSPC;
	else if (!strncmp(act, "errno=", 6))
		r->err = atoi(act + 6);
	else if (!strcmp(act, "short"))
		r->act = A_SHORT;
	else if (!strcmp(act, "kill"))
		r->act = A_KILL;
	else if (!strcmp(act, "killparent"))
		r->act = A_KILL_PARENT;
	else
		return -1;
	return 0;
}

static void init(void)
{
	const char *spec = getenv("MVFAULT"), *logp = getenv("MVFAULT_LOG");
	char *copy, *save = NULL, *tok;

	real_write = (ssize_t(*)(int, const void *, size_t))next("write");
	open_once = (int (*)(const char *, int, ...))next("open");
	if (logp && *logp)
		log_fd = open_once(
			logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	once_path = getenv("MVFAULT_ONCE");
	if (once_path && !*once_path)
		once_path = NULL;
	if (!spec || !*spec)
		return;
	if (*spec == '@') {
		char text[4096];
		int fd = open_once(spec + 1, O_RDONLY | O_CLOEXEC);
		/* not our own pread: this runs inside the pthread_once */
		ssize_t (*rd)(int, void *, size_t, off_t) =
			(ssize_t(*)(int, void *, size_t, off_t))next("pread");
		ssize_t n = fd < 0 ? 0 : rd(fd, text, sizeof(text) - 1, 0);

		if (fd >= 0)
			close(fd);
		text[n < 0 ? 0 : n] = '\0';
		text[strcspn(text, "\n")] = '\0';
		copy = strdup(text);
	} else {
		copy = strdup(spec);
	}
	if (!copy)
		return;
	for (tok = strtok_r(copy, ";", &save); tok && nrules < MAX_RULES;
	     tok = strtok_r(NULL, ";", &save)) {
		if (parse_rule(tok, &rules[nrules])) {
			fprintf(stderr, "faultshim: bad rule '%s'\n", tok);
			abort();
		}
		nrules++;
	}
	free(copy);
}

static void fd_path(int fd, char *out, size_t len)
{
	char proc[64];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, out, len - 1);
	out[n < 0 ? 0 : n] = '\0';
}

static void at_path(int dirfd, const char *p, char *out, size_t len)
{
	char dir[PATH_MAX];
	int n;

	dir[0] = '\0';
	if (p[0] != '/' && dirfd == AT_FDCWD && !getcwd(dir, sizeof(dir)))
		dir[0] = '\0';
	else if (p[0] != '/' && dirfd != AT_FDCWD)
		fd_path(dirfd, dir, sizeof(dir));
	n = dir[0] ? snprintf(out, len, "%s/%s", dir, p)
		   : snprintf(out, len, "%s", p);
	if (n < 0 || (size_t)n >= len)
		out[0] = '\0'; /* too long to match anything */
}

static void log_call(int i, unsigned long k, enum op op, const char *path,
		     const char *what)
{
	char line[PATH_MAX + 128];
	int n;

	if (log_fd < 0)
		return;
	n = snprintf(line, sizeof(line), "%d %d %lu %s %s %s\n", (int)getpid(),
		     i, k, op_names[op], path, what);
	if (n > 0)
		real_write(log_fd, line,
			   (size_t)n < sizeof(line) ? (size_t)n : sizeof(line));
}

/* The action for one call of kind op on path (and path2 for renames):
 * A_NONE to let it through.  Sets *err for A_ERRNO; kills for A_KILL*. */
static enum act decide(enum op op, const char *path, const char *path2,
		       int *err)
{
	int i;

	pthread_once(&once, init);
	for (i = 0; i < nrules; i++) {
		struct rule *r = &rules[i];
		unsigned long k;
		bool fire;

		if (!(r->ops & (1u << op)))
			continue;
		if (fnmatch(r->glob, path, 0) &&
		    (!path2 || fnmatch(r->glob, path2, 0)))
			continue;
		k = atomic_fetch_add(&r->calls, 1) + 1;
		fire = r->when == W_ALWAYS || (r->when == W_NTH && k == r->n) ||
		       (r->when == W_AFTER && k > r->n);
		if (fire && once_path) {
			int fd = open_once(
				once_path,
				O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

			fire = fd >= 0;
			if (fd >= 0)
				close(fd);
		}
		log_call(i, k, op, path,
			 !fire					       ? "pass"
			 : r->act == A_KILL || r->act == A_KILL_PARENT ? "kill"
			 : r->act == A_SHORT			       ? "short"
					     : "fail");
		if (!fire)
			continue;
		if (r->act == A_KILL_PARENT)
			kill(getppid(), SIGKILL);
		if (r->act == A_KILL || r->act == A_KILL_PARENT)
			raise(SIGKILL); /* does not return */
		*err = r->err;
		return r->act;
	}
	return A_NONE;
}

/* Does any rule look at calls of this kind?  Saves the readlink of every
 * write when none does. */
static bool watched(enum op op)
{
	int i;

	pthread_once(&once, init);
	for (i = 0; i < nrules; i++)
		if (rules[i].ops & (1u << op))
			return true;
	return false;
}

#define REAL(ret, name, ...)                    \
	static ret (*real_##name)(__VA_ARGS__); \
	if (!real_##name)                       \
		real_##name = (ret(*)(__VA_ARGS__))next(#name);

static enum act fd_decide(enum op op, int fd, int *err)
{
	char p[PATH_MAX];

	if (!watched(op))
		return A_NONE;
	fd_path(fd, p, sizeof(p));
	return decide(op, p, NULL, err);
}

static enum act path_decide(enum op op, int dirfd, const char *path, int *err)
{
	char p[PATH_MAX];

	if (!watched(op) || !path)
		return A_NONE;
	at_path(dirfd, path, p, sizeof(p));
	return decide(op, p, NULL, err);
}

static size_t half(size_t n)
{
	return n > 1 ? n / 2 : n;
}

/* --- open --- */

static mode_t open_mode(int flags, va_list ap)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE
		       ? (mode_t)va_arg(ap, int)
		       : 0;
}

#define OPEN_AT(name)                                                     \
	int name(int dirfd, const char *path, int flags, ...);            \
	int name(int dirfd, const char *path, int flags, ...)             \
	{                                                                 \
		REAL(int, name, int, const char *, int, ...)              \
		va_list ap;                                               \
		mode_t mode;                                              \
		int err = 0;                                              \
		va_start(ap, flags);                                      \
		mode = open_mode(flags, ap);                              \
		va_end(ap);                                               \
		if (path_decide(OP_OPEN, dirfd, path, &err) == A_ERRNO) { \
			errno = err;                                      \
			return -1;                                        \
		}                                                         \
		return real_##name(dirfd, path, flags, mode);             \
	}
#define OPEN(name)                                                           \
	int name(const char *path, int flags, ...);                          \
	int name(const char *path, int flags, ...)                           \
	{                                                                    \
		REAL(int, name, const char *, int, ...)                      \
		va_list ap;                                                  \
		mode_t mode;                                                 \
		int err = 0;                                                 \
		va_start(ap, flags);                                         \
		mode = open_mode(flags, ap);                                 \
		va_end(ap);                                                  \
		if (path_decide(OP_OPEN, AT_FDCWD, path, &err) == A_ERRNO) { \
			errno = err;                                         \
			return -1;                                           \
		}                                                            \
		return real_##name(path, flags, mode);                       \
	}
OPEN(open)
OPEN(open64)
OPEN_AT(openat)
OPEN_AT(openat64)

#define OPEN2(name)                                                          \
	int name(const char *path, int flags);                               \
	int name(const char *path, int flags)                                \
	{                                                                    \
		REAL(int, name, const char *, int)                           \
		int err = 0;                                                 \
		if (path_decide(OP_OPEN, AT_FDCWD, path, &err) == A_ERRNO) { \
			errno = err;                                         \
			return -1;                                           \
		}                                                            \
		return real_##name(path, flags);                             \
	}
OPEN2(__open_2)
OPEN2(__open64_2)

int creat(const char *path, mode_t mode);
int creat(const char *path, mode_t mode)
{
	return open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
}

/* --- write and read --- */

ssize_t write(int fd, const void *buf, size_t n)
{
	int err = 0;

	pthread_once(&once, init);
	switch (fd_decide(OP_WRITE, fd, &err)) {
	case A_ERRNO:
		errno = err;
		return -1;
	case A_SHORT:
		n = half(n);
		break;
	default:
		break;
	}
	return real_write(fd, buf, n);
}

#define PIO(name, op, type)                                   \
	ssize_t name(int fd, type buf, size_t n, off_t off)   \
	{                                                     \
		REAL(ssize_t, name, int, type, size_t, off_t) \
		int err = 0;                                  \
		switch (fd_decide(op, fd, &err)) {            \
		case A_ERRNO:                                 \
			errno = err;                          \
			return -1;                            \
		case A_SHORT:                                 \
			n = half(n);                          \
			break;                                \
		default:                                      \
			break;                                \
		}                                             \
		return real_##name(fd, buf, n, off);          \
	}
PIO(pwrite, OP_WRITE, const void *)
PIO(pwrite64, OP_WRITE, const void *)
PIO(pread, OP_READ, void *)
PIO(pread64, OP_READ, void *)

ssize_t read(int fd, void *buf, size_t n)
{
	REAL(ssize_t, read, int, void *, size_t)
	int err = 0;

	switch (fd_decide(OP_READ, fd, &err)) {
	case A_ERRNO:
		errno = err;
		return -1;
	case A_SHORT:
		n = half(n);
		break;
	default:
		break;
	}
	return real_read(fd, buf, n);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	REAL(ssize_t, writev, int, const struct iovec *, int)
	int err = 0;

	switch (fd_decide(OP_WRITE, fd, &err)) {
	case A_ERRNO:
		errno = err;
		return -1;
	case A_SHORT:
		/* the first buffer, or half of it */
		if (cnt > 0)
			return write(fd, iov[0].iov_base,
				     cnt > 1 ? iov[0].iov_len
					     : half(iov[0].iov_len));
		break;
	default:
		break;
	}
	return real_writev(fd, iov, cnt);
}

/* --- fsync, rename, unlink, mkdir --- */

#define FD_CALL(name, op)                                 \
	int name(int fd)                                  \
	{                                                 \
		REAL(int, name, int)                      \
		int err = 0;                              \
		if (fd_decide(op, fd, &err) == A_ERRNO) { \
			errno = err;                      \
			return -1;                        \
		}                                         \
		return real_##name(fd);                   \
	}
FD_CALL(fsync, OP_FSYNC)
FD_CALL(fdatasync, OP_FSYNC)

static enum act rename_decide(int fd1, const char *a, int fd2, const char *b,
			      int *err)
{
	char p1[PATH_MAX], p2[PATH_MAX];

	if (!watched(OP_RENAME))
		return A_NONE;
	at_path(fd1, a, p1, sizeof(p1));
	at_path(fd2, b, p2, sizeof(p2));
	return decide(OP_RENAME, p1, p2, err);
}

int rename(const char *a, const char *b)
{
	REAL(int, rename, const char *, const char *)
	int err = 0;

	if (rename_decide(AT_FDCWD, a, AT_FDCWD, b, &err) == A_ERRNO) {
		errno = err;
		return -1;
	}
	return real_rename(a, b);
}

int renameat(int fd1, const char *a, int fd2, const char *b)
{
	REAL(int, renameat, int, const char *, int, const char *)
	int err = 0;

	if (rename_decide(fd1, a, fd2, b, &err) == A_ERRNO) {
		errno = err;
		return -1;
	}
	return real_renameat(fd1, a, fd2, b);
}

int renameat2(int fd1, const char *a, int fd2, const char *b, unsigned fl)
{
	REAL(int, renameat2, int, const char *, int, const char *, unsigned)
	int err = 0;

	if (rename_decide(fd1, a, fd2, b, &err) == A_ERRNO) {
		errno = err;
		return -1;
	}
	return real_renameat2(fd1, a, fd2, b, fl);
}

int link(const char *a, const char *b)
{
	REAL(int, link, const char *, const char *)
	int err = 0;

	if (rename_decide(AT_FDCWD, a, AT_FDCWD, b, &err) == A_ERRNO) {
		errno = err;
		return -1;
	}
	return real_link(a, b);
}

int linkat(int fd1, const char *a, int fd2, const char *b, int fl)
{
	REAL(int, linkat, int, const char *, int, const char *, int)
	int err = 0;

	if (rename_decide(fd1, a, fd2, b, &err) == A_ERRNO) {
		errno = err;
		return -1;
	}
	return real_linkat(fd1, a, fd2, b, fl);
}

int unlink(const char *p)
{
	REAL(int, unlink, const char *)
	int err = 0;

	if (path_decide(OP_UNLINK, AT_FDCWD, p, &err) == A_ERRNO) {
		errno = err;
		return -1;
	}
	return real_unlink(p);
}

int unlinkat(int fd, const char *p, int fl)
{
	REAL(int, unlinkat, int, const char *, int)
	int err = 0;

	if (path_decide(OP_UNLINK, fd, p, &err) == A_ERRNO) {
		errno = err;
		return -1;
	}
	return real_unlinkat(fd, p, fl);
}

int mkdir(const char *p, mode_t m)
{
	REAL(int, mkdir, const char *, mode_t)
	int err = 0;

	if (path_decide(OP_MKDIR, AT_FDCWD, p, &err) == A_ERRNO) {
		errno = err;
		return -1;
	}
	return real_mkdir(p, m);
}

int mkdirat(int fd, const char *p, mode_t m)
{
	REAL(int, mkdirat, int, const char *, mode_t)
	int err = 0;

	if (path_decide(OP_MKDIR, fd, p, &err) == A_ERRNO) {
		errno = err;
		return -1;
	}
	return real_mkdirat(fd, p, m);
}
