/*
 * Unit tests for exclude: restic's matching of --exclude patterns against
 * the path inside a source - unanchored and anchored patterns, '*' that
 * stays in a component, "**", a directory that takes its subtree, the
 * directory-only trailing '/', and exclude files with comments.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "exclude.h"

static struct exclude *make(const char *const *pats)
{
	struct mv_err err = MV_ERR_INIT;
	struct exclude *ex = NULL;

	assert_int_equal(exclude_new(&ex, &err), 0);
	for (; *pats; pats++)
		assert_int_equal(exclude_add(ex, *pats, &err), 0);
	return ex;
}

static void test_exclude_unanchored(void **state)
{
	static const char *const pats[] = {"*.tmp", "cache/*.db", NULL};
	struct exclude *ex = make(pats);

	(void)state;
	assert_true(exclude_match(ex, "a.tmp", false));
	assert_true(exclude_match(ex, "x/y/a.tmp", false));
	assert_true(exclude_match(ex, ".hidden.tmp", false));
	assert_false(exclude_match(ex, "a.tmpx", false));
	/* a parent that matches takes its subtree */
	assert_true(exclude_match(ex, "x.tmp/y", false));
	assert_true(exclude_match(ex, "cache/i.db", false));
	assert_true(exclude_match(ex, "srv/cache/i.db", false));
	/* '*' stays inside one component */
	assert_false(exclude_match(ex, "cache/sub/i.db", false));
	assert_false(exclude_match(ex, "mycache/i.db", false));
	exclude_free(ex);
}

static void test_exclude_anchored(void **state)
{
	static const char *const pats[] = {"/tmp", "/a/b", NULL};
	struct exclude *ex = make(pats);

	(void)state;
	assert_true(exclude_match(ex, "tmp", true));
	assert_true(exclude_match(ex, "a/b", false));
	assert_false(exclude_match(ex, "x/tmp", true));
	assert_false(exclude_match(ex, "x/a/b", false));
	assert_false(exclude_match(ex, "tmpfile", false));
	exclude_free(ex);
}

static void test_exclude_subtree(void **state)
{
	static const char *const pats[] = {"logs", "/var/spool", NULL};
	struct exclude *ex = make(pats);

	(void)state;
	/* a tar member whose directory matched, in any order */
	assert_true(exclude_match(ex, "logs/a/b/c.log", false));
	assert_true(exclude_match(ex, "x/logs/c.log", false));
	assert_true(exclude_match(ex, "var/spool/q/1", false));
	assert_false(exclude_match(ex, "var/spoolx/1", false));
	assert_false(exclude_match(ex, "var", true));
	exclude_free(ex);
}

static void test_exclude_double_star(void **state)
{
	static const char *const pats[] = {"/vmail/**/tmp", "a/**", NULL};
	struct exclude *ex = make(pats);

	(void)state;
	assert_true(exclude_match(ex, "vmail/tmp", true));
	assert_true(exclude_match(ex, "vmail/x/y/tmp", true));
	assert_true(exclude_match(ex, "vmail/x/tmp/1", false));
	assert_false(exclude_match(ex, "other/vmail/x/tmp", true));
	assert_true(exclude_match(ex, "z/a/q", false));
	exclude_free(ex);
}

static void test_exclude_dir_only(void **state)
{
	static const char *const pats[] = {"build/", NULL};
	struct exclude *ex = make(pats);

	(void)state;
	assert_true(exclude_match(ex, "build", true));
	assert_false(exclude_match(ex, "build", false));
	assert_true(exclude_match(ex, "src/build/x.o", false));
	exclude_free(ex);
}

static void test_exclude_classes(void **state)
{
	static const char *const pats[] = {"file?.[ch]", NULL};
	struct exclude *ex = make(pats);

	(void)state;
	assert_true(exclude_match(ex, "d/file1.c", false));
	assert_true(exclude_match(ex, "fileX.h", false));
	assert_false(exclude_match(ex, "file12.c", false));
	assert_false(exclude_match(ex, "file1.o", false));
	exclude_free(ex);
}

static void test_exclude_empty_and_null(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct exclude *ex = NULL;

	(void)state;
	assert_false(exclude_match(NULL, "a", false));
	assert_int_equal(exclude_new(&ex, &err), 0);
	assert_false(exclude_match(ex, "a", false));
	assert_int_equal(exclude_add(ex, "", &err), -EINVAL);
	mv_err_clear(&err);
	assert_int_equal(exclude_add(ex, "//", &err), -EINVAL);
	mv_err_clear(&err);
	assert_int_equal(exclude_count(ex), 0);
	exclude_free(ex);
}

static void test_exclude_file(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct exclude *ex = NULL;
	char path[] = "/tmp/test_exclude_XXXXXX";
	FILE *f;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs("# caches\n\n*.tmp  \n/spool\r\n", f);
	fclose(f);
	assert_int_equal(exclude_new(&ex, &err), 0);
	assert_int_equal(exclude_add_file(ex, path, &err), 0);
	assert_int_equal(exclude_count(ex), 2);
	assert_true(exclude_match(ex, "x/a.tmp", false));
	assert_true(exclude_match(ex, "spool/1", false));
	assert_false(exclude_match(ex, "# caches", false));
	assert_int_equal(exclude_add_file(ex, "/nonexistent/x", &err), -ENOENT);
	assert_non_null(strstr(mv_err_msg(&err), "/nonexistent/x"));
	exclude_free(ex);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exclude_unanchored),
		cmocka_unit_test(test_exclude_anchored),
		cmocka_unit_test(test_exclude_subtree),
		cmocka_unit_test(test_exclude_double_star),
		cmocka_unit_test(test_exclude_dir_only),
		cmocka_unit_test(test_exclude_classes),
		cmocka_unit_test(test_exclude_empty_and_null),
		cmocka_unit_test(test_exclude_file),
	};

	return cmocka_run_group_tests_name("exclude", tests, NULL, NULL);
}
