/*
 * Unit tests for imap_client's pure parts: restore-mail's --to URLs
 * (users holding '@', percent escapes, ports, IPv6, bad input) and folder
 * names as the server gets them (delimiter, modified UTF-7 of RFC 3501
 * 5.1.3, compared with Dovecot's own encoding of the same names).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imap_client.h"

static void test_imap_client_url(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct imap_url u;

	(void)state;
	assert_int_equal(imap_url_parse("imaps://alice@example.org@mail."
					"example.org/Restored/2024",
					&u, &err),
			 0);
	assert_string_equal(u.user, "alice@example.org");
	assert_string_equal(u.host, "mail.example.org");
	assert_int_equal(u.port, 993);
	assert_true(u.implicit_tls);
	assert_string_equal(u.folder, "Restored/2024");
	imap_url_release(&u);

	assert_int_equal(imap_url_parse("imap://bob%40example.org@127.0.0.1:"
					"1143/Gel%C3%B6scht/",
					&u, &err),
			 0);
	assert_string_equal(u.user, "bob@example.org");
	assert_string_equal(u.host, "127.0.0.1");
	assert_int_equal(u.port, 1143);
	assert_false(u.implicit_tls);
	assert_string_equal(u.folder, "Gelöscht");
	imap_url_release(&u);

	assert_int_equal(imap_url_parse("imap://u@[::1]:10143", &u, &err), 0);
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 10143);
	assert_string_equal(u.folder, "");
	imap_url_release(&u);

	assert_int_equal(imap_url_parse("imaps://u@h//a//b/", &u, &err), 0);
	assert_string_equal(u.folder, "a/b");
	imap_url_release(&u);
}

static void test_imap_client_url_bad(void **state)
{
	static const char *const bad[] = {
		"http://u@h/x",	 "imap://h/x",		 "imap://@h/x",
		"imap://u@/x",	 "imap://u@h:0/x",	 "imap://u@h:65536/x",
		"imap://u@h:1x", "imap://u%4@h/x",	 "imap://u@h/a%00b",
		"imap://u@[::1", "imaps://u%zz@h/INBOX",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mv_err err = MV_ERR_INIT;
		struct imap_url u;

		assert_int_equal(imap_url_parse(bad[i], &u, &err), -EINVAL);
		assert_true(err.msg[0] != '\0');
	}
}

static void check_name(const char *path, char delim, const char *want)
{
	char *got = imap_folder_name_with(path, delim);

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void test_imap_client_folder_name(void **state)
{
	(void)state;
	check_name("", '/', "INBOX");
	check_name("INBOX", '/', "INBOX");
	check_name("Archive/2024", '/', "Archive/2024");
	check_name("Archive/2024", '.', "Archive.2024");
	/* the delimiter inside a component */
	check_name("v1.2/notes", '.', "v1_2.notes");
	/* as Dovecot names them on disk (maildir_folder_encode's tests) */
	check_name("Gelöscht", '/', "Gel&APY-scht");
	check_name("Entwürfe", '/', "Entw&APw-rfe");
	check_name("A & B", '/', "A &- B");
	check_name("日本語", '/', "&ZeVnLIqe-");
	check_name("~peter/mail/台北/日本語", '/',
		   "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
	/* outside the BMP: a surrogate pair */
	check_name("😀", '/', "&2D3eAA-");
	/* control characters are not sent */
	check_name("a\tb", '/', "a_b");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_imap_client_url),
		cmocka_unit_test(test_imap_client_url_bad),
		cmocka_unit_test(test_imap_client_folder_name),
	};

	return cmocka_run_group_tests_name("imap_client", tests, NULL, NULL);
}
