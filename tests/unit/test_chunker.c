/*
 * Unit tests for chunker: the content-defined property (an insertion near
 * the start of a large buffer changes only the chunks around it), sizes
 * within min/max, determinism for a key and independence across keys,
 * and the same cuts whatever the pieces the stream arrives in.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chunker.h"
#include "hash.h"

#define BUF_LEN (4u << 20)
#define MAX_CUTS 4096

static const struct chunker_params params = {16384, 65536, 262144, 0};

struct cuts {
	size_t n;
	size_t len[MAX_CUTS];
	uint64_t sum[MAX_CUTS];
};

static uint8_t *random_buf(size_t n, uint64_t seed)
{
	uint8_t *p = malloc(n);
	size_t i;

	assert_non_null(p);
	for (i = 0; i < n; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		p[i] = (uint8_t)(seed >> 24);
	}
	return p;
}

/* Chunk buf, feeding the chunker step bytes at a time. */
static void chunk_all(const char *key, const uint8_t *buf, size_t len,
		      size_t step, struct cuts *out)
{
	struct chunker c;
	struct mv_err err = MV_ERR_INIT;
	size_t start = 0, avail = 0;

	assert_int_equal(chunker_init(&c, &params, key, strlen(key), &err), 0);
	out->n = 0;
	while (start < len) {
		size_t cut;
		bool final;

		avail = MV_MIN(avail + step, len - start);
		final = start + avail == len;
		cut = chunker_scan(&c, buf + start, avail, final);
		if (!cut)
			continue;
		assert_true(cut <= avail);
		assert_true(out->n < MAX_CUTS);
		out->len[out->n] = cut;
		out->sum[out->n] = hash_xxh64(buf + start, cut);
		out->n++;
		start += cut;
		avail -= cut;
		chunker_reset(&c);
	}
}

static size_t common(const struct cuts *a, const struct cuts *b)
{
	size_t i, j, same = 0;

	for (i = 0; i < a->n; i++)
		for (j = 0; j < b->n; j++)
			if (a->sum[i] == b->sum[j] && a->len[i] == b->len[j]) {
				same++;
				break;
			}
	return same;
}

static void test_sizes(void **state)
{
	uint8_t *buf = random_buf(BUF_LEN, 1);
	static struct cuts c;
	size_t i, total = 0;

	(void)state;
	chunk_all("key", buf, BUF_LEN, BUF_LEN, &c);
	for (i = 0; i < c.n; i++) {
		total += c.len[i];
		assert_true(c.len[i] <= params.max_size);
		if (i + 1 < c.n)
			assert_true(c.len[i] >= params.min_size);
	}
	assert_int_equal(total, BUF_LEN);
	/* normalized chunking keeps the average near avg */
	assert_true(c.n > BUF_LEN / params.avg_size / 2);
	assert_true(c.n < BUF_LEN / params.avg_size * 2);
	print_message("%zu chunks, average %zu bytes\n", c.n, BUF_LEN / c.n);
	free(buf);
}

static void test_insert_near_start(void **state)
{
	uint8_t *buf = random_buf(BUF_LEN, 2);
	uint8_t *ins = malloc(BUF_LEN + 100);
	static struct cuts a, b;
	size_t same;

	(void)state;
	assert_non_null(ins);
	/* 100 bytes inserted 1000 bytes in */
	memcpy(ins, buf, 1000);
	memset(ins + 1000, 'x', 100);
	memcpy(ins + 1100, buf + 1000, BUF_LEN - 1000);
	chunk_all("key", buf, BUF_LEN, BUF_LEN, &a);
	chunk_all("key", ins, BUF_LEN + 100, BUF_LEN + 100, &b);
	same = common(&a, &b);
	print_message("%zu of %zu chunks unchanged\n", same, a.n);
	assert_true(a.n - same <= 3);
	/* and in the middle, 7 bytes removed */
	memcpy(ins, buf, BUF_LEN / 2);
	memcpy(ins + BUF_LEN / 2, buf + BUF_LEN / 2 + 7, BUF_LEN / 2 - 7);
	chunk_all("key", ins, BUF_LEN - 7, BUF_LEN, &b);
	same = common(&a, &b);
	assert_true(a.n - same <= 3);
	free(buf);
	free(ins);
}

static void test_deterministic_and_keyed(void **state)
{
	uint8_t *buf = random_buf(BUF_LEN, 3);
	static struct cuts a, b, c, d;

	(void)state;
	chunk_all("key", buf, BUF_LEN, BUF_LEN, &a);
	chunk_all("key", buf, BUF_LEN, BUF_LEN, &b);
	assert_int_equal(a.n, b.n);
	assert_memory_equal(a.len, b.len, a.n * sizeof(a.len[0]));
	/* streaming in odd pieces gives the same cuts */
	chunk_all("key", buf, BUF_LEN, 4093, &c);
	assert_int_equal(a.n, c.n);
	assert_memory_equal(a.len, c.len, a.n * sizeof(a.len[0]));
	/* another key, other cut points */
	chunk_all("other key", buf, BUF_LEN, BUF_LEN, &d);
	assert_true(common(&a, &d) < a.n / 4);
	free(buf);
}

static void test_small_and_final(void **state)
{
	uint8_t *buf = random_buf(params.min_size, 4);
	struct chunker c;
	struct mv_err err = MV_ERR_INIT;

	(void)state;
	assert_int_equal(chunker_init(&c, &params, "k", 1, &err), 0);
	/* too little to cut: wait, unless it is the end */
	assert_int_equal(chunker_scan(&c, buf, 100, false), 0);
	assert_int_equal(chunker_scan(&c, buf, 100, true), 100);
	chunker_reset(&c);
	assert_int_equal(chunker_scan(&c, buf, 1, true), 1);
	free(buf);
	/* a run of zeros is cut at max */
	buf = calloc(1, params.max_size * 2);
	assert_non_null(buf);
	chunker_reset(&c);
	assert_int_equal(chunker_scan(&c, buf, params.max_size * 2, false),
			 params.max_size);
	free(buf);
}

static void test_params_check(void **state)
{
	struct chunker_params p;
	struct mv_err err = MV_ERR_INIT;
	struct chunker c;

	(void)state;
	p = params;
	assert_int_equal(chunker_params_check(&p, &err), 0);
	p.avg_size = 65535;
	assert_int_equal(chunker_params_check(&p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "power of two"));
	mv_err_clear(&err);
	p = params;
	p.min_size = p.avg_size * 2;
	assert_int_equal(chunker_params_check(&p, &err), -EINVAL);
	mv_err_clear(&err);
	p = params;
	p.max_size = p.avg_size / 2;
	assert_int_equal(chunker_init(&c, &p, "k", 1, &err), -EINVAL);
	mv_err_clear(&err);
	p = params;
	p.max_size = 128u << 20;
	assert_int_equal(chunker_params_check(&p, &err), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_insert_near_start),
		cmocka_unit_test(test_deterministic_and_keyed),
		cmocka_unit_test(test_small_and_final),
		cmocka_unit_test(test_params_check),
	};

	return cmocka_run_group_tests_name("chunker", tests, NULL, NULL);
}
