/* mailvault export-tar: write a snapshot (or part) as a tar stream. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "formats.h"
#include "repo.h"
#include "restore.h"
#include "snapshot.h"
#include "source_mailcow.h"
#include "tree.h"
#include "util.h"

/* Is name what backup_and_restore.sh calls a backup folder,
 * mailcow-YYYY-MM-DD-HH-MM-SS? */
static bool is_mailcow_folder(const char *name)
{
	static const char pat[] = "mailcow-0000-00-00-00-00-00";
	size_t i;

	if (strlen(name) != sizeof(pat) - 1)
		return false;
	for (i = 0; pat[i]; i++) {
		if (pat[i] == '0' ? name[i] < '0' || name[i] > '9'
				  : name[i] != pat[i])
			return false;
	}
	return true;
}

/* The folder's name: its own when it is a mailcow folder, else one made
 * of the snapshot's time in local time, as the script names its folders
 * (date +%Y-%m-%d-%H-%M-%S), so that "backup_and_restore.sh restore"
 * lists it.  A job backs the newest folder up under a fixed label. */
static int folder_name(const struct snapshot *snap, struct tree_entry *e,
		       struct mv_err *err)
{
	time_t t = (time_t)(snap->time_ns / 1000000000);
	char name[64];
	struct tm tm;
	char *copy;

	if (is_mailcow_folder(e->name))
		return 0;
	if (!localtime_r(&t, &tm) ||
	    !strftime(name, sizeof(name), "mailcow-%Y-%m-%d-%H-%M-%S", &tm))
		return mv_err_set(err, -EINVAL,
				  "cannot name the folder after the snapshot's "
				  "time");
	copy = strdup(name);
	if (!copy)
		return mv_err_set(err, -ENOMEM, "out of memory");
	free(e->name);
	e->name = copy;
	e->name_len = (uint32_t)strlen(copy);
	return 0;
}

/* --mailcow: write a mailcow backup folder back as its archives. */
static int export_mailcow(int argc, char **argv)
{
	struct mv_err err = MV_ERR_INIT;
	struct snapshot snap;
	struct tree_entry e;
	struct repo *r = NULL;
	const char *repo = NULL;
	unsigned n = 0;
	int rc, ret = MV_EXIT_OK;

	if (argc == 3)
		repo = *argv++;
	else if (argc != 2)
		return cli_usage("export-tar", "--mailcow wants [REPO] "
					       "SNAP:PATH OUTDIR");
	if (formats_require(&err) ||
	    cli_open_entry(repo, argv[0], &r, &snap, &e, NULL, &err))
		return cli_fail(&err);
	if (folder_name(&snap, &e, &err))
		ret = cli_fail(&err);
	else if ((rc = mv_mkdir_p(argv[1], 0755)) < 0) {
		mv_err_set(&err, rc, "cannot create '%s': %s", argv[1],
			   strerror(-rc));
		ret = cli_fail(&err);
	} else if (source_mailcow_export(r, &e, argv[1], &n, &err))
		ret = cli_fail(&err);
	else
		printf("wrote %s/%s with %u archives\n", argv[1], e.name, n);
	tree_entry_release(&e);
	snapshot_release(&snap);
	repo_close(r);
	return ret;
}

int cmd_export_tar(int argc, char **argv)
{
	static const struct option opts[] = {
		{"gzip", no_argument, NULL, 'z'},
		{"mailcow", no_argument, NULL, 'm'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct mv_err err = MV_ERR_INIT;
	struct snapshot snap;
	struct tree_entry e;
	struct repo *r = NULL;
	const char *repo = NULL, *spec;
	bool gz = false, mailcow = false;
	int c, ret = MV_EXIT_OK;

	while ((c = getopt_long(argc, argv, "zh", opts, NULL)) != -1) {
		if (c == 'z')
			gz = true;
		else if (c == 'm')
			mailcow = true;
		else if (c == 'h') {
			puts("usage: mailvault export-tar [-z] [REPO] "
			     "SNAP[:PATH] > out.tar\n"
			     "       mailvault export-tar --mailcow [REPO] "
			     "SNAP:PATH OUTDIR");
			return MV_EXIT_OK;
		} else
			return MV_EXIT_USAGE;
	}
	if (mailcow)
		return export_mailcow(argc - optind, argv + optind);
	if (argc - optind == 2) {
		repo = argv[optind];
		spec = argv[optind + 1];
	} else if (argc - optind == 1) {
		spec = argv[optind];
	} else {
		return cli_usage("export-tar", "give [REPO] SNAP[:PATH]");
	}
	if (isatty(1))
		return cli_usage("export-tar",
				 "refusing to write a tar stream "
				 "to a terminal; redirect stdout");
	if (formats_require(&err) ||
	    cli_open_entry(repo, spec, &r, &snap, &e, NULL, &err))
		return cli_fail(&err);
	if (restore_export_tar(r, &e, 1, gz, &err))
		ret = cli_fail(&err);
	tree_entry_release(&e);
	snapshot_release(&snap);
	repo_close(r);
	return ret;
}
