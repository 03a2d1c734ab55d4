/*
 * mailvault prune: give back the space that forgotten snapshots held
 * (docs/LIFECYCLE.md).
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lifecycle.h"
#include "repo.h"
#include "util.h"

/* A count of seconds, 0 or more. */
static int parse_seconds(const char *s, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (end == s || *end || errno || v < 0)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_percent(const char *s, double *out)
{
	char *end;
	double v;

	if (!strcmp(s, "unlimited")) {
		*out = -1;
		return 0;
	}
	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno || !isfinite(v))
		return -EINVAL;
	if (*end == '%')
		end++;
	if (*end || v < 0 || v > 100)
		return -EINVAL;
	*out = v;
	return 0;
}

struct report_ctx {
	bool verbose;
};

static void report(const char *kind, const char *msg, void *arg)
{
	struct report_ctx *c = arg;

	if (!strcmp(kind, "info") && !c->verbose)
		return;
	fprintf(stderr, "%s: %s\n", kind, msg);
}

static void size(uint64_t n, char *out, size_t len)
{
	mv_human_size(n, out, len);
}

/* --json: the plan (--dry-run) or what was done, as one object. */
static void print_json(const struct prune_opts *o,
		       const struct prune_result *res)
{
	json_t *j = json_object();

	if (!j) {
		cli_json_out(NULL);
		return;
	}
	json_object_set_new(j, "dry_run", json_boolean(o->dry_run));
#define SET(k) json_object_set_new(j, #k, json_integer((json_int_t)res->k))
	SET(snapshots);
	SET(live_chunks);
	SET(missing_chunks);
	SET(packs);
	SET(pack_bytes);
	SET(live_bytes);
	SET(unused_bytes);
	SET(deleted_packs);
	SET(deleted_bytes);
	SET(repacked_packs);
	SET(repacked_bytes);
	SET(moved_records);
	SET(moved_bytes);
	SET(dropped_records);
	SET(orphans);
	SET(orphan_bytes);
	SET(young_orphans);
	SET(tombstoned);
	SET(after_bytes);
	SET(after_unused);
#undef SET
	json_object_set_new(
		j, "reclaimed_bytes",
		json_integer((json_int_t)(res->pack_bytes + res->orphan_bytes -
					  res->after_bytes)));
	cli_json_out(j);
}

int cmd_prune(int argc, char **argv)
{
	static const struct option opts[] = {
		{"dry-run", no_argument, NULL, 'n'},
		{"max-unused", required_argument, NULL, 'u'},
		{"orphan-grace", required_argument, NULL, 'g'},
		{"wait", no_argument, NULL, 'w'},
		{"verbose", no_argument, NULL, 'v'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct prune_opts o = {false, PRUNE_MAX_UNUSED_DEFAULT,
			       PRUNE_ORPHAN_GRACE_DEFAULT};
	const char *grace = getenv("MAILVAULT_PRUNE_GRACE");
	struct report_ctx rc_ = {false};
	struct mv_err err = MV_ERR_INIT;
	struct prune_result res;
	struct repo *r = NULL;
	const char *repo;
	unsigned flags = REPO_OPEN_WRITE;
	char a[32], b[32], d[32];
	bool json = false;
	int c, rc;

	if (grace && *grace && parse_seconds(grace, &o.orphan_grace))
		return cli_usage("prune",
				 "bad MAILVAULT_PRUNE_GRACE '%s': give "
				 "seconds",
				 grace);
	while ((c = getopt_long(argc, argv, "hnv", opts, NULL)) != -1) {
		switch (c) {
		case 'g':
			if (parse_seconds(optarg, &o.orphan_grace))
				return cli_usage("prune",
						 "bad --orphan-grace '%s': "
						 "give seconds, 0 or more",
						 optarg);
			break;
		case 'n':
			o.dry_run = true;
			break;
		case 'u':
			if (parse_percent(optarg, &o.max_unused))
				return cli_usage("prune",
						 "bad --max-unused "
						 "'%s': give a percentage "
						 "from 0 to 100 or "
						 "'unlimited'",
						 optarg);
			break;
		case 'w':
			flags |= REPO_OPEN_WAIT;
			break;
		case 'v':
			rc_.verbose = true;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			cli_help_print("prune", stdout);
			return MV_EXIT_OK;
		default:
			return cli_usage("prune", "unknown option");
		}
	}
	if (argc - optind > 1)
		return cli_usage("prune", "unexpected argument '%s'",
				 argv[optind + 1]);
	repo = cli_repo_arg(optind < argc ? argv[optind] : NULL);
	if (!repo)
		return cli_usage("prune", "give REPO (or set MAILVAULT_REPO)");
	if (repo_open(repo, flags, &r, &err))
		return cli_fail(&err);
	rc = lifecycle_prune(r, &o, report, &rc_, &res, &err);
	repo_close(r);
	if (rc)
		return cli_fail(&err);
	if (json) {
		print_json(&o, &res);
		return MV_EXIT_OK;
	}
	size(res.pack_bytes, a, sizeof(a));
	size(res.live_bytes, b, sizeof(b));
	printf("%llu snapshots reach %llu chunks; %llu packs hold %s, %s of "
	       "it in use\n",
	       (unsigned long long)res.snapshots,
	       (unsigned long long)res.live_chunks,
	       (unsigned long long)res.packs, a, b);
	size(res.deleted_bytes, a, sizeof(a));
	printf("%s %llu unused packs (%s)\n",
	       o.dry_run ? "would delete" : "deleted",
	       (unsigned long long)res.deleted_packs, a);
	size(res.repacked_bytes, a, sizeof(a));
	size(res.moved_bytes, b, sizeof(b));
	printf("%s %llu packs (%s), keeping %llu records (%s)\n",
	       o.dry_run ? "would repack" : "repacked",
	       (unsigned long long)res.repacked_packs, a,
	       (unsigned long long)res.moved_records, b);
	if (res.orphans) {
		size(res.orphan_bytes, a, sizeof(a));
		printf("%s %llu files not in the index (%s)\n",
		       o.dry_run ? "would remove" : "removed",
		       (unsigned long long)res.orphans, a);
	}
	if (res.young_orphans)
		printf("left %llu files not in the index that are younger "
		       "than %lld s (a backup may still be writing them)\n",
		       (unsigned long long)res.young_orphans,
		       (long long)o.orphan_grace);
	if (res.tombstoned)
		printf("recorded %llu forgotten snapshots for rebuild-index\n",
		       (unsigned long long)res.tombstoned);
	size(res.pack_bytes + res.orphan_bytes - res.after_bytes, a, sizeof(a));
	size(res.after_bytes, b, sizeof(b));
	size(res.after_unused, d, sizeof(d));
	printf("%s %s; repository %s %s, %s of it unused\n",
	       o.dry_run ? "would reclaim" : "reclaimed", a,
	       o.dry_run ? "would be" : "is now", b, d);
	return MV_EXIT_OK;
}
