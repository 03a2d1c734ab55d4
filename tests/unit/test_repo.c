/*
 * Unit tests for repo: init and open, config errors, the writer lock
 * (held; stale only when provably dead here; released only by its
 * owner; inspected and broken as 'mailvault unlock' does), an aborted
 * write session leaves nothing visible, and a committed one is seen
 * after reopening; small records are compressed at the higher level.
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
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zstd.h>

#include "pack.h"
#include "keyslot.h"
#include "repo.h"
#include "snapshot.h"

struct fx {
	char dir[64];
	char repo[96];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct mv_err err = MV_ERR_INIT;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_repo.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->repo, sizeof(f->repo), "%s/r", f->dir);
	if (repo_init(f->repo, NULL, &err))
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
	free(f);
	return 0;
}

static void write_config(const struct fx *f, const char *text)
{
	char p[160];
	FILE *fp;

	snprintf(p, sizeof(p), "%s/config", f->repo);
	fp = fopen(p, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static char *read_config(const struct fx *f)
{
	char p[160], *text = NULL;
	size_t n;
	struct mv_err err = MV_ERR_INIT;

	snprintf(p, sizeof(p), "%s/config", f->repo);
	assert_int_equal(mv_read_file(p, 1 << 16, &text, &n, &err), 0);
	return text;
}

static void test_init_open(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	const struct repo_config *c;
	struct chunker_params def;
	struct repo *r;
	char p[160];
	struct stat st;

	assert_int_equal(repo_open(f->repo, REPO_OPEN_READ, &r, &err), 0);
	c = repo_get_config(r);
	repo_default_chunker(&def);
	assert_int_equal(c->version, MV_FORMAT_VERSION);
	assert_int_equal(c->chunker.avg_size, def.avg_size);
	assert_string_equal(c->encryption, "none");
	assert_string_equal(repo_location(r), f->repo);
	repo_close(r);
	snprintf(p, sizeof(p), "%s/index.db", f->repo);
	assert_int_equal(stat(p, &st), 0);
	/* init twice is refused */
	assert_int_equal(repo_init(f->repo, NULL, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "already a mailvault repository"));
	/* not a repository */
	mv_err_clear(&err);
	assert_int_equal(repo_open(f->dir, REPO_OPEN_READ, &r, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "not a mailvault repository"));
}

static void test_config_errors(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	char *good = read_config(f), *text;
	struct repo *r;
	size_t n = strlen(good) + 64;

	text = malloc(n);
	assert_non_null(text);
	/* a line without '=' */
	snprintf(text, n, "%sgarbage line\n", good);
	write_config(f, text);
	assert_int_equal(repo_open(f->repo, 0, &r, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "expected 'key = value'"));
	assert_non_null(strstr(err.msg, "/config: line"));
	/* a bad value names the key */
	mv_err_clear(&err);
	snprintf(text, n, "%szstd-level = 99\n", good);
	write_config(f, text);
	assert_int_equal(repo_open(f->repo, 0, &r, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "bad value for 'zstd-level'"));
	/* a newer format version */
	mv_err_clear(&err);
	snprintf(text, n, "%sversion = 7\n", good);
	write_config(f, text);
	assert_int_equal(repo_open(f->repo, 0, &r, &err), -EPROTONOSUPPORT);
	assert_non_null(strstr(err.msg, "version 7 is not supported"));
	/* encryption this build does not know */
	mv_err_clear(&err);
	snprintf(text, n, "%sencryption = aes\n", good);
	write_config(f, text);
	assert_int_equal(repo_open(f->repo, 0, &r, &err), -EPROTONOSUPPORT);
	/* required keys missing */
	mv_err_clear(&err);
	write_config(f, "format = mailvault\nversion = 1\n");
	assert_int_equal(repo_open(f->repo, 0, &r, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "missing"));
	/* bad chunker parameters */
	mv_err_clear(&err);
	snprintf(text, n, "%schunk-avg = 1000\n", good);
	write_config(f, text);
	assert_int_equal(repo_open(f->repo, 0, &r, &err), -EINVAL);
	/* unknown keys are allowed; the good config opens again */
	mv_err_clear(&err);
	snprintf(text, n, "%sfuture-key = whatever\n", good);
	write_config(f, text);
	assert_int_equal(repo_open(f->repo, 0, &r, &err), 0);
	repo_close(r);
	free(text);
	free(good);
}

static void test_lock_held(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct repo *w, *w2, *rd;
	char host[256] = "", want[300];

	assert_int_equal(repo_open(f->repo, REPO_OPEN_WRITE, &w, &err), 0);
	assert_int_equal(repo_open(f->repo, REPO_OPEN_WRITE, &w2, &err),
			 -EBUSY);
	gethostname(host, sizeof(host) - 1);
	snprintf(want, sizeof(want), "pid %d on host '%s'", (int)getpid(),
		 host);
	assert_non_null(strstr(err.msg, want));
	assert_non_null(strstr(err.msg, "locked"));
	/* readers are not blocked */
	mv_err_clear(&err);
	assert_int_equal(repo_open(f->repo, REPO_OPEN_READ, &rd, &err), 0);
	repo_close(rd);
	repo_close(w);
	/* released on close */
	assert_int_equal(repo_open(f->repo, REPO_OPEN_WRITE, &w2, &err), 0);
	repo_close(w2);
}

static void my_boot_id(char *out, size_t n)
{
	FILE *fp = fopen("/proc/sys/kernel/random/boot_id", "r");

	assert_non_null(fp);
	assert_non_null(fgets(out, (int)n, fp));
	out[strcspn(out, "\n")] = '\0';
	fclose(fp);
}

static pid_t dead_pid(void)
{
	pid_t dead = fork();

	assert_true(dead >= 0);
	if (!dead)
		_exit(0);
	assert_int_equal(waitpid(dead, NULL, 0), dead);
	return dead;
}

static void write_lock(const struct fx *f, const char *host, pid_t pid,
		       const char *boot, const char *token)
{
	char p[160];
	FILE *fp;

	snprintf(p, sizeof(p), "%s/lock", f->repo);
	fp = fopen(p, "w");
	assert_non_null(fp);
	fprintf(fp, "host=%s\npid=%d\ntime=%lld\n", host, (int)pid,
		(long long)time(NULL) - 100);
	if (boot)
		fprintf(fp, "boot=%s\n", boot);
	if (token)
		fprintf(fp, "token=%s\n", token);
	fclose(fp);
}

static void expect_locked(const struct fx *f, const char *what)
{
	struct mv_err err = MV_ERR_INIT;
	struct repo *w = NULL;
	int rc = repo_open(f->repo, REPO_OPEN_WRITE, &w, &err);

	if (rc != -EBUSY) {
		repo_close(w);
		fail_msg("%s: taken over (rc %d)", what, rc);
	}
	assert_non_null(strstr(err.msg, "mailvault unlock"));
}

static void test_lock_stale(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	char p[160], host[256] = "", boot[64];
	struct repo *w;
	pid_t dead = dead_pid();
	int fd;

	gethostname(host, sizeof(host) - 1);
	my_boot_id(boot, sizeof(boot));
	snprintf(p, sizeof(p), "%s/lock", f->repo);
	/* provably dead: this host, this boot, no such pid, no flock */
	write_lock(f, host, dead, boot, "00112233445566778899aabbccddeeff");
	if (repo_open(f->repo, REPO_OPEN_WRITE, &w, &err))
		fail_msg("stale lock not taken over: %s", err.msg);
	repo_close(w);
	/* the same before a reboot, or from another machine of the same
	 * name (another boot id): not provable, left to the user */
	write_lock(f, host, dead, "not-this-boot", "aa");
	expect_locked(f, "a lock of another boot");
	/* a lock without a boot id (written by an older version) */
	write_lock(f, host, dead, NULL, NULL);
	expect_locked(f, "a lock without a boot id");
	/* a live holder on another host is never taken over */
	write_lock(f, "elsewhere.example", dead, boot, "bb");
	mv_err_clear(&err);
	assert_int_equal(repo_open(f->repo, REPO_OPEN_WRITE, &w, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "elsewhere.example"));
	/* a holder whose pid is gone but whose flock is held (its pid was
	 * reused for a thread, or another breaker is at work) */
	write_lock(f, host, dead, boot, "cc");
	fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	expect_locked(f, "a lock whose flock is held");
	close(fd);
	unlink(p);
}

/* A writer removes only its own lock: the user ran 'unlock --force' and
 * another writer took the repository; the first one's close must leave
 * the second one's lock in place. */
static void test_lock_release_own_only(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	char p[160], *text = NULL;
	struct repo *w;
	FILE *fp;

	assert_int_equal(repo_open(f->repo, REPO_OPEN_WRITE, &w, &err), 0);
	snprintf(p, sizeof(p), "%s/lock", f->repo);
	unlink(p);
	fp = fopen(p, "w");
	assert_non_null(fp);
	fprintf(fp, "host=other\npid=1\ntime=1\nboot=x\ntoken=other\n");
	fclose(fp);
	repo_close(w);
	if (access(p, F_OK))
		fail_msg("closing a writer removed another writer's lock");
	assert_int_equal(mv_read_file(p, 4096, &text, NULL, NULL), 0);
	assert_non_null(strstr(text, "token=other"));
	free(text);
	unlink(p);
}

/* repo_lock_inspect and repo_lock_break, as 'mailvault unlock' uses them */
static void test_lock_inspect_break(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct repo_lock_info li, li2;
	char host[256] = "", boot[64], p[160];
	pid_t dead = dead_pid();

	gethostname(host, sizeof(host) - 1);
	my_boot_id(boot, sizeof(boot));
	snprintf(p, sizeof(p), "%s/lock", f->repo);
	assert_int_equal(repo_lock_inspect(f->repo, &li, &err), -ENOENT);
	write_lock(f, "elsewhere.example", 4242, boot, "t1");
	assert_int_equal(repo_lock_inspect(f->repo, &li, &err), 0);
	assert_string_equal(li.host, "elsewhere.example");
	assert_int_equal(li.pid, 4242);
	assert_false(li.this_machine);
	assert_false(li.gone);
	/* it changed after it was shown: nothing removed */
	write_lock(f, "elsewhere.example", 4242, boot, "t2");
	assert_int_equal(repo_lock_break(f->repo, &li, &err), -ESTALE);
	assert_int_equal(access(p, F_OK), 0);
	assert_int_equal(repo_lock_inspect(f->repo, &li2, &err), 0);
	mv_err_clear(&err);
	assert_int_equal(repo_lock_break(f->repo, &li2, &err), 0);
	assert_int_equal(access(p, F_OK), -1);
	/* a provably dead local holder */
	write_lock(f, host, dead, boot, "t3");
	assert_int_equal(repo_lock_inspect(f->repo, &li, &err), 0);
	assert_true(li.this_machine);
	assert_true(li.gone);
	assert_false(li.alive);
	/* a running one */
	write_lock(f, host, getpid(), boot, "t4");
	assert_int_equal(repo_lock_inspect(f->repo, &li, &err), 0);
	assert_true(li.alive);
	unlink(p);
}

static void make_snapshot(struct repo *r, struct snapshot *s)
{
	memset(s, 0, sizeof(*s));
	s->name = (char *)"job";
	s->host = (char *)"host";
	s->time_ns = 1700000000ll * 1000000000;
	(void)r;
}

static void test_abort_and_commit(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct repo_writer *wr;
	struct repo *r;
	struct snapshot s, *list = NULL;
	struct mv_buf back = MV_BUF_INIT;
	uint8_t id[MV_ID_LEN], id2[MV_ID_LEN];
	static const char data[] = "the content of a chunk";
	static const char data2[] = "another chunk";
	bool fresh = false;
	size_t n = 9;
	char cmd[200];

	assert_int_equal(repo_open(f->repo, REPO_OPEN_WRITE, &r, &err), 0);
	repo_chunk_id(r, data, sizeof(data), id);
	repo_chunk_id(r, data2, sizeof(data2), id2);
	/* aborted: nothing visible, no pack left */
	assert_int_equal(repo_writer_begin(r, &wr, &err), 0);
	assert_int_equal(repo_writer_put(wr, REC_DATA, id, data, sizeof(data),
					 NULL, 0, &fresh, &err),
			 0);
	assert_true(fresh);
	assert_true(repo_writer_has(wr, id));
	repo_writer_abort(wr);
	assert_int_equal(repo_chunk_find(r, id, NULL, &err), -ENOENT);
	mv_err_clear(&err);
	assert_int_equal(snapshot_list(r, &list, &n, &err), 0);
	assert_int_equal(n, 0);
	snapshot_list_free(list, n);
	snprintf(cmd, sizeof(cmd), "test -z \"$(find '%s/packs' -type f)\"",
		 f->repo);
	assert_int_equal(system(cmd), 0);
	/* committed: seen after reopening */
	assert_int_equal(repo_writer_begin(r, &wr, &err), 0);
	assert_int_equal(repo_writer_put(wr, REC_DATA, id, data, sizeof(data),
					 NULL, 0, &fresh, &err),
			 0);
	assert_int_equal(repo_writer_put(wr, REC_DATA, id2, data2,
					 sizeof(data2), NULL, 0, &fresh, &err),
			 0);
	/* a second put of the same id stores nothing */
	assert_int_equal(repo_writer_put(wr, REC_DATA, id, data, sizeof(data),
					 NULL, 0, &fresh, &err),
			 0);
	assert_false(fresh);
	make_snapshot(r, &s);
	if (repo_writer_commit(wr, &s, &err))
		fail_msg("commit: %s", err.msg);
	repo_close(r);
	assert_int_equal(repo_open(f->repo, REPO_OPEN_READ, &r, &err), 0);
	assert_int_equal(repo_chunk_read(r, id, true, &back, &err), 0);
	assert_int_equal(back.len, sizeof(data));
	assert_memory_equal(back.data, data, sizeof(data));
	assert_int_equal(repo_chunk_read(r, id2, true, &back, &err), 0);
	assert_memory_equal(back.data, data2, sizeof(data2));
	assert_int_equal(snapshot_list(r, &list, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].name, "job");
	assert_memory_equal(list[0].id, s.id, MV_ID_LEN);
	snapshot_list_free(list, n);
	/* an unknown id */
	id[0] ^= 1;
	assert_true(repo_chunk_read(r, id, true, &back, &err) < 0);
	mv_buf_release(&back);
	repo_close(r);
	/* writing needs the lock */
	assert_int_equal(repo_open(f->repo, REPO_OPEN_READ, &r, &err), 0);
	mv_err_clear(&err);
	assert_int_equal(repo_writer_begin(r, &wr, &err), -EPERM);
	repo_close(r);
}

/* ---- encrypted repositories (FORMAT-2 section 4) ---------------------- */

static const char *test_pass = "correct horse";

static int give_pass(void *arg, const char *location, const char **pass,
		     size_t *pass_len, struct mv_err *err)
{
	(void)arg;
	(void)location;
	(void)err;
	*pass = test_pass;
	*pass_len = strlen(test_pass);
	return 0;
}

static void set_unlock(const char *pass, const char *keyfile)
{
	struct repo_unlock u = {give_pass, NULL, keyfile};

	test_pass = pass;
	repo_set_unlock(&u);
	repo_unlock_forget(); /* every open below runs Argon2id again */
}

/* Text: compressible, with matches a higher level finds further away. */
static void fill_text(char *p, size_t n)
{
	static const char *const words[] = {
		"Received: ",
		"from ",
		"mail.example.org ",
		"by ",
		"mx.example.net ",
		"with ",
		"ESMTPS ",
		"id ",
		"Subject: ",
		"Re: ",
		"invoice ",
		"meeting ",
		"\r\n",
	};
	uint32_t x = 12345;
	size_t i = 0;

	while (i < n) {
		const char *w;
		size_t l;

		x = x * 1103515245u + 12345u;
		w = words[(x >> 16) % (sizeof(words) / sizeof(words[0]))];
		l = strlen(w);
		if (l > n - i)
			l = n - i;
		memcpy(p + i, w, l);
		i += l;
	}
}

static size_t zstd_len(const void *p, size_t n, int level)
{
	size_t cap = ZSTD_compressBound(n), len;
	void *dst = malloc(cap);

	assert_non_null(dst);
	len = ZSTD_compress(dst, cap, p, n, level);
	assert_false(ZSTD_isError(len));
	free(dst);
	return len;
}

/* A record up to 16 KiB (a message, a piece of a Dovecot index file) is
 * compressed at level 9 at least, a larger one at the configured level. */
static void test_small_record_level(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct mv_buf out = MV_BUF_INIT;
	struct repo_comp how;
	size_t big = 64 << 10, small = 16 << 10;
	char *text = malloc(big);
	struct repo *r;

	assert_non_null(text);
	fill_text(text, big);
	/* the test needs inputs where the two levels differ */
	assert_true(zstd_len(text, small, 9) < zstd_len(text, small, 3));
	assert_true(zstd_len(text, big, 9) < zstd_len(text, big, 3));
	assert_int_equal(repo_open(f->repo, REPO_OPEN_READ, &r, &err), 0);
	assert_int_equal(repo_get_config(r)->zstd_level, 3);
	assert_false(repo_has_dictionary(r));
	assert_int_equal(repo_compress(r, text, small, &out, &how, &err), 0);
	assert_int_equal(how.kind, PACK_COMP_ZSTD);
	assert_int_equal(out.len, zstd_len(text, small, 9));
	assert_int_equal(repo_compress(r, text, small + 1, &out, &how, &err),
			 0);
	assert_int_equal(out.len, zstd_len(text, small + 1, 3));
	assert_int_equal(repo_compress(r, text, big, &out, &how, &err), 0);
	assert_int_equal(out.len, zstd_len(text, big, 3));
	repo_close(r);
	mv_buf_release(&out);
	free(text);
}

/* An encrypted repository at path, passphrase "correct horse", the
 * cheapest key slot; o stays filled for further inits. */
static void init_encrypted(const char *path, struct repo_init_opts *o)
{
	static const struct keyslot_params kdf = {KEYSLOT_MIN_OPS,
						  KEYSLOT_MIN_MEM};
	struct mv_err err = MV_ERR_INIT;

	memset(o, 0, sizeof(*o));
	o->encrypt = true;
	o->pass = "correct horse";
	o->pass_len = strlen(o->pass);
	o->kdf = &kdf;
	if (repo_init(path, o, &err))
		fail_msg("init: %s", err.msg);
}

/* A record sealed on another thread (repo_seal, as ingest's workers do)
 * is stored by repo_writer_put_sealed and reads back; an empty one is
 * refused. */
static void test_sealed_ahead(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct repo_init_opts o;
	struct repo_writer *wr;
	struct repo_comp how;
	struct repo *r;
	struct snapshot s;
	struct mv_buf comp = MV_BUF_INIT, sealed = MV_BUF_INIT,
		      back = MV_BUF_INIT;
	char e[128], text[4096];
	uint8_t id[MV_ID_LEN], id2[MV_ID_LEN];
	static const char tiny[] = "short";
	bool fresh = false;

	fill_text(text, sizeof(text));
	snprintf(e, sizeof(e), "%s/e", f->dir);
	init_encrypted(e, &o);
	set_unlock("correct horse", NULL);
	assert_int_equal(repo_open(e, REPO_OPEN_WRITE, &r, &err), 0);
	repo_chunk_id(r, text, sizeof(text), id);
	repo_chunk_id(r, tiny, sizeof(tiny), id2);
	assert_int_equal(repo_writer_begin(r, &wr, &err), 0);
	/* compressed, and one stored raw (too small to compress) */
	assert_int_equal(
		repo_compress(r, text, sizeof(text), &comp, &how, &err), 0);
	assert_int_equal(how.kind, PACK_COMP_ZSTD);
	assert_int_equal(repo_seal(r, REC_DATA, id, text, sizeof(text),
				   comp.data, comp.len, &how, &sealed, &err),
			 0);
	assert_true(sealed.len > comp.len);
	assert_int_equal(repo_writer_put_sealed(wr, REC_DATA, id, sizeof(text),
						&how, &sealed, &fresh, &err),
			 0);
	assert_true(fresh);
	/* the same id again stores nothing */
	assert_int_equal(repo_writer_put_sealed(wr, REC_DATA, id, sizeof(text),
						&how, &sealed, &fresh, &err),
			 0);
	assert_false(fresh);
	assert_int_equal(repo_seal(r, REC_DATA, id2, tiny, sizeof(tiny), NULL,
				   0, NULL, &sealed, &err),
			 0);
	assert_int_equal(repo_writer_put_sealed(wr, REC_DATA, id2, sizeof(tiny),
						NULL, &sealed, &fresh, &err),
			 0);
	make_snapshot(r, &s);
	if (repo_writer_commit(wr, &s, &err))
		fail_msg("commit: %s", err.msg);
	repo_close(r);
	set_unlock("correct horse", NULL);
	assert_int_equal(repo_open(e, REPO_OPEN_READ, &r, &err), 0);
	assert_int_equal(repo_chunk_read(r, id, true, &back, &err), 0);
	assert_int_equal(back.len, sizeof(text));
	assert_memory_equal(back.data, text, sizeof(text));
	assert_int_equal(repo_chunk_read(r, id2, true, &back, &err), 0);
	assert_int_equal(back.len, sizeof(tiny));
	assert_memory_equal(back.data, tiny, sizeof(tiny));
	repo_close(r);

	/* the plain repository of the fixture seals with the none suite;
	 * nothing sealed is refused */
	assert_int_equal(repo_open(f->repo, REPO_OPEN_WRITE, &r, &err), 0);
	assert_int_equal(repo_seal(r, REC_DATA, id2, tiny, sizeof(tiny), NULL,
				   0, NULL, &sealed, &err),
			 0);
	assert_true(sealed.len > sizeof(tiny));
	mv_buf_reset(&sealed);
	assert_int_equal(repo_writer_begin(r, &wr, &err), 0);
	assert_int_equal(repo_writer_put_sealed(wr, REC_DATA, id2, sizeof(tiny),
						NULL, &sealed, &fresh, &err),
			 -EINVAL);
	assert_false(fresh);
	mv_err_clear(&err);
	repo_writer_abort(wr);
	repo_close(r);
	repo_set_unlock(NULL);
	repo_unlock_forget();
	mv_buf_release(&comp);
	mv_buf_release(&sealed);
	mv_buf_release(&back);
}

static void test_encrypted(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct repo_init_opts o;
	uint8_t secret[MV_SECRET_LEN], zero[MV_SECRET_LEN] = {0};
	char e[128], kf[128], k[128], p[160], *text;
	const char *slot = NULL;
	struct repo *r = NULL;
	struct stat st;

	snprintf(e, sizeof(e), "%s/e", f->dir);
	init_encrypted(e, &o);
	/* the readable config names the encryption and holds no secret */
	snprintf(p, sizeof(p), "%s/config", e);
	assert_int_equal(mv_read_file(p, 1 << 16, &text, NULL, &err), 0);
	assert_non_null(strstr(text, "encryption = xchacha20-poly1305\n"));
	assert_non_null(strstr(text, "key = repokey\n"));
	assert_non_null(strstr(text, "packs = 2\n"));
	assert_null(strstr(text, "secret"));
	free(text);

	set_unlock("correct horse", NULL);
	assert_int_equal(repo_open(e, REPO_OPEN_READ, &r, &err), 0);
	assert_non_null(repo_master_key(r, &slot));
	assert_int_equal(strlen(slot), 32);
	memcpy(secret, repo_get_config(r)->secret, MV_SECRET_LEN);
	assert_memory_not_equal(secret, zero, MV_SECRET_LEN);
	repo_close(r);
	/* the hashing root is derived, so every open finds the same */
	set_unlock("correct horse", NULL);
	assert_int_equal(repo_open(e, REPO_OPEN_READ, &r, &err), 0);
	assert_memory_equal(repo_get_config(r)->secret, secret, MV_SECRET_LEN);
	repo_close(r);

	set_unlock("wrong horse", NULL);
	r = NULL;
	assert_int_equal(repo_open(e, REPO_OPEN_WRITE, &r, &err),
			 -EKEYREJECTED);
	assert_null(r);
	assert_non_null(strstr(err.msg, "wrong passphrase"));
	assert_true(repo_unlock_refused());
	/* refused before the lock: no lock file left or made */
	snprintf(p, sizeof(p), "%s/lock", e);
	assert_int_equal(stat(p, &st), -1);
	mv_err_clear(&err);
	repo_set_unlock(NULL);
	repo_unlock_forget();
	assert_int_equal(repo_open(e, REPO_OPEN_READ, &r, &err), -ENOKEY);
	mv_err_clear(&err);

	/* key = keyfile: the slot is in the file only */
	snprintf(k, sizeof(k), "%s/k", f->dir);
	snprintf(kf, sizeof(kf), "%s/k.key", f->dir);
	o.keyfile = kf;
	if (repo_init(k, &o, &err))
		fail_msg("init keyfile: %s", err.msg);
	snprintf(p, sizeof(p), "%s/keys", k);
	assert_int_equal(stat(p, &st), -1);
	assert_int_equal(stat(kf, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	set_unlock("correct horse", NULL);
	assert_int_equal(repo_open(k, REPO_OPEN_READ, &r, &err), -ENOKEY);
	assert_non_null(strstr(err.msg, "MAILVAULT_KEYFILE"));
	mv_err_clear(&err);
	set_unlock("correct horse", kf);
	assert_int_equal(repo_open(k, REPO_OPEN_READ, &r, &err), 0);
	repo_close(r);
	/* a key file is never overwritten: a second init fails, and leaves
	 * no repository behind */
	snprintf(k, sizeof(k), "%s/k2", f->dir);
	assert_int_equal(repo_init(k, &o, &err), -EEXIST);
	mv_err_clear(&err);
	snprintf(p, sizeof(p), "%s/config", k);
	assert_int_equal(stat(p, &st), -1);

	/* chunker parameters are not copied into or out of encryption */
	assert_int_equal(repo_open(f->repo, REPO_OPEN_READ, &r, &err), 0);
	o.keyfile = NULL;
	o.copy_from = repo_get_config(r);
	snprintf(k, sizeof(k), "%s/k3", f->dir);
	assert_int_equal(repo_init(k, &o, &err), -EINVAL);
	repo_close(r);
	repo_set_unlock(NULL);
	repo_unlock_forget();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_init_open, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_config_errors, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lock_held, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lock_stale, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lock_release_own_only,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_inspect_break, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_abort_and_commit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_small_record_level, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_sealed_ahead, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_encrypted, setup,
						teardown),
	};

	return cmocka_run_group_tests_name("repo", tests, NULL, NULL);
}
