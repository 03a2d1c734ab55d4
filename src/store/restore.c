/*
 * restore: file contents and directory restore with metadata (the tar
 * export is restore_tar.c).
 * Workload: whole snapshots (tens of thousands of small files), so chunks
 * are read once each in tree order, and every entry is created relative
 * to its parent's descriptor (no path walks, no symlink following).
 */
#include "restore.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/acl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "backend.h"
#include "mail_view.h"
#include "restore_int.h"
#include "util.h"

/* Read-ahead of a directory's file contents from a remote repository
 * (restore_children): at most this many content bytes per batch. */
#define RESTORE_AHEAD_BYTES ((uint64_t)32 << 20)
#define RESTORE_AHEAD_CHUNKS 4096
/* How far the read-ahead thread may run before the restore: batches and
 * content bytes fetched into the record cache and not yet restored. */
#define RESTORE_AHEAD_MAX_BATCHES 512
#define RESTORE_AHEAD_MAX_BYTES ((uint64_t)128 << 20)
/* The thread fetches consecutive batches together, one request for a
 * group (a batch is one directory's files at most, and a mail volume has
 * thousands of small directories: a round trip each was most of a far
 * restore).  Groups start small, so the restore starts soon, and double
 * up to RESTORE_AHEAD_BYTES; their batches and chunks stay well inside
 * the window above, so the thread never waits on a batch it holds. */
#define RESTORE_GROUP_FIRST ((uint64_t)1 << 20)
#define RESTORE_GROUP_BATCHES 256
#define RESTORE_GROUP_CHUNKS (4 * RESTORE_AHEAD_CHUNKS)

const uint8_t restore_zeros[65536];

int restore_each_content(struct repo *r, const struct tree_entry *e,
			 restore_put_fn put, void *arg, struct mv_err *err)
{
	struct mv_buf chunk = MV_BUF_INIT;
	uint32_t ci, xi = 0;
	uint64_t xoff = 0, pos = 0; /* within extent xi, and plain offset */
	int rc = 0;

	if (e->xform != TREE_XFORM_NONE) {
		/* a mail view entry: the decoded message, cut at its size */
		rc = mail_view_read(r, e, &chunk, err);
		if (!rc && chunk.len)
			rc = put(chunk.data, (size_t)MV_MIN(chunk.len, e->size),
				 0, arg);
		mv_buf_release(&chunk);
		return rc;
	}
	for (ci = 0; !rc && ci < e->nchunks; ci++) {
		size_t done = 0;

		rc = repo_chunk_read(r, e->chunks[ci].id, false, &chunk, err);
		if (rc)
			break;
		if (!e->nextents) {
			rc = put(chunk.data, chunk.len, pos, arg);
			pos += chunk.len;
			continue;
		}
		while (!rc && done < chunk.len) {
			uint64_t room, n;

			if (xi >= e->nextents) {
				rc = mv_err_set(err, -EIO,
						"'%s': content "
						"longer than its extents",
						e->name);
				break;
			}
			room = e->extents[xi].len - xoff;
			n = MV_MIN(room, (uint64_t)(chunk.len - done));
			rc = put(chunk.data + done, (size_t)n,
				 e->extents[xi].offset + xoff, arg);
			done += n;
			xoff += n;
			if (xoff == e->extents[xi].len) {
				xi++;
				xoff = 0;
			}
		}
	}
	mv_buf_release(&chunk);
	return rc;
}

struct fd_put {
	int fd;
	bool seek;
	uint64_t at; /* bytes written so far (non-seek mode) */
	struct mv_err *err;
};

static int write_zeros(int fd, uint64_t n)
{
	while (n) {
		size_t k = (size_t)MV_MIN(n, sizeof(restore_zeros));
		int rc = mv_write_full(fd, restore_zeros, k);

		if (rc)
			return rc;
		n -= k;
	}
	return 0;
}

static int fd_put(const uint8_t *p, size_t n, uint64_t off, void *arg)
{
	struct fd_put *f = arg;
	int rc;

	if (f->seek) {
		while (n) {
			ssize_t w = pwrite(f->fd, p, n, (off_t)off);

			if (w < 0) {
				if (errno == EINTR)
					continue;
				return mv_err_set(f->err, -errno, "write: %s",
						  strerror(errno));
			}
			p += w;
			n -= (size_t)w;
			off += (uint64_t)w;
		}
		return 0;
	}
	if (off > f->at) {
		rc = write_zeros(f->fd, off - f->at);
		if (rc)
			return mv_err_set(f->err, rc, "write: %s",
					  strerror(-rc));
		f->at = off;
	}
	rc = mv_write_full(f->fd, p, n);
	if (rc)
		return mv_err_set(f->err, rc, "write: %s", strerror(-rc));
	f->at += n;
	return 0;
}

int restore_file_to_fd(struct repo *r, const struct tree_entry *e, int fd,
		       bool sparse_seek, struct mv_err *err)
{
	struct fd_put f = {fd, sparse_seek, 0, err};
	int rc;

	rc = restore_each_content(r, e, fd_put, &f, err);
	if (rc)
		return rc;
	if (sparse_seek) {
		if (ftruncate(fd, (off_t)e->size) < 0)
			return mv_err_set(err, -errno, "truncate: %s",
					  strerror(errno));
	} else if (f.at < e->size) {
		rc = write_zeros(fd, e->size - f.at);
		if (rc)
			return mv_err_set(err, rc, "write: %s", strerror(-rc));
	}
	return 0;
}

/* ---- restore to a directory ----------------------------------------- */

/* The read-ahead thread of a remote restore: it walks the tree in the
 * restore's order and fetches each batch read_ahead() would (same rule,
 * same sequence), so the restore finds batch k in the record cache while
 * the thread is fetching k+1..: the waits for the network overlap the
 * writing of the files instead of adding to it. */
struct ahead {
	struct repo *r;
	const struct tree_entry *root; /* a directory */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t done;		   /* batches fetched (or given up) */
	uint64_t used;		   /* batches the restore reached */
	uint64_t *cum;		   /* content bytes of batches 0..k, by k */
	size_t cum_cap;		   /* entries of cum */
	bool finished;		   /* the walk ended */
	bool stop;		   /* the restore ended: stop walking */
	uint8_t (*ids)[MV_ID_LEN]; /* one batch, as collected */
	/* the walking thread's own: the group not yet fetched */
	uint8_t (*gids)[MV_ID_LEN]; /* its chunks (RESTORE_GROUP_CHUNKS) */
	size_t gn;		    /* chunks in gids */
	uint64_t gbatches;	    /* batches in it: done .. done+gbatches */
	uint64_t gbytes;	    /* their content bytes */
	uint64_t gmax; /* bytes of the group after which to fetch */
};

struct rctx {
	struct repo *r;
	const struct restore_opts *o;
	struct restore_stats *st;
	struct restore_links links; /* paths relative to the root */
	int rootfd;		    /* the restore target, walked from */
	size_t rootlen;		    /* of its absolute path */
	bool remote;		    /* read contents ahead (read_ahead) */
	struct ahead *ahead;	    /* the read-ahead thread, or NULL */
	uint64_t batch;		    /* read_ahead() calls so far */
	uint8_t (*ids)[MV_ID_LEN];  /* read_ahead()'s batch */
};

bool restore_name_safe(const struct tree_entry *e)
{
	return e->name_len && strcmp(e->name, ".") && strcmp(e->name, "..") &&
	       !strchr(e->name, '/');
}

static void report(struct rctx *c, const char *path, const struct mv_err *e)
{
	fprintf(stderr, "mailvault: cannot restore '%s': %s\n", path,
		mv_err_msg(e));
	c->st->errors++;
}

/* Metadata is set through a descriptor of the entry restore itself
 * created, never by path: restoring as root into a directory another user
 * can write (a live /var/vmail), that user may replace an entry with a
 * symlink at any moment, and a chmod, chown or ACL by path would then land
 * on the symlink's target.  A regular file or directory is set through
 * the descriptor it was written or walked with; a fifo, socket or device
 * (never opened for I/O) through an O_PATH descriptor and its
 * /proc/self/fd name, which names that inode whatever happens to the path;
 * a symlink through its parent's descriptor with no follow. */
struct meta_target {
	int fd;		  /* the entry, or its parent for a symlink */
	bool opath;	  /* fd is O_PATH: use proc for mode, xattrs, ACLs */
	const char *name; /* a symlink's name in fd, else NULL */
	char proc[64];	  /* /proc/self/fd/N[/name] */
};

static void meta_target_init(struct meta_target *m, int fd, bool opath,
			     const char *name)
{
	m->fd = fd;
	m->opath = opath;
	m->name = name;
	snprintf(m->proc, sizeof(m->proc), "/proc/self/fd/%d", fd);
}

static int set_acl(struct meta_target *m, acl_type_t type, const char *text,
		   struct mv_err *err)
{
	acl_t acl = acl_from_text(text);
	int rc = 0;

	if (!acl)
		rc = -errno;
	else if (type == ACL_TYPE_ACCESS && !m->opath)
		rc = acl_set_fd(m->fd, acl) < 0 ? -errno : 0;
	else /* a default ACL has no descriptor call */
		rc = acl_set_file(m->proc, type, acl) < 0 ? -errno : 0;
	acl_free(acl);
	if (rc)
		return mv_err_set(err, rc, "cannot set %sACL: %s",
				  type == ACL_TYPE_DEFAULT ? "default " : "",
				  strerror(-rc));
	return 0;
}

static int set_xattr(struct meta_target *m, const struct tree_xattr *x)
{
	int r;

	if (m->name) {
		char p[64 + NAME_MAX + 2];

		/* no lsetxattrat: the parent by descriptor, the link itself
		 * not followed */
		snprintf(p, sizeof(p), "%s/%s", m->proc, m->name);
		r = lsetxattr(p, x->name, x->value, x->len, 0);
	} else if (m->opath) {
		r = setxattr(m->proc, x->name, x->value, x->len, 0);
	} else {
		r = fsetxattr(m->fd, x->name, x->value, x->len, 0);
	}
	return r < 0 ? -errno : 0;
}

bool restore_xattr_internal(const char *name)
{
	return !strncmp(name, MAIL_VIEW_XATTR_PREFIX,
			strlen(MAIL_VIEW_XATTR_PREFIX));
}

/* Owner, mode, xattrs, ACLs, times - in that order, since chown clears
 * set-id bits and writing content would change the times. */
static int apply_meta(struct meta_target *m, const struct tree_entry *e,
		      struct mv_err *err)
{
	struct timespec ts[2];
	uint32_t i;
	int rc;

	rc = m->name ? fchownat(m->fd, m->name, e->uid, e->gid,
				AT_SYMLINK_NOFOLLOW)
		     : fchownat(m->fd, "", e->uid, e->gid, AT_EMPTY_PATH);
	if (rc < 0 && errno != EPERM)
		return mv_err_set(err, -errno, "cannot set owner: %s",
				  strerror(errno));
	if (!m->name) {
		rc = m->opath ? chmod(m->proc, e->mode & 07777)
			      : fchmod(m->fd, e->mode & 07777);
		if (rc < 0)
			return mv_err_set(err, -errno, "cannot set mode: %s",
					  strerror(errno));
	}
	for (i = 0; i < e->nxattrs; i++) {
		if (restore_xattr_internal(e->xattrs[i].name))
			continue;
		rc = set_xattr(m, &e->xattrs[i]);
		if (rc && rc != -ENOTSUP && rc != -EPERM)
			return mv_err_set(err, rc, "cannot set xattr '%s': %s",
					  e->xattrs[i].name, strerror(-rc));
	}
	if (!m->name && e->acl_access) {
		rc = set_acl(m, ACL_TYPE_ACCESS, e->acl_access, err);
		if (rc)
			return rc;
	}
	if (!m->name && e->acl_default && e->type == TREE_DIR) {
		rc = set_acl(m, ACL_TYPE_DEFAULT, e->acl_default, err);
		if (rc)
			return rc;
	}
	ts[0].tv_sec = e->mtime_sec;
	ts[0].tv_nsec = e->mtime_nsec;
	ts[1] = ts[0];
	if (m->name)
		rc = utimensat(m->fd, m->name, ts, AT_SYMLINK_NOFOLLOW);
	else if (m->opath)
		rc = utimensat(AT_FDCWD, m->proc, ts, 0);
	else
		rc = futimens(m->fd, ts);
	if (rc < 0)
		return mv_err_set(err, -errno, "cannot set times: %s",
				  strerror(errno));
	return 0;
}

static int restore_entry(struct rctx *c, int dirfd, const char *dirpath,
			 const struct tree_entry *e, int depth);

/* The content chunks of t's regular files from entry *from on, up to
 * RESTORE_AHEAD_BYTES (and RESTORE_AHEAD_CHUNKS), into ids; *from is
 * moved past the files covered, *bytes gets their size.  One batch. */
static size_t ahead_collect(const struct tree *t, uint32_t *from,
			    uint8_t (*ids)[MV_ID_LEN], uint64_t *bytes)
{
	size_t n = 0, k;
	uint32_t i;

	*bytes = 0;
	for (i = *from; i < t->n; i++) {
		const struct tree_entry *e = &t->entries[i];

		if (e->type != TREE_REG || e->xform != TREE_XFORM_NONE)
			continue;
		if (n && (n + e->nchunks > RESTORE_AHEAD_CHUNKS ||
			  *bytes + e->size > RESTORE_AHEAD_BYTES))
			break;
		for (k = 0; k < e->nchunks && n < RESTORE_AHEAD_CHUNKS; k++)
			memcpy(ids[n++], e->chunks[k].id, MV_ID_LEN);
		*bytes += e->size;
	}
	*from = i;
	return n;
}

/* One fetch of a batch into the record cache, where restoring each file
 * then finds its records: repo_chunk_prefetch() (pack spans, every
 * record in them kept), or without a record cache repo_chunk_read_many()
 * (whole pack ranges).  A failure is only a miss: each file reads its
 * own chunks. */
static void ahead_fetch(struct repo *r, const uint8_t (*ids)[MV_ID_LEN],
			size_t n)
{
	struct mv_buf *out;
	size_t k;

	if (n < 2 || repo_chunk_prefetch(r, ids, n) != -ENOTSUP)
		return;
	out = calloc(n, sizeof(*out));
	if (!out)
		return;
	repo_chunk_read_many(r, ids, n, false, out, NULL);
	for (k = 0; k < n; k++)
		mv_buf_release(&out[k]);
	free(out);
}

/* Record the content bytes of batch k (for the window). */
static void ahead_record(struct ahead *a, uint64_t k, uint64_t bytes)
{
	pthread_mutex_lock(&a->lock);
	if (k >= a->cum_cap) {
		size_t cap = a->cum_cap ? 2 * a->cum_cap : 256;
		uint64_t *v = realloc(a->cum, cap * sizeof(*v));

		if (v) {
			a->cum = v;
			a->cum_cap = cap;
		}
	}
	if (k < a->cum_cap)
		a->cum[k] = (k ? a->cum[k - 1] : 0) + bytes;
	pthread_mutex_unlock(&a->lock);
}

/* Wait until batches up to k may be fetched (within the window); false
 * when the restore ended. */
static bool ahead_admit(struct ahead *a, uint64_t k)
{
	bool go;

	pthread_mutex_lock(&a->lock);
	while (!a->stop && k < a->cum_cap && a->used < k &&
	       (k - a->used >= RESTORE_AHEAD_MAX_BATCHES ||
		a->cum[k] - (a->used ? a->cum[a->used - 1] : 0) >
			RESTORE_AHEAD_MAX_BYTES))
		pthread_cond_wait(&a->cond, &a->lock);
	go = !a->stop;
	pthread_mutex_unlock(&a->lock);
	return go;
}

/* Fetch the group held (once admitted) and count its batches done;
 * false when the restore ended. */
static bool ahead_flush(struct ahead *a)
{
	uint64_t k;

	if (!a->gbatches)
		return true;
	pthread_mutex_lock(&a->lock);
	k = a->done + a->gbatches - 1;
	pthread_mutex_unlock(&a->lock);
	if (!ahead_admit(a, k))
		return false;
	ahead_fetch(a->r, (const uint8_t(*)[MV_ID_LEN])a->gids, a->gn);
	pthread_mutex_lock(&a->lock);
	a->done += a->gbatches;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	a->gn = 0;
	a->gbatches = 0;
	a->gbytes = 0;
	a->gmax = MV_MIN(2 * a->gmax, RESTORE_AHEAD_BYTES);
	return true;
}

/* Add the batch in a->ids (n chunks, bytes) to the group, fetching the
 * group first when the batch would overfill it; false when the restore
 * ended. */
static bool ahead_add(struct ahead *a, size_t n, uint64_t bytes)
{
	uint64_t k;

	if (a->gbatches &&
	    (a->gbatches >= RESTORE_GROUP_BATCHES ||
	     a->gn + n > RESTORE_GROUP_CHUNKS || a->gbytes + bytes > a->gmax) &&
	    !ahead_flush(a))
		return false;
	pthread_mutex_lock(&a->lock);
	k = a->done + a->gbatches;
	pthread_mutex_unlock(&a->lock);
	ahead_record(a, k, bytes);
	memcpy(a->gids + a->gn, a->ids, n * sizeof(*a->ids));
	a->gn += n;
	a->gbatches++;
	a->gbytes += bytes;
	return true;
}

static void ahead_walk(struct ahead *a, const struct tree_ref *ref, int depth)
{
	struct tree *t = NULL;
	uint32_t i, from = 0;

	if (depth > 4096 || __atomic_load_n(&a->stop, __ATOMIC_RELAXED) ||
	    tree_load(a->r, ref, &t, NULL))
		return;
	for (i = 0; i < t->n && !__atomic_load_n(&a->stop, __ATOMIC_RELAXED);
	     i++) {
		const struct tree_entry *e = &t->entries[i];

		if (i == from) {
			uint64_t bytes;
			size_t n = ahead_collect(t, &from, a->ids, &bytes);

			if (!ahead_add(a, n, bytes))
				break;
		}
		if (e->type == TREE_DIR && restore_name_safe(e))
			ahead_walk(a, &e->subtree, depth + 1);
	}
	tree_free(t);
}

static void *ahead_main(void *arg)
{
	struct ahead *a = arg;

	ahead_walk(a, &a->root->subtree, 1);
	ahead_flush(a);
	pthread_mutex_lock(&a->lock);
	a->finished = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

static struct ahead *ahead_start(struct repo *r, const struct tree_entry *e)
{
	struct ahead *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->r = r;
	a->root = e;
	a->ids = malloc(RESTORE_AHEAD_CHUNKS * sizeof(*a->ids));
	a->gids = malloc(RESTORE_GROUP_CHUNKS * sizeof(*a->gids));
	a->gmax = RESTORE_GROUP_FIRST;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	if (!a->ids || !a->gids ||
	    pthread_create(&a->thread, NULL, ahead_main, a)) {
		pthread_mutex_destroy(&a->lock);
		pthread_cond_destroy(&a->cond);
		free(a->ids);
		free(a->gids);
		free(a);
		return NULL;
	}
	return a;
}

static void ahead_stop(struct ahead *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->stop = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->thread, NULL);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->cond);
	free(a->cum);
	free(a->ids);
	free(a->gids);
	free(a);
}

/* The restore reached batch k: wait until the thread fetched it (it may
 * be fetching it now), unless the thread's walk ended. */
static void ahead_wait(struct ahead *a, uint64_t k)
{
	pthread_mutex_lock(&a->lock);
	a->used = k;
	pthread_cond_broadcast(&a->cond);
	while (!a->finished && a->done <= k)
		pthread_cond_wait(&a->cond, &a->lock);
	pthread_mutex_unlock(&a->lock);
}

/* Before restoring t's entries from *from on: their contents fetched in
 * one batch (ahead_fetch), or, with the read-ahead thread, waited for.
 * Only for a remote repository: a round trip per chunk is what it saves. */
static void read_ahead(struct rctx *c, const struct tree *t, uint32_t *from)
{
	uint64_t bytes;
	size_t n;

	n = ahead_collect(t, from, c->ids, &bytes);
	if (c->ahead)
		ahead_wait(c->ahead, c->batch++);
	else
		ahead_fetch(c->r, (const uint8_t(*)[MV_ID_LEN])c->ids, n);
}

static int restore_children(struct rctx *c, int fd, const char *path,
			    const struct tree_entry *e, int depth)
{
	struct mv_err err = MV_ERR_INIT;
	struct tree *t = NULL;
	uint32_t i, ahead = 0;
	int rc;

	rc = tree_load(c->r, &e->subtree, &t, &err);
	if (rc) {
		report(c, path, &err);
		return rc;
	}
	for (i = 0; i < t->n; i++) {
		if (c->remote && i == ahead)
			read_ahead(c, t, &ahead);
		restore_entry(c, fd, path, &t->entries[i], depth + 1);
	}
	tree_free(t);
	return 0;
}

const char *restore_links_find(const struct restore_links *l, uint64_t group)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (l->v[i].group == group)
			return l->v[i].path;
	return NULL;
}

void restore_links_add(struct restore_links *l, uint64_t group,
		       const char *path)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct restore_link *p = realloc(l->v, cap * sizeof(*p));

		if (!p)
			return;
		l->v = p;
		l->cap = cap;
	}
	l->v[l->n].group = group;
	l->v[l->n].path = strdup(path);
	if (l->v[l->n].path)
		l->n++;
}

void restore_links_free(struct restore_links *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i].path);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* Link name in dirfd to the first member of its group, at rel below the
 * restore root: walked one directory at a time from the root's descriptor
 * without following symlinks, so a directory replaced on the way makes the
 * link fail instead of landing elsewhere. */
static int link_first(struct rctx *c, const char *rel, int dirfd,
		      const char *name, struct mv_err *err)
{
	char *copy = strdup(rel), *comp, *slash;
	struct stat st;
	int cur = c->rootfd, rc = 0;

	if (!copy)
		return mv_err_set(err, -ENOMEM, "out of memory");
	comp = copy;
	while ((slash = strchr(comp, '/'))) {
		int next;

		*slash = '\0';
		next = openat(cur, comp,
			      O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0) {
			rc = mv_err_set(err, -errno, "link to '%s': %s", rel,
					strerror(errno));
			goto out;
		}
		if (cur != c->rootfd)
			close(cur);
		cur = next;
		comp = slash + 1;
	}
	if (fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISREG(st.st_mode)) {
		rc = mv_err_set(err, -ELOOP,
				"link to '%s': no longer the file "
				"restore wrote",
				rel);
		goto out;
	}
	if (linkat(cur, comp, dirfd, name, 0) < 0)
		rc = mv_err_set(err, -errno, "link to '%s': %s", rel,
				strerror(errno));
out:
	if (cur != c->rootfd)
		close(cur);
	free(copy);
	return rc;
}

/* mkdir name in dirfd (a non-directory there is replaced, an existing
 * directory reused) and open it without following a symlink. */
static int open_dir(int dirfd, const char *name, struct mv_err *err)
{
	int tries;

	for (tries = 0; tries < 2; tries++) {
		int fd;

		if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
			break;
		fd = openat(dirfd, name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0)
			return fd;
		if ((errno != ELOOP && errno != ENOTDIR) || tries)
			break;
		/* a symlink or file in the way: replace it, never enter it */
		if (unlinkat(dirfd, name, 0) < 0)
			break;
	}
	return mv_err_set(err, -errno, "mkdir: %s", strerror(errno));
}

static int restore_entry(struct rctx *c, int dirfd, const char *dirpath,
			 const struct tree_entry *e, int depth)
{
	struct mv_err err = MV_ERR_INIT;
	struct meta_target m;
	char *path = NULL;
	const char *rel;
	int fd = -1, rc = 0;

	if (asprintf(&path, "%s/%s", dirpath, e->name) < 0)
		return -ENOMEM;
	rel = path + c->rootlen + 1;
	if (!restore_name_safe(e) || depth > 4096) {
		mv_err_set(&err, -EINVAL, "unsafe name, not restored");
		report(c, path, &err);
		free(path);
		return -EINVAL;
	}
	if (e->type != TREE_DIR && unlinkat(dirfd, e->name, 0) < 0 &&
	    errno != ENOENT) {
		if (errno == EISDIR)
			unlinkat(dirfd, e->name, AT_REMOVEDIR);
	}
	switch (e->type) {
	case TREE_DIR:
		fd = open_dir(dirfd, e->name, &err);
		if (fd < 0) {
			rc = fd;
			break;
		}
		c->st->dirs++;
		restore_children(c, fd, path, e, depth);
		/* after the children, whose writes change its times */
		meta_target_init(&m, fd, false, NULL);
		rc = apply_meta(&m, e, &err);
		break;
	case TREE_REG: {
		const char *first =
			e->link_group
				? restore_links_find(&c->links, e->link_group)
				: NULL;

		if (first) {
			rc = link_first(c, first, dirfd, e->name, &err);
			c->st->files++;
			goto done; /* metadata is shared with the first */
		}
		fd = openat(dirfd, e->name,
			    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
				    O_CLOEXEC,
			    0600);
		if (fd < 0) {
			rc = mv_err_set(&err, -errno, "create: %s",
					strerror(errno));
			break;
		}
		rc = restore_file_to_fd(c->r, e, fd, true, &err);
		if (!rc) {
			meta_target_init(&m, fd, false, NULL);
			rc = apply_meta(&m, e, &err);
		}
		c->st->files++;
		c->st->bytes += e->size;
		if (!rc && e->link_group)
			restore_links_add(&c->links, e->link_group, rel);
		break;
	}
	case TREE_LNK:
		if (symlinkat(e->target ? e->target : "", dirfd, e->name) < 0) {
			rc = mv_err_set(&err, -errno, "symlink: %s",
					strerror(errno));
		} else {
			meta_target_init(&m, dirfd, false, e->name);
			rc = apply_meta(&m, e, &err);
		}
		c->st->others++;
		break;
	default: {
		mode_t t = e->type == TREE_FIFO	 ? S_IFIFO
			   : e->type == TREE_CHR ? S_IFCHR
			   : e->type == TREE_BLK ? S_IFBLK
						 : S_IFSOCK;
		struct stat st;

		c->st->others++;
		if (mknodat(dirfd, e->name, t | 0600,
			    makedev(e->rdev_major, e->rdev_minor)) < 0) {
			rc = mv_err_set(&err, -errno, "mknod: %s",
					strerror(errno));
			break;
		}
		/* O_PATH: a fifo or device is never opened for I/O */
		fd = openat(dirfd, e->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0 ||
		    (st.st_mode & S_IFMT) != t) {
			rc = mv_err_set(&err, fd < 0 ? -errno : -ELOOP,
					"replaced while restoring");
			break;
		}
		meta_target_init(&m, fd, true, NULL);
		rc = apply_meta(&m, e, &err);
	}
	}
done:
	if (fd >= 0)
		close(fd);
	if (rc)
		report(c, path, &err);
	if (c->o && c->o->verbose && !rc)
		fprintf(stderr, "%s\n", path);
	free(path);
	return rc;
}

int restore_tree(struct repo *r, const struct tree_entry *e, const char *dest,
		 const struct restore_opts *o, struct restore_stats *st,
		 struct mv_err *err)
{
	struct rctx c;
	char abs[PATH_MAX];
	int dirfd, rc = 0;

	memset(&c, 0, sizeof(c));
	c.r = r;
	c.o = o;
	c.st = st;
	c.remote = !repo_backend(r)->ops->local_root(repo_backend(r));
	rc = mv_mkdir_p(dest, 0755);
	if (rc)
		return mv_err_set(err, rc, "cannot create '%s': %s", dest,
				  strerror(-rc));
	if (!realpath(dest, abs))
		return mv_err_set(err, -errno, "cannot resolve '%s': %s", dest,
				  strerror(errno));
	dirfd = open(abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return mv_err_set(err, -errno, "cannot open '%s': %s", abs,
				  strerror(errno));
	c.rootfd = dirfd;
	c.rootlen = strlen(abs);
	if (c.remote) {
		const char *env = getenv("MAILVAULT_RESTORE_AHEAD");

		c.ids = malloc(RESTORE_AHEAD_CHUNKS * sizeof(*c.ids));
		c.remote = c.ids != NULL;
		/* a thread fetches ahead (0 turns it off: one batch at a
		 * time, between the files) */
		if (c.remote && e->type == TREE_DIR &&
		    (!env || strcmp(env, "0")))
			c.ahead = ahead_start(r, e);
	}
	if (e->type == TREE_DIR && !e->name_len) {
		/* the snapshot root: restore its children into dest */
		restore_children(&c, dirfd, abs, e, 0);
	} else {
		restore_entry(&c, dirfd, abs, e, 0);
	}
	close(dirfd);
	ahead_stop(c.ahead);
	free(c.ids);
	restore_links_free(&c.links);
	if (st->errors)
		rc = mv_err_set(err, -EIO, "%llu entries could not be restored",
				(unsigned long long)st->errors);
	return rc;
}
