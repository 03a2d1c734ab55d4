/*
 * Unit tests for check: --read-data-subset values are parsed or refused;
 * a referenced chunk missing from the index is damage (-EIO, the file
 * named with its snapshot) until check_loss_record() records it, then it
 * is known loss (0, counted apart); a subset N/M reads each pack in
 * exactly one group.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <sqlite3.h>

#include "check.h"
#include "repo.h"
#include "snapshot.h"
#include "tree.h"

struct fx {
	char dir[64];
	struct repo *r;
	uint8_t gone[MV_ID_LEN]; /* content chunk of "a/lost" */
};

struct msgs {
	char text[8][512];
	int n;
};

static void collect(const char *kind, const char *msg, void *arg)
{
	struct msgs *m = arg;

	if (m->n < 8)
		snprintf(m->text[m->n++], sizeof(m->text[0]), "%s: %s", kind,
			 msg);
}

static bool said(const struct msgs *m, const char *what)
{
	int i;

	for (i = 0; i < m->n; i++)
		if (strstr(m->text[i], what))
			return true;
	return false;
}

/* One snapshot: a/kept and a/lost, each one chunk of its own. */
static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct mv_err err = MV_ERR_INIT;
	struct tree_builder *tb = NULL;
	struct repo_writer *w = NULL;
	struct tree_entry e, root_e;
	struct tree_chunk ch[2];
	struct tree_ref root;
	struct snapshot s;
	const char *data[2] = {"kept bytes", "bytes that will be lost"};
	const char *path[2] = {"a/kept", "a/lost"};
	char repo[96];
	int i;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_check.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(repo, sizeof(repo), "%s/r", f->dir);
	assert_int_equal(repo_init(repo, NULL, &err), 0);
	assert_int_equal(repo_open(repo, REPO_OPEN_WRITE, &f->r, &err), 0);
	assert_int_equal(repo_writer_begin(f->r, &w, &err), 0);
	assert_int_equal(tree_builder_new(&tb, &err), 0);
	for (i = 0; i < 2; i++) {
		repo_chunk_id(f->r, data[i], strlen(data[i]), ch[i].id);
		ch[i].size = (uint32_t)strlen(data[i]);
		assert_int_equal(repo_writer_put(w, REC_DATA, ch[i].id, data[i],
						 strlen(data[i]), NULL, 0, NULL,
						 &err),
				 0);
		memset(&e, 0, sizeof(e));
		e.type = TREE_REG;
		e.mode = 0600;
		e.size = ch[i].size;
		e.nchunks = 1;
		e.chunks = &ch[i];
		assert_int_equal(tree_builder_add(tb, path[i], &e, &err), 0);
	}
	memcpy(f->gone, ch[1].id, MV_ID_LEN);
	if (tree_builder_write(tb, f->r, w, &root, &root_e, &err))
		fail_msg("write: %s", err.msg);
	tree_builder_free(tb);
	memset(&s, 0, sizeof(s));
	s.name = (char *)"job";
	s.host = (char *)"h";
	s.time_ns = 1000000000;
	s.root = root;
	if (repo_writer_commit(w, &s, &err))
		fail_msg("commit: %s", err.msg);
	tree_ref_release(&root);
	tree_entry_release(&root_e);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	repo_close(f->r);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void test_check_parse_subset(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct check_opts o;
	const char *bad[] = {"0%", "101%", "5",	   "x",	  "0/3", "4/3",
			     "1/", "/3",   "1/3x", "-1%", ""};
	size_t i;

	(void)state;
	memset(&o, 0, sizeof(o));
	assert_int_equal(check_parse_subset("2.5%", &o, &err), 0);
	assert_true(o.subset_pct == 2.5);
	assert_int_equal(check_parse_subset("100%", &o, &err), 0);
	assert_int_equal(check_parse_subset("3/7", &o, &err), 0);
	assert_int_equal(o.subset_n, 3);
	assert_int_equal(o.subset_of, 7);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mv_err_clear(&err);
		if (check_parse_subset(bad[i], &o, &err) != -EINVAL)
			fail_msg("'%s' accepted", bad[i]);
		assert_non_null(strstr(mv_err_msg(&err), "bad subset"));
	}
}

static void drop_row(struct fx *f)
{
	sqlite3_stmt *st = NULL;

	assert_int_equal(sqlite3_prepare_v2(repo_db(f->r),
					    "DELETE FROM chunks WHERE id = ?1",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_blob(st, 1, f->gone, MV_ID_LEN, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
}

static void test_check_missing_then_known_loss(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct check_result res;
	struct check_opts o;
	struct msgs m;

	memset(&o, 0, sizeof(o));
	memset(&m, 0, sizeof(m));
	assert_int_equal(check_run(f->r, &o, collect, &m, &res, &err), 0);
	assert_int_equal(res.files, 2);
	assert_int_equal(res.affected_files, 0);

	drop_row(f);
	memset(&m, 0, sizeof(m));
	assert_int_equal(check_run(f->r, &o, collect, &m, &res, &err), -EIO);
	assert_int_equal(res.affected_files, 1);
	assert_int_equal(res.affected_snapshots, 1);
	assert_int_equal(res.lost_files, 0);
	assert_true(said(&m, "error: snapshot job/"));
	assert_true(said(&m, ": file '/a/lost': missing data (chunk 1 of 1)"));
	assert_false(said(&m, "a/kept"));

	mv_err_clear(&err);
	assert_int_equal(check_loss_record(f->r, f->gone, "test", &err), 0);
	memset(&m, 0, sizeof(m));
	assert_int_equal(check_run(f->r, &o, collect, &m, &res, &err), 0);
	assert_int_equal(res.affected_files, 0);
	assert_int_equal(res.lost_files, 1);
	assert_int_equal(res.lost_snapshots, 1);
	assert_int_equal(res.lost_chunks, 1);
	assert_true(said(&m, "warning: snapshot job/"));
	assert_true(said(&m, ": file '/a/lost': known-lost data"));
}

static void test_check_subset_groups(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct check_result res, all;
	struct check_opts o;
	uint64_t packs = 0, chunks = 0;
	uint32_t n;

	memset(&o, 0, sizeof(o));
	o.read_data = true;
	assert_int_equal(check_run(f->r, &o, NULL, NULL, &all, &err), 0);
	assert_int_equal(all.packs_read, all.packs);
	for (n = 1; n <= 3; n++) {
		memset(&o, 0, sizeof(o));
		o.subset_n = n;
		o.subset_of = 3;
		assert_int_equal(check_run(f->r, &o, NULL, NULL, &res, &err),
				 0);
		packs += res.packs_read;
		chunks += res.chunks;
	}
	assert_int_equal(packs, all.packs);
	assert_int_equal(chunks, all.chunks);
	memset(&o, 0, sizeof(o));
	o.subset_pct = 0.001; /* still one pack */
	o.random_seed = 42;
	assert_int_equal(check_run(f->r, &o, NULL, NULL, &res, &err), 0);
	assert_int_equal(res.packs_read, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_parse_subset),
		cmocka_unit_test_setup_teardown(
			test_check_missing_then_known_loss, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_subset_groups, setup,
						teardown),
	};

	return cmocka_run_group_tests_name("check", tests, NULL, NULL);
}
