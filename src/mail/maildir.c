/*
 * maildir: Dovecot maildir file names, keywords, folder names, layouts.
 */
#include "maildir.h"

#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_DEPTH 128

static unsigned flag_bit(char c)
{
	switch (c) {
	case 'D':
		return MAILDIR_DRAFT;
	case 'F':
		return MAILDIR_FLAGGED;
	case 'P':
		return MAILDIR_PASSED;
	case 'R':
		return MAILDIR_REPLIED;
	case 'S':
		return MAILDIR_SEEN;
	case 'T':
		return MAILDIR_TRASHED;
	default:
		return 0;
	}
}

static uint64_t parse_u64(const char *p, const char *end, bool *ok)
{
	uint64_t v = 0;

	*ok = p < end;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10) {
			*ok = false;
			return 0;
		}
		v = v * 10 + (uint64_t)(*p - '0');
	}
	return v;
}

int maildir_parse_name(const char *name, struct maildir_file *out)
{
	struct maildir_file f;
	const char *colon, *p, *end;
	bool ok;

	if (!name || !*name || name[0] == '.')
		return -EINVAL;
	memset(&f, 0, sizeof(f));
	f.base = name;
	colon = strchr(name, ':');
	f.base_len = colon ? (size_t)(colon - name) : strlen(name);
	end = name + f.base_len;
	p = memchr(name, '.', f.base_len);
	f.time = (int64_t)parse_u64(name, p ? p : end, &ok);
	if (!ok || f.time < 0)
		f.time = -1;
	/* ,S=<n> and ,W=<n> fields after the unique part */
	for (p = memchr(name, ',', f.base_len); p && p < end;
	     p = memchr(p + 1, ',', (size_t)(end - p - 1))) {
		const char *v = p + 3, *ve;

		if (end - p < 4 || p[2] != '=')
			continue;
		ve = memchr(v, ',', (size_t)(end - v));
		if (!ve)
			ve = end;
		if (p[1] == 'S')
			f.size = parse_u64(v, ve, &f.has_size);
		else if (p[1] == 'W')
			f.vsize = parse_u64(v, ve, &f.has_vsize);
	}
	if (colon && strncmp(colon, ":2,", 3) == 0) {
		f.has_info = true;
		for (p = colon + 3; *p && *p != ','; p++) {
			if (*p >= 'a' && *p <= 'z')
				f.keywords |= 1u << (*p - 'a');
			else
				f.flags |= flag_bit(*p);
		}
	}
	*out = f;
	return 0;
}

void maildir_info(unsigned flags, uint32_t keywords, char *out, size_t n)
{
	static const char letters[] = "DFPRST";
	size_t len = 0;
	int i;

	if (n < 40) {
		if (n)
			out[0] = '\0';
		return;
	}
	memcpy(out, ":2,", 3);
	len = 3;
	for (i = 0; letters[i]; i++)
		if (flags & flag_bit(letters[i]))
			out[len++] = letters[i];
	for (i = 0; i < 26; i++)
		if (keywords & (1u << i))
			out[len++] = (char)('a' + i);
	out[len] = '\0';
}

unsigned maildir_flags_from_keyword(const char *kw)
{
	static const struct {
		const char *jmap, *imap;
		unsigned flag;
	} map[] = {
		{"$seen", "\\Seen", MAILDIR_SEEN},
		{"$flagged", "\\Flagged", MAILDIR_FLAGGED},
		{"$answered", "\\Answered", MAILDIR_REPLIED},
		{"$draft", "\\Draft", MAILDIR_DRAFT},
		{"$deleted", "\\Deleted", MAILDIR_TRASHED},
		{"$forwarded", "$Forwarded", MAILDIR_PASSED},
	};
	size_t i;

	for (i = 0; kw && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcasecmp(kw, map[i].jmap) == 0 ||
		    strcasecmp(kw, map[i].imap) == 0)
			return map[i].flag;
	return 0;
}

int maildir_keywords_parse(const char *data, size_t n,
			   struct maildir_keywords *out, struct mv_err *err)
{
	struct maildir_keywords kw;
	size_t off = 0;

	memset(&kw, 0, sizeof(kw));
	while (off < n) {
		const char *line = data + off;
		const char *nl = memchr(line, '\n', n - off);
		size_t len = nl ? (size_t)(nl - line) : n - off;
		unsigned idx = 0;
		size_t i = 0;

		off += len + 1;
		while (i < len && line[i] >= '0' && line[i] <= '9' && idx < 100)
			idx = idx * 10 + (unsigned)(line[i++] - '0');
		if (i == 0 || i >= len || line[i] != ' ' || idx >= 26)
			continue;
		i++;
		while (len > i &&
		       (line[len - 1] == '\r' || line[len - 1] == ' '))
			len--;
		if (len == i)
			continue;
		free(kw.names[idx]);
		kw.names[idx] = strndup(line + i, len - i);
		if (!kw.names[idx]) {
			maildir_keywords_release(&kw);
			return mv_err_set(err, -ENOMEM, "out of memory");
		}
	}
	*out = kw;
	return 0;
}

void maildir_keywords_release(struct maildir_keywords *kw)
{
	int i;

	if (!kw)
		return;
	for (i = 0; i < 26; i++) {
		free(kw->names[i]);
		kw->names[i] = NULL;
	}
}

static int put(char *out, size_t n, size_t *len, const void *p, size_t k)
{
	if (*len + k >= n)
		return -ENAMETOOLONG;
	memcpy(out + *len, p, k);
	*len += k;
	out[*len] = '\0';
	return 0;
}

/* One "&...-" run: base64 (',' for '/') of UTF-16BE, into UTF-8. */
static char *mutf7_run(const char *s, size_t len)
{
	char b64[512];
	guchar *raw;
	gunichar2 u16[256];
	gsize rawlen, i;
	char *utf8;

	if (len == 0 || len + 4 > sizeof(b64))
		return NULL;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (!g_ascii_isalnum(c) && c != '+' && c != ',')
			return NULL;
		b64[i] = c == ',' ? '/' : c;
	}
	while (i % 4)
		b64[i++] = '=';
	b64[i] = '\0';
	raw = g_base64_decode(b64, &rawlen);
	if (!raw || rawlen % 2 || rawlen / 2 > G_N_ELEMENTS(u16) ||
	    rawlen == 0) {
		g_free(raw);
		return NULL;
	}
	for (i = 0; i < rawlen / 2; i++)
		u16[i] = (gunichar2)(raw[2 * i] << 8 | raw[2 * i + 1]);
	utf8 = g_utf16_to_utf8(u16, (glong)(rawlen / 2), NULL, NULL, NULL);
	g_free(raw);
	return utf8;
}

int maildir_mutf7_decode(const char *s, size_t len, char *out, size_t n)
{
	size_t i = 0, olen = 0;

	if (n == 0)
		return -ENAMETOOLONG;
	out[0] = '\0';
	while (i < len) {
		const char *dash;
		char *u;

		if (s[i] != '&') {
			if (put(out, n, &olen, s + i, 1) < 0)
				return -ENAMETOOLONG;
			i++;
			continue;
		}
		dash = memchr(s + i + 1, '-', len - i - 1);
		if (dash == s + i + 1) {
			if (put(out, n, &olen, "&", 1) < 0)
				return -ENAMETOOLONG;
			i += 2;
			continue;
		}
		u = dash ? mutf7_run(s + i + 1, (size_t)(dash - s - i - 1))
			 : NULL;
		if (!u) {
			/* invalid: keep the bytes */
			if (put(out, n, &olen, s + i, 1) < 0)
				return -ENAMETOOLONG;
			i++;
			continue;
		}
		if (put(out, n, &olen, u, strlen(u)) < 0) {
			g_free(u);
			return -ENAMETOOLONG;
		}
		g_free(u);
		i = (size_t)(dash - s) + 1;
	}
	return 0;
}

/* Undo Dovecot's listescape: '\' followed by two hex digits. */
static void unescape(char *s)
{
	char *r = s, *w = s;

	while (*r) {
		if (r[0] == '\\' && g_ascii_isxdigit(r[1]) &&
		    g_ascii_isxdigit(r[2])) {
			int v = g_ascii_xdigit_value(r[1]) * 16 +
				g_ascii_xdigit_value(r[2]);

			if (v != 0) {
				*w++ = (char)v;
				r += 3;
				continue;
			}
		}
		*w++ = *r++;
	}
	*w = '\0';
}

static int decode_segment(const char *s, size_t len, char *out, size_t n,
			  size_t *olen)
{
	char seg[1024];

	if (maildir_mutf7_decode(s, len, seg, sizeof(seg)) < 0)
		return -ENAMETOOLONG;
	unescape(seg);
	/* a '/' inside one segment would fake a level */
	g_strdelimit(seg, "/", '_');
	return put(out, n, olen, seg, strlen(seg));
}

/* Modified UTF-7 of one UTF-8 segment, '.' and '\\' escaped first (the
 * reverse of decode_segment). */
static int encode_segment(const char *s, size_t len, char *out, size_t n,
			  size_t *olen)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		size_t j;
		gunichar2 *u16;
		glong nu;
		guchar *be;
		gchar *b64;
		int rc;

		if (c == '.' || c == '\\') {
			if (put(out, n, olen, c == '.' ? "\\2e" : "\\5c", 3))
				return -ENAMETOOLONG;
			i++;
			continue;
		}
		if (c == '&') {
			if (put(out, n, olen, "&-", 2))
				return -ENAMETOOLONG;
			i++;
			continue;
		}
		if (c >= 0x20 && c < 0x7f) {
			if (put(out, n, olen, s + i, 1))
				return -ENAMETOOLONG;
			i++;
			continue;
		}
		for (j = i; j < len && ((unsigned char)s[j] < 0x20 ||
					(unsigned char)s[j] >= 0x7f);
		     j++)
			;
		u16 = g_utf8_to_utf16(s + i, (glong)(j - i), NULL, &nu, NULL);
		if (!u16)
			return -EINVAL;
		be = g_malloc((gsize)nu * 2);
		for (glong k = 0; k < nu; k++) {
			be[2 * k] = (guchar)(u16[k] >> 8);
			be[2 * k + 1] = (guchar)(u16[k] & 0xff);
		}
		b64 = g_base64_encode(be, (gsize)nu * 2);
		g_free(be);
		g_free(u16);
		g_strdelimit(b64, "/", ',');
		*strchrnul(b64, '=') = '\0';
		rc = put(out, n, olen, "&", 1);
		if (!rc)
			rc = put(out, n, olen, b64, strlen(b64));
		if (!rc)
			rc = put(out, n, olen, "-", 1);
		g_free(b64);
		if (rc)
			return -ENAMETOOLONG;
		i = j;
	}
	return 0;
}

int maildir_folder_encode(const char *path, char *out, size_t n)
{
	size_t olen = 0;
	const char *p = path;

	if (n == 0)
		return -ENAMETOOLONG;
	out[0] = '\0';
	while (*p) {
		const char *slash = strchrnul(p, '/');

		if (slash > p) {
			int rc;

			if (put(out, n, &olen, ".", 1))
				return -ENAMETOOLONG;
			rc = encode_segment(p, (size_t)(slash - p), out, n,
					    &olen);
			if (rc)
				return rc;
		}
		p = *slash ? slash + 1 : slash;
	}
	return 0;
}

int maildir_folder_decode(const char *dirname, size_t len, char *out, size_t n)
{
	size_t i, start, olen = 0;

	if (n == 0)
		return -ENAMETOOLONG;
	out[0] = '\0';
	start = len > 0 && dirname[0] == '.' ? 1 : 0;
	for (i = start; i <= len; i++) {
		if (i < len && dirname[i] != '.')
			continue;
		if (olen > 0 && put(out, n, &olen, "/", 1) < 0)
			return -ENAMETOOLONG;
		if (decode_segment(dirname + start, i - start, out, n, &olen) <
		    0)
			return -ENAMETOOLONG;
		start = i + 1;
	}
	return 0;
}

struct comp {
	const char *p; /* start in path */
	size_t len;
};

static bool is(const struct comp *c, const char *s)
{
	return c->len == strlen(s) && memcmp(c->p, s, c->len) == 0;
}

static void set_account(const struct comp *c, int user, char *out, size_t n)
{
	const struct comp *dom = user > 0 ? &c[user - 1] : NULL;

	if (user < 0) {
		out[0] = '\0';
		return;
	}
	if (dom && memchr(dom->p, '.', dom->len) && dom->p[0] != '.')
		snprintf(out, n, "%.*s@%.*s", (int)c[user].len, c[user].p,
			 (int)dom->len, dom->p);
	else
		snprintf(out, n, "%.*s", (int)c[user].len, c[user].p);
}

int maildir_locate(const char *path, struct maildir_loc *out)
{
	struct comp c[MAX_DEPTH];
	struct maildir_loc loc;
	const char *p = path;
	int nc = 0, folder, root = -1, user;
	size_t olen = 0;

	while (*p) {
		const char *s;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		if (nc == MAX_DEPTH)
			return -ENOENT;
		s = strchr(p, '/');
		c[nc].p = p;
		c[nc].len = s ? (size_t)(s - p) : strlen(p);
		p += c[nc].len;
		nc++;
	}
	if (nc < 3 || c[nc - 1].p[0] == '.' ||
	    (!is(&c[nc - 2], "cur") && !is(&c[nc - 2], "new")))
		return -ENOENT;
	memset(&loc, 0, sizeof(loc));
	loc.name = c[nc - 1].p;
	loc.in_new = is(&c[nc - 2], "new");
	folder = nc - 3;
	loc.folder_len = (size_t)(c[folder].p + c[folder].len - path);
	if (c[folder].p[0] == '.' && !is(&c[folder], ".") &&
	    !is(&c[folder], "..")) {
		/* Maildir++ subfolder */
		root = folder - 1;
		if (maildir_folder_decode(c[folder].p, c[folder].len,
					  loc.mailbox, sizeof(loc.mailbox)) < 0)
			return -ENAMETOOLONG;
	} else {
		int k;

		for (k = folder; k >= 0; k--)
			if (is(&c[k], "Maildir"))
				break;
		root = k >= 0 ? k : folder;
		for (k = root + 1; k <= folder; k++) {
			if (olen > 0 && put(loc.mailbox, sizeof(loc.mailbox),
					    &olen, "/", 1) < 0)
				return -ENAMETOOLONG;
			if (decode_segment(c[k].p, c[k].len, loc.mailbox,
					   sizeof(loc.mailbox), &olen) < 0)
				return -ENAMETOOLONG;
		}
	}
	if (!loc.mailbox[0])
		snprintf(loc.mailbox, sizeof(loc.mailbox), "INBOX");
	if (root >= 0) {
		loc.root_len = (size_t)(c[root].p + c[root].len - path);
		user = is(&c[root], "Maildir") ? root - 1 : root;
	} else {
		user = -1;
	}
	set_account(c, user, loc.account, sizeof(loc.account));
	*out = loc;
	return 0;
}
