/*
 * crypt: the repository's cryptographic suite (docs/FORMAT-2.md, section 4).
 *
 * Records are sealed with XChaCha20-Poly1305 (libsodium): a fresh random
 * 192-bit nonce for every record, so no counter state exists that a
 * rolled-back repository or a second client could make repeat.  The
 * associated data binds what the record claims to be (format version,
 * record type, key epoch, object id), so a record moved, swapped or
 * retyped does not open.  Plaintext is padded with Padme before sealing
 * so that a stored size leaks O(log log n) bits of the real size.
 *
 * The "none" suite keeps the same framing with an XXH3-128 tag in place of
 * the AEAD: one format and one reader, fast bit-rot detection, and no
 * claim of secrecy or authenticity.  Its record is nonce || plain || tag,
 * the nonce random as above, the plain bytes stored as they are, and
 * tag = XXH3-128(ad || nonce || plain) in canonical (big-endian) bytes.
 *
 * Subkeys come from the 32-byte master key with crypto_kdf (BLAKE2b);
 * nothing here writes a key to disk.
 */
#ifndef MV_CRYPT_H
#define MV_CRYPT_H

#include <stddef.h>
#include <stdint.h>

#include "mv_err.h"

#define CRYPT_KEY_LEN 32
#define CRYPT_NONCE_LEN 24
#define CRYPT_TAG_LEN 16
/* bytes a sealed record adds to its padded plaintext */
#define CRYPT_OVERHEAD (CRYPT_NONCE_LEN + CRYPT_TAG_LEN)

enum crypt_suite {
	CRYPT_NONE = 0,	     /* XXH3-128 tag, no secrecy */
	CRYPT_XCHACHA20 = 1, /* XChaCha20-Poly1305 */
};

/* Subkeys of the master key (FORMAT-2 section 4).  The epoch keys (data,
 * metadata, catalogue) take the key epoch in their id. */
enum crypt_subkey {
	CRYPT_SK_ID = 1,       /* HMAC-SHA-256 chunk and node ids */
	CRYPT_SK_CHUNKER = 2,  /* Gear table seed */
	CRYPT_SK_BOUNDARY = 3, /* ptree boundary hash */
	CRYPT_SK_RING = 4,     /* the key ring of epoch keys */
	CRYPT_SK_DATA = 16,    /* content records */
	CRYPT_SK_META = 17,    /* nodes, snapshots, segments, tables */
	CRYPT_SK_CATALOG = 18, /* catalogue segments */
};

/* A key for sealing and opening, with its suite.  Lives in locked memory
 * (crypt_key_new); crypt_key_free wipes it. */
struct crypt_key;

/* Must be called once before anything else here (sodium_init); safe to
 * call again.  -EIO when libsodium cannot start. */
int crypt_init(struct mv_err *err);

/* Derive subkey `which` for key epoch `epoch` from a 32-byte root key
 * (the master key for epoch 0) into out: crypto_kdf with context
 * "mvault02" and subkey id which + (epoch << 8).  Deterministic.  -EINVAL
 * for an unknown subkey, or an epoch other than 0 for a subkey that is
 * not an epoch key (ids, chunker, boundary and ring keys never rotate). */
int crypt_derive(const uint8_t root[CRYPT_KEY_LEN], enum crypt_subkey which,
		 uint32_t epoch, uint8_t out[CRYPT_KEY_LEN]);

/* A sealing key of a suite from 32 key bytes (ignored for CRYPT_NONE,
 * may be NULL).  -ENOMEM. */
int crypt_key_new(enum crypt_suite suite, const uint8_t *bytes,
		  struct crypt_key **out, struct mv_err *err);
void crypt_key_free(struct crypt_key *k);
enum crypt_suite crypt_key_suite(const struct crypt_key *k);

/* The padded length of a plaintext of n bytes (Padme): n rounded up so
 * that only its top floor(log2(floor(log2 n)))+1 bits may be non-zero.
 * Overhead at most 12 %; n for n < 256 is rounded to a multiple of 16. */
size_t crypt_padded_len(size_t n);

/* Seal plain (len bytes, already padded by the caller or not: this layer
 * does not pad) with associated data ad.  out must hold
 * len + CRYPT_OVERHEAD bytes: nonce, ciphertext, tag.  -EINVAL on sizes
 * out of range. */
int crypt_seal(const struct crypt_key *k, const void *ad, size_t ad_len,
	       const void *plain, size_t len, uint8_t *out);

/* Open a sealed record of len bytes (nonce, ciphertext, tag) into plain
 * (len - CRYPT_OVERHEAD bytes).  -EBADMSG when the tag does not verify
 * (tampered, wrong key, wrong associated data, truncated); plain is then
 * zeroed, never partly filled. */
int crypt_open(const struct crypt_key *k, const void *ad, size_t ad_len,
	       const void *sealed, size_t len, uint8_t *plain);

/* Cryptographically random bytes. */
void crypt_random(void *buf, size_t n);

/* Wipe n bytes so the compiler cannot skip it. */
void crypt_wipe(void *buf, size_t n);

#endif
