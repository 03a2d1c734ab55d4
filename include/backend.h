/*
 * backend: where a repository's files live.  The store speaks to a
 * directory through this table of operations, so a repository on a local
 * disk and one on an SFTP server (sftp://user@host:port/path) behave alike.
 *
 * All paths are relative to the repository root and use '/'.  Every
 * operation returns 0 or a negative errno and records a message in err.
 * A missing file is -ENOENT.  Backends are safe to use from one thread at
 * a time, except read_at, which may be called from many threads at once.
 *
 * Durability contract (the store's crash safety rests on it):
 *  1. file_commit() makes the data durable (fsync where the server offers
 *     it) and only then renames the temporary file to its final name, so a
 *     final name always holds complete content.
 *  2. write_atomic() is file_create + file_write + file_commit.
 *  3. create_excl() fails with -EEXIST when the path exists (lock files).
 *  4. file_commit() syncs the directory of the file it renamed; a
 *     directory made by mkdir() is durable only after sync_dir() of its
 *     parent (the writer syncs packs/ before its index commit).  SFTP has
 *     no directory sync: there it is a no-op.
 *  5. read_at() may serve a path from a descriptor or handle opened
 *     earlier: a file removed and created again under the same name (the
 *     lock) must be read another way, or after stat() (sftp: stat drops
 *     the handle of a replaced file).
 *
 * Every file and directory of a repository is created for its owner only
 * (the config holds the secret, the index names every file backed up),
 * whatever the umask; init also takes group and other bits off an existing
 * root directory it is given.
 */
#ifndef MV_BACKEND_H
#define MV_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mv_err.h"

#define MV_REPO_FILE_MODE 0600
#define MV_REPO_DIR_MODE 0700

struct backend;
struct backend_file;

/* One range of a read_many() call. */
struct backend_range {
	const char *path; /* relative path */
	uint64_t off;	  /* first byte */
	void *buf;	  /* destination of len bytes */
	size_t len;	  /* bytes wanted */
	size_t got;	  /* out: bytes read; short only at the end of file */
	int rc;		  /* out: 0 or a negative errno for this range */
};

/* Called by list() for each entry of a directory (not "." or ".."). */
typedef int (*backend_list_fn)(const char *name, bool is_dir, uint64_t size,
			       void *arg);

struct backend_ops {
	const char *scheme; /* "file" or "sftp" */
	int (*read_at)(struct backend *be, const char *path, uint64_t off,
		       void *buf, size_t len, size_t *out_len,
		       struct mv_err *err);
	int (*stat)(struct backend *be, const char *path, uint64_t *out_size,
		    int64_t *out_mtime_ns, struct mv_err *err);
	int (*list)(struct backend *be, const char *dir, backend_list_fn fn,
		    void *arg, struct mv_err *err);
	int (*mkdir)(struct backend *be, const char *path, struct mv_err *err);
	int (*file_create)(struct backend *be, const char *path,
			   struct backend_file **out, struct mv_err *err);
	int (*file_write)(struct backend_file *f, const void *buf, size_t len,
			  struct mv_err *err);
	int (*file_commit)(struct backend_file *f, struct mv_err *err);
	/* Commit first, then f, f published only once first is durable
	 * (a snapshot's metadata pack after the data pack it names); a
	 * backend may transfer f meanwhile.  Both are consumed, whatever
	 * the outcome.  May be NULL: backend_file_commit_pair() then
	 * commits one after the other. */
	int (*file_commit_after)(struct backend_file *f,
				 struct backend_file *first,
				 struct mv_err *err);
	void (*file_abort)(struct backend_file *f);
	int (*create_excl)(struct backend *be, const char *path,
			   const void *buf, size_t len, struct mv_err *err);
	int (*rename)(struct backend *be, const char *from, const char *to,
		      struct mv_err *err);
	/* A file, or an empty directory (-ENOTEMPTY otherwise). */
	int (*remove)(struct backend *be, const char *path, struct mv_err *err);
	int (*sync_dir)(struct backend *be, const char *path,
			struct mv_err *err);
	/* Read many ranges, of one file or several, at once: over SFTP the
	 * requests go out together (one round trip for all, plus one per
	 * file not yet open), not one after the other.  Each range gets
	 * its own got and rc; returns 0 when every range succeeded, else
	 * the first failure (message in err).  May be NULL:
	 * backend_read_many() then reads the ranges one by one. */
	int (*read_many)(struct backend *be, struct backend_range *v, size_t n,
			 struct mv_err *err);
	/* The whole of a file of at most max bytes, NUL-terminated (-EFBIG
	 * when larger), in as few round trips as the backend can: over
	 * SFTP the size and the open are asked together.  May be NULL:
	 * backend_read_all() then stats and reads. */
	int (*read_all)(struct backend *be, const char *path, size_t max,
			void **out, size_t *out_len, struct mv_err *err);
	/* stat() and the first len bytes (fewer at the end of the file)
	 * together, or the whole file when it is at most whole bytes (buf
	 * holds MV_MAX(len, whole)): over SFTP the stat and the open go out
	 * at once, the read follows (two round trips, not three).  May be
	 * NULL: backend_stat_read() then stats and reads. */
	int (*stat_read)(struct backend *be, const char *path,
			 uint64_t *out_size, int64_t *out_mtime_ns, void *buf,
			 size_t len, size_t whole, size_t *out_got,
			 struct mv_err *err);
	/* A hint: the next read_all() is followed by a stat_read() of
	 * path; a backend that can opens path along with that read (over
	 * SFTP: three requests in one round trip instead of two round
	 * trips).  Taken by the next read_all().  May be NULL. */
	void (*open_ahead)(struct backend *be, const char *path);
	/* A hint: large files (packs) are about to be written; a backend
	 * that uploads them over a session of their own connects it now,
	 * while the caller builds the first one.  May be NULL. */
	void (*write_ahead)(struct backend *be);
	/* Local path of the repository root, or NULL for remote backends. */
	const char *(*local_root)(struct backend *be);
	void (*close)(struct backend *be);
};

/* Common head of every backend; implementations embed it first. */
struct backend {
	const struct backend_ops *ops; /* operations table */
	char *url;		       /* what the user gave, for messages */
};

/* Open the backend for a repository location: a local path or an
 * sftp://[user@]host[:port]/path URL.  create: make the root directory. */
int backend_open(const char *location, bool create, struct backend **out,
		 struct mv_err *err);
void backend_close(struct backend *be);

/* Local directory backend. */
int backend_local_open(const char *root, bool create, struct backend **out,
		       struct mv_err *err);

/* Convenience wrappers. */
int backend_read_all(struct backend *be, const char *path, size_t max,
		     void **out, size_t *out_len, struct mv_err *err);
/* read_many() when the backend has it, else read_at() range by range
 * (each range read to its end or the end of the file). */
int backend_read_many(struct backend *be, struct backend_range *v, size_t n,
		      struct mv_err *err);
/* stat_read() when the backend has it, else stat() then read_at(). */
int backend_stat_read(struct backend *be, const char *path, uint64_t *out_size,
		      int64_t *out_mtime_ns, void *buf, size_t len,
		      size_t whole, size_t *out_got, struct mv_err *err);
/* Commit first and then f in that order of durability (either may be
 * NULL); both are consumed.  See backend_ops.file_commit_after. */
int backend_file_commit_pair(struct backend *be, struct backend_file *first,
			     struct backend_file *f, struct mv_err *err);
int backend_write_atomic(struct backend *be, const char *path, const void *buf,
			 size_t len, struct mv_err *err);

/* True when location names a remote repository (sftp://). */
bool backend_is_remote(const char *location);

#endif
