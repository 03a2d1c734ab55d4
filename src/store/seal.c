/*
 * seal: records, pack tables and trailers of format 2 (include/seal.h).
 *
 * Workload: seal_record runs once per new chunk and node at ingest,
 * seal_record_open once per read; tables and trailers once per pack.  A
 * record costs one plaintext buffer besides the output: libsodium's
 * in-place operation is not part of crypt.h's contract.
 */
#include "seal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

/* fixed bytes of a table entry: id, type, epoch, three 1-byte varints */
#define ENTRY_MIN_LEN (SEAL_ID_LEN + 1 + 1 + 3)
/* largest record header: comp, varint of a u32, varint of a size */
#define RECORD_HDR_MAX (1 + 5 + 10)
/* a sealed table is zstd output of at most SEAL_MAX_TABLE_BODY, padded */
#define TABLE_MAX_PLAIN (2 * (size_t)SEAL_MAX_TABLE_BODY)

static size_t varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static void record_aad(uint8_t aad[SEAL_AAD_LEN], uint8_t type, uint32_t epoch,
		       const uint8_t id[SEAL_ID_LEN])
{
	aad[0] = SEAL_VERSION;
	aad[1] = type;
	mv_put_le32(aad + 2, epoch);
	memcpy(aad + 6, id, SEAL_ID_LEN);
}

/* "table" || name or "trailer" || name; 0 when the name is unusable */
static size_t pack_aad(const char *what, const char *name, uint8_t *out)
{
	size_t w = strlen(what), n;

	if (!name)
		return 0;
	n = strnlen(name, SEAL_MAX_NAME + 1);
	if (!n || n > SEAL_MAX_NAME)
		return 0;
	memcpy(out, what, w);
	memcpy(out + w, name, n);
	return w + n;
}

static int all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;
	size_t i;

	for (i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

size_t seal_record_len(uint32_t dict_id, size_t payload_len)
{
	if (payload_len > SEAL_MAX_PAYLOAD)
		return 0;
	return crypt_padded_len(1 + varint_len(dict_id) +
				varint_len(payload_len) + payload_len) +
	       CRYPT_OVERHEAD;
}

int seal_record(const struct crypt_key *k, uint8_t type, uint32_t epoch,
		const uint8_t id[SEAL_ID_LEN], uint8_t comp, uint32_t dict_id,
		const void *payload, size_t len, struct mv_buf *out,
		struct mv_err *err)
{
	uint8_t aad[SEAL_AAD_LEN], *plain = NULL;
	struct mv_buf hdr = MV_BUF_INIT;
	char hex[2 * SEAL_ID_LEN + 1];
	size_t plen, slen;
	int rc;

	mv_hex(id, SEAL_ID_LEN, hex);
	if (len > SEAL_MAX_PAYLOAD || (len && !payload))
		return mv_err_set(err, -EINVAL,
				  "record %s: payload of %zu bytes is over "
				  "the limit of %u",
				  hex, len, SEAL_MAX_PAYLOAD);
	slen = seal_record_len(dict_id, len);
	plen = slen - CRYPT_OVERHEAD;
	rc = mv_buf_put_u8(&hdr, comp);
	if (!rc)
		rc = mv_buf_put_varint(&hdr, dict_id);
	if (!rc)
		rc = mv_buf_put_varint(&hdr, len);
	if (!rc)
		rc = mv_buf_reserve(out, slen);
	if (!rc) {
		plain = calloc(1, plen); /* calloc: the padding is zeros */
		if (!plain)
			rc = -ENOMEM;
	}
	if (rc) {
		rc = mv_err_set(err, rc, "out of memory sealing record %s",
				hex);
		goto out;
	}
	memcpy(plain, hdr.data, hdr.len);
	if (len)
		memcpy(plain + hdr.len, payload, len);
	record_aad(aad, type, epoch, id);
	rc = crypt_seal(k, aad, sizeof(aad), plain, plen, out->data + out->len);
	if (rc) {
		rc = mv_err_set(err, rc, "cannot seal record %s", hex);
		goto out;
	}
	out->len += slen;
out:
	free(plain);
	mv_buf_release(&hdr);
	return rc;
}

int seal_record_open(const struct crypt_key *k, uint8_t type, uint32_t epoch,
		     const uint8_t id[SEAL_ID_LEN], const void *sealed,
		     size_t len, uint8_t *comp, uint32_t *dict_id,
		     struct mv_buf *payload, struct mv_err *err)
{
	uint8_t aad[SEAL_AAD_LEN], c = 0;
	char hex[2 * SEAL_ID_LEN + 1];
	struct mv_reader r;
	uint64_t d = 0, n = 0;
	size_t plen, hdr;
	const char *why;
	int rc;

	mv_hex(id, SEAL_ID_LEN, hex);
	mv_buf_reset(payload);
	if (len < CRYPT_OVERHEAD + 16 ||
	    len - CRYPT_OVERHEAD >
		    crypt_padded_len(RECORD_HDR_MAX + SEAL_MAX_PAYLOAD))
		return mv_err_set(err, -EBADMSG,
				  "record %s (type %u): impossible size of "
				  "%zu bytes",
				  hex, type, len);
	plen = len - CRYPT_OVERHEAD;
	if (mv_buf_reserve(payload, plen))
		return mv_err_set(err, -ENOMEM,
				  "out of memory opening record %s", hex);
	record_aad(aad, type, epoch, id);
	if (crypt_open(k, aad, sizeof(aad), sealed, len, payload->data))
		return mv_err_set(err, -EBADMSG,
				  "record %s (type %u, epoch %u): "
				  "authentication failed",
				  hex, type, epoch);
	/* authentic, so written by a holder of the key: a malformed
	 * plaintext is a writer's bug or a leaked key, refused alike */
	mv_reader_init(&r, payload->data, plen);
	why = "header";
	if (mv_reader_u8(&r, &c) || mv_reader_varint(&r, &d) ||
	    mv_reader_varint(&r, &n) || d > UINT32_MAX)
		goto malformed;
	hdr = (size_t)(r.p - payload->data);
	/* shortest varints only: one plaintext per record */
	if (hdr != 1 + varint_len(d) + varint_len(n))
		goto malformed;
	why = "payload length";
	if (n > SEAL_MAX_PAYLOAD || n > plen - hdr)
		goto malformed;
	why = "padding";
	if (crypt_padded_len(hdr + (size_t)n) != plen ||
	    !all_zero(payload->data + hdr + n, plen - hdr - (size_t)n))
		goto malformed;
	memmove(payload->data, payload->data + hdr, (size_t)n);
	payload->len = (size_t)n;
	*comp = c;
	*dict_id = (uint32_t)d;
	return 0;
malformed:
	crypt_wipe(payload->data, plen);
	rc = mv_err_set(err, -EBADMSG,
			"record %s (type %u, epoch %u): malformed %s", hex,
			type, epoch, why);
	return rc;
}

static int entries_check(const struct seal_entry *e, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!e[i].stored)
			return -1;
		if (i && e[i].offset < e[i - 1].offset + e[i - 1].stored)
			return -1;
		if (e[i].offset > UINT64_MAX - e[i].stored)
			return -1;
	}
	return 0;
}

int seal_table(const struct crypt_key *k, const char *name, uint8_t kind,
	       const struct seal_entry *e, size_t n, struct mv_buf *out,
	       struct mv_err *err)
{
	uint8_t aad[8 + SEAL_MAX_NAME], *plain = NULL;
	struct mv_buf body = MV_BUF_INIT;
	size_t aad_len = pack_aad("table", name, aad), bound, csize, plen;
	size_t i;
	int rc = 0;

	if (!aad_len)
		return mv_err_set(err, -EINVAL, "pack table: bad pack name");
	if ((n && !e) || entries_check(e, n))
		return mv_err_set(err, -EINVAL,
				  "pack '%s': table entries overlap or are "
				  "out of order",
				  name);
	rc = mv_buf_put_u8(&body, kind);
	if (!rc)
		rc = mv_buf_put_varint(&body, n);
	for (i = 0; !rc && i < n; i++) {
		rc = mv_buf_append(&body, e[i].id, SEAL_ID_LEN);
		if (!rc)
			rc = mv_buf_put_u8(&body, e[i].type);
		if (!rc)
			rc = mv_buf_put_u8(&body, e[i].epoch);
		if (!rc)
			rc = mv_buf_put_varint(&body, e[i].offset);
		if (!rc)
			rc = mv_buf_put_varint(&body, e[i].stored);
		if (!rc)
			rc = mv_buf_put_varint(&body, e[i].raw);
	}
	if (rc)
		goto oom;
	if (body.len > SEAL_MAX_TABLE_BODY) {
		rc = mv_err_set(err, -EINVAL,
				"pack '%s': table of %zu entries is over the "
				"limit",
				name, n);
		goto out;
	}
	bound = ZSTD_compressBound(body.len);
	plain = malloc(crypt_padded_len(bound));
	if (!plain)
		goto oom;
	csize = ZSTD_compress(plain, bound, body.data, body.len, 3);
	if (ZSTD_isError(csize)) {
		rc = mv_err_set(err, -EIO, "pack '%s': table: zstd: %s", name,
				ZSTD_getErrorName(csize));
		goto out;
	}
	plen = crypt_padded_len(csize);
	memset(plain + csize, 0, plen - csize);
	if (mv_buf_reserve(out, plen + CRYPT_OVERHEAD))
		goto oom;
	rc = crypt_seal(k, aad, aad_len, plain, plen, out->data + out->len);
	if (rc) {
		rc = mv_err_set(err, rc, "pack '%s': cannot seal the table",
				name);
		goto out;
	}
	out->len += plen + CRYPT_OVERHEAD;
	goto out;
oom:
	rc = mv_err_set(err, -ENOMEM,
			"out of memory sealing the table of "
			"pack '%s'",
			name);
out:
	free(plain);
	mv_buf_release(&body);
	return rc;
}

/* Decode a table body; -1 when malformed, -2 out of memory. */
static int table_decode(const uint8_t *p, size_t len, struct seal_table *t)
{
	struct mv_reader r;
	uint64_t n, off, stored, raw;
	size_t i;

	mv_reader_init(&r, p, len);
	if (mv_reader_u8(&r, &t->kind) || mv_reader_varint(&r, &n))
		return -1;
	/* a count is checked against the bytes left before allocating */
	if (n > (uint64_t)(r.end - r.p) / ENTRY_MIN_LEN)
		return -1;
	t->n = (size_t)n;
	t->e = calloc(t->n ? t->n : 1, sizeof(*t->e));
	if (!t->e)
		return -2;
	for (i = 0; i < t->n; i++) {
		struct seal_entry *e = &t->e[i];

		if (mv_reader_fixed(&r, e->id, SEAL_ID_LEN) ||
		    mv_reader_u8(&r, &e->type) || mv_reader_u8(&r, &e->epoch) ||
		    mv_reader_varint(&r, &off) ||
		    mv_reader_varint(&r, &stored) ||
		    mv_reader_varint(&r, &raw) || stored > UINT32_MAX ||
		    raw > UINT32_MAX)
			return -1;
		e->offset = off;
		e->stored = (uint32_t)stored;
		e->raw = (uint32_t)raw;
	}
	if (!mv_reader_done(&r) || entries_check(t->e, t->n))
		return -1;
	return 0;
}

int seal_table_open(const struct crypt_key *k, const char *name,
		    const void *sealed, size_t len, struct seal_table *out,
		    struct mv_err *err)
{
	uint8_t aad[8 + SEAL_MAX_NAME], *plain = NULL, *body = NULL;
	size_t aad_len = pack_aad("table", name, aad), plen, fsize;
	struct seal_table t = {0, 0, NULL};
	unsigned long long csize;
	const char *why = "";
	int rc;

	if (!aad_len)
		return mv_err_set(err, -EINVAL, "pack table: bad pack name");
	if (len < CRYPT_OVERHEAD || len - CRYPT_OVERHEAD > TABLE_MAX_PLAIN)
		return mv_err_set(err, -EBADMSG,
				  "pack '%s': table: impossible size of %zu "
				  "bytes",
				  name, len);
	plen = len - CRYPT_OVERHEAD;
	plain = malloc(plen ? plen : 1);
	if (!plain)
		goto oom;
	if (crypt_open(k, aad, aad_len, sealed, len, plain)) {
		rc = mv_err_set(err, -EBADMSG,
				"pack '%s': table: authentication failed",
				name);
		goto out;
	}
	why = "compressed table";
	fsize = ZSTD_findFrameCompressedSize(plain, plen);
	if (ZSTD_isError(fsize))
		goto malformed;
	why = "padding";
	if (crypt_padded_len(fsize) != plen ||
	    !all_zero(plain + fsize, plen - fsize))
		goto malformed;
	why = "table size";
	csize = ZSTD_getFrameContentSize(plain, fsize);
	if (csize == ZSTD_CONTENTSIZE_UNKNOWN ||
	    csize == ZSTD_CONTENTSIZE_ERROR || csize > SEAL_MAX_TABLE_BODY)
		goto malformed;
	body = malloc(csize ? (size_t)csize : 1);
	if (!body)
		goto oom;
	why = "compressed table";
	if (ZSTD_decompress(body, (size_t)csize, plain, fsize) != csize)
		goto malformed;
	why = "table entries";
	rc = table_decode(body, (size_t)csize, &t);
	if (rc == -2)
		goto oom;
	if (rc)
		goto malformed;
	*out = t;
	t.e = NULL;
	rc = 0;
	goto out;
malformed:
	rc = mv_err_set(err, -EBADMSG, "pack '%s': table: malformed %s", name,
			why);
	goto out;
oom:
	rc = mv_err_set(err, -ENOMEM,
			"out of memory opening the table of pack '%s'", name);
out:
	free(t.e);
	free(body);
	free(plain);
	return rc;
}

void seal_table_release(struct seal_table *t)
{
	free(t->e);
	t->e = NULL;
	t->n = 0;
}

int seal_trailer(const struct crypt_key *k, const char *name,
		 const struct seal_trailer *t, uint8_t out[SEAL_TRAILER_LEN],
		 struct mv_err *err)
{
	uint8_t aad[8 + SEAL_MAX_NAME], plain[SEAL_TRAILER_PLAIN_LEN];
	size_t aad_len = pack_aad("trailer", name, aad);
	int rc;

	if (!aad_len)
		return mv_err_set(err, -EINVAL, "pack trailer: bad pack name");
	mv_put_le64(plain, t->table_offset);
	mv_put_le32(plain + 8, t->table_len);
	mv_put_le32(plain + 12, t->records);
	plain[16] = t->kind;
	rc = crypt_seal(k, aad, aad_len, plain, sizeof(plain), out);
	if (rc)
		return mv_err_set(err, rc, "pack '%s': cannot seal the trailer",
				  name);
	return 0;
}

int seal_trailer_open(const struct crypt_key *k, const char *name,
		      const uint8_t in[SEAL_TRAILER_LEN],
		      struct seal_trailer *out, struct mv_err *err)
{
	uint8_t aad[8 + SEAL_MAX_NAME], plain[SEAL_TRAILER_PLAIN_LEN];
	size_t aad_len = pack_aad("trailer", name, aad);

	if (!aad_len)
		return mv_err_set(err, -EINVAL, "pack trailer: bad pack name");
	if (crypt_open(k, aad, aad_len, in, SEAL_TRAILER_LEN, plain))
		return mv_err_set(err, -EBADMSG,
				  "pack '%s': trailer: authentication failed",
				  name);
	out->table_offset = mv_le64(plain);
	out->table_len = mv_le32(plain + 8);
	out->records = mv_le32(plain + 12);
	out->kind = plain[16];
	return 0;
}

int seal_pack_check(const char *name, uint64_t pack_size,
		    const struct seal_trailer *tr, const struct seal_table *t,
		    struct mv_err *err)
{
	const char *why = NULL;

	if (pack_size < SEAL_TRAILER_LEN ||
	    tr->table_offset > pack_size - SEAL_TRAILER_LEN ||
	    (uint64_t)tr->table_len !=
		    pack_size - SEAL_TRAILER_LEN - tr->table_offset)
		why = "the table does not end where the trailer begins";
	else if (tr->records != t->n)
		why = "the trailer and the table count different records";
	else if (tr->kind != t->kind)
		why = "the trailer and the table give different kinds";
	else if (t->n && t->e[t->n - 1].offset + t->e[t->n - 1].stored >
				 tr->table_offset)
		why = "a record overlaps the table";
	if (why)
		return mv_err_set(err, -EBADMSG, "pack '%s' (%llu bytes): %s",
				  name, (unsigned long long)pack_size, why);
	return 0;
}
