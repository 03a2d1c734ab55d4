/*
 * sftp: repositories and backup sources on an SFTP server, over libssh2.
 *
 * A repository location "sftp://[user@]host[:port]/path" opens a backend
 * (include/backend.h) whose files live under path on the server.  Only the
 * SFTP subsystem is needed on the remote side (a storage box account with
 * ForceCommand internal-sftp in a chroot works).
 *
 * The backend takes its connection options from ssh_set_default_opts()
 * (identity, --accept-new-host-key, timeouts); set them before
 * backend_open().  It keeps up to ssh_opts.max_connections sessions so
 * read_at() from several FUSE threads runs in parallel, retries an
 * operation on a fresh connection when the connection drops (3 times,
 * after 1, 2 and 4 s) and then fails with -EIO.  sync_dir() is a no-op:
 * SFTP has no directory fsync; file_commit() fsyncs the file with
 * fsync@openssh.com when the server offers it.  See docs/REMOTE.md.
 *
 * A remote directory is walked for "LABEL=ssh://[user@]host[:port]/path"
 * backup sources with sftp_walk().
 */
#ifndef MV_SFTP_H
#define MV_SFTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "mv_err.h"
#include "ssh.h"

/* Open the SFTP backend for url (sftp://[user@]host[:port]/path).
 * create: make the root directory (and its parents) when missing. */
int backend_sftp_open(const char *url, bool create, struct backend **out,
		      struct mv_err *err);

/* What sftp_walk() reports for each entry: the fields of lstat(2) that
 * SFTP (protocol version 3) carries.  Borrowed for the callback only. */
struct sftp_entry {
	const char *path;	 /* relative to the walked root, '/'-separated;
				  * "" for the root itself */
	uint32_t mode;		 /* file type and permission bits (st_mode) */
	uint32_t uid;		 /* numeric owner on the server */
	uint32_t gid;		 /* numeric group on the server */
	uint64_t size;		 /* bytes (regular files, symlinks) */
	int64_t mtime_ns;	 /* modification time, whole seconds */
	int64_t atime_ns;	 /* access time, whole seconds */
	const char *link_target; /* symlink target, NULL otherwise */
};

struct sftp_walk;

/* Return from an sftp_walk_fn for a directory to not descend into it. */
#define SFTP_WALK_SKIP 1

/* Called once per entry, parents before children, names sorted bytewise
 * within a directory.  For a regular file the callback may read its
 * content with sftp_walk_read(w, ...) before returning (or not at all, to
 * skip an unchanged file: nothing is transferred then).  Return 0 to go
 * on, SFTP_WALK_SKIP to not enter a directory, or a negative errno (with
 * a message in err) to stop the walk with that result. */
typedef int (*sftp_walk_fn)(struct sftp_walk *w, const struct sftp_entry *e,
			    void *arg);

/* Walk url ("ssh://[user@]host[:port]/path" or "sftp://..."), starting
 * with the root itself.  o may be NULL for the defaults set by
 * ssh_set_default_opts().  Symlinks are reported, never followed.  A
 * connection lost during the walk fails it (-EIO): a backup source must
 * be read in one piece. */
int sftp_walk(const char *url, const struct ssh_opts *o, sftp_walk_fn fn,
	      void *arg, struct mv_err *err);

/* Read the next bytes of the current regular file's content; *out_n == 0
 * at the end.  Only valid inside the callback for that file.  Reads of
 * up to a few MiB are pipelined by libssh2. */
int sftp_walk_read(struct sftp_walk *w, void *buf, size_t len, size_t *out_n,
		   struct mv_err *err);

#endif
