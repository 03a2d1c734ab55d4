/*
 * mailvault config: show the repository settings or change the ones that
 * may change after init (append-only).  docs/LIFECYCLE.md explains how to
 * keep a backup client from turning append-only off.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "repo.h"

static const char usage[] =
	"usage: mailvault config [--json] REPO [append-only on|off]\n";

static void show(const struct repo_config *c)
{
	printf("version = %u\n", c->version);
	printf("encryption = %s\n", c->encryption);
	/* the key mode, never key material: an encrypted repository's
	 * secret is derived from its master key and shown nowhere */
	if (strcmp(c->encryption, "none"))
		printf("key = %s\n", c->key_mode);
	printf("packs = %u\n", c->packs);
	printf("chunk-min = %u\nchunk-avg = %u\nchunk-max = %u\n",
	       c->chunker.min_size, c->chunker.avg_size, c->chunker.max_size);
	printf("small-file = %u\n", c->chunker.small_file);
	printf("zstd-level = %d\n", c->zstd_level);
	printf("append-only = %s\n",
	       (c->flags & REPO_APPEND_ONLY) ? "yes" : "no");
}

/* The same as one JSON object; "key" is null when unencrypted. */
static void show_json(const struct repo_config *c)
{
	bool enc = strcmp(c->encryption, "none") != 0;

	cli_json_out(json_pack(
		"{s:I, s:s, s:s?, s:I, s:I, s:I, s:I, s:I, s:i, s:b}",
		"version", (json_int_t)c->version, "encryption", c->encryption,
		"key", enc ? c->key_mode : NULL, "packs", (json_int_t)c->packs,
		"chunk_min", (json_int_t)c->chunker.min_size, "chunk_avg",
		(json_int_t)c->chunker.avg_size, "chunk_max",
		(json_int_t)c->chunker.max_size, "small_file",
		(json_int_t)c->chunker.small_file, "zstd_level", c->zstd_level,
		"append_only", (c->flags & REPO_APPEND_ONLY) != 0));
}

static int parse_bool(const char *s, bool *out)
{
	if (!strcmp(s, "on") || !strcmp(s, "yes") || !strcmp(s, "true")) {
		*out = true;
		return 0;
	}
	if (!strcmp(s, "off") || !strcmp(s, "no") || !strcmp(s, "false")) {
		*out = false;
		return 0;
	}
	return -1;
}

int cmd_config(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct mv_err err = MV_ERR_INIT;
	struct repo *r = NULL;
	const char *repo;
	bool on = false, json = false;
	int c, rest;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'j') {
			json = true;
			continue;
		}
		if (c == 'h') {
			cli_help_print("config", stdout);
			return MV_EXIT_OK;
		}
		fputs(usage, stderr);
		return MV_EXIT_USAGE;
	}
	rest = argc - optind;
	if (rest == 0 || rest == 2)
		repo = cli_repo_arg(NULL);
	else
		repo = argv[optind++];
	rest = argc - optind;
	if (!repo || (rest != 0 && rest != 2))
		return cli_usage("config", "give REPO, and a key and a value "
					   "to change one");
	if (rest == 0) {
		if (repo_open(repo, REPO_OPEN_READ, &r, &err))
			return cli_fail(&err);
		if (json)
			show_json(repo_get_config(r));
		else
			show(repo_get_config(r));
		repo_close(r);
		return MV_EXIT_OK;
	}
	if (strcmp(argv[optind], "append-only"))
		return cli_usage("config",
				 "unknown or fixed setting '%s' "
				 "(only append-only can change)",
				 argv[optind]);
	if (parse_bool(argv[optind + 1], &on))
		return cli_usage("config",
				 "append-only takes 'on' or 'off', "
				 "not '%s'",
				 argv[optind + 1]);
	if (repo_open(repo, REPO_OPEN_WRITE, &r, &err) ||
	    repo_config_set_flags(r, on ? REPO_APPEND_ONLY : 0,
				  on ? 0 : REPO_APPEND_ONLY, &err)) {
		repo_close(r);
		return cli_fail(&err);
	}
	repo_close(r);
	printf("append-only is %s for '%s'\n", on ? "on" : "off", repo);
	return MV_EXIT_OK;
}
