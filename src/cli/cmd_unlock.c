/*
 * mailvault unlock: show who holds a repository's writer locks (the
 * exclusive 'lock' and the shared ones of backups, locks/NAME) and remove
 * them.  Without --force only a lock whose holder is provably gone is
 * removed (a process of this machine, same boot, that no longer runs);
 * a lock of another machine, of an earlier boot or on a remote repository
 * needs --force, because no client can tell whether that process still
 * writes.  A lock held by a running process here is never removed.  The
 * lock is removed only if it is still the one shown (include/repo.h).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "repo.h"

static const char usage[] = "usage: mailvault unlock [--force] REPO\n";

/* Judge and remove one lock: MV_EXIT_OK when removed, else the exit
 * status of the refusal. */
static int unlock_one(const char *repo, const struct repo_lock_info *li,
		      bool force)
{
	struct mv_err err = MV_ERR_INIT;
	char who[400];
	int rc;

	repo_lock_describe(li, who, sizeof(who));
	printf("locked by %s%s\n", who, li->shared ? " (shared)" : "");
	if (li->alive) {
		fprintf(stderr,
			"mailvault: that process is running on this "
			"machine; stop it instead of removing its lock\n");
		return MV_EXIT_LOCKED;
	}
	if (!li->gone && !force) {
		fprintf(stderr,
			"mailvault: cannot tell whether that process is gone "
			"(%s); if it is, run again with --force\n",
			li->remote	   ? "the repository is remote"
			: !li->boot[0]	   ? "the lock names no boot id"
			: li->this_machine ? "its pid is unknown"
					   : "it is another machine, or this "
					     "one before a reboot");
		return MV_EXIT_LOCKED;
	}
	rc = repo_lock_break(repo, li, &err);
	if (rc) {
		cli_fail(&err);
		return rc == -EBUSY || rc == -ESTALE ? MV_EXIT_LOCKED
						     : MV_EXIT_FAIL;
	}
	printf("lock removed\n");
	return MV_EXIT_OK;
}

int cmd_unlock(int argc, char **argv)
{
	static const struct option opts[] = {
		{"force", no_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct mv_err err = MV_ERR_INIT;
	struct repo_lock_info *locks = NULL;
	const char *repo;
	bool force = false;
	size_t i, n = 0;
	int c, rc, ret = MV_EXIT_OK;

	while ((c = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
		if (c == 'f') {
			force = true;
			continue;
		}
		if (c == 'h') {
			cli_help_print("unlock", stdout);
			return MV_EXIT_OK;
		}
		fputs(usage, stderr);
		return MV_EXIT_USAGE;
	}
	if (argc - optind > 1)
		return cli_usage("unlock", "give one REPO");
	repo = cli_repo_arg(optind < argc ? argv[optind] : NULL);
	if (!repo)
		return cli_usage("unlock", "give REPO");
	rc = repo_lock_list(repo, &locks, &n, &err);
	if (rc)
		return cli_fail(&err);
	if (!n)
		printf("repository '%s' is not locked\n", repo);
	for (i = 0; i < n; i++) {
		int one = unlock_one(repo, &locks[i], force);

		/* a failure outranks a refusal */
		if (one != MV_EXIT_OK &&
		    (ret == MV_EXIT_OK || one == MV_EXIT_FAIL))
			ret = one;
	}
	free(locks);
	return ret;
}
