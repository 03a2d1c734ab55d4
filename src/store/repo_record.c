/*
 * repo_record: reading records (any number of threads), zstd
 * dictionaries and compression.
 */
#include "repo_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>
#include <zstd.h>

#include "backend.h"
#include "diskcache.h"
#include "hash.h"
#include "index.h"
#include "pack.h"
#include "ptree.h"
#include "seal.h"

/* ---- small helpers ---------------------------------------------------- */

void *repo_pool_get(struct ctx_pool *p)
{
	void *c = NULL;

	pthread_mutex_lock(&p->lock);
	if (p->n)
		c = p->items[--p->n];
	pthread_mutex_unlock(&p->lock);
	return c;
}

/* Returns false when the pool is full and the caller must free c. */
bool repo_pool_put(struct ctx_pool *p, void *c)
{
	bool kept = false;

	pthread_mutex_lock(&p->lock);
	if (p->n < CTX_POOL_MAX) {
		p->items[p->n++] = c;
		kept = true;
	}
	pthread_mutex_unlock(&p->lock);
	return kept;
}

/* ---- reading ------------------------------------------------------- */

int repo_chunk_find(struct repo *r, const uint8_t id[MV_ID_LEN],
		    struct chunk_loc *out, struct mv_err *err)
{
	int rc;

	pthread_mutex_lock(&r->ix_lock);
	rc = index_chunk_find(r->ix, id, out, err);
	pthread_mutex_unlock(&r->ix_lock);
	return rc;
}

static int pack_name_locked(struct repo *r, int64_t pack, char *out, size_t n,
			    struct mv_err *err)
{
	int rc;

	if (pack > 0 && pack < r->npack_names && r->pack_names[pack][0]) {
		snprintf(out, n, "%s", r->pack_names[pack]);
		return 0;
	}
	rc = index_pack_name(r->ix, pack, out, n, err);
	if (rc)
		return rc;
	if (pack > 0 && pack < (int64_t)1 << 24) {
		if (pack >= r->npack_names) {
			int64_t cap = MV_MAX(pack + 1, r->npack_names * 2);
			void *p = realloc(r->pack_names,
					  (size_t)cap * sizeof(*r->pack_names));

			if (!p)
				return 0; /* the cache is optional */
			memset((char *)p +
				       r->npack_names * sizeof(*r->pack_names),
			       0,
			       (size_t)(cap - r->npack_names) *
				       sizeof(*r->pack_names));
			r->pack_names = p;
			r->npack_names = cap;
		}
		snprintf(r->pack_names[pack], sizeof(r->pack_names[pack]), "%s",
			 out);
	}
	return 0;
}

int repo_pack_path(struct repo *r, int64_t pack, char *out, size_t n,
		   struct mv_err *err)
{
	char name[PACK_NAME_LEN + 8];
	int rc;

	pthread_mutex_lock(&r->ix_lock);
	rc = pack_name_locked(r, pack, name, sizeof(name), err);
	pthread_mutex_unlock(&r->ix_lock);
	if (!rc)
		pack_path(name, out, n);
	return rc;
}

/* ---- dictionaries ---------------------------------------------------
 *
 * Small messages compress poorly one by one; a zstd dictionary trained on
 * the repository's own mail (docs/CHUNKING.md: -24 % on generated mail) is
 * stored as a REC_DICT record and listed in the index's dicts table.
 * Record headers name the dictionary by zstd's dictionary id.
 */

static int chunk_read_raw(struct repo *r, const uint8_t id[MV_ID_LEN],
			  struct mv_buf *out, struct mv_err *err);

/* The level of records up to SMALL_RECORD_MAX; larger ones take the
 * configured level. */
int repo_small_level(const struct repo *r)
{
	return MV_MAX(r->cfg.zstd_level, SMALL_RECORD_LEVEL);
}

/* Build a dictionary entry from its bytes; NULL on failure.  It compresses
 * at two levels: records up to SMALL_RECORD_MAX take the higher one. */
struct repo_dict *repo_dict_make(struct repo *r, const void *p, size_t n,
				 bool for_compress)
{
	struct repo_dict *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->dict_id = ZSTD_getDictID_fromDict(p, n);
	d->ddict = ZSTD_createDDict(p, n);
	if (for_compress) {
		d->cdict = ZSTD_createCDict(p, n, r->cfg.zstd_level);
		d->cdict_small =
			repo_small_level(r) == r->cfg.zstd_level
				? d->cdict
				: ZSTD_createCDict(p, n, repo_small_level(r));
	}
	if (!d->ddict || (for_compress && (!d->cdict || !d->cdict_small)) ||
	    !d->dict_id) {
		repo_dict_free(d);
		return NULL;
	}
	return d;
}

void repo_dict_free(struct repo_dict *d)
{
	if (!d)
		return;
	if (d->cdict_small != d->cdict)
		ZSTD_freeCDict(d->cdict_small);
	ZSTD_freeCDict(d->cdict);
	ZSTD_freeDDict(d->ddict);
	free(d);
}

/* The dictionary with id dict_id (0: the newest), loading it on first
 * use.  Thread-safe. */
static struct repo_dict *dict_get(struct repo *r, uint32_t dict_id,
				  struct mv_err *err)
{
	struct mv_buf raw = MV_BUF_INIT;
	struct repo_dict *d;
	uint8_t chunk[MV_ID_LEN];
	uint32_t found = 0;
	const void *builtin;
	size_t builtin_len = 0;
	int rc;

	pthread_mutex_lock(&r->dict_lock);
	for (d = r->dicts; d; d = d->next)
		if (d->dict_id == dict_id) {
			pthread_mutex_unlock(&r->dict_lock);
			return d;
		}
	pthread_mutex_unlock(&r->dict_lock);
	/* the directory nodes' dictionary is in the program, not stored */
	builtin = dict_id ? ptree_dict(dict_id, &builtin_len) : NULL;
	if (builtin) {
		d = repo_dict_make(r, builtin, builtin_len, false);
		if (d)
			goto add;
	}
	pthread_mutex_lock(&r->ix_lock);
	rc = index_dict_find(r->ix, dict_id, &found, chunk, err);
	pthread_mutex_unlock(&r->ix_lock);
	if (rc) {
		if (dict_id)
			mv_err_set(err, -EIO, "zstd dictionary %u is missing",
				   dict_id);
		return NULL;
	}
	rc = chunk_read_raw(r, chunk, &raw, err);
	d = rc ? NULL : repo_dict_make(r, raw.data, raw.len, true);
	mv_buf_release(&raw);
	if (!d) {
		mv_err_set(err, -EIO, "zstd dictionary %u cannot be loaded",
			   found);
		return NULL;
	}
add:
	pthread_mutex_lock(&r->dict_lock);
	d->next = r->dicts;
	r->dicts = d;
	pthread_mutex_unlock(&r->dict_lock);
	return d;
}

static struct repo_dict *dict_active(struct repo *r)
{
	struct repo_dict *d;

	pthread_mutex_lock(&r->dict_lock);
	if (!r->dict_probed) {
		r->dict_probed = true;
		pthread_mutex_unlock(&r->dict_lock);
		d = dict_get(r, 0, NULL);
		pthread_mutex_lock(&r->dict_lock);
		if (d && !r->active)
			r->active = d;
	}
	d = r->active;
	pthread_mutex_unlock(&r->dict_lock);
	return d;
}

bool repo_has_dictionary(struct repo *r)
{
	return dict_active(r) != NULL;
}

static int decompress(struct repo *r, const struct pack_rec *rec,
		      const uint8_t *payload, struct mv_buf *out,
		      const char *where, struct mv_err *err)
{
	struct repo_dict *dict = NULL;
	ZSTD_DCtx *d;
	size_t n;

	mv_buf_reset(out);
	if (mv_buf_reserve(out, rec->raw_size ? rec->raw_size : 1))
		return mv_err_set(err, -ENOMEM, "out of memory");
	if (rec->comp == PACK_COMP_NONE) {
		if (rec->raw_size != rec->stored_size)
			return mv_err_set(err, -EIO, "%s: size mismatch",
					  where);
		memcpy(out->data, payload, rec->raw_size);
		out->len = rec->raw_size;
		return 0;
	}
	if (rec->comp != PACK_COMP_ZSTD && rec->comp != PACK_COMP_ZSTD_DICT)
		return mv_err_set(err, -EIO, "%s: unknown compression %u",
				  where, rec->comp);
	if (rec->comp == PACK_COMP_ZSTD_DICT) {
		dict = dict_get(r, rec->dict_id, err);
		if (!dict)
			return mv_err_prefix(err, "%s", where);
	}
	d = repo_pool_get(&r->dctx);
	if (!d)
		d = ZSTD_createDCtx();
	if (!d)
		return mv_err_set(err, -ENOMEM, "out of memory");
	if (dict)
		n = ZSTD_decompress_usingDDict(d, out->data, rec->raw_size,
					       payload, rec->stored_size,
					       dict->ddict);
	else
		n = ZSTD_decompressDCtx(d, out->data, rec->raw_size, payload,
					rec->stored_size);
	if (!repo_pool_put(&r->dctx, d))
		ZSTD_freeDCtx(d);
	if (ZSTD_isError(n) || n != rec->raw_size)
		return mv_err_set(err, -EIO, "%s: cannot decompress: %s", where,
				  ZSTD_isError(n) ? ZSTD_getErrorName(n)
						  : "short output");
	out->len = n;
	return 0;
}

static const char *type_name(int type)
{
	switch (type) {
	case REC_DATA:
		return "data";
	case REC_TREE:
		return "tree node";
	case REC_SNAPSHOT:
		return "snapshot";
	case REC_DICT:
		return "dictionary";
	case REC_TOMBSTONE:
		return "tombstone";
	default:
		return "unknown type";
	}
}

/* Content records are sealed with the data key, all others with the
 * metadata key (FORMAT-2 section 4). */
static const struct crypt_key *record_key(const struct repo *r, int type)
{
	return type == REC_DATA ? r->key_data : r->key_meta;
}

size_t repo_record_span(const struct repo *r, const struct chunk_loc *loc)
{
	if (r->pack_format == 2)
		return loc->stored_size;
	return PACK_REC_HDR_LEN + (size_t)loc->stored_size;
}

int repo_pack_format(const struct repo *r)
{
	return r->pack_format == 2 ? 2 : 1;
}

int repo_pack_table(struct repo *r, const char *name, struct seal_table *out,
		    uint64_t *out_size, struct mv_err *err)
{
	if (r->pack_format != 2)
		return mv_err_set(err, -EINVAL, "format 1 packs have no table");
	return pack_table_read(r->be, name, r->key_meta, out, out_size, err);
}

/* Open a format 2 record: its tag (which binds id, type and epoch), then
 * its plaintext header.  rec is filled as a format 1 header would be.  A
 * failed open is -EIO naming the record (never another record's bytes). */
static int record_open2(struct repo *r, const uint8_t id[MV_ID_LEN], int type,
			const uint8_t *buf, size_t len, struct mv_buf *payload,
			struct pack_rec *rec, const char *where,
			struct mv_err *err)
{
	struct mv_err e = MV_ERR_INIT;
	unsigned long long raw;
	int rc;

	memset(rec, 0, sizeof(*rec));
	rc = seal_record_open(record_key(r, type), (uint8_t)type, r->key_epoch,
			      id, buf, len, &rec->comp, &rec->dict_id, payload,
			      &e);
	if (rc == -ENOMEM)
		return mv_err_set(err, rc, "out of memory");
	if (rc) {
		const char *why = strstr(mv_err_msg(&e), "): ");

		return mv_err_set(err, -EIO, "%s (%s): %s", where,
				  type_name(type),
				  why ? why + 3 : mv_err_msg(&e));
	}
	rec->type = (uint8_t)type;
	rec->stored_size = (uint32_t)payload->len;
	memcpy(rec->id, id, MV_ID_LEN);
	raw = rec->stored_size;
	if (rec->comp != PACK_COMP_NONE) {
		raw = ZSTD_getFrameContentSize(payload->data, payload->len);
		if (raw == ZSTD_CONTENTSIZE_UNKNOWN ||
		    raw == ZSTD_CONTENTSIZE_ERROR || raw > PACK_MAX_RECORD)
			return mv_err_set(err, -EIO,
					  "%s (%s): bad compressed size", where,
					  type_name(type));
	}
	rec->raw_size = (uint32_t)raw;
	return 0;
}

/* Check and decompress one stored record of chunk id: format 1's header
 * and payload, or format 2's sealed record of the given type. */
static int record_decode(struct repo *r, const uint8_t id[MV_ID_LEN], int type,
			 const uint8_t *buf, size_t len, bool verify_id,
			 struct mv_buf *out, const char *where,
			 struct mv_err *err)
{
	struct mv_buf plain = MV_BUF_INIT;
	struct pack_rec rec;
	int rc;

	if (r->pack_format == 2) {
		rc = record_open2(r, id, type, buf, len, &plain, &rec, where,
				  err);
		if (!rc)
			rc = decompress(r, &rec, plain.data, out, where, err);
		mv_buf_release(&plain);
		if (rc)
			return rc;
		goto verify;
	}
	if (len < PACK_REC_HDR_LEN || pack_rec_decode(buf, &rec) ||
	    memcmp(rec.id, id, MV_ID_LEN) ||
	    rec.stored_size != len - PACK_REC_HDR_LEN)
		return mv_err_set(err, -EIO, "%s: record header is damaged",
				  where);
	if (hash_xxh64(buf + PACK_REC_HDR_LEN, rec.stored_size) != rec.checksum)
		return mv_err_set(err, -EIO,
				  "%s: checksum mismatch (data "
				  "damaged)",
				  where);
	rc = decompress(r, &rec, buf + PACK_REC_HDR_LEN, out, where, err);
	if (rc)
		return rc;
verify:
	if (verify_id) {
		uint8_t check[MV_ID_LEN];

		repo_chunk_id(r, out->data, out->len, check);
		if (memcmp(check, id, MV_ID_LEN))
			return mv_err_set(err, -EIO,
					  "%s: content does not "
					  "match its id",
					  where);
	}
	return 0;
}

int repo_record_decode(struct repo *r, const uint8_t id[MV_ID_LEN], int type,
		       const void *rec, size_t len, bool verify_id,
		       struct mv_buf *out, struct mv_err *err)
{
	char hex[17], where[64];

	mv_hex(id, 8, hex);
	snprintf(where, sizeof(where), "record %s", hex);
	return record_decode(r, id, type, rec, len, verify_id, out, where, err);
}

int repo_record_verify(struct repo *r, const uint8_t id[MV_ID_LEN],
		       const struct chunk_loc *loc, const void *buf, size_t len,
		       struct mv_err *err)
{
	struct mv_buf plain = MV_BUF_INIT;
	struct pack_rec rec;
	char hex[17], where[64];

	mv_hex(id, 8, hex);
	snprintf(where, sizeof(where), "record %s", hex);
	if (len != repo_record_span(r, loc))
		return mv_err_set(err, -EIO, "%s: wrong size", where);
	if (r->pack_format == 2) {
		int rc = record_open2(r, id, loc->type, buf, len, &plain, &rec,
				      where, err);
		mv_buf_release(&plain);
		return rc;
	}
	if (pack_rec_decode(buf, &rec) || memcmp(rec.id, id, MV_ID_LEN) ||
	    rec.stored_size != loc->stored_size ||
	    hash_xxh64((const uint8_t *)buf + PACK_REC_HDR_LEN,
		       rec.stored_size) != rec.checksum)
		return mv_err_set(err, -EIO, "%s: damaged", where);
	return 0;
}

/* Stored records are read into a per-thread buffer that stays: a mount
 * serving a restore reads tens of thousands of records, and a fresh
 * malloc() each time cost page faults and heap searches (about 15 % of
 * the mount's CPU in an rsync).  Records above READ_SCRATCH_MAX, and a
 * read nested in another (decoding a record loads its zstd dictionary),
 * use a buffer of their own. */
#define READ_SCRATCH_MAX ((size_t)8 << 20)

struct read_scratch {
	struct mv_buf buf;
	bool busy; /* handed out, not yet given back */
};

static pthread_key_t read_scratch_key;
static pthread_once_t read_scratch_once = PTHREAD_ONCE_INIT;
static bool read_scratch_ok;

static void read_scratch_free(void *p)
{
	struct read_scratch *rs = p;

	mv_buf_release(&rs->buf);
	free(rs);
}

static void read_scratch_init(void)
{
	read_scratch_ok =
		pthread_key_create(&read_scratch_key, read_scratch_free) == 0;
}

/* A buffer of need bytes: the thread's scratch (*scratch set, give it
 * back with read_buffer_done) or a malloc'd one (*own, to be freed). */
static uint8_t *read_buffer(size_t need, struct read_scratch **scratch,
			    uint8_t **own)
{
	struct read_scratch *rs;

	*scratch = NULL;
	*own = NULL;
	pthread_once(&read_scratch_once, read_scratch_init);
	rs = read_scratch_ok && need <= READ_SCRATCH_MAX
		     ? pthread_getspecific(read_scratch_key)
		     : NULL;
	if (!rs && read_scratch_ok && need <= READ_SCRATCH_MAX) {
		rs = calloc(1, sizeof(*rs));
		if (rs && pthread_setspecific(read_scratch_key, rs)) {
			free(rs);
			rs = NULL;
		}
	}
	if (!rs || rs->busy || mv_buf_reserve(&rs->buf, need))
		return *own = malloc(need);
	rs->busy = true;
	*scratch = rs;
	return rs->buf.data;
}

static void read_buffer_done(struct read_scratch *scratch, uint8_t *own)
{
	if (scratch)
		scratch->busy = false;
	free(own);
}

static int chunk_read_once(struct repo *r, const uint8_t id[MV_ID_LEN],
			   bool verify_id, struct mv_buf *out,
			   struct mv_err *err)
{
	char name[PACK_NAME_LEN + 8], path[128], where[256], hex[17];
	struct chunk_loc loc;
	struct read_scratch *scratch = NULL;
	uint8_t *buf = NULL, *own = NULL;
	size_t need, got = 0;
	int rc;

	mv_hex(id, 8, hex);
	pthread_mutex_lock(&r->ix_lock);
	rc = index_chunk_find(r->ix, id, &loc, err);
	if (!rc)
		rc = pack_name_locked(r, loc.pack, name, sizeof(name), err);
	pthread_mutex_unlock(&r->ix_lock);
	if (rc == -ENOENT)
		return mv_err_set(err, -EIO,
				  "chunk %s is missing from the "
				  "index",
				  hex);
	if (rc)
		return rc;
	pack_path(name, path, sizeof(path));
	if (r->pack_format == 2)
		snprintf(where, sizeof(where), "pack %s: record %s", name, hex);
	else
		snprintf(where, sizeof(where),
			 "chunk %s in pack '%s' at offset %llu", hex, path,
			 (unsigned long long)loc.offset);
	need = repo_record_span(r, &loc);
	if (r->dcache) {
		struct mv_buf cached = MV_BUF_INIT;
		int pass;

		/* a damaged cache file is only a miss; the first miss of a
		 * metadata record brings the metadata packs in one wave */
		for (pass = 0; pass < 2; pass++) {
			if (!diskcache_get(r->dcache, id, &cached) &&
			    !record_decode(r, id, loc.type, cached.data,
					   cached.len, verify_id, out, where,
					   NULL)) {
				mv_buf_release(&cached);
				return 0;
			}
			if (pass || loc.type == REC_DATA ||
			    !diskcache_fill_meta(r->dcache, r))
				break;
		}
		mv_buf_release(&cached);
	}
	buf = read_buffer(need, &scratch, &own);
	if (!buf)
		return mv_err_set(err, -ENOMEM, "out of memory");
	while (got < need) {
		size_t k = 0;

		rc = r->be->ops->read_at(r->be, path, loc.offset + got,
					 buf + got, need - got, &k, err);
		if (rc) {
			mv_err_prefix(err, "%s", where);
			rc = err ? err->code : rc;
			if (rc != -ENOMEM)
				rc = -EIO;
			if (err)
				err->code = rc;
			goto out;
		}
		if (!k) {
			rc = mv_err_set(err, -EIO, "%s: pack is truncated",
					where);
			goto out;
		}
		got += k;
	}
	rc = record_decode(r, id, loc.type, buf, need, verify_id, out, where,
			   err);
	if (!rc && r->dcache)
		diskcache_put(r->dcache, id, buf, need);
out:
	read_buffer_done(scratch, own);
	return rc;
}

/* ---- batch reads --------------------------------------------------- */

/* Records this far apart in a pack are still read together: reading the
 * gap costs less than a round trip over sftp. */
#define BATCH_GAP ((uint64_t)64 << 10)
#define BATCH_RANGE_MAX ((uint64_t)8 << 20)

struct batch_ent {
	size_t i; /* index into the caller's arrays */
	struct chunk_loc loc;
	char path[128];
};

static int batch_cmp(const void *a, const void *b)
{
	const struct batch_ent *x = a, *y = b;

	if (x->loc.pack != y->loc.pack)
		return x->loc.pack < y->loc.pack ? -1 : 1;
	if (x->loc.offset != y->loc.offset)
		return x->loc.offset < y->loc.offset ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

/* Look the chunks of b[0..m) (named by .i) up in the index, with one
 * read transaction (SQLite takes and drops its file locks once, not once
 * per record: 10 % of a 10k listing): their locations and pack paths.
 * An entry not found is dropped (read alone later, for its message).
 * Returns the entries left, at the front of b. */
static size_t batch_locate(struct repo *r, const uint8_t (*ids)[MV_ID_LEN],
			   struct batch_ent *b, size_t m)
{
	struct sqlite3 *db;
	bool txn = false;
	size_t i, k;

	pthread_mutex_lock(&r->ix_lock);
	db = index_db(r->ix);
	if (db && sqlite3_get_autocommit(db) &&
	    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK)
		txn = true;
	for (i = 0, k = 0; i < m; i++) {
		char name[PACK_NAME_LEN + 8];

		if (index_chunk_find(r->ix, ids[b[i].i], &b[k].loc, NULL) ||
		    pack_name_locked(r, b[k].loc.pack, name, sizeof(name),
				     NULL))
			continue;
		pack_path(name, b[k].path, sizeof(b[k].path));
		b[k++].i = b[i].i;
	}
	if (txn)
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	pthread_mutex_unlock(&r->ix_lock);
	return k;
}

/* The run of b (sorted by pack and offset) that starts at i: the records
 * of one pack at most gap bytes apart, spanning at most max bytes (one
 * record at least).  Returns the index past it; *hi is its end offset. */
static size_t batch_run_end(const struct repo *r, const struct batch_ent *b,
			    size_t i, size_t m, uint64_t gap, uint64_t max,
			    uint64_t *hi)
{
	uint64_t lo = b[i].loc.offset,
		 end = lo + repo_record_span(r, &b[i].loc);
	size_t k;

	for (k = i + 1; k < m; k++) {
		uint64_t e = b[k].loc.offset + repo_record_span(r, &b[k].loc);

		if (b[k].loc.pack != b[i].loc.pack ||
		    b[k].loc.offset > end + gap || MV_MAX(e, end) - lo > max)
			break;
		end = MV_MAX(e, end);
	}
	*hi = end;
	return k;
}

/* len bytes of the pack at path from off, read whole: false when the
 * backend failed or the pack ended first (the caller's records are then
 * read one by one, with their messages). */
static bool read_span(struct repo *r, const char *path, uint64_t off,
		      uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		size_t g = 0;

		if (r->be->ops->read_at(r->be, path, off + got, buf + got,
					len - got, &g, NULL) ||
		    !g)
			return false;
		got += g;
	}
	return true;
}

/* One backend read of [lo, hi) of a pack, then each of the n records of
 * the run decoded; done[] marks the records that came out right. */
static void batch_run(struct repo *r, const struct batch_ent *run, size_t n,
		      uint64_t hi, const uint8_t (*ids)[MV_ID_LEN],
		      bool verify_id, struct mv_buf *out, bool *done)
{
	uint64_t lo = run[0].loc.offset;
	struct read_scratch *scratch = NULL;
	uint8_t *buf, *own = NULL;
	size_t k;

	buf = read_buffer((size_t)(hi - lo), &scratch, &own);
	if (!buf)
		return;
	if (!read_span(r, run[0].path, lo, buf, (size_t)(hi - lo)))
		goto out;
	for (k = 0; k < n; k++) {
		const struct batch_ent *b = &run[k];
		size_t off = (size_t)(b->loc.offset - lo);
		size_t len = repo_record_span(r, &b->loc);

		if (record_decode(r, ids[b->i], b->loc.type, buf + off, len,
				  verify_id, &out[b->i], "batch", NULL))
			continue;
		done[b->i] = true;
		if (r->dcache)
			diskcache_put(r->dcache, ids[b->i], buf + off, len);
	}
out:
	read_buffer_done(scratch, own);
}

int repo_chunk_read_many(struct repo *r, const uint8_t (*ids)[MV_ID_LEN],
			 size_t n, bool verify_id, struct mv_buf *out,
			 struct mv_err *err)
{
	struct batch_ent *b = NULL;
	bool *done = NULL;
	size_t i, m, k;
	int rc = 0;

	if (n == 1)
		return repo_chunk_read(r, ids[0], verify_id, &out[0], err);
	b = calloc(n, sizeof(*b));
	done = calloc(n, sizeof(*done));
	if (n && (!b || !done)) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++)
		b[i].i = i;
	m = batch_locate(r, ids, b, n);
	/* records already fetched (remote): opened again on each use; the
	 * lookup came first because a format 2 record opens only as its
	 * type, which the index holds */
	for (i = 0, k = 0; r->dcache && i < m; i++) {
		struct mv_buf cached = MV_BUF_INIT;
		bool hit;

		hit = !diskcache_get(r->dcache, ids[b[i].i], &cached) &&
		      !record_decode(r, ids[b[i].i], b[i].loc.type, cached.data,
				     cached.len, verify_id, &out[b[i].i],
				     "cache", NULL);
		mv_buf_release(&cached);
		if (hit)
			done[b[i].i] = true;
		else
			b[k++] = b[i];
	}
	if (r->dcache)
		m = k;
	if (m > 1)
		qsort(b, m, sizeof(*b), batch_cmp);
	for (i = 0; i < m; i = k) {
		uint64_t hi;

		k = batch_run_end(r, b, i, m, BATCH_GAP, BATCH_RANGE_MAX, &hi);
		batch_run(r, &b[i], k - i, hi, ids, verify_id, out, done);
	}
	for (i = 0; !rc && i < n; i++)
		if (!done[i])
			rc = repo_chunk_read(r, ids[i], verify_id, &out[i],
					     err);
out:
	free(b);
	free(done);
	return rc;
}

/* ---- prefetch into the record cache -------------------------------- */

/* A far restore asks for the records of a group of directories; they lie
 * in the packs in the order the backup met them, not in the restore's,
 * so runs with small gaps cost a round trip each.  Over a link a round
 * trip is worth about a megabyte of transfer, so gaps up to that are read
 * through, and every record of the span read is held in memory
 * (diskcache_hold, not a file each: the restore asks for each once): the
 * next groups find most of theirs already fetched, and each pack region
 * comes over the link once. */
#define PREFETCH_GAP ((uint64_t)1 << 20)
#define PREFETCH_SPAN_MAX ((uint64_t)16 << 20)

struct span_rows {
	struct repo *r;
	uint64_t lo, hi;
	struct diskcache_ref *v;
	size_t n, cap;
};

static int span_row(const uint8_t id[MV_ID_LEN], const struct chunk_loc *loc,
		    void *arg)
{
	struct span_rows *s = arg;
	size_t len = repo_record_span(s->r, loc);

	if (loc->offset + len > s->hi)
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 256;
		void *v = realloc(s->v, cap * sizeof(*s->v));

		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	memcpy(s->v[s->n].id, id, MV_ID_LEN);
	s->v[s->n].off = (size_t)(loc->offset - s->lo);
	s->v[s->n++].len = len;
	return 0;
}

/* Read [lo, hi) of the pack at path and hold every record in it. */
static void prefetch_span(struct repo *r, const char *path, int64_t pack,
			  uint64_t lo, uint64_t hi)
{
	struct span_rows rows = {r, lo, hi, NULL, 0, 0};
	uint8_t *buf = malloc((size_t)(hi - lo));

	if (!buf || !read_span(r, path, lo, buf, (size_t)(hi - lo))) {
		free(buf);
		return;
	}
	pthread_mutex_lock(&r->ix_lock);
	index_pack_range_chunks(r->ix, pack, lo, hi, span_row, &rows, NULL);
	pthread_mutex_unlock(&r->ix_lock);
	diskcache_hold(r->dcache, buf, (size_t)(hi - lo), rows.v, rows.n);
	free(rows.v);
}

int repo_chunk_prefetch(struct repo *r, const uint8_t (*ids)[MV_ID_LEN],
			size_t n)
{
	struct batch_ent *b;
	size_t i, m = 0, k;

	if (!r->dcache)
		return -ENOTSUP;
	b = calloc(n ? n : 1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		if (!diskcache_has(r->dcache, ids[i]))
			b[m++].i = i;
	m = batch_locate(r, ids, b, m);
	if (m > 1)
		qsort(b, m, sizeof(*b), batch_cmp);
	for (i = 0; i < m; i = k) {
		uint64_t hi;

		k = batch_run_end(r, b, i, m, PREFETCH_GAP, PREFETCH_SPAN_MAX,
				  &hi);
		prefetch_span(r, b[i].path, b[i].loc.pack, b[i].loc.offset, hi);
	}
	free(b);
	return 0;
}

/* ---- writing ------------------------------------------------------- */

static size_t compress_at(ZSTD_CCtx *c, int level, const ZSTD_CDict *cdict,
			  void *dst, size_t cap, const void *raw, size_t len)
{
	ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
	if (cdict)
		return ZSTD_compress_usingCDict(c, dst, cap, raw, len, cdict);
	return ZSTD_compress2(c, dst, cap, raw, len);
}

int repo_compress(struct repo *r, const void *raw, size_t len,
		  struct mv_buf *out, struct repo_comp *out_comp,
		  struct mv_err *err)
{
	struct repo_dict *dict = len <= DICT_MAX_CHUNK ? dict_active(r) : NULL;
	bool small = len <= SMALL_RECORD_MAX;
	size_t bound = ZSTD_compressBound(len), n;
	ZSTD_CCtx *c;

	out_comp->kind = PACK_COMP_NONE;
	out_comp->dict_id = 0;
	if (len < 64)
		return 0;
	mv_buf_reset(out);
	if (mv_buf_reserve(out, bound))
		return mv_err_set(err, -ENOMEM, "out of memory");
	c = repo_pool_get(&r->cctx);
	if (!c) {
		c = ZSTD_createCCtx();
		if (!c)
			return mv_err_set(err, -ENOMEM, "out of memory");
		ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0);
		ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1);
	}
	n = compress_at(c, small ? repo_small_level(r) : r->cfg.zstd_level,
			!dict	? NULL
			: small ? dict->cdict_small
				: dict->cdict,
			out->data, bound, raw, len);
	if (!repo_pool_put(&r->cctx, c))
		ZSTD_freeCCtx(c);
	if (ZSTD_isError(n))
		return mv_err_set(err, -EIO, "zstd: %s", ZSTD_getErrorName(n));
	/* store raw unless compression saves at least 1/32 */
	if (n + (len >> 5) < len) {
		out->len = n;
		out_comp->kind = dict ? PACK_COMP_ZSTD_DICT : PACK_COMP_ZSTD;
		out_comp->dict_id = dict ? dict->dict_id : 0;
	}
	return 0;
}

/* ---- lifecycle: prune, rebuild-index, repair (src/lifecycle/) --------
 *
 * prune moves records between packs while mounts read: a reader that
 * looked a location up just before prune committed may find the old pack
 * gone, or (when a later pack reuses a deleted pack's row id) a cached
 * name that points at the wrong file.  repo_chunk_read() therefore tries
 * once more after forgetting the cached pack names and re-reading the
 * location from the index, which by then names the new pack.
 */

int repo_chunk_read(struct repo *r, const uint8_t id[MV_ID_LEN], bool verify_id,
		    struct mv_buf *out, struct mv_err *err)
{
	struct mv_err first = MV_ERR_INIT;
	int rc;

	rc = chunk_read_once(r, id, verify_id, out, &first);
	if (rc != -EIO && rc != -ENOENT) {
		if (rc)
			mv_err_set(err, rc, "%s", mv_err_msg(&first));
		return rc;
	}
	pthread_mutex_lock(&r->ix_lock);
	if (r->pack_names)
		memset(r->pack_names, 0,
		       (size_t)r->npack_names * sizeof(*r->pack_names));
	pthread_mutex_unlock(&r->ix_lock);
	return chunk_read_once(r, id, verify_id, out, err);
}

static int chunk_read_raw(struct repo *r, const uint8_t id[MV_ID_LEN],
			  struct mv_buf *out, struct mv_err *err)
{
	return repo_chunk_read(r, id, false, out, err);
}

bool repo_record_cache_bypass(struct repo *r, bool on)
{
	bool was = r->dcache_parked != NULL;

	if (on && !was) {
		r->dcache_parked = r->dcache;
		r->dcache = NULL;
	} else if (!on && was) {
		r->dcache = r->dcache_parked;
		r->dcache_parked = NULL;
	}
	return was;
}
