/*
 * mailvault init: create a repository, encrypted by default
 * (docs/FORMAT-2.md section 4): a random master key wrapped by the
 * passphrase in a key slot under keys/ (repokey) or in a file (keyfile).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_pass.h"
#include "repo.h"

static const char usage[] =
	"usage: mailvault init [--encryption xchacha20-poly1305|none]\n"
	"                      [--key-mode repokey|keyfile] [--keyfile FILE]\n"
	"                      [--append-only] [--chunk-avg BYTES] "
	"[--zstd-level N]\n"
	"                      [--copy-chunker-params FROM_REPO] REPO\n"
	"The passphrase comes from MAILVAULT_PASSPHRASE, "
	"MAILVAULT_PASSCOMMAND,\n"
	"MAILVAULT_PASSPHRASE_FILE, "
	"$CREDENTIALS_DIRECTORY/mailvault-passphrase\n"
	"or the terminal (asked twice).  A key file (--keyfile) holds the "
	"only\n"
	"key slot: MAILVAULT_KEYFILE must name it for every later command.\n";

int cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {
		{"append-only", no_argument, NULL, 'a'},
		{"chunk-avg", required_argument, NULL, 'c'},
		{"zstd-level", required_argument, NULL, 'z'},
		{"copy-chunker-params", required_argument, NULL, 'C'},
		{"encryption", required_argument, NULL, 'e'},
		{"key-mode", required_argument, NULL, 'k'},
		{"keyfile", required_argument, NULL, 'K'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct mv_err err = MV_ERR_INIT;
	struct repo_init_opts io;
	struct chunker_params cp;
	const char *repo, *from = NULL, *mode = "repokey";
	struct cli_pass pass = CLI_PASS_INIT;
	struct repo *src = NULL;
	int c, rc;

	memset(&io, 0, sizeof(io));
	io.encrypt = true;
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
		case 'e':
			if (!strcmp(optarg, "none"))
				io.encrypt = false;
			else if (!strcmp(optarg, REPO_ENCRYPTION))
				io.encrypt = true;
			else
				return cli_usage("init",
						 "bad --encryption '%s' (%s or "
						 "none)",
						 optarg, REPO_ENCRYPTION);
			break;
		case 'k':
			if (strcmp(optarg, "repokey") &&
			    strcmp(optarg, "keyfile"))
				return cli_usage("init",
						 "bad --key-mode '%s' (repokey "
						 "or keyfile)",
						 optarg);
			mode = optarg;
			break;
		case 'K':
			io.keyfile = optarg;
			break;
		case 'h':
			cli_help_print("init", stdout);
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
	if (!strcmp(mode, "keyfile") && !io.keyfile)
		return cli_usage("init", "--key-mode keyfile needs --keyfile "
					 "FILE");
	if (io.keyfile && !io.encrypt)
		return cli_usage("init", "--keyfile is for an encrypted "
					 "repository");
	/* Same cut points and chunk ids as FROM: a second copy of the same
	 * backups (local and NAS) dedups identically. */
	if (from) {
		if (repo_open(from, REPO_OPEN_READ, &src, &err))
			return cli_fail(&err);
		io.copy_from = repo_get_config(src);
	}
	if (io.encrypt) {
		char prompt[512];

		snprintf(prompt, sizeof(prompt),
			 "mailvault: new passphrase for '%s': ", repo);
		rc = cli_pass_get(&pass, prompt, CLI_PASS_NEW, &err);
		if (rc) {
			repo_close(src);
			return cli_fail(&err);
		}
		io.pass = pass.text;
		io.pass_len = pass.len;
	}
	rc = repo_init(repo, &io, &err);
	cli_pass_release(&pass);
	repo_close(src);
	if (rc)
		return cli_fail(&err);
	printf("initialised repository '%s'\n", repo);
	if (!io.encrypt)
		fprintf(stderr,
			"mailvault: '%s' is not encrypted: for a disk "
			"you trust\n",
			repo);
	else if (io.keyfile)
		printf("encryption = %s, key = keyfile '%s': without that "
		       "file and the passphrase nothing can be read; keep a "
		       "copy elsewhere\n",
		       REPO_ENCRYPTION, io.keyfile);
	else
		printf("encryption = %s, key = repokey: keep the passphrase, "
		       "and a copy of the key ('mailvault key export')\n",
		       REPO_ENCRYPTION);
	return MV_EXIT_OK;
}
