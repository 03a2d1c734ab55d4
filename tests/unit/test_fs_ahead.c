/*
 * Unit tests for the mount's pack range read-ahead (src/fs/fs_ahead.c,
 * "ranges ahead" and "listed"): a reader that goes through the files of a
 * remote directory in order waits for the server once, the ranges after
 * the first come from the read-ahead threads; the first files of a
 * directory it listed come in the background too; no chunk is fetched
 * twice (a reader waits for a chunk a background range claimed); and when
 * the background fetches fail, the reader still gets every byte right.
 * Over an in-memory source whose chunks_fetch takes a few milliseconds,
 * like a round trip.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../src/fs/fs_int.h"

#define NFILES 300
#define FSIZE 4096
#define RTT_US 3000	   /* a chunks_fetch */
#define READER_WORK_US 300 /* what a reader does with a file */

enum { T_ROOT = 1, T_A, T_B };

static struct tree_chunk tchunk[4];
static struct tree_chunk fchunk[3][NFILES]; /* [dir][file] */
static char names[NFILES][16];
static pthread_t reader;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int fetches_waited;     /* chunks_fetch calls of the reader */
static int fetches_ahead;      /* from other threads */
static int fetched[3][NFILES]; /* times each chunk came */
static int single_reads;       /* chunk_read calls */
static bool fail_ahead;	       /* background fetches fail */

static uint8_t pattern(int d, int f, size_t i)
{
	return (uint8_t)(i * 13 + (size_t)f * 7 + (size_t)d * 101);
}

static void setup(void)
{
	int d, f;

	memset(tchunk, 0, sizeof(tchunk));
	for (d = 1; d < 4; d++) {
		tchunk[d].id[0] = 'T';
		tchunk[d].id[1] = (uint8_t)d;
		tchunk[d].size = 100;
	}
	memset(fchunk, 0, sizeof(fchunk));
	for (d = 1; d < 3; d++)
		for (f = 0; f < NFILES; f++) {
			fchunk[d][f].id[0] = 'C';
			fchunk[d][f].id[1] = (uint8_t)d;
			fchunk[d][f].id[2] = (uint8_t)(f >> 8);
			fchunk[d][f].id[3] = (uint8_t)f;
			fchunk[d][f].size = FSIZE;
		}
	for (f = 0; f < NFILES; f++)
		snprintf(names[f], sizeof(names[f]), "f%04d", f);
	fetches_waited = fetches_ahead = single_reads = 0;
	memset(fetched, 0, sizeof(fetched));
	fail_ahead = false;
	reader = pthread_self();
}

static struct tree_entry mk(const char *name, uint8_t type)
{
	struct tree_entry e;

	memset(&e, 0, sizeof(e));
	e.name = (char *)name;
	e.name_len = (uint32_t)strlen(name);
	e.type = type;
	e.mode = type == TREE_DIR ? 0755 : 0644;
	e.nlink = 1;
	return e;
}

static struct tree *build(int t)
{
	struct tree *tr = calloc(1, sizeof(*tr));
	struct tree_entry *e = calloc(NFILES, sizeof(*e));
	int f;

	assert_non_null(tr);
	assert_non_null(e);
	tr->entries = e;
	if (t == T_ROOT) {
		e[0] = mk("a", TREE_DIR);
		e[0].subtree = (struct tree_ref){1, &tchunk[T_A]};
		e[1] = mk("b", TREE_DIR);
		e[1].subtree = (struct tree_ref){1, &tchunk[T_B]};
		tr->n = 2;
		return tr;
	}
	for (f = 0; f < NFILES; f++) {
		e[f] = mk(names[f], TREE_REG);
		e[f].size = FSIZE;
		e[f].nchunks = 1;
		e[f].chunks = &fchunk[t - 1][f];
	}
	tr->n = NFILES;
	return tr;
}

static int src_list(void *ctx, struct fs_snap_info **out, size_t *out_n,
		    struct mv_err *err)
{
	struct fs_snap_info *l = calloc(1, sizeof(*l));

	(void)ctx, (void)err;
	assert_non_null(l);
	l->name = strdup("mail");
	snprintf(l->dir, sizeof(l->dir), "2024-05-01T120000Z");
	l->time_ns = 1714564800 * 1000000000LL;
	l->id[0] = 1;
	l->root.n = 1;
	l->root.chunks = malloc(sizeof(struct tree_chunk));
	*l->root.chunks = tchunk[T_ROOT];
	*out = l;
	*out_n = 1;
	return 0;
}

static int src_refresh(void *ctx, bool *out, struct mv_err *err)
{
	(void)ctx, (void)err;
	*out = false;
	return 0;
}

static int src_tree_load(void *ctx, const struct tree_ref *ref,
			 struct tree **out, struct mv_err *err)
{
	(void)ctx, (void)err;
	*out = build(ref->chunks[0].id[1]);
	return 0;
}

static void src_tree_free(void *ctx, struct tree *t)
{
	(void)ctx;
	free(t->entries);
	free(t);
}

static void *content(const uint8_t *id)
{
	uint8_t *p = malloc(FSIZE);
	int d = id[1], f = id[2] << 8 | id[3];
	size_t i;

	assert_non_null(p);
	for (i = 0; i < FSIZE; i++)
		p[i] = pattern(d, f, i);
	return p;
}

static int src_chunk_read(void *ctx, const uint8_t id[MV_ID_LEN], void **out,
			  size_t *out_len, struct mv_err *err)
{
	(void)ctx, (void)err;
	pthread_mutex_lock(&lock);
	single_reads++;
	pthread_mutex_unlock(&lock);
	*out = content(id);
	*out_len = FSIZE;
	return 0;
}

/* One pack holds everything, in order: want[0] and what fits in max. */
static int src_chunks_fetch(void *ctx, const struct tree_chunk *want, size_t n,
			    size_t max, fs_chunk_got_fn *got, void *arg,
			    struct mv_err *err)
{
	bool ahead = !pthread_equal(pthread_self(), reader);
	size_t i, bytes = 0;

	(void)ctx;
	usleep(RTT_US);
	pthread_mutex_lock(&lock);
	if (ahead)
		fetches_ahead++;
	else
		fetches_waited++;
	pthread_mutex_unlock(&lock);
	if (ahead && fail_ahead)
		return mv_err_set(err, -EIO, "connection lost");
	for (i = 0; i < n && (i == 0 || bytes + want[i].size <= max); i++) {
		pthread_mutex_lock(&lock);
		fetched[want[i].id[1]][want[i].id[2] << 8 | want[i].id[3]]++;
		pthread_mutex_unlock(&lock);
		bytes += want[i].size;
		got(arg, i, content(want[i].id), FSIZE);
	}
	return 0;
}

static const struct fs_source_ops fake_ops = {
	.list = src_list,
	.refresh = src_refresh,
	.tree_load = src_tree_load,
	.tree_free = src_tree_free,
	.chunk_read = src_chunk_read,
	.chunks_fetch = src_chunks_fetch,
};

static struct fs *new_fs(void)
{
	struct mv_err err = MV_ERR_INIT;
	struct fs_opts o;
	struct fs *fs = NULL;

	setup();
	fs_opts_init(&o);
	o.pack_ahead_mib = 1;
	assert_int_equal(fs_new(&fake_ops, NULL, &o, &fs, &err), 0);
	assert_int_equal(fs_start(fs, &err), 0);
	/* the warm-up loads the trees; wait for it, so the counts below are
	 * the reads' alone */
	pthread_join(fs->warm_thread, NULL);
	fs->warming = false;
	return fs;
}

static uint64_t look(struct fs *fs, uint64_t parent, const char *name)
{
	struct fuse_entry_param e;

	assert_int_equal(fs_do_lookup(fs, parent, name, &e), 0);
	return e.ino;
}

static uint64_t dir_ino(struct fs *fs, const char *name)
{
	uint64_t mail = look(fs, FS_ROOT_INO, "mail");
	uint64_t snap = look(fs, mail, "2024-05-01T120000Z");

	return look(fs, snap, name);
}

/* Read every file of directory d (1: a, 2: b) in order, as rsync does. */
static void read_all(struct fs *fs, int d)
{
	uint64_t dir = dir_ino(fs, d == 1 ? "a" : "b");
	char buf[FSIZE];
	int f;

	for (f = 0; f < NFILES; f++) {
		struct fs_fh *fh = NULL;
		size_t n = 0, i;

		assert_int_equal(
			fs_do_open(fs, look(fs, dir, names[f]), O_RDONLY, &fh),
			0);
		assert_int_equal(fs_do_read(fs, fh, buf, sizeof(buf), 0, &n),
				 0);
		assert_int_equal(n, FSIZE);
		for (i = 0; i < FSIZE; i++)
			if ((uint8_t)buf[i] != pattern(d, f, i))
				fail_msg("%s byte %zu differs", names[f], i);
		fs_do_release(fs, fh);
		usleep(READER_WORK_US);
	}
}

static void assert_each_fetched_once(int d)
{
	int f;

	for (f = 0; f < NFILES; f++)
		if (fetched[d][f] > 1)
			fail_msg("chunk of %s fetched %d times", names[f],
				 fetched[d][f]);
}

static void test_in_order_reader_waits_once(void **state)
{
	struct fs *fs = new_fs();
	struct fs_stats st;

	(void)state;
	read_all(fs, 1);
	fs_stats(fs, &st);
	/* 300 files in ranges of 64 files, then 1 MiB: the reader waited
	 * for the first, the read-ahead threads read the others */
	assert_int_equal(fetches_waited, 1);
	assert_true(fetches_ahead >= 1);
	assert_int_equal(st.ranges_waited, 1);
	assert_int_equal(single_reads, 0);
	assert_each_fetched_once(1);
	fs_free(fs);
}

static void test_listed_directory_is_read_ahead(void **state)
{
	struct fs *fs = new_fs();
	struct fuse_entry_param e;
	struct fs_dh *dh = NULL;
	uint64_t b = dir_ino(fs, "b");
	const int pid = 4242;

	(void)state;
	/* a process that reads attributes (rsync) lists b, then reads a
	 * and b in order */
	assert_int_equal(
		fs_do_lookup_by(fs, pid, dir_ino(fs, "a"), "f0000", &e), 0);
	assert_int_equal(fs_do_opendir(fs, b, &dh), 0);
	assert_int_equal(fs_reader_listing(fs, pid, dh, 0), FS_LIST_PLUS);
	fs_do_releasedir(fs, dh);
	read_all(fs, 1);
	read_all(fs, 2);
	/* only the first read of a waited; b's first files came with the
	 * listed directories' range, its others with ranges ahead */
	assert_int_equal(fetches_waited, 1);
	assert_int_equal(single_reads, 0);
	assert_each_fetched_once(1);
	assert_each_fetched_once(2);
	fs_free(fs);
}

static void test_failed_fetches_ahead_leave_it_to_the_reader(void **state)
{
	struct fs *fs = new_fs();

	(void)state;
	fail_ahead = true;
	read_all(fs, 1); /* every byte checked */
	assert_true(fetches_ahead >= 1);
	assert_true(fetches_waited >= 2);
	fs_free(fs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_order_reader_waits_once),
		cmocka_unit_test(test_listed_directory_is_read_ahead),
		cmocka_unit_test(
			test_failed_fetches_ahead_leave_it_to_the_reader),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
