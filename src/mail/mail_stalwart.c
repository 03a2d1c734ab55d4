/*
 * mail_stalwart: Stalwart account exports (jansson) and server dumps
 * (LZ4 frames via liblz4's lz4frame API).
 */
#include "mail_stalwart.h"

#include <errno.h>
#include <glib.h>
#include <jansson.h>
#include <limits.h>
#include <lz4frame.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* Offset just past the last complete element of a top-level JSON array
 * (0 when none): a bracket scanner, not a parser; jansson parses what it
 * finds. */
static size_t last_complete(const char *p, size_t n)
{
	size_t i, last = 0;
	int depth = 0;
	bool str = false, esc = false;

	for (i = 0; i < n; i++) {
		char c = p[i];

		if (str) {
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"')
				str = false;
			continue;
		}
		if (c == '"')
			str = true;
		else if (c == '[' || c == '{')
			depth++;
		else if (c == ']' || c == '}') {
			depth--;
			if (depth == 1)
				last = i + 1;
		} else if (c == ',' && depth == 1)
			last = i;
	}
	return last;
}

/* Load a top-level array, recovering a truncated one.  *cut is set when
 * only a prefix could be read; NULL when nothing could. */
static json_t *load_array(const char *p, size_t n, bool *cut)
{
	json_error_t jerr;
	json_t *j;
	char *fixed;
	size_t last;

	*cut = false;
	j = json_loadb(p, n, 0, &jerr);
	if (j && json_is_array(j))
		return j;
	json_decref(j);
	last = last_complete(p, n);
	if (last == 0)
		return NULL;
	fixed = malloc(last + 2);
	if (!fixed)
		return NULL;
	memcpy(fixed, p, last);
	fixed[last] = ']';
	j = json_loadb(fixed, last + 1, 0, &jerr);
	free(fixed);
	if (!j || !json_is_array(j)) {
		json_decref(j);
		return NULL;
	}
	*cut = true;
	return j;
}

static char *dup_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? strdup(s) : NULL;
}

static bool non_empty(json_t *v)
{
	return (json_is_object(v) && json_object_size(v) > 0) ||
	       (json_is_array(v) && json_array_size(v) > 0);
}

/* Keys of a {"k": true, ...} map whose value is true. */
static int true_keys(json_t *map, char ***out, size_t *n)
{
	const char *k;
	json_t *v;
	char **arr;

	*out = NULL;
	*n = 0;
	if (!json_is_object(map) || json_object_size(map) == 0)
		return 0;
	arr = calloc(json_object_size(map), sizeof(*arr));
	if (!arr)
		return -ENOMEM;
	json_object_foreach(map, k, v)
	{
		if (!json_is_true(v))
			continue;
		arr[*n] = strdup(k);
		if (!arr[*n])
			break;
		(*n)++;
	}
	*out = arr;
	return 0;
}

static int64_t parse_time(const char *s)
{
	GDateTime *dt;
	int64_t t;

	if (!s)
		return -1;
	dt = g_date_time_new_from_iso8601(s, NULL);
	if (!dt)
		return -1;
	t = g_date_time_to_unix(dt);
	g_date_time_unref(dt);
	return t;
}

const struct mail_stalwart_mailbox *
mail_stalwart_mailbox_find(const struct mail_stalwart_export *exp,
			   const char *id)
{
	size_t i;

	for (i = 0; id && i < exp->n_mailboxes; i++)
		if (strcmp(exp->mailboxes[i].id, id) == 0)
			return &exp->mailboxes[i];
	return NULL;
}

/* Full path by parentId; a missing parent or a cycle is reported and the
 * walk stops there. */
static int build_path(struct mail_stalwart_export *exp,
		      struct mail_stalwart_mailbox *mb)
{
	const struct mail_stalwart_mailbox *cur = mb;
	GString *path = g_string_new(NULL);
	size_t depth = 0;

	while (cur) {
		char *seg =
			g_strdup(cur->name && *cur->name ? cur->name : cur->id);

		g_strdelimit(seg, "/", '_');
		if (path->len)
			g_string_prepend_c(path, '/');
		g_string_prepend(path, seg);
		g_free(seg);
		if (!cur->parent_id)
			break;
		if (++depth > exp->n_mailboxes) {
			exp->problems |= MAIL_STALWART_BAD_PARENT;
			break;
		}
		cur = mail_stalwart_mailbox_find(exp, cur->parent_id);
		if (!cur)
			exp->problems |= MAIL_STALWART_BAD_PARENT;
	}
	mb->path = strdup(path->str);
	g_string_free(path, TRUE);
	return mb->path ? 0 : -ENOMEM;
}

static int read_mailboxes(struct mail_stalwart_export *exp, json_t *arr)
{
	size_t i;
	json_t *o;

	exp->mailboxes =
		calloc(json_array_size(arr) + 1, sizeof(*exp->mailboxes));
	if (!exp->mailboxes)
		return -ENOMEM;
	json_array_foreach(arr, i, o)
	{
		struct mail_stalwart_mailbox *mb =
			&exp->mailboxes[exp->n_mailboxes];

		if (!json_is_string(json_object_get(o, "id"))) {
			exp->problems |= MAIL_STALWART_BAD_ENTRY;
			continue;
		}
		mb->id = dup_str(o, "id");
		mb->name = dup_str(o, "name");
		mb->parent_id = dup_str(o, "parentId");
		mb->role = dup_str(o, "role");
		mb->shared = non_empty(json_object_get(o, "acl")) ||
			     non_empty(json_object_get(o, "shareWith"));
		exp->n_mailboxes++;
		if (!mb->id)
			return -ENOMEM;
	}
	for (i = 0; i < exp->n_mailboxes; i++)
		if (build_path(exp, &exp->mailboxes[i]) < 0)
			return -ENOMEM;
	return 0;
}

static int read_emails(struct mail_stalwart_export *exp, json_t *arr)
{
	size_t i;
	json_t *o;

	exp->emails = calloc(json_array_size(arr) + 1, sizeof(*exp->emails));
	if (!exp->emails)
		return -ENOMEM;
	json_array_foreach(arr, i, o)
	{
		struct mail_stalwart_email *e = &exp->emails[exp->n_emails];
		json_t *mid;

		if (!json_is_string(json_object_get(o, "blobId"))) {
			exp->problems |= MAIL_STALWART_BAD_ENTRY;
			continue;
		}
		e->id = dup_str(o, "id");
		e->blob_id = dup_str(o, "blobId");
		e->received_at = parse_time(
			json_string_value(json_object_get(o, "receivedAt")));
		mid = json_object_get(o, "messageId");
		if (json_is_array(mid) && json_array_size(mid) > 0 &&
		    json_is_string(json_array_get(mid, 0)))
			e->message_id = strdup(
				json_string_value(json_array_get(mid, 0)));
		exp->n_emails++;
		if (!e->blob_id ||
		    true_keys(json_object_get(o, "mailboxIds"), &e->mailbox_ids,
			      &e->n_mailbox_ids) < 0 ||
		    true_keys(json_object_get(o, "keywords"), &e->keywords,
			      &e->n_keywords) < 0)
			return -ENOMEM;
	}
	return 0;
}

int mail_stalwart_export_parse(const char *mailboxes, size_t mailboxes_len,
			       const char *emails, size_t emails_len,
			       struct mail_stalwart_export *out,
			       struct mv_err *err)
{
	struct mail_stalwart_export exp;
	json_t *mb = NULL, *em = NULL;
	bool cut;
	int rc = 0;

	memset(&exp, 0, sizeof(exp));
	if (!mailboxes) {
		exp.problems |= MAIL_STALWART_NO_MAILBOXES;
	} else {
		mb = load_array(mailboxes, mailboxes_len, &cut);
		if (!mb)
			exp.problems |= MAIL_STALWART_BAD_JSON;
		if (cut)
			exp.problems |= MAIL_STALWART_MAILBOXES_CUT;
	}
	if (emails) {
		em = load_array(emails, emails_len, &cut);
		if (!em)
			exp.problems |= MAIL_STALWART_BAD_JSON;
		if (cut)
			exp.problems |= MAIL_STALWART_EMAILS_CUT;
	}
	if (mb && (rc = read_mailboxes(&exp, mb)) < 0)
		goto fail;
	if (em && (rc = read_emails(&exp, em)) < 0)
		goto fail;
	json_decref(mb);
	json_decref(em);
	*out = exp;
	return 0;
fail:
	json_decref(mb);
	json_decref(em);
	mail_stalwart_export_release(&exp);
	return mv_err_set(err, rc, "out of memory");
}

void mail_stalwart_export_check_blobs(struct mail_stalwart_export *exp,
				      const char *dir)
{
	char path[PATH_MAX];
	struct stat st;
	size_t i;

	exp->n_missing_blobs = 0;
	for (i = 0; i < exp->n_emails; i++) {
		struct mail_stalwart_email *e = &exp->emails[i];

		e->blob_missing =
			strchr(e->blob_id, '/') || e->blob_id[0] == '.' ||
			(size_t)snprintf(path, sizeof(path), "%s/blobs/%s", dir,
					 e->blob_id) >= sizeof(path) ||
			stat(path, &st) < 0 || !S_ISREG(st.st_mode);
		if (e->blob_missing) {
			exp->n_missing_blobs++;
			exp->problems |= MAIL_STALWART_MISSING_BLOB;
		}
	}
}

int mail_stalwart_export_load(const char *dir, struct mail_stalwart_export *out,
			      struct mv_err *err)
{
	struct mv_err e = MV_ERR_INIT;
	char path[PATH_MAX];
	char *mb = NULL, *em = NULL;
	size_t mb_len = 0, em_len = 0;
	int rc;

	snprintf(path, sizeof(path), "%s/emails.json", dir);
	rc = mv_read_file(path, MAIL_STALWART_MAX_JSON, &em, &em_len, &e);
	if (rc < 0)
		return mv_err_set(err, rc, "cannot read '%s': %s", path,
				  mv_err_msg(&e));
	snprintf(path, sizeof(path), "%s/mailboxes.json", dir);
	mv_err_clear(&e);
	if (mv_read_file(path, MAIL_STALWART_MAX_JSON, &mb, &mb_len, &e) < 0)
		mb = NULL;
	rc = mail_stalwart_export_parse(mb, mb_len, em, em_len, out, err);
	if (rc == 0)
		mail_stalwart_export_check_blobs(out, dir);
	free(mb);
	free(em);
	return rc;
}

static void free_strv(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void mail_stalwart_export_release(struct mail_stalwart_export *exp)
{
	size_t i;

	if (!exp)
		return;
	for (i = 0; i < exp->n_mailboxes; i++) {
		struct mail_stalwart_mailbox *m = &exp->mailboxes[i];

		free(m->id);
		free(m->name);
		free(m->parent_id);
		free(m->role);
		free(m->path);
	}
	for (i = 0; i < exp->n_emails; i++) {
		struct mail_stalwart_email *e = &exp->emails[i];

		free(e->id);
		free(e->blob_id);
		free(e->message_id);
		free_strv(e->mailbox_ids, e->n_mailbox_ids);
		free_strv(e->keywords, e->n_keywords);
	}
	free(exp->mailboxes);
	free(exp->emails);
	memset(exp, 0, sizeof(*exp));
}

bool mail_stalwart_is_export(const char *const *names, size_t n)
{
	bool emails = false, other = false;
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcmp(names[i], "emails.json") == 0)
			emails = true;
		else if (strcmp(names[i], "mailboxes.json") == 0 ||
			 strcmp(names[i], "blobs") == 0)
			other = true;
	}
	return emails && other;
}

/* ---- server dumps ---- */

/* Decoded bytes not yet consumed: data[pos..len). */
struct window {
	struct mv_buf b;
	size_t pos;
	uint64_t base; /* stream offset of b.data[0] */
};

/* LEB128 at w->pos: 1 done, 0 need more bytes, -1 malformed. */
static int take_varint(const struct window *w, size_t *at, uint64_t *v)
{
	uint64_t r = 0;
	unsigned shift = 0;
	size_t i = *at;

	while (i < w->b.len) {
		uint8_t c = w->b.data[i++];

		if (shift > 63)
			return -1;
		r |= (uint64_t)(c & 0x7f) << shift;
		shift += 7;
		if (!(c & 0x80)) {
			*at = i;
			*v = r;
			return 1;
		}
	}
	return 0;
}

/* Hand out every complete record in the window; 0, > 0 stop, < 0 error. */
static int drain(struct window *w, bool *header_done,
		 struct mail_stalwart_dump_info *info,
		 mail_stalwart_record_fn cb, void *cb_ctx, struct mv_err *err)
{
	for (;;) {
		size_t at = w->pos, kpos, vpos;
		uint64_t klen, vlen;
		int r, rc;

		if (!*header_done) {
			if (w->b.len - w->pos < 6)
				return 0;
			if (w->b.data[w->pos] != 0x7b)
				return mv_err_set(err, -EBADMSG,
						  "not a Stalwart export: "
						  "bad magic 0x%02x",
						  w->b.data[w->pos]);
			info->subspace = (char)w->b.data[w->pos + 1];
			info->version = mv_le32(w->b.data + w->pos + 2);
			w->pos += 6;
			*header_done = true;
			continue;
		}
		if (w->pos == w->b.len)
			return 0;
		r = take_varint(w, &at, &klen);
		if (r <= 0)
			goto need;
		if (klen > MAIL_STALWART_MAX_VALUE)
			return mv_err_set(err, -EBADMSG,
					  "corrupt record %llu: key length "
					  "%llu",
					  (unsigned long long)info->records,
					  (unsigned long long)klen);
		if (w->b.len - at < klen)
			return 0;
		kpos = at;
		at += klen;
		r = take_varint(w, &at, &vlen);
		if (r <= 0)
			goto need;
		if (vlen > MAIL_STALWART_MAX_VALUE)
			return mv_err_set(err, -EMSGSIZE,
					  "record %llu: value of %llu bytes "
					  "exceeds the limit",
					  (unsigned long long)info->records,
					  (unsigned long long)vlen);
		if (w->b.len - at < vlen)
			return 0;
		vpos = at;
		w->pos = at + vlen;
		info->records++;
		info->value_offset = w->base + vpos;
		rc = cb ? cb(cb_ctx, w->b.data + kpos, klen, w->b.data + vpos,
			     vlen)
			: 0;
		if (rc != 0)
			return rc;
		continue;
	need:
		if (r < 0)
			return mv_err_set(err, -EBADMSG,
					  "corrupt record %llu: bad length",
					  (unsigned long long)info->records);
		return 0;
	}
}

struct mail_stalwart_dump_scanner {
	LZ4F_dctx *dctx;
	struct window w;
	bool header_done;
	size_t hint; /* LZ4F_decompress: 0 once the frame is complete */
	int rc;	     /* sticky: the first error or stop */
	struct mail_stalwart_dump_info info;
	struct mail_stalwart_dump_info *pinfo; /* &info, or the caller's */
	mail_stalwart_record_fn cb;
	void *cb_ctx;
};

int mail_stalwart_dump_scanner_new(mail_stalwart_record_fn cb, void *cb_ctx,
				   struct mail_stalwart_dump_scanner **out,
				   struct mv_err *err)
{
	struct mail_stalwart_dump_scanner *s = calloc(1, sizeof(*s));

	if (!s)
		return mv_err_set(err, -ENOMEM, "out of memory");
	if (LZ4F_isError(
		    LZ4F_createDecompressionContext(&s->dctx, LZ4F_VERSION))) {
		free(s);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	s->hint = 1;
	s->pinfo = &s->info;
	s->cb = cb;
	s->cb_ctx = cb_ctx;
	*out = s;
	return 0;
}

void mail_stalwart_dump_scanner_free(struct mail_stalwart_dump_scanner *s)
{
	if (!s)
		return;
	LZ4F_freeDecompressionContext(s->dctx);
	mv_buf_release(&s->w.b);
	free(s);
}

const struct mail_stalwart_dump_info *
mail_stalwart_dump_scanner_info(const struct mail_stalwart_dump_scanner *s)
{
	return s->pinfo;
}

int mail_stalwart_dump_scanner_feed(struct mail_stalwart_dump_scanner *s,
				    const void *data, size_t len,
				    struct mv_err *err)
{
	const uint8_t *in = data;
	size_t in_pos = 0;

	if (s->rc)
		return mv_err_set(err, s->rc, "scan already ended");
	while (in_pos < len) {
		struct window *w = &s->w;
		int rc;
		size_t src, dst;

		/* compact the window, then decode into its free tail */
		if (w->pos > 0 && w->pos == w->b.len) {
			w->base += w->b.len;
			w->b.len = 0;
			w->pos = 0;
		} else if (w->pos > (1u << 20)) {
			w->base += w->pos;
			memmove(w->b.data, w->b.data + w->pos,
				w->b.len - w->pos);
			w->b.len -= w->pos;
			w->pos = 0;
		}
		rc = mv_buf_reserve(&w->b, 1 << 16);
		if (rc < 0) {
			s->rc = mv_err_set(err, rc, "out of memory");
			return s->rc;
		}
		src = len - in_pos;
		dst = w->b.cap - w->b.len;
		s->hint = LZ4F_decompress(s->dctx, w->b.data + w->b.len, &dst,
					  in + in_pos, &src, NULL);
		if (LZ4F_isError(s->hint)) {
			s->rc = mv_err_set(
				err, -EBADMSG,
				"corrupt LZ4 frame after %llu "
				"records: %s",
				(unsigned long long)s->pinfo->records,
				LZ4F_getErrorName(s->hint));
			return s->rc;
		}
		in_pos += src;
		w->b.len += dst;
		rc = drain(w, &s->header_done, s->pinfo, s->cb, s->cb_ctx, err);
		if (rc != 0) {
			s->rc = rc;
			return rc;
		}
	}
	return 0;
}

int mail_stalwart_dump_scanner_end(struct mail_stalwart_dump_scanner *s,
				   struct mv_err *err)
{
	if (s->rc)
		return s->rc;
	if (s->hint != 0 || !s->header_done || s->w.pos != s->w.b.len)
		s->rc = mv_err_set(err, -EBADMSG,
				   "export cut short after %llu records",
				   (unsigned long long)s->pinfo->records);
	return s->rc;
}

int mail_stalwart_dump_scan(mail_stalwart_read_fn rd, void *rd_ctx,
			    mail_stalwart_record_fn cb, void *cb_ctx,
			    struct mail_stalwart_dump_info *info,
			    struct mv_err *err)
{
	struct mail_stalwart_dump_scanner *s = NULL;
	uint8_t in[65536];
	int rc;

	memset(info, 0, sizeof(*info));
	rc = mail_stalwart_dump_scanner_new(cb, cb_ctx, &s, err);
	if (rc)
		return rc;
	s->pinfo = info; /* live during the callbacks */
	for (;;) {
		size_t got = 0;

		rc = rd(rd_ctx, in, sizeof(in), &got);
		if (rc < 0) {
			mv_err_set(err, rc, "read error");
			break;
		}
		if (!got) {
			rc = mail_stalwart_dump_scanner_end(s, err);
			break;
		}
		rc = mail_stalwart_dump_scanner_feed(s, in, got, err);
		if (rc)
			break;
	}
	mail_stalwart_dump_scanner_free(s);
	return rc;
}

/* Decode [off, off + len) of the stream; to_end: a frame ending before
 * off + len is not an error, what it holds is appended. */
static int dump_decode(mail_stalwart_read_fn rd, void *rd_ctx, uint64_t off,
		       uint64_t len, bool to_end, struct mv_buf *out,
		       struct mv_err *err)
{
	LZ4F_dctx *dctx = NULL;
	uint8_t in[65536], dec[65536];
	size_t in_len = 0, in_pos = 0;
	uint64_t at = 0, want_end = off + len;
	int rc = 0;

	if (len > MAIL_STALWART_MAX_VALUE)
		return mv_err_set(err, -EMSGSIZE, "value too large");
	if (LZ4F_isError(LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION)))
		return mv_err_set(err, -ENOMEM, "out of memory");
	while (at < want_end) {
		size_t src, dst = sizeof(dec), hint;

		if (in_pos == in_len) {
			rc = rd(rd_ctx, in, sizeof(in), &in_len);
			if (rc < 0) {
				mv_err_set(err, rc, "read error");
				goto out;
			}
			in_pos = 0;
			if (!in_len) {
				rc = mv_err_set(err, -EBADMSG,
						"stream ends at %llu, before "
						"%llu",
						(unsigned long long)at,
						(unsigned long long)want_end);
				goto out;
			}
		}
		src = in_len - in_pos;
		hint = LZ4F_decompress(dctx, dec, &dst, in + in_pos, &src,
				       NULL);
		if (LZ4F_isError(hint)) {
			rc = mv_err_set(err, -EBADMSG,
					"corrupt LZ4 frame at %llu: %s",
					(unsigned long long)at,
					LZ4F_getErrorName(hint));
			goto out;
		}
		in_pos += src;
		if (dst && at + dst > off) {
			uint64_t from = off > at ? off - at : 0;
			uint64_t to = MV_MIN((uint64_t)dst, want_end - at);

			if (mv_buf_append(out, dec + from,
					  (size_t)(to - from))) {
				rc = mv_err_set(err, -ENOMEM, "out of memory");
				goto out;
			}
		}
		at += dst;
		if (!hint && to_end)
			break; /* the frame, and so the stream, ends here */
		if (!hint && at < want_end) {
			rc = mv_err_set(err, -EBADMSG, "frame ends at %llu",
					(unsigned long long)at);
			goto out;
		}
	}
out:
	LZ4F_freeDecompressionContext(dctx);
	return rc;
}

int mail_stalwart_dump_extract(mail_stalwart_read_fn rd, void *rd_ctx,
			       uint64_t off, uint64_t len, struct mv_buf *out,
			       struct mv_err *err)
{
	return dump_decode(rd, rd_ctx, off, len, false, out, err);
}

int mail_stalwart_dump_decode_prefix(mail_stalwart_read_fn rd, void *rd_ctx,
				     uint64_t max, struct mv_buf *out,
				     struct mv_err *err)
{
	return dump_decode(rd, rd_ctx, 0, max, true, out, err);
}

static int fd_read(void *ctx, void *buf, size_t n, size_t *got)
{
	int fd = *(int *)ctx;
	ssize_t r;

	do
		r = read(fd, buf, n);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	*got = (size_t)r;
	return 0;
}

int mail_stalwart_dump_scan_fd(int fd, mail_stalwart_record_fn cb, void *cb_ctx,
			       struct mail_stalwart_dump_info *info,
			       struct mv_err *err)
{
	return mail_stalwart_dump_scan(fd_read, &fd, cb, cb_ctx, info, err);
}
