/* Unit tests for source_tar's handling of hostile member names: the
 * GNU tar rule that cuts them (source_tar_clean_name), and what a read
 * stores and records as warnings. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
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

#include "ingest.h"
#include "source.h"

static void check_clean(const char *name, const char *want, unsigned flags)
{
	char out[256];

	assert_true(strlen(name) < sizeof(out));
	assert_int_equal(source_tar_clean_name(name, out), flags);
	assert_string_equal(out, want);
}

/* GNU tar's safer_name_suffix, and "." components dropped. */
static void test_source_tar_clean_name(void **state)
{
	(void)state;
	check_clean("a/b", "a/b", 0);
	check_clean("./a/b/", "a/b", 0);
	check_clean(".", "", 0);
	check_clean("./", "", 0);
	check_clean("a//./b", "a/b", 0);
	check_clean("a..b/c...", "a..b/c...", 0);
	check_clean("..a/b..", "..a/b..", 0);
	check_clean("/etc/passwd", "etc/passwd", SOURCE_NAME_ABS);
	check_clean("//abs", "abs", SOURCE_NAME_ABS);
	check_clean("/", "", SOURCE_NAME_ABS);
	check_clean("../x", "x", SOURCE_NAME_DOTDOT);
	check_clean("../../x", "x", SOURCE_NAME_DOTDOT);
	check_clean("a/../../x", "x", SOURCE_NAME_DOTDOT);
	check_clean("c/d/../e", "e", SOURCE_NAME_DOTDOT);
	check_clean("./../w", "w", SOURCE_NAME_DOTDOT);
	check_clean("/../x/y", "x/y", SOURCE_NAME_DOTDOT);
	check_clean("x/..", "", SOURCE_NAME_DOTDOT);
	check_clean("..", "", SOURCE_NAME_DOTDOT);
	check_clean("a/..//b/./c", "b/c", SOURCE_NAME_DOTDOT);
}

struct fx {
	char dir[64];
	char tar[128];
	struct repo *r;
	struct repo_writer *w;
	struct tree_builder *tb;
	struct ingest *ing;
};

static int setup(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct ingest_opts o;
	struct fx *f = calloc(1, sizeof(*f));
	char repo[128];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/mv-test-source-tar.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(repo, sizeof(repo), "%s/repo", f->dir);
	snprintf(f->tar, sizeof(f->tar), "%s/a.tar", f->dir);
	assert_int_equal(repo_init(repo, NULL, &err), 0);
	assert_int_equal(repo_open(repo, REPO_OPEN_WRITE, &f->r, &err), 0);
	assert_int_equal(repo_writer_begin(f->r, &f->w, &err), 0);
	assert_int_equal(tree_builder_new(&f->tb, &err), 0);
	memset(&o, 0, sizeof(o));
	o.workers = 1;
	assert_int_equal(ingest_new(f->r, f->w, f->tb, &o, &f->ing, &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	ingest_free(f->ing);
	tree_builder_free(f->tb);
	repo_writer_abort(f->w);
	repo_close(f->r);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Members of a pax archive; a NULL data makes a hard link to link. */
struct member {
	const char *name;
	const char *data;
	const char *link;
};

static void write_tar(const char *path, const struct member *m, size_t n)
{
	struct archive *a = archive_write_new();
	size_t i;

	assert_non_null(a);
	assert_int_equal(archive_write_set_format_pax(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	for (i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();

		archive_entry_set_pathname(e, m[i].name);
		archive_entry_set_mode(e, AE_IFREG | 0644);
		archive_entry_set_mtime(e, 1700000000, 0);
		if (m[i].link) {
			archive_entry_set_hardlink(e, m[i].link);
			archive_entry_set_size(e, 0);
		} else {
			archive_entry_set_size(e,
					       (la_int64_t)strlen(m[i].data));
		}
		/* ARCHIVE_WARN: a UTF-8 name in the C locale, written as
		 * its bytes */
		assert_true(archive_write_header(a, e) >= ARCHIVE_WARN);
		if (!m[i].link)
			assert_int_equal(archive_write_data(a, m[i].data,
							    strlen(m[i].data)),
					 (la_ssize_t)strlen(m[i].data));
		archive_entry_free(e);
	}
	assert_int_equal(archive_write_free(a), ARCHIVE_OK);
}

static int read_tar(struct fx *f, bool absolute_names, struct mv_err *err)
{
	struct source_tar_opts o;
	int fd, rc;

	memset(&o, 0, sizeof(o));
	o.label = "v";
	o.name = f->tar;
	o.absolute_names = absolute_names;
	fd = open(f->tar, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	o.fd = fd;
	rc = source_tar_read(f->ing, &o, err);
	close(fd);
	if (!rc)
		rc = ingest_finish(f->ing, err);
	return rc;
}

static const struct ingest_warning *find_warning(struct fx *f, const char *many)
{
	const struct ingest_warning *w;
	size_t n, i;

	w = ingest_get_warnings(f->ing, &n);
	for (i = 0; i < n; i++)
		if (!strcmp(w[i].many, many))
			return &w[i];
	return NULL;
}

/* Hostile names are stored cut, each kind counted once with its first
 * case; a member with no name left does not replace the label. */
static void test_source_tar_hostile_names(void **state)
{
	static const struct member m[] = {
		{"ok", "fine\n", NULL},	    {"/abs/f", "abs\n", NULL},
		{"/abs2", "abs2\n", NULL},  {"../x", "x\n", NULL},
		{"a/../../y", "y\n", NULL}, {"..", "gone\n", NULL},
		{"hl", NULL, "/ok"},	    {"hl2", NULL, "../missing"},
	};
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	const struct ingest_warning *w;
	struct tree_entry *e;
	size_t n;

	write_tar(f->tar, m, sizeof(m) / sizeof(m[0]));
	assert_int_equal(read_tar(f, false, &err), 0);
	assert_non_null(tree_builder_get(f->tb, "v/ok"));
	assert_non_null(tree_builder_get(f->tb, "v/abs/f"));
	assert_non_null(tree_builder_get(f->tb, "v/abs2"));
	assert_non_null(tree_builder_get(f->tb, "v/x"));
	assert_non_null(tree_builder_get(f->tb, "v/y"));
	assert_non_null(tree_builder_get(f->tb, "v/hl"));
	assert_null(tree_builder_get(f->tb, "v/hl2"));
	assert_null(tree_builder_get(f->tb, "v/.."));
	e = tree_builder_get(f->tb, "v");
	assert_non_null(e);
	assert_int_equal(e->type, TREE_DIR);

	w = find_warning(f, "member names had leading '/' removed");
	assert_non_null(w);
	assert_int_equal(w->count, 2);
	assert_string_equal(w->source, "v");
	assert_string_equal(w->first, "'/abs/f'");
	w = find_warning(
		f, "member names had everything up to their last '..' removed");
	assert_non_null(w);
	assert_int_equal(w->count, 2);
	assert_string_equal(w->first, "'../x' stored as 'x'");
	w = find_warning(
		f, "members had no name left once cleaned and were skipped");
	assert_non_null(w);
	assert_int_equal(w->count, 1);
	w = find_warning(f, "hard link targets had leading '/' removed");
	assert_non_null(w);
	assert_int_equal(w->count, 1);
	w = find_warning(
		f,
		"hard links to members the archive does not hold were skipped");
	assert_non_null(w);
	assert_string_equal(w->first, "'hl2' -> '../missing'");
	ingest_get_warnings(f->ing, &n);
	assert_int_equal(n, 6);
}

/* An archive whose names are absolute by design (mailcow) and a clean
 * one with a UTF-8 name: stored, and no warning. */
static void test_source_tar_clean_archives(void **state)
{
	static const struct member m[] = {
		{"/vmail/a", "a\n", NULL},
		{"/vmail/Entw\xc3\xbcrfe/\xc3\xa4", "b\n", NULL},
	};
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	size_t n;

	write_tar(f->tar, m, sizeof(m) / sizeof(m[0]));
	assert_int_equal(read_tar(f, true, &err), 0);
	assert_non_null(tree_builder_get(f->tb, "v/vmail/a"));
	assert_non_null(
		tree_builder_get(f->tb, "v/vmail/Entw\xc3\xbcrfe/\xc3\xa4"));
	ingest_get_warnings(f->ing, &n);
	assert_int_equal(n, 0);
}

/* Warnings are counted per source and kind; past ING_WARN_KINDS kinds,
 * the last one counts every other kind. */
static void test_source_tar_warn_table(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	const struct ingest_warning *w;
	char one[32], many[32];
	size_t n;
	int i;

	assert_int_equal(ingest_warn(f->ing, "a", "k", "ks", "'x'", &err), 0);
	assert_int_equal(ingest_warn(f->ing, "a", "k", "ks", "'y'", &err), 0);
	assert_int_equal(ingest_warn(f->ing, "b", "k", "ks", NULL, &err), 0);
	w = ingest_get_warnings(f->ing, &n);
	assert_int_equal(n, 2);
	assert_int_equal(w[0].count, 2);
	assert_string_equal(w[0].first, "'x'");
	assert_int_equal(w[1].count, 1);
	assert_null(w[1].first);
	for (i = 0; i < ING_WARN_KINDS + 5; i++) {
		snprintf(one, sizeof(one), "k%d", i);
		snprintf(many, sizeof(many), "ks%d", i);
		assert_int_equal(
			ingest_warn(f->ing, "a", one, many, NULL, &err), 0);
	}
	w = ingest_get_warnings(f->ing, &n);
	assert_int_equal(n, ING_WARN_KINDS);
	assert_string_equal(w[n - 1].many, "problems of other kinds");
	/* 2 kinds before, so kinds k29 .. k36 all land in the last slot */
	assert_int_equal(w[n - 1].count, ING_WARN_KINDS + 5 - (n - 3));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_source_tar_clean_name),
		cmocka_unit_test_setup_teardown(test_source_tar_hostile_names,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_source_tar_clean_archives,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_source_tar_warn_table,
						setup, teardown),
	};

	return cmocka_run_group_tests_name("source_tar", tests, NULL, NULL);
}
