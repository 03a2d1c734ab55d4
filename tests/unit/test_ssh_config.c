/* test_ssh_config: what `ssh -G` prints becomes the connection's host,
 * port, user, identities, known hosts and proxy; OpenSSH's defaults are
 * told apart from what the user configured. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ssh.h"
#include "ssh_config.h"

/* the lines of `ssh -G` that matter, as OpenSSH 9.2 prints them for a
 * host with nothing configured (other lines are ignored) */
static const char defaults_text[] =
	"host nas\n"
	"user root\n"
	"hostname nas\n"
	"port 22\n"
	"addressfamily any\n"
	"identitiesonly no\n"
	"identityfile ~/.ssh/id_rsa\n"
	"identityfile ~/.ssh/id_ecdsa\n"
	"identityfile ~/.ssh/id_ecdsa_sk\n"
	"identityfile ~/.ssh/id_ed25519\n"
	"identityfile ~/.ssh/id_ed25519_sk\n"
	"identityfile ~/.ssh/id_xmss\n"
	"identityfile ~/.ssh/id_dsa\n"
	"connecttimeout none\n"
	"stricthostkeychecking ask\n"
	"globalknownhostsfile /etc/ssh/ssh_known_hosts "
	"/etc/ssh/ssh_known_hosts2\n";

static void parse(const char *text, const char *url, struct ssh_host_config *c)
{
	struct mv_err err = MV_ERR_INIT;
	struct ssh_url u;

	assert_int_equal(ssh_url_parse(url, &u, &err), 0);
	assert_int_equal(
		ssh_config_parse(text, &u, "/home/ann", "ann", c, &err), 0);
	ssh_url_release(&u);
}

static void test_nothing_configured(void **state)
{
	struct ssh_host_config c;

	(void)state;
	parse(defaults_text, "sftp://nas/r", &c);
	assert_true(c.from_openssh);
	assert_string_equal(c.host, "nas");
	assert_string_equal(c.hostname, "nas");
	assert_int_equal(c.port, 22);
	/* OpenSSH's list of defaults is not a choice of the user: ours
	 * (agent first, then id_ed25519, id_ecdsa, id_rsa) apply */
	assert_int_equal(c.n_identity_files, 0);
	assert_false(c.identities_only);
	assert_null(c.proxy_jump);
	assert_null(c.proxy_command);
	assert_null(c.host_key_alias);
	assert_int_equal(c.connect_timeout_s, 0);
	assert_false(c.accept_new_host_key);
	assert_int_equal(c.n_global_known_hosts, 2);
	assert_string_equal(c.global_known_hosts[0],
			    "/etc/ssh/ssh_known_hosts");
	ssh_host_config_release(&c);
}

static void test_alias(void **state)
{
	static const char text[] =
		"host vault\n"
		"user u123\n"
		"hostname u123.your-storagebox.de\n"
		"port 23\n"
		"identitiesonly yes\n"
		"identityfile ~/.ssh/vault_%r_%h\n"
		"identityfile %d/keys/%u-%n.key\n"
		"userknownhostsfile /etc/mailvault/known_hosts /tmp/other\n"
		"hostkeyalias storagebox\n"
		"connecttimeout 7\n"
		"stricthostkeychecking accept-new\n"
		"proxyjump jump@bastion:2222\n";
	struct ssh_host_config c;

	(void)state;
	parse(text, "sftp://vault/home/mail", &c);
	assert_string_equal(c.host, "vault");
	assert_string_equal(c.hostname, "u123.your-storagebox.de");
	assert_int_equal(c.port, 23);
	assert_string_equal(c.user, "u123");
	assert_true(c.identities_only);
	assert_int_equal(c.n_identity_files, 2);
	assert_string_equal(
		c.identity_files[0],
		"/home/ann/.ssh/vault_u123_u123.your-storagebox.de");
	assert_string_equal(c.identity_files[1],
			    "/home/ann/keys/ann-vault.key");
	assert_int_equal(c.n_known_hosts, 2);
	assert_string_equal(c.known_hosts[0], "/etc/mailvault/known_hosts");
	assert_string_equal(c.host_key_alias, "storagebox");
	assert_int_equal(c.connect_timeout_s, 7);
	assert_true(c.accept_new_host_key);
	assert_string_equal(c.proxy_jump, "jump@bastion:2222");
	ssh_host_config_release(&c);
}

/* a user written in the location wins over User (ssh got it as -l and
 * prints it anyway; a stale line must not matter) */
static void test_location_user_wins(void **state)
{
	static const char text[] = "user fromconfig\nhostname h\nport 22\n";
	struct ssh_host_config c;

	(void)state;
	parse(text, "sftp://me@h/r", &c);
	assert_string_equal(c.user, "me");
	ssh_host_config_release(&c);
}

static void test_proxy_command_tokens(void **state)
{
	static const char text[] =
		"hostname 10.1.2.3\n"
		"port 2200\n"
		"user bob\n"
		"proxycommand nc -X 5 -x gw:1080 %h %p # %%\n"
		"proxyjump none\n";
	struct ssh_host_config c;

	(void)state;
	parse(text, "sftp://box/r", &c);
	assert_string_equal(c.proxy_command,
			    "nc -X 5 -x gw:1080 10.1.2.3 2200 # %");
	assert_null(c.proxy_jump);
	ssh_host_config_release(&c);
}

/* Without an ssh binary the location is used as written. */
static void test_no_ssh_binary(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct ssh_host_config c;
	struct ssh_url u;

	(void)state;
	setenv("MAILVAULT_SSH", "/nonexistent/ssh", 1);
	assert_int_equal(ssh_url_parse("sftp://a@nohost:2022/r", &u, &err), 0);
	assert_int_equal(ssh_config_resolve(&u, &c, &err), 0);
	assert_false(c.from_openssh);
	assert_string_equal(c.hostname, "nohost");
	assert_string_equal(c.user, "a");
	assert_int_equal(c.port, 2022);
	ssh_host_config_release(&c);
	ssh_url_release(&u);
	unsetenv("MAILVAULT_SSH");
}

/* A real ssh -G with a private configuration file (-F), when OpenSSH's
 * client is installed. */
static void test_real_ssh_g(void **state)
{
	char dir[] = "/tmp/mv-sshcfg.XXXXXX", path[64];
	struct mv_err err = MV_ERR_INIT;
	struct ssh_host_config c;
	struct ssh_url u;
	FILE *f;

	(void)state;
	if (system("command -v ssh >/dev/null 2>&1") != 0)
		skip();
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/config", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("Host nas\n  HostName 192.0.2.7\n  Port 2222\n  User backup\n"
	      "  IdentityFile /keys/nas\n",
	      f);
	fclose(f);
	ssh_config_set_file(path);
	assert_int_equal(ssh_url_parse("sftp://nas/r", &u, &err), 0);
	assert_int_equal(ssh_config_resolve(&u, &c, &err), 0);
	assert_true(c.from_openssh);
	assert_string_equal(c.hostname, "192.0.2.7");
	assert_int_equal(c.port, 2222);
	assert_string_equal(c.user, "backup");
	assert_int_equal(c.n_identity_files, 1);
	assert_string_equal(c.identity_files[0], "/keys/nas");
	ssh_host_config_release(&c);
	ssh_url_release(&u);
	/* a port written in the location wins */
	assert_int_equal(ssh_url_parse("sftp://nas:2200/r", &u, &err), 0);
	assert_int_equal(ssh_config_resolve(&u, &c, &err), 0);
	assert_int_equal(c.port, 2200);
	ssh_host_config_release(&c);
	ssh_url_release(&u);
	/* a mistake in the file is ssh's message */
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("Host *\n  NoSuchOption yes\n", f);
	fclose(f);
	assert_int_equal(ssh_url_parse("sftp://other/r", &u, &err), 0);
	assert_int_equal(ssh_config_resolve(&u, &c, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "line 2"));
	assert_non_null(strcasestr(err.msg, "NoSuchOption"));
	ssh_url_release(&u);
	/* "none": the location as written */
	mv_err_clear(&err);
	ssh_config_set_file("none");
	assert_int_equal(ssh_url_parse("sftp://nas/r", &u, &err), 0);
	assert_int_equal(ssh_config_resolve(&u, &c, &err), 0);
	assert_false(c.from_openssh);
	assert_string_equal(c.hostname, "nas");
	ssh_host_config_release(&c);
	ssh_url_release(&u);
	ssh_config_set_file(NULL);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nothing_configured),
		cmocka_unit_test(test_alias),
		cmocka_unit_test(test_location_user_wins),
		cmocka_unit_test(test_proxy_command_tokens),
		cmocka_unit_test(test_no_ssh_binary),
		cmocka_unit_test(test_real_ssh_g),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
