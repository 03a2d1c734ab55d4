/*
 * Unit tests for a repository handed across fork() (a mount detaching,
 * repo_before_fork/repo_after_fork): the child reads the index and the
 * records the parent opened without opening the repository again, the
 * parent can go on too, and a repository open for writing is refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "repo.h"
#include "snapshot.h"

struct fx {
	char dir[64];
	char repo[96];
	uint8_t id[MV_ID_LEN];
};

static const char data[] = "a message read by the mount's daemon";

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct mv_err err = MV_ERR_INIT;
	struct repo_writer *wr;
	struct snapshot s;
	struct repo *r;
	bool fresh = false;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_repo_fork.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->repo, sizeof(f->repo), "%s/r", f->dir);
	if (repo_init(f->repo, NULL, &err))
		fail_msg("init: %s", err.msg);
	assert_int_equal(repo_open(f->repo, REPO_OPEN_WRITE, &r, &err), 0);
	repo_chunk_id(r, data, sizeof(data), f->id);
	assert_int_equal(repo_writer_begin(r, &wr, &err), 0);
	assert_int_equal(repo_writer_put(wr, REC_DATA, f->id, data,
					 sizeof(data), NULL, 0, &fresh, &err),
			 0);
	memset(&s, 0, sizeof(s));
	s.name = (char *)"job";
	s.host = (char *)"host";
	s.time_ns = 1700000000ll * 1000000000;
	if (repo_writer_commit(wr, &s, &err))
		fail_msg("commit: %s", err.msg);
	repo_close(r);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* 0 when r sees the snapshot and reads the chunk of setup. */
static int reads_back(struct repo *r, const struct fx *f)
{
	struct mv_err err = MV_ERR_INIT;
	struct mv_buf back = MV_BUF_INIT;
	struct snapshot *list = NULL;
	size_t n = 0;
	int rc;

	rc = snapshot_list(r, &list, &n, &err);
	if (!rc && n != 1)
		rc = -ENOENT;
	snapshot_list_free(list, n);
	if (!rc)
		rc = repo_chunk_read(r, f->id, true, &back, &err);
	if (!rc &&
	    (back.len != sizeof(data) || memcmp(back.data, data, sizeof(data))))
		rc = -EIO;
	mv_buf_release(&back);
	return rc;
}

static void test_child_keeps_repository(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct repo *r;
	pid_t pid;
	int st = -1;

	assert_int_equal(repo_open(f->repo, REPO_OPEN_READ, &r, &err), 0);
	assert_int_equal(reads_back(r, f), 0);
	assert_int_equal(repo_before_fork(r, &err), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int rc = repo_after_fork(r, &err);

		if (!rc)
			rc = reads_back(r, f);
		repo_close(r);
		_exit(rc ? 1 : 0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	/* the parent may go on as well */
	assert_int_equal(repo_after_fork(r, &err), 0);
	assert_int_equal(reads_back(r, f), 0);
	repo_close(r);
}

static void test_writer_refused(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct repo *r;

	assert_int_equal(repo_open(f->repo, REPO_OPEN_WRITE, &r, &err), 0);
	assert_int_equal(repo_before_fork(r, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "open for writing"));
	assert_int_equal(reads_back(r, f), 0);
	repo_close(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_child_keeps_repository,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_refused, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
