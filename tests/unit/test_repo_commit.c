/*
 * Unit tests for the commit of a write session (include/repo.h, design
 * notes): a new packs/XX directory is made durable (packs/ is fsynced)
 * before the index names a pack in it; an index held by a reader
 * (SQLITE_BUSY) is waited for instead of throwing the backup away; a
 * commit that fails with an unknown outcome keeps the sealed packs.
 *
 * fsync and fdatasync are interposed here: the test binary's definitions
 * win over libc's for mailvault and for SQLite, so a test sees which
 * files and directories were synced and can make the index's sync fail.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "repo.h"
#include "snapshot.h"

int fsync(int fd);
int fdatasync(int fd);

/* ---- the interposed sync calls ----------------------------------------- */

#define SYNC_LOG_MAX 256

static pthread_mutex_t sync_mu = PTHREAD_MUTEX_INITIALIZER;
static char sync_log[SYNC_LOG_MAX][PATH_MAX];
static int sync_n;
static const char *sync_fail_suffix; /* fail syncs of paths ending so */

static int sync_hook(int fd, long nr)
{
	char link[64], path[PATH_MAX];
	ssize_t n;
	size_t len, sl;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	path[n > 0 ? n : 0] = '\0';
	pthread_mutex_lock(&sync_mu);
	if (sync_n < SYNC_LOG_MAX)
		snprintf(sync_log[sync_n++], PATH_MAX, "%s", path);
	len = strlen(path);
	sl = sync_fail_suffix ? strlen(sync_fail_suffix) : 0;
	if (sl && len >= sl && !strcmp(path + len - sl, sync_fail_suffix)) {
		pthread_mutex_unlock(&sync_mu);
		errno = EIO;
		return -1;
	}
	pthread_mutex_unlock(&sync_mu);
	return (int)syscall(nr, fd);
}

int fsync(int fd)
{
	return sync_hook(fd, SYS_fsync);
}

int fdatasync(int fd)
{
	return sync_hook(fd, SYS_fdatasync);
}

static void sync_reset(void)
{
	pthread_mutex_lock(&sync_mu);
	sync_n = 0;
	sync_fail_suffix = NULL;
	pthread_mutex_unlock(&sync_mu);
}

/* Index of the first logged sync of path at or after from, or -1. */
static int sync_find(const char *path, int from)
{
	int i, at = -1;

	pthread_mutex_lock(&sync_mu);
	for (i = from; i < sync_n; i++)
		if (!strcmp(sync_log[i], path)) {
			at = i;
			break;
		}
	pthread_mutex_unlock(&sync_mu);
	return at;
}

/* ---- fixture ----------------------------------------------------------- */

struct fx {
	char dir[64];
	char repo[PATH_MAX];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct mv_err err = MV_ERR_INIT;
	char real[PATH_MAX];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_repo_commit.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	/* /proc/self/fd names resolved paths */
	assert_non_null(realpath(f->dir, real));
	snprintf(f->repo, sizeof(f->repo), "%.4000s/r", real);
	if (repo_init(f->repo, NULL, &err))
		fail_msg("init: %s", err.msg);
	sync_reset();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	sync_reset();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void make_snapshot(struct snapshot *s)
{
	memset(s, 0, sizeof(*s));
	s->name = (char *)"job";
	s->host = (char *)"host";
	s->time_ns = 1700000000ll * 1000000000;
}

/* Begin a session on r and put one data chunk into it. */
static struct repo_writer *session_with_chunk(struct repo *r, const char *data,
					      uint8_t id[MV_ID_LEN])
{
	struct mv_err err = MV_ERR_INIT;
	struct repo_writer *w = NULL;

	if (repo_writer_begin(r, &w, &err))
		fail_msg("begin: %s", err.msg);
	repo_chunk_id(r, data, strlen(data), id);
	if (repo_writer_put(w, REC_DATA, id, data, strlen(data), NULL, 0, NULL,
			    &err))
		fail_msg("put: %s", err.msg);
	return w;
}

/* Sealed packs: files under packs/ with their final names. */
static int count_packs(const struct fx *f)
{
	char cmd[PATH_MAX + 64];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd),
		 "find '%s/packs' -type f ! -name '*.tmp' | wc -l", f->repo);
	p = popen(cmd, "r");
	assert_non_null(p);
	if (fscanf(p, "%d", &n) != 1)
		n = -1;
	pclose(p);
	return n;
}

/* ---- item: packs/ is synced before the index names a pack in packs/XX */

static void test_new_pack_dir_is_durable(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct repo_writer *w;
	struct snapshot s;
	struct repo *r;
	uint8_t id[MV_ID_LEN];
	char packs[PATH_MAX + 8], idx[PATH_MAX + 16];
	int at_packs, at_index;

	assert_int_equal(repo_open(f->repo, REPO_OPEN_WRITE, &r, &err), 0);
	w = session_with_chunk(r, "a chunk in a brand new packs/XX", id);
	make_snapshot(&s);
	sync_reset();
	if (repo_writer_commit(w, &s, &err))
		fail_msg("commit: %s", err.msg);
	snprintf(packs, sizeof(packs), "%s/packs", f->repo);
	snprintf(idx, sizeof(idx), "%s/index.db-wal", f->repo);
	at_packs = sync_find(packs, 0);
	at_index = sync_find(idx, 0);
	if (at_packs < 0)
		fail_msg("'%s' was never synced after packs/XX was created",
			 packs);
	assert_true(at_index >= 0);
	assert_true(at_packs < at_index);
	repo_close(r);
}

/* ---- item: the same snapshot committed twice ---------------------------- */

/* Two sessions that store nothing and commit the same snapshot: the
 * second finds its record stored already and opens no metadata pack. */
static void test_same_snapshot_twice(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct repo_writer *w = NULL;
	struct snapshot s;
	struct repo *r;
	int k, packs;

	assert_int_equal(repo_open(f->repo, REPO_OPEN_WRITE, &r, &err), 0);
	for (k = 0; k < 2; k++) {
		if (repo_writer_begin(r, &w, &err))
			fail_msg("begin: %s", err.msg);
		make_snapshot(&s);
		if (repo_writer_commit(w, &s, &err))
			fail_msg("commit %d: %s", k, err.msg);
		if (k == 0)
			packs = count_packs(f);
	}
	assert_int_equal(count_packs(f), packs);
	repo_close(r);
}

/* ---- item: SQLITE_BUSY at commit is waited for ------------------------- */

struct holder {
	char path[PATH_MAX + 16];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool holding;
	int hold_ms;
	int rc;
};

/* Another connection (a reader on a network filesystem) holds a shared
 * lock on the index for hold_ms. */
static void *hold_index(void *arg)
{
	struct holder *h = arg;
	struct timespec ts;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	h->rc = sqlite3_open_v2(h->path, &db, SQLITE_OPEN_READONLY, NULL);
	if (!h->rc)
		h->rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	if (!h->rc)
		h->rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM chunks",
					   -1, &st, NULL);
	if (!h->rc && sqlite3_step(st) != SQLITE_ROW)
		h->rc = -1;
	pthread_mutex_lock(&h->mu);
	h->holding = true;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	ts.tv_sec = h->hold_ms / 1000;
	ts.tv_nsec = (h->hold_ms % 1000) * 1000000L;
	nanosleep(&ts, NULL);
	sqlite3_finalize(st);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	return NULL;
}

static void test_commit_waits_for_busy_index(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct holder h;
	struct repo_writer *w;
	struct snapshot s;
	struct repo *r;
	pthread_t t;
	uint8_t id[MV_ID_LEN];
	struct mv_buf back = MV_BUF_INIT;
	int rc;

	assert_int_equal(repo_open(f->repo, REPO_OPEN_WRITE, &r, &err), 0);
	/* the journal mode of a network filesystem, where readers and the
	 * committing writer do contend; SQLite's own wait made short, so
	 * the reader outlasts it */
	assert_int_equal(sqlite3_exec(repo_db(r), "PRAGMA journal_mode=DELETE",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_busy_timeout(repo_db(r), 50);
	w = session_with_chunk(r, "committed while a reader holds the index",
			       id);
	memset(&h, 0, sizeof(h));
	snprintf(h.path, sizeof(h.path), "%s/index.db", f->repo);
	pthread_mutex_init(&h.mu, NULL);
	pthread_cond_init(&h.cv, NULL);
	h.hold_ms = 1500;
	assert_int_equal(pthread_create(&t, NULL, hold_index, &h), 0);
	pthread_mutex_lock(&h.mu);
	while (!h.holding)
		pthread_cond_wait(&h.cv, &h.mu);
	pthread_mutex_unlock(&h.mu);
	assert_int_equal(h.rc, 0);
	make_snapshot(&s);
	rc = repo_writer_commit(w, &s, &err);
	pthread_join(t, NULL);
	if (rc)
		fail_msg("commit while a reader held the index: %s", err.msg);
	repo_close(r);
	assert_int_equal(repo_open(f->repo, REPO_OPEN_READ, &r, &err), 0);
	assert_int_equal(repo_chunk_read(r, id, true, &back, &err), 0);
	mv_buf_release(&back);
	repo_close(r);
	pthread_mutex_destroy(&h.mu);
	pthread_cond_destroy(&h.cv);
}

/* ---- item: an unknown commit outcome keeps the packs ------------------- */

static void test_failed_commit_keeps_packs(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct repo_writer *w;
	struct snapshot s;
	struct repo *r;
	uint8_t id[MV_ID_LEN];
	int rc;

	assert_int_equal(repo_open(f->repo, REPO_OPEN_WRITE, &r, &err), 0);
	w = session_with_chunk(r, "a chunk whose commit fails", id);
	make_snapshot(&s);
	assert_int_equal(count_packs(f), 0);
	/* the index's own sync at COMMIT fails: did it commit? unknown */
	pthread_mutex_lock(&sync_mu);
	sync_fail_suffix = "index.db-wal";
	pthread_mutex_unlock(&sync_mu);
	rc = repo_writer_commit(w, &s, &err);
	sync_reset();
	assert_true(rc < 0);
	if (!strstr(err.msg, "kept"))
		fail_msg("the message does not say the packs are kept: %s",
			 err.msg);
	assert_true(repo_commit_outcome_unknown(r));
	/* the data and the meta pack */
	assert_int_equal(count_packs(f), 2);
	repo_close(r);
	/* the repository still opens for writing */
	mv_err_clear(&err);
	if (repo_open(f->repo, REPO_OPEN_WRITE, &r, &err))
		fail_msg("reopen: %s", err.msg);
	repo_close(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_new_pack_dir_is_durable,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_commit_waits_for_busy_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_snapshot_twice, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_failed_commit_keeps_packs,
						setup, teardown),
	};

	return cmocka_run_group_tests_name("repo_commit", tests, NULL, NULL);
}
