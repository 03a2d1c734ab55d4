/*
 * fuzz_crypt_open: crypt_open() of any bytes (a record read from a
 * repository someone else may have written) under a fixed key.
 *
 * Input: one byte (bit 0: the none suite instead of XChaCha20-Poly1305;
 * bits 1-7: the length of the associated data), the associated data,
 * then the sealed record.  Checks besides crashes, leaks and UB: a failed
 * open is -EBADMSG and leaves the output all zero, never partly filled,
 * and writes nothing past len - CRYPT_OVERHEAD; an open that succeeds
 * gives bytes that seal and open again under the same associated data;
 * and the record bytes sealed as a plaintext open back to themselves,
 * while the same with one bit flipped (chosen by the input) fails.
 *
 * The key is bytes 1..32; tests/fuzz/gen_corpus.c seals the seeds with it.
 */
#include "crypt.h"
#include "fuzz.h"

static struct crypt_key *keys[2];

static void keys_init(void)
{
	struct mv_err err = MV_ERR_INIT;
	uint8_t key[CRYPT_KEY_LEN];
	size_t i;

	if (keys[0])
		return;
	for (i = 0; i < CRYPT_KEY_LEN; i++)
		key[i] = (uint8_t)(i + 1);
	FUZZ_CHECK(!crypt_init(&err));
	FUZZ_CHECK(!crypt_key_new(CRYPT_XCHACHA20, key, &keys[0], &err));
	FUZZ_CHECK(!crypt_key_new(CRYPT_NONE, NULL, &keys[1], &err));
}

static int all_zero(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* Seal rec, open it back, then flip bit `bit` and see the open fail. */
static void reseal(const struct crypt_key *k, const uint8_t *ad, size_t ad_len,
		   const uint8_t *rec, size_t len, size_t bit)
{
	uint8_t *sealed = malloc(len + CRYPT_OVERHEAD);
	uint8_t *back = malloc(len + 1);
	size_t slen = len + CRYPT_OVERHEAD;

	FUZZ_CHECK(sealed && back);
	FUZZ_CHECK(!crypt_seal(k, ad, ad_len, rec, len, sealed));
	FUZZ_CHECK(!crypt_open(k, ad, ad_len, sealed, slen, back));
	FUZZ_CHECK(!len || !memcmp(back, rec, len));
	bit %= slen * 8;
	sealed[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	memset(back, 0xAA, len + 1);
	FUZZ_CHECK(crypt_open(k, ad, ad_len, sealed, slen, back) == -EBADMSG);
	FUZZ_CHECK(all_zero(back, len) && back[len] == 0xAA);
	free(sealed);
	free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct crypt_key *k;
	const uint8_t *ad, *rec;
	size_t ad_len, len, plen;
	uint8_t *plain;
	int rc;

	if (size < 1)
		return 0;
	keys_init();
	k = keys[data[0] & 1];
	ad_len = (size_t)(data[0] >> 1);
	if (ad_len > size - 1)
		ad_len = size - 1;
	ad = data + 1;
	rec = ad + ad_len;
	len = size - 1 - ad_len;
	plen = len > CRYPT_OVERHEAD ? len - CRYPT_OVERHEAD : 0;

	/* one byte more than open may write, to see it left alone */
	plain = malloc(plen + 1);
	FUZZ_CHECK(plain);
	memset(plain, 0xAA, plen + 1);
	rc = crypt_open(k, ad, ad_len, rec, len, plain);
	if (rc) {
		FUZZ_CHECK(rc == -EBADMSG);
		FUZZ_CHECK(all_zero(plain, plen));
	} else {
		FUZZ_CHECK(len >= CRYPT_OVERHEAD);
		reseal(k, ad, ad_len, plain, plen, size);
	}
	FUZZ_CHECK(plain[plen] == 0xAA);
	free(plain);

	reseal(k, ad, ad_len, rec, len, (size_t)data[0] * 7919u + size);
	return 0;
}
