/*
 * sftp_walk: walk a remote directory over SFTP for ssh:// backup sources
 * (see include/sftp.h).  Depth first, names sorted bytewise in each
 * directory, so two walks of the same tree give the same order.
 */
#include "sftp.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libssh2.h>
#include <libssh2_sftp.h>

#include "remote_int.h"
#include "ssh.h"

#define WALK_MAX_DEPTH 256

struct sftp_walk {
	struct ssh_session *ss;	      /* the session */
	LIBSSH2_SFTP *sftp;	      /* its SFTP channel */
	char root[PATH_MAX];	      /* remote root */
	char abs[PATH_MAX];	      /* remote path of the current entry */
	const struct sftp_entry *cur; /* entry given to the callback */
	LIBSSH2_SFTP_HANDLE *file;    /* open content of cur, or NULL */
	bool file_eof;		      /* the content has been read */
	sftp_walk_fn fn;	      /* the caller's callback */
	void *arg;		      /* its argument */
};

struct walk_item {
	char *name;
	LIBSSH2_SFTP_ATTRIBUTES at;
};

static int walk_fail(struct sftp_walk *w, const char *verb, const char *path,
		     struct mv_err *err)
{
	bool lost = false;
	int rc = remote_sftp_errno(w->ss, w->sftp, &lost);

	return mv_err_set(err, rc, "cannot %s '%s' on '%s': %s", verb, path,
			  ssh_session_name(w->ss),
			  remote_sftp_strerror(w->ss, w->sftp));
}

int sftp_walk_read(struct sftp_walk *w, void *buf, size_t len, size_t *out_n,
		   struct mv_err *err)
{
	ssize_t n;

	if (!w->cur || !LIBSSH2_SFTP_S_ISREG(w->cur->mode))
		return mv_err_set(err, -EINVAL, "'%s' is not a regular file",
				  w->abs);
	if (w->file_eof) {
		*out_n = 0;
		return 0;
	}
	if (!w->file) {
		w->file =
			libssh2_sftp_open(w->sftp, w->abs, LIBSSH2_FXF_READ, 0);
		if (!w->file)
			return walk_fail(w, "open", w->abs, err);
	}
	n = libssh2_sftp_read(w->file, buf, len);
	if (n < 0)
		return walk_fail(w, "read", w->abs, err);
	if (n == 0)
		w->file_eof = true;
	*out_n = (size_t)n;
	return 0;
}

static void fill_entry(struct sftp_entry *e, const char *rel,
		       const LIBSSH2_SFTP_ATTRIBUTES *at)
{
	memset(e, 0, sizeof(*e));
	e->path = rel;
	if (at->flags & LIBSSH2_SFTP_ATTR_PERMISSIONS)
		e->mode = (uint32_t)at->permissions;
	if (at->flags & LIBSSH2_SFTP_ATTR_UIDGID) {
		e->uid = (uint32_t)at->uid;
		e->gid = (uint32_t)at->gid;
	}
	if (at->flags & LIBSSH2_SFTP_ATTR_SIZE)
		e->size = at->filesize;
	if (at->flags & LIBSSH2_SFTP_ATTR_ACMODTIME) {
		e->mtime_ns = (int64_t)at->mtime * 1000000000;
		e->atime_ns = (int64_t)at->atime * 1000000000;
	}
}

/* Give one entry to the callback; closes its content afterwards. */
static int visit(struct sftp_walk *w, const char *rel,
		 const LIBSSH2_SFTP_ATTRIBUTES *at, struct mv_err *err)
{
	struct sftp_entry e;
	char target[PATH_MAX];
	int rc;

	fill_entry(&e, rel, at);
	if (LIBSSH2_SFTP_S_ISLNK(e.mode)) {
		int n = libssh2_sftp_readlink(w->sftp, w->abs, target,
					      sizeof(target) - 1);

		if (n < 0)
			return walk_fail(w, "read link", w->abs, err);
		target[n] = '\0';
		e.link_target = target;
	}
	w->cur = &e;
	w->file = NULL;
	w->file_eof = false;
	rc = w->fn(w, &e, w->arg);
	if (w->file)
		libssh2_sftp_close_handle(w->file);
	w->file = NULL;
	w->cur = NULL;
	return rc;
}

static int cmp_items(const void *a, const void *b)
{
	return strcmp(((const struct walk_item *)a)->name,
		      ((const struct walk_item *)b)->name);
}

static void free_items(struct walk_item *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

/* Read a whole directory, closing it before any callback runs. */
static int read_dir(struct sftp_walk *w, const char *abs,
		    struct walk_item **out, size_t *out_n, struct mv_err *err)
{
	LIBSSH2_SFTP_HANDLE *d;
	struct walk_item *v = NULL;
	size_t n = 0, cap = 0;
	char name[1024];
	int rc = 0;

	d = libssh2_sftp_opendir(w->sftp, abs);
	if (!d)
		return walk_fail(w, "list", abs, err);
	for (;;) {
		LIBSSH2_SFTP_ATTRIBUTES at;
		int r = libssh2_sftp_readdir(d, name, sizeof(name), &at);

		if (r == 0)
			break;
		if (r < 0) {
			rc = walk_fail(w, "list", abs, err);
			break;
		}
		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		if (n == cap) {
			void *nv;

			cap = cap ? 2 * cap : 64;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				rc = mv_err_set(err, -ENOMEM, "out of memory");
				break;
			}
			v = nv;
		}
		v[n].name = strdup(name);
		if (!v[n].name) {
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			break;
		}
		v[n].at = at;
		n++;
	}
	libssh2_sftp_closedir(d);
	if (rc) {
		free_items(v, n);
		return rc;
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_items);
	*out = v;
	*out_n = n;
	return 0;
}

static int walk_dir(struct sftp_walk *w, const char *rel, int depth,
		    struct mv_err *err)
{
	struct walk_item *v = NULL;
	char abs[PATH_MAX], child[PATH_MAX];
	size_t n = 0, i;
	int rc;

	if (depth > WALK_MAX_DEPTH)
		return mv_err_set(err, -ELOOP,
				  "'%s' is nested more than %d "
				  "directories deep",
				  rel, WALK_MAX_DEPTH);
	if (snprintf(abs, sizeof(abs), "%s%s%s", w->root, *rel ? "/" : "",
		     rel) >= (int)sizeof(abs))
		return mv_err_set(err, -ENAMETOOLONG, "path too long: '%s/%s'",
				  w->root, rel);
	rc = read_dir(w, abs, &v, &n, err);
	if (rc)
		return rc;
	for (i = 0; i < n && !rc; i++) {
		if (snprintf(child, sizeof(child), "%s%s%s", rel,
			     *rel ? "/" : "",
			     v[i].name) >= (int)sizeof(child) ||
		    snprintf(w->abs, sizeof(w->abs), "%s/%s", abs, v[i].name) >=
			    (int)sizeof(w->abs)) {
			rc = mv_err_set(err, -ENAMETOOLONG,
					"path too long: "
					"'%s/%s'",
					abs, v[i].name);
			break;
		}
		rc = visit(w, child, &v[i].at, err);
		if (rc == SFTP_WALK_SKIP) {
			rc = 0;
			continue;
		}
		if (!rc && (v[i].at.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) &&
		    LIBSSH2_SFTP_S_ISDIR(v[i].at.permissions))
			rc = walk_dir(w, child, depth + 1, err);
	}
	free_items(v, n);
	return rc;
}

int sftp_walk(const char *url, const struct ssh_opts *o, sftp_walk_fn fn,
	      void *arg, struct mv_err *err)
{
	struct ssh_url u = {SSH_SCHEME_SSH, NULL, NULL, 22, NULL};
	struct sftp_walk w;
	struct ssh_opts defaults;
	LIBSSH2_SFTP_ATTRIBUTES at;
	int rc;

	memset(&w, 0, sizeof(w));
	w.fn = fn;
	w.arg = arg;
	if (!o) {
		ssh_get_default_opts(&defaults);
		o = &defaults;
	}
	rc = ssh_url_parse(url, &u, err);
	if (rc)
		return rc;
	if (u.scheme == SSH_SCHEME_SSH_EXEC) {
		rc = mv_err_set(err, -EINVAL,
				"'%s' is not a directory "
				"location (use ssh://host/path)",
				url);
		goto out;
	}
	snprintf(w.root, sizeof(w.root), "%s", u.path);
	rc = ssh_connect(&u, o, &w.ss, err);
	if (rc)
		goto out;
	w.sftp = libssh2_sftp_init(ssh_session_handle(w.ss));
	if (!w.sftp) {
		rc = mv_err_set(err, -EIO, "cannot start SFTP on '%s': %s",
				ssh_session_name(w.ss), ssh_last_error(w.ss));
		goto out;
	}
	if (libssh2_sftp_stat_ex(w.sftp, w.root, (unsigned int)strlen(w.root),
				 LIBSSH2_SFTP_LSTAT, &at)) {
		rc = walk_fail(&w, "stat", w.root, err);
		goto out;
	}
	snprintf(w.abs, sizeof(w.abs), "%s", w.root);
	rc = visit(&w, "", &at, err);
	if (rc == SFTP_WALK_SKIP) {
		rc = 0;
		goto out;
	}
	if (!rc && LIBSSH2_SFTP_S_ISDIR(at.permissions))
		rc = walk_dir(&w, "", 0, err);
out:
	if (w.sftp)
		libssh2_sftp_shutdown(w.sftp);
	ssh_close(w.ss);
	ssh_url_release(&u);
	return rc;
}
