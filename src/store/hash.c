/*
 * hash: HMAC-SHA-256 chunk ids through OpenSSL's EVP_MAC, xxHash for
 * checksums.  A template MAC context holds the key; each id duplicates it,
 * so concurrent callers never share mutable state.
 */
#include "hash.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <xxhash.h>

struct hasher {
	EVP_MAC *mac;	   /* the HMAC algorithm */
	EVP_MAC_CTX *tmpl; /* keyed, initialised template */
};

int hasher_new(const void *key, size_t key_len, struct hasher **out,
	       struct mv_err *err)
{
	OSSL_PARAM params[2];
	struct hasher *h;
	char digest[] = "SHA256";

	h = calloc(1, sizeof(*h));
	if (!h)
		return mv_err_set(err, -ENOMEM, "out of memory");
	h->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (h->mac)
		h->tmpl = EVP_MAC_CTX_new(h->mac);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						     digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!h->tmpl || !EVP_MAC_init(h->tmpl, key, key_len, params)) {
		hasher_free(h);
		return mv_err_set(err, -EIO,
				  "cannot set up HMAC-SHA-256 "
				  "(OpenSSL)");
	}
	*out = h;
	return 0;
}

void hasher_free(struct hasher *h)
{
	if (!h)
		return;
	EVP_MAC_CTX_free(h->tmpl);
	EVP_MAC_free(h->mac);
	free(h);
}

void hasher_id(struct hasher *h, const void *data, size_t len,
	       uint8_t out[HASH_ID_LEN])
{
	EVP_MAC_CTX *c = EVP_MAC_CTX_dup(h->tmpl);
	size_t n = 0;

	if (!c || !EVP_MAC_update(c, data, len) ||
	    !EVP_MAC_final(c, out, &n, HASH_ID_LEN) || n != HASH_ID_LEN)
		abort(); /* OpenSSL out of memory: no safe id to return */
	EVP_MAC_CTX_free(c);
}

void hash_hmac(const void *key, size_t key_len, const void *data, size_t len,
	       uint8_t out[HASH_ID_LEN])
{
	unsigned int n = HASH_ID_LEN;

	if (!HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &n))
		abort();
}

uint64_t hash_xxh64(const void *data, size_t len)
{
	return XXH64(data, len, 0);
}

uint64_t hash_xxh3(const void *data, size_t len)
{
	return XXH3_64bits(data, len);
}
