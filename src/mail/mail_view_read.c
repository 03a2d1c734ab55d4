/*
 * mail_view_read: reading view entries whose content is derived from
 * their chunks (TREE_XFORM_MAILCRYPT, TREE_XFORM_STALWART_DUMP), for
 * cat, restore, export-tar and the mount.  Thread-safe.
 */
#include "mail_view_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- readers ---------------------------------------------------------- */

/* Chunks of an entry as a read function for the LZ4 frame decoder. */
struct chunk_rd {
	struct repo *r;
	const struct tree_entry *e;
	uint32_t next;
	struct mv_buf chunk;
	size_t pos;
	struct mv_err *err;
};

static int chunk_read_fn(void *ctx, void *buf, size_t n, size_t *got)
{
	struct chunk_rd *c = ctx;

	while (c->pos == c->chunk.len) {
		int rc;

		if (c->next == c->e->nchunks) {
			*got = 0;
			return 0;
		}
		rc = repo_chunk_read(c->r, c->e->chunks[c->next++].id, false,
				     &c->chunk, c->err);
		if (rc)
			return rc;
		c->pos = 0;
	}
	*got = MV_MIN(n, c->chunk.len - c->pos);
	memcpy(buf, c->chunk.data + c->pos, *got);
	c->pos += *got;
	return 0;
}

/* A Stalwart dump's messages lie inside one LZ4 frame that cannot be
 * entered in the middle: decoding each message from the frame's start
 * made a restore of n messages cost n times the stream (a minute for
 * 5.5k messages).  The decoded start of the last stream read, up to
 * DUMP_CACHE_MAX bytes, is kept for the process, so a restore or a mount
 * decodes each stream once; messages beyond that are decoded as before. */
#define DUMP_CACHE_MAX ((uint64_t)64 << 20)

static struct {
	pthread_mutex_t lock;
	const struct repo *r;
	uint8_t key[MV_ID_LEN]; /* tree_chunks_key of the stream's chunks */
	struct mv_buf data;	/* its first data.len decoded bytes */
} dump_cache = {.lock = PTHREAD_MUTEX_INITIALIZER, .data = MV_BUF_INIT};

static int dump_decode(struct repo *r, const struct tree_entry *e, uint64_t off,
		       uint64_t len, struct mv_buf *out, struct mv_err *err)
{
	struct chunk_rd c;
	int rc;

	memset(&c, 0, sizeof(c));
	c.r = r;
	c.e = e;
	c.err = err;
	if (len == UINT64_MAX) /* the start of the stream, for the cache */
		rc = mail_stalwart_dump_decode_prefix(chunk_read_fn, &c, off,
						      out, err);
	else
		rc = mail_stalwart_dump_extract(chunk_read_fn, &c, off, len,
						out, err);
	mv_buf_release(&c.chunk);
	return rc;
}

/* Copy [off, off + len) from the cached start of e's stream into out,
 * filling the cache first when it holds another stream.  1 when the range
 * lies beyond what the cache keeps. */
static int dump_read_cached(struct repo *r, const struct tree_entry *e,
			    uint64_t off, uint64_t len, struct mv_buf *out,
			    struct mv_err *err)
{
	uint8_t key[MV_ID_LEN];
	int rc = 0;

	if (off > DUMP_CACHE_MAX || len > DUMP_CACHE_MAX - off ||
	    tree_chunks_key(r, e->chunks, e->nchunks, key))
		return 1;
	pthread_mutex_lock(&dump_cache.lock);
	if (dump_cache.r != r || memcmp(dump_cache.key, key, MV_ID_LEN)) {
		dump_cache.r = NULL;
		dump_cache.data.len = 0;
		rc = dump_decode(r, e, DUMP_CACHE_MAX, UINT64_MAX,
				 &dump_cache.data, err);
		if (rc) {
			mv_buf_release(&dump_cache.data);
			goto out;
		}
		dump_cache.r = r;
		memcpy(dump_cache.key, key, MV_ID_LEN);
	}
	if (off + len > dump_cache.data.len) {
		rc = dump_cache.data.len < DUMP_CACHE_MAX
			     ? mv_err_set(err, -EBADMSG,
					  "stream ends at %zu, before %llu",
					  dump_cache.data.len,
					  (unsigned long long)(off + len))
			     : 1;
		goto out;
	}
	if (mv_buf_append(out, dump_cache.data.data + off, (size_t)len))
		rc = mv_err_set(err, -ENOMEM, "out of memory");
out:
	pthread_mutex_unlock(&dump_cache.lock);
	return rc;
}

static int dump_read(struct repo *r, const struct tree_entry *e,
		     struct mv_buf *out, struct mv_err *err)
{
	uint64_t off, len;
	uint32_t i;
	int rc;

	for (i = 0; i < e->nxattrs; i++)
		if (!strcmp(e->xattrs[i].name, MAIL_VIEW_RANGE_XATTR) &&
		    e->xattrs[i].len == 16)
			break;
	if (i == e->nxattrs)
		return mv_err_set(err, -EBADMSG, "'%s': no message range",
				  e->name ? e->name : "");
	off = mv_le64(e->xattrs[i].value);
	len = mv_le64(e->xattrs[i].value + 8);
	if (len > MAIL_STALWART_MAX_VALUE)
		return mv_err_set(err, -EMSGSIZE, "'%s': value too large",
				  e->name ? e->name : "");
	rc = dump_read_cached(r, e, off, len, out, err);
	if (rc == 1)
		rc = dump_decode(r, e, off, len, out, err);
	if (rc)
		mv_err_prefix(err, "'%s'", e->name ? e->name : "");
	return rc;
}

/* Parsed keys by the id of their stored PEM: a mount decodes message
 * after message with the same few keys, and parsing one costs about a
 * millisecond (4 ms the first time).  Process-wide, small, FIFO. */
#define KEY_CACHE_SLOTS 16

static struct {
	pthread_mutex_t lock;
	uint8_t id[KEY_CACHE_SLOTS][MV_ID_LEN];
	struct mail_crypt_keys *keys[KEY_CACHE_SLOTS];
	unsigned next;
} key_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Add the key stored as chunk id to keys, parsed once per process.  A
 * chunk that is not a key adds nothing (another key may match). */
static int add_stored_key(struct repo *r, const uint8_t *id,
			  struct mail_crypt_keys *keys, struct mv_err *err)
{
	struct mail_crypt_keys *one = NULL;
	struct mv_buf pem = MV_BUF_INIT;
	unsigned i;
	int rc;

	pthread_mutex_lock(&key_cache.lock);
	for (i = 0; i < KEY_CACHE_SLOTS; i++) {
		if (key_cache.keys[i] &&
		    !memcmp(key_cache.id[i], id, MV_ID_LEN)) {
			rc = mail_crypt_keys_add_all(keys, key_cache.keys[i],
						     err);
			pthread_mutex_unlock(&key_cache.lock);
			return rc;
		}
	}
	pthread_mutex_unlock(&key_cache.lock);
	rc = repo_chunk_read(r, id, false, &pem, err);
	if (!rc)
		rc = mail_crypt_keys_new(&one, err);
	if (rc)
		goto out;
	mail_crypt_keys_add_pem(one, pem.data, pem.len, NULL);
	rc = mail_crypt_keys_add_all(keys, one, err);
	if (rc)
		goto out;
	pthread_mutex_lock(&key_cache.lock);
	i = key_cache.next++ % KEY_CACHE_SLOTS;
	mail_crypt_keys_free(key_cache.keys[i]);
	key_cache.keys[i] = one;
	memcpy(key_cache.id[i], id, MV_ID_LEN);
	one = NULL;
	pthread_mutex_unlock(&key_cache.lock);
out:
	mail_crypt_keys_free(one);
	mv_buf_release(&pem);
	return rc;
}

/* Add the keys e names (MAIL_VIEW_KEYS_XATTR) to keys. */
static int add_entry_keys(struct repo *r, const struct tree_entry *e,
			  struct mail_crypt_keys *keys, struct mv_err *err)
{
	uint32_t i, k;
	int rc = 0;

	for (i = 0; !rc && i < e->nxattrs; i++) {
		const struct tree_xattr *x = &e->xattrs[i];

		if (strcmp(x->name, MAIL_VIEW_KEYS_XATTR))
			continue;
		for (k = 0; !rc && k + MV_ID_LEN <= x->len; k += MV_ID_LEN)
			rc = add_stored_key(r, x->value + k, keys, err);
	}
	return rc;
}

void mail_view_warm_keys(struct repo *r, const struct tree_entry *e)
{
	struct mail_crypt_keys *keys = NULL;

	if (e->xform == TREE_XFORM_MAILCRYPT &&
	    !mail_crypt_keys_new(&keys, NULL))
		add_entry_keys(r, e, keys, NULL);
	mail_crypt_keys_free(keys);
}

int mail_view_read(struct repo *r, const struct tree_entry *e,
		   struct mv_buf *out, struct mv_err *err)
{
	struct mv_buf raw = MV_BUF_INIT, chunk = MV_BUF_INIT;
	struct mail_crypt_keys *keys = NULL;
	uint32_t i;
	int rc = 0;

	if (e->xform == TREE_XFORM_STALWART_DUMP)
		return dump_read(r, e, out, err);
	for (i = 0; !rc && i < e->nchunks; i++) {
		rc = repo_chunk_read(r, e->chunks[i].id, false, &chunk, err);
		if (!rc && mv_buf_append(&raw, chunk.data, chunk.len))
			rc = mv_err_set(err, -ENOMEM, "out of memory");
	}
	if (rc)
		goto out;
	if (mail_crypt_detect(raw.data, raw.len) & MAIL_CRYPT_ENCRYPTED) {
		rc = mail_crypt_keys_new(&keys, err);
		if (!rc)
			rc = add_entry_keys(r, e, keys, err);
		if (rc)
			goto out;
	}
	rc = mail_crypt_decode(raw.data ? (const void *)raw.data
					: (const void *)"",
			       raw.len, keys, out, NULL, err);
	if (rc)
		mv_err_prefix(err, "'%s'", e->name ? e->name : "");
out:
	mail_crypt_keys_free(keys);
	mv_buf_release(&chunk);
	mv_buf_release(&raw);
	return rc;
}
