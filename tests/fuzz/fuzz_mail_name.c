/*
 * fuzz_mail_name: the names of mail in a backup - maildir file names,
 * dovecot-keywords files, message paths, Maildir++ folder names and their
 * modified UTF-7 - and the view names made from a message's From and
 * Subject.  Every name made must be one path component within
 * MAIL_NAME_MAX; a folder that encodes must decode back.
 */
#include "fuzz.h"
#include "mail_name.h"
#include "maildir.h"

static void check_component(const char *s)
{
	size_t n = strlen(s);

	FUZZ_CHECK(n > 0 && n <= MAIL_NAME_MAX);
	FUZZ_CHECK(!strchr(s, '/'));
	FUZZ_CHECK(strcmp(s, ".") && strcmp(s, ".."));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mv_err err = MV_ERR_INIT;
	struct maildir_keywords kw;
	struct maildir_file mf;
	struct maildir_loc loc;
	struct mail_name_set *set;
	char *s = fuzz_str(data, size), *half;
	char out[MAIL_NAME_MAX + 1], enc[1024], dec[1024];
	uint8_t cid[MAIL_NAME_ID_BYTES] = {1, 2, 3, 4};
	int64_t date = 0;
	size_t i, k;

	if (!maildir_parse_name(s, &mf)) {
		char info[64];

		FUZZ_CHECK(mf.base_len <= strlen(s));
		maildir_info(mf.flags, mf.keywords, info, sizeof(info));
	}
	if (!maildir_keywords_parse((const char *)data, size, &kw, &err))
		maildir_keywords_release(&kw);
	if (!maildir_locate(s, &loc)) {
		FUZZ_CHECK(loc.root_len <= strlen(s));
		FUZZ_CHECK(loc.folder_len <= strlen(s));
		FUZZ_CHECK(loc.name >= s && loc.name <= s + strlen(s));
	}
	(void)maildir_folder_decode((const char *)data, size, dec, sizeof(dec));
	(void)maildir_mutf7_decode((const char *)data, size, dec, sizeof(dec));
	/* encode drops empty levels ("a//b", "a/"); other paths that make a
	 * directory name (NAME_MAX, 255 bytes) come back */
	if (*s && *s != '/' && !strstr(s, "//") && s[strlen(s) - 1] != '/' &&
	    !maildir_folder_encode(s, enc, sizeof(enc)) && strlen(enc) <= 255 &&
	    !maildir_folder_decode(enc, strlen(enc), dec, sizeof(dec)))
		FUZZ_CHECK(!strcmp(dec, s));

	k = mail_name_sanitize(s, out, sizeof(out), size % MAIL_NAME_MAX + 1);
	FUZZ_CHECK(k == strlen(out) && k <= size % MAIL_NAME_MAX + 1);
	check_component(out);

	/* From and Subject from the two halves, the date from the first
	 * bytes */
	for (i = 0; i < size && i < 8; i++)
		date = (int64_t)((uint64_t)date << 8 | data[i]);
	half = s + strlen(s) / 2;
	if (!mail_name_format(date, s, half, cid, sizeof(cid), out,
			      sizeof(out))) {
		char v[MAIL_NAME_MAX + 1];

		check_component(out);
		FUZZ_CHECK(!mail_name_variant(out, 2 + (unsigned)size, v,
					      sizeof(v)));
		check_component(v);
		FUZZ_CHECK(!mail_name_set_new(&set, &err));
		FUZZ_CHECK(!mail_name_set_add(set, out, v, sizeof(v), &err));
		FUZZ_CHECK(!strcmp(v, out));
		FUZZ_CHECK(!mail_name_set_add(set, out, v, sizeof(v), &err));
		FUZZ_CHECK(strcmp(v, out));
		check_component(v);
		mail_name_set_free(set);
	}
	free(s);
	return 0;
}
