/* mailvault check: verify the repository; --repair mends the index. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cli.h"
#include "lifecycle.h"
#include "repo.h"

static void report(const char *kind, const char *msg, void *arg)
{
	(void)arg;
	fprintf(stderr, "%s: %s\n", kind, msg);
}

/* check --repair: open for writing; an index that cannot be opened is
 * rebuilt from the packs by the repair itself. */
static int repair(const char *repo, unsigned flags, struct repair_result *res,
		  struct mv_err *err, struct repo **out)
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
		fprintf(stderr,
			"error: %s; rebuilding the index from the "
			"packs\n",
			mv_err_msg(&first));
	rc = lifecycle_repair(*out, report, NULL, res, err);
	if (rc)
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

int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{"read-data", no_argument, NULL, 'r'},
		{"read-data-subset", required_argument, NULL, 's'},
		{"repair", no_argument, NULL, 'R'},
		{"wait", no_argument, NULL, 'w'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct mv_err err = MV_ERR_INIT;
	struct repair_result rres;
	struct check_result res;
	struct check_opts o;
	struct repo *r = NULL;
	const char *repo, *subset = NULL;
	bool do_repair = false;
	unsigned flags = REPO_OPEN_WRITE;
	int c, rc;

	memset(&o, 0, sizeof(o));
	memset(&rres, 0, sizeof(rres));
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
		else if (c == 'h') {
			puts("usage: mailvault check [--read-data | "
			     "--read-data-subset N%|N/M] [--repair [--wait]] "
			     "[REPO]");
			return MV_EXIT_OK;
		} else
			return MV_EXIT_USAGE;
	}
	if (subset && o.read_data)
		return cli_usage("check", "--read-data reads every pack; "
					  "--read-data-subset reads some");
	if (subset && check_parse_subset(subset, &o, &err))
		return cli_usage("check", "%s", mv_err_msg(&err));
	if (!subset && !o.read_data && default_subset(&o, &err))
		return cli_usage("check", "MAILVAULT_CHECK_SUBSET: %s",
				 mv_err_msg(&err));
	repo = cli_repo_arg(optind < argc ? argv[optind] : NULL);
	if (!repo)
		return cli_usage("check", "no repository given");
	if (do_repair) {
		rc = repair(repo, flags, &rres, &err, &r);
		if (rc) {
			repo_close(r);
			cli_fail(&err);
			return rc == -EBUSY ? MV_EXIT_LOCKED : MV_EXIT_FAIL;
		}
	} else if (repo_open(repo, REPO_OPEN_READ, &r, &err)) {
		return cli_fail(&err);
	}
	rc = check_run(r, &o, report, NULL, &res, &err);
	summary(&o, &res);
	repo_close(r);
	if (rc && err.code == -EIO) {
		cli_fail(&err);
		return MV_EXIT_DAMAGED;
	}
	if (rc)
		return cli_fail(&err);
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
