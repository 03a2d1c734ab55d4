/*
 * diskcache: bounded on-disk record cache for remote repositories
 * (include/diskcache.h).  Workload: many small reads of messages through a
 * mount; a file per record keeps lookups to one open(2).  The total size
 * is counted once at open (a scan) and kept up to date on every put;
 * eviction walks the directories and removes files until the cache is
 * under 80 % of its limit.
 *
 * diskcache_fill_meta() fills it with whole metadata packs in one wave on
 * a machine that has not seen them (docs/REMOTE.md, "A fresh machine").
 */
#include "diskcache.h"

#include "backend.h"
#include "index.h"
#include "pack.h"
#include "repo_int.h"
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

struct diskcache {
	char *dir;	      /* .../chunks */
	uint64_t limit;	      /* bytes */
	uint64_t used;	      /* bytes in cache files (approximate) */
	bool scanned;	      /* used has been counted */
	pthread_mutex_t lock; /* guards used and eviction */
	pthread_mutex_t fill; /* one metadata wave at a time */
	pthread_mutex_t mem;  /* guards waves and held */
	struct wave *waves;   /* metadata waves still being written */
	struct held *held;    /* diskcache_hold(), the oldest first */
	uint64_t held_bytes;  /* their buffers' sizes */
};

/* A record of a metadata wave, served from memory until it is on disk. */
struct wave_rec {
	uint8_t id[MV_ID_LEN]; /* record id */
	const uint8_t *p;      /* in one of the wave's packs */
	size_t len;	       /* bytes */
};

/* The packs of one diskcache_fill_meta(), kept in memory while a thread
 * writes their records to disk: the reader that asked needs a few of
 * them now, writing a few thousand files takes about a second. */
struct wave {
	struct wave *next;
	struct diskcache *c;
	struct wave_rec *recs; /* sorted by id; NULL once written */
	size_t nrecs;
	uint8_t **bufs; /* the packs */
	size_t nbufs;
	char *names;	  /* lines for .meta-packs once written */
	pthread_t thread; /* the writer */
	bool started;	  /* thread runs (joined at close) */
};

/* A buffer of records held in memory only (diskcache_hold). */
struct held {
	struct held *next;
	struct wave_rec *recs; /* sorted by id */
	size_t nrecs;
	uint8_t *buf;
	size_t size;
};

static void entry_path(const struct diskcache *c, const uint8_t id[MV_ID_LEN],
		       char *out, size_t n)
{
	char hex[2 * MV_ID_LEN + 1];

	mv_hex(id, MV_ID_LEN, hex);
	snprintf(out, n, "%s/%.2s/%s", c->dir, hex, hex);
}

/* Sum (and with evict, remove until under target) the cache files. */
static uint64_t walk(struct diskcache *c, bool evict, uint64_t target)
{
	uint64_t total = 0, removed = 0;
	DIR *top = opendir(c->dir);
	struct dirent *d;

	if (!top)
		return 0;
	while ((d = readdir(top))) {
		char sub[PATH_MAX];
		struct dirent *f;
		DIR *dd;

		if (d->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", c->dir, d->d_name);
		dd = opendir(sub);
		if (!dd)
			continue;
		while ((f = readdir(dd))) {
			struct stat st;

			if (f->d_name[0] == '.' ||
			    fstatat(dirfd(dd), f->d_name, &st, 0) < 0)
				continue;
			if (evict && c->used - removed > target &&
			    !unlinkat(dirfd(dd), f->d_name, 0)) {
				removed += (uint64_t)st.st_size;
				continue;
			}
			total += (uint64_t)st.st_size;
		}
		closedir(dd);
	}
	closedir(top);
	return total;
}

struct diskcache *diskcache_open(const char *dir, uint64_t limit_bytes)
{
	struct diskcache *c;
	const char *env = getenv("MAILVAULT_CACHE_MB");

	if (!limit_bytes)
		limit_bytes = (env && atoll(env) > 0 ? (uint64_t)atoll(env)
						     : DISKCACHE_DEFAULT_MB)
			      << 20;
	if (mv_mkdir_p(dir, 0700))
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->dir = strdup(dir);
	if (!c->dir) {
		free(c);
		return NULL;
	}
	c->limit = limit_bytes;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->fill, NULL);
	pthread_mutex_init(&c->mem, NULL);
	return c;
}

static void wave_free(struct wave *w);

void diskcache_settle(struct diskcache *c)
{
	struct wave *list;

	if (!c)
		return;
	/* a wave in progress holds fill until it is in the list */
	pthread_mutex_lock(&c->fill);
	pthread_mutex_lock(&c->mem);
	list = c->waves;
	c->waves = NULL;
	pthread_mutex_unlock(&c->mem);
	while (list) {
		struct wave *w = list;

		list = w->next;
		if (w->started)
			pthread_join(w->thread, NULL);
		wave_free(w);
	}
	pthread_mutex_unlock(&c->fill);
}

static void held_free(struct held *h)
{
	free(h->recs);
	free(h->buf);
	free(h);
}

void diskcache_close(struct diskcache *c)
{
	if (!c)
		return;
	diskcache_settle(c);
	while (c->held) {
		struct held *h = c->held;

		c->held = h->next;
		held_free(h);
	}
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->fill);
	pthread_mutex_destroy(&c->mem);
	free(c->dir);
	free(c);
}

static int rec_cmp(const void *a, const void *b)
{
	return memcmp(((const struct wave_rec *)a)->id,
		      ((const struct wave_rec *)b)->id, MV_ID_LEN);
}

/* From a wave not yet on disk or a held buffer; 0 or -ENOENT.  out NULL:
 * only whether it is there. */
static int wave_get(struct diskcache *c, const uint8_t id[MV_ID_LEN],
		    struct mv_buf *out)
{
	struct wave_rec key;
	const struct wave_rec *hit = NULL;
	struct wave *w;
	struct held *h;
	int rc = -ENOENT;

	memset(&key, 0, sizeof(key));
	memcpy(key.id, id, MV_ID_LEN);
	pthread_mutex_lock(&c->mem);
	for (w = c->waves; w && !hit; w = w->next)
		if (w->recs)
			hit = bsearch(&key, w->recs, w->nrecs, sizeof(*w->recs),
				      rec_cmp);
	for (h = c->held; h && !hit; h = h->next)
		hit = bsearch(&key, h->recs, h->nrecs, sizeof(*h->recs),
			      rec_cmp);
	if (hit && !out) {
		rc = 0;
	} else if (hit) {
		mv_buf_reset(out);
		rc = mv_buf_append(out, hit->p, hit->len) ? -ENOMEM : 0;
	}
	pthread_mutex_unlock(&c->mem);
	return rc;
}

/* Whether wave_get() may find anything: no lock for the common case of
 * a cache with nothing in memory. */
static bool in_memory(struct diskcache *c)
{
	return __atomic_load_n(&c->waves, __ATOMIC_ACQUIRE) ||
	       __atomic_load_n(&c->held, __ATOMIC_ACQUIRE);
}

void diskcache_hold(struct diskcache *c, void *buf, size_t size,
		    const struct diskcache_ref *refs, size_t n)
{
	struct held *h = calloc(1, sizeof(*h)), **tail;
	size_t i;

	if (!h || !n || !(h->recs = calloc(n, sizeof(*h->recs)))) {
		free(h);
		free(buf);
		return;
	}
	h->buf = buf;
	h->size = size;
	for (i = 0; i < n; i++) {
		if (refs[i].off > size || refs[i].len > size - refs[i].off)
			continue;
		memcpy(h->recs[h->nrecs].id, refs[i].id, MV_ID_LEN);
		h->recs[h->nrecs].p = h->buf + refs[i].off;
		h->recs[h->nrecs++].len = refs[i].len;
	}
	qsort(h->recs, h->nrecs, sizeof(*h->recs), rec_cmp);
	pthread_mutex_lock(&c->mem);
	for (tail = &c->held; *tail; tail = &(*tail)->next)
		;
	__atomic_store_n(tail, h, __ATOMIC_RELEASE);
	c->held_bytes += size;
	while (c->held_bytes > DISKCACHE_HOLD_MAX && c->held != h) {
		struct held *old = c->held;

		__atomic_store_n(&c->held, old->next, __ATOMIC_RELEASE);
		c->held_bytes -= old->size;
		held_free(old);
	}
	pthread_mutex_unlock(&c->mem);
}

int diskcache_get(struct diskcache *c, const uint8_t id[MV_ID_LEN],
		  struct mv_buf *out)
{
	char path[PATH_MAX];
	struct stat st;
	int fd, rc;

	if (in_memory(c) && !wave_get(c, id, out))
		return 0;

	entry_path(c, id, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -ENOENT;
	rc = fstat(fd, &st) < 0 ? -errno : 0;
	mv_buf_reset(out);
	if (!rc && mv_buf_reserve(out, (size_t)st.st_size + 1))
		rc = -ENOMEM;
	if (!rc)
		rc = mv_pread_full(fd, out->data, (size_t)st.st_size, 0);
	close(fd);
	if (rc)
		return -ENOENT;
	out->len = (size_t)st.st_size;
	return 0;
}

bool diskcache_has(struct diskcache *c, const uint8_t id[MV_ID_LEN])
{
	char path[PATH_MAX];

	/* memory first: a restore asks for thousands of records its spans
	 * hold, each a file system lookup otherwise */
	if (in_memory(c) && !wave_get(c, id, NULL))
		return true;
	entry_path(c, id, path, sizeof(path));
	return access(path, F_OK) == 0;
}

void diskcache_put(struct diskcache *c, const uint8_t id[MV_ID_LEN],
		   const void *rec, size_t len)
{
	char path[PATH_MAX], tmp[PATH_MAX + 16], *slash;
	int fd;

	if (len > c->limit / 16)
		return; /* not worth a tenth of the cache */
	entry_path(c, id, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
	slash = strrchr(tmp, '/');
	*slash = '\0';
	mkdir(tmp, 0700);
	*slash = '/';
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (mv_write_full(fd, rec, len) || rename(tmp, path)) {
		close(fd);
		unlink(tmp);
		return;
	}
	close(fd);
	pthread_mutex_lock(&c->lock);
	if (!c->scanned) {
		c->used = walk(c, false, 0);
		c->scanned = true;
	} else {
		c->used += len;
	}
	if (c->used > c->limit) {
		walk(c, true, c->limit / 10 * 8);
		c->used = walk(c, false, 0);
	}
	pthread_mutex_unlock(&c->lock);
}

/* ---- the metadata wave ---- */

struct meta_pack {
	int64_t id;		      /* pack row */
	char name[PACK_NAME_LEN + 1]; /* pack name */
	uint64_t size;		      /* bytes */
};

struct meta_list {
	struct meta_pack *v;
	size_t n, cap;
	const char *done; /* contents of .meta-packs, or NULL */
};

static int meta_pack_cb(int64_t id, const char *name, int kind, uint64_t size,
			uint32_t records, void *arg)
{
	struct meta_list *l = arg;
	struct meta_pack *p;

	(void)records;
	if (kind != PACK_KIND_META || !size || strlen(name) > PACK_NAME_LEN ||
	    (l->done && strstr(l->done, name)))
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		void *v = realloc(l->v, cap * sizeof(*l->v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	p = &l->v[l->n++];
	p->id = id;
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->size = size;
	return 0;
}

static int meta_newest_first(const void *a, const void *b)
{
	const struct meta_pack *x = a, *y = b;

	return x->id < y->id ? 1 : x->id > y->id ? -1 : 0;
}

struct meta_put {
	struct repo *r;
	const uint8_t *buf; /* the pack */
	size_t len;	    /* bytes of it read */
	struct wave *w;	    /* records collected */
	size_t cap;
};

static int meta_put_cb(const uint8_t id[MV_ID_LEN], const struct chunk_loc *loc,
		       void *arg)
{
	struct meta_put *m = arg;
	size_t span = repo_record_span(m->r, loc);
	struct wave_rec *e;

	if (loc->offset > m->len || span > m->len - loc->offset)
		return 0;
	if (m->w->nrecs == m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 256;
		void *v = realloc(m->w->recs, cap * sizeof(*m->w->recs));

		if (!v)
			return -ENOMEM;
		m->w->recs = v;
		m->cap = cap;
	}
	e = &m->w->recs[m->w->nrecs++];
	memcpy(e->id, id, MV_ID_LEN);
	e->p = m->buf + loc->offset;
	e->len = span;
	return 0;
}

static void wave_free(struct wave *w)
{
	size_t i;

	for (i = 0; i < w->nbufs; i++)
		free(w->bufs[i]);
	free(w->bufs);
	free(w->recs);
	free(w->names);
	free(w);
}

/* Write a wave's records, then name its packs in .meta-packs (a wave
 * cut short by the end of the process is fetched again next time), then
 * let readers go to the files. */
static void *wave_write(void *arg)
{
	struct wave *w = arg;
	struct diskcache *c = w->c;
	char list[PATH_MAX];
	FILE *f;
	size_t i;
	int fd;

	for (i = 0; i < w->nrecs; i++)
		diskcache_put(c, w->recs[i].id, w->recs[i].p, w->recs[i].len);
	snprintf(list, sizeof(list), "%s/.meta-packs", c->dir);
	/* Pack names are the repository's, and the cache is private to its
	 * user (docs/PERMISSIONS.md): 0600 whatever the umask. */
	fd = open(list, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	f = fd >= 0 ? fdopen(fd, "a") : NULL;
	if (!f && fd >= 0)
		close(fd);
	if (f) {
		fputs(w->names, f);
		fclose(f);
	}
	pthread_mutex_lock(&c->mem);
	free(w->recs);
	w->recs = NULL;
	w->nrecs = 0;
	for (i = 0; i < w->nbufs; i++) {
		free(w->bufs[i]);
		w->bufs[i] = NULL;
	}
	pthread_mutex_unlock(&c->mem);
	return NULL;
}

/* The whole of a small file, or NULL. */
static char *slurp(const char *path)
{
	void *buf = NULL;
	size_t len = 0;
	struct backend *be = NULL;
	char *dir = strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;

	if (!slash) {
		free(dir);
		return NULL;
	}
	*slash = '\0';
	if (!backend_local_open(dir, false, &be, NULL))
		backend_read_all(be, slash + 1, 1 << 20, &buf, &len, NULL);
	backend_close(be);
	free(dir);
	return buf;
}

/* done (the contents of .meta-packs, may be NULL; taken) and the packs
 * of this cache's earlier waves: a wave names its packs in .meta-packs
 * only once its records are on disk, and a second miss in the meantime
 * (a mount's other thread) must not fetch them again. */
static char *with_waves(struct diskcache *c, char *done)
{
	struct mv_buf b = MV_BUF_INIT;
	struct wave *w;
	bool any;
	int rc = 0;

	pthread_mutex_lock(&c->mem);
	any = c->waves != NULL;
	if (any && done)
		rc = mv_buf_append(&b, done, strlen(done));
	for (w = c->waves; w && !rc; w = w->next)
		rc = mv_buf_append(&b, w->names, strlen(w->names));
	pthread_mutex_unlock(&c->mem);
	if (!any || rc || mv_buf_put_u8(&b, 0)) {
		mv_buf_release(&b);
		return done; /* nothing to add, or out of memory */
	}
	free(done);
	return (char *)b.data;
}

int diskcache_fill_meta(struct diskcache *c, struct repo *r)
{
	struct meta_list l = {NULL, 0, 0, NULL};
	struct backend_range *v = NULL;
	const char *env = getenv("MAILVAULT_META_PREFETCH_MB");
	uint64_t budget = DISKCACHE_META_MAX, total = 0;
	char list[PATH_MAX], path[128];
	struct wave *w = NULL;
	char *done = NULL;
	size_t i, n = 0, names = 0, cap = 0;
	int stored = 0;

	if (env && *env)
		budget = (uint64_t)strtoull(env, NULL, 10) << 20;
	if (!c || !budget)
		return 0;
	pthread_mutex_lock(&c->fill);
	snprintf(list, sizeof(list), "%s/.meta-packs", c->dir);
	done = with_waves(c, slurp(list));
	l.done = done;
	pthread_mutex_lock(&r->ix_lock);
	i = (size_t)index_pack_each(r->ix, meta_pack_cb, &l, NULL);
	pthread_mutex_unlock(&r->ix_lock);
	if (i || !l.n)
		goto out;
	qsort(l.v, l.n, sizeof(*l.v), meta_newest_first);
	v = calloc(l.n, sizeof(*v));
	w = calloc(1, sizeof(*w));
	if (!v || !w)
		goto out;
	w->c = c;
	w->bufs = calloc(l.n, sizeof(*w->bufs));
	w->names = calloc(l.n, PACK_NAME_LEN + 2);
	if (!w->bufs || !w->names)
		goto out;
	for (i = 0; i < l.n && total + l.v[i].size <= budget; i++) {
		total += l.v[i].size;
		pack_path(l.v[i].name, path, sizeof(path));
		v[n].path = strdup(path);
		v[n].buf = w->bufs[n] = malloc((size_t)l.v[i].size);
		v[n].len = (size_t)l.v[i].size;
		n++;
		w->nbufs = n;
		if (!v[n - 1].path || !v[n - 1].buf)
			goto out;
	}
	backend_read_many(r->be, v, n, NULL);
	for (i = 0; i < n; i++) {
		struct meta_put m = {r, v[i].buf, v[i].got, w, 0};

		if (v[i].rc)
			continue;
		m.cap = cap;
		pthread_mutex_lock(&r->ix_lock);
		index_pack_chunks(r->ix, l.v[i].id, meta_put_cb, &m, NULL);
		pthread_mutex_unlock(&r->ix_lock);
		cap = m.cap;
		/* a pack read short is fetched again next time */
		if (v[i].got == v[i].len)
			names += (size_t)sprintf(w->names + names, "%s\n",
						 l.v[i].name);
	}
	if (!w->nrecs)
		goto out;
	qsort(w->recs, w->nrecs, sizeof(*w->recs), rec_cmp);
	stored = (int)MV_MIN(w->nrecs, (size_t)INT_MAX);
	pthread_mutex_lock(&c->mem);
	w->next = c->waves;
	c->waves = w;
	pthread_mutex_unlock(&c->mem);
	w->started = !pthread_create(&w->thread, NULL, wave_write, w);
	if (!w->started)
		wave_write(w);
	w = NULL;
out:
	for (i = 0; v && i < n; i++)
		free((void *)v[i].path);
	if (w)
		wave_free(w);
	free(v);
	free(l.v);
	free(done);
	pthread_mutex_unlock(&c->fill);
	return stored;
}
