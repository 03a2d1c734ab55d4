/*
 * fs_ahead: what the mount reads ahead of a reader (docs/MOUNT.md, "Reads
 * ahead of a remote reader").  Three kinds, all on the read-ahead threads
 * (fs->ahead) so that the reading FUSE worker waits only for what it
 * needs now:
 *   - a sequential reader of one file gets its next chunks loaded
 *     (fs_ahead_sequential; local and remote);
 *   - a remote reader that misses reads a range of the pack holding the
 *     chunk and the next files of its directory (fs_ahead_range), and the
 *     directory's next ranges go out as it reads on (streams,
 *     fs_ahead_check);
 *   - the files of directories rsync listed with attributes come in
 *     batches (listed, fs_ahead_listed).
 * The state (streams, listed directories, the ramp) lives in struct fs
 * under stream_lock and fh_lock (fs_int.h); fs_ahead_release frees it.
 */
#include "fs_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define READAHEAD_BYTES (8 * FS_MIB) /* ahead of a sequential reader */
#define READAHEAD_CHUNKS 32
#define PACK_AHEAD_FIRST (1 * FS_MIB) /* the first one in a directory */
#define DIR_AHEAD_BYTES (4 * FS_MIB)  /* of one listed directory, at once */
#define DIR_AHEAD_FILES 64
#define AHEAD_LIST_MAX 1024 /* chunks considered for one range read */
#define RANGE_SPAN_MIN ((size_t)256 << 10) /* pack bytes of a request */
#define RANGE_REQUESTS 16 /* a background range read sends at most */

static bool listed_due(struct fs *fs, unsigned at_least);
static void listed_queue(struct fs *fs);

/* ---- ahead of the reader: the next files of the directory -------------
 *
 * rsync and cp read a directory's files one after the other, in the order
 * of the listing, and ingest stored them in that order, so the records a
 * restore needs next follow each other in a pack.
 */

/* Where collect_*() put the chunks a range read should bring. */
struct collect {
	struct tree_chunk *list; /* max entries */
	size_t n, max;
	size_t bytes, budget; /* raw bytes collected, and the most wanted */
};

static bool collect_full(const struct collect *c)
{
	return c->n >= c->max || c->bytes >= c->budget;
}

/* The chunks of ch[k..n) the cache lacks; true when all went in. */
static bool collect_chunks(struct fs *fs, struct collect *c,
			   const struct tree_chunk *ch, uint32_t k, uint32_t n)
{
	for (; k < n; k++) {
		if (collect_full(c))
			return false;
		if (fs_cache_has(&fs->chunks, ch[k].id, MV_ID_LEN))
			continue;
		c->list[c->n++] = ch[k];
		c->bytes += ch[k].size;
	}
	return true;
}

/* The missing chunks of the regular files of t from entry first on, at
 * most files of them.  Returns the index of the first entry not taken
 * whole: where the next range starts. */
static uint32_t collect_files(struct fs *fs, struct collect *c,
			      const struct tree *t, uint32_t first,
			      uint32_t files)
{
	uint32_t i;

	for (i = first; i < t->n && files; i++) {
		const struct tree_entry *e = &t->entries[i];

		if (e->type != TREE_REG || e->xform != TREE_XFORM_NONE)
			continue;
		if (collect_full(c))
			break;
		files--;
		if (!collect_chunks(fs, c, e->chunks, 0, e->nchunks))
			break;
	}
	return i;
}

/* Chunks a reader of fh needs soon and the cache lacks: fh's own from
 * chunk k on, then those of the next regular files of its directory, up
 * to c->budget bytes.  *out_end: where a range after this one starts in
 * fh's directory, 0 when there is nothing after it or the directory is
 * not read whole (a cold cat of one file found by lookup). */
static void collect_ahead(struct fs *fs, const struct fs_fh *fh, uint32_t k,
			  struct collect *c, uint32_t *out_end)
{
	struct fs_cache_item *item = NULL;
	const struct tree *t;
	uint32_t end;

	*out_end = 0;
	if (!collect_chunks(fs, c, fh->chunks, k, fh->nchunks) || !fh->dref.n)
		return;
	if (fh->has_leaf && !fs_tree_cached(fs, &fh->dref)) {
		/* a reader of one file found by lookup (a cold cat): the
		 * next files of its leaf, not its whole directory */
		const struct ptree_node *nd;

		if (fs_node_get(fs, fh->leaf, 0, fh->path, &item, &nd))
			return;
		collect_files(fs, c, nd->leaf, fh->slot + 1, DIR_AHEAD_FILES);
		fs_cache_put(&fs->nodes, item);
		return;
	}
	if (fs_tree_get(fs, &fh->dref, fh->path, &item, &t))
		return;
	end = collect_files(fs, c, t, fh->dindex + 1, DIR_AHEAD_FILES);
	if (end < t->n)
		*out_end = end;
	fs_cache_put(&fs->trees, item);
}

struct range_fill {
	struct fs *fs;
	const struct tree_chunk *want;
	struct fs_cache_item **items; /* claimed, NULL once filled */
};

static void range_got(void *arg, size_t i, void *data, size_t len)
{
	struct range_fill *f = arg;

	if (!f->items[i] || len != f->want[i].size) {
		free(data); /* not claimed, or the size check of load_chunk */
		return;
	}
	fs_cache_fill(&f->fs->chunks, f->items[i], data, len, len + 128);
	f->items[i] = NULL;
}

/* Pack bytes one request may span for chunks of raw bytes in all: about
 * the size of what is wanted (records compress, so up to about twice
 * their stored size), within [RANGE_SPAN_MIN, max].  Records of one
 * directory lie close together but not in the order a reader wants them
 * (ingest follows the source's order): a wider span brings records
 * nobody asked for, which a slow link pays for more than a round trip. */
static size_t range_span(size_t bytes, size_t max)
{
	return MV_MIN(max, MV_MAX(bytes, RANGE_SPAN_MIN));
}

/* Claim what c collected and nobody loads yet (list[0] claimed: must be
 * want, when given), read it with chunks_fetch, spans of up to max bytes
 * of pack, give up whatever the requests did not bring.  A reader (want)
 * sends one request; the background sends more, each from the first
 * chunk still missing, while they bring something (RANGE_REQUESTS at
 * most).  Returns the requests sent. */
static unsigned range_read(struct fs *fs, struct collect *c,
			   const uint8_t *want, size_t max)
{
	struct fs_cache_item **items = calloc(MV_MAX(c->n, 1), sizeof(*items));
	struct range_fill f = {fs, c->list, items};
	size_t i, m = 0, bytes = 0;
	unsigned sent = 0;

	if (!items)
		return 0;
	for (i = 0; i < c->n; i++) {
		if (fs_cache_claim(&fs->chunks, c->list[i].id, MV_ID_LEN,
				   &items[m]))
			continue;
		bytes += c->list[i].size;
		c->list[m++] = c->list[i];
	}
	if (!m || (want && memcmp(c->list[0].id, want, MV_ID_LEN)))
		goto release;
	for (;;) {
		size_t left = 0;

		if (fs->src->chunks_fetch(fs->src_ctx, c->list, m,
					  range_span(bytes, max), range_got, &f,
					  NULL))
			break;
		sent++;
		if (want || sent >= RANGE_REQUESTS ||
		    __atomic_load_n(&fs->stopping, __ATOMIC_RELAXED))
			break;
		/* what this one did not bring, for the next */
		bytes = 0;
		for (i = 0; i < m; i++) {
			if (!items[i])
				continue;
			bytes += c->list[i].size;
			c->list[left] = c->list[i];
			items[left++] = items[i];
		}
		if (!left || left == m)
			break;
		m = left;
	}
release:
	for (i = 0; i < m; i++)
		if (items[i])
			fs_cache_abandon(&fs->chunks, items[i]);
	free(items);
	return sent;
}

/* How much one range read takes (fh: a new read for fh, which moves the
 * ramp; NULL: the size just decided).  Like the kernel's read-ahead it
 * starts small, so one cold message comes back after one short transfer,
 * and doubles while a reader goes on through the same directory, up to
 * fs->pack_ahead: a restore pays a round trip per range, not per file. */
static size_t range_size(struct fs *fs, const struct fs_fh *fh)
{
	const uint8_t *dir = fh && fh->dref.n ? fh->dref.chunks[0].id : NULL;
	size_t r;

	pthread_mutex_lock(&fs->fh_lock);
	if (fh) {
		if (dir && !memcmp(dir, fs->ramp_dir, MV_ID_LEN) &&
		    fh->dindex >= fs->ramp_index && fs->ramp)
			fs->ramp = MV_MIN(2 * fs->ramp, fs->pack_ahead);
		else
			fs->ramp = MV_MIN(PACK_AHEAD_FIRST, fs->pack_ahead);
		if (dir)
			memcpy(fs->ramp_dir, dir, MV_ID_LEN);
		fs->ramp_index = fh->dindex;
	}
	r = fs->ramp ? fs->ramp : fs->pack_ahead;
	pthread_mutex_unlock(&fs->fh_lock);
	return r;
}

/* ---- ranges ahead: the next range of a directory in the background ----
 *
 * Like the kernel's asynchronous read-ahead marker.  A reader that waited
 * for a range (fetch_range) leaves a stream for its directory: where the
 * range ended (next) and a marker, the file after the one it read.  When
 * a read of that directory reaches the marker, the range from next on
 * goes to a read-ahead thread (range_main), twice the size of the last
 * one up to fs->pack_ahead, and its first file becomes the next marker:
 * while the reader works through one range, the next one is in flight,
 * and only the first miss of a directory waits for the server.  At most
 * FS_STREAM_RANGES ranges of a directory are in flight; a reader that
 * jumps elsewhere simply reaches no marker; a reader that needs a chunk
 * being read waits for it (fs_cache_ready), and one the range did not
 * bring it reads itself, as before.
 */

struct range_job {
	struct fs *fs;
	unsigned slot;	      /* fs->streams[slot] */
	uint64_t gen, seq;    /* of the stream when queued */
	struct tree_ref dref; /* own copy */
	char *path;
	uint32_t first; /* first entry to look at */
	size_t size;	/* bytes */
};

static void dir_free(struct tree_ref *dref, char **path)
{
	free(dref->chunks);
	free(*path);
	dref->chunks = NULL;
	dref->n = 0;
	*path = NULL;
}

/* Own copies of a directory's ref and path, as streams, listed
 * directories and range jobs keep them; on failure nothing is held. */
static int dir_copy(struct tree_ref *dref, char **path,
		    const struct tree_ref *src, const char *src_path)
{
	if (fs_ref_dup(dref, src) || !(*path = strdup(src_path))) {
		dir_free(dref, path);
		return -ENOMEM;
	}
	return 0;
}

static void stream_free(struct fs_stream *s)
{
	dir_free(&s->dref, &s->path);
}

static bool same_dir(const struct tree_ref *a, const struct tree_ref *b)
{
	return a->n && a->n == b->n &&
	       !memcmp(a->chunks[0].id, b->chunks[0].id, MV_ID_LEN);
}

/* The stream of dir, or NULL (stream_lock held). */
static struct fs_stream *stream_find(struct fs *fs, const struct tree_ref *dir)
{
	unsigned i;

	for (i = 0; i < FS_STREAMS; i++)
		if (same_dir(&fs->streams[i].dref, dir))
			return &fs->streams[i];
	return NULL;
}

/* fh's reader waited for a range that ended at entry end: the next range
 * goes out when it reads on (size: bytes of the range it waited for). */
static void stream_start(struct fs *fs, const struct fs_fh *fh, uint32_t end,
			 size_t size)
{
	struct fs_stream *s;
	unsigned i;

	pthread_mutex_lock(&fs->stream_lock);
	s = stream_find(fs, &fh->dref);
	if (!s) {
		s = &fs->streams[0];
		for (i = 1; i < FS_STREAMS; i++)
			if (fs->streams[i].used < s->used)
				s = &fs->streams[i];
		stream_free(s);
		if (dir_copy(&s->dref, &s->path, &fh->dref, fh->path))
			goto out;
		s->gen++;
		s->inflight = 0;
	}
	s->seq++;
	s->next = end;
	s->marker = fh->dindex + 1;
	s->size = MV_MIN(2 * size, fs->pack_ahead);
	s->used = ++fs->stream_tick;
out:
	pthread_mutex_unlock(&fs->stream_lock);
}

static void range_job_free(struct range_job *j)
{
	dir_free(&j->dref, &j->path);
	free(j);
}

static void range_main(void *arg, bool cancel)
{
	struct range_job *j = arg;
	struct fs *fs = j->fs;
	struct tree_chunk *list = NULL;
	struct collect c = {NULL, 0, AHEAD_LIST_MAX, 0, j->size};
	struct fs_cache_item *item = NULL;
	const struct tree *t;
	struct fs_stream *s;
	uint32_t end;

	if (cancel || __atomic_load_n(&fs->stopping, __ATOMIC_RELAXED))
		goto done;
	list = malloc(AHEAD_LIST_MAX * sizeof(*list));
	if (!list || fs_tree_get(fs, &j->dref, j->path, &item, &t))
		goto done;
	c.list = list;
	end = collect_files(fs, &c, t, j->first, AHEAD_LIST_MAX);
	pthread_mutex_lock(&fs->stream_lock);
	s = &fs->streams[j->slot];
	if (s->gen == j->gen && s->seq == j->seq) {
		/* entering this range asks for the one after it */
		s->next = end;
		s->marker = end < t->n ? j->first : UINT32_MAX;
		s->size = MV_MIN(2 * j->size, fs->pack_ahead);
	}
	pthread_mutex_unlock(&fs->stream_lock);
	fs_cache_put(&fs->trees, item);
	__atomic_add_fetch(&fs->ranges_ahead, range_read(fs, &c, NULL, j->size),
			   __ATOMIC_RELAXED);
done:
	if (!cancel) {
		pthread_mutex_lock(&fs->stream_lock);
		s = &fs->streams[j->slot];
		if (s->gen == j->gen && s->inflight)
			s->inflight--;
		pthread_mutex_unlock(&fs->stream_lock);
	}
	free(list);
	range_job_free(j);
}

/* A read of fh: past its directory's marker, the next range goes out. */
void fs_ahead_check(struct fs *fs, const struct fs_fh *fh)
{
	struct range_job *j;
	struct fs_stream *s;
	uint32_t marker;
	bool listed;

	pthread_mutex_lock(&fs->stream_lock);
	s = stream_find(fs, &fh->dref);
	if (!s) {
		pthread_mutex_unlock(&fs->stream_lock);
		/* a listed directory whose files were read ahead:
		 * the next file read goes on from here */
		if (fs_tree_cached(fs, &fh->dref) && fs->ahead.nthreads)
			stream_start(fs, fh, fh->dindex + 1, PACK_AHEAD_FIRST);
		return;
	}
	if (fh->dindex < s->marker || s->inflight >= FS_STREAM_RANGES) {
		pthread_mutex_unlock(&fs->stream_lock);
		return;
	}
	j = calloc(1, sizeof(*j));
	if (!j || dir_copy(&j->dref, &j->path, &s->dref, s->path)) {
		pthread_mutex_unlock(&fs->stream_lock);
		free(j);
		return;
	}
	j->fs = fs;
	j->slot = (unsigned)(s - fs->streams);
	j->gen = s->gen;
	j->seq = s->seq;
	j->first = MV_MAX(s->next, fh->dindex + 1);
	j->size = s->size;
	marker = s->marker;
	s->marker = UINT32_MAX; /* the job sets the next one */
	s->inflight++;
	s->used = ++fs->stream_tick;
	fs->reading_ns = fs_mono_ns();
	listed = listed_due(fs, 1);
	pthread_mutex_unlock(&fs->stream_lock);
	if (listed)
		listed_queue(fs);
	if (fs_prefetch_call(&fs->ahead, range_main, j))
		return;
	pthread_mutex_lock(&fs->stream_lock);
	if (s->gen == j->gen) {
		s->inflight--;
		if (s->seq == j->seq)
			s->marker = marker;
	}
	pthread_mutex_unlock(&fs->stream_lock);
	range_job_free(j);
}

/* ---- listed: the files of the directories a reader listed ---------------
 *
 * rsync lists directories ahead of the files it reads (some 1000 files
 * ahead).  While a reader goes through directories in order (a stream
 * asked for a range in the last FS_READING_NS), the files of the
 * directories a reader of attributes listed are read in the background,
 * several directories in one range read (ingest stored them one after
 * the other), each whole up to DIR_AHEAD_BYTES and fs->pack_ahead in all
 * (its first files alone lie all over its records: docs/MOUNT.md).
 * An ls -l or a du lists without reading: nothing is read for them.
 */

static void listed_free(struct fs_listed *l)
{
	dir_free(&l->dref, &l->path);
}

/* Take the oldest listed directory still fresh (stream_lock held). */
static bool listed_pop(struct fs *fs, struct fs_listed *out)
{
	int64_t now = fs_mono_ns();

	while (fs->nlisted) {
		struct fs_listed *l = &fs->listed[fs->listed_head];

		fs->listed_head = (fs->listed_head + 1) % FS_LISTED;
		fs->nlisted--;
		if (now - l->ns < FS_LISTED_NS) {
			*out = *l; /* the caller frees it */
			l->dref.chunks = NULL;
			l->path = NULL;
			return true;
		}
		listed_free(l);
	}
	return false;
}

static void listed_main(void *arg, bool cancel)
{
	struct fs *fs = arg;
	struct tree_chunk *list;

	if (cancel)
		return;
	list = malloc(AHEAD_LIST_MAX * sizeof(*list));
	for (;;) {
		struct collect c = {list, 0, AHEAD_LIST_MAX, 0, fs->pack_ahead};
		struct fs_listed l;

		while (list && !collect_full(&c) &&
		       !__atomic_load_n(&fs->stopping, __ATOMIC_RELAXED)) {
			struct fs_cache_item *item = NULL;
			const struct tree *t;
			size_t budget = c.budget;
			bool got;

			pthread_mutex_lock(&fs->stream_lock);
			got = listed_pop(fs, &l);
			pthread_mutex_unlock(&fs->stream_lock);
			if (!got)
				break;
			if (!fs_tree_get(fs, &l.dref, l.path, &item, &t)) {
				c.budget = MV_MIN(budget,
						  c.bytes + DIR_AHEAD_BYTES);
				collect_files(fs, &c, t, 0, AHEAD_LIST_MAX);
				c.budget = budget;
				fs_cache_put(&fs->trees, item);
			}
			listed_free(&l);
		}
		if (c.n)
			__atomic_add_fetch(
				&fs->ranges_ahead,
				range_read(fs, &c, NULL, fs->pack_ahead),
				__ATOMIC_RELAXED);
		pthread_mutex_lock(&fs->stream_lock);
		if (!list || !fs->nlisted ||
		    __atomic_load_n(&fs->stopping, __ATOMIC_RELAXED)) {
			fs->listed_busy = false;
			pthread_mutex_unlock(&fs->stream_lock);
			break;
		}
		pthread_mutex_unlock(&fs->stream_lock);
	}
	free(list);
}

/* Queue listed_main when directories wait and a reader reads in order
 * (stream_lock held; returns whether the caller must queue it). */
static bool listed_due(struct fs *fs, unsigned at_least)
{
	if (fs->listed_busy || fs->nlisted < at_least ||
	    fs_mono_ns() - fs->reading_ns >= FS_READING_NS)
		return false;
	fs->listed_busy = true;
	return true;
}

static void listed_queue(struct fs *fs)
{
	if (fs_prefetch_call(&fs->ahead, listed_main, fs))
		return;
	pthread_mutex_lock(&fs->stream_lock);
	fs->listed_busy = false;
	pthread_mutex_unlock(&fs->stream_lock);
}

/* dh was listed with attributes (rsync, ls -l): remember it. */
void fs_ahead_listed(struct fs *fs, const struct fs_dh *dh)
{
	struct fs_listed *l;
	bool go;

	if (!fs->pack_ahead || !fs->ahead.nthreads || !dh->t || !dh->pin.self ||
	    !fs_has_files(dh->t, dh->t->n))
		return;
	pthread_mutex_lock(&fs->stream_lock);
	if (fs->nlisted == FS_LISTED) { /* forget the oldest */
		listed_free(&fs->listed[fs->listed_head]);
		fs->listed_head = (fs->listed_head + 1) % FS_LISTED;
		fs->nlisted--;
	}
	l = &fs->listed[(fs->listed_head + fs->nlisted) % FS_LISTED];
	if (dir_copy(&l->dref, &l->path, &dh->pin.self->ref,
		     dh->pin.self->path)) {
		pthread_mutex_unlock(&fs->stream_lock);
		return;
	}
	l->ns = fs_mono_ns();
	fs->nlisted++;
	/* a few at once: one range read for several directories */
	go = listed_due(fs, FS_LISTED_BATCH);
	pthread_mutex_unlock(&fs->stream_lock);
	if (go)
		listed_queue(fs);
}

/* Chunk k of fh is missing: read the range of its pack that holds it and
 * the chunks that follow it in the file and the directory, in one request
 * (a remote repository pays a round trip per request), and leave a
 * stream so the reader waits only this once.  A hint: whatever it does
 * not bring, the reader loads itself and reports. */
void fs_ahead_range(struct fs *fs, const struct fs_fh *fh, uint32_t k)
{
	struct tree_chunk *list = malloc(AHEAD_LIST_MAX * sizeof(*list));
	struct collect c = {list, 0, AHEAD_LIST_MAX, 0, 0};
	uint32_t end;
	bool listed;

	if (!list)
		return;
	c.budget = range_size(fs, fh);
	collect_ahead(fs, fh, k, &c, &end);
	/* the next range starts right after fh: what this one leaves out
	 * (other packs, beyond its span) comes with it */
	if (end && fs->ahead.nthreads)
		stream_start(fs, fh, fh->dindex + 1, c.budget);
	pthread_mutex_lock(&fs->stream_lock);
	listed = listed_due(fs, 1); /* a reader in order reached a new one */
	pthread_mutex_unlock(&fs->stream_lock);
	if (listed)
		listed_queue(fs);
	__atomic_add_fetch(
		&fs->ranges_waited,
		range_read(fs, &c, fh->chunks[k].id, range_size(fs, NULL)),
		__ATOMIC_RELAXED);
	free(list);
}

/* Sequential readers get the next chunks loaded in the background. */
void fs_ahead_sequential(struct fs *fs, struct fs_fh *fh, uint64_t off,
			 uint64_t end, uint64_t dend)
{
	uint32_t k, first, last;
	size_t bytes = 0;

	if (!fh->nchunks || !fs->ahead.nthreads)
		return;
	pthread_mutex_lock(&fh->lock);
	if (off != 0 && off != fh->next_off) {
		fh->next_off = end;
		pthread_mutex_unlock(&fh->lock);
		return;
	}
	fh->next_off = end;
	k = fs_chunk_at(fh, dend ? dend - 1 : 0);
	first = MV_MAX(fh->ahead, k + 1);
	last = first;
	while (last < fh->nchunks && last - k <= READAHEAD_CHUNKS &&
	       bytes < READAHEAD_BYTES)
		bytes += fh->chunks[last++].size;
	if (last > fh->ahead)
		fh->ahead = last;
	pthread_mutex_unlock(&fh->lock);
	for (; first < last; first++) {
		if (fs_cache_has(&fs->chunks, fh->chunks[first].id, MV_ID_LEN))
			continue;
		if (!fs_prefetch_push(&fs->ahead, &fh->chunks[first]))
			break;
	}
}

void fs_ahead_release(struct fs *fs)
{
	unsigned i;

	for (i = 0; i < FS_STREAMS; i++)
		stream_free(&fs->streams[i]);
	for (i = 0; i < FS_LISTED; i++)
		listed_free(&fs->listed[i]);
}
