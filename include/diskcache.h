/*
 * diskcache: a bounded on-disk cache of pack records for remote
 * repositories, so that a second mount or restore of the same data does
 * not fetch it over the network again.  One file per record under
 * ~/.cache/mailvault/<repository id>/chunks/XX/<id>, holding the record
 * exactly as stored in its pack (header and payload); readers verify it
 * like any pack read, so a damaged cache file is a miss, never wrong
 * bytes.  When the cache grows past its limit, files are evicted until it
 * is back under 80 % of it.  Thread-safe.
 */
#ifndef MV_DISKCACHE_H
#define MV_DISKCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "repo.h"
#include "util.h"

#define DISKCACHE_DEFAULT_MB 2048
/* At most this many bytes of metadata packs per diskcache_fill_meta(). */
#define DISKCACHE_META_MAX ((uint64_t)64 << 20)
/* At most this many bytes of spans held in memory (diskcache_hold): a
 * far restore's read-ahead window (128 MiB of content) in stored form. */
#define DISKCACHE_HOLD_MAX ((uint64_t)192 << 20)

struct diskcache;

/* Open the cache in dir (created).  limit_bytes 0: the default, or
 * $MAILVAULT_CACHE_MB.  NULL when the cache cannot be used (it is only an
 * optimisation). */
struct diskcache *diskcache_open(const char *dir, uint64_t limit_bytes);
void diskcache_close(struct diskcache *c);
/* Wait until the metadata waves being written are on disk: before a
 * fork(), whose child would not have the threads writing them. */
void diskcache_settle(struct diskcache *c);

/* Copy the record of id into out; 0, or -ENOENT on a miss. */
int diskcache_get(struct diskcache *c, const uint8_t id[MV_ID_LEN],
		  struct mv_buf *out);
/* A record in a buffer given to diskcache_hold(). */
struct diskcache_ref {
	uint8_t id[MV_ID_LEN];
	size_t off; /* in the buffer */
	size_t len; /* bytes */
};

/* Keep the n records refs names in buf (size bytes, taken over: freed
 * here, also on failure) in memory only, served by diskcache_get() like
 * the files: a reader about to ask for each of them once (a restore)
 * gains nothing from a file per record.  The oldest buffers are dropped
 * past DISKCACHE_HOLD_MAX. */
void diskcache_hold(struct diskcache *c, void *buf, size_t size,
		    const struct diskcache_ref *refs, size_t n);
/* True when the record of id is in the cache. */
bool diskcache_has(struct diskcache *c, const uint8_t id[MV_ID_LEN]);
/* Store a record as its pack holds it (a damaged one is a miss when
 * read: every get is verified); failures are ignored (a cache). */
void diskcache_put(struct diskcache *c, const uint8_t id[MV_ID_LEN],
		   const void *rec, size_t len);

/* Fetch the metadata packs of r (trees, snapshots, dictionaries) that no
 * earlier call fetched into this cache, whole, in one backend_read_many()
 * wave, and store every record they hold; the newest first, at most
 * DISKCACHE_META_MAX bytes ($MAILVAULT_META_PREFETCH_MB; 0 turns it off).
 * The names of the packs done are kept in .meta-packs beside the records.
 * Called on the first miss of a metadata record: a fresh machine then
 * reaches any path of a snapshot after one wave instead of one round trip
 * per directory level.  Concurrent callers wait for the wave in progress.
 * Returns the number of records stored (0: nothing new), never an error:
 * a failed wave leaves the reads to the normal path. */
int diskcache_fill_meta(struct diskcache *c, struct repo *r);

#endif
