/*
 * catseg: the mail catalogue stored in the repository as catalogue
 * segments (docs/FORMAT-2.md section 3, docs/MAIL.md "The catalogue in
 * the repository").
 *
 * catalog.db stays the local, queryable form (mail_catalog.h) in the
 * private cache; the repository holds, under catalog/, one segment per
 * backup that recorded mail: what that backup added to the catalogue
 * (new messages' rows, places opened, places closed).  A base segment
 * holds a whole catalogue (the first segment of a repository, and what
 * prune writes for the kept snapshots in place of the segments before
 * it).  Each object is zstd-compressed, Padme-padded and sealed with the
 * catalogue key (XChaCha20-Poly1305; the XXH3 tag of the none suite in an
 * unencrypted repository); its name is the hex of a keyed hash, so it
 * says nothing of what it holds.
 *
 * A client lists catalog/ once, fetches the segments its catalog.db has
 * not applied (all at once, in parallel) and replays them in order: a
 * delta applies when its job's latest snapshot in the catalogue is the
 * one the delta follows.  Replaying every segment gives the catalogue
 * that recording the backups directly gave (tests/unit/test_catseg.c).
 */
#ifndef MV_CATSEG_H
#define MV_CATSEG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "mv_err.h"
#include "repo.h"
#include "util.h"

#define CATSEG_DIR "catalog"
/* record type bound into a segment's associated data (its own key too) */
#define CATSEG_REC_TYPE 64
#define CATSEG_MAX (256u << 20) /* bytes of one stored or plain segment */

enum catseg_kind {
	CATSEG_DELTA = 0, /* what one backup added */
	CATSEG_BASE = 1,  /* a whole catalogue; replaces what came before */
};

/* ---- segments as bytes (no repository) -------------------------------- */

/* The delta of snapshot snap_id (hex) as recorded in db, a catalogue
 * opened with mail_catalog_open: the snapshot, its job's previous
 * snapshot, the messages first placed in it (with their body text when
 * the catalogue kept it, mail_catalog_keep_bodies), the places it opened
 * and the places it closed.  Appended to out, uncompressed.  -ENOENT when
 * the snapshot is not in db. */
int catseg_build(sqlite3 *db, const char *snap_id, struct mv_buf *out,
		 struct mv_err *err);

/* The whole catalogue of db as a base segment (bodies are not kept by
 * the catalogue, so a base has headers only). */
int catseg_build_base(sqlite3 *db, struct mv_buf *out, struct mv_err *err);

/* What a segment is, without applying it. */
struct catseg_head {
	enum catseg_kind kind;
	char snap_id[80]; /* delta: its snapshot ("" for a base) */
	char job[256];	  /* delta: its job */
	char prev[80];	  /* delta: the job's previous snapshot, "" if none */
	long long made;	  /* base: when it was made (ns), the newest wins */
};
int catseg_peek(const void *seg, size_t len, struct catseg_head *out,
		struct mv_err *err);

/* Replay one segment into db (inside the caller's transaction).  A base
 * first empties the catalogue.  Returns 0 applied, 1 already there (a
 * delta whose snapshot db has), -EAGAIN when a delta does not follow on
 * (its job's latest snapshot in db is not the one it follows), -EBADMSG
 * for a malformed segment. */
int catseg_apply(sqlite3 *db, const void *seg, size_t len, struct mv_err *err);

/* ---- segments in the repository --------------------------------------- */

/* Create the table of applied segment names in db (idempotent). */
int catseg_init_db(sqlite3 *db, struct mv_err *err);

/* Write the segment of the snapshot just recorded in db to the
 * repository (a base when db has applied no segment yet: the first
 * segment of a repository, or of a catalogue that predates segments) and
 * remember it as applied.  r needs the writer lock. */
int catseg_publish(struct repo *r, sqlite3 *db, const char *snap_id,
		   struct mv_err *err);

struct catseg_sync_stats {
	unsigned listed;  /* segments in the repository */
	unsigned applied; /* replayed now */
	unsigned damaged; /* could not be read or opened */
	unsigned stuck;	  /* do not follow on (one before them missing) */
	uint64_t bytes;	  /* stored bytes fetched */
};

/* Bring db up to date with the repository's segments: one listing, the
 * unseen ones fetched together, replayed in one transaction.  Damaged
 * segments and deltas that do not follow on are counted, not fatal (the
 * caller warns: `mailvault find --rebuild`). */
int catseg_sync(struct repo *r, sqlite3 *db, struct catseg_sync_stats *st,
		struct mv_err *err);

/* After prune: drop from db the places of no kept snapshot (keep: the
 * hex ids of the repository's snapshots), write one base segment of what
 * is left and remove the segments it replaces.  Opens the catalogue of r
 * itself; nothing to do when there is neither a catalogue nor segments.
 * *out_removed: segments removed. */
int catseg_prune(struct repo *r, unsigned *out_removed, struct mv_err *err);

/* Forget every applied segment in db and empty the catalogue, so that the
 * next catseg_sync replays all of them (find --rebuild). */
int catseg_reset(sqlite3 *db, struct mv_err *err);

#endif
