/*
 * repo_remote_index: the local copy of the index of an sftp:// repository
 * and its publication (docs/REMOTE.md).
 */
#include "repo_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <zstd.h>

#include "backend.h"
#include "chunker.h"
#include "diskcache.h"
#include "hash.h"
#include "index.h"
#include "pack.h"
#include "snapshot.h"

/* ---- remote index cache ---------------------------------------------- */

int repo_cache_dir(const struct repo_config *c, char *out, size_t n,
		   struct mv_err *err)
{
	const char *base = getenv("XDG_CACHE_HOME");
	char id[2 * MV_REPO_ID_LEN + 1];
	int rc;

	mv_hex(c->id, MV_REPO_ID_LEN, id);
	if (base && *base)
		snprintf(out, n, "%s/mailvault/%s", base, id);
	else
		snprintf(out, n, "%s/.cache/mailvault/%s",
			 getenv("HOME") ? getenv("HOME") : "/tmp", id);
	rc = mv_mkdir_p(out, 0700);
	if (rc)
		return mv_err_set(err, rc,
				  "cannot create cache directory "
				  "'%s': %s",
				  out, strerror(-rc));
	return 0;
}

/* Remember which remote copy the open index is: another process on this
 * machine (a backup while a mount runs) may fetch or publish a newer one
 * into the same cache; repo_refresh() compares. */
void repo_stamp_remember(struct repo *r)
{
	char *s = NULL;

	r->stamp_seen[0] = '\0';
	if (r->stamp_path && !mv_read_file(r->stamp_path, 64, &s, NULL, NULL)) {
		snprintf(r->stamp_seen, sizeof(r->stamp_seen), "%s", s);
		free(s);
	}
}

/* Copy the remote index.db into the cache unless the stamp says the cached
 * copy is current. */
static int remote_index_fetch_once(struct repo *r, struct mv_err *err)
{
	char stamp[64], *old = NULL, tmp[PATH_MAX];
	uint64_t size;
	int64_t mtime;
	uint8_t *buf = NULL;
	uint64_t off = 0;
	int fd = -1, rc;

	rc = r->be->ops->stat(r->be, "index.db", &size, &mtime, err);
	if (rc)
		return rc == -ENOENT ? mv_err_set(err, rc,
						  "repository '%s' "
						  "has no index.db",
						  r->location)
				     : rc;
	snprintf(stamp, sizeof(stamp), "%llu %lld\n", (unsigned long long)size,
		 (long long)mtime);
	if (!mv_read_file(r->stamp_path, 64, &old, NULL, NULL) &&
	    !strcmp(old, stamp) && access(r->index_path, F_OK) == 0) {
		free(old);
		return 0;
	}
	free(old);
	snprintf(tmp, sizeof(tmp), "%s.download", r->index_path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	buf = malloc(1 << 20);
	if (fd < 0 || !buf) {
		rc = mv_err_set(err, -errno, "cannot write '%s': %s", tmp,
				strerror(errno));
		goto out;
	}
	while (off < size) {
		size_t got = 0;

		rc = r->be->ops->read_at(r->be, "index.db", off, buf,
					 MV_MIN((uint64_t)1 << 20, size - off),
					 &got, err);
		if (rc)
			goto out;
		if (!got) {
			rc = mv_err_set(err, -EIO,
					"index.db shrank while "
					"downloading");
			goto out;
		}
		rc = mv_write_full(fd, buf, got);
		if (rc) {
			mv_err_set(err, rc, "cannot write '%s'", tmp);
			goto out;
		}
		off += got;
	}
	if (fsync(fd) < 0 || rename(tmp, r->index_path) < 0) {
		rc = mv_err_set(err, -errno, "cannot store '%s': %s",
				r->index_path, strerror(errno));
		goto out;
	}
	/* a stale WAL of an older copy must not be replayed onto this one */
	{
		char wal[PATH_MAX + 8];

		snprintf(wal, sizeof(wal), "%s-wal", r->index_path);
		unlink(wal);
		snprintf(wal, sizeof(wal), "%s-shm", r->index_path);
		unlink(wal);
	}
	rc = mv_write_file_atomic(r->stamp_path, stamp, strlen(stamp), err);
out:
	if (fd >= 0)
		close(fd);
	if (rc)
		unlink(tmp);
	free(buf);
	return rc;
}

/* An SFTP v3 server cannot rename over a file, so a writer publishing a
 * new index moves the old one aside first: for about one round trip
 * index.db is missing.  A reader that falls in that window tries again. */
int repo_remote_index_fetch(struct repo *r, struct mv_err *err)
{
	struct timespec ts = {0, 200 * 1000000L};
	int i, rc = 0;

	for (i = 0; i < 5; i++) {
		struct mv_err e = MV_ERR_INIT;

		rc = remote_index_fetch_once(r, &e);
		if (rc != -ENOENT) {
			if (rc)
				mv_err_set(err, rc, "%s", mv_err_msg(&e));
			return rc;
		}
		if (i < 4)
			nanosleep(&ts, NULL);
	}
	return mv_err_set(err, rc, "repository '%s' has no index.db",
			  r->location);
}

/* Upload the cached index: checkpoint, stream to a temporary name, rename
 * over index.db (a reader never sees half an index). */
int repo_remote_index_publish(struct repo *r, struct mv_err *err)
{
	struct backend_file *f = NULL;
	uint8_t *buf = NULL;
	char stamp[64];
	uint64_t size;
	int64_t mtime;
	int fd = -1, rc;
	ssize_t n;

	rc = index_checkpoint(r->ix, err);
	if (rc)
		return rc;
	fd = open(r->index_path, O_RDONLY | O_CLOEXEC);
	buf = malloc(1 << 20);
	if (fd < 0 || !buf) {
		rc = mv_err_set(err, -errno, "cannot read '%s': %s",
				r->index_path, strerror(errno));
		goto out;
	}
	rc = r->be->ops->file_create(r->be, "index.db", &f, err);
	if (rc)
		goto out;
	while ((n = read(fd, buf, 1 << 20)) > 0) {
		rc = r->be->ops->file_write(f, buf, (size_t)n, err);
		if (rc) {
			r->be->ops->file_abort(f);
			goto out;
		}
	}
	if (n < 0) {
		r->be->ops->file_abort(f);
		rc = mv_err_set(err, -errno, "cannot read '%s'", r->index_path);
		goto out;
	}
	rc = r->be->ops->file_commit(f, err);
	if (rc)
		goto out;
	if (!r->be->ops->stat(r->be, "index.db", &size, &mtime, NULL)) {
		snprintf(stamp, sizeof(stamp), "%llu %lld\n",
			 (unsigned long long)size, (long long)mtime);
		mv_write_file_atomic(r->stamp_path, stamp, strlen(stamp), NULL);
		snprintf(r->stamp_seen, sizeof(r->stamp_seen), "%s", stamp);
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}
