/*
 * repo_lock: the writer locks of a repository (include/repo.h, "The
 * writer lock"; docs/LOCKING.md, docs/REMOTE.md).
 *
 * Two kinds, restic's rules:
 *  - the exclusive lock, the file 'lock' (prune, repair, rebuild-index,
 *    check, forget, config: everything that removes or rewrites);
 *  - shared locks, one object per writer, 'locks/NAME' with NAME the
 *    writer's random token (backup into a repository whose index is
 *    commit segments: each writer adds its own packs and its own segment,
 *    so any number of them run at once).
 * Each is created create-only (O_EXCL, SFTP's exclusive open, S3's
 * If-None-Match: *) and holds who wrote it and a random token:
 *
 *   host=<hostname> pid=<pid> time=<unix seconds> boot=<boot id>
 *   token=<32 hex digits>              (one key=value per line)
 *
 * An exclusive locker creates 'lock', then lists locks/: any live shared
 * lock and it removes its own again (and waits or refuses).  A shared
 * locker creates its locks/NAME, then looks for 'lock': when there is
 * one it removes its own again.  Each creates before it looks, so of two
 * that start together at least one sees the other: never both run.
 *
 * Rules:
 *  (1) Only the token's owner removes the lock on release: it re-reads
 *      the file and compares the token first, so a lock that the user
 *      broke and another writer took is left alone.  (A shared lock's
 *      name is its token: nobody else creates that name.)
 *  (2) A lock on a remote repository is never broken automatically: no
 *      client can tell whether a process on another machine (or in a
 *      container with the same hostname) is still running.
 *  (3) On a local repository a lock is broken automatically only when
 *      its holder is provably dead: same hostname AND same boot id
 *      (/proc/sys/kernel/random/boot_id; another VM with the same name,
 *      or this machine before a reboot, differs) AND its pid is gone AND
 *      no process holds the flock(2) that every local holder keeps on
 *      the file.  The breaker takes that flock itself, re-reads the file
 *      through the locked descriptor, checks that the path still names
 *      the same file, and only then unlinks it: two breakers cannot both
 *      remove a lock, and none removes a fresh one.
 *  (4) Two shared writers of one machine share the private cache (its
 *      index.db holds a write transaction for the whole session): the
 *      second one waits for, or is refused by, a flock on the cache's
 *      'writer.lock', with the first one's pid in the message.
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
#define LOCK_EXCL "lock"
#define LOCK_DIR "locks"
#define LOCK_TOKEN_LEN 32

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

/* A local lock is read with its own open(): the local backend keeps read
 * descriptors open, and one of a lock file that was removed and created
 * again would show the old content.  (The sftp backend's stat, which
 * backend_read_all does first, drops a cached handle of a replaced
 * file.) */
static int lock_read_local(const char *root, const char *name, char **out,
			   struct mv_err *err)
{
	char path[PATH_MAX], *text;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", root, name);
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

/* Read and judge the lock at name ("lock" or "locks/NAME"). */
static int lock_read(struct backend *be, const char *name, bool remote,
		     struct repo_lock_info *li, struct mv_err *err)
{
	const char *root = be->ops->local_root(be);
	char *text = NULL;
	void *buf = NULL;
	size_t len;
	int rc;

	memset(li, 0, sizeof(*li));
	snprintf(li->host, sizeof(li->host), "?");
	snprintf(li->path, sizeof(li->path), "%s", name);
	li->shared = strcmp(name, LOCK_EXCL) != 0;
	if (root) {
		rc = lock_read_local(root, name, &text, err);
		buf = text;
	} else {
		rc = backend_read_all(be, name, LOCK_MAX, &buf, &len, err);
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

static const char *lock_name(const struct repo_lock_info *li)
{
	return li->path[0] ? li->path : LOCK_EXCL;
}

/* Remove the lock if it is still the one seen (same token), holding its
 * flock on a local repository (rule 3).  0, -ESTALE when the lock
 * changed, -EBUSY when a process holds its flock (it is running). */
static int lock_remove_seen(struct backend *be,
			    const struct repo_lock_info *seen,
			    struct mv_err *err)
{
	const char *root = be->ops->local_root(be);
	const char *name = lock_name(seen);
	struct repo_lock_info now;
	char path[PATH_MAX], dir[PATH_MAX], buf[LOCK_MAX + 1];
	struct stat a, b;
	ssize_t n;
	int fd, rc;

	if (!root) {
		rc = lock_read(be, name, true, &now, NULL);
		if (rc == -ENOENT)
			return 0;
		if (rc || strcmp(now.token, seen->token))
			return -ESTALE;
		rc = be->ops->remove(be, name, err);
		return rc == -ENOENT ? 0 : rc;
	}
	snprintf(path, sizeof(path), "%s/%s", root, name);
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
	if (unlink(path) < 0) {
		rc = errno == ENOENT
			     ? 0
			     : mv_err_set(err, -errno, "cannot remove '%s': %s",
					  path, strerror(errno));
	} else {
		snprintf(dir, sizeof(dir), "%s", path);
		*strrchr(dir, '/') = '\0';
		mv_fsync_dir(dir);
	}
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
	snprintf(path, sizeof(path), "%s/%s", root, r->lock_path);
	r->lock_fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (r->lock_fd >= 0 && flock(r->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		close(r->lock_fd);
		r->lock_fd = -1;
	}
}

/* Remove a lock this process created a moment ago (it backs off). */
static void lock_drop_own(struct repo *r, const char *name)
{
	const char *root = r->be->ops->local_root(r->be);

	if (root) {
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/%s", root, name);
		unlink(path);
	} else {
		r->be->ops->remove(r->be, name, NULL);
	}
}

/* ---- the shared locks under locks/ ----------------------------------- */

struct name_list {
	char (*v)[sizeof(LOCK_DIR) + LOCK_TOKEN_LEN + 1];
	size_t n, cap;
};

static bool token_ok(const char *s)
{
	return strlen(s) == LOCK_TOKEN_LEN &&
	       strspn(s, "0123456789abcdef") == LOCK_TOKEN_LEN;
}

static int list_one(const char *name, bool is_dir, uint64_t size, void *arg)
{
	struct name_list *l = arg;

	(void)size;
	if (is_dir || !token_ok(name))
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 8;
		void *p = realloc(l->v, cap * sizeof(*l->v));

		if (!p)
			return -ENOMEM;
		l->v = p;
		l->cap = cap;
	}
	snprintf(l->v[l->n], sizeof(l->v[l->n]), "%s/%s", LOCK_DIR, name);
	l->n++;
	return 0;
}

static int shared_list(struct backend *be, struct name_list *out,
		       struct mv_err *err)
{
	int rc;

	memset(out, 0, sizeof(*out));
	rc = be->ops->list(be, LOCK_DIR, list_one, out, err);
	if (rc == -ENOENT) {
		mv_err_clear(err);
		rc = 0;
	}
	if (rc == -ENOMEM)
		rc = mv_err_set(err, rc, "out of memory");
	return rc;
}

/* A live shared lock other than ours (its description into li): 1, or
 * 0 when there is none; provably dead ones are removed on the way. */
static int shared_conflict(struct repo *r, bool remote,
			   struct repo_lock_info *li, struct mv_err *err)
{
	struct name_list l;
	size_t i;
	int rc, found = 0;

	rc = shared_list(r->be, &l, err);
	if (rc)
		return rc;
	for (i = 0; i < l.n && !found; i++) {
		if (!strcmp(l.v[i], r->lock_path))
			continue;
		rc = lock_read(r->be, l.v[i], remote, li, NULL);
		if (rc == -ENOENT)
			continue; /* released meanwhile */
		if (!rc && li->gone) {
			rc = lock_remove_seen(r->be, li, NULL);
			if (!rc)
				continue;
		}
		found = 1;
	}
	free(l.v);
	return found;
}

/* ---- the cache of this machine (rule 4) ------------------------------ */

/* Our pid into the cache's writer.lock, for the message a second writer
 * of this machine gives (nothing depends on it). */
static bool note_pid(int fd)
{
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());

	return ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) == n;
}

static int cache_lock(struct repo *r, bool wait, struct mv_err *err)
{
	char dir[PATH_MAX], path[PATH_MAX + 16], pid[32];
	ssize_t n;
	int fd, rc;

	rc = repo_cache_dir(&r->cfg, dir, sizeof(dir), err);
	if (rc)
		return rc;
	snprintf(path, sizeof(path), "%s/writer.lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return mv_err_set(err, -errno, "cannot open '%s': %s", path,
				  strerror(errno));
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK) {
			rc = mv_err_set(err, -errno, "cannot lock '%s': %s",
					path, strerror(errno));
			close(fd);
			return rc;
		}
		if (!wait) {
			n = pread(fd, pid, sizeof(pid) - 1, 0);
			pid[n > 0 ? n : 0] = '\0';
			pid[strcspn(pid, "\n")] = '\0';
			close(fd);
			return mv_err_set(
				err, -EBUSY,
				"repository '%s' is locked by pid %s on this "
				"machine, which writes to it through the same "
				"cache '%s'; wait for it (--wait)",
				r->location, pid[0] ? pid : "?", dir);
		}
		sleep(1);
	}
	note_pid(fd);
	r->cache_lock_fd = fd;
	return 0;
}

/* ---- taking and giving back ------------------------------------------ */

/* One try: 0 (taken), -EAGAIN (look again at once), -EBUSY (held: the
 * holder in li) or an error. */
static int take_exclusive(struct repo *r, bool remote, const char *body,
			  size_t len, struct repo_lock_info *li,
			  struct mv_err *err)
{
	int rc;

	rc = r->be->ops->create_excl(r->be, LOCK_EXCL, body, len, err);
	if (rc == -EEXIST) {
		rc = lock_read(r->be, LOCK_EXCL, remote, li, NULL);
		if (rc == -ENOENT)
			return -EAGAIN; /* released meanwhile: try again */
		if (!rc && li->gone) {
			rc = lock_remove_seen(r->be, li, NULL);
			if (!rc || rc == -ESTALE)
				return -EAGAIN; /* broken, or changed */
		}
		return -EBUSY;
	}
	if (rc)
		return rc;
	rc = shared_conflict(r, remote, li, err);
	if (rc) {
		lock_drop_own(r, LOCK_EXCL);
		return rc < 0 ? rc : -EBUSY;
	}
	return 0;
}

static int take_shared(struct repo *r, bool remote, const char *body,
		       size_t len, struct repo_lock_info *li,
		       struct mv_err *err)
{
	int rc;

	rc = r->be->ops->create_excl(r->be, r->lock_path, body, len, err);
	if (rc) {
		/* no locks/ yet (a repository made before shared locks):
		 * make it and try once more (the name is random: never
		 * taken) */
		mv_err_clear(err);
		r->be->ops->mkdir(r->be, LOCK_DIR, NULL);
		rc = r->be->ops->create_excl(r->be, r->lock_path, body, len,
					     err);
	}
	if (rc)
		return rc;
	for (;;) {
		rc = lock_read(r->be, LOCK_EXCL, remote, li, NULL);
		if (rc == -ENOENT)
			return 0;
		if (!rc && li->gone) {
			rc = lock_remove_seen(r->be, li, NULL);
			if (!rc || rc == -ESTALE)
				continue;
		}
		lock_drop_own(r, r->lock_path);
		return -EBUSY;
	}
}

int repo_lock_take(struct repo *r, bool wait, bool shared, struct mv_err *err)
{
	bool remote = !r->be->ops->local_root(r->be);
	char body[512], host[256] = "", boot[40], who[400];
	struct repo_lock_info li;
	uint8_t tok[16];
	int rc, len;

	if (shared) {
		rc = cache_lock(r, wait, err);
		if (rc)
			return rc;
	}
	gethostname(host, sizeof(host) - 1);
	boot_id(boot, sizeof(boot));
	rc = repo_random_bytes(tok, sizeof(tok), err);
	if (rc)
		goto fail;
	mv_hex(tok, sizeof(tok), r->lock_token);
	if (shared)
		snprintf(r->lock_path, sizeof(r->lock_path), "%s/%s", LOCK_DIR,
			 r->lock_token);
	else
		snprintf(r->lock_path, sizeof(r->lock_path), "%s", LOCK_EXCL);
	r->lock_shared = shared;
	len = snprintf(body, sizeof(body),
		       "host=%s\npid=%d\ntime=%lld\nboot=%s\ntoken=%s\n", host,
		       (int)getpid(), (long long)time(NULL), boot,
		       r->lock_token);
	for (;;) {
		memset(&li, 0, sizeof(li));
		rc = shared ? take_shared(r, remote, body, (size_t)len, &li,
					  err)
			    : take_exclusive(r, remote, body, (size_t)len, &li,
					     err);
		if (rc == -EAGAIN)
			continue;
		if (rc != -EBUSY)
			break;
		if (!wait) {
			repo_lock_describe(&li, who, sizeof(who));
			rc = mv_err_set(
				err, -EBUSY,
				"repository '%s' is locked by %s%s%s; if that "
				"process is gone, run 'mailvault unlock %s'",
				r->location, who,
				li.alive ? ", which is running" : "",
				li.shared ? " (a shared lock: a backup is "
					    "writing; prune, forget and "
					    "repair wait for it with --wait)"
					  : "",
				r->location);
			goto fail;
		}
		sleep(1);
	}
	if (rc)
		goto fail;
	r->locked = true;
	lock_hold(r);
	return 0;
fail:
	if (r->cache_lock_fd >= 0)
		close(r->cache_lock_fd);
	r->cache_lock_fd = -1;
	return rc;
}

void repo_lock_release(struct repo *r)
{
	struct repo_lock_info li;

	if (!r->locked)
		return;
	/* rule 1: remove only our own lock */
	if (!lock_read(r->be, r->lock_path, !r->be->ops->local_root(r->be), &li,
		       NULL) &&
	    !strcmp(li.token, r->lock_token)) {
		if (r->lock_fd >= 0) {
			const char *root = r->be->ops->local_root(r->be);
			char path[PATH_MAX], dir[PATH_MAX];

			snprintf(path, sizeof(path), "%s/%s", root,
				 r->lock_path);
			snprintf(dir, sizeof(dir), "%s", path);
			*strrchr(dir, '/') = '\0';
			if (unlink(path) == 0)
				mv_fsync_dir(dir);
		} else {
			r->be->ops->remove(r->be, r->lock_path, NULL);
		}
	}
	if (r->lock_fd >= 0)
		close(r->lock_fd);
	r->lock_fd = -1;
	if (r->cache_lock_fd >= 0)
		close(r->cache_lock_fd);
	r->cache_lock_fd = -1;
	r->locked = false;
}

bool repo_lock_is_shared(const struct repo *r)
{
	return r->locked && r->lock_shared;
}

/* ---- mailvault unlock ------------------------------------------------ */

static int open_repo_backend(const char *location, struct backend **out,
			     struct mv_err *err)
{
	uint64_t size;
	int rc;

	rc = backend_open(location, false, out, err);
	if (rc)
		return rc;
	if ((*out)->ops->stat(*out, "config", &size, NULL, NULL)) {
		backend_close(*out);
		*out = NULL;
		return mv_err_set(err, -ENOENT,
				  "'%s' is not a mailvault repository (no "
				  "config)",
				  location);
	}
	return 0;
}

int repo_lock_inspect(const char *location, struct repo_lock_info *out,
		      struct mv_err *err)
{
	struct backend *be = NULL;
	int rc;

	rc = open_repo_backend(location, &be, err);
	if (rc)
		return rc;
	rc = lock_read(be, LOCK_EXCL, !be->ops->local_root(be), out, err);
	if (rc == -ENOENT)
		mv_err_clear(err);
	backend_close(be);
	return rc;
}

int repo_lock_list(const char *location, struct repo_lock_info **out,
		   size_t *out_n, struct mv_err *err)
{
	struct backend *be = NULL;
	struct repo_lock_info *v = NULL;
	struct name_list l = {NULL, 0, 0};
	size_t i, n = 0;
	bool remote;
	int rc;

	rc = open_repo_backend(location, &be, err);
	if (rc)
		return rc;
	remote = !be->ops->local_root(be);
	rc = shared_list(be, &l, err);
	if (rc)
		goto out;
	v = calloc(l.n + 1, sizeof(*v));
	if (!v) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	rc = lock_read(be, LOCK_EXCL, remote, &v[n], err);
	if (!rc)
		n++;
	for (i = 0; (!rc || rc == -ENOENT) && i < l.n; i++) {
		mv_err_clear(err);
		rc = lock_read(be, l.v[i], remote, &v[n], err);
		if (!rc)
			n++;
	}
	if (rc == -ENOENT) {
		mv_err_clear(err);
		rc = 0;
	}
out:
	free(l.v);
	backend_close(be);
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	*out_n = n;
	return 0;
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
