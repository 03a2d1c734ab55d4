/*
 * Unit tests for job: good job files load with every key where it should
 * be and the defaults filled in; each kind of bad input is refused with
 * "FILE:LINE: [section] key: what", so an admin goes straight to the
 * line; durations, exit-code ranks and the state file round trip.
 */
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

#include "job.h"

static char dir[] = "/tmp/mv-test-job-XXXXXX";

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	setenv("MAILVAULT_JOB_DIR", dir, 1);
	setenv("MAILVAULT_STATE_DIR", dir, 1);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Write text as DIR/name.conf; returns the path (static buffer). */
static const char *put(const char *name, const char *text)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.conf", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	return path;
}

static const char good[] =
	"# the Stalwart job\n"
	"[job]\n"
	"repository = /srv/backup/mailvault\n"
	"tag = host=mail.example.org\n"
	"wait = 2h\n"
	"\n"
	"[source volume]\n"
	"stream = ssh mail 'docker run --rm -v data:/data:ro alpine tar "
	"-czf - -C /data .'\n"
	"\n"
	"[source config]\n"
	"path = /opt/stalwart/etc\n"
	"\n"
	"[source db]\n"
	"command = pg_dump -Fc\n"
	"  stalwart\n"
	"file-name = stalwart.dump\n"
	"\n"
	"[source single]\n"
	"file = /etc/hostname\n"
	"\n"
	"[retention]\n"
	"keep-daily = 7\n"
	"keep-monthly = 12\n"
	"keep-within = 2d\n"
	"\n"
	"[check]\n"
	"every = 1w\n"
	"read-data-parts = 4\n"
	"\n"
	"[hook before]\n"
	"command = docker compose stop stalwart\n"
	"timeout = 2m\n"
	"\n"
	"[hook after]\n"
	"command = docker compose start stalwart\n"
	"\n"
	"[notify]\n"
	"healthcheck = https://hc-ping.com/abc\n"
	"mail-to = admin@example.org\n"
	"mail-to = ops@example.org\n"
	"textfile = /var/lib/node-exporter/mailvault-stalwart.prom\n";

static void test_job_good(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct job *j = NULL;

	(void)state;
	put("stalwart", good);
	assert_int_equal(job_load_named("stalwart", &j, &err), 0);
	assert_string_equal(j->name, "stalwart");
	assert_string_equal(j->snapshot, "stalwart");
	assert_string_equal(j->repository, "/srv/backup/mailvault");
	assert_int_equal(j->ntags, 1);
	assert_int_equal(j->wait, 7200);
	assert_int_equal(j->nsources, 4);
	assert_string_equal(j->sources[0].label, "volume");
	assert_int_equal(j->sources[0].kind, JOB_SRC_STREAM);
	assert_int_equal(j->sources[1].kind, JOB_SRC_PATH);
	assert_int_equal(j->sources[2].kind, JOB_SRC_COMMAND);
	/* an indented line continues the value */
	assert_string_equal(j->sources[2].value, "pg_dump -Fc stalwart");
	assert_string_equal(j->sources[2].file_name, "stalwart.dump");
	assert_int_equal(j->sources[3].kind, JOB_SRC_FILE);
	assert_int_equal(j->nkeep, 3);
	assert_string_equal(j->keep[0], "--keep-daily=7");
	assert_string_equal(j->keep[2], "--keep-within=2d");
	/* retention without [prune]: weekly */
	assert_int_equal(j->prune_every, 7 * 86400);
	assert_int_equal(j->check_every, 7 * 86400);
	assert_int_equal(j->check_parts, 4);
	assert_int_equal(j->hooks[JOB_HOOK_BEFORE].timeout, 120);
	assert_int_equal(j->hooks[JOB_HOOK_AFTER].timeout, 15 * 60);
	assert_null(j->hooks[JOB_HOOK_ON_ERROR].command);
	assert_int_equal(j->nmail_to, 2);
	assert_false(j->mail_always);
	job_free(j);
}

static void test_job_defaults(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct job *j = NULL;

	(void)state;
	put("min", "[job]\nrepository = /r\nsnapshot = home\n"
		   "[source data]\npath = /home\n");
	assert_int_equal(job_load_named("min", &j, &err), 0);
	assert_string_equal(j->snapshot, "home");
	assert_int_equal(j->wait, 3600);
	assert_int_equal(j->prune_every, -1); /* nothing to prune */
	assert_int_equal(j->check_every, 86400);
	assert_int_equal(j->check_parts, 7);
	job_free(j);
}

/* Each bad file must fail with exactly this message. */
static void expect_bad(const char *text, const char *want)
{
	struct mv_err err = MV_ERR_INIT;
	struct job *j = NULL;
	char full[512];
	const char *path = put("bad", text);

	snprintf(full, sizeof(full), "%s:%s", path, want);
	assert_int_equal(job_load(path, &j, &err), -EINVAL);
	assert_null(j);
	if (strncmp(mv_err_msg(&err), full, strlen(full))) {
		print_error("got  '%s'\nwant '%s...'\n", mv_err_msg(&err),
			    full);
		fail();
	}
}

#define HEAD "[job]\nrepository = /r\n[source d]\npath = /d\n"

static void test_job_bad(void **state)
{
	char longline[400];

	(void)state;
	expect_bad(HEAD "[retention]\nkeep-daly = 7\n",
		   "6: [retention] keep-daly: unknown key");
	expect_bad(HEAD "[retention]\nkeep-daily = seven\n",
		   "6: [retention] keep-daily: 'seven' is not a count");
	expect_bad(HEAD "[retention]\nkeep-within = 2h\n",
		   "6: [retention] keep-within: invalid duration '2h'");
	expect_bad(HEAD "[retention]\nkeep-daily = 7\nkeep-daily = 8\n",
		   "7: [retention] keep-daily: given twice");
	expect_bad("[job]\nrepository = /r\nrepository = /s\n",
		   "3: [job] repository: given twice");
	expect_bad("[job]\nrepositroy = /r\n",
		   "2: [job] repositroy: unknown key");
	expect_bad(HEAD "[sauce x]\npath = /x\n",
		   "6: unknown section [sauce x]");
	expect_bad("repository = /r\n", "1: 'repository' outside a section");
	expect_bad(HEAD "[source x]\npath = /x\nstream = tar c .\n",
		   "7: [source x] stream: a source is one of");
	expect_bad(HEAD "[source a/b]\npath = /x\n",
		   "6: [source a/b] path: bad source label");
	expect_bad(HEAD "[source x]\nfile-name = x.sql\n",
		   "6: [source x] path: missing");
	expect_bad(HEAD "[source x]\npath = /x\nfile-name = x.sql\n",
		   "6: [source x] file-name: only for a command source");
	expect_bad(HEAD "[hook during]\ncommand = true\n",
		   "6: [hook during] command: unknown hook 'during'");
	expect_bad(HEAD "[hook before]\ncommand = true\ntimeout = soon\n",
		   "7: [hook before] timeout: invalid duration 'soon'");
	expect_bad(HEAD "[notify]\nhealthcheck = ftp://x\n",
		   "6: [notify] healthcheck: 'ftp://x' is not an http://");
	expect_bad(HEAD "[notify]\nmail-to = a@b, c@d\n",
		   "6: [notify] mail-to: 'a@b, c@d' is not one mail address");
	expect_bad(HEAD "[notify]\ntextfile = /x/metrics.txt\n",
		   "6: [notify] textfile: node-exporter reads only");
	expect_bad(HEAD "[check]\nread-data-parts = -1\n",
		   "6: [check] read-data-parts: '-1' is not a number");
	expect_bad(HEAD "[prune]\nevery = 1d\n",
		   "2: [prune] every: prune without [retention]");
	expect_bad("[source d]\npath = /d\n", "1: [job] repository: missing");
	expect_bad("[job]\nrepository = /r\n", "2: [source LABEL]: no source");
	expect_bad(HEAD "[hook after]\ncommand = a ; b\n",
		   "6: ' ;' would start a comment");
	expect_bad(HEAD "[retention\nkeep-daily = 1\n", "5: syntax error");
	memset(longline, 'x', sizeof(longline) - 2);
	memcpy(longline, "[hook after]\ncommand = ", 23);
	longline[sizeof(longline) - 2] = '\n';
	longline[sizeof(longline) - 1] = '\0';
	{
		char text[600];

		snprintf(text, sizeof(text), "%s%s", HEAD, longline);
		expect_bad(text, "6: line longer than");
	}
}

static void test_job_bad_name(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct job *j = NULL;
	const char *path = put("a b", HEAD);

	(void)state;
	assert_int_equal(job_load(path, &j, &err), -EINVAL);
	assert_non_null(strstr(mv_err_msg(&err), "a job's name"));
	assert_null(j);
}

static void test_job_duration(void **state)
{
	int64_t v;

	(void)state;
	assert_int_equal(job_parse_duration("90", &v), 0);
	assert_int_equal(v, 90);
	assert_int_equal(job_parse_duration("30s", &v), 0);
	assert_int_equal(v, 30);
	assert_int_equal(job_parse_duration("10m", &v), 0);
	assert_int_equal(v, 600);
	assert_int_equal(job_parse_duration("2h", &v), 0);
	assert_int_equal(v, 7200);
	assert_int_equal(job_parse_duration("1w", &v), 0);
	assert_int_equal(v, 604800);
	assert_int_equal(job_parse_duration("never", &v), 0);
	assert_int_equal(v, -1);
	assert_int_equal(job_parse_duration("-5", &v), -EINVAL);
	assert_int_equal(job_parse_duration("5y", &v), -EINVAL);
	assert_int_equal(job_parse_duration("", &v), -EINVAL);
}

static void test_job_rank(void **state)
{
	(void)state;
	/* the worst step decides the run's code */
	assert_true(job_exit_rank(0) < job_exit_rank(3));
	assert_true(job_exit_rank(3) < job_exit_rank(14));
	assert_true(job_exit_rank(14) < job_exit_rank(1));
	assert_true(job_exit_rank(1) < job_exit_rank(11));
	assert_true(job_exit_rank(11) < job_exit_rank(10));
	assert_true(job_exit_rank(130) < job_exit_rank(13));
	assert_int_equal(job_exit_rank(77), job_exit_rank(1));
}

static void test_job_state(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct job_state s = {100, 200, 3, 300}, t;

	(void)state;
	assert_int_equal(job_state_load("none", &t, &err), 0);
	assert_int_equal(t.last_prune, 0);
	assert_int_equal(t.next_part, 1);
	assert_int_equal(job_state_save("st", &s, &err), 0);
	assert_int_equal(job_state_load("st", &t, &err), 0);
	assert_int_equal(t.last_prune, 100);
	assert_int_equal(t.last_check, 200);
	assert_int_equal(t.next_part, 3);
	assert_int_equal(t.last_success, 300);
}

static void test_job_list(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	char **paths = NULL;
	size_t n = 0, i, conf = 0;

	(void)state;
	put("b", HEAD);
	put("a", HEAD);
	assert_int_equal(job_list(&paths, &n, &err), 0);
	for (i = 0; i < n; i++) {
		size_t len = strlen(paths[i]);

		assert_string_equal(paths[i] + len - 5, ".conf");
		if (i)
			assert_true(strcmp(paths[i - 1], paths[i]) < 0);
		conf++;
	}
	assert_true(conf >= 2);
	job_paths_free(paths, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_job_good),
		cmocka_unit_test(test_job_defaults),
		cmocka_unit_test(test_job_bad),
		cmocka_unit_test(test_job_bad_name),
		cmocka_unit_test(test_job_duration),
		cmocka_unit_test(test_job_rank),
		cmocka_unit_test(test_job_state),
		cmocka_unit_test(test_job_list),
	};

	return cmocka_run_group_tests_name("job", tests, setup, teardown);
}
