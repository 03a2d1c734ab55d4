/*
 * crypt: XChaCha20-Poly1305 records, Padme padding, crypto_kdf subkeys and
 * the "none" suite (docs/FORMAT-2.md, section 4).  Every primitive is
 * libsodium's (the XXH3-128 of the none suite is xxhash's); this file only
 * frames them: nonce || ciphertext || tag.
 *
 * Workload: every new chunk and every metadata node passes through
 * crypt_seal once, every read through crypt_open; keys are created once
 * per command.  A key is immutable after crypt_key_new, so FUSE worker
 * threads share it without a lock.
 */
#include "crypt.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include <sodium.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

/* crypto_kdf context: 8 bytes, fixed for format 2 */
static const char kdf_context[crypto_kdf_CONTEXTBYTES] = "mvault02";

struct crypt_key {
	enum crypt_suite suite;	    /* how records are sealed */
	uint8_t key[CRYPT_KEY_LEN]; /* zero for CRYPT_NONE */
};

int crypt_init(struct mv_err *err)
{
	if (sodium_init() < 0)
		return mv_err_set(err, -EIO, "cannot initialise libsodium");
	return 0;
}

static int is_epoch_key(enum crypt_subkey which)
{
	return which == CRYPT_SK_DATA || which == CRYPT_SK_META ||
	       which == CRYPT_SK_CATALOG;
}

int crypt_derive(const uint8_t root[CRYPT_KEY_LEN], enum crypt_subkey which,
		 uint32_t epoch, uint8_t out[CRYPT_KEY_LEN])
{
	uint64_t id;

	switch (which) {
	case CRYPT_SK_ID:
	case CRYPT_SK_CHUNKER:
	case CRYPT_SK_BOUNDARY:
	case CRYPT_SK_RING:
	case CRYPT_SK_DATA:
	case CRYPT_SK_META:
	case CRYPT_SK_CATALOG:
		break;
	default:
		return -EINVAL;
	}
	/* ids, chunker seed, boundary and ring keys live as long as the
	 * repository: an epoch for them would be a silent re-key */
	if (epoch && !is_epoch_key(which))
		return -EINVAL;
	id = (uint64_t)which + ((uint64_t)epoch << 8);
	if (crypto_kdf_derive_from_key(out, CRYPT_KEY_LEN, id, kdf_context,
				       root))
		return -EINVAL;
	return 0;
}

int crypt_key_new(enum crypt_suite suite, const uint8_t *bytes,
		  struct crypt_key **out, struct mv_err *err)
{
	struct crypt_key *k;

	if (suite != CRYPT_NONE && suite != CRYPT_XCHACHA20)
		return mv_err_set(err, -EINVAL, "unknown cipher suite %d",
				  (int)suite);
	if (suite == CRYPT_XCHACHA20 && !bytes)
		return mv_err_set(err, -EINVAL, "no key for the cipher suite");
	/* sodium_malloc needs the page size sodium_init finds */
	if (crypt_init(err))
		return err ? err->code : -EIO;
	/* guard pages, mlock()ed, wiped by sodium_free */
	k = sodium_malloc(sizeof(*k));
	if (!k)
		return mv_err_set(err, -ENOMEM,
				  "cannot allocate locked memory for a key");
	memset(k, 0, sizeof(*k));
	k->suite = suite;
	if (suite == CRYPT_XCHACHA20)
		memcpy(k->key, bytes, CRYPT_KEY_LEN);
	/* immutable from here: a stray write faults instead of changing
	 * the key */
	sodium_mprotect_readonly(k);
	*out = k;
	return 0;
}

void crypt_key_free(struct crypt_key *k)
{
	if (k)
		sodium_free(k);
}

enum crypt_suite crypt_key_suite(const struct crypt_key *k)
{
	return k->suite;
}

size_t crypt_padded_len(size_t n)
{
	size_t e = 0, s = 0, mask, v;

	if (n < 256)
		return (n + 15) & ~(size_t)15;
	/* Padme: E = floor(log2 n), S = floor(log2 E) + 1; the low E - S
	 * bits are rounded up to zero */
	for (v = n; v > 1; v >>= 1)
		e++;
	for (v = e; v > 1; v >>= 1)
		s++;
	s++;
	mask = ((size_t)1 << (e - s)) - 1;
	if (n > SIZE_MAX - mask)
		return SIZE_MAX;
	return (n + mask) & ~mask;
}

/* The none suite's tag: XXH3-128 over ad || nonce || plain, canonical
 * (big-endian) bytes. */
static void none_tag(const void *ad, size_t ad_len, const uint8_t *nonce,
		     const void *plain, size_t len, uint8_t tag[CRYPT_TAG_LEN])
{
	XXH3_state_t st;
	XXH128_canonical_t c;

	XXH3_INITSTATE(&st);
	XXH3_128bits_reset(&st);
	if (ad_len)
		XXH3_128bits_update(&st, ad, ad_len);
	XXH3_128bits_update(&st, nonce, CRYPT_NONCE_LEN);
	if (len)
		XXH3_128bits_update(&st, plain, len);
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(&st));
	memcpy(tag, c.digest, CRYPT_TAG_LEN);
}

/* largest plaintext: libsodium's bound, and out's size must not wrap */
static size_t max_plain(void)
{
	size_t m = crypto_aead_xchacha20poly1305_ietf_messagebytes_max();

	if (m > SIZE_MAX - CRYPT_OVERHEAD)
		m = SIZE_MAX - CRYPT_OVERHEAD;
	return m;
}

int crypt_seal(const struct crypt_key *k, const void *ad, size_t ad_len,
	       const void *plain, size_t len, uint8_t *out)
{
	uint8_t *nonce = out;
	unsigned long long clen = 0;

	if (!k || !out || (len && !plain) || (ad_len && !ad) ||
	    len > max_plain())
		return -EINVAL;
	randombytes_buf(nonce, CRYPT_NONCE_LEN);
	switch (k->suite) {
	case CRYPT_XCHACHA20:
		if (crypto_aead_xchacha20poly1305_ietf_encrypt(
			    out + CRYPT_NONCE_LEN, &clen, plain, len, ad,
			    ad_len, NULL, nonce, k->key) ||
		    clen != (unsigned long long)len + CRYPT_TAG_LEN)
			return -EINVAL;
		return 0;
	case CRYPT_NONE:
		/* memmove: plain may already sit where it is sealed */
		if (len)
			memmove(out + CRYPT_NONCE_LEN, plain, len);
		none_tag(ad, ad_len, nonce, out + CRYPT_NONCE_LEN, len,
			 out + CRYPT_NONCE_LEN + len);
		return 0;
	}
	return -EINVAL;
}

int crypt_open(const struct crypt_key *k, const void *ad, size_t ad_len,
	       const void *sealed, size_t len, uint8_t *plain)
{
	const uint8_t *in = sealed;
	size_t plen;
	unsigned long long mlen = 0;
	uint8_t tag[CRYPT_TAG_LEN];
	int rc = -EBADMSG;

	if (!k || !sealed || (ad_len && !ad))
		return -EINVAL;
	/* too short to hold a nonce and a tag: nothing of plain to zero */
	if (len < CRYPT_OVERHEAD)
		return -EBADMSG;
	plen = len - CRYPT_OVERHEAD;
	if (plen && !plain)
		return -EINVAL;
	switch (k->suite) {
	case CRYPT_XCHACHA20:
		if (!crypto_aead_xchacha20poly1305_ietf_decrypt(
			    plain, &mlen, NULL, in + CRYPT_NONCE_LEN,
			    len - CRYPT_NONCE_LEN, ad, ad_len, in, k->key) &&
		    mlen == plen)
			rc = 0;
		break;
	case CRYPT_NONE:
		none_tag(ad, ad_len, in, in + CRYPT_NONCE_LEN, plen, tag);
		if (!sodium_memcmp(tag, in + len - CRYPT_TAG_LEN,
				   CRYPT_TAG_LEN)) {
			if (plen)
				memmove(plain, in + CRYPT_NONCE_LEN, plen);
			rc = 0;
		}
		break;
	default:
		return -EINVAL;
	}
	/* a failed open never leaves bytes a caller could take for data */
	if (rc && plen)
		sodium_memzero(plain, plen);
	return rc;
}

void crypt_random(void *buf, size_t n)
{
	randombytes_buf(buf, n);
}

void crypt_wipe(void *buf, size_t n)
{
	sodium_memzero(buf, n);
}
