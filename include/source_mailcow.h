/*
 * source_mailcow: mailcow backup folders in and out.
 *
 * mailcow's helper-scripts/backup_and_restore.sh writes one folder per run,
 * mailcow-YYYY-MM-DD-HH-MM-SS/, holding mailcow.conf, the ".<arch>"
 * marker and one compressed tar per volume (backup_vmail.tar.zst,
 * backup_crypt.tar.zst, backup_redis..., backup_rspamd..., backup_postfix
 * ..., backup_mariadb...; .tar.gz before 2025-12).  A compressed archive
 * stored as it is never dedups from one day to the next, so a directory
 * source offers its files to source_mailcow_filter(), which expands each
 * such archive into the folder:
 *
 *   <folder>/backup_vmail.tar.zst   ->  <folder>/vmail/...   (its members,
 *                                        through source_tar)
 *                                       <folder>/backup_vmail.tar.zst
 *                                        .mailvault (a small marker)
 *
 * Member names may be absolute ("/vmail/...", since 2019) or relative
 * ("vmail/...", 2018); both land in the same subtree.  The marker, with
 * the archive's owner, mode and mtime, records the compression, the name
 * style and the top-level member, so source_mailcow_export() can write
 * back an archive that backup_and_restore.sh restore accepts (same member
 * names, metadata and contents; member order is by name).  An archive that
 * cannot be read to its end is also stored as it is, and its marker says
 * so.

 */
#ifndef MV_SOURCE_MAILCOW_H
#define MV_SOURCE_MAILCOW_H

#include <stdbool.h>
#include <stdint.h>

#include "ingest.h"
#include "mv_err.h"
#include "repo.h"
#include "tree.h"

/* Suffix of the marker entry that stands for an expanded archive. */
#define SOURCE_MAILCOW_MARKER ".mailvault"

/* Filter state for one backup (filter_ctx of struct source_dir_opts). */
struct source_mailcow {
	uint64_t archives; /* archives expanded */
	uint64_t failed;   /* archives unreadable: stored as they are */
};

/* True for a mailcow backup folder name: mailcow-YYYY-MM-DD-HH-MM-SS. */
bool source_mailcow_is_folder(const char *name);

/* The file_filter of struct source_dir_opts; ctx is a struct
 * source_mailcow.  Returns 1 for an archive it expanded, 0 for any other
 * file (also an archive it could not read: source_dir stores that one as
 * it is), -EINTR when interrupted, -ENOMEM. */
int source_mailcow_filter(void *ctx, struct ingest *ing, int dirfd,
			  const char *name, const char *path,
			  const struct tree_entry *meta, struct mv_err *err);

/* Recreate the mailcow folder e (a directory entry of a snapshot, named
 * mailcow-...) as outdir/<e->name>/: every expanded archive is written
 * back (GNU tar, the original compression and member names), every other
 * entry is restored as it is.  *archives counts the archives written. */
int source_mailcow_export(struct repo *r, const struct tree_entry *e,
			  const char *outdir, unsigned *archives,
			  struct mv_err *err);

#endif
