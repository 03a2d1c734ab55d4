/*
 * repo: a mailvault repository - its config, its SQLite index, its packs -
 * and the two ways in: reading chunks (any number of threads) and one write
 * session at a time.
 *
 * Layout (see man/mailvault-format.5):
 *   config            text, key = value: version, id, chunker, secret, flags
 *   index.db          SQLite: packs, chunks, snapshots (rebuildable);
 *                     encrypted: index/NAME commit segments instead, and
 *                     index.db in the private cache
 *   packs/XX/NAME     pack files of self-describing records
 *   lock              present while a writer holds the repository
 *
 * DESIGN NOTES - crash safety (tests in tests/integration/t4*):
 *  (1) A record is reachable only through the index; the index names only
 *      records in sealed packs (footer written, fsynced, renamed into place).
 *  (2) repo_writer_commit() seals and syncs every pack of the session,
 *      syncs packs/ (a packs/XX made by the session is an entry there),
 *      then commits one SQLite transaction that adds the chunks and the
 *      snapshot.  An encrypted repository first publishes, from inside
 *      that transaction, one commit segment index/NAME naming what it
 *      adds (repo_segment.c, docs/FORMAT-2.md 5.3): the segment is the
 *      commit, the cached index.db a replay of the segments.
 *  (3) Before (2) commits, nothing a reader can see has changed: a crash
 *      leaves at most orphan packs, which check reports and prune removes.
 *  (4) Existing packs are never modified; prune writes new packs and commits
 *      the index that points at them before it deletes old ones.
 *  (5) A COMMIT that finds the index locked by a reader (SQLITE_BUSY, on
 *      network filesystems) is tried again for up to two minutes.  A
 *      COMMIT that fails otherwise (a sync error) has an unknown outcome:
 *      the index may name the session's packs, so they are kept and the
 *      error says so; prune removes them if nothing refers to them.
 *      Only a failure before the COMMIT, whose outcome is known, deletes
 *      the session's packs (local repositories; remote ones keep them for
 *      the next session to adopt).
 */
#ifndef MV_REPO_H
#define MV_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mv_err.h"
#include "util.h"

#define MV_ID_LEN 32	  /* chunk ids: HMAC-SHA-256 */
#define MV_REPO_ID_LEN 16 /* repository id */
#define MV_SECRET_LEN 32  /* per-repository hashing secret */
/* 2: ptree directories (tree.h); version 1 repositories are still read */
#define MV_FORMAT_VERSION 2

struct repo;
struct backend;
struct keyslot_params;

/* Record types in packs. */
enum rec_type {
	REC_DATA = 1,	   /* file content chunk */
	REC_TREE = 2,	   /* chunk of a serialized directory */
	REC_SNAPSHOT = 3,  /* snapshot record (rebuild-index reads these) */
	REC_DICT = 4,	   /* zstd dictionary */
	REC_TOMBSTONE = 5, /* ids of forgotten snapshots (lifecycle.h) */
};

/* Chunker parameters, fixed when the repository is created. */
struct chunker_params {
	uint32_t min_size;   /* no cut before this many bytes */
	uint32_t avg_size;   /* expected chunk size, a power of two */
	uint32_t max_size;   /* forced cut */
	uint32_t small_file; /* files up to this size are one chunk */
};

enum repo_flags {
	REPO_APPEND_ONLY = (1 << 0), /* forget, prune, repair refuse */
};

struct repo_config {
	uint32_t version;	       /* MV_FORMAT_VERSION */
	uint8_t id[MV_REPO_ID_LEN];    /* random repository id */
	uint8_t secret[MV_SECRET_LEN]; /* HMAC key for chunk ids */
	struct chunker_params chunker; /* content-defined chunking */
	int zstd_level;		       /* compression level for new chunks */
	uint32_t flags;		       /* enum repo_flags */
	char encryption[24];	       /* "none" or REPO_ENCRYPTION */
	char key_mode[16];	       /* encrypted: "repokey" or "keyfile" */
	uint32_t packs;		       /* pack format of new packs: 1 or 2 */
};

/* The encryption of a format 2 repository (docs/FORMAT-2.md section 4). */
#define REPO_ENCRYPTION "xchacha20-poly1305"

struct repo_init_opts {
	const struct chunker_params *chunker; /* NULL: defaults */
	/* Chunker parameters and hashing secret of another repository, so
	 * both cut and name the same data alike (NULL: fresh ones). */
	const struct repo_config *copy_from;
	int zstd_level; /* 0: default */
	bool append_only;
	/* Encryption (docs/FORMAT-2.md section 4): a random master key
	 * wrapped by pass in a key slot, in keys/ or, with keyfile set, in
	 * that file (which must not exist).  false: encryption = none. */
	bool encrypt;
	const char *pass; /* the new passphrase, pass_len bytes */
	size_t pass_len;
	const char *keyfile;		  /* key = keyfile: the slot's file */
	const struct keyslot_params *kdf; /* NULL: keyslot_calibrate */
};

enum repo_open_flags {
	REPO_OPEN_READ = 0,
	REPO_OPEN_WRITE = (1 << 0), /* take the writer lock */
	REPO_OPEN_WAIT = (1 << 1),  /* wait for the lock instead of failing */
	/* repo_open_bare only: do not unlock an encrypted repository (key
	 * import into a repository whose slots are gone) */
	REPO_OPEN_NO_KEY = (1 << 2),
	/* with REPO_OPEN_WRITE: a shared lock when the repository's index
	 * is commit segments (backup: each writer appends its own packs
	 * and segment), else the exclusive one as without it */
	REPO_OPEN_SHARED = (1 << 3),
};

/*
 * Unlocking an encrypted repository.  repo_open asks get_pass (set once
 * per process with repo_set_unlock) for the passphrase, before it takes
 * the lock or writes anything; the text stays the caller's.  keyfile
 * names the slot of a key = keyfile repository (MAILVAULT_KEYFILE).  A
 * master key once opened is kept (locked memory) for the life of the
 * process, so opening the same repository again (the mount, after it
 * daemonizes) neither asks nor runs Argon2id again.  Errors: -ENOKEY (no
 * passphrase or no key file), -EKEYREJECTED (wrong passphrase).
 */
struct repo_unlock {
	int (*get_pass)(void *arg, const char *location, const char **pass,
			size_t *pass_len, struct mv_err *err);
	void *arg;
	const char *keyfile; /* NULL: none given */
};
void repo_set_unlock(const struct repo_unlock *u);
/* Wipe and free the master keys kept by the process. */
void repo_unlock_forget(void);
/* True once an open in this process failed with -ENOKEY or -EKEYREJECTED:
 * the command line exits MV_EXIT_BADKEY whatever the command made of it. */
bool repo_unlock_refused(void);

/* The writer locks (src/store/repo_lock.c has the rules): the exclusive
 * file 'lock', or with REPO_OPEN_SHARED on a repository whose index is
 * commit segments one shared object 'locks/NAME' per writer; each
 * created exclusively, holding host, pid, time, boot id and a random
 * token.  Shared writers run together; the exclusive one runs alone.
 * A writer removes only a lock with its own token.  A remote lock is
 * never broken automatically; a local one only when its holder is
 * provably dead (same host and boot id, pid gone, its flock free).
 * repo_open() of a locked repository fails with -EBUSY and a message
 * naming the holder. */
struct repo_lock_info {
	char host[256];	   /* hostname of the holder */
	long long pid;	   /* its process id there */
	long long time;	   /* when it took the lock (Unix seconds) */
	char boot[40];	   /* boot id of its machine, "" if not recorded */
	char token[40];	   /* random token of this lock */
	bool remote;	   /* the repository is remote (sftp://) */
	bool this_machine; /* same host and boot id as this process */
	bool alive;	   /* this_machine and the pid exists */
	bool gone;	   /* provably dead: local, this_machine, no pid */
	bool shared;	   /* a shared lock (locks/NAME), not 'lock' */
	char path[64];	   /* "lock" or "locks/NAME" in the repository */
};

/* Read the lock of the repository at location: 0, -ENOENT when there is
 * none, or an error. */
int repo_lock_inspect(const char *location, struct repo_lock_info *out,
		      struct mv_err *err);
/* Every lock of the repository at location, the exclusive one first,
 * into *out (malloc'd, *out_n entries; none: 0 and *out_n = 0). */
int repo_lock_list(const char *location, struct repo_lock_info **out,
		   size_t *out_n, struct mv_err *err);
/* Remove the lock seen by repo_lock_inspect() or repo_lock_list() if it
 * is still that lock (same token): -ESTALE when it changed, -EBUSY when a
 * local process still holds it. */
int repo_lock_break(const char *location, const struct repo_lock_info *seen,
		    struct mv_err *err);
/* "pid P on host 'H' since <UTC time> (N s ago)". */
void repo_lock_describe(const struct repo_lock_info *li, char *out, size_t n);

/* Defaults chosen by the bake-off in docs/CHUNKING.md. */
void repo_default_chunker(struct chunker_params *out);

/* Create a repository at location (path or sftp:// URL). */
int repo_init(const char *location, const struct repo_init_opts *opts,
	      struct mv_err *err);
/* Open a repository.  With REPO_OPEN_WRITE the writer lock is held until
 * repo_close(). */
int repo_open(const char *location, unsigned flags, struct repo **out,
	      struct mv_err *err);
void repo_close(struct repo *r);
/* A repository opened read-only stays open across a fork() (a mount
 * detaching): repo_before_fork() closes what a child cannot inherit (the
 * index's SQLite connection, whose locks are the parent's, and the
 * threads still writing fetched records), repo_after_fork() reopens the
 * index from the local copy in the child, with no request to the
 * repository: what the parent validated is still what the child sees. */
int repo_before_fork(struct repo *r, struct mv_err *err);
int repo_after_fork(struct repo *r, struct mv_err *err);

const struct repo_config *repo_get_config(const struct repo *r);
const char *repo_location(const struct repo *r);
struct backend *repo_backend(struct repo *r);
/* The master key of an encrypted repository (32 bytes, locked memory
 * owned by r) and the name of the key slot that opened it ("" for a key
 * file); NULL when the repository is not encrypted or not unlocked. */
const uint8_t *repo_master_key(const struct repo *r, const char **out_slot);

/* Keyed chunk id of data (HMAC-SHA-256 with the repository secret).
 * Thread-safe. */
void repo_chunk_id(struct repo *r, const void *data, size_t len,
		   uint8_t out[MV_ID_LEN]);

/* Where a record lives. */
struct chunk_loc {
	int64_t pack;	      /* pack row id */
	uint64_t offset;      /* of the record header in the pack */
	uint32_t stored_size; /* payload bytes in the pack */
	uint32_t raw_size;    /* bytes after decompression */
	uint8_t type;	      /* enum rec_type */
	uint8_t comp;	      /* enum pack_comp */
};

/* Look a chunk up in the committed index.  0, -ENOENT, or an error.
 * Thread-safe. */
int repo_chunk_find(struct repo *r, const uint8_t id[MV_ID_LEN],
		    struct chunk_loc *out, struct mv_err *err);

/* Read, verify (checksum and, when verify_id, the keyed id) and
 * decompress a chunk into out (replacing its contents).  A damaged record
 * is -EIO with a message naming pack and offset.  Thread-safe. */
int repo_chunk_read(struct repo *r, const uint8_t id[MV_ID_LEN], bool verify_id,
		    struct mv_buf *out, struct mv_err *err);

/* While on, chunk reads go to the backend and never to (nor into) the
 * on-disk record cache of a remote repository, so that `check
 * --read-data` verifies what the server holds, not a copy fetched
 * earlier.  Returns the previous setting.  Not while other threads
 * read. */
bool repo_record_cache_bypass(struct repo *r, bool on);

/* repo_chunk_read() of n chunks, out[i] replaced by chunk ids[i]: the
 * records that lie close together in one pack (a directory's nodes, as
 * a backup writes them) come with one backend read, so a listing over
 * sftp costs a round trip per pack range, not per record.  A record
 * that fails in the batch is read again alone (and named in the error).
 * Thread-safe. */
int repo_chunk_read_many(struct repo *r, const uint8_t (*ids)[MV_ID_LEN],
			 size_t n, bool verify_id, struct mv_buf *out,
			 struct mv_err *err);
/* Fetch the records of n chunks of a remote repository, and the other
 * records of the pack spans read for them (gaps up to about a round
 * trip's worth of transfer are read through), into memory beside its
 * record cache (diskcache_hold): for a reader that will ask for each of
 * them soon, once.  Failures are misses.  -ENOTSUP without a record
 * cache. */
int repo_chunk_prefetch(struct repo *r, const uint8_t (*ids)[MV_ID_LEN],
			size_t n);

/* Check and decompress a record of chunk id and type (chunk_loc.type)
 * that the caller fetched itself (rec: repo_record_span bytes from
 * chunk_loc.offset, as a read-ahead of a pack range does).  Same checks
 * as repo_chunk_read.  Thread-safe. */
int repo_record_decode(struct repo *r, const uint8_t id[MV_ID_LEN], int type,
		       const void *rec, size_t len, bool verify_id,
		       struct mv_buf *out, struct mv_err *err);
/* Bytes a record takes in its pack: format 1's header and payload, or
 * format 2's sealed record (stored_size). */
size_t repo_record_span(const struct repo *r, const struct chunk_loc *loc);
/* The format of the repository's packs: 1 or 2 (include/pack.h). */
int repo_pack_format(const struct repo *r);
/* Check a stored record (repo_record_span bytes) of chunk id at loc
 * without decompressing it: format 1's checksums, format 2's tag.  -EIO
 * naming the record. */
int repo_record_verify(struct repo *r, const uint8_t id[MV_ID_LEN],
		       const struct chunk_loc *loc, const void *buf, size_t len,
		       struct mv_err *err);
struct seal_table;
/* Read and check the table of format 2 pack `name` (pack_table_read with
 * the repository's metadata key).  -EINVAL for format 1. */
int repo_pack_table(struct repo *r, const char *name, struct seal_table *out,
		    uint64_t *out_size, struct mv_err *err);

/* The pack file name (relative path) of a pack row id, for messages and
 * for read-ahead.  Writes at most n bytes. */
int repo_pack_path(struct repo *r, int64_t pack, char *out, size_t n,
		   struct mv_err *err);

/* Generation counter of the index: changes whenever a writer commits.
 * Cheap; the mount polls it to notice new snapshots. */
int repo_refresh(struct repo *r, bool *out_changed, struct mv_err *err);

/* ---- writing ---------------------------------------------------------- */

struct repo_writer;

/* Start a write session (the repository must be open for writing). */
int repo_writer_begin(struct repo *r, struct repo_writer **out,
		      struct mv_err *err);

/* True when the chunk is stored already, committed or in this session.
 * Must be called from the thread that owns the writer. */
bool repo_writer_has(struct repo_writer *w, const uint8_t id[MV_ID_LEN]);

/* Store a record unless its id is already stored.  comp/comp_len: an
 * already-compressed payload (zstd frame) or NULL to let the writer decide.
 * *out_new tells whether bytes were written.  Records are appended in call
 * order, so the stored result is deterministic. */
int repo_writer_put(struct repo_writer *w, enum rec_type type,
		    const uint8_t id[MV_ID_LEN], const void *raw,
		    size_t raw_len, const void *comp, size_t comp_len,
		    bool *out_new, struct mv_err *err);

/* Bytes written to packs in this session so far (payload + headers). */
uint64_t repo_writer_stored_bytes(const struct repo_writer *w);

struct snapshot;

/* Seal and sync all packs, then publish the snapshot (and the chunks) in
 * one index transaction.  snap->id is filled in.  The writer is freed. */
int repo_writer_commit(struct repo_writer *w, struct snapshot *snap,
		       struct mv_err *err);
/* Drop the session: nothing becomes visible.  Frees the writer. */
void repo_writer_abort(struct repo_writer *w);
/* True when the last repo_writer_commit()/finish() failed with an unknown
 * outcome (design note 5): the snapshot may be in the index after all. */
bool repo_commit_outcome_unknown(const struct repo *r);

/* How a payload was compressed (enum pack_comp and its dictionary). */
struct repo_comp {
	uint8_t kind;	  /* enum pack_comp: NONE, ZSTD or ZSTD_DICT */
	uint32_t dict_id; /* for ZSTD_DICT */
};

/* Compress raw with the repository's settings into out: at its level, or
 * at level 9 at least up to 16 KiB.  Chunks up to 128 KiB use the
 * repository's trained dictionary when it has one.  out_comp->kind
 * is PACK_COMP_NONE when compression does not pay.  Thread-safe (contexts
 * come from a pool). */
int repo_compress(struct repo *r, const void *raw, size_t len,
		  struct mv_buf *out, struct repo_comp *out_comp,
		  struct mv_err *err);

/* repo_writer_put for a payload compressed by repo_compress(). */
int repo_writer_put_comp(struct repo_writer *w, enum rec_type type,
			 const uint8_t id[MV_ID_LEN], const void *raw,
			 size_t raw_len, const void *comp, size_t comp_len,
			 const struct repo_comp *how, bool *out_new,
			 struct mv_err *err);

/* Seal a record as repo_writer_put_comp() would, on any thread, so that
 * ingest workers encrypt in parallel (raw when how is NULL or says none).
 * out is left empty when the repository does not seal records (format
 * 1); the writer then frames the record itself. */
int repo_seal(struct repo *r, enum rec_type type, const uint8_t id[MV_ID_LEN],
	      const void *raw, size_t raw_len, const void *comp,
	      size_t comp_len, const struct repo_comp *how, struct mv_buf *out,
	      struct mv_err *err);
/* repo_writer_put_comp() of a record repo_seal() sealed (non-empty). */
int repo_writer_put_sealed(struct repo_writer *w, enum rec_type type,
			   const uint8_t id[MV_ID_LEN], size_t raw_len,
			   const struct repo_comp *how,
			   const struct mv_buf *sealed, bool *out_new,
			   struct mv_err *err);

/* True when the repository has a zstd dictionary for small chunks. */
bool repo_has_dictionary(struct repo *r);
/* Store a trained dictionary in this session and use it for every later
 * compression of small chunks.  Readers find it by its zstd dictionary
 * id (recorded in each record header). */
int repo_writer_set_dictionary(struct repo_writer *w, const void *dict,
			       size_t len, struct mv_err *err);

/* Call fn for every snapshot record in the index, ordered by name and
 * time (row: index row id).  Thread-safe; fn must not call back into the
 * index. */
typedef int (*repo_snapshot_fn)(int64_t row, const void *record, size_t len,
				void *arg);
int repo_snapshot_each(struct repo *r, repo_snapshot_fn fn, void *arg,
		       struct mv_err *err);
/* Remove a snapshot from the index (its record stays in its pack until
 * prune).  Needs the writer lock; refused for append-only repositories. */
int repo_snapshot_delete(struct repo *r, const uint8_t id[MV_ID_LEN],
			 struct mv_err *err);

/* Every pack listed in the index (name: PACK_NAME_LEN hex digits). */
typedef int (*repo_pack_fn)(int64_t id, const char *name, int kind,
			    uint64_t size, uint32_t records, void *arg);
int repo_pack_each(struct repo *r, repo_pack_fn fn, void *arg,
		   struct mv_err *err);

/* Every chunk in the index, ordered by pack and offset. */
typedef int (*repo_chunk_fn)(const uint8_t id[MV_ID_LEN],
			     const struct chunk_loc *loc, void *arg);
int repo_chunk_each(struct repo *r, repo_chunk_fn fn, void *arg,
		    struct mv_err *err);

/* Totals of the index for stats. */
struct repo_totals {
	uint64_t chunks;     /* distinct records */
	uint64_t raw;	     /* their bytes before compression */
	uint64_t stored;     /* their payload bytes in packs */
	uint64_t packs;	     /* pack files */
	uint64_t pack_bytes; /* bytes of all pack files */
};
int repo_totals(struct repo *r, struct repo_totals *out, struct mv_err *err);

/* The SQLite handle of the index, for modules that keep their own tables
 * (mail catalogue).  Owned by the repository; single-threaded use. */
struct sqlite3 *repo_db(struct repo *r);

/* ---- lifecycle: prune, rebuild-index, repair (src/lifecycle/) -------- */

/* Record type of a tombstone: the ids of forgotten snapshots, so that
 * rebuild-index does not bring them back (docs/LIFECYCLE.md). */

struct index;
struct pack_rec;

/* The index handle, for the lifecycle commands (one thread; the caller
 * holds the writer lock).  NULL after repo_open_bare(). */
struct index *repo_index(struct repo *r);
/* Local path of index.db (the cached copy for remote repositories). */
const char *repo_index_path(const struct repo *r);

/* Append a stored record of chunk id at `from` (repo_record_span bytes,
 * checked by the caller) as it is - no recompression, a format 2 record
 * not even re-sealed - to the session's packs; *out is its new location.
 * The chunks table is not touched: the caller points the chunk at out
 * inside the session's transaction. */
int repo_writer_copy(struct repo_writer *w, const uint8_t id[MV_ID_LEN],
		     const struct chunk_loc *from, const void *stored,
		     struct chunk_loc *out, struct mv_err *err);
/* Seal and sync the session's packs, then commit its index transaction
 * (no snapshot).  The writer is freed, also on failure (then aborted). */
int repo_writer_finish(struct repo_writer *w, struct mv_err *err);

/* Open config and lock (flags as repo_open) but not the index: for
 * rebuild-index and for repairing an index that cannot be opened. */
int repo_open_bare(const char *location, unsigned flags, struct repo **out,
		   struct mv_err *err);
/* Read and open every commit segment of an encrypted repository
 * (docs/FORMAT-2.md 5.3), not only those the cache has not replayed:
 * fn gets the name and the message of each that does not open.  *out_n
 * segments were read, *out_bad did not open.  0 with nothing read for a
 * repository without segments; an error only when reading failed. */
typedef void (*repo_segment_bad_fn)(const char *name, const char *msg,
				    void *arg);
int repo_segments_verify(struct repo *r, repo_segment_bad_fn fn, void *arg,
			 size_t *out_n, size_t *out_bad, struct mv_err *err);
/* Replace index.db by the complete index file built (renamed into place
 * after the old WAL is checkpointed or removed) and open it. */
int repo_index_install(struct repo *r, const char *built, struct mv_err *err);

/* Turn flags (enum repo_flags) on or off in the config file (written
 * atomically).  Needs the writer lock. */
int repo_config_set_flags(struct repo *r, uint32_t set, uint32_t clear,
			  struct mv_err *err);

#endif
