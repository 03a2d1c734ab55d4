/*
 * restore: reading snapshots back out - file contents, restore to a
 * directory with full metadata, and tar export.
 *
 * Restore never writes outside the target directory: every entry is
 * created relative to an open directory descriptor with O_NOFOLLOW, names
 * that are ".", ".." or contain '/' are refused by name, and symlinks are
 * created, never followed.  Owner, mode, xattrs, ACLs and times are set
 * through a descriptor of the entry restore created (a symlink's through
 * its parent's, without following it), never by path, so an entry another
 * user swaps for a symlink meanwhile cannot redirect them.
 */
#ifndef MV_RESTORE_H
#define MV_RESTORE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "mv_err.h"
#include "repo.h"
#include "tree.h"

/* Write the content of a regular file entry to fd (holes of sparse files
 * are skipped with lseek when seekable, zeros otherwise). */
int restore_file_to_fd(struct repo *r, const struct tree_entry *e, int fd,
		       bool sparse_seek, struct mv_err *err);

struct restore_stats {
	uint64_t files, dirs, others, bytes;
	uint64_t errors; /* entries that could not be restored */
};

struct restore_opts {
	bool numeric_owner; /* ignore user/group names */
	bool verbose;
};

/* Restore entry e (named by its path in the snapshot, for messages) into
 * directory dest, creating dest/<name>.  A directory is restored with its
 * whole subtree.  Errors on single entries are reported on stderr and
 * counted; the restore goes on and returns -EIO at the end. */
int restore_tree(struct repo *r, const struct tree_entry *e, const char *dest,
		 const struct restore_opts *o, struct restore_stats *st,
		 struct mv_err *err);

struct archive_entry;

/* Set the libarchive entry's owner (ids and names) and type from e, with
 * what goes with the type: a symlink's target, a device's numbers, a
 * regular file's size - or, when first is not NULL, a hard link to member
 * first with size 0 (first is ignored for other types).  Shared by
 * export-tar and the mailcow archive export; in the formats plugin. */
void restore_tar_entry_fill(struct archive_entry *ae,
			    const struct tree_entry *e, const char *first);

/* Write entry e (and its subtree) as a tar stream (pax format) to fd,
 * member names relative to e; gzip when gz. */
int restore_export_tar(struct repo *r, const struct tree_entry *e, int fd,
		       bool gz, struct mv_err *err);

#endif
