/*
 * refs: the one walk over everything a snapshot references
 * (include/refs.h).  Used by prune's mark phase and by check.  The path
 * of the entry being visited is kept in one growing buffer, so the walk
 * allocates per directory, not per entry.
 */
#include "refs.h"

#include <errno.h>
#include <string.h>

#include "mail_view.h"
#include "util.h"

#define REFS_MAX_DEPTH 4096

struct walk {
	struct repo *r;
	const struct refs_visit *v;
	struct mv_err *err;
	struct mv_buf path; /* NUL-terminated path of the current entry */
};

int refs_tree_key(struct repo *r, const struct tree_ref *ref,
		  uint8_t key[MV_ID_LEN])
{
	return tree_chunks_key(r, ref->chunks, ref->n, key);
}

static const char *cur_path(const struct walk *w)
{
	return w->path.len ? (const char *)w->path.data : "";
}

/* Set the path to its first len bytes followed by "/name". */
static int path_set(struct walk *w, size_t len, const char *name,
		    size_t name_len)
{
	w->path.len = len;
	if (mv_buf_append(&w->path, "/", 1) ||
	    mv_buf_append(&w->path, name, name_len) ||
	    mv_buf_append(&w->path, "", 1))
		return mv_err_set(w->err, -ENOMEM, "out of memory");
	w->path.len--; /* keep the NUL out of the length */
	return 0;
}

/* n ids, the first at ids, each stride bytes after the one before. */
static int report(struct walk *w, const struct tree_entry *e,
		  enum refs_kind kind, uint32_t n, const uint8_t *ids,
		  size_t stride)
{
	uint32_t i;

	if (!w->v->chunk)
		return 0;
	for (i = 0; i < n; i++) {
		int rc = w->v->chunk(w->v->arg, cur_path(w), e, kind, i, n,
				     ids + i * stride);
		if (rc)
			return rc;
	}
	return 0;
}

/* The key chunks a mail_crypt view entry names. */
static int report_keys(struct walk *w, const struct tree_entry *e)
{
	uint32_t i;
	int rc;

	if (e->xform != TREE_XFORM_MAILCRYPT)
		return 0;
	for (i = 0; i < e->nxattrs; i++) {
		const struct tree_xattr *x = &e->xattrs[i];

		if (strcmp(x->name, MAIL_VIEW_KEYS_XATTR) || x->len < MV_ID_LEN)
			continue;
		rc = report(w, e, REFS_KEY, x->len / MV_ID_LEN, x->value,
			    MV_ID_LEN);
		if (rc)
			return rc;
	}
	return 0;
}

struct node_visit {
	struct walk *w;
	const struct tree_entry *dent;
	int rc; /* the visitor's answer that stopped the load */
};

/* A node of a ptree below its root: one more REFS_TREE reference of the
 * directory (node i of the n of its level). */
static int report_node(void *arg, const uint8_t id[MV_ID_LEN], uint32_t i,
		       uint32_t n)
{
	struct node_visit *nv = arg;
	struct walk *w = nv->w;

	if (!w->v->chunk)
		return 0;
	nv->rc = w->v->chunk(w->v->arg, cur_path(w), nv->dent, REFS_TREE, i, n,
			     id);
	return nv->rc;
}

static int walk_dir(struct walk *w, const struct tree_entry *dent,
		    const struct tree_ref *ref, int depth)
{
	struct mv_err e = MV_ERR_INIT;
	struct node_visit nv;
	struct tree *t = NULL;
	uint8_t key[MV_ID_LEN];
	size_t base = w->path.len;
	uint32_t i;
	int rc;

	if (!ref->n)
		return 0;
	if (refs_tree_key(w->r, ref, key))
		return mv_err_set(w->err, -ENOMEM, "out of memory");
	if (w->v->dir) {
		rc = w->v->dir(w->v->arg, cur_path(w), ref, key);
		if (rc)
			return rc < 0 ? rc : 0;
	}
	rc = report(w, dent, REFS_TREE, ref->n, ref->chunks[0].id,
		    sizeof(ref->chunks[0]));
	if (rc)
		goto done; /* > 0: not to be read */
	/* a ptree's other nodes are reported as they become known, before
	 * they are read: a visitor that skips one (lost to damage) skips
	 * the directory */
	nv.w = w;
	nv.dent = dent;
	nv.rc = 0;
	rc = tree_load_nodes(w->r, ref, report_node, &nv, &t, &e);
	if (nv.rc) {
		rc = nv.rc;
		goto done;
	}
	if (rc) {
		if (e.code == -ENOMEM)
			return mv_err_set(w->err, -ENOMEM, "out of memory");
		rc = 0;
		if (w->v->dir_error)
			rc = w->v->dir_error(w->v->arg, cur_path(w), &e);
		goto done;
	}
	for (i = 0; i < t->n; i++) {
		const struct tree_entry *en = &t->entries[i];

		rc = path_set(w, base, en->name, en->name_len);
		if (!rc && w->v->entry)
			rc = w->v->entry(w->v->arg, cur_path(w), en);
		if (!rc) {
			rc = report(w, en, REFS_CONTENT, en->nchunks,
				    en->nchunks ? en->chunks[0].id : NULL,
				    sizeof(en->chunks[0]));
			rc = rc > 0 ? 0 : rc;
		}
		if (!rc) {
			rc = report_keys(w, en);
			rc = rc > 0 ? 0 : rc;
		}
		if (!rc && en->type == TREE_DIR && depth < REFS_MAX_DEPTH)
			rc = walk_dir(w, en, &en->subtree, depth + 1);
		if (rc)
			break;
	}
	tree_free(t);
	w->path.len = base;
	if (w->path.len)
		w->path.data[w->path.len] = 0;
done:
	/* every directory dir() accepted ends here, read or not */
	if (rc > 0)
		rc = 0;
	if (!rc && w->v->dir_done)
		rc = w->v->dir_done(w->v->arg, cur_path(w), ref, key);
	return rc;
}

int refs_walk_snapshot(struct repo *r, const struct snapshot *s,
		       const struct refs_visit *v, struct mv_err *err)
{
	struct walk w;
	int rc = 0;

	memset(&w, 0, sizeof(w));
	w.r = r;
	w.v = v;
	w.err = err;
	if (v->chunk)
		rc = v->chunk(v->arg, "", NULL, REFS_SNAPSHOT, 0, 1, s->id);
	if (!rc)
		rc = walk_dir(&w, NULL, &s->root, 0);
	mv_buf_release(&w.path);
	return rc < 0 ? rc : 0;
}
