/*
 * cli: the mailvault command line.  One file per command,
 * src/cli/cmd_<verb>.c, each exporting cmd_<verb>(); src/cli/main.c holds
 * the table.  Only commands print and choose the exit status, one of the
 * MV_EXIT_ codes below; they are stable and documented in mailvault(1).
 * They follow restic's where restic has one, so scripts written for it
 * read them the same way.
 */
#ifndef MV_CLI_H
#define MV_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "mv_err.h"

#define MV_EXIT_OK 0	   /* success */
#define MV_EXIT_FAIL 1	   /* failure not named below */
#define MV_EXIT_USAGE 2	   /* bad command line */
#define MV_EXIT_WARN 3	   /* completed, with warnings printed */
#define MV_EXIT_NOREPO 10  /* no repository at that location */
#define MV_EXIT_LOCKED 11  /* the repository is locked by another writer */
#define MV_EXIT_BADKEY 12  /* wrong passphrase or key */
#define MV_EXIT_DAMAGED 13 /* the repository is damaged (check found loss) */
#define MV_EXIT_PARTIAL 14 /* some of the work was done, not all */
#define MV_EXIT_INTERRUPTED 130 /* stopped by SIGINT or SIGTERM */

/* Print "mailvault: <msg>" to stderr; returns MV_EXIT_LOCKED for -EBUSY
 * (a locked repository), MV_EXIT_BADKEY for -ENOKEY and -EKEYREJECTED (no
 * passphrase, a wrong one), MV_EXIT_DAMAGED for an error marked damaged
 * (mv_err_set_damaged: a sealed index that does not open or was rolled
 * back), else MV_EXIT_FAIL. */
int cli_fail(const struct mv_err *err);
/* How commands unlock encrypted repositories (repo_set_unlock): the
 * passphrase from cli_pass_get, asked at most once per command and kept
 * until cli_unlock_release; the key file from MAILVAULT_KEYFILE.  main()
 * calls both around every command. */
void cli_unlock_setup(void);
void cli_unlock_release(void);
/* Print "mailvault <cmd>: <formatted>" and usage hint; returns
 * MV_EXIT_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) MV_PRINTF(2, 3);
/* The repository location: the given argument, else $MAILVAULT_REPO, else
 * NULL. */
const char *cli_repo_arg(const char *given);
/* Print s as a JSON string literal (quotes and escapes) to stdout. */
void cli_json_str(const char *s);
/* JSON output (jansson; keys documented in mailvault(1), JSON OUTPUT):
 * print j compactly on one line of stdout and release it (NULL: "null",
 * a failed allocation on the way). */
struct json_t;
struct tree_entry;
void cli_json_out(struct json_t *j);
/* A tree entry as {"name", "type", "mode", "uid", "gid", "user", "group",
 * "size", "mtime", "target"}: type is file, dir, symlink, fifo, chr, blk
 * or sock; mode the permission bits as a number; mtime ISO 8601 UTC with
 * nanoseconds; user, group and target null when absent.  NULL when out of
 * memory. */
struct json_t *cli_json_entry(const struct tree_entry *e, const char *name);
/* True when stderr is a terminal (progress lines). */
bool cli_is_tty(void);
/* Help texts (src/cli/cli_help.c): "mailvault CMD --help" and
 * "mailvault help CMD" print the command's entry there, before the
 * command runs.  A command without an entry (run) gets "--help" itself
 * and prints its own.  A new command adds its entry to that table (or
 * handles --help itself); tests/integration/t0060-help.sh checks that
 * every option its getopt tables parse is described. */
const char *cli_help_text(const char *cmd);
/* Print the entry of cmd, if it has one, to f. */
void cli_help_print(const char *cmd, FILE *f);
/* Take the SSH options out of argv (anywhere after the command name, up
 * to "--"): -i FILE (--identity FILE) and --accept-new-host-key, and set
 * them as the defaults of every remote location (ssh_set_default_opts).
 * Returns 0, or MV_EXIT_USAGE after printing why. */
int cli_ssh_options(int *argc, char **argv);

struct repo;
struct snapshot;
/* Open the repository read-only, resolve SNAP[:PATH] and look the path
 * up.  On success the caller releases all three (and *out_path when
 * asked for). */
int cli_open_entry(const char *repo_arg, const char *spec, struct repo **out_r,
		   struct snapshot *out_snap, struct tree_entry *out_entry,
		   char **out_path, struct mv_err *err);

int cmd_init(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_snapshots(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_export_tar(int argc, char **argv);
/* commands added by later modules go below this line */
int cmd_mount(int argc, char **argv);
int cmd_forget(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_rebuild_index(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_unlock(int argc, char **argv);
int cmd_find(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_restore_mail(int argc, char **argv);

#endif
