/*
 * index: the repository's SQLite index (index.db).  Maps chunk ids to
 * pack locations and lists packs and snapshots.  Everything in it can be
 * rebuilt from the packs (rebuild-index).
 *
 * SQLite use, as its authors recommend: WAL on local disks with
 * synchronous=FULL (a backup reported as done survives power loss; the
 * cost is one fsync per commit), a busy timeout, prepared statements kept
 * for the life of the handle and reset after each use.  On NFS/SMB, where
 * WAL's shared memory does not work, the rollback journal is used instead
 * (journal_mode=DELETE) and the repository lock keeps writers apart.
 *
 * A handle is used by one thread at a time; callers serialise (repo.c
 * holds a mutex around every call).
 */
#ifndef MV_INDEX_H
#define MV_INDEX_H

#include <stdbool.h>
#include <stdint.h>

#include "mv_err.h"
#include "repo.h"

struct index;
struct sqlite3;

#define INDEX_SCHEMA_VERSION 1

/* Open-time settings for a SQLite file that may come from others' hands
 * (index.db, catalog.db on a share or a server): defensive mode,
 * trusted_schema=OFF, cell_size_check=ON.  Call right after opening,
 * before the schema is first read.  what names the file in messages. */
int index_sqlite_defend(struct sqlite3 *db, const char *what,
			struct mv_err *err);

/* Open (create when create) the index at path.  network_fs: use the
 * rollback journal instead of WAL. */
int index_open(const char *path, bool create, bool network_fs, bool readonly,
	       struct index **out, struct mv_err *err);
void index_close(struct index *ix);
struct sqlite3 *index_db(struct index *ix);

int index_begin(struct index *ix, struct mv_err *err);
/* What the open transaction changed, for its commit segment
 * (docs/FORMAT-2.md 5.3).  Pack rows above *out_pack and snapshot rows
 * above *out_snap were added by it (row ids only grow inside one). */
void index_txn_marks(const struct index *ix, int64_t *out_pack,
		     int64_t *out_snap);
/* True when it dropped packs or moved or removed chunk rows (prune,
 * repair): only a base segment, the whole index, describes that. */
bool index_txn_needs_base(const struct index *ix);
/* The snapshots it deleted (index_snapshot_delete), *out_n of them;
 * valid until the next call into ix. */
const uint8_t (*index_txn_gone(const struct index *ix,
			       size_t *out_n))[MV_ID_LEN];
int index_commit(struct index *ix, struct mv_err *err);
/* After index_commit() failed: true when the commit may have been made
 * durable all the same (a failed sync; SQLite replays a WAL or keeps a
 * database that holds it), false when it surely did not happen (busy,
 * disk full, a failed write: the commit record is not there whole). */
bool index_commit_unknown(const struct index *ix);
void index_rollback(struct index *ix);

int index_chunk_find(struct index *ix, const uint8_t id[MV_ID_LEN],
		     struct chunk_loc *out, struct mv_err *err);
int index_chunk_add(struct index *ix, const uint8_t id[MV_ID_LEN],
		    const struct chunk_loc *loc, struct mv_err *err);

/* Add a pack row; *out_id is its row id. */
int index_pack_add(struct index *ix, const char *name, int kind,
		   int64_t *out_id, struct mv_err *err);
int index_pack_update(struct index *ix, int64_t id, uint64_t size,
		      uint32_t records, struct mv_err *err);
/* Name of pack row id into out (PACK_NAME_LEN + 1 bytes). */
int index_pack_name(struct index *ix, int64_t id, char *out, size_t n,
		    struct mv_err *err);

/* Snapshots: the encoded record is the truth; name/time are copies for
 * ordering. */
int index_snapshot_add(struct index *ix, const uint8_t id[MV_ID_LEN],
		       const char *name, int64_t time_ns, bool partial,
		       const void *record, size_t len, struct mv_err *err);
typedef int (*index_snapshot_fn)(int64_t row, const void *record, size_t len,
				 void *arg);
int index_snapshot_each(struct index *ix, index_snapshot_fn fn, void *arg,
			struct mv_err *err);
int index_snapshot_delete(struct index *ix, const uint8_t id[MV_ID_LEN],
			  struct mv_err *err);

/* Every pack row. */
typedef int (*index_pack_fn)(int64_t id, const char *name, int kind,
			     uint64_t size, uint32_t records, void *arg);
int index_pack_each(struct index *ix, index_pack_fn fn, void *arg,
		    struct mv_err *err);

typedef int (*index_chunk_fn)(const uint8_t id[MV_ID_LEN],
			      const struct chunk_loc *loc, void *arg);
int index_chunk_each(struct index *ix, index_chunk_fn fn, void *arg,
		     struct mv_err *err);

/* zstd dictionaries: dict_id -> chunk id of the REC_DICT record. */
int index_dict_add(struct index *ix, uint32_t dict_id,
		   const uint8_t chunk[MV_ID_LEN], struct mv_err *err);
/* -ENOENT when unknown.  dict_id 0: the newest dictionary. */
int index_dict_find(struct index *ix, uint32_t dict_id, uint32_t *out_id,
		    uint8_t out_chunk[MV_ID_LEN], struct mv_err *err);

/* Changes whenever another connection commits (PRAGMA data_version). */
int index_data_version(struct index *ix, int64_t *out, struct mv_err *err);

/* Flush the WAL into the main file (before uploading a copy). */
int index_checkpoint(struct index *ix, struct mv_err *err);

/* Totals over chunks: count, raw and stored bytes, by record type. */
struct index_totals {
	uint64_t chunks, raw, stored; /* all records */
	uint64_t packs, pack_bytes;   /* pack files */
};
int index_totals(struct index *ix, struct index_totals *out,
		 struct mv_err *err);

/* ---- lifecycle: prune, rebuild-index, repair (src/lifecycle/) -------- */

/* Statements prepared once for many chunk changes inside a transaction. */
struct index_batch;
int index_batch_new(struct index *ix, struct index_batch **out,
		    struct mv_err *err);
void index_batch_free(struct index_batch *b);
/* Point chunk id at loc. */
int index_batch_move(struct index_batch *b, const uint8_t id[MV_ID_LEN],
		     const struct chunk_loc *loc, struct mv_err *err);
/* Remove the row of chunk id. */
int index_batch_drop(struct index_batch *b, const uint8_t id[MV_ID_LEN],
		     struct mv_err *err);

/* Remove a pack row and the rows of every chunk it holds. */
int index_pack_delete(struct index *ix, int64_t id, struct mv_err *err);
/* The chunks of one pack, by offset. */
int index_pack_chunks(struct index *ix, int64_t pack, index_chunk_fn fn,
		      void *arg, struct mv_err *err);
/* The same for the chunks whose records start in [lo, hi) of the pack. */
int index_pack_range_chunks(struct index *ix, int64_t pack, uint64_t lo,
			    uint64_t hi, index_chunk_fn fn, void *arg,
			    struct mv_err *err);
/* The chunks of one record type (enum rec_type). */
int index_chunk_each_type(struct index *ix, int type, index_chunk_fn fn,
			  void *arg, struct mv_err *err);
/* 1 when a snapshot with this id is listed, 0 when not, or an error. */
int index_snapshot_has(struct index *ix, const uint8_t id[MV_ID_LEN],
		       struct mv_err *err);
/* PRAGMA quick_check: 0, or -EBADMSG with SQLite's first complaint. */
int index_quick_check(struct index *ix, struct mv_err *err);

/* Key/value notes kept in the index (prune's last figures for stats).
 * index_meta_get: -ENOENT when the key is absent. */
int index_meta_set(struct index *ix, const char *key, const char *value,
		   struct mv_err *err);
int index_meta_get(struct index *ix, const char *key, char *out, size_t n,
		   struct mv_err *err);

#endif
