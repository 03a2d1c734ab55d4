/* index: SQLite schema and statements of index.db (include/index.h). */
#include "index.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "pack.h"
#include "util.h"

enum stmt_id {
	ST_CHUNK_FIND,
	ST_CHUNK_ADD,
	ST_PACK_ADD,
	ST_PACK_UPDATE,
	ST_PACK_NAME,
	ST_SNAP_ADD,
	ST_SNAP_EACH,
	ST_SNAP_DEL,
	ST_DATA_VERSION,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_CHUNK_FIND] = "SELECT pack, offset, stored_size, raw_size, type, "
			  "comp FROM chunks WHERE id = ?1",
	[ST_CHUNK_ADD] = "INSERT OR IGNORE INTO chunks(id, pack, offset, "
			 "stored_size, raw_size, type, comp) "
			 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[ST_PACK_ADD] = "INSERT INTO packs(name, kind, size, records) "
			"VALUES (?1, ?2, 0, 0)",
	[ST_PACK_UPDATE] = "UPDATE packs SET size = ?2, records = ?3 "
			   "WHERE id = ?1",
	[ST_PACK_NAME] = "SELECT name FROM packs WHERE id = ?1",
	[ST_SNAP_ADD] = "INSERT OR REPLACE INTO snapshots(id, name, time_ns, "
			"partial, record) VALUES (?1, ?2, ?3, ?4, ?5)",
	[ST_SNAP_EACH] = "SELECT row, record FROM snapshots "
			 "ORDER BY name, time_ns, id",
	[ST_SNAP_DEL] = "DELETE FROM snapshots WHERE id = ?1",
	[ST_DATA_VERSION] = "PRAGMA data_version",
};

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS meta("
	"  key TEXT PRIMARY KEY, value TEXT);"
	"CREATE TABLE IF NOT EXISTS packs("
	"  id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,"
	"  kind INTEGER NOT NULL, size INTEGER NOT NULL,"
	"  records INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS chunks("
	"  id BLOB PRIMARY KEY, pack INTEGER NOT NULL,"
	"  offset INTEGER NOT NULL, stored_size INTEGER NOT NULL,"
	"  raw_size INTEGER NOT NULL, type INTEGER NOT NULL,"
	"  comp INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS chunks_by_pack ON chunks(pack);"
	"CREATE TABLE IF NOT EXISTS snapshots("
	"  row INTEGER PRIMARY KEY, id BLOB UNIQUE NOT NULL,"
	"  name TEXT NOT NULL, time_ns INTEGER NOT NULL,"
	"  partial INTEGER NOT NULL, record BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS dicts("
	"  dict_id INTEGER PRIMARY KEY, chunk BLOB NOT NULL);"
	"PRAGMA user_version = 1;";

struct index {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT]; /* prepared once, reset after use */
	bool in_txn;
	bool commit_unknown; /* the last failed COMMIT may have happened */
	/* What the open transaction changed, for its commit segment
	 * (docs/FORMAT-2.md 5.3): rows above the marks were added by it. */
	int64_t mark_pack;	    /* highest packs.id at BEGIN */
	int64_t mark_snap;	    /* highest snapshots.row at BEGIN */
	bool needs_base;	    /* packs dropped or chunks moved */
	uint8_t (*gone)[MV_ID_LEN]; /* snapshots deleted */
	size_t ngone, gone_cap;
};

static int db_err(struct index *ix, int rc, const char *what,
		  struct mv_err *err)
{
	int code = -EIO;

	if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
		code = -EBUSY;
	else if (rc == SQLITE_FULL)
		code = -ENOSPC;
	else if (rc == SQLITE_NOMEM)
		code = -ENOMEM;
	else if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB)
		code = -EBADMSG;
	else if (rc == SQLITE_READONLY)
		code = -EROFS;
	return mv_err_set(err, code, "index: %s: %s", what,
			  ix && ix->db ? sqlite3_errmsg(ix->db)
				       : sqlite3_errstr(rc));
}

static int exec(struct index *ix, const char *sql, struct mv_err *err)
{
	char *msg = NULL;
	int rc = sqlite3_exec(ix->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		mv_err_set(err, rc == SQLITE_FULL ? -ENOSPC : -EIO, "index: %s",
			   msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return err ? err->code : -EIO;
	}
	return 0;
}

/* An index.db may come from a share or an sftp server others control:
 * read it as untrusted input, before its schema is first parsed.  Defensive
 * mode refuses writes to the schema and shadow tables (SQLite >= 3.26),
 * trusted_schema=OFF keeps views and triggers stored in the file from
 * calling functions with side effects (3.31), and cell_size_check finds a
 * corrupt b-tree page before it is used (3.10; reads cost a few percent).
 * Debian 12 ships 3.40: all three are there. */
int index_sqlite_defend(sqlite3 *db, const char *what, struct mv_err *err)
{
	char *msg = NULL;
	int on = 0;

	if (sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, &on) !=
		    SQLITE_OK ||
	    !on)
		return mv_err_set(err, -EIO,
				  "%s: SQLite %s has no defensive mode "
				  "(3.26 or later needed)",
				  what, sqlite3_libversion());
	if (sqlite3_exec(
		    db, "PRAGMA trusted_schema=OFF; PRAGMA cell_size_check=ON;",
		    NULL, NULL, &msg) != SQLITE_OK) {
		mv_err_set(err, -EIO, "%s: %s", what,
			   msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return err ? err->code : -EIO;
	}
	return 0;
}

int index_open(const char *path, bool create, bool network_fs, bool readonly,
	       struct index **out, struct mv_err *err)
{
	struct index *ix;
	int flags, rc, i, ver = 0;
	sqlite3_stmt *st = NULL;

	ix = calloc(1, sizeof(*ix));
	if (!ix)
		return mv_err_set(err, -ENOMEM, "out of memory");
	flags = SQLITE_OPEN_NOMUTEX;
	flags |= readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
	if (create) {
		flags |= SQLITE_OPEN_CREATE;
		/* SQLite would create it 0644 less the umask, and its journal
		 * and WAL files copy the database's mode */
		rc = mv_create_private(path);
		if (rc) {
			rc = mv_err_set(err, rc, "cannot create index '%s': %s",
					path, strerror(-rc));
			goto fail;
		}
	}
	rc = sqlite3_open_v2(path, &ix->db, flags, NULL);
	if (rc != SQLITE_OK) {
		rc = mv_err_set(err, rc == SQLITE_CANTOPEN ? -ENOENT : -EIO,
				"cannot open index '%s': %s", path,
				ix->db ? sqlite3_errmsg(ix->db)
				       : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(ix->db, 10000);
	rc = index_sqlite_defend(ix->db, "index", err);
	if (rc)
		goto fail;
	if (!readonly) {
		rc = exec(ix,
			  network_fs ? "PRAGMA journal_mode=DELETE;"
				     : "PRAGMA journal_mode=WAL;",
			  err);
		if (!rc)
			rc = exec(ix, "PRAGMA synchronous=FULL;", err);
		if (rc)
			goto fail;
	}
	if (create) {
		rc = exec(ix, schema, err);
		if (rc)
			goto fail;
	}
	if (sqlite3_prepare_v2(ix->db, "PRAGMA user_version", -1, &st, NULL) ==
		    SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		ver = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (ver != INDEX_SCHEMA_VERSION) {
		rc = mv_err_set(err, -EBADMSG,
				"index '%s' has schema version "
				"%d, expected %d (run 'mailvault "
				"rebuild-index')",
				path, ver, INDEX_SCHEMA_VERSION);
		goto fail;
	}
	for (i = 0; i < ST_COUNT; i++) {
		rc = sqlite3_prepare_v3(ix->db, stmt_sql[i], -1,
					SQLITE_PREPARE_PERSISTENT, &ix->st[i],
					NULL);
		if (rc != SQLITE_OK) {
			rc = db_err(ix, rc, "prepare", err);
			goto fail;
		}
	}
	*out = ix;
	return 0;
fail:
	index_close(ix);
	return rc;
}

void index_close(struct index *ix)
{
	int i;

	if (!ix)
		return;
	if (ix->in_txn)
		index_rollback(ix);
	for (i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(ix->st[i]);
	sqlite3_close(ix->db);
	free(ix->gone);
	free(ix);
}

struct sqlite3 *index_db(struct index *ix)
{
	return ix->db;
}

static int64_t max_of(struct index *ix, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v = 0;

	if (sqlite3_prepare_v2(ix->db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

int index_begin(struct index *ix, struct mv_err *err)
{
	int rc = exec(ix, "BEGIN IMMEDIATE", err);

	if (rc)
		return rc;
	ix->in_txn = true;
	ix->mark_pack = max_of(ix, "SELECT coalesce(max(id), 0) FROM packs");
	ix->mark_snap =
		max_of(ix, "SELECT coalesce(max(row), 0) FROM snapshots");
	ix->needs_base = false;
	ix->ngone = 0;
	return 0;
}

void index_txn_marks(const struct index *ix, int64_t *out_pack,
		     int64_t *out_snap)
{
	*out_pack = ix->mark_pack;
	*out_snap = ix->mark_snap;
}

bool index_txn_needs_base(const struct index *ix)
{
	return ix->needs_base;
}

const uint8_t (*index_txn_gone(const struct index *ix,
			       size_t *out_n))[MV_ID_LEN]
{
	*out_n = ix->ngone;
	return (const uint8_t(*)[MV_ID_LEN])ix->gone;
}

static int note_gone(struct index *ix, const uint8_t id[MV_ID_LEN])
{
	if (ix->ngone == ix->gone_cap) {
		size_t cap = ix->gone_cap ? 2 * ix->gone_cap : 16;
		void *p = realloc(ix->gone, cap * sizeof(*ix->gone));

		if (!p)
			return -ENOMEM;
		ix->gone = p;
		ix->gone_cap = cap;
	}
	memcpy(ix->gone[ix->ngone++], id, MV_ID_LEN);
	return 0;
}

/* How long a COMMIT waits, in all, for readers to let go of the index.
 * With journal_mode=DELETE (network filesystems) a reader's shared lock
 * keeps the writer from committing; SQLite's busy handler waits its
 * busy_timeout, then COMMIT fails with SQLITE_BUSY and the transaction
 * stays open, so it is tried again here rather than thrown away. */
#define INDEX_COMMIT_WAIT_S 120

int index_commit(struct index *ix, struct mv_err *err)
{
	struct timespec start, now, pause = {0, 200 * 1000000L};
	int rc;

	ix->commit_unknown = false;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		rc = sqlite3_exec(ix->db, "COMMIT", NULL, NULL, NULL);
		if ((rc & 0xff) != SQLITE_BUSY ||
		    sqlite3_get_autocommit(ix->db))
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= INDEX_COMMIT_WAIT_S)
			return mv_err_set(err, -EBUSY,
					  "index: commit: the index was "
					  "locked by another process for "
					  "%d s",
					  INDEX_COMMIT_WAIT_S);
		nanosleep(&pause, NULL);
	}
	if (rc != SQLITE_OK) {
		int ext = sqlite3_extended_errcode(ix->db);

		ix->commit_unknown = (rc & 0xff) != SQLITE_BUSY &&
				     (rc & 0xff) != SQLITE_FULL &&
				     ext != SQLITE_IOERR_WRITE &&
				     ext != SQLITE_IOERR_SHORT_READ &&
				     ext != SQLITE_IOERR_NOMEM &&
				     (rc & 0xff) != SQLITE_NOMEM;
		return db_err(ix, rc, "commit", err);
	}
	ix->in_txn = false;
	return 0;
}

bool index_commit_unknown(const struct index *ix)
{
	return ix->commit_unknown;
}

void index_rollback(struct index *ix)
{
	sqlite3_exec(ix->db, "ROLLBACK", NULL, NULL, NULL);
	ix->in_txn = false;
}

/* A chunk row's location.  Its sizes are as untrusted as the file: no
 * record is larger than PACK_MAX_RECORD, so a row saying otherwise is
 * damaged, refused before anyone allocates or reads that much. */
static int loc_from_row(sqlite3_stmt *st, const uint8_t id[MV_ID_LEN],
			struct chunk_loc *out, struct mv_err *err)
{
	int64_t off = sqlite3_column_int64(st, 1);
	int64_t stored = sqlite3_column_int64(st, 2);
	int64_t raw = sqlite3_column_int64(st, 3);

	if (off < 0 || stored < 0 || stored > PACK_MAX_RECORD || raw < 0 ||
	    raw > PACK_MAX_RECORD) {
		char hex[17];

		mv_hex(id, 8, hex);
		return mv_err_set(err, -EIO,
				  "damaged index row of chunk %s: offset "
				  "%lld, a record of %lld bytes (%lld raw)",
				  hex, (long long)off, (long long)stored,
				  (long long)raw);
	}
	out->pack = sqlite3_column_int64(st, 0);
	out->offset = (uint64_t)off;
	out->stored_size = (uint32_t)stored;
	out->raw_size = (uint32_t)raw;
	out->type = (uint8_t)sqlite3_column_int(st, 4);
	out->comp = (uint8_t)sqlite3_column_int(st, 5);
	return 0;
}

int index_chunk_find(struct index *ix, const uint8_t id[MV_ID_LEN],
		     struct chunk_loc *out, struct mv_err *err)
{
	sqlite3_stmt *st = ix->st[ST_CHUNK_FIND];
	int rc;

	sqlite3_bind_blob(st, 1, id, MV_ID_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		rc = out ? loc_from_row(st, id, out, err) : 0;
	} else if (rc == SQLITE_DONE) {
		rc = -ENOENT;
	} else {
		rc = db_err(ix, rc, "chunk lookup", err);
	}
	sqlite3_reset(st);
	return rc;
}

int index_chunk_add(struct index *ix, const uint8_t id[MV_ID_LEN],
		    const struct chunk_loc *loc, struct mv_err *err)
{
	sqlite3_stmt *st = ix->st[ST_CHUNK_ADD];
	int rc;

	sqlite3_bind_blob(st, 1, id, MV_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, loc->pack);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)loc->offset);
	sqlite3_bind_int64(st, 4, loc->stored_size);
	sqlite3_bind_int64(st, 5, loc->raw_size);
	sqlite3_bind_int(st, 6, loc->type);
	sqlite3_bind_int(st, 7, loc->comp);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : db_err(ix, rc, "adding a chunk", err);
	sqlite3_reset(st);
	return rc;
}

int index_pack_add(struct index *ix, const char *name, int kind,
		   int64_t *out_id, struct mv_err *err)
{
	sqlite3_stmt *st = ix->st[ST_PACK_ADD];
	int rc;

	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, kind);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : db_err(ix, rc, "adding a pack", err);
	sqlite3_reset(st);
	if (!rc)
		*out_id = sqlite3_last_insert_rowid(ix->db);
	return rc;
}

int index_pack_update(struct index *ix, int64_t id, uint64_t size,
		      uint32_t records, struct mv_err *err)
{
	sqlite3_stmt *st = ix->st[ST_PACK_UPDATE];
	int rc;

	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)size);
	sqlite3_bind_int64(st, 3, records);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : db_err(ix, rc, "updating a pack", err);
	sqlite3_reset(st);
	return rc;
}

int index_pack_name(struct index *ix, int64_t id, char *out, size_t n,
		    struct mv_err *err)
{
	sqlite3_stmt *st = ix->st[ST_PACK_NAME];
	int rc;

	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(out, n, "%s",
			 (const char *)sqlite3_column_text(st, 0));
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = mv_err_set(err, -ENOENT, "index: no pack with id %lld",
				(long long)id);
	} else {
		rc = db_err(ix, rc, "pack lookup", err);
	}
	sqlite3_reset(st);
	return rc;
}

int index_snapshot_add(struct index *ix, const uint8_t id[MV_ID_LEN],
		       const char *name, int64_t time_ns, bool partial,
		       const void *record, size_t len, struct mv_err *err)
{
	sqlite3_stmt *st = ix->st[ST_SNAP_ADD];
	int rc;

	sqlite3_bind_blob(st, 1, id, MV_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, time_ns);
	sqlite3_bind_int(st, 4, partial);
	sqlite3_bind_blob(st, 5, record, (int)len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : db_err(ix, rc, "adding a snapshot", err);
	sqlite3_reset(st);
	return rc;
}

int index_snapshot_each(struct index *ix, index_snapshot_fn fn, void *arg,
			struct mv_err *err)
{
	sqlite3_stmt *st = ix->st[ST_SNAP_EACH];
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		rc = fn(sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1),
			(size_t)sqlite3_column_bytes(st, 1), arg);
		if (rc)
			break;
	}
	if (rc == SQLITE_DONE)
		rc = 0;
	else if (rc > 0)
		rc = db_err(ix, rc, "listing snapshots", err);
	sqlite3_reset(st);
	return rc;
}

int index_snapshot_delete(struct index *ix, const uint8_t id[MV_ID_LEN],
			  struct mv_err *err)
{
	sqlite3_stmt *st = ix->st[ST_SNAP_DEL];
	int rc;

	sqlite3_bind_blob(st, 1, id, MV_ID_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : db_err(ix, rc, "deleting a snapshot", err);
	sqlite3_reset(st);
	if (!rc && ix->in_txn && note_gone(ix, id))
		rc = mv_err_set(err, -ENOMEM, "out of memory");
	return rc;
}

int index_pack_each(struct index *ix, index_pack_fn fn, void *arg,
		    struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(ix->db,
				"SELECT id, name, kind, size, records "
				"FROM packs ORDER BY id",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_err(ix, rc, "listing packs", err);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		rc = fn(sqlite3_column_int64(st, 0),
			(const char *)sqlite3_column_text(st, 1),
			sqlite3_column_int(st, 2),
			(uint64_t)sqlite3_column_int64(st, 3),
			(uint32_t)sqlite3_column_int64(st, 4), arg);
		if (rc)
			break;
	}
	if (rc == SQLITE_DONE)
		rc = 0;
	else if (rc > 0)
		rc = db_err(ix, rc, "listing packs", err);
	sqlite3_finalize(st);
	return rc;
}

static int chunk_rows(struct index *ix, sqlite3_stmt *st, index_chunk_fn fn,
		      void *arg, struct mv_err *err);

int index_chunk_each(struct index *ix, index_chunk_fn fn, void *arg,
		     struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(ix->db,
				"SELECT id, pack, offset, stored_size, "
				"raw_size, type, comp FROM chunks "
				"ORDER BY pack, offset",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_err(ix, rc, "listing chunks", err);
	return chunk_rows(ix, st, fn, arg, err);
}

int index_dict_add(struct index *ix, uint32_t dict_id,
		   const uint8_t chunk[MV_ID_LEN], struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_exec(ix->db,
			  "CREATE TABLE IF NOT EXISTS dicts("
			  "dict_id INTEGER PRIMARY KEY, chunk BLOB NOT NULL)",
			  NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(ix->db,
					"INSERT OR REPLACE INTO "
					"dicts(dict_id, chunk) VALUES (?1, ?2)",
					-1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_err(ix, rc, "adding a dictionary", err);
	sqlite3_bind_int64(st, 1, dict_id);
	sqlite3_bind_blob(st, 2, chunk, MV_ID_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : db_err(ix, rc, "adding a dictionary", err);
	sqlite3_finalize(st);
	return rc;
}

int index_dict_find(struct index *ix, uint32_t dict_id, uint32_t *out_id,
		    uint8_t out_chunk[MV_ID_LEN], struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(ix->db,
				dict_id ? "SELECT dict_id, chunk FROM dicts "
					  "WHERE dict_id = ?1"
					: "SELECT dict_id, chunk FROM dicts "
					  "ORDER BY rowid DESC LIMIT 1",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return -ENOENT; /* an index without the table: none */
	if (dict_id)
		sqlite3_bind_int64(st, 1, dict_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 1) == MV_ID_LEN) {
		*out_id = (uint32_t)sqlite3_column_int64(st, 0);
		memcpy(out_chunk, sqlite3_column_blob(st, 1), MV_ID_LEN);
		rc = 0;
	} else if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
		rc = -ENOENT;
	} else {
		rc = db_err(ix, rc, "dictionary lookup", err);
	}
	sqlite3_finalize(st);
	return rc;
}

int index_data_version(struct index *ix, int64_t *out, struct mv_err *err)
{
	sqlite3_stmt *st = ix->st[ST_DATA_VERSION];
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = 0;
	} else {
		rc = db_err(ix, rc, "data version", err);
	}
	sqlite3_reset(st);
	return rc;
}

int index_checkpoint(struct index *ix, struct mv_err *err)
{
	int rc = sqlite3_wal_checkpoint_v2(
		ix->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);

	if (rc != SQLITE_OK)
		return db_err(ix, rc, "checkpoint", err);
	return 0;
}

int index_totals(struct index *ix, struct index_totals *out, struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = sqlite3_prepare_v2(ix->db,
				"SELECT count(*), total(raw_size), "
				"total(stored_size) FROM chunks",
				-1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
		out->chunks = (uint64_t)sqlite3_column_int64(st, 0);
		out->raw = (uint64_t)sqlite3_column_double(st, 1);
		out->stored = (uint64_t)sqlite3_column_double(st, 2);
	}
	sqlite3_finalize(st);
	st = NULL;
	rc = sqlite3_prepare_v2(ix->db,
				"SELECT count(*), total(size) FROM packs", -1,
				&st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
		out->packs = (uint64_t)sqlite3_column_int64(st, 0);
		out->pack_bytes = (uint64_t)sqlite3_column_double(st, 1);
		rc = 0;
	} else {
		rc = db_err(ix, rc, "totals", err);
	}
	sqlite3_finalize(st);
	return rc;
}

/* ---- lifecycle: prune, rebuild-index, repair (src/lifecycle/) -------- */

struct index_batch {
	struct index *ix;
	sqlite3_stmt *move; /* point a chunk at a new location */
	sqlite3_stmt *drop; /* remove a chunk row */
};

int index_batch_new(struct index *ix, struct index_batch **out,
		    struct mv_err *err)
{
	struct index_batch *b = calloc(1, sizeof(*b));
	int rc;

	if (!b)
		return mv_err_set(err, -ENOMEM, "out of memory");
	b->ix = ix;
	rc = sqlite3_prepare_v2(ix->db,
				"UPDATE chunks SET pack = ?2, "
				"offset = ?3, stored_size = ?4, raw_size = ?5, "
				"type = ?6, comp = ?7 WHERE id = ?1",
				-1, &b->move, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(ix->db,
					"DELETE FROM chunks WHERE "
					"id = ?1",
					-1, &b->drop, NULL);
	if (rc != SQLITE_OK) {
		rc = db_err(ix, rc, "prepare", err);
		index_batch_free(b);
		return rc;
	}
	*out = b;
	return 0;
}

void index_batch_free(struct index_batch *b)
{
	if (!b)
		return;
	sqlite3_finalize(b->move);
	sqlite3_finalize(b->drop);
	free(b);
}

int index_batch_move(struct index_batch *b, const uint8_t id[MV_ID_LEN],
		     const struct chunk_loc *loc, struct mv_err *err)
{
	sqlite3_stmt *st = b->move;
	int rc;

	sqlite3_bind_blob(st, 1, id, MV_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, loc->pack);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)loc->offset);
	sqlite3_bind_int64(st, 4, loc->stored_size);
	sqlite3_bind_int64(st, 5, loc->raw_size);
	sqlite3_bind_int(st, 6, loc->type);
	sqlite3_bind_int(st, 7, loc->comp);
	b->ix->needs_base = true;
	rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : db_err(b->ix, rc, "moving a chunk", err);
	sqlite3_reset(st);
	return rc;
}

int index_batch_drop(struct index_batch *b, const uint8_t id[MV_ID_LEN],
		     struct mv_err *err)
{
	sqlite3_stmt *st = b->drop;
	int rc;

	sqlite3_bind_blob(st, 1, id, MV_ID_LEN, SQLITE_STATIC);
	b->ix->needs_base = true;
	rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : db_err(b->ix, rc, "removing a chunk", err);
	sqlite3_reset(st);
	return rc;
}

/* Run sql with up to two integer parameters, stepping it to the end. */
static int exec_int(struct index *ix, const char *sql, int64_t a, int64_t b,
		    const char *what, struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(ix->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_err(ix, rc, what, err);
	if (sqlite3_bind_parameter_count(st) >= 1)
		sqlite3_bind_int64(st, 1, a);
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_int64(st, 2, b);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	rc = rc == SQLITE_DONE ? 0 : db_err(ix, rc, what, err);
	sqlite3_finalize(st);
	return rc;
}

int index_pack_delete(struct index *ix, int64_t id, struct mv_err *err)
{
	int rc;

	ix->needs_base = true;
	rc = exec_int(ix, "DELETE FROM chunks WHERE pack = ?1", id, 0,
		      "removing the chunks of a pack", err);

	if (!rc)
		rc = exec_int(ix, "DELETE FROM packs WHERE id = ?1", id, 0,
			      "removing a pack", err);
	return rc;
}

/* Shared loop of the chunk queries below: columns id, pack, offset,
 * stored_size, raw_size, type, comp. */
static int chunk_rows(struct index *ix, sqlite3_stmt *st, index_chunk_fn fn,
		      void *arg, struct mv_err *err)
{
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct chunk_loc loc;
		uint8_t id[MV_ID_LEN];

		if (sqlite3_column_bytes(st, 0) != MV_ID_LEN)
			continue;
		memcpy(id, sqlite3_column_blob(st, 0), MV_ID_LEN);
		loc.pack = sqlite3_column_int64(st, 1);
		loc.offset = (uint64_t)sqlite3_column_int64(st, 2);
		loc.stored_size = (uint32_t)sqlite3_column_int64(st, 3);
		loc.raw_size = (uint32_t)sqlite3_column_int64(st, 4);
		loc.type = (uint8_t)sqlite3_column_int(st, 5);
		loc.comp = (uint8_t)sqlite3_column_int(st, 6);
		rc = fn(id, &loc, arg);
		if (rc)
			break;
	}
	if (rc == SQLITE_DONE)
		rc = 0;
	else if (rc > 0)
		rc = db_err(ix, rc, "listing chunks", err);
	sqlite3_finalize(st);
	return rc;
}

int index_pack_chunks(struct index *ix, int64_t pack, index_chunk_fn fn,
		      void *arg, struct mv_err *err)
{
	return index_pack_range_chunks(ix, pack, 0, INT64_MAX, fn, arg, err);
}

int index_pack_range_chunks(struct index *ix, int64_t pack, uint64_t lo,
			    uint64_t hi, index_chunk_fn fn, void *arg,
			    struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(ix->db,
				"SELECT id, pack, offset, stored_size, "
				"raw_size, type, comp FROM chunks "
				"WHERE pack = ?1 AND offset >= ?2 AND "
				"offset < ?3 ORDER BY offset",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_err(ix, rc, "listing chunks", err);
	sqlite3_bind_int64(st, 1, pack);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)lo);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)hi);
	return chunk_rows(ix, st, fn, arg, err);
}

int index_chunk_each_type(struct index *ix, int type, index_chunk_fn fn,
			  void *arg, struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(ix->db,
				"SELECT id, pack, offset, stored_size, "
				"raw_size, type, comp FROM chunks "
				"WHERE type = ?1",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_err(ix, rc, "listing chunks", err);
	sqlite3_bind_int(st, 1, type);
	return chunk_rows(ix, st, fn, arg, err);
}

int index_snapshot_has(struct index *ix, const uint8_t id[MV_ID_LEN],
		       struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(ix->db, "SELECT 1 FROM snapshots WHERE id = ?1",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_err(ix, rc, "snapshot lookup", err);
	sqlite3_bind_blob(st, 1, id, MV_ID_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = 1;
	else if (rc == SQLITE_DONE)
		rc = 0;
	else
		rc = db_err(ix, rc, "snapshot lookup", err);
	sqlite3_finalize(st);
	return rc;
}

int index_quick_check(struct index *ix, struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	const char *res;
	int rc;

	rc = sqlite3_prepare_v2(ix->db, "PRAGMA quick_check(1)", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_err(ix, rc, "integrity check", err);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = db_err(ix, rc, "integrity check", err);
	} else {
		res = (const char *)sqlite3_column_text(st, 0);
		rc = res && !strcmp(res, "ok")
			     ? 0
			     : mv_err_set(err, -EBADMSG, "index is corrupt: %s",
					  res ? res : "?");
	}
	sqlite3_finalize(st);
	return rc;
}

int index_meta_set(struct index *ix, const char *key, const char *value,
		   struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(ix->db,
				"INSERT OR REPLACE INTO meta(key, "
				"value) VALUES (?1, ?2)",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_err(ix, rc, "meta", err);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : db_err(ix, rc, "meta", err);
	sqlite3_finalize(st);
	return rc;
}

int index_meta_get(struct index *ix, const char *key, char *out, size_t n,
		   struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(ix->db, "SELECT value FROM meta WHERE key = ?1",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_err(ix, rc, "meta", err);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(out, n, "%s",
			 (const char *)sqlite3_column_text(st, 0));
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? -ENOENT : db_err(ix, rc, "meta", err);
	}
	sqlite3_finalize(st);
	return rc;
}
