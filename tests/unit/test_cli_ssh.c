/* test_cli_ssh: the SSH options every command accepts are taken out of
 * argv wherever they stand and become the remote layer's defaults. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/cli/cli.h"
#include "ssh.h"
#include "ssh_config.h"

#define KEY "/etc/hostname" /* any readable file */

/* Run cli_ssh_options on a NULL-terminated list (the strings are only
 * moved, never written); what is left is in argv[0 .. *argc_out). */
static int run(const char **in, char **argv, int *argc_out)
{
	int argc = 0;

	while (in[argc]) {
		argv[argc] = (char *)in[argc];
		argc++;
	}
	argv[argc] = NULL;
	if (cli_ssh_options(&argc, argv))
		return -1;
	*argc_out = argc;
	return 0;
}

static void test_anywhere(void **state)
{
	const char *in[] = {
		"mailvault", "backup", "sftp://h/r", "-i",
		KEY,	     "--name", "x",	     "--accept-new-host-key",
		"v=-",	     NULL};
	struct ssh_opts o;
	char *argv[16];
	int argc;

	(void)state;
	assert_int_equal(run(in, argv, &argc), 0);
	assert_int_equal(argc, 6);
	assert_string_equal(argv[2], "sftp://h/r");
	assert_string_equal(argv[3], "--name");
	assert_string_equal(argv[4], "x");
	assert_string_equal(argv[5], "v=-");
	assert_null(argv[6]);
	ssh_get_default_opts(&o);
	assert_string_equal(o.identity, KEY);
	assert_true(o.accept_new_host_key);
	assert_int_equal(o.retries, 3);
}

static void test_forms(void **state)
{
	const char *a1[] = {"mailvault", "ls", "-i" KEY, "r", NULL};
	const char *a2[] = {"mailvault", "ls", "--identity=" KEY, "r", NULL};
	const char *a3[] = {"mailvault", "ls", "--identity", KEY, "r", NULL};
	struct ssh_opts o;
	char *argv[16];
	int argc;

	(void)state;
	assert_int_equal(run(a1, argv, &argc), 0);
	assert_int_equal(argc, 3);
	ssh_get_default_opts(&o);
	assert_string_equal(o.identity, KEY);
	assert_false(o.accept_new_host_key);
	assert_int_equal(run(a2, argv, &argc), 0);
	assert_int_equal(argc, 3);
	assert_int_equal(run(a3, argv, &argc), 0);
	assert_int_equal(argc, 3);
	assert_string_equal(argv[2], "r");
}

/* "--exec -i" is a command; "--" ends the options. */
static void test_values_kept(void **state)
{
	const char *a1[] = {"mailvault", "backup",	   "--exec",
			    "-i",	 "x=ssh-exec://h", NULL};
	const char *a2[] = {"mailvault", "cat", "r", "--", "-i", NULL};
	struct ssh_opts o;
	char *argv[16];
	int argc;

	(void)state;
	assert_int_equal(run(a1, argv, &argc), 0);
	assert_int_equal(argc, 5);
	assert_string_equal(argv[3], "-i");
	ssh_get_default_opts(&o);
	assert_null(o.identity);
	assert_int_equal(run(a2, argv, &argc), 0);
	assert_int_equal(argc, 5);
	assert_string_equal(argv[4], "-i");
}

static void test_errors(void **state)
{
	const char *a1[] = {"mailvault", "ls", "r", "-i", NULL};
	const char *a2[] = {"mailvault",	"ls", "-i",
			    "/nonexistent/key", "r",  NULL};
	char *argv[16];
	int argc;

	(void)state;
	assert_int_equal(run(a1, argv, &argc), -1);
	assert_int_equal(run(a2, argv, &argc), -1);
}

/* --ssh-config FILE|none, in both forms; "none" reaches the remote
 * layer (the location is then used as written). */
static void test_ssh_config(void **state)
{
	const char *a1[] = {"mailvault", "ls", "--ssh-config",
			    "none",	 "r",  NULL};
	const char *a2[] = {"mailvault", "ls", "--ssh-config=/nonexistent", "r",
			    NULL};
	const char *a3[] = {"mailvault", "ls", "r", "--ssh-config", NULL};
	struct mv_err err = MV_ERR_INIT;
	struct ssh_host_config c;
	struct ssh_url u;
	char *argv[16];
	int argc;

	(void)state;
	assert_int_equal(run(a1, argv, &argc), 0);
	assert_int_equal(argc, 3);
	assert_string_equal(argv[2], "r");
	assert_int_equal(ssh_url_parse("sftp://somealias/r", &u, &err), 0);
	assert_int_equal(ssh_config_resolve(&u, &c, &err), 0);
	assert_false(c.from_openssh);
	assert_string_equal(c.hostname, "somealias");
	ssh_host_config_release(&c);
	ssh_url_release(&u);
	ssh_config_set_file(NULL);
	assert_int_equal(run(a2, argv, &argc), -1);
	assert_int_equal(run(a3, argv, &argc), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_anywhere),
		cmocka_unit_test(test_forms),
		cmocka_unit_test(test_values_kept),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_ssh_config),
	};

	return cmocka_run_group_tests_name("cli_ssh", tests, NULL, NULL);
}
