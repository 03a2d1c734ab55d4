/*
 * fuzz_stalwart_dump: a Stalwart server dump file (subspace_<c>, an LZ4
 * frame of length-prefixed records).  The first input byte sets the size
 * of the pieces the rest is fed in, as a backup reads a file; the same
 * bytes then go through the pull scanner, and a value the scan reported
 * is extracted again by offset and must match.
 */
#include "fuzz.h"
#include "mail_stalwart.h"

struct feed {
	const uint8_t *p;
	size_t n, off, piece;
};

static int rd(void *ctx, void *buf, size_t n, size_t *got)
{
	struct feed *f = ctx;
	size_t k = f->n - f->off;

	if (k > n)
		k = n;
	if (k > f->piece)
		k = f->piece;
	memcpy(buf, f->p + f->off, k);
	f->off += k;
	*got = k;
	return 0;
}

struct first {
	struct mv_buf value;
	uint64_t off;
	bool have;
	const struct mail_stalwart_dump_scanner *sc;
	const struct mail_stalwart_dump_info *info;
};

static int on_record(void *ctx, const uint8_t *key, size_t key_len,
		     const uint8_t *value, size_t value_len)
{
	struct first *f = ctx;

	FUZZ_CHECK(key || !key_len);
	FUZZ_CHECK(value || !value_len);
	if (f->have || !value_len || value_len > 4096)
		return 0;
	f->off = f->info ? f->info->value_offset
			 : mail_stalwart_dump_scanner_info(f->sc)->value_offset;
	FUZZ_CHECK(!mv_buf_append(&f->value, value, value_len));
	f->have = true;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mail_stalwart_dump_scanner *sc;
	struct mail_stalwart_dump_info info;
	struct mv_err err = MV_ERR_INIT;
	struct first a, b;
	struct feed f;
	size_t piece, off;
	int rc1 = 0, rc2;

	if (!size)
		return 0;
	piece = (size_t)data[0] + 1;
	data++;
	size--;
	memset(&a, 0, sizeof(a));
	FUZZ_CHECK(!mail_stalwart_dump_scanner_new(on_record, &a, &sc, &err));
	a.sc = sc;
	for (off = 0; !rc1 && off < size; off += piece) {
		size_t k = size - off < piece ? size - off : piece;

		rc1 = mail_stalwart_dump_scanner_feed(sc, data + off, k, &err);
	}
	if (!rc1)
		rc1 = mail_stalwart_dump_scanner_end(sc, &err);
	mail_stalwart_dump_scanner_free(sc);

	memset(&b, 0, sizeof(b));
	memset(&info, 0, sizeof(info));
	b.info = &info;
	f = (struct feed){data, size, 0, piece};
	rc2 = mail_stalwart_dump_scan(rd, &f, on_record, &b, &info, &err);
	FUZZ_CHECK(rc1 <= 0 && rc2 <= 0);
	/* the two scanners see the same records */
	FUZZ_CHECK(a.have == b.have);
	if (a.have) {
		struct mv_buf x = MV_BUF_INIT;

		FUZZ_CHECK(a.off == b.off && a.value.len == b.value.len &&
			   !memcmp(a.value.data, b.value.data, a.value.len));
		f = (struct feed){data, size, 0, piece};
		FUZZ_CHECK(!mail_stalwart_dump_extract(rd, &f, a.off,
						       a.value.len, &x, &err));
		FUZZ_CHECK(x.len == a.value.len &&
			   !memcmp(x.data, a.value.data, x.len));
		mv_buf_release(&x);
	}
	mv_buf_release(&a.value);
	mv_buf_release(&b.value);
	return 0;
}
