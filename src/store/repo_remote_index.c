/*
 * repo_remote_index: the local copy of the index of an sftp:// or an
 * encrypted repository and its publication (docs/REMOTE.md, FORMAT-2.md
 * 5.3 and 5.4).
 *
 * An sftp:// repository without encryption holds index.db as it is; the
 * cache keeps a copy.  An encrypted repository (key_meta is an XChaCha20
 * key), local or sftp://, holds only index.sealed: the index's bytes cut
 * into frames of SX_FRAME bytes, each zstd-compressed, padded and sealed
 * with the metadata key; its working index.db lives in the private cache
 * only.  Encrypted repositories now publish commit segments instead
 * (repo_segment.c); index.sealed is still read here, for a repository
 * written before segments, until its first write replaces it.
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
#include <zstd.h>

#include "backend.h"
#include "crypt.h"
#include "index.h"

#define IX_PLAIN_NAME "index.db"
#define IX_SEALED_NAME "index.sealed"

bool repo_index_is_sealed(const struct repo *r)
{
	return r->key_meta && crypt_key_suite(r->key_meta) == CRYPT_XCHACHA20;
}

/* The config too: a handle of an encrypted repository opened without its
 * key (key commands) must not point index_path into the repository. */
bool repo_index_is_cached(const struct repo *r)
{
	return !r->be->ops->local_root(r->be) || repo_index_is_sealed(r) ||
	       (r->cfg.encryption[0] && strcmp(r->cfg.encryption, "none"));
}

/* What the repository holds: the plain index or the sealed one. */
static const char *ix_name(const struct repo *r)
{
	return repo_index_is_sealed(r) ? IX_SEALED_NAME : IX_PLAIN_NAME;
}

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
 * A sealed index carries the same generation in its clear header (below),
 * with a random publication id; the stamp names all three.
 *
 * A publication that died between the two renames of an SFTP v3 server
 * (index.db moved aside to index.db.old-*, the new one not yet renamed
 * in from index.db.tmp-*) leaves no index.db.  The complete candidate
 * with the highest generation is then used: a writer (who holds the
 * lock, so no publication is in progress) renames it back to index.db;
 * a reader only downloads it.  index.sealed is recovered the same way.
 */

#define IX_HDR 100
/* a machine with no copy reads an index up to this size with its header
 * (one round trip instead of two); a larger one is downloaded after */
#define INDEX_WHOLE_MAX (8u << 20)

/* ---- the sealed index ---------------------------------------------------
 *
 *   sealed := header[64] frame*
 *   header := "MVSEALIX" le32 version(1) le32 frame_size le32 gen
 *             le32 nframes le64 raw_size pub[16] le64 total_size zero[8]
 *   frame  := le32 len  crypt_seal(key_meta, AAD, plain)    (len bytes)
 *   plain  := le32 zlen  zstd(frame_size bytes of index.db, the last
 *             frame shorter)  zero padding to crypt_padded_len(4 + zlen)
 *   AAD    := "mailvault index" NUL  repo id[16]  header[0..48)  le32 i
 *
 * The header is readable so that a reader learns the version with one
 * small read, as it does from index.db's SQLite header; everything in it
 * but total_size is bound into every frame's AAD, so a changed header,
 * a frame dropped, reordered, taken from another publication (pub) or
 * from an older one (gen) does not open.  total_size is known only once
 * the frames are sealed; a reader checks it against the bytes it reads
 * and tells a cut-short candidate by it.  Frames keep memory bounded
 * (two frame buffers) for an index of any size.
 */

#define SX_HDR 64
#define SX_AAD_HDR 48 /* header bytes bound into the AAD */
#define SX_MAGIC "MVSEALIX"
#define SX_VERSION 1
#define SX_FRAME (4u << 20)
#define SX_AAD_LABEL "mailvault index" /* with its NUL: 16 bytes */
#define SX_AAD_LEN (16 + MV_REPO_ID_LEN + SX_AAD_HDR + 4)
#define SX_PUB_LEN 16

struct ix_version {
	uint32_t gen;		 /* application_id; 0: before generations */
	uint64_t size;		 /* bytes */
	int64_t mtime;		 /* for gen 0 */
	bool complete;		 /* size agrees with the header */
	bool sealed;		 /* an index.sealed header */
	uint8_t pub[SX_PUB_LEN]; /* sealed: the publication's random id */
	uint32_t frame_size;	 /* sealed: plain bytes per frame */
	uint32_t nframes;	 /* sealed */
	uint64_t raw;		 /* sealed: bytes of index.db */
	uint8_t hdr[SX_HDR];	 /* sealed: the header as read */
};

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[1] << 8 | p[0];
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p + 4) << 32 | le32(p);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
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

/* The largest frame a writer makes of frame_size plain bytes: what a
 * reader accepts before it allocates. */
static size_t sx_frame_max(uint32_t frame_size)
{
	return crypt_padded_len(4 + ZSTD_compressBound(frame_size)) +
	       CRYPT_OVERHEAD;
}

static int sx_header_parse(const uint8_t *h, size_t len, uint64_t size,
			   struct ix_version *v)
{
	uint64_t total;

	if (len < SX_HDR || memcmp(h, SX_MAGIC, 8) || le32(h + 8) != SX_VERSION)
		return -EBADMSG;
	v->sealed = true;
	v->frame_size = le32(h + 12);
	v->gen = le32(h + 16);
	v->nframes = le32(h + 20);
	v->raw = le64(h + 24);
	memcpy(v->pub, h + 32, SX_PUB_LEN);
	total = le64(h + 48);
	/* sizes a writer never makes are refused before any allocation */
	if (v->frame_size < 4096 || v->frame_size > (64u << 20) || !v->raw ||
	    v->nframes != (v->raw + v->frame_size - 1) / v->frame_size ||
	    total < SX_HDR)
		return -EBADMSG;
	memcpy(v->hdr, h, SX_HDR);
	v->size = size;
	v->complete = size == total;
	return 0;
}

static void sx_aad(const struct repo *r, const uint8_t *hdr, uint32_t i,
		   uint8_t out[SX_AAD_LEN])
{
	memcpy(out, SX_AAD_LABEL, 16);
	memcpy(out + 16, r->cfg.id, MV_REPO_ID_LEN);
	memcpy(out + 16 + MV_REPO_ID_LEN, hdr, SX_AAD_HDR);
	put_le32(out + 16 + MV_REPO_ID_LEN + SX_AAD_HDR, i);
}

static void ix_stamp(const struct ix_version *v, char *out, size_t n)
{
	/* at most 56 bytes: the stamp is read back with a 64-byte limit */
	if (v->sealed) {
		char pub[2 * SX_PUB_LEN + 1];

		mv_hex(v->pub, 8, pub);
		snprintf(out, n, "sealed %u %llu %s\n", v->gen,
			 (unsigned long long)v->size, pub);
	} else if (v->gen) {
		snprintf(out, n, "gen=%u size=%llu\n", v->gen,
			 (unsigned long long)v->size);
	} else {
		snprintf(out, n, "%llu %lld\n", (unsigned long long)v->size,
			 (long long)v->mtime);
	}
}

/* ---- the highest generation this machine has seen ---------------------
 *
 * index.highest in the cache: a sealed index older than a version this
 * machine fetched or published is a rollback or a replay by the server,
 * refused.  (Not for plain indexes: anyone who can write the repository
 * can write any index there, so nothing would be gained.) */

static void highest_path(const struct repo *r, char *out, size_t n)
{
	const char *slash = strrchr(r->stamp_path, '/');
	int dir = slash ? (int)(slash - r->stamp_path) : 0;

	snprintf(out, n, "%.*s/index.highest", dir, r->stamp_path);
}

static uint32_t highest_read(const struct repo *r)
{
	char path[PATH_MAX], *s = NULL;
	unsigned long v = 0;

	if (!r->stamp_path)
		return 0;
	highest_path(r, path, sizeof(path));
	if (!mv_read_file(path, 64, &s, NULL, NULL)) {
		v = strtoul(s, NULL, 10);
		free(s);
	}
	return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static void highest_note(const struct repo *r, uint32_t gen)
{
	char path[PATH_MAX], text[16];
	int n;

	if (!r->stamp_path || gen <= highest_read(r))
		return;
	highest_path(r, path, sizeof(path));
	n = snprintf(text, sizeof(text), "%u\n", gen);
	mv_write_file_atomic_mode(path, text, (size_t)n, 0600, NULL);
}

/* Read until len bytes or the end of the file.  A local repository's
 * file is opened for each read: the local backend keeps descriptors per
 * path, and one opened before a publication replaced the file would go
 * on reading the old one (backend.h, contract 5). */
static int read_full(struct repo *r, const char *name, uint64_t off, void *buf,
		     size_t len, size_t *got, struct mv_err *err)
{
	const char *root = r->be->ops->local_root(r->be);

	*got = 0;
	if (root) {
		char path[PATH_MAX];
		int fd;

		snprintf(path, sizeof(path), "%s/%s", root, name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return errno == ENOENT
				       ? -ENOENT
				       : mv_err_set(err, -errno,
						    "cannot open '%s': %s",
						    path, strerror(errno));
		while (*got < len) {
			ssize_t n = pread(fd, (uint8_t *)buf + *got, len - *got,
					  (off_t)(off + *got));

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				int e = errno;

				close(fd);
				return mv_err_set(err, -e,
						  "cannot read '%s': %s", path,
						  strerror(e));
			}
			if (!n)
				break;
			*got += (size_t)n;
		}
		close(fd);
		return 0;
	}
	while (*got < len) {
		size_t n = 0;
		int rc = r->be->ops->read_at(r->be, name, off + *got,
					     (uint8_t *)buf + *got, len - *got,
					     &n, err);

		if (rc)
			return rc;
		if (!n)
			break;
		*got += n;
	}
	return 0;
}

/* Version of the server's copy called name, from its header, read into
 * head; *head_got is the bytes read.  A remote file is stat'ed and read
 * in the same round trip, and when it is at most `whole` bytes (head
 * holds that many) it is read whole: a machine with no copy takes a
 * small index in the round trip that asks its version. */
static int remote_version_head(struct repo *r, const char *name,
			       struct ix_version *v, uint8_t *head,
			       size_t whole, size_t *head_got,
			       struct mv_err *err)
{
	size_t got = 0;
	bool sealed = repo_index_is_sealed(r);
	size_t hdr = sealed ? SX_HDR : IX_HDR;
	int rc;

	memset(v, 0, sizeof(*v));
	*head_got = 0;
	if (!r->be->ops->local_root(r->be)) {
		/* the stat and the open go out together */
		rc = backend_stat_read(r->be, name, &v->size, &v->mtime, head,
				       hdr, whole, &got, err);
	} else {
		rc = r->be->ops->stat(r->be, name, &v->size, &v->mtime, err);
		if (!rc)
			rc = read_full(r, name, 0, head, hdr, &got, err);
	}
	if (!rc && sealed && sx_header_parse(head, got, v->size, v))
		rc = mv_err_set_damaged(err, -EBADMSG,
					"'%s' in '%s' is not a sealed index "
					"(damaged header)",
					name, r->location);
	else if (!rc && !sealed && ix_header_parse(head, got, v->size, v))
		rc = mv_err_set(err, -EBADMSG, "'%s' in '%s' is not an index",
				name, r->location);
	if (!rc)
		*head_got = got;
	return rc;
}

static int remote_version(struct repo *r, const char *name,
			  struct ix_version *v, struct mv_err *err)
{
	uint8_t h[IX_HDR];
	size_t got;

	return remote_version_head(r, name, v, h, 0, &got, err);
}

struct aside {
	char best[128];
	const char *base; /* index.db or index.sealed */
	struct ix_version v;
	struct repo *r;
};

static int aside_one(const char *name, bool is_dir, uint64_t size, void *arg)
{
	struct aside *a = arg;
	struct ix_version v;
	size_t bl = strlen(a->base);

	(void)size;
	if (is_dir || strncmp(name, a->base, bl) ||
	    (strncmp(name + bl, ".old-", 5) && strncmp(name + bl, ".tmp-", 5)))
		return 0;
	if (remote_version(a->r, name, &v, NULL) || !v.complete)
		return 0;
	if (!a->best[0] || v.gen > a->v.gen) {
		snprintf(a->best, sizeof(a->best), "%s", name);
		a->v = v;
	}
	return 0;
}

/* The index is missing for good: find what a dead publication left. */
static int remote_index_aside(struct repo *r, char *out, size_t n)
{
	struct aside a;

	memset(&a, 0, sizeof(a));
	a.r = r;
	a.base = ix_name(r);
	if (r->be->ops->list(r->be, "", aside_one, &a, NULL) || !a.best[0])
		return -ENOENT;
	if (r->locked && !r->be->ops->rename(r->be, a.best, a.base, NULL))
		snprintf(out, n, "%s", a.base);
	else
		snprintf(out, n, "%s", a.best);
	return 0;
}

/* Copy the plain index `name` into fd, its first head_len bytes from
 * head (read with its header); *got is the version downloaded. */
static int plain_download(struct repo *r, const char *name, int fd,
			  const char *tmp, uint64_t size, const uint8_t *head,
			  size_t head_len, struct ix_version *got,
			  struct mv_err *err)
{
	uint8_t *buf = malloc(1 << 20);
	uint64_t off = 0;
	int rc = 0;

	if (!buf)
		return mv_err_set(err, -ENOMEM, "out of memory");
	if (head_len) {
		rc = mv_write_full(fd, head, head_len);
		if (rc) {
			mv_err_set(err, rc, "cannot write '%s'", tmp);
			goto out;
		}
		off = head_len;
	}
	/* up to the size its header was read with (no read of the end of
	 * the file, a round trip): a file replaced meanwhile has a header
	 * that does not match what was read, checked below */
	while (off < size) {
		size_t n = 0, want = (size_t)MV_MIN(size - off, 1u << 20);

		rc = r->be->ops->read_at(r->be, name, off, buf, want, &n, err);
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
	if (mv_pread_full(fd, buf, IX_HDR, 0) ||
	    ix_header_parse(buf, IX_HDR, off, got) || !got->complete)
		rc = mv_err_set(err, -EAGAIN,
				"the index of '%s' changed while it was "
				"downloaded",
				r->location);
out:
	free(buf);
	return rc;
}

static int sx_damaged(struct repo *r, const char *name, struct mv_err *err,
		      const char *what, unsigned long long a,
		      unsigned long long b)
{
	return mv_err_set_damaged(err, -EBADMSG,
				  "sealed index '%s' of '%s' is damaged or was "
				  "tampered with: %s %llu of %llu",
				  name, r->location, what, a, b);
}

/* Open the sealed index `name` into fd (the plain index.db bytes); *got
 * is the version read.  -EBADMSG with the frame named when a frame does
 * not open or the file is cut short or too long. */
static int sealed_download(struct repo *r, const char *name, int fd,
			   const char *tmp, struct ix_version *got,
			   struct mv_err *err)
{
	uint8_t hdr[SX_HDR], aad[SX_AAD_LEN], lenb[4];
	uint8_t *sbuf = NULL, *pbuf = NULL, *obuf = NULL;
	ZSTD_DCtx *dctx = NULL;
	uint64_t off = SX_HDR, total, left;
	size_t n = 0, max;
	uint32_t i;
	int rc;

	rc = read_full(r, name, 0, hdr, SX_HDR, &n, err);
	if (rc)
		return rc;
	if (sx_header_parse(hdr, n, 0, got))
		return mv_err_set_damaged(
			err, -EBADMSG,
			"sealed index '%s' of '%s' has a damaged "
			"header",
			name, r->location);
	total = le64(hdr + 48);
	max = sx_frame_max(got->frame_size);
	sbuf = malloc(max);
	pbuf = malloc(max);
	obuf = malloc(got->frame_size);
	dctx = ZSTD_createDCtx();
	if (!sbuf || !pbuf || !obuf || !dctx) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	left = got->raw;
	for (i = 0; i < got->nframes; i++) {
		size_t slen, plen, zlen, want, dn;

		want = left < got->frame_size ? (size_t)left : got->frame_size;
		rc = read_full(r, name, off, lenb, 4, &n, err);
		if (rc)
			goto out;
		slen = le32(lenb);
		if (n < 4 || slen <= CRYPT_OVERHEAD + 4 || slen > max) {
			rc = sx_damaged(r, name, err, "bad length of frame",
					i + 1ULL, got->nframes);
			goto out;
		}
		rc = read_full(r, name, off + 4, sbuf, slen, &n, err);
		if (rc)
			goto out;
		if (n < slen) {
			rc = sx_damaged(r, name, err, "cut short in frame",
					i + 1ULL, got->nframes);
			goto out;
		}
		plen = slen - CRYPT_OVERHEAD;
		sx_aad(r, hdr, i, aad);
		if (crypt_open(r->key_meta, aad, sizeof(aad), sbuf, slen,
			       pbuf)) {
			rc = sx_damaged(r, name, err,
					"authentication failed for frame",
					i + 1ULL, got->nframes);
			goto out;
		}
		zlen = le32(pbuf);
		dn = zlen <= plen - 4
			     ? ZSTD_decompressDCtx(dctx, obuf, got->frame_size,
						   pbuf + 4, zlen)
			     : 0;
		if (zlen > plen - 4 || ZSTD_isError(dn) || dn != want) {
			rc = sx_damaged(r, name, err, "bad content in frame",
					i + 1ULL, got->nframes);
			goto out;
		}
		rc = mv_write_full(fd, obuf, dn);
		if (rc) {
			mv_err_set(err, rc, "cannot write '%s'", tmp);
			goto out;
		}
		left -= dn;
		off += 4 + slen;
	}
	/* nothing may follow the last frame, and the header's total (not in
	 * the AAD) must agree */
	rc = read_full(r, name, off, lenb, 1, &n, err);
	if (rc)
		goto out;
	if (n || off != total) {
		rc = sx_damaged(r, name, err, "bytes past the last frame: size",
				(unsigned long long)off + n,
				(unsigned long long)total);
		goto out;
	}
	got->size = total;
	got->complete = true;
out:
	ZSTD_freeDCtx(dctx);
	free(sbuf);
	if (pbuf)
		crypt_wipe(pbuf, max);
	free(pbuf);
	if (obuf)
		crypt_wipe(obuf, got->frame_size);
	free(obuf);
	return rc;
}

/* An unsealed index must be what its header says: an SQLite file of that
 * generation. */
static int sealed_check_plain(struct repo *r, const char *name, int fd,
			      const struct ix_version *sv, struct mv_err *err)
{
	uint8_t h[IX_HDR];
	struct ix_version pv;

	memset(&pv, 0, sizeof(pv));
	if (mv_pread_full(fd, h, IX_HDR, 0) ||
	    ix_header_parse(h, IX_HDR, sv->raw, &pv) || !pv.complete ||
	    pv.gen != sv->gen)
		return mv_err_set_damaged(
			err, -EBADMSG,
			"sealed index '%s' of '%s' opened but does "
			"not hold an index of generation %u",
			name, r->location, sv->gen);
	return 0;
}

/* Copy the server's index (name) into the cache unless the cached copy is
 * that version. */
static int remote_index_fetch_once(struct repo *r, const char *name,
				   struct mv_err *err)
{
	char stamp[128], *old = NULL, tmp[PATH_MAX] = "";
	struct ix_version v, got;
	bool sealed = repo_index_is_sealed(r);
	uint8_t hdr[IX_HDR], *head = hdr;
	size_t whole = 0, head_got = 0;
	uint32_t highest;
	int fd = -1, rc;

	if (mv_read_file(r->stamp_path, 128, &old, NULL, NULL) ||
	    access(r->index_path, F_OK) != 0) {
		free(old);
		old = NULL;
	}
	/* no copy here: a plain index is wanted whole, so it comes in the
	 * round trip that reads its header when it is small enough */
	if (!old && !sealed && !r->be->ops->local_root(r->be)) {
		head = malloc(INDEX_WHOLE_MAX);
		if (!head) {
			head = hdr;
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		whole = INDEX_WHOLE_MAX;
	}
	rc = remote_version_head(r, name, &v, head, whole, &head_got, err);
	if (rc) {
		if (rc == -ENOENT)
			mv_err_set(err, rc, "repository '%s' has no %s",
				   r->location, ix_name(r));
		goto out;
	}
	/* a part would not be known to be of the same file as the rest */
	if (head_got != v.size || !whole)
		head_got = 0;
	highest = sealed ? highest_read(r) : 0;
	if (sealed && v.gen < highest) {
		char hp[PATH_MAX];

		highest_path(r, hp, sizeof(hp));
		rc = mv_err_set_damaged(
			err, -ESTALE,
			"sealed index '%s' of '%s' is generation %u, older "
			"than generation %u this machine has seen: the "
			"repository was rolled back or an older index was put "
			"back; nothing was read (if it was restored on "
			"purpose, remove '%s' and run again)",
			name, r->location, v.gen, highest, hp);
		goto out;
	}
	ix_stamp(&v, stamp, sizeof(stamp));
	if (old && !strcmp(old, stamp))
		goto out;
	snprintf(tmp, sizeof(tmp), "%s.download", r->index_path);
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = mv_err_set(err, -errno, "cannot write '%s': %s", tmp,
				strerror(errno));
		goto out;
	}
	memset(&got, 0, sizeof(got));
	got.mtime = v.mtime;
	if (sealed) {
		rc = sealed_download(r, name, fd, tmp, &got, err);
		if (!rc)
			rc = sealed_check_plain(r, name, fd, &got, err);
		/* a file replaced by a publication while it was read fails
		 * like a damaged one: tell the two apart */
		if (rc == -EBADMSG && !remote_version(r, name, &v, NULL) &&
		    (v.gen != got.gen || memcmp(v.pub, got.pub, SX_PUB_LEN)))
			rc = -EAGAIN;
		if (!rc && got.gen < highest)
			rc = mv_err_set_damaged(
				err, -ESTALE,
				"sealed index '%s' of '%s' went back "
				"to generation %u",
				name, r->location, got.gen);
	} else {
		rc = plain_download(r, name, fd, tmp, v.size, head, head_got,
				    &got, err);
	}
	if (rc)
		goto out;
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
	rc = mv_write_file_atomic_mode(r->stamp_path, stamp, strlen(stamp),
				       0600, err);
	if (!rc && sealed)
		highest_note(r, got.gen);
out:
	if (fd >= 0)
		close(fd);
	if (rc && tmp[0])
		unlink(tmp);
	if (head != hdr)
		free(head);
	free(old);
	return rc;
}

/* An SFTP v3 server cannot rename over a file, so a writer publishing a
 * new index moves the old one aside first: for about one round trip
 * index.db is missing.  A reader that falls in that window tries again;
 * when it stays missing, a publication died there (see above). */
int repo_remote_index_fetch(struct repo *r, struct mv_err *err)
{
	struct timespec ts = {0, 200 * 1000000L};
	char name[128];
	int i, rc = 0;

	snprintf(name, sizeof(name), "%s", ix_name(r));
	for (i = 0; i < 6; i++) {
		struct mv_err e = MV_ERR_INIT;

		rc = remote_index_fetch_once(r, name, &e);
		if (rc == -EAGAIN)
			continue; /* replaced while downloading */
		if (rc != -ENOENT) {
			/* keep the mark of a damaged sealed index (exit 13) */
			if (rc && e.damaged)
				mv_err_set_damaged(err, rc, "%s",
						   mv_err_msg(&e));
			else if (rc)
				mv_err_set(err, rc, "%s", mv_err_msg(&e));
			return rc;
		}
		if (i == 4 && !remote_index_aside(r, name, sizeof(name)))
			continue;
		if (i < 4)
			nanosleep(&ts, NULL);
	}
	return mv_err_set(err, rc, "repository '%s' has no %s", r->location,
			  ix_name(r));
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
	if (r->pub_gen_known) {
		if (r->pub_gen > gen)
			gen = r->pub_gen;
		r->pub_gen_known = false;
	} else if (!remote_version(r, ix_name(r), &server, NULL) &&
		   server.gen > gen) {
		gen = server.gen;
	}
	if (repo_index_is_sealed(r) && highest_read(r) > gen)
		gen = highest_read(r);
	gen = gen + 1 ? gen + 1 : 1;
	snprintf(sql, sizeof(sql), "PRAGMA application_id=%d", (int32_t)gen);
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return mv_err_set(err, -EIO,
				  "index: cannot set its generation: %s",
				  sqlite3_errmsg(db));
	return 0;
}

void repo_remote_index_check_ahead(struct repo *r)
{
	struct ix_version server;

	r->pub_gen_known = false;
	if (!r->remote || r->segments || repo_index_is_sealed(r))
		return;
	if (!remote_version(r, ix_name(r), &server, NULL)) {
		r->pub_gen = server.gen;
		r->pub_gen_known = true;
	}
}

/* Stream the file fd into the repository as name (temporary name, then
 * rename: a reader never sees half an index). */
static int upload(struct repo *r, int fd, const char *from, const char *name,
		  struct mv_err *err)
{
	struct backend_file *f = NULL;
	uint8_t *buf = malloc(1 << 20);
	ssize_t n;
	int rc;

	if (!buf)
		return mv_err_set(err, -ENOMEM, "out of memory");
	rc = r->be->ops->file_create(r->be, name, &f, err);
	if (rc)
		goto out;
	if (lseek(fd, 0, SEEK_SET) < 0)
		n = -1;
	else
		while ((n = read(fd, buf, 1 << 20)) > 0) {
			rc = r->be->ops->file_write(f, buf, (size_t)n, err);
			if (rc) {
				r->be->ops->file_abort(f);
				goto out;
			}
		}
	if (n < 0) {
		r->be->ops->file_abort(f);
		rc = mv_err_set(err, -errno, "cannot read '%s'", from);
		goto out;
	}
	rc = r->be->ops->file_commit(f, err);
out:
	free(buf);
	return rc;
}

/* Upload the cached plain index of an sftp:// repository without
 * encryption: raise its generation, checkpoint, stream it as index.db.
 * (An encrypted repository publishes commit segments instead:
 * repo_segment.c; its index.sealed is only read, until its first write.) */
int repo_remote_index_publish(struct repo *r, struct mv_err *err)
{
	struct ix_version v;
	struct stat st;
	uint8_t h[IX_HDR];
	int fd = -1, rc;

	if (repo_index_is_sealed(r))
		return mv_err_set(err, -EINVAL,
				  "an encrypted repository's index is "
				  "published as segments");
	rc = gen_bump(r, err);
	if (!rc)
		rc = index_checkpoint(r->ix, err);
	if (rc)
		return rc;
	memset(&v, 0, sizeof(v));
	fd = open(r->index_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mv_err_set(err, -errno, "cannot read '%s': %s",
				  r->index_path, strerror(errno));
	if (mv_pread_full(fd, h, IX_HDR, 0) ||
	    ix_header_parse(h, IX_HDR, 0, &v))
		v.gen = 0; /* no stamp */
	rc = upload(r, fd, r->index_path, IX_PLAIN_NAME, err);
	if (!rc && fstat(fd, &st) == 0)
		v.size = (uint64_t)st.st_size;
	else
		v.gen = 0;
	if (!rc && v.gen) {
		char stamp[64];

		ix_stamp(&v, stamp, sizeof(stamp));
		mv_write_file_atomic_mode(r->stamp_path, stamp, strlen(stamp),
					  0600, NULL);
		snprintf(r->stamp_seen, sizeof(r->stamp_seen), "%s", stamp);
	}
	close(fd);
	return rc;
}
