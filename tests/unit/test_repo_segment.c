/*
 * Unit tests for commit segments (src/store/repo_segment.c,
 * docs/FORMAT-2.md 5.3): an encrypted repository holds its index as
 * index/NAME objects and never an SQLite file; each commit adds one
 * segment whose size follows the change, not the index; a fresh cache
 * replays them; two writers' segments merge; a flipped bit is refused
 * as damage naming the segment; a segment a cache has read that goes
 * away is refused as a rollback; rebuild-index's base replaces the others
 * (and leaves them in place in an append-only repository).
 *
 * Each "machine" is a cache directory (XDG_CACHE_HOME) of its own.
 */
#include <dirent.h>
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "crypt.h"
#include "keyslot.h"
#include "lifecycle.h"
#include "repo.h"

struct fx {
	char dir[64];
	char repo[128];
	char segdir[160];
};

static int give_pass(void *arg, const char *location, const char **pass,
		     size_t *pass_len, struct mv_err *err)
{
	(void)arg;
	(void)location;
	(void)err;
	*pass = "correct horse";
	*pass_len = strlen(*pass);
	return 0;
}

static void machine(struct fx *f, const char *name)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/cache-%s", f->dir, name);
	setenv("XDG_CACHE_HOME", p, 1);
}

static int setup(void **state)
{
	static const struct keyslot_params kdf = {KEYSLOT_MIN_OPS,
						  KEYSLOT_MIN_MEM};
	struct repo_unlock u = {give_pass, NULL, NULL};
	struct mv_err err = MV_ERR_INIT;
	struct repo_init_opts o;
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/mv-segment-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->repo, sizeof(f->repo), "%s/repo", f->dir);
	snprintf(f->segdir, sizeof(f->segdir), "%s/index", f->repo);
	repo_set_unlock(&u);
	machine(f, "a");
	memset(&o, 0, sizeof(o));
	o.encrypt = true;
	o.pass = "correct horse";
	o.pass_len = strlen(o.pass);
	o.kdf = &kdf;
	if (repo_init(f->repo, &o, &err))
		fail_msg("init: %s", err.msg);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	unsetenv("XDG_CACHE_HOME");
	free(f);
	return 0;
}

/* Names under index/ into names (up to max), sorted; their count. */
static size_t segments(struct fx *f, char names[][40], size_t max)
{
	DIR *d = opendir(f->segdir);
	struct dirent *e;
	size_t n = 0, i, j;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (strlen(e->d_name) == 32 && n < max) {
			memcpy(names[n], e->d_name, 32);
			names[n++][32] = '\0';
		}
	closedir(d);
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
			char t[40];

			memcpy(t, names[j], 40);
			memcpy(names[j], names[j - 1], 40);
			memcpy(names[j - 1], t, 40);
		}
	return n;
}

/* The one name of after (na) that before (nb) lacks. */
static const char *new_name(char before[][40], size_t nb, char after[][40],
			    size_t na)
{
	size_t i, k;

	for (i = 0; i < na; i++) {
		bool old = false;

		for (k = 0; k < nb; k++)
			old = old || !strcmp(after[i], before[k]);
		if (!old)
			return after[i];
	}
	fail_msg("no new segment");
	return NULL;
}

static uint64_t size_of(struct fx *f, const char *name)
{
	char p[512];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", f->segdir, name);
	assert_int_equal(stat(p, &st), 0);
	return (uint64_t)st.st_size;
}

/* Open a write session (flags: REPO_OPEN_SHARED or 0) and store n
 * records whose content starts with tag; not committed yet. */
static struct repo *begin_records(struct fx *f, const char *tag, int n,
				  unsigned flags, struct repo_writer **out)
{
	struct mv_err err = MV_ERR_INIT;
	struct repo *r = NULL;
	char buf[64];
	uint8_t id[MV_ID_LEN];
	int i;

	if (repo_open(f->repo, REPO_OPEN_WRITE | flags, &r, &err))
		fail_msg("open: %s", err.msg);
	assert_int_equal(repo_writer_begin(r, out, &err), 0);
	for (i = 0; i < n; i++) {
		int len = snprintf(buf, sizeof(buf), "%s record %d", tag, i);

		repo_chunk_id(r, buf, (size_t)len, id);
		assert_int_equal(repo_writer_put(*out, REC_DATA, id, buf,
						 (size_t)len, NULL, 0, NULL,
						 &err),
				 0);
	}
	return r;
}

static void finish_records(struct repo *r, struct repo_writer *w)
{
	struct mv_err err = MV_ERR_INIT;

	if (repo_writer_finish(w, &err))
		fail_msg("finish: %s", err.msg);
	repo_close(r);
}

static void commit_records_as(struct fx *f, const char *tag, int n,
			      unsigned flags)
{
	struct repo_writer *w = NULL;
	struct repo *r = begin_records(f, tag, n, flags, &w);

	finish_records(r, w);
}

/* One write session storing n records whose content starts with tag. */
static void commit_records(struct fx *f, const char *tag, int n)
{
	commit_records_as(f, tag, n, 0);
}

/* 0 when the record of tag i is in the index seen from this machine. */
static int has_record(struct fx *f, const char *tag, int i, struct mv_err *err)
{
	struct repo *r = NULL;
	struct mv_buf out = MV_BUF_INIT;
	char buf[64];
	uint8_t id[MV_ID_LEN];
	int len, rc;

	rc = repo_open(f->repo, REPO_OPEN_READ, &r, err);
	if (rc)
		return rc;
	len = snprintf(buf, sizeof(buf), "%s record %d", tag, i);
	repo_chunk_id(r, buf, (size_t)len, id);
	rc = repo_chunk_find(r, id, NULL, err);
	if (!rc)
		rc = repo_chunk_read(r, id, true, &out, err);
	if (!rc && (out.len != (size_t)len || memcmp(out.data, buf, out.len)))
		rc = -EIO;
	mv_buf_release(&out);
	repo_close(r);
	return rc;
}

static bool file_has(const char *path, const char *needle)
{
	char *p = NULL;
	size_t n = 0;
	bool found;

	assert_int_equal(mv_read_file(path, 1u << 26, &p, &n, NULL), 0);
	found = memmem(p, n, needle, strlen(needle)) != NULL;
	free(p);
	return found;
}

static void test_segment_init_and_replay(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	char names[8][40], p[512];
	size_t i, n;

	n = segments(f, names, 8);
	assert_int_equal(n, 1); /* init: an empty base */
	snprintf(p, sizeof(p), "%s/index.db", f->repo);
	assert_int_not_equal(access(p, F_OK), 0);
	snprintf(p, sizeof(p), "%s/index.sealed", f->repo);
	assert_int_not_equal(access(p, F_OK), 0);
	commit_records(f, "one", 3);
	commit_records(f, "two", 3);
	n = segments(f, names, 8);
	assert_int_equal(n, 3);
	for (i = 0; i < n; i++) {
		snprintf(p, sizeof(p), "%s/%s", f->segdir, names[i]);
		assert_false(file_has(p, "SQLite format 3"));
		assert_false(file_has(p, "MVI2"));
	}
	/* the writer's machine and a fresh one see both commits */
	assert_int_equal(has_record(f, "one", 2, &err), 0);
	machine(f, "fresh");
	assert_int_equal(has_record(f, "one", 0, &err), 0);
	assert_int_equal(has_record(f, "two", 2, &err), 0);
	assert_int_equal(has_record(f, "three", 0, &err), -ENOENT);
}

/* The segment of a commit grows with the commit, not with the index. */
static void test_segment_size_follows_change(void **state)
{
	struct fx *f = *state;
	char names[8][40], before[8][40];
	size_t n, nb;
	uint64_t big, small;

	nb = segments(f, before, 8);
	commit_records(f, "bulk", 4000);
	n = segments(f, names, 8);
	big = size_of(f, new_name(before, nb, names, n));
	nb = segments(f, before, 8);
	commit_records(f, "small", 1);
	n = segments(f, names, 8);
	small = size_of(f, new_name(before, nb, names, n));
	print_message("segment of 4000 records: %llu B, of 1 record: %llu B\n",
		      (unsigned long long)big, (unsigned long long)small);
	assert_true(big > 100000); /* 4000 record lines */
	assert_true(small > 0);
	assert_true(small < 1024);
}

/* Two writers that did not see each other's commit: both survive. */
static void test_segment_two_writers_merge(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	char names[8][40], before[8][40], hidden[512], p[512];
	size_t n, nb;

	machine(f, "b");
	assert_int_equal(has_record(f, "x", 0, &err), -ENOENT); /* b syncs */
	machine(f, "a");
	nb = segments(f, before, 8);
	commit_records(f, "from-a", 2);
	n = segments(f, names, 8);
	assert_int_equal(n, 2);
	/* hide a's segment from b, as a listing made before it landed */
	snprintf(p, sizeof(p), "%s/%s", f->segdir,
		 new_name(before, nb, names, n));
	snprintf(hidden, sizeof(hidden), "%s/hidden", f->dir);
	assert_int_equal(rename(p, hidden), 0);
	machine(f, "b");
	commit_records(f, "from-b", 2);
	assert_int_equal(rename(hidden, p), 0);
	/* b, a and a fresh machine see both */
	assert_int_equal(has_record(f, "from-a", 1, &err), 0);
	assert_int_equal(has_record(f, "from-b", 1, &err), 0);
	machine(f, "a");
	assert_int_equal(has_record(f, "from-b", 0, &err), 0);
	machine(f, "c");
	assert_int_equal(has_record(f, "from-a", 0, &err), 0);
	assert_int_equal(has_record(f, "from-b", 0, &err), 0);
}

static void test_segment_flipped_bit(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	char names[8][40], before[8][40], p[512];
	const char *name;
	size_t n, nb;
	int fd;
	uint8_t b;

	nb = segments(f, before, 8);
	commit_records(f, "one", 1);
	n = segments(f, names, 8);
	name = new_name(before, nb, names, n);
	snprintf(p, sizeof(p), "%s/%s", f->segdir, name);
	fd = open(p, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, 40), 1);
	b ^= 0x10;
	assert_int_equal(pwrite(fd, &b, 1, 40), 1);
	close(fd);
	machine(f, "fresh");
	assert_int_equal(has_record(f, "one", 0, &err), -EBADMSG);
	assert_true(err.damaged);
	assert_non_null(strstr(err.msg, name));
	assert_non_null(strstr(err.msg, "authentication failed"));
}

/* A machine that read a segment refuses a repository without it. */
static void test_segment_rollback_refused(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	char names[8][40], before[8][40], p[512], save[512];
	const char *name;
	size_t n, nb;

	commit_records(f, "one", 1);
	nb = segments(f, before, 8);
	commit_records(f, "two", 1);
	assert_int_equal(has_record(f, "two", 0, &err), 0);
	n = segments(f, names, 8);
	name = new_name(before, nb, names, n);
	snprintf(p, sizeof(p), "%s/%s", f->segdir, name);
	snprintf(save, sizeof(save), "%s/saved", f->dir);
	assert_int_equal(rename(p, save), 0);
	mv_err_clear(&err);
	assert_int_equal(has_record(f, "one", 0, &err), -ESTALE);
	assert_true(err.damaged);
	assert_non_null(strstr(err.msg, name));
	/* a fresh machine cannot tell, and sees the older state */
	machine(f, "fresh");
	assert_int_equal(has_record(f, "one", 0, &err), 0);
	assert_int_equal(has_record(f, "two", 0, &err), -ENOENT);
	/* put back: both machines agree again */
	assert_int_equal(rename(save, p), 0);
	assert_int_equal(has_record(f, "two", 0, &err), 0);
	machine(f, "a");
	assert_int_equal(has_record(f, "two", 0, &err), 0);
}

/* rebuild-index publishes a base replacing every segment; an
 * append-only repository keeps the replaced ones, and readers skip them. */
static void rebuild(struct fx *f)
{
	struct mv_err err = MV_ERR_INIT;
	struct rebuild_result res;
	struct repo *r = NULL;

	if (repo_open_bare(f->repo, REPO_OPEN_WRITE, &r, &err))
		fail_msg("open: %s", err.msg);
	if (lifecycle_rebuild_index(r, NULL, NULL, &res, &err))
		fail_msg("rebuild: %s", err.msg);
	repo_close(r);
}

static void test_segment_base_replaces(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	char names[8][40];
	struct repo *r = NULL;

	commit_records(f, "one", 2);
	commit_records(f, "two", 2);
	assert_int_equal(segments(f, names, 8), 3);
	rebuild(f);
	assert_int_equal(segments(f, names, 8), 1);
	machine(f, "fresh");
	assert_int_equal(has_record(f, "two", 1, &err), 0);
	machine(f, "a");
	assert_int_equal(has_record(f, "one", 1, &err), 0);

	/* append-only: the replaced segments stay and change nothing */
	assert_int_equal(repo_open(f->repo, REPO_OPEN_WRITE, &r, &err), 0);
	assert_int_equal(repo_config_set_flags(r, REPO_APPEND_ONLY, 0, &err),
			 0);
	repo_close(r);
	commit_records(f, "three", 1);
	assert_int_equal(segments(f, names, 8), 2);
	rebuild(f);
	assert_int_equal(segments(f, names, 8), 3);
	assert_int_equal(has_record(f, "three", 0, &err), 0);
	machine(f, "fresh2");
	assert_int_equal(has_record(f, "one", 0, &err), 0);
	assert_int_equal(has_record(f, "three", 0, &err), 0);
	machine(f, "fresh");
	assert_int_equal(has_record(f, "three", 0, &err), 0);
}

/* Every 64 segments a writer publishes a base instead (FORMAT-2 5.3):
 * after 70 commits a fresh reader reads one base and a few. */
static void test_segment_base_every_64(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	char names[128][40], tag[16];
	size_t n;
	int i;

	for (i = 0; i < 70; i++) {
		snprintf(tag, sizeof(tag), "c%d", i);
		commit_records_as(f, tag, 1, REPO_OPEN_SHARED);
	}
	n = segments(f, names, 128);
	if (n > 8)
		fail_msg("%zu segments after 70 commits", n);
	machine(f, "fresh");
	if (has_record(f, "c0", 0, &err))
		fail_msg("c0: %s", err.msg);
	assert_int_equal(has_record(f, "c69", 0, &err), 0);
}

/* Two writers with shared locks at once, each publishing a base (both
 * past 64 segments): a base replaces only what its writer's cache read,
 * so neither removes the other's commit, and every machine sees both. */
static void test_segment_shared_bases(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct repo_writer *wa = NULL;
	struct repo *ra;
	char names[128][40], tag[16];
	int i;

	for (i = 0; i < 64; i++) {
		snprintf(tag, sizeof(tag), "c%d", i);
		commit_records_as(f, tag, 1, REPO_OPEN_SHARED);
	}
	assert_int_equal(segments(f, names, 128), 65);
	ra = begin_records(f, "from-a", 2, REPO_OPEN_SHARED, &wa);
	machine(f, "b");
	commit_records_as(f, "from-b", 2, REPO_OPEN_SHARED);
	/* b read 65 segments: its commit was a base replacing them */
	assert_int_equal(segments(f, names, 128), 1);
	machine(f, "a");
	finish_records(ra, wa);
	assert_int_equal(segments(f, names, 128), 2);
	machine(f, "fresh");
	assert_int_equal(has_record(f, "from-a", 1, &err), 0);
	assert_int_equal(has_record(f, "from-b", 1, &err), 0);
	assert_int_equal(has_record(f, "c0", 0, &err), 0);
	machine(f, "a");
	assert_int_equal(has_record(f, "from-b", 1, &err), 0);
	machine(f, "b");
	assert_int_equal(has_record(f, "from-a", 0, &err), 0);
}

/* A shared writer and an exclusive one at once: the second is refused
 * (-EBUSY, naming the shared holder), and the other way round. */
static void test_segment_shared_vs_exclusive(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct repo *a = NULL, *b = NULL, *c = NULL;

	assert_int_equal(repo_open(f->repo, REPO_OPEN_WRITE | REPO_OPEN_SHARED,
				   &a, &err),
			 0);
	machine(f, "b");
	assert_int_equal(repo_open(f->repo, REPO_OPEN_WRITE | REPO_OPEN_SHARED,
				   &b, &err),
			 0);
	machine(f, "c");
	assert_int_equal(repo_open(f->repo, REPO_OPEN_WRITE, &c, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "shared lock"));
	repo_close(a);
	repo_close(b);
	mv_err_clear(&err);
	assert_int_equal(repo_open(f->repo, REPO_OPEN_WRITE, &c, &err), 0);
	machine(f, "a");
	assert_int_equal(repo_open(f->repo, REPO_OPEN_WRITE | REPO_OPEN_SHARED,
				   &a, &err),
			 -EBUSY);
	/* the same cache twice: refused, naming this process */
	repo_close(c);
	mv_err_clear(&err);
	assert_int_equal(repo_open(f->repo, REPO_OPEN_WRITE | REPO_OPEN_SHARED,
				   &a, &err),
			 0);
	assert_int_equal(repo_open(f->repo, REPO_OPEN_WRITE | REPO_OPEN_SHARED,
				   &b, &err),
			 -EBUSY);
	assert_non_null(strstr(err.msg, "same cache"));
	repo_close(a);
}

static void touch_tmp(struct fx *f, const char *name, time_t age)
{
	char p[512];
	struct timespec t[2];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", f->segdir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "half", 4), 4);
	close(fd);
	t[0].tv_sec = t[1].tv_sec = time(NULL) - age;
	t[0].tv_nsec = t[1].tv_nsec = 0;
	assert_int_equal(utimensat(AT_FDCWD, p, t, 0), 0);
}

static bool tmp_there(struct fx *f, const char *name)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", f->segdir, name);
	return access(p, F_OK) == 0;
}

/* Publications a killed writer left (index/NAME.tmp): the next shared
 * writer removes those older than a day, an exclusive one all. */
static void test_segment_tmp_cleaned(void **state)
{
	struct fx *f = *state;
	const char *old = "0123456789abcdef0123456789abcdef.tmp";
	const char *young = "fedcba9876543210fedcba9876543210.tmp-x1";

	touch_tmp(f, old, 2 * 86400);
	touch_tmp(f, young, 60);
	commit_records_as(f, "one", 1, REPO_OPEN_SHARED);
	assert_false(tmp_there(f, old));
	assert_true(tmp_there(f, young));
	commit_records(f, "two", 1);
	assert_false(tmp_there(f, young));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_segment_init_and_replay,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_segment_size_follows_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_two_writers_merge,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_flipped_bit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_segment_rollback_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_base_replaces,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_base_every_64,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_shared_bases,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_segment_shared_vs_exclusive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_tmp_cleaned, setup,
						teardown),
	};

	return cmocka_run_group_tests_name("repo_segment", tests, NULL, NULL);
}
