/* Unit tests for the on-disk record cache of remote repositories. */
#include <setjmp.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "diskcache.h"
#include "unit_tmpdir.h"

#include <time.h>

static void test_diskcache_put_get(void **state)
{
	struct diskcache *c = diskcache_open(unit_dir, 1 << 20);
	struct mv_buf b = MV_BUF_INIT;
	uint8_t id[MV_ID_LEN] = {1, 2, 3}, other[MV_ID_LEN] = {9};
	const char rec[] = "a record as stored in its pack";

	(void)state;
	assert_non_null(c);
	assert_int_equal(diskcache_get(c, id, &b), -ENOENT);
	diskcache_put(c, id, rec, sizeof(rec));
	assert_int_equal(diskcache_get(c, id, &b), 0);
	assert_int_equal(b.len, sizeof(rec));
	assert_memory_equal(b.data, rec, sizeof(rec));
	assert_int_equal(diskcache_get(c, other, &b), -ENOENT);
	mv_buf_release(&b);
	diskcache_close(c);
}

static uint64_t du(const char *path)
{
	char cmd[256];
	unsigned long long n = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd),
		 "find '%s' -type f -printf '%%s\\n' | "
		 "awk '{s+=$1} END {print s+0}'",
		 path);
	p = popen(cmd, "r");
	if (p) {
		if (fscanf(p, "%llu", &n) != 1)
			n = 0;
		pclose(p);
	}
	return n;
}

static void test_diskcache_stays_bounded(void **state)
{
	uint64_t limit = 256 << 10;
	struct diskcache *c = diskcache_open(unit_dir, limit);
	static uint8_t rec[8192];
	uint8_t id[MV_ID_LEN];
	int i;

	(void)state;
	assert_non_null(c);
	memset(id, 0, sizeof(id));
	for (i = 0; i < 200; i++) {
		id[0] = (uint8_t)i;
		id[1] = (uint8_t)(i >> 8);
		diskcache_put(c, id, rec, sizeof(rec));
	}
	/* 200 x 8 KiB = 1.6 MiB written into a 256 KiB cache */
	assert_true(du(unit_dir) <= limit);
	assert_true(du(unit_dir) > 0);
	diskcache_close(c);
}

/* Records held in memory (a far restore's spans) are served like files,
 * never written as files, and the oldest buffer goes past the bound. */
static void test_diskcache_hold(void **state)
{
	struct diskcache *c = diskcache_open(unit_dir, 1 << 20);
	struct diskcache_ref refs[3];
	struct mv_buf b = MV_BUF_INIT;
	uint8_t big_id[MV_ID_LEN] = {7}, *big;
	char *buf = strdup("first-record|second|bad");

	(void)state;
	assert_non_null(c);
	assert_non_null(buf);
	memset(refs, 0, sizeof(refs));
	refs[0].id[0] = 1;
	refs[0].off = 0;
	refs[0].len = 12;
	refs[1].id[0] = 2;
	refs[1].off = 13;
	refs[1].len = 6;
	refs[2].id[0] = 3; /* past the buffer: left out */
	refs[2].off = 20;
	refs[2].len = 100;
	diskcache_hold(c, buf, strlen(buf), refs, 3);
	assert_int_equal(diskcache_get(c, refs[1].id, &b), 0);
	assert_int_equal(b.len, 6);
	assert_memory_equal(b.data, "second", 6);
	assert_int_equal(diskcache_get(c, refs[0].id, &b), 0);
	assert_memory_equal(b.data, "first-record", 12);
	assert_true(diskcache_has(c, refs[0].id));
	assert_false(diskcache_has(c, refs[2].id));
	assert_int_equal(du(unit_dir), 0); /* no file for them */
	/* a buffer of the whole bound pushes the first one out */
	big = malloc(DISKCACHE_HOLD_MAX);
	assert_non_null(big);
	memcpy(big, "big", 3);
	memset(refs, 0, sizeof(refs));
	memcpy(refs[0].id, big_id, MV_ID_LEN);
	refs[0].len = 3;
	diskcache_hold(c, big, DISKCACHE_HOLD_MAX, refs, 1);
	assert_int_equal(diskcache_get(c, big_id, &b), 0);
	assert_memory_equal(b.data, "big", 3);
	assert_false(diskcache_has(c, (uint8_t[MV_ID_LEN]){1}));
	mv_buf_release(&b);
	diskcache_close(c);
}

/* A repository in unit_dir/r with one metadata pack of a few records. */
static struct repo *repo_with_meta(void)
{
	struct mv_err err = MV_ERR_INIT;
	struct repo_writer *w = NULL;
	struct repo *r = NULL;
	char path[128];
	uint8_t id[MV_ID_LEN];
	char rec[512];
	int i;

	snprintf(path, sizeof(path), "%s/r", unit_dir);
	if (repo_init(path, NULL, &err) ||
	    repo_open(path, REPO_OPEN_WRITE, &r, &err) ||
	    repo_writer_begin(r, &w, &err))
		fail_msg("repository: %s", err.msg);
	memset(id, 0, sizeof(id));
	for (i = 0; i < 8; i++) {
		id[0] = (uint8_t)(i + 1);
		memset(rec, 'a' + i, sizeof(rec));
		if (repo_writer_put(w, REC_TREE, id, rec, sizeof(rec), NULL, 0,
				    NULL, &err))
			fail_msg("put: %s", err.msg);
	}
	if (repo_writer_finish(w, &err))
		fail_msg("finish: %s", err.msg);
	repo_close(r);
	if (repo_open(path, REPO_OPEN_READ, &r, &err))
		fail_msg("open: %s", err.msg);
	return r;
}

/* A miss while the first wave is still being written to the cache (its
 * packs not yet named in .meta-packs) must not fetch the packs again:
 * a mount's second thread did, on a second SSH session. */
static void test_diskcache_wave_fetched_once(void **state)
{
	struct repo *r = repo_with_meta();
	struct diskcache *c;
	char dir[128], list[160];
	struct timespec ms = {0, 1000000};
	int i;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/cache", unit_dir);
	snprintf(list, sizeof(list), "%s/.meta-packs", dir);
	c = diskcache_open(dir, 1 << 20);
	assert_non_null(c);
	assert_int_equal(diskcache_fill_meta(c, r), 8);
	for (i = 0; i < 5000 && access(list, F_OK); i++)
		nanosleep(&ms, NULL); /* the wave's writer */
	assert_int_equal(access(list, F_OK), 0);
	/* as if the writer had not named the packs yet */
	assert_int_equal(unlink(list), 0);
	assert_int_equal(diskcache_fill_meta(c, r), 0);
	diskcache_close(c);
	repo_close(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_diskcache_put_get,
						unit_dir_setup,
						unit_dir_teardown),
		cmocka_unit_test_setup_teardown(test_diskcache_stays_bounded,
						unit_dir_setup,
						unit_dir_teardown),
		cmocka_unit_test_setup_teardown(
			test_diskcache_wave_fetched_once, unit_dir_setup,
			unit_dir_teardown),
		cmocka_unit_test_setup_teardown(
			test_diskcache_hold, unit_dir_setup, unit_dir_teardown),
	};

	return cmocka_run_group_tests_name("diskcache", tests, NULL, NULL);
}
