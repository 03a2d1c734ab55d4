/* Unit tests for backend_read_many() and backend_file_commit_pair() over
 * the local backend (the paths every backend without its own read_many or
 * file_commit_after takes). */
#include <setjmp.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend.h"
#include "unit_tmpdir.h"

static void test_read_many_ranges(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct backend *be = NULL;
	uint8_t data[3000], a[100], b[500], c[50], d[10];
	struct backend_range v[4] = {
		{"f", 2900, a, sizeof(a), 7, 7}, /* the last 100 bytes */
		{"f", 10, b, sizeof(b), 0, 0},	 /* a middle range */
		{"g", 0, c, sizeof(c), 0, 0},	 /* another file */
		{"f", 2995, d, sizeof(d), 0, 0}, /* runs past the end */
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(backend_local_open(unit_dir, false, &be, &err), 0);
	assert_int_equal(
		backend_write_atomic(be, "f", data, sizeof(data), &err), 0);
	assert_int_equal(backend_write_atomic(be, "g", data + 1000, 50, &err),
			 0);
	assert_int_equal(backend_read_many(be, v, 4, &err), 0);
	assert_int_equal(v[0].rc, 0);
	assert_int_equal(v[0].got, 100);
	assert_memory_equal(a, data + 2900, 100);
	assert_int_equal(v[1].got, 500);
	assert_memory_equal(b, data + 10, 500);
	assert_int_equal(v[2].got, 50);
	assert_memory_equal(c, data + 1000, 50);
	assert_int_equal(v[3].rc, 0);
	assert_int_equal(v[3].got, 5);
	assert_memory_equal(d, data + 2995, 5);
	backend_close(be);
}

static void test_read_many_missing(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct backend *be = NULL;
	uint8_t a[4], b[4];
	struct backend_range v[2] = {
		{"nope", 0, a, sizeof(a), 0, 0},
		{"f", 0, b, sizeof(b), 0, 0},
	};

	(void)state;
	assert_int_equal(backend_local_open(unit_dir, false, &be, &err), 0);
	assert_int_equal(backend_write_atomic(be, "f", "abcd", 4, &err), 0);
	/* the first failure is returned, and the other range is still read */
	assert_int_equal(backend_read_many(be, v, 2, &err), -ENOENT);
	assert_int_equal(v[0].rc, -ENOENT);
	assert_int_equal(v[1].rc, 0);
	assert_int_equal(v[1].got, 4);
	assert_memory_equal(b, "abcd", 4);
	assert_int_equal(backend_read_many(be, v, 0, &err), 0);
	backend_close(be);
}

/* Entries of unit_dir/dir other than . and .. */
static int entries(const char *dir)
{
	char path[4096];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", unit_dir, dir);
	d = opendir(path);
	assert_non_null(d);
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

static struct backend_file *made(struct backend *be, const char *path,
				 const char *text)
{
	struct mv_err err = MV_ERR_INIT;
	struct backend_file *f = NULL;

	assert_int_equal(be->ops->file_create(be, path, &f, &err), 0);
	assert_int_equal(be->ops->file_write(f, text, strlen(text), &err), 0);
	return f;
}

static void test_commit_pair(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct backend *be = NULL;
	void *buf = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(backend_local_open(unit_dir, false, &be, &err), 0);
	assert_int_equal(be->ops->mkdir(be, "d1", &err), 0);
	assert_int_equal(be->ops->mkdir(be, "d2", &err), 0);
	/* both committed; either may be missing */
	assert_int_equal(backend_file_commit_pair(be, made(be, "d1/a", "data"),
						  made(be, "d2/a", "meta"),
						  &err),
			 0);
	assert_int_equal(backend_read_all(be, "d2/a", 100, &buf, &len, &err),
			 0);
	assert_int_equal(len, 4);
	assert_memory_equal(buf, "meta", 4);
	free(buf);
	assert_int_equal(
		backend_file_commit_pair(be, NULL, made(be, "d2/b", "b"), &err),
		0);
	assert_int_equal(
		backend_file_commit_pair(be, made(be, "d1/b", "b"), NULL, &err),
		0);
	assert_int_equal(backend_file_commit_pair(be, NULL, NULL, &err), 0);
	assert_int_equal(entries("d1"), 2);
	assert_int_equal(entries("d2"), 2);
	/* the first fails (its directory went away): the second is dropped,
	 * never published, no temporary file left */
	{
		struct backend_file *first = made(be, "d1/c", "data");
		struct backend_file *then = made(be, "d2/c", "meta");
		char from[4096], to[4096];

		snprintf(from, sizeof(from), "%s/d1", unit_dir);
		snprintf(to, sizeof(to), "%s/d1-gone", unit_dir);
		assert_int_equal(rename(from, to), 0);
		assert_int_equal(
			backend_file_commit_pair(be, first, then, &err),
			-ENOENT);
		assert_non_null(strstr(mv_err_msg(&err), "d1/c"));
	}
	assert_int_equal(entries("d2"), 2);
	backend_close(be);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_many_ranges,
						unit_dir_setup,
						unit_dir_teardown),
		cmocka_unit_test_setup_teardown(test_read_many_missing,
						unit_dir_setup,
						unit_dir_teardown),
		cmocka_unit_test_setup_teardown(
			test_commit_pair, unit_dir_setup, unit_dir_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
