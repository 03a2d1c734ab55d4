/*
 * fs_ops: the FUSE low-level operations table and the mount's life.  Each
 * handler is an adapter: it calls fs_do_<op>() (fs_core.c), which returns
 * 0 or -errno, and replies exactly once.  Every modifying operation
 * replies EROFS (the mount is also made read-only, so the kernel mostly
 * refuses them itself).
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "repo.h"

#define IO_MAX ((unsigned)1 << 20) /* max_read, max_pages: 1 MiB */
#define FS_MALLOC_ARENAS 2

/* Each worker thread keeps one read vector (6 KiB, and the buffer of
 * its direct reads) for its life. */
static pthread_key_t iov_key;
static pthread_once_t iov_once = PTHREAD_ONCE_INIT;

static void iov_free(void *p)
{
	fs_iov_free(p);
}

static void iov_key_make(void)
{
	pthread_key_create(&iov_key, iov_free);
}

static struct fs_iov *thread_iov(void)
{
	struct fs_iov *v;

	pthread_once(&iov_once, iov_key_make);
	v = pthread_getspecific(iov_key);
	if (!v) {
		v = malloc(sizeof(*v));
		if (v)
			fs_iov_init(v);
		if (v && pthread_setspecific(iov_key, v)) {
			fs_iov_free(v);
			v = NULL;
		}
	}
	return v;
}

static struct fs *req_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;
	/* Symlink targets cached: "latest" gets a new inode when its
	 * target changes (fs_inode.c), other links never change; without
	 * it every path through "latest" costs a READLINK.  Readdirplus
	 * always, not auto: the kernel's auto mode lists a large directory
	 * with plain readdir after the first batch and then looks up every
	 * name; fs_reader_listing() decides what an entry carries. */
	unsigned want = FUSE_CAP_READDIRPLUS | FUSE_CAP_ASYNC_READ |
			FUSE_CAP_PARALLEL_DIROPS | FUSE_CAP_CACHE_SYMLINKS;

	if (fs->opts.default_permissions)
		want |= FUSE_CAP_POSIX_ACL;
	conn->want |= want & conn->capable;
	/* libfuse turns auto on by default */
	conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO;
	/* Open and release are two round trips per file of a restore,
	 * for nothing: the state of a read is found by inode instead
	 * (fs_fh_get).  Kernels that can skip them say so. */
	fs->no_open = (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) != 0;
	/* The same for directories: opendir and releasedir are half the
	 * requests of a find.  The kernel then caches every listing; the
	 * top directories, whose listings change, change their mtime with
	 * them (see top_stat), and AUTO_INVAL_DATA makes the kernel check
	 * it before using a cached listing. */
	fs->no_opendir = (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) &&
			 (conn->want & FUSE_CAP_AUTO_INVAL_DATA);
	/* libfuse derives max_pages from max_write */
	conn->max_write = IO_MAX;
	conn->max_read = IO_MAX; /* must match -o max_read */
	conn->max_readahead = IO_MAX;
	conn->time_gran = 1;
}

/* Drop the kernel's cached listing of directory ino (fs->inval_dir).  Safe
 * inside a request: listings are filled after their reply, never while
 * the kernel waits for this process. */
static void inval_dir(void *arg, uint64_t ino)
{
	fuse_lowlevel_notify_inval_inode(arg, ino, 0, 0);
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	int rc = fs_do_lookup_by(req_fs(req), (int)fuse_req_ctx(req)->pid,
				 parent, name, &e);

	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_entry(req, &e);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fs_do_forget(req_fs(req), ino, nlookup);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	size_t i;

	for (i = 0; i < count; i++)
		fs_do_forget(req_fs(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct stat st;
	double timeout = 0;
	int rc = fs_do_getattr(req_fs(req), ino, &st, &timeout);

	(void)fi;
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, timeout);
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char *target = NULL;
	int rc = fs_do_readlink(req_fs(req), ino, &target);

	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_readlink(req, target);
	free(target);
}

static void fs_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs_dh *dh = NULL;
	int rc;

	if (req_fs(req)->no_opendir) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	rc = fs_do_opendir(req_fs(req), ino, &dh);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)dh;
	/* directories of snapshots never change */
	fi->cache_readdir = dh->t != NULL;
	fi->keep_cache = dh->t != NULL;
	if (fuse_reply_open(req, fi))
		fs_do_releasedir(req_fs(req), dh);
}

struct dirbuf {
	fuse_req_t req;
	bool plus;
	char *buf;
	size_t size, used;
};

static int dirbuf_emit(void *arg, const char *name,
		       const struct fuse_entry_param *e, off_t next)
{
	struct dirbuf *d = arg;
	size_t rem = d->size - d->used, n;

	if (d->plus)
		n = fuse_add_direntry_plus(d->req, d->buf + d->used, rem, name,
					   e, next);
	else
		n = fuse_add_direntry(d->req, d->buf + d->used, rem, name,
				      &e->attr, next);
	if (n > rem)
		return 1;
	d->used += n;
	return 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct dirbuf d = {req, plus, malloc(size ? size : 1), size, 0};
	struct fs_dh *dh = (struct fs_dh *)(uintptr_t)fi->fh, *own = NULL;
	struct fs *fs = req_fs(req); /* req is gone once replied to */
	int rc = 0;

	if (!d.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* without opendir (no_opendir) each call finds its directory by
	 * inode: a cached tree, so cheap; offsets are entry indexes */
	if (!dh) {
		rc = fs_do_opendir(fs, ino, &own);
		dh = own;
	}
	if (!rc)
		rc = fs_do_readdir(
			fs, dh, off,
			plus ? fs_reader_listing(
				       fs, (int)fuse_req_ctx(req)->pid, dh, off)
			     : FS_LIST_NAMES,
			dirbuf_emit, &d);
	/* entries already packed are returned even after an error */
	if (rc && d.used == 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, d.buf, d.used);
	fs_do_releasedir(fs, own);
	free(d.buf);
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	(void)ino;
	fs_do_releasedir(req_fs(req), (struct fs_dh *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_fh *fh = NULL;
	struct fs *fs = req_fs(req);
	int rc;

	if (fs->no_open) {
		/* after this answer the kernel opens files by itself
		 * (keep_cache on, no release): refuse what it would have
		 * refused, the mount is read-only anyway */
		if ((fi->flags & O_ACCMODE) != O_RDONLY ||
		    (fi->flags & O_TRUNC))
			fuse_reply_err(req, EROFS);
		else
			fuse_reply_err(req, ENOSYS);
		return;
	}
	rc = fs_do_open(fs, ino, fi->flags, &fh);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)fh;
	fi->keep_cache = 1; /* contents never change */
	fi->noflush = 1;
	if (fuse_reply_open(req, fi))
		fs_do_release(req_fs(req), fh);
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs_fh *fh = (struct fs_fh *)(uintptr_t)fi->fh;
	struct fs *fs = req_fs(req);
	struct fs_iov *v = thread_iov();
	bool shared = !fh;
	char *buf = NULL;
	size_t len = 0;
	int rc;

	if (!v) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (shared) { /* no open (fs->no_open): find it by inode */
		rc = fs_fh_get(fs, ino, &fh);
		if (rc) {
			fuse_reply_err(req, -rc);
			return;
		}
	}
	rc = fs_do_read_iov(fs, fh, size, off, v);
	if (rc) {
		fuse_reply_err(req, -rc);
		goto out;
	}
	if (v->len == size || off + (off_t)v->len >= (off_t)fh->size) {
		/* straight from the cached chunks to the kernel */
		fuse_reply_iov(req, v->iov, (int)v->niov);
		fs_iov_release(fs, v);
		goto out;
	}
	/* more pieces than one vector holds (tiny chunks, many holes) */
	fs_iov_release(fs, v);
	buf = malloc(size);
	rc = buf ? fs_do_read(fs, fh, buf, size, off, &len) : -ENOMEM;
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, buf, len);
	free(buf);
out:
	if (shared)
		fs_fh_put(fs, fh);
}

static void fs_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	(void)ino;
	fs_do_release(req_fs(req), (struct fs_fh *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;
	int rc = fs_do_statfs(req_fs(req), &sv);

	(void)ino;
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_statfs(req, &sv);
}

static void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	size_t len = 0;
	int rc;

	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = fs_do_getxattr(req_fs(req), ino, name, buf, size, &len);
	if (rc)
		fuse_reply_err(req, -rc);
	else if (!size)
		fuse_reply_xattr(req, len);
	else
		fuse_reply_buf(req, buf, len);
	free(buf);
}

static void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	size_t len = 0;
	int rc;

	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = fs_do_listxattr(req_fs(req), ino, buf, size, &len);
	if (rc)
		fuse_reply_err(req, -rc);
	else if (!size)
		fuse_reply_xattr(req, len);
	else
		fuse_reply_buf(req, buf, len);
	free(buf);
}

static void fs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	struct fs_fh *fh = (struct fs_fh *)(uintptr_t)fi->fh;
	struct fs *fs = req_fs(req);
	off_t res = 0;
	int rc = fh ? 0 : fs_fh_get(fs, ino, &fh);

	if (!rc)
		rc = fs_do_lseek(fs, fh, off, whence, &res);
	if (fh && !fi->fh)
		fs_fh_put(fs, fh);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_lseek(req, res);
}

/* ---- everything that would modify: EROFS ------------------------------ */

static void ro_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	(void)ino, (void)attr, (void)to_set, (void)fi;
	fuse_reply_err(req, EROFS);
}

static void ro_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	(void)parent, (void)name, (void)mode, (void)rdev;
	fuse_reply_err(req, EROFS);
}

static void ro_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	(void)parent, (void)name, (void)mode;
	fuse_reply_err(req, EROFS);
}

static void ro_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent, (void)name;
	fuse_reply_err(req, EROFS);
}

static void ro_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	(void)link, (void)parent, (void)name;
	fuse_reply_err(req, EROFS);
}

static void ro_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	(void)parent, (void)name, (void)newparent, (void)newname, (void)flags;
	fuse_reply_err(req, EROFS);
}

static void ro_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	(void)ino, (void)newparent, (void)newname;
	fuse_reply_err(req, EROFS);
}

static void ro_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)ino, (void)buf, (void)size, (void)off, (void)fi;
	fuse_reply_err(req, EROFS);
}

static void ro_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	(void)ino, (void)name, (void)value, (void)size, (void)flags;
	fuse_reply_err(req, EROFS);
}

static void ro_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino, (void)name;
	fuse_reply_err(req, EROFS);
}

static void ro_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	(void)parent, (void)name, (void)mode, (void)fi;
	fuse_reply_err(req, EROFS);
}

static void ro_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
			 off_t length, struct fuse_file_info *fi)
{
	(void)ino, (void)mode, (void)offset, (void)length, (void)fi;
	fuse_reply_err(req, EROFS);
}

static const struct fuse_lowlevel_ops fs_ops = {
	.init = fs_init,
	.lookup = fs_lookup,
	.forget = fs_forget,
	.getattr = fs_getattr,
	.setattr = ro_setattr,
	.readlink = fs_readlink,
	.mknod = ro_mknod,
	.mkdir = ro_mkdir,
	.unlink = ro_unlink,
	.rmdir = ro_unlink,
	.symlink = ro_symlink,
	.rename = ro_rename,
	.link = ro_link,
	.open = fs_open,
	.read = fs_read,
	.write = ro_write,
	.release = fs_release,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.releasedir = fs_releasedir,
	.statfs = fs_statfs,
	.setxattr = ro_setxattr,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.removexattr = ro_removexattr,
	.create = ro_create,
	.forget_multi = fs_forget_multi,
	.fallocate = ro_fallocate,
	.readdirplus = fs_readdirplus,
	.lseek = fs_lseek,
};

const struct fuse_lowlevel_ops *fs_ops_table(void)
{
	return &fs_ops;
}

/* ---- the mount's life -------------------------------------------------- */

static void log_stderr(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "mailvault: %s\n", msg);
}

static void log_syslog(void *arg, const char *msg)
{
	(void)arg;
	syslog(LOG_ERR, "%s", msg);
}

/* "ro,...,fsname=mailvault:LOCATION" with ',' and '\' escaped. */
static char *mount_options(const struct fs_opts *o, const char *location)
{
	size_t n = strlen(location), i, j;
	char *esc = malloc(2 * n + 1), *out;

	if (!esc)
		return NULL;
	for (i = j = 0; i < n; i++) {
		if (location[i] == ',' || location[i] == '\\')
			esc[j++] = '\\';
		esc[j++] = location[i];
	}
	esc[j] = '\0';
	if (asprintf(&out,
		     "ro,subtype=mailvault,fsname=mailvault:%s,"
		     "max_read=%u%s%s",
		     esc, IO_MAX,
		     o->default_permissions ? ",default_permissions" : "",
		     o->allow_other ? ",allow_other" : "") < 0)
		out = NULL;
	free(esc);
	return out;
}

int fs_mount(const char *location, const char *mountpoint,
	     const struct fs_opts *o, struct mv_err *err)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config *cfg = NULL;
	struct fuse_session *se = NULL;
	struct repo *r = NULL;
	struct fs *fs = NULL;
	char *loc = NULL, *mopts = NULL;
	bool detach = !o->foreground && !o->debug, mounted = false;
	int rc;

	/* Up to 16 FUSE workers and the read-ahead threads would each get a
	 * malloc arena; chunks are allocated by one thread and freed by
	 * another, so every arena ends up holding freed cache memory.  Two
	 * arenas keep the process near its cache size (docs/MOUNT.md). */
	mallopt(M_ARENA_MAX, FS_MALLOC_ARENAS);
	/* the daemon runs in "/": keep a local path absolute */
	loc = strstr(location, "://") ? strdup(location)
				      : realpath(location, NULL);
	if (!loc) {
		rc = mv_err_set(err, -errno, "cannot open repository '%s': %s",
				location, strerror(errno));
		goto out;
	}
	rc = repo_open(loc, REPO_OPEN_READ, &r, err);
	if (rc)
		goto out;
	rc = fs_new(&fs_source_repo_ops, r, o, &fs, err);
	if (rc)
		goto out;
	fs_set_log(fs, log_stderr, NULL);
	mopts = mount_options(o, loc);
	if (!mopts || fuse_opt_add_arg(&args, "mailvault") ||
	    (o->debug && fuse_opt_add_arg(&args, "-d")) ||
	    fuse_opt_add_arg(&args, "-o") || fuse_opt_add_arg(&args, mopts)) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	se = fuse_session_new(&args, fs_ops_table(),
			      sizeof(struct fuse_lowlevel_ops), fs);
	if (!se) {
		rc = mv_err_set(err, -EINVAL, "cannot start a FUSE session");
		goto out;
	}
	fs->inval_dir = inval_dir;
	fs->inval_arg = se;
	if (fuse_set_signal_handlers(se)) {
		rc = mv_err_set(err, -EIO, "cannot set signal handlers");
		goto out_destroy;
	}
	if (fuse_session_mount(se, mountpoint)) {
		rc = mv_err_set(err, -EIO, "cannot mount on '%s'", mountpoint);
		goto out_signals;
	}
	mounted = true;
	if (detach) {
		/* the daemon keeps the repository the parent opened and
		 * validated (no second open over the network); what a
		 * fork cannot carry, SQLite's connection, is reopened */
		rc = repo_before_fork(r, err);
		if (rc)
			goto out_unmount;
		openlog("mailvault", LOG_PID, LOG_DAEMON);
		fs_set_log(fs, log_syslog, NULL);
		if (fuse_daemonize(0)) {
			rc = mv_err_set(err, -EIO, "cannot detach");
			goto out_unmount;
		}
		rc = repo_after_fork(r, err);
		if (rc)
			goto out_unmount;
	}
	rc = fs_start(fs, err);
	if (rc)
		goto out_unmount;
	cfg = fuse_loop_cfg_create();
	if (!cfg) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out_unmount;
	}
	fuse_loop_cfg_set_clone_fd(cfg, 1);
	fuse_loop_cfg_set_max_threads(cfg, 16);
	fuse_loop_cfg_set_idle_threads(cfg, 8);
	if (fuse_session_loop_mt(se, cfg))
		rc = mv_err_set(err, -EIO, "the FUSE session on '%s' failed",
				mountpoint);
	fuse_loop_cfg_destroy(cfg);
out_unmount:
	if (mounted)
		fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_destroy:
	fuse_session_destroy(se);
out:
	if (rc && detach && mounted)
		syslog(LOG_ERR, "%s", mv_err_msg(err));
	fuse_opt_free_args(&args);
	free(mopts);
	fs_free(fs);
	repo_close(r);
	free(loc);
	return rc;
}
