/*
 * lifecycle: giving space back and recovering from damage - prune,
 * tombstones of forgotten snapshots, rebuild-index and check --repair.
 * docs/LIFECYCLE.md describes the commands and the crash-safety argument.
 *
 * Every function here needs the writer lock (repo opened with
 * REPO_OPEN_WRITE, or repo_open_bare() with it for rebuild-index) and
 * runs on one thread.  Progress and findings go to the report callback;
 * only errors that stop the work come back in err.
 */
#ifndef MV_LIFECYCLE_H
#define MV_LIFECYCLE_H

#include <stdbool.h>
#include <stdint.h>

#include "mv_err.h"
#include "repo.h"

/* kind: "info", "warning" or "error". */
typedef void (*lifecycle_report_fn)(const char *kind, const char *msg,
				    void *arg);

#define PRUNE_MAX_UNUSED_DEFAULT 2.0 /* percent (restic: 5) */
/* Seconds an unindexed pack or temporary file is left alone: a backup
 * whose lock was broken may still be writing it (restic and borg keep
 * such files too).  $MAILVAULT_PRUNE_GRACE or --orphan-grace change it. */
#define PRUNE_ORPHAN_GRACE_DEFAULT 3600

struct prune_opts {
	bool dry_run;	      /* decide and report, change nothing */
	double max_unused;    /* unused bytes allowed, percent of the live
			       * bytes; < 0: unlimited (only wholly unused
			       * packs are deleted) */
	int64_t orphan_grace; /* seconds: orphans modified less long ago
			       * than this stay (0: none stay) */
};

struct prune_result {
	uint64_t packs, pack_bytes;	   /* indexed, before */
	uint64_t live_bytes, unused_bytes; /* before, in indexed packs */
	uint64_t snapshots, live_chunks;   /* what the mark phase found */
	uint64_t missing_chunks;	   /* referenced, not indexed */
	uint64_t lost_dirs; /* directories known lost (check --repair) */
	uint64_t deleted_packs, deleted_bytes;	 /* wholly unused packs */
	uint64_t repacked_packs, repacked_bytes; /* packs rewritten */
	uint64_t moved_records, moved_bytes;	 /* copied to new packs */
	uint64_t dropped_records;		 /* index rows removed */
	uint64_t orphans, orphan_bytes;		 /* files not in the index */
	uint64_t young_orphans; /* left alone: within the grace period */
	uint64_t tombstoned;	/* forgotten snapshots recorded */
	uint64_t after_bytes, after_unused; /* after (planned in a dry run) */
};

/* Mark what the listed snapshots reach (include/refs.h), then delete
 * wholly unused packs, repack packs until the unused bytes are within
 * max_unused, delete orphan packs and leftover temporary files older than
 * orphan_grace.  Refuses (-EPERM) on an append-only repository and (-EIO,
 * "run mailvault check") when an indexed pack is missing or truncated or a
 * tree cannot be read, unless check --repair recorded its loss. */
int lifecycle_prune(struct repo *r, const struct prune_opts *o,
		    lifecycle_report_fn fn, void *arg, struct prune_result *out,
		    struct mv_err *err);

/* Write a tombstone naming every snapshot record the index holds but no
 * longer lists (forgotten snapshots), unless one names it already, so
 * that rebuild-index leaves them forgotten.  *out_n: ids written.  forget
 * calls this after removing snapshots; prune does it as well. */
int lifecycle_tombstone_forgotten(struct repo *r, uint64_t *out_n,
				  struct mv_err *err);

struct rebuild_result {
	uint64_t packs, records; /* sealed packs indexed, their records */
	uint64_t snapshots;	 /* snapshots listed */
	uint64_t forgotten;	 /* snapshot records a tombstone names */
	uint64_t untrusted;	 /* packs not sealed or damaged */
	uint64_t leftovers;	 /* temporary and foreign files */
};

/* Build a new index from the packs alone in "<index>.rebuild" and rename
 * it over index.db.  r comes from repo_open_bare() or repo_open(), with
 * the writer lock. */
int lifecycle_rebuild_index(struct repo *r, lifecycle_report_fn fn, void *arg,
			    struct rebuild_result *out, struct mv_err *err);

struct repair_result {
	bool index_rebuilt;	  /* the index was corrupt and was rebuilt */
	uint64_t packs_missing;	  /* indexed packs that are gone */
	uint64_t packs_damaged;	  /* packs with bad or missing records */
	uint64_t records_dropped; /* index rows of unreadable records */
	uint64_t records_adopted; /* recovered from unindexed packs */
};

/* Make the index agree with the packs: drop the rows of records that are
 * missing or damaged (reads of them then fail with EIO instead of giving
 * wrong bytes), recover records that survive in unindexed sealed packs,
 * and keep every snapshot.  Refuses on append-only repositories.  The
 * caller runs check_repo() afterwards to name the affected files. */
int lifecycle_repair(struct repo *r, lifecycle_report_fn fn, void *arg,
		     struct repair_result *out, struct mv_err *err);

/* Tombstone payload: "MVTOMB\0\1" le32 count le32 0, then count ids. */
#define TOMBSTONE_MAGIC "MVTOMB\0\1"
#define TOMBSTONE_HDR_LEN 16

#endif
