/*
 * tree: encoding, decoding and building of directory tree objects.
 *
 * Tree object := "MVT1" varint(n) entry*            (entries sorted by name)
 * entry := bytes(name) u8(type) varint(mode uid gid) bytes(user group)
 *          zigzag(mtime_sec) varint(mtime_nsec size flags) [optional...]
 * The optional fields follow in the order of enum entry_flags.  Full
 * description: man/mailvault-format.5.
 *
 * The builder keeps the snapshot's tree in memory while a backup runs
 * (metadata only, about 200 bytes an entry) and writes it bottom-up at
 * the end, so unchanged directories produce identical tree objects and
 * dedup whole.
 */
#include "tree.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "ptree.h"
#include "tree_int.h"

#define TREE_MAGIC "MVT1"

enum entry_flags {
	EF_RDEV = (1 << 0),
	EF_TARGET = (1 << 1),
	EF_LINK = (1 << 2),
	EF_XATTRS = (1 << 3),
	EF_ACL_ACCESS = (1 << 4),
	EF_ACL_DEFAULT = (1 << 5),
	EF_CHUNKS = (1 << 6),
	EF_EXTENTS = (1 << 7),
	EF_SUBTREE = (1 << 8),
	EF_CACHE = (1 << 9),
	EF_XFORM = (1 << 10),
};

/* ---- arena ------------------------------------------------------------ */

struct arena_block {
	struct arena_block *next;
	size_t used, cap;
	uint8_t data[];
};

static void *arena_alloc(void **arena, size_t n)
{
	struct arena_block *b = *arena;

	n = (n + 7) & ~(size_t)7;
	if (!b || b->cap - b->used < n) {
		size_t cap = MV_MAX(n, (size_t)64 << 10);

		b = malloc(sizeof(*b) + cap);
		if (!b)
			return NULL;
		b->next = *arena;
		b->used = 0;
		b->cap = cap;
		*arena = b;
	}
	b->used += n;
	return b->data + b->used - n;
}

static void arena_free(void *arena)
{
	struct arena_block *b = arena;

	while (b) {
		struct arena_block *next = b->next;

		free(b);
		b = next;
	}
}

/* ---- encoding ------------------------------------------------------- */

static uint64_t zigzag(int64_t v)
{
	return ((uint64_t)v << 1) ^ (v < 0 ? ~(uint64_t)0 : 0);
}

static int64_t unzigzag(uint64_t v)
{
	return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static int put_str(struct mv_buf *b, const char *s)
{
	return mv_buf_put_bytes(b, s ? s : "", s ? strlen(s) : 0);
}

static int put_ref(struct mv_buf *b, uint32_t n, const struct tree_chunk *c)
{
	uint32_t i;
	int rc = mv_buf_put_varint(b, n);

	for (i = 0; !rc && i < n; i++) {
		rc = mv_buf_append(b, c[i].id, MV_ID_LEN);
		if (!rc)
			rc = mv_buf_put_varint(b, c[i].size);
	}
	return rc;
}

int tree_entry_encode(struct mv_buf *b, const struct tree_entry *e)
{
	unsigned flags = 0;
	uint32_t i;
	int rc = 0;

	if (e->type == TREE_CHR || e->type == TREE_BLK)
		flags |= EF_RDEV;
	if (e->target)
		flags |= EF_TARGET;
	if (e->link_group)
		flags |= EF_LINK;
	if (e->nxattrs)
		flags |= EF_XATTRS;
	if (e->acl_access)
		flags |= EF_ACL_ACCESS;
	if (e->acl_default)
		flags |= EF_ACL_DEFAULT;
	if (e->nchunks)
		flags |= EF_CHUNKS;
	if (e->nextents)
		flags |= EF_EXTENTS;
	if (e->type == TREE_DIR)
		flags |= EF_SUBTREE;
	if (e->ino || e->ctime_sec || e->dev)
		flags |= EF_CACHE;
	if (e->xform)
		flags |= EF_XFORM;
	rc |= mv_buf_put_bytes(b, e->name, e->name_len);
	rc |= mv_buf_put_u8(b, e->type);
	rc |= mv_buf_put_varint(b, e->mode);
	rc |= mv_buf_put_varint(b, e->uid);
	rc |= mv_buf_put_varint(b, e->gid);
	rc |= put_str(b, e->user);
	rc |= put_str(b, e->group);
	rc |= mv_buf_put_varint(b, zigzag(e->mtime_sec));
	rc |= mv_buf_put_varint(b, e->mtime_nsec);
	rc |= mv_buf_put_varint(b, e->size);
	rc |= mv_buf_put_varint(b, flags);
	if (flags & EF_RDEV) {
		rc |= mv_buf_put_varint(b, e->rdev_major);
		rc |= mv_buf_put_varint(b, e->rdev_minor);
	}
	if (flags & EF_TARGET)
		rc |= put_str(b, e->target);
	if (flags & EF_LINK) {
		rc |= mv_buf_put_varint(b, e->link_group);
		rc |= mv_buf_put_varint(b, e->nlink);
	}
	if (flags & EF_XATTRS) {
		rc |= mv_buf_put_varint(b, e->nxattrs);
		for (i = 0; i < e->nxattrs; i++) {
			rc |= put_str(b, e->xattrs[i].name);
			rc |= mv_buf_put_bytes(b, e->xattrs[i].value,
					       e->xattrs[i].len);
		}
	}
	if (flags & EF_ACL_ACCESS)
		rc |= put_str(b, e->acl_access);
	if (flags & EF_ACL_DEFAULT)
		rc |= put_str(b, e->acl_default);
	if (flags & EF_CHUNKS)
		rc |= put_ref(b, e->nchunks, e->chunks);
	if (flags & EF_EXTENTS) {
		rc |= mv_buf_put_varint(b, e->nextents);
		for (i = 0; i < e->nextents; i++) {
			rc |= mv_buf_put_varint(b, e->extents[i].offset);
			rc |= mv_buf_put_varint(b, e->extents[i].len);
		}
	}
	if (flags & EF_SUBTREE) {
		rc |= put_ref(b, e->subtree.n, e->subtree.chunks);
		rc |= mv_buf_put_varint(b, e->nsubdirs);
		rc |= mv_buf_put_varint(b, e->nentries);
	}
	if (flags & EF_CACHE) {
		rc |= mv_buf_put_varint(b, zigzag(e->ctime_sec));
		rc |= mv_buf_put_varint(b, e->ctime_nsec);
		rc |= mv_buf_put_varint(b, e->ino);
		rc |= mv_buf_put_varint(b, e->dev);
	}
	if (flags & EF_XFORM)
		rc |= mv_buf_put_u8(b, e->xform);
	return rc ? -ENOMEM : 0;
}

int tree_encode(const struct tree_entry *entries, uint32_t n,
		struct mv_buf *out, struct mv_err *err)
{
	uint32_t i;
	int rc;

	rc = mv_buf_append(out, TREE_MAGIC, 4);
	if (!rc)
		rc = mv_buf_put_varint(out, n);
	for (i = 0; !rc && i < n; i++)
		rc = tree_entry_encode(out, &entries[i]);
	if (rc)
		return mv_err_set(err, -ENOMEM,
				  "out of memory encoding a "
				  "directory");
	return 0;
}

/* ---- decoding ------------------------------------------------------- */

struct dec {
	struct mv_reader r;
	void **arena;
};

/* Bytes not read yet: every count read is checked against them by
 * division, so a crafted count cannot wrap a product around. */
static uint64_t left(const struct dec *d)
{
	return (uint64_t)(d->r.end - d->r.p);
}

static int get_str(struct dec *d, char **out, uint32_t *out_len,
		   bool empty_null)
{
	const uint8_t *p;
	size_t n;
	char *s;

	if (mv_reader_bytes(&d->r, &p, &n) || n > UINT32_MAX)
		return -EBADMSG;
	if (memchr(p, 0, n))
		return -EBADMSG;
	if (out_len)
		*out_len = (uint32_t)n;
	if (!n && empty_null) {
		*out = NULL;
		return 0;
	}
	s = arena_alloc(d->arena, n + 1);
	if (!s)
		return -ENOMEM;
	memcpy(s, p, n);
	s[n] = '\0';
	*out = s;
	return 0;
}

static int get_u32(struct dec *d, uint32_t *out)
{
	uint64_t v;

	if (mv_reader_varint(&d->r, &v) || v > UINT32_MAX)
		return -EBADMSG;
	*out = (uint32_t)v;
	return 0;
}

static int get_ref(struct dec *d, uint32_t *out_n, struct tree_chunk **out)
{
	struct tree_chunk *c;
	uint32_t n, i;

	if (get_u32(d, &n))
		return -EBADMSG;
	if (n > left(d) / (MV_ID_LEN + 1))
		return -EBADMSG;
	c = n ? arena_alloc(d->arena, n * sizeof(*c)) : NULL;
	if (n && !c)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (mv_reader_fixed(&d->r, c[i].id, MV_ID_LEN) ||
		    get_u32(d, &c[i].size))
			return -EBADMSG;
	}
	*out_n = n;
	*out = c;
	return 0;
}

static int decode_entry(struct dec *d, struct tree_entry *e)
{
	uint64_t v, flags;
	uint32_t i;
	int rc;

	memset(e, 0, sizeof(*e));
	rc = get_str(d, &e->name, &e->name_len, false);
	if (rc)
		return rc;
	if (mv_reader_u8(&d->r, &e->type) || e->type < TREE_REG ||
	    e->type > TREE_SOCK)
		return -EBADMSG;
	if (get_u32(d, &e->mode) || get_u32(d, &e->uid) || get_u32(d, &e->gid))
		return -EBADMSG;
	rc = get_str(d, &e->user, NULL, true);
	if (!rc)
		rc = get_str(d, &e->group, NULL, true);
	if (rc)
		return rc;
	if (mv_reader_varint(&d->r, &v))
		return -EBADMSG;
	e->mtime_sec = unzigzag(v);
	if (get_u32(d, &e->mtime_nsec) || mv_reader_varint(&d->r, &e->size) ||
	    mv_reader_varint(&d->r, &flags))
		return -EBADMSG;
	if ((flags & EF_RDEV) &&
	    (get_u32(d, &e->rdev_major) || get_u32(d, &e->rdev_minor)))
		return -EBADMSG;
	if ((flags & EF_TARGET) && (rc = get_str(d, &e->target, NULL, false)))
		return rc;
	if ((flags & EF_LINK) &&
	    (mv_reader_varint(&d->r, &e->link_group) || get_u32(d, &e->nlink)))
		return -EBADMSG;
	if (!e->nlink)
		e->nlink = 1;
	if (flags & EF_XATTRS) {
		/* each takes at least its two length bytes */
		if (get_u32(d, &e->nxattrs) || e->nxattrs > left(d) / 2)
			return -EBADMSG;
		e->xattrs =
			arena_alloc(d->arena, e->nxattrs * sizeof(*e->xattrs));
		if (!e->xattrs)
			return -ENOMEM;
		for (i = 0; i < e->nxattrs; i++) {
			const uint8_t *p;
			size_t n;

			rc = get_str(d, &e->xattrs[i].name, NULL, false);
			if (rc)
				return rc;
			if (mv_reader_bytes(&d->r, &p, &n))
				return -EBADMSG;
			e->xattrs[i].value = arena_alloc(d->arena, n ? n : 1);
			if (!e->xattrs[i].value)
				return -ENOMEM;
			memcpy(e->xattrs[i].value, p, n);
			e->xattrs[i].len = (uint32_t)n;
		}
	}
	if ((flags & EF_ACL_ACCESS) &&
	    (rc = get_str(d, &e->acl_access, NULL, false)))
		return rc;
	if ((flags & EF_ACL_DEFAULT) &&
	    (rc = get_str(d, &e->acl_default, NULL, false)))
		return rc;
	if ((flags & EF_CHUNKS) && (rc = get_ref(d, &e->nchunks, &e->chunks)))
		return rc;
	if (flags & EF_EXTENTS) {
		if (get_u32(d, &e->nextents) || e->nextents > left(d) / 2)
			return -EBADMSG;
		e->extents = arena_alloc(d->arena,
					 e->nextents * sizeof(*e->extents));
		if (!e->extents)
			return -ENOMEM;
		for (i = 0; i < e->nextents; i++)
			if (mv_reader_varint(&d->r, &e->extents[i].offset) ||
			    mv_reader_varint(&d->r, &e->extents[i].len))
				return -EBADMSG;
	}
	if (flags & EF_SUBTREE) {
		rc = get_ref(d, &e->subtree.n, &e->subtree.chunks);
		if (rc)
			return rc;
		if (get_u32(d, &e->nsubdirs) || get_u32(d, &e->nentries))
			return -EBADMSG;
	}
	/* a directory's link count is always its own: a link field stored
	 * with it is not trusted, so encode(decode(x)) is a fixed point */
	if (e->type == TREE_DIR)
		e->nlink = 2 + e->nsubdirs;
	if (flags & EF_CACHE) {
		if (mv_reader_varint(&d->r, &v))
			return -EBADMSG;
		e->ctime_sec = unzigzag(v);
		if (get_u32(d, &e->ctime_nsec) ||
		    mv_reader_varint(&d->r, &e->ino) ||
		    mv_reader_varint(&d->r, &e->dev))
			return -EBADMSG;
	}
	if ((flags & EF_XFORM) && mv_reader_u8(&d->r, &e->xform))
		return -EBADMSG;
	return 0;
}

int tree_name_cmp(const char *a, uint32_t alen, const char *b, uint32_t blen)
{
	int c = memcmp(a, b, MV_MIN(alen, blen));

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

int tree_decode(const void *buf, size_t len, struct tree **out,
		struct mv_err *err)
{
	struct tree *t;
	struct dec d;
	uint64_t n;
	uint32_t i;
	int rc = 0;

	t = calloc(1, sizeof(*t));
	if (!t)
		return mv_err_set(err, -ENOMEM, "out of memory");
	d.arena = &t->arena;
	mv_reader_init(&d.r, buf, len);
	if (len < 4 || memcmp(buf, TREE_MAGIC, 4)) {
		rc = -EBADMSG;
		goto out;
	}
	d.r.p += 4;
	/* the count is untrusted: refuse one the object cannot hold before
	 * allocating ~200 bytes an entry for it */
	if (mv_reader_varint(&d.r, &n) || n > left(&d) / TREE_MIN_ENTRY) {
		rc = -EBADMSG;
		goto out;
	}
	t->n = (uint32_t)n;
	t->entries = n ? arena_alloc(&t->arena, n * sizeof(*t->entries)) : NULL;
	if (n && !t->entries) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < t->n; i++) {
		rc = decode_entry(&d, &t->entries[i]);
		if (rc)
			goto out;
		if (i && tree_name_cmp(t->entries[i - 1].name,
				       t->entries[i - 1].name_len,
				       t->entries[i].name,
				       t->entries[i].name_len) >= 0) {
			rc = -EBADMSG;
			goto out;
		}
	}
	if (!mv_reader_done(&d.r))
		rc = -EBADMSG;
out:
	if (rc) {
		tree_free(t);
		if (rc == -ENOMEM)
			return mv_err_set(err, rc, "out of memory");
		return mv_err_set(err, -EIO,
				  "damaged directory object "
				  "(%zu bytes)",
				  len);
	}
	*out = t;
	return 0;
}

struct tree *tree_alloc(uint32_t n)
{
	struct tree *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->n = n;
	t->entries = n ? arena_alloc(&t->arena, n * sizeof(*t->entries)) : NULL;
	if (n && !t->entries) {
		free(t);
		return NULL;
	}
	return t;
}

int tree_entries_decode(struct tree *t, uint32_t first, uint32_t n,
			const uint8_t *p, size_t len)
{
	struct dec d;
	uint32_t i;

	if (first > t->n || n > t->n - first || n > len / TREE_MIN_ENTRY)
		return -EBADMSG;
	d.arena = &t->arena;
	mv_reader_init(&d.r, p, len);
	for (i = first; i < first + n; i++) {
		int rc = decode_entry(&d, &t->entries[i]);

		if (rc)
			return rc;
		if (i > first && tree_name_cmp(t->entries[i - 1].name,
					       t->entries[i - 1].name_len,
					       t->entries[i].name,
					       t->entries[i].name_len) >= 0)
			return -EBADMSG;
	}
	return mv_reader_done(&d.r) ? 0 : -EBADMSG;
}

void tree_free(struct tree *t)
{
	if (!t)
		return;
	arena_free(t->arena);
	free(t);
}

int tree_load(struct repo *r, const struct tree_ref *ref, struct tree **out,
	      struct mv_err *err)
{
	return tree_load_nodes(r, ref, NULL, NULL, out, err);
}

int tree_load_nodes(struct repo *r, const struct tree_ref *ref, tree_node_fn fn,
		    void *arg, struct tree **out, struct mv_err *err)
{
	struct mv_buf all = MV_BUF_INIT, one = MV_BUF_INIT;
	uint32_t i;
	int rc = 0;

	*out = NULL;
	if (!ref->n)
		return tree_decode(TREE_MAGIC "\0", 5, out, err);
	if (ref->n == 1) {
		rc = repo_chunk_read(r, ref->chunks[0].id, false, &one, err);
		/* format 2: the chunk is a ptree's root node */
		if (!rc && ptree_is_node(one.data, one.len))
			rc = ptree_load(r, ref->chunks[0].id, one.data, one.len,
					fn, arg, out, err);
		else if (!rc)
			rc = tree_decode(one.data, one.len, out, err);
		mv_buf_release(&one);
		return rc;
	}
	for (i = 0; !rc && i < ref->n; i++) {
		rc = repo_chunk_read(r, ref->chunks[i].id, false, &one, err);
		if (!rc && mv_buf_append(&all, one.data, one.len))
			rc = mv_err_set(err, -ENOMEM, "out of memory");
		if (!rc && all.len > TREE_MAX_BYTES)
			rc = mv_err_set(err, -EMSGSIZE,
					"directory object too "
					"large");
	}
	if (!rc)
		rc = tree_decode(all.data, all.len, out, err);
	mv_buf_release(&one);
	mv_buf_release(&all);
	return rc;
}

const struct tree_entry *tree_find(const struct tree *t, const char *name,
				   size_t len)
{
	uint32_t lo = 0, hi = t->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct tree_entry *e = &t->entries[mid];
		int c = tree_name_cmp(e->name, e->name_len, name,
				      (uint32_t)len);

		if (!c)
			return e;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* ---- deep copies --------------------------------------------------- */

static int dup_mem(void **dst, const void *src, size_t n)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = malloc(n ? n : 1);
	if (!*dst)
		return -ENOMEM;
	memcpy(*dst, src, n);
	return 0;
}

static int dup_str(char **dst, const char *src)
{
	return dup_mem((void **)dst, src, src ? strlen(src) + 1 : 0);
}

int tree_chunks_key(struct repo *r, const struct tree_chunk *chunks, uint32_t n,
		    uint8_t key[MV_ID_LEN])
{
	struct mv_buf b = MV_BUF_INIT;
	uint32_t k;

	if (n == 1) {
		memcpy(key, chunks[0].id, MV_ID_LEN);
		return 0;
	}
	for (k = 0; k < n; k++)
		if (mv_buf_append(&b, chunks[k].id, MV_ID_LEN)) {
			mv_buf_release(&b);
			return -ENOMEM;
		}
	repo_chunk_id(r, b.data ? (const void *)b.data : (const void *)"",
		      b.len, key);
	mv_buf_release(&b);
	return 0;
}

int tree_ref_copy(struct tree_ref *dst, const struct tree_ref *src)
{
	dst->n = src->n;
	if (dup_mem((void **)&dst->chunks, src->chunks,
		    src->n * sizeof(*src->chunks))) {
		dst->n = 0;
		return -ENOMEM;
	}
	return 0;
}

void tree_ref_release(struct tree_ref *ref)
{
	free(ref->chunks);
	ref->chunks = NULL;
	ref->n = 0;
}

int tree_entry_copy(struct tree_entry *dst, const struct tree_entry *src,
		    struct mv_err *err)
{
	int rc = 0;

	*dst = *src;
	dst->name = dst->user = dst->group = dst->target = NULL;
	dst->acl_access = dst->acl_default = NULL;
	dst->xattrs = NULL;
	dst->chunks = NULL;
	dst->extents = NULL;
	dst->subtree.chunks = NULL;
	dst->nxattrs = 0;
	rc |= dup_mem((void **)&dst->name, src->name ? src->name : "",
		      src->name_len + 1);
	rc |= dup_str(&dst->user, src->user);
	rc |= dup_str(&dst->group, src->group);
	rc |= dup_str(&dst->target, src->target);
	rc |= dup_str(&dst->acl_access, src->acl_access);
	rc |= dup_str(&dst->acl_default, src->acl_default);
	rc |= dup_mem((void **)&dst->chunks, src->chunks,
		      src->nchunks * sizeof(*src->chunks));
	rc |= dup_mem((void **)&dst->extents, src->extents,
		      src->nextents * sizeof(*src->extents));
	rc |= dup_mem((void **)&dst->subtree.chunks, src->subtree.chunks,
		      src->subtree.n * sizeof(*src->subtree.chunks));
	if (!rc && src->nxattrs) {
		uint32_t i;

		dst->xattrs = calloc(src->nxattrs, sizeof(*dst->xattrs));
		if (!dst->xattrs)
			rc = -ENOMEM;
		for (i = 0; !rc && i < src->nxattrs; i++) {
			dst->nxattrs++;
			rc |= dup_str(&dst->xattrs[i].name,
				      src->xattrs[i].name);
			rc |= dup_mem((void **)&dst->xattrs[i].value,
				      src->xattrs[i].value
					      ? src->xattrs[i].value
					      : (const uint8_t *)"",
				      src->xattrs[i].len);
			dst->xattrs[i].len = src->xattrs[i].len;
		}
	}
	if (rc) {
		tree_entry_release(dst);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

void tree_entry_release(struct tree_entry *e)
{
	uint32_t i;

	free(e->name);
	free(e->user);
	free(e->group);
	free(e->target);
	free(e->acl_access);
	free(e->acl_default);
	for (i = 0; i < e->nxattrs; i++) {
		free(e->xattrs[i].name);
		free(e->xattrs[i].value);
	}
	free(e->xattrs);
	free(e->chunks);
	free(e->extents);
	free(e->subtree.chunks);
	memset(e, 0, sizeof(*e));
}

/* ---- builder -------------------------------------------------------- */

struct tb_node {
	struct tree_entry e; /* owns its strings */
	struct tb_node *parent;
	struct tb_node **kids; /* children (directories) */
	uint32_t nkids, cap;
	uint64_t hash; /* of (parent, name) */
};

struct tree_builder {
	struct tb_node root;
	struct tb_node **table; /* open addressing by (parent, name) */
	size_t tsize, tused;
	uint64_t next_group; /* hard-link groups handed out */
};

static uint64_t node_hash(const struct tb_node *parent, const char *name,
			  size_t len)
{
	return hash_xxh3(name, len) ^
	       ((uint64_t)(uintptr_t)parent * 0x9E3779B97F4A7C15ull);
}

static int table_grow(struct tree_builder *tb)
{
	size_t nsize = tb->tsize ? tb->tsize * 2 : 1024, i;
	struct tb_node **nt = calloc(nsize, sizeof(*nt));

	if (!nt)
		return -ENOMEM;
	for (i = 0; i < tb->tsize; i++) {
		struct tb_node *n = tb->table[i];
		size_t j;

		if (!n)
			continue;
		for (j = n->hash & (nsize - 1); nt[j];
		     j = (j + 1) & (nsize - 1))
			;
		nt[j] = n;
	}
	free(tb->table);
	tb->table = nt;
	tb->tsize = nsize;
	return 0;
}

static struct tb_node *table_find(struct tree_builder *tb,
				  const struct tb_node *parent,
				  const char *name, size_t len)
{
	uint64_t h = node_hash(parent, name, len);
	size_t j;

	if (!tb->tsize)
		return NULL;
	for (j = h & (tb->tsize - 1); tb->table[j];
	     j = (j + 1) & (tb->tsize - 1)) {
		struct tb_node *n = tb->table[j];

		if (n->hash == h && n->parent == parent &&
		    n->e.name_len == len && !memcmp(n->e.name, name, len))
			return n;
	}
	return NULL;
}

static int table_insert(struct tree_builder *tb, struct tb_node *n)
{
	size_t j;

	if ((tb->tused + 1) * 4 >= tb->tsize * 3 && table_grow(tb))
		return -ENOMEM;
	for (j = n->hash & (tb->tsize - 1); tb->table[j];
	     j = (j + 1) & (tb->tsize - 1))
		;
	tb->table[j] = n;
	tb->tused++;
	return 0;
}

int tree_builder_new(struct tree_builder **out, struct mv_err *err)
{
	struct tree_builder *tb = calloc(1, sizeof(*tb));

	if (!tb)
		return mv_err_set(err, -ENOMEM, "out of memory");
	tb->root.e.type = TREE_DIR;
	tb->root.e.mode = 0755;
	tb->root.e.nlink = 1;
	tb->root.e.name = strdup("");
	if (!tb->root.e.name) {
		free(tb);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	*out = tb;
	return 0;
}

static void node_free(struct tb_node *n)
{
	uint32_t i;

	for (i = 0; i < n->nkids; i++) {
		node_free(n->kids[i]);
		free(n->kids[i]);
	}
	free(n->kids);
	tree_entry_release(&n->e);
}

void tree_builder_free(struct tree_builder *tb)
{
	if (!tb)
		return;
	node_free(&tb->root);
	free(tb->table);
	free(tb);
}

static struct tb_node *add_child(struct tree_builder *tb,
				 struct tb_node *parent, const char *name,
				 size_t len)
{
	struct tb_node *n;

	if (parent->nkids == parent->cap) {
		uint32_t cap = parent->cap ? parent->cap * 2 : 4;
		struct tb_node **k = realloc(parent->kids, cap * sizeof(*k));

		if (!k)
			return NULL;
		parent->kids = k;
		parent->cap = cap;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->e.name = malloc(len + 1);
	if (!n->e.name) {
		free(n);
		return NULL;
	}
	memcpy(n->e.name, name, len);
	n->e.name[len] = '\0';
	n->e.name_len = (uint32_t)len;
	n->e.type = TREE_DIR;
	n->e.mode = 0755;
	n->e.nlink = 1;
	n->e.mtime_sec = parent->e.mtime_sec;
	n->parent = parent;
	n->hash = node_hash(parent, name, len);
	if (table_insert(tb, n)) {
		free(n->e.name);
		free(n);
		return NULL;
	}
	parent->kids[parent->nkids++] = n;
	return n;
}

/* Walk path, creating missing directories; returns the final node. */
static int walk(struct tree_builder *tb, const char *path, bool create,
		struct tb_node **out, struct mv_err *err)
{
	struct tb_node *cur = &tb->root;
	const char *p = path;
	int depth = 0;

	for (;;) {
		const char *slash;
		size_t len;
		struct tb_node *next;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		slash = strchr(p, '/');
		len = slash ? (size_t)(slash - p) : strlen(p);
		if (++depth > TREE_MAX_DEPTH)
			return mv_err_set(err, -ENAMETOOLONG,
					  "path '%.200s' "
					  "is nested too deeply",
					  path);
		if (cur->e.type != TREE_DIR) {
			if (!create)
				return -ENOENT;
			return mv_err_set(err, -ENOTDIR,
					  "'%.200s': a parent "
					  "is not a directory",
					  path);
		}
		next = table_find(tb, cur, p, len);
		if (!next) {
			if (!create)
				return -ENOENT;
			next = add_child(tb, cur, p, len);
			if (!next)
				return mv_err_set(err, -ENOMEM,
						  "out of memory");
		}
		cur = next;
		p += len;
	}
	*out = cur;
	return 0;
}

struct tree_entry *tree_builder_get(struct tree_builder *tb, const char *path)
{
	struct tb_node *n;

	if (walk(tb, path, false, &n, NULL))
		return NULL;
	return &n->e;
}

int tree_builder_add(struct tree_builder *tb, const char *path,
		     const struct tree_entry *e, struct mv_err *err)
{
	struct tree_entry copy;
	struct tb_node *n;
	int rc;

	rc = walk(tb, path, true, &n, err);
	if (rc)
		return rc;
	if (n->nkids && e->type != TREE_DIR)
		return mv_err_set(err, -EISDIR,
				  "'%.200s' is a directory with "
				  "entries and cannot become a file",
				  path);
	rc = tree_entry_copy(&copy, e, err);
	if (rc)
		return rc;
	/* keep the node's own name: the entry's name is not used here */
	free(copy.name);
	copy.name = n->e.name;
	copy.name_len = n->e.name_len;
	n->e.name = NULL;
	tree_entry_release(&n->e);
	n->e = copy;
	if (!n->e.nlink)
		n->e.nlink = 1;
	return 0;
}

int tree_builder_link(struct tree_builder *tb, const char *path,
		      const char *target, struct mv_err *err)
{
	struct tb_node *t, *n;
	int rc;

	if (walk(tb, target, false, &t, NULL) || t == &tb->root)
		return mv_err_set(err, -ENOENT,
				  "hard link '%.200s' points "
				  "to '%.200s', which is not in the input",
				  path, target);
	if (t->e.type == TREE_DIR)
		return mv_err_set(err, -EPERM,
				  "hard link '%.200s' points to "
				  "directory '%.200s'",
				  path, target);
	if (!t->e.link_group)
		t->e.link_group = ++tb->next_group;
	rc = walk(tb, path, true, &n, err);
	if (rc)
		return rc;
	if (n == t)
		return 0;
	if (n->nkids)
		return mv_err_set(err, -EISDIR,
				  "hard link '%.200s' would "
				  "replace a directory",
				  path);
	return tree_builder_add(tb, path, &t->e, err);
}

static int kid_cmp(const void *a, const void *b)
{
	const struct tb_node *x = *(struct tb_node *const *)a;
	const struct tb_node *y = *(struct tb_node *const *)b;

	return tree_name_cmp(x->e.name, x->e.name_len, y->e.name,
			     y->e.name_len);
}

struct write_ctx {
	struct repo *r;
	struct repo_writer *w;
	struct mv_buf buf;
	struct mv_buf path;    /* of the directory being walked */
	uint32_t *group_count; /* members per link group */
	uint64_t *group_id;    /* the group's number in the snapshot */
	uint64_t *group_order; /* groups by first member, tree order */
	uint64_t ngroups, nordered;
};

/* A link group's number in the snapshot: a keyed hash of its first
 * member's path (directories in tree order), never 0, so one new hard
 * link elsewhere does not renumber the groups of every directory. */
static uint64_t group_number(struct write_ctx *c, const struct mv_buf *path)
{
	uint8_t id[MV_ID_LEN];
	uint64_t v;

	repo_chunk_id(c->r, path->data ? path->data : (const uint8_t *)"",
		      path->len, id);
	v = mv_le64(id);
	return v ? v : 1;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Two groups with one number (a 64-bit collision, never seen in
 * practice): renumber in order of first members, each to the next free
 * value, so the result stays deterministic. */
static int groups_unique(struct write_ctx *c, struct mv_err *err)
{
	uint64_t *sorted, i, j;
	bool dup = false;

	sorted = malloc(c->ngroups * sizeof(*sorted));
	if (!sorted)
		return mv_err_set(err, -ENOMEM, "out of memory");
	memcpy(sorted, c->group_id, c->ngroups * sizeof(*sorted));
	qsort(sorted, c->ngroups, sizeof(*sorted), u64_cmp);
	for (i = 1; i < c->ngroups; i++)
		dup |= sorted[i] && sorted[i] == sorted[i - 1];
	free(sorted);
	for (i = 0; dup && i < c->nordered; i++) {
		uint64_t *v = &c->group_id[c->group_order[i]];

		for (j = 0; j < i; j++) {
			if (c->group_id[c->group_order[j]] != *v)
				continue;
			*v = *v + 1 ? *v + 1 : 1;
			j = (uint64_t)-1; /* look again from the first */
		}
	}
	return 0;
}

/* Sort every directory, count each link group's members and number the
 * groups by their first member in that order. */
static int prepare(struct write_ctx *c, struct tb_node *n, int depth,
		   struct mv_err *err)
{
	size_t base = c->path.len;
	uint32_t i;
	int rc = 0;

	if (depth > TREE_MAX_DEPTH)
		return mv_err_set(err, -ENAMETOOLONG, "tree too deep");
	if (n->nkids > 1) /* qsort(NULL, 0) is undefined */
		qsort(n->kids, n->nkids, sizeof(*n->kids), kid_cmp);
	for (i = 0; !rc && i < n->nkids; i++) {
		struct tb_node *k = n->kids[i];
		uint64_t g = k->e.link_group;

		c->path.len = base;
		if (mv_buf_put_u8(&c->path, '/') ||
		    mv_buf_append(&c->path, k->e.name, k->e.name_len))
			return mv_err_set(err, -ENOMEM, "out of memory");
		if (g && g <= c->ngroups) {
			if (!c->group_count[g - 1]++) {
				c->group_id[g - 1] = group_number(c, &c->path);
				c->group_order[c->nordered++] = g - 1;
			}
		}
		if (k->e.type == TREE_DIR)
			rc = prepare(c, k, depth + 1, err);
	}
	c->path.len = base;
	return rc;
}

/* An empty directory keeps format 1's empty object: one chunk. */
static int store_empty(struct write_ctx *c, struct tree_ref *out,
		       struct mv_err *err)
{
	int rc;

	mv_buf_reset(&c->buf);
	rc = tree_encode(NULL, 0, &c->buf, err);
	if (rc)
		return rc;
	out->chunks = calloc(1, sizeof(*out->chunks));
	if (!out->chunks)
		return mv_err_set(err, -ENOMEM, "out of memory");
	out->n = 1;
	repo_chunk_id(c->r, c->buf.data, c->buf.len, out->chunks[0].id);
	out->chunks[0].size = (uint32_t)c->buf.len;
	return repo_writer_put(c->w, REC_TREE, out->chunks[0].id, c->buf.data,
			       c->buf.len, NULL, 0, NULL, err);
}

static int write_dir(struct write_ctx *c, struct tb_node *n, int depth,
		     struct mv_err *err)
{
	struct tree_entry *ents = NULL;
	uint32_t i, nsub = 0;
	int rc = 0;

	if (depth > TREE_MAX_DEPTH)
		return mv_err_set(err, -ENAMETOOLONG, "tree too deep");
	for (i = 0; i < n->nkids; i++) {
		struct tb_node *k = n->kids[i];

		if (k->e.link_group && k->e.link_group <= c->ngroups)
			k->e.nlink = c->group_count[k->e.link_group - 1];
		if (k->e.type == TREE_DIR) {
			nsub++;
			rc = write_dir(c, k, depth + 1, err);
			if (rc)
				return rc;
		}
	}
	tree_ref_release(&n->e.subtree);
	if (n->nkids) {
		ents = malloc(n->nkids * sizeof(*ents));
		if (!ents)
			return mv_err_set(err, -ENOMEM, "out of memory");
		for (i = 0; i < n->nkids; i++) {
			ents[i] = n->kids[i]->e;
			if (ents[i].link_group &&
			    ents[i].link_group <= c->ngroups)
				ents[i].link_group =
					c->group_id[ents[i].link_group - 1];
		}
		n->e.subtree.chunks = calloc(1, sizeof(*n->e.subtree.chunks));
		if (!n->e.subtree.chunks)
			rc = mv_err_set(err, -ENOMEM, "out of memory");
		if (!rc)
			rc = ptree_write(c->r, c->w, ents, n->nkids,
					 n->e.subtree.chunks, NULL, err);
		if (!rc)
			n->e.subtree.n = 1;
		free(ents);
	} else {
		rc = store_empty(c, &n->e.subtree, err);
	}
	n->e.nsubdirs = nsub;
	n->e.nentries = n->nkids;
	n->e.nlink = 2 + nsub;
	return rc;
}

int tree_builder_write(struct tree_builder *tb, struct repo *r,
		       struct repo_writer *w, struct tree_ref *out,
		       struct tree_entry *out_root, struct mv_err *err)
{
	struct write_ctx c;
	int rc = 0;

	memset(&c, 0, sizeof(c));
	c.r = r;
	c.w = w;
	c.ngroups = tb->next_group;
	if (c.ngroups) {
		c.group_count = calloc(c.ngroups, sizeof(*c.group_count));
		c.group_id = calloc(c.ngroups, sizeof(*c.group_id));
		c.group_order = calloc(c.ngroups, sizeof(*c.group_order));
		if (!c.group_count || !c.group_id || !c.group_order)
			rc = mv_err_set(err, -ENOMEM, "out of memory");
	}
	if (!rc)
		rc = prepare(&c, &tb->root, 0, err);
	if (!rc && c.nordered > 1)
		rc = groups_unique(&c, err);
	if (!rc)
		rc = write_dir(&c, &tb->root, 0, err);
	if (!rc)
		rc = tree_ref_copy(out, &tb->root.e.subtree) ? -ENOMEM : 0;
	if (!rc && out_root)
		rc = tree_entry_copy(out_root, &tb->root.e, err);
	free(c.group_count);
	free(c.group_id);
	free(c.group_order);
	mv_buf_release(&c.buf);
	mv_buf_release(&c.path);
	return rc;
}

/* Entry name of the directory ref, copied into *out: a ptree reads one
 * node per level (ptree_lookup), format 1 its whole object. */
static int dir_find(struct repo *r, const struct tree_ref *ref,
		    const char *name, size_t len, struct tree_entry *out,
		    struct mv_err *err)
{
	struct mv_buf one = MV_BUF_INIT;
	struct ptree_node *leaf = NULL;
	const struct tree_entry *e = NULL;
	struct tree *t = NULL;
	uint32_t slot;
	uint64_t pos;
	int rc = 0;

	if (ref->n == 1) {
		rc = repo_chunk_read(r, ref->chunks[0].id, false, &one, err);
		if (!rc && ptree_is_node(one.data, one.len)) {
			rc = ptree_lookup(r, ref->chunks[0].id, one.data,
					  one.len, name, len, &leaf, &slot,
					  &pos, err);
			if (!rc)
				e = &leaf->leaf->entries[slot];
		} else if (!rc) {
			rc = tree_decode(one.data, one.len, &t, err);
		}
	} else {
		rc = tree_load(r, ref, &t, err);
	}
	if (!rc && t) {
		e = tree_find(t, name, len);
		if (!e)
			rc = -ENOENT;
	}
	if (!rc)
		rc = tree_entry_copy(out, e, err);
	ptree_node_free(leaf);
	tree_free(t);
	mv_buf_release(&one);
	return rc;
}

int tree_lookup_path(struct repo *r, const struct tree_ref *root,
		     const char *path, struct tree_entry *out,
		     struct mv_err *err)
{
	struct tree_entry cur;
	const char *p = path;
	int rc;

	memset(&cur, 0, sizeof(cur));
	cur.type = TREE_DIR;
	cur.mode = 0755;
	cur.nlink = 2;
	cur.name = (char *)"";
	cur.subtree = *root;
	rc = tree_entry_copy(out, &cur, err);
	if (rc)
		return rc;
	for (;;) {
		struct tree_entry next;
		const char *slash;
		size_t len;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		slash = strchr(p, '/');
		len = slash ? (size_t)(slash - p) : strlen(p);
		if (out->type != TREE_DIR) {
			rc = mv_err_set(err, -ENOTDIR, "'%s': not a directory",
					path);
			break;
		}
		rc = dir_find(r, &out->subtree, p, len, &next, err);
		if (rc == -ENOENT)
			rc = mv_err_set(err, -ENOENT,
					"'%s': no such file or "
					"directory",
					path);
		if (rc)
			break;
		tree_entry_release(out);
		*out = next;
		p += len;
	}
	if (rc)
		tree_entry_release(out);
	return rc;
}
