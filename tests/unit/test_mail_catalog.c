/* Unit tests for mail_catalog: one row per distinct message, snapshot
 * ranges instead of per-snapshot rows, FTS5 filters, --deleted. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mail_catalog.h"

struct fx {
	sqlite3 *db;
	struct mail_catalog *cat;
};

static int setup(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct fx *f = calloc(1, sizeof(*f));

	assert_int_equal(sqlite3_open(":memory:", &f->db), SQLITE_OK);
	assert_int_equal(mail_catalog_open(f->db, &f->cat, &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	mail_catalog_close(f->cat);
	sqlite3_close(f->db);
	free(f);
	return 0;
}

/* A content id for message number id: both halves differ between
 * messages, as those of a keyed hash do (the catalogue keys on one half,
 * names and hits use the other). */
static void cid_of(unsigned id, uint8_t *cid)
{
	for (unsigned k = 0; k < 32; k++)
		cid[k] = (uint8_t)(id * 131u + k * 29u + (id >> 8));
}

static void add(struct fx *f, uint8_t id, const char *from, const char *subj,
		int64_t date, const char *body)
{
	struct mv_err err = MV_ERR_INIT;
	uint8_t cid[32];
	char *att = (char *)"Rechnung M\xc3\xa4rz.pdf";
	struct mail_msg m;

	memset(&m, 0, sizeof(m));
	m.from = (char *)from;
	m.from_addr = (char *)"sender@example.org";
	m.to = (char *)"Bob <bob@example.org>";
	m.subject = (char *)subj;
	m.date = date;
	m.size = 100;
	m.body = (char *)body;
	m.attachments = &att;
	m.n_attachments = id == 2 ? 1 : 0;
	cid_of(id, cid);
	assert_int_equal(mail_catalog_add(f->cat, cid, sizeof(cid), &m, &err),
			 0);
	/* idempotent */
	assert_int_equal(mail_catalog_add(f->cat, cid, sizeof(cid), &m, &err),
			 0);
	assert_int_equal(mail_catalog_has(f->cat, cid, sizeof(cid), &err), 1);
}

static void seen(struct fx *f, int64_t seq, uint8_t id, const char *mailbox)
{
	struct mv_err err = MV_ERR_INIT;
	uint8_t cid[32];
	char name[64];

	cid_of(id, cid);
	snprintf(name, sizeof(name), "msg %u.eml", id);
	assert_int_equal(mail_catalog_seen(f->cat, seq, cid, sizeof(cid),
					   "alice@example.org", mailbox, name,
					   &err),
			 0);
}

static int64_t count(struct fx *f, const char *sql)
{
	sqlite3_stmt *st;
	int64_t n;

	assert_int_equal(sqlite3_prepare_v2(f->db, sql, -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static int find(struct fx *f, const struct mail_catalog_query *q)
{
	struct mv_err err = MV_ERR_INIT;
	int n = mail_catalog_find(f->cat, q, NULL, NULL, &err);

	assert_true(n >= 0);
	return n;
}

struct last {
	char subject[64], last_snap[32], mailbox[32];
	bool deleted;
};

static int keep_last(void *ctx, const struct mail_catalog_hit *h)
{
	struct last *l = ctx;

	snprintf(l->subject, sizeof(l->subject), "%s", h->subject);
	snprintf(l->last_snap, sizeof(l->last_snap), "%s", h->last_snap);
	snprintf(l->mailbox, sizeof(l->mailbox), "%s", h->mailbox);
	l->deleted = h->deleted;
	return 0;
}

static void test_mail_catalog_year_of_dailies(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct mail_catalog_query q;
	struct last l;
	char snap[32];
	int64_t seq;
	int day;

	add(f, 1, "Alice Example", "Quarterly report", 1714566600,
	    "numbers attached");
	add(f, 2, "J\xc3\xbcrgen M\xc3\xbcller", "Invoice March", 1709251200,
	    NULL);
	add(f, 3, "Carol", "Lunch?", 1717200000, "pizza or sushi");
	for (day = 0; day < 365; day++) {
		snprintf(snap, sizeof(snap), "2024-%03d", day);
		assert_int_equal(mail_catalog_snapshot_begin(f->cat, "mailcow",
							     snap, day, &seq,
							     &err),
				 0);
		seen(f, seq, 1, "INBOX");
		/* message 2 is moved to Archive on day 100 */
		seen(f, seq, 2, day < 100 ? "INBOX" : "Archive");
		/* message 3 is deleted on day 300 */
		if (day < 300)
			seen(f, seq, 3, "INBOX");
		assert_int_equal(mail_catalog_snapshot_end(f->cat, seq, &err),
				 0);
	}
	assert_int_equal(count(f, "SELECT count(*) FROM msg"), 3);
	assert_int_equal(count(f, "SELECT count(*) FROM place"), 4);

	memset(&q, 0, sizeof(q));
	assert_int_equal(find(f, &q), 4);
	q.subject = "report";
	assert_int_equal(find(f, &q), 1);
	memset(&q, 0, sizeof(q));
	q.from = "jurgen"; /* diacritics folded */
	assert_int_equal(find(f, &q), 2);
	memset(&q, 0, sizeof(q));
	q.text = "sushi";
	assert_int_equal(find(f, &q), 1);
	q.text = "M\xc3\xa4rz.pdf";
	assert_int_equal(find(f, &q), 2);
	memset(&q, 0, sizeof(q));
	q.to = "bob@example.org";
	assert_int_equal(find(f, &q), 4);
	memset(&q, 0, sizeof(q));
	q.has_since = true;
	q.since = 1714000000;
	assert_int_equal(find(f, &q), 2);
	q.has_until = true;
	q.until = 1715000000;
	assert_int_equal(find(f, &q), 1);
	memset(&q, 0, sizeof(q));
	q.account = "nobody@example.org";
	assert_int_equal(find(f, &q), 0);

	memset(&q, 0, sizeof(q));
	q.deleted = true;
	assert_int_equal(mail_catalog_find(f->cat, &q, keep_last, &l, &err), 1);
	assert_string_equal(l.subject, "Lunch?");
	assert_string_equal(l.last_snap, "2024-299");
	assert_true(l.deleted);

	/* a snapshot in the middle: message 2 was still in INBOX */
	memset(&q, 0, sizeof(q));
	q.snapshot = "2024-050";
	q.subject = "invoice";
	assert_int_equal(mail_catalog_find(f->cat, &q, keep_last, &l, &err), 1);
	assert_string_equal(l.mailbox, "INBOX");
	assert_string_equal(l.last_snap, "2024-099");
	assert_true(l.deleted);

	/* quotes in user input do not break the FTS expression */
	memset(&q, 0, sizeof(q));
	q.subject = "\"report\" OR";
	assert_true(find(f, &q) >= 0);
}

/* The backup records places before the snapshot id exists (on its own
 * thread), names it once the repository commits, or drops it. */
static void test_mail_catalog_named_later(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct mail_catalog_query q;
	struct last l;
	int64_t seq;

	add(f, 1, "Alice", "Kept", 1714566600, NULL);
	add(f, 2, "Bob", "Dropped later", 1714566700, NULL);
	assert_int_equal(mail_catalog_snapshot_begin(f->cat, "job", "day-1", 1,
						     &seq, &err),
			 0);
	seen(f, seq, 1, "INBOX");
	seen(f, seq, 2, "INBOX");
	assert_int_equal(mail_catalog_snapshot_end(f->cat, seq, &err), 0);

	/* day 2 without an id; message 2 gone */
	assert_int_equal(
		mail_catalog_snapshot_begin(f->cat, "job", NULL, 2, &seq, &err),
		0);
	seen(f, seq, 1, "INBOX");
	assert_int_equal(mail_catalog_snapshot_close(f->cat, seq, &err), 0);
	/* closing twice is harmless; end does not close again */
	assert_int_equal(mail_catalog_snapshot_close(f->cat, seq, &err), 0);
	assert_int_equal(mail_catalog_snapshot_name(f->cat, seq, "day-2", &err),
			 0);
	assert_int_equal(mail_catalog_snapshot_end(f->cat, seq, &err), 0);
	memset(&q, 0, sizeof(q));
	q.deleted = true;
	assert_int_equal(mail_catalog_find(f->cat, &q, keep_last, &l, &err), 1);
	assert_string_equal(l.subject, "Dropped later");
	assert_string_equal(l.last_snap, "day-1");
	assert_int_equal(
		count(f, "SELECT count(*) FROM snap WHERE snap_id = 'day-2'"),
		1);

	/* day 3 dropped (the backup failed after recording): nothing of it
	 * stays, and the ranges are as after day 2 */
	assert_int_equal(
		mail_catalog_snapshot_begin(f->cat, "job", NULL, 3, &seq, &err),
		0);
	seen(f, seq, 2, "INBOX");
	assert_int_equal(mail_catalog_snapshot_close(f->cat, seq, &err), 0);
	mail_catalog_snapshot_abort(f->cat);
	mail_catalog_snapshot_abort(f->cat); /* nothing open: no-op */
	assert_int_equal(count(f, "SELECT count(*) FROM snap"), 2);
	assert_int_equal(count(f, "SELECT count(*) FROM snap WHERE snap_id"
				  " LIKE 'pending-%'"),
			 0);
	assert_int_equal(mail_catalog_find(f->cat, &q, keep_last, &l, &err), 1);
	assert_string_equal(l.last_snap, "day-1");
	assert_int_equal(mail_catalog_snapshot_name(f->cat, seq, "x", &err),
			 -EINVAL);
}

static int64_t changes_of_day(struct fx *f, const char *job, const char *snap,
			      int64_t time, const uint8_t *ids, size_t n)
{
	struct mv_err err = MV_ERR_INIT;
	int64_t seq, before;
	size_t i;

	assert_int_equal(mail_catalog_snapshot_begin(f->cat, job, snap, time,
						     &seq, &err),
			 0);
	before = sqlite3_total_changes64(f->db);
	for (i = 0; i < n; i++)
		seen(f, seq, ids[i], "INBOX");
	assert_int_equal(mail_catalog_snapshot_end(f->cat, seq, &err), 0);
	return sqlite3_total_changes64(f->db) - before;
}

/* An unchanged message costs no write in a daily backup (its range is
 * open); a message that left costs one (its range closed); --snapshot
 * stays within its job.  (Ranges ended at the latest snapshot, as
 * versions before open ranges wrote them, are opened by the migration:
 * test_mail_catalog_migrate.) */
static void test_mail_catalog_open_ranges(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct mail_catalog_query q;
	const uint8_t three[] = {1, 2, 3}, two[] = {1, 2};
	struct last l;

	add(f, 1, "Alice", "One", 1714566600, NULL);
	add(f, 2, "Bob", "Two", 1714566700, NULL);
	add(f, 3, "Carol", "Three", 1714566800, NULL);
	/* three places and their folder */
	assert_int_equal(changes_of_day(f, "job", "d1", 1, three, 3), 4);
	assert_int_equal(changes_of_day(f, "job", "d2", 2, three, 3), 0);
	assert_int_equal(changes_of_day(f, "job", "d3", 3, three, 3), 0);
	memset(&q, 0, sizeof(q));
	assert_int_equal(mail_catalog_find(f->cat, &q, keep_last, &l, &err), 3);
	assert_string_equal(l.last_snap, "d3");
	assert_false(l.deleted);
	q.deleted = true;
	assert_int_equal(find(f, &q), 0);
	/* day 4: message 3 gone (one write: its range closed) */
	assert_int_equal(changes_of_day(f, "job", "d4", 4, two, 2), 1);
	assert_int_equal(count(f, "SELECT count(*) FROM place"), 3);
	assert_int_equal(mail_catalog_find(f->cat, &q, keep_last, &l, &err), 1);
	assert_string_equal(l.subject, "Three");
	assert_string_equal(l.last_snap, "d3");
	assert_int_equal(changes_of_day(f, "job", "d5", 5, two, 2), 0);
	memset(&q, 0, sizeof(q));
	q.subject = "One";
	assert_int_equal(mail_catalog_find(f->cat, &q, keep_last, &l, &err), 1);
	assert_string_equal(l.last_snap, "d5");

	/* a snapshot of another job does not fall inside this job's range */
	assert_int_equal(changes_of_day(f, "other", "o1", 6, two, 0), 0);
	memset(&q, 0, sizeof(q));
	q.snapshot = "o1";
	assert_int_equal(find(f, &q), 0);
	q.snapshot = "d2";
	assert_int_equal(find(f, &q), 3);
	q.snapshot = "d5";
	assert_int_equal(find(f, &q), 2);
}

static void test_mail_catalog_misuse(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	uint8_t cid[32] = {42};

	assert_int_equal(mail_catalog_seen(f->cat, 7, cid, sizeof(cid), "a",
					   "b", "c", &err),
			 -EINVAL);
	assert_int_equal(mail_catalog_has(f->cat, cid, sizeof(cid), &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_mail_catalog_year_of_dailies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mail_catalog_named_later,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_mail_catalog_open_ranges,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_mail_catalog_misuse, setup,
						teardown),
	};

	return cmocka_run_group_tests_name("mail_catalog", tests, NULL, NULL);
}
