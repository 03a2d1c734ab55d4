/* test_lifecycle: the id set and tombstone encoding of src/lifecycle. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/lifecycle/lc_int.h"
#include "util.h"

static void make_id(uint32_t i, uint8_t id[MV_ID_LEN])
{
	memset(id, 0xa5, MV_ID_LEN);
	/* low bits equal for many ids: probing must cope */
	mv_put_le32(id + 8, i);
	mv_put_le32(id + 16, i * 2654435761u);
}

static void test_lifecycle_idset_grows_and_finds(void **state)
{
	struct lc_idset s = {NULL, 0, 0};
	uint8_t id[MV_ID_LEN];
	uint32_t i;

	(void)state;
	for (i = 0; i < 20000; i++) {
		make_id(i, id);
		assert_int_equal(lc_idset_add(&s, id), 1);
	}
	for (i = 0; i < 20000; i++) {
		make_id(i, id);
		assert_true(lc_idset_has(&s, id));
		assert_int_equal(lc_idset_add(&s, id), 0);
	}
	make_id(20000, id);
	assert_false(lc_idset_has(&s, id));
	assert_int_equal(s.n, 20000);
	assert_true(s.n * 2 < s.size);
	lc_idset_free(&s);
}

static void test_lifecycle_idset_ignores_zero_id(void **state)
{
	struct lc_idset s = {NULL, 0, 0};
	uint8_t zero[MV_ID_LEN] = {0};

	(void)state;
	assert_int_equal(lc_idset_add(&s, zero), 0);
	assert_false(lc_idset_has(&s, zero));
	lc_idset_free(&s);
}

static void test_lifecycle_tombstone_roundtrip(void **state)
{
	uint8_t ids[3][MV_ID_LEN];
	struct mv_buf b = MV_BUF_INIT;
	struct lc_idset s = {NULL, 0, 0};
	int i;

	(void)state;
	for (i = 0; i < 3; i++)
		make_id((uint32_t)i + 7, ids[i]);
	assert_int_equal(
		lc_tombstone_encode((const uint8_t(*)[MV_ID_LEN])ids, 3, &b),
		0);
	assert_int_equal(b.len, TOMBSTONE_HDR_LEN + 3 * MV_ID_LEN);
	assert_memory_equal(b.data, TOMBSTONE_MAGIC, 8);
	assert_int_equal(lc_tombstone_decode(b.data, b.len, &s), 0);
	assert_int_equal(s.n, 3);
	for (i = 0; i < 3; i++)
		assert_true(lc_idset_has(&s, ids[i]));
	lc_idset_free(&s);
	mv_buf_release(&b);
}

static void test_lifecycle_tombstone_rejects_bad(void **state)
{
	uint8_t ids[1][MV_ID_LEN];
	struct mv_buf b = MV_BUF_INIT;
	struct lc_idset s = {NULL, 0, 0};

	(void)state;
	make_id(1, ids[0]);
	assert_int_equal(
		lc_tombstone_encode((const uint8_t(*)[MV_ID_LEN])ids, 1, &b),
		0);
	/* truncated, wrong count, wrong magic */
	assert_int_equal(lc_tombstone_decode(b.data, b.len - 1, &s), -EBADMSG);
	b.data[8] = 2;
	assert_int_equal(lc_tombstone_decode(b.data, b.len, &s), -EBADMSG);
	b.data[8] = 1;
	b.data[0] = 'X';
	assert_int_equal(lc_tombstone_decode(b.data, b.len, &s), -EBADMSG);
	assert_int_equal(lc_tombstone_decode(b.data, 4, &s), -EBADMSG);
	assert_int_equal(s.n, 0);
	lc_idset_free(&s);
	mv_buf_release(&b);
}

static void test_lifecycle_pack_names(void **state)
{
	(void)state;
	assert_true(lc_is_pack_name("0123456789abcdef0123456789abcdef"));
	assert_false(lc_is_pack_name("0123456789abcdef0123456789abcde"));
	assert_false(lc_is_pack_name("0123456789abcdef0123456789abcdef.tmp"));
	assert_false(lc_is_pack_name("0123456789ABCDEF0123456789abcdef"));
	assert_false(lc_is_pack_name(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lifecycle_idset_grows_and_finds),
		cmocka_unit_test(test_lifecycle_idset_ignores_zero_id),
		cmocka_unit_test(test_lifecycle_tombstone_roundtrip),
		cmocka_unit_test(test_lifecycle_tombstone_rejects_bad),
		cmocka_unit_test(test_lifecycle_pack_names),
	};

	return cmocka_run_group_tests_name("lifecycle", tests, NULL, NULL);
}
