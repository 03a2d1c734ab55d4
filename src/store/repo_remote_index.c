/*
 * repo_remote_index: the local copy of the index of an sftp:// repository
 * and its publication (docs/REMOTE.md).
 */
#include "repo_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "backend.h"
#include "index.h"

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

/* ---- which version of the index ----------------------------------------
 *
 * A version of index.db is named by its generation: a counter in the
 * SQLite header's application_id field (offset 68), raised by every
 * publication, together with the file's size.  A reader reads the first
 * 100 bytes of the server's index.db and trusts its cached copy only when
 * both match.  (Size and mtime alone, as before, did not tell apart two
 * versions published in the same second: SFTP mtimes have whole seconds
 * and SQLite sizes are page multiples; a writer then published over the
 * newer one.)  The stamp of a downloaded copy is taken from the bytes
 * downloaded, never from an earlier stat.  An index published before
 * generations existed has application_id 0 and keeps the size+mtime
 * stamp until its next publication.
 *
 * A publication that died between the two renames of an SFTP v3 server
 * (index.db moved aside to index.db.old-*, the new one not yet renamed
 * in from index.db.tmp-*) leaves no index.db.  The complete candidate
 * with the highest generation is then used: a writer (who holds the
 * lock, so no publication is in progress) renames it back to index.db;
 * a reader only downloads it.
 */

#define IX_HDR 100

struct ix_version {
	uint32_t gen;  /* application_id; 0: before generations */
	uint64_t size; /* bytes */
	int64_t mtime; /* for gen 0 */
	bool complete; /* size agrees with the header's page count */
};

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static int ix_header_parse(const uint8_t *h, size_t len, uint64_t size,
			   struct ix_version *v)
{
	uint32_t page, pages;

	if (len < IX_HDR || memcmp(h, "SQLite format 3", 16))
		return -EBADMSG;
	v->gen = be32(h + 68);
	page = (uint32_t)h[16] << 8 | h[17];
	if (page == 1)
		page = 65536;
	pages = be32(h + 28);
	/* the in-header size is valid when the change counter agrees */
	v->complete = !pages || be32(h + 24) != be32(h + 92) ||
		      (uint64_t)page * pages == size;
	v->size = size;
	return 0;
}

static void ix_stamp(const struct ix_version *v, char *out, size_t n)
{
	if (v->gen)
		snprintf(out, n, "gen=%u size=%llu\n", v->gen,
			 (unsigned long long)v->size);
	else
		snprintf(out, n, "%llu %lld\n", (unsigned long long)v->size,
			 (long long)v->mtime);
}

/* Version of the server's copy called name. */
static int remote_version(struct repo *r, const char *name,
			  struct ix_version *v, struct mv_err *err)
{
	uint8_t h[IX_HDR];
	size_t got = 0;
	int rc;

	memset(v, 0, sizeof(*v));
	rc = r->be->ops->stat(r->be, name, &v->size, &v->mtime, err);
	if (!rc)
		rc = r->be->ops->read_at(r->be, name, 0, h, sizeof(h), &got,
					 err);
	if (!rc && ix_header_parse(h, got, v->size, v))
		rc = mv_err_set(err, -EBADMSG, "'%s' in '%s' is not an index",
				name, r->location);
	return rc;
}

struct aside {
	char best[128];
	struct ix_version v;
	struct repo *r;
};

static int aside_one(const char *name, bool is_dir, uint64_t size, void *arg)
{
	struct aside *a = arg;
	struct ix_version v;

	(void)size;
	if (is_dir || (strncmp(name, "index.db.old-", 13) &&
		       strncmp(name, "index.db.tmp-", 13)))
		return 0;
	if (remote_version(a->r, name, &v, NULL) || !v.complete)
		return 0;
	if (!a->best[0] || v.gen > a->v.gen) {
		snprintf(a->best, sizeof(a->best), "%s", name);
		a->v = v;
	}
	return 0;
}

/* index.db is missing for good: find what a dead publication left. */
static int remote_index_aside(struct repo *r, char *out, size_t n)
{
	struct aside a;

	memset(&a, 0, sizeof(a));
	a.r = r;
	if (r->be->ops->list(r->be, "", aside_one, &a, NULL) || !a.best[0])
		return -ENOENT;
	if (r->locked && !r->be->ops->rename(r->be, a.best, "index.db", NULL))
		snprintf(out, n, "index.db");
	else
		snprintf(out, n, "%s", a.best);
	return 0;
}

/* Copy the server's index (name) into the cache unless the cached copy is
 * that version. */
static int remote_index_fetch_once(struct repo *r, const char *name,
				   struct mv_err *err)
{
	char stamp[64], *old = NULL, tmp[PATH_MAX];
	struct ix_version v, got;
	uint8_t *buf = NULL;
	uint64_t off = 0;
	int fd = -1, rc;

	rc = remote_version(r, name, &v, err);
	if (rc)
		return rc == -ENOENT ? mv_err_set(err, rc,
						  "repository '%s' "
						  "has no index.db",
						  r->location)
				     : rc;
	ix_stamp(&v, stamp, sizeof(stamp));
	if (!mv_read_file(r->stamp_path, 64, &old, NULL, NULL) &&
	    !strcmp(old, stamp) && access(r->index_path, F_OK) == 0) {
		free(old);
		return 0;
	}
	free(old);
	snprintf(tmp, sizeof(tmp), "%s.download", r->index_path);
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	buf = malloc(1 << 20);
	if (fd < 0 || !buf) {
		rc = mv_err_set(err, -errno, "cannot write '%s': %s", tmp,
				strerror(errno));
		goto out;
	}
	for (;;) {
		size_t n = 0;

		rc = r->be->ops->read_at(r->be, name, off, buf, 1 << 20, &n,
					 err);
		if (rc)
			goto out;
		if (!n)
			break;
		rc = mv_write_full(fd, buf, n);
		if (rc) {
			mv_err_set(err, rc, "cannot write '%s'", tmp);
			goto out;
		}
		off += n;
	}
	/* the stamp of what was downloaded: the file may have been replaced
	 * since the header was read */
	memset(&got, 0, sizeof(got));
	got.mtime = v.mtime;
	if (mv_pread_full(fd, buf, IX_HDR, 0) ||
	    ix_header_parse(buf, IX_HDR, off, &got) || !got.complete) {
		rc = mv_err_set(err, -EAGAIN,
				"the index of '%s' changed while it was "
				"downloaded",
				r->location);
		goto out;
	}
	ix_stamp(&got, stamp, sizeof(stamp));
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
 * index.db is missing.  A reader that falls in that window tries again;
 * when it stays missing, a publication died there (see above). */
int repo_remote_index_fetch(struct repo *r, struct mv_err *err)
{
	struct timespec ts = {0, 200 * 1000000L};
	char name[128] = "index.db";
	int i, rc = 0;

	for (i = 0; i < 6; i++) {
		struct mv_err e = MV_ERR_INIT;

		rc = remote_index_fetch_once(r, name, &e);
		if (rc == -EAGAIN)
			continue; /* replaced while downloading */
		if (rc != -ENOENT) {
			if (rc)
				mv_err_set(err, rc, "%s", mv_err_msg(&e));
			return rc;
		}
		if (i == 4 && !remote_index_aside(r, name, sizeof(name)))
			continue;
		if (i < 4)
			nanosleep(&ts, NULL);
	}
	return mv_err_set(err, rc, "repository '%s' has no index.db",
			  r->location);
}

/* Raise the generation of the cached index before it is published, past
 * the server's too: an index rebuilt by rebuild-index starts at 0, and a
 * writer let in by 'unlock --force' may have published meanwhile. */
static int gen_bump(struct repo *r, struct mv_err *err)
{
	sqlite3 *db = index_db(r->ix);
	sqlite3_stmt *st = NULL;
	struct ix_version server;
	char sql[64];
	uint32_t gen = 0;

	if (sqlite3_prepare_v2(db, "PRAGMA application_id", -1, &st, NULL) ==
		    SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		gen = (uint32_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (!remote_version(r, "index.db", &server, NULL) && server.gen > gen)
		gen = server.gen;
	gen = gen + 1 ? gen + 1 : 1;
	snprintf(sql, sizeof(sql), "PRAGMA application_id=%d", (int32_t)gen);
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return mv_err_set(err, -EIO,
				  "index: cannot set its generation: %s",
				  sqlite3_errmsg(db));
	return 0;
}

/* Upload the cached index: raise its generation, checkpoint, stream to a
 * temporary name, rename over index.db (a reader never sees half an
 * index). */
int repo_remote_index_publish(struct repo *r, struct mv_err *err)
{
	struct backend_file *f = NULL;
	struct ix_version v;
	uint8_t *buf = NULL;
	char stamp[64];
	uint64_t size = 0;
	int fd = -1, rc;
	ssize_t n;

	rc = gen_bump(r, err);
	if (!rc)
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
		size += (uint64_t)n;
	}
	if (n < 0) {
		r->be->ops->file_abort(f);
		rc = mv_err_set(err, -errno, "cannot read '%s'", r->index_path);
		goto out;
	}
	rc = r->be->ops->file_commit(f, err);
	if (rc)
		goto out;
	memset(&v, 0, sizeof(v));
	if (!mv_pread_full(fd, buf, IX_HDR, 0) &&
	    !ix_header_parse(buf, IX_HDR, size, &v) && v.gen) {
		ix_stamp(&v, stamp, sizeof(stamp));
		mv_write_file_atomic(r->stamp_path, stamp, strlen(stamp), NULL);
		snprintf(r->stamp_seen, sizeof(r->stamp_seen), "%s", stamp);
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}
