/* mailvault check: verify the repository; --repair mends the index. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cli.h"
#include "lifecycle.h"
#include "repo.h"

/* arg: NULL, or with --json the object whose "errors", "warnings" and
 * "info" arrays collect the messages instead of stderr. */
static void report(const char *kind, const char *msg, void *arg)
{
	json_t *o = arg, *arr;

	if (!o) {
		fprintf(stderr, "%s: %s\n", kind, msg);
		return;
	}
	arr = json_object_get(o, !strcmp(kind, "error")	    ? "errors"
				 : !strcmp(kind, "warning") ? "warnings"
							    : "info");
	json_array_append_new(arr, json_string(msg));
}

/* check --repair: open for writing; an index that cannot be opened is
 * rebuilt from the packs by the repair itself. */
static int repair(const char *repo, unsigned flags, struct repair_result *res,
		  json_t *json, struct mv_err *err, struct repo **out)
{
	struct mv_err first = MV_ERR_INIT;
	int rc;

	rc = repo_open(repo, flags, out, &first);
	if (rc == -EBUSY || rc == -EPERM ||
	    (rc && repo_open_bare(repo, flags, out, err))) {
		if (rc == -EBUSY || rc == -EPERM)
			mv_err_set(err, rc, "%s", mv_err_msg(&first));
		return rc;
	}
	if (rc)
		report("error", mv_err_msg(&first), json);
	rc = lifecycle_repair(*out, report, json, res, err);
	if (rc || json)
		return rc;
	printf("repair: %s%llu packs missing, %llu damaged, %llu records "
	       "removed from the index and recorded as lost, %llu taken "
	       "back from unindexed packs\n",
	       res->index_rebuilt ? "index rebuilt; " : "",
	       (unsigned long long)res->packs_missing,
	       (unsigned long long)res->packs_damaged,
	       (unsigned long long)res->records_dropped,
	       (unsigned long long)res->records_adopted);
	return 0;
}

/* The subset plain check reads: $MAILVAULT_CHECK_SUBSET (tests), else
 * CHECK_SUBSET_DEFAULT percent. */
static int default_subset(struct check_opts *o, struct mv_err *err)
{
	const char *env = getenv("MAILVAULT_CHECK_SUBSET");

	if (env && !strcmp(env, "0"))
		return 0;
	if (env && *env)
		return check_parse_subset(env, o, err);
	o->subset_pct = CHECK_SUBSET_DEFAULT;
	return 0;
}

static void summary(const struct check_opts *o, const struct check_result *res)
{
	printf("checked %llu packs, %llu snapshots, %llu files; read %llu "
	       "packs (%llu chunks)%s\n",
	       (unsigned long long)res->packs,
	       (unsigned long long)res->snapshots,
	       (unsigned long long)res->files,
	       (unsigned long long)res->packs_read,
	       (unsigned long long)res->chunks,
	       o->read_data ? "" : ", a subset");
	if (res->lost_files)
		printf("known loss: %llu files or directories in %llu "
		       "snapshots lost data (%llu chunks) to damage that "
		       "check --repair recorded; listed above, they read "
		       "with EIO\n",
		       (unsigned long long)res->lost_files,
		       (unsigned long long)res->lost_snapshots,
		       (unsigned long long)res->lost_chunks);
}

/* --json: the result as one object (keys in mailvault(1)). */
static void summary_json(json_t *j, const struct check_opts *o,
			 const struct check_result *res, const char *status,
			 const struct repair_result *rres, bool repaired)
{
	json_object_set_new(j, "status", json_string(status));
	json_object_set_new(j, "read_data",
			    json_string(o->read_data ? "all" : "subset"));
#define SET(k) json_object_set_new(j, #k, json_integer((json_int_t)res->k))
	SET(packs);
	SET(snapshots);
	SET(files);
	SET(packs_read);
	SET(chunks);
	SET(bad_packs);
	SET(bad_chunks);
	SET(affected_files);
	SET(affected_snapshots);
	SET(lost_files);
	SET(lost_snapshots);
	SET(lost_chunks);
	SET(orphan_packs);
	SET(exposed);
#undef SET
	json_object_set_new(
		j, "repair",
		repaired ? json_pack("{s:b, s:I, s:I, s:I, s:I}",
				     "index_rebuilt", rres->index_rebuilt,
				     "packs_missing",
				     (json_int_t)rres->packs_missing,
				     "packs_damaged",
				     (json_int_t)rres->packs_damaged,
				     "records_dropped",
				     (json_int_t)rres->records_dropped,
				     "records_adopted",
				     (json_int_t)rres->records_adopted)
			 : json_null());
	cli_json_out(json_incref(j));
}

/* The command after its options: json is NULL, or the object the
 * messages are collected in. */
static int cmd_check_run(int argc, char **argv, struct check_opts *o,
			 const char *subset, bool do_repair, unsigned flags,
			 json_t *json)
{
	struct mv_err err = MV_ERR_INIT;
	struct repair_result rres;
	struct check_result res;
	struct repo *r = NULL;
	const char *repo;
	int rc;

	memset(&rres, 0, sizeof(rres));
	if (subset && o->read_data)
		return cli_usage("check", "--read-data reads every pack; "
					  "--read-data-subset reads some");
	if (subset && check_parse_subset(subset, o, &err))
		return cli_usage("check", "%s", mv_err_msg(&err));
	if (!subset && !o->read_data && default_subset(o, &err))
		return cli_usage("check", "MAILVAULT_CHECK_SUBSET: %s",
				 mv_err_msg(&err));
	repo = cli_repo_arg(optind < argc ? argv[optind] : NULL);
	if (!repo)
		return cli_usage("check", "no repository given");
	if (do_repair) {
		rc = repair(repo, flags, &rres, json, &err, &r);
		if (rc) {
			repo_close(r);
			cli_fail(&err);
			return rc == -EBUSY ? MV_EXIT_LOCKED : MV_EXIT_FAIL;
		}
	} else if (repo_open(repo, REPO_OPEN_READ, &r, &err)) {
		return cli_fail(&err);
	}
	rc = check_run(r, o, report, json, &res, &err);
	if (json)
		summary_json(json, o, &res,
			     !rc		? "ok"
			     : err.code == -EIO ? "damaged"
						: "failed",
			     &rres, do_repair);
	else
		summary(o, &res);
	repo_close(r);
	if (rc && err.code == -EIO) {
		cli_fail(&err);
		return MV_EXIT_DAMAGED;
	}
	if (rc)
		return cli_fail(&err);
	if (json)
		return do_repair && rres.records_dropped ? MV_EXIT_WARN
							 : MV_EXIT_OK;
	if (do_repair && rres.records_dropped) {
		fprintf(stderr,
			"mailvault: the repository is consistent again; "
			"%llu files or directories lost data (listed above): "
			"they read with EIO; the loss is recorded and later "
			"checks report it without failing; no snapshot was "
			"removed\n",
			(unsigned long long)res.lost_files);
		return MV_EXIT_WARN;
	}
	printf("%s\n",
	       res.lost_files ? "no new damage found" : "no damage found");
	return MV_EXIT_OK;
}

int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{"read-data", no_argument, NULL, 'r'},
		{"read-data-subset", required_argument, NULL, 's'},
		{"repair", no_argument, NULL, 'R'},
		{"wait", no_argument, NULL, 'w'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct check_opts o;
	const char *subset = NULL;
	bool do_repair = false;
	unsigned flags = REPO_OPEN_WRITE;
	json_t *json = NULL;
	int c, ret;

	memset(&o, 0, sizeof(o));
	o.check_perms = true;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'r')
			o.read_data = true;
		else if (c == 's')
			subset = optarg;
		else if (c == 'R')
			do_repair = true;
		else if (c == 'w')
			flags |= REPO_OPEN_WAIT;
		else if (c == 'j' && !json)
			json = json_pack("{s:[], s:[], s:[]}", "errors",
					 "warnings", "info");
		else if (c == 'j')
			continue;
		else if (c == 'h') {
			cli_help_print("check", stdout);
			return MV_EXIT_OK;
		} else {
			json_decref(json);
			return cli_usage("check", "unknown option");
		}
	}
	ret = cmd_check_run(argc, argv, &o, subset, do_repair, flags, json);
	json_decref(json);
	return ret;
}
