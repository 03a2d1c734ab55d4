/*
 * repo_segment: commit segments, the index of an encrypted repository as
 * it is stored (docs/FORMAT-2.md 5.3 and 5.4, docs/REMOTE.md).
 *
 * Every commit publishes one new object index/NAME (NAME: 16 random
 * bytes in hex, so two clients never pick the same one) holding what
 * the commit added: its packs with their record lines, its snapshot
 * records, the snapshots it deleted, its dictionaries and the index's
 * notes.  Prune, repair and rebuild-index publish a base segment (the
 * whole index and the names of the segments it replaces) and then
 * remove those segments; append-only repositories keep them.  The
 * working index.db lives in the private cache; its table `segments`
 * names every segment replayed into it (state 1) or replaced by a base
 * replayed into it (state 2).
 *
 *   object := crypt_seal(metadata key, AAD, plain)
 *   AAD    := "mailvault segment" NUL  repo id[16]  NAME (32 hex digits)
 *   plain  := le32 zlen  zstd(body)  zero padding (Padme)
 *   body   := "MVI2" u8 version(1) u8 flags(1: base) varint gen
 *             varint n (bytes name)*                       replaced (base)
 *             varint n (bytes pack u8 kind varint size varint records
 *                       varint m (id[32] u8 type u8 comp varint offset
 *                                 varint stored varint raw)*)*
 *             varint n (id[32] bytes name le64 time_ns u8 partial
 *                       bytes record)*                      snapshots
 *             varint n id[32]*                              deleted
 *             varint n (varint dict_id id[32])*             dictionaries
 *             varint n (bytes key bytes value)*             notes
 *
 * Reading (repo_segment_sync): one listing of index/, then every
 * segment the cache has not replayed is fetched (several at a time) and
 * replayed in one transaction, ordered by generation and name; replay is
 * a merge (INSERT OR IGNORE), so two writers' segments give the union.
 * A new base is replayed into an emptied index with every listed
 * segment it does not replace.  A segment this cache replayed that is
 * neither listed nor replaced by a listed base was dropped by the
 * storage side, or the repository was rolled back: refused (-ESTALE,
 * a damaged repository) before anything is replayed.
 *
 * Writing (repo_segment_publish): inside the commit's transaction, after
 * its packs are sealed and synced; the local COMMIT follows.  A crash
 * before the segment is in place leaves packs no segment names; one
 * after it leaves a segment the cache has not replayed, which the next
 * open replays.
 *
 * Several writers (docs/LOCKING.md): backups hold shared locks and
 * publish at the same time; they only add, so the union is the same in
 * any order.  A commit is a base when its writer has replayed more than
 * SEG_BASE_EVERY segments.  A base replaces every listed segment under
 * the exclusive lock, but under a shared one only those its cache
 * replayed: one another writer published meanwhile stays beside it.
 * Temporary files of publications a killed writer left (NAME.tmp*) are
 * removed by the next writer: all of them under the exclusive lock,
 * those older than a day under a shared one.
 */
#include "repo_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>
#include <zstd.h>

#include "backend.h"
#include "crypt.h"
#include "index.h"
#include "pack.h"

#define SEG_DIR "index"
#define SEG_NAME_LEN 32
#define SEG_MAGIC "MVI2"
#define SEG_VERSION 1
#define SEG_FLAG_BASE 1
#define SEG_MAX_SEALED (1024u << 20)
#define SEG_AAD_LABEL "mailvault segment" /* with its NUL: 18 bytes */
#define SEG_AAD_LEN (18 + MV_REPO_ID_LEN + SEG_NAME_LEN)
#define SEG_WAVE (64u << 20) /* bytes read in one wave */
#define SEG_BASE_EVERY 64    /* segments a base is written after */
#define SEG_TMP_AGE 86400    /* s: a shared writer's tmp is older */

enum seg_state {
	SEG_APPLIED = 1,
	SEG_REPLACED = 2,
};

struct seg {
	char name[SEG_NAME_LEN + 1];
	uint8_t *body; /* the opened, decompressed body; NULL until fetched */
	size_t len;
	uint64_t gen;
	bool base;
	uint64_t size; /* as listed */
	int state;     /* in the cache: 0, SEG_APPLIED or SEG_REPLACED */
};

struct seg_list {
	struct seg *v;
	size_t n, cap;
	size_t ntmp; /* listing: temporary files of publications */
};

static void seg_list_free(struct seg_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		if (l->v[i].body)
			crypt_wipe(l->v[i].body, l->v[i].len);
		free(l->v[i].body);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static bool seg_name_ok(const char *name)
{
	return strlen(name) == SEG_NAME_LEN &&
	       strspn(name, "0123456789abcdef") == SEG_NAME_LEN;
}

static int seg_add(struct seg_list *l, const char *name)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 32;
		struct seg *p = realloc(l->v, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		l->v = p;
		l->cap = cap;
	}
	memset(&l->v[l->n], 0, sizeof(l->v[l->n]));
	snprintf(l->v[l->n].name, sizeof(l->v[l->n].name), "%s", name);
	l->n++;
	return 0;
}

static struct seg *seg_find(struct seg_list *l, const char *name)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (!strcmp(l->v[i].name, name))
			return &l->v[i];
	return NULL;
}

bool repo_uses_segments(const struct repo *r)
{
	return repo_index_is_sealed(r);
}

/* ---- the cache's table of segments ----------------------------------- */

int repo_segment_schema(struct repo *r, struct mv_err *err)
{
	char *msg = NULL;

	if (sqlite3_exec(index_db(r->ix),
			 "CREATE TABLE IF NOT EXISTS segments("
			 "  name TEXT PRIMARY KEY, gen INTEGER NOT NULL,"
			 "  state INTEGER NOT NULL)",
			 NULL, NULL, &msg) != SQLITE_OK) {
		mv_err_set(err, -EIO, "index: cannot add the segment table: %s",
			   msg ? msg : "?");
		sqlite3_free(msg);
		return err ? err->code : -EIO;
	}
	return 0;
}

/* The segments the cache knows, into l (state and gen set). */
static int known_read(struct repo *r, struct seg_list *l, struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(index_db(r->ix),
				"SELECT name, gen, state FROM segments", -1,
				&st, NULL);
	if (rc != SQLITE_OK)
		return mv_err_set(err, -EIO, "index: segments: %s",
				  sqlite3_errmsg(index_db(r->ix)));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);

		if (!name || !seg_name_ok(name))
			continue;
		if (seg_add(l, name)) {
			sqlite3_finalize(st);
			return mv_err_set(err, -ENOMEM, "out of memory");
		}
		l->v[l->n - 1].gen = (uint64_t)sqlite3_column_int64(st, 1);
		l->v[l->n - 1].state = sqlite3_column_int(st, 2);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0
				 : mv_err_set(err, -EIO, "index: segments: %s",
					      sqlite3_errmsg(index_db(r->ix)));
}

static int known_put(struct repo *r, const char *name, uint64_t gen, int state,
		     struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(index_db(r->ix),
				"INSERT OR REPLACE INTO segments(name, gen, "
				"state) VALUES (?1, ?2, ?3)",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)gen);
		sqlite3_bind_int(st, 3, state);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0
				 : mv_err_set(err, -EIO, "index: segments: %s",
					      sqlite3_errmsg(index_db(r->ix)));
}

static void gen_file_note(const struct repo *r, uint64_t gen);

/* ---- listing and fetching ------------------------------------------- */

/* NAME.tmp (local) or NAME.tmp-RANDOM (sftp): a publication under way,
 * or one a killed writer left. */
static bool seg_tmp_name(const char *name)
{
	return strspn(name, "0123456789abcdef") == SEG_NAME_LEN &&
	       !strncmp(name + SEG_NAME_LEN, ".tmp", 4);
}

static int list_one(const char *name, bool is_dir, uint64_t size, void *arg)
{
	struct seg_list *l = arg;

	if (!is_dir && seg_tmp_name(name))
		l->ntmp++;
	if (is_dir || !seg_name_ok(name))
		return 0; /* .tmp files of a publication, anything else */
	if (seg_add(l, name))
		return -ENOMEM;
	l->v[l->n - 1].size = size;
	return 0;
}

static int seg_list_dir(struct repo *r, struct seg_list *out,
			struct mv_err *err)
{
	int rc = r->be->ops->list(r->be, SEG_DIR, list_one, out, err);

	if (rc == -ENOENT) {
		mv_err_clear(err);
		return 0;
	}
	if (rc == -ENOMEM)
		return mv_err_set(err, rc, "out of memory");
	return rc;
}

static void seg_aad(const struct repo *r, const char *name,
		    uint8_t out[SEG_AAD_LEN])
{
	memcpy(out, SEG_AAD_LABEL, 18);
	memcpy(out + 18, r->cfg.id, MV_REPO_ID_LEN);
	memcpy(out + 18 + MV_REPO_ID_LEN, name, SEG_NAME_LEN);
}

static int seg_damaged(struct repo *r, const char *name, const char *why,
		       struct mv_err *err)
{
	return mv_err_set_damaged(
		err, -EBADMSG,
		"segment 'index/%s' of '%s' is damaged or was "
		"tampered with: %s",
		name, r->location, why);
}

/* Open and decompress one segment read whole (sealed, len bytes; the
 * caller keeps it); its header into s. */
static int seg_open(struct repo *r, struct seg *s, const uint8_t *sealed,
		    size_t len, struct mv_err *err)
{
	uint8_t aad[SEG_AAD_LEN], *plain = NULL;
	unsigned long long want;
	struct mv_reader rd;
	size_t plen = 0, zlen, got;
	uint8_t magic[4], ver, flags;
	int rc = 0;

	if (len <= CRYPT_OVERHEAD + 4) {
		rc = seg_damaged(r, s->name, "too short", err);
		goto out;
	}
	plen = len - CRYPT_OVERHEAD;
	plain = malloc(plen);
	if (!plain) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	seg_aad(r, s->name, aad);
	if (crypt_open(r->key_meta, aad, sizeof(aad), sealed, len, plain)) {
		rc = seg_damaged(r, s->name, "authentication failed", err);
		goto out;
	}
	zlen = mv_le32(plain);
	want = zlen <= plen - 4 ? ZSTD_getFrameContentSize(plain + 4, zlen)
				: ZSTD_CONTENTSIZE_ERROR;
	if (want == ZSTD_CONTENTSIZE_ERROR ||
	    want == ZSTD_CONTENTSIZE_UNKNOWN || want > 4ull * SEG_MAX_SEALED ||
	    want < 8) {
		rc = seg_damaged(r, s->name, "bad content", err);
		goto out;
	}
	s->body = malloc((size_t)want);
	if (!s->body) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	got = ZSTD_decompress(s->body, (size_t)want, plain + 4, zlen);
	if (ZSTD_isError(got) || got != want) {
		rc = seg_damaged(r, s->name, "bad content", err);
		goto out;
	}
	s->len = got;
	mv_reader_init(&rd, s->body, s->len);
	if (mv_reader_fixed(&rd, magic, 4) || memcmp(magic, SEG_MAGIC, 4) ||
	    mv_reader_u8(&rd, &ver) || ver != SEG_VERSION ||
	    mv_reader_u8(&rd, &flags) || mv_reader_varint(&rd, &s->gen)) {
		rc = seg_damaged(r, s->name, "not a commit segment", err);
		goto out;
	}
	s->base = flags & SEG_FLAG_BASE;
out:
	if (rc && s->body) {
		crypt_wipe(s->body, s->len);
		free(s->body);
		s->body = NULL;
		s->len = 0;
	}
	if (plain) {
		crypt_wipe(plain, plen);
		free(plain);
	}
	return rc;
}

/* Read, open and decompress one segment; its header into s. */
static int seg_fetch(struct repo *r, struct seg *s, struct mv_err *err)
{
	char path[sizeof(SEG_DIR) + SEG_NAME_LEN + 1];
	void *buf = NULL;
	size_t len = 0;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", SEG_DIR, s->name);
	rc = backend_read_all(r->be, path, SEG_MAX_SEALED, &buf, &len, err);
	if (!rc)
		rc = seg_open(r, s, buf, len, err);
	free(buf);
	return rc;
}

/* Fetch every segment of l that want() selects and that is not fetched
 * yet, in waves of up to SEG_WAVE bytes: one backend_read_many() each,
 * so over sftp every read of a wave is in flight at once (one round
 * trip, plus one per file opened), not one after the other.  Sizes come
 * from the listing. */
static int fetch_all(struct repo *r, struct seg_list *l,
		     bool (*want)(const struct seg *, const void *),
		     const void *arg, struct mv_err *err)
{
	struct backend_range *v = NULL;
	char(*paths)[sizeof(SEG_DIR) + SEG_NAME_LEN + 1] = NULL;
	struct seg **todo = NULL;
	size_t i, n = 0, at = 0;
	int rc = 0;

	todo = calloc(l->n ? l->n : 1, sizeof(*todo));
	v = calloc(l->n ? l->n : 1, sizeof(*v));
	paths = calloc(l->n ? l->n : 1, sizeof(*paths));
	if (!todo || !v || !paths) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < l->n; i++)
		if (!l->v[i].body && want(&l->v[i], arg))
			todo[n++] = &l->v[i];
	while (!rc && at < n) {
		size_t k = 0, bytes = 0;

		while (at + k < n && (!k || bytes < SEG_WAVE)) {
			struct seg *s = todo[at + k];

			if (s->size <= CRYPT_OVERHEAD + 4 ||
			    s->size > SEG_MAX_SEALED) {
				rc = seg_damaged(r, s->name, "bad size", err);
				break;
			}
			snprintf(paths[k], sizeof(paths[k]), "%s/%s", SEG_DIR,
				 s->name);
			v[k].path = paths[k];
			v[k].off = 0;
			v[k].len = (size_t)s->size;
			v[k].buf = malloc(v[k].len);
			v[k].got = 0;
			v[k].rc = 0;
			if (!v[k].buf) {
				rc = mv_err_set(err, -ENOMEM, "out of memory");
				break;
			}
			bytes += v[k].len;
			k++;
		}
		if (!rc) {
			struct mv_err e = MV_ERR_INIT;

			backend_read_many(r->be, v, k, &e);
			for (i = 0; !rc && i < k; i++) {
				struct seg *s = todo[at + i];

				if (v[i].rc == -ENOENT)
					/* removed by a prune since the
					 * listing */
					rc = mv_err_set(err, -EAGAIN,
							"segment 'index/%s' of "
							"'%s' went away while "
							"it was read",
							s->name, r->location);
				else if (v[i].rc)
					rc = mv_err_set(err, v[i].rc, "%s",
							e.msg[0]
								? mv_err_msg(&e)
								: "read");
				else if (v[i].got != v[i].len)
					rc = seg_damaged(r, s->name,
							 "cut short", err);
				else
					rc = seg_open(r, s, v[i].buf, v[i].len,
						      err);
			}
		}
		for (i = 0; i < k; i++) {
			free(v[i].buf);
			v[i].buf = NULL;
		}
		at += k;
	}
out:
	free(todo);
	free(v);
	free(paths);
	return rc;
}

/* Temporary files of publications (seg_tmp_name), by name. */
struct tmp_list {
	char (*v)[SEG_NAME_LEN + 64];
	size_t n, cap;
};

static int tmp_collect(const char *name, bool is_dir, uint64_t size, void *arg)
{
	struct tmp_list *l = arg;

	(void)size;
	if (is_dir || !seg_tmp_name(name) || strlen(name) >= sizeof(l->v[0]))
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 8;
		void *p = realloc(l->v, cap * sizeof(*l->v));

		if (!p)
			return -ENOMEM;
		l->v = p;
		l->cap = cap;
	}
	snprintf(l->v[l->n], sizeof(l->v[l->n]), "%s", name);
	l->n++;
	return 0;
}

/* Remove the temporary files of publications that never completed (a
 * writer killed mid-upload leaves index/NAME.tmp locally, NAME.tmp-XXXX
 * over sftp; S3 writes none): all of them under the exclusive lock,
 * under a shared one only those older than SEG_TMP_AGE (another
 * writer's may be under way).  Best effort. */
static void tmp_clean(struct repo *r)
{
	struct tmp_list l = {NULL, 0, 0};
	bool all = !repo_lock_is_shared(r);
	int64_t now_ns = (int64_t)time(NULL) * 1000000000LL, mtime_ns;
	char path[sizeof(SEG_DIR) + SEG_NAME_LEN + 64];
	size_t i, removed = 0;
	uint64_t size;

	if (r->be->ops->list(r->be, SEG_DIR, tmp_collect, &l, NULL))
		goto out;
	for (i = 0; i < l.n; i++) {
		snprintf(path, sizeof(path), "%s/%s", SEG_DIR, l.v[i]);
		if (!all &&
		    (r->be->ops->stat(r->be, path, &size, &mtime_ns, NULL) ||
		     now_ns - mtime_ns < SEG_TMP_AGE * 1000000000LL))
			continue;
		if (!r->be->ops->remove(r->be, path, NULL))
			removed++;
	}
	if (removed)
		r->be->ops->sync_dir(r->be, SEG_DIR, NULL);
	r->seg_tmp_seen = false;
out:
	free(l.v);
}

/* ---- replay ---------------------------------------------------------- */

enum {
	SQ_PACK_ADD,
	SQ_PACK_ID,
	SQ_CHUNK_ADD,
	SQ_SNAP_ADD,
	SQ_SNAP_DEL,
	SQ_DICT_ADD,
	SQ_META_SET,
	SQ_COUNT
};

static const char *const replay_sql[SQ_COUNT] = {
	[SQ_PACK_ADD] = "INSERT OR IGNORE INTO packs(name, kind, size, "
			"records) VALUES (?1, ?2, ?3, ?4)",
	[SQ_PACK_ID] = "SELECT id FROM packs WHERE name = ?1",
	[SQ_CHUNK_ADD] = "INSERT OR IGNORE INTO chunks(id, pack, offset, "
			 "stored_size, raw_size, type, comp) "
			 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[SQ_SNAP_ADD] = "INSERT OR IGNORE INTO snapshots(id, name, time_ns, "
			"partial, record) VALUES (?1, ?2, ?3, ?4, ?5)",
	[SQ_SNAP_DEL] = "DELETE FROM snapshots WHERE id = ?1",
	[SQ_DICT_ADD] = "INSERT OR IGNORE INTO dicts(dict_id, chunk) "
			"VALUES (?1, ?2)",
	[SQ_META_SET] = "INSERT OR REPLACE INTO meta(key, value) "
			"VALUES (?1, ?2)",
};

struct replay {
	struct repo *r;
	sqlite3 *db;
	sqlite3_stmt *st[SQ_COUNT];
};

static int replay_step(struct replay *p, int i)
{
	int rc = sqlite3_step(p->st[i]);

	sqlite3_reset(p->st[i]);
	sqlite3_clear_bindings(p->st[i]);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -EIO;
}

/* Skip the replaced names of a base. */
static int skip_names(struct mv_reader *rd)
{
	uint64_t n, i;
	const uint8_t *b;
	size_t bl;

	if (mv_reader_varint(rd, &n))
		return -EBADMSG;
	for (i = 0; i < n; i++)
		if (mv_reader_bytes(rd, &b, &bl))
			return -EBADMSG;
	return 0;
}

static int replay_packs(struct replay *p, struct mv_reader *rd)
{
	uint64_t n, m, i, k, size, records, off, stored, raw;
	const uint8_t *name;
	size_t nl;
	uint8_t kind, id[MV_ID_LEN], type, comp;
	char nm[PACK_NAME_LEN + 1];

	if (mv_reader_varint(rd, &n))
		return -EBADMSG;
	for (i = 0; i < n; i++) {
		if (mv_reader_bytes(rd, &name, &nl) || nl != PACK_NAME_LEN ||
		    mv_reader_u8(rd, &kind) || mv_reader_varint(rd, &size) ||
		    mv_reader_varint(rd, &records) ||
		    mv_reader_varint(rd, &m) || size > INT64_MAX ||
		    records > UINT32_MAX)
			return -EBADMSG;
		memcpy(nm, name, PACK_NAME_LEN);
		nm[PACK_NAME_LEN] = '\0';
		if (strspn(nm, "0123456789abcdef") != PACK_NAME_LEN)
			return -EBADMSG;
		sqlite3_bind_text(p->st[SQ_PACK_ADD], 1, nm, -1,
				  SQLITE_TRANSIENT);
		sqlite3_bind_int(p->st[SQ_PACK_ADD], 2, kind);
		sqlite3_bind_int64(p->st[SQ_PACK_ADD], 3, (sqlite3_int64)size);
		sqlite3_bind_int64(p->st[SQ_PACK_ADD], 4,
				   (sqlite3_int64)records);
		if (replay_step(p, SQ_PACK_ADD))
			return -EIO;
		sqlite3_bind_text(p->st[SQ_PACK_ID], 1, nm, -1,
				  SQLITE_TRANSIENT);
		if (sqlite3_step(p->st[SQ_PACK_ID]) != SQLITE_ROW) {
			sqlite3_reset(p->st[SQ_PACK_ID]);
			return -EIO;
		}
		int64_t pack = sqlite3_column_int64(p->st[SQ_PACK_ID], 0);

		sqlite3_reset(p->st[SQ_PACK_ID]);
		for (k = 0; k < m; k++) {
			sqlite3_stmt *st = p->st[SQ_CHUNK_ADD];

			if (mv_reader_fixed(rd, id, MV_ID_LEN) ||
			    mv_reader_u8(rd, &type) ||
			    mv_reader_u8(rd, &comp) ||
			    mv_reader_varint(rd, &off) ||
			    mv_reader_varint(rd, &stored) ||
			    mv_reader_varint(rd, &raw) || off > INT64_MAX ||
			    stored > PACK_MAX_RECORD || raw > PACK_MAX_RECORD)
				return -EBADMSG;
			sqlite3_bind_blob(st, 1, id, MV_ID_LEN,
					  SQLITE_TRANSIENT);
			sqlite3_bind_int64(st, 2, pack);
			sqlite3_bind_int64(st, 3, (sqlite3_int64)off);
			sqlite3_bind_int64(st, 4, (sqlite3_int64)stored);
			sqlite3_bind_int64(st, 5, (sqlite3_int64)raw);
			sqlite3_bind_int(st, 6, type);
			sqlite3_bind_int(st, 7, comp);
			if (replay_step(p, SQ_CHUNK_ADD))
				return -EIO;
		}
	}
	return 0;
}

static int replay_rest(struct replay *p, struct mv_reader *rd)
{
	uint64_t n, i, t, dict;
	const uint8_t *a, *b;
	size_t al, bl;
	uint8_t id[MV_ID_LEN], partial;

	if (mv_reader_varint(rd, &n))
		return -EBADMSG;
	for (i = 0; i < n; i++) {
		sqlite3_stmt *st = p->st[SQ_SNAP_ADD];

		if (mv_reader_fixed(rd, id, MV_ID_LEN) ||
		    mv_reader_bytes(rd, &a, &al) || mv_reader_le64(rd, &t) ||
		    mv_reader_u8(rd, &partial) || mv_reader_bytes(rd, &b, &bl))
			return -EBADMSG;
		sqlite3_bind_blob(st, 1, id, MV_ID_LEN, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 2, (const char *)a, (int)al,
				  SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)t);
		sqlite3_bind_int(st, 4, partial ? 1 : 0);
		sqlite3_bind_blob(st, 5, b, (int)bl, SQLITE_TRANSIENT);
		if (replay_step(p, SQ_SNAP_ADD))
			return -EIO;
	}
	if (mv_reader_varint(rd, &n))
		return -EBADMSG;
	for (i = 0; i < n; i++) {
		if (mv_reader_fixed(rd, id, MV_ID_LEN))
			return -EBADMSG;
		sqlite3_bind_blob(p->st[SQ_SNAP_DEL], 1, id, MV_ID_LEN,
				  SQLITE_TRANSIENT);
		if (replay_step(p, SQ_SNAP_DEL))
			return -EIO;
	}
	if (mv_reader_varint(rd, &n))
		return -EBADMSG;
	for (i = 0; i < n; i++) {
		if (mv_reader_varint(rd, &dict) || dict > UINT32_MAX ||
		    mv_reader_fixed(rd, id, MV_ID_LEN))
			return -EBADMSG;
		sqlite3_bind_int64(p->st[SQ_DICT_ADD], 1, (sqlite3_int64)dict);
		sqlite3_bind_blob(p->st[SQ_DICT_ADD], 2, id, MV_ID_LEN,
				  SQLITE_TRANSIENT);
		if (replay_step(p, SQ_DICT_ADD))
			return -EIO;
	}
	if (mv_reader_varint(rd, &n))
		return -EBADMSG;
	for (i = 0; i < n; i++) {
		if (mv_reader_bytes(rd, &a, &al) ||
		    mv_reader_bytes(rd, &b, &bl))
			return -EBADMSG;
		sqlite3_bind_text(p->st[SQ_META_SET], 1, (const char *)a,
				  (int)al, SQLITE_TRANSIENT);
		sqlite3_bind_text(p->st[SQ_META_SET], 2, (const char *)b,
				  (int)bl, SQLITE_TRANSIENT);
		if (replay_step(p, SQ_META_SET))
			return -EIO;
	}
	return mv_reader_done(rd) ? 0 : -EBADMSG;
}

/* Replay one fetched segment into the open transaction. */
static int replay_one(struct replay *p, struct seg *s, struct mv_err *err)
{
	struct mv_reader rd;
	int rc;

	mv_reader_init(&rd, s->body, s->len);
	/* header: magic, version, flags, gen (checked by seg_fetch) */
	rd.p += 6;
	{
		uint64_t gen;

		rc = mv_reader_varint(&rd, &gen);
	}
	if (!rc)
		rc = skip_names(&rd);
	if (!rc)
		rc = replay_packs(p, &rd);
	if (!rc)
		rc = replay_rest(p, &rd);
	if (rc == -EBADMSG)
		return seg_damaged(p->r, s->name, "bad content", err);
	if (rc)
		return mv_err_set(err, rc,
				  "index: cannot replay segment "
				  "'index/%s': %s",
				  s->name, sqlite3_errmsg(p->db));
	return known_put(p->r, s->name, s->gen, SEG_APPLIED, err);
}

/* The names a base replaces, each marked SEG_REPLACED in l (added when
 * l does not list it) and in the cache.  b may be an entry of l: adding
 * to l moves the entries, so b is not used after the first add (the
 * caller finds it again by its index). */
static int base_replaced(struct repo *r, struct seg *b, struct seg_list *l,
			 bool record, struct mv_err *err)
{
	struct mv_reader rd;
	uint64_t n, i, gen;
	const uint8_t *nb;
	size_t nl;
	char name[SEG_NAME_LEN + 1], bname[SEG_NAME_LEN + 1];
	int rc;

	memcpy(bname, b->name, sizeof(bname));
	mv_reader_init(&rd, b->body, b->len); /* the body stays in place */
	b = NULL;
	rd.p += 6;
	if (mv_reader_varint(&rd, &gen) || mv_reader_varint(&rd, &n))
		return seg_damaged(r, bname, "bad content", err);
	for (i = 0; i < n; i++) {
		struct seg *s;

		if (mv_reader_bytes(&rd, &nb, &nl) || nl != SEG_NAME_LEN)
			return seg_damaged(r, bname, "bad content", err);
		memcpy(name, nb, SEG_NAME_LEN);
		name[SEG_NAME_LEN] = '\0';
		if (!seg_name_ok(name))
			return seg_damaged(r, bname, "bad content", err);
		s = seg_find(l, name);
		if (!s) {
			if (seg_add(l, name))
				return mv_err_set(err, -ENOMEM,
						  "out of memory");
			s = &l->v[l->n - 1];
		}
		s->state = SEG_REPLACED;
		if (record) {
			rc = known_put(r, name, gen, SEG_REPLACED, err);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* True when base b names `name` among the segments it replaces. */
static bool base_names(const struct seg *b, const char *name)
{
	struct mv_reader rd;
	uint64_t n, i, gen;
	const uint8_t *nb;
	size_t nl;

	mv_reader_init(&rd, b->body, b->len);
	rd.p += 6;
	if (mv_reader_varint(&rd, &gen) || mv_reader_varint(&rd, &n))
		return false;
	for (i = 0; i < n; i++) {
		if (mv_reader_bytes(&rd, &nb, &nl))
			return false;
		if (nl == SEG_NAME_LEN && !memcmp(nb, name, SEG_NAME_LEN))
			return true;
	}
	return false;
}

/* True when another fetched base of l replaces base b. */
static bool base_superseded(const struct seg *b, const struct seg_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (&l->v[i] != b && l->v[i].body && l->v[i].base &&
		    base_names(&l->v[i], b->name))
			return true;
	return false;
}

static int replay_open(struct repo *r, struct replay *p, struct mv_err *err)
{
	int i;

	memset(p, 0, sizeof(*p));
	p->r = r;
	p->db = index_db(r->ix);
	for (i = 0; i < SQ_COUNT; i++)
		if (sqlite3_prepare_v2(p->db, replay_sql[i], -1, &p->st[i],
				       NULL) != SQLITE_OK)
			return mv_err_set(err, -EIO, "index: replay: %s",
					  sqlite3_errmsg(p->db));
	return 0;
}

static void replay_close(struct replay *p)
{
	int i;

	for (i = 0; i < SQ_COUNT; i++)
		sqlite3_finalize(p->st[i]);
}

static int seg_order(const void *a, const void *b)
{
	const struct seg *x = *(const struct seg *const *)a;
	const struct seg *y = *(const struct seg *const *)b;

	if (x->gen != y->gen)
		return x->gen < y->gen ? -1 : 1;
	return strcmp(x->name, y->name);
}

static bool want_new(const struct seg *s, const void *arg)
{
	(void)arg;
	return !s->state;
}

/* Listed, not the base, not replaced by it. */
static bool want_on_base(const struct seg *s, const void *arg)
{
	return s != arg && s->state != SEG_REPLACED;
}

/* Every segment this cache replayed must still be listed, or be replaced
 * by the base about to be replayed. */
static int drop_check(struct repo *r, const struct seg_list *known,
		      const struct seg_list *listed, const struct seg_list *rep,
		      struct mv_err *err)
{
	size_t i;

	for (i = 0; i < known->n; i++) {
		const struct seg *k = &known->v[i];
		const struct seg *rs;

		if (k->state != SEG_APPLIED ||
		    seg_find((struct seg_list *)listed, k->name))
			continue;
		rs = rep ? seg_find((struct seg_list *)rep, k->name) : NULL;
		if (rs && rs->state == SEG_REPLACED)
			continue;
		return mv_err_set_damaged(
			err, -ESTALE,
			"segment 'index/%s' of '%s', which this machine has "
			"read (generation %llu), is gone and no newer base "
			"replaces it: the repository was rolled back or the "
			"storage side removed it; nothing was read (if it "
			"was restored on purpose, remove '%s' and run again)",
			k->name, r->location, (unsigned long long)k->gen,
			r->index_path);
	}
	return 0;
}

static int clear_all(struct repo *r, struct mv_err *err)
{
	char *msg = NULL;

	if (sqlite3_exec(index_db(r->ix),
			 "DELETE FROM chunks; DELETE FROM packs; "
			 "DELETE FROM snapshots; DELETE FROM dicts; "
			 "DELETE FROM meta; "
			 "DELETE FROM segments WHERE state = 1;",
			 NULL, NULL, &msg) != SQLITE_OK) {
		mv_err_set(err, -EIO, "index: %s", msg ? msg : "?");
		sqlite3_free(msg);
		return err ? err->code : -EIO;
	}
	return 0;
}

/* Replay base (may be NULL) and then the segments of todo in order. */
static int replay_txn(struct repo *r, struct seg *base, struct seg_list *l,
		      struct mv_err *err)
{
	struct replay p;
	struct seg **todo = NULL;
	size_t i, n = 0;
	int rc;

	todo = calloc(l->n ? l->n : 1, sizeof(*todo));
	if (!todo)
		return mv_err_set(err, -ENOMEM, "out of memory");
	rc = replay_open(r, &p, err);
	if (rc)
		goto out;
	if (base) {
		size_t bi = (size_t)(base - l->v);

		rc = clear_all(r, err);
		if (!rc)
			rc = replay_one(&p, base, err);
		if (!rc)
			rc = base_replaced(r, base, l, true, err);
		if (rc)
			goto out;
		base = &l->v[bi]; /* l may have moved */
	}
	for (i = 0; i < l->n; i++)
		if (l->v[i].body && &l->v[i] != base && !l->v[i].state)
			todo[n++] = &l->v[i];
	qsort(todo, n, sizeof(*todo), seg_order);
	for (i = 0; !rc && i < n; i++)
		rc = replay_one(&p, todo[i], err);
out:
	replay_close(&p);
	free(todo);
	return rc;
}

/* Segments listed under index/ (0 when there is no index/). */
int repo_segment_count(struct repo *r, size_t *out, bool keep,
		       struct mv_err *err)
{
	struct seg_list l = {NULL, 0, 0, 0};
	int rc = seg_list_dir(r, &l, err);

	*out = l.n;
	repo_segment_unkeep(r);
	if (!rc && keep) {
		r->seg_kept = malloc(sizeof(*r->seg_kept));
		if (r->seg_kept) {
			*r->seg_kept = l;
			return 0;
		}
	}
	seg_list_free(&l);
	return rc;
}

void repo_segment_unkeep(struct repo *r)
{
	if (!r->seg_kept)
		return;
	seg_list_free(r->seg_kept);
	free(r->seg_kept);
	r->seg_kept = NULL;
}

int repo_segment_sync(struct repo *r, bool *out_changed, struct mv_err *err)
{
	struct seg_list listed = {NULL, 0, 0, 0}, known = {NULL, 0, 0, 0};
	struct seg *base = NULL;
	size_t i, nnew = 0;
	int rc;

	if (out_changed)
		*out_changed = false;
	if (r->seg_kept) { /* listed a moment ago by repo_segment_count */
		listed = *r->seg_kept;
		free(r->seg_kept);
		r->seg_kept = NULL;
		rc = 0;
	} else {
		rc = seg_list_dir(r, &listed, err);
	}
	if (!rc)
		rc = known_read(r, &known, err);
	if (rc)
		goto out;
	r->seg_tmp_seen = listed.ntmp > 0;
	for (i = 0; i < listed.n; i++) {
		struct seg *k = seg_find(&known, listed.v[i].name);

		listed.v[i].state = k ? k->state : 0;
		listed.v[i].gen = k ? k->gen : 0;
		nnew += !k;
	}
	if (!nnew) {
		rc = drop_check(r, &known, &listed, NULL, err);
		goto out;
	}
	rc = fetch_all(r, &listed, want_new, NULL, err);
	if (rc)
		goto out;
	/* the newest base: the one no other listed base replaces (a base
	 * names every segment listed when it was written), then by gen */
	for (i = 0; i < listed.n; i++) {
		struct seg *s = &listed.v[i];

		if (s->body && s->base && !s->state &&
		    !base_superseded(s, &listed) &&
		    (!base || s->gen > base->gen ||
		     (s->gen == base->gen && strcmp(s->name, base->name) > 0)))
			base = s;
	}
	if (base) {
		size_t bi = (size_t)(base - listed.v);

		/* what the base replaces, then everything listed beside it,
		 * refetched when the cache had replayed it already */
		rc = base_replaced(r, base, &listed, false, err);
		base = &listed.v[bi]; /* listed may have moved */
		if (!rc)
			rc = drop_check(r, &known, &listed, &listed, err);
		for (i = 0; !rc && i < listed.n; i++)
			if (listed.v[i].state == SEG_APPLIED)
				listed.v[i].state = 0;
		if (!rc)
			rc = fetch_all(r, &listed, want_on_base, base, err);
	} else {
		rc = drop_check(r, &known, &listed, NULL, err);
	}
	if (rc)
		goto out;
	rc = index_begin(r->ix, err);
	if (rc)
		goto out;
	if (!base) {
		/* another process of this machine may have replayed them
		 * since: the table under the write lock decides */
		seg_list_free(&known);
		rc = known_read(r, &known, err);
		for (i = 0; !rc && i < listed.n; i++)
			if (seg_find(&known, listed.v[i].name))
				listed.v[i].state = SEG_APPLIED;
	}
	if (!rc)
		rc = replay_txn(r, base, &listed, err);
	if (!rc)
		rc = index_commit(r->ix, err);
	else
		index_rollback(r->ix);
	if (!rc) {
		uint64_t top = 0;

		for (i = 0; i < listed.n; i++)
			if (listed.v[i].body && listed.v[i].gen > top)
				top = listed.v[i].gen;
		gen_file_note(r, top);
	}
	if (!rc && out_changed)
		*out_changed = true;
out:
	/* a writer clears what killed publications left */
	if (!rc && r->locked && r->seg_tmp_seen)
		tmp_clean(r);
	seg_list_free(&listed);
	seg_list_free(&known);
	return rc;
}

/* ---- writing --------------------------------------------------------- */

static int put_str(struct mv_buf *b, const unsigned char *s, int len)
{
	return mv_buf_put_bytes(b, s ? s : (const unsigned char *)"",
				s && len > 0 ? (size_t)len : 0);
}

/* Packs (rows above mark) with their chunk rows. */
static int body_packs(sqlite3 *db, int64_t mark, struct mv_buf *b)
{
	sqlite3_stmt *ps = NULL, *cs = NULL, *cnt = NULL;
	uint64_t n = 0;
	int rc;

	rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM packs WHERE id > ?1",
				-1, &cnt, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db,
					"SELECT id, name, kind, size, records "
					"FROM packs WHERE id > ?1 ORDER BY id",
					-1, &ps, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(
			db,
			"SELECT id, type, comp, offset, stored_size, "
			"raw_size FROM chunks WHERE pack = ?1 ORDER BY offset",
			-1, &cs, NULL);
	if (rc != SQLITE_OK)
		goto out;
	sqlite3_bind_int64(cnt, 1, mark);
	if (sqlite3_step(cnt) == SQLITE_ROW)
		n = (uint64_t)sqlite3_column_int64(cnt, 0);
	rc = mv_buf_put_varint(b, n) ? SQLITE_NOMEM : SQLITE_OK;
	sqlite3_bind_int64(ps, 1, mark);
	while (rc == SQLITE_OK && sqlite3_step(ps) == SQLITE_ROW) {
		struct mv_buf rows = MV_BUF_INIT;
		uint64_t m = 0;

		sqlite3_bind_int64(cs, 1, sqlite3_column_int64(ps, 0));
		while (rc == SQLITE_OK && sqlite3_step(cs) == SQLITE_ROW) {
			const void *id = sqlite3_column_blob(cs, 0);

			if (!id || sqlite3_column_bytes(cs, 0) != MV_ID_LEN)
				continue;
			if (mv_buf_append(&rows, id, MV_ID_LEN) ||
			    mv_buf_put_u8(&rows,
					  (uint8_t)sqlite3_column_int(cs, 1)) ||
			    mv_buf_put_u8(&rows,
					  (uint8_t)sqlite3_column_int(cs, 2)) ||
			    mv_buf_put_varint(
				    &rows,
				    (uint64_t)sqlite3_column_int64(cs, 3)) ||
			    mv_buf_put_varint(
				    &rows,
				    (uint64_t)sqlite3_column_int64(cs, 4)) ||
			    mv_buf_put_varint(
				    &rows,
				    (uint64_t)sqlite3_column_int64(cs, 5)))
				rc = SQLITE_NOMEM;
			m++;
		}
		sqlite3_reset(cs);
		if (rc == SQLITE_OK &&
		    (put_str(b, sqlite3_column_text(ps, 1),
			     sqlite3_column_bytes(ps, 1)) ||
		     mv_buf_put_u8(b, (uint8_t)sqlite3_column_int(ps, 2)) ||
		     mv_buf_put_varint(b,
				       (uint64_t)sqlite3_column_int64(ps, 3)) ||
		     mv_buf_put_varint(b,
				       (uint64_t)sqlite3_column_int64(ps, 4)) ||
		     mv_buf_put_varint(b, m) ||
		     mv_buf_append(b, rows.data, rows.len)))
			rc = SQLITE_NOMEM;
		mv_buf_release(&rows);
	}
out:
	sqlite3_finalize(cnt);
	sqlite3_finalize(ps);
	sqlite3_finalize(cs);
	return rc == SQLITE_OK ? 0 : rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
}

/* Rows of a query, counted first: each row appended by fn. */
static int body_rows(sqlite3 *db, const char *count_sql, const char *sql,
		     int64_t mark, struct mv_buf *b,
		     int (*fn)(sqlite3_stmt *st, struct mv_buf *b))
{
	sqlite3_stmt *cnt = NULL, *st = NULL;
	uint64_t n = 0;
	int rc;

	rc = sqlite3_prepare_v2(db, count_sql, -1, &cnt, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto out;
	if (sqlite3_bind_parameter_count(cnt))
		sqlite3_bind_int64(cnt, 1, mark);
	if (sqlite3_bind_parameter_count(st))
		sqlite3_bind_int64(st, 1, mark);
	if (sqlite3_step(cnt) == SQLITE_ROW)
		n = (uint64_t)sqlite3_column_int64(cnt, 0);
	rc = mv_buf_put_varint(b, n) ? SQLITE_NOMEM : SQLITE_OK;
	while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		if (fn(st, b))
			rc = SQLITE_NOMEM;
out:
	sqlite3_finalize(cnt);
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? 0 : rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
}

static int row_snap(sqlite3_stmt *st, struct mv_buf *b)
{
	const void *id = sqlite3_column_blob(st, 0);
	uint8_t zero[MV_ID_LEN] = {0};

	if (!id || sqlite3_column_bytes(st, 0) != MV_ID_LEN)
		id = zero;
	return mv_buf_append(b, id, MV_ID_LEN) ||
	       put_str(b, sqlite3_column_text(st, 1),
		       sqlite3_column_bytes(st, 1)) ||
	       mv_buf_put_le64(b, (uint64_t)sqlite3_column_int64(st, 2)) ||
	       mv_buf_put_u8(b, sqlite3_column_int(st, 3) ? 1 : 0) ||
	       mv_buf_put_bytes(b, sqlite3_column_blob(st, 4),
				(size_t)sqlite3_column_bytes(st, 4));
}

static int row_dict(sqlite3_stmt *st, struct mv_buf *b)
{
	const void *id = sqlite3_column_blob(st, 1);
	uint8_t zero[MV_ID_LEN] = {0};

	if (!id || sqlite3_column_bytes(st, 1) != MV_ID_LEN)
		id = zero;
	return mv_buf_put_varint(b, (uint64_t)sqlite3_column_int64(st, 0)) ||
	       mv_buf_append(b, id, MV_ID_LEN);
}

static int row_meta(sqlite3_stmt *st, struct mv_buf *b)
{
	return put_str(b, sqlite3_column_text(st, 0),
		       sqlite3_column_bytes(st, 0)) ||
	       put_str(b, sqlite3_column_text(st, 1),
		       sqlite3_column_bytes(st, 1));
}

/* The body of the commit in the open transaction. */
static int body_build(struct repo *r, bool base, uint64_t gen,
		      const struct seg_list *replaced, struct mv_buf *b)
{
	sqlite3 *db = index_db(r->ix);
	int64_t pmark = 0, smark = 0;
	const uint8_t(*gone)[MV_ID_LEN] = NULL;
	size_t ngone = 0, i;
	int rc;

	if (!base) {
		index_txn_marks(r->ix, &pmark, &smark);
		gone = index_txn_gone(r->ix, &ngone);
	}
	rc = mv_buf_append(b, SEG_MAGIC, 4) || mv_buf_put_u8(b, SEG_VERSION) ||
			     mv_buf_put_u8(b, base ? SEG_FLAG_BASE : 0) ||
			     mv_buf_put_varint(b, gen) ||
			     mv_buf_put_varint(b, base ? replaced->n : 0)
		     ? -ENOMEM
		     : 0;
	for (i = 0; !rc && base && i < replaced->n; i++)
		rc = mv_buf_put_bytes(b, replaced->v[i].name, SEG_NAME_LEN);
	if (!rc)
		rc = body_packs(db, pmark, b);
	if (!rc)
		rc = body_rows(db,
			       "SELECT count(*) FROM snapshots WHERE row > ?1",
			       "SELECT id, name, time_ns, partial, record FROM "
			       "snapshots WHERE row > ?1 ORDER BY row",
			       smark, b, row_snap);
	if (!rc)
		rc = mv_buf_put_varint(b, ngone) ? -ENOMEM : 0;
	for (i = 0; !rc && i < ngone; i++)
		rc = mv_buf_append(b, gone[i], MV_ID_LEN);
	if (!rc)
		rc = body_rows(
			db,
			"SELECT count(*) FROM dicts WHERE chunk IN "
			"(SELECT id FROM chunks WHERE pack > ?1)",
			"SELECT dict_id, chunk FROM dicts WHERE chunk IN "
			"(SELECT id FROM chunks WHERE pack > ?1)",
			pmark, b, row_dict);
	if (!rc)
		rc = body_rows(db, "SELECT count(*) FROM meta",
			       "SELECT key, value FROM meta", 0, b, row_meta);
	return rc;
}

/* Compress, pad and seal body as segment name into out. */
static int seal_body(struct repo *r, const char *name, const struct mv_buf *b,
		     struct mv_buf *out, struct mv_err *err)
{
	uint8_t aad[SEG_AAD_LEN];
	size_t bound = ZSTD_compressBound(b->len), z, plen;
	uint8_t *plain;
	int rc;

	plain = calloc(1, crypt_padded_len(4 + bound));
	if (!plain)
		return mv_err_set(err, -ENOMEM, "out of memory");
	z = ZSTD_compress(plain + 4, bound, b->data, b->len,
			  DEFAULT_ZSTD_LEVEL);
	if (ZSTD_isError(z)) {
		rc = mv_err_set(err, -EIO, "segment: zstd: %s",
				ZSTD_getErrorName(z));
		goto out;
	}
	mv_put_le32(plain, (uint32_t)z);
	plen = crypt_padded_len(4 + z);
	rc = mv_buf_reserve(out, plen + CRYPT_OVERHEAD);
	if (rc) {
		rc = mv_err_set(err, rc, "out of memory");
		goto out;
	}
	seg_aad(r, name, aad);
	rc = crypt_seal(r->key_meta, aad, sizeof(aad), plain, plen,
			out->data + out->len);
	if (rc) {
		rc = mv_err_set(err, rc, "segment: cannot seal");
		goto out;
	}
	out->len += plen + CRYPT_OVERHEAD;
out:
	crypt_wipe(plain, crypt_padded_len(4 + bound));
	free(plain);
	return rc;
}

/* The highest generation this cache published or replayed, kept beside
 * index.db (segments.gen) so that it outlives an index.db replaced by
 * rebuild-index: generations only grow. */
static void gen_path(const struct repo *r, char *out, size_t n)
{
	const char *slash = r->index_path ? strrchr(r->index_path, '/') : NULL;
	int dir = slash ? (int)(slash - r->index_path) : 0;

	snprintf(out, n, "%.*s/segments.gen", dir,
		 r->index_path ? r->index_path : ".");
}

static uint64_t gen_file_read(const struct repo *r)
{
	char path[PATH_MAX], *text = NULL;
	uint64_t g = 0;

	gen_path(r, path, sizeof(path));
	if (!mv_read_file(path, 64, &text, NULL, NULL)) {
		g = strtoull(text, NULL, 10);
		free(text);
	}
	return g;
}

static void gen_file_note(const struct repo *r, uint64_t gen)
{
	char path[PATH_MAX], text[32];
	int n;

	if (gen <= gen_file_read(r))
		return;
	gen_path(r, path, sizeof(path));
	n = snprintf(text, sizeof(text), "%llu\n", (unsigned long long)gen);
	mv_write_file_atomic_mode(path, text, (size_t)n, 0600, NULL);
}

static uint64_t gen_next(struct repo *r)
{
	sqlite3_stmt *st = NULL;
	uint64_t g = gen_file_read(r);

	if (sqlite3_prepare_v2(index_db(r->ix),
			       "SELECT coalesce(max(gen), 0) FROM segments", -1,
			       &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW &&
	    (uint64_t)sqlite3_column_int64(st, 0) > g)
		g = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return g + 1;
}

/* Segments replayed into the cache and not replaced by a base it
 * replayed: what a fresh reader of index/ fetches. */
static int64_t count_applied(struct repo *r)
{
	sqlite3_stmt *st = NULL;
	int64_t n = 0;

	if (sqlite3_prepare_v2(index_db(r->ix),
			       "SELECT count(*) FROM segments WHERE state = 1",
			       -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* What a base replaces: every listed segment when the writer holds the
 * exclusive lock (nobody else writes, and its index - synced at open or
 * rebuilt from the packs - covers them all); under a shared lock only
 * those its cache replayed, so a segment another writer published
 * meanwhile stays beside the base and is never removed unread. */
static int base_names_pick(struct repo *r, struct seg_list *out,
			   struct mv_err *err)
{
	struct seg_list listed = {NULL, 0, 0, 0}, known = {NULL, 0, 0, 0};
	size_t i;
	int rc;

	rc = seg_list_dir(r, &listed, err);
	if (rc || !repo_lock_is_shared(r)) {
		*out = listed;
		return rc;
	}
	rc = known_read(r, &known, err);
	for (i = 0; !rc && i < listed.n; i++)
		if (seg_find(&known, listed.v[i].name) &&
		    seg_add(out, listed.v[i].name))
			rc = mv_err_set(err, -ENOMEM, "out of memory");
	out->ntmp = listed.ntmp;
	seg_list_free(&listed);
	seg_list_free(&known);
	return rc;
}

int repo_segment_publish(struct repo *r, bool force_base, uint64_t *out_bytes,
			 struct mv_err *err)
{
	struct seg_list replaced = {NULL, 0, 0, 0};
	struct mv_buf body = MV_BUF_INIT, sealed = MV_BUF_INIT;
	char name[SEG_NAME_LEN + 1], path[sizeof(SEG_DIR) + SEG_NAME_LEN + 1];
	uint8_t rnd[SEG_NAME_LEN / 2];
	int64_t applied = count_applied(r);
	/* the first write of a cache that replayed nothing (a repository
	 * still on index.sealed), and every SEG_BASE_EVERY commits, so
	 * that a fresh reader fetches one base and a few */
	bool base = force_base || index_txn_needs_base(r->ix) || !applied ||
		    applied > SEG_BASE_EVERY;
	uint64_t gen = gen_next(r), size;
	size_t i;
	int rc;

	rc = repo_segment_schema(r, err);
	if (rc)
		return rc;
	crypt_random(rnd, sizeof(rnd));
	mv_hex(rnd, sizeof(rnd), name);
	if (base)
		rc = base_names_pick(r, &replaced, err);
	if (!rc) {
		rc = body_build(r, base, gen, &replaced, &body);
		if (rc)
			rc = mv_err_set(err, rc,
					"index: cannot gather the "
					"commit segment: %s",
					sqlite3_errmsg(index_db(r->ix)));
	}
	if (!rc)
		rc = seal_body(r, name, &body, &sealed, err);
	if (rc)
		goto out;
	if (r->be->ops->stat(r->be, SEG_DIR, &size, NULL, NULL))
		r->be->ops->mkdir(r->be, SEG_DIR, NULL);
	snprintf(path, sizeof(path), "%s/%s", SEG_DIR, name);
	/* from here a failure may have left the segment in place */
	r->seg_maybe_out = true;
	rc = backend_write_atomic(r->be, path, sealed.data, sealed.len, err);
	/* not in place: the commit surely did not happen */
	if (rc && r->be->ops->stat(r->be, path, &size, NULL, NULL) == -ENOENT)
		r->seg_maybe_out = false;
	if (!rc)
		rc = r->be->ops->sync_dir(r->be, SEG_DIR, err);
	if (rc)
		goto out;
	if (out_bytes)
		*out_bytes = sealed.len;
	gen_file_note(r, gen);
	rc = known_put(r, name, gen, SEG_APPLIED, err);
	for (i = 0; !rc && i < replaced.n; i++)
		rc = known_put(r, replaced.v[i].name, gen, SEG_REPLACED, err);
	if (!rc && (base || r->seg_tmp_seen || replaced.ntmp))
		tmp_clean(r);
	if (rc || !base || (r->cfg.flags & REPO_APPEND_ONLY))
		goto out;
	/* the base is in place: what it replaces can go (a reader that
	 * still lists them skips them, the base names them) */
	for (i = 0; i < replaced.n; i++) {
		snprintf(path, sizeof(path), "%s/%s", SEG_DIR,
			 replaced.v[i].name);
		r->be->ops->remove(r->be, path, NULL);
	}
	/* the sealed index of before segments, now replaced too */
	r->be->ops->remove(r->be, "index.sealed", NULL);
	if (replaced.n)
		r->be->ops->sync_dir(r->be, SEG_DIR, NULL);
out:
	if (body.data)
		crypt_wipe(body.data, body.len);
	mv_buf_release(&body);
	mv_buf_release(&sealed);
	seg_list_free(&replaced);
	return rc;
}

int repo_segments_verify(struct repo *r, repo_segment_bad_fn fn, void *arg,
			 size_t *out_n, size_t *out_bad, struct mv_err *err)
{
	struct seg_list l = {NULL, 0, 0, 0};
	size_t i;
	int rc;

	*out_n = *out_bad = 0;
	if (!r->segments || r->seg_legacy)
		return 0;
	rc = seg_list_dir(r, &l, err);
	for (i = 0; !rc && i < l.n; i++) {
		struct mv_err e = MV_ERR_INIT;
		struct seg *s = &l.v[i];
		int frc = seg_fetch(r, s, &e);

		if (s->body) {
			crypt_wipe(s->body, s->len);
			free(s->body);
			s->body = NULL;
		}
		if (frc == -ENOENT)
			continue; /* removed by a prune since the listing */
		(*out_n)++;
		if (frc && !e.damaged) {
			rc = mv_err_set(err, frc, "%s", mv_err_msg(&e));
			break;
		}
		if (frc) {
			(*out_bad)++;
			fn(s->name, mv_err_msg(&e), arg);
		}
	}
	seg_list_free(&l);
	return rc;
}
