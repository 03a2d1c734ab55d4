/* mailvault cat: write a file of a snapshot to stdout. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "repo.h"
#include "restore.h"
#include "snapshot.h"
#include "tree.h"

int cmd_cat(int argc, char **argv)
{
	struct mv_err err = MV_ERR_INIT;
	struct snapshot snap;
	struct tree_entry e;
	struct repo *r = NULL;
	const char *repo = NULL, *spec;
	int ret = MV_EXIT_OK;

	if (argc == 2 &&
	    (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		cli_help_print("cat", stdout);
		return MV_EXIT_OK;
	}
	if (argc == 3) {
		repo = argv[1];
		spec = argv[2];
	} else if (argc == 2) {
		spec = argv[1];
	} else {
		return cli_usage("cat", "give [REPO] SNAP:PATH");
	}
	if (cli_open_entry(repo, spec, &r, &snap, &e, NULL, &err))
		return cli_fail(&err);
	if (e.type != TREE_REG) {
		mv_err_set(&err, -EISDIR, "'%s' is not a regular file", spec);
		ret = cli_fail(&err);
	} else if (restore_file_to_fd(r, &e, 1, false, &err)) {
		ret = cli_fail(&err);
	}
	tree_entry_release(&e);
	snapshot_release(&snap);
	repo_close(r);
	return ret;
}
