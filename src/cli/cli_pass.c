/* cli_pass: the passphrase sources (src/cli/cli_pass.h). */
#include "cli_pass.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "util.h"

/* room for CLI_PASS_MAX bytes, a "\r\n" and the NUL */
#define BUF_CAP (CLI_PASS_MAX + 3)
/* what a passphrase command may print in all before it is stopped */
#define CMD_OUTPUT_MAX (1u << 20)

static const char no_source_msg[] =
	"no passphrase: not on a terminal and none of MAILVAULT_PASSPHRASE, "
	"MAILVAULT_PASSCOMMAND, MAILVAULT_PASSPHRASE_FILE set (nor "
	"$CREDENTIALS_DIRECTORY/mailvault-passphrase)";

static const char *env_set(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

/* Cut buf[0..*len) at its first newline and drop a "\r" before it.
 * Returns true when a newline was found. */
static bool cut_line(char *buf, size_t *len)
{
	char *nl = memchr(buf, '\n', *len);
	bool found = nl != NULL;

	if (found)
		*len = (size_t)(nl - buf);
	if (found && *len > 0 && buf[*len - 1] == '\r')
		(*len)--;
	buf[*len] = '\0';
	return found;
}

static int too_long(const char *what, struct mv_err *err)
{
	return mv_err_set(err, -EMSGSIZE,
			  "passphrase from %s is longer than %d bytes", what,
			  CLI_PASS_MAX);
}

/* Read the first line of fd into buf (BUF_CAP bytes).  With drain, read
 * on to the end (a command's pipe, so that it does not die of SIGPIPE),
 * at most CMD_OUTPUT_MAX bytes in all. */
static int read_line(int fd, char *buf, size_t *out_len, bool drain,
		     const char *what, struct mv_err *err)
{
	char scratch[512];
	size_t len = 0, total = 0;
	bool have_line = false;
	ssize_t n;
	int rc = 0;

	for (;;) {
		if (!have_line)
			n = read(fd, buf + len, BUF_CAP - 1 - len);
		else
			n = read(fd, scratch, sizeof(scratch));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = mv_err_set(err, -errno, "cannot read %s: %s", what,
					strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		total += (size_t)n;
		if (total > CMD_OUTPUT_MAX) {
			rc = mv_err_set(err, -EMSGSIZE,
					"%s printed more than %u bytes", what,
					CMD_OUTPUT_MAX);
			goto out;
		}
		if (!have_line) {
			len += (size_t)n;
			have_line = memchr(buf + len - (size_t)n, '\n',
					   (size_t)n) != NULL;
			if (!have_line && len == BUF_CAP - 1)
				break; /* no newline in room: too long */
		}
		if (have_line && !drain)
			break;
	}
	cut_line(buf, &len);
	if (len > CLI_PASS_MAX)
		rc = too_long(what, err);
	*out_len = len;
out:
	sodium_memzero(scratch, sizeof(scratch));
	return rc;
}

static int from_env(const char *value, char *buf, size_t *out_len,
		    struct mv_err *err)
{
	size_t len = strlen(value);

	if (len >= BUF_CAP)
		return too_long("MAILVAULT_PASSPHRASE", err);
	memcpy(buf, value, len);
	cut_line(buf, &len);
	if (len > CLI_PASS_MAX)
		return too_long("MAILVAULT_PASSPHRASE", err);
	*out_len = len;
	return 0;
}

static int from_file(const char *path, const char *var, char *buf,
		     size_t *out_len, struct mv_err *err)
{
	char what[600];
	int fd, rc;

	snprintf(what, sizeof(what), "passphrase file '%s' (%s)", path, var);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return mv_err_set(err, -errno, "cannot open %s: %s", what,
				  strerror(errno));
	rc = read_line(fd, buf, out_len, false, what, err);
	close(fd);
	return rc;
}

static int from_command(const char *cmd, char *buf, size_t *out_len,
			struct mv_err *err)
{
	char *argv[] = {(char *)"sh", (char *)"-c", (char *)cmd, NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t sigs;
	char what[600];
	int pipefd[2] = {-1, -1};
	bool fa_init = false, attr_init = false;
	pid_t pid = -1;
	int rc, status;

	snprintf(what, sizeof(what), "passphrase command '%s' (%s)", cmd,
		 "MAILVAULT_PASSCOMMAND");
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return mv_err_set(err, -errno, "cannot run %s: pipe: %s", what,
				  strerror(errno));
	rc = -posix_spawn_file_actions_init(&fa);
	if (rc < 0)
		goto out_spawn;
	fa_init = true;
	/* dup2 clears close-on-exec on the child's stdout */
	rc = -posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
	if (rc < 0)
		goto out_spawn;
	/* the command's pipelines (pass show x | head -1) need SIGPIPE's
	 * default action, which a command of ours may have set to ignore */
	rc = -posix_spawnattr_init(&attr);
	if (rc < 0)
		goto out_spawn;
	attr_init = true;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGPIPE);
	rc = -posix_spawnattr_setsigdefault(&attr, &sigs);
	sigemptyset(&sigs);
	if (rc == 0)
		rc = -posix_spawnattr_setsigmask(&attr, &sigs);
	if (rc == 0)
		rc = -posix_spawnattr_setflags(
			&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
	if (rc < 0)
		goto out_spawn;
	rc = -posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, environ);
out_spawn:
	if (rc < 0) {
		rc = mv_err_set(err, rc, "cannot run %s: %s", what,
				strerror(-rc));
		goto out;
	}
	close(pipefd[1]);
	pipefd[1] = -1;
	rc = read_line(pipefd[0], buf, out_len, true, what, err);
	close(pipefd[0]);
	pipefd[0] = -1;
	if (rc < 0)
		kill(pid, SIGTERM); /* it may still be writing */
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			if (rc == 0)
				rc = mv_err_set(err, -errno,
						"cannot wait for %s: %s", what,
						strerror(errno));
			goto out;
		}
	}
	if (rc < 0)
		goto out;
	if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
		rc = mv_err_set(err, -EIO, "%s exited with status %d", what,
				WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		rc = mv_err_set(err, -EIO, "%s was killed by signal %d", what,
				WTERMSIG(status));
out:
	if (fa_init)
		posix_spawn_file_actions_destroy(&fa);
	if (attr_init)
		posix_spawnattr_destroy(&attr);
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	return rc;
}

/* Signals that would leave the terminal without echo: caught while it is
 * off, delivered again once it is back on.  The last three stop the
 * process (^Z, background); once it runs again the question is asked
 * again, as the shell will have put echo back on meanwhile. */
static const int tty_sigs[] = {SIGINT,	SIGTERM, SIGHUP, SIGQUIT,
			       SIGTSTP, SIGTTIN, SIGTTOU};
#define TTY_FIRST_STOP 4
static volatile sig_atomic_t tty_caught[MV_ARRAY_SIZE(tty_sigs)];

static void on_tty_signal(int sig)
{
	size_t i;

	for (i = 0; i < MV_ARRAY_SIZE(tty_sigs); i++)
		if (tty_sigs[i] == sig)
			tty_caught[i] = 1;
}

static bool tty_signalled(void)
{
	size_t i;

	for (i = 0; i < MV_ARRAY_SIZE(tty_sigs); i++)
		if (tty_caught[i])
			return true;
	return false;
}

/* Ask once on the open terminal fd, echo off.  *stopped: only stop
 * signals interrupted it (-EINTR), and the process has run again since. */
static int tty_ask_once(int fd, const char *prompt, char *buf, size_t *out_len,
			bool *stopped, struct mv_err *err)
{
	struct sigaction sa, old[MV_ARRAY_SIZE(tty_sigs)];
	struct termios saved, quiet;
	size_t i, len = 0;
	bool too_big = false;
	int rc = 0;
	char c;

	*stopped = false;
	if (tcgetattr(fd, &saved) < 0)
		return mv_err_set(err, -ENOKEY, "%s", no_source_msg);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_tty_signal; /* no SA_RESTART: read returns EINTR */
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < MV_ARRAY_SIZE(tty_sigs); i++) {
		tty_caught[i] = 0;
		sigaction(tty_sigs[i], &sa, &old[i]);
	}
	quiet = saved;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK);
	quiet.c_lflag |= ECHONL | ICANON;
	/* echo off first: what is typed after the prompt shows is hidden */
	if (tcsetattr(fd, TCSAFLUSH, &quiet) < 0 ||
	    mv_write_full(fd, prompt, strlen(prompt)) < 0) {
		rc = mv_err_set(err, tty_signalled() ? -EINTR : -EIO,
				"cannot ask for the passphrase on "
				"the terminal: %s",
				strerror(errno));
		goto out_restore;
	}
	for (;;) {
		ssize_t n;

		if (tty_signalled()) {
			rc = mv_err_set(err, -EINTR,
					"interrupted while asking "
					"for the passphrase");
			break;
		}
		n = read(fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = mv_err_set(err, -EIO,
					"cannot read the passphrase "
					"from the terminal: %s",
					strerror(errno));
			break;
		}
		if (n == 0 || c == '\n')
			break;
		if (len < BUF_CAP - 1)
			buf[len++] = c;
		else
			too_big = true;
	}
	c = 0;
	cut_line(buf, &len);
	if (rc == 0 && (too_big || len > CLI_PASS_MAX))
		rc = too_long("the terminal", err);
	*out_len = len;
out_restore:
	tcsetattr(fd, TCSAFLUSH, &saved);
	for (i = 0; i < MV_ARRAY_SIZE(tty_sigs); i++)
		sigaction(tty_sigs[i], &old[i], NULL);
	*stopped = rc == -EINTR;
	for (i = 0; i < MV_ARRAY_SIZE(tty_sigs); i++) {
		if (!tty_caught[i])
			continue;
		if (i < TTY_FIRST_STOP)
			*stopped = false;
		kill(getpid(), tty_sigs[i]);
	}
	return rc;
}

static int tty_ask(int fd, const char *prompt, char *buf, size_t *out_len,
		   struct mv_err *err)
{
	struct mv_err one = MV_ERR_INIT;
	bool stopped;
	int rc;

	do {
		mv_err_clear(&one);
		rc = tty_ask_once(fd, prompt, buf, out_len, &stopped, &one);
	} while (stopped);
	if (rc < 0)
		mv_err_set(err, rc, "%s", one.msg);
	return rc;
}

static int from_tty(const char *prompt, unsigned flags, char *buf,
		    size_t *out_len, struct mv_err *err)
{
	char *again = NULL;
	size_t again_len = 0;
	int fd, rc;

	fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return mv_err_set(err, -ENOKEY, "%s", no_source_msg);
	rc = tty_ask(fd, prompt, buf, out_len, err);
	if (rc < 0 || !(flags & CLI_PASS_NEW) || *out_len == 0)
		goto out;
	again = sodium_malloc(BUF_CAP);
	if (!again) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	rc = tty_ask(fd, "Enter it again: ", again, &again_len, err);
	if (rc < 0)
		goto out;
	if (again_len != *out_len || sodium_memcmp(again, buf, again_len))
		rc = mv_err_set(err, -EINVAL, "the two passphrases differ");
out:
	sodium_free(again);
	close(fd);
	return rc;
}

int cli_pass_get(struct cli_pass *out, const char *prompt, unsigned flags,
		 struct mv_err *err)
{
	const char *v, *source;
	char cred[4096];
	char *buf = NULL;
	size_t len = 0;
	int rc;

	if (sodium_init() < 0)
		return mv_err_set(err, -EIO, "cannot start libsodium");
	buf = sodium_malloc(BUF_CAP);
	if (!buf)
		return mv_err_set(err, -ENOMEM, "out of memory");
	if ((v = env_set("MAILVAULT_PASSPHRASE"))) {
		source = "MAILVAULT_PASSPHRASE";
		rc = from_env(v, buf, &len, err);
	} else if ((v = env_set("MAILVAULT_PASSCOMMAND"))) {
		source = "MAILVAULT_PASSCOMMAND";
		rc = from_command(v, buf, &len, err);
	} else if ((v = env_set("MAILVAULT_PASSPHRASE_FILE"))) {
		source = "MAILVAULT_PASSPHRASE_FILE";
		rc = from_file(v, source, buf, &len, err);
	} else if ((v = env_set("CREDENTIALS_DIRECTORY")) &&
		   (size_t)snprintf(cred, sizeof(cred),
				    "%s/mailvault-passphrase",
				    v) < sizeof(cred) &&
		   access(cred, F_OK) == 0) {
		source = "CREDENTIALS_DIRECTORY";
		rc = from_file(cred, source, buf, &len, err);
	} else {
		source = "the terminal";
		if (!prompt)
			prompt = flags & CLI_PASS_NEW
					 ? "Enter a new mailvault passphrase: "
					 : "mailvault passphrase: ";
		rc = from_tty(prompt, flags, buf, &len, err);
	}
	if (rc < 0)
		goto out;
	if (len == 0) {
		rc = mv_err_set(
			err, -ENOKEY,
			flags & CLI_PASS_NEW
				? "empty passphrase from %s: a repository "
				  "key needs one"
				: "empty passphrase from %s: no key slot has "
				  "one",
			source);
		goto out;
	}
	out->text = buf;
	out->len = len;
	out->source = source;
	buf = NULL;
out:
	sodium_free(buf); /* wipes */
	return rc;
}

void cli_pass_release(struct cli_pass *p)
{
	if (!p)
		return;
	sodium_free(p->text);
	p->text = NULL;
	p->len = 0;
	p->source = "";
}

int cli_pass_exit(const struct mv_err *err)
{
	if (err->code == -ENOKEY || err->code == -EKEYREJECTED) {
		fprintf(stderr, "mailvault: %s\n", mv_err_msg(err));
		return MV_EXIT_BADKEY;
	}
	return cli_fail(err);
}
