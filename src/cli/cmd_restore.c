/* mailvault restore: restore a snapshot or part of it into a directory. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "repo.h"
#include "restore.h"
#include "snapshot.h"
#include "tree.h"

int cmd_restore(int argc, char **argv)
{
	static const struct option opts[] = {
		{"verbose", no_argument, NULL, 'v'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct mv_err err = MV_ERR_INIT;
	struct restore_opts ro;
	struct restore_stats st;
	struct snapshot snap;
	struct tree_entry e;
	struct repo *r = NULL;
	const char *repo = NULL, *spec, *dest;
	bool json = false;
	int c, ret = MV_EXIT_OK;

	memset(&ro, 0, sizeof(ro));
	memset(&st, 0, sizeof(st));
	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		if (c == 'v')
			ro.verbose = true;
		else if (c == 'j')
			json = true;
		else if (c == 'h') {
			cli_help_print("restore", stdout);
			return MV_EXIT_OK;
		} else
			return cli_usage("restore", "unknown option");
	}
	if (argc - optind == 3) {
		repo = argv[optind];
		spec = argv[optind + 1];
		dest = argv[optind + 2];
	} else if (argc - optind == 2) {
		spec = argv[optind];
		dest = argv[optind + 1];
	} else {
		return cli_usage("restore", "give [REPO] SNAP[:PATH] DIR");
	}
	if (cli_open_entry(repo, spec, &r, &snap, &e, NULL, &err))
		return cli_fail(&err);
	if (restore_tree(r, &e, dest, &ro, &st, &err))
		ret = cli_fail(&err);
	if (json) {
		cli_json_out(json_pack(
			"{s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:I}", "source",
			spec, "target", dest, "complete",
			ret == MV_EXIT_OK && !st.errors, "files",
			(json_int_t)st.files, "dirs", (json_int_t)st.dirs,
			"others", (json_int_t)st.others, "bytes",
			(json_int_t)st.bytes, "errors", (json_int_t)st.errors));
	} else {
		char size[32];

		mv_human_size(st.bytes, size, sizeof(size));
		fprintf(stderr,
			"restored %llu files (%s), %llu dirs, %llu other into "
			"'%s'\n",
			(unsigned long long)st.files, size,
			(unsigned long long)st.dirs,
			(unsigned long long)st.others, dest);
	}
	tree_entry_release(&e);
	snapshot_release(&snap);
	repo_close(r);
	return ret;
}
