/*
 * Unit tests for crypt: the XChaCha20-Poly1305 known answer of
 * draft-irtf-cfrg-xchacha (A.3.1) in our nonce || ciphertext || tag
 * framing, round trips, every bit flipped in nonce, ciphertext, tag and
 * associated data refused with the output zeroed, truncation and wrong
 * keys refused, the none suite (which is not encryption), Padme bounds and
 * exact values, subkey derivation pinned to its context and id mapping,
 * and random nonces.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>
#include <xxhash.h>

#include "crypt.h"

static const char ladies[] =
	"Ladies and Gentlemen of the class of '99: If I could offer you only "
	"one tip for the future, sunscreen would be it.";

static void unhex(const char *hex, uint8_t *out, size_t n)
{
	size_t bin_len = 0;

	assert_int_equal(
		sodium_hex2bin(out, n, hex, strlen(hex), NULL, &bin_len, NULL),
		0);
	assert_int_equal(bin_len, n);
}

static uint8_t *pattern(size_t n, uint32_t seed)
{
	uint8_t *p = malloc(n ? n : 1);
	size_t i;

	assert_non_null(p);
	for (i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
	return p;
}

static int all_zero(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static struct crypt_key *key_of(enum crypt_suite suite, uint8_t fill)
{
	uint8_t bytes[CRYPT_KEY_LEN];
	struct crypt_key *k = NULL;
	struct mv_err err = MV_ERR_INIT;

	memset(bytes, fill, sizeof(bytes));
	assert_int_equal(crypt_key_new(suite, bytes, &k, &err), 0);
	assert_non_null(k);
	return k;
}

static int setup(void **state)
{
	struct mv_err err = MV_ERR_INIT;

	(void)state;
	return crypt_init(&err);
}

/* draft-irtf-cfrg-xchacha-03, appendix A.3.1 */
static void test_crypt_xchacha_known_answer(void **state)
{
	const char *ct_hex =
		"bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396c"
		"bb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213"
		"b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565"
		"d3fff921f9664c97637da9768812f615c68b13b52e";
	const char *tag_hex = "c0875924c1c7987947deafd8780acf49";
	size_t n = sizeof(ladies) - 1;
	uint8_t key[CRYPT_KEY_LEN], ad[12], sealed[256], plain[256];
	struct crypt_key *k = NULL;
	struct mv_err err = MV_ERR_INIT;
	size_t i;

	(void)state;
	assert_int_equal(n, 114);
	for (i = 0; i < CRYPT_KEY_LEN; i++)
		key[i] = (uint8_t)(0x80 + i);
	unhex("50515253c0c1c2c3c4c5c6c7", ad, sizeof(ad));
	for (i = 0; i < CRYPT_NONCE_LEN; i++)
		sealed[i] = (uint8_t)(0x40 + i);
	unhex(ct_hex, sealed + CRYPT_NONCE_LEN, n);
	unhex(tag_hex, sealed + CRYPT_NONCE_LEN + n, CRYPT_TAG_LEN);

	assert_int_equal(crypt_key_new(CRYPT_XCHACHA20, key, &k, &err), 0);
	assert_int_equal(crypt_key_suite(k), CRYPT_XCHACHA20);
	memset(plain, 0xAA, sizeof(plain));
	assert_int_equal(crypt_open(k, ad, sizeof(ad), sealed,
				    n + CRYPT_OVERHEAD, plain),
			 0);
	assert_memory_equal(plain, ladies, n);
	/* the untouched byte after the plaintext: open writes len - 40 */
	assert_int_equal(plain[n], 0xAA);

	/* the same vector without its associated data does not open */
	assert_int_equal(
		crypt_open(k, NULL, 0, sealed, n + CRYPT_OVERHEAD, plain),
		-EBADMSG);
	assert_true(all_zero(plain, n));
	crypt_key_free(k);
}

/* Flip every bit of the sealed bytes (from..to), and of ad when flip_ad:
 * each must fail with plain zeroed. */
static void flip_all(const struct crypt_key *k, uint8_t *ad, size_t ad_len,
		     int flip_ad, uint8_t *sealed, size_t len, size_t from,
		     size_t to)
{
	size_t plen = len - CRYPT_OVERHEAD, i;
	uint8_t *plain = malloc(plen + 1);
	int b;

	assert_non_null(plain);
	for (i = from; i < to; i++) {
		for (b = 0; b < 8; b++) {
			sealed[i] ^= (uint8_t)(1u << b);
			memset(plain, 0xAA, plen + 1);
			assert_int_equal(
				crypt_open(k, ad, ad_len, sealed, len, plain),
				-EBADMSG);
			assert_true(all_zero(plain, plen));
			sealed[i] ^= (uint8_t)(1u << b);
		}
	}
	for (i = 0; flip_ad && i < ad_len; i++) {
		for (b = 0; b < 8; b++) {
			ad[i] ^= (uint8_t)(1u << b);
			memset(plain, 0xAA, plen + 1);
			assert_int_equal(
				crypt_open(k, ad, ad_len, sealed, len, plain),
				-EBADMSG);
			assert_true(all_zero(plain, plen));
			ad[i] ^= (uint8_t)(1u << b);
		}
	}
	/* untouched again: it opens */
	assert_int_equal(crypt_open(k, ad, ad_len, sealed, len, plain), 0);
	free(plain);
}

static void round_trip(enum crypt_suite suite, size_t n, int flip_every_bit)
{
	struct crypt_key *k = key_of(suite, 0x11);
	uint8_t *in = pattern(n, (uint32_t)n);
	uint8_t *sealed = malloc(n + CRYPT_OVERHEAD);
	uint8_t *out = malloc(n + 1);
	uint8_t ad[37];
	size_t len = n + CRYPT_OVERHEAD, i;

	assert_non_null(sealed);
	assert_non_null(out);
	for (i = 0; i < sizeof(ad); i++)
		ad[i] = (uint8_t)(i * 7);
	assert_int_equal(crypt_seal(k, ad, sizeof(ad), in, n, sealed), 0);
	memset(out, 0xAA, n + 1);
	assert_int_equal(crypt_open(k, ad, sizeof(ad), sealed, len, out), 0);
	if (n)
		assert_memory_equal(out, in, n);
	assert_int_equal(out[n], 0xAA);

	if (flip_every_bit) {
		flip_all(k, ad, sizeof(ad), 1, sealed, len, 0, len);
	} else {
		/* nonce, both ends and the middle of ciphertext, tag */
		flip_all(k, ad, sizeof(ad), 1, sealed, len, 0, CRYPT_NONCE_LEN);
		flip_all(k, ad, sizeof(ad), 0, sealed, len, CRYPT_NONCE_LEN,
			 CRYPT_NONCE_LEN + 8);
		flip_all(k, ad, sizeof(ad), 0, sealed, len, len / 2,
			 len / 2 + 8);
		flip_all(k, ad, sizeof(ad), 0, sealed, len,
			 len - CRYPT_TAG_LEN - 8, len);
	}
	crypt_key_free(k);
	free(in);
	free(sealed);
	free(out);
}

static void test_crypt_round_trip(void **state)
{
	static const size_t sizes[] = {0, 1, 15, 16, 4096, 1u << 20};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		round_trip(CRYPT_XCHACHA20, sizes[i], sizes[i] <= 4096);
		round_trip(CRYPT_NONE, sizes[i], sizes[i] <= 4096);
	}
}

static void test_crypt_truncated_and_extended(void **state)
{
	enum crypt_suite suites[] = {CRYPT_XCHACHA20, CRYPT_NONE};
	uint8_t in[100], sealed[100 + CRYPT_OVERHEAD + 1], out[101];
	size_t cut, s;

	(void)state;
	memset(in, 'x', sizeof(in));
	for (s = 0; s < 2; s++) {
		struct crypt_key *k = key_of(suites[s], 0x22);
		size_t len = sizeof(in) + CRYPT_OVERHEAD;

		assert_int_equal(crypt_seal(k, "ad", 2, in, sizeof(in), sealed),
				 0);
		for (cut = 1; cut <= CRYPT_OVERHEAD; cut++) {
			memset(out, 0xAA, sizeof(out));
			assert_int_equal(
				crypt_open(k, "ad", 2, sealed, len - cut, out),
				-EBADMSG);
			assert_true(all_zero(out, sizeof(in) - cut));
			/* nothing written past what that length allows */
			assert_int_equal(out[sizeof(in) - cut], 0xAA);
		}
		/* the front cut off instead: a shifted nonce */
		assert_int_equal(
			crypt_open(k, "ad", 2, sealed + 1, len - 1, out),
			-EBADMSG);
		/* a byte appended */
		sealed[len] = 0;
		assert_int_equal(crypt_open(k, "ad", 2, sealed, len + 1, out),
				 -EBADMSG);
		assert_int_equal(crypt_open(k, "ad", 2, sealed, len, out), 0);
		crypt_key_free(k);
	}

	/* shorter than a nonce and a tag: refused, nothing to write */
	{
		struct crypt_key *k = key_of(CRYPT_XCHACHA20, 0x22);

		assert_int_equal(crypt_open(k, NULL, 0, sealed, 0, NULL),
				 -EBADMSG);
		assert_int_equal(crypt_open(k, NULL, 0, sealed,
					    CRYPT_OVERHEAD - 1, NULL),
				 -EBADMSG);
		crypt_key_free(k);
	}
}

static void test_crypt_wrong_key(void **state)
{
	struct crypt_key *a = key_of(CRYPT_XCHACHA20, 0x33);
	struct crypt_key *b = key_of(CRYPT_XCHACHA20, 0x34);
	struct crypt_key *none = key_of(CRYPT_NONE, 0);
	uint8_t in[64], sealed[64 + CRYPT_OVERHEAD], out[64];
	size_t len = sizeof(sealed);

	(void)state;
	memset(in, 'y', sizeof(in));
	assert_int_equal(crypt_seal(a, "x", 1, in, sizeof(in), sealed), 0);
	memset(out, 0xAA, sizeof(out));
	assert_int_equal(crypt_open(b, "x", 1, sealed, len, out), -EBADMSG);
	assert_true(all_zero(out, sizeof(out)));
	/* a none reader of an encrypted record, and the reverse */
	assert_int_equal(crypt_open(none, "x", 1, sealed, len, out), -EBADMSG);
	assert_int_equal(crypt_seal(none, "x", 1, in, sizeof(in), sealed), 0);
	assert_int_equal(crypt_open(a, "x", 1, sealed, len, out), -EBADMSG);
	assert_true(all_zero(out, sizeof(out)));
	assert_int_equal(crypt_open(none, "x", 1, sealed, len, out), 0);
	crypt_key_free(a);
	crypt_key_free(b);
	crypt_key_free(none);
}

/* The none suite is bit-rot detection, not encryption: the plaintext is
 * readable in what it stores, and its tag is XXH3-128 of ad || nonce ||
 * plain, which anyone can recompute. */
static void test_crypt_none_is_not_encryption(void **state)
{
	struct crypt_key *k = NULL;
	struct mv_err err = MV_ERR_INIT;
	size_t n = sizeof(ladies) - 1;
	uint8_t sealed[256], out[256];

	(void)state;
	/* no key bytes needed */
	assert_int_equal(crypt_key_new(CRYPT_NONE, NULL, &k, &err), 0);
	assert_int_equal(crypt_key_suite(k), CRYPT_NONE);
	assert_int_equal(crypt_seal(k, "ad", 2, ladies, n, sealed), 0);
	assert_non_null(memmem(sealed, n + CRYPT_OVERHEAD, ladies, n));
	assert_memory_equal(sealed + CRYPT_NONCE_LEN, ladies, n);
	assert_int_equal(
		crypt_open(k, "ad", 2, sealed, n + CRYPT_OVERHEAD, out), 0);
	assert_memory_equal(out, ladies, n);
	/* the tag is the documented one, recomputed here */
	{
		uint8_t all[2 + CRYPT_NONCE_LEN + sizeof(ladies)];
		XXH128_canonical_t c;

		memcpy(all, "ad", 2);
		memcpy(all + 2, sealed, CRYPT_NONCE_LEN + n);
		XXH128_canonicalFromHash(
			&c, XXH3_128bits(all, 2 + CRYPT_NONCE_LEN + n));
		assert_memory_equal(sealed + CRYPT_NONCE_LEN + n, c.digest,
				    CRYPT_TAG_LEN);
	}
	crypt_key_free(k);

	/* and the XChaCha suite's bytes do not contain it */
	k = key_of(CRYPT_XCHACHA20, 0x44);
	assert_int_equal(crypt_seal(k, "ad", 2, ladies, n, sealed), 0);
	assert_null(memmem(sealed, n + CRYPT_OVERHEAD, ladies, 16));
	crypt_key_free(k);
}

static void test_crypt_random_nonces(void **state)
{
	enum crypt_suite suites[] = {CRYPT_XCHACHA20, CRYPT_NONE};
	uint8_t in[32], s1[32 + CRYPT_OVERHEAD], s2[32 + CRYPT_OVERHEAD];
	size_t s;

	(void)state;
	memset(in, 'z', sizeof(in));
	for (s = 0; s < 2; s++) {
		struct crypt_key *k = key_of(suites[s], 0x55);

		assert_int_equal(crypt_seal(k, NULL, 0, in, sizeof(in), s1), 0);
		assert_int_equal(crypt_seal(k, NULL, 0, in, sizeof(in), s2), 0);
		assert_memory_not_equal(s1, s2, CRYPT_NONCE_LEN);
		assert_memory_not_equal(s1 + sizeof(s1) - CRYPT_TAG_LEN,
					s2 + sizeof(s2) - CRYPT_TAG_LEN,
					CRYPT_TAG_LEN);
		if (suites[s] == CRYPT_XCHACHA20)
			assert_memory_not_equal(s1 + CRYPT_NONCE_LEN,
						s2 + CRYPT_NONCE_LEN,
						sizeof(in));
		crypt_key_free(k);
	}
}

/* Padme from the PURBs paper, written out independently of crypt.c. */
static size_t padme(size_t n)
{
	unsigned e, s, last;
	size_t mask;

	e = 63u - (unsigned)__builtin_clzll((unsigned long long)n);
	s = 32u - (unsigned)__builtin_clz(e);
	last = e - s;
	mask = ((size_t)1 << last) - 1;
	return (n + mask) & ~mask;
}

static void check_padded(size_t n, size_t prev)
{
	size_t p = crypt_padded_len(n);

	assert_true(p >= n);
	assert_true(p >= prev);
	if (n >= 256) {
		assert_true((p - n) * 100 <= n * 12);
		assert_int_equal(p, padme(n));
	} else {
		assert_int_equal(p % 16, 0);
		assert_true(p - n < 16);
	}
}

static void test_crypt_padded_len(void **state)
{
	size_t n, prev = 0, p;
	unsigned long long big;

	(void)state;
	/* by hand: E = floor(log2 L), S = floor(log2 E) + 1,
	 * mask = 2^(E - S) - 1 */
	assert_int_equal(crypt_padded_len(0), 0);
	assert_int_equal(crypt_padded_len(1), 16);
	assert_int_equal(crypt_padded_len(16), 16);
	assert_int_equal(crypt_padded_len(17), 32);
	assert_int_equal(crypt_padded_len(255), 256);
	assert_int_equal(crypt_padded_len(256), 256);	  /* E 8, S 4 */
	assert_int_equal(crypt_padded_len(257), 272);	  /* mask 15 */
	assert_int_equal(crypt_padded_len(1000), 1024);	  /* E 9, mask 31 */
	assert_int_equal(crypt_padded_len(1025), 1088);	  /* E 10, mask 63 */
	assert_int_equal(crypt_padded_len(4097), 4352);	  /* E 12, mask 255 */
	assert_int_equal(crypt_padded_len(50000), 51200); /* E 15, mask 2047 */
	/* E 20, S 5, mask 32767 */
	assert_int_equal(crypt_padded_len((1u << 20) + 1), 1081344);

	for (n = 0; n <= (1u << 22); n++) {
		check_padded(n, prev);
		prev = crypt_padded_len(n);
	}
	/* sampled up to 2^40, around every power of two */
	for (big = 1ull << 22; big < (1ull << 40); big <<= 1) {
		check_padded((size_t)big - 1,
			     crypt_padded_len((size_t)big - 2));
		check_padded((size_t)big, crypt_padded_len((size_t)big - 1));
		check_padded((size_t)big + 1, crypt_padded_len((size_t)big));
		check_padded((size_t)(big + big / 3),
			     crypt_padded_len((size_t)(big + big / 3 - 1)));
	}
	/* padding never wraps */
	p = crypt_padded_len(SIZE_MAX - 3);
	assert_true(p >= SIZE_MAX - 3);
}

static void test_crypt_derive(void **state)
{
	static const enum crypt_subkey all[] = {
		CRYPT_SK_ID,	 CRYPT_SK_CHUNKER, CRYPT_SK_BOUNDARY,
		CRYPT_SK_RING,	 CRYPT_SK_DATA,	   CRYPT_SK_META,
		CRYPT_SK_CATALOG};
	static const uint32_t epochs[] = {0, 1, 2, 255, 256, UINT32_MAX};
	uint8_t root[CRYPT_KEY_LEN], keys[7 * 6][CRYPT_KEY_LEN];
	uint8_t again[CRYPT_KEY_LEN], direct[CRYPT_KEY_LEN],
		known[CRYPT_KEY_LEN];
	size_t nk = 0, i, j, e;

	(void)state;
	for (i = 0; i < CRYPT_KEY_LEN; i++)
		root[i] = (uint8_t)i;
	for (i = 0; i < 7; i++) {
		for (e = 0; e < 6; e++) {
			int epoch_key = all[i] >= CRYPT_SK_DATA;

			if (!epoch_key && epochs[e]) {
				/* identities have no epoch */
				assert_int_equal(crypt_derive(root, all[i],
							      epochs[e], again),
						 -EINVAL);
				continue;
			}
			assert_int_equal(
				crypt_derive(root, all[i], epochs[e], keys[nk]),
				0);
			assert_int_equal(
				crypt_derive(root, all[i], epochs[e], again),
				0);
			assert_memory_equal(keys[nk], again, CRYPT_KEY_LEN);
			nk++;
		}
	}
	assert_int_equal(nk, 4 + 3 * 6);
	for (i = 0; i < nk; i++)
		for (j = i + 1; j < nk; j++)
			assert_memory_not_equal(keys[i], keys[j],
						CRYPT_KEY_LEN);
	assert_int_equal(crypt_derive(root, (enum crypt_subkey)5, 0, again),
			 -EINVAL);

	/* the format's mapping: context "mvault02", id which + (epoch << 8);
	 * once through libsodium here, and as bytes computed once */
	assert_int_equal(crypt_derive(root, CRYPT_SK_DATA, 3, again), 0);
	assert_int_equal(crypto_kdf_derive_from_key(direct, sizeof(direct),
						    16 + (3ull << 8),
						    "mvault02", root),
			 0);
	assert_memory_equal(again, direct, CRYPT_KEY_LEN);
	unhex("4688a77ff4941de7dd2d81a1480816c420b53b4ba0ce0e6a6344fea60cf2cd"
	      "af",
	      known, sizeof(known));
	assert_memory_equal(again, known, CRYPT_KEY_LEN);
	assert_int_equal(crypt_derive(root, CRYPT_SK_ID, 0, again), 0);
	unhex("b0bc109fac146df2958497149cabeec2a79d1903d0b1088dca18a47086f94e"
	      "88",
	      known, sizeof(known));
	assert_memory_equal(again, known, CRYPT_KEY_LEN);
}

static void test_crypt_bad_arguments(void **state)
{
	struct crypt_key *k = NULL;
	struct mv_err err = MV_ERR_INIT;
	uint8_t buf[64];

	(void)state;
	assert_int_equal(crypt_key_new(CRYPT_XCHACHA20, NULL, &k, &err),
			 -EINVAL);
	assert_null(k);
	assert_true(err.msg[0]);
	mv_err_clear(&err);
	assert_int_equal(crypt_key_new((enum crypt_suite)7, buf, &k, &err),
			 -EINVAL);
	assert_null(k);
	assert_true(err.msg[0]);
	crypt_key_free(NULL);

	k = key_of(CRYPT_XCHACHA20, 1);
	assert_int_equal(crypt_seal(NULL, NULL, 0, buf, 1, buf), -EINVAL);
	assert_int_equal(crypt_seal(k, NULL, 0, NULL, 1, buf), -EINVAL);
	assert_int_equal(crypt_seal(k, NULL, 3, buf, 1, buf), -EINVAL);
	assert_int_equal(crypt_open(NULL, NULL, 0, buf, 64, buf), -EINVAL);
	crypt_key_free(k);
}

static void test_crypt_random_and_wipe(void **state)
{
	uint8_t a[64], b[64];

	(void)state;
	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	crypt_random(a, sizeof(a));
	crypt_random(b, sizeof(b));
	assert_false(all_zero(a, sizeof(a)));
	assert_memory_not_equal(a, b, sizeof(a));
	crypt_wipe(a, sizeof(a));
	assert_true(all_zero(a, sizeof(a)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crypt_xchacha_known_answer),
		cmocka_unit_test(test_crypt_round_trip),
		cmocka_unit_test(test_crypt_truncated_and_extended),
		cmocka_unit_test(test_crypt_wrong_key),
		cmocka_unit_test(test_crypt_none_is_not_encryption),
		cmocka_unit_test(test_crypt_random_nonces),
		cmocka_unit_test(test_crypt_padded_len),
		cmocka_unit_test(test_crypt_derive),
		cmocka_unit_test(test_crypt_bad_arguments),
		cmocka_unit_test(test_crypt_random_and_wipe),
	};

	return cmocka_run_group_tests_name("crypt", tests, setup, NULL);
}
