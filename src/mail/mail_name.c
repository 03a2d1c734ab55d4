/*
 * mail_name: sanitized, length-capped, stable .eml names for the view.
 */
#include "mail_name.h"
#include "util.h"

#include <errno.h>
#include <glib.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

size_t mail_name_sanitize(const char *s, char *out, size_t out_size, size_t max)
{
	gchar *v;
	const char *p;
	size_t len = 0;
	bool blank = false;

	if (out_size == 0)
		return 0;
	if (max >= out_size)
		max = out_size - 1;
	v = g_utf8_make_valid(s ? s : "", -1);
	for (p = v; *p; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);
		size_t clen = (size_t)(g_utf8_next_char(p) - p);

		if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) ||
		    g_unichar_isspace(c)) {
			blank = len > 0;
			continue;
		}
		if (g_unichar_type(c) == G_UNICODE_FORMAT)
			continue;
		if (len == 0 && c == '.')
			continue;
		if (len + (blank ? 1 : 0) + clen > max)
			break;
		if (blank)
			out[len++] = ' ';
		blank = false;
		if (c == '/' || c == '\\')
			out[len++] = '_';
		else {
			memcpy(out + len, p, clen);
			len += clen;
		}
	}
	g_free(v);
	if (len == 0 && max > 0)
		out[len++] = '_';
	out[len] = '\0';
	return len;
}

int mail_name_format(int64_t date, const char *from, const char *subject,
		     const void *cid, size_t cid_len, char *out,
		     size_t out_size)
{
	char when[32], id[2 * MAIL_NAME_ID_BYTES + 1];
	char f[MAIL_NAME_FROM_MAX + 1], subj[MAIL_NAME_MAX + 1];
	time_t t = (time_t)date;
	struct tm tm;
	size_t fixed, room;

	if (!cid || cid_len < MAIL_NAME_ID_BYTES || out_size <= MAIL_NAME_MAX)
		return -EINVAL;
	if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999 ||
	    tm.tm_year + 1900 < 0) {
		memset(&tm, 0, sizeof(tm));
		tm.tm_year = 70;
		tm.tm_mday = 1;
	}
	snprintf(when, sizeof(when), "%04d-%02d-%02d %02d%02d",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min);
	mv_hex(cid, MAIL_NAME_ID_BYTES, id);
	mail_name_sanitize(from && *from ? from : "(no sender)", f, sizeof(f),
			   MAIL_NAME_FROM_MAX);
	/* "<when> <from> - <subject> [<id>].eml" */
	fixed = strlen(when) + 1 + strlen(f) + 3 + 2 + strlen(id) + 5;
	room = MAIL_NAME_MAX - fixed;
	mail_name_sanitize(subject && *subject ? subject : "(no subject)", subj,
			   sizeof(subj), room);
	snprintf(out, out_size, "%s %s - %s [%s].eml", when, f, subj, id);
	return 0;
}

/* Length of s cut to at most max bytes on a UTF-8 character boundary. */
static size_t utf8_cut(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max)
		return n;
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--;
	return max;
}

int mail_name_variant(const char *name, unsigned n, char *out, size_t out_size)
{
	const char *open = strrchr(name, '[');
	const char *close;
	char suffix[64];
	size_t stem, slen;

	if (!open || out_size <= MAIL_NAME_MAX || n < 2)
		return -EINVAL;
	close = strstr(open, "].eml");
	if (!close || close[5] != '\0' || close - open > 32)
		return -EINVAL;
	slen = (size_t)snprintf(suffix, sizeof(suffix), "[%.*s-%u].eml",
				(int)(close - open - 1), open + 1, n);
	stem = (size_t)(open - name);
	if (stem + slen > MAIL_NAME_MAX) {
		char tmp[MAIL_NAME_MAX + 1];

		memcpy(tmp, name, stem);
		tmp[stem] = '\0';
		/* keep the blank before '[' */
		stem = utf8_cut(tmp, MAIL_NAME_MAX - slen - 1);
		snprintf(out, out_size, "%.*s %s", (int)stem, name, suffix);
		return 0;
	}
	snprintf(out, out_size, "%.*s%s", (int)stem, name, suffix);
	return 0;
}

struct mail_name_set {
	GHashTable *names; /* char * -> itself, owned */
};

int mail_name_set_new(struct mail_name_set **out, struct mv_err *err)
{
	struct mail_name_set *set = calloc(1, sizeof(*set));

	if (!set)
		return mv_err_set(err, -ENOMEM, "out of memory");
	set->names =
		g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	*out = set;
	return 0;
}

void mail_name_set_free(struct mail_name_set *set)
{
	if (!set)
		return;
	g_hash_table_destroy(set->names);
	free(set);
}

int mail_name_set_add(struct mail_name_set *set, const char *name, char *out,
		      size_t out_size, struct mv_err *err)
{
	char cand[MAIL_NAME_MAX + 1];
	unsigned n;

	if (out_size <= MAIL_NAME_MAX || strlen(name) > MAIL_NAME_MAX)
		return mv_err_set(err, -EINVAL, "name too long: '%s'", name);
	snprintf(cand, sizeof(cand), "%s", name);
	for (n = 2; g_hash_table_contains(set->names, cand); n++) {
		if (mail_name_variant(name, n, cand, sizeof(cand)) < 0)
			snprintf(cand, sizeof(cand), "%.*s~%u",
				 (int)utf8_cut(name, MAIL_NAME_MAX - 12), name,
				 n);
	}
	g_hash_table_add(set->names, g_strdup(cand));
	snprintf(out, out_size, "%s", cand);
	return 0;
}
