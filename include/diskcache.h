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

struct diskcache;

/* Open the cache in dir (created).  limit_bytes 0: the default, or
 * $MAILVAULT_CACHE_MB.  NULL when the cache cannot be used (it is only an
 * optimisation). */
struct diskcache *diskcache_open(const char *dir, uint64_t limit_bytes);
void diskcache_close(struct diskcache *c);

/* Copy the record of id into out; 0, or -ENOENT on a miss. */
int diskcache_get(struct diskcache *c, const uint8_t id[MV_ID_LEN],
		  struct mv_buf *out);
/* Store a verified record; failures are ignored (a cache). */
void diskcache_put(struct diskcache *c, const uint8_t id[MV_ID_LEN],
		   const void *rec, size_t len);

#endif
