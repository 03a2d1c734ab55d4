/*
 * pack: writing and scanning pack files (format in include/pack.h).
 * Writes are buffered (1 MiB) so a pack of small messages costs few
 * syscalls; a running XXH64 over every byte feeds the footer checksum.
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
	uint64_t size;	    /* bytes written, buffered included */
	uint32_t records;   /* records appended */
	XXH64_state_t *sum; /* checksum of every byte so far */
	struct mv_buf wbuf; /* pending bytes */
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
	XXH64_freeState(pw->sum);
	mv_buf_release(&pw->wbuf);
	free(pw);
}

int pack_writer_open(struct backend *be, enum pack_kind kind,
		     struct pack_writer **out, struct mv_err *err)
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

int pack_writer_seal(struct pack_writer *pw, struct mv_err *err)
{
	uint8_t foot[PACK_FOOTER_LEN];
	uint64_t sum;
	int rc;

	memcpy(foot, footer_magic, 8);
	mv_put_le32(foot + 8, pw->records);
	mv_put_le32(foot + 12, 0);
	mv_put_le64(foot + 16, pw->size);
	sum = XXH64_digest(pw->sum);
	mv_put_le64(foot + 24, sum);
	rc = put(pw, foot, sizeof(foot), err);
	if (!rc)
		rc = flush(pw, err);
	if (rc) {
		pw->be->ops->file_abort(pw->file);
		writer_free(pw);
		return rc;
	}
	rc = pw->be->ops->file_commit(pw->file, err);
	writer_free(pw);
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
