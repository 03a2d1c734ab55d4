/* mailvault mount: every snapshot as a read-only directory tree
 * (man/mailvault-mount.1). */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "fs.h"

static const char usage_line[] =
	"usage: mailvault mount [-f] [-o OPTIONS] REPO MOUNTPOINT\n"
	"options: allow_other, default_permissions, cache_size=MiB, debug\n";

int cmd_mount(int argc, char **argv)
{
	struct mv_err err = MV_ERR_INIT;
	struct fs_opts o;
	const char *repo, *mnt;
	int c;

	fs_opts_init(&o);
	optind = 1;
	while ((c = getopt(argc, argv, "fho:")) != -1) {
		switch (c) {
		case 'f':
			o.foreground = true;
			break;
		case 'o':
			if (fs_opts_parse(&o, optarg, &err))
				return cli_usage("mount", "%s", err.msg);
			break;
		case 'h':
			fputs(usage_line, stdout);
			return MV_EXIT_OK;
		default:
			fputs(usage_line, stderr);
			return MV_EXIT_USAGE;
		}
	}
	if (argc - optind == 2) {
		repo = argv[optind];
		mnt = argv[optind + 1];
	} else if (argc - optind == 1 && cli_repo_arg(NULL)) {
		repo = cli_repo_arg(NULL);
		mnt = argv[optind];
	} else {
		return cli_usage("mount", "need REPO and MOUNTPOINT");
	}
	if (fs_mount(repo, mnt, &o, &err))
		return cli_fail(&err);
	return MV_EXIT_OK;
}
