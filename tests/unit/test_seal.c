/*
 * Unit tests for seal: records, pack tables and trailers of format 2 round
 * trip; a record opened as another id, type or epoch, a table or trailer
 * opened under another pack name, a wrong key, non-zero or non-canonical
 * padding, truncation and every byte flipped all fail with -EBADMSG and a
 * message naming the object.  Malformed plaintexts are sealed here with
 * crypt_seal directly, so only seal's own checks can refuse them.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zstd.h>

#include "crypt.h"
#include "seal.h"
#include "util.h"

#define NAME_A "0123456789abcdef0123456789abcdef"
#define NAME_B "fedcba9876543210fedcba9876543210"

static struct crypt_key *key_of(uint8_t fill)
{
	uint8_t bytes[CRYPT_KEY_LEN];
	struct crypt_key *k = NULL;
	struct mv_err err = MV_ERR_INIT;

	memset(bytes, fill, sizeof(bytes));
	assert_int_equal(crypt_key_new(CRYPT_XCHACHA20, bytes, &k, &err), 0);
	return k;
}

static void id_of(uint8_t id[SEAL_ID_LEN], uint8_t seed)
{
	size_t i;

	for (i = 0; i < SEAL_ID_LEN; i++)
		id[i] = (uint8_t)(seed + i * 3);
}

static int setup(void **state)
{
	struct mv_err err = MV_ERR_INIT;

	(void)state;
	return crypt_init(&err);
}

static void test_seal_record_round_trip(void **state)
{
	static const size_t sizes[] = {0, 1, 100, 255, 256, 5000, 1u << 20};
	struct crypt_key *k = key_of(1);
	struct mv_buf out = MV_BUF_INIT, back = MV_BUF_INIT;
	struct mv_err err = MV_ERR_INIT;
	uint8_t id[SEAL_ID_LEN], comp = 0;
	uint32_t dict = 0;
	size_t i, j;

	(void)state;
	id_of(id, 7);
	for (i = 0; i < MV_ARRAY_SIZE(sizes); i++) {
		size_t n = sizes[i];
		uint8_t *p = malloc(n + 1);

		assert_non_null(p);
		for (j = 0; j < n; j++)
			p[j] = (uint8_t)(j * 31 + 1);
		mv_buf_reset(&out);
		/* appended after what out already holds */
		assert_int_equal(mv_buf_append(&out, "xyz", 3), 0);
		assert_int_equal(
			seal_record(k, 1, 0, id, 2, 70000, p, n, &out, &err),
			0);
		assert_int_equal(out.len, 3 + seal_record_len(70000, n));
		/* padded: header 1 + 3 + varint(n), then Padme */
		assert_int_equal(out.len - 3 - CRYPT_OVERHEAD,
				 crypt_padded_len(1 + 3 +
						  (n < 128     ? 1
						   : n < 16384 ? 2
							       : 3) +
						  n));
		assert_int_equal(seal_record_open(k, 1, 0, id, out.data + 3,
						  out.len - 3, &comp, &dict,
						  &back, &err),
				 0);
		assert_int_equal(comp, 2);
		assert_int_equal(dict, 70000);
		assert_int_equal(back.len, n);
		if (n)
			assert_memory_equal(back.data, p, n);
		free(p);
	}
	assert_int_equal(seal_record_len(0, SEAL_MAX_PAYLOAD + 1), 0);
	crypt_key_free(k);
	mv_buf_release(&out);
	mv_buf_release(&back);
}

static void expect_bad_record(const struct crypt_key *k, uint8_t type,
			      uint32_t epoch, const uint8_t *id,
			      const uint8_t *sealed, size_t len,
			      const char *needle)
{
	struct mv_buf back = MV_BUF_INIT;
	struct mv_err err = MV_ERR_INIT;
	uint8_t comp = 9;
	uint32_t dict = 9;
	char hex[2 * SEAL_ID_LEN + 1];

	assert_int_equal(mv_buf_append(&back, "old", 3), 0);
	assert_int_equal(seal_record_open(k, type, epoch, id, sealed, len,
					  &comp, &dict, &back, &err),
			 -EBADMSG);
	assert_int_equal(back.len, 0);
	assert_int_equal(comp, 9);
	/* the message names the record and says what failed */
	mv_hex(id, SEAL_ID_LEN, hex);
	assert_non_null(strstr(err.msg, hex));
	if (needle)
		assert_non_null(strstr(err.msg, needle));
	mv_buf_release(&back);
}

static void test_seal_record_elsewhere_fails(void **state)
{
	struct crypt_key *k = key_of(1), *k2 = key_of(2);
	struct mv_buf out = MV_BUF_INIT;
	struct mv_err err = MV_ERR_INIT;
	uint8_t id[SEAL_ID_LEN], other[SEAL_ID_LEN];
	const char msg[] = "a message body, one chunk";

	(void)state;
	id_of(id, 7);
	memcpy(other, id, sizeof(other));
	other[31] ^= 1;
	assert_int_equal(
		seal_record(k, 2, 5, id, 1, 0, msg, sizeof(msg), &out, &err),
		0);
	expect_bad_record(k, 2, 5, other, out.data, out.len,
			  "authentication failed");
	expect_bad_record(k, 1, 5, id, out.data, out.len, "type 1");
	expect_bad_record(k, 2, 4, id, out.data, out.len, "epoch 4");
	expect_bad_record(k, 2, 5 + 256, id, out.data, out.len, NULL);
	expect_bad_record(k2, 2, 5, id, out.data, out.len,
			  "authentication failed");
	crypt_key_free(k);
	crypt_key_free(k2);
	mv_buf_release(&out);
}

static void test_seal_record_truncated_and_flipped(void **state)
{
	struct crypt_key *k = key_of(1);
	struct mv_buf out = MV_BUF_INIT;
	struct mv_err err = MV_ERR_INIT;
	uint8_t id[SEAL_ID_LEN];
	char msg[300];
	size_t i;

	(void)state;
	memset(msg, 'm', sizeof(msg));
	id_of(id, 9);
	assert_int_equal(
		seal_record(k, 1, 0, id, 0, 0, msg, sizeof(msg), &out, &err),
		0);
	for (i = 1; i < out.len; i++)
		expect_bad_record(k, 1, 0, id, out.data, out.len - i, NULL);
	expect_bad_record(k, 1, 0, id, out.data + 1, out.len - 1, NULL);
	for (i = 0; i < out.len; i++) {
		out.data[i] ^= 0xff;
		expect_bad_record(k, 1, 0, id, out.data, out.len, NULL);
		out.data[i] ^= 0x01;
		expect_bad_record(k, 1, 0, id, out.data, out.len, NULL);
		out.data[i] ^= 0xfe;
	}
	crypt_key_free(k);
	mv_buf_release(&out);
}

/* A record whose plaintext is built by hand and sealed with crypt_seal
 * under the right AAD: authentic, but not what seal_record writes. */
static void seal_raw(const struct crypt_key *k, const uint8_t *id,
		     const uint8_t *plain, size_t plen, uint8_t *out)
{
	uint8_t aad[SEAL_AAD_LEN];

	aad[0] = SEAL_VERSION;
	aad[1] = 1;
	mv_put_le32(aad + 2, 0);
	memcpy(aad + 6, id, SEAL_ID_LEN);
	assert_int_equal(crypt_seal(k, aad, sizeof(aad), plain, plen, out), 0);
}

static void test_seal_record_padding(void **state)
{
	struct crypt_key *k = key_of(1);
	struct mv_buf back = MV_BUF_INIT;
	struct mv_err err = MV_ERR_INIT;
	uint8_t id[SEAL_ID_LEN], plain[64], sealed[64 + CRYPT_OVERHEAD];
	uint8_t comp;
	uint32_t dict;
	size_t i;

	(void)state;
	id_of(id, 3);
	/* comp 0, dict 0, 10 bytes, padded to 16 */
	memset(plain, 0, sizeof(plain));
	plain[2] = 10;
	memset(plain + 3, 'p', 10);
	seal_raw(k, id, plain, 16, sealed);
	/* the hand-made record is right: it opens */
	assert_int_equal(seal_record_open(k, 1, 0, id, sealed,
					  16 + CRYPT_OVERHEAD, &comp, &dict,
					  &back, &err),
			 0);
	assert_int_equal(back.len, 10);

	/* each padding byte non-zero in turn */
	for (i = 13; i < 16; i++) {
		plain[i] = 1;
		seal_raw(k, id, plain, 16, sealed);
		expect_bad_record(k, 1, 0, id, sealed, 16 + CRYPT_OVERHEAD,
				  "padding");
		plain[i] = 0;
	}
	/* more padding than Padme asks for */
	seal_raw(k, id, plain, 32, sealed);
	expect_bad_record(k, 1, 0, id, sealed, 32 + CRYPT_OVERHEAD, "padding");
	/* a payload length past the end */
	plain[2] = 14;
	seal_raw(k, id, plain, 16, sealed);
	expect_bad_record(k, 1, 0, id, sealed, 16 + CRYPT_OVERHEAD,
			  "payload length");
	/* a varint longer than it needs: 0x8a 0x00 is 10 too */
	memset(plain, 0, sizeof(plain));
	memcpy(plain, "\x00\x00\x8a\x00", 4);
	memset(plain + 4, 'p', 10);
	seal_raw(k, id, plain, 16, sealed);
	expect_bad_record(k, 1, 0, id, sealed, 16 + CRYPT_OVERHEAD, "header");
	/* a dictionary id over 32 bits */
	memset(plain, 0, sizeof(plain));
	memcpy(plain, "\x01\xff\xff\xff\xff\x7f\x00", 7);
	seal_raw(k, id, plain, 16, sealed);
	expect_bad_record(k, 1, 0, id, sealed, 16 + CRYPT_OVERHEAD, "header");
	crypt_key_free(k);
	mv_buf_release(&back);
}

static struct seal_entry *entries(size_t n)
{
	struct seal_entry *e = calloc(n ? n : 1, sizeof(*e));
	uint64_t off = 0;
	size_t i;

	assert_non_null(e);
	for (i = 0; i < n; i++) {
		id_of(e[i].id, (uint8_t)i);
		e[i].type = (uint8_t)(1 + i % 3);
		e[i].epoch = (uint8_t)(i % 2);
		e[i].offset = off;
		e[i].stored = (uint32_t)(56 + i * 17);
		e[i].raw = (uint32_t)(100 + i * 40);
		off += e[i].stored + (i % 5 == 0 ? 1000 : 0);
	}
	return e;
}

static void test_seal_table_round_trip(void **state)
{
	static const size_t counts[] = {0, 1, 1000};
	struct crypt_key *k = key_of(1);
	struct mv_buf out = MV_BUF_INIT;
	struct mv_err err = MV_ERR_INIT;
	struct seal_table t;
	size_t i;

	(void)state;
	for (i = 0; i < MV_ARRAY_SIZE(counts); i++) {
		struct seal_entry *e = entries(counts[i]);

		mv_buf_reset(&out);
		assert_int_equal(
			seal_table(k, NAME_A, 2, e, counts[i], &out, &err), 0);
		/* Padme-sized plaintext */
		assert_int_equal(crypt_padded_len(out.len - CRYPT_OVERHEAD),
				 out.len - CRYPT_OVERHEAD);
		assert_int_equal(
			seal_table_open(k, NAME_A, out.data, out.len, &t, &err),
			0);
		assert_int_equal(t.kind, 2);
		assert_int_equal(t.n, counts[i]);
		if (counts[i])
			assert_memory_equal(t.e, e, counts[i] * sizeof(*e));
		seal_table_release(&t);
		free(e);
	}
	crypt_key_free(k);
	mv_buf_release(&out);
}

static void expect_bad_table(const struct crypt_key *k, const char *name,
			     const uint8_t *p, size_t len, const char *needle)
{
	struct mv_err err = MV_ERR_INIT;
	struct seal_table t = {7, 7, NULL};

	assert_int_equal(seal_table_open(k, name, p, len, &t, &err), -EBADMSG);
	assert_int_equal(t.n, 7); /* untouched */
	assert_non_null(strstr(err.msg, name));
	if (needle && !strstr(err.msg, needle))
		fail_msg("'%s' lacks '%s'", err.msg, needle);
}

static void test_seal_table_elsewhere_and_damaged(void **state)
{
	struct crypt_key *k = key_of(1), *k2 = key_of(2);
	struct seal_entry *e = entries(20);
	struct mv_buf out = MV_BUF_INIT;
	struct mv_err err = MV_ERR_INIT;
	size_t i;

	(void)state;
	assert_int_equal(seal_table(k, NAME_A, 1, e, 20, &out, &err), 0);
	expect_bad_table(k, NAME_B, out.data, out.len, "authentication failed");
	expect_bad_table(k2, NAME_A, out.data, out.len,
			 "authentication failed");
	/* a table is not a trailer, whatever its length */
	{
		uint8_t tr[SEAL_TRAILER_LEN];
		struct seal_trailer st = {1, 2, 3, 1};

		assert_int_equal(seal_trailer(k, NAME_A, &st, tr, &err), 0);
		expect_bad_table(k, NAME_A, tr, sizeof(tr), NULL);
	}
	for (i = 1; i < out.len; i++)
		expect_bad_table(k, NAME_A, out.data, out.len - i, NULL);
	for (i = 0; i < out.len; i++) {
		out.data[i] ^= 0xff;
		expect_bad_table(k, NAME_A, out.data, out.len, NULL);
		out.data[i] ^= 0xff;
	}
	/* entries out of order are refused when sealing */
	e[5].offset = e[4].offset;
	mv_err_clear(&err);
	assert_int_equal(seal_table(k, NAME_A, 1, e, 20, &out, &err), -EINVAL);
	assert_non_null(strstr(err.msg, NAME_A));
	free(e);
	crypt_key_free(k);
	crypt_key_free(k2);
	mv_buf_release(&out);
}

/* A table plaintext built by hand: zstd(body), padding, sealed with the
 * table's AAD. */
static void seal_raw_table(const struct crypt_key *k, const struct mv_buf *b,
			   size_t extra_pad, uint8_t pad_byte,
			   struct mv_buf *out)
{
	uint8_t aad[5 + 32], *plain;
	size_t bound = ZSTD_compressBound(b->len), c, plen;

	memcpy(aad, "table", 5);
	memcpy(aad + 5, NAME_A, 32);
	plain = calloc(1, crypt_padded_len(bound) + extra_pad);
	assert_non_null(plain);
	c = ZSTD_compress(plain, bound, b->data, b->len, 1);
	assert_false(ZSTD_isError(c));
	plen = crypt_padded_len(c) + extra_pad;
	/* zstd may leave scratch bytes past c */
	memset(plain + c, 0, plen - c);
	if (plen > c)
		plain[plen - 1] = pad_byte;
	mv_buf_reset(out);
	assert_int_equal(mv_buf_reserve(out, plen + CRYPT_OVERHEAD), 0);
	assert_int_equal(
		crypt_seal(k, aad, sizeof(aad), plain, plen, out->data), 0);
	out->len = plen + CRYPT_OVERHEAD;
	free(plain);
}

static void put_entry(struct mv_buf *b, uint64_t off, uint64_t stored)
{
	uint8_t id[SEAL_ID_LEN];

	id_of(id, 1);
	assert_int_equal(mv_buf_append(b, id, sizeof(id)), 0);
	assert_int_equal(mv_buf_put_u8(b, 1), 0);
	assert_int_equal(mv_buf_put_u8(b, 0), 0);
	assert_int_equal(mv_buf_put_varint(b, off), 0);
	assert_int_equal(mv_buf_put_varint(b, stored), 0);
	assert_int_equal(mv_buf_put_varint(b, 100), 0);
}

static void test_seal_table_malformed(void **state)
{
	struct crypt_key *k = key_of(1);
	struct mv_buf body = MV_BUF_INIT, out = MV_BUF_INIT;
	struct mv_err err = MV_ERR_INIT;
	struct seal_table t;

	(void)state;
	/* well formed, by hand: opens (so the cases below fail for their
	 * one defect) */
	mv_buf_put_u8(&body, 1);
	mv_buf_put_varint(&body, 2);
	put_entry(&body, 0, 100);
	put_entry(&body, 100, 50);
	seal_raw_table(k, &body, 0, 0, &out);
	assert_int_equal(
		seal_table_open(k, NAME_A, out.data, out.len, &t, &err), 0);
	assert_int_equal(t.n, 2);
	seal_table_release(&t);

	/* padding: a non-zero byte; more than Padme asks for */
	seal_raw_table(k, &body, 0, 0x80, &out);
	expect_bad_table(k, NAME_A, out.data, out.len, "padding");
	seal_raw_table(k, &body, 16, 0, &out);
	expect_bad_table(k, NAME_A, out.data, out.len, "padding");

	/* overlapping records */
	mv_buf_reset(&body);
	mv_buf_put_u8(&body, 1);
	mv_buf_put_varint(&body, 2);
	put_entry(&body, 0, 100);
	put_entry(&body, 99, 50);
	seal_raw_table(k, &body, 0, 0, &out);
	expect_bad_table(k, NAME_A, out.data, out.len, "entries");

	/* a count larger than the bytes can hold */
	mv_buf_reset(&body);
	mv_buf_put_u8(&body, 1);
	mv_buf_put_varint(&body, 3);
	put_entry(&body, 0, 100);
	put_entry(&body, 100, 50);
	seal_raw_table(k, &body, 0, 0, &out);
	expect_bad_table(k, NAME_A, out.data, out.len, "entries");

	/* bytes after the last entry */
	mv_buf_reset(&body);
	mv_buf_put_u8(&body, 1);
	mv_buf_put_varint(&body, 1);
	put_entry(&body, 0, 100);
	mv_buf_put_u8(&body, 0);
	seal_raw_table(k, &body, 0, 0, &out);
	expect_bad_table(k, NAME_A, out.data, out.len, "entries");

	/* a stored size over 32 bits */
	mv_buf_reset(&body);
	mv_buf_put_u8(&body, 1);
	mv_buf_put_varint(&body, 1);
	put_entry(&body, 0, 1ull << 32);
	seal_raw_table(k, &body, 0, 0, &out);
	expect_bad_table(k, NAME_A, out.data, out.len, "entries");

	crypt_key_free(k);
	mv_buf_release(&body);
	mv_buf_release(&out);
}

static void test_seal_trailer(void **state)
{
	struct crypt_key *k = key_of(1), *k2 = key_of(2);
	struct seal_trailer t = {0x123456789aull, 4242, 17, 2}, back;
	struct mv_err err = MV_ERR_INIT;
	uint8_t tr[SEAL_TRAILER_LEN];
	size_t i;

	(void)state;
	assert_int_equal(SEAL_TRAILER_LEN, 57);
	assert_int_equal(seal_trailer(k, NAME_A, &t, tr, &err), 0);
	assert_int_equal(seal_trailer_open(k, NAME_A, tr, &back, &err), 0);
	assert_true(back.table_offset == t.table_offset);
	assert_int_equal(back.table_len, t.table_len);
	assert_int_equal(back.records, t.records);
	assert_int_equal(back.kind, t.kind);

	/* two packs' names swapped: the trailer says so */
	assert_int_equal(seal_trailer_open(k, NAME_B, tr, &back, &err),
			 -EBADMSG);
	assert_non_null(strstr(err.msg, NAME_B));
	assert_int_equal(seal_trailer_open(k2, NAME_A, tr, &back, &err),
			 -EBADMSG);
	for (i = 0; i < sizeof(tr); i++) {
		tr[i] ^= 0xff;
		assert_int_equal(seal_trailer_open(k, NAME_A, tr, &back, &err),
				 -EBADMSG);
		tr[i] ^= 0xff;
	}
	/* names the AAD cannot take */
	mv_err_clear(&err);
	assert_int_equal(seal_trailer(k, "", &t, tr, &err), -EINVAL);
	assert_int_equal(seal_trailer(k, NULL, &t, tr, &err), -EINVAL);
	crypt_key_free(k);
	crypt_key_free(k2);
}

/* A whole pack in memory: two records, the table, the trailer; checked
 * as a reader would, then cut short, grown, and given another pack's
 * trailer. */
static void test_seal_pack_check(void **state)
{
	struct crypt_key *k = key_of(1);
	struct mv_buf pack = MV_BUF_INIT;
	struct mv_err err = MV_ERR_INIT;
	struct seal_entry e[2];
	struct seal_trailer tr = {0, 0, 2, 1}, back, other;
	struct seal_table t;
	uint8_t trailer[SEAL_TRAILER_LEN];
	size_t i;

	(void)state;
	memset(e, 0, sizeof(e));
	for (i = 0; i < 2; i++) {
		id_of(e[i].id, (uint8_t)(40 + i));
		e[i].type = 1;
		e[i].offset = pack.len;
		assert_int_equal(seal_record(k, 1, 0, e[i].id, 0, 0, "abc", 3,
					     &pack, &err),
				 0);
		e[i].stored = (uint32_t)(pack.len - e[i].offset);
		e[i].raw = 3;
	}
	tr.table_offset = pack.len;
	assert_int_equal(seal_table(k, NAME_A, 1, e, 2, &pack, &err), 0);
	tr.table_len = (uint32_t)(pack.len - tr.table_offset);
	assert_int_equal(seal_trailer(k, NAME_A, &tr, trailer, &err), 0);
	assert_int_equal(mv_buf_append(&pack, trailer, sizeof(trailer)), 0);

	/* the reader: trailer from the end, then the table it points at */
	assert_int_equal(
		seal_trailer_open(k, NAME_A,
				  pack.data + pack.len - SEAL_TRAILER_LEN,
				  &back, &err),
		0);
	assert_int_equal(seal_table_open(k, NAME_A,
					 pack.data + back.table_offset,
					 back.table_len, &t, &err),
			 0);
	assert_int_equal(seal_pack_check(NAME_A, pack.len, &back, &t, &err), 0);

	/* cut short or grown: the trailer no longer ends the pack */
	assert_int_equal(seal_pack_check(NAME_A, pack.len - 1, &back, &t, &err),
			 -EBADMSG);
	assert_non_null(strstr(err.msg, NAME_A));
	mv_err_clear(&err);
	assert_int_equal(seal_pack_check(NAME_A, pack.len + 1, &back, &t, &err),
			 -EBADMSG);
	mv_err_clear(&err);
	assert_int_equal(seal_pack_check(NAME_A, 10, &back, &t, &err),
			 -EBADMSG);
	/* a trailer that counts otherwise, or gives another kind */
	other = back;
	other.records = 3;
	assert_int_equal(seal_pack_check(NAME_A, pack.len, &other, &t, &err),
			 -EBADMSG);
	other = back;
	other.kind = 2;
	assert_int_equal(seal_pack_check(NAME_A, pack.len, &other, &t, &err),
			 -EBADMSG);
	/* a table that claims a record running into it */
	t.e[1].stored += 1;
	assert_int_equal(seal_pack_check(NAME_A, pack.len, &back, &t, &err),
			 -EBADMSG);
	seal_table_release(&t);
	crypt_key_free(k);
	mv_buf_release(&pack);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seal_record_round_trip),
		cmocka_unit_test(test_seal_record_elsewhere_fails),
		cmocka_unit_test(test_seal_record_truncated_and_flipped),
		cmocka_unit_test(test_seal_record_padding),
		cmocka_unit_test(test_seal_table_round_trip),
		cmocka_unit_test(test_seal_table_elsewhere_and_damaged),
		cmocka_unit_test(test_seal_table_malformed),
		cmocka_unit_test(test_seal_trailer),
		cmocka_unit_test(test_seal_pack_check),
	};

	return cmocka_run_group_tests_name("seal", tests, setup, NULL);
}
