/*
 * Unit tests for util: buffers, varints and the bounded reader, hex, and
 * time parsing and formatting, including the input they must refuse.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util.h"

static void test_varint_round_trip(void **state)
{
	static const uint64_t vals[] = {
		0,     1,     127,	  128,	      300,
		16383, 16384, UINT32_MAX, 1ull << 56, UINT64_MAX};
	struct mv_buf b = MV_BUF_INIT;
	struct mv_reader r;
	size_t i;

	(void)state;
	for (i = 0; i < MV_ARRAY_SIZE(vals); i++)
		assert_int_equal(mv_buf_put_varint(&b, vals[i]), 0);
	/* 127 is one byte, 128 two, UINT64_MAX ten */
	mv_reader_init(&r, b.data, b.len);
	for (i = 0; i < MV_ARRAY_SIZE(vals); i++) {
		uint64_t v = 0;

		assert_int_equal(mv_reader_varint(&r, &v), 0);
		assert_true(v == vals[i]);
	}
	assert_true(mv_reader_done(&r));
	mv_buf_reset(&b);
	mv_buf_put_varint(&b, 127);
	assert_int_equal(b.len, 1);
	mv_buf_reset(&b);
	mv_buf_put_varint(&b, 128);
	assert_int_equal(b.len, 2);
	mv_buf_reset(&b);
	mv_buf_put_varint(&b, UINT64_MAX);
	assert_int_equal(b.len, 10);
	mv_buf_release(&b);
}

static void test_reader_bounds(void **state)
{
	static const uint8_t cont[] = {0x80, 0x80, 0x80};
	static const uint8_t eleven[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					 0xff, 0xff, 0xff, 0xff, 0x01};
	uint8_t in[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
	struct mv_reader r;
	const uint8_t *p;
	uint64_t v64;
	uint32_t v32;
	uint8_t v8, out[8];
	size_t n;

	(void)state;
	/* unterminated varint: error, position unchanged */
	mv_reader_init(&r, cont, sizeof(cont));
	assert_int_equal(mv_reader_varint(&r, &v64), -EBADMSG);
	assert_ptr_equal(r.p, cont);
	/* more than 64 bits */
	mv_reader_init(&r, eleven, sizeof(eleven));
	assert_int_equal(mv_reader_varint(&r, &v64), -EBADMSG);
	/* fixed-size reads past the end */
	mv_reader_init(&r, in, 3);
	assert_int_equal(mv_reader_le32(&r, &v32), -EBADMSG);
	assert_int_equal(mv_reader_le64(&r, &v64), -EBADMSG);
	assert_int_equal(mv_reader_fixed(&r, out, 4), -EBADMSG);
	assert_int_equal(mv_reader_u8(&r, &v8), 0);
	assert_int_equal(v8, 1);
	assert_int_equal(mv_reader_fixed(&r, out, 2), 0);
	assert_true(mv_reader_done(&r));
	assert_int_equal(mv_reader_u8(&r, &v8), -EBADMSG);
	/* bytes whose length runs past the end */
	in[0] = 9;
	mv_reader_init(&r, in, 5);
	assert_int_equal(mv_reader_bytes(&r, &p, &n), -EBADMSG);
	assert_ptr_equal(r.p, in);
	in[0] = 4;
	assert_int_equal(mv_reader_bytes(&r, &p, &n), 0);
	assert_int_equal(n, 4);
	assert_ptr_equal(p, in + 1);
	assert_true(mv_reader_done(&r));
	/* empty input */
	mv_reader_init(&r, in, 0);
	assert_true(mv_reader_done(&r));
	assert_int_equal(mv_reader_varint(&r, &v64), -EBADMSG);
	/* little-endian values */
	mv_reader_init(&r, in + 1, 8);
	in[1] = 0x78;
	in[2] = 0x56;
	in[3] = 0x34;
	in[4] = 0x12;
	assert_int_equal(mv_reader_le32(&r, &v32), 0);
	assert_true(v32 == 0x12345678u);
}

static void test_hex(void **state)
{
	static const uint8_t raw[] = {0x00, 0x01, 0xab, 0xff};
	uint8_t back[4];
	char hex[9];

	(void)state;
	mv_hex(raw, sizeof(raw), hex);
	assert_string_equal(hex, "0001abff");
	assert_int_equal(mv_unhex(hex, back, sizeof(back)), 0);
	assert_memory_equal(back, raw, sizeof(raw));
	assert_int_equal(mv_unhex("0001ABFF", back, 4), 0);
	assert_memory_equal(back, raw, sizeof(raw));
	assert_int_equal(mv_unhex("0001abf", back, 4), -EINVAL);
	assert_int_equal(mv_unhex("0001abffe", back, 4), -EINVAL);
	assert_int_equal(mv_unhex("0001abfg", back, 4), -EINVAL);
	assert_int_equal(mv_unhex("", back, 4), -EINVAL);
}

static void test_time_parse(void **state)
{
	static const struct {
		const char *s;
		int64_t sec;
	} good[] = {
		{"2024-05-01", 1714521600},
		{"2024-05-01T12:00", 1714564800},
		{"2024-05-01T12:00:00", 1714564800},
		{"2024-05-01T12:00:00Z", 1714564800},
		{"2024-05-01T120000Z", 1714564800},
		{"2024-05-01 12:34:56", 1714566896},
		{"2024-02-29T23:59:59Z", 1709251199},
		{"1970-01-01", 0},
		{"@1700000000", 1700000000},
		{"@0", 0},
	};
	static const char *const bad[] = {
		"",
		"yesterday",
		"2024-5-01",
		"2024-05-1",
		"2024-13-01",
		"2024-00-10",
		"2024-05-32",
		"2024-05-01T25:00",
		"2024-05-01T12:60",
		"2024-05-01T12:00:61",
		"2024-05-01T12",
		"2024-05-01T12:00:00+02:00",
		"2024-05-01X",
		"2024-05-01T1200",
		"@",
		"@12x",
		"2024/05/01",
	};
	int64_t ns;
	size_t i;

	(void)state;
	for (i = 0; i < MV_ARRAY_SIZE(good); i++) {
		ns = -1;
		if (mv_time_parse(good[i].s, &ns))
			fail_msg("'%s' refused", good[i].s);
		if (ns != good[i].sec * 1000000000)
			fail_msg("'%s' gave %lld", good[i].s, (long long)ns);
	}
	for (i = 0; i < MV_ARRAY_SIZE(bad); i++)
		if (mv_time_parse(bad[i], &ns) != -EINVAL)
			fail_msg("'%s' accepted", bad[i]);
}

static void test_time_format(void **state)
{
	char out[32];
	int64_t ns = 1714566896 * 1000000000ll + 123456789, back;

	(void)state;
	mv_time_name(ns, out, sizeof(out));
	assert_string_equal(out, "2024-05-01T123456Z");
	assert_int_equal(mv_time_parse(out, &back), 0);
	assert_true(back == 1714566896 * 1000000000ll);
	mv_time_iso(ns, out, sizeof(out));
	assert_string_equal(out, "2024-05-01T12:34:56Z");
	assert_int_equal(mv_time_parse(out, &back), 0);
	assert_true(back == 1714566896 * 1000000000ll);
	mv_time_iso(0, out, sizeof(out));
	assert_string_equal(out, "1970-01-01T00:00:00Z");
	/* before the epoch: the second is the floor, not rounded up */
	mv_time_iso(-1, out, sizeof(out));
	assert_string_equal(out, "1969-12-31T23:59:59Z");
	mv_human_size(0, out, sizeof(out));
	assert_string_equal(out, "0 B");
	mv_human_size(1536, out, sizeof(out));
	assert_string_equal(out, "1.5 KiB");
	mv_human_size(3ull << 30, out, sizeof(out));
	assert_string_equal(out, "3.0 GiB");
}

static void test_buf(void **state)
{
	struct mv_buf b = MV_BUF_INIT;
	uint8_t big[5000];
	int i;

	(void)state;
	memset(big, 0x5a, sizeof(big));
	assert_null(b.data);
	assert_int_equal(mv_buf_append(&b, "", 0), 0);
	assert_null(b.data);
	for (i = 0; i < 100; i++)
		assert_int_equal(mv_buf_append(&b, big, sizeof(big)), 0);
	assert_int_equal(b.len, 100 * sizeof(big));
	assert_true(b.cap >= b.len);
	assert_int_equal(mv_buf_put_bytes(&b, "abc", 3), 0);
	assert_memory_equal(b.data + b.len - 4, "\003abc", 4);
	mv_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_int_equal(mv_buf_put_le32(&b, 0x01020304), 0);
	assert_int_equal(mv_buf_put_le64(&b, 0x0102030405060708ull), 0);
	assert_memory_equal(b.data,
			    "\004\003\002\001\010\007\006\005\004\003"
			    "\002\001",
			    12);
	mv_buf_release(&b);
	assert_null(b.data);
	assert_int_equal(b.cap, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_varint_round_trip),
		cmocka_unit_test(test_reader_bounds),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_time_parse),
		cmocka_unit_test(test_time_format),
		cmocka_unit_test(test_buf),
	};

	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
