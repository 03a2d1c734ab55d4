/*
 * Unit tests for format 2 packs (include/pack.h, seal.h): records sealed
 * with both suites, written, and read back through the pack's table; a
 * flipped bit in a record, the table or the trailer, a pack cut short,
 * two packs whose names were swapped and a record read as another id or
 * type are each refused, never opened into other bytes.
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
#include "crypt.h"
#include "pack.h"
#include "seal.h"

#define NREC 12

struct fx {
	char dir[64];
	struct backend *be;
	struct crypt_key *data, *meta;
	char name[2][PACK_NAME_LEN + 1]; /* two sealed packs */
	char abs[2][256];
	uint64_t off[NREC];
	size_t len[NREC];
};

static void rec_id(int pack, int i, uint8_t id[MV_ID_LEN])
{
	memset(id, 0, MV_ID_LEN);
	id[0] = (uint8_t)pack;
	id[1] = (uint8_t)i;
	id[31] = 0x5a;
}

static void rec_payload(int i, uint8_t *p, size_t *len)
{
	*len = 50 + (size_t)i * 300;
	memset(p, 'a' + i, *len);
}

/* A pack of NREC records, even ones content (data key), odd ones tree
 * nodes (metadata key), as the repository writes them. */
static void write_pack(struct fx *f, int k)
{
	struct mv_err err = MV_ERR_INIT;
	struct mv_buf sealed = MV_BUF_INIT;
	struct pack_writer *pw;
	uint8_t id[MV_ID_LEN], payload[4096];
	uint64_t size = 0;
	size_t len;
	int i;

	assert_int_equal(
		pack_writer_open2(f->be, PACK_KIND_DATA, f->meta, &pw, &err),
		0);
	for (i = 0; i < NREC; i++) {
		int type = i % 2 ? REC_TREE : REC_DATA;

		rec_id(k, i, id);
		rec_payload(i, payload, &len);
		mv_buf_reset(&sealed);
		assert_int_equal(
			seal_record(type == REC_DATA ? f->data : f->meta,
				    (uint8_t)type, 0, id, PACK_COMP_NONE, 0,
				    payload, len, &sealed, &err),
			0);
		assert_int_equal(pack_writer_append_sealed(
					 pw, (uint8_t)type, 0, id, sealed.data,
					 sealed.len, (uint32_t)len, &f->off[i],
					 &err),
				 0);
		f->len[i] = sealed.len;
	}
	snprintf(f->name[k], sizeof(f->name[k]), "%s", pack_writer_name(pw));
	assert_int_equal(pack_writer_seal_size(pw, &size, &err), 0);
	{
		char path[128], abs[256];

		pack_path(f->name[k], path, sizeof(path));
		snprintf(abs, sizeof(abs), "%s/%s", f->dir, path);
		memcpy(f->abs[k], abs, sizeof(abs));
	}
	{
		struct stat st;

		assert_int_equal(stat(f->abs[k], &st), 0);
		assert_int_equal((uint64_t)st.st_size, size);
	}
	mv_buf_release(&sealed);
}

static int setup_suite(void **state, enum crypt_suite suite)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct mv_err err = MV_ERR_INIT;
	uint8_t k1[CRYPT_KEY_LEN], k2[CRYPT_KEY_LEN];

	assert_non_null(f);
	assert_int_equal(crypt_init(&err), 0);
	crypt_random(k1, sizeof(k1));
	crypt_random(k2, sizeof(k2));
	assert_int_equal(crypt_key_new(suite, k1, &f->data, &err), 0);
	assert_int_equal(crypt_key_new(suite, k2, &f->meta, &err), 0);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_pack2.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(backend_local_open(f->dir, false, &f->be, &err), 0);
	assert_int_equal(f->be->ops->mkdir(f->be, "packs", &err), 0);
	write_pack(f, 0);
	write_pack(f, 1);
	*state = f;
	return 0;
}

static int setup_none(void **state)
{
	return setup_suite(state, CRYPT_NONE);
}

static int setup_xchacha(void **state)
{
	return setup_suite(state, CRYPT_XCHACHA20);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	backend_close(f->be);
	crypt_key_free(f->data);
	crypt_key_free(f->meta);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Read the bytes of entry e of pack k. */
static void read_rec(struct fx *f, int k, const struct seal_entry *e,
		     struct mv_buf *out)
{
	FILE *fp = fopen(f->abs[k], "rb");

	assert_non_null(fp);
	mv_buf_reset(out);
	assert_int_equal(mv_buf_reserve(out, e->stored), 0);
	assert_int_equal(fseek(fp, (long)e->offset, SEEK_SET), 0);
	assert_int_equal(fread(out->data, 1, e->stored, fp), e->stored);
	out->len = e->stored;
	fclose(fp);
}

static void flip(const char *path, long at)
{
	int fd = open(path, O_RDWR);
	uint8_t b;

	assert_true(fd >= 0);
	if (at < 0)
		at += (long)lseek(fd, 0, SEEK_END);
	assert_int_equal(pread(fd, &b, 1, at), 1);
	b ^= 0x10;
	assert_int_equal(pwrite(fd, &b, 1, at), 1);
	close(fd);
}

static void test_roundtrip(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct mv_buf rec = MV_BUF_INIT, plain = MV_BUF_INIT;
	struct seal_table t;
	uint8_t id[MV_ID_LEN], want[4096];
	uint64_t size = 0;
	size_t i, len;
	int k;

	for (k = 0; k < 2; k++) {
		assert_int_equal(pack_table_read(f->be, f->name[k], f->meta, &t,
						 &size, &err),
				 0);
		assert_int_equal(t.kind, PACK_KIND_DATA);
		assert_int_equal(t.n, NREC);
		for (i = 0; i < t.n; i++) {
			uint8_t comp = 9;
			uint32_t dict = 9;
			int type = i % 2 ? REC_TREE : REC_DATA;

			rec_id(k, (int)i, id);
			assert_memory_equal(t.e[i].id, id, MV_ID_LEN);
			assert_int_equal(t.e[i].type, type);
			assert_int_equal(t.e[i].offset, f->off[i]);
			assert_int_equal(t.e[i].stored, f->len[i]);
			read_rec(f, k, &t.e[i], &rec);
			assert_int_equal(
				seal_record_open(
					type == REC_DATA ? f->data : f->meta,
					(uint8_t)type, 0, id, rec.data, rec.len,
					&comp, &dict, &plain, &err),
				0);
			rec_payload((int)i, want, &len);
			assert_int_equal(t.e[i].raw, len);
			assert_int_equal(plain.len, len);
			assert_memory_equal(plain.data, want, len);
			assert_int_equal(comp, PACK_COMP_NONE);
			assert_int_equal(dict, 0);
		}
		seal_table_release(&t);
	}
	mv_buf_release(&rec);
	mv_buf_release(&plain);
}

/* A record opened as another id, another type or with the other key
 * fails its tag. */
static void test_wrong_claim(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct mv_buf rec = MV_BUF_INIT, plain = MV_BUF_INIT;
	struct seal_table t;
	uint8_t id[MV_ID_LEN], comp;
	uint32_t dict;

	assert_int_equal(
		pack_table_read(f->be, f->name[0], f->meta, &t, NULL, &err), 0);
	read_rec(f, 0, &t.e[1], &rec); /* a tree node */
	rec_id(0, 1, id);
	assert_int_equal(seal_record_open(f->meta, REC_TREE, 0, id, rec.data,
					  rec.len, &comp, &dict, &plain, &err),
			 0);
	id[5] ^= 1;
	assert_int_equal(seal_record_open(f->meta, REC_TREE, 0, id, rec.data,
					  rec.len, &comp, &dict, &plain, &err),
			 -EBADMSG);
	assert_int_equal(plain.len, 0);
	id[5] ^= 1;
	assert_int_equal(seal_record_open(f->meta, REC_SNAPSHOT, 0, id,
					  rec.data, rec.len, &comp, &dict,
					  &plain, &err),
			 -EBADMSG);
	assert_int_equal(seal_record_open(f->meta, REC_TREE, 1, id, rec.data,
					  rec.len, &comp, &dict, &plain, &err),
			 -EBADMSG);
	if (crypt_key_suite(f->meta) == CRYPT_XCHACHA20)
		assert_int_equal(seal_record_open(f->data, REC_TREE, 0, id,
						  rec.data, rec.len, &comp,
						  &dict, &plain, &err),
				 -EBADMSG);
	seal_table_release(&t);
	mv_buf_release(&rec);
	mv_buf_release(&plain);
}

static void test_flipped_record(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct mv_buf rec = MV_BUF_INIT, plain = MV_BUF_INIT;
	struct seal_table t;
	uint8_t id[MV_ID_LEN], comp;
	uint32_t dict;

	flip(f->abs[0], (long)(f->off[4] + f->len[4] / 2));
	/* the table still opens: it does not cover record bytes */
	assert_int_equal(
		pack_table_read(f->be, f->name[0], f->meta, &t, NULL, &err), 0);
	read_rec(f, 0, &t.e[4], &rec);
	rec_id(0, 4, id);
	mv_err_clear(&err);
	assert_int_equal(seal_record_open(f->data, REC_DATA, 0, id, rec.data,
					  rec.len, &comp, &dict, &plain, &err),
			 -EBADMSG);
	assert_non_null(strstr(mv_err_msg(&err), "authentication failed"));
	assert_int_equal(plain.len, 0);
	/* its neighbours are whole */
	read_rec(f, 0, &t.e[3], &rec);
	rec_id(0, 3, id);
	assert_int_equal(seal_record_open(f->meta, REC_TREE, 0, id, rec.data,
					  rec.len, &comp, &dict, &plain, &err),
			 0);
	seal_table_release(&t);
	mv_buf_release(&rec);
	mv_buf_release(&plain);
}

static void expect_bad_pack(struct fx *f, int k, const char *what)
{
	struct mv_err err = MV_ERR_INIT;
	struct seal_table t = {0, 0, NULL};

	assert_int_equal(
		pack_table_read(f->be, f->name[k], f->meta, &t, NULL, &err),
		-EBADMSG);
	assert_null(t.e);
	assert_non_null(strstr(mv_err_msg(&err), f->name[k]));
	if (what)
		assert_non_null(strstr(mv_err_msg(&err), what));
}

static void test_flipped_table(void **state)
{
	struct fx *f = *state;

	/* the table starts right after the last record */
	flip(f->abs[0], (long)(f->off[NREC - 1] + f->len[NREC - 1] + 30));
	expect_bad_pack(f, 0, "table");
}

static void test_flipped_trailer(void **state)
{
	struct fx *f = *state;

	flip(f->abs[1], -20);
	expect_bad_pack(f, 1, "trailer");
}

static void test_truncated(void **state)
{
	struct fx *f = *state;
	struct stat st;

	assert_int_equal(stat(f->abs[0], &st), 0);
	assert_int_equal(truncate(f->abs[0], st.st_size - 1), 0);
	expect_bad_pack(f, 0, NULL);
	assert_int_equal(truncate(f->abs[0], 10), 0);
	expect_bad_pack(f, 0, NULL);
	assert_int_equal(truncate(f->abs[0], 0), 0);
	expect_bad_pack(f, 0, NULL);
}

/* Two packs renamed into each other's place: each fails at its trailer,
 * whose AAD holds the name it was written under. */
static void test_swapped_names(void **state)
{
	struct fx *f = *state;
	char tmp[300];

	snprintf(tmp, sizeof(tmp), "%s.tmp", f->abs[0]);
	assert_int_equal(rename(f->abs[0], tmp), 0);
	assert_int_equal(rename(f->abs[1], f->abs[0]), 0);
	assert_int_equal(rename(tmp, f->abs[1]), 0);
	expect_bad_pack(f, 0, "trailer");
	expect_bad_pack(f, 1, "trailer");
}

/* Appending to a pack, or a table of the same name copied over another
 * pack's records, is refused too. */
static void test_grown(void **state)
{
	struct fx *f = *state;
	FILE *fp = fopen(f->abs[0], "ab");

	assert_non_null(fp);
	fputc('x', fp);
	fclose(fp);
	expect_bad_pack(f, 0, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define BOTH(fn)                                                   \
	cmocka_unit_test_setup_teardown(fn, setup_none, teardown), \
		cmocka_unit_test_setup_teardown(fn, setup_xchacha, teardown)
		BOTH(test_roundtrip),	    BOTH(test_wrong_claim),
		BOTH(test_flipped_record),  BOTH(test_flipped_table),
		BOTH(test_flipped_trailer), BOTH(test_truncated),
		BOTH(test_swapped_names),   BOTH(test_grown),
#undef BOTH
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
