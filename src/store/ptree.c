/*
 * ptree: writing and reading a directory as a Prolly tree (include/ptree.h).
 *
 * Writing streams the sorted entries into leaves, emitting each finished
 * node at once, then cuts each level of index items the same way: a
 * directory's new nodes come out consecutively, leaves first.  Reading
 * fetches the tree level by level, all children of a level in one call,
 * and assembles the leaves into one struct tree, so every reader of
 * tree_load() sees a directory as before.
 */
#include "ptree.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <zstd.h>

#include "pack.h"
#include "tree_int.h"
#include "util.h"

#define NODE_HDR_MAX (4 + 1 + 1 + 10)
/* smallest index item: empty separator, id, one-byte count */
#define INDEX_MIN_ITEM (1 + MV_ID_LEN + 1)
/* children fetched with one call: a 100k-entry folder's ~7000 leaves in
 * two */
#define FETCH_SLICE ((size_t)4096)

__extension__ typedef unsigned __int128 u128;

/* ---- boundary rule ----------------------------------------------------- */

/* The boundary key: a subkey of the repository's 32-byte master key (the
 * config's secret in format 1), so encryption later changes only where
 * those bytes come from (docs/FORMAT-2.md, section 4). */
static int boundary_key(struct repo *r, uint8_t key[32], struct mv_err *err)
{
	if (sodium_init() < 0)
		return mv_err_set(err, -EIO, "libsodium cannot start");
	if (crypto_kdf_derive_from_key(key, 32, 3, "mvault02",
				       repo_get_config(r)->secret))
		return mv_err_set(err, -EIO, "cannot derive the boundary key");
	return 0;
}

/* First 8 bytes (little endian) of keyed BLAKE2b-256 of the name. */
static uint64_t name_hash(const uint8_t key[32], const char *name, size_t len)
{
	uint8_t h[crypto_generichash_BYTES];

	crypto_generichash(h, sizeof(h), (const unsigned char *)name, len, key,
			   32);
	return mv_le64(h);
}

/* Where nodes of one kind end: no cut below min bytes, always one at max,
 * K = 2 (avg - min)^2 / pi. */
struct cut_rule {
	size_t min, max;
	uint64_t k;
};

static const struct cut_rule leaf_rule = {PTREE_MIN, PTREE_MAX, PTREE_K};
static const struct cut_rule index_rule = {PTREE_INDEX_MIN, PTREE_INDEX_MAX,
					   PTREE_INDEX_K};

/* End the node after an item of len bytes with name hash h, the node now
 * s bytes: s >= MAX, or s >= MIN and h < 2^64 min(1, len (s - MIN) / K).
 * Exact in integers: h K < len (s - MIN) 2^64. */
static bool cut_here(const struct cut_rule *c, uint64_t h, size_t s, size_t len)
{
	u128 x;

	if (s >= c->max)
		return true;
	if (s < c->min)
		return false;
	x = (u128)len * (s - c->min);
	if (x >= c->k)
		return true;
	return (u128)h * c->k < (x << 64);
}

/* Length of the shortest prefix of b that sorts after a (a < b). */
static size_t sep_len(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t c = 0;

	while (c < alen && c < blen && a[c] == b[c])
		c++;
	return MV_MIN(c + 1, blen);
}

/* ---- building ---------------------------------------------------------- */

/* A finished node as its parent lists it. */
struct item {
	const char *first, *last; /* names bounding its subtree (borrowed) */
	uint32_t first_len, last_len;
	uint8_t id[MV_ID_LEN];
	uint32_t size; /* node bytes */
	uint64_t count;
};

struct items {
	struct item *v;
	size_t n, cap;
};

struct build {
	struct repo *r;
	uint8_t key[32];
	ptree_node_fn fn;
	void *arg;
	struct mv_buf body, node;
	struct ptree_info info;
	struct mv_err *err;
};

static struct item *items_add(struct items *it)
{
	if (it->n == it->cap) {
		size_t cap = it->cap ? it->cap * 2 : 64;
		struct item *v = realloc(it->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		it->v = v;
		it->cap = cap;
	}
	memset(&it->v[it->n], 0, sizeof(it->v[0]));
	return &it->v[it->n++];
}

/* Frame the body as a node, name it, hand it on and list it in out. */
static int emit(struct build *b, uint8_t kind, uint8_t level, uint64_t nitems,
		struct item *it)
{
	int rc;

	mv_buf_reset(&b->node);
	if (mv_buf_append(&b->node, PTREE_MAGIC, 4) ||
	    mv_buf_put_u8(&b->node, kind) || mv_buf_put_u8(&b->node, level) ||
	    mv_buf_put_varint(&b->node, nitems) ||
	    mv_buf_append(&b->node, b->body.data, b->body.len))
		return mv_err_set(b->err, -ENOMEM, "out of memory");
	if (b->node.len > UINT32_MAX)
		return mv_err_set(b->err, -EMSGSIZE,
				  "directory node too large");
	repo_chunk_id(b->r, b->node.data, b->node.len, it->id);
	it->size = (uint32_t)b->node.len;
	rc = b->fn(b->arg, it->id, b->node.data, b->node.len, b->err);
	mv_buf_reset(&b->body);
	if (kind == PTREE_LEAF)
		b->info.leaves++;
	else
		b->info.index_nodes++;
	return rc;
}

static int build_leaves(struct build *b, const struct tree_entry *e, uint32_t n,
			struct items *out)
{
	uint32_t i, start = 0;
	int rc;

	mv_buf_reset(&b->body);
	for (i = 0; i < n; i++) {
		size_t before = b->body.len;
		struct item *it;

		if (i && tree_name_cmp(e[i - 1].name, e[i - 1].name_len,
				       e[i].name, e[i].name_len) >= 0)
			return mv_err_set(b->err, -EINVAL,
					  "directory entries not sorted "
					  "('%.200s')",
					  e[i].name);
		if (tree_entry_encode(&b->body, &e[i]))
			return mv_err_set(b->err, -ENOMEM, "out of memory");
		if (i + 1 < n &&
		    !cut_here(&leaf_rule,
			      name_hash(b->key, e[i].name, e[i].name_len),
			      b->body.len, b->body.len - before))
			continue;
		it = items_add(out);
		if (!it)
			return mv_err_set(b->err, -ENOMEM, "out of memory");
		it->first = e[start].name;
		it->first_len = e[start].name_len;
		it->last = e[i].name;
		it->last_len = e[i].name_len;
		it->count = i + 1 - start;
		rc = emit(b, PTREE_LEAF, 0, it->count, it);
		if (rc)
			return rc;
		start = i + 1;
	}
	return 0;
}

static int build_level(struct build *b, const struct items *in, uint8_t level,
		       struct items *out)
{
	size_t i, start = 0;
	uint64_t count = 0;
	int rc;

	mv_buf_reset(&b->body);
	for (i = 0; i < in->n; i++) {
		const struct item *c = &in->v[i];
		size_t before = b->body.len, sl = 0;
		struct item *it;

		if (i > start)
			sl = sep_len(in->v[i - 1].last, in->v[i - 1].last_len,
				     c->first, c->first_len);
		if (mv_buf_put_bytes(&b->body, c->first, sl) ||
		    mv_buf_append(&b->body, c->id, MV_ID_LEN) ||
		    mv_buf_put_varint(&b->body, c->count))
			return mv_err_set(b->err, -ENOMEM, "out of memory");
		count += c->count;
		if (i + 1 < in->n &&
		    !cut_here(&index_rule,
			      name_hash(b->key, c->first, c->first_len),
			      b->body.len, b->body.len - before))
			continue;
		it = items_add(out);
		if (!it)
			return mv_err_set(b->err, -ENOMEM, "out of memory");
		it->first = in->v[start].first;
		it->first_len = in->v[start].first_len;
		it->last = c->last;
		it->last_len = c->last_len;
		it->count = count;
		rc = emit(b, PTREE_INDEX, level, i + 1 - start, it);
		if (rc)
			return rc;
		start = i + 1;
		count = 0;
	}
	return 0;
}

int ptree_build(struct repo *r, const struct tree_entry *ents, uint32_t n,
		ptree_node_fn fn, void *arg, struct tree_chunk *root,
		struct ptree_info *info, struct mv_err *err)
{
	struct items lv = {NULL, 0, 0}, up = {NULL, 0, 0};
	struct build b;
	uint8_t level = 1;
	int rc;

	memset(&b, 0, sizeof(b));
	b.r = r;
	b.fn = fn;
	b.arg = arg;
	b.err = err;
	if (!n)
		return mv_err_set(err, -EINVAL,
				  "an empty directory has no ptree");
	rc = boundary_key(r, b.key, err);
	if (!rc)
		rc = build_leaves(&b, ents, n, &lv);
	while (!rc && lv.n > 1) {
		struct items t;

		if (level >= PTREE_MAX_HEIGHT) {
			rc = mv_err_set(err, -EMSGSIZE, "directory too large");
			break;
		}
		up.n = 0;
		rc = build_level(&b, &lv, level++, &up);
		t = lv;
		lv = up;
		up = t;
	}
	if (!rc) {
		memcpy(root->id, lv.v[0].id, MV_ID_LEN);
		root->size = lv.v[0].size;
		b.info.height = level;
		if (info)
			*info = b.info;
	}
	sodium_memzero(b.key, sizeof(b.key));
	free(lv.v);
	free(up.v);
	mv_buf_release(&b.body);
	mv_buf_release(&b.node);
	return rc;
}

/* ---- compressing nodes ------------------------------------------------ */

/* The built-in dictionary, digested once per process for compression and
 * never freed (readers load it through repo_record.c's dictionary list);
 * without it (out of memory) nodes are compressed as other records. */
static ZSTD_CDict *node_cdict;
static pthread_once_t node_cdict_once = PTHREAD_ONCE_INIT;

static void node_cdict_make(void)
{
	size_t len = 0;
	const void *p = ptree_dict(PTREE_DICT_ID, &len);

	if (p)
		node_cdict = ZSTD_createCDict(p, len, PTREE_ZSTD_LEVEL);
}

struct put {
	struct repo_writer *w;
	ZSTD_CCtx *cctx;   /* made at the first new node */
	struct mv_buf out; /* a compressed node */
};

/* Store a node unless the repository has it: zstd with the built-in
 * dictionary, raw when that saves less than 1/32 (as repo_compress). */
static int put_node(void *arg, const uint8_t id[MV_ID_LEN], const void *node,
		    size_t len, struct mv_err *err)
{
	struct put *p = arg;
	struct repo_comp how = {PACK_COMP_NONE, 0};
	size_t bound = ZSTD_compressBound(len), n;

	if (repo_writer_has(p->w, id))
		return 0;
	pthread_once(&node_cdict_once, node_cdict_make);
	if (!node_cdict)
		return repo_writer_put(p->w, REC_TREE, id, node, len, NULL, 0,
				       NULL, err);
	if (!p->cctx) {
		p->cctx = ZSTD_createCCtx();
		/* the record header names the dictionary: the frame need
		 * not */
		if (!p->cctx ||
		    ZSTD_isError(ZSTD_CCtx_setParameter(
			    p->cctx, ZSTD_c_dictIDFlag, 0)) ||
		    ZSTD_isError(ZSTD_CCtx_setParameter(
			    p->cctx, ZSTD_c_checksumFlag, 0)))
			return mv_err_set(err, -ENOMEM, "out of memory");
	}
	mv_buf_reset(&p->out);
	if (mv_buf_reserve(&p->out, bound))
		return mv_err_set(err, -ENOMEM, "out of memory");
	if (ZSTD_isError(ZSTD_CCtx_refCDict(p->cctx, node_cdict)))
		return mv_err_set(err, -EIO, "zstd cannot use the dictionary");
	n = ZSTD_compress2(p->cctx, p->out.data, bound, node, len);
	if (ZSTD_isError(n))
		return mv_err_set(err, -EIO, "zstd: %s", ZSTD_getErrorName(n));
	if (n + (len >> 5) < len) {
		p->out.len = n;
		how.kind = PACK_COMP_ZSTD_DICT;
		how.dict_id = PTREE_DICT_ID;
	}
	return repo_writer_put_comp(p->w, REC_TREE, id, node, len,
				    how.kind ? p->out.data : NULL, p->out.len,
				    &how, NULL, err);
}

int ptree_write(struct repo *r, struct repo_writer *w,
		const struct tree_entry *ents, uint32_t n,
		struct tree_chunk *root, struct ptree_info *info,
		struct mv_err *err)
{
	struct put p = {w, NULL, MV_BUF_INIT};
	int rc;

	rc = ptree_build(r, ents, n, put_node, &p, root, info, err);
	ZSTD_freeCCtx(p.cctx);
	mv_buf_release(&p.out);
	return rc;
}

bool ptree_is_node(const void *p, size_t len)
{
	return len >= 4 && !memcmp(p, PTREE_MAGIC, 4);
}

/* ---- reading ----------------------------------------------------------- */

struct pitem {
	const uint8_t *sep;
	size_t sep_len;
	const uint8_t *id;
	uint64_t count;
};

struct pnode {
	uint8_t id[MV_ID_LEN];
	struct mv_buf buf; /* the node's bytes (not the root's) */
	const uint8_t *body;
	size_t body_len;
	uint8_t kind, level;
	uint32_t n;
	struct pitem *items;   /* index nodes */
	uint32_t first, count; /* entries of its subtree in the tree */
};

struct level {
	struct pnode *v;
	size_t n;
};

static int damaged(struct mv_err *err, const uint8_t id[MV_ID_LEN],
		   const char *why)
{
	char hex[17];

	mv_hex(id, 8, hex);
	return mv_err_set(err, -EIO, "damaged directory node %s: %s", hex, why);
}

/* Header and, for an index node, its items; counts are checked against
 * the bytes left before anything is allocated for them. */
static int parse_node(struct pnode *nd, const uint8_t *p, size_t len,
		      int want_level, struct mv_err *err)
{
	struct mv_reader r;
	uint64_t n;
	uint32_t i;

	mv_reader_init(&r, p, len);
	if (!ptree_is_node(p, len))
		return damaged(err, nd->id, "not a directory node");
	r.p += 4;
	if (mv_reader_u8(&r, &nd->kind) || mv_reader_u8(&r, &nd->level) ||
	    mv_reader_varint(&r, &n))
		return damaged(err, nd->id, "truncated header");
	if (want_level >= 0 && nd->level != want_level)
		return damaged(err, nd->id, "wrong level");
	if (nd->level >= PTREE_MAX_HEIGHT)
		return damaged(err, nd->id, "too many levels");
	if ((nd->kind == PTREE_LEAF) != (nd->level == 0) ||
	    (nd->kind != PTREE_LEAF && nd->kind != PTREE_INDEX))
		return damaged(err, nd->id, "kind and level disagree");
	nd->body = r.p;
	nd->body_len = (size_t)(r.end - r.p);
	if (!n || n > nd->body_len / (nd->kind == PTREE_LEAF ? TREE_MIN_ENTRY
							     : INDEX_MIN_ITEM))
		return damaged(err, nd->id, "bad item count");
	nd->n = (uint32_t)n;
	if (nd->kind == PTREE_LEAF)
		return 0;
	nd->items = calloc(nd->n, sizeof(*nd->items));
	if (!nd->items)
		return mv_err_set(err, -ENOMEM, "out of memory");
	for (i = 0; i < nd->n; i++) {
		struct pitem *it = &nd->items[i];

		if (mv_reader_bytes(&r, &it->sep, &it->sep_len) ||
		    (size_t)(r.end - r.p) < MV_ID_LEN)
			return damaged(err, nd->id, "truncated item");
		it->id = r.p;
		r.p += MV_ID_LEN;
		if (mv_reader_varint(&r, &it->count) || !it->count ||
		    it->count > UINT32_MAX)
			return damaged(err, nd->id, "bad entry count");
	}
	if (!mv_reader_done(&r))
		return damaged(err, nd->id, "bytes after the last item");
	return 0;
}

static void level_free(struct level *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		mv_buf_release(&l->v[i].buf);
		free(l->v[i].items);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* Read the children of every node of up into down. */
static int read_level(struct repo *r, const struct level *up,
		      struct level *down, ptree_fetch_fn fetch, void *fetch_arg,
		      tree_node_fn visit, void *visit_arg, uint64_t *bytes,
		      struct mv_err *err)
{
	uint8_t(*ids)[MV_ID_LEN] = NULL;
	struct mv_buf *bufs = NULL;
	size_t i, j, k = 0, n = 0;
	int rc = 0;

	for (i = 0; i < up->n; i++)
		n += up->v[i].n;
	ids = calloc(n, sizeof(*ids));
	bufs = calloc(n, sizeof(*bufs));
	down->v = calloc(n, sizeof(*down->v));
	if (!ids || !bufs || !down->v) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	down->n = n;
	for (i = 0; i < up->n; i++)
		for (j = 0; j < up->v[i].n; j++, k++) {
			memcpy(ids[k], up->v[i].items[j].id, MV_ID_LEN);
			memcpy(down->v[k].id, ids[k], MV_ID_LEN);
		}
	for (k = 0; visit && k < n; k++) {
		rc = visit(visit_arg, ids[k], (uint32_t)k, (uint32_t)n);
		if (rc)
			goto out;
	}
	for (k = 0; k < n; k++) {
		struct pnode *nd = &down->v[k];
		uint8_t check[MV_ID_LEN];

		/* a slice at a time, so a crafted level naming one large
		 * node a million times stops at TREE_MAX_BYTES */
		if (k % FETCH_SLICE == 0) {
			rc = fetch(fetch_arg,
				   (const uint8_t(*)[MV_ID_LEN])(ids + k),
				   MV_MIN(n - k, FETCH_SLICE), bufs + k, err);
			if (rc)
				goto out;
		}

		nd->buf = bufs[k];
		bufs[k] = (struct mv_buf)MV_BUF_INIT;
		*bytes += nd->buf.len;
		if (*bytes > TREE_MAX_BYTES) {
			rc = mv_err_set(err, -EMSGSIZE,
					"directory object too large");
			goto out;
		}
		repo_chunk_id(r,
			      nd->buf.data ? nd->buf.data : (const uint8_t *)"",
			      nd->buf.len, check);
		if (memcmp(check, nd->id, MV_ID_LEN)) {
			rc = damaged(err, nd->id,
				     "content does not match its id");
			goto out;
		}
		rc = parse_node(nd, nd->buf.data, nd->buf.len,
				up->v[0].level - 1, err);
		if (rc)
			goto out;
	}
out:
	for (k = 0; bufs && k < n; k++)
		mv_buf_release(&bufs[k]);
	free(bufs);
	free(ids);
	return rc;
}

/* Counts and separators of the index levels against what is below: each
 * item's count is its child's entries; each separator is the one the
 * writer computes (empty first, then the shortest that sorts after the
 * previous child's last name). */
static int check_index(const struct tree *t, struct level *lv, size_t nlv,
		       struct mv_err *err)
{
	size_t L, i, j, k;

	for (L = nlv - 1; L-- > 0;) {
		const struct level *down = &lv[L + 1];

		for (i = 0, k = 0; i < lv[L].n; i++) {
			struct pnode *nd = &lv[L].v[i];
			uint64_t total = 0;

			nd->first = down->v[k].first;
			for (j = 0; j < nd->n; j++, k++) {
				const struct pitem *it = &nd->items[j];
				const struct pnode *c = &down->v[k];
				const struct tree_entry *f =
					&t->entries[c->first];
				size_t sl = 0;

				if (it->count != c->count)
					return damaged(err, nd->id,
						       "entry count does not "
						       "match its child");
				if (j) {
					const struct tree_entry *l =
						&t->entries[c->first - 1];

					sl = sep_len(l->name, l->name_len,
						     f->name, f->name_len);
				}
				if (it->sep_len != sl ||
				    memcmp(it->sep, f->name, sl))
					return damaged(err, nd->id,
						       "wrong separator");
				total += c->count;
			}
			nd->count = (uint32_t)total;
		}
	}
	return 0;
}

int ptree_decode(struct repo *r, const uint8_t root_id[MV_ID_LEN],
		 const void *root, size_t len, ptree_fetch_fn fetch,
		 void *fetch_arg, tree_node_fn visit, void *visit_arg,
		 struct tree **out, struct mv_err *err)
{
	struct level lv[PTREE_MAX_HEIGHT];
	struct tree *t = NULL;
	uint8_t check[MV_ID_LEN];
	uint64_t bytes = len, total = 0;
	size_t nlv = 1, i;
	int rc;

	*out = NULL;
	memset(lv, 0, sizeof(lv));
	lv[0].v = calloc(1, sizeof(*lv[0].v));
	if (!lv[0].v)
		return mv_err_set(err, -ENOMEM, "out of memory");
	lv[0].n = 1;
	memcpy(lv[0].v[0].id, root_id, MV_ID_LEN);
	repo_chunk_id(r, root, len, check);
	if (memcmp(check, root_id, MV_ID_LEN)) {
		rc = damaged(err, root_id, "content does not match its id");
		goto out;
	}
	rc = parse_node(&lv[0].v[0], root, len, -1, err);
	/* a root with one child would be that child: not what a writer
	 * makes, so not accepted (one directory, one root) */
	if (!rc && lv[0].v[0].kind == PTREE_INDEX && lv[0].v[0].n < 2)
		rc = damaged(err, root_id, "index root with one child");
	while (!rc && lv[nlv - 1].v[0].level > 0) {
		rc = read_level(r, &lv[nlv - 1], &lv[nlv], fetch, fetch_arg,
				visit, visit_arg, &bytes, err);
		nlv++;
	}
	if (rc)
		goto out;
	for (i = 0; i < lv[nlv - 1].n; i++) {
		lv[nlv - 1].v[i].first = (uint32_t)total;
		lv[nlv - 1].v[i].count = lv[nlv - 1].v[i].n;
		total += lv[nlv - 1].v[i].n;
	}
	if (total > UINT32_MAX) {
		rc = damaged(err, root_id, "too many entries");
		goto out;
	}
	t = tree_alloc((uint32_t)total);
	if (!t) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < lv[nlv - 1].n; i++) {
		const struct pnode *nd = &lv[nlv - 1].v[i];

		rc = tree_entries_decode(t, nd->first, nd->n, nd->body,
					 nd->body_len);
		if (rc == -ENOMEM) {
			rc = mv_err_set(err, rc, "out of memory");
			goto out;
		}
		if (!rc && nd->first &&
		    tree_name_cmp(t->entries[nd->first - 1].name,
				  t->entries[nd->first - 1].name_len,
				  t->entries[nd->first].name,
				  t->entries[nd->first].name_len) >= 0)
			rc = -EBADMSG;
		if (rc) {
			rc = damaged(err, nd->id, "bad entries");
			goto out;
		}
	}
	rc = check_index(t, lv, nlv, err);
out:
	for (i = 0; i < nlv && i < PTREE_MAX_HEIGHT; i++)
		level_free(&lv[i]);
	if (rc) {
		tree_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

static int fetch_repo(void *arg, const uint8_t (*ids)[MV_ID_LEN], size_t n,
		      struct mv_buf *out, struct mv_err *err)
{
	return repo_chunk_read_many(arg, ids, n, false, out, err);
}

int ptree_load(struct repo *r, const uint8_t root_id[MV_ID_LEN],
	       const void *root, size_t len, tree_node_fn visit, void *arg,
	       struct tree **out, struct mv_err *err)
{
	return ptree_decode(r, root_id, root, len, fetch_repo, r, visit, arg,
			    out, err);
}

/* ---- one path down a directory ---------------------------------------- */

void ptree_node_free(struct ptree_node *nd)
{
	if (!nd)
		return;
	free(nd->kids);
	tree_free(nd->leaf);
	mv_buf_release(&nd->buf);
	free(nd);
}

int ptree_node_open(struct repo *r, const uint8_t id[MV_ID_LEN], const void *p,
		    size_t len, int want_level, struct ptree_node **out,
		    struct mv_err *err)
{
	struct ptree_node *nd;
	struct pnode pn;
	uint8_t check[MV_ID_LEN];
	uint32_t i;
	int rc;

	*out = NULL;
	memset(&pn, 0, sizeof(pn));
	memcpy(pn.id, id, MV_ID_LEN);
	if (r) {
		repo_chunk_id(r, p ? p : (const void *)"", len, check);
		if (memcmp(check, id, MV_ID_LEN))
			return damaged(err, id,
				       "content does not match its id");
	}
	nd = calloc(1, sizeof(*nd));
	if (!nd)
		return mv_err_set(err, -ENOMEM, "out of memory");
	memcpy(nd->id, id, MV_ID_LEN);
	nd->size = len;
	if (mv_buf_append(&nd->buf, p, len)) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	rc = parse_node(&pn, nd->buf.data, nd->buf.len, want_level, err);
	if (rc)
		goto out;
	nd->kind = pn.kind;
	nd->level = pn.level;
	nd->n = pn.n;
	if (nd->kind == PTREE_LEAF) {
		nd->leaf = tree_alloc(nd->n);
		if (!nd->leaf) {
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		rc = tree_entries_decode(nd->leaf, 0, nd->n, pn.body,
					 pn.body_len);
		if (rc == -ENOMEM)
			rc = mv_err_set(err, rc, "out of memory");
		else if (rc)
			rc = damaged(err, id, "bad entries");
		nd->count = nd->n;
		/* the bytes are decoded: keep none of them */
		mv_buf_release(&nd->buf);
		goto out;
	}
	nd->kids = calloc(nd->n, sizeof(*nd->kids));
	if (!nd->kids) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < nd->n; i++) {
		struct ptree_child *c = &nd->kids[i];

		c->sep = pn.items[i].sep;
		c->sep_len = pn.items[i].sep_len;
		c->id = pn.items[i].id;
		c->count = pn.items[i].count;
		c->before = nd->count;
		nd->count += c->count;
		/* the writer's separators: empty first, then increasing */
		if ((i == 0) != (c->sep_len == 0) ||
		    (i && tree_name_cmp((const char *)nd->kids[i - 1].sep,
					(uint32_t)nd->kids[i - 1].sep_len,
					(const char *)c->sep,
					(uint32_t)c->sep_len) >= 0)) {
			rc = damaged(err, id, "wrong separator");
			goto out;
		}
	}
	if (nd->count > UINT32_MAX)
		rc = damaged(err, id, "too many entries");
out:
	free(pn.items);
	if (rc) {
		ptree_node_free(nd);
		return rc;
	}
	*out = nd;
	return 0;
}

size_t ptree_node_cost(const struct ptree_node *nd)
{
	/* decoded entries take about twice their bytes, plus the structs */
	return sizeof(*nd) + 2 * nd->size + nd->buf.cap +
	       (size_t)nd->n * (nd->leaf ? sizeof(struct tree_entry)
					 : sizeof(struct ptree_child));
}

uint32_t ptree_node_find(const struct ptree_node *nd, const char *name,
			 size_t len)
{
	uint32_t lo = 1, hi = nd->n;

	/* the last child whose separator is <= name (the first's is empty):
	 * a separator sorts after every name of the child before it */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct ptree_child *c = &nd->kids[mid];

		if (tree_name_cmp((const char *)c->sep, (uint32_t)c->sep_len,
				  name, (uint32_t)len) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo - 1;
}

int ptree_node_at(const struct ptree_node *nd, uint64_t *pos, uint32_t *child)
{
	uint32_t lo = 0, hi = nd->n;

	if (*pos >= nd->count)
		return -ERANGE;
	/* the last child that starts at or before pos */
	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (nd->kids[mid].before <= *pos)
			lo = mid;
		else
			hi = mid;
	}
	*pos -= nd->kids[lo].before;
	*child = lo;
	return 0;
}

int ptree_lookup(struct repo *r, const uint8_t root_id[MV_ID_LEN],
		 const void *root, size_t len, const char *name,
		 size_t name_len, struct ptree_node **leaf, uint32_t *slot,
		 uint64_t *pos, struct mv_err *err)
{
	struct ptree_node *nd = NULL;
	struct mv_buf b = MV_BUF_INIT;
	uint64_t at = 0;
	int rc;

	*leaf = NULL;
	rc = ptree_node_open(r, root_id, root, len, -1, &nd, err);
	if (!rc && nd->kind == PTREE_INDEX && nd->n < 2)
		rc = damaged(err, root_id, "index root with one child");
	while (!rc && nd->kind == PTREE_INDEX) {
		const struct ptree_child *c =
			&nd->kids[ptree_node_find(nd, name, name_len)];
		struct ptree_node *down = NULL;
		uint8_t id[MV_ID_LEN];

		at += c->before;
		memcpy(id, c->id, MV_ID_LEN);
		rc = repo_chunk_read(r, id, false, &b, err);
		if (!rc)
			rc = ptree_node_open(r, id, b.data, b.len,
					     nd->level - 1, &down, err);
		ptree_node_free(nd);
		nd = down;
	}
	mv_buf_release(&b);
	if (!rc) {
		const struct tree_entry *e =
			tree_find(nd->leaf, name, name_len);

		if (!e) {
			rc = -ENOENT;
		} else {
			*slot = (uint32_t)(e - nd->leaf->entries);
			*pos = at + *slot;
			*leaf = nd;
			return 0;
		}
	}
	ptree_node_free(nd);
	return rc;
}
