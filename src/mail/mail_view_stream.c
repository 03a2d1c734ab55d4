/*
 * mail_view_stream: the ingest hook's stream - the files the view needs
 * whole or in part, seen as their bytes pass through ingest.
 */
#include "mail_view_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- whole files through the ingest stream ----------------------------
 *
 * Every source (directory, tar, stdin, ssh://) passes each file's bytes
 * through ingest once; the view asks for the whole bytes of the files it
 * cannot understand from their first chunk:
 *  - an export's mailboxes.json / emails.json: kept (as a directory
 *    source's mail_view_see_whole() keeps them) up to
 *    MAIL_STALWART_MAX_JSON;
 *  - a dump's subspace_t: scanned as it passes (LZ4 window and the record
 *    being assembled only), every record becoming a message whose entry
 *    references the file's chunks once the file is stored.
 * Files a directory source already handed over (see_whole, dump_scan) are
 * not streamed again. */

#define LZ4_MAGIC "\x04\x22\x4d\x18"

static bool export_has_whole(struct mail_view *v, const char *path,
			     const struct vpath *vp)
{
	size_t i;

	for (i = 0; i < v->nexps; i++) {
		const struct sw_export *x = &v->exps[i];

		if (strlen(x->dir) == vp->dir_len &&
		    !memcmp(x->dir, path, vp->dir_len) && x->whole[vp->emails])
			return true;
	}
	return false;
}

void *view_hook_stream_begin(void *ctx, const char *path,
			     const struct tree_entry *meta)
{
	struct mail_view *v = ctx;
	struct vstream *vs;
	struct vpath vp;
	const char *leaf = strrchr(path, '/');

	leaf = leaf ? leaf + 1 : path;
	if (!strcmp(leaf, "subspace_t")) {
		if (view_dump_find(v, path))
			return NULL; /* scanned by the directory source */
		vs = calloc(1, sizeof(*vs));
		if (!vs)
			return NULL;
		vs->kind = VS_DUMP;
		vs->ds.v = v;
		vs->ds.err = &vs->err;
		vs->path = strdup(path);
		if (!vs->path) {
			free(vs);
			return NULL;
		}
		return vs;
	}
	if (meta->size > v->small_file && !mail_view_wants_whole(path)) {
		/* a message larger than one chunk: keep its first bytes */
		view_classify(path, &vp);
		if (vp.kind != RES_MSG && vp.kind != RES_EML &&
		    vp.kind != RES_BLOB)
			return NULL;
		if (vp.kind == RES_MSG && view_large_unchanged(v, path, meta)) {
			/* named from the catalogue: a stream that keeps
			 * nothing, so that analyze() does not parse its
			 * first chunk either */
			vs = calloc(1, sizeof(*vs));
			if (vs) {
				vs->kind = VS_MSG;
				vs->off = true;
			}
			return vs;
		}
		vs = calloc(1, sizeof(*vs));
		if (!vs)
			return NULL;
		vs->kind = VS_MSG;
		vs->mkind = vp.kind;
		vs->cap =
			v->held + PREFIX_MAX <= PREFIX_BUDGET
				? PREFIX_MAX
				: MV_MAX(PREFIX_BUDGET -
						 MV_MIN(v->held, PREFIX_BUDGET),
					 PREFIX_MIN);
		v->held += vs->cap;
		return vs;
	}
	if (!mail_view_wants_whole(path))
		return NULL;
	view_classify(path, &vp);
	if (vp.kind != RES_JSON || meta->size > MAIL_STALWART_MAX_JSON ||
	    export_has_whole(v, path, &vp))
		return NULL;
	vs = calloc(1, sizeof(*vs));
	if (vs)
		vs->kind = VS_JSON;
	return vs;
}

/* The first bytes of a would-be dump: start the scan when they are the
 * LZ4 frame magic. */
static int stream_dump_start(struct mail_view *v, struct vstream *vs,
			     struct mv_err *err)
{
	struct sw_dump *d;
	int rc;

	if (memcmp(vs->buf.data, LZ4_MAGIC, 4)) {
		vs->off = true; /* a file named subspace_t, not a dump */
		return 0;
	}
	d = view_dump_add(v, vs->path);
	if (!d)
		return mv_err_set(err, -ENOMEM, "out of memory");
	vs->ds.dump = (size_t)(d - v->dumps);
	rc = mail_stalwart_dump_scanner_new(view_dump_record, &vs->ds,
					    &vs->scan, err);
	if (!rc)
		vs->ds.info = mail_stalwart_dump_scanner_info(vs->scan);
	return rc;
}

static int stream_dump_feed(struct vstream *vs, const void *data, size_t len,
			    struct mv_err *err)
{
	int rc;

	if (vs->failed)
		return 0;
	mv_err_clear(&vs->err);
	rc = mail_stalwart_dump_scanner_feed(vs->scan, data, len, &vs->err);
	if (rc == -ENOMEM)
		return mv_err_set(err, rc, "%s", mv_err_msg(&vs->err));
	if (rc)
		vs->failed = true; /* keep the messages before it */
	return 0;
}

int view_hook_stream_data(void *ctx, void *stream, const void *data, size_t len,
			  struct mv_err *err)
{
	struct mail_view *v = ctx;
	struct vstream *vs = stream;

	if (vs->off)
		return 0;
	if (vs->kind == VS_MSG) {
		size_t k = MV_MIN(len, vs->cap - vs->buf.len);

		if (!vs->buf.data && mv_buf_reserve(&vs->buf, vs->cap))
			return mv_err_set(err, -ENOMEM, "out of memory");
		if (k && mv_buf_append(&vs->buf, data, k))
			return mv_err_set(err, -ENOMEM, "out of memory");
		return 0;
	}
	if (vs->kind == VS_JSON) {
		if (vs->buf.len + len > MAIL_STALWART_MAX_JSON) {
			vs->off = true;
			mv_buf_release(&vs->buf);
			return 0;
		}
		if (mv_buf_append(&vs->buf, data, len))
			return mv_err_set(err, -ENOMEM, "out of memory");
		return 0;
	}
	if (!vs->scan) {
		int rc;
		/* collect the 4 magic bytes, then feed them first */
		size_t k = MV_MIN(len, 4 - vs->buf.len);

		if (mv_buf_append(&vs->buf, data, k))
			return mv_err_set(err, -ENOMEM, "out of memory");
		data = (const uint8_t *)data + k;
		len -= k;
		if (vs->buf.len < 4)
			return 0;
		rc = stream_dump_start(v, vs, err);
		if (rc)
			return rc;
		if (vs->off)
			return 0;
		rc = stream_dump_feed(vs, vs->buf.data, vs->buf.len, err);
		mv_buf_release(&vs->buf);
		if (rc)
			return rc;
	}
	return len ? stream_dump_feed(vs, data, len, err) : 0;
}

void *view_hook_stream_end(void *ctx, void *stream, bool keep)
{
	struct mail_view *v = ctx;
	struct vstream *vs = stream;
	struct vres *res = NULL;

	if (vs->kind == VS_MSG && vs->off) {
		free(vs); /* large_unchanged: file_done names it */
		return NULL;
	}
	if (vs->kind == VS_MSG && !keep)
		v->held -= vs->cap;
	if (keep && vs->kind == VS_MSG) {
		res = calloc(1, sizeof(*res));
		if (res) {
			res->kind = vs->mkind;
			res->streamed = true;
			res->held = vs->cap;
			res->raw_len = vs->buf.len;
			res->raw = vs->buf.data ? vs->buf.data : malloc(1);
			memset(&vs->buf, 0, sizeof(vs->buf));
			res->layers = mail_crypt_detect(res->raw, res->raw_len);
		}
		if (res && !res->raw) {
			free(res);
			res = NULL;
		}
		if (!res)
			v->held -= vs->cap;
	} else if (keep && vs->kind == VS_JSON && !vs->off) {
		res = calloc(1, sizeof(*res));
		if (res) {
			res->kind = RES_JSON;
			res->raw_len = vs->buf.len;
			res->raw = vs->buf.data ? vs->buf.data : malloc(1);
			if (!res->raw) {
				free(res);
				res = NULL;
			}
			memset(&vs->buf, 0, sizeof(vs->buf));
		}
	} else if (keep && vs->kind == VS_DUMP) {
		if (!vs->scan && !vs->off && vs->buf.len < 4) {
			/* shorter than the magic: not a dump */
		} else if (vs->scan) {
			v->st.dumps++;
			if (vs->failed ||
			    mail_stalwart_dump_scanner_end(vs->scan, &vs->err))
				v->st.dump_errors++;
		}
	}
	mail_stalwart_dump_scanner_free(vs->scan);
	mv_buf_release(&vs->buf);
	free(vs->path);
	free(vs);
	return res;
}
