/*
 * fs: the read-only FUSE mount of a repository.  Every snapshot appears as
 * MOUNTPOINT/<name>/<YYYY-MM-DDTHHMMSSZ>/... with a "latest" symlink in
 * each <name>/ (see mailvault-mount(1) and docs/MOUNT.md).
 */
#ifndef MV_FS_H
#define MV_FS_H

#include <stdbool.h>
#include <stddef.h>

#include "mv_err.h"

#define FS_CACHE_DEFAULT_MIB 128 /* -o cache_size= default */
#define FS_CACHE_MIN_MIB 8
#define FS_PACK_AHEAD_MAX_MIB 64 /* -o pack_ahead= upper bound */

/* Options of "mailvault mount". */
struct fs_opts {
	bool foreground;  /* -f: stay in the foreground, log to stderr */
	bool debug;	  /* -o debug: FUSE request trace (implies -f) */
	bool allow_other; /* -o allow_other (turns on default_perm.) */
	bool default_permissions; /* -o default_permissions */
	unsigned cache_mib;	  /* -o cache_size=MiB: chunks + directories */
	int pack_ahead_mib; /* -o pack_ahead=MiB: range read-ahead, -1 auto */
};

/* Defaults: only the mounting user, FS_CACHE_DEFAULT_MIB of cache. */
void fs_opts_init(struct fs_opts *o);

/* Parse one -o argument ("allow_other,cache_size=256").  "ro" is accepted
 * and ignored; "rw" and unknown options are -EINVAL with a message. */
int fs_opts_parse(struct fs_opts *o, const char *arg, struct mv_err *err);

/* Mount the repository at location on mountpoint and serve requests until
 * it is unmounted (fusermount3 -u, umount) or the process gets SIGTERM,
 * SIGINT or SIGHUP.  Unless o->foreground, the process detaches once the
 * mount is ready and later messages go to syslog.  Returns 0 after a clean
 * unmount. */
int fs_mount(const char *location, const char *mountpoint,
	     const struct fs_opts *o, struct mv_err *err);

#endif
