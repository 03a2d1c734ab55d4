/* mailvault check: verify the repository. */
#include <getopt.h>
#include <stdio.h>

#include "check.h"
#include "cli.h"
#include "repo.h"

static void report(const char *kind, const char *msg, void *arg)
{
	(void)arg;
	fprintf(stderr, "%s: %s\n", kind, msg);
}

int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{"read-data", no_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct mv_err err = MV_ERR_INIT;
	struct check_result res;
	struct repo *r = NULL;
	const char *repo;
	bool read_data = false;
	int c, rc;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'r')
			read_data = true;
		else if (c == 'h') {
			puts("usage: mailvault check [--read-data] [REPO]");
			return MV_EXIT_OK;
		} else
			return MV_EXIT_USAGE;
	}
	repo = cli_repo_arg(optind < argc ? argv[optind] : NULL);
	if (!repo)
		return cli_usage("check", "no repository given");
	if (repo_open(repo, REPO_OPEN_READ, &r, &err))
		return cli_fail(&err);
	rc = check_repo(r, read_data, report, NULL, &res, &err);
	printf("checked %llu packs, %llu snapshots, %llu files%s%llu "
	       "chunks read\n",
	       (unsigned long long)res.packs, (unsigned long long)res.snapshots,
	       (unsigned long long)res.files, read_data ? ", " : " (",
	       (unsigned long long)res.chunks);
	repo_close(r);
	if (rc)
		return cli_fail(&err);
	printf("no damage found\n");
	return MV_EXIT_OK;
}
