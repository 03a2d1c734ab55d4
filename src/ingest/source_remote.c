/*
 * source_remote: backup sources on a server reached over SSH, with no
 * mailvault and no ssh binary needed there.
 *
 *  ssh://[user@]host[:port]/path   the directory is walked over SFTP
 *                                  (sftp_walk), parents first, names
 *                                  sorted, and each file streamed into
 *                                  ingest as it is read.
 *  ssh-exec://[user@]host[:port]   a command runs on the server and its
 *                                  standard output is read as a tar
 *                                  stream by source_tar.
 *
 * The ssh-exec stream reaches source_tar through a socket pair: a copier
 * thread moves sshexec_read() output into one end while source_tar (and
 * its gzstream thread) reads the other, so the remote command, the
 * inflate and the chunking all run at once.  The copier reads the
 * command's output to its end even after tar has seen its end-of-archive
 * blocks, because only a command that has finished reports its exit
 * status; a non-zero status fails the source even when the archive was
 * complete.
 */
#include "source.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sftp.h"
#include "ssh.h"
#include "util.h"

#define READ_BLOCK (1u << 20)
#define MAX_DEPTH 260

/* ---- ssh:// -------------------------------------------------------- */

/* The parent snapshot's directory at one depth of the walk, loaded only
 * when a file below it needs the unchanged-file check. */
struct level {
	char *path;	   /* walk-relative directory path */
	struct tree *tree; /* its tree in the parent, or NULL */
	bool loaded;	   /* tree has been looked up */
};

struct rwalk {
	struct ingest *ing;
	const struct source_remote_opts *o;
	uint8_t *buf;		    /* read buffer */
	struct level lv[MAX_DEPTH]; /* lv[d]: directory at depth d */
	int64_t parent_sec;	    /* parent snapshot time, seconds */
	struct mv_err *err;	    /* where the callback reports */
};

static int depth_of(const char *path)
{
	int d = 0;

	if (!*path)
		return 0;
	for (d = 1; *path; path++)
		d += *path == '/';
	return d;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

static void level_clear(struct level *l)
{
	free(l->path);
	tree_free(l->tree);
	memset(l, 0, sizeof(*l));
}

/* The parent snapshot's tree of the directory at depth d, or NULL. */
static struct tree *level_tree(struct rwalk *w, int d)
{
	struct level *l = &w->lv[d];
	struct tree_entry top;

	if (l->loaded)
		return l->tree;
	l->loaded = true;
	if (!w->o->parent || !w->o->repo || !l->path)
		return NULL;
	if (d == 0) {
		if (tree_lookup_path(w->o->repo, &w->o->parent->root,
				     w->o->label, &top, NULL))
			return NULL;
		if (top.type == TREE_DIR &&
		    tree_load(w->o->repo, &top.subtree, &l->tree, NULL))
			l->tree = NULL;
		tree_entry_release(&top);
	} else {
		struct tree *up = level_tree(w, d - 1);
		const char *name = base_name(l->path);
		const struct tree_entry *e;

		if (!up)
			return NULL;
		e = tree_find(up, name, strlen(name));
		if (e && e->type == TREE_DIR &&
		    tree_load(w->o->repo, &e->subtree, &l->tree, NULL))
			l->tree = NULL;
	}
	return l->tree;
}

static void meta_from_entry(const struct sftp_entry *s, struct tree_entry *e)
{
	memset(e, 0, sizeof(*e));
	if (S_ISDIR(s->mode))
		e->type = TREE_DIR;
	else if (S_ISLNK(s->mode))
		e->type = TREE_LNK;
	else if (S_ISFIFO(s->mode))
		e->type = TREE_FIFO;
	else if (S_ISCHR(s->mode))
		e->type = TREE_CHR;
	else if (S_ISBLK(s->mode))
		e->type = TREE_BLK;
	else if (S_ISSOCK(s->mode))
		e->type = TREE_SOCK;
	else
		e->type = TREE_REG;
	e->mode = s->mode & 07777;
	e->uid = s->uid;
	e->gid = s->gid;
	e->mtime_sec = s->mtime_ns / 1000000000;
	e->size = e->type == TREE_REG ? s->size : 0;
	e->nlink = 1;
	if (e->type == TREE_LNK)
		e->target = (char *)(s->link_target ? s->link_target : "");
}

/* SFTP gives whole-second times and no ctime or inode, so a file counts
 * as unchanged only when size and mtime match and the mtime is older
 * than the parent backup: a file written in the second that backup ran
 * is read again. */
static const struct tree_entry *
unchanged(struct rwalk *w, int d, const char *path, const struct tree_entry *e)
{
	const struct tree_entry *old;
	struct tree *dir;
	const char *name = base_name(path);

	if (!w->o->parent || d < 1)
		return NULL;
	dir = level_tree(w, d - 1);
	if (!dir)
		return NULL;
	old = tree_find(dir, name, strlen(name));
	if (!old || old->type != TREE_REG || old->size != e->size ||
	    old->mtime_sec != e->mtime_sec || old->mtime_nsec ||
	    old->link_group || old->xform != TREE_XFORM_NONE ||
	    (!old->nchunks && old->size) || e->mtime_sec >= w->parent_sec)
		return NULL;
	return old;
}

static int read_file(struct rwalk *w, struct sftp_walk *sw, const char *path,
		     const struct tree_entry *e)
{
	size_t n = 0;
	int rc;

	/* open and read first: a file deleted since the listing (a
	 * message moved from new/ to cur/) is skipped, not an error */
	rc = sftp_walk_read(sw, w->buf, READ_BLOCK, &n, w->err);
	if (rc == -ENOENT) {
		mv_err_clear(w->err);
		return 0;
	}
	if (rc)
		return rc;
	rc = ingest_file_begin(w->ing, path, e, w->err);
	while (!rc && n) {
		rc = ingest_file_data(w->ing, w->buf, n, w->err);
		if (!rc)
			rc = sftp_walk_read(sw, w->buf, READ_BLOCK, &n, w->err);
	}
	if (!rc)
		rc = ingest_file_end(w->ing, w->err);
	return rc;
}

static int on_entry(struct sftp_walk *sw, const struct sftp_entry *s, void *arg)
{
	struct rwalk *w = arg;
	const struct tree_entry *old;
	struct tree_entry e;
	char *path = NULL;
	int d = depth_of(s->path), i, rc;

	if (d >= MAX_DEPTH)
		return mv_err_set(w->err, -ELOOP, "'%s' is nested too deep",
				  s->path);
	if (asprintf(&path, "%s%s%s", w->o->label, *s->path ? "/" : "",
		     s->path) < 0)
		return mv_err_set(w->err, -ENOMEM, "out of memory");
	meta_from_entry(s, &e);
	/* the walk goes on below an excluded directory; what it finds
	 * there is excluded with it (exclude_match sees the parents) */
	if (d > 0 && w->o->exclude &&
	    exclude_match(w->o->exclude, s->path, e.type == TREE_DIR)) {
		rc = 0;
		goto out;
	}
	if (d == 0 && e.type != TREE_DIR) {
		rc = mv_err_set(w->err, -ENOTDIR,
				"'%s' is not a directory "
				"(to back up an archive, run 'cat' with "
				"ssh-exec://)",
				w->o->url);
		goto out;
	}
	if (e.type == TREE_DIR) {
		for (i = d; i < MAX_DEPTH && (w->lv[i].path || w->lv[i].loaded);
		     i++)
			level_clear(&w->lv[i]);
		w->lv[d].path = strdup(s->path);
		if (!w->lv[d].path) {
			rc = mv_err_set(w->err, -ENOMEM, "out of memory");
			goto out;
		}
		rc = ingest_entry(w->ing, path, &e, w->err);
	} else if (e.type == TREE_REG && (old = unchanged(w, d, s->path, &e))) {
		e.nchunks = old->nchunks;
		e.chunks = old->chunks;
		e.nextents = old->nextents;
		e.extents = old->extents;
		rc = ingest_entry(w->ing, path, &e, w->err);
	} else if (e.type == TREE_REG) {
		rc = read_file(w, sw, path, &e);
	} else {
		rc = ingest_entry(w->ing, path, &e, w->err);
	}
	if (!rc)
		ingest_progress(w->ing, false);
out:
	free(path);
	return rc;
}

static int read_ssh(struct ingest *ing, const struct source_remote_opts *o,
		    struct mv_err *err)
{
	struct rwalk *w;
	int i, rc;

	w = calloc(1, sizeof(*w));
	if (!w)
		return mv_err_set(err, -ENOMEM, "out of memory");
	w->buf = malloc(READ_BLOCK);
	if (!w->buf) {
		free(w);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	w->ing = ing;
	w->o = o;
	w->err = err;
	w->parent_sec = o->parent ? o->parent->time_ns / 1000000000 : 0;
	ingest_set_current(ing, o->url);
	rc = sftp_walk(o->url, NULL, on_entry, w, err);
	if (rc && rc != -EINTR)
		mv_err_prefix(err, "cannot read '%s=%s'", o->label, o->url);
	for (i = 0; i < MAX_DEPTH; i++)
		level_clear(&w->lv[i]);
	free(w->buf);
	free(w);
	return rc;
}

/* ---- ssh-exec:// ---------------------------------------------------- */

struct copier {
	struct sshexec *h; /* the running command */
	int fd;		   /* write end of the socket pair */
	atomic_int stop;   /* set when the reader gave up */
	bool eof;	   /* the command's output has ended */
	struct mv_err err; /* a read error of the stream */
};

static int send_full(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void *copy_main(void *arg)
{
	struct copier *c = arg;
	uint8_t *buf = malloc(READ_BLOCK);
	bool reader_gone = false;

	if (!buf) {
		mv_err_set(&c->err, -ENOMEM, "out of memory");
		goto out;
	}
	while (!atomic_load(&c->stop)) {
		size_t n = 0;

		if (sshexec_read(c->h, buf, READ_BLOCK, &n, &c->err))
			break;
		if (!n) {
			c->eof = true;
			break;
		}
		/* after the archive's end the rest is only drained */
		if (!reader_gone && send_full(c->fd, buf, n))
			reader_gone = true;
	}
out:
	free(buf);
	close(c->fd);
	c->fd = -1;
	return NULL;
}

/* Replace the error in err by why (code), keeping what it said before
 * (when had is non-zero) after it. */
static int explain(struct mv_err *err, int code, const char *why, int had)
{
	char before[MV_ERR_MSG_MAX];

	snprintf(before, sizeof(before), "%s", had ? mv_err_msg(err) : "");
	mv_err_clear(err);
	if (*before)
		return mv_err_set(err, code, "%s (%s)", why, before);
	return mv_err_set(err, code, "%s", why);
}

static int read_exec(struct ingest *ing, const struct source_remote_opts *o,
		     struct mv_err *err)
{
	struct copier c;
	struct mv_err cerr = MV_ERR_INIT;
	struct mv_buf errout = MV_BUF_INIT;
	pthread_t th;
	char *name = NULL;
	int sv[2] = {-1, -1}, status = -1, rc, crc;

	if (!o->command || !*o->command)
		return mv_err_set(err, -EINVAL,
				  "source '%s=%s' needs a "
				  "command (--exec 'COMMAND')",
				  o->label, o->url);
	memset(&c, 0, sizeof(c));
	rc = sshexec_open(o->url, o->command, NULL, &c.h, err);
	if (rc)
		return rc;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		rc = mv_err_set(err, -errno, "socketpair: %s", strerror(errno));
		sshexec_close(c.h, NULL, NULL, NULL);
		return rc;
	}
	c.fd = sv[1];
	atomic_init(&c.stop, 0);
	if (asprintf(&name, "%s=%s", o->label, o->url) < 0) {
		name = NULL;
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		close(sv[0]);
		close(sv[1]);
		sshexec_close(c.h, NULL, NULL, NULL);
		return rc;
	}
	rc = pthread_create(&th, NULL, copy_main, &c);
	if (rc) {
		rc = mv_err_set(err, -rc, "cannot start a thread: %s",
				strerror(rc));
		close(sv[0]);
		close(sv[1]);
		sshexec_close(c.h, NULL, NULL, NULL);
		free(name);
		return rc;
	}
	ingest_set_current(ing, o->url);
	{
		struct source_tar_opts to = {o->label, name, sv[0], false,
					     o->exclude};

		rc = source_tar_read(ing, &to, err);
	}
	if (rc)
		atomic_store(&c.stop, 1);
	/* the copier sees EPIPE from now on and only drains */
	shutdown(sv[0], SHUT_RDWR);
	pthread_join(th, NULL);
	close(sv[0]);
	if (!c.eof) {
		/* stopped early (our error or a lost connection): the
		 * command's status cannot be known */
		sshexec_close(c.h, NULL, NULL, NULL);
		if (c.err.code && rc != -EINTR)
			rc = explain(err, c.err.code, c.err.msg, rc);
		free(name);
		return rc;
	}
	crc = sshexec_close(c.h, &status, &errout, &cerr);
	/* the command's failure explains a cut archive best */
	if (crc)
		rc = explain(err, crc, cerr.msg, rc == -EINTR ? 0 : rc);
	mv_buf_release(&errout);
	free(name);
	return rc;
}

int source_remote_read(struct ingest *ing, const struct source_remote_opts *o,
		       struct mv_err *err)
{
	if (!strncmp(o->url, "ssh-exec://", 11))
		return read_exec(ing, o, err);
	if (!strncmp(o->url, "ssh://", 6))
		return read_ssh(ing, o, err);
	return mv_err_set(err, -EINVAL,
			  "'%s' is not an ssh:// or ssh-exec:// "
			  "location",
			  o->url);
}
