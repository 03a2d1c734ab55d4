/* Unit tests for mail_msg: the corpus of broken messages in
 * tests/data/mail, a 1 MiB header and deeply nested multiparts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mail_msg.h"
#include "util.h"

#define FALLBACK 1700000000

static char *load(const char *name, size_t *len)
{
	struct mv_err err = MV_ERR_INIT;
	char path[512];
	char *data = NULL;
	const char *dir = getenv("MV_TEST_DATA");

	snprintf(path, sizeof(path), "%s/mail/%s", dir ? dir : "tests/data",
		 name);
	assert_int_equal(mv_read_file(path, 1 << 24, &data, len, &err), 0);
	return data;
}

static void parse_file(const char *name, unsigned opts, struct mail_msg *m)
{
	struct mv_err err = MV_ERR_INIT;
	size_t len;
	char *data = load(name, &len);

	assert_int_equal(mail_msg_parse(data, len, FALLBACK, opts, m, &err), 0);
	assert_int_equal(m->size, len);
	free(data);
}

static void test_mail_msg_simple(void **state)
{
	struct mail_msg m;

	(void)state;
	parse_file("01-simple.eml", MAIL_MSG_WANT_BODY, &m);
	assert_string_equal(m.message_id, "simple-1@example.org");
	assert_int_equal(m.date, 1714566600); /* 14:30 +0200 */
	assert_string_equal(m.from, "Alice Example");
	assert_string_equal(m.from_addr, "alice@example.org");
	assert_non_null(strstr(m.to, "bob@example.org"));
	assert_non_null(strstr(m.to, "carol@example.org"));
	assert_non_null(strstr(m.cc, "dave@example.org"));
	assert_string_equal(m.subject, "Quarterly report");
	assert_non_null(strstr(m.body, "attached in spirit"));
	assert_int_equal(m.flags, 0);
	mail_msg_release(&m);
}

static void test_mail_msg_rfc2047_charsets(void **state)
{
	struct mail_msg m;

	(void)state;
	parse_file("02-rfc2047.eml", 0, &m);
	assert_string_equal(m.from, "J\xc3\xbcrgen M\xc3\xbcller");
	assert_string_equal(m.subject,
			    "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82"
			    " and caf\xc3\xa9 cr\xc3\xa8me");
	assert_non_null(strstr(m.to, "\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd"));
	assert_null(m.body);
	mail_msg_release(&m);
}

static void test_mail_msg_8bit_headers(void **state)
{
	struct mail_msg m;

	(void)state;
	parse_file("03-8bit-utf8.eml", 0, &m);
	assert_string_equal(m.subject, "Gr\xc3\xbc\xc3\x9f"
				       "e aus K\xc3\xb6ln");
	assert_true(m.flags & MAIL_MSG_8BIT_HEADER);
	mail_msg_release(&m);
	parse_file("04-8bit-latin1.eml", 0, &m);
	assert_string_equal(m.subject,
			    "R\xc3\xa9sum\xc3\xa9 de la r\xc3\xa9union");
	assert_string_equal(m.from, "Fran\xc3\xa7ois");
	mail_msg_release(&m);
}

static void test_mail_msg_missing_headers(void **state)
{
	struct mail_msg m;
	unsigned want = MAIL_MSG_NO_DATE | MAIL_MSG_NO_FROM |
			MAIL_MSG_NO_SUBJECT | MAIL_MSG_NO_MESSAGE_ID;

	(void)state;
	parse_file("05-missing-headers.eml", 0, &m);
	assert_int_equal(m.flags & want, want);
	assert_int_equal(m.date, FALLBACK);
	assert_null(m.message_id);
	assert_null(m.from);
	assert_null(m.subject);
	mail_msg_release(&m);
}

static void test_mail_msg_malformed(void **state)
{
	struct mail_msg m;

	(void)state;
	parse_file("06-malformed.eml", MAIL_MSG_WANT_BODY, &m);
	assert_true(m.flags & MAIL_MSG_BAD_DATE);
	assert_true(m.flags & MAIL_MSG_LEADING_JUNK);
	assert_int_equal(m.date, FALLBACK);
	assert_non_null(m.from);
	assert_non_null(strstr(m.from, "broken"));
	assert_non_null(m.subject);
	assert_string_equal(m.message_id, "no-brackets-here@example.org");
	mail_msg_release(&m);
}

static void test_mail_msg_duplicate_message_id(void **state)
{
	struct mail_msg a, b;

	(void)state;
	parse_file("07-dup-msgid-a.eml", 0, &a);
	parse_file("07-dup-msgid-b.eml", 0, &b);
	assert_string_equal(a.message_id, b.message_id);
	assert_string_not_equal(a.subject, b.subject);
	mail_msg_release(&a);
	mail_msg_release(&b);
}

static void test_mail_msg_bad_base64(void **state)
{
	struct mail_msg m;

	(void)state;
	parse_file("08-bad-base64.eml", MAIL_MSG_WANT_BODY, &m);
	assert_int_equal(m.n_attachments, 1);
	assert_string_equal(m.attachments[0], "R\xc3\xa9sum\xc3\xa9 2024.pdf");
	assert_non_null(m.body);
	mail_msg_release(&m);
}

static void test_mail_msg_nested(void **state)
{
	struct mail_msg m;

	(void)state;
	parse_file("09-nested.eml", MAIL_MSG_WANT_BODY, &m);
	assert_int_equal(m.n_attachments, 3);
	assert_string_equal(m.attachments[0], "logo.png");
	assert_string_equal(m.attachments[1], "forwarded.eml");
	assert_string_equal(m.attachments[2], "Rechnung M\xc3\xa4rz.zip");
	assert_string_equal(m.body, "Plain text caf\xc3\xa9 part.");
	assert_string_equal(m.from, "Nested, Sender");
	assert_int_equal(m.date, 1699167599);
	mail_msg_release(&m);

	parse_file("09-nested.eml", MAIL_MSG_NO_PARTS, &m);
	assert_int_equal(m.n_attachments, 0);
	assert_null(m.body);
	assert_string_equal(m.subject, "nested parts");
	mail_msg_release(&m);
}

static void test_mail_msg_no_blank_line_and_crlf(void **state)
{
	struct mail_msg m;

	(void)state;
	parse_file("10-no-body.eml", 0, &m);
	assert_true(m.flags & MAIL_MSG_NO_BODY);
	assert_string_equal(m.subject, "header only, no blank line");
	assert_int_equal(m.date, 1714885505);
	mail_msg_release(&m);
	parse_file("11-crlf.eml", MAIL_MSG_WANT_BODY, &m);
	assert_string_equal(m.subject, "CRLF line ends");
	assert_string_equal(m.message_id, "crlf@example.org");
	mail_msg_release(&m);
}

static void test_mail_msg_far_date(void **state)
{
	struct mail_msg m;

	(void)state;
	parse_file("14-date-far.eml", 0, &m);
	assert_int_equal(m.date, FALLBACK);
	assert_true(m.flags & (MAIL_MSG_BAD_DATE | MAIL_MSG_NO_DATE));
	mail_msg_release(&m);
}

static void test_mail_msg_huge_header(void **state)
{
	static const char junk[] = "X-Junk: 0123456789012345678901234567890"
				   "123456789012345678901234\n";
	struct mv_err err = MV_ERR_INIT;
	struct mv_buf b = MV_BUF_INIT;
	struct mail_msg m;
	int i;

	(void)state;
	mv_buf_append(&b, "Subject: huge\nFrom: h@example.org\n", 34);
	for (i = 0; i < 16384; i++) /* 64 bytes each: 1 MiB */
		mv_buf_append(&b, junk, sizeof(junk) - 1);
	mv_buf_append(&b, "\nbody\n", 6);
	assert_int_equal(mail_msg_parse(b.data, b.len, FALLBACK, 0, &m, &err),
			 0);
	assert_true(m.flags & MAIL_MSG_HEADER_CUT);
	assert_string_equal(m.subject, "huge");
	assert_string_equal(m.from_addr, "h@example.org");
	mail_msg_release(&m);
	mv_buf_release(&b);
}

static void test_mail_msg_deep_nesting(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct mv_buf b = MV_BUF_INIT;
	struct mail_msg m;
	char line[128];
	int i;

	(void)state;
	mv_buf_append(&b, "Subject: deep\n", 14);
	for (i = 0; i < 5000; i++) {
		int n = snprintf(
			line, sizeof(line),
			"Content-Type: multipart/mixed; boundary=b%d\n\n"
			"--b%d\n",
			i, i);
		mv_buf_append(&b, line, (size_t)n);
	}
	mv_buf_append(&b, "\nx\n", 3);
	assert_int_equal(mail_msg_parse(b.data, b.len, FALLBACK,
					MAIL_MSG_WANT_BODY, &m, &err),
			 0);
	assert_true(m.flags & MAIL_MSG_TOO_COMPLEX);
	assert_string_equal(m.subject, "deep");
	mail_msg_release(&m);
	mv_buf_release(&b);
}

static void test_mail_msg_garbage(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct mail_msg m;
	unsigned char junk[4096];
	unsigned seed = 12345;
	size_t i;
	int round;

	(void)state;
	assert_int_equal(mail_msg_parse("", 0, FALLBACK, 0, &m, &err), 0);
	assert_true(m.flags & MAIL_MSG_EMPTY);
	mail_msg_release(&m);
	for (round = 0; round < 50; round++) {
		for (i = 0; i < sizeof(junk); i++) {
			seed = seed * 1103515245u + 12345u;
			junk[i] = (unsigned char)(seed >> 16);
			if (junk[i] % 7 == 0)
				junk[i] = '\n';
			else if (junk[i] % 11 == 0)
				junk[i] = ':';
		}
		assert_int_equal(mail_msg_parse(junk, sizeof(junk), FALLBACK,
						MAIL_MSG_WANT_BODY, &m, &err),
				 0);
		mail_msg_release(&m);
	}
}

static void test_mail_msg_decode_header(void **state)
{
	char *s;

	(void)state;
	s = mail_msg_decode_header("=?utf-8?q?a=C3=A4?=\n\tb");
	assert_string_equal(s, "a\xc3\xa4 b");
	free(s);
	s = mail_msg_decode_header("caf\xe9");
	assert_string_equal(s, "caf\xc3\xa9");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mail_msg_simple),
		cmocka_unit_test(test_mail_msg_rfc2047_charsets),
		cmocka_unit_test(test_mail_msg_8bit_headers),
		cmocka_unit_test(test_mail_msg_missing_headers),
		cmocka_unit_test(test_mail_msg_malformed),
		cmocka_unit_test(test_mail_msg_duplicate_message_id),
		cmocka_unit_test(test_mail_msg_bad_base64),
		cmocka_unit_test(test_mail_msg_nested),
		cmocka_unit_test(test_mail_msg_no_blank_line_and_crlf),
		cmocka_unit_test(test_mail_msg_far_date),
		cmocka_unit_test(test_mail_msg_huge_header),
		cmocka_unit_test(test_mail_msg_deep_nesting),
		cmocka_unit_test(test_mail_msg_garbage),
		cmocka_unit_test(test_mail_msg_decode_header),
	};

	return cmocka_run_group_tests_name("mail_msg", tests, NULL, NULL);
}
