/*
 * mail_msg: bounded, never-failing message summary with GMime 3.
 *
 * Limits are enforced before GMime sees the bytes: a header longer than
 * MAIL_MSG_MAX_HEADER is cut at a line end and parsed alone, and a message
 * with more "multipart/" mentions than MAIL_MSG_MAX_NESTING is parsed for
 * its header only, so GMime's recursive multipart parser never goes deep.
 * Workload: one call per new message at backup time (cataloguing), so the
 * common case is a few KiB of header plus a walk of a handful of parts.
 */
#include "mail_msg.h"

#include <errno.h>
#include <gmime/gmime.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_DATE 253402300799LL /* 9999-12-31T23:59:59Z */

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;
static GMimeParserOptions *parser_opts;

static void gmime_setup(void)
{
	static const char *charsets[] = {"UTF-8", "iso-8859-1", NULL};

	g_mime_init();
	parser_opts = g_mime_parser_options_new();
	g_mime_parser_options_set_fallback_charsets(parser_opts, charsets);
	g_mime_parser_options_set_rfc2047_compliance_mode(
		parser_opts, GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_address_compliance_mode(
		parser_opts, GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_parameter_compliance_mode(
		parser_opts, GMIME_RFC_COMPLIANCE_LOOSE);
}

/* Valid UTF-8, no CR/LF, tabs as spaces, runs of blanks collapsed,
 * trimmed; malloc'd (g_free'd input stays with the caller). */
static char *clean_text(const char *s)
{
	gchar *valid;
	char *out, *o;
	const char *p;
	bool space = false;

	if (!s)
		return NULL;
	valid = g_utf8_make_valid(s, -1);
	out = malloc(strlen(valid) + 1);
	if (!out) {
		g_free(valid);
		return NULL;
	}
	o = out;
	for (p = valid; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '\r' || c == '\n' || c == '\t' || c == ' ') {
			space = o != out;
			continue;
		}
		if (space)
			*o++ = ' ';
		space = false;
		*o++ = (char)c;
	}
	*o = '\0';
	g_free(valid);
	return out;
}

char *mail_msg_decode_header(const char *raw)
{
	char *dec, *out;

	pthread_once(&gmime_once, gmime_setup);
	if (!raw)
		return NULL;
	dec = g_mime_utils_header_decode_text(parser_opts, raw);
	out = clean_text(dec ? dec : raw);
	g_free(dec);
	return out;
}

/* Length of the header block (up to and including the blank line), or 0
 * when no blank line is found. */
static size_t header_len(const char *p, size_t n)
{
	size_t i;

	if (n >= 1 && p[0] == '\n')
		return 1;
	if (n >= 2 && p[0] == '\r' && p[1] == '\n')
		return 2;
	for (i = 0; i + 1 < n; i++) {
		if (p[i] != '\n')
			continue;
		if (p[i + 1] == '\n')
			return i + 2;
		if (p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

static size_t count_multipart(const char *p, size_t n, size_t stop)
{
	static const char pat[] = "multipart/";
	size_t i, count = 0;

	for (i = 0; i + sizeof(pat) - 1 <= n; i++) {
		if ((p[i] | 0x20) == 'm' &&
		    strncasecmp(p + i, pat, sizeof(pat) - 1) == 0) {
			if (++count > stop)
				break;
			i += sizeof(pat) - 2;
		}
	}
	return count;
}

static bool has_8bit(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] & 0x80)
			return true;
	return false;
}

struct walk {
	struct mail_msg *m; /* being filled */
	unsigned opts;	    /* enum mail_msg_opts */
	int parts;	    /* parts visited */
	GString *body;	    /* text collected, or NULL */
	int rc;		    /* first error (-ENOMEM) */
};

static void add_attachment(struct walk *w, const char *name)
{
	char **v;
	char *s;

	if (w->m->n_attachments >= MAIL_MSG_MAX_ATTACHMENTS) {
		w->m->flags |= MAIL_MSG_TOO_COMPLEX;
		return;
	}
	s = clean_text(name);
	v = realloc(w->m->attachments, (w->m->n_attachments + 1) * sizeof(*v));
	if (!s || !v) {
		free(s);
		if (v)
			w->m->attachments = v;
		w->rc = -ENOMEM;
		return;
	}
	w->m->attachments = v;
	v[w->m->n_attachments++] = s;
}

static void add_text(struct walk *w, GMimePart *part)
{
	GMimeContentType *ct;
	char *text;
	size_t room;

	if (!w->body || g_mime_part_is_attachment(part))
		return;
	ct = g_mime_object_get_content_type(GMIME_OBJECT(part));
	if (!ct || !g_mime_content_type_is_type(ct, "text", "plain") ||
	    !GMIME_IS_TEXT_PART(part))
		return;
	text = g_mime_text_part_get_text(GMIME_TEXT_PART(part));
	if (!text)
		return;
	if (w->body->len >= MAIL_MSG_MAX_BODY) {
		w->m->flags |= MAIL_MSG_BODY_CUT;
		g_free(text);
		return;
	}
	room = MAIL_MSG_MAX_BODY - w->body->len;
	if (strlen(text) > room) {
		/* back up to a character boundary */
		while (room > 0 && ((unsigned char)text[room] & 0xc0) == 0x80)
			room--;
		text[room] = '\0';
		w->m->flags |= MAIL_MSG_BODY_CUT;
	}
	if (w->body->len)
		g_string_append_c(w->body, '\n');
	g_string_append(w->body, text);
	g_free(text);
}

static void walk_part(struct walk *w, GMimeObject *obj, int depth)
{
	if (!obj || w->rc < 0)
		return;
	if (++w->parts > MAIL_MSG_MAX_PARTS || depth > MAIL_MSG_MAX_NESTING) {
		w->m->flags |= MAIL_MSG_TOO_COMPLEX;
		return;
	}
	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = GMIME_MULTIPART(obj);
		int i, n = g_mime_multipart_get_count(mp);

		for (i = 0; i < n; i++)
			walk_part(w, g_mime_multipart_get_part(mp, i),
				  depth + 1);
		return;
	}
	if (GMIME_IS_MESSAGE_PART(obj)) {
		const char *fn =
			g_mime_object_get_content_disposition_parameter(
				obj, "filename");

		if (fn)
			add_attachment(w, fn);
		return;
	}
	if (GMIME_IS_PART(obj)) {
		GMimePart *part = GMIME_PART(obj);
		const char *fn = g_mime_part_get_filename(part);

		if (fn && *fn)
			add_attachment(w, fn);
		else
			add_text(w, part);
	}
}

static void read_from(struct mail_msg *m, GMimeMessage *msg)
{
	InternetAddressList *list = g_mime_message_get_from(msg);
	int i, n = list ? internet_address_list_length(list) : 0;

	for (i = 0; i < n && !m->from_addr; i++) {
		InternetAddress *ia =
			internet_address_list_get_address(list, i);
		const char *name = internet_address_get_name(ia);

		if (INTERNET_ADDRESS_IS_GROUP(ia)) {
			InternetAddressList *g =
				internet_address_group_get_members(
					INTERNET_ADDRESS_GROUP(ia));

			if (internet_address_list_length(g) > 0)
				ia = internet_address_list_get_address(g, 0);
			if (!INTERNET_ADDRESS_IS_MAILBOX(ia))
				continue;
			name = internet_address_get_name(ia);
		}
		if (!INTERNET_ADDRESS_IS_MAILBOX(ia))
			continue;
		m->from_addr = clean_text(internet_address_mailbox_get_addr(
			INTERNET_ADDRESS_MAILBOX(ia)));
		if (name && *name)
			m->from = clean_text(name);
	}
	if (!m->from && m->from_addr && *m->from_addr)
		m->from = strdup(m->from_addr);
	if (!m->from) {
		/* unparsable address: keep the decoded raw text */
		const char *raw =
			g_mime_object_get_header(GMIME_OBJECT(msg), "From");

		if (raw)
			m->from = mail_msg_decode_header(raw);
	}
	if (!m->from || !*m->from)
		m->flags |= MAIL_MSG_NO_FROM;
}

static char *address_list(GMimeMessage *msg, GMimeAddressType type)
{
	InternetAddressList *list = g_mime_message_get_addresses(msg, type);
	char *s, *out;

	if (!list || internet_address_list_length(list) == 0)
		return NULL;
	s = internet_address_list_to_string(list, NULL, FALSE);
	out = clean_text(s);
	g_free(s);
	return out;
}

static void read_date(struct mail_msg *m, GMimeMessage *msg, int64_t fallback)
{
	GDateTime *dt = g_mime_message_get_date(msg);
	int64_t t;

	m->date = fallback;
	if (!g_mime_object_get_header(GMIME_OBJECT(msg), "Date")) {
		m->flags |= MAIL_MSG_NO_DATE;
		return;
	}
	if (!dt) {
		m->flags |= MAIL_MSG_BAD_DATE;
		return;
	}
	t = g_date_time_to_unix(dt);
	if (t < 0 || t > MAX_DATE) {
		m->flags |= MAIL_MSG_BAD_DATE;
		return;
	}
	m->date = t;
}

/* Offset of the first line that looks like a header field ("Name:"), at
 * most 16 lines in; 0 when the first line already does or none does. */
static size_t first_field(const char *p, size_t n)
{
	size_t off = 0, i;
	int line;

	for (line = 0; line < 16 && off < n; line++) {
		for (i = off; i < n && p[i] > ' ' && p[i] < 127 && p[i] != ':';
		     i++)
			;
		if (i > off && i < n && p[i] == ':')
			return off;
		while (off < n && p[off] != '\n')
			off++;
		off++;
	}
	return 0;
}

static GMimeMessage *construct(const char *p, size_t n)
{
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer(p, n);
	GMimeParser *parser = g_mime_parser_new_with_stream(stream);
	GMimeMessage *msg;

	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	msg = g_mime_parser_construct_message(parser, parser_opts);
	g_object_unref(parser);
	g_object_unref(stream);
	return msg;
}

int mail_msg_parse(const void *vp, size_t n, int64_t fallback_date,
		   unsigned opts, struct mail_msg *out, struct mv_err *err)
{
	const char *p = vp;
	struct mail_msg m;
	struct walk w;
	GMimeMessage *msg = NULL;
	const char *id, *subject;
	size_t hlen, plen = n;
	bool headers_only = (opts & MAIL_MSG_NO_PARTS) != 0;
	char *copy = NULL;
	int rc = 0;

	pthread_once(&gmime_once, gmime_setup);
	memset(&m, 0, sizeof(m));
	memset(&w, 0, sizeof(w));
	m.size = n;
	m.date = fallback_date;
	if (n == 0) {
		m.flags |= MAIL_MSG_EMPTY | MAIL_MSG_NO_DATE |
			   MAIL_MSG_NO_FROM | MAIL_MSG_NO_SUBJECT |
			   MAIL_MSG_NO_MESSAGE_ID;
		*out = m;
		return 0;
	}
	hlen = header_len(p, n);
	if (hlen == 0) {
		m.flags |= MAIL_MSG_NO_BODY;
		hlen = n;
	}
	if (hlen > MAIL_MSG_MAX_HEADER) {
		/* cut at the last line end within the limit */
		size_t cut = MAIL_MSG_MAX_HEADER;

		while (cut > 0 && p[cut - 1] != '\n')
			cut--;
		if (cut == 0)
			cut = MAIL_MSG_MAX_HEADER;
		m.flags |= MAIL_MSG_HEADER_CUT;
		hlen = cut;
		headers_only = true;
	}
	if (has_8bit(p, hlen))
		m.flags |= MAIL_MSG_8BIT_HEADER;
	if (!headers_only && count_multipart(p, n, MAIL_MSG_MAX_NESTING) >
				     MAIL_MSG_MAX_NESTING) {
		m.flags |= MAIL_MSG_TOO_COMPLEX;
		headers_only = true;
	}
	if (headers_only)
		plen = hlen;
	/* GMime copies the bytes; add the blank line a cut header lacks */
	copy = malloc(plen + 2);
	if (!copy) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	memcpy(copy, p, plen);
	if (headers_only &&
	    (m.flags & (MAIL_MSG_HEADER_CUT | MAIL_MSG_NO_BODY))) {
		if (plen && copy[plen - 1] != '\n')
			copy[plen++] = '\n';
		copy[plen++] = '\n';
	}
	msg = construct(copy, plen);
	if (!msg) {
		size_t skip = first_field(copy, plen);

		if (skip > 0) {
			msg = construct(copy + skip, plen - skip);
			m.flags |= MAIL_MSG_LEADING_JUNK;
		}
	}
	if (!msg) {
		m.flags |= MAIL_MSG_NOT_MIME | MAIL_MSG_NO_DATE |
			   MAIL_MSG_NO_FROM | MAIL_MSG_NO_SUBJECT |
			   MAIL_MSG_NO_MESSAGE_ID;
		goto done;
	}
	id = g_mime_message_get_message_id(msg);
	if (id && *id)
		m.message_id = clean_text(id);
	else
		m.flags |= MAIL_MSG_NO_MESSAGE_ID;
	subject = g_mime_message_get_subject(msg);
	if (subject)
		m.subject = clean_text(subject);
	else
		m.flags |= MAIL_MSG_NO_SUBJECT;
	read_date(&m, msg, fallback_date);
	read_from(&m, msg);
	m.to = address_list(msg, GMIME_ADDRESS_TYPE_TO);
	m.cc = address_list(msg, GMIME_ADDRESS_TYPE_CC);
	if (!headers_only) {
		w.m = &m;
		w.opts = opts;
		if (opts & MAIL_MSG_WANT_BODY)
			w.body = g_string_new(NULL);
		walk_part(&w, g_mime_message_get_mime_part(msg), 0);
		if (w.body) {
			if (w.body->len)
				m.body = strdup(w.body->str);
			g_string_free(w.body, TRUE);
		}
		if (w.rc < 0) {
			rc = mv_err_set(err, w.rc, "out of memory");
			goto out;
		}
	}
done:
	*out = m;
	memset(&m, 0, sizeof(m));
out:
	mail_msg_release(&m);
	if (msg)
		g_object_unref(msg);
	free(copy);
	return rc;
}

void mail_msg_release(struct mail_msg *m)
{
	size_t i;

	if (!m)
		return;
	free(m->message_id);
	free(m->from);
	free(m->from_addr);
	free(m->to);
	free(m->cc);
	free(m->subject);
	for (i = 0; i < m->n_attachments; i++)
		free(m->attachments[i]);
	free(m->attachments);
	free(m->body);
	memset(m, 0, sizeof(*m));
}
