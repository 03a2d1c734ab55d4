/*
 * Unit tests for keystore on a local repository directory: slot files
 * written 0600 under keys/ and read back, unlocking with the preferred
 * slot first, a wrong passphrase, the limit of 8 slots (writing and
 * reading), the last slot kept, and a damaged slot that does not hide the
 * others.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "backend.h"
#include "crypt.h"
#include "keyslot.h"
#include "keystore.h"
#include "util.h"

static uint8_t mk[KEYSLOT_MK_LEN];
static uint8_t repo[KEYSLOT_REPO_ID_LEN];
static struct mv_buf slot_a = MV_BUF_INIT; /* passphrase "alpha" */
static struct mv_buf slot_b = MV_BUF_INIT; /* passphrase "beta" */

struct fixture {
	char dir[64];
	struct backend *be;
};

static int group_setup(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct keyslot_params p;

	(void)state;
	setenv("MAILVAULT_KDF_TEST", "1", 1);
	if (crypt_init(&err) < 0 || keyslot_calibrate(&p, NULL, &err) < 0)
		return -1;
	crypt_random(mk, sizeof(mk));
	crypt_random(repo, sizeof(repo));
	if (keyslot_wrap(mk, repo, "alpha", 5, &p, &slot_a, NULL, &err) < 0 ||
	    keyslot_wrap(mk, repo, "beta", 4, &p, &slot_b, NULL, &err) < 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	mv_buf_release(&slot_a);
	mv_buf_release(&slot_b);
	return 0;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct mv_err err = MV_ERR_INIT;

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/mv-keystore.XXXXXX");
	if (!mkdtemp(f->dir) ||
	    backend_local_open(f->dir, false, &f->be, &err) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	int rc;

	backend_close(f->be);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	rc = system(cmd);
	free(f);
	return rc == 0 ? 0 : -1;
}

/* A copy of slot a with another slot id: parses, never opens. */
static void slot_with_id(uint8_t *out, uint8_t id_byte)
{
	memcpy(out, slot_a.data, slot_a.len);
	memset(out + 7, id_byte, KEYSLOT_ID_LEN);
}

static void put_file(struct fixture *f, const char *rel, const void *p,
		     size_t n)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/%s", f->dir, rel);
	assert_int_equal(mv_write_file_atomic(path, p, n, NULL), 0);
}

static void test_keystore_empty(void **state)
{
	struct fixture *f = *state;
	struct keystore_list l;
	struct mv_err err = MV_ERR_INIT;
	uint8_t *got = NULL;

	assert_int_equal(keystore_list(f->be, &l, &err), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(keystore_unlock(f->be, repo, "alpha", 5, NULL, &got,
					 NULL, &err),
			 -ENOKEY);
	assert_null(got);
}

static void test_keystore_write_read(void **state)
{
	struct fixture *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct keystore_list l;
	char name[KEYSTORE_NAME_LEN + 1], path[200],
		want[KEYSTORE_NAME_LEN + 1];
	struct stat st;
	uint8_t *data = NULL;
	size_t len = 0;

	assert_int_equal(
		keystore_write(f->be, slot_a.data, slot_a.len, name, &err), 0);
	mv_hex(slot_a.data + 7, KEYSLOT_ID_LEN, want);
	assert_string_equal(name, want);
	snprintf(path, sizeof(path), "%s/keys/%s", f->dir, name);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	snprintf(path, sizeof(path), "%s/keys", f->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);

	assert_int_equal(keystore_read(f->be, name, &data, &len, &err), 0);
	assert_int_equal(len, slot_a.len);
	assert_memory_equal(data, slot_a.data, len);
	free(data);
	assert_int_equal(keystore_list(f->be, &l, &err), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.slots[0].name, name);
	keystore_list_release(&l);

	assert_int_equal(
		keystore_write(f->be, slot_a.data, slot_a.len, NULL, &err),
		-EEXIST);
	mv_err_clear(&err);
	assert_int_equal(
		keystore_write(f->be, "MVKEY2 not a slot", 17, NULL, &err),
		-EBADMSG);
	mv_err_clear(&err);
	assert_int_equal(keystore_read(f->be,
				       "00112233445566778899aabbccddeeff",
				       &data, &len, &err),
			 -ENOENT);
}

static void test_keystore_unlock(void **state)
{
	struct fixture *f = *state;
	struct mv_err err = MV_ERR_INIT;
	char a[KEYSTORE_NAME_LEN + 1], b[KEYSTORE_NAME_LEN + 1];
	char opened[KEYSTORE_NAME_LEN + 1];
	uint8_t *got = NULL;

	assert_int_equal(
		keystore_write(f->be, slot_a.data, slot_a.len, a, &err), 0);
	assert_int_equal(
		keystore_write(f->be, slot_b.data, slot_b.len, b, &err), 0);
	/* a is tried first and refuses; b opens */
	assert_int_equal(
		keystore_unlock(f->be, repo, "beta", 4, a, &got, opened, &err),
		0);
	assert_string_equal(opened, b);
	assert_memory_equal(got, mk, sizeof(mk));
	keyslot_key_free(got);
	got = NULL;
	assert_int_equal(
		keystore_unlock(f->be, repo, "alpha", 5, a, &got, opened, &err),
		0);
	assert_string_equal(opened, a);
	keyslot_key_free(got);
	got = NULL;

	assert_int_equal(keystore_unlock(f->be, repo, "gamma", 5, NULL, &got,
					 NULL, &err),
			 -EKEYREJECTED);
	assert_null(got);
	assert_non_null(strstr(err.msg, "wrong passphrase"));
	assert_non_null(strstr(err.msg, "(2 tried)"));
}

static void test_keystore_at_most_eight(void **state)
{
	struct fixture *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct keystore_list l;
	char path[64], name[KEYSTORE_NAME_LEN + 1];
	uint8_t *c = malloc(slot_a.len), *got = NULL;
	int i;

	assert_non_null(c);
	for (i = 0; i < KEYSTORE_MAX_SLOTS; i++) {
		slot_with_id(c, (uint8_t)(0x10 + i));
		assert_int_equal(
			keystore_write(f->be, c, slot_a.len, NULL, &err), 0);
	}
	slot_with_id(c, 0xee);
	assert_int_equal(keystore_write(f->be, c, slot_a.len, NULL, &err),
			 -ENOSPC);
	/* not slots: left alone and not counted */
	put_file(f, "keys/ring-1", "ring", 4);
	put_file(f, "keys/README", "x", 1);
	assert_int_equal(keystore_list(f->be, &l, &err), 0);
	assert_int_equal(l.n, KEYSTORE_MAX_SLOTS);
	keystore_list_release(&l);

	/* a ninth put there behind our back: readers refuse to try them */
	mv_hex(c + 7, KEYSLOT_ID_LEN, name);
	snprintf(path, sizeof(path), "keys/%s", name);
	put_file(f, path, c, slot_a.len);
	mv_err_clear(&err);
	assert_int_equal(keystore_list(f->be, &l, &err), -EMSGSIZE);
	assert_int_equal(l.n, 0);
	mv_err_clear(&err);
	assert_int_equal(keystore_unlock(f->be, repo, "alpha", 5, NULL, &got,
					 NULL, &err),
			 -EMSGSIZE);
	assert_null(got);
	free(c);
}

static void test_keystore_remove(void **state)
{
	struct fixture *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct keystore_list l;
	char a[KEYSTORE_NAME_LEN + 1], b[KEYSTORE_NAME_LEN + 1];

	assert_int_equal(
		keystore_write(f->be, slot_a.data, slot_a.len, a, &err), 0);
	assert_int_equal(
		keystore_write(f->be, slot_b.data, slot_b.len, b, &err), 0);
	assert_int_equal(keystore_remove(f->be,
					 "00112233445566778899aabbccddeeff",
					 &err),
			 -ENOENT);
	mv_err_clear(&err);
	assert_int_equal(keystore_remove(f->be, a, &err), 0);
	assert_int_equal(keystore_remove(f->be, b, &err), -EPERM);
	assert_non_null(strstr(err.msg, "last"));
	assert_int_equal(keystore_list(f->be, &l, &err), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.slots[0].name, b);
	keystore_list_release(&l);
}

static void test_keystore_damaged_slot(void **state)
{
	struct fixture *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct keystore_list l;
	char b[KEYSTORE_NAME_LEN + 1], path[64];
	uint8_t *got = NULL;

	assert_int_equal(
		keystore_write(f->be, slot_b.data, slot_b.len, b, &err), 0);
	/* sorted before b, and holds a slot of another name */
	snprintf(path, sizeof(path), "keys/%032d", 0);
	put_file(f, path, slot_a.data, slot_a.len);
	assert_int_equal(keystore_list(f->be, &l, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "not its own"));
	mv_err_clear(&err);
	assert_int_equal(
		keystore_unlock(f->be, repo, "beta", 4, NULL, &got, NULL, &err),
		0);
	assert_memory_equal(got, mk, sizeof(mk));
	keyslot_key_free(got);
	got = NULL;
	assert_int_equal(keystore_unlock(f->be, repo, "alpha", 5, NULL, &got,
					 NULL, &err),
			 -EKEYREJECTED);
	assert_non_null(strstr(err.msg, "(1 tried, others damaged)"));
}

static void test_keystore_keyfile(void **state)
{
	struct fixture *f = *state;
	struct mv_err err = MV_ERR_INIT;
	char path[128], tmp[140];
	uint8_t *data = NULL, *got = NULL;
	struct stat st;
	mode_t old_mask;
	size_t len = 0;

	snprintf(path, sizeof(path), "%s/exported.key", f->dir);
	old_mask = umask(0);
	assert_int_equal(
		keystore_keyfile_write(path, slot_a.data, slot_a.len, &err), 0);
	umask(old_mask);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_equal(stat(tmp, &st), -1);

	assert_int_equal(keystore_keyfile_read(path, &data, &len, &err), 0);
	assert_int_equal(len, slot_a.len);
	assert_memory_equal(data, slot_a.data, len);
	assert_int_equal(
		keyslot_unwrap(data, len, repo, "alpha", 5, &got, NULL, &err),
		0);
	assert_memory_equal(got, mk, sizeof(mk));
	keyslot_key_free(got);
	free(data);

	/* never over an existing file, and nothing left behind */
	assert_int_equal(
		keystore_keyfile_write(path, slot_b.data, slot_b.len, &err),
		-EEXIST);
	assert_int_equal(stat(tmp, &st), -1);
	assert_int_equal(keystore_keyfile_read(path, &data, &len, &err), 0);
	assert_memory_equal(data, slot_a.data, len);
	free(data);

	/* not a key file */
	put_file(f, "notakey", "hello\n", 6);
	snprintf(path, sizeof(path), "%s/notakey", f->dir);
	mv_err_clear(&err);
	assert_int_equal(keystore_keyfile_read(path, &data, &len, &err),
			 -EBADMSG);
	assert_non_null(strstr(err.msg, path));
	{
		char big[KEYSLOT_MAX_LEN + 1];

		memset(big, 'x', sizeof(big));
		put_file(f, "big", big, sizeof(big));
	}
	snprintf(path, sizeof(path), "%s/big", f->dir);
	mv_err_clear(&err);
	assert_int_equal(keystore_keyfile_read(path, &data, &len, &err),
			 -EFBIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_keystore_empty, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_keystore_write_read, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_keystore_unlock, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_keystore_at_most_eight,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_keystore_remove, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_keystore_damaged_slot,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_keystore_keyfile, setup,
						teardown),
	};

	return cmocka_run_group_tests_name("keystore", tests, group_setup,
					   group_teardown);
}
