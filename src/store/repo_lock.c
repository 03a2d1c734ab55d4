/*
 * repo_lock: the writer lock of a repository (include/repo.h, "The writer
 * lock"; docs/REMOTE.md).
 *
 * The file 'lock' is created exclusively (O_EXCL, or SFTP's exclusive
 * open) and holds who wrote it and a random token:
 *
 *   host=<hostname> pid=<pid> time=<unix seconds> boot=<boot id>
 *   token=<32 hex digits>              (one key=value per line)
 *
 * Rules:
 *  (1) Only the token's owner removes the lock on release: it re-reads
 *      the file and compares the token first, so a lock that the user
 *      broke and another writer took is left alone.
 *  (2) A lock on a remote repository is never broken automatically: no
 *      client can tell whether a process on another machine (or in a
 *      container with the same hostname) is still running.
 *  (3) On a local repository a lock is broken automatically only when
 *      its holder is provably dead: same hostname AND same boot id
 *      (/proc/sys/kernel/random/boot_id; another VM with the same name,
 *      or this machine before a reboot, differs) AND its pid is gone AND
 *      no process holds the flock(2) that every local holder keeps on
 *      the file.  The breaker takes that flock itself, re-reads the file
 *      through the locked descriptor, checks that 'lock' still names the
 *      same file, and only then unlinks it: two breakers cannot both
 *      remove a lock, and none removes a fresh one.
 *  Everything else is left to 'mailvault unlock', which shows the holder.
 */
#include "repo_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"

#define LOCK_MAX 4096

/* The kernel's id of this boot (a /proc file: its size reads as 0, so
 * it is read with stdio). */
static void boot_id(char *out, size_t n)
{
	FILE *fp = fopen("/proc/sys/kernel/random/boot_id", "re");

	out[0] = '\0';
	if (!fp)
		return;
	if (!fgets(out, (int)n, fp))
		out[0] = '\0';
	out[strcspn(out, "\n")] = '\0';
	fclose(fp);
}

static void lock_parse(char *text, struct repo_lock_info *li)
{
	char *p, *save = NULL;

	for (p = strtok_r(text, "\n", &save); p;
	     p = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(p, "host=", 5))
			snprintf(li->host, sizeof(li->host), "%s", p + 5);
		else if (!strncmp(p, "pid=", 4))
			li->pid = atoll(p + 4);
		else if (!strncmp(p, "time=", 5))
			li->time = atoll(p + 5);
		else if (!strncmp(p, "boot=", 5))
			snprintf(li->boot, sizeof(li->boot), "%s", p + 5);
		else if (!strncmp(p, "token=", 6))
			snprintf(li->token, sizeof(li->token), "%s", p + 6);
	}
}

/* Judge the holder from this machine (rule 3, but the flock). */
static void lock_judge(struct repo_lock_info *li, bool remote)
{
	char host[256] = "", boot[40];

	gethostname(host, sizeof(host) - 1);
	boot_id(boot, sizeof(boot));
	li->remote = remote;
	li->this_machine = !strcmp(li->host, host) && li->boot[0] &&
			   !strcmp(li->boot, boot);
	li->alive = false;
	li->gone = false;
	if (!li->this_machine || li->pid <= 0)
		return;
	if (kill((pid_t)li->pid, 0) == 0 || errno != ESRCH)
		li->alive = true;
	else
		li->gone = !remote;
}

/* Read and judge the lock.  A local lock is read with its own open(): the
 * local backend keeps read descriptors open, and one of a lock file that
 * was removed and created again would show the old content.  (The sftp
 * backend's stat, which backend_read_all does first, drops a cached
 * handle of a replaced file.) */
static int lock_read_local(const char *root, char **out, struct mv_err *err)
{
	char path[PATH_MAX], *text;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/lock", root);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT
			       ? -ENOENT
			       : mv_err_set(err, -errno, "cannot read '%s': %s",
					    path, strerror(errno));
	text = malloc(LOCK_MAX + 1);
	n = text ? read(fd, text, LOCK_MAX) : -1;
	close(fd);
	if (n < 0) {
		free(text);
		return mv_err_set(err, -EIO, "cannot read '%s'", path);
	}
	text[n] = '\0';
	*out = text;
	return 0;
}

/* Read and judge the lock.  A local lock is read with its own open(): the
 * local backend keeps read descriptors open, and one of a lock file that
 * was removed and created again would show the old content.  (The sftp
 * backend's stat, which backend_read_all does first, drops a cached
 * handle of a replaced file.) */
static int lock_read(struct backend *be, bool remote, struct repo_lock_info *li,
		     struct mv_err *err)
{
	const char *root = be->ops->local_root(be);
	char *text = NULL;
	void *buf = NULL;
	size_t len;
	int rc;

	memset(li, 0, sizeof(*li));
	snprintf(li->host, sizeof(li->host), "?");
	if (root) {
		rc = lock_read_local(root, &text, err);
		buf = text;
	} else {
		rc = backend_read_all(be, "lock", LOCK_MAX, &buf, &len, err);
	}
	if (rc)
		return rc;
	lock_parse(buf, li);
	free(buf);
	lock_judge(li, remote);
	return 0;
}

void repo_lock_describe(const struct repo_lock_info *li, char *out, size_t n)
{
	char when[32] = "?";
	struct tm tm;
	time_t t = (time_t)li->time;

	if (li->time > 0 && gmtime_r(&t, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	snprintf(out, n, "pid %lld on host '%s' since %s (%lld s ago)", li->pid,
		 li->host, when,
		 li->time > 0 ? (long long)time(NULL) - li->time : 0LL);
}

/* Remove the lock if it is still the one seen (same token), holding its
 * flock on a local repository (rule 3).  0, -ESTALE when the lock
 * changed, -EBUSY when a process holds its flock (it is running). */
static int lock_remove_seen(struct backend *be,
			    const struct repo_lock_info *seen,
			    struct mv_err *err)
{
	const char *root = be->ops->local_root(be);
	struct repo_lock_info now;
	char path[PATH_MAX], buf[LOCK_MAX + 1];
	struct stat a, b;
	ssize_t n;
	int fd, rc;

	if (!root) {
		rc = lock_read(be, true, &now, NULL);
		if (rc == -ENOENT)
			return 0;
		if (rc || strcmp(now.token, seen->token))
			return -ESTALE;
		rc = be->ops->remove(be, "lock", err);
		return rc == -ENOENT ? 0 : rc;
	}
	snprintf(path, sizeof(path), "%s/lock", root);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT
			       ? 0
			       : mv_err_set(err, -errno, "cannot open '%s': %s",
					    path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto out;
	}
	n = pread(fd, buf, LOCK_MAX, 0);
	if (n < 0) {
		rc = -errno;
		goto out;
	}
	buf[n] = '\0';
	memset(&now, 0, sizeof(now));
	lock_parse(buf, &now);
	rc = -ESTALE;
	if (strcmp(now.token, seen->token) || now.pid != seen->pid ||
	    strcmp(now.host, seen->host) || fstat(fd, &a) < 0 ||
	    stat(path, &b) < 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev)
		goto out;
	rc = 0;
	if (unlink(path) < 0)
		rc = errno == ENOENT
			     ? 0
			     : mv_err_set(err, -errno, "cannot remove '%s': %s",
					  path, strerror(errno));
	else
		mv_fsync_dir(root);
out:
	close(fd); /* drops the flock */
	return rc;
}

/* Keep a flock on our own lock file for as long as we hold it: a local
 * breaker that cannot take it knows we are alive, whatever our pid
 * became. */
static void lock_hold(struct repo *r)
{
	const char *root = r->be->ops->local_root(r->be);
	char path[PATH_MAX];

	r->lock_fd = -1;
	if (!root)
		return;
	snprintf(path, sizeof(path), "%s/lock", root);
	r->lock_fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (r->lock_fd >= 0 && flock(r->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		close(r->lock_fd);
		r->lock_fd = -1;
	}
}

int repo_lock_take(struct repo *r, bool wait, struct mv_err *err)
{
	bool remote = !r->be->ops->local_root(r->be);
	char body[512], host[256] = "", boot[40], who[400];
	struct repo_lock_info li;
	uint8_t tok[16];
	int rc, len;

	gethostname(host, sizeof(host) - 1);
	boot_id(boot, sizeof(boot));
	rc = repo_random_bytes(tok, sizeof(tok), err);
	if (rc)
		return rc;
	mv_hex(tok, sizeof(tok), r->lock_token);
	len = snprintf(body, sizeof(body),
		       "host=%s\npid=%d\ntime=%lld\nboot=%s\ntoken=%s\n", host,
		       (int)getpid(), (long long)time(NULL), boot,
		       r->lock_token);
	for (;;) {
		rc = r->be->ops->create_excl(r->be, "lock", body, (size_t)len,
					     err);
		if (rc != -EEXIST)
			break;
		rc = lock_read(r->be, remote, &li, NULL);
		if (rc == -ENOENT)
			continue; /* released meanwhile: try again */
		if (!rc && li.gone) {
			rc = lock_remove_seen(r->be, &li, NULL);
			if (!rc || rc == -ESTALE)
				continue; /* broken, or changed: look again */
		}
		if (!wait) {
			repo_lock_describe(&li, who, sizeof(who));
			return mv_err_set(
				err, -EBUSY,
				"repository '%s' is locked by %s%s; if that "
				"process is gone, run 'mailvault unlock %s'",
				r->location, who,
				li.alive ? ", which is running" : "",
				r->location);
		}
		sleep(1);
	}
	if (rc)
		return rc;
	r->locked = true;
	lock_hold(r);
	return 0;
}

void repo_lock_release(struct repo *r)
{
	struct repo_lock_info li;

	if (!r->locked)
		return;
	/* rule 1: remove only our own lock */
	if (!lock_read(r->be, !r->be->ops->local_root(r->be), &li, NULL) &&
	    !strcmp(li.token, r->lock_token)) {
		if (r->lock_fd >= 0) {
			const char *root = r->be->ops->local_root(r->be);
			char path[PATH_MAX];

			snprintf(path, sizeof(path), "%s/lock", root);
			if (unlink(path) == 0)
				mv_fsync_dir(root);
		} else {
			r->be->ops->remove(r->be, "lock", NULL);
		}
	}
	if (r->lock_fd >= 0)
		close(r->lock_fd);
	r->lock_fd = -1;
	r->locked = false;
}

/* ---- mailvault unlock ------------------------------------------------ */

int repo_lock_inspect(const char *location, struct repo_lock_info *out,
		      struct mv_err *err)
{
	struct backend *be = NULL;
	uint64_t size;
	int rc;

	rc = backend_open(location, false, &be, err);
	if (rc)
		return rc;
	if (be->ops->stat(be, "config", &size, NULL, NULL)) {
		rc = mv_err_set(err, -ENOENT,
				"'%s' is not a mailvault repository (no "
				"config)",
				location);
		goto out;
	}
	rc = lock_read(be, !be->ops->local_root(be), out, err);
	if (rc == -ENOENT)
		mv_err_clear(err);
out:
	backend_close(be);
	return rc;
}

int repo_lock_break(const char *location, const struct repo_lock_info *seen,
		    struct mv_err *err)
{
	struct backend *be = NULL;
	int rc;

	rc = backend_open(location, false, &be, err);
	if (rc)
		return rc;
	rc = lock_remove_seen(be, seen, err);
	if (rc == -ESTALE)
		rc = mv_err_set(err, rc,
				"the lock of '%s' changed while it was "
				"shown; nothing was removed",
				location);
	else if (rc == -EBUSY)
		rc = mv_err_set(err, rc,
				"the lock of '%s' is held by a running "
				"process; nothing was removed",
				location);
	else if (rc)
		mv_err_set(err, rc, "cannot remove the lock of '%s': %s",
			   location, strerror(-rc));
	backend_close(be);
	return rc;
}
