/*
 * Unit tests for the sealed index of an encrypted repository
 * (src/store/repo_remote_index.c, docs/FORMAT-2.md 5.3): what the
 * repository holds is index.sealed, never an SQLite file; a fetch into a
 * fresh cache gives back the index byte for byte, in one frame or
 * several; a flipped bit, a cut, frames reordered or taken from another
 * publication, a damaged header fail with -EBADMSG naming the file and the
 * frame; an older sealed index put back is refused by a cache that saw a newer
 * one.
 *
 * The repository is made "encrypted" by hand: key_meta set to an XChaCha20
 * key from random bytes on handles opened as plain local repositories, and
 * the paths of the cached copy pointed into directories of the test.
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
#include <sqlite3.h>

#include "../../src/store/repo_int.h"
#include "crypt.h"
#include "index.h"
#include "repo.h"

struct fx {
	char dir[64];
	char repo[128];
	char sealed[160];
	uint8_t key[CRYPT_KEY_LEN];
	struct repo *w; /* the writer: index.db in the repository dir */
	int ncache;	/* caches made so far */
};

static int setup(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct fx *f = calloc(1, sizeof(*f));
	char stamp[256];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/mv-sealidx-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->repo, sizeof(f->repo), "%s/repo", f->dir);
	snprintf(f->sealed, sizeof(f->sealed), "%s/index.sealed", f->repo);
	assert_int_equal(crypt_init(&err), 0);
	crypt_random(f->key, sizeof(f->key));
	assert_int_equal(repo_init(f->repo, NULL, &err), 0);
	assert_int_equal(repo_open(f->repo, REPO_OPEN_WRITE, &f->w, &err), 0);
	assert_int_equal(
		crypt_key_new(CRYPT_XCHACHA20, f->key, &f->w->key_meta, &err),
		0);
	snprintf(stamp, sizeof(stamp), "%s/wcache", f->dir);
	assert_int_equal(mkdir(stamp, 0700), 0);
	snprintf(stamp, sizeof(stamp), "%s/wcache/index.stamp", f->dir);
	free(f->w->stamp_path);
	f->w->stamp_path = strdup(stamp);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	crypt_key_free(f->w->key_meta);
	f->w->key_meta = NULL;
	repo_close(f->w);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static int publish(struct fx *f)
{
	struct mv_err err = MV_ERR_INIT;
	int rc = repo_remote_index_publish(f->w, &err);

	if (rc)
		print_error("publish: %s\n", mv_err_msg(&err));
	return rc;
}

/* A reader on another machine: its own handle and an empty cache (or the
 * cache of an earlier reader, `reuse`). */
static struct repo *reader(struct fx *f, int reuse)
{
	struct mv_err err = MV_ERR_INIT;
	struct repo *r = NULL;
	char dir[256], path[300];
	int n = reuse ? reuse : ++f->ncache;

	assert_int_equal(repo_open(f->repo, REPO_OPEN_READ, &r, &err), 0);
	assert_int_equal(
		crypt_key_new(CRYPT_XCHACHA20, f->key, &r->key_meta, &err), 0);
	snprintf(dir, sizeof(dir), "%s/cache%d", f->dir, n);
	mkdir(dir, 0700);
	snprintf(path, sizeof(path), "%s/index.db", dir);
	free(r->index_path);
	r->index_path = strdup(path);
	snprintf(path, sizeof(path), "%s/index.stamp", dir);
	free(r->stamp_path);
	r->stamp_path = strdup(path);
	return r;
}

static void reader_close(struct repo *r)
{
	crypt_key_free(r->key_meta);
	r->key_meta = NULL;
	repo_close(r);
}

static int fetch(struct repo *r, struct mv_err *err)
{
	return repo_remote_index_fetch(r, err);
}

static void *slurp(const char *path, size_t *len)
{
	char *p = NULL;

	assert_int_equal(mv_read_file(path, 1u << 30, &p, len, NULL), 0);
	return p;
}

static void spit(const char *path, const void *p, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(mv_write_full(fd, p, len), 0);
	close(fd);
}

static bool contains(const void *hay, size_t n, const char *needle)
{
	return memmem(hay, n, needle, strlen(needle)) != NULL;
}

/* Fetch into a fresh cache and compare with the writer's index.db. */
static void assert_roundtrip(struct fx *f)
{
	struct mv_err err = MV_ERR_INIT;
	struct repo *r = reader(f, 0);
	size_t a, b;
	void *pa, *pb;

	assert_int_equal(fetch(r, &err), 0);
	pa = slurp(f->w->index_path, &a);
	pb = slurp(r->index_path, &b);
	assert_int_equal(a, b);
	assert_memory_equal(pa, pb, a);
	free(pa);
	free(pb);
	reader_close(r);
}

/* Grow the index past one frame with incompressible rows. */
static void grow(struct fx *f, int mib)
{
	char sql[160];

	snprintf(sql, sizeof(sql),
		 "CREATE TABLE IF NOT EXISTS pad(x);"
		 "INSERT INTO pad VALUES(randomblob(%d))",
		 mib << 20);
	assert_int_equal(
		sqlite3_exec(index_db(f->w->ix), sql, NULL, NULL, NULL),
		SQLITE_OK);
}

static void test_sealed_index_is_chosen_by_key(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct crypt_key *none = NULL, *k = f->w->key_meta;

	assert_true(repo_index_is_sealed(f->w));
	assert_true(repo_index_is_cached(f->w));
	assert_int_equal(crypt_key_new(CRYPT_NONE, NULL, &none, &err), 0);
	f->w->key_meta = none; /* encryption = none: today's index.db */
	assert_false(repo_index_is_sealed(f->w));
	assert_false(repo_index_is_cached(f->w));
	f->w->key_meta = NULL;
	assert_false(repo_index_is_cached(f->w));
	/* encrypted, opened without its key: still never in the repository */
	snprintf(f->w->cfg.encryption, sizeof(f->w->cfg.encryption),
		 "xchacha20-poly1305");
	assert_true(repo_index_is_cached(f->w));
	assert_false(repo_index_is_sealed(f->w));
	snprintf(f->w->cfg.encryption, sizeof(f->w->cfg.encryption), "none");
	f->w->key_meta = k;
	crypt_key_free(none);
}

static void test_sealed_index_roundtrip_one_frame(void **state)
{
	struct fx *f = *state;
	size_t n;
	uint8_t *p;

	assert_int_equal(publish(f), 0);
	p = slurp(f->sealed, &n);
	assert_true(n > 64);
	assert_memory_equal(p, "MVSEALIX", 8);
	assert_false(contains(p, n, "SQLite format 3"));
	assert_false(contains(p, n, "CREATE TABLE"));
	free(p);
	assert_roundtrip(f);
}

static void test_sealed_index_roundtrip_frames(void **state)
{
	struct fx *f = *state;
	size_t n;
	uint8_t *p;

	grow(f, 9); /* 3 frames of 4 MiB */
	assert_int_equal(publish(f), 0);
	p = slurp(f->sealed, &n);
	assert_int_equal(p[20], 3); /* nframes */
	assert_false(contains(p, n, "SQLite format 3"));
	free(p);
	assert_roundtrip(f);
}

static void assert_fetch_fails(struct fx *f, int code, const char *what)
{
	struct mv_err err = MV_ERR_INIT;
	struct repo *r = reader(f, 0);

	assert_int_equal(fetch(r, &err), code);
	if (!strstr(mv_err_msg(&err), "index.sealed") ||
	    (what && !strstr(mv_err_msg(&err), what)))
		fail_msg("unexpected message: %s", mv_err_msg(&err));
	assert_int_not_equal(access(r->index_path, F_OK), 0);
	reader_close(r);
}

static void test_sealed_index_flipped_bit(void **state)
{
	struct fx *f = *state;
	/* 100: frame 1; 0: the last byte, frame 2's tag; 40: pub, in every
	 * AAD; 30: raw_size, which no longer agrees with nframes */
	static const size_t at[] = {100, 0, 40, 30};
	size_t n;
	uint8_t *orig;
	int i;

	grow(f, 5);
	assert_int_equal(publish(f), 0);
	orig = slurp(f->sealed, &n);
	for (i = 0; i < 4; i++) {
		uint8_t *p = malloc(n);

		assert_non_null(p);
		memcpy(p, orig, n);
		p[at[i] ? at[i] : n - 1] ^= 0x10;
		spit(f->sealed, p, n);
		assert_fetch_fails(f, -EBADMSG, i == 1 ? "frame 2 of 2" : NULL);
		free(p);
	}
	spit(f->sealed, orig, n);
	assert_roundtrip(f);
	free(orig);
}

static void test_sealed_index_cut_and_extended(void **state)
{
	struct fx *f = *state;
	size_t n;
	uint8_t *p, *q;

	grow(f, 5);
	assert_int_equal(publish(f), 0);
	p = slurp(f->sealed, &n);
	spit(f->sealed, p, n - 1000);
	assert_fetch_fails(f, -EBADMSG, "cut short");
	spit(f->sealed, p, n / 2);
	assert_fetch_fails(f, -EBADMSG, NULL);
	q = malloc(n + 8);
	assert_non_null(q);
	memcpy(q, p, n);
	memset(q + n, 0, 8);
	spit(f->sealed, q, n + 8);
	assert_fetch_fails(f, -EBADMSG, "past the last frame");
	free(q);
	free(p);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void test_sealed_index_frames_swapped_or_mixed(void **state)
{
	struct fx *f = *state;
	size_t n, m, l0, l1;
	uint8_t *p, *q, *s;

	grow(f, 9);
	assert_int_equal(publish(f), 0);
	p = slurp(f->sealed, &n);
	l0 = 4 + rd32(p + 64);
	l1 = 4 + rd32(p + 64 + l0);
	/* frames 1 and 2 exchanged: sizes are unchanged, the AAD is not */
	s = malloc(n);
	memcpy(s, p, 64);
	memcpy(s + 64, p + 64 + l0, l1);
	memcpy(s + 64 + l1, p + 64, l0);
	memcpy(s + 64 + l0 + l1, p + 64 + l0 + l1, n - 64 - l0 - l1);
	spit(f->sealed, s, n);
	assert_fetch_fails(f, -EBADMSG, "frame 1 of 3");
	free(s);
	/* the header of another publication of the same index over these
	 * frames */
	spit(f->sealed, p, n);
	assert_int_equal(publish(f), 0);
	q = slurp(f->sealed, &m);
	memcpy(p, q, 64);
	memcpy(p + 48, q + 48, 8); /* its total, not in the AAD */
	spit(f->sealed, p, n);
	if (n == m)
		assert_fetch_fails(f, -EBADMSG, "frame 1 of 3");
	free(q);
	free(p);
}

static void test_sealed_index_older_replayed(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct repo *r;
	size_t n;
	uint8_t *old;

	assert_int_equal(publish(f), 0);
	old = slurp(f->sealed, &n);
	grow(f, 1);
	assert_int_equal(publish(f), 0);
	/* a reader that saw the newer version keeps the cache number */
	r = reader(f, 0);
	assert_int_equal(fetch(r, &err), 0);
	reader_close(r);
	spit(f->sealed, old, n);
	r = reader(f, f->ncache);
	assert_int_equal(fetch(r, &err), -ESTALE);
	assert_non_null(strstr(mv_err_msg(&err), "older than generation"));
	reader_close(r);
	/* a machine with no memory of the repository cannot tell */
	r = reader(f, 0);
	err = (struct mv_err)MV_ERR_INIT;
	assert_int_equal(fetch(r, &err), 0);
	reader_close(r);
	free(old);
}

/* One reader handle across publications (a mount polling repo_refresh):
 * each fetch sees the index the last publication wrote, not a file the
 * handle read before it was replaced. */
static void test_sealed_index_same_handle_sees_new(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct repo *r;
	int i;

	assert_int_equal(publish(f), 0);
	r = reader(f, 0);
	for (i = 0; i < 3; i++) {
		size_t a, b;
		void *pa, *pb;

		assert_int_equal(fetch(r, &err), 0);
		pa = slurp(f->w->index_path, &a);
		pb = slurp(r->index_path, &b);
		assert_int_equal(a, b);
		assert_memory_equal(pa, pb, a);
		free(pa);
		free(pb);
		grow(f, 1);
		assert_int_equal(publish(f), 0);
	}
	reader_close(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_sealed_index_is_chosen_by_key, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_sealed_index_roundtrip_one_frame, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_sealed_index_roundtrip_frames, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sealed_index_flipped_bit,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_sealed_index_cut_and_extended, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_sealed_index_frames_swapped_or_mixed, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_sealed_index_older_replayed, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_sealed_index_same_handle_sees_new, setup,
			teardown),
	};

	return cmocka_run_group_tests_name("repo_sealed_index", tests, NULL,
					   NULL);
}
