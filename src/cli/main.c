/* mailvault: entry point and command table. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#include "repo.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{"init", cmd_init, "create a repository"},
	{"backup", cmd_backup,
	 "store directories and tar streams as a snapshot"},
	{"snapshots", cmd_snapshots, "list snapshots"},
	{"ls", cmd_ls, "list a directory of a snapshot"},
	{"cat", cmd_cat, "write a file of a snapshot to stdout"},
	{"restore", cmd_restore, "restore a snapshot or part of it"},
	{"export-tar", cmd_export_tar, "write a snapshot as a tar stream"},
	{"stats", cmd_stats, "show sizes and dedup ratios"},
	{"check", cmd_check, "verify the repository"},
	/* later commands go below this line */
	{"mount", cmd_mount, "mount snapshots read-only with FUSE"},
	{"forget", cmd_forget, "remove snapshots by a retention policy"},
	{"prune", cmd_prune, "reclaim the space of forgotten snapshots"},
	{"rebuild-index", cmd_rebuild_index,
	 "rebuild the index from the packs"},
	{"config", cmd_config, "show or change repository settings"},
	{"unlock", cmd_unlock, "show and remove a repository's writer lock"},
	{"find", cmd_find, "search the mail catalogue"},
	{"diff", cmd_diff, "compare two snapshots (files, --mail messages)"},
	{"key", cmd_key, "export, import, add, remove and change keys"},
	{"run", cmd_run, "run jobs: backup, retention, check, alerts"},
	{"restore-mail", cmd_restore_mail, "put mail back on an IMAP server"},
};

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: mailvault COMMAND [ARGS...]\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-12s %s\n", commands[i].name,
			commands[i].summary);
	fprintf(f, "\nREPO may be given by $MAILVAULT_REPO.  "
		   "'mailvault help COMMAND' describes a command's\n"
		   "options; mailvault(1) says it at length.\n");
}

static const struct command *find_command(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(name, commands[i].name))
			return &commands[i];
	return NULL;
}

/* "--help" or "-h" among a command's arguments (before "--"). */
static bool wants_help(int argc, char **argv)
{
	int i;

	for (i = 2; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return true;
	return false;
}

/* mailvault help [CMD]; mailvault CMD --help.  A command without a text
 * in cli_help.c is run with "--help" and prints its own. */
static int help(const struct command *c)
{
	char *args[] = {NULL, NULL, NULL};

	if (!c) {
		usage(stdout);
		return MV_EXIT_OK;
	}
	if (cli_help_text(c->name)) {
		cli_help_print(c->name, stdout);
		return MV_EXIT_OK;
	}
	args[0] = (char *)c->name;
	args[1] = (char *)"--help";
	return c->fn(2, args);
}

int main(int argc, char **argv)
{
	const struct command *c;

	if (argc < 2) {
		usage(stderr);
		return MV_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		if (argc < 3)
			return help(NULL);
		c = find_command(argv[2]);
		if (!c) {
			fprintf(stderr, "mailvault: unknown command '%s'\n",
				argv[2]);
			usage(stderr);
			return MV_EXIT_USAGE;
		}
		return help(c);
	}
	if (!strcmp(argv[1], "--version")) {
		printf("mailvault 0.1\n");
		return MV_EXIT_OK;
	}
	c = find_command(argv[1]);
	if (!c) {
		fprintf(stderr, "mailvault: unknown command '%s'\n", argv[1]);
		usage(stderr);
		return MV_EXIT_USAGE;
	}
	if (wants_help(argc, argv))
		return help(c);
	if (cli_ssh_options(&argc, argv))
		return MV_EXIT_USAGE;
	{
		int rc;

		cli_unlock_setup();
		rc = c->fn(argc - 1, argv + 1);
		/* whatever a command makes of a failed open, a missing or
		 * wrong key exits 12 (mailvault(1)) */
		if (rc != MV_EXIT_OK && repo_unlock_refused())
			rc = MV_EXIT_BADKEY;
		cli_unlock_release();
		return rc;
	}
}
