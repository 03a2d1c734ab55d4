/*
 * cli_pass: where a command gets the repository passphrase from
 * (docs/FORMAT-2.md section 4, "Passphrase sources").  The first source
 * found wins:
 *
 *   1. MAILVAULT_PASSPHRASE       the value itself
 *   2. MAILVAULT_PASSCOMMAND      run with sh -c; the first line of its
 *                                 stdout; a non-zero exit is an error
 *   3. MAILVAULT_PASSPHRASE_FILE  the first line of that file
 *   4. $CREDENTIALS_DIRECTORY/mailvault-passphrase   (systemd
 *                                 LoadCredential=), when the file exists
 *   5. the terminal, /dev/tty, with echo off (asked twice for a new one)
 *
 * A variable set to the empty string counts as unset.  Of a source's text
 * only the first line is used, without its "\n" (or "\r\n").  An empty
 * passphrase is refused: a new one with a message, an old one because
 * no slot can have been made with it.
 *
 * The passphrase lives in sodium_malloc'ed (guarded, locked) memory and
 * is wiped by cli_pass_release.  The terminal's echo is restored on every
 * way out, a signal included: SIGINT, SIGTERM, SIGHUP and SIGQUIT that
 * arrive while it is off are delivered again once it is back on; after
 * SIGTSTP, SIGTTIN or SIGTTOU (^Z) the process stops with echo on and asks
 * again when it runs again.  SIGKILL cannot be caught: then `stty sane`.
 */
#ifndef MV_CLI_PASS_H
#define MV_CLI_PASS_H

#include <stddef.h>

#include "mv_err.h"

/* Longest passphrase accepted, in bytes. */
#define CLI_PASS_MAX 1024

enum cli_pass_flags {
	/* A new passphrase (init, key add, change-passphrase): asked twice
	 * on the terminal, and the error for an empty one says so. */
	CLI_PASS_NEW = 1 << 0,
};

struct cli_pass {
	char *text;	    /* NUL-terminated, sodium_malloc'ed; NULL if none */
	size_t len;	    /* bytes before the NUL */
	const char *source; /* static name of where it came from */
};

#define CLI_PASS_INIT       \
	{                   \
		NULL, 0, "" \
	}

/*
 * Find the passphrase.  prompt is what the terminal shows (NULL: "mailvault
 * passphrase: ").  Errors:
 *   -ENOKEY    no source: none of the variables set and no terminal (the
 *              message names the variables); also an empty passphrase
 *   -EIO etc.  a source failed: the command exited non-zero or was killed,
 *              the file cannot be read (the message names it)
 *   -EMSGSIZE  longer than CLI_PASS_MAX
 *   -EINVAL    the two answers of a new passphrase differ
 *   -EINTR     a signal arrived while the terminal was asking
 * Commands map -ENOKEY and -EKEYREJECTED to MV_EXIT_BADKEY (cli_pass_exit).
 */
int cli_pass_get(struct cli_pass *out, const char *prompt, unsigned flags,
		 struct mv_err *err);

/* Wipe and free the passphrase; leaves *p as CLI_PASS_INIT.  NULL ok. */
void cli_pass_release(struct cli_pass *p);

/* Print "mailvault: <message>" and return the exit status for it:
 * MV_EXIT_BADKEY for -ENOKEY and -EKEYREJECTED, else as cli_fail. */
int cli_pass_exit(const struct mv_err *err);

#endif
