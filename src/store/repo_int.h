/*
 * repo_int.h: what the repo_*.c files share and nothing else includes -
 * the repository and write-session structs and the functions that cross
 * between repo.c (open/init/close, config), repo_lock.c (the writer
 * lock), repo_remote_index.c (the cached index of sftp:// repositories),
 * repo_record.c (reading, dictionaries, compression) and repo_writer.c
 * (the write session and its commit).
 */
#ifndef MV_REPO_INT_H
#define MV_REPO_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <zstd.h>

#include "crypt.h"
#include "pack.h"
#include "repo.h"

#define CONFIG_MAX 8192
#define CTX_POOL_MAX 16
#define DATA_PACK_TARGET (32u << 20)
#define META_PACK_TARGET (8u << 20)
#define DEFAULT_ZSTD_LEVEL 3
#define DICT_MAX_CHUNK                                        \
	(128u << 10) /* chunks above this skip the dictionary \
		      */
/* Records up to SMALL_RECORD_MAX (a text message, a piece of a Dovecot
 * index file) are compressed at SMALL_RECORD_LEVEL at least: they are most
 * of what a mail repository adds each day and cost little CPU each, where
 * larger chunks (attachments) gain little from it (docs/CHUNKING.md,
 * "Compression level of small records"). */
#define SMALL_RECORD_MAX (16u << 10)
#define SMALL_RECORD_LEVEL 9

/* A zstd dictionary, loaded once and kept for the life of the repo. */
struct repo_dict {
	struct repo_dict *next;
	uint32_t dict_id;	 /* zstd's id, recorded in record headers */
	ZSTD_CDict *cdict;	 /* for compressing, NULL until needed */
	ZSTD_CDict *cdict_small; /* at repo_small_level(); cdict when equal */
	ZSTD_DDict *ddict;	 /* for decompressing */
};

struct ctx_pool {
	pthread_mutex_t lock;
	void *items[CTX_POOL_MAX]; /* idle contexts */
	int n;
};

struct seg_list; /* repo_segment.c */

struct repo {
	struct backend *be;	 /* where the files live */
	char *location;		 /* as the user gave it */
	struct repo_config cfg;	 /* parsed config */
	struct hasher *hasher;	 /* keyed chunk ids */
	struct index *ix;	 /* index.db, under ix_lock */
	pthread_mutex_t ix_lock; /* serialises every index call */
	char *index_path;	 /* local path of the index file */
	char *stamp_path;	 /* remote: cache stamp file */
	char stamp_seen[64];	 /* remote: stamp of the open index */
	char *pending_path;	 /* remote: packs sealed, not committed */
	bool remote;		 /* index is a cached copy */
	bool locked;		 /* we hold a writer lock */
	bool lock_shared;	 /* ... a shared one (locks/NAME) */
	char lock_path[48];	 /* "lock" or "locks/NAME" */
	int cache_lock_fd;	 /* shared: flock on the cache's writer.lock */
	bool commit_unknown;	 /* the last commit failed, outcome unknown */
	int lock_fd;		 /* local: flock held on our lock file */
	char lock_token[33];	 /* the random token in our lock file */
	int64_t data_version;	 /* last seen index data version */
	int64_t opened_ns;	 /* CLOCK_MONOTONIC when validated by open */
	char (*pack_names)[PACK_NAME_LEN + 1]; /* cache by pack row id */
	int64_t npack_names;
	struct ctx_pool cctx, dctx;
	struct repo_writer *writer;	 /* the open session, if any */
	struct diskcache *dcache;	 /* remote: records already fetched */
	struct diskcache *dcache_parked; /* dcache while bypassed */
	pthread_mutex_t dict_lock;	 /* guards dicts and active */
	struct repo_dict *dicts;	 /* loaded dictionaries */
	struct repo_dict *active;	 /* used to compress small chunks */
	bool dict_probed;		 /* looked for a dictionary already */
	/* Format 2 (docs/FORMAT-2.md, sections 4 and 5): the pack format new
	 * packs are written in (1: clear record headers, 2: sealed records,
	 * tables and trailers) and the keys records are sealed with - the
	 * CRYPT_NONE suite when encryption = none.  Set by repo_open and
	 * repo_init; NULL keys in a repository whose packs are format 1. */
	int pack_format;	    /* 1 or 2 */
	struct crypt_key *key_data; /* content records */
	struct crypt_key *key_meta; /* trees, snapshots, dictionaries,
				       tables, trailers, the sealed index */
	uint32_t key_epoch;	    /* epoch of new records (0 for now) */
	uint8_t *mk;		    /* encrypted: master key (sodium_malloc) */
	char slot_name[33];	    /* the key slot that opened it */
	/* Commit segments (repo_segment.c): the index is stored as
	 * index/NAME objects and replayed into the cached index.db. */
	bool segments;	    /* this repository's index is segments */
	bool seg_legacy;    /* read from index.sealed until the first write */
	bool seg_maybe_out; /* the last publication may have landed */
	bool seg_tmp_seen;  /* index/ lists temporary files (NAME.tmp*) */
	struct seg_list *seg_kept; /* repo_segment_count(keep) */
	/* repo_remote_index_check_ahead(): the server's index generation,
	 * read before the packs' commit, for the publication that follows */
	bool pub_gen_known;
	uint32_t pub_gen;
};

struct repo_writer {
	struct repo *r;
	struct pack_writer *pw[2]; /* [0] data, [1] meta */
	int64_t pack_id[2];	   /* index rows of the open packs */
	uint64_t stored;	   /* bytes written this session */
	struct mv_buf cbuf;	   /* compression scratch */
	struct mv_buf sbuf;	   /* format 2: the record being sealed */
	char **sealed;		   /* names of packs sealed this session */
	size_t nsealed;
	bool keep_packs; /* a failed commit may name them: never delete */
	/* the commit holds the metadata pack open past its target size:
	 * it is sealed after the data pack (invariant 2) */
	bool hold_meta;
};

/* repo.c */
int repo_random_bytes(void *p, size_t n, struct mv_err *err);
bool repo_is_network_fs(const char *path);

/* repo_record.c: zstd contexts pooled per repository */
void *repo_pool_get(struct ctx_pool *p);
/* Returns false when the pool is full and the caller must free c. */
bool repo_pool_put(struct ctx_pool *p, void *c);
int repo_small_level(const struct repo *r);
struct repo_dict *repo_dict_make(struct repo *r, const void *p, size_t n,
				 bool for_compress);
void repo_dict_free(struct repo_dict *d);

/* repo_lock.c */
/* The exclusive lock, or (shared) a shared one: see repo_lock.c. */
int repo_lock_take(struct repo *r, bool wait, bool shared, struct mv_err *err);
void repo_lock_release(struct repo *r);
/* True while r holds a shared lock (other writers may be writing). */
bool repo_lock_is_shared(const struct repo *r);

/* repo_remote_index.c */
/* The repository holds its index sealed (index.sealed, never index.db):
 * key_meta is an XChaCha20 key. */
bool repo_index_is_sealed(const struct repo *r);
/* The working index.db is a copy in the private cache, fetched from and
 * published to the repository: sftp:// repositories and encrypted ones,
 * local ones too (a local repository is often a NAS mount). */
bool repo_index_is_cached(const struct repo *r);
int repo_cache_dir(const struct repo_config *c, char *out, size_t n,
		   struct mv_err *err);
void repo_stamp_remember(struct repo *r);
int repo_remote_index_fetch(struct repo *r, struct mv_err *err);
int repo_remote_index_publish(struct repo *r, struct mv_err *err);
/* Read the server's index generation now, for the next publish: done
 * while a pack's upload is finishing, it costs no round trip of its own
 * (a failure is left to the publish to meet). */
void repo_remote_index_check_ahead(struct repo *r);

/* repo_segment.c: commit segments (docs/FORMAT-2.md 5.3) */
/* Encrypted repositories keep their index as commit segments. */
bool repo_uses_segments(const struct repo *r);
/* Add the cache's table of replayed segments to r->ix if missing. */
int repo_segment_schema(struct repo *r, struct mv_err *err);
/* Segments listed under index/ (one request).  keep: the listing is kept
 * for the next repo_segment_sync(), which then sends no request of its
 * own (repo_open: one listing validates the cache, not two); drop it
 * with repo_segment_unkeep() when no sync follows at once. */
int repo_segment_count(struct repo *r, size_t *out, bool keep,
		       struct mv_err *err);
void repo_segment_unkeep(struct repo *r);
/* List index/, fetch the segments r->ix has not replayed and replay
 * them in one transaction (r->ix open, no transaction, ix_lock held or
 * not yet shared).  -ESTALE (damaged) when a segment this cache replayed
 * is gone; -EAGAIN when one went away while it was read (run again). */
int repo_segment_sync(struct repo *r, bool *out_changed, struct mv_err *err);
/* Publish what the open transaction of r->ix changed as a new segment
 * (a base when force_base or when it dropped packs), recorded in the
 * transaction; *out_bytes (may be NULL) its size.  The caller commits.
 * r->seg_maybe_out tells, on failure, whether it may be in place. */
int repo_segment_publish(struct repo *r, bool force_base, uint64_t *out_bytes,
			 struct mv_err *err);

#endif
