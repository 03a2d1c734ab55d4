/* Unit tests for mail_name: sanitizing, NAME_MAX on a character boundary,
 * stable ids, unique names inside a folder. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>

#include "mail_name.h"

static const unsigned char cid[32] = {0xde, 0xad, 0xbe, 0xef, 0x01};

static void test_mail_name_format(void **state)
{
	char name[MAIL_NAME_MAX + 1];

	(void)state;
	/* 2024-05-01 12:30 UTC */
	assert_int_equal(mail_name_format(1714566600, "Alice Example",
					  "Quarterly report", cid, sizeof(cid),
					  name, sizeof(name)),
			 0);
	assert_string_equal(name, "2024-05-01 1230 Alice Example - "
				  "Quarterly report [deadbeef].eml");
	assert_int_equal(mail_name_format(0, NULL, "", cid, sizeof(cid), name,
					  sizeof(name)),
			 0);
	assert_string_equal(name, "1970-01-01 0000 (no sender) - (no subject) "
				  "[deadbeef].eml");
	assert_int_equal(
		mail_name_format(0, "a", "b", cid, 3, name, sizeof(name)),
		-EINVAL);
}

static void test_mail_name_sanitize(void **state)
{
	char out[256];

	(void)state;
	mail_name_sanitize("a/b\\c\x01\x7f\tx  \n y", out, sizeof(out), 255);
	assert_string_equal(out, "a_b_c x y");
	mail_name_sanitize("..hidden", out, sizeof(out), 255);
	assert_string_equal(out, "hidden");
	mail_name_sanitize("..", out, sizeof(out), 255);
	assert_string_equal(out, "_");
	mail_name_sanitize("", out, sizeof(out), 255);
	assert_string_equal(out, "_");
	/* C1 control, bidi override, invalid UTF-8 */
	mail_name_sanitize("x\xc2\x85y\xe2\x80\xaez\xff", out, sizeof(out),
			   255);
	assert_true(g_utf8_validate(out, -1, NULL));
	assert_null(strstr(out, "\xc2\x85"));
	assert_null(strstr(out, "\xe2\x80\xae"));
	assert_int_equal(strncmp(out, "x y", 3), 0);
	/* cut on a character boundary: 3 bytes each */
	mail_name_sanitize("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac", out,
			   sizeof(out), 7);
	assert_string_equal(out, "\xe2\x82\xac\xe2\x82\xac");
}

static void test_mail_name_length_cap(void **state)
{
	char name[MAIL_NAME_MAX + 1], from[1024], subj[2048];
	size_t i;

	(void)state;
	for (i = 0; i + 2 < sizeof(from); i += 2)
		memcpy(from + i, "\xc3\x84", 2);
	from[i] = '\0';
	for (i = 0; i + 3 < sizeof(subj); i += 3)
		memcpy(subj + i, "\xe2\x82\xac", 3);
	subj[i] = '\0';
	assert_int_equal(mail_name_format(1714566600, from, subj, cid,
					  sizeof(cid), name, sizeof(name)),
			 0);
	assert_true(strlen(name) <= MAIL_NAME_MAX);
	assert_true(g_utf8_validate(name, -1, NULL));
	assert_non_null(strstr(name, " [deadbeef].eml"));
	assert_null(strchr(name, '/'));
}

static void test_mail_name_unique(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct mail_name_set *set;
	char name[MAIL_NAME_MAX + 1], out[MAIL_NAME_MAX + 1];
	char long_subj[400];

	(void)state;
	assert_int_equal(mail_name_set_new(&set, &err), 0);
	mail_name_format(1714566600, "A", "S", cid, sizeof(cid), name,
			 sizeof(name));
	mail_name_set_add(set, name, out, sizeof(out), &err);
	assert_string_equal(out, name);
	mail_name_set_add(set, name, out, sizeof(out), &err);
	assert_string_equal(out, "2024-05-01 1230 A - S [deadbeef-2].eml");
	mail_name_set_add(set, name, out, sizeof(out), &err);
	assert_string_equal(out, "2024-05-01 1230 A - S [deadbeef-3].eml");
	/* a full-length name stays within NAME_MAX */
	memset(long_subj, 'x', sizeof(long_subj) - 1);
	long_subj[sizeof(long_subj) - 1] = '\0';
	mail_name_format(1714566600, "A", long_subj, cid, sizeof(cid), name,
			 sizeof(name));
	assert_int_equal(strlen(name), MAIL_NAME_MAX);
	mail_name_set_add(set, name, out, sizeof(out), &err);
	mail_name_set_add(set, name, out, sizeof(out), &err);
	assert_true(strlen(out) <= MAIL_NAME_MAX);
	assert_non_null(strstr(out, " [deadbeef-2].eml"));
	mail_name_set_free(set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mail_name_format),
		cmocka_unit_test(test_mail_name_sanitize),
		cmocka_unit_test(test_mail_name_length_cap),
		cmocka_unit_test(test_mail_name_unique),
	};

	return cmocka_run_group_tests_name("mail_name", tests, NULL, NULL);
}
