/* Unit tests for mail_crypt: detection, key loading, and the refusal of
 * truncated, corrupt and foreign-key input.  Real Dovecot-written files are
 * decoded in tests/integration/t5001-mailcrypt.sh. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lz4.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <zstd.h>

#include "mail_crypt.h"

static const char msg[] = "From: a@example.org\nSubject: s\n\nbody\n";

static char *pem_of(EVP_PKEY *k, size_t *len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *p, *out;
	long n;

	assert_true(
		PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL));
	n = BIO_get_mem_data(bio, &p);
	out = malloc((size_t)n);
	memcpy(out, p, (size_t)n);
	*len = (size_t)n;
	BIO_free(bio);
	return out;
}

static void test_mail_crypt_detect(void **state)
{
	(void)state;
	assert_int_equal(mail_crypt_detect(msg, sizeof(msg) - 1),
			 MAIL_CRYPT_PLAIN);
	assert_int_equal(mail_crypt_detect("CRYPTED\x03\x07\x02", 10),
			 MAIL_CRYPT_ENCRYPTED);
	assert_int_equal(mail_crypt_detect("CRYPTED", 7), MAIL_CRYPT_PLAIN);
	assert_int_equal(
		mail_crypt_detect("Dovecot-LZ4\x0d\x2a\x9b\xc5\0\1\0\0", 19),
		MAIL_CRYPT_LZ4);
	assert_int_equal(mail_crypt_detect("\x28\xb5\x2f\xfd", 4),
			 MAIL_CRYPT_ZSTD);
	assert_int_equal(mail_crypt_detect("\x1f\x8b\x08\0", 4),
			 MAIL_CRYPT_GZIP);
	assert_int_equal(mail_crypt_detect("BZh", 3), MAIL_CRYPT_PLAIN);
	assert_int_equal(mail_crypt_detect("", 0), MAIL_CRYPT_PLAIN);
}

static void test_mail_crypt_plain_and_zstd(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct mv_buf out = MV_BUF_INIT;
	char z[256];
	size_t zn;
	unsigned layers = 99;

	(void)state;
	assert_int_equal(mail_crypt_decode(msg, sizeof(msg) - 1, NULL, &out,
					   &layers, &err),
			 0);
	assert_int_equal(layers, MAIL_CRYPT_PLAIN);
	assert_int_equal(out.len, sizeof(msg) - 1);
	assert_memory_equal(out.data, msg, out.len);
	mv_buf_reset(&out);
	zn = ZSTD_compress(z, sizeof(z), msg, sizeof(msg) - 1, 3);
	assert_false(ZSTD_isError(zn));
	assert_int_equal(mail_crypt_decode(z, zn, NULL, &out, &layers, &err),
			 0);
	assert_int_equal(layers, MAIL_CRYPT_ZSTD);
	assert_memory_equal(out.data, msg, sizeof(msg) - 1);
	mv_buf_reset(&out);
	/* truncated zstd: an error, out untouched */
	assert_int_equal(mail_crypt_decode(z, zn - 3, NULL, &out, NULL, &err),
			 -EBADMSG);
	assert_int_equal(out.len, 0);
	mv_buf_release(&out);
}

static void test_mail_crypt_keys(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct mail_crypt_keys *keys, *both;
	EVP_PKEY *p256 = EVP_EC_gen("P-256");
	EVP_PKEY *p384 = EVP_EC_gen("P-384");
	char *pem;
	size_t len;

	(void)state;
	assert_int_equal(mail_crypt_keys_new(&keys, &err), 0);
	pem = pem_of(p256, &len);
	assert_int_equal(mail_crypt_keys_add_pem(keys, pem, len, &err), 0);
	free(pem);
	pem = pem_of(p384, &len);
	assert_int_equal(mail_crypt_keys_add_pem(keys, pem, len, &err),
			 -EINVAL);
	free(pem);
	mv_err_clear(&err);
	assert_int_equal(mail_crypt_keys_add_pem(keys, "garbage", 7, &err),
			 -EINVAL);
	mv_err_clear(&err);
	assert_int_equal(mail_crypt_keys_load_dir(keys, "/nonexistent", &err),
			 -ENOENT);
	assert_int_equal(mail_crypt_keys_count(keys), 1);
	/* shared into another set, which outlives the first */
	assert_int_equal(mail_crypt_keys_new(&both, &err), 0);
	assert_int_equal(mail_crypt_keys_add_all(both, keys, &err), 0);
	assert_int_equal(mail_crypt_keys_add_all(both, keys, &err), 0);
	mail_crypt_keys_free(keys);
	assert_int_equal(mail_crypt_keys_count(both), 2);
	mail_crypt_keys_free(both);
	mail_crypt_keys_free(NULL);
	mail_crypt_warm(); /* a hint: must not fail or leak */
	EVP_PKEY_free(p256);
	EVP_PKEY_free(p384);
}

/* A header shaped as Dovecot writes it but naming a key id we lack. */
static size_t foreign_header(uint8_t *b)
{
	static const uint8_t
		head[] = {'C',	'R',  'Y',  'P',  'T',	'E',  'D',  3,
			  7,	2,    0,    0,	  0,	2,    0,    0,
			  0,	0, /* hdr_len, set below */
			  0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
			  0x04, 0x01, 0x2e, 0x06, 0x09, 0x60, 0x86, 0x48,
			  0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0,    0,
			  8,	0,    0,    0,	  0,	0xcf, 1,    2};
	size_t n = sizeof(head);

	memcpy(b, head, n);
	memset(b + n, 0xab, 32 + 4 + 65 + 4 + 64 + 4 + 32);
	n += 32 + 4 + 65 + 4 + 64 + 4 + 32;
	b[17] = (uint8_t)n;
	b[16] = (uint8_t)(n >> 8);
	memset(b + n, 0, 40);
	return n + 40;
}

static void test_mail_crypt_refusals(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct mv_buf out = MV_BUF_INIT;
	struct mail_crypt_keys *keys;
	EVP_PKEY *k = EVP_EC_gen("P-256");
	uint8_t b[512];
	size_t n, len;
	char *pem;

	(void)state;
	mail_crypt_keys_new(&keys, &err);
	pem = pem_of(k, &len);
	mail_crypt_keys_add_pem(keys, pem, len, &err);
	free(pem);
	n = foreign_header(b);
	assert_int_equal(mail_crypt_decode(b, n, keys, &out, NULL, &err),
			 -ENOKEY);
	assert_non_null(strstr(err.msg, "abababab"));
	mv_err_clear(&err);
	assert_int_equal(mail_crypt_decode(b, n, NULL, &out, NULL, &err),
			 -ENOKEY);
	mv_err_clear(&err);
	assert_int_equal(mail_crypt_decode(b, 60, keys, &out, NULL, &err),
			 -EBADMSG);
	mv_err_clear(&err);
	assert_int_equal(mail_crypt_decode(b, 10, keys, &out, NULL, &err),
			 -EBADMSG);
	mv_err_clear(&err);
	b[9] = 1;
	assert_int_equal(mail_crypt_decode(b, n, keys, &out, NULL, &err),
			 -ENOTSUP);
	mv_err_clear(&err);
	/* LZ4 header with an absurd chunk size, and cut after the header */
	memcpy(b, "Dovecot-LZ4\x0d\x2a\x9b\xc5\x7f\0\0\0", 19);
	assert_int_equal(mail_crypt_decode(b, 19, NULL, &out, NULL, &err),
			 -EBADMSG);
	mv_err_clear(&err);
	memcpy(b, "Dovecot-LZ4\x0d\x2a\x9b\xc5\0\1\0\0\0\0\0\x40xx", 25);
	assert_int_equal(mail_crypt_decode(b, 25, NULL, &out, NULL, &err),
			 -EBADMSG);
	assert_int_equal(out.len, 0);
	mail_crypt_keys_free(keys);
	EVP_PKEY_free(k);
	mv_buf_release(&out);
}

/* Dovecot's LZ4 framing (iostream-lz4.h) around big, in 64 KiB chunks. */
static size_t lz4_frame(const uint8_t *in, size_t n, uint8_t *out)
{
	size_t off = 0, o = 19;
	const uint32_t chunk = 65536;

	memcpy(out, "Dovecot-LZ4\x0d\x2a\x9b\xc5\0\1\0\0", 19);
	while (off < n) {
		int k = (int)(n - off < chunk ? n - off : chunk);
		int c = LZ4_compress_default((const char *)in + off,
					     (char *)out + o + 4, k,
					     LZ4_compressBound(k));

		assert_true(c > 0);
		out[o] = (uint8_t)(c >> 24);
		out[o + 1] = (uint8_t)(c >> 16);
		out[o + 2] = (uint8_t)(c >> 8);
		out[o + 3] = (uint8_t)c;
		o += 4 + (size_t)c;
		off += (size_t)k;
	}
	return o;
}

static void test_mail_crypt_prefix(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct mv_buf out = MV_BUF_INIT;
	size_t n = 3 << 20, zn, ln, i;
	uint8_t *big = malloc(n), *z, *l;
	uint32_t x = 2463534242u;
	unsigned layers = 0;

	(void)state;
	memcpy(big, msg, sizeof(msg) - 1);
	for (i = sizeof(msg) - 1; i < n; i++) {
		/* xorshift: text LZ4 cannot shrink much */
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		big[i] = (uint8_t)('a' + x % 26);
	}
	/* plain: the first max_out bytes */
	assert_int_equal(mail_crypt_decode_prefix(big, 100000, n, NULL, 4096,
						  &out, &layers, &err),
			 0);
	assert_int_equal(out.len, 4096);
	assert_memory_equal(out.data, big, 4096);
	mv_buf_reset(&out);
	/* zstd cut at a third: a prefix of the message, no error */
	z = malloc(ZSTD_compressBound(n));
	zn = ZSTD_compress(z, ZSTD_compressBound(n), big, n, 1);
	assert_false(ZSTD_isError(zn));
	assert_int_equal(mail_crypt_decode_prefix(z, zn / 3, zn, NULL, 1 << 20,
						  &out, &layers, &err),
			 0);
	assert_int_equal(layers, MAIL_CRYPT_ZSTD);
	assert_true(out.len > 0 && out.len <= n);
	assert_memory_equal(out.data, big, out.len);
	mv_buf_reset(&out);
	/* Dovecot LZ4 cut inside a chunk: the complete chunks before it */
	l = malloc(19 + n + n / 8 + 65536);
	ln = lz4_frame(big, n, l);
	assert_true(ln > 1000000);
	assert_int_equal(mail_crypt_decode_prefix(l, 200000, ln, NULL, 1 << 20,
						  &out, &layers, &err),
			 0);
	assert_int_equal(layers, MAIL_CRYPT_LZ4);
	assert_true(out.len >= 65536 && out.len % 65536 == 0);
	assert_memory_equal(out.data, big, out.len);
	mv_buf_reset(&out);
	/* max_out stops early */
	assert_int_equal(mail_crypt_decode_prefix(l, ln - 1, ln, NULL, 100000,
						  &out, NULL, &err),
			 0);
	assert_int_equal(out.len, 100000);
	assert_memory_equal(out.data, big, 100000);
	mv_buf_reset(&out);
	/* whole (total <= n): the full decode */
	assert_int_equal(
		mail_crypt_decode_prefix(l, ln, ln, NULL, 10, &out, NULL, &err),
		0);
	assert_int_equal(out.len, n);
	assert_memory_equal(out.data, big, n);
	mv_buf_reset(&out);
	/* a corrupt block inside the prefix is still an error */
	l[19 + 4] ^= 0xff;
	l[19 + 5] ^= 0xff;
	l[19 + 4 + 100] = 0xff;
	assert_int_equal(mail_crypt_decode_prefix(l, 200000, ln, NULL, 1 << 20,
						  &out, NULL, &err),
			 -EBADMSG);
	assert_int_equal(out.len, 0);
	mv_buf_release(&out);
	free(l);
	free(z);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mail_crypt_detect),
		cmocka_unit_test(test_mail_crypt_plain_and_zstd),
		cmocka_unit_test(test_mail_crypt_keys),
		cmocka_unit_test(test_mail_crypt_refusals),
		cmocka_unit_test(test_mail_crypt_prefix),
	};

	return cmocka_run_group_tests_name("mail_crypt", tests, NULL, NULL);
}
