/*
 * mail_catalog: the SQLite catalogue of distinct messages and where they
 * appear, for `mailvault find` and `diff --mail`.
 *
 * Keyed by content id (the caller's hash of the message bytes), so a
 * message is parsed and stored once however many snapshots hold it.  Its
 * places (job, account, mailbox, view name) are kept as ranges of snapshot
 * sequence numbers: a message present in 365 consecutive dailies is one
 * row [first, open]; a backup writes only the places that appeared or
 * ended.  FTS5 indexes
 * subject, from, to, cc, attachment names and, with --index-body, text.
 *
 * Designed for its own file, catalog.db, beside the repository index, so
 * the core index stays small and the catalogue can be rebuilt or dropped.
 * The caller opens the sqlite3 handle and owns it.
 *
 * Use per backup:
 *   mail_catalog_snapshot_begin(cat, job, snap_id, time, &seq)  (BEGIN)
 *   for each message file:  if (!mail_catalog_has(cid)) parse + add;
 *                           mail_catalog_seen(cat, seq, cid, ...)
 *   mail_catalog_snapshot_end(cat, seq)                          (COMMIT)
 */
#ifndef MV_MAIL_CATALOG_H
#define MV_MAIL_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "mail_msg.h"
#include "mv_err.h"

#define MAIL_CATALOG_ID_LEN 32 /* bytes of a content id */

struct mail_catalog;

/* Create the schema if needed (idempotent); a catalogue of schema
 * version 1 is migrated to version 2 in one transaction, or, when db is
 * read-only, in an in-memory copy the catalogue then reads (the file is
 * left as it was).  Borrows db.  Content ids are MAIL_CATALOG_ID_LEN
 * bytes (-EINVAL otherwise).  Returns 0, -ENOMEM, -EIO (SQLite error,
 * message recorded). */
int mail_catalog_open(sqlite3 *db, struct mail_catalog **out,
		      struct mv_err *err);
void mail_catalog_close(struct mail_catalog *cat);

/* Keep the body text of the messages added from now on, for this
 * connection only (a TEMP table), so that the backup's catalogue segment
 * can carry it (catseg.h; the FTS table is contentless and cannot give
 * it back). */
int mail_catalog_keep_bodies(struct mail_catalog *cat, struct mv_err *err);

/* Is this content id catalogued?  1 yes, 0 no, < 0 error. */
int mail_catalog_has(struct mail_catalog *cat, const void *cid, size_t cid_len,
		     struct mv_err *err);

/* Catalogue a parsed message (no-op when the content id is known).
 * body text is indexed when m->body is set. */
int mail_catalog_add(struct mail_catalog *cat, const void *cid, size_t cid_len,
		     const struct mail_msg *m, struct mv_err *err);

/* Start recording snapshot snap_id of a backup job (a series of
 * snapshots); opens a transaction.  *seq receives its sequence number. */
int mail_catalog_snapshot_begin(struct mail_catalog *cat, const char *job,
				const char *snap_id, int64_t time, int64_t *seq,
				struct mv_err *err);

/* The message cid is in snapshot seq at account/mailbox under name.
 * The name is stored only when mail_name_format() of the message's
 * date, from (display name, else address) and subject, or one of its
 * variants, does not give it. */
int mail_catalog_seen(struct mail_catalog *cat, int64_t seq, const void *cid,
		      size_t cid_len, const char *account, const char *mailbox,
		      const char *name, struct mv_err *err);

/* Give the snapshot being recorded its id, when snapshot_begin had none
 * yet (snap_id NULL: the records were made while the repository was
 * still writing the snapshot, which fixes the id). */
int mail_catalog_snapshot_name(struct mail_catalog *cat, int64_t seq,
			       const char *snap_id, struct mv_err *err);

/* Close the ranges of the job's places not seen in this snapshot (done by
 * snapshot_end if not before); after it, no more mail_catalog_seen(). */
int mail_catalog_snapshot_close(struct mail_catalog *cat, int64_t seq,
				struct mv_err *err);

/* Commit the snapshot's records. */
int mail_catalog_snapshot_end(struct mail_catalog *cat, int64_t seq,
			      struct mv_err *err);

/* Drop the snapshot being recorded (ROLLBACK). */
void mail_catalog_snapshot_abort(struct mail_catalog *cat);

/* Filters of `mailvault find`; NULL / 0 fields are not applied. */
struct mail_catalog_query {
	const char *from;    /* words in From (name or address) */
	const char *to;	     /* words in To or Cc */
	const char *subject; /* words in Subject */
	const char *text;    /* words anywhere (headers, attachments, body) */
	int64_t since;	     /* Date >= since (seconds), when has_since */
	int64_t until;	     /* Date < until, when has_until */
	bool has_since, has_until;
	const char *account;  /* exact account */
	const char *job;      /* exact job */
	const char *snapshot; /* only places present in this snapshot id */
	bool deleted;	      /* only places gone from the job's latest */
	unsigned limit;	      /* 0 = no limit */
};

/* One match: a message at one place. */
struct mail_catalog_hit {
	const uint8_t *cid; /* the first cid_len (16) bytes of the id */
	size_t cid_len;
	const char *message_id, *from, *to, *subject;
	int64_t date;
	int64_t size;
	const char *job, *account, *mailbox, *name;
	const char *first_snap; /* snapshot ids of the range */
	const char *last_snap;
	bool deleted; /* not in the job's latest snapshot */
};

typedef int (*mail_catalog_hit_fn)(void *ctx,
				   const struct mail_catalog_hit *hit);

/* Run a query; cb is called per hit, newest Date first (return non-zero to
 * stop).  Returns the number of hits, or < 0 on error. */
int mail_catalog_find(struct mail_catalog *cat,
		      const struct mail_catalog_query *q,
		      mail_catalog_hit_fn cb, void *ctx, struct mv_err *err);

#endif
