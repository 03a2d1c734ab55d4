/*
 * Unit tests for index: an index.db is read as untrusted input (it may
 * come from a NAS share or an sftp server someone else controls), so every
 * handle is opened with SQLite's defensive settings: no writes to the
 * schema or shadow tables, no schema-defined SQL trusted to call
 * functions with side effects, and cell sizes checked on every read.
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

#include "index.h"
#include "pack.h"
#include "repo.h"
#include "snapshot.h"

static int pragma_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int v = -1;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void check_defensive_db(sqlite3 *db)
{
	int on = -1;

	assert_int_equal(
		sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, -1, &on),
		SQLITE_OK);
	assert_int_equal(on, 1);
	assert_int_equal(pragma_int(db, "PRAGMA trusted_schema"), 0);
	assert_int_equal(pragma_int(db, "PRAGMA cell_size_check"), 1);
	/* what defensive mode is for: the schema cannot be rewritten */
	assert_int_not_equal(sqlite3_exec(db,
					  "PRAGMA writable_schema=ON;"
					  "UPDATE sqlite_schema SET sql = sql;",
					  NULL, NULL, NULL),
			     SQLITE_OK);
}

static void check_defensive(struct index *ix)
{
	check_defensive_db(index_db(ix));
}

/* The mail catalogue (catalog.db) is opened by the view and by find with
 * the same settings: it lies beside index.db and is as untrusted.  FTS5,
 * which the catalogue uses, must still work under them. */
static void test_defend_plain_db(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	sqlite3 *db;

	(void)state;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	if (index_sqlite_defend(db, "catalogue", &err))
		fail_msg("defend: %s", err.msg);
	check_defensive_db(db);
	assert_int_equal(
		sqlite3_exec(db,
			     "CREATE VIRTUAL TABLE f USING fts5(a,"
			     " content='');"
			     "INSERT INTO f (rowid, a) VALUES (1, 'x');",
			     NULL, NULL, NULL),
		SQLITE_OK);
	assert_int_equal(
		pragma_int(db, "SELECT rowid FROM f WHERE f MATCH 'x'"), 1);
	sqlite3_close(db);
}

static void test_defensive_settings(void **state)
{
	char dir[] = "/tmp/mv-test-index.XXXXXX", path[128];
	struct mv_err err = MV_ERR_INIT;
	struct index *ix;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/index.db", dir);
	if (index_open(path, true, false, false, &ix, &err))
		fail_msg("create: %s", err.msg);
	check_defensive(ix);
	index_close(ix);
	if (index_open(path, false, true, false, &ix, &err))
		fail_msg("open: %s", err.msg);
	check_defensive(ix);
	index_close(ix);
	if (index_open(path, false, false, true, &ix, &err))
		fail_msg("open read-only: %s", err.msg);
	check_defensive(ix);
	index_close(ix);
	unlink(path);
	snprintf(path, sizeof(path), "%s/index.db-wal", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/index.db-shm", dir);
	unlink(path);
	assert_int_equal(rmdir(dir), 0);
}

/* The sizes in an index row are as untrusted as the file: a chunk row
 * claiming a record of nearly 4 GiB is refused as damaged before a buffer
 * is allocated for it, and the message says the index is at fault. */
static void test_record_size_from_index(void **state)
{
	char dir[] = "/tmp/mv-test-index.XXXXXX", repo[128], cmd[160];
	static const char data[] = "the content of a chunk";
	struct mv_err err = MV_ERR_INIT;
	struct mv_buf out = MV_BUF_INIT;
	struct repo_writer *w;
	uint8_t id[MV_ID_LEN];
	struct snapshot snap;
	struct repo *r;
	bool fresh;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(repo, sizeof(repo), "%s/r", dir);
	assert_int_equal(repo_init(repo, NULL, &err), 0);
	assert_int_equal(repo_open(repo, REPO_OPEN_WRITE, &r, &err), 0);
	repo_chunk_id(r, data, sizeof(data), id);
	assert_int_equal(repo_writer_begin(r, &w, &err), 0);
	assert_int_equal(repo_writer_put(w, REC_DATA, id, data, sizeof(data),
					 NULL, 0, &fresh, &err),
			 0);
	memset(&snap, 0, sizeof(snap));
	snap.name = (char *)"job";
	snap.host = (char *)"h";
	if (repo_writer_commit(w, &snap, &err))
		fail_msg("commit: %s", err.msg);
	assert_int_equal(repo_chunk_read(r, id, true, &out, &err), 0);
	assert_int_equal(sqlite3_exec(repo_db(r),
				      "UPDATE chunks SET stored_size = "
				      "4294967200",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	mv_buf_reset(&out);
	assert_int_equal(repo_chunk_read(r, id, true, &out, &err), -EIO);
	assert_non_null(strstr(err.msg, "index"));
	assert_non_null(strstr(err.msg, "4294967200"));
	mv_buf_release(&out);
	repo_close(r);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

struct rows {
	uint64_t off[8];
	uint8_t first[8];
	int n;
};

static int take_row(const uint8_t id[MV_ID_LEN], const struct chunk_loc *loc,
		    void *arg)
{
	struct rows *r = arg;

	if (r->n < 8) {
		r->off[r->n] = loc->offset;
		r->first[r->n++] = id[0];
	}
	return 0;
}

/* The rows of one pack whose records start in [lo, hi), by offset: what
 * a far restore keeps of a pack span it read (repo_chunk_prefetch). */
static void test_pack_range_chunks(void **state)
{
	char dir[] = "/tmp/mv-test-index.XXXXXX", path[128], cmd[160];
	static const uint64_t offs[] = {300, 0, 200, 100};
	struct mv_err err = MV_ERR_INIT;
	struct chunk_loc loc;
	struct rows rows;
	struct index *ix;
	int64_t p1, p2;
	uint8_t id[MV_ID_LEN];
	int i;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/index.db", dir);
	if (index_open(path, true, false, false, &ix, &err) ||
	    index_begin(ix, &err) ||
	    index_pack_add(ix, "aa", PACK_KIND_DATA, &p1, &err) ||
	    index_pack_add(ix, "bb", PACK_KIND_DATA, &p2, &err))
		fail_msg("index: %s", err.msg);
	memset(id, 0, sizeof(id));
	memset(&loc, 0, sizeof(loc));
	loc.stored_size = 90;
	loc.raw_size = 90;
	loc.type = REC_DATA;
	for (i = 0; i < 4; i++) {
		id[0] = (uint8_t)(1 + i);
		loc.pack = p1;
		loc.offset = offs[i];
		assert_int_equal(index_chunk_add(ix, id, &loc, &err), 0);
		id[0] = (uint8_t)(11 +
				  i); /* the same offsets in another pack */
		loc.pack = p2;
		assert_int_equal(index_chunk_add(ix, id, &loc, &err), 0);
	}
	assert_int_equal(index_commit(ix, &err), 0);
	memset(&rows, 0, sizeof(rows));
	assert_int_equal(index_pack_range_chunks(ix, p1, 100, 300, take_row,
						 &rows, &err),
			 0);
	assert_int_equal(rows.n, 2);
	assert_int_equal(rows.off[0], 100);
	assert_int_equal(rows.first[0], 4);
	assert_int_equal(rows.off[1], 200);
	assert_int_equal(rows.first[1], 3);
	memset(&rows, 0, sizeof(rows));
	assert_int_equal(index_pack_range_chunks(ix, p2, 301, 1000, take_row,
						 &rows, &err),
			 0);
	assert_int_equal(rows.n, 0);
	index_close(ix);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defensive_settings),
		cmocka_unit_test(test_defend_plain_db),
		cmocka_unit_test(test_record_size_from_index),
		cmocka_unit_test(test_pack_range_chunks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
