/*
 * backend_sftp: repository files on an SFTP server (see include/sftp.h).
 *
 * Design notes:
 *  1. A backend owns a small pool of SSH sessions (ssh_opts.max_connections,
 *     default 4).  An operation takes a free session for its whole
 *     duration, so FUSE workers read in parallel and libssh2 - which is
 *     not thread-safe per session - only ever sees one thread per session.
 *  2. Every operation runs through run(): when the connection turns out to
 *     be gone (socket error, timeout, channel closed), the session is
 *     dropped, and the operation is retried on a fresh one after 1, 2, 4 s
 *     (ssh_opts.retries times); then it fails with -EIO.  Operations are
 *     written so a retry is harmless (see the notes on each).
 *  3. Uploads are spooled to an unlinked local temporary file by
 *     file_write(); file_commit() sends the whole spool to
 *     "<path>.tmp-<random>", fsyncs it (fsync@openssh.com when offered),
 *     closes it and renames it over <path>.  A connection lost during the
 *     upload restarts it from the spool, so a retry never leaves a short
 *     file under the final name and a failed backup leaves only a
 *     ".tmp-" file behind.
 *  4. read_at() keeps a few open read handles per session and leaves
 *     libssh2's read-ahead running when reads are sequential, so a
 *     restore streams instead of paying a round trip per request.  Cached
 *     handles are dropped when this backend renames or removes anything,
 *     and when stat() sees a file change size or time (another machine
 *     replaced it).
 *  5. Opening a read handle costs one round trip and no more: its size and
 *     mtime are not asked with fstat but taken from a stat() of the same
 *     path just before on the same session (the store stats the index
 *     and the config before reading them).  A stat seen before the open
 *     can only make a later comparison fail (a needless reopen), never
 *     keep a replaced file's handle.  A handle opened without one (packs,
 *     which are never replaced) is dropped by the next stat() of its
 *     path instead of being compared.
 *  6. close() keeps the last backend connected, and open() of the same
 *     location with the same options in the same process takes it back
 *     without a new handshake (about ten round trips).  A mount opens its
 *     repository, closes it before fuse_daemonize() and opens it again in
 *     the daemon: the daemon inherits the sessions, as the parent only
 *     _exit()s.  What is still parked at exit is closed by atexit().
 *     MAILVAULT_SFTP_NO_PARK=1 closes at once.
 */
#include "sftp.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libssh2.h>
#include <libssh2_sftp.h>

#include "remote_int.h"
#include "ssh.h"
#include "util.h"

#define POOL_MAX 16
#define HANDLE_SLOTS 8
#define UPLOAD_BLOCK (2u << 20)
/* A file written past this size is uploaded as it is written (a pack
 * being built), so that committing it waits for its last bytes, not for
 * all of them; smaller ones (most metadata, the index, a catalogue
 * segment) are uploaded at commit on a session already open. */
#define STREAM_START ((uint64_t)4 << 20)

struct read_handle {
	char *path;		/* relative path, NULL when free */
	LIBSSH2_SFTP_HANDLE *h; /* open for reading */
	unsigned gen;		/* backend generation when opened */
	bool known;		/* size and mtime below are known */
	uint64_t size;		/* size seen by a stat before the open */
	uint64_t mtime;		/* mtime (s) seen by that stat */
};

/* What the last stat() on a session saw (note 5). */
struct last_stat {
	char *path;	/* relative path, NULL when none */
	unsigned gen;	/* backend generation of that stat */
	uint64_t size;	/* its size */
	uint64_t mtime; /* its mtime (s) */
};

struct sftp_conn {
	struct ssh_session *ssh;	     /* NULL when disconnected */
	LIBSSH2_SFTP *sftp;		     /* SFTP channel on ssh */
	bool busy;			     /* taken by an operation */
	struct read_handle rh[HANDLE_SLOTS]; /* cached read handles */
	unsigned rh_next;		     /* next slot to recycle */
	struct last_stat ls;		     /* the last stat on this session */
	/* A file opened ahead (sftp_open_ahead), its handle and stat in
	 * rh, for the stat_read that follows on this session. */
	char *ahead_path; /* relative path, NULL when none */
	/* Connected ahead for a streamed upload (sftp_write_ahead): taken
	 * by a stream first, by other operations only when no other
	 * session is free. */
	bool spare;
};

struct sftp_backend {
	struct backend base;
	struct ssh_url url;		  /* parsed location */
	struct ssh_opts opts;		  /* connection options */
	char *identity;			  /* owned copy of opts.identity */
	char *known_hosts;		  /* owned copy of opts.known_hosts */
	pthread_mutex_t lock;		  /* guards the fields below */
	pthread_cond_t cond;		  /* a session became free */
	struct sftp_conn conns[POOL_MAX]; /* the pool */
	int nconns;			  /* slots in use */
	int max_conns;			  /* pool limit */
	unsigned gen;			  /* bumped when files change */
	char *open_ahead;		  /* sftp_open_ahead(), not yet taken */
	bool no_fsync;			  /* server lacks fsync@openssh.com */
	/* sftp_write_ahead(): a spare session being connected by a thread
	 * of its own, so that a pack's upload can start without waiting
	 * for a handshake */
	bool spare_started;	/* the thread was started */
	bool spare_warming;	/* it is connecting */
	pthread_t spare_thread; /* spare_main */
};

struct upload_args;

struct sftp_file {
	struct sftp_backend *sb; /* owner */
	char *path;		 /* relative final path */
	int spool;		 /* local unlinked temporary file */
	uint64_t size;		 /* bytes spooled (under mu when streaming) */
	/* A file past STREAM_START is uploaded while it is written, by a
	 * thread on a session of its own (see sftp_file_write). */
	bool streaming;		  /* the thread runs */
	bool closed;		  /* no more writes: finish the upload */
	bool aborted;		  /* file_abort: drop the upload */
	pthread_mutex_t mu;	  /* guards size, closed, aborted */
	pthread_cond_t cv;	  /* any of them changed */
	pthread_t thread;	  /* stream_main */
	struct upload_args *ua;	  /* the thread's upload */
	int stream_rc;		  /* its result */
	struct mv_err stream_err; /* and message */
};

/* One operation, run with a connected session; sets *lost when the
 * connection broke (the operation is then retried). */
typedef int (*op_fn)(struct sftp_backend *sb, struct sftp_conn *c, void *arg,
		     int attempt, bool *lost, struct mv_err *err);

static struct sftp_backend *to_sftp(struct backend *be)
{
	return (struct sftp_backend *)be;
}

static int remote_path(struct sftp_backend *sb, const char *rel, char *out,
		       size_t n, struct mv_err *err)
{
	int r;

	if (!rel || !*rel || !strcmp(rel, "."))
		r = snprintf(out, n, "%s", sb->url.path);
	else if (!strcmp(sb->url.path, "/"))
		r = snprintf(out, n, "/%s", rel);
	else
		r = snprintf(out, n, "%s/%s", sb->url.path, rel);
	if (r < 0 || (size_t)r >= n)
		return mv_err_set(err, -ENAMETOOLONG, "path too long: '%s/%s'",
				  sb->url.path, rel);
	return 0;
}

static unsigned current_gen(struct sftp_backend *sb)
{
	unsigned g;

	pthread_mutex_lock(&sb->lock);
	g = sb->gen;
	pthread_mutex_unlock(&sb->lock);
	return g;
}

static void bump_gen(struct sftp_backend *sb)
{
	pthread_mutex_lock(&sb->lock);
	sb->gen++;
	pthread_mutex_unlock(&sb->lock);
}

static void random_suffix(char *out, size_t n)
{
	uint8_t r[6];

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		uint64_t t = (uint64_t)mv_now_ns() ^ (uint64_t)getpid();

		memcpy(r, &t, sizeof(r));
	}
	if (n >= 2 * sizeof(r) + 1)
		mv_hex(r, sizeof(r), out);
	else if (n)
		out[0] = '\0';
}

/* MAILVAULT_SFTP_TRACE=1 (stderr) or =FILE (appended): one line per
 * backend operation with the time since the first one, to see which
 * requests wait on which (docs/REMOTE.md, round trips). */
static void trace(const char *op, const char *path, uint64_t off, size_t len)
{
	static pthread_mutex_t tlock = PTHREAD_MUTEX_INITIALIZER;
	static int on = -1;
	static FILE *out;

	pthread_mutex_lock(&tlock);
	if (on < 0) {
		const char *v = getenv("MAILVAULT_SFTP_TRACE");

		on = v && *v && strcmp(v, "0");
		out = stderr;
		if (on && strcmp(v, "1")) {
			out = fopen(v, "ae");
			on = out != NULL;
		}
	}
	if (on) {
		static int64_t t0;
		int64_t now = mv_now_ns();

		if (!t0)
			t0 = now;
		fprintf(out, "sftp-trace %d %6lld ms %s %s %llu+%zu\n",
			(int)getpid(), (long long)((now - t0) / 1000000), op,
			path ? path : "", (unsigned long long)off, len);
		fflush(out);
	}
	pthread_mutex_unlock(&tlock);
}

/* ---- the session pool ---- */

static void drop_handle(struct read_handle *rh, bool close_it)
{
	if (!rh->path)
		return;
	if (close_it)
		libssh2_sftp_close_handle(rh->h);
	free(rh->path);
	rh->path = NULL;
	rh->h = NULL;
}

static void conn_drop(struct sftp_conn *c, bool broken)
{
	int i;

	if (!c->ssh)
		return;
	/* a broken link fails every request at once instead of waiting
	 * for the timeout on each */
	if (broken)
		shutdown(ssh_session_fd(c->ssh), SHUT_RDWR);
	for (i = 0; i < HANDLE_SLOTS; i++)
		drop_handle(&c->rh[i], true);
	free(c->ls.path);
	c->ls.path = NULL;
	free(c->ahead_path);
	c->ahead_path = NULL;
	if (c->sftp)
		libssh2_sftp_shutdown(c->sftp);
	c->sftp = NULL;
	ssh_close(c->ssh);
	c->ssh = NULL;
}

static int conn_connect(struct sftp_backend *sb, struct sftp_conn *c,
			struct mv_err *err)
{
	int rc;

	if (c->sftp)
		return 0;
	trace("connect", NULL, 0, 0);
	rc = ssh_connect(&sb->url, &sb->opts, &c->ssh, err);
	if (rc)
		return rc;
	trace("sftp-init", NULL, 0, 0);
	c->sftp = libssh2_sftp_init(ssh_session_handle(c->ssh));
	trace("sftp-ready", NULL, 0, 0);
	if (!c->sftp) {
		rc = mv_err_set(err, -EIO,
				"cannot start SFTP on '%s': %s "
				"(the account must allow the sftp subsystem)",
				ssh_session_name(c->ssh),
				ssh_last_error(c->ssh));
		conn_drop(c, false);
		return rc;
	}
	return 0;
}

/* own: a session of its own when the pool has room, for an operation
 * that holds it long (a streamed upload) while others go on; a spare
 * session connected ahead for it (sftp_write_ahead) is waited for and
 * taken first.  Others take a spare only when no other session is free. */
static struct sftp_conn *conn_get(struct sftp_backend *sb, bool own)
{
	struct sftp_conn *c = NULL;
	int i, pass;

	pthread_mutex_lock(&sb->lock);
	while (own && sb->spare_warming)
		pthread_cond_wait(&sb->cond, &sb->lock);
	for (i = 0; own && i < sb->nconns && !c; i++)
		if (sb->conns[i].spare && !sb->conns[i].busy &&
		    sb->conns[i].sftp)
			c = &sb->conns[i];
	if (!c && own && sb->nconns < sb->max_conns)
		c = &sb->conns[sb->nconns++];
	while (!c) {
		/* a connected free session first (not a spare, then a
		 * spare), then an idle slot, then a new slot */
		for (pass = 0; pass < 2 && !c; pass++)
			for (i = 0; i < sb->nconns && !c; i++)
				if (!sb->conns[i].busy && sb->conns[i].sftp &&
				    sb->conns[i].spare == (pass == 1))
					c = &sb->conns[i];
		for (i = 0; i < sb->nconns && !c; i++)
			if (!sb->conns[i].busy)
				c = &sb->conns[i];
		if (!c && sb->nconns < sb->max_conns)
			c = &sb->conns[sb->nconns++];
		if (!c)
			pthread_cond_wait(&sb->cond, &sb->lock);
	}
	c->busy = true;
	pthread_mutex_unlock(&sb->lock);
	return c;
}

static void conn_put(struct sftp_backend *sb, struct sftp_conn *c)
{
	pthread_mutex_lock(&sb->lock);
	c->busy = false;
	pthread_cond_broadcast(&sb->cond);
	pthread_mutex_unlock(&sb->lock);
}

/* Run op with a session (own: see conn_get), reconnecting and retrying
 * while the connection is what fails. */
static int run_on(struct sftp_backend *sb, bool own, const char *what, op_fn op,
		  void *arg, struct mv_err *err)
{
	struct mv_err e = MV_ERR_INIT;
	struct sftp_conn *c;
	int attempt, rc;

	c = conn_get(sb, own);
	for (attempt = 0;; attempt++) {
		bool lost = false;

		mv_err_clear(&e);
		if (!c->sftp) {
			rc = conn_connect(sb, c, &e);
			/* host key, authentication and name problems do not
			 * go away by trying again */
			if (rc && rc != -EPERM && rc != -EACCES &&
			    rc != -EHOSTUNREACH && rc != -EINVAL)
				lost = true;
		} else {
			rc = ssh_keepalive(c->ssh) ? -EIO : 0;
			if (rc) {
				mv_err_set(&e, rc, "%s",
					   ssh_last_error(c->ssh));
				lost = true;
			}
		}
		if (!rc)
			rc = op(sb, c, arg, attempt, &lost, &e);
		if (!lost)
			break;
		conn_drop(c, true);
		if (attempt >= sb->opts.retries) {
			rc = mv_err_set(err, -EIO,
					"%s on '%s' failed: "
					"connection lost, gave up after %d "
					"retries: %s",
					what, sb->base.url, attempt,
					mv_err_msg(&e));
			goto out;
		}
		ssh_backoff(attempt);
	}
	if (rc && e.code)
		mv_err_set(err, e.code, "%s", e.msg);
out:
	conn_put(sb, c);
	return rc;
}

static int run(struct sftp_backend *sb, const char *what, op_fn op, void *arg,
	       struct mv_err *err)
{
	return run_on(sb, false, what, op, arg, err);
}

/* ---- helpers on a session ---- */

/* Record the last SFTP failure as "cannot <verb> '<path>': <reason>". */
static int sftp_fail(struct sftp_conn *c, bool *lost, struct mv_err *err,
		     const char *verb, const char *path)
{
	int rc = remote_sftp_errno(c->ssh, c->sftp, lost);

	return mv_err_set(err, rc, "cannot %s '%s': %s", verb, path,
			  remote_sftp_strerror(c->ssh, c->sftp));
}

static int stat_path(struct sftp_conn *c, const char *path,
		     LIBSSH2_SFTP_ATTRIBUTES *a, bool *lost)
{
	if (libssh2_sftp_stat_ex(c->sftp, path, (unsigned int)strlen(path),
				 LIBSSH2_SFTP_STAT, a) == 0)
		return 0;
	return remote_sftp_errno(c->ssh, c->sftp, lost);
}

/* ---- read_at ---- */

struct read_args {
	const char *rel; /* relative path */
	uint64_t off;	 /* first byte */
	uint8_t *buf;	 /* destination */
	size_t len;	 /* bytes wanted */
	size_t got;	 /* bytes read */
};

static struct read_handle *get_read_handle(struct sftp_backend *sb,
					   struct sftp_conn *c, const char *rel,
					   bool *lost, struct mv_err *err)
{
	struct read_handle *rh;
	char path[PATH_MAX];
	unsigned gen = current_gen(sb);
	int i;

	for (i = 0; i < HANDLE_SLOTS; i++) {
		rh = &c->rh[i];
		if (!rh->path)
			continue;
		if (rh->gen != gen) {
			drop_handle(rh, true);
			continue;
		}
		if (!strcmp(rh->path, rel))
			return rh;
	}
	if (remote_path(sb, rel, path, sizeof(path), err))
		return NULL;
	rh = &c->rh[c->rh_next++ % HANDLE_SLOTS];
	drop_handle(rh, true);
	rh->h = libssh2_sftp_open(c->sftp, path, LIBSSH2_FXF_READ, 0);
	if (!rh->h) {
		sftp_fail(c, lost, err, "open", path);
		return NULL;
	}
	rh->path = strdup(rel);
	if (!rh->path) {
		libssh2_sftp_close_handle(rh->h);
		rh->h = NULL;
		mv_err_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	rh->gen = gen;
	rh->known = c->ls.path && c->ls.gen == gen && !strcmp(c->ls.path, rel);
	rh->size = rh->known ? c->ls.size : 0;
	rh->mtime = rh->known ? c->ls.mtime : 0;
	return rh;
}

static int op_read(struct sftp_backend *sb, struct sftp_conn *c, void *arg,
		   int attempt, bool *lost, struct mv_err *err)
{
	struct read_args *a = arg;
	struct read_handle *rh;

	(void)attempt;
	a->got = 0;
	rh = get_read_handle(sb, c, a->rel, lost, err);
	if (!rh)
		return err->code ? err->code : -EIO;
	/* seeking drops libssh2's read-ahead: only seek when the read is
	 * not the continuation of the previous one */
	if (libssh2_sftp_tell64(rh->h) != a->off)
		libssh2_sftp_seek64(rh->h, a->off);
	while (a->got < a->len) {
		ssize_t n = libssh2_sftp_read(rh->h, (char *)a->buf + a->got,
					      a->len - a->got);

		if (n == 0)
			break;
		if (n < 0) {
			int rc = remote_sftp_errno(c->ssh, c->sftp, lost);

			rc = mv_err_set(err, rc,
					"cannot read '%s' at offset "
					"%llu: %s",
					a->rel,
					(unsigned long long)(a->off + a->got),
					remote_sftp_strerror(c->ssh, c->sftp));
			drop_handle(rh, !*lost);
			return rc;
		}
		a->got += (size_t)n;
	}
	return 0;
}

static int sftp_read_at(struct backend *be, const char *path, uint64_t off,
			void *buf, size_t len, size_t *out_len,
			struct mv_err *err)
{
	struct read_args a = {path, off, buf, len, 0};
	int rc;

	trace("read", path, off, len);
	rc = run(to_sftp(be), "read", op_read, &a, err);
	if (!rc)
		*out_len = a.got;
	return rc;
}

/* ---- read_all ---- */

/* Wait until the session's socket is ready in the direction libssh2
 * waits for (non-blocking calls); -ETIMEDOUT after the request timeout. */
static int nb_wait(struct sftp_backend *sb, struct sftp_conn *c)
{
	LIBSSH2_SESSION *s = ssh_session_handle(c->ssh);
	int dir = libssh2_session_block_directions(s), r;
	struct pollfd pfd;

	pfd.fd = ssh_session_fd(c->ssh);
	pfd.events = 0;
	pfd.revents = 0;
	if (dir & LIBSSH2_SESSION_BLOCK_INBOUND)
		pfd.events |= POLLIN;
	if (dir & LIBSSH2_SESSION_BLOCK_OUTBOUND)
		pfd.events |= POLLOUT;
	if (!pfd.events)
		pfd.events = POLLIN;
	do {
		r = poll(&pfd, 1, sb->opts.io_timeout_s * 1000);
	} while (r < 0 && errno == EINTR);
	return r > 0 ? 0 : r == 0 ? -ETIMEDOUT : -errno;
}

/* Requests of three kinds in flight together: a read of want bytes of
 * rh (when rh), and the stat and the open of path (when path).  libssh2
 * keeps one state machine per kind of request, so the three can be sent
 * before any answer comes: one round trip.  The open is for reading. */
struct nb_batch {
	LIBSSH2_SFTP_HANDLE *rh; /* to read from, or NULL */
	const char *rel;	 /* its name, for messages */
	uint8_t *buf;		 /* want bytes */
	size_t want, got;
	int read_rc;		    /* 0 or a negative errno */
	const char *path;	    /* to stat and open, or NULL */
	LIBSSH2_SFTP_ATTRIBUTES at; /* its stat */
	LIBSSH2_SFTP_HANDLE *h;	    /* its handle, or NULL */
	int stat_rc, open_rc;	    /* 0 or a negative errno */
};

/* Run b; 0, or an error when the session broke (*lost). */
static int nb_run(struct sftp_backend *sb, struct sftp_conn *c,
		  struct nb_batch *b, bool *lost, struct mv_err *err)
{
	LIBSSH2_SESSION *s = ssh_session_handle(c->ssh);
	bool read_done = !b->rh || !b->want, stat_done = !b->path;
	bool open_done = !b->path;
	int rc;

	b->got = 0;
	memset(&b->at, 0, sizeof(b->at));
	libssh2_session_set_blocking(s, 0);
	while (!read_done || !stat_done || !open_done) {
		bool progress = false;

		if (!read_done) {
			ssize_t n = libssh2_sftp_read(b->rh,
						      (char *)b->buf + b->got,
						      b->want - b->got);

			if (n != LIBSSH2_ERROR_EAGAIN) {
				progress = true;
				if (n < 0)
					b->read_rc = sftp_fail(c, lost, err,
							       "read", b->rel);
				else
					b->got += (size_t)n;
				read_done = n <= 0 || b->got >= b->want;
			}
		}
		if (!stat_done) {
			rc = libssh2_sftp_stat_ex(c->sftp, b->path,
						  (unsigned int)strlen(b->path),
						  LIBSSH2_SFTP_STAT, &b->at);
			stat_done = rc != LIBSSH2_ERROR_EAGAIN;
			progress |= stat_done;
			if (rc && stat_done)
				b->stat_rc = remote_sftp_errno(c->ssh, c->sftp,
							       lost);
		}
		if (!open_done) {
			b->h = libssh2_sftp_open(c->sftp, b->path,
						 LIBSSH2_FXF_READ, 0);
			open_done = b->h || libssh2_session_last_errno(s) !=
						    LIBSSH2_ERROR_EAGAIN;
			progress |= open_done;
			if (!b->h && open_done)
				b->open_rc = remote_sftp_errno(c->ssh, c->sftp,
							       lost);
		}
		if (read_done && stat_done && open_done)
			break;
		/* The call that finished may have read the other ones'
		 * answers off the socket into libssh2's queue: ask again
		 * before waiting on a socket that may stay silent. */
		if (progress)
			continue;
		rc = nb_wait(sb, c);
		if (rc) {
			/* requests half done: the session is dropped */
			*lost = true;
			libssh2_session_set_blocking(s, 1);
			return mv_err_set(err, rc, "cannot %s '%s': %s",
					  b->rh ? "read" : "open",
					  b->rh ? b->rel : b->path,
					  strerror(-rc));
		}
	}
	libssh2_session_set_blocking(s, 1);
	if (*lost)
		return mv_err_set(err, -EIO, "cannot %s '%s': connection lost",
				  b->rh ? "read" : "open",
				  b->rh ? b->rel : b->path);
	return 0;
}

static void drop_cached(struct sftp_conn *c, const char *rel)
{
	int i;

	for (i = 0; i < HANDLE_SLOTS; i++)
		if (c->rh[i].path && !strcmp(c->rh[i].path, rel))
			drop_handle(&c->rh[i], true);
}

/* Stat and open path together: two requests in flight, one round trip.
 * The stat gives the size a read needs and the handle's stamp (note 5).
 * A cached handle of the path is dropped first (its file may have been
 * replaced).  On success *out is an open handle the caller reads and
 * then keeps (keep_handle) or closes. */
static int stat_open(struct sftp_backend *sb, struct sftp_conn *c,
		     const char *rel, LIBSSH2_SFTP_ATTRIBUTES *at,
		     LIBSSH2_SFTP_HANDLE **out, bool *lost, struct mv_err *err)
{
	struct nb_batch b;
	char path[PATH_MAX];
	int rc;

	*out = NULL;
	rc = remote_path(sb, rel, path, sizeof(path), err);
	if (rc)
		return rc;
	drop_cached(c, rel);
	memset(&b, 0, sizeof(b));
	b.path = path;
	rc = nb_run(sb, c, &b, lost, err);
	if (rc)
		return rc;
	*at = b.at;
	rc = b.stat_rc ? b.stat_rc : b.open_rc;
	if (rc) {
		if (b.h)
			libssh2_sftp_close_handle(b.h);
		/* a missing file is -ENOENT without a message, as stat() */
		if (rc != -ENOENT)
			mv_err_set(err, rc, "cannot open '%s': %s", path,
				   strerror(-rc));
		return rc;
	}
	*out = b.h;
	return 0;
}

/* Keep h, opened by stat_open() with the stat at, as a cached handle. */
static void keep_handle(struct sftp_backend *sb, struct sftp_conn *c,
			const char *rel, LIBSSH2_SFTP_HANDLE *h,
			const LIBSSH2_SFTP_ATTRIBUTES *at)
{
	struct read_handle *rh = &c->rh[c->rh_next++ % HANDLE_SLOTS];

	drop_handle(rh, true);
	rh->path = strdup(rel);
	if (!rh->path) {
		libssh2_sftp_close_handle(h);
		return;
	}
	rh->h = h;
	rh->gen = current_gen(sb);
	rh->known = true;
	rh->size = at->filesize;
	rh->mtime = at->mtime;
}

/* Read up to len bytes at the handle's position (0 after an open). */
static int read_handle_full(struct sftp_conn *c, LIBSSH2_SFTP_HANDLE *h,
			    const char *rel, uint8_t *buf, size_t len,
			    size_t *got, bool *lost, struct mv_err *err)
{
	*got = 0;
	while (*got < len) {
		ssize_t n =
			libssh2_sftp_read(h, (char *)buf + *got, len - *got);

		if (n == 0)
			break;
		if (n < 0)
			return sftp_fail(c, lost, err, "read", rel);
		*got += (size_t)n;
	}
	return 0;
}

/* Read want bytes of h (just opened) while path `next` is stat'ed and
 * opened: one round trip for what would be two.  The handle of next is
 * kept (keep_handle, its stat with it) and named in c->ahead_path, for
 * the stat_read that follows.  A failure of the stat or the open of next is no
 * error: it is asked again then. */
static int read_open_ahead(struct sftp_backend *sb, struct sftp_conn *c,
			   LIBSSH2_SFTP_HANDLE *h, const char *rel,
			   uint8_t *buf, size_t want, size_t *got,
			   const char *next, bool *lost, struct mv_err *err)
{
	struct nb_batch b;
	char path[PATH_MAX];
	int rc;

	*got = 0;
	if (remote_path(sb, next, path, sizeof(path), NULL))
		return read_handle_full(c, h, rel, buf, want, got, lost, err);
	drop_cached(c, next);
	memset(&b, 0, sizeof(b));
	b.rh = h;
	b.rel = rel;
	b.buf = buf;
	b.want = want;
	b.path = path;
	rc = nb_run(sb, c, &b, lost, err);
	*got = b.got;
	if (rc)
		return rc;
	if (b.h && !b.stat_rc) {
		free(c->ahead_path);
		c->ahead_path = strdup(next);
		keep_handle(sb, c, next, b.h, &b.at);
	} else if (b.h) {
		libssh2_sftp_close_handle(b.h);
	}
	return b.read_rc;
}

/* The handle of rel opened ahead on this session and its stat, taken
 * (once: only the request that follows the read trusts that stat); NULL
 * when there is none or files changed since. */
static LIBSSH2_SFTP_HANDLE *take_ahead(struct sftp_backend *sb,
				       struct sftp_conn *c, const char *rel,
				       LIBSSH2_SFTP_ATTRIBUTES *at)
{
	LIBSSH2_SFTP_HANDLE *h = NULL;
	int i;

	if (!c->ahead_path || strcmp(c->ahead_path, rel))
		goto out;
	for (i = 0; i < HANDLE_SLOTS && !h; i++) {
		struct read_handle *rh = &c->rh[i];

		if (!rh->path || strcmp(rh->path, rel) ||
		    rh->gen != current_gen(sb))
			continue;
		/* the handle leaves the cache: keep_handle puts it back
		 * once read */
		h = rh->h;
		memset(at, 0, sizeof(*at));
		at->filesize = rh->size;
		at->mtime = (unsigned long)rh->mtime;
		drop_handle(rh, false);
	}
out:
	free(c->ahead_path);
	c->ahead_path = NULL;
	return h;
}

struct whole_args {
	const char *rel;  /* relative path */
	size_t max;	  /* read_all: larger is -EFBIG; head: bytes */
	size_t whole;	  /* head: the whole file when at most this */
	const char *next; /* opened along with the read (open_ahead) */
	bool head;	  /* stat_read: the first max bytes */
	uint8_t *buf;	  /* read_all: out, NUL-terminated; head: in */
	size_t got;	  /* out: bytes read */
	uint64_t size;	  /* out: the stat's size */
	uint64_t mtime;	  /* out: and mtime (s) */
};

/* read_all and stat_read: stat_open, then one read (a second round
 * trip).  The handle stays cached for later reads of the same file. */
static int op_read_all(struct sftp_backend *sb, struct sftp_conn *c, void *arg,
		       int attempt, bool *lost, struct mv_err *err)
{
	struct whole_args *a = arg;
	LIBSSH2_SFTP_ATTRIBUTES at;
	LIBSSH2_SFTP_HANDLE *h = NULL;
	size_t want;
	int rc = 0;

	(void)attempt;
	if (!a->head) {
		free(a->buf);
		a->buf = NULL;
	}
	a->got = 0;
	h = take_ahead(sb, c, a->rel, &at);
	if (!h)
		rc = stat_open(sb, c, a->rel, &at, &h, lost, err);
	if (rc)
		return rc;
	a->size = at.filesize;
	a->mtime = at.mtime;
	want = a->head && at.filesize > a->whole
		       ? (size_t)MV_MIN((uint64_t)a->max, at.filesize)
		       : (size_t)at.filesize;
	if (!a->head && at.filesize > a->max) {
		rc = mv_err_set(err, -EFBIG,
				"'%s' in '%s' is too large (%llu bytes, at "
				"most %zu)",
				a->rel, sb->base.url,
				(unsigned long long)at.filesize, a->max);
		goto fail;
	}
	if (!a->head) {
		a->buf = malloc(want + 1);
		if (!a->buf) {
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			goto fail;
		}
	}
	if (a->next)
		rc = read_open_ahead(sb, c, h, a->rel, a->buf, want, &a->got,
				     a->next, lost, err);
	else
		rc = read_handle_full(c, h, a->rel, a->buf, want, &a->got, lost,
				      err);
	if (rc)
		goto fail;
	if (!a->head && a->got < want) {
		rc = mv_err_set(err, -EIO, "'%s' in '%s' shrank while reading",
				a->rel, sb->base.url);
		goto fail;
	}
	if (!a->head)
		a->buf[a->got] = '\0';
	keep_handle(sb, c, a->rel, h, &at);
	return 0;
fail:
	if (!*lost)
		libssh2_sftp_close_handle(h);
	if (!a->head) {
		free(a->buf);
		a->buf = NULL;
	}
	return rc;
}

static int sftp_read_all(struct backend *be, const char *path, size_t max,
			 void **out, size_t *out_len, struct mv_err *err)
{
	struct sftp_backend *sb = to_sftp(be);
	struct whole_args a;
	char *next;
	int rc;

	memset(&a, 0, sizeof(a));
	a.rel = path;
	a.max = max;
	pthread_mutex_lock(&sb->lock);
	next = sb->open_ahead;
	sb->open_ahead = NULL;
	pthread_mutex_unlock(&sb->lock);
	a.next = next;
	trace("read_all", path, 0, max);
	rc = run(sb, "read", op_read_all, &a, err);
	free(next);
	if (rc) {
		free(a.buf);
		return rc;
	}
	*out = a.buf;
	*out_len = a.got;
	return 0;
}

static int sftp_stat_read(struct backend *be, const char *path,
			  uint64_t *out_size, int64_t *out_mtime_ns, void *buf,
			  size_t len, size_t whole, size_t *out_got,
			  struct mv_err *err)
{
	struct whole_args a;
	int rc;

	memset(&a, 0, sizeof(a));
	a.rel = path;
	a.max = len;
	a.whole = whole;
	a.head = true;
	a.buf = buf;
	trace("stat_read", path, 0, len);
	rc = run(to_sftp(be), "read", op_read_all, &a, err);
	if (rc)
		return rc;
	if (out_size)
		*out_size = a.size;
	if (out_mtime_ns)
		*out_mtime_ns = (int64_t)a.mtime * 1000000000;
	*out_got = a.got;
	return 0;
}

/* ---- read_many ---- */

struct many_args {
	struct backend_range **v; /* the ranges, by path then offset */
	size_t n;
	bool *done; /* finished (by an earlier attempt too) */
};

static int range_cmp(const void *a, const void *b)
{
	const struct backend_range *x = *(struct backend_range *const *)a;
	const struct backend_range *y = *(struct backend_range *const *)b;
	int c = strcmp(x->path, y->path);

	if (c)
		return c;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* The ranges of one file go through one handle, front to back: each
 * libssh2_sftp_read() asks for its whole remaining length (and up to four
 * times more ahead) before waiting, so a range costs one round trip
 * whatever its size, and a range that continues the previous one costs
 * none.  A range that fails for a reason other than the connection gets
 * its own rc and the others go on. */
static int op_read_many(struct sftp_backend *sb, struct sftp_conn *c, void *arg,
			int attempt, bool *lost, struct mv_err *err)
{
	struct many_args *m = arg;
	int first = 0;
	size_t i;

	(void)attempt;
	for (i = 0; i < m->n; i++) {
		struct backend_range *r = m->v[i];
		struct read_args a = {r->path, r->off, r->buf, r->len, 0};
		struct mv_err e = MV_ERR_INIT;
		int rc;

		if (m->done[i])
			continue;
		rc = op_read(sb, c, &a, 0, lost, &e);
		if (*lost) {
			mv_err_set(err, rc ? rc : -EIO, "%s", mv_err_msg(&e));
			return rc ? rc : -EIO;
		}
		r->got = a.got;
		r->rc = rc;
		m->done[i] = true;
		if (rc && !first) {
			first = rc;
			mv_err_set(err, rc, "%s", mv_err_msg(&e));
		}
	}
	return first;
}

static int sftp_read_many(struct backend *be, struct backend_range *v, size_t n,
			  struct mv_err *err)
{
	struct many_args m = {NULL, n, NULL};
	size_t i;
	int rc;

	if (!n)
		return 0;
	m.v = calloc(n, sizeof(*m.v));
	m.done = calloc(n, sizeof(*m.done));
	if (!m.v || !m.done) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		v[i].got = 0;
		v[i].rc = 0;
		m.v[i] = &v[i];
		trace("read_many", v[i].path, v[i].off, v[i].len);
	}
	qsort(m.v, n, sizeof(*m.v), range_cmp);
	rc = run(to_sftp(be), "read", op_read_many, &m, err);
	trace("read_many done", NULL, 0, n);
	/* ranges a lost connection left unread carry its error */
	for (i = 0; rc && i < n; i++)
		if (!m.done[i])
			m.v[i]->rc = rc;
out:
	free(m.v);
	free(m.done);
	return rc;
}

/* ---- stat ---- */

struct stat_args {
	const char *rel;
	LIBSSH2_SFTP_ATTRIBUTES attrs;
};

static int op_stat(struct sftp_backend *sb, struct sftp_conn *c, void *arg,
		   int attempt, bool *lost, struct mv_err *err)
{
	struct stat_args *a = arg;
	char path[PATH_MAX];
	int rc, i;

	(void)attempt;
	rc = remote_path(sb, a->rel, path, sizeof(path), err);
	if (rc)
		return rc;
	memset(&a->attrs, 0, sizeof(a->attrs));
	rc = stat_path(c, path, &a->attrs, lost);
	if (rc == -ENOENT || *lost)
		return rc;
	if (rc)
		return mv_err_set(err, rc, "cannot stat '%s': %s", path,
				  remote_sftp_strerror(c->ssh, c->sftp));
	/* a file replaced behind our back invalidates cached handles; a
	 * handle of unknown size is only dropped (note 5) */
	for (i = 0; i < HANDLE_SLOTS; i++) {
		struct read_handle *rh = &c->rh[i];

		if (!rh->path || strcmp(rh->path, a->rel))
			continue;
		if (!rh->known)
			drop_handle(rh, true);
		else if (rh->size != a->attrs.filesize ||
			 rh->mtime != a->attrs.mtime)
			bump_gen(sb);
	}
	free(c->ls.path);
	c->ls.path = strdup(a->rel);
	c->ls.gen = current_gen(sb);
	c->ls.size = a->attrs.filesize;
	c->ls.mtime = a->attrs.mtime;
	return 0;
}

static int sftp_stat(struct backend *be, const char *path, uint64_t *out_size,
		     int64_t *out_mtime_ns, struct mv_err *err)
{
	struct stat_args a;
	int rc;

	a.rel = path;
	trace("stat", path, 0, 0);
	rc = run(to_sftp(be), "stat", op_stat, &a, err);
	if (rc)
		return rc;
	if (out_size)
		*out_size = a.attrs.filesize;
	if (out_mtime_ns)
		*out_mtime_ns = (int64_t)a.attrs.mtime * 1000000000;
	return 0;
}

/* ---- list ---- */

struct list_entry {
	char *name;
	bool is_dir;
	uint64_t size;
};

struct list_args {
	const char *rel;
	struct list_entry *v; /* collected entries */
	size_t n, cap;
};

static void list_reset(struct list_args *a)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		free(a->v[i].name);
	free(a->v);
	a->v = NULL;
	a->n = a->cap = 0;
}

/* Entries are collected first and handed to the callback after the
 * session is released: a callback may call the backend again. */
static int op_list(struct sftp_backend *sb, struct sftp_conn *c, void *arg,
		   int attempt, bool *lost, struct mv_err *err)
{
	struct list_args *a = arg;
	LIBSSH2_SFTP_HANDLE *d;
	LIBSSH2_SFTP_ATTRIBUTES at;
	char path[PATH_MAX], name[1024];
	int rc = 0;

	(void)attempt;
	list_reset(a);
	rc = remote_path(sb, a->rel, path, sizeof(path), err);
	if (rc)
		return rc;
	d = libssh2_sftp_opendir(c->sftp, path);
	if (!d) {
		rc = remote_sftp_errno(c->ssh, c->sftp, lost);
		if (rc == -ENOENT || *lost)
			return rc;
		return mv_err_set(err, rc, "cannot list '%s': %s", path,
				  remote_sftp_strerror(c->ssh, c->sftp));
	}
	for (;;) {
		int n = libssh2_sftp_readdir(d, name, sizeof(name), &at);
		struct list_entry *e;

		if (n == 0)
			break;
		if (n < 0) {
			rc = sftp_fail(c, lost, err, "list", path);
			break;
		}
		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		if (a->n == a->cap) {
			size_t cap = a->cap ? a->cap * 2 : 64;
			void *v = realloc(a->v, cap * sizeof(*a->v));

			if (!v) {
				rc = mv_err_set(err, -ENOMEM, "out of memory");
				break;
			}
			a->v = v;
			a->cap = cap;
		}
		e = &a->v[a->n];
		e->name = strdup(name);
		if (!e->name) {
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			break;
		}
		e->is_dir = (at.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) &&
			    LIBSSH2_SFTP_S_ISDIR(at.permissions);
		e->size = (at.flags & LIBSSH2_SFTP_ATTR_SIZE) ? at.filesize : 0;
		a->n++;
	}
	if (!*lost)
		libssh2_sftp_closedir(d);
	return rc;
}

static int sftp_list(struct backend *be, const char *dir, backend_list_fn fn,
		     void *arg, struct mv_err *err)
{
	struct list_args a = {dir, NULL, 0, 0};
	size_t i;
	int rc;

	trace("list", dir, 0, 0);
	rc = run(to_sftp(be), "list", op_list, &a, err);
	for (i = 0; !rc && i < a.n; i++)
		rc = fn(a.v[i].name, a.v[i].is_dir, a.v[i].size, arg);
	list_reset(&a);
	return rc;
}

/* ---- mkdir ---- */

static int op_mkdir(struct sftp_backend *sb, struct sftp_conn *c, void *arg,
		    int attempt, bool *lost, struct mv_err *err)
{
	LIBSSH2_SFTP_ATTRIBUTES at;
	char path[PATH_MAX];
	int rc;

	(void)attempt;
	rc = remote_path(sb, arg, path, sizeof(path), err);
	if (rc)
		return rc;
	if (libssh2_sftp_mkdir(c->sftp, path, MV_REPO_DIR_MODE) == 0)
		return 0;
	rc = remote_sftp_errno(c->ssh, c->sftp, lost);
	if (*lost)
		return mv_err_set(err, rc, "cannot create directory '%s': %s",
				  path, ssh_last_error(c->ssh));
	/* OpenSSH says "failure" for an existing directory */
	if (stat_path(c, path, &at, lost) == 0 &&
	    LIBSSH2_SFTP_S_ISDIR(at.permissions))
		return 0;
	return mv_err_set(err, rc, "cannot create directory '%s': %s", path,
			  remote_sftp_strerror(c->ssh, c->sftp));
}

static int sftp_mkdir(struct backend *be, const char *path, struct mv_err *err)
{
	trace("mkdir", path, 0, 0);
	return run(to_sftp(be), "mkdir", op_mkdir, (void *)path, err);
}

/* ---- rename ---- */

struct rename_args {
	const char *from; /* absolute remote paths */
	const char *to;
};

/* Replace to, which exists, by from: to moved aside, from renamed in, the
 * old one removed (see "Durability and atomic publication" in
 * docs/REMOTE.md).  For a file seen on this session (an index being
 * published) this comes first, without the rename SFTP v3 refuses and
 * the stats that tell why: three round trips instead of six.  -ENOENT
 * (no message) when to is not there after all. */
static int replace_seen(struct sftp_conn *c, const char *from, const char *to,
			bool *lost, struct mv_err *err)
{
	char aside[PATH_MAX], rnd[16];
	int rc;

	random_suffix(rnd, sizeof(rnd));
	snprintf(aside, sizeof(aside), "%s.old-%s", to, rnd);
	if (libssh2_sftp_rename_ex(c->sftp, to, (unsigned int)strlen(to), aside,
				   (unsigned int)strlen(aside), 0)) {
		rc = remote_sftp_errno(c->ssh, c->sftp, lost);
		if (*lost || rc != -ENOENT)
			return mv_err_set(
				err, rc ? rc : -EIO,
				"cannot move aside '%s': %s", to,
				remote_sftp_strerror(c->ssh, c->sftp));
		return -ENOENT;
	}
	if (libssh2_sftp_rename_ex(c->sftp, from, (unsigned int)strlen(from),
				   to, (unsigned int)strlen(to), 0)) {
		rc = sftp_fail(c, lost, err, "rename to", to);
		if (!*lost)
			libssh2_sftp_rename_ex(c->sftp, aside,
					       (unsigned int)strlen(aside), to,
					       (unsigned int)strlen(to), 0);
		return rc;
	}
	libssh2_sftp_unlink(c->sftp, aside);
	return 0;
}

/* rename(2) semantics: replace to.  SFTP v3 servers (OpenSSH) refuse to
 * replace an existing file and ignore the overwrite flag; then the old
 * file is moved aside first, so a crash between the two renames leaves
 * it as "<to>.old-<random>", never lost.  Readers can see no file under
 * to between the two renames (docs/REMOTE.md).  seen: to was read on
 * this session (an index being published): see replace_seen. */
static int rename_over(struct sftp_conn *c, const char *from, const char *to,
		       int attempt, bool seen, bool *lost, struct mv_err *err)
{
	LIBSSH2_SFTP_ATTRIBUTES at;
	int rc;

	if (seen && attempt == 0) {
		rc = replace_seen(c, from, to, lost, err);
		if (rc != -ENOENT || *lost)
			return rc;
	}
	if (libssh2_sftp_rename_ex(c->sftp, from, (unsigned int)strlen(from),
				   to, (unsigned int)strlen(to),
				   LIBSSH2_SFTP_RENAME_OVERWRITE |
					   LIBSSH2_SFTP_RENAME_ATOMIC |
					   LIBSSH2_SFTP_RENAME_NATIVE) == 0)
		return 0;
	rc = remote_sftp_errno(c->ssh, c->sftp, lost);
	if (*lost)
		return mv_err_set(err, rc, "cannot rename '%s': %s", from,
				  ssh_last_error(c->ssh));
	if (stat_path(c, from, &at, lost)) {
		/* a retried rename that the server did before the
		 * connection dropped */
		if (!*lost && attempt > 0 && !stat_path(c, to, &at, lost))
			return 0;
		if (*lost)
			return -EIO;
		return mv_err_set(err, -ENOENT,
				  "cannot rename '%s': no such "
				  "file",
				  from);
	}
	if (stat_path(c, to, &at, lost)) {
		if (*lost)
			return -EIO;
		return mv_err_set(err, rc, "cannot rename '%s' to '%s': %s",
				  from, to,
				  remote_sftp_strerror(c->ssh, c->sftp));
	}
	rc = replace_seen(c, from, to, lost, err);
	if (rc == -ENOENT && !*lost)
		return mv_err_set(err, rc,
				  "cannot move aside '%s': no such file", to);
	return rc;
}

static int op_rename(struct sftp_backend *sb, struct sftp_conn *c, void *arg,
		     int attempt, bool *lost, struct mv_err *err)
{
	struct rename_args *a = arg;

	(void)sb;
	return rename_over(c, a->from, a->to, attempt, false, lost, err);
}

static int sftp_rename(struct backend *be, const char *from, const char *to,
		       struct mv_err *err)
{
	struct sftp_backend *sb = to_sftp(be);
	char a[PATH_MAX], b[PATH_MAX];
	struct rename_args ra = {a, b};
	int rc;

	rc = remote_path(sb, from, a, sizeof(a), err);
	if (!rc)
		rc = remote_path(sb, to, b, sizeof(b), err);
	if (rc)
		return rc;
	bump_gen(sb);
	trace("rename", from, 0, 0);
	rc = run(sb, "rename", op_rename, &ra, err);
	bump_gen(sb);
	return rc;
}

/* ---- remove ---- */

static int op_remove(struct sftp_backend *sb, struct sftp_conn *c, void *arg,
		     int attempt, bool *lost, struct mv_err *err)
{
	LIBSSH2_SFTP_ATTRIBUTES at;
	char path[PATH_MAX];
	int rc;

	rc = remote_path(sb, arg, path, sizeof(path), err);
	if (rc)
		return rc;
	if (libssh2_sftp_unlink(c->sftp, path) == 0)
		return 0;
	rc = remote_sftp_errno(c->ssh, c->sftp, lost);
	if (*lost)
		return rc;
	if (rc == -ENOENT)
		return attempt > 0 ? 0 : -ENOENT;
	if (stat_path(c, path, &at, lost) == 0 &&
	    LIBSSH2_SFTP_S_ISDIR(at.permissions)) {
		if (libssh2_sftp_rmdir(c->sftp, path) == 0)
			return 0;
		return sftp_fail(c, lost, err, "remove directory", path);
	}
	return mv_err_set(err, rc, "cannot remove '%s': %s", path,
			  remote_sftp_strerror(c->ssh, c->sftp));
}

static int sftp_remove(struct backend *be, const char *path, struct mv_err *err)
{
	struct sftp_backend *sb = to_sftp(be);

	bump_gen(sb);
	trace("remove", path, 0, 0);
	return run(sb, "remove", op_remove, (void *)path, err);
}

/* ---- writing ---- */

/* A failed fsync of path: a server without fsync@openssh.com is
 * remembered and not asked again (its data is as durable as its page
 * cache); anything else is an error. */
static int fsync_failed(struct sftp_backend *sb, struct sftp_conn *c,
			const char *path, bool *lost, struct mv_err *err)
{
	int rc = remote_sftp_errno(c->ssh, c->sftp, lost);

	if (*lost)
		return mv_err_set(err, rc, "cannot sync '%s': %s", path,
				  ssh_last_error(c->ssh));
	if (rc == -EOPNOTSUPP ||
	    libssh2_session_last_errno(ssh_session_handle(c->ssh)) ==
		    LIBSSH2_ERROR_SFTP_PROTOCOL) {
		pthread_mutex_lock(&sb->lock);
		sb->no_fsync = true;
		pthread_mutex_unlock(&sb->lock);
		return 0;
	}
	return mv_err_set(err, rc, "cannot sync '%s': %s", path,
			  remote_sftp_strerror(c->ssh, c->sftp));
}

/* Sync h (fsync@openssh.com) and close it, both requests in flight: one
 * round trip, not two.  The server answers in order, so the close comes
 * after the data is on its disk; the close reply confirms every write.
 * The close is completed (libssh2 then frees h) only once the fsync has
 * its answer. */
static int fsync_close(struct sftp_backend *sb, struct sftp_conn *c,
		       LIBSSH2_SFTP_HANDLE *h, const char *path, bool *lost,
		       struct mv_err *err)
{
	LIBSSH2_SESSION *s = ssh_session_handle(c->ssh);
	bool fsync_done, close_sent = false, close_done = false;
	int fsync_rc = 0, close_rc = 0, rc;

	pthread_mutex_lock(&sb->lock);
	fsync_done = sb->no_fsync;
	pthread_mutex_unlock(&sb->lock);
	libssh2_session_set_blocking(s, 0);
	while (!fsync_done || !close_done) {
		bool progress = false;

		if (!fsync_done) {
			rc = libssh2_sftp_fsync(h);
			if (rc != LIBSSH2_ERROR_EAGAIN) {
				fsync_done = true;
				progress = true;
				if (rc)
					fsync_rc = fsync_failed(sb, c, path,
								lost, err);
			}
		}
		if (!close_done && (!close_sent || fsync_done)) {
			rc = libssh2_sftp_close_handle(h);
			close_sent = true;
			if (rc != LIBSSH2_ERROR_EAGAIN) {
				close_done = true;
				progress = true;
				if (rc)
					close_rc = remote_sftp_errno(
						c->ssh, c->sftp, lost);
			}
		}
		if (*lost || (fsync_done && close_done))
			break;
		if (progress)
			continue;
		rc = nb_wait(sb, c);
		if (rc) {
			*lost = true;
			fsync_rc = mv_err_set(err, rc, "cannot close '%s': %s",
					      path, strerror(-rc));
			break;
		}
	}
	libssh2_session_set_blocking(s, 1);
	if (fsync_rc)
		return fsync_rc;
	if (close_rc)
		return mv_err_set(
			err, close_rc, "cannot close '%s': %s", path,
			*lost ? ssh_last_error(c->ssh)
			      : remote_sftp_strerror(c->ssh, c->sftp));
	return *lost ? -EIO : 0;
}

static int write_all(struct sftp_conn *c, LIBSSH2_SFTP_HANDLE *h,
		     const uint8_t *p, size_t len, const char *path, bool *lost,
		     struct mv_err *err)
{
	while (len) {
		ssize_t n = libssh2_sftp_write(h, (const char *)p, len);

		if (n < 0)
			return sftp_fail(c, lost, err, "write", path);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

struct upload_args {
	struct sftp_file *f;
	char tmp[PATH_MAX];   /* remote temporary path of this attempt */
	char final[PATH_MAX]; /* remote final path */
	uint8_t *block;	      /* transfer buffer */
	bool keep_tmp;	      /* stop before the rename (commit_after) */
};

/* Whether rel was read on this session (a handle of it is cached). */
static bool cached_on(const struct sftp_conn *c, const char *rel)
{
	int i;

	for (i = 0; i < HANDLE_SLOTS; i++)
		if (c->rh[i].path && !strcmp(c->rh[i].path, rel))
			return true;
	return false;
}

/* The bytes of f spooled so far, once more than off are or the file is
 * complete; UINT64_MAX when the upload was dropped. */
static uint64_t spooled(struct sftp_file *f, uint64_t off)
{
	uint64_t n;

	if (!f->streaming)
		return f->size;
	pthread_mutex_lock(&f->mu);
	while (f->size <= off && !f->closed && !f->aborted)
		pthread_cond_wait(&f->cv, &f->mu);
	n = f->aborted ? UINT64_MAX : f->size;
	pthread_mutex_unlock(&f->mu);
	return n;
}

/* Close h on a connection that was lost: libssh2 frees a handle, and the
 * writes still queued on it (up to a block), only in its close;
 * on a dead link the close fails after releasing them (a link that hangs
 * is given a second, not the whole I/O timeout). */
static void close_lost(struct sftp_conn *c, LIBSSH2_SFTP_HANDLE *h)
{
	LIBSSH2_SESSION *s = ssh_session_handle(c->ssh);
	long t = libssh2_session_get_timeout(s);

	libssh2_session_set_timeout(s, 1000);
	libssh2_sftp_close_handle(h);
	libssh2_session_set_timeout(s, t);
}

static int op_upload(struct sftp_backend *sb, struct sftp_conn *c, void *arg,
		     int attempt, bool *lost, struct mv_err *err)
{
	struct upload_args *a = arg;
	LIBSSH2_SFTP_HANDLE *h;
	char rnd[16];
	uint64_t off = 0;
	int rc = 0;

	/* what an interrupted attempt left behind */
	if (attempt > 0 && a->tmp[0])
		libssh2_sftp_unlink(c->sftp, a->tmp);
	random_suffix(rnd, sizeof(rnd));
	if (snprintf(a->tmp, sizeof(a->tmp), "%s.tmp-%s", a->final, rnd) >=
	    (int)sizeof(a->tmp))
		return mv_err_set(err, -ENAMETOOLONG, "path too long: '%s'",
				  a->final);
	h = libssh2_sftp_open(c->sftp, a->tmp,
			      LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT |
				      LIBSSH2_FXF_TRUNC,
			      MV_REPO_FILE_MODE);
	if (!h)
		return sftp_fail(c, lost, err, "create", a->tmp);
	for (;;) {
		uint64_t have = spooled(a->f, off);
		size_t want;

		if (have == UINT64_MAX) {
			rc = -ECANCELED; /* file_abort */
			break;
		}
		if (off >= have)
			break;
		want = (size_t)MV_MIN((uint64_t)UPLOAD_BLOCK, have - off);

		rc = mv_pread_full(a->f->spool, a->block, want, (off_t)off);
		if (rc) {
			rc = mv_err_set(err, rc,
					"cannot read the local copy "
					"of '%s': %s",
					a->final, strerror(-rc));
			break;
		}
		rc = write_all(c, h, a->block, want, a->tmp, lost, err);
		if (rc)
			break;
		off += want;
	}
	if (!rc)
		rc = fsync_close(sb, c, h, a->tmp, lost, err);
	else if (!*lost)
		libssh2_sftp_close_handle(h);
	else
		close_lost(c, h);
	if (*lost)
		return rc ? rc : -EIO;
	if (!rc && a->keep_tmp)
		return 0;
	if (!rc)
		rc = rename_over(c, a->tmp, a->final, attempt,
				 cached_on(c, a->f->path), lost, err);
	if (rc && !*lost) {
		libssh2_sftp_unlink(c->sftp, a->tmp);
		a->tmp[0] = '\0';
	}
	return rc;
}

static void free_file(struct sftp_file *f)
{
	if (f->spool >= 0)
		close(f->spool);
	free(f->path);
	free(f);
}

static int open_spool(struct mv_err *err)
{
	const char *dir = getenv("TMPDIR");
	char tmpl[PATH_MAX];
	int fd;

	if (!dir || !*dir)
		dir = "/tmp";
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	snprintf(tmpl, sizeof(tmpl), "%s/mailvault-upload-XXXXXX", dir);
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd < 0)
		return mv_err_set(err, -errno,
				  "cannot create a temporary "
				  "file in '%s': %s",
				  dir, strerror(errno));
	unlink(tmpl);
	return fd;
}

static int sftp_file_create(struct backend *be, const char *path,
			    struct backend_file **out, struct mv_err *err)
{
	struct sftp_file *f;
	int fd;

	f = calloc(1, sizeof(*f));
	if (!f)
		return mv_err_set(err, -ENOMEM, "out of memory");
	f->sb = to_sftp(be);
	f->spool = -1;
	f->path = strdup(path);
	if (!f->path) {
		free_file(f);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	fd = open_spool(err);
	if (fd < 0) {
		free_file(f);
		return fd;
	}
	f->spool = fd;
	*out = (struct backend_file *)f;
	return 0;
}

static void *stream_main(void *arg)
{
	struct sftp_file *f = arg;

	f->stream_rc =
		run_on(f->sb, true, "upload", op_upload, f->ua, &f->stream_err);
	return NULL;
}

static void upload_free(struct upload_args *a)
{
	if (a)
		free(a->block);
	free(a);
}

/* The upload of f (its final path resolved, a transfer buffer) in *out. */
static int upload_new(struct sftp_file *f, struct upload_args **out,
		      struct mv_err *err)
{
	struct upload_args *a = calloc(1, sizeof(*a));
	int rc;

	*out = NULL;
	if (a)
		a->block = malloc(UPLOAD_BLOCK);
	if (!a || !a->block) {
		upload_free(a);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	a->f = f;
	rc = remote_path(f->sb, f->path, a->final, sizeof(a->final), err);
	if (rc) {
		upload_free(a);
		return rc;
	}
	*out = a;
	return 0;
}

/* Start uploading f while it is written; on failure it is uploaded at
 * commit as a small file is. */
static void stream_start(struct sftp_file *f)
{
	if (upload_new(f, &f->ua, NULL))
		return;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	f->streaming = true;
	bump_gen(f->sb);
	trace("upload stream", f->path, 0, (size_t)f->size);
	if (pthread_create(&f->thread, NULL, stream_main, f)) {
		f->streaming = false;
		pthread_mutex_destroy(&f->mu);
		pthread_cond_destroy(&f->cv);
		upload_free(f->ua);
		f->ua = NULL;
	}
}

/* Tell the upload thread the file is complete (or dropped) and wait for
 * it. */
static void stream_close(struct sftp_file *f, bool abort)
{
	pthread_mutex_lock(&f->mu);
	if (abort)
		f->aborted = true;
	f->closed = true;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

static void stream_end(struct sftp_file *f, bool abort)
{
	stream_close(f, abort);
	pthread_join(f->thread, NULL);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
	f->streaming = false;
	upload_free(f->ua);
	f->ua = NULL;
	bump_gen(f->sb);
}

static int sftp_file_write(struct backend_file *bf, const void *buf, size_t len,
			   struct mv_err *err)
{
	struct sftp_file *f = (struct sftp_file *)bf;
	int rc;

	rc = mv_write_full(f->spool, buf, len);
	if (rc)
		return mv_err_set(err, rc,
				  "cannot keep a local copy of '%s' "
				  "for upload: %s",
				  f->path, strerror(-rc));
	if (f->streaming) {
		pthread_mutex_lock(&f->mu);
		f->size += len;
		pthread_cond_broadcast(&f->cv);
		pthread_mutex_unlock(&f->mu);
		return 0;
	}
	f->size += len;
	/* a second session, so that the others stay free for the reads and
	 * small files of the same process */
	if (f->size >= STREAM_START && f->sb->max_conns > 1)
		stream_start(f);
	return 0;
}

static int sftp_file_commit(struct backend_file *bf, struct mv_err *err)
{
	struct sftp_file *f = (struct sftp_file *)bf;
	struct upload_args *a = NULL;
	int rc = 0;

	if (f->streaming) {
		stream_end(f, false);
		trace("upload done", f->path, f->stream_rc, (size_t)f->size);
		if (!f->stream_rc)
			goto out;
		/* the stream's own session failed (a server that limits
		 * sessions, say): once more from the spool on the pool's */
	}
	rc = upload_new(f, &a, err);
	if (rc)
		goto out;
	bump_gen(f->sb);
	trace("upload", f->path, 0, (size_t)f->size);
	rc = run(f->sb, "upload", op_upload, a, err);
	trace("upload done", f->path, 0, (size_t)f->size);
	bump_gen(f->sb);
out:
	upload_free(a);
	free_file(f);
	return rc;
}

static void sftp_file_abort(struct backend_file *bf)
{
	struct sftp_file *f = (struct sftp_file *)bf;

	if (f->streaming)
		stream_end(f, true);
	free_file(f);
}

struct tmp_rename_args {
	struct upload_args *a; /* its tmp uploaded, its final to publish */
	bool remove;	       /* drop tmp instead */
};

static int op_tmp_rename(struct sftp_backend *sb, struct sftp_conn *c,
			 void *arg, int attempt, bool *lost, struct mv_err *err)
{
	struct tmp_rename_args *t = arg;
	struct upload_args *a = t->a;

	(void)sb;
	if (t->remove) {
		libssh2_sftp_unlink(c->sftp, a->tmp);
		return 0;
	}
	return rename_over(c, a->tmp, a->final, attempt,
			   cached_on(c, a->f->path), lost, err);
}

/* f's bytes go to its temporary name on a session of the pool while
 * first's upload finishes on its own session; f is renamed into place
 * only once first is committed.  A first that is not being streamed is
 * committed before f is sent, as two commits in a row. */
static int sftp_file_commit_after(struct backend_file *bf,
				  struct backend_file *bfirst,
				  struct mv_err *err)
{
	struct sftp_file *f = (struct sftp_file *)bf;
	struct sftp_file *first = (struct sftp_file *)bfirst;
	struct tmp_rename_args t = {NULL, false};
	struct mv_err fe = MV_ERR_INIT;
	int rc, frc;

	if (!first->streaming || f->streaming) {
		rc = sftp_file_commit(bfirst, err);
		if (rc) {
			sftp_file_abort(bf);
			return rc;
		}
		return sftp_file_commit(bf, err);
	}
	/* first is complete: its upload syncs and renames it meanwhile */
	stream_close(first, false);
	rc = upload_new(f, &t.a, err);
	if (!rc) {
		t.a->keep_tmp = true;
		bump_gen(f->sb);
		trace("upload (after)", f->path, 0, (size_t)f->size);
		rc = run(f->sb, "upload", op_upload, t.a, err);
	}
	frc = sftp_file_commit(bfirst, &fe);
	if (frc) {
		/* f's bytes, if they are in its temporary name, are dropped
		 * (an interrupted drop leaves a .tmp- file, as any upload);
		 * first's failure is the one told */
		struct mv_err ign = MV_ERR_INIT;

		if (!rc) {
			t.remove = true;
			run(f->sb, "remove", op_tmp_rename, &t, &ign);
		}
		rc = mv_err_set(err, frc, "%s", mv_err_msg(&fe));
	} else if (!rc) {
		rc = run(f->sb, "rename", op_tmp_rename, &t, err);
	}
	trace("upload done", f->path, (uint64_t)-rc, (size_t)f->size);
	bump_gen(f->sb);
	upload_free(t.a);
	free_file(f);
	return rc;
}

/* ---- create_excl ---- */

struct excl_args {
	const char *rel;
	const void *buf;
	size_t len;
};

/* Whether path already holds exactly buf (a retried create whose first
 * attempt reached the server). */
static bool holds(struct sftp_conn *c, const char *path, const void *buf,
		  size_t len, bool *lost)
{
	LIBSSH2_SFTP_HANDLE *h;
	char *got;
	bool same = false;

	got = malloc(len + 1);
	if (!got)
		return false;
	h = libssh2_sftp_open(c->sftp, path, LIBSSH2_FXF_READ, 0);
	if (h) {
		size_t n = 0;

		for (;;) {
			ssize_t r = libssh2_sftp_read(h, got + n, len + 1 - n);

			if (r <= 0) {
				if (r < 0)
					remote_sftp_errno(c->ssh, c->sftp,
							  lost);
				else
					same = n == len &&
					       !memcmp(got, buf, len);
				break;
			}
			n += (size_t)r;
			if (n > len)
				break;
		}
		if (!*lost)
			libssh2_sftp_close_handle(h);
	}
	free(got);
	return same;
}

static int op_create_excl(struct sftp_backend *sb, struct sftp_conn *c,
			  void *arg, int attempt, bool *lost,
			  struct mv_err *err)
{
	struct excl_args *a = arg;
	LIBSSH2_SFTP_ATTRIBUTES at;
	LIBSSH2_SFTP_HANDLE *h;
	char path[PATH_MAX];
	int rc;

	rc = remote_path(sb, a->rel, path, sizeof(path), err);
	if (rc)
		return rc;
	h = libssh2_sftp_open(c->sftp, path,
			      LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT |
				      LIBSSH2_FXF_EXCL,
			      MV_REPO_FILE_MODE);
	if (!h) {
		rc = remote_sftp_errno(c->ssh, c->sftp, lost);
		if (*lost)
			return rc;
		/* OpenSSH reports an existing file as a plain failure */
		if (stat_path(c, path, &at, lost) == 0) {
			if (attempt > 0 && holds(c, path, a->buf, a->len, lost))
				return 0;
			return *lost ? -EIO : -EEXIST;
		}
		if (*lost)
			return -EIO;
		return mv_err_set(err, rc, "cannot create '%s': %s", path,
				  remote_sftp_strerror(c->ssh, c->sftp));
	}
	rc = write_all(c, h, a->buf, a->len, path, lost, err);
	if (!rc)
		rc = fsync_close(sb, c, h, path, lost, err);
	else if (!*lost)
		libssh2_sftp_close_handle(h);
	if (*lost)
		return rc ? rc : -EIO;
	if (rc && !*lost)
		libssh2_sftp_unlink(c->sftp, path);
	return rc;
}

static int sftp_create_excl(struct backend *be, const char *path,
			    const void *buf, size_t len, struct mv_err *err)
{
	struct excl_args a = {path, buf, len};

	trace("create_excl", path, 0, len);
	return run(to_sftp(be), "create", op_create_excl, &a, err);
}

/* ---- the rest ---- */

/* SFTP has no directory fsync; the server's rename is what publishes a
 * file, and fsync@openssh.com has already made its data durable. */
static int sftp_sync_dir(struct backend *be, const char *path,
			 struct mv_err *err)
{
	(void)be;
	(void)path;
	(void)err;
	return 0;
}

static const char *sftp_local_root(struct backend *be)
{
	(void)be;
	return NULL;
}

/* The cached read handles of every session are closed together: their
 * close requests go out at once and the answers come back in one round
 * trip, where closing them one after the other cost one each (at the end
 * of every command).  A session that does not answer in time is taken
 * as broken, so that dropping it does not wait again. */
static void close_all_cached(struct sftp_backend *sb)
{
	bool pending[POOL_MAX][HANDLE_SLOTS];
	int left = 0, i, k;

	memset(pending, 0, sizeof(pending));
	for (i = 0; i < sb->nconns; i++) {
		struct sftp_conn *c = &sb->conns[i];

		if (!c->sftp)
			continue;
		libssh2_session_set_blocking(ssh_session_handle(c->ssh), 0);
		for (k = 0; k < HANDLE_SLOTS; k++)
			if (c->rh[k].path) {
				pending[i][k] = true;
				left++;
			}
	}
	while (left) {
		struct pollfd pfd[POOL_MAX];
		int np = 0, r;
		bool progress = false;

		for (i = 0; i < sb->nconns; i++) {
			struct sftp_conn *c = &sb->conns[i];
			bool waiting = false;

			for (k = 0; k < HANDLE_SLOTS; k++) {
				if (!pending[i][k])
					continue;
				if (libssh2_sftp_close_handle(c->rh[k].h) ==
				    LIBSSH2_ERROR_EAGAIN) {
					waiting = true;
					continue;
				}
				pending[i][k] = false;
				left--;
				progress = true;
				drop_handle(&c->rh[k], false);
			}
			if (waiting) {
				pfd[np].fd = ssh_session_fd(c->ssh);
				pfd[np].events = POLLIN;
				if (libssh2_session_block_directions(
					    ssh_session_handle(c->ssh)) &
				    LIBSSH2_SESSION_BLOCK_OUTBOUND)
					pfd[np].events |= POLLOUT;
				pfd[np++].revents = 0;
			}
		}
		if (!left || progress)
			continue;
		do {
			r = poll(pfd, (nfds_t)np, sb->opts.io_timeout_s * 1000);
		} while (r < 0 && errno == EINTR);
		if (r <= 0)
			break;
	}
	for (i = 0; i < sb->nconns; i++) {
		struct sftp_conn *c = &sb->conns[i];
		bool broken = false;

		if (!c->sftp)
			continue;
		for (k = 0; k < HANDLE_SLOTS; k++)
			broken |= pending[i][k];
		libssh2_session_set_blocking(ssh_session_handle(c->ssh), 1);
		if (broken)
			conn_drop(c, true);
	}
}

/* Connect the spare session: the handshake (about ten round trips) runs
 * while the caller builds the first pack, not when its upload starts. */
static void *spare_main(void *arg)
{
	struct sftp_backend *sb = arg;
	struct mv_err e = MV_ERR_INIT;
	struct sftp_conn *c = NULL;

	pthread_mutex_lock(&sb->lock);
	if (sb->nconns < sb->max_conns) {
		c = &sb->conns[sb->nconns++];
		c->busy = true;
	}
	pthread_mutex_unlock(&sb->lock);
	/* a failure here is met again, and reported, by the upload that
	 * needs a session */
	if (c && conn_connect(sb, c, &e))
		conn_drop(c, true);
	pthread_mutex_lock(&sb->lock);
	if (c) {
		c->spare = c->sftp != NULL;
		c->busy = false;
	}
	sb->spare_warming = false;
	pthread_cond_broadcast(&sb->cond);
	pthread_mutex_unlock(&sb->lock);
	return NULL;
}

static void sftp_write_ahead(struct backend *be)
{
	struct sftp_backend *sb = to_sftp(be);
	bool have = false;
	int i;

	pthread_mutex_lock(&sb->lock);
	/* a backend kept open for the next command may have one already */
	for (i = 0; i < sb->nconns; i++)
		have |= sb->conns[i].spare && sb->conns[i].sftp;
	if (!have && !sb->spare_started && sb->max_conns > 1 &&
	    sb->nconns < sb->max_conns) {
		sb->spare_warming = true;
		sb->spare_started = !pthread_create(&sb->spare_thread, NULL,
						    spare_main, sb);
		sb->spare_warming = sb->spare_started;
	}
	pthread_mutex_unlock(&sb->lock);
}

/* Wait for the spare session's thread, if one ran. */
static void spare_join(struct sftp_backend *sb)
{
	if (!sb->spare_started)
		return;
	pthread_join(sb->spare_thread, NULL);
	sb->spare_started = false;
}

static void *drop_main(void *arg)
{
	conn_drop(arg, false);
	return NULL;
}

static void sftp_destroy(struct sftp_backend *sb)
{
	pthread_t t[POOL_MAX];
	bool started[POOL_MAX] = {false};
	int i;

	spare_join(sb);
	close_all_cached(sb);
	/* each session's goodbye waits for the server's channel close: the
	 * sessions say it at the same time, one round trip in all */
	for (i = 0; i < sb->nconns; i++)
		started[i] =
			i > 0 && sb->conns[i].ssh &&
			!pthread_create(&t[i], NULL, drop_main, &sb->conns[i]);
	if (sb->nconns)
		conn_drop(&sb->conns[0], false);
	for (i = 1; i < sb->nconns; i++) {
		if (started[i])
			pthread_join(t[i], NULL);
		else
			conn_drop(&sb->conns[i], false);
	}
	pthread_cond_destroy(&sb->cond);
	pthread_mutex_destroy(&sb->lock);
	free(sb->open_ahead);
	ssh_url_release(&sb->url);
	free(sb->identity);
	free(sb->known_hosts);
	free(sb->base.url);
	free(sb);
}

/* One closed backend is kept connected for the next open of the same
 * location in this process (note 6); the rest is closed at exit. */
static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sftp_backend *parked;
static pid_t parked_pid; /* the process that parked it */
static bool park_atexit;

static void park_flush(void)
{
	struct sftp_backend *sb;

	pthread_mutex_lock(&park_lock);
	sb = parked;
	parked = NULL;
	pthread_mutex_unlock(&park_lock);
	/* a forked child that exits through exit() must not say goodbye on
	 * its parent's sessions */
	if (sb && parked_pid == getpid())
		sftp_destroy(sb);
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

/* The parked backend for url and these options, or NULL. */
static struct sftp_backend *park_take(const char *url, const struct ssh_opts *o)
{
	struct sftp_backend *sb = NULL;

	pthread_mutex_lock(&park_lock);
	if (parked && !strcmp(parked->base.url, url) &&
	    same_str(parked->identity, o->identity) &&
	    same_str(parked->known_hosts, o->known_hosts) &&
	    parked->opts.accept_new_host_key == o->accept_new_host_key) {
		sb = parked;
		parked = NULL;
	}
	pthread_mutex_unlock(&park_lock);
	return sb;
}

static void sftp_open_ahead(struct backend *be, const char *path)
{
	struct sftp_backend *sb = to_sftp(be);
	char *p = strdup(path);

	pthread_mutex_lock(&sb->lock);
	free(sb->open_ahead);
	sb->open_ahead = p;
	pthread_mutex_unlock(&sb->lock);
}

static void sftp_close(struct backend *be)
{
	struct sftp_backend *sb = to_sftp(be), *old = NULL;
	bool connected = false;
	int i;

	spare_join(sb);
	for (i = 0; i < sb->nconns; i++)
		connected |= sb->conns[i].sftp != NULL;
	if (connected && !getenv("MAILVAULT_SFTP_NO_PARK")) {
		pthread_mutex_lock(&park_lock);
		old = parked;
		parked = sb;
		parked_pid = getpid();
		if (!park_atexit)
			park_atexit = !atexit(park_flush);
		pthread_mutex_unlock(&park_lock);
		sb = old;
	}
	if (sb)
		sftp_destroy(sb);
}

static const struct backend_ops sftp_ops = {
	.scheme = "sftp",
	.read_at = sftp_read_at,
	.read_many = sftp_read_many,
	.read_all = sftp_read_all,
	.stat_read = sftp_stat_read,
	.open_ahead = sftp_open_ahead,
	.write_ahead = sftp_write_ahead,
	.stat = sftp_stat,
	.list = sftp_list,
	.mkdir = sftp_mkdir,
	.file_create = sftp_file_create,
	.file_write = sftp_file_write,
	.file_commit = sftp_file_commit,
	.file_commit_after = sftp_file_commit_after,
	.file_abort = sftp_file_abort,
	.create_excl = sftp_create_excl,
	.rename = sftp_rename,
	.remove = sftp_remove,
	.sync_dir = sftp_sync_dir,
	.local_root = sftp_local_root,
	.close = sftp_close,
};

/* mkdir -p of the root, one component at a time. */
static int op_make_root(struct sftp_backend *sb, struct sftp_conn *c, void *arg,
			int attempt, bool *lost, struct mv_err *err)
{
	LIBSSH2_SFTP_ATTRIBUTES at;
	char path[PATH_MAX];
	char *p;

	(void)arg;
	(void)attempt;
	snprintf(path, sizeof(path), "%s", sb->url.path);
	for (p = path + 1;; p++) {
		if (*p != '/' && *p)
			continue;
		{
			char saved = *p;

			*p = '\0';
			if (libssh2_sftp_mkdir(c->sftp, path,
					       MV_REPO_DIR_MODE)) {
				int rc = remote_sftp_errno(c->ssh, c->sftp,
							   lost);

				if (*lost)
					return rc;
				if (stat_path(c, path, &at, lost) ||
				    !LIBSSH2_SFTP_S_ISDIR(at.permissions)) {
					if (*lost)
						return -EIO;
					return mv_err_set(
						err, rc,
						"cannot create directory '%s' "
						"on '%s': %s",
						path, ssh_session_name(c->ssh),
						remote_sftp_strerror(c->ssh,
								     c->sftp));
				}
				/* an existing root is the repository's now
				 * (best effort, as for a local one) */
				if (!saved && (at.permissions & 077)) {
					at.flags =
						LIBSSH2_SFTP_ATTR_PERMISSIONS;
					at.permissions &= MV_REPO_DIR_MODE;
					libssh2_sftp_setstat(c->sftp, path,
							     &at);
				}
			}
			*p = saved;
		}
		if (!*p)
			break;
	}
	return 0;
}

static int op_check_root(struct sftp_backend *sb, struct sftp_conn *c,
			 void *arg, int attempt, bool *lost, struct mv_err *err)
{
	LIBSSH2_SFTP_ATTRIBUTES at;
	int rc;

	(void)arg;
	(void)attempt;
	rc = stat_path(c, sb->url.path, &at, lost);
	if (*lost)
		return rc;
	if (rc)
		return mv_err_set(err, rc, "cannot open repository '%s': %s",
				  sb->base.url,
				  remote_sftp_strerror(c->ssh, c->sftp));
	if (!LIBSSH2_SFTP_S_ISDIR(at.permissions))
		return mv_err_set(err, -ENOTDIR,
				  "repository '%s' is not a "
				  "directory",
				  sb->base.url);
	return 0;
}

/* Nothing: run() connects first. */
static int op_connect(struct sftp_backend *sb, struct sftp_conn *c, void *arg,
		      int attempt, bool *lost, struct mv_err *err)
{
	(void)sb;
	(void)c;
	(void)arg;
	(void)attempt;
	(void)lost;
	(void)err;
	return 0;
}

int backend_sftp_open(const char *url, bool create, struct backend **out,
		      struct mv_err *err)
{
	struct sftp_backend *sb;
	struct ssh_opts o;
	int rc;

	ssh_get_default_opts(&o);
	if (!create) {
		sb = park_take(url, &o);
		if (sb) {
			*out = &sb->base;
			return 0;
		}
	}
	sb = calloc(1, sizeof(*sb));
	if (!sb)
		return mv_err_set(err, -ENOMEM, "out of memory");
	pthread_mutex_init(&sb->lock, NULL);
	pthread_cond_init(&sb->cond, NULL);
	sb->base.ops = &sftp_ops;
	sb->base.url = strdup(url);
	if (!sb->base.url) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	rc = ssh_url_parse(url, &sb->url, err);
	if (rc)
		goto fail;
	if (sb->url.scheme != SSH_SCHEME_SFTP) {
		rc = mv_err_set(err, -EINVAL,
				"'%s' is not an sftp:// "
				"location",
				url);
		goto fail;
	}
	ssh_get_default_opts(&sb->opts);
	if (sb->opts.identity) {
		sb->identity = strdup(sb->opts.identity);
		sb->opts.identity = sb->identity;
	}
	if (sb->opts.known_hosts) {
		sb->known_hosts = strdup(sb->opts.known_hosts);
		sb->opts.known_hosts = sb->known_hosts;
	}
	sb->max_conns = MV_MAX(1, MV_MIN(sb->opts.max_connections, POOL_MAX));
	/* an existing repository is not looked at before its config is
	 * read (a round trip): a root that is missing or not a directory
	 * makes that read fail with ENOENT (repo_open says so) */
	if (create) {
		rc = run(sb, "create", op_make_root, NULL, err);
		if (!rc)
			rc = run(sb, "open", op_check_root, NULL, err);
	} else {
		rc = run(sb, "open", op_connect, NULL, err);
	}
	if (rc)
		goto fail;
	*out = &sb->base;
	return 0;
fail:
	sftp_destroy(sb);
	return rc;
}
