/*
 * chunker: content-defined chunking, FastCDC with normalized chunking
 * (level 2) over a Gear hash whose table is derived from the repository
 * secret, so cut points reveal nothing about content to an observer.
 *
 * Streaming use: append bytes of the current chunk to a buffer and call
 * chunker_scan() with the whole buffer; it resumes where it stopped and
 * returns the cut length, or 0 when it needs more bytes.  After a cut,
 * the caller drops that many bytes and calls chunker_reset().
 */
#ifndef MV_CHUNKER_H
#define MV_CHUNKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "repo.h"

struct chunker {
	uint64_t gear[256];  /* keyed Gear table */
	uint64_t mask_small; /* stricter mask before avg */
	uint64_t mask_large; /* looser mask after avg */
	struct chunker_params p;
	uint64_t fp; /* rolling fingerprint */
	size_t pos;  /* bytes of the current chunk scanned */
};

/* Set up with parameters and a key (the repository secret). */
int chunker_init(struct chunker *c, const struct chunker_params *p,
		 const void *key, size_t key_len, struct mv_err *err);
void chunker_reset(struct chunker *c);
/* Look for a cut in buf[0..len); final: no more bytes will come. */
size_t chunker_scan(struct chunker *c, const uint8_t *buf, size_t len,
		    bool final);
/* Validate parameters (min <= avg <= max, avg a power of two). */
int chunker_params_check(const struct chunker_params *p, struct mv_err *err);

#endif
