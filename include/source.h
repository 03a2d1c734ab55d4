/*
 * source: readers that turn backup inputs into ingest calls.
 *
 *  source_tar  - a tar archive (tar/pax/gnu; gzip through ISA-L,
 *                zstd/xz/bzip2 through libarchive) from a file or a
 *                descriptor (stdin).  Member names are normalised:
 *                "./a/b" and "/a/b" become LABEL/a/b, and the "./" entry
 *                gives LABEL its metadata.  Names that would climb out
 *                are cut as GNU tar cuts them (source_tar_clean_name).
 *                What libarchive reads with a warning (a damaged pax
 *                header) is stored as read; every such problem, and every
 *                name changed, is recorded with ingest_warn.
 *  source_dir  - a local directory tree, with the unchanged-file cache:
 *                a file whose size, mtime, ctime and inode match the same
 *                path in the parent snapshot is not read again.
 *  source_file - one file (a local path, or a stream such as a database
 *                dump on stdin) stored as LABEL/NAME.
 *
 * Directory and tar sources leave out what their exclude list matches
 * (include/exclude.h), on the path inside the source; an excluded
 * directory takes its subtree with it.
 */
#ifndef MV_SOURCE_H
#define MV_SOURCE_H

#include <stdbool.h>

#include "exclude.h"
#include "ingest.h"
#include "mv_err.h"
#include "snapshot.h"

struct source_tar_opts {
	const char *label;   /* top-level directory in the snapshot */
	const char *name;    /* input name for messages ("-" = stdin) */
	int fd;		     /* input descriptor (borrowed) */
	bool absolute_names; /* names start with '/' by design (mailcow's
				tar -P): removed without a warning */
	const struct exclude *exclude; /* members to leave out (matched
					  on the cleaned name), or NULL */
};

/* Read a whole archive into ing under label.  Errors name the entry and
 * the byte offset. */
int source_tar_read(struct ingest *ing, const struct source_tar_opts *o,
		    struct mv_err *err);

enum source_name_flags {
	SOURCE_NAME_ABS = (1 << 0),    /* leading '/' removed */
	SOURCE_NAME_DOTDOT = (1 << 1), /* everything up to the last ".."
					  component removed */
};

/* Clean a tar member name the way GNU tar does before it extracts
 * (safer_name_suffix): everything up to and including its last ".."
 * component is dropped, then leading slashes; then "." and empty
 * components, which name nothing.  "a/../../x" -> "x", "/etc/f" ->
 * "etc/f", "./a//./b/" -> "a/b", ".." -> "".  Writes the result to out,
 * which has room for strlen(name) + 1 bytes; returns the
 * SOURCE_NAME_ flags of what was removed ("./" and "." count as
 * nothing). */
unsigned source_tar_clean_name(const char *name, char *out);

struct source_dir_opts {
	const char *label;	       /* top-level directory */
	const char *path;	       /* local directory */
	struct repo *repo;	       /* for the parent's trees */
	const struct snapshot *parent; /* previous snapshot of the job, or
					  NULL: no unchanged-file cache */
	/* Optional: offered every regular file (name in dirfd, snapshot
	 * path, metadata) before it is read.  Returns 0 to let source_dir
	 * store it, 1 when it took the file over (e.g. expanded an archive
	 * into ing), or a negative errno.  See source_mailcow.h. */
	int (*file_filter)(void *ctx, struct ingest *ing, int dirfd,
			   const char *name, const char *path,
			   const struct tree_entry *meta, struct mv_err *err);
	void *filter_ctx;
	const struct exclude *exclude; /* entries to leave out, or NULL */
};

int source_dir_read(struct ingest *ing, const struct source_dir_opts *o,
		    struct mv_err *err);

/* One file as LABEL/NAME.  With path: that file (a symbolic link given
 * is followed), with its metadata, xattrs and holes, through the
 * unchanged-file cache like a file of a directory source; anything but
 * a regular file is -EINVAL.  Without path: the stream fd, read to its
 * end, stored with mode 0600, our uid and gid and the time now as its
 * mtime (restic's --stdin, borg's "-"). */
struct source_file_opts {
	const char *label;	       /* top-level directory */
	const char *name;	       /* file name under it */
	const char *path;	       /* local file, or NULL: read fd */
	int fd;			       /* the stream (borrowed) */
	struct repo *repo;	       /* for the parent's tree */
	const struct snapshot *parent; /* previous snapshot, or NULL */
};

int source_file_read(struct ingest *ing, const struct source_file_opts *o,
		     struct mv_err *err);

/* A source on a server reached over SSH (connection options from
 * ssh_set_default_opts(): -i, --accept-new-host-key):
 *   ssh://[user@]host[:port]/path  the directory is walked over SFTP;
 *       mode, uid, gid, mtime (whole seconds) and symlinks are kept.
 *       SFTP shows no inode or ctime: a file whose size and mtime match
 *       the parent snapshot, and whose mtime is older than that
 *       snapshot, is taken from it without being read.  Hard links
 *       cannot be seen and are stored as separate (deduplicated) files.
 *   ssh-exec://[user@]host[:port]  command runs on the server and its
 *       stdout is read as a tar stream (see source_tar).  The command's
 *       exit status decides: non-zero (or a signal) fails the source
 *       with the status and the last line of its stderr. */
struct source_remote_opts {
	const char *label;	       /* top-level directory */
	const char *url;	       /* ssh:// or ssh-exec:// location */
	const char *command;	       /* ssh-exec: what to run */
	struct repo *repo;	       /* ssh: for the parent's trees */
	const struct snapshot *parent; /* ssh: previous snapshot of the
					  job, or NULL */
	const struct exclude *exclude; /* entries to leave out, or NULL */
};

int source_remote_read(struct ingest *ing, const struct source_remote_opts *o,
		       struct mv_err *err);

#endif
