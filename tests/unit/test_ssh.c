/* test_ssh: remote locations, fingerprints and options. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ssh.h"

static void parse_ok(const char *url, enum ssh_scheme scheme, const char *user,
		     const char *host, int port, const char *path)
{
	struct mv_err err = MV_ERR_INIT;
	struct ssh_url u;

	assert_int_equal(ssh_url_parse(url, &u, &err), 0);
	assert_int_equal(u.scheme, scheme);
	if (user)
		assert_string_equal(u.user, user);
	else
		assert_null(u.user);
	assert_string_equal(u.host, host);
	assert_int_equal(u.port, port);
	assert_string_equal(u.path, path);
	ssh_url_release(&u);
}

/* The message must name the wrong part. */
static void parse_bad(const char *url, const char *part)
{
	struct mv_err err = MV_ERR_INIT;
	struct ssh_url u;

	assert_int_equal(ssh_url_parse(url, &u, &err), -EINVAL);
	if (!strstr(err.msg, part))
		fail_msg("'%s': message '%s' does not name '%s'", url, err.msg,
			 part);
}

static void test_ssh_url_forms(void **state)
{
	(void)state;
	/* port 0: not written, so the ssh configuration's Port (or 22)
	 * applies; a written port wins */
	parse_ok("sftp://host/srv/backup", SSH_SCHEME_SFTP, NULL, "host", 0,
		 "/srv/backup");
	parse_ok("sftp://u123@u123.your-storagebox.de:23/home/mail/",
		 SSH_SCHEME_SFTP, "u123", "u123.your-storagebox.de", 23,
		 "/home/mail");
	parse_ok("sftp://backup@[::1]:2222/r", SSH_SCHEME_SFTP, "backup", "::1",
		 2222, "/r");
	parse_ok("sftp://[fe80::1%eth0]/r", SSH_SCHEME_SFTP, NULL,
		 "fe80::1%eth0", 0, "/r");
	parse_ok("sftp://10.0.0.5/", SSH_SCHEME_SFTP, NULL, "10.0.0.5", 0, "/");
	parse_ok("sftp://nas/~/mailvault", SSH_SCHEME_SFTP, NULL, "nas", 0,
		 "mailvault");
	parse_ok("sftp://nas/~", SSH_SCHEME_SFTP, NULL, "nas", 0, ".");
	parse_ok("ssh://root@mx1:2200/var/vmail", SSH_SCHEME_SSH, "root", "mx1",
		 2200, "/var/vmail");
	parse_ok("ssh-exec://root@mx1", SSH_SCHEME_SSH_EXEC, "root", "mx1", 0,
		 "");
	parse_ok("ssh-exec://[2001:db8::7]:23/", SSH_SCHEME_SSH_EXEC, NULL,
		 "2001:db8::7", 23, "");
}

static void test_ssh_url_errors_name_the_part(void **state)
{
	(void)state;
	parse_bad("ftp://host/x", "scheme");
	parse_bad("sftp://host", "no path");
	parse_bad("sftp:///x", "no host");
	parse_bad("sftp://@host/x", "user");
	parse_bad("sftp://host:0/x", "'0'");
	parse_bad("sftp://host:65536/x", "'65536'");
	parse_bad("sftp://host:22a/x", "'22a'");
	parse_bad("sftp://host:/x", "empty port");
	parse_bad("sftp://[::1/x", "']'");
	parse_bad("sftp://[zz::1]/x", "'zz::1'");
	parse_bad("sftp://[::1]x/y", "after ']'");
	parse_bad("sftp://::1/x", "brackets");
	parse_bad("sftp://ho st/x", "'ho st'");
	parse_bad("ssh-exec://host/usr/bin", "--exec");
}

static void test_ssh_url_is_remote(void **state)
{
	(void)state;
	assert_true(ssh_url_is_remote("sftp://h/x"));
	assert_true(ssh_url_is_remote("ssh://h/x"));
	assert_true(ssh_url_is_remote("ssh-exec://h"));
	assert_false(ssh_url_is_remote("/srv/sftp://x"));
	assert_false(ssh_url_is_remote("mail=/var/vmail"));
}

static void test_ssh_host_key_name(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct ssh_url u;
	char name[300];

	(void)state;
	assert_int_equal(ssh_url_parse("sftp://h/x", &u, &err), 0);
	ssh_url_host_key_name(&u, name, sizeof(name));
	assert_string_equal(name, "h");
	ssh_url_release(&u);
	assert_int_equal(ssh_url_parse("sftp://[::1]:23/x", &u, &err), 0);
	ssh_url_host_key_name(&u, name, sizeof(name));
	assert_string_equal(name, "[::1]:23");
	ssh_url_release(&u);
}

/* The value OpenSSH prints for the same key blob: the SHA256 of the
 * empty string is well known, base64 without '=' padding. */
static void test_ssh_fingerprint_like_openssh(void **state)
{
	char fp[80];

	(void)state;
	assert_int_equal(ssh_fingerprint_sha256("", 0, fp, sizeof(fp)), 0);
	assert_string_equal(
		fp, "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU");
	assert_int_equal(ssh_fingerprint_sha256("", 0, fp, 10), -ENOSPC);
}

static void test_ssh_default_opts(void **state)
{
	struct ssh_opts o, got;

	(void)state;
	ssh_get_default_opts(&got);
	assert_int_equal(got.retries, 3);
	assert_true(got.connect_timeout_s > 0 && got.io_timeout_s > 0);
	assert_false(got.accept_new_host_key);
	ssh_opts_init(&o);
	o.accept_new_host_key = true;
	o.identity = "/k";
	ssh_set_default_opts(&o);
	ssh_get_default_opts(&got);
	assert_true(got.accept_new_host_key);
	assert_string_equal(got.identity, "/k");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ssh_url_forms),
		cmocka_unit_test(test_ssh_url_errors_name_the_part),
		cmocka_unit_test(test_ssh_url_is_remote),
		cmocka_unit_test(test_ssh_host_key_name),
		cmocka_unit_test(test_ssh_fingerprint_like_openssh),
		cmocka_unit_test(test_ssh_default_opts),
	};

	return cmocka_run_group_tests_name("ssh", tests, NULL, NULL);
}
