/*
 * fs_core: the read-only file system behind the FUSE adapters - lookups,
 * attributes, listings, reads, xattrs - over a source of snapshots, trees
 * and chunks.  Expected workload: restores, i.e. a find or rsync walking a
 * whole snapshot once (many lookups, readdirplus, sequential reads of
 * every file), and people opening single messages (cold lookups of a few
 * directories, one small read).
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "mail_view.h"

#define PACK_AHEAD_BYTES (8 * FS_MIB) /* range read of remote packs */
#define UNKNOWN_INO 0xffffffffu	      /* d_ino of entries without a node yet */
#define ACL_ACCESS "system.posix_acl_access"
#define ACL_DEFAULT "system.posix_acl_default"

static const struct tree empty_tree;

static void fh_free(struct fs_fh *fh);

static void fs_log(struct fs *fs, const char *fmt, ...) MV_PRINTF(2, 3);

static void fs_log(struct fs *fs, const char *fmt, ...)
{
	char msg[MV_ERR_MSG_MAX + 512];
	va_list ap;

	if (!fs->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fs->log(fs->log_arg, msg);
}

int64_t fs_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- caches ----------------------------------------------------------- */

struct tree_arg {
	struct fs *fs;
	const struct tree_ref *ref;
};

static int load_tree(void *arg, void **out_value, size_t *out_size,
		     size_t *out_cost, struct mv_err *err)
{
	struct tree_arg *a = arg;
	struct tree *t = NULL;
	size_t raw = 0;
	uint32_t i;
	int rc;

	rc = a->fs->src->tree_load(a->fs->src_ctx, a->ref, &t, err);
	if (rc)
		return rc;
	for (i = 0; i < a->ref->n; i++)
		raw += a->ref->chunks[i].size;
	*out_value = t;
	*out_size = raw;
	*out_cost = 2 * raw + t->n * sizeof(struct tree_entry) + 256;
	return 0;
}

static void free_tree(void *arg, void *value)
{
	struct fs *fs = arg;

	fs->src->tree_free(fs->src_ctx, value);
}

/* The decoded directory of ref, pinned in the tree cache (*out_item NULL
 * for an empty directory). */
int fs_tree_get(struct fs *fs, const struct tree_ref *ref, const char *path,
		struct fs_cache_item **out_item, const struct tree **out)
{
	struct mv_err err = MV_ERR_INIT;
	struct tree_arg a = {fs, ref};
	uint8_t small[8 * MV_ID_LEN], *key = small;
	size_t klen = (size_t)ref->n * MV_ID_LEN;
	uint32_t i;
	int rc;

	*out_item = NULL;
	if (!ref->n) {
		*out = &empty_tree;
		return 0;
	}
	if (klen > sizeof(small)) {
		key = malloc(klen);
		if (!key)
			return -ENOMEM;
	}
	for (i = 0; i < ref->n; i++)
		memcpy(key + (size_t)i * MV_ID_LEN, ref->chunks[i].id,
		       MV_ID_LEN);
	rc = fs_cache_get(&fs->trees, key, klen, load_tree, &a, out_item, &err);
	if (key != small)
		free(key);
	if (rc) {
		fs_log(fs, "cannot read directory '%s': %s", path,
		       mv_err_msg(&err));
		return rc == -ENOMEM ? -ENOMEM : -EIO;
	}
	*out = (*out_item)->value;
	return 0;
}

/* ---- ptree nodes, one at a time (docs/FORMAT-2.md, section 7) ---------
 *
 * A lookup reads one node per level of the directory (root, index
 * nodes, one leaf) instead of the whole directory, and the node it made
 * keeps (leaf, slot), so its attributes come from that one leaf.  Nodes
 * are cached by id, charged one by one, and shared by every snapshot and
 * directory that holds them.  Listings still read whole directories
 * (fs_tree_get); when a directory is cached whole, lookups use it.
 */

struct node_arg {
	struct fs *fs;
	const uint8_t *id;
	int level;
};

static int load_node(void *arg, void **out_value, size_t *out_size,
		     size_t *out_cost, struct mv_err *err)
{
	struct node_arg *a = arg;
	struct ptree_node *nd = NULL;
	int rc;

	rc = a->fs->src->node_load(a->fs->src_ctx, a->id, a->level, &nd, err);
	if (rc == -ENOTSUP) {
		/* format 1: remembered, so the next lookup goes whole at
		 * once (kind 0) */
		nd = calloc(1, sizeof(*nd));
		if (!nd)
			return mv_err_set(err, -ENOMEM, "out of memory");
		memcpy(nd->id, a->id, MV_ID_LEN);
		rc = 0;
	}
	if (rc)
		return rc;
	*out_value = nd;
	*out_size = nd->size;
	*out_cost = ptree_node_cost(nd);
	return 0;
}

static void free_node(void *arg, void *value)
{
	(void)arg;
	ptree_node_free(value);
}

/* Node id at level (-1: a root), pinned in the node cache. */
int fs_node_get(struct fs *fs, const uint8_t id[MV_ID_LEN], int level,
		const char *path, struct fs_cache_item **out_item,
		const struct ptree_node **out)
{
	struct mv_err err = MV_ERR_INIT;
	struct node_arg a = {fs, id, level};
	int rc;

	rc = fs_cache_get(&fs->nodes, id, MV_ID_LEN, load_node, &a, out_item,
			  &err);
	if (rc) {
		fs_log(fs, "cannot read directory '%s': %s", path,
		       mv_err_msg(&err));
		return rc == -ENOMEM ? -ENOMEM : -EIO;
	}
	*out = (*out_item)->value;
	if (level >= 0 && ((*out)->level != level || !(*out)->kind)) {
		/* a node shared with another directory at another level */
		fs_log(fs, "cannot read directory '%s': damaged node", path);
		fs_cache_put(&fs->nodes, *out_item);
		*out_item = NULL;
		return -EIO;
	}
	return 0;
}

/* Whether ref's whole directory is in the tree cache. */
bool fs_tree_cached(struct fs *fs, const struct tree_ref *ref)
{
	return ref->n == 1 &&
	       fs_cache_has(&fs->trees, ref->chunks[0].id, MV_ID_LEN);
}

/* Find raw name in ptree directory ref one node per level: 0 with the
 * leaf pinned in *leaf_item, *slot and the position *pos; -ENOENT when
 * absent; -ENOTSUP when ref is not one ptree that the source reads node
 * by node (the caller reads it whole). */
static int node_find(struct fs *fs, const struct tree_ref *ref,
		     const char *path, const char *name, size_t len,
		     struct fs_cache_item **leaf_item, uint32_t *slot,
		     uint64_t *pos)
{
	struct fs_cache_item *item = NULL;
	const struct ptree_node *nd;
	const struct tree_entry *e;
	uint64_t at = 0;
	int rc;

	*leaf_item = NULL;
	if (!fs->src->node_load || ref->n != 1 || fs_tree_cached(fs, ref))
		return -ENOTSUP;
	rc = fs_node_get(fs, ref->chunks[0].id, -1, path, &item, &nd);
	if (rc)
		return rc;
	if (!nd->kind) {
		fs_cache_put(&fs->nodes, item);
		return -ENOTSUP;
	}
	while (nd->kind == PTREE_INDEX) {
		const struct ptree_child *c =
			&nd->kids[ptree_node_find(nd, name, len)];
		struct fs_cache_item *down = NULL;

		at += c->before;
		rc = fs_node_get(fs, c->id, nd->level - 1, path, &down, &nd);
		fs_cache_put(&fs->nodes, item);
		item = down;
		if (rc)
			return rc;
	}
	e = tree_find(nd->leaf, name, len);
	if (!e) {
		fs_cache_put(&fs->nodes, item);
		return -ENOENT;
	}
	*slot = (uint32_t)(e - nd->leaf->entries);
	*pos = at + *slot;
	*leaf_item = item;
	return 0;
}

/* What pin_entry() holds: a whole directory or one leaf. */
struct held {
	struct fs_cache *cache;
	struct fs_cache_item *item;
};

static void held_put(struct fs *fs, struct held *h)
{
	(void)fs;
	if (h->cache)
		fs_cache_put(h->cache, h->item);
	h->cache = NULL;
	h->item = NULL;
}

/* A chunk must decode to the size its tree records. */
static int chunk_size_check(const struct tree_chunk *c, size_t len,
			    struct mv_err *err)
{
	char hex[2 * MV_ID_LEN + 1];

	if (len == c->size)
		return 0;
	mv_hex(c->id, MV_ID_LEN, hex);
	return mv_err_set(err, -EIO, "chunk %s has %zu bytes, the tree says %u",
			  hex, len, c->size);
}

struct chunk_arg {
	struct fs *fs;
	const struct tree_chunk *c;
};

static int load_chunk(void *arg, void **out_value, size_t *out_size,
		      size_t *out_cost, struct mv_err *err)
{
	struct chunk_arg *a = arg;
	void *data = NULL;
	size_t len = 0;
	int rc;

	rc = a->fs->src->chunk_read(a->fs->src_ctx, a->c->id, &data, &len, err);
	if (rc)
		return rc;
	rc = chunk_size_check(a->c, len, err);
	if (rc) {
		free(data);
		return rc;
	}
	*out_value = data;
	*out_size = len;
	*out_cost = len + 128;
	return 0;
}

static void free_chunk(void *arg, void *value)
{
	(void)arg;
	free(value);
}

static int chunk_get(struct fs *fs, const struct tree_chunk *c,
		     struct fs_cache_item **out, struct mv_err *err)
{
	struct chunk_arg a = {fs, c};

	return fs_cache_get(&fs->chunks, c->id, MV_ID_LEN, load_chunk, &a, out,
			    err);
}

static void prefetch_chunk(void *arg, const struct tree_chunk *c)
{
	struct fs *fs = arg;
	struct fs_cache_item *it = NULL;

	/* a failure is reported by the reader that needs the chunk */
	if (!chunk_get(fs, c, &it, NULL))
		fs_cache_put(&fs->chunks, it);
}

/* ---- setup ------------------------------------------------------------ */

int fs_refresh(struct fs *fs, bool force, struct mv_err *err)
{
	struct fs_snap_info *list = NULL;
	size_t n = 0;
	bool changed = false;
	int64_t now = fs_mono_ns();
	struct mv_err local = MV_ERR_INIT;
	int rc = 0;

	if (!err)
		err = &local;
	pthread_mutex_lock(&fs->refresh_lock);
	if (!force && now - fs->refreshed_ns < FS_REFRESH_NS)
		goto out;
	fs->refreshed_ns = now;
	rc = fs->src->refresh(fs->src_ctx, &changed, err);
	if (rc || (!changed && !force && !fs->stale))
		goto out;
	/* the change is seen once: until the list is read, keep trying */
	fs->stale = true;
	rc = fs->src->list(fs->src_ctx, &list, &n, err);
	if (rc)
		goto out;
	rc = fs_itable_update(&fs->itab, list, n);
	if (rc) {
		mv_err_set(err, rc, "cannot update the snapshot list");
	} else {
		int64_t t = MV_MAX(mv_now_ns(), fs->top_ns + 1);

		fs->stale = false;
		/* the listings of the top directories may have changed:
		 * their new mtime makes the kernel drop its cached ones */
		__atomic_store_n(&fs->top_ns, t, __ATOMIC_RELAXED);
	}
	fs_snap_info_free(list, n);
out:
	if (rc && fs->log)
		fs_log(fs, "cannot read the snapshot list: %s",
		       mv_err_msg(err));
	pthread_mutex_unlock(&fs->refresh_lock);
	return rc;
}

int fs_new(const struct fs_source_ops *src, void *src_ctx,
	   const struct fs_opts *o, struct fs **out, struct mv_err *err)
{
	struct fs *fs;
	size_t total;
	int rc;

	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return mv_err_set(err, -ENOMEM, "out of memory");
	fs->src = src;
	fs->src_ctx = src_ctx;
	fs->opts = *o;
	fs->uid = getuid();
	fs->gid = getgid();
	fs->top_ns = mv_now_ns();
	pthread_mutex_init(&fs->refresh_lock, NULL);
	pthread_mutex_init(&fs->fh_lock, NULL);
	pthread_mutex_init(&fs->readers_lock, NULL);
	pthread_mutex_init(&fs->stream_lock, NULL);
	fs->bare_small = FS_BARE_SMALL;
	total = (size_t)MV_MAX(o->cache_mib, FS_CACHE_MIN_MIB) * FS_MIB;
	rc = fs_itable_init(&fs->itab);
	if (rc) {
		pthread_mutex_destroy(&fs->refresh_lock);
		pthread_mutex_destroy(&fs->fh_lock);
		pthread_mutex_destroy(&fs->readers_lock);
		pthread_mutex_destroy(&fs->stream_lock);
		free(fs);
		return mv_err_set(err, rc, "out of memory");
	}
	if (fs_cache_init(&fs->trees, total / 4, free_tree, fs) ||
	    fs_cache_init(&fs->nodes, total / 16, free_node, fs) ||
	    fs_cache_init(&fs->chunks, total - total / 4 - total / 16,
			  free_chunk, fs)) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	/* remote: one request for a range of a pack instead of a round
	 * trip per file; bounded by a quarter of the chunk cache */
	if (o->pack_ahead_mib >= 0)
		fs->pack_ahead = (size_t)o->pack_ahead_mib * FS_MIB;
	else if (src->chunks_fetch && src->remote && src->remote(src_ctx))
		fs->pack_ahead = PACK_AHEAD_BYTES;
	if (!src->chunks_fetch)
		fs->pack_ahead = 0;
	fs->pack_ahead = MV_MIN(fs->pack_ahead, fs->chunks.limit / 4);
	rc = fs_refresh(fs, true, err);
	if (rc)
		goto fail;
	*out = fs;
	return 0;
fail:
	fs_free(fs);
	return rc;
}

/* Copy of ref's chunk list (the tree that holds ref may be evicted). */
int fs_ref_dup(struct tree_ref *dst, const struct tree_ref *src)
{
	dst->n = src->n;
	dst->chunks = malloc((size_t)MV_MAX(src->n, 1) * sizeof(*dst->chunks));
	if (!dst->chunks)
		return -ENOMEM;
	memcpy(dst->chunks, src->chunks, (size_t)src->n * sizeof(*dst->chunks));
	return 0;
}

/* The directories of the newest snapshot of each name, breadth first,
 * into the tree cache until they fill half of it (trees already cached
 * count too), at most FS_WARM_TREES of them.  A restore or a find walks
 * a whole snapshot, someone looking for one message walks one path down
 * it: either way the trees are then in memory, and a cold disk costs one
 * read per message instead of one per directory level.  Breadth first,
 * so the paths someone opens right after mounting come first; the mount
 * answers meanwhile (concurrent loads of one tree wait for each other). */
static void warm_trees(struct fs *fs)
{
	struct tree_ref *q = NULL;
	size_t n = 0, cap = 0, head = 0, loaded = 0, charged = 0, i;

	if (fs_itable_latest_roots(&fs->itab, &q, &n))
		return;
	cap = n;
	while (head < n && loaded < FS_WARM_TREES &&
	       !__atomic_load_n(&fs->stopping, __ATOMIC_RELAXED)) {
		struct fs_cache_item *item = NULL;
		const struct tree *t;
		bool warmed_xform = false;
		uint32_t k;

		/* what the warm-up loaded, not what the cache holds: that
		 * stays below its limit however much is loaded */
		if (charged > fs->trees.limit / 2)
			break;
		loaded++;
		if (fs_tree_get(fs, &q[head], "(warm)", &item, &t)) {
			head++;
			continue;
		}
		charged += item ? item->cost : 0;
		for (k = 0; k < t->n; k++) {
			/* one message per folder loads its keys (cached
			 * per process: mostly the first folder does) */
			if (t->entries[k].xform && !warmed_xform &&
			    fs->src->xform_warm) {
				fs->src->xform_warm(fs->src_ctx,
						    &t->entries[k]);
				warmed_xform = true;
			}
			if (t->entries[k].type != TREE_DIR ||
			    !t->entries[k].subtree.n)
				continue;
			if (n == cap) {
				size_t nc = cap ? 2 * cap : 64;
				struct tree_ref *nq =
					realloc(q, nc * sizeof(*q));

				if (!nq)
					break;
				q = nq;
				cap = nc;
			}
			if (fs_ref_dup(&q[n], &t->entries[k].subtree))
				break;
			n++;
		}
		fs_cache_put(&fs->trees, item);
		free(q[head].chunks);
		q[head].chunks = NULL;
		head++;
	}
	for (i = head; i < n; i++)
		free(q[i].chunks);
	free(q);
}

static void *warm_main(void *arg)
{
	struct fs *fs = arg;

	/* background work: the first requests of someone waiting for the
	 * mount go first (Linux: nice is per thread) */
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);

	if (fs->src->warm)
		fs->src->warm(fs->src_ctx);
	warm_trees(fs);
	return NULL;
}

int fs_start(struct fs *fs, struct mv_err *err)
{
	int rc = fs_prefetch_start(&fs->ahead, prefetch_chunk, fs);

	if (rc)
		return mv_err_set(err, rc, "cannot start read-ahead: %s",
				  strerror(-rc));
	/* a hint: the mount works without it */
	if (!pthread_create(&fs->warm_thread, NULL, warm_main, fs))
		fs->warming = true;
	return 0;
}

void fs_free(struct fs *fs)
{
	unsigned i;

	if (!fs)
		return;
	__atomic_store_n(&fs->stopping, true, __ATOMIC_RELAXED);
	if (fs->warming)
		pthread_join(fs->warm_thread, NULL);
	fs_prefetch_stop(&fs->ahead);
	for (i = 0; i < FS_FH_SLOTS; i++)
		fh_free(fs->fh_slots[i].fh);
	fs_ahead_release(fs);
	pthread_mutex_destroy(&fs->stream_lock);
	pthread_mutex_destroy(&fs->fh_lock);
	fs_cache_release(&fs->chunks);
	fs_cache_release(&fs->trees);
	fs_cache_release(&fs->nodes);
	fs_itable_release(&fs->itab);
	pthread_mutex_destroy(&fs->refresh_lock);
	pthread_mutex_destroy(&fs->readers_lock);
	free(fs);
}

void fs_set_log(struct fs *fs, void (*log)(void *arg, const char *msg),
		void *arg)
{
	fs->log = log;
	fs->log_arg = arg;
}

void fs_stats(struct fs *fs, struct fs_stats *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&fs->trees.lock);
	out->tree_hits = fs->trees.hits;
	out->tree_misses = fs->trees.misses;
	out->tree_bytes = fs->trees.used;
	pthread_mutex_unlock(&fs->trees.lock);
	pthread_mutex_lock(&fs->nodes.lock);
	out->node_hits = fs->nodes.hits;
	out->node_misses = fs->nodes.misses;
	out->node_bytes = fs->nodes.used;
	pthread_mutex_unlock(&fs->nodes.lock);
	pthread_mutex_lock(&fs->chunks.lock);
	out->chunk_hits = fs->chunks.hits;
	out->chunk_misses = fs->chunks.misses;
	out->chunk_bytes = fs->chunks.used;
	pthread_mutex_unlock(&fs->chunks.lock);
	pthread_mutex_lock(&fs->itab.lock);
	out->nodes = fs->itab.nnodes;
	pthread_mutex_unlock(&fs->itab.lock);
	out->ranges_waited =
		__atomic_load_n(&fs->ranges_waited, __ATOMIC_RELAXED);
	out->ranges_ahead =
		__atomic_load_n(&fs->ranges_ahead, __ATOMIC_RELAXED);
}

/* ---- attributes -------------------------------------------------------- */

static mode_t type_bits(uint8_t type)
{
	switch (type) {
	case TREE_DIR:
		return S_IFDIR;
	case TREE_LNK:
		return S_IFLNK;
	case TREE_FIFO:
		return S_IFIFO;
	case TREE_CHR:
		return S_IFCHR;
	case TREE_BLK:
		return S_IFBLK;
	case TREE_SOCK:
		return S_IFSOCK;
	default:
		return S_IFREG;
	}
}

static void entry_stat(const struct tree_entry *e, uint64_t ino,
		       struct stat *st)
{
	uint64_t stored = e->size;

	memset(st, 0, sizeof(*st));
	st->st_ino = (ino_t)ino;
	st->st_mode = type_bits(e->type) | (e->mode & 07777);
	st->st_nlink =
		e->type == TREE_DIR ? 2 + e->nsubdirs : MV_MAX(e->nlink, 1u);
	st->st_uid = e->uid;
	st->st_gid = e->gid;
	st->st_size = (off_t)e->size;
	if (e->type == TREE_LNK && e->target)
		st->st_size = (off_t)strlen(e->target);
	if (e->nextents) {
		uint32_t i;

		stored = 0;
		for (i = 0; i < e->nextents; i++)
			stored += e->extents[i].len;
	}
	if (e->type == TREE_REG || e->type == TREE_DIR)
		st->st_blocks = (blkcnt_t)((stored + 511) / 512);
	if (e->type == TREE_CHR || e->type == TREE_BLK)
		st->st_rdev = makedev(e->rdev_major, e->rdev_minor);
	st->st_blksize = 128 * 1024;
	st->st_mtim.tv_sec = e->mtime_sec;
	st->st_mtim.tv_nsec = e->mtime_nsec;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

static void top_stat(struct fs *fs, const struct fs_pin *p, struct stat *st)
{
	/* the root and the name directories change when snapshots come
	 * and go; the kernel caches their listings until their mtime does */
	int64_t t = __atomic_load_n(&fs->top_ns, __ATOMIC_RELAXED);
	char target[128];

	memset(st, 0, sizeof(*st));
	st->st_ino = (ino_t)p->ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2;
	st->st_blksize = 4096;
	if (p->kind == FS_SNAP) {
		t = p->snap->time_ns;
	} else if (p->kind == FS_LATEST) {
		st->st_mode = S_IFLNK | 0777;
		st->st_nlink = 1;
		if (!fs_itable_latest(&fs->itab, p->parent, target,
				      sizeof(target), &t))
			st->st_size = (off_t)strlen(target);
	}
	st->st_mtim.tv_sec = t / 1000000000;
	st->st_mtim.tv_nsec = t % 1000000000;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

/* Entry i of the n entries held in h->item of cache: -EIO (and nothing
 * held) when the pin points past them. */
static int held_entry(struct fs *fs, struct held *h, struct fs_cache *cache,
		      const struct tree_entry *entries, uint32_t n, uint32_t i,
		      const struct tree_entry **out)
{
	h->cache = cache;
	if (i >= n) {
		held_put(fs, h);
		return -EIO;
	}
	*out = &entries[i];
	return 0;
}

/* The entry a pinned ENTRY node stands for, with its leaf or its whole
 * directory held (give it back with held_put). */
static int pin_entry(struct fs *fs, const struct fs_pin *p, struct held *h,
		     const struct tree_entry **out)
{
	const struct ptree_node *nd;
	const struct tree *t;
	int rc;

	h->cache = NULL;
	h->item = NULL;
	if (p->has_leaf && !fs_tree_cached(fs, &p->dir->ref)) {
		rc = fs_node_get(fs, p->leaf, 0, p->dir->path, &h->item, &nd);
		return rc ? rc
			  : held_entry(fs, h, &fs->nodes, nd->leaf->entries,
				       nd->n, p->slot, out);
	}
	rc = fs_tree_get(fs, &p->dir->ref, p->dir->path, &h->item, &t);
	return rc ? rc
		  : held_entry(fs, h, &fs->trees, t->entries, t->n, p->index,
			       out);
}

/* ---- lookups ------------------------------------------------------------ */

static int name_cmp(const struct tree_entry *e, const char *name, size_t len)
{
	size_t n = MV_MIN(e->name_len, len);
	int c = memcmp(e->name, name, n);

	if (c)
		return c;
	return e->name_len < len ? -1 : e->name_len > len;
}

static long find_raw(const struct tree *t, const char *raw, size_t len)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = name_cmp(&t->entries[mid], raw, len);

		if (!c)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* The name entry e of t is shown under: its own when plain, else its
 * escaped form, made long when the short one is a plain sibling's name. */
static void show_in_dir(const struct tree *t, const struct tree_entry *e,
			char *out)
{
	size_t n = fs_name_show(e->name, e->name_len, false, out);

	if (fs_name_is_hostile(e->name, e->name_len) &&
	    find_raw(t, out, n) >= 0)
		fs_name_show(e->name, e->name_len, true, out);
}

/* Index of the entry shown as shown, or -1. */
static long find_shown(const struct tree *t, const char *shown)
{
	char raw[FS_NAME_MAX + 1], check[FS_NAME_MAX + 1];
	size_t len;
	long idx;
	int rc;

	/* a plain entry always owns its own name */
	len = strlen(shown);
	idx = find_raw(t, shown, len);
	if (idx >= 0 && !fs_name_is_hostile(shown, len))
		return idx;
	if (shown[0] != '%')
		return -1;
	rc = fs_name_parse(shown, raw, &len);
	if (rc == -ENAMETOOLONG) {
		size_t i;

		for (i = 0; i < t->n; i++) {
			if (!fs_name_is_hostile(t->entries[i].name,
						t->entries[i].name_len))
				continue;
			show_in_dir(t, &t->entries[i], check);
			if (!strcmp(check, shown))
				return (long)i;
		}
		return -1;
	}
	if (rc)
		return -1;
	idx = find_raw(t, raw, len);
	if (idx < 0)
		return -1;
	show_in_dir(t, &t->entries[idx], check);
	return strcmp(check, shown) ? -1 : idx;
}

static int entry_out(struct fs *fs, const struct fs_pin *parent,
		     const struct tree *t, uint32_t index, const char *shown,
		     struct fuse_entry_param *out)
{
	const struct tree_entry *e = &t->entries[index];
	uint64_t ino;
	int rc;

	rc = fs_itable_lookup_entry(&fs->itab, parent, shown, e, index, &ino);
	if (rc)
		return rc;
	memset(out, 0, sizeof(*out));
	entry_stat(e, ino, &out->attr);
	out->ino = ino;
	out->attr_timeout = FS_SNAP_TIMEOUT;
	out->entry_timeout = FS_SNAP_TIMEOUT;
	return 0;
}

static int leaf_entry_out(struct fs *fs, const struct fs_pin *parent,
			  const struct ptree_node *leaf, uint32_t slot,
			  uint32_t index, const char *shown,
			  struct fuse_entry_param *out)
{
	const struct tree_entry *e = &leaf->leaf->entries[slot];
	uint64_t ino;
	int rc;

	rc = fs_itable_lookup_leaf(&fs->itab, parent, shown, e, index, leaf->id,
				   slot, &ino);
	if (rc)
		return rc;
	memset(out, 0, sizeof(*out));
	entry_stat(e, ino, &out->attr);
	out->ino = ino;
	out->attr_timeout = FS_SNAP_TIMEOUT;
	out->entry_timeout = FS_SNAP_TIMEOUT;
	return 0;
}

static bool is_dir_pin(const struct fs_pin *p)
{
	return p->kind == FS_SNAP ||
	       (p->kind == FS_ENTRY && p->type == TREE_DIR);
}

int fs_do_lookup(struct fs *fs, uint64_t parent, const char *name,
		 struct fuse_entry_param *out)
{
	struct fs_pin p, child;
	struct fs_cache_item *item = NULL;
	const struct tree *t;
	long idx;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = fs_itable_pin(&fs->itab, parent, &p);
	if (rc)
		return rc;
	if (p.kind == FS_ROOT || p.kind == FS_NAME) {
		fs_refresh(fs, false, NULL);
		rc = fs_itable_lookup_top(&fs->itab, parent, name, &child);
		out->entry_timeout = FS_TOP_TIMEOUT;
		out->attr_timeout = FS_TOP_TIMEOUT;
		if (rc == -ENOENT) {
			rc = 0; /* a miss the kernel may cache briefly */
		} else if (!rc) {
			top_stat(fs, &child, &out->attr);
			out->ino = child.ino;
			fs_itable_unpin(&fs->itab, &child);
		}
		goto out;
	}
	if (!is_dir_pin(&p)) {
		rc = -ENOTDIR;
		goto out;
	}
	/* a plain name is found one node per level; an escaped one ('%')
	 * needs its siblings' names, so the whole directory */
	if (name[0] != '%' && !fs_name_is_hostile(name, strlen(name))) {
		uint32_t slot;
		uint64_t pos;

		rc = node_find(fs, &p.self->ref, p.self->path, name,
			       strlen(name), &item, &slot, &pos);
		if (!rc) {
			const struct ptree_node *leaf = item->value;

			rc = leaf_entry_out(fs, &p, leaf, slot, (uint32_t)pos,
					    name, out);
			fs_cache_put(&fs->nodes, item);
			goto out;
		}
		if (rc == -ENOENT) {
			rc = 0;
			out->entry_timeout = FS_SNAP_TIMEOUT; /* cached miss */
			goto out;
		}
		if (rc != -ENOTSUP)
			goto out;
		item = NULL;
	}
	rc = fs_tree_get(fs, &p.self->ref, p.self->path, &item, &t);
	if (rc)
		goto out;
	idx = find_shown(t, name);
	if (idx < 0)
		out->entry_timeout = FS_SNAP_TIMEOUT; /* cached miss */
	else
		rc = entry_out(fs, &p, t, (uint32_t)idx, name, out);
	fs_cache_put(&fs->trees, item);
out:
	fs_itable_unpin(&fs->itab, &p);
	return rc;
}

void fs_do_forget(struct fs *fs, uint64_t ino, uint64_t nlookup)
{
	fs_itable_forget(&fs->itab, ino, nlookup);
}

int fs_do_getattr(struct fs *fs, uint64_t ino, struct stat *out,
		  double *out_timeout)
{
	struct held item = {NULL, NULL};
	const struct tree_entry *e;
	struct fs_pin p;
	int rc;

	rc = fs_itable_pin(&fs->itab, ino, &p);
	if (rc)
		return rc;
	if (p.kind != FS_ENTRY) {
		if (p.kind == FS_ROOT || p.kind == FS_NAME)
			fs_refresh(fs, false, NULL);
		top_stat(fs, &p, out);
		*out_timeout = FS_TOP_TIMEOUT;
		goto out;
	}
	rc = pin_entry(fs, &p, &item, &e);
	if (rc)
		goto out;
	entry_stat(e, ino, out);
	*out_timeout = FS_SNAP_TIMEOUT;
	held_put(fs, &item);
out:
	fs_itable_unpin(&fs->itab, &p);
	return rc;
}

int fs_do_readlink(struct fs *fs, uint64_t ino, char **out)
{
	struct held item = {NULL, NULL};
	const struct tree_entry *e;
	struct fs_pin p;
	char target[128];
	int64_t t;
	int rc;

	rc = fs_itable_pin(&fs->itab, ino, &p);
	if (rc)
		return rc;
	if (p.kind == FS_LATEST) {
		rc = fs_itable_latest(&fs->itab, p.parent, target,
				      sizeof(target), &t);
		if (!rc) {
			*out = strdup(target);
			rc = *out ? 0 : -ENOMEM;
		}
		goto out;
	}
	if (p.kind != FS_ENTRY || p.type != TREE_LNK) {
		rc = -EINVAL;
		goto out;
	}
	rc = pin_entry(fs, &p, &item, &e);
	if (rc)
		goto out;
	*out = strdup(e->target ? e->target : "");
	rc = *out ? 0 : -ENOMEM;
	held_put(fs, &item);
out:
	fs_itable_unpin(&fs->itab, &p);
	return rc;
}

/* ---- directories ------------------------------------------------------ */

int fs_do_opendir(struct fs *fs, uint64_t ino, struct fs_dh **out)
{
	struct fs_dh *dh = calloc(1, sizeof(*dh));
	int rc;

	if (!dh)
		return -ENOMEM;
	rc = fs_itable_pin(&fs->itab, ino, &dh->pin);
	if (rc) {
		free(dh);
		return rc;
	}
	if (dh->pin.kind == FS_ROOT || dh->pin.kind == FS_NAME) {
		fs_refresh(fs, false, NULL);
		rc = fs_itable_list_top(&fs->itab, ino, &dh->top, &dh->ntop);
	} else if (is_dir_pin(&dh->pin)) {
		rc = fs_tree_get(fs, &dh->pin.self->ref, dh->pin.self->path,
				 &dh->tree, &dh->t);
	} else {
		rc = -ENOTDIR;
	}
	if (rc) {
		fs_do_releasedir(fs, dh);
		return rc;
	}
	*out = dh;
	return 0;
}

/* ---- readers' habits --------------------------------------------------- */

/* The slot of pid (readers_lock held): its own, else a free or the
 * least recently seen one, reset. */
static struct fs_reader *reader_slot(struct fs *fs, int pid)
{
	struct fs_reader *old = &fs->readers[0];
	unsigned i;

	for (i = 0; i < FS_READERS; i++) {
		struct fs_reader *r = &fs->readers[i];

		if (r->pid == pid)
			goto found;
		if (r->seen_ns < old->seen_ns)
			old = r;
	}
	old->pid = pid;
	old->stats = false;
	old->bare = 0;
	i = (unsigned)(old - fs->readers);
found:
	fs->readers[i].seen_ns = fs_mono_ns();
	return &fs->readers[i];
}

/* Whether one of the first n entries of t is not a directory. */
bool fs_has_files(const struct tree *t, size_t n)
{
	size_t i;

	for (i = 0; i < n && i < t->n; i++)
		if (t->entries[i].type != TREE_DIR)
			return true;
	return false;
}

int fs_reader_listing(struct fs *fs, int pid, const struct fs_dh *dh, off_t off)
{
	size_t n = dh->t ? dh->t->n : 0;
	struct fs_reader *r;
	int how = FS_LIST_PLUS;

	pthread_mutex_lock(&fs->readers_lock);
	r = reader_slot(fs, pid);
	if (!r->stats && dh->t) {
		size_t probe = n;

		if (n <= fs->bare_small || r->bare >= FS_WALKER_DIRS) {
			how = FS_LIST_DIRS;
		} else {
			how = FS_LIST_PROBE;
			probe = FS_PROBE_ENTRIES;
		}
		/* evidence of a walker: files it was not given, at the
		 * start of each listing */
		if (off <= 0 && fs_has_files(dh->t, probe))
			r->bare++;
	}
	pthread_mutex_unlock(&fs->readers_lock);
	if (how == FS_LIST_PLUS && off <= 0)
		fs_ahead_listed(fs, dh);
	return how;
}

static void bare_listed(struct fs *fs, uint64_t ino)
{
	pthread_mutex_lock(&fs->readers_lock);
	fs->bare[fs->nbare++ % FS_BARE_DIRS] = ino;
	pthread_mutex_unlock(&fs->readers_lock);
}

int fs_do_lookup_by(struct fs *fs, int pid, uint64_t parent, const char *name,
		    struct fuse_entry_param *out)
{
	uint64_t *inval = NULL;
	size_t n = 0, i;
	struct fs_reader *r;
	int rc = fs_do_lookup(fs, parent, name, out);

	/* only entries inside snapshots get FS_SNAP_TIMEOUT */
	if (rc || !out->ino || S_ISDIR(out->attr.st_mode) ||
	    out->entry_timeout != FS_SNAP_TIMEOUT)
		return rc;
	pthread_mutex_lock(&fs->readers_lock);
	r = reader_slot(fs, pid);
	if (!r->stats) {
		r->stats = true;
		n = MV_MIN(fs->nbare, (size_t)FS_BARE_DIRS);
		inval = malloc(MV_MAX(n, 1) * sizeof(*inval));
		if (inval)
			memcpy(inval, fs->bare, n * sizeof(*inval));
		else
			n = 0;
		fs->nbare = 0;
	}
	pthread_mutex_unlock(&fs->readers_lock);
	for (i = 0; i < n && fs->inval_dir; i++)
		fs->inval_dir(fs->inval_arg, inval[i]);
	free(inval);
	return rc;
}

/* ---- listings ----------------------------------------------------------- */

int fs_do_readdir(struct fs *fs, struct fs_dh *dh, off_t off, int how,
		  fs_emit_fn *emit, void *arg)
{
	size_t total = 2 + (dh->top || !dh->t ? dh->ntop : dh->t->n);
	bool plus = how != FS_LIST_NAMES, bare = false;
	size_t i;
	int rc = 0;

	for (i = off < 0 ? 0 : (size_t)off; i < total; i++) {
		struct fuse_entry_param e;
		char shown[FS_NAME_MAX + 1];
		const char *nm = shown;

		memset(&e, 0, sizeof(e));
		e.attr.st_mode = S_IFDIR;
		if (i < 2) {
			nm = i == 0 ? "." : "..";
			e.attr.st_ino =
				(ino_t)(i == 0 ? dh->pin.ino : dh->pin.parent);
		} else if (!dh->t) {
			const struct fs_topent *te = &dh->top[i - 2];

			nm = te->shown;
			if (plus) {
				rc = fs_do_lookup(fs, dh->pin.ino, nm, &e);
				if (rc)
					break;
				if (!e.ino)
					continue; /* vanished meanwhile */
			} else {
				e.attr.st_ino = (ino_t)te->ino;
				e.attr.st_mode = te->type;
			}
		} else {
			const struct tree_entry *te = &dh->t->entries[i - 2];

			show_in_dir(dh->t, te, shown);
			if (plus &&
			    (how == FS_LIST_PLUS || te->type == TREE_DIR ||
			     (how == FS_LIST_PROBE &&
			      i - 2 >= FS_PROBE_ENTRIES))) {
				rc = entry_out(fs, &dh->pin, dh->t,
					       (uint32_t)(i - 2), shown, &e);
				if (rc)
					break;
			} else {
				uint64_t ino =
					fs_itable_peek(&fs->itab, dh->pin.ino,
						       shown, te, dh->pin.snap);

				/* no attributes: e.ino stays 0 */
				bare |= plus;
				e.attr.st_ino =
					(ino_t)(ino ? ino : UNKNOWN_INO);
				e.attr.st_mode = type_bits(te->type);
			}
		}
		if (emit(arg, nm, &e, (off_t)(i + 1))) {
			if (e.ino)
				fs_do_forget(fs, e.ino, 1);
			break;
		}
	}
	if (bare)
		bare_listed(fs, dh->pin.ino);
	return rc;
}

void fs_do_releasedir(struct fs *fs, struct fs_dh *dh)
{
	if (!dh)
		return;
	fs_cache_put(&fs->trees, dh->tree);
	fs_topent_free(dh->top, dh->ntop);
	fs_itable_unpin(&fs->itab, &dh->pin);
	free(dh);
}

/* ---- files ------------------------------------------------------------ */

static void fh_free(struct fs_fh *fh)
{
	if (!fh)
		return;
	free(fh->chunks);
	free(fh->offs);
	free(fh->extents);
	free(fh->ext_data);
	free(fh->path);
	free(fh->decoded);
	free(fh->dref.chunks);
	pthread_mutex_destroy(&fh->lock);
	free(fh);
}

static struct fs_fh *fh_new(const struct tree_entry *e, uint64_t ino,
			    const struct fs_dir *dir, uint32_t index)
{
	const char *dir_path = dir->path;
	struct fs_fh *fh = calloc(1, sizeof(*fh));
	char shown[FS_NAME_MAX + 1];
	size_t pl = strlen(dir_path), sl;
	uint32_t i;

	if (!fh)
		return NULL;
	pthread_mutex_init(&fh->lock, NULL);
	fh->ino = ino;
	fh->size = e->size;
	fh->nchunks = e->nchunks;
	fh->nextents = e->nextents;
	sl = fs_name_show(e->name, e->name_len, false, shown);
	fh->path = malloc(pl + sl + 2);
	fh->chunks = malloc((e->nchunks + 1) * sizeof(*fh->chunks));
	fh->offs = malloc((e->nchunks + 1) * sizeof(*fh->offs));
	fh->extents = malloc((e->nextents + 1) * sizeof(*fh->extents));
	fh->ext_data = malloc((e->nextents + 1) * sizeof(*fh->ext_data));
	fh->dref.chunks = malloc((dir->ref.n + 1) * sizeof(*fh->dref.chunks));
	if (!fh->path || !fh->chunks || !fh->offs || !fh->extents ||
	    !fh->ext_data || !fh->dref.chunks) {
		fh_free(fh);
		return NULL;
	}
	if (dir->ref.n)
		memcpy(fh->dref.chunks, dir->ref.chunks,
		       dir->ref.n * sizeof(*fh->dref.chunks));
	fh->dref.n = dir->ref.n;
	fh->dindex = index;
	memcpy(fh->path, dir_path, pl);
	fh->path[pl] = '/';
	memcpy(fh->path + pl + 1, shown, sl + 1);
	if (e->nchunks)
		memcpy(fh->chunks, e->chunks, e->nchunks * sizeof(*e->chunks));
	fh->offs[0] = 0;
	for (i = 0; i < e->nchunks; i++)
		fh->offs[i + 1] = fh->offs[i] + e->chunks[i].size;
	if (e->nextents)
		memcpy(fh->extents, e->extents,
		       e->nextents * sizeof(*e->extents));
	fh->ext_data[0] = 0;
	for (i = 0; i < e->nextents; i++)
		fh->ext_data[i + 1] = fh->ext_data[i] + e->extents[i].len;
	return fh;
}

/* Entries whose chunks are not their content (decrypted, decompressed
 * mail of the mail view) are decoded once per open file and read from
 * memory; at most e->size bytes are shown, the size getattr gave. */
static int open_decoded(struct fs *fs, const struct tree_entry *e,
			struct fs_fh *fh)
{
	struct mv_err err = MV_ERR_INIT;
	void *data = NULL;
	size_t len = 0;
	int rc;

	if ((e->xform != TREE_XFORM_MAILCRYPT &&
	     e->xform != TREE_XFORM_STALWART_DUMP) ||
	    !fs->src->xform_read) {
		fs_log(fs, "cannot read '%s': unknown content transform %u",
		       fh->path, (unsigned)e->xform);
		return -EIO;
	}
	rc = fs->src->xform_read(fs->src_ctx, e, &data, &len, &err);
	if (rc) {
		fs_log(fs, "cannot decode '%s': %s", fh->path,
		       mv_err_msg(&err));
		return rc == -ENOMEM ? -ENOMEM : -EIO;
	}
	if (len < e->size) {
		/* never pad with bytes that were not stored */
		fs_log(fs,
		       "cannot read '%s': it decodes to %zu bytes, %llu "
		       "were recorded",
		       fh->path, len, (unsigned long long)e->size);
		free(data);
		return -EIO;
	}
	fh->decoded = data;
	fh->decoded_len = (size_t)e->size;
	fh->nchunks = 0;
	fh->nextents = 0;
	return 0;
}

int fs_do_open(struct fs *fs, uint64_t ino, int flags, struct fs_fh **out)
{
	struct held item = {NULL, NULL};
	const struct tree_entry *e;
	struct fs_pin p;
	int rc;

	if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC))
		return -EROFS;
	rc = fs_itable_pin(&fs->itab, ino, &p);
	if (rc)
		return rc;
	if (p.kind != FS_ENTRY || p.type != TREE_REG) {
		rc = is_dir_pin(&p) || p.kind == FS_ROOT || p.kind == FS_NAME
			     ? -EISDIR
			     : -EINVAL;
		goto out;
	}
	rc = pin_entry(fs, &p, &item, &e);
	if (rc)
		goto out;
	*out = fh_new(e, ino, p.dir, p.index);
	rc = *out ? 0 : -ENOMEM;
	if (!rc && p.has_leaf) {
		(*out)->has_leaf = true;
		(*out)->slot = p.slot;
		memcpy((*out)->leaf, p.leaf, MV_ID_LEN);
	}
	if (!rc && e->xform != TREE_XFORM_NONE)
		rc = open_decoded(fs, e, *out);
	if (rc && *out) {
		fh_free(*out);
		*out = NULL;
	}
	held_put(fs, &item);
out:
	fs_itable_unpin(&fs->itab, &p);
	return rc;
}

void fs_do_release(struct fs *fs, struct fs_fh *fh)
{
	(void)fs;
	fh_free(fh);
}

static struct fs_fh_slot *fh_slot_find(struct fs *fs, uint64_t ino)
{
	unsigned i;

	for (i = 0; i < FS_FH_SLOTS; i++)
		if (fs->fh_slots[i].ino == ino)
			return &fs->fh_slots[i];
	return NULL;
}

int fs_fh_get(struct fs *fs, uint64_t ino, struct fs_fh **out)
{
	struct fs_fh_slot *s, *victim = NULL;
	struct fs_fh *fh = NULL;
	unsigned i;
	int rc;

	pthread_mutex_lock(&fs->fh_lock);
	s = fh_slot_find(fs, ino);
	if (s)
		goto hit;
	pthread_mutex_unlock(&fs->fh_lock);
	rc = fs_do_open(fs, ino, O_RDONLY, &fh);
	if (rc)
		return rc;
	pthread_mutex_lock(&fs->fh_lock);
	s = fh_slot_find(fs, ino);
	if (s) { /* another reader was first */
		fh_free(fh);
		goto hit;
	}
	for (i = 0; i < FS_FH_SLOTS; i++) {
		s = &fs->fh_slots[i];
		if (!s->refs && (!victim || s->used < victim->used))
			victim = s;
	}
	if (!victim) { /* every slot busy: this read alone */
		pthread_mutex_unlock(&fs->fh_lock);
		fh->ino = 0;
		*out = fh;
		return 0;
	}
	fh_free(victim->fh);
	s = victim;
	s->ino = ino;
	s->fh = fh;
hit:
	s->refs++;
	s->used = ++fs->fh_tick;
	*out = s->fh;
	pthread_mutex_unlock(&fs->fh_lock);
	return 0;
}

void fs_fh_put(struct fs *fs, struct fs_fh *fh)
{
	struct fs_fh_slot *s;

	if (!fh)
		return;
	pthread_mutex_lock(&fs->fh_lock);
	s = fh->ino ? fh_slot_find(fs, fh->ino) : NULL;
	if (s && s->fh == fh)
		s->refs--;
	pthread_mutex_unlock(&fs->fh_lock);
	if (!s || s->fh != fh)
		fh_free(fh);
}

/* Index of the chunk holding data offset doff. */
uint32_t fs_chunk_at(const struct fs_fh *fh, uint64_t doff)
{
	uint32_t lo = 0, hi = fh->nchunks;

	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (fh->offs[mid] <= doff)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* ---- reads ------------------------------------------------------------
 *
 * A read is answered with an iovec pointing into the cached chunks it
 * covers (pinned until the reply is written), into the open file's decoded
 * buffer, or at zeros for holes: nothing is copied in user space and no
 * buffer of the read's size is allocated (fuse_reply_iov).
 */

static const char zeros[64 * 1024];

static int iov_add(struct fs_iov *v, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (v->niov == FS_IOV_MAX)
		return -E2BIG;
	v->iov[v->niov].iov_base = (void *)(uintptr_t)p;
	v->iov[v->niov].iov_len = n;
	v->niov++;
	v->len += n;
	return 0;
}

static int iov_zeros(struct fs_iov *v, size_t n)
{
	while (n) {
		size_t k = MV_MIN(n, sizeof(zeros));
		int rc = iov_add(v, zeros, k);

		if (rc)
			return rc;
		n -= k;
	}
	return 0;
}

void fs_iov_init(struct fs_iov *v)
{
	v->niov = v->nitems = 0;
	v->len = 0;
	v->direct = (struct mv_buf)MV_BUF_INIT;
}

void fs_iov_free(struct fs_iov *v)
{
	if (!v)
		return;
	mv_buf_release(&v->direct);
	free(v);
}

void fs_iov_release(struct fs *fs, struct fs_iov *v)
{
	unsigned i;

	for (i = 0; i < v->nitems; i++)
		fs_cache_put(&fs->chunks, v->items[i]);
	v->nitems = 0;
	v->niov = 0;
	v->len = 0;
}

/* Largest chunk read around the cache (a worker's buffer grows to it). */
#define FS_DIRECT_MAX ((size_t)256 << 10)

/* The one chunk of a small file read whole, into the vector's own buffer
 * (see struct fs_iov): no allocation, no cache insert and eviction. */
static int read_direct(struct fs *fs, struct fs_fh *fh, struct fs_iov *v,
		       struct mv_err *err)
{
	int rc = fs->src->chunk_read_buf(fs->src_ctx, fh->chunks[0].id,
					 &v->direct, err);

	if (!rc)
		rc = chunk_size_check(&fh->chunks[0], v->direct.len, err);
	if (rc) {
		fs_log(fs, "cannot read '%s': %s", fh->path, mv_err_msg(err));
		mv_err_clear(err);
		return rc == -ENOMEM ? -ENOMEM : -EIO;
	}
	return iov_add(v, (const char *)v->direct.data, v->direct.len);
}

/* Add n bytes of the data stream from doff; -E2BIG when the vector is
 * full (what was added stays). */
static int read_data(struct fs *fs, struct fs_fh *fh, uint64_t doff, size_t n,
		     struct fs_iov *v)
{
	struct mv_err err = MV_ERR_INIT;
	uint32_t k;

	if (n == 0)
		return 0;
	if (doff + n > fh->offs[fh->nchunks]) {
		fs_log(fs,
		       "cannot read '%s': its chunks hold %llu bytes, "
		       "%llu needed",
		       fh->path, (unsigned long long)fh->offs[fh->nchunks],
		       (unsigned long long)(doff + n));
		return -EIO;
	}
	for (k = fs_chunk_at(fh, doff); n; k++) {
		struct fs_cache_item *it = NULL;
		size_t in = (size_t)(doff - fh->offs[k]);
		size_t take = MV_MIN(n, fh->chunks[k].size - in);
		int rc;

		if (v->niov == FS_IOV_MAX)
			return -E2BIG;
		if (fh->nchunks == 1 && in == 0 && take == fh->chunks[k].size &&
		    take <= FS_DIRECT_MAX && !fs->pack_ahead &&
		    !v->direct.len && fs->src->chunk_read_buf &&
		    !fs_cache_has(&fs->chunks, fh->chunks[k].id, MV_ID_LEN)) {
			rc = read_direct(fs, fh, v, &err);
			if (rc)
				return rc;
			doff += take;
			n -= take;
			continue;
		}
		/* a chunk a range read brings is waited for, not read again */
		if (fs->pack_ahead &&
		    !fs_cache_ready(&fs->chunks, fh->chunks[k].id, MV_ID_LEN))
			fs_ahead_range(fs, fh, k);
		rc = chunk_get(fs, &fh->chunks[k], &it, &err);
		if (rc) {
			fs_log(fs, "cannot read '%s' at offset %llu: %s",
			       fh->path, (unsigned long long)fh->offs[k],
			       mv_err_msg(&err));
			mv_err_clear(&err);
			return rc == -ENOMEM ? -ENOMEM : -EIO;
		}
		v->items[v->nitems++] = it;
		iov_add(v, (const char *)it->value + in, take);
		doff += take;
		n -= take;
	}
	return 0;
}

/* Index of the first extent that ends after pos, or nextents. */
static uint32_t extent_at(const struct fs_fh *fh, uint64_t pos)
{
	uint32_t lo = 0, hi = fh->nextents;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct tree_extent *x = &fh->extents[mid];

		if (x->offset + x->len <= pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The bytes [pos, end) of a sparse file: holes and extents. */
static int read_sparse(struct fs *fs, struct fs_fh *fh, uint64_t pos,
		       uint64_t end, struct fs_iov *v, uint64_t *dend)
{
	uint32_t j = extent_at(fh, pos);
	int rc = 0;

	while (!rc && pos < end) {
		const struct tree_extent *x = &fh->extents[j];
		uint64_t stop;

		if (j >= fh->nextents || x->offset >= end)
			return iov_zeros(v, (size_t)(end - pos));
		if (x->offset > pos) {
			rc = iov_zeros(v, (size_t)(x->offset - pos));
			pos = x->offset;
			if (rc)
				break;
		}
		stop = MV_MIN(end, x->offset + x->len);
		*dend = fh->ext_data[j] + (stop - x->offset);
		rc = read_data(fs, fh, fh->ext_data[j] + (pos - x->offset),
			       (size_t)(stop - pos), v);
		pos = stop;
		j++;
	}
	return rc;
}

int fs_do_read_iov(struct fs *fs, struct fs_fh *fh, size_t size, off_t off,
		   struct fs_iov *v)
{
	uint64_t pos = (uint64_t)off, end, dend = 0;
	int rc;

	memset(v, 0, offsetof(struct fs_iov, iov));
	v->direct.len = 0; /* the buffer itself stays for the next read */
	if (off < 0)
		return -EINVAL;
	if (pos >= fh->size || size == 0)
		return 0;
	end = MV_MIN(fh->size, pos + size);
	if (fh->decoded) /* open_decoded() made decoded_len == size */
		return iov_add(v, fh->decoded + pos, (size_t)(end - pos));
	if (fs->pack_ahead && fh->dref.n)
		fs_ahead_check(fs, fh);
	if (!fh->nextents) {
		rc = read_data(fs, fh, pos, (size_t)(end - pos), v);
		dend = pos + v->len;
	} else {
		rc = read_sparse(fs, fh, pos, end, v, &dend);
	}
	if (rc && rc != -E2BIG) {
		fs_iov_release(fs, v);
		return rc;
	}
	fs_ahead_sequential(fs, fh, (uint64_t)off, pos + v->len, dend);
	return 0;
}

int fs_do_read(struct fs *fs, struct fs_fh *fh, char *buf, size_t size,
	       off_t off, size_t *out_len)
{
	struct fs_iov *v = malloc(sizeof(*v));
	int rc = 0;

	*out_len = 0;
	if (!v)
		return -ENOMEM;
	fs_iov_init(v);
	while (*out_len < size) {
		unsigned i;

		rc = fs_do_read_iov(fs, fh, size - *out_len,
				    off + (off_t)*out_len, v);
		if (rc || v->len == 0)
			break;
		for (i = 0; i < v->niov; i++) {
			memcpy(buf + *out_len, v->iov[i].iov_base,
			       v->iov[i].iov_len);
			*out_len += v->iov[i].iov_len;
		}
		fs_iov_release(fs, v);
	}
	fs_iov_free(v);
	if (rc)
		*out_len = 0;
	return rc;
}

int fs_do_lseek(struct fs *fs, struct fs_fh *fh, off_t off, int whence,
		off_t *out)
{
	uint64_t pos = (uint64_t)off;
	uint32_t j;

	(void)fs;
	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	if (off < 0 || pos >= fh->size)
		return -ENXIO;
	if (!fh->nextents) {
		*out = whence == SEEK_DATA ? off : (off_t)fh->size;
		return 0;
	}
	j = extent_at(fh, pos);
	while (j < fh->nextents && fh->extents[j].len == 0)
		j++;
	if (whence == SEEK_DATA) {
		if (j >= fh->nextents || fh->extents[j].offset >= fh->size)
			return -ENXIO;
		*out = (off_t)MV_MAX(pos, fh->extents[j].offset);
		return 0;
	}
	for (; j < fh->nextents && fh->extents[j].offset <= pos; j++)
		pos = MV_MAX(pos, fh->extents[j].offset + fh->extents[j].len);
	*out = (off_t)MV_MIN(pos, fh->size);
	return 0;
}

int fs_do_statfs(struct fs *fs, struct statvfs *out)
{
	memset(out, 0, sizeof(*out));
	out->f_bsize = 4096;
	out->f_frsize = 4096;
	out->f_namemax = FS_NAME_MAX;
	out->f_flag = ST_RDONLY;
	pthread_mutex_lock(&fs->itab.lock);
	out->f_files = fs->itab.next_ino;
	pthread_mutex_unlock(&fs->itab.lock);
	return 0;
}

/* ---- xattrs ----------------------------------------------------------- */

static int give(const void *val, size_t len, void *buf, size_t size,
		size_t *out_len)
{
	*out_len = len;
	if (size == 0)
		return 0;
	if (size < len)
		return -ERANGE;
	if (len)
		memcpy(buf, val, len);
	return 0;
}

/* Xattrs of mailvault's own (the keys of a mail view entry) are not the
 * user's and are never shown. */
static bool xattr_internal(const char *name)
{
	return !strncmp(name, MAIL_VIEW_XATTR_PREFIX,
			sizeof(MAIL_VIEW_XATTR_PREFIX) - 1);
}

static const struct tree_xattr *xattr_find(const struct tree_entry *e,
					   const char *name)
{
	uint32_t i;

	if (xattr_internal(name))
		return NULL;
	for (i = 0; i < e->nxattrs; i++)
		if (!strcmp(e->xattrs[i].name, name))
			return &e->xattrs[i];
	return NULL;
}

int fs_do_getxattr(struct fs *fs, uint64_t ino, const char *name, void *buf,
		   size_t size, size_t *out_len)
{
	struct held item = {NULL, NULL};
	const struct tree_entry *e;
	const struct tree_xattr *x;
	const char *acl = NULL;
	struct fs_pin p;
	int rc;

	rc = fs_itable_pin(&fs->itab, ino, &p);
	if (rc)
		return rc;
	if (p.kind != FS_ENTRY) {
		rc = -ENODATA;
		goto out;
	}
	rc = pin_entry(fs, &p, &item, &e);
	if (rc)
		goto out;
	x = xattr_find(e, name);
	if (x) {
		rc = give(x->value, x->len, buf, size, out_len);
	} else {
		if (!strcmp(name, ACL_ACCESS))
			acl = e->acl_access;
		else if (!strcmp(name, ACL_DEFAULT))
			acl = e->acl_default;
		rc = -ENODATA;
	}
	if (acl) {
		struct mv_buf b = MV_BUF_INIT;

		rc = fs_acl_to_xattr(acl, &b);
		if (rc == -EINVAL)
			fs_log(fs, "cannot show the ACL of '%s/%s': '%s'",
			       p.dir->path, e->name, acl);
		if (!rc)
			rc = give(b.data, b.len, buf, size, out_len);
		else if (rc != -ENOMEM)
			rc = -EIO;
		mv_buf_release(&b);
	}
	held_put(fs, &item);
out:
	fs_itable_unpin(&fs->itab, &p);
	return rc;
}

int fs_do_listxattr(struct fs *fs, uint64_t ino, char *buf, size_t size,
		    size_t *out_len)
{
	struct held item = {NULL, NULL};
	const struct tree_entry *e;
	struct mv_buf b = MV_BUF_INIT;
	struct fs_pin p;
	uint32_t i;
	int rc;

	rc = fs_itable_pin(&fs->itab, ino, &p);
	if (rc)
		return rc;
	if (p.kind != FS_ENTRY) {
		rc = give("", 0, buf, size, out_len);
		goto out;
	}
	rc = pin_entry(fs, &p, &item, &e);
	if (rc)
		goto out;
	for (i = 0; i < e->nxattrs && !rc; i++)
		if (!xattr_internal(e->xattrs[i].name))
			rc = mv_buf_append(&b, e->xattrs[i].name,
					   strlen(e->xattrs[i].name) + 1);
	if (!rc && e->acl_access && !xattr_find(e, ACL_ACCESS))
		rc = mv_buf_append(&b, ACL_ACCESS, sizeof(ACL_ACCESS));
	if (!rc && e->acl_default && !xattr_find(e, ACL_DEFAULT))
		rc = mv_buf_append(&b, ACL_DEFAULT, sizeof(ACL_DEFAULT));
	if (!rc)
		rc = give(b.data, b.len, buf, size, out_len);
	mv_buf_release(&b);
	held_put(fs, &item);
out:
	fs_itable_unpin(&fs->itab, &p);
	return rc;
}
