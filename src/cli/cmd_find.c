/* mailvault find: search the mail catalogue. */
#include <errno.h>
#include <getopt.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catseg.h"
#include "cli.h"
#include "index.h"
#include "mail_catalog.h"
#include "mail_view.h"
#include "repo.h"
#include "snapshot.h"

static const char usage[] =
	"usage: mailvault find [REPO] [--from X] [--to X] [--subject X] "
	"[--text X]\n"
	"                      [--since D] [--until D] [--account A] "
	"[--name JOB]\n"
	"                      [--snapshot SNAP] [--deleted] [--limit N] "
	"[--json]\n"
	"                      [--rebuild]\n";

struct find_ctx {
	struct snapshot *list; /* to turn snapshot ids into mount names */
	size_t n;
	bool json;
	unsigned long hits;
};

static const char *snap_dir(struct find_ctx *c, const char *hex, char *out,
			    size_t n)
{
	uint8_t id[MV_ID_LEN];

	if (mv_unhex(hex, id, MV_ID_LEN) == 0)
		for (size_t i = 0; i < c->n; i++)
			if (!memcmp(c->list[i].id, id, MV_ID_LEN)) {
				snapshot_shown_name(c->list, i, out, n);
				return out;
			}
	snprintf(out, n, "(forgotten %.12s)", hex);
	return out;
}

static int on_hit(void *arg, const struct mail_catalog_hit *h)
{
	struct find_ctx *c = arg;
	char first[64], last[64], path[4096];

	snap_dir(c, h->first_snap, first, sizeof(first));
	snap_dir(c, h->last_snap, last, sizeof(last));
	snprintf(path, sizeof(path), "%s/%s/%s/%s/%s/%s", h->job, last,
		 MAIL_VIEW_DIR, h->account, h->mailbox, h->name);
	c->hits++;
	if (c->json) {
		printf("{\"path\":");
		cli_json_str(path);
		printf(",\"first\":");
		cli_json_str(first);
		printf(",\"last\":");
		cli_json_str(last);
		printf(",\"deleted\":%s,\"date\":%lld,\"size\":%lld,"
		       "\"account\":",
		       h->deleted ? "true" : "false", (long long)h->date,
		       (long long)h->size);
		cli_json_str(h->account);
		printf(",\"mailbox\":");
		cli_json_str(h->mailbox);
		printf(",\"from\":");
		cli_json_str(h->from);
		printf(",\"subject\":");
		cli_json_str(h->subject);
		printf(",\"message_id\":");
		cli_json_str(h->message_id);
		printf("}\n");
		return 0;
	}
	printf("%s\n    in %s .. %s%s\n", path, first, last,
	       h->deleted ? "  (deleted since)" : "");
	return 0;
}

static int parse_day(const char *s, int64_t *out)
{
	int64_t ns;

	if (mv_time_parse(s, &ns))
		return -1;
	*out = ns / 1000000000;
	return 0;
}

/* 1 when the catalogue has recorded no snapshot, 0 otherwise. */
static int catalogue_empty(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int empty = 1;

	if (sqlite3_prepare_v2(db, "SELECT 1 FROM snap LIMIT 1", -1, &st,
			       NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		empty = 0;
	sqlite3_finalize(st);
	return empty;
}

/* Say what the catalogue misses: 1 when it misses something (a warning
 * printed, find exits MV_EXIT_WARN), 0 when it is whole. */
static int report_gaps(const struct catseg_sync_stats *st, unsigned missing,
		       const char *first_missing)
{
	if (!st->damaged && !st->stuck && !missing)
		return 0;
	if (st->damaged || st->stuck)
		fprintf(stderr,
			"mailvault: warning: %u catalogue segments of the "
			"repository cannot be read and %u do not follow on "
			"from the ones before them (%s)\n",
			st->damaged, st->stuck, st->problem);
	if (missing)
		fprintf(stderr,
			"mailvault: warning: %u snapshots with a mail view "
			"are not in the catalogue (the first: %s)\n",
			missing, first_missing);
	fprintf(stderr, "mailvault: warning: search misses those snapshots; "
			"'mailvault find --rebuild' rebuilds the catalogue "
			"from the snapshots\n");
	return 1;
}

/* The local catalogue (the private cache, or beside a local unencrypted
 * index), brought up to date with the repository's catalogue segments:
 * a fresh machine gets the whole catalogue here.  With rebuild, it is
 * rebuilt from the snapshots' mail views and stored in the repository
 * again.  A catalogue the user cannot write (a repository of another
 * user) is read as it is.  *gaps: 1 when the catalogue misses snapshots
 * (reported). */
static int open_catalogue(struct repo *r, char *path, bool rebuild,
			  const struct find_ctx *ctx, sqlite3 **db,
			  struct mail_catalog **cat, int *gaps,
			  struct mv_err *err)
{
	char *slash = strrchr(path, '/');
	bool rw = true;
	int rc;

	*gaps = 0;
	if (slash) {
		*slash = '\0';
		rc = mv_mkdir_p(path, 0700);
		*slash = '/';
		if (!rc)
			rc = mv_create_private(path);
		if (rc)
			rw = false;
	}
	if (!rw && access(path, R_OK) < 0)
		return mv_err_set(err, -ENOENT,
				  "no mail catalogue at '%s' and none can be "
				  "made there: %s",
				  path, strerror(errno));
	if (sqlite3_open_v2(path, db,
			    rw ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY,
			    NULL) != SQLITE_OK)
		return mv_err_set(err, -EIO, "cannot open catalogue '%s': %s",
				  path, *db ? sqlite3_errmsg(*db) : "");
	rc = index_sqlite_defend(*db, "catalogue", err);
	if (rc)
		return rc;
	sqlite3_busy_timeout(*db, 10000);
	if (rw)
		sqlite3_exec(*db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
	rc = mail_catalog_open(*db, cat, err);
	if (rc)
		return rc;
	if (!rw || sqlite3_db_readonly(*db, "main") == 1) {
		if (rebuild)
			return mv_err_set(err, -EACCES,
					  "cannot rebuild the catalogue: '%s' "
					  "is read-only",
					  path);
		return catalogue_empty(*db)
			       ? mv_err_set(err, -ENOENT,
					    "no mail catalogue at '%s'", path)
			       : 0;
	}
	if (rebuild) {
		struct catseg_rebuild_stats rs;

		rc = catseg_rebuild(r, *db, *cat, &rs, err);
		if (rc)
			return rc;
		fprintf(stderr,
			"rebuilt the mail catalogue from %u snapshots: %llu "
			"places, %llu messages read again (%u segments "
			"unreadable, %u not following on), one base "
			"segment in place of %u\n",
			rs.snapshots, (unsigned long long)rs.places,
			(unsigned long long)rs.parsed, rs.sync.damaged,
			rs.sync.stuck, rs.removed);
		if (rs.unreadable) {
			fprintf(stderr,
				"mailvault: warning: %llu messages could not "
				"be read and are not in the catalogue (%s)\n",
				(unsigned long long)rs.unreadable, rs.problem);
			*gaps = 1;
		}
	} else {
		struct catseg_sync_stats st;
		unsigned missing = 0;
		char first[128];

		rc = catseg_sync(r, *db, &st, err);
		if (!rc)
			rc = catseg_missing(r, *db, ctx->list, ctx->n, &missing,
					    first, sizeof(first), err);
		if (rc)
			return rc;
		*gaps = report_gaps(&st, missing, first);
	}
	if (catalogue_empty(*db) && !*gaps)
		return mv_err_set(err, -ENOENT,
				  "no mail catalogue in '%s' yet (no backup "
				  "with the mail view stored one)",
				  repo_location(r));
	return 0;
}

int cmd_find(int argc, char **argv)
{
	static const struct option opts[] = {
		{"from", required_argument, NULL, 'f'},
		{"to", required_argument, NULL, 't'},
		{"subject", required_argument, NULL, 's'},
		{"text", required_argument, NULL, 'x'},
		{"since", required_argument, NULL, 'S'},
		{"until", required_argument, NULL, 'U'},
		{"account", required_argument, NULL, 'a'},
		{"name", required_argument, NULL, 'n'},
		{"snapshot", required_argument, NULL, 'p'},
		{"deleted", no_argument, NULL, 'd'},
		{"limit", required_argument, NULL, 'l'},
		{"json", no_argument, NULL, 'j'},
		{"rebuild", no_argument, NULL, 'R'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct mv_err err = MV_ERR_INIT;
	struct mail_catalog_query q;
	struct mail_catalog *cat = NULL;
	struct find_ctx ctx;
	struct snapshot snap;
	struct repo *r = NULL;
	sqlite3 *db = NULL;
	const char *repo = NULL, *snap_spec = NULL;
	char path[4096], snap_hex[2 * MV_ID_LEN + 1];
	int c, rc, gaps = 0, ret = MV_EXIT_FAIL;
	bool rebuild = false;

	memset(&q, 0, sizeof(q));
	memset(&ctx, 0, sizeof(ctx));
	memset(&snap, 0, sizeof(snap));
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			q.from = optarg;
			break;
		case 't':
			q.to = optarg;
			break;
		case 's':
			q.subject = optarg;
			break;
		case 'x':
			q.text = optarg;
			break;
		case 'S':
		case 'U':
			if (parse_day(optarg, c == 'S' ? &q.since : &q.until))
				return cli_usage("find",
						 "cannot parse date "
						 "'%s' (use 2024-05-01 or "
						 "2024-05-01T12:00:00Z)",
						 optarg);
			if (c == 'S')
				q.has_since = true;
			else
				q.has_until = true;
			break;
		case 'a':
			q.account = optarg;
			break;
		case 'n':
			q.job = optarg;
			break;
		case 'p':
			snap_spec = optarg;
			break;
		case 'd':
			q.deleted = true;
			break;
		case 'l':
			q.limit = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'j':
			ctx.json = true;
			break;
		case 'R':
			rebuild = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return MV_EXIT_OK;
		default:
			fputs(usage, stderr);
			return MV_EXIT_USAGE;
		}
	}
	if (optind < argc)
		repo = argv[optind++];
	if (optind < argc)
		return cli_usage("find", "unexpected argument '%s'",
				 argv[optind]);
	repo = cli_repo_arg(repo);
	if (!repo)
		return cli_usage("find", "no repository given (argument or "
					 "MAILVAULT_REPO)");
	/* a rebuild stores a base and removes the segments it replaces:
	 * as prune does, under the writer lock */
	rc = repo_open(repo, rebuild ? REPO_OPEN_WRITE : REPO_OPEN_READ, &r,
		       &err);
	if (!rc)
		rc = snapshot_list(r, &ctx.list, &ctx.n, &err);
	if (!rc && snap_spec) {
		rc = snapshot_resolve(r, snap_spec, &snap, &err);
		if (!rc) {
			mv_hex(snap.id, MV_ID_LEN, snap_hex);
			q.snapshot = snap_hex;
			if (!q.job)
				q.job = snap.name;
		}
	}
	if (!rc)
		rc = mail_view_catalog_path(r, path, sizeof(path), &err);
	if (!rc)
		rc = open_catalogue(r, path, rebuild, &ctx, &db, &cat, &gaps,
				    &err);
	if (rc)
		goto fail;
	rc = mail_catalog_find(cat, &q, on_hit, &ctx, &err);
	if (rc < 0)
		goto fail;
	if (!ctx.json && !ctx.hits)
		fprintf(stderr, "no messages found\n");
	/* an answer that may miss snapshots is not a plain yes or no */
	ret = gaps ? MV_EXIT_WARN : ctx.hits ? MV_EXIT_OK : MV_EXIT_FAIL;
	goto out;
fail:
	ret = cli_fail(&err);
out:
	mail_catalog_close(cat);
	if (db)
		sqlite3_close(db);
	snapshot_release(&snap);
	snapshot_list_free(ctx.list, ctx.n);
	repo_close(r);
	return ret;
}
