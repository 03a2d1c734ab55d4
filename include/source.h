/*
 * source: readers that turn backup inputs into ingest calls.
 *
 *  source_tar  - a tar archive (tar/pax/gnu; gzip through ISA-L,
 *                zstd/xz/bzip2 through libarchive) from a file or a
 *                descriptor (stdin).  Member names are normalised:
 *                "./a/b" and "/a/b" become LABEL/a/b, and the "./" entry
 *                gives LABEL its metadata.
 *  source_dir  - a local directory tree, with the unchanged-file cache:
 *                a file whose size, mtime, ctime and inode match the same
 *                path in the parent snapshot is not read again.
 */
#ifndef MV_SOURCE_H
#define MV_SOURCE_H

#include <stdbool.h>

#include "ingest.h"
#include "mv_err.h"
#include "snapshot.h"

struct source_tar_opts {
	const char *label;    /* top-level directory in the snapshot */
	const char *name;     /* input name for messages ("-" = stdin) */
	int fd;               /* input descriptor (borrowed) */
};

/* Read a whole archive into ing under label.  Errors name the entry and
 * the byte offset. */
int source_tar_read(struct ingest *ing, const struct source_tar_opts *o,
		    struct mv_err *err);

struct source_dir_opts {
	const char *label;            /* top-level directory */
	const char *path;             /* local directory */
	struct repo *repo;            /* for the parent's trees */
	const struct snapshot *parent; /* previous snapshot of the job, or
					  NULL: no unchanged-file cache */
};

int source_dir_read(struct ingest *ing, const struct source_dir_opts *o,
		    struct mv_err *err);

#endif
