/* mailvault init: create a repository. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "repo.h"

static const char usage[] =
	"usage: mailvault init [--append-only] [--chunk-avg BYTES] "
	"[--zstd-level N]\n"
	"                      [--copy-chunker-params FROM_REPO] REPO\n";

int cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {
		{"append-only", no_argument, NULL, 'a'},
		{"chunk-avg", required_argument, NULL, 'c'},
		{"zstd-level", required_argument, NULL, 'z'},
		{"copy-chunker-params", required_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct mv_err err = MV_ERR_INIT;
	struct repo_init_opts io;
	struct chunker_params cp;
	const char *repo, *from = NULL;
	struct repo *src = NULL;
	int c, rc;

	memset(&io, 0, sizeof(io));
	repo_default_chunker(&cp);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			io.append_only = true;
			break;
		case 'c': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (*end || v < 1024 || v > (8u << 20))
				return cli_usage("init", "bad --chunk-avg '%s'",
						 optarg);
			cp.avg_size = (uint32_t)v;
			cp.min_size = (uint32_t)(v / 4);
			cp.max_size = (uint32_t)(v * 4);
			io.chunker = &cp;
			break;
		}
		case 'z':
			io.zstd_level = atoi(optarg);
			if (io.zstd_level < 1 || io.zstd_level > 19)
				return cli_usage("init",
						 "bad --zstd-level "
						 "'%s' (1-19)",
						 optarg);
			break;
		case 'C':
			from = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return MV_EXIT_OK;
		default:
			fputs(usage, stderr);
			return MV_EXIT_USAGE;
		}
	}
	repo = cli_repo_arg(optind < argc ? argv[optind] : NULL);
	if (!repo || argc - optind > 1)
		return cli_usage("init", "give one REPO (or set "
					 "MAILVAULT_REPO)");
	if (from && io.chunker)
		return cli_usage("init",
				 "--chunk-avg and --copy-chunker-params "
				 "exclude each other");
	/* Same cut points and chunk ids as FROM: a second copy of the same
	 * backups (local and NAS) dedups identically. */
	if (from) {
		if (repo_open(from, REPO_OPEN_READ, &src, &err))
			return cli_fail(&err);
		io.copy_from = repo_get_config(src);
	}
	rc = repo_init(repo, &io, &err);
	repo_close(src);
	if (rc)
		return cli_fail(&err);
	printf("initialised repository '%s'\n", repo);
	return MV_EXIT_OK;
}
