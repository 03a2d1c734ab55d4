/* mailvault ls: list a directory of a snapshot. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "repo.h"
#include "snapshot.h"
#include "tree.h"

static void mode_string(const struct tree_entry *e, char out[11])
{
	static const char types[] = "?-dlpcbs";
	static const char rwx[] = "rwxrwxrwx";
	int i;

	out[0] = types[e->type < 8 ? e->type : 0];
	for (i = 0; i < 9; i++)
		out[i + 1] = (e->mode & (0400u >> i)) ? rwx[i] : '-';
	if (e->mode & 04000)
		out[3] = (e->mode & 0100) ? 's' : 'S';
	if (e->mode & 02000)
		out[6] = (e->mode & 010) ? 's' : 'S';
	if (e->mode & 01000)
		out[9] = (e->mode & 01) ? 't' : 'T';
	out[10] = '\0';
}

static void print_entry(const struct tree_entry *e, bool lng)
{
	char mode[11], when[32];
	struct tm tm;
	time_t t = (time_t)e->mtime_sec;

	if (!lng) {
		printf("%s%s\n", e->name, e->type == TREE_DIR ? "/" : "");
		return;
	}
	mode_string(e, mode);
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
	printf("%s %3u %-8s %-8s %12llu %s %s", mode, e->nlink,
	       e->user ? e->user : "", e->group ? e->group : "",
	       (unsigned long long)e->size, when, e->name);
	if (e->type == TREE_LNK)
		printf(" -> %s", e->target ? e->target : "");
	printf("\n");
}

int cmd_ls(int argc, char **argv)
{
	static const struct option opts[] = {
		{"long", no_argument, NULL, 'l'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct mv_err err = MV_ERR_INIT;
	struct snapshot snap;
	struct tree_entry e;
	struct tree *t = NULL;
	struct repo *r = NULL;
	const char *repo = NULL, *spec;
	bool lng = false, json = false;
	json_t *arr = NULL;
	uint32_t i;
	int c, ret = MV_EXIT_OK;

	while ((c = getopt_long(argc, argv, "lh", opts, NULL)) != -1) {
		if (c == 'l')
			lng = true;
		else if (c == 'j')
			json = true;
		else if (c == 'h') {
			cli_help_print("ls", stdout);
			return MV_EXIT_OK;
		} else
			return cli_usage("ls", "unknown option");
	}
	if (argc - optind == 2) {
		repo = argv[optind];
		spec = argv[optind + 1];
	} else if (argc - optind == 1) {
		spec = argv[optind];
	} else {
		return cli_usage("ls", "give [REPO] SNAP[:PATH]");
	}
	if (cli_open_entry(repo, spec, &r, &snap, &e, NULL, &err))
		return cli_fail(&err);
	/* --json: an array of entries, one for a path that is a file */
	arr = json ? json_array() : NULL;
	if (e.type != TREE_DIR) {
		if (json)
			json_array_append_new(arr, cli_json_entry(&e, e.name));
		else
			print_entry(&e, true);
		goto out;
	}
	if (tree_load(r, &e.subtree, &t, &err)) {
		ret = cli_fail(&err);
		goto out;
	}
	for (i = 0; i < t->n; i++)
		if (json)
			json_array_append_new(
				arr, cli_json_entry(&t->entries[i],
						    t->entries[i].name));
		else
			print_entry(&t->entries[i], lng);
out:
	if (json && ret == MV_EXIT_OK) {
		cli_json_out(arr);
		arr = NULL;
	}
	json_decref(arr);
	tree_free(t);
	tree_entry_release(&e);
	snapshot_release(&snap);
	repo_close(r);
	return ret;
}
