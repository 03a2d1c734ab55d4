/*
 * mailvault rebuild-index: recreate index.db from the packs alone
 * (docs/LIFECYCLE.md).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "cli.h"
#include "lifecycle.h"
#include "repo.h"

static const char usage[] =
	"usage: mailvault rebuild-index [--wait] [--verbose] [REPO]\n";

static void report(const char *kind, const char *msg, void *arg)
{
	const bool *verbose = arg;

	if (!strcmp(kind, "info") && !*verbose)
		return;
	fprintf(stderr, "%s: %s\n", kind, msg);
}

int cmd_rebuild_index(int argc, char **argv)
{
	static const struct option opts[] = {
		{"wait", no_argument, NULL, 'w'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct mv_err err = MV_ERR_INIT;
	struct rebuild_result res;
	struct check_result ck;
	struct repo *r = NULL;
	unsigned flags = REPO_OPEN_WRITE;
	const char *repo;
	bool verbose = false;
	int c, rc;

	while ((c = getopt_long(argc, argv, "hv", opts, NULL)) != -1) {
		switch (c) {
		case 'w':
			flags |= REPO_OPEN_WAIT;
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			cli_help_print("rebuild-index", stdout);
			return MV_EXIT_OK;
		default:
			fputs(usage, stderr);
			return MV_EXIT_USAGE;
		}
	}
	if (argc - optind > 1)
		return cli_usage("rebuild-index", "unexpected argument '%s'",
				 argv[optind + 1]);
	repo = cli_repo_arg(optind < argc ? argv[optind] : NULL);
	if (!repo)
		return cli_usage("rebuild-index", "give REPO (or set "
						  "MAILVAULT_REPO)");
	if (repo_open_bare(repo, flags, &r, &err))
		return cli_fail(&err);
	rc = lifecycle_rebuild_index(r, report, &verbose, &res, &err);
	if (rc) {
		repo_close(r);
		return cli_fail(&err);
	}
	printf("indexed %llu records of %llu packs; %llu snapshots, %llu "
	       "forgotten ones left out\n",
	       (unsigned long long)res.records, (unsigned long long)res.packs,
	       (unsigned long long)res.snapshots,
	       (unsigned long long)res.forgotten);
	if (res.untrusted)
		printf("%llu packs were not trusted (see above); 'mailvault "
		       "prune' removes them\n",
		       (unsigned long long)res.untrusted);
	rc = check_repo(r, false, report, &verbose, &ck, &err);
	repo_close(r);
	if (rc)
		return cli_fail(&err);
	printf("check: %llu snapshots, %llu files, no damage found\n",
	       (unsigned long long)ck.snapshots, (unsigned long long)ck.files);
	return MV_EXIT_OK;
}
