/*
 * hash: keyed chunk ids (HMAC-SHA-256, OpenSSL) and the fast non-keyed
 * checksums (XXH64/XXH3) used where no adversary gains from a collision:
 * pack record checksums, hash tables, caches.
 */
#ifndef MV_HASH_H
#define MV_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "mv_err.h"

#define HASH_ID_LEN 32

struct hasher;

/* A keyed hasher; the key is copied.  Thread-safe after creation. */
int hasher_new(const void *key, size_t key_len, struct hasher **out,
	       struct mv_err *err);
void hasher_free(struct hasher *h);
/* HMAC-SHA-256(key, data). */
void hasher_id(struct hasher *h, const void *data, size_t len,
	       uint8_t out[HASH_ID_LEN]);
/* HMAC-SHA-256 of the concatenation of two parts (for derived keys). */
void hash_hmac(const void *key, size_t key_len, const void *data, size_t len,
	       uint8_t out[HASH_ID_LEN]);

/* XXH64 with seed 0 (pack checksums). */
uint64_t hash_xxh64(const void *data, size_t len);
/* XXH3 64-bit (hash tables). */
uint64_t hash_xxh3(const void *data, size_t len);

#endif
