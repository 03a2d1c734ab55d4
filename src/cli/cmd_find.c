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

/* The local catalogue (the private cache, or beside a local unencrypted
 * index), brought up to date with the repository's catalogue segments:
 * a fresh machine gets the whole catalogue here.  With rebuild, every
 * segment is replayed from the start.  A catalogue the user cannot
 * write (a repository of another user) is read as it is. */
static int open_catalogue(struct repo *r, char *path, bool rebuild,
			  sqlite3 **db, struct mail_catalog **cat,
			  struct mv_err *err)
{
	struct catseg_sync_stats st;
	char *slash = strrchr(path, '/');
	bool rw = true;
	int rc;

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
	if (!rw || sqlite3_db_readonly(*db, "main") == 1)
		return catalogue_empty(*db)
			       ? mv_err_set(err, -ENOENT,
					    "no mail catalogue at '%s'", path)
			       : 0;
	if (rebuild)
		rc = catseg_reset(*db, err);
	if (!rc)
		rc = catseg_sync(r, *db, &st, err);
	if (rc)
		return rc;
	if (st.damaged || st.stuck)
		fprintf(stderr,
			"mailvault: warning: %u catalogue segments of the "
			"repository cannot be read and %u do not follow on "
			"from the ones before them: search misses their "
			"snapshots\n",
			st.damaged, st.stuck);
	if (catalogue_empty(*db))
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
	int c, rc, ret = MV_EXIT_FAIL;
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
	rc = repo_open(repo, REPO_OPEN_READ, &r, &err);
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
		rc = open_catalogue(r, path, rebuild, &db, &cat, &err);
	if (rc)
		goto fail;
	rc = mail_catalog_find(cat, &q, on_hit, &ctx, &err);
	if (rc < 0)
		goto fail;
	if (!ctx.json && !ctx.hits)
		fprintf(stderr, "no messages found\n");
	ret = ctx.hits ? MV_EXIT_OK : MV_EXIT_FAIL;
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
