/*
 * catseg: the mail catalogue stored in the repository as catalogue
 * segments (docs/FORMAT-2.md section 3, docs/MAIL.md "The catalogue in
 * the repository").
 *
 * catalog.db stays the local, queryable form (mail_catalog.h) in the
 * private cache; the repository holds, under catalog/, one segment per
 * backup that recorded mail: what that backup added to the catalogue
 * (new messages' rows, places opened, places closed).  A base segment
 * holds a whole catalogue (the first segment of a catalogue older than
 * segments, what prune and find --rebuild write in place of the
 * segments before, and what a backup writes every CATSEG_BASE_EVERY
 * deltas).  Each object is zstd-compressed, Padme-padded and sealed with the
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
 * repository (a base when db has applied no segment yet and knows
 * snapshots before this one: a catalogue that predates segments) and
 * remember it as applied; then a base when db has applied more than
 * CATSEG_BASE_EVERY deltas since its last.  r needs the writer lock. */
int catseg_publish(struct repo *r, sqlite3 *db, const char *snap_id,
		   struct mv_err *err);

struct catseg_sync_stats {
	unsigned listed;   /* segments in the repository */
	unsigned applied;  /* replayed now */
	unsigned damaged;  /* could not be read or opened */
	unsigned stuck;	   /* do not follow on (one before them missing) */
	uint64_t bytes;	   /* stored bytes fetched */
	char problem[256]; /* what the first damaged or stuck one is */
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
 * next catseg_sync replays all of them. */
int catseg_reset(sqlite3 *db, struct mv_err *err);

/* Store the whole catalogue of db as one base segment and remove the
 * segments it replaces: every one listed before it when all (r's
 * exclusive writer lock held: nobody adds one meanwhile), else only
 * those db has applied (a concurrent writer's new segment stays), but
 * never the one named keep (NULL: none).  *out_removed: how many. */
int catseg_publish_base(struct repo *r, sqlite3 *db, bool all, const char *keep,
			unsigned *out_removed, struct mv_err *err);

/* Deltas since the last base after which a backup writes a new base
 * (docs/FORMAT-2.md section 3): a fresh machine then fetches at most
 * this many segments besides the base. */
#define CATSEG_BASE_EVERY 64

struct mail_catalog;
struct snapshot;

struct catseg_rebuild_stats {
	struct catseg_sync_stats sync; /* the segments still readable */
	unsigned snapshots;	       /* recorded again from their trees */
	uint64_t places;	       /* places recorded */
	uint64_t parsed;	       /* messages no segment had, read again */
	uint64_t unreadable;	       /* messages that could not be read */
	unsigned removed;	       /* segments the new base replaced */
	char problem[256];	       /* the first unreadable message */
};

/* Rebuild the repository's catalogue from the snapshots' mail views
 * (find --rebuild): replay the readable segments into db (cat is open on
 * it), record every snapshot's places again from its mail/ tree, read
 * and parse the messages no readable segment had, and store the result
 * as one base segment in place of every segment listed.  r needs the
 * writer lock.  A message that cannot be read is counted, not fatal. */
int catseg_rebuild(struct repo *r, sqlite3 *db, struct mail_catalog *cat,
		   struct catseg_rebuild_stats *st, struct mv_err *err);

/* The snapshots of list (snapshot_list of r) that have a mail view but
 * are not in db's catalogue: their segment is missing, or was never
 * written (a backup whose catalogue failed).  Snapshots found to have no
 * view are remembered in db, so each is looked at once.  *out_missing:
 * how many; first: "job/id" of the first of them. */
int catseg_missing(struct repo *r, sqlite3 *db, const struct snapshot *list,
		   size_t n, unsigned *out_missing, char *first, size_t firstn,
		   struct mv_err *err);

#endif
