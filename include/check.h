/*
 * check: verify a repository.  Structure: every pack the index names
 * exists with the size the index records, every snapshot's trees decode
 * and every chunk they reference is indexed.  With read_data, every chunk
 * is read, its checksum verified, decompressed and re-hashed with the
 * keyed id.  Damage is reported by pack and offset and by the snapshot
 * files it affects, through the report callback.
 */
#ifndef MV_CHECK_H
#define MV_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "mv_err.h"
#include "repo.h"

struct check_result {
	uint64_t packs, chunks, snapshots, files; /* what was examined */
	uint64_t bad_packs, bad_chunks;		  /* damage found */
	uint64_t affected_files;		  /* files that lost data */
	uint64_t orphan_packs;			  /* not in the index */
};

/* kind: "error" for damage, "info" for remarks (orphan packs). */
typedef void (*check_report_fn)(const char *kind, const char *msg, void *arg);

/* Returns 0 when the repository is sound, -EIO when damage was found
 * (reported through fn), or another error when checking itself failed. */
int check_repo(struct repo *r, bool read_data, check_report_fn fn, void *arg,
	       struct check_result *out, struct mv_err *err);

#endif
