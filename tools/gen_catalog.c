/*
 * gen_catalog: fill a mail catalogue (catalog.db) with a year of daily
 * snapshots through mail_catalog, as that many backups would, without
 * making the backups; then time mail_catalog_find() on it.  For the
 * `mailvault find` speed target (365 snapshots, 100k distinct messages).
 *
 *   gen_catalog [-m MESSAGES] [-d DAYS] [-a ACCOUNTS] [-q] DB
 *
 * Messages: 60% present from day 1, the rest arriving evenly over the
 * days; 5% deleted on a later day, 2% moved to another mailbox once.  Each
 * day every present message is recorded with mail_catalog_seen(), exactly
 * what a backup does.  Then a few typical queries are timed (best of 5,
 * in-process) and printed.  Exit 0, 1 on error, 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "mail_catalog.h"
#include "mail_msg.h"

static const char *const names[] = {
	"Alice Example", "Bob Builder", "Jürgen Müller", "Zoë Quinn",
	"Carol Danvers", "Dave Null",	"Eve Mallory",	 "Frank Ocean"};
static const char *const words[] = {
	"report", "invoice", "meeting", "lunch",  "project", "budget",
	"review", "draft",   "holiday", "server", "backup",  "quarterly",
};
static const char *const boxes[] = {"INBOX", "Sent", "Archive/2024", "Projects",
				    "Trash"};

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void cid_of(uint32_t i, uint8_t cid[32])
{
	for (int k = 0; k < 4; k++) {
		uint64_t v = mix((uint64_t)i * 4 + (uint64_t)k);

		memcpy(cid + 8 * k, &v, 8);
	}
}

struct m {
	uint16_t first, last; /* days present, inclusive */
	uint16_t moved;	      /* day of the move, 0 = never */
	uint8_t box, box2, account;
};

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int count_hit(void *ctx, const struct mail_catalog_hit *h)
{
	(void)h;
	(*(unsigned long *)ctx)++;
	return 0;
}

static int timed(struct mail_catalog *cat, const char *what,
		 const struct mail_catalog_query *q)
{
	struct mv_err err = MV_ERR_INIT;
	unsigned long hits = 0;
	double best = 1e9;

	for (int k = 0; k < 5; k++) {
		double t0 = now();

		hits = 0;
		if (mail_catalog_find(cat, q, count_hit, &hits, &err) < 0) {
			fprintf(stderr, "gen_catalog: %s\n", mv_err_msg(&err));
			return -1;
		}
		if (now() - t0 < best)
			best = now() - t0;
	}
	printf("find %-28s %6lu hits %8.1f ms\n", what, hits, best * 1e3);
	return 0;
}

int main(int argc, char **argv)
{
	struct mv_err err = MV_ERR_INIT;
	struct mail_catalog *cat = NULL;
	struct mail_catalog_query q;
	unsigned nmsg = 100000, days = 365, naccounts = 20;
	struct m *ms;
	sqlite3 *db = NULL;
	double t0;
	int c, rc = 1;
	bool quiet = false;

	while ((c = getopt(argc, argv, "m:d:a:q")) != -1) {
		if (c == 'm')
			nmsg = (unsigned)strtoul(optarg, NULL, 10);
		else if (c == 'd')
			days = (unsigned)strtoul(optarg, NULL, 10);
		else if (c == 'a')
			naccounts = (unsigned)strtoul(optarg, NULL, 10);
		else if (c == 'q')
			quiet = true;
		else
			return 2;
	}
	if (optind + 1 != argc || !nmsg || !days || days > 60000 ||
	    !naccounts || naccounts > 200) {
		fprintf(stderr, "usage: gen_catalog [-m MESSAGES] [-d DAYS] "
				"[-a ACCOUNTS] [-q] DB\n");
		return 2;
	}
	ms = calloc(nmsg, sizeof(*ms));
	if (!ms)
		return 1;
	for (unsigned i = 0; i < nmsg; i++) {
		uint64_t r = mix(i ^ 0x5eed);

		ms[i].first = (uint16_t)(i % 10 < 6 ? 1 : 1 + r % days);
		ms[i].last = (uint16_t)days;
		if (r % 100 < 5 && ms[i].first < days)
			ms[i].last =
				(uint16_t)(ms[i].first +
					   (r >> 8) % (days - ms[i].first));
		ms[i].box = (uint8_t)((r >> 16) % 5);
		ms[i].account = (uint8_t)((r >> 24) % naccounts);
		if ((r >> 32) % 100 < 2 && ms[i].last > ms[i].first) {
			ms[i].moved = (uint16_t)(ms[i].first + 1 +
						 (r >> 40) % (ms[i].last -
							      ms[i].first));
			ms[i].box2 = (uint8_t)((ms[i].box + 1) % 5);
		}
	}
	unlink(argv[optind]);
	if (sqlite3_open(argv[optind], &db) != SQLITE_OK)
		goto out;
	sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
		     NULL, NULL, NULL);
	if (mail_catalog_open(db, &cat, &err))
		goto fail;
	t0 = now();
	for (unsigned d = 1; d <= days; d++) {
		char snap[65];
		int64_t seq;

		snprintf(snap, sizeof(snap), "%064x", d);
		if (mail_catalog_snapshot_begin(cat, "mail", snap,
						1717200000 + (int64_t)d * 86400,
						&seq, &err))
			goto fail;
		for (unsigned i = 0; i < nmsg; i++) {
			struct m *x = &ms[i];
			char acc[64], name[256], from[64], subj[96];
			uint8_t cid[32];

			if (d < x->first || d > x->last)
				continue;
			cid_of(i, cid);
			snprintf(acc, sizeof(acc), "user%u@example.org",
				 x->account);
			snprintf(from, sizeof(from), "%s", names[mix(i) % 8]);
			snprintf(subj, sizeof(subj), "%s %s #%u",
				 words[mix(i + 1) % 12], words[mix(i + 2) % 12],
				 i);
			snprintf(name, sizeof(name),
				 "2024-05-01 1200 %s - %s [%08x].eml", from,
				 subj, i);
			if (d == x->first) {
				struct mail_msg mm;
				char to[64], mid[64];

				memset(&mm, 0, sizeof(mm));
				snprintf(to, sizeof(to), "%s", acc);
				snprintf(mid, sizeof(mid), "m%u@example.org",
					 i);
				mm.message_id = mid;
				mm.from = from;
				mm.to = to;
				mm.subject = subj;
				mm.date = 1640995200 +
					  (int64_t)(mix(i) % 80000000);
				mm.size = 2000 + mix(i) % 100000;
				if (mail_catalog_add(cat, cid, 32, &mm, &err))
					goto fail;
			}
			if (mail_catalog_seen(
				    cat, seq, cid, 32, acc,
				    boxes[x->moved && d >= x->moved ? x->box2
								    : x->box],
				    name, &err))
				goto fail;
		}
		if (mail_catalog_snapshot_end(cat, seq, &err))
			goto fail;
		if (!quiet && d % 30 == 0)
			fprintf(stderr, "day %u/%u, %.0f s\n", d, days,
				now() - t0);
	}
	printf("filled %u messages x %u snapshots in %.1f s\n", nmsg, days,
	       now() - t0);
	{
		sqlite3_stmt *st;

		if (sqlite3_prepare_v2(db,
				       "SELECT (SELECT count(*) FROM msg),"
				       " (SELECT count(*) FROM place)",
				       -1, &st, NULL) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW)
			printf("rows: msg %lld, place %lld\n",
			       (long long)sqlite3_column_int64(st, 0),
			       (long long)sqlite3_column_int64(st, 1));
		sqlite3_finalize(st);
	}
	memset(&q, 0, sizeof(q));
	q.from = "Jürgen";
	q.limit = 50;
	if (timed(cat, "--from Jürgen --limit 50", &q))
		goto out;
	memset(&q, 0, sizeof(q));
	q.subject = "quarterly budget";
	if (timed(cat, "--subject 'quarterly budget'", &q))
		goto out;
	memset(&q, 0, sizeof(q));
	q.from = "Zoë";
	q.account = "user3@example.org";
	if (timed(cat, "--from Zoë --account user3", &q))
		goto out;
	memset(&q, 0, sizeof(q));
	q.deleted = true;
	q.job = "mail";
	q.limit = 100;
	if (timed(cat, "--deleted --limit 100", &q))
		goto out;
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "gen_catalog: %s\n", mv_err_msg(&err));
out:
	mail_catalog_close(cat);
	sqlite3_close(db);
	free(ms);
	return rc;
}
