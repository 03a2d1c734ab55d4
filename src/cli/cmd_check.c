/* mailvault check: verify the repository; --repair mends the index. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>

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
static int repair(const char *repo, unsigned flags, struct mv_err *err,
		  struct repo **out)
{
	struct mv_err first = MV_ERR_INIT;
	struct repair_result res;
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
	rc = lifecycle_repair(*out, report, NULL, &res, err);
	if (rc)
		return rc;
	printf("repair: %s%llu packs missing, %llu damaged, %llu records "
	       "removed from the index, %llu taken back from unindexed "
	       "packs\n",
	       res.index_rebuilt ? "index rebuilt; " : "",
	       (unsigned long long)res.packs_missing,
	       (unsigned long long)res.packs_damaged,
	       (unsigned long long)res.records_dropped,
	       (unsigned long long)res.records_adopted);
	return 0;
}

int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{"read-data", no_argument, NULL, 'r'},
		{"repair", no_argument, NULL, 'R'},
		{"wait", no_argument, NULL, 'w'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct mv_err err = MV_ERR_INIT;
	struct check_result res;
	struct repo *r = NULL;
	const char *repo;
	bool read_data = false, do_repair = false;
	unsigned flags = REPO_OPEN_WRITE;
	int c, rc;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'r')
			read_data = true;
		else if (c == 'R')
			do_repair = true;
		else if (c == 'w')
			flags |= REPO_OPEN_WAIT;
		else if (c == 'h') {
			puts("usage: mailvault check [--read-data] [--repair "
			     "[--wait]] [REPO]");
			return MV_EXIT_OK;
		} else
			return MV_EXIT_USAGE;
	}
	repo = cli_repo_arg(optind < argc ? argv[optind] : NULL);
	if (!repo)
		return cli_usage("check", "no repository given");
	if (do_repair) {
		if (repair(repo, flags, &err, &r)) {
			repo_close(r);
			return cli_fail(&err);
		}
	} else if (repo_open(repo, REPO_OPEN_READ, &r, &err)) {
		return cli_fail(&err);
	}
	rc = check_repo(r, read_data, report, NULL, &res, &err);
	printf("checked %llu packs, %llu snapshots, %llu files%s%llu "
	       "chunks read\n",
	       (unsigned long long)res.packs, (unsigned long long)res.snapshots,
	       (unsigned long long)res.files, read_data ? ", " : " (",
	       (unsigned long long)res.chunks);
	repo_close(r);
	if (rc && do_repair && err.code == -EIO && !res.bad_packs &&
	    !res.bad_chunks) {
		fprintf(stderr,
			"mailvault: the repository is consistent "
			"again, but %llu files or directories lost "
			"data (listed above): they read with EIO; "
			"no snapshot was removed\n",
			(unsigned long long)res.affected_files);
		return MV_EXIT_FAIL;
	}
	if (rc)
		return cli_fail(&err);
	printf("no damage found\n");
	return MV_EXIT_OK;
}
