/*
 * check: verify a repository.  Structure: every pack the index names
 * exists with the size the index records, every snapshot's trees decode
 * and every chunk they reference (refs.h: records, trees, content, keys
 * held in xattrs) is indexed.  Reading data: the chunks of all packs or of
 * a subset are read, their checksums verified, decompressed and re-hashed
 * with the keyed id.  Damage is reported by pack and offset and by every
 * snapshot and path it affects, through the report callback.
 *
 * Known loss: check --repair removes the index rows of damaged records
 * and records their ids (check_loss_record()).  A later check reports the
 * files that reference them as "lost" - still named, counted apart - and
 * does not count them as new damage (docs/LIFECYCLE.md).
 *
 * A local repository whose files or directories group or others may read
 * or write is reported with a warning naming them.
 */
#ifndef MV_CHECK_H
#define MV_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "mv_err.h"
#include "repo.h"

struct check_result {
	uint64_t packs, chunks, snapshots, files; /* what was examined */
	uint64_t packs_read;		/* packs whose data was read */
	uint64_t bad_packs, bad_chunks; /* damage found */
	uint64_t affected_files;	/* entries that reference damage */
	uint64_t affected_snapshots;	/* snapshots with such entries */
	uint64_t lost_files;		/* entries that reference known loss */
	uint64_t lost_snapshots;	/* snapshots with such entries */
	uint64_t lost_chunks;		/* known-lost chunks still referenced */
	uint64_t orphan_packs;		/* not in the index */
	uint64_t segments, bad_segments; /* commit segments read, damaged */
	uint64_t exposed;		 /* repository paths open to others */
};

/* Which packs to read.  Plain check reads CHECK_SUBSET_DEFAULT percent. */
struct check_opts {
	bool read_data;	      /* read every pack */
	double subset_pct;    /* else read this percent of the packs, at
			       * random (at least one when > 0) */
	uint32_t subset_n;    /* else read the packs of group subset_n */
	uint32_t subset_of;   /* of subset_of (1 <= n <= of), by name */
	bool check_perms;     /* warn about a repository open to others */
	uint64_t random_seed; /* 0: from the system */
};

#define CHECK_SUBSET_DEFAULT 1.0 /* percent of packs plain check reads */

/* kind: "error" for damage, "warning" for known loss and exposure,
 * "info" for remarks (orphan packs). */
typedef void (*check_report_fn)(const char *kind, const char *msg, void *arg);

/* Returns 0 when the repository is sound (known loss may be reported),
 * -EIO when damage was found (reported through fn), or another error when
 * checking itself failed. */
int check_run(struct repo *r, const struct check_opts *o, check_report_fn fn,
	      void *arg, struct check_result *out, struct mv_err *err);

/* check_run() of the structure, and of every pack's data when
 * read_data. */
int check_repo(struct repo *r, bool read_data, check_report_fn fn, void *arg,
	       struct check_result *out, struct mv_err *err);

/* Parse "N%" (0 < N <= 100) or "N/M" (1 <= N <= M) into o.  -EINVAL with a
 * message. */
int check_parse_subset(const char *s, struct check_opts *o, struct mv_err *err);

/* True when chunk id is not in the index and check --repair recorded it
 * as lost. */
bool check_loss_known(struct repo *r, const uint8_t id[MV_ID_LEN]);

/* Record chunk id as lost (its row removed by check --repair; why: a few
 * words).  Written in the caller's index transaction. */
int check_loss_record(struct repo *r, const uint8_t id[MV_ID_LEN],
		      const char *why, struct mv_err *err);
/* A format 2 pack whose table does not open: record that check --repair
 * saw it, so later checks warn instead of failing (its readable records
 * stay indexed): 1 when recorded, 0 for a pack whose table opens or a
 * format 1 pack, or an error. */
int check_table_loss_record(struct repo *r, const char *pack,
			    struct mv_err *err);

#endif
