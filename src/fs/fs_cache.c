/*
 * fs_cache: a bounded LRU of loaded objects shared by the FUSE worker
 * threads - decoded directory trees, decompressed content chunks - and the
 * read-ahead pool that fills it ahead of sequential readers.  A key is
 * loaded once: callers that miss while another thread loads it wait for
 * that load instead of repeating it (a claimed key too: a range read in
 * the background fills it, or gives it up and the reader loads it).
 * Pinned items are never evicted, so the cache may run over its limit by
 * what readers hold at the moment.
 */
#include "fs_int.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define FS_CACHE_ABANDONED (-100000) /* state of a claim given up */

int fs_cache_init(struct fs_cache *c, size_t limit,
		  void (*free_value)(void *arg, void *value), void *free_arg)
{
	memset(c, 0, sizeof(*c));
	c->cap = 256;
	c->tab = calloc(c->cap, sizeof(*c->tab));
	if (!c->tab)
		return -ENOMEM;
	c->limit = limit;
	c->free_value = free_value;
	c->free_arg = free_arg;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->loaded, NULL);
	return 0;
}

static void item_free(struct fs_cache *c, struct fs_cache_item *it)
{
	if (it->state == 1 && c->free_value)
		c->free_value(c->free_arg, it->value);
	free(it);
}

void fs_cache_release(struct fs_cache *c)
{
	size_t i;

	if (!c->tab)
		return;
	for (i = 0; i < c->cap; i++) {
		struct fs_cache_item *it = c->tab[i], *next;

		for (; it; it = next) {
			next = it->hnext;
			item_free(c, it);
		}
	}
	free(c->tab);
	c->tab = NULL;
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->loaded);
}

static void lru_unlink(struct fs_cache *c, struct fs_cache_item *it)
{
	if (it->lru_prev)
		it->lru_prev->lru_next = it->lru_next;
	else if (c->lru_head == it)
		c->lru_head = it->lru_next;
	if (it->lru_next)
		it->lru_next->lru_prev = it->lru_prev;
	else if (c->lru_tail == it)
		c->lru_tail = it->lru_prev;
	it->lru_prev = it->lru_next = NULL;
}

static void lru_push(struct fs_cache *c, struct fs_cache_item *it)
{
	it->lru_prev = NULL;
	it->lru_next = c->lru_head;
	if (c->lru_head)
		c->lru_head->lru_prev = it;
	c->lru_head = it;
	if (!c->lru_tail)
		c->lru_tail = it;
}

static void tab_remove(struct fs_cache *c, struct fs_cache_item *it)
{
	struct fs_cache_item **pp = &c->tab[it->hash & (c->cap - 1)];

	while (*pp && *pp != it)
		pp = &(*pp)->hnext;
	if (*pp) {
		*pp = it->hnext;
		c->count--;
	}
	it->hnext = NULL;
}

static void tab_grow(struct fs_cache *c)
{
	struct fs_cache_item **nt;
	size_t ncap = c->cap * 2, i;

	nt = calloc(ncap, sizeof(*nt));
	if (!nt)
		return; /* longer chains, still correct */
	for (i = 0; i < c->cap; i++) {
		struct fs_cache_item *it = c->tab[i], *next;

		for (; it; it = next) {
			next = it->hnext;
			it->hnext = nt[it->hash & (ncap - 1)];
			nt[it->hash & (ncap - 1)] = it;
		}
	}
	free(c->tab);
	c->tab = nt;
	c->cap = ncap;
}

static struct fs_cache_item *tab_find(struct fs_cache *c, uint64_t h,
				      const void *key, size_t klen)
{
	struct fs_cache_item *it = c->tab[h & (c->cap - 1)];

	for (; it; it = it->hnext)
		if (it->hash == h && it->klen == klen &&
		    !memcmp(it->key, key, klen))
			return it;
	return NULL;
}

/* Drop unpinned items from the cold end until the cache fits. */
static void evict(struct fs_cache *c)
{
	struct fs_cache_item *it = c->lru_tail, *prev;

	for (; it && c->used > c->limit; it = prev) {
		prev = it->lru_prev;
		if (it->pins)
			continue;
		lru_unlink(c, it);
		tab_remove(c, it);
		c->used -= it->cost;
		c->evictions++;
		c->freed += it->cost;
		item_free(c, it);
	}
}

/* Chunks of many sizes come and go: freed memory stays in the middle of
 * malloc's heaps.  Once enough was evicted, and only when the heaps hold
 * more than FS_CACHE_SLACK free, give its pages back (called without the
 * lock): each trim returns every free page and the next allocations
 * fault them in again, which a restore streaming through the cache paid
 * at every 16 MiB, though new chunks mostly reuse the holes of evicted
 * ones (docs/MOUNT.md). */
static void maybe_trim(struct fs_cache *c)
{
	bool due;

	pthread_mutex_lock(&c->lock);
	due = c->freed >= FS_CACHE_TRIM_BYTES;
	if (due)
		c->freed = 0;
	pthread_mutex_unlock(&c->lock);
	if (due && mallinfo2().fordblks > FS_CACHE_SLACK)
		malloc_trim(0);
}

int fs_cache_get(struct fs_cache *c, const void *key, size_t klen,
		 fs_cache_load_fn *load, void *load_arg,
		 struct fs_cache_item **out, struct mv_err *err)
{
	uint64_t h = XXH3_64bits(key, klen);
	struct fs_cache_item *it;
	void *value = NULL;
	size_t size = 0, cost = 0;
	int rc;

	pthread_mutex_lock(&c->lock);
again:
	it = tab_find(c, h, key, klen);
	if (it) {
		it->pins++;
		c->hits++;
		while (it->state == 0)
			pthread_cond_wait(&c->loaded, &c->lock);
		if (it->state == FS_CACHE_ABANDONED) {
			/* a claim given up: load it here */
			if (--it->pins == 0)
				free(it);
			goto again;
		}
		if (it->state < 0) {
			rc = it->state;
			if (--it->pins == 0)
				free(it);
			pthread_mutex_unlock(&c->lock);
			return mv_err_set(err, rc, "cannot load object: %s",
					  strerror(-rc));
		}
		lru_unlink(c, it);
		lru_push(c, it);
		pthread_mutex_unlock(&c->lock);
		*out = it;
		return 0;
	}
	c->misses++;
	it = calloc(1, sizeof(*it) + klen);
	if (!it) {
		pthread_mutex_unlock(&c->lock);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	it->hash = h;
	it->klen = klen;
	memcpy(it->key, key, klen);
	it->pins = 1;
	if (c->count >= c->cap)
		tab_grow(c);
	it->hnext = c->tab[h & (c->cap - 1)];
	c->tab[h & (c->cap - 1)] = it;
	c->count++;
	pthread_mutex_unlock(&c->lock);

	rc = load(load_arg, &value, &size, &cost, err);

	pthread_mutex_lock(&c->lock);
	if (rc) {
		/* waiters see the code; the next caller tries again */
		tab_remove(c, it);
		it->state = rc < 0 ? rc : -EIO;
		pthread_cond_broadcast(&c->loaded);
		if (--it->pins == 0)
			free(it);
		pthread_mutex_unlock(&c->lock);
		return rc < 0 ? rc : -EIO;
	}
	it->value = value;
	it->size = size;
	it->cost = cost;
	it->state = 1;
	c->used += cost;
	lru_push(c, it);
	pthread_cond_broadcast(&c->loaded);
	evict(c);
	pthread_mutex_unlock(&c->lock);
	maybe_trim(c);
	*out = it;
	return 0;
}

int fs_cache_claim(struct fs_cache *c, const void *key, size_t klen,
		   struct fs_cache_item **out)
{
	uint64_t h = XXH3_64bits(key, klen);
	struct fs_cache_item *it;

	pthread_mutex_lock(&c->lock);
	if (tab_find(c, h, key, klen)) {
		pthread_mutex_unlock(&c->lock);
		return -EEXIST;
	}
	it = calloc(1, sizeof(*it) + klen);
	if (!it) {
		pthread_mutex_unlock(&c->lock);
		return -ENOMEM;
	}
	c->misses++;
	it->hash = h;
	it->klen = klen;
	memcpy(it->key, key, klen);
	it->pins = 1;
	if (c->count >= c->cap)
		tab_grow(c);
	it->hnext = c->tab[h & (c->cap - 1)];
	c->tab[h & (c->cap - 1)] = it;
	c->count++;
	pthread_mutex_unlock(&c->lock);
	*out = it;
	return 0;
}

void fs_cache_fill(struct fs_cache *c, struct fs_cache_item *it, void *value,
		   size_t size, size_t cost)
{
	pthread_mutex_lock(&c->lock);
	it->value = value;
	it->size = size;
	it->cost = cost;
	it->state = 1;
	c->used += cost;
	lru_push(c, it);
	pthread_cond_broadcast(&c->loaded);
	it->pins--;
	evict(c);
	pthread_mutex_unlock(&c->lock);
	maybe_trim(c);
}

void fs_cache_abandon(struct fs_cache *c, struct fs_cache_item *it)
{
	pthread_mutex_lock(&c->lock);
	tab_remove(c, it);
	it->state = FS_CACHE_ABANDONED;
	pthread_cond_broadcast(&c->loaded);
	if (--it->pins == 0)
		free(it);
	pthread_mutex_unlock(&c->lock);
}

bool fs_cache_has(struct fs_cache *c, const void *key, size_t klen)
{
	uint64_t h = XXH3_64bits(key, klen);
	bool found;

	pthread_mutex_lock(&c->lock);
	found = tab_find(c, h, key, klen) != NULL;
	pthread_mutex_unlock(&c->lock);
	return found;
}

bool fs_cache_ready(struct fs_cache *c, const void *key, size_t klen)
{
	uint64_t h = XXH3_64bits(key, klen);
	struct fs_cache_item *it;
	bool ready;

	pthread_mutex_lock(&c->lock);
	it = tab_find(c, h, key, klen);
	if (!it) {
		pthread_mutex_unlock(&c->lock);
		return false;
	}
	it->pins++;
	while (it->state == 0)
		pthread_cond_wait(&c->loaded, &c->lock);
	ready = it->state == 1;
	it->pins--;
	if (!ready && it->pins == 0)
		free(it); /* out of the table already */
	else if (ready && c->used > c->limit)
		evict(c);
	pthread_mutex_unlock(&c->lock);
	return ready;
}

void fs_cache_put(struct fs_cache *c, struct fs_cache_item *it)
{
	if (!it)
		return;
	pthread_mutex_lock(&c->lock);
	it->pins--;
	if (c->used > c->limit)
		evict(c);
	pthread_mutex_unlock(&c->lock);
}

/* ---- read-ahead -------------------------------------------------------- */

static void *prefetch_main(void *arg)
{
	struct fs_prefetch *p = arg;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct tree_chunk job;

		while (!p->stop && p->count == 0 && p->ncalls == 0)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->stop)
			break;
		if (p->ncalls) {
			struct fs_prefetch_call call = p->calls[p->call_head];

			p->call_head = (p->call_head + 1) % FS_PREFETCH_CALLS;
			p->ncalls--;
			pthread_mutex_unlock(&p->lock);
			call.fn(call.arg, false);
			pthread_mutex_lock(&p->lock);
			continue;
		}
		job = p->ring[p->head];
		p->head = (p->head + 1) % FS_PREFETCH_QUEUE;
		p->count--;
		pthread_mutex_unlock(&p->lock);
		p->fn(p->arg, &job);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int fs_prefetch_start(struct fs_prefetch *p,
		      void (*fn)(void *arg, const struct tree_chunk *c),
		      void *arg)
{
	unsigned i;
	int rc = 0;

	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->fn = fn;
	p->arg = arg;
	for (i = 0; i < FS_PREFETCH_THREADS; i++) {
		rc = -pthread_create(&p->threads[i], NULL, prefetch_main, p);
		if (rc)
			break;
		p->nthreads++;
	}
	if (rc && p->nthreads == 0)
		return rc;
	return 0;
}

bool fs_prefetch_push(struct fs_prefetch *p, const struct tree_chunk *c)
{
	bool ok = false;

	if (!p->nthreads)
		return false;
	pthread_mutex_lock(&p->lock);
	if (!p->stop && p->count < FS_PREFETCH_QUEUE) {
		p->ring[(p->head + p->count) % FS_PREFETCH_QUEUE] = *c;
		p->count++;
		pthread_cond_signal(&p->cond);
		ok = true;
	}
	pthread_mutex_unlock(&p->lock);
	return ok;
}

bool fs_prefetch_call(struct fs_prefetch *p, fs_prefetch_call_fn *fn, void *arg)
{
	bool ok = false;

	if (!p->nthreads)
		return false;
	pthread_mutex_lock(&p->lock);
	if (!p->stop && p->ncalls < FS_PREFETCH_CALLS) {
		struct fs_prefetch_call *c =
			&p->calls[(p->call_head + p->ncalls) %
				  FS_PREFETCH_CALLS];

		c->fn = fn;
		c->arg = arg;
		p->ncalls++;
		pthread_cond_signal(&p->cond);
		ok = true;
	}
	pthread_mutex_unlock(&p->lock);
	return ok;
}

void fs_prefetch_stop(struct fs_prefetch *p)
{
	unsigned i;

	if (!p->nthreads)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	p->nthreads = 0;
	for (; p->ncalls; p->ncalls--) {
		struct fs_prefetch_call *c = &p->calls[p->call_head];

		p->call_head = (p->call_head + 1) % FS_PREFETCH_CALLS;
		c->fn(c->arg, true);
	}
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
}
