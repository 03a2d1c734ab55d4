/*
 * Unit tests for snapshot: the record round trip, and resolving
 * NAME/latest, NAME/TIME (mount name and ISO), id prefixes, ambiguity,
 * and SNAP:PATH splitting around the colons of ISO times.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "repo.h"
#include "snapshot.h"

#define T0 1714564800ll /* 2024-05-01T12:00:00Z */

static void test_record_round_trip(void **state)
{
	struct snapshot s, d;
	struct snapshot_tag tags[2] = {{(char *)"host", (char *)"mx1"},
				       {(char *)"kind", (char *)""}};
	struct tree_chunk ch[2];
	struct mv_buf b = MV_BUF_INIT;
	struct mv_err err = MV_ERR_INIT;
	size_t n;

	(void)state;
	memset(&s, 0, sizeof(s));
	memset(ch, 0x5c, sizeof(ch));
	s.name = (char *)"stalwart";
	s.time_ns = T0 * 1000000000 + 123;
	s.host = (char *)"backup.example";
	s.ntags = 2;
	s.tags = tags;
	s.partial = true;
	s.root.n = 2;
	s.root.chunks = ch;
	s.stats.files = 10;
	s.stats.dirs = 3;
	s.stats.others = 1;
	s.stats.logical = 1 << 30;
	s.stats.new_bytes = 12345;
	s.stats.stored_bytes = 678;
	assert_int_equal(snapshot_encode(&s, &b, &err), 0);
	memset(&d, 0, sizeof(d));
	if (snapshot_decode(b.data, b.len, &d, &err))
		fail_msg("decode: %s", err.msg);
	assert_string_equal(d.name, "stalwart");
	assert_true(d.time_ns == s.time_ns);
	assert_string_equal(d.host, "backup.example");
	assert_int_equal(d.ntags, 2);
	assert_string_equal(d.tags[0].key, "host");
	assert_string_equal(d.tags[0].value, "mx1");
	assert_string_equal(d.tags[1].value, "");
	assert_true(d.partial);
	assert_int_equal(d.root.n, 2);
	assert_memory_equal(d.root.chunks, ch, sizeof(ch));
	assert_true(d.stats.files == 10 && d.stats.dirs == 3 &&
		    d.stats.others == 1);
	assert_true(d.stats.logical == 1 << 30);
	assert_true(d.stats.new_bytes == 12345);
	assert_true(d.stats.stored_bytes == 678);
	snapshot_release(&d);
	/* truncated records are refused */
	for (n = 0; n < b.len; n++) {
		memset(&d, 0, sizeof(d));
		if (snapshot_decode(b.data, n, &d, &err) == 0)
			fail_msg("a %zu-byte prefix of %zu decoded", n, b.len);
		snapshot_release(&d);
	}
	mv_buf_release(&b);
}

/* Counts and lengths in a record come from the repository and are not
 * trusted: a root-chunk count whose product with the entry size wraps
 * around, a tag count larger than the record can hold, and a chunk size
 * wider than 32 bits are refused, not allocated or truncated. */
static void put_record_head(struct mv_buf *b, uint64_t ntags)
{
	mv_buf_reset(b);
	assert_int_equal(mv_buf_append(b, "MVS1", 4), 0);
	assert_int_equal(mv_buf_put_varint(b, 1), 0);
	assert_int_equal(mv_buf_put_bytes(b, "job", 3), 0);
	assert_int_equal(mv_buf_put_varint(b, 0), 0); /* time */
	assert_int_equal(mv_buf_put_bytes(b, "h", 1), 0);
	assert_int_equal(mv_buf_put_u8(b, 0), 0);
	assert_int_equal(mv_buf_put_varint(b, ntags), 0);
}

static void expect_refused(const struct mv_buf *b)
{
	struct mv_err err = MV_ERR_INIT;
	struct snapshot d;

	memset(&d, 0, sizeof(d));
	assert_int_equal(snapshot_decode(b->data, b->len, &d, &err), -EIO);
	assert_non_null(strstr(err.msg, "damaged snapshot record"));
	assert_null(d.name);
	assert_null(d.root.chunks);
}

static void test_crafted_record(void **state)
{
	static const uint8_t filler[80];
	struct mv_buf b = MV_BUF_INIT;
	uint64_t n;

	(void)state;
	/* n * 33 wraps to 17: the old check passed, calloc failed and the
	 * NULL array was written to */
	n = UINT64_MAX / (MV_ID_LEN + 1) + 1;
	put_record_head(&b, 0);
	assert_int_equal(mv_buf_put_varint(&b, n), 0);
	assert_int_equal(mv_buf_append(&b, filler, sizeof(filler)), 0);
	expect_refused(&b);
	/* a count the remaining bytes cannot hold */
	put_record_head(&b, 0);
	assert_int_equal(mv_buf_put_varint(&b, 3), 0);
	assert_int_equal(mv_buf_append(&b, filler, 2 * (MV_ID_LEN + 1)), 0);
	expect_refused(&b);
	/* more tags than bytes left for their two lengths */
	put_record_head(&b, 40);
	assert_int_equal(mv_buf_append(&b, filler, 60), 0);
	expect_refused(&b);
	/* a root chunk size that does not fit its 32-bit field */
	put_record_head(&b, 0);
	assert_int_equal(mv_buf_put_varint(&b, 1), 0);
	assert_int_equal(mv_buf_append(&b, filler, MV_ID_LEN), 0);
	assert_int_equal(mv_buf_put_varint(&b, (uint64_t)1 << 32), 0);
	assert_int_equal(mv_buf_append(&b, filler, 6), 0);
	expect_refused(&b);
	mv_buf_release(&b);
}

struct fx {
	char dir[64];
	struct repo *r;
	char ids[4][2 * MV_ID_LEN + 1];
};

static void commit(struct repo *r, const char *name, int64_t sec, bool partial,
		   char *hex)
{
	struct mv_err err = MV_ERR_INIT;
	struct repo_writer *w;
	static int seq;
	struct snapshot s;
	char host[16];

	/* a different host each time: identical records would be one */
	snprintf(host, sizeof(host), "h%d", seq++);
	memset(&s, 0, sizeof(s));
	s.name = (char *)name;
	s.host = host;
	s.time_ns = sec * 1000000000;
	s.partial = partial;
	assert_int_equal(repo_writer_begin(r, &w, &err), 0);
	if (repo_writer_commit(w, &s, &err))
		fail_msg("commit: %s", err.msg);
	mv_hex(s.id, MV_ID_LEN, hex);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct mv_err err = MV_ERR_INIT;
	char repo[96];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_snapshot.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(repo, sizeof(repo), "%s/r", f->dir);
	assert_int_equal(repo_init(repo, NULL, &err), 0);
	assert_int_equal(repo_open(repo, REPO_OPEN_WRITE, &f->r, &err), 0);
	/* committed out of time order on purpose */
	commit(f->r, "mail", T0 + 86400, false, f->ids[1]);
	commit(f->r, "mail", T0, false, f->ids[0]);
	commit(f->r, "mail", T0 + 2 * 86400, true, f->ids[2]);
	commit(f->r, "config", T0, false, f->ids[3]);
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

/* The reproduction: one crafted record in index.db made
 * 'snapshots' die with SIGSEGV.  Listing now fails with a message that
 * names the row. */
static void test_crafted_record_in_index(void **state)
{
	struct fx *f = *state;
	static const uint8_t filler[80];
	struct mv_err err = MV_ERR_INIT;
	struct mv_buf b = MV_BUF_INIT;
	struct snapshot *list = NULL;
	sqlite3_stmt *st;
	size_t n = 0;

	put_record_head(&b, 0);
	assert_int_equal(
		mv_buf_put_varint(&b, UINT64_MAX / (MV_ID_LEN + 1) + 1), 0);
	assert_int_equal(mv_buf_append(&b, filler, sizeof(filler)), 0);
	assert_int_equal(sqlite3_prepare_v2(repo_db(f->r),
					    "UPDATE snapshots SET record = ?1 "
					    "WHERE name = 'config'",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_blob(st, 1, b.data, (int)b.len, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	assert_int_equal(snapshot_list(f->r, &list, &n, &err), -EIO);
	assert_null(list);
	assert_non_null(strstr(err.msg, "snapshot row "));
	assert_non_null(strstr(err.msg, "damaged snapshot record"));
	mv_buf_release(&b);
}

/* Resolve spec and return the hex id, or NULL with err set. */
static const char *resolve(struct fx *f, const char *spec, int *rc,
			   struct mv_err *err)
{
	static char hex[2 * MV_ID_LEN + 1];
	struct snapshot s;

	memset(&s, 0, sizeof(s));
	mv_err_clear(err);
	*rc = snapshot_resolve(f->r, spec, &s, err);
	if (*rc)
		return NULL;
	mv_hex(s.id, MV_ID_LEN, hex);
	snapshot_release(&s);
	return hex;
}

static void test_resolve(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct snapshot *list = NULL;
	const char *got;
	char prefix[16];
	size_t n = 0;
	int rc;

	/* listed by name, then time */
	assert_int_equal(snapshot_list(f->r, &list, &n, &err), 0);
	assert_int_equal(n, 4);
	assert_string_equal(list[0].name, "config");
	assert_true(list[1].time_ns < list[2].time_ns);
	assert_true(list[2].time_ns < list[3].time_ns);
	assert_true(list[3].partial);
	snapshot_list_free(list, n);

	/* latest prefers the newest complete snapshot */
	got = resolve(f, "mail/latest", &rc, &err);
	assert_non_null(got);
	assert_string_equal(got, f->ids[1]);
	got = resolve(f, "mail/2024-05-02T120000Z", &rc, &err);
	assert_non_null(got);
	assert_string_equal(got, f->ids[1]);
	got = resolve(f, "mail/2024-05-01T12:00:00Z", &rc, &err);
	assert_non_null(got);
	assert_string_equal(got, f->ids[0]);
	/* the mount's name of a partial snapshot */
	got = resolve(f, "mail/2024-05-03T120000Z.partial", &rc, &err);
	assert_non_null(got);
	assert_string_equal(got, f->ids[2]);
	got = resolve(f, "config/latest", &rc, &err);
	assert_non_null(got);
	assert_string_equal(got, f->ids[3]);
	/* id prefixes, either case */
	snprintf(prefix, sizeof(prefix), "%.8s", f->ids[1]);
	got = resolve(f, prefix, &rc, &err);
	assert_non_null(got);
	assert_string_equal(got, f->ids[1]);
	got = resolve(f, f->ids[1], &rc, &err);
	assert_non_null(got);
	/* failures */
	assert_null(resolve(f, "mail/2020-01-01T000000Z", &rc, &err));
	assert_int_equal(rc, -ENOENT);
	assert_null(resolve(f, "nosuch/latest", &rc, &err));
	assert_int_equal(rc, -ENOENT);
	assert_non_null(strstr(err.msg, "no snapshot 'nosuch/latest'"));
	assert_null(resolve(f, "mail/soon", &rc, &err));
	assert_int_equal(rc, -EINVAL);
	assert_non_null(strstr(err.msg, "cannot parse time 'soon'"));
	assert_null(resolve(f, "abc", &rc, &err));
	assert_int_equal(rc, -EINVAL);
	assert_null(resolve(f, "zzzzzzzz", &rc, &err));
	assert_int_equal(rc, -ENOENT);
}

static void test_ambiguous(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	const char *got;
	char prefix[8], hex[2 * MV_ID_LEN + 1];
	int rc, i, j, k, tries = 0;

	/* two snapshots in the same second: an ISO NAME/TIME is ambiguous */
	commit(f->r, "dup", T0, false, hex);
	commit(f->r, "dup", T0, false, hex);
	assert_null(resolve(f, "dup/2024-05-01T12:00:00Z", &rc, &err));
	assert_int_equal(rc, -EINVAL);
	assert_non_null(strstr(err.msg, "ambiguous"));
	/* the mount's directory name still picks one */
	assert_non_null(resolve(f, "dup/2024-05-01T120000Z", &rc, &err));
	got = resolve(f, "dup/latest", &rc, &err);
	assert_non_null(got);
	/* a 4-digit prefix shared by two ids, made by committing until two
	 * ids share their first digits */
	for (;;) {
		for (i = 0; i < 4; i++)
			for (j = 0; j < 4; j++)
				if (i != j && !strncmp(f->ids[i], f->ids[j], 1))
					goto found;
		assert_true(++tries < 64);
		commit(f->r, "more", T0 + tries, false, f->ids[tries % 4]);
	}
found:
	for (k = 4; k > 0; k--)
		if (!strncmp(f->ids[i], f->ids[j], (size_t)k))
			break;
	(void)k;
	snprintf(prefix, sizeof(prefix), "%.1s", f->ids[i]);
	/* one hex digit is too short to be an id prefix at all */
	assert_null(resolve(f, prefix, &rc, &err));
	assert_int_equal(rc, -EINVAL);
}

static void test_split_spec(void **state)
{
	static const struct {
		const char *arg, *snap, *path;
	} cases[] = {
		{"mail/latest", "mail/latest", ""},
		{"mail/latest:volume/a", "mail/latest", "volume/a"},
		{"mail/2024-05-01T12:00:00Z:volume",
		 "mail/2024-05-01T12:00:00Z", "volume"},
		{"mail/2024-05-01T12:00:00Z", "mail/2024-05-01T12:00:00Z", ""},
		{"mail/2024-05-01T12:00Z:x", "mail/2024-05-01T12:00Z", "x"},
		{"abcd1234:a:b", "abcd1234", "a:b"},
		{"mail/latest:", "mail/latest", ""},
	};
	struct mv_err err = MV_ERR_INIT;
	char *snap, *path;
	size_t i;

	(void)state;
	for (i = 0; i < MV_ARRAY_SIZE(cases); i++) {
		assert_int_equal(
			snapshot_split_spec(cases[i].arg, &snap, &path, &err),
			0);
		if (strcmp(snap, cases[i].snap) || strcmp(path, cases[i].path))
			fail_msg("'%s' split into '%s' and '%s'", cases[i].arg,
				 snap, path);
		free(snap);
		free(path);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_round_trip),
		cmocka_unit_test(test_crafted_record),
		cmocka_unit_test_setup_teardown(test_resolve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ambiguous, setup,
						teardown),
		cmocka_unit_test(test_split_spec),
		cmocka_unit_test_setup_teardown(test_crafted_record_in_index,
						setup, teardown),
	};

	return cmocka_run_group_tests_name("snapshot", tests, NULL, NULL);
}
