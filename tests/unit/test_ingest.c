/* Unit tests for ingest's content hooks: analyze() for one-chunk files
 * and the first chunk of larger ones, and whole-file streams that see
 * every byte of a file of any size in order. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ingest.h"

/* What the test hook saw. */
struct seen {
	struct repo *r;
	int analyzed;	  /* analyze() calls */
	int analyzed_big; /* of which for big.bin */
	int begun, ended, dropped;
	int done;		  /* file_done() calls */
	int done_with_result;	  /* of which with a stream result */
	uint8_t whole[MV_ID_LEN]; /* keyed id of the streamed bytes */
	uint64_t streamed;	  /* bytes seen by stream_data() */
	uint32_t nchunks;	  /* entry of the streamed file */
	int fail_after;		  /* stream_data() fails at this call */
	int calls;
};

/* A stream state: the bytes, to compare at the end. */
struct stream {
	struct mv_buf b;
};

static void *t_analyze(void *ctx, const char *path, const uint8_t id[MV_ID_LEN],
		       const void *data, size_t len)
{
	struct seen *s = ctx;

	(void)id;
	(void)data;
	(void)len;
	/* workers: count under no lock is fine with one worker */
	s->analyzed++;
	if (strstr(path, "big"))
		s->analyzed_big++;
	return NULL;
}

static int t_file_done(void *ctx, const char *path, const struct tree_entry *e,
		       void *result, struct mv_err *err)
{
	struct seen *s = ctx;

	(void)err;
	s->done++;
	if (result) {
		/* the stream result: a copy of the id of the whole bytes */
		assert_memory_equal(result, s->whole, MV_ID_LEN);
		s->done_with_result++;
		if (strstr(path, "stream"))
			s->nchunks = e->nchunks;
		free(result);
	}
	return 0;
}

static void t_free_result(void *ctx, void *result)
{
	(void)ctx;
	free(result);
}

static void *t_stream_begin(void *ctx, const char *path,
			    const struct tree_entry *meta)
{
	struct seen *s = ctx;
	struct stream *st;

	(void)meta;
	if (!strstr(path, "stream"))
		return NULL;
	st = calloc(1, sizeof(*st));
	assert_non_null(st);
	s->begun++;
	return st;
}

static int t_stream_data(void *ctx, void *stream, const void *data, size_t len,
			 struct mv_err *err)
{
	struct seen *s = ctx;
	struct stream *st = stream;

	if (++s->calls == s->fail_after)
		return mv_err_set(err, -EBADMSG, "test failure");
	s->streamed += len;
	assert_int_equal(mv_buf_append(&st->b, data, len), 0);
	return 0;
}

static void *t_stream_end(void *ctx, void *stream, bool keep)
{
	struct seen *s = ctx;
	struct stream *st = stream;
	uint8_t *res = NULL;

	if (keep) {
		s->ended++;
		repo_chunk_id(s->r, st->b.data, st->b.len, s->whole);
		res = malloc(MV_ID_LEN);
		assert_non_null(res);
		memcpy(res, s->whole, MV_ID_LEN);
	} else {
		s->dropped++;
	}
	mv_buf_release(&st->b);
	free(st);
	return res;
}

struct fx {
	char dir[64];
	struct repo *r;
	struct repo_writer *w;
	struct tree_builder *tb;
	struct ingest *ing;
	struct ingest_hook hook;
	struct seen seen;
	uint8_t *data;
	size_t len;
};

static int setup(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct ingest_opts o;
	struct fx *f = calloc(1, sizeof(*f));
	char repo[128];
	uint64_t x = 88172645463325252ull;
	size_t i;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/mv-test-ingest.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(repo, sizeof(repo), "%s/repo", f->dir);
	assert_int_equal(repo_init(repo, NULL, &err), 0);
	assert_int_equal(repo_open(repo, REPO_OPEN_WRITE, &f->r, &err), 0);
	assert_int_equal(repo_writer_begin(f->r, &f->w, &err), 0);
	assert_int_equal(tree_builder_new(&f->tb, &err), 0);
	f->seen.r = f->r;
	f->hook.ctx = &f->seen;
	f->hook.analyze = t_analyze;
	f->hook.file_done = t_file_done;
	f->hook.free_result = t_free_result;
	f->hook.stream_begin = t_stream_begin;
	f->hook.stream_data = t_stream_data;
	f->hook.stream_end = t_stream_end;
	memset(&o, 0, sizeof(o));
	o.hook = &f->hook;
	o.workers = 1;
	assert_int_equal(ingest_new(f->r, f->w, f->tb, &o, &f->ing, &err), 0);
	/* 3 MiB of pseudo-random bytes: many chunks */
	f->len = (size_t)3 << 20;
	f->data = malloc(f->len);
	assert_non_null(f->data);
	for (i = 0; i < f->len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		f->data[i] = (uint8_t)(x >> 24);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	ingest_free(f->ing);
	tree_builder_free(f->tb);
	repo_writer_abort(f->w);
	repo_close(f->r);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f->data);
	free(f);
	return 0;
}

/* Ingest len bytes of f->data as path, in pieces of `piece` bytes. */
static int put_file(struct fx *f, const char *path, size_t len, size_t piece,
		    bool cut, struct mv_err *err)
{
	struct tree_entry meta;
	size_t at;
	int rc;

	memset(&meta, 0, sizeof(meta));
	meta.type = TREE_REG;
	meta.mode = 0644;
	meta.size = len;
	rc = ingest_file_begin(f->ing, path, &meta, err);
	for (at = 0; !rc && at < len; at += piece)
		rc = ingest_file_data(f->ing, f->data + at,
				      MV_MIN(piece, len - at), err);
	if (rc)
		return rc;
	return cut ? ingest_file_cut(f->ing, err)
		   : ingest_file_end(f->ing, err);
}

/* A multi-chunk file is streamed whole, in order, in odd pieces; the
 * others are analyzed as before (a big unstreamed file by its first
 * chunk only); file_done gets the stream's result and the full entry. */
static void test_ingest_stream_whole(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	uint8_t id[MV_ID_LEN];
	struct tree_entry *e;
	uint64_t sum = 0;
	uint32_t i;

	assert_int_equal(put_file(f, "a/small", 1000, 1000, false, &err), 0);
	assert_int_equal(put_file(f, "a/stream.bin", f->len, 7777, false, &err),
			 0);
	assert_int_equal(put_file(f, "a/big.bin", f->len, 65536, false, &err),
			 0);
	assert_int_equal(ingest_finish(f->ing, &err), 0);
	repo_chunk_id(f->r, f->data, f->len, id);
	assert_int_equal(f->seen.begun, 1);
	assert_int_equal(f->seen.ended, 1);
	assert_int_equal(f->seen.dropped, 0);
	assert_int_equal(f->seen.streamed, f->len);
	assert_memory_equal(f->seen.whole, id, MV_ID_LEN);
	assert_int_equal(f->seen.done, 3);
	assert_int_equal(f->seen.done_with_result, 1);
	/* small: its one chunk; big: its first chunk; stream: none */
	assert_int_equal(f->seen.analyzed, 2);
	assert_int_equal(f->seen.analyzed_big, 1);
	assert_true(f->seen.nchunks > 4);
	e = tree_builder_get(f->tb, "a/stream.bin");
	assert_non_null(e);
	assert_int_equal(e->nchunks, f->seen.nchunks);
	for (i = 0; i < e->nchunks; i++)
		sum += e->chunks[i].size;
	assert_int_equal(sum, f->len);
}

/* A small file can be streamed too; a cut file ends its stream with the
 * bytes read so far. */
static void test_ingest_stream_small_and_cut(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	uint8_t id[MV_ID_LEN];
	struct tree_entry meta;

	assert_int_equal(put_file(f, "s/stream-small", 500, 100, false, &err),
			 0);
	assert_int_equal(ingest_finish(f->ing, &err), 0);
	repo_chunk_id(f->r, f->data, 500, id);
	assert_memory_equal(f->seen.whole, id, MV_ID_LEN);
	assert_int_equal(f->seen.nchunks, 1);
	assert_int_equal(f->seen.analyzed, 0);

	memset(&meta, 0, sizeof(meta));
	meta.type = TREE_REG;
	meta.size = f->len;
	assert_int_equal(ingest_file_begin(f->ing, "s/stream-cut", &meta, &err),
			 0);
	assert_int_equal(ingest_file_data(f->ing, f->data, 300000, &err), 0);
	assert_int_equal(ingest_file_cut(f->ing, &err), 0);
	assert_int_equal(ingest_finish(f->ing, &err), 0);
	repo_chunk_id(f->r, f->data, 300000, id);
	assert_memory_equal(f->seen.whole, id, MV_ID_LEN);
	assert_int_equal(f->seen.ended, 2);
	assert_int_equal(f->seen.done_with_result, 2);
	assert_int_equal(tree_builder_get(f->tb, "s/stream-cut")->size, 300000);
}

/* A stream_data() error fails ingest_file_data() with the file named;
 * freeing the ingest then drops the open stream (keep = false). */
static bool has_chunk(const struct tree_entry *e, const uint8_t *id)
{
	uint32_t i;

	for (i = 0; i < e->nchunks; i++)
		if (!memcmp(e->chunks[i].id, id, MV_ID_LEN))
			return true;
	return false;
}

/* Dovecot's append-mostly index files are cut in small chunks, so a day
 * that appends to one stores its tail, not the file again; any other file
 * of the same size stays one chunk. */
static void test_ingest_dovecot_fine(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	const size_t len = 200 << 10, grown = len + 3000;
	struct tree_entry *a, *b, *o;
	uint64_t a_new = 0, b_new = 0;
	uint32_t i;

	assert_int_equal(
		put_file(f, "d1/dovecot.index.cache", len, 4096, false, &err),
		0);
	assert_int_equal(
		put_file(f, "d2/dovecot.index.cache", grown, 5000, false, &err),
		0);
	assert_int_equal(put_file(f, "d1/other.bin", len, 4096, false, &err),
			 0);
	/* below the fine chunker's small-file size: one chunk */
	assert_int_equal(
		put_file(f, "d1/dovecot-uidlist", 1500, 1500, false, &err), 0);
	assert_int_equal(ingest_finish(f->ing, &err), 0);
	a = tree_builder_get(f->tb, "d1/dovecot.index.cache");
	b = tree_builder_get(f->tb, "d2/dovecot.index.cache");
	o = tree_builder_get(f->tb, "d1/other.bin");
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(o);
	assert_int_equal(o->nchunks, 1);
	assert_int_equal(tree_builder_get(f->tb, "d1/dovecot-uidlist")->nchunks,
			 1);
	/* 2 KiB average: about 100 chunks, never more than 400 (512 B min) */
	assert_true(a->nchunks >= 30 && a->nchunks <= 400);
	/* The appended file shares every byte up to the old file's last cut:
	 * what it does not share is the appended 3000 bytes and at most the
	 * old last chunk (16 KiB at most), whatever the keyed cut points. */
	for (i = 0; i < b->nchunks; i++)
		if (!has_chunk(a, b->chunks[i].id))
			b_new += b->chunks[i].size;
	for (i = 0; i < a->nchunks; i++)
		if (!has_chunk(b, a->chunks[i].id))
			a_new += a->chunks[i].size;
	assert_true(b_new <= (grown - len) + 16384);
	assert_true(a_new <= 16384);
}

static void test_ingest_stream_error(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;

	f->seen.fail_after = 5;
	assert_int_equal(
		put_file(f, "e/stream.bin", f->len, 65536, false, &err),
		-EBADMSG);
	assert_non_null(strstr(mv_err_msg(&err), "e/stream.bin"));
	assert_non_null(strstr(mv_err_msg(&err), "test failure"));
	ingest_free(f->ing);
	f->ing = NULL;
	assert_int_equal(f->seen.begun, 1);
	assert_int_equal(f->seen.dropped, 1);
	assert_int_equal(f->seen.ended, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ingest_stream_whole, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_ingest_stream_small_and_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ingest_dovecot_fine, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ingest_stream_error, setup,
						teardown),
	};

	return cmocka_run_group_tests_name("ingest", tests, NULL, NULL);
}
