/*
 * mailvault forget: remove the snapshots a retention policy does not keep,
 * job by job (docs/RETENTION.md).  The space they held comes back with
 * `mailvault prune`.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lifecycle.h"
#include "policy.h"
#include "repo.h"
#include "snapshot.h"
#include "util.h"

static const char usage[] =
	"usage: mailvault forget [--name NAME] [--keep-last N] "
	"[--keep-minutely N]\n"
	"                        [--keep-hourly N] [--keep-daily N] "
	"[--keep-weekly N]\n"
	"                        [--keep-monthly N] [--keep-yearly N] "
	"[--keep-within DURATION]\n"
	"                        [--dry-run] [--list] [--json] [--wait] "
	"[REPO]\n"
	"N: a count, -1 for no limit; DURATION: <N>H|d|w|m|y (m = 31 days, "
	"y = 365 days)\n";

enum {
	OPT_NAME = 1000,
	OPT_DRY_RUN,
	OPT_LIST,
	OPT_JSON,
	OPT_WAIT,
	OPT_KEEP,
};

struct forget_opts {
	struct policy policy;
	const char *name; /* only this job, or NULL for every job */
	bool dry_run;
	bool list;
	bool json;
	bool wait; /* wait for a running backup instead of failing */
};

/* One job's snapshots: a run of the name-ordered list. */
struct job {
	struct snapshot *snaps; /* borrowed from the list */
	struct policy_item *items;
	size_t n;
	size_t kept, removed;
};

static int parse_args(int argc, char **argv, struct forget_opts *o,
		      const char **out_repo)
{
	static const struct option opts[] = {
		{"name", required_argument, NULL, OPT_NAME},
		{"keep-last", required_argument, NULL, OPT_KEEP},
		{"keep-secondly", required_argument, NULL, OPT_KEEP},
		{"keep-minutely", required_argument, NULL, OPT_KEEP},
		{"keep-hourly", required_argument, NULL, OPT_KEEP},
		{"keep-daily", required_argument, NULL, OPT_KEEP},
		{"keep-weekly", required_argument, NULL, OPT_KEEP},
		{"keep-monthly", required_argument, NULL, OPT_KEEP},
		{"keep-yearly", required_argument, NULL, OPT_KEEP},
		{"keep-within", required_argument, NULL, OPT_KEEP},
		{"dry-run", no_argument, NULL, OPT_DRY_RUN},
		{"list", no_argument, NULL, OPT_LIST},
		{"json", no_argument, NULL, OPT_JSON},
		{"wait", no_argument, NULL, OPT_WAIT},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct mv_err err = MV_ERR_INIT;
	int c, idx = 0;

	while ((c = getopt_long(argc, argv, "hn", opts, &idx)) != -1) {
		switch (c) {
		case OPT_NAME:
			o->name = optarg;
			break;
		case OPT_KEEP:
			if (policy_set_option(&o->policy, opts[idx].name,
					      optarg, &err) < 0)
				return cli_usage("forget", "%s",
						 mv_err_msg(&err));
			break;
		case 'n':
		case OPT_DRY_RUN:
			o->dry_run = true;
			break;
		case OPT_LIST:
			o->list = true;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_WAIT:
			o->wait = true;
			break;
		case 'h':
			cli_help_print("forget", stdout);
			return MV_EXIT_OK;
		default:
			fputs(usage, stderr);
			return MV_EXIT_USAGE;
		}
	}
	if (policy_validate(&o->policy, &err) < 0)
		return cli_usage("forget", "%s", mv_err_msg(&err));
	if (argc - optind > 1)
		return cli_usage("forget", "unexpected argument '%s'",
				 argv[optind + 1]);
	*out_repo = cli_repo_arg(optind < argc ? argv[optind] : NULL);
	if (!*out_repo)
		return cli_usage("forget", "give REPO (or set MAILVAULT_REPO)");
	return -1; /* go on */
}

static int job_decide(const struct forget_opts *o, struct job *j, int64_t now,
		      struct mv_err *err)
{
	size_t i;
	int rc;

	j->items = calloc(j->n, sizeof(*j->items));
	if (!j->items)
		return mv_err_set(err, -ENOMEM, "out of memory");
	for (i = 0; i < j->n; i++) {
		j->items[i].time_ns = j->snaps[i].time_ns;
		j->items[i].partial = j->snaps[i].partial;
	}
	rc = policy_apply(&o->policy, j->items, j->n, now, err);
	if (rc < 0)
		return mv_err_prefix(err, "job '%s'", j->snaps[0].name);
	for (i = 0; i < j->n; i++) {
		if (j->items[i].kept_by)
			j->kept++;
		else
			j->removed++;
	}
	return 0;
}

/* True when the job has complete snapshots but the policy keeps none of
 * them (only --keep-within and no recent backup). */
static bool job_loses_all(const struct job *j)
{
	bool any = false;
	size_t i;

	for (i = 0; i < j->n; i++) {
		if (j->items[i].partial)
			continue;
		if (j->items[i].kept_by)
			return false;
		any = true;
	}
	return any;
}

static void print_list(const struct job *j)
{
	char reason[48], dir[64], id[2 * MV_ID_LEN + 1];
	size_t i;

	for (i = j->n; i-- > 0;) {
		policy_item_reason(&j->items[i], reason, sizeof(reason));
		snapshot_shown_name(j->snaps, i, dir, sizeof(dir));
		mv_hex(j->snaps[i].id, MV_ID_LEN, id);
		printf("%-6s  %-20s  %.12s  %s/%s\n",
		       j->items[i].kept_by ? "keep" : "remove",
		       j->items[i].kept_by ? reason : "", id, j->snaps[i].name,
		       dir);
	}
}

static void print_json_job(const struct job *j, bool first)
{
	char reason[48], dir[64], iso[40], id[2 * MV_ID_LEN + 1];
	size_t i;

	printf("%s{\"name\":", first ? "" : ",");
	cli_json_str(j->snaps[0].name);
	printf(",\"kept\":%zu,\"removed\":%zu,\"snapshots\":[", j->kept,
	       j->removed);
	for (i = j->n; i-- > 0;) {
		policy_item_reason(&j->items[i], reason, sizeof(reason));
		snapshot_shown_name(j->snaps, i, dir, sizeof(dir));
		mv_time_iso(j->snaps[i].time_ns, iso, sizeof(iso));
		mv_hex(j->snaps[i].id, MV_ID_LEN, id);
		printf("%s{\"id\":\"%s\",\"time\":\"%s\",\"dir\":\"%s\","
		       "\"partial\":%s,\"keep\":%s,\"rule\":",
		       i + 1 == j->n ? "" : ",", id, iso, dir,
		       j->snaps[i].partial ? "true" : "false",
		       j->items[i].kept_by ? "true" : "false");
		if (j->items[i].kept_by)
			cli_json_str(reason);
		else
			printf("null");
		printf("}");
	}
	printf("]}");
}

/* Remove what the policy does not keep, oldest first. */
static int job_remove(struct repo *r, const struct job *j, size_t *done,
		      struct mv_err *err)
{
	char dir[64];
	size_t i;
	int rc;

	for (i = 0; i < j->n; i++) {
		if (j->items[i].kept_by)
			continue;
		rc = repo_snapshot_delete(r, j->snaps[i].id, err);
		if (rc < 0) {
			snapshot_shown_name(j->snaps, i, dir, sizeof(dir));
			return mv_err_prefix(err, "cannot remove '%s/%s'",
					     j->snaps[i].name, dir);
		}
		(*done)++;
	}
	return 0;
}

int cmd_forget(int argc, char **argv)
{
	struct forget_opts o;
	struct mv_err err = MV_ERR_INIT;
	struct snapshot *list = NULL;
	struct job *jobs = NULL;
	struct repo *r = NULL;
	const char *repo = NULL;
	char desc[256];
	size_t n = 0, njobs = 0, i, start, removed = 0, kept = 0, done = 0;
	unsigned flags;
	int64_t now;
	int ret;

	memset(&o, 0, sizeof(o));
	ret = parse_args(argc, argv, &o, &repo);
	if (ret >= 0)
		return ret;
	ret = MV_EXIT_FAIL;

	flags = o.dry_run ? REPO_OPEN_READ : REPO_OPEN_WRITE;
	if (o.wait && !o.dry_run)
		flags |= REPO_OPEN_WAIT;
	if (repo_open(repo, flags, &r, &err) < 0) {
		ret = cli_fail(&err);
		goto out;
	}
	if (!o.dry_run && (repo_get_config(r)->flags & REPO_APPEND_ONLY)) {
		mv_err_set(&err, -EPERM,
			   "repository '%s' is append-only: forget refuses to "
			   "remove snapshots (try --dry-run to see what the "
			   "policy would remove)",
			   repo);
		ret = cli_fail(&err);
		goto out;
	}
	if (snapshot_list(r, &list, &n, &err) < 0) {
		ret = cli_fail(&err);
		goto out;
	}

	/* split the name-ordered list into jobs */
	jobs = calloc(n ? n : 1, sizeof(*jobs));
	if (!jobs) {
		mv_err_set(&err, -ENOMEM, "out of memory");
		ret = cli_fail(&err);
		goto out;
	}
	now = mv_now_ns();
	for (start = 0; start < n; start = i) {
		i = start + 1;
		while (i < n && !strcmp(list[i].name, list[start].name))
			i++;
		if (o.name && strcmp(o.name, list[start].name))
			continue;
		jobs[njobs].snaps = &list[start];
		jobs[njobs].n = i - start;
		if (job_decide(&o, &jobs[njobs], now, &err) < 0) {
			njobs++;
			ret = cli_fail(&err);
			goto out;
		}
		kept += jobs[njobs].kept;
		removed += jobs[njobs].removed;
		njobs++;
	}
	if (o.name && !njobs) {
		mv_err_set(&err, -ENOENT,
			   "no snapshots of job '%s' in repository '%s'",
			   o.name, repo);
		ret = cli_fail(&err);
		goto out;
	}
	for (i = 0; i < njobs; i++)
		if (job_loses_all(&jobs[i]))
			fprintf(stderr,
				"mailvault: warning: job '%s' keeps no "
				"complete snapshot under this policy\n",
				jobs[i].snaps[0].name);

	if (!o.dry_run) {
		for (i = 0; i < njobs; i++)
			if (job_remove(r, &jobs[i], &done, &err) < 0)
				break;
		/* a trace in the packs, so rebuild-index does not bring
		 * the forgotten snapshots back */
		if (done && !err.code) {
			uint64_t nt = 0;

			lifecycle_tombstone_forgotten(r, &nt, &err);
		}
	}

	policy_describe(&o.policy, desc, sizeof(desc));
	if (o.json) {
		printf("{\"dry_run\":%s,\"policy\":",
		       o.dry_run ? "true" : "false");
		cli_json_str(desc);
		printf(",\"kept\":%zu,\"removed\":%zu,\"jobs\":[", kept,
		       o.dry_run ? removed : done);
		for (i = 0; i < njobs; i++)
			print_json_job(&jobs[i], i == 0);
		printf("]}\n");
	} else {
		for (i = 0; i < njobs; i++) {
			if (o.list)
				print_list(&jobs[i]);
			printf("%s: keeping %zu, %s %zu of %zu snapshots\n",
			       jobs[i].snaps[0].name, jobs[i].kept,
			       o.dry_run ? "would remove" : "removing",
			       jobs[i].removed, jobs[i].n);
		}
		if (!njobs)
			printf("no snapshots\n");
		else if (o.dry_run)
			printf("dry run (%s): nothing removed\n", desc);
		else
			printf("removed %zu snapshots; run 'mailvault prune' "
			       "to reclaim their space\n",
			       done);
	}
	if (err.code) {
		fprintf(stderr,
			"mailvault: removed %zu of %zu snapshots before the "
			"error; run forget again to finish\n",
			done, removed);
		ret = cli_fail(&err);
		goto out;
	}
	ret = MV_EXIT_OK;
out:
	for (i = 0; i < njobs; i++)
		free(jobs[i].items);
	free(jobs);
	snapshot_list_free(list, n);
	repo_close(r);
	return ret;
}
