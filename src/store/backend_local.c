/*
 * backend_local: a repository in a local directory.  Reads use pread on
 * descriptors cached per path so FUSE threads do not reopen packs for
 * every read; writes go to "<path>.tmp", are fsynced, renamed into place,
 * and the directory is fsynced (the durability contract of backend.h).
 */
#include "backend.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define FD_CACHE_SLOTS 64

struct fd_slot {
	char *path;    /* relative path, or NULL when free */
	int fd;	       /* open read-only descriptor */
	uint64_t used; /* last use, for eviction */
};

struct local_backend {
	struct backend base;
	char *root;			      /* absolute or given root */
	pthread_mutex_t lock;		      /* guards the fd cache */
	struct fd_slot slots[FD_CACHE_SLOTS]; /* read descriptors */
	uint64_t clock;			      /* use counter */
};

struct local_file {
	struct local_backend *be;
	int fd;	     /* temporary file */
	char *tmp;   /* absolute temporary path */
	char *final; /* absolute final path */
};

static struct local_backend *to_local(struct backend *be)
{
	return (struct local_backend *)be;
}

static int abs_path(struct local_backend *lb, const char *rel, char *out,
		    size_t n, struct mv_err *err)
{
	if (snprintf(out, n, "%s/%s", lb->root, rel) >= (int)n)
		return mv_err_set(err, -ENAMETOOLONG, "path too long: '%s/%s'",
				  lb->root, rel);
	return 0;
}

/* A private descriptor for path (the caller closes it), duplicated from
 * the cache under the lock so eviction cannot close it under a reader. */
static int get_fd(struct local_backend *lb, const char *rel, struct mv_err *err)
{
	char path[PATH_MAX];
	struct fd_slot *victim = NULL;
	int fd, i, rc;

	pthread_mutex_lock(&lb->lock);
	for (i = 0; i < FD_CACHE_SLOTS; i++) {
		struct fd_slot *s = &lb->slots[i];

		if (s->path && !strcmp(s->path, rel)) {
			s->used = ++lb->clock;
			fd = fcntl(s->fd, F_DUPFD_CLOEXEC, 0);
			pthread_mutex_unlock(&lb->lock);
			if (fd < 0)
				return mv_err_set(err, -errno, "cannot dup: %s",
						  strerror(errno));
			return fd;
		}
		if (!victim || !s->path ||
		    (victim->path && s->used < victim->used))
			victim = s;
	}
	pthread_mutex_unlock(&lb->lock);
	rc = abs_path(lb, rel, path, sizeof(path), err);
	if (rc)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return mv_err_set(err, -ENOENT, "'%s' does not exist",
					  path);
		return mv_err_set(err, -errno, "cannot open '%s': %s", path,
				  strerror(errno));
	}
	pthread_mutex_lock(&lb->lock);
	/* Another thread may have raced us; keep the cache consistent. */
	for (i = 0; i < FD_CACHE_SLOTS; i++) {
		struct fd_slot *s = &lb->slots[i];

		if (s->path && !strcmp(s->path, rel)) {
			s->used = ++lb->clock;
			pthread_mutex_unlock(&lb->lock);
			return fd;
		}
	}
	if (victim->path) {
		free(victim->path);
		close(victim->fd);
	}
	victim->path = strdup(rel);
	if (!victim->path) {
		pthread_mutex_unlock(&lb->lock);
		close(fd);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	victim->fd = fd;
	victim->used = ++lb->clock;
	fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	pthread_mutex_unlock(&lb->lock);
	if (fd < 0)
		return mv_err_set(err, -errno, "cannot dup: %s",
				  strerror(errno));
	return fd;
}

static int local_read_at(struct backend *be, const char *path, uint64_t off,
			 void *buf, size_t len, size_t *out_len,
			 struct mv_err *err)
{
	struct local_backend *lb = to_local(be);
	size_t got = 0;
	int own;

	own = get_fd(lb, path, err);
	if (own < 0)
		return own;
	while (got < len) {
		ssize_t r = pread(own, (uint8_t *)buf + got, len - got,
				  (off_t)(off + got));

		if (r < 0) {
			int e = errno;

			if (e == EINTR)
				continue;
			close(own);
			return mv_err_set(err, -e,
					  "cannot read '%s/%s' at "
					  "offset %llu: %s",
					  lb->root, path,
					  (unsigned long long)(off + got),
					  strerror(e));
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	close(own);
	*out_len = got;
	return 0;
}

static int local_stat(struct backend *be, const char *path, uint64_t *out_size,
		      int64_t *out_mtime_ns, struct mv_err *err)
{
	struct local_backend *lb = to_local(be);
	char p[PATH_MAX];
	struct stat st;
	int rc;

	rc = abs_path(lb, path, p, sizeof(p), err);
	if (rc)
		return rc;
	if (stat(p, &st) < 0) {
		if (errno == ENOENT)
			return -ENOENT;
		return mv_err_set(err, -errno, "cannot stat '%s': %s", p,
				  strerror(errno));
	}
	if (out_size)
		*out_size = (uint64_t)st.st_size;
	if (out_mtime_ns)
		*out_mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 +
				st.st_mtim.tv_nsec;
	return 0;
}

static int local_list(struct backend *be, const char *dir, backend_list_fn fn,
		      void *arg, struct mv_err *err)
{
	struct local_backend *lb = to_local(be);
	char p[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int rc;

	rc = abs_path(lb, dir, p, sizeof(p), err);
	if (rc)
		return rc;
	d = opendir(p);
	if (!d) {
		if (errno == ENOENT)
			return -ENOENT;
		return mv_err_set(err, -errno, "cannot list '%s': %s", p,
				  strerror(errno));
	}
	rc = 0;
	while ((de = readdir(d))) {
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		rc = fn(de->d_name, S_ISDIR(st.st_mode), (uint64_t)st.st_size,
			arg);
		if (rc)
			break;
	}
	closedir(d);
	return rc;
}

static int local_mkdir(struct backend *be, const char *path, struct mv_err *err)
{
	struct local_backend *lb = to_local(be);
	char p[PATH_MAX];
	int rc;

	rc = abs_path(lb, path, p, sizeof(p), err);
	if (rc)
		return rc;
	if (mkdir(p, MV_REPO_DIR_MODE) < 0 && errno != EEXIST)
		return mv_err_set(err, -errno,
				  "cannot create directory '%s': "
				  "%s",
				  p, strerror(errno));
	return 0;
}

static int local_file_create(struct backend *be, const char *path,
			     struct backend_file **out, struct mv_err *err)
{
	struct local_backend *lb = to_local(be);
	struct local_file *f;
	char p[PATH_MAX];
	int rc;

	rc = abs_path(lb, path, p, sizeof(p), err);
	if (rc)
		return rc;
	f = calloc(1, sizeof(*f));
	if (!f)
		return mv_err_set(err, -ENOMEM, "out of memory");
	f->be = lb;
	f->final = strdup(p);
	if (f->final && asprintf(&f->tmp, "%s.tmp", p) < 0)
		f->tmp = NULL;
	if (!f->final || !f->tmp) {
		free(f->final);
		free(f);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		     MV_REPO_FILE_MODE);
	if (f->fd < 0) {
		rc = mv_err_set(err, -errno, "cannot create '%s': %s", f->tmp,
				strerror(errno));
		free(f->tmp);
		free(f->final);
		free(f);
		return rc;
	}
	*out = (struct backend_file *)f;
	return 0;
}

static int local_file_write(struct backend_file *bf, const void *buf,
			    size_t len, struct mv_err *err)
{
	struct local_file *f = (struct local_file *)bf;
	int rc = mv_write_full(f->fd, buf, len);

	if (rc == -ENOSPC)
		return mv_err_set(err, rc, "disk full writing '%s'", f->tmp);
	if (rc)
		return mv_err_set(err, rc, "cannot write '%s': %s", f->tmp,
				  strerror(-rc));
	return 0;
}

static void free_file(struct local_file *f)
{
	free(f->tmp);
	free(f->final);
	free(f);
}

static void local_file_abort(struct backend_file *bf)
{
	struct local_file *f = (struct local_file *)bf;

	if (!f)
		return;
	close(f->fd);
	unlink(f->tmp);
	free_file(f);
}

static int local_file_commit(struct backend_file *bf, struct mv_err *err)
{
	struct local_file *f = (struct local_file *)bf;
	char *slash;
	int rc = 0;

	if (fsync(f->fd) < 0)
		rc = mv_err_set(err, -errno, "cannot sync '%s': %s", f->tmp,
				strerror(errno));
	if (close(f->fd) < 0 && !rc)
		rc = mv_err_set(err, -errno, "cannot close '%s': %s", f->tmp,
				strerror(errno));
	f->fd = -1;
	if (!rc && rename(f->tmp, f->final) < 0)
		rc = mv_err_set(err, -errno, "cannot rename '%s': %s", f->tmp,
				strerror(errno));
	if (rc) {
		unlink(f->tmp);
		free_file(f);
		return rc;
	}
	slash = strrchr(f->final, '/');
	if (slash) {
		*slash = '\0';
		rc = mv_fsync_dir(f->final);
		if (rc)
			rc = mv_err_set(err, rc,
					"cannot sync directory '%s': "
					"%s",
					f->final, strerror(-rc));
	}
	free_file(f);
	return rc;
}

static int local_create_excl(struct backend *be, const char *path,
			     const void *buf, size_t len, struct mv_err *err)
{
	struct local_backend *lb = to_local(be);
	char p[PATH_MAX];
	int fd, rc;

	rc = abs_path(lb, path, p, sizeof(p), err);
	if (rc)
		return rc;
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		  MV_REPO_FILE_MODE);
	if (fd < 0) {
		if (errno == EEXIST)
			return -EEXIST;
		return mv_err_set(err, -errno, "cannot create '%s': %s", p,
				  strerror(errno));
	}
	rc = mv_write_full(fd, buf, len);
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc) {
		unlink(p);
		return mv_err_set(err, rc, "cannot write '%s': %s", p,
				  strerror(-rc));
	}
	return 0;
}

static int local_rename(struct backend *be, const char *from, const char *to,
			struct mv_err *err)
{
	struct local_backend *lb = to_local(be);
	char a[PATH_MAX], b[PATH_MAX];
	int rc;

	rc = abs_path(lb, from, a, sizeof(a), err);
	if (!rc)
		rc = abs_path(lb, to, b, sizeof(b), err);
	if (rc)
		return rc;
	if (rename(a, b) < 0)
		return mv_err_set(err, -errno, "cannot rename '%s' to '%s': %s",
				  a, b, strerror(errno));
	return 0;
}

static void forget_fd(struct local_backend *lb, const char *rel)
{
	int i;

	pthread_mutex_lock(&lb->lock);
	for (i = 0; i < FD_CACHE_SLOTS; i++) {
		struct fd_slot *s = &lb->slots[i];

		if (s->path && !strcmp(s->path, rel)) {
			free(s->path);
			s->path = NULL;
			close(s->fd);
		}
	}
	pthread_mutex_unlock(&lb->lock);
}

static int local_remove(struct backend *be, const char *path,
			struct mv_err *err)
{
	struct local_backend *lb = to_local(be);
	char p[PATH_MAX];
	int rc;

	rc = abs_path(lb, path, p, sizeof(p), err);
	if (rc)
		return rc;
	forget_fd(lb, path);
	/* Linux answers EISDIR for a directory; remove it if it is empty,
	 * as the sftp backend does. */
	if (unlink(p) < 0 && (errno != EISDIR || rmdir(p) < 0)) {
		if (errno == ENOENT)
			return -ENOENT;
		return mv_err_set(err, -errno, "cannot remove '%s': %s", p,
				  strerror(errno));
	}
	return 0;
}

static int local_sync_dir(struct backend *be, const char *path,
			  struct mv_err *err)
{
	struct local_backend *lb = to_local(be);
	char p[PATH_MAX];
	int rc;

	rc = abs_path(lb, path, p, sizeof(p), err);
	if (rc)
		return rc;
	rc = mv_fsync_dir(p);
	if (rc)
		return mv_err_set(err, rc, "cannot sync '%s': %s", p,
				  strerror(-rc));
	return 0;
}

static const char *local_root(struct backend *be)
{
	return to_local(be)->root;
}

static void local_close(struct backend *be)
{
	struct local_backend *lb = to_local(be);
	int i;

	for (i = 0; i < FD_CACHE_SLOTS; i++) {
		if (lb->slots[i].path) {
			free(lb->slots[i].path);
			close(lb->slots[i].fd);
		}
	}
	pthread_mutex_destroy(&lb->lock);
	free(lb->root);
	free(lb->base.url);
	free(lb);
}

static const struct backend_ops local_ops = {
	.scheme = "file",
	.read_at = local_read_at,
	.stat = local_stat,
	.list = local_list,
	.mkdir = local_mkdir,
	.file_create = local_file_create,
	.file_write = local_file_write,
	.file_commit = local_file_commit,
	.file_abort = local_file_abort,
	.create_excl = local_create_excl,
	.rename = local_rename,
	.remove = local_remove,
	.sync_dir = local_sync_dir,
	.local_root = local_root,
	.close = local_close,
};

int backend_local_open(const char *root, bool create, struct backend **out,
		       struct mv_err *err)
{
	struct local_backend *lb;
	struct stat st;
	size_t n;

	if (create) {
		int rc = mv_mkdir_p(root, MV_REPO_DIR_MODE);

		if (rc)
			return mv_err_set(err, rc, "cannot create '%s': %s",
					  root, strerror(-rc));
	}
	if (stat(root, &st) < 0)
		return mv_err_set(err, -errno,
				  "cannot open repository '%s': "
				  "%s",
				  root, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return mv_err_set(err, -ENOTDIR,
				  "repository '%s' is not a "
				  "directory",
				  root);
	/* init into an existing directory (mkdir'ed under umask 022, a NAS
	 * share): it is the repository's now.  Best effort: a root we do not
	 * own stays as it is, and check says so. */
	if (create && (st.st_mode & 077))
		(void)chmod(root, st.st_mode & MV_REPO_DIR_MODE);
	lb = calloc(1, sizeof(*lb));
	if (!lb)
		return mv_err_set(err, -ENOMEM, "out of memory");
	lb->root = strdup(root);
	lb->base.url = strdup(root);
	if (!lb->root || !lb->base.url) {
		free(lb->root);
		free(lb->base.url);
		free(lb);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	n = strlen(lb->root);
	while (n > 1 && lb->root[n - 1] == '/')
		lb->root[--n] = '\0';
	pthread_mutex_init(&lb->lock, NULL);
	lb->base.ops = &local_ops;
	*out = &lb->base;
	return 0;
}
