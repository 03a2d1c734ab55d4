/* Unit tests for catseg: replaying catalogue segments gives the catalogue
 * that recording the backups directly gave - messages, places and their
 * ranges, names and their variants, search (also --text on bodies) -
 * whatever order the segments arrive in; a base equals its catalogue;
 * damaged segments are refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "catseg.h"
#include "mail_catalog.h"
#include "mail_name.h"

#define DAYS 60
#define POOL 400
/* test_catseg_fixed_bytes: what the format gave on 2026-12-07 */
#define FIXED_SEGS 0x814a9b8aff2c4e70u
#define FIXED_DUMP 0x840ceb7d14495c35u

struct cat {
	sqlite3 *db;
	struct mail_catalog *cat;
};

static void cat_open(struct cat *c, bool bodies)
{
	struct mv_err err = MV_ERR_INIT;

	assert_int_equal(sqlite3_open(":memory:", &c->db), SQLITE_OK);
	assert_int_equal(mail_catalog_open(c->db, &c->cat, &err), 0);
	if (bodies)
		assert_int_equal(mail_catalog_keep_bodies(c->cat, &err), 0);
}

static void cat_close(struct cat *c)
{
	mail_catalog_close(c->cat);
	sqlite3_close(c->db);
}

static void cid_of(unsigned id, uint8_t *cid)
{
	for (unsigned k = 0; k < 32; k++) {
		uint64_t x = ((uint64_t)id << 8 | k) * 0x9e3779b97f4a7c15u;

		x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
		x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
		cid[k] = (uint8_t)(x ^ (x >> 31));
	}
}

/* Everything a catalogue answers, resolved to values (no row ids). */
static char *dump(sqlite3 *db)
{
	sqlite3_str *s = sqlite3_str_new(db);
	sqlite3_stmt *st = NULL;
	int i;

	assert_int_equal(
		sqlite3_prepare_v2(
			db,
			"SELECT hex(m.cid || c.key), m.date, m.size, m.layers,"
			" m.vsize, m.flags, m.message_id, m.from_, m.from_addr,"
			" m.to_, m.cc, m.subject, m.attachments, f.job,"
			" f.account, f.mailbox, p.n, p.name, s1.snap_id,"
			" s2.snap_id, s1.time FROM place p"
			" JOIN msg m ON m.id = p.msg"
			" JOIN msg_cid c ON c.msg = m.id"
			" JOIN folder f ON f.id = p.folder"
			" JOIN snap s1 ON s1.seq = p.first_snap"
			" LEFT JOIN snap s2 ON s2.seq = p.last_snap"
			" ORDER BY 1, 14, 15, 16, 19, 17",
			-1, &st, NULL),
		SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		for (i = 0; i < sqlite3_column_count(st); i++)
			sqlite3_str_appendf(
				s, "%s|",
				sqlite3_column_text(st, i)
					? (const char *)sqlite3_column_text(st,
									    i)
					: "NULL");
		sqlite3_str_appendall(s, "\n");
	}
	sqlite3_finalize(st);
	sqlite3_str_appendall(s, "."); /* never NULL, also when empty */
	return sqlite3_str_finish(s);
}

static int hit_cb(void *ctx, const struct mail_catalog_hit *h)
{
	sqlite3_str *s = ctx;

	sqlite3_str_appendf(s, "%s/%s/%s/%s %s..%s %d\n", h->job, h->account,
			    h->mailbox, h->name, h->first_snap, h->last_snap,
			    h->deleted);
	return 0;
}

static char *search(struct cat *c, const struct mail_catalog_query *q)
{
	struct mv_err err = MV_ERR_INIT;
	sqlite3_str *s = sqlite3_str_new(c->db);

	assert_true(mail_catalog_find(c->cat, q, hit_cb, s, &err) >= 0);
	return sqlite3_str_finish(s);
}

static void assert_same(struct cat *a, struct cat *b, bool bodies)
{
	static const char *words[] = {"alpha", "gamma", "Zoë", "Jürgen",
				      "report"};
	struct mail_catalog_query q;
	char *x = dump(a->db), *y = dump(b->db);
	size_t i;

	assert_non_null(x);
	if (strcmp(x, y)) {
		size_t k = 0;

		while (x[k] == y[k])
			k++;
		k = k > 200 ? k - 200 : 0;
		print_error("catalogues differ:\n%.400s\n----\n%.400s\n", x + k,
			    y + k);
		fail();
	}
	sqlite3_free(x);
	sqlite3_free(y);
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		memset(&q, 0, sizeof(q));
		if (bodies)
			q.text = words[i];
		else
			q.subject = words[i];
		x = search(a, &q);
		y = search(b, &q);
		assert_non_null(x);
		assert_true(strlen(x) > 0);
		assert_string_equal(x, y);
		sqlite3_free(x);
		sqlite3_free(y);
	}
	memset(&q, 0, sizeof(q));
	q.from = "Jürgen";
	q.deleted = true;
	x = search(a, &q);
	y = search(b, &q);
	assert_string_equal(x, y);
	sqlite3_free(x);
	sqlite3_free(y);
}

/* Where message i is on day d (folder index, or -1: not there). */
static int where(unsigned i, int d)
{
	int arrive = (int)(i * DAYS / POOL) - 5;

	if (d < arrive)
		return -1;
	if (i % 7 == 3 && d >= arrive + 10) /* deleted after ten days */
		return -1;
	if (i % 5 == 1 && d >= arrive + 4) /* refiled after four */
		return 2;
	return (int)(i % 2);
}

static void msg_of(unsigned i, struct mail_msg *m, char *subj, size_t n)
{
	static const char *from[] = {"Jürgen Weiß", "Zoë Martin", "Bob"};
	static const char *topic[] = {"alpha report", "gamma budget",
				      "Jürgen review", "Zoë notes"};

	memset(m, 0, sizeof(*m));
	snprintf(subj, n, "%s %u", topic[i % 4], i);
	m->from = (char *)from[i % 3];
	m->from_addr = (char *)(i % 3 == 2 ? "Bob" : "sender@example.org");
	m->to = (char *)"Carol <carol@example.org>";
	m->cc = i % 4 ? NULL : (char *)"dave@example.org";
	m->subject = subj;
	m->message_id = (char *)"<id@example.org>";
	m->date = 1700000000 + (int64_t)i * 3600;
	m->size = 1000 + i;
	m->body = (char *)(i % 2 ? "alpha gamma report Zoë Jürgen" : NULL);
}

/* Record day d of job into c (the way mail_view does), return its id. */
static void record_day(struct cat *c, const char *job, int d, char *snap_id)
{
	static const char *boxes[] = {"INBOX", "Archive/2024", "Trash"};
	struct mv_err err = MV_ERR_INIT;
	int64_t seq;
	unsigned i;

	snprintf(snap_id, 65, "%02x%062d", (unsigned)(d * 2 + (job[0] == 'b')),
		 d);
	assert_int_equal(mail_catalog_snapshot_begin(c->cat, job, NULL,
						     1700000000 + d * 86400,
						     &seq, &err),
			 0);
	for (i = 0; i < POOL; i++) {
		struct mail_msg m;
		char subj[64], name[MAIL_NAME_MAX + 1];
		uint8_t cid[32];
		int f = where(i, d);

		if (f < 0 || (job[0] == 'b' && i % 3))
			continue;
		cid_of(i, cid);
		msg_of(i, &m, subj, sizeof(subj));
		assert_int_equal(mail_catalog_add(c->cat, cid, 32, &m, &err),
				 0);
		if (i % 11 == 0) { /* named by the view: layers, vsize */
			sqlite3_stmt *st = NULL;

			assert_int_equal(
				sqlite3_prepare_v2(
					c->db,
					"INSERT INTO view (cid, date, from_,"
					" subject, size, layers) VALUES"
					" (?, 0, '', '', ?, ?)",
					-1, &st, NULL),
				SQLITE_OK);
			sqlite3_bind_blob(st, 1, cid, 32, SQLITE_STATIC);
			sqlite3_bind_int(st, 2, i % 2 ? 2000 : 1000 + (int)i);
			sqlite3_bind_int(st, 3, 1);
			assert_int_equal(sqlite3_step(st), SQLITE_DONE);
			sqlite3_finalize(st);
		}
		assert_int_equal(mail_name_format(m.date, m.from, m.subject,
						  cid, 16, name, sizeof(name)),
				 0);
		if (i % 13 == 0) { /* a second copy: the -2 variant */
			char var[MAIL_NAME_MAX + 1];

			assert_int_equal(mail_catalog_seen(c->cat, seq, cid, 32,
							   "acct", boxes[f],
							   name, &err),
					 0);
			assert_int_equal(
				mail_name_variant(name, 2, var, sizeof(var)),
				0);
			memcpy(name, var, sizeof(name));
		} else if (i % 17 == 0) { /* a name the columns do not give */
			snprintf(name, sizeof(name), "odd name %u.eml", i);
		}
		assert_int_equal(mail_catalog_seen(c->cat, seq, cid, 32,
						   i % 4 ? "acct" : "other",
						   boxes[f], name, &err),
				 0);
	}
	assert_int_equal(mail_catalog_snapshot_name(c->cat, seq, snap_id, &err),
			 0);
	assert_int_equal(mail_catalog_snapshot_end(c->cat, seq, &err), 0);
}

struct seg {
	struct mv_buf b;
	bool done;
};

static void apply_ok(struct cat *c, const struct seg *s, int want)
{
	struct mv_err err = MV_ERR_INIT;

	assert_int_equal(sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(catseg_apply(c->db, s->b.data, s->b.len, &err), want);
	assert_int_equal(sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL),
			 SQLITE_OK);
}

/* Two jobs, DAYS days each, with arrivals, refiles, deletions, variants
 * and stored names; the segments replayed in order and in reverse. */
static void test_catseg_replay_equals_recording(void **state)
{
	struct cat a, b, r;
	struct seg *segs = calloc(2 * DAYS, sizeof(*segs));
	struct mv_err err = MV_ERR_INIT;
	size_t nseg = 0, i, left;
	char id[65];
	int d;

	(void)state;
	cat_open(&a, true);
	cat_open(&b, false);
	cat_open(&r, false);
	for (d = 0; d < DAYS; d++) {
		record_day(&a, "alpha", d, id);
		assert_int_equal(catseg_build(a.db, id, &segs[nseg].b, &err),
				 0);
		apply_ok(&b, &segs[nseg++], 0);
		record_day(&a, "beta", d, id);
		assert_int_equal(catseg_build(a.db, id, &segs[nseg].b, &err),
				 0);
		apply_ok(&b, &segs[nseg++], 0);
	}
	assert_same(&a, &b, true);
	/* a segment applied twice is there already */
	apply_ok(&b, &segs[3], 1);
	/* in reverse: each waits for the one before it */
	for (left = nseg; left;) {
		for (i = nseg; i-- > 0;) {
			int rc;

			if (segs[i].done)
				continue;
			assert_int_equal(
				sqlite3_exec(r.db, "BEGIN", NULL, NULL, NULL),
				SQLITE_OK);
			rc = catseg_apply(r.db, segs[i].b.data, segs[i].b.len,
					  &err);
			assert_int_equal(
				sqlite3_exec(r.db, "COMMIT", NULL, NULL, NULL),
				SQLITE_OK);
			assert_true(rc == 0 || rc == -EAGAIN);
			if (!rc) {
				segs[i].done = true;
				left--;
			}
		}
	}
	assert_same(&a, &r, true);
	for (i = 0; i < nseg; i++)
		mv_buf_release(&segs[i].b);
	free(segs);
	cat_close(&a);
	cat_close(&b);
	cat_close(&r);
}

/* A base holds the whole catalogue (headers only) and replaces what the
 * catalogue it is applied to held; deltas follow on from it. */
static void test_catseg_base(void **state)
{
	struct cat a, b;
	struct seg base = {MV_BUF_INIT, false}, next = {MV_BUF_INIT, false};
	struct mv_err err = MV_ERR_INIT;
	struct catseg_head h;
	char id[65];
	int d;

	(void)state;
	cat_open(&a, false);
	cat_open(&b, false);
	for (d = 0; d < 20; d++)
		record_day(&a, "alpha", d, id);
	record_day(&b, "other", 0, id); /* replaced by the base */
	assert_int_equal(catseg_build_base(a.db, &base.b, &err), 0);
	assert_int_equal(catseg_peek(base.b.data, base.b.len, &h, &err), 0);
	assert_int_equal(h.kind, CATSEG_BASE);
	assert_true(h.made > 0);
	apply_ok(&b, &base, 0);
	assert_same(&a, &b, false);
	record_day(&a, "alpha", 20, id);
	assert_int_equal(catseg_build(a.db, id, &next.b, &err), 0);
	assert_int_equal(catseg_peek(next.b.data, next.b.len, &h, &err), 0);
	assert_int_equal(h.kind, CATSEG_DELTA);
	assert_string_equal(h.snap_id, id);
	assert_string_equal(h.job, "alpha");
	apply_ok(&b, &next, 0);
	assert_same(&a, &b, false);
	mv_buf_release(&base.b);
	mv_buf_release(&next.b);
	cat_close(&a);
	cat_close(&b);
}

/* Every cut of a segment, and junk, is refused and changes nothing. */
static void test_catseg_damaged(void **state)
{
	struct cat a, b;
	struct mv_buf seg = MV_BUF_INIT;
	struct mv_err err = MV_ERR_INIT;
	char id[65], *before, *after;
	size_t cut;

	(void)state;
	cat_open(&a, false);
	cat_open(&b, false);
	record_day(&a, "alpha", 0, id);
	record_day(&a, "alpha", 1, id);
	assert_int_equal(catseg_build_base(a.db, &seg, &err), 0);
	before = dump(b.db);
	for (cut = 0; cut < seg.len; cut += 1 + cut / 8) {
		mv_err_clear(&err);
		assert_int_equal(
			sqlite3_exec(b.db, "SAVEPOINT s", NULL, NULL, NULL),
			SQLITE_OK);
		assert_int_equal(catseg_apply(b.db, seg.data, cut, &err),
				 -EBADMSG);
		assert_int_equal(sqlite3_exec(b.db, "ROLLBACK TO s; RELEASE s",
					      NULL, NULL, NULL),
				 SQLITE_OK);
	}
	after = dump(b.db);
	assert_string_equal(before, after);
	sqlite3_free(before);
	sqlite3_free(after);
	mv_buf_release(&seg);
	cat_close(&a);
	cat_close(&b);
}

/* The day-1 segment's size per message, the figure FORMAT-2 budgets
 * (<= 100 B/msg stored): here raw, before zstd. */
static void test_catseg_bytes_per_message(void **state)
{
	struct cat a;
	struct mv_buf seg = MV_BUF_INIT;
	struct mv_err err = MV_ERR_INIT;
	char id[65];

	(void)state;
	cat_open(&a, false);
	record_day(&a, "alpha", DAYS, id); /* every message there */
	assert_int_equal(catseg_build(a.db, id, &seg, &err), 0);
	print_message("day-1 segment: %zu bytes raw for %d messages\n", seg.len,
		      POOL);
	assert_true(seg.len / POOL < 260);
	mv_buf_release(&seg);
	cat_close(&a);
}

static uint64_t fnv(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325u;

	while (n--)
		h = (h ^ *b++) * 0x100000001b3u;
	return h;
}

/* A fixed catalogue gives fixed segment bytes, and replaying them a
 * fixed catalogue: the encoding is the stored format, and a change to
 * the code that writes or reads message rows must not change it. */
static void test_catseg_fixed_bytes(void **state)
{
	struct cat a, b;
	struct seg s[3];
	struct mv_err err = MV_ERR_INIT;
	uint64_t h = 0;
	char id[65], *d;
	int i;

	(void)state;
	cat_open(&a, true);
	cat_open(&b, false);
	for (i = 0; i < 3; i++) {
		s[i].b = (struct mv_buf)MV_BUF_INIT;
		record_day(&a, "alpha", 10 * i + 5, id);
		assert_int_equal(catseg_build(a.db, id, &s[i].b, &err), 0);
		h = h * 31 + fnv(s[i].b.data, s[i].b.len);
		apply_ok(&b, &s[i], 0);
	}
	d = dump(b.db);
	print_message("fixed segments: %zu %zu %zu bytes, fnv %016llx, "
		      "replayed %016llx\n",
		      s[0].b.len, s[1].b.len, s[2].b.len, (unsigned long long)h,
		      (unsigned long long)fnv(d, strlen(d)));
	assert_int_equal(h, FIXED_SEGS);
	assert_int_equal(fnv(d, strlen(d)), FIXED_DUMP);
	sqlite3_free(d);
	for (i = 0; i < 3; i++)
		mv_buf_release(&s[i].b);
	cat_close(&a);
	cat_close(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_catseg_replay_equals_recording),
		cmocka_unit_test(test_catseg_base),
		cmocka_unit_test(test_catseg_damaged),
		cmocka_unit_test(test_catseg_bytes_per_message),
		cmocka_unit_test(test_catseg_fixed_bytes),
	};

	return cmocka_run_group_tests_name("catseg", tests, NULL, NULL);
}
