/*
 * Unit tests for cli_pass: each passphrase source, their order, the
 * errors (failing command, missing file, no source at all, empty), and the
 * terminal through a pseudo-terminal: echo off while asking, back on after
 * an answer and after a signal.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../src/cli/cli_pass.h"
#include "util.h"

static char tmpdir[64];

static void unset_all(void)
{
	unsetenv("MAILVAULT_PASSPHRASE");
	unsetenv("MAILVAULT_PASSCOMMAND");
	unsetenv("MAILVAULT_PASSPHRASE_FILE");
	unsetenv("CREDENTIALS_DIRECTORY");
}

static int setup(void **state)
{
	(void)state;
	unset_all();
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/mv-pass.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	unset_all();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void write_text(const char *name, const char *text, char *path, size_t n)
{
	snprintf(path, n, "%s/%s", tmpdir, name);
	assert_int_equal(mv_write_file_atomic(path, text, strlen(text), NULL),
			 0);
}

/* Get the passphrase and check text and source. */
static void expect_pass(const char *text, const char *source)
{
	struct cli_pass p = CLI_PASS_INIT;
	struct mv_err err = MV_ERR_INIT;

	assert_int_equal(cli_pass_get(&p, NULL, 0, &err), 0);
	assert_string_equal(p.text, text);
	assert_int_equal(p.len, strlen(text));
	assert_string_equal(p.source, source);
	cli_pass_release(&p);
	assert_null(p.text);
}

static void test_cli_pass_env(void **state)
{
	(void)state;
	setenv("MAILVAULT_PASSPHRASE", "correct horse", 1);
	expect_pass("correct horse", "MAILVAULT_PASSPHRASE");
	setenv("MAILVAULT_PASSPHRASE", "with newline\n", 1);
	expect_pass("with newline", "MAILVAULT_PASSPHRASE");
}

static void test_cli_pass_command(void **state)
{
	struct cli_pass p = CLI_PASS_INIT;
	struct mv_err err = MV_ERR_INIT;

	(void)state;
	setenv("MAILVAULT_PASSCOMMAND", "printf 'from cmd\\nsecond line\\n'",
	       1);
	expect_pass("from cmd", "MAILVAULT_PASSCOMMAND");
	/* a long output is read to its end, not cut into a SIGPIPE */
	setenv("MAILVAULT_PASSCOMMAND", "echo first; seq 1 100000", 1);
	expect_pass("first", "MAILVAULT_PASSCOMMAND");

	setenv("MAILVAULT_PASSCOMMAND", "echo fine; exit 3", 1);
	assert_int_equal(cli_pass_get(&p, NULL, 0, &err), -EIO);
	assert_null(p.text);
	assert_non_null(strstr(err.msg, "'echo fine; exit 3'"));
	assert_non_null(strstr(err.msg, "exited with status 3"));

	mv_err_clear(&err);
	setenv("MAILVAULT_PASSCOMMAND", "kill -9 $$", 1);
	assert_int_equal(cli_pass_get(&p, NULL, 0, &err), -EIO);
	assert_non_null(strstr(err.msg, "killed by signal 9"));

	/* endless output is stopped, not read forever */
	mv_err_clear(&err);
	setenv("MAILVAULT_PASSCOMMAND", "yes", 1);
	assert_int_equal(cli_pass_get(&p, NULL, 0, &err), -EMSGSIZE);
	assert_null(p.text);
}

/* A command of ours may ignore SIGPIPE (backup does); the passphrase
 * command gets the default back, or its pipelines would not end. */
static void test_cli_pass_command_sigpipe(void **state)
{
	struct cli_pass p = CLI_PASS_INIT;
	struct mv_err err = MV_ERR_INIT;
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);
	unsigned long long ignored;
	char *end;

	(void)state;
	setenv("MAILVAULT_PASSCOMMAND",
	       "sed -n 's/^SigIgn:[[:space:]]*//p' /proc/self/status", 1);
	assert_int_equal(cli_pass_get(&p, NULL, 0, &err), 0);
	signal(SIGPIPE, old);
	ignored = strtoull(p.text, &end, 16);
	assert_true(end != p.text && *end == '\0');
	assert_false(ignored & (1ull << (SIGPIPE - 1)));
	cli_pass_release(&p);
}

static void test_cli_pass_file(void **state)
{
	struct cli_pass p = CLI_PASS_INIT;
	struct mv_err err = MV_ERR_INIT;
	char path[128];

	(void)state;
	write_text("pass", "from file\r\nnot this\n", path, sizeof(path));
	setenv("MAILVAULT_PASSPHRASE_FILE", path, 1);
	expect_pass("from file", "MAILVAULT_PASSPHRASE_FILE");
	write_text("pass2", "no newline at end", path, sizeof(path));
	setenv("MAILVAULT_PASSPHRASE_FILE", path, 1);
	expect_pass("no newline at end", "MAILVAULT_PASSPHRASE_FILE");

	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	setenv("MAILVAULT_PASSPHRASE_FILE", path, 1);
	assert_int_equal(cli_pass_get(&p, NULL, 0, &err), -ENOENT);
	assert_non_null(strstr(err.msg, path));
	assert_non_null(strstr(err.msg, "MAILVAULT_PASSPHRASE_FILE"));
}

static void test_cli_pass_credentials(void **state)
{
	char path[128];

	(void)state;
	write_text("mailvault-passphrase", "from systemd\n", path,
		   sizeof(path));
	setenv("CREDENTIALS_DIRECTORY", tmpdir, 1);
	expect_pass("from systemd", "CREDENTIALS_DIRECTORY");
}

static void test_cli_pass_precedence(void **state)
{
	char path[128], cred[128];

	(void)state;
	write_text("pass", "file\n", path, sizeof(path));
	write_text("mailvault-passphrase", "cred\n", cred, sizeof(cred));
	setenv("CREDENTIALS_DIRECTORY", tmpdir, 1);
	setenv("MAILVAULT_PASSPHRASE_FILE", path, 1);
	setenv("MAILVAULT_PASSCOMMAND", "echo cmd", 1);
	setenv("MAILVAULT_PASSPHRASE", "env", 1);
	expect_pass("env", "MAILVAULT_PASSPHRASE");
	/* set but empty counts as unset */
	setenv("MAILVAULT_PASSPHRASE", "", 1);
	expect_pass("cmd", "MAILVAULT_PASSCOMMAND");
	unsetenv("MAILVAULT_PASSCOMMAND");
	expect_pass("file", "MAILVAULT_PASSPHRASE_FILE");
	unsetenv("MAILVAULT_PASSPHRASE_FILE");
	expect_pass("cred", "CREDENTIALS_DIRECTORY");
}

static void test_cli_pass_empty_and_long(void **state)
{
	struct cli_pass p = CLI_PASS_INIT;
	struct mv_err err = MV_ERR_INIT;
	char path[128], *big;

	(void)state;
	write_text("empty", "\nsecond\n", path, sizeof(path));
	setenv("MAILVAULT_PASSPHRASE_FILE", path, 1);
	assert_int_equal(cli_pass_get(&p, NULL, CLI_PASS_NEW, &err), -ENOKEY);
	assert_non_null(strstr(err.msg, "empty passphrase"));
	assert_null(p.text);
	mv_err_clear(&err);
	assert_int_equal(cli_pass_get(&p, NULL, 0, &err), -ENOKEY);

	big = malloc(CLI_PASS_MAX + 2);
	assert_non_null(big);
	memset(big, 'x', CLI_PASS_MAX + 1);
	big[CLI_PASS_MAX + 1] = '\0';
	write_text("big", big, path, sizeof(path));
	setenv("MAILVAULT_PASSPHRASE_FILE", path, 1);
	mv_err_clear(&err);
	assert_int_equal(cli_pass_get(&p, NULL, 0, &err), -EMSGSIZE);
	big[CLI_PASS_MAX] = '\0';
	setenv("MAILVAULT_PASSPHRASE", big, 1);
	expect_pass(big, "MAILVAULT_PASSPHRASE");
	free(big);
}

/* No variable and no controlling terminal (a new session has none). */
static void test_cli_pass_no_source(void **state)
{
	pid_t pid;
	int status;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct cli_pass p = CLI_PASS_INIT;
		struct mv_err err = MV_ERR_INIT;
		int rc;

		setsid();
		rc = cli_pass_get(&p, NULL, 0, &err);
		_exit(rc == -ENOKEY &&
				      strstr(err.msg, "MAILVAULT_PASSPHRASE") &&
				      strstr(err.msg,
					     "MAILVAULT_PASSCOMMAND") &&
				      strstr(err.msg,
					     "MAILVAULT_PASSPHRASE_FILE") &&
				      cli_pass_exit(&err) == 12
			      ? 0
			      : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* Read from the pty master until the text seen so far ends with want. */
static void wait_for_output(int master, const char *want)
{
	char seen[256];
	size_t len = 0;

	for (;;) {
		struct pollfd pfd = {master, POLLIN, 0};
		ssize_t n;

		assert_true(poll(&pfd, 1, 20000) == 1);
		n = read(master, seen + len, sizeof(seen) - 1 - len);
		assert_true(n > 0);
		len += (size_t)n;
		seen[len] = '\0';
		if (strstr(seen, want))
			return;
		assert_true(len < sizeof(seen) - 1);
	}
}

/* Wait until the terminal's echo flag is on (or off). */
static void wait_for_echo(int slave, bool on)
{
	int i;

	for (i = 0; i < 20000; i++) {
		struct termios t;

		assert_int_equal(tcgetattr(slave, &t), 0);
		if (!!(t.c_lflag & ECHO) == on)
			return;
		usleep(1000);
	}
	fail_msg("the terminal's echo never turned %s", on ? "on" : "off");
}

/* A child in a new session whose controlling terminal is the pty asks for
 * a new passphrase and writes what it got to fd out. */
static pid_t spawn_asker(const char *slave_name, int out)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct cli_pass p = CLI_PASS_INIT;
		struct mv_err err = MV_ERR_INIT;
		int fd, rc;

		setsid();
		fd = open(slave_name, O_RDWR); /* becomes the controlling tty */
		if (fd < 0)
			_exit(2);
		rc = cli_pass_get(&p, "Passphrase: ", CLI_PASS_NEW, &err);
		if (rc == 0)
			mv_write_full(out, p.text, p.len);
		cli_pass_release(&p);
		_exit(rc == 0 ? 0 : 1);
	}
	return pid;
}

static int open_pty(int *slave, char *name, size_t n)
{
	int master = posix_openpt(O_RDWR | O_NOCTTY);

	if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0)
		return -1;
	snprintf(name, n, "%s", ptsname(master));
	*slave = open(name, O_RDWR | O_NOCTTY);
	return *slave < 0 ? -1 : master;
}

static void test_cli_pass_terminal(void **state)
{
	char name[64], got[64];
	int master, slave, pipefd[2], status;
	struct termios t;
	ssize_t n;
	pid_t pid;

	(void)state;
	master = open_pty(&slave, name, sizeof(name));
	if (master < 0)
		skip();
	assert_int_equal(pipe(pipefd), 0);
	pid = spawn_asker(name, pipefd[1]);
	close(pipefd[1]);
	wait_for_output(master, "Passphrase: ");
	wait_for_echo(slave, false);
	assert_int_equal(write(master, "typed secret\n", 13), 13);
	wait_for_output(master, "Enter it again: ");
	assert_int_equal(write(master, "typed secret\n", 13), 13);
	n = read(pipefd[0], got, sizeof(got) - 1);
	assert_int_equal(n, 12);
	got[n] = '\0';
	assert_string_equal(got, "typed secret");
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(tcgetattr(slave, &t), 0);
	assert_true(t.c_lflag & ECHO);
	close(pipefd[0]);
	close(slave);
	close(master);
}

static void test_cli_pass_terminal_mismatch(void **state)
{
	char name[64];
	int master, slave, pipefd[2], status;
	pid_t pid;

	(void)state;
	master = open_pty(&slave, name, sizeof(name));
	if (master < 0)
		skip();
	assert_int_equal(pipe(pipefd), 0);
	pid = spawn_asker(name, pipefd[1]);
	close(pipefd[1]);
	wait_for_output(master, "Passphrase: ");
	wait_for_echo(slave, false);
	assert_int_equal(write(master, "one\n", 4), 4);
	wait_for_output(master, "Enter it again: ");
	assert_int_equal(write(master, "two\n", 4), 4);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	close(pipefd[0]);
	close(slave);
	close(master);
}

/* SIGTERM while asking: the process still dies of it, and the terminal
 * has its echo back. */
static void test_cli_pass_terminal_signal(void **state)
{
	char name[64];
	int master, slave, pipefd[2], status;
	pid_t pid;

	(void)state;
	master = open_pty(&slave, name, sizeof(name));
	if (master < 0)
		skip();
	assert_int_equal(pipe(pipefd), 0);
	pid = spawn_asker(name, pipefd[1]);
	close(pipefd[1]);
	wait_for_output(master, "Passphrase: ");
	wait_for_echo(slave, false);
	assert_int_equal(kill(pid, SIGTERM), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGTERM);
	wait_for_echo(slave, true);
	close(pipefd[0]);
	close(slave);
	close(master);
}

/* ^Z while asking: echo comes back on for the shell, and once the process
 * runs again the question is asked again (a child in a session of its
 * own is an orphaned process group: the kernel discards the stop). */
static void test_cli_pass_terminal_stop(void **state)
{
	char name[64], got[64];
	int master, slave, pipefd[2], status;
	ssize_t n;
	pid_t pid;

	(void)state;
	master = open_pty(&slave, name, sizeof(name));
	if (master < 0)
		skip();
	assert_int_equal(pipe(pipefd), 0);
	pid = spawn_asker(name, pipefd[1]);
	close(pipefd[1]);
	wait_for_output(master, "Passphrase: ");
	wait_for_echo(slave, false);
	assert_int_equal(write(master, "half", 4), 4);
	/* a pty hands written bytes to the other side's line discipline
	 * asynchronously, and a partial line is not counted by TIOCINQ:
	 * give "half" time to land, or the re-ask's flush can come before
	 * it and it joins the next answer (seen under ASan) */
	tcdrain(master);
	usleep(300 * 1000);
	assert_int_equal(kill(pid, SIGTSTP), 0);
	wait_for_output(master, "Passphrase: ");
	wait_for_echo(slave, false);
	assert_int_equal(write(master, "whole\n", 6), 6);
	wait_for_output(master, "Enter it again: ");
	assert_int_equal(write(master, "whole\n", 6), 6);
	n = read(pipefd[0], got, sizeof(got) - 1);
	assert_int_equal(n, 5);
	got[n] = '\0';
	assert_string_equal(got, "whole");
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(pipefd[0]);
	close(slave);
	close(master);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cli_pass_env, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cli_pass_command, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cli_pass_command_sigpipe,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_pass_file, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cli_pass_credentials,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_pass_precedence, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cli_pass_empty_and_long,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_pass_no_source, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cli_pass_terminal, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cli_pass_terminal_mismatch,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_pass_terminal_signal,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_pass_terminal_stop,
						setup, teardown),
	};

	return cmocka_run_group_tests_name("cli_pass", tests, NULL, NULL);
}
