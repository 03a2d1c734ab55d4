/* Unit tests for maildir: Dovecot file names, keywords, folder names and
 * the mailcow layouts. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "maildir.h"

static void test_maildir_parse_name(void **state)
{
	struct maildir_file f;
	const char *n =
		"1715000000.M123456P789.4f1c2b3a9d0e,S=2345,W=2401:2,FRSac";

	(void)state;
	assert_int_equal(maildir_parse_name(n, &f), 0);
	assert_int_equal(f.base_len, strlen(n) - strlen(":2,FRSac"));
	assert_int_equal(f.time, 1715000000);
	assert_true(f.has_size && f.has_vsize && f.has_info);
	assert_int_equal(f.size, 2345);
	assert_int_equal(f.vsize, 2401);
	assert_int_equal(f.flags,
			 MAILDIR_FLAGGED | MAILDIR_REPLIED | MAILDIR_SEEN);
	assert_int_equal(f.keywords, (1u << 0) | (1u << 2));

	assert_int_equal(maildir_parse_name("1715000000.M1P2.host,S=812", &f),
			 0);
	assert_false(f.has_info);
	assert_false(f.has_vsize);
	assert_int_equal(f.size, 812);
	assert_int_equal(f.flags, 0);

	/* odd names: no crash, sensible defaults */
	assert_int_equal(maildir_parse_name("weird,S=abc:2,", &f), 0);
	assert_int_equal(f.time, -1);
	assert_false(f.has_size);
	assert_int_equal(maildir_parse_name("x,S=99999999999999999999999", &f),
			 0);
	assert_false(f.has_size);
	assert_int_equal(maildir_parse_name(".hidden", &f), -EINVAL);
	assert_int_equal(maildir_parse_name("", &f), -EINVAL);
}

static void test_maildir_same_base_after_flag_change(void **state)
{
	struct maildir_file a, b;

	(void)state;
	maildir_parse_name("1.M1P1.h,S=5,W=6", &a);
	maildir_parse_name("1.M1P1.h,S=5,W=6:2,ST", &b);
	assert_int_equal(a.base_len, b.base_len);
	assert_memory_equal(a.base, b.base, a.base_len);
}

static void test_maildir_info_and_keywords(void **state)
{
	char info[40];

	(void)state;
	maildir_info(MAILDIR_SEEN | MAILDIR_DRAFT | MAILDIR_FLAGGED, 1u << 3,
		     info, sizeof(info));
	assert_string_equal(info, ":2,DFSd");
	maildir_info(0, 0, info, sizeof(info));
	assert_string_equal(info, ":2,");
	assert_int_equal(maildir_flags_from_keyword("$seen"), MAILDIR_SEEN);
	assert_int_equal(maildir_flags_from_keyword("\\Answered"),
			 MAILDIR_REPLIED);
	assert_int_equal(maildir_flags_from_keyword("$Forwarded"),
			 MAILDIR_PASSED);
	assert_int_equal(maildir_flags_from_keyword("$junk"), 0);
}

static void test_maildir_keywords_file(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct maildir_keywords kw;
	const char data[] = "0 $Forwarded\n1 Work\r\nbad line\n3 $label1\n"
			    "99 out-of-range\n2 \n";

	(void)state;
	assert_int_equal(
		maildir_keywords_parse(data, sizeof(data) - 1, &kw, &err), 0);
	assert_string_equal(kw.names[0], "$Forwarded");
	assert_string_equal(kw.names[1], "Work");
	assert_null(kw.names[2]);
	assert_string_equal(kw.names[3], "$label1");
	maildir_keywords_release(&kw);
}

static void test_maildir_folder_names(void **state)
{
	char out[256];

	(void)state;
	maildir_folder_decode(".Sent", 5, out, sizeof(out));
	assert_string_equal(out, "Sent");
	maildir_folder_decode(".Archive.2024", 13, out, sizeof(out));
	assert_string_equal(out, "Archive/2024");
	maildir_folder_decode(".Gel&APY-schte Objekte", 22, out, sizeof(out));
	assert_string_equal(out, "Gel\xc3\xb6schte Objekte");
	maildir_folder_decode(".v1\\2e2.sub", 11, out, sizeof(out));
	assert_string_equal(out, "v1.2/sub");
	maildir_folder_decode(".Tom &- Jerry", 13, out, sizeof(out));
	assert_string_equal(out, "Tom & Jerry");
	/* Japanese: &ZeVnLIqe- is 日本語 */
	maildir_folder_decode(".&ZeVnLIqe-", 11, out, sizeof(out));
	assert_string_equal(out, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
	/* broken mUTF-7 is kept */
	maildir_folder_decode(".a&!!-b", 7, out, sizeof(out));
	assert_string_equal(out, "a&!!-b");
	assert_int_equal(maildir_folder_decode(".abcdef", 7, out, 4),
			 -ENAMETOOLONG);
}

/* Maildir++ names for the Stalwart view: the inverse of decoding */
static void test_maildir_folder_encode(void **state)
{
	static const char *const paths[] = {
		"Archive/2024", "Gelöschte Objekte", "Entwürfe/a.b",
		"R&D",		"日本語/x\\y",	     "Sent",
	};
	char enc[512], dec[512];
	size_t i;

	(void)state;
	assert_int_equal(
		maildir_folder_encode("Archive/2024", enc, sizeof(enc)), 0);
	assert_string_equal(enc, ".Archive.2024");
	assert_int_equal(
		maildir_folder_encode("Gelöschte Objekte", enc, sizeof(enc)),
		0);
	assert_string_equal(enc, ".Gel&APY-schte Objekte");
	assert_int_equal(maildir_folder_encode("a.b", enc, sizeof(enc)), 0);
	assert_string_equal(enc, ".a\\2eb");
	assert_int_equal(maildir_folder_encode("", enc, sizeof(enc)), 0);
	assert_string_equal(enc, "");
	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		assert_int_equal(
			maildir_folder_encode(paths[i], enc, sizeof(enc)), 0);
		assert_int_equal(maildir_folder_decode(enc, strlen(enc), dec,
						       sizeof(dec)),
				 0);
		assert_string_equal(dec, paths[i]);
	}
	assert_int_equal(maildir_folder_encode("Archive", enc, 4),
			 -ENAMETOOLONG);
}

static void test_maildir_locate_layouts(void **state)
{
	struct maildir_loc l;
	const char *p;

	(void)state;
	p = "vmail/example.org/alice/Maildir/cur/1.M1P1.h,S=5:2,S";
	assert_int_equal(maildir_locate(p, &l), 0);
	assert_string_equal(l.account, "alice@example.org");
	assert_string_equal(l.mailbox, "INBOX");
	assert_false(l.in_new);
	assert_int_equal(l.root_len, strlen("vmail/example.org/alice/Maildir"));
	assert_string_equal(l.name, "1.M1P1.h,S=5:2,S");

	p = "/vmail/example.org/alice/Maildir/.Archive.2024/new/2.M2P2.h";
	assert_int_equal(maildir_locate(p, &l), 0);
	assert_string_equal(l.account, "alice@example.org");
	assert_string_equal(l.mailbox, "Archive/2024");
	assert_true(l.in_new);
	assert_int_equal(l.folder_len,
			 strlen("/vmail/example.org/alice/Maildir/"
				".Archive.2024"));

	/* pre-2019 mailcow: no Maildir/ */
	p = "vmail/example.org/bob/.Sent/cur/3.M3P3.h:2,S";
	assert_int_equal(maildir_locate(p, &l), 0);
	assert_string_equal(l.account, "bob@example.org");
	assert_string_equal(l.mailbox, "Sent");
	p = "vmail/example.org/bob/cur/4.M4P4.h:2,";
	assert_int_equal(maildir_locate(p, &l), 0);
	assert_string_equal(l.account, "bob@example.org");
	assert_string_equal(l.mailbox, "INBOX");

	/* LAYOUT=fs */
	p = "home/carol/Maildir/Archive/2024/cur/5.M5P5.h";
	assert_int_equal(maildir_locate(p, &l), 0);
	assert_string_equal(l.account, "carol");
	assert_string_equal(l.mailbox, "Archive/2024");

	/* not messages */
	assert_int_equal(maildir_locate("a/b/Maildir/tmp/1.M1P1.h", &l),
			 -ENOENT);
	assert_int_equal(maildir_locate("a/b/Maildir/dovecot-uidlist", &l),
			 -ENOENT);
	assert_int_equal(maildir_locate("a/b/Maildir/cur/.nfs0001", &l),
			 -ENOENT);
	assert_int_equal(maildir_locate("cur/x", &l), -ENOENT);
	assert_int_equal(maildir_locate("", &l), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_maildir_parse_name),
		cmocka_unit_test(test_maildir_same_base_after_flag_change),
		cmocka_unit_test(test_maildir_info_and_keywords),
		cmocka_unit_test(test_maildir_keywords_file),
		cmocka_unit_test(test_maildir_folder_names),
		cmocka_unit_test(test_maildir_locate_layouts),
		cmocka_unit_test(test_maildir_folder_encode),
	};

	return cmocka_run_group_tests_name("maildir", tests, NULL, NULL);
}
