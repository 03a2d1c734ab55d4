/*
 * Unit tests for pack: records written, sealed and scanned back; a
 * truncated pack, a flipped payload bit and a damaged record header are
 * each detected with the offset of the record.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend.h"
#include "hash.h"
#include "pack.h"

#define NREC 20

struct fx {
	char dir[64];
	struct backend *be;
	char path[128]; /* relative path of the sealed pack */
	char abs[256];
	uint64_t off[NREC];
};

struct seen {
	int n;
	uint64_t off[NREC + 1];
	uint32_t size[NREC + 1];
	uint8_t first_byte[NREC + 1];
};

static int on_rec(const struct pack_rec *rec, uint64_t offset,
		  const void *payload, void *arg)
{
	struct seen *s = arg;

	assert_true(s->n <= NREC);
	s->off[s->n] = offset;
	s->size[s->n] = rec->raw_size;
	s->first_byte[s->n] = payload ? *(const uint8_t *)payload : 0;
	if (payload)
		assert_true(hash_xxh64(payload, rec->stored_size) ==
			    rec->checksum);
	s->n++;
	return 0;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct mv_err err = MV_ERR_INIT;
	struct pack_writer *pw;
	uint8_t payload[1000];
	char name[PACK_NAME_LEN + 1];
	int i;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_pack.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(backend_local_open(f->dir, false, &f->be, &err), 0);
	assert_int_equal(f->be->ops->mkdir(f->be, "packs", &err), 0);
	assert_int_equal(pack_writer_open(f->be, PACK_KIND_DATA, &pw, &err), 0);
	for (i = 0; i < NREC; i++) {
		struct pack_rec rec;

		memset(&rec, 0, sizeof(rec));
		memset(payload, 'a' + i, sizeof(payload));
		rec.type = REC_DATA;
		rec.comp = PACK_COMP_NONE;
		rec.raw_size = rec.stored_size = (uint32_t)(100 + i * 40);
		rec.id[0] = (uint8_t)i;
		rec.checksum = hash_xxh64(payload, rec.stored_size);
		assert_int_equal(
			pack_writer_append(pw, &rec, payload, &f->off[i], &err),
			0);
	}
	assert_int_equal(pack_writer_records(pw), NREC);
	snprintf(name, sizeof(name), "%s", pack_writer_name(pw));
	assert_int_equal(pack_writer_seal(pw, &err), 0);
	pack_path(name, f->path, sizeof(f->path));
	snprintf(f->abs, sizeof(f->abs), "%s/%s", f->dir, f->path);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	backend_close(f->be);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void test_scan_sealed(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct seen s;
	bool sealed = false;
	struct stat st;
	int i;

	memset(&s, 0, sizeof(s));
	assert_int_equal(
		pack_scan(f->be, f->path, true, on_rec, &s, &sealed, &err), 0);
	assert_true(sealed);
	assert_int_equal(s.n, NREC);
	assert_true(f->off[0] == PACK_HDR_LEN);
	for (i = 0; i < NREC; i++) {
		assert_true(s.off[i] == f->off[i]);
		assert_int_equal(s.size[i], 100 + i * 40);
		assert_int_equal(s.first_byte[i], 'a' + i);
	}
	assert_int_equal(stat(f->abs, &st), 0);
	assert_true((uint64_t)st.st_size ==
		    f->off[NREC - 1] + PACK_REC_HDR_LEN + 100 +
			    (NREC - 1) * 40 + PACK_FOOTER_LEN);
}

static void test_truncated(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct seen s;
	bool sealed = true;
	char want[64];

	/* cut in the middle of record 5's payload */
	assert_int_equal(truncate(f->abs, (off_t)f->off[5] + 80), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(
		pack_scan(f->be, f->path, false, on_rec, &s, &sealed, &err),
		-EBADMSG);
	assert_false(sealed);
	assert_int_equal(s.n, 5);
	snprintf(want, sizeof(want), "offset %llu",
		 (unsigned long long)f->off[5]);
	assert_non_null(strstr(err.msg, want));
	/* cut exactly after a record: intact records, but never sealed */
	mv_err_clear(&err);
	assert_int_equal(truncate(f->abs, (off_t)f->off[3]), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(
		pack_scan(f->be, f->path, false, on_rec, &s, &sealed, &err),
		-EBADMSG);
	assert_false(sealed);
	assert_int_equal(s.n, 3);
	assert_non_null(strstr(err.msg, "never sealed"));
}

static void flip(const char *path, uint64_t off, uint8_t mask)
{
	int fd = open(path, O_RDWR);
	uint8_t b;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
	b ^= mask;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}

static void test_flipped_bit(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct seen s;
	bool sealed = true;
	char want[64];

	flip(f->abs, f->off[7] + PACK_REC_HDR_LEN + 10, 0x04);
	memset(&s, 0, sizeof(s));
	assert_int_equal(
		pack_scan(f->be, f->path, true, on_rec, &s, &sealed, &err),
		-EBADMSG);
	assert_int_equal(s.n, 7);
	snprintf(want, sizeof(want),
		 "checksum mismatch in record at offset %llu",
		 (unsigned long long)f->off[7]);
	assert_non_null(strstr(err.msg, want));
	/* repaired, then a bit of a record header */
	flip(f->abs, f->off[7] + PACK_REC_HDR_LEN + 10, 0x04);
	flip(f->abs, f->off[12] + 9, 0x01);
	mv_err_clear(&err);
	memset(&s, 0, sizeof(s));
	assert_int_equal(
		pack_scan(f->be, f->path, true, on_rec, &s, &sealed, &err),
		-EBADMSG);
	assert_int_equal(s.n, 12);
	snprintf(want, sizeof(want), "bad record header at offset %llu",
		 (unsigned long long)f->off[12]);
	assert_non_null(strstr(err.msg, want));
}

static void test_bad_header_and_missing(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct seen s;
	bool sealed = true;

	memset(&s, 0, sizeof(s));
	assert_int_equal(pack_scan(f->be, "packs/00/nonexistent", false, on_rec,
				   &s, &sealed, &err),
			 -ENOENT);
	assert_non_null(strstr(err.msg, "missing"));
	flip(f->abs, 2, 0xff);
	mv_err_clear(&err);
	assert_int_equal(
		pack_scan(f->be, f->path, false, on_rec, &s, &sealed, &err),
		-EBADMSG);
	assert_non_null(strstr(err.msg, "bad header"));
	assert_int_equal(s.n, 0);
}

static void test_rec_header_codec(void **state)
{
	struct pack_rec a, b;
	uint8_t hdr[PACK_REC_HDR_LEN];

	(void)state;
	memset(&a, 0, sizeof(a));
	a.type = REC_TREE;
	a.comp = PACK_COMP_ZSTD;
	a.flags = 0x0102;
	a.raw_size = 123456;
	a.stored_size = 7890;
	memset(a.id, 0xab, sizeof(a.id));
	a.checksum = 0x1122334455667788ull;
	a.dict_id = 42;
	pack_rec_encode(&a, hdr);
	assert_int_equal(pack_rec_decode(hdr, &b), 0);
	assert_memory_equal(&a.id, &b.id, sizeof(a.id));
	assert_int_equal(b.type, a.type);
	assert_int_equal(b.comp, a.comp);
	assert_int_equal(b.flags, a.flags);
	assert_int_equal(b.raw_size, a.raw_size);
	assert_int_equal(b.stored_size, a.stored_size);
	assert_true(b.checksum == a.checksum);
	assert_int_equal(b.dict_id, a.dict_id);
	hdr[20] ^= 1;
	assert_int_equal(pack_rec_decode(hdr, &b), -EBADMSG);
	/* sizes over the limit are refused even with a valid checksum */
	a.raw_size = PACK_MAX_RECORD + 1;
	pack_rec_encode(&a, hdr);
	assert_int_equal(pack_rec_decode(hdr, &b), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_scan_sealed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_truncated, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_flipped_bit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_header_and_missing,
						setup, teardown),
		cmocka_unit_test(test_rec_header_codec),
	};

	return cmocka_run_group_tests_name("pack", tests, NULL, NULL);
}
