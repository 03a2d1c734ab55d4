/*
 * pack: writing and scanning pack files (format in include/pack.h).
 * Writes are buffered (1 MiB) so a pack of small messages costs few
 * syscalls; a running XXH64 over every byte feeds the footer checksum.
 * A format 2 writer keeps the table entries instead and seals them, with
 * the trailer, when the pack is sealed.
 */
#include "pack.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "backend.h"
#include "util.h"

#define PACK_VERSION 1
#define PACK_WBUF (1u << 20)

static const uint8_t pack_magic[8] = {'M', 'V', 'P', 'A', 'C', 'K', 0, 1};
static const uint8_t footer_magic[8] = {'M', 'V', 'P', 'E', 'N', 'D', 0, 1};
static const uint8_t rec_magic[4] = {'M', 'V', 'R', '1'};

struct pack_writer {
	struct backend *be;
	struct backend_file *file; /* temporary file until sealed */
	char name[PACK_NAME_LEN + 1];
	enum pack_kind kind;
	uint64_t size;		      /* bytes written, buffered included */
	uint32_t records;	      /* records appended */
	XXH64_state_t *sum;	      /* checksum of every byte so far */
	struct mv_buf wbuf;	      /* pending bytes */
	int format;		      /* 1 or 2 */
	const struct crypt_key *meta; /* format 2: seals table, trailer */
	struct seal_entry *ents;      /* format 2: the table so far */
	size_t cap;
};

void pack_rec_encode(const struct pack_rec *rec, uint8_t out[PACK_REC_HDR_LEN])
{
	memcpy(out, rec_magic, 4);
	out[4] = rec->type;
	out[5] = rec->comp;
	out[6] = (uint8_t)rec->flags;
	out[7] = (uint8_t)(rec->flags >> 8);
	mv_put_le32(out + 8, rec->raw_size);
	mv_put_le32(out + 12, rec->stored_size);
	memcpy(out + 16, rec->id, MV_ID_LEN);
	mv_put_le64(out + 48, rec->checksum);
	mv_put_le32(out + 56, rec->dict_id);
	mv_put_le32(out + 60, (uint32_t)XXH64(out, 60, 0));
}

int pack_rec_decode(const uint8_t in[PACK_REC_HDR_LEN], struct pack_rec *out)
{
	if (memcmp(in, rec_magic, 4) ||
	    mv_le32(in + 60) != (uint32_t)XXH64(in, 60, 0))
		return -EBADMSG;
	out->type = in[4];
	out->comp = in[5];
	out->flags = (uint16_t)(in[6] | in[7] << 8);
	out->raw_size = mv_le32(in + 8);
	out->stored_size = mv_le32(in + 12);
	memcpy(out->id, in + 16, MV_ID_LEN);
	out->checksum = mv_le64(in + 48);
	out->dict_id = mv_le32(in + 56);
	if (out->stored_size > PACK_MAX_RECORD ||
	    out->raw_size > PACK_MAX_RECORD)
		return -EBADMSG;
	return 0;
}

void pack_path(const char *name, char *out, size_t n)
{
	snprintf(out, n, "packs/%.2s/%s", name, name);
}

static int random_name(char out[PACK_NAME_LEN + 1], struct mv_err *err)
{
	uint8_t raw[PACK_NAME_LEN / 2];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return mv_err_set(err, -errno, "cannot open /dev/urandom: %s",
				  strerror(errno));
	rc = mv_pread_full(fd, raw, sizeof(raw), 0);
	close(fd);
	if (rc)
		return mv_err_set(err, rc, "cannot read /dev/urandom");
	mv_hex(raw, sizeof(raw), out);
	return 0;
}

static int flush(struct pack_writer *pw, struct mv_err *err)
{
	int rc;

	if (!pw->wbuf.len)
		return 0;
	rc = pw->be->ops->file_write(pw->file, pw->wbuf.data, pw->wbuf.len,
				     err);
	pw->wbuf.len = 0;
	return rc;
}

static int put(struct pack_writer *pw, const void *p, size_t n,
	       struct mv_err *err)
{
	int rc;

	XXH64_update(pw->sum, p, n);
	pw->size += n;
	if (n >= PACK_WBUF) {
		rc = flush(pw, err);
		return rc ? rc : pw->be->ops->file_write(pw->file, p, n, err);
	}
	if (pw->wbuf.len + n > PACK_WBUF) {
		rc = flush(pw, err);
		if (rc)
			return rc;
	}
	if (mv_buf_append(&pw->wbuf, p, n))
		return mv_err_set(err, -ENOMEM, "out of memory");
	return 0;
}

static void writer_free(struct pack_writer *pw)
{
	free(pw->ents);
	XXH64_freeState(pw->sum);
	mv_buf_release(&pw->wbuf);
	free(pw);
}

static int writer_open(struct backend *be, enum pack_kind kind,
		       const struct crypt_key *meta, struct pack_writer **out,
		       struct mv_err *err)
{
	struct pack_writer *pw;
	char path[128], dir[32];
	uint8_t hdr[PACK_HDR_LEN];
	int rc;

	pw = calloc(1, sizeof(*pw));
	if (!pw)
		return mv_err_set(err, -ENOMEM, "out of memory");
	pw->be = be;
	pw->kind = kind;
	pw->format = meta ? 2 : 1;
	pw->meta = meta;
	pw->sum = XXH64_createState();
	if (!pw->sum || mv_buf_reserve(&pw->wbuf, PACK_WBUF)) {
		writer_free(pw);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	XXH64_reset(pw->sum, 0);
	rc = random_name(pw->name, err);
	if (rc)
		goto fail;
	snprintf(dir, sizeof(dir), "packs/%.2s", pw->name);
	rc = be->ops->mkdir(be, dir, err);
	if (rc)
		goto fail;
	pack_path(pw->name, path, sizeof(path));
	rc = be->ops->file_create(be, path, &pw->file, err);
	if (rc)
		goto fail;
	if (pw->format == 2) {
		*out = pw; /* no header: nothing in a pack is readable */
		return 0;
	}
	memcpy(hdr, pack_magic, 8);
	mv_put_le32(hdr + 8, PACK_VERSION);
	mv_put_le32(hdr + 12, (uint32_t)kind);
	rc = put(pw, hdr, sizeof(hdr), err);
	if (rc) {
		be->ops->file_abort(pw->file);
		goto fail;
	}
	*out = pw;
	return 0;
fail:
	writer_free(pw);
	return rc;
}

int pack_writer_open(struct backend *be, enum pack_kind kind,
		     struct pack_writer **out, struct mv_err *err)
{
	return writer_open(be, kind, NULL, out, err);
}

int pack_writer_open2(struct backend *be, enum pack_kind kind,
		      const struct crypt_key *meta, struct pack_writer **out,
		      struct mv_err *err)
{
	if (!meta)
		return mv_err_set(err, -EINVAL, "a format 2 pack needs a key");
	return writer_open(be, kind, meta, out, err);
}

int pack_writer_append_sealed(struct pack_writer *pw, uint8_t type,
			      uint8_t epoch, const uint8_t id[MV_ID_LEN],
			      const void *sealed, size_t len, uint32_t raw,
			      uint64_t *out_offset, struct mv_err *err)
{
	struct seal_entry *e;
	uint64_t at = pw->size;
	int rc;

	if (pw->format != 2 || len > UINT32_MAX)
		return mv_err_set(err, -EINVAL,
				  "pack '%s': not a format 2 "
				  "writer or record too large",
				  pw->name);
	if (pw->records == pw->cap) {
		size_t cap = pw->cap ? 2 * pw->cap : 256;
		struct seal_entry *p = realloc(pw->ents, cap * sizeof(*p));

		if (!p)
			return mv_err_set(err, -ENOMEM, "out of memory");
		pw->ents = p;
		pw->cap = cap;
	}
	rc = put(pw, sealed, len, err);
	if (rc)
		return rc;
	e = &pw->ents[pw->records++];
	memcpy(e->id, id, SEAL_ID_LEN);
	e->type = type;
	e->epoch = epoch;
	e->offset = at;
	e->stored = (uint32_t)len;
	e->raw = raw;
	if (out_offset)
		*out_offset = at;
	return 0;
}

int pack_writer_append(struct pack_writer *pw, const struct pack_rec *rec,
		       const void *payload, uint64_t *out_offset,
		       struct mv_err *err)
{
	uint8_t hdr[PACK_REC_HDR_LEN];
	uint64_t at = pw->size;
	int rc;

	pack_rec_encode(rec, hdr);
	rc = put(pw, hdr, sizeof(hdr), err);
	if (!rc)
		rc = put(pw, payload, rec->stored_size, err);
	if (rc)
		return rc;
	pw->records++;
	if (out_offset)
		*out_offset = at;
	return 0;
}

uint64_t pack_writer_size(const struct pack_writer *pw)
{
	return pw->size;
}

uint32_t pack_writer_records(const struct pack_writer *pw)
{
	return pw->records;
}

const char *pack_writer_name(const struct pack_writer *pw)
{
	return pw->name;
}

/* Format 2's end: the sealed table, then the trailer pointing at it. */
static int put_table(struct pack_writer *pw, struct mv_err *err)
{
	struct mv_buf tab = MV_BUF_INIT;
	struct seal_trailer tr;
	uint8_t out[SEAL_TRAILER_LEN];
	int rc;

	rc = seal_table(pw->meta, pw->name, (uint8_t)pw->kind, pw->ents,
			pw->records, &tab, err);
	if (!rc && tab.len > UINT32_MAX)
		rc = mv_err_set(err, -EINVAL, "pack '%s': table too large",
				pw->name);
	if (rc)
		goto out;
	tr.table_offset = pw->size;
	tr.table_len = (uint32_t)tab.len;
	tr.records = pw->records;
	tr.kind = (uint8_t)pw->kind;
	rc = put(pw, tab.data, tab.len, err);
	if (!rc)
		rc = seal_trailer(pw->meta, pw->name, &tr, out, err);
	if (!rc)
		rc = put(pw, out, sizeof(out), err);
out:
	mv_buf_release(&tab);
	return rc;
}

int pack_writer_seal(struct pack_writer *pw, struct mv_err *err)
{
	return pack_writer_seal_size(pw, NULL, err);
}

int pack_writer_close(struct pack_writer *pw, uint64_t *out_size,
		      struct backend_file **out_file, struct mv_err *err)
{
	int rc;

	*out_file = NULL;
	if (pw->format == 2) {
		rc = put_table(pw, err);
	} else {
		uint8_t foot[PACK_FOOTER_LEN];
		uint64_t sum;

		memcpy(foot, footer_magic, 8);
		mv_put_le32(foot + 8, pw->records);
		mv_put_le32(foot + 12, 0);
		mv_put_le64(foot + 16, pw->size);
		sum = XXH64_digest(pw->sum);
		mv_put_le64(foot + 24, sum);
		rc = put(pw, foot, sizeof(foot), err);
	}
	if (out_size)
		*out_size = pw->size;
	if (!rc)
		rc = flush(pw, err);
	if (rc)
		pw->be->ops->file_abort(pw->file);
	else
		*out_file = pw->file;
	writer_free(pw);
	return rc;
}

int pack_writer_seal_size(struct pack_writer *pw, uint64_t *out_size,
			  struct mv_err *err)
{
	struct backend *be = pw->be;
	struct backend_file *f;
	int rc;

	rc = pack_writer_close(pw, out_size, &f, err);
	if (!rc)
		rc = be->ops->file_commit(f, err);
	return rc;
}

void pack_writer_abort(struct pack_writer *pw)
{
	if (!pw)
		return;
	pw->be->ops->file_abort(pw->file);
	writer_free(pw);
}

/* Read exactly n bytes at off; -EBADMSG when the pack ends first. */
static int read_exact(struct backend *be, const char *path, uint64_t off,
		      void *buf, size_t n, struct mv_err *err)
{
	size_t got = 0;

	while (got < n) {
		size_t k = 0;
		int rc;

		rc = be->ops->read_at(be, path, off + got, (uint8_t *)buf + got,
				      n - got, &k, err);
		if (rc)
			return rc;
		if (!k)
			return -EBADMSG;
		got += k;
	}
	return 0;
}

int pack_scan(struct backend *be, const char *path, bool want_payload,
	      pack_scan_fn fn, void *arg, bool *out_sealed, struct mv_err *err)
{
	uint8_t hdr[PACK_REC_HDR_LEN], foot[PACK_FOOTER_LEN];
	struct mv_buf payload = MV_BUF_INIT;
	uint64_t size, off = PACK_HDR_LEN;
	XXH64_state_t *sum = NULL;
	bool sealed = false;
	int rc;

	*out_sealed = false;
	rc = be->ops->stat(be, path, &size, NULL, err);
	if (rc)
		return rc == -ENOENT ? mv_err_set(err, rc,
						  "pack '%s' is "
						  "missing",
						  path)
				     : rc;
	rc = read_exact(be, path, 0, hdr, PACK_HDR_LEN, err);
	if (rc || memcmp(hdr, pack_magic, 8)) {
		return mv_err_set(err, -EBADMSG, "pack '%s': bad header", path);
	}
	sum = XXH64_createState();
	if (!sum)
		return mv_err_set(err, -ENOMEM, "out of memory");
	XXH64_reset(sum, 0);
	XXH64_update(sum, hdr, PACK_HDR_LEN);
	while (off < size) {
		struct pack_rec rec;

		if (size - off >= PACK_FOOTER_LEN) {
			rc = read_exact(be, path, off, foot, PACK_FOOTER_LEN,
					err);
			if (rc)
				goto out;
			if (!memcmp(foot, footer_magic, 8) &&
			    mv_le64(foot + 16) == off) {
				sealed =
					off + PACK_FOOTER_LEN == size &&
					mv_le64(foot + 24) == XXH64_digest(sum);
				break;
			}
		}
		rc = read_exact(be, path, off, hdr, PACK_REC_HDR_LEN, err);
		if (rc || pack_rec_decode(hdr, &rec)) {
			rc = mv_err_set(err, -EBADMSG,
					"pack '%s': bad record "
					"header at offset %llu",
					path, (unsigned long long)off);
			goto out;
		}
		if (off + PACK_REC_HDR_LEN + rec.stored_size > size) {
			rc = mv_err_set(err, -EBADMSG,
					"pack '%s': record at "
					"offset %llu is truncated",
					path, (unsigned long long)off);
			goto out;
		}
		mv_buf_reset(&payload);
		if (mv_buf_reserve(&payload, rec.stored_size)) {
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		rc = read_exact(be, path, off + PACK_REC_HDR_LEN, payload.data,
				rec.stored_size, err);
		if (rc)
			goto out;
		XXH64_update(sum, hdr, PACK_REC_HDR_LEN);
		XXH64_update(sum, payload.data, rec.stored_size);
		if (XXH64(payload.data, rec.stored_size, 0) != rec.checksum) {
			rc = mv_err_set(err, -EBADMSG,
					"pack '%s': checksum "
					"mismatch in record at offset %llu",
					path, (unsigned long long)off);
			goto out;
		}
		rc = fn(&rec, off, want_payload ? payload.data : NULL, arg);
		if (rc)
			goto out;
		off += PACK_REC_HDR_LEN + rec.stored_size;
	}
	if (!sealed)
		rc = mv_err_set(err, -EBADMSG,
				"pack '%s' was never sealed "
				"(no valid footer)",
				path);
out:
	*out_sealed = sealed;
	XXH64_freeState(sum);
	mv_buf_release(&payload);
	return rc;
}

/* ---- format 2 ---------------------------------------------------- */

int pack_table_read(struct backend *be, const char *name,
		    const struct crypt_key *meta, struct seal_table *out,
		    uint64_t *out_size, struct mv_err *err)
{
	uint8_t tail[SEAL_TRAILER_LEN];
	struct seal_trailer tr;
	struct seal_table t = {0, 0, NULL};
	uint8_t *tab = NULL;
	char path[128];
	uint64_t size = 0;
	int rc;

	pack_path(name, path, sizeof(path));
	rc = be->ops->stat(be, path, &size, NULL, err);
	if (rc)
		return rc == -ENOENT
			       ? mv_err_set(err, rc, "pack %s is missing", name)
			       : rc;
	if (out_size)
		*out_size = size;
	if (size < SEAL_TRAILER_LEN)
		return mv_err_set(err, -EBADMSG,
				  "pack %s: too short for a trailer (%llu "
				  "bytes)",
				  name, (unsigned long long)size);
	rc = read_exact(be, path, size - SEAL_TRAILER_LEN, tail, sizeof(tail),
			err);
	if (rc == -EBADMSG)
		return mv_err_set(err, rc, "pack %s: cut short", name);
	if (!rc)
		rc = seal_trailer_open(meta, name, tail, &tr, err);
	if (rc)
		return rc;
	if (tr.table_offset > size - SEAL_TRAILER_LEN ||
	    tr.table_len != size - SEAL_TRAILER_LEN - tr.table_offset)
		return mv_err_set(err, -EBADMSG,
				  "pack %s: the table is not where the "
				  "trailer says (cut short or grown)",
				  name);
	tab = malloc(tr.table_len ? tr.table_len : 1);
	if (!tab)
		return mv_err_set(err, -ENOMEM, "out of memory");
	rc = read_exact(be, path, tr.table_offset, tab, tr.table_len, err);
	if (rc == -EBADMSG)
		rc = mv_err_set(err, rc, "pack %s: cut short", name);
	if (!rc)
		rc = seal_table_open(meta, name, tab, tr.table_len, &t, err);
	if (!rc)
		rc = seal_pack_check(name, size, &tr, &t, err);
	free(tab);
	if (rc) {
		seal_table_release(&t);
		return rc;
	}
	*out = t;
	return 0;
}
