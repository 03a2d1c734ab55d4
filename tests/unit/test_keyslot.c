/*
 * Unit tests for keyslot: wrap and unwrap, a wrong passphrase, every header
 * field and every byte of a slot changed, parameters out of range, two
 * slots of one master key, and the paper form with its typos.
 *
 * Argon2id at the minimum a reader accepts (t = 3, 64 MiB) costs about
 * 0.4 s here, so one slot and its KEK are made once for the group and
 * the byte-flipping tests open slots with that KEK (keyslot_open) rather
 * than paying a derivation per byte.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crypt.h"
#include "keyslot.h"
#include "util.h"

#define PASS "correct horse battery staple"

static uint8_t mk[KEYSLOT_MK_LEN];
static uint8_t repo[KEYSLOT_REPO_ID_LEN];
static struct keyslot_params params;
static struct mv_buf slot = MV_BUF_INIT;
static struct keyslot_info slot_info;
static uint8_t kek[KEYSLOT_MK_LEN];

static int group_setup(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct keyslot_info info;
	double secs = -1;

	(void)state;
	if (crypt_init(&err) < 0)
		return -1;
	setenv("MAILVAULT_KDF_TEST", "1", 1);
	if (keyslot_calibrate(&params, &secs, &err) < 0 || secs != 0)
		return -1;
	crypt_random(mk, sizeof(mk));
	crypt_random(repo, sizeof(repo));
	if (keyslot_wrap(mk, repo, PASS, strlen(PASS), &params, &slot,
			 &slot_info, &err) < 0)
		return -1;
	if (keyslot_parse(slot.data, slot.len, &info, &err) < 0)
		return -1;
	return keyslot_derive(&info, PASS, strlen(PASS), kek, &err);
}

static int group_teardown(void **state)
{
	(void)state;
	mv_buf_release(&slot);
	crypt_wipe(kek, sizeof(kek));
	return 0;
}

/* A copy of the group's slot. */
static uint8_t *slot_copy(void)
{
	uint8_t *c = malloc(slot.len);

	assert_non_null(c);
	memcpy(c, slot.data, slot.len);
	return c;
}

static void expect_unwrap(const uint8_t *s, size_t len, const uint8_t *rid,
			  const char *pass, int want)
{
	struct mv_err err = MV_ERR_INIT;
	uint8_t *got = NULL;

	assert_int_equal(keyslot_unwrap(s, len, rid, pass, strlen(pass), &got,
					NULL, &err),
			 want);
	if (want == 0) {
		assert_non_null(got);
		assert_memory_equal(got, mk, sizeof(mk));
	} else {
		assert_null(got);
		assert_true(err.msg[0] != '\0');
	}
	keyslot_key_free(got);
}

/* keyslot_open with the group's KEK. */
static int open_with_kek(const uint8_t *s, size_t len, const uint8_t *rid)
{
	struct mv_err err = MV_ERR_INIT;
	uint8_t *got = NULL;
	int rc;

	rc = keyslot_open(s, len, rid, kek, &got, NULL, &err);
	if (rc == 0)
		assert_memory_equal(got, mk, sizeof(mk));
	else
		assert_null(got);
	keyslot_key_free(got);
	return rc;
}

static void test_keyslot_calibrate_test_mode(void **state)
{
	(void)state;
	/* MAILVAULT_KDF_TEST=1 gives the minimum, which readers accept */
	assert_true(params.opslimit == KEYSLOT_MIN_OPS);
	assert_true(params.memlimit == KEYSLOT_MIN_MEM);
}

static void test_keyslot_round_trip(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct keyslot_info info;
	uint8_t *got = NULL;
	int64_t now = mv_now_ns();

	(void)state;
	assert_true(slot.len >= KEYSLOT_MIN_LEN && slot.len <= KEYSLOT_MAX_LEN);
	assert_memory_equal(slot.data, "MVKEY2", 6);
	/* the master key is not in the slot in clear */
	assert_null(memmem(slot.data, slot.len, mk, 8));
	assert_int_equal(keyslot_unwrap(slot.data, slot.len, repo, PASS,
					strlen(PASS), &got, &info, &err),
			 0);
	assert_memory_equal(got, mk, sizeof(mk));
	assert_memory_equal(info.id, slot_info.id, KEYSLOT_ID_LEN);
	assert_memory_equal(info.salt, slot_info.salt, KEYSLOT_SALT_LEN);
	assert_true(info.params.opslimit == params.opslimit);
	assert_true(info.params.memlimit == params.memlimit);
	assert_true(info.created_ns == slot_info.created_ns);
	assert_true(info.created_ns > 0 && info.created_ns <= now);
	keyslot_key_free(got);
	assert_int_equal(open_with_kek(slot.data, slot.len, repo), 0);
}

static void test_keyslot_wrong_passphrase(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	uint8_t *got = NULL;
	char hex[33];

	(void)state;
	assert_int_equal(keyslot_unwrap(slot.data, slot.len, repo,
					"Correct horse battery staple",
					strlen(PASS), &got, NULL, &err),
			 -EKEYREJECTED);
	assert_null(got);
	mv_hex(slot_info.id, KEYSLOT_ID_LEN, hex);
	assert_non_null(strstr(err.msg, "wrong passphrase"));
	assert_non_null(strstr(err.msg, hex));
}

/* Each header field changed: the salt, opslimit and memlimit raised (the
 * KDF runs with them: a whole unwrap), then with the group's KEK the slot
 * id, the repository id, the nonce, the kdf byte and the version. */
static void test_keyslot_header_fields(void **state)
{
	uint8_t other_repo[KEYSLOT_REPO_ID_LEN];
	uint8_t *c;

	(void)state;
	c = slot_copy();
	c[40] ^= 0x01; /* salt */
	expect_unwrap(c, slot.len, repo, PASS, -EKEYREJECTED);
	memcpy(c, slot.data, slot.len);
	mv_put_le64(c + 24, params.opslimit + 1);
	expect_unwrap(c, slot.len, repo, PASS, -EKEYREJECTED);
	memcpy(c, slot.data, slot.len);
	mv_put_le64(c + 32, params.memlimit + (1 << 20));
	expect_unwrap(c, slot.len, repo, PASS, -EKEYREJECTED);

	memcpy(c, slot.data, slot.len);
	c[7] ^= 0x01; /* slot id */
	assert_int_equal(open_with_kek(c, slot.len, repo), -EKEYREJECTED);
	memcpy(other_repo, repo, sizeof(repo));
	other_repo[15] ^= 0x01;
	assert_int_equal(open_with_kek(slot.data, slot.len, other_repo),
			 -EKEYREJECTED);
	memcpy(c, slot.data, slot.len);
	c[KEYSLOT_HEADER_LEN] ^= 0x01; /* nonce */
	assert_int_equal(open_with_kek(c, slot.len, repo), -EKEYREJECTED);
	memcpy(c, slot.data, slot.len);
	c[23] = 2; /* kdf */
	assert_int_equal(open_with_kek(c, slot.len, repo), -EBADMSG);
	memcpy(c, slot.data, slot.len);
	c[6] = 2; /* version */
	assert_int_equal(open_with_kek(c, slot.len, repo), -EBADMSG);
	free(c);
}

static void test_keyslot_every_byte_flipped(void **state)
{
	static const uint8_t masks[] = {0x01, 0x80, 0xff};
	size_t i, m;
	uint8_t *c;

	(void)state;
	c = slot_copy();
	for (m = 0; m < MV_ARRAY_SIZE(masks); m++) {
		for (i = 0; i < slot.len; i++) {
			memcpy(c, slot.data, slot.len);
			c[i] ^= masks[m];
			if (open_with_kek(c, slot.len, repo) == 0)
				fail_msg("byte %zu ^ 0x%02x still opens", i,
					 masks[m]);
		}
	}
	/* truncated or extended */
	assert_true(open_with_kek(slot.data, slot.len - 1, repo) < 0);
	assert_int_equal(open_with_kek(slot.data, KEYSLOT_HEADER_LEN, repo),
			 -EBADMSG);
	assert_int_equal(open_with_kek(slot.data, 5, repo), -EBADMSG);
	free(c);
	c = calloc(1, slot.len + 1);
	assert_non_null(c);
	memcpy(c, slot.data, slot.len);
	assert_true(open_with_kek(c, slot.len + 1, repo) < 0);
	free(c);
}

static void test_keyslot_params_refused(void **state)
{
	static const struct {
		uint64_t ops, mem;
		const char *says;
	} bad[] = {
		{2, 64ull << 20, "below the minimum"},
		{3, (64ull << 20) - 1024, "below the minimum"},
		{1, 8ull << 10, "below the minimum"},
		{65, 64ull << 20, "above the maximum"},
		{3, (4ull << 30) + 1024, "above the maximum"},
		{UINT64_MAX, UINT64_MAX, "above the maximum"},
	};
	struct mv_buf out = MV_BUF_INIT;
	size_t i;
	uint8_t *c;

	(void)state;
	c = slot_copy();
	for (i = 0; i < MV_ARRAY_SIZE(bad); i++) {
		struct keyslot_params p = {bad[i].ops, bad[i].mem};
		struct mv_err err = MV_ERR_INIT;
		struct keyslot_info info;
		uint8_t *got = NULL;

		assert_int_equal(keyslot_wrap(mk, repo, PASS, strlen(PASS), &p,
					      &out, NULL, &err),
				 -EINVAL);
		assert_int_equal(out.len, 0);
		mv_err_clear(&err);
		memcpy(c, slot.data, slot.len);
		mv_put_le64(c + 24, bad[i].ops);
		mv_put_le64(c + 32, bad[i].mem);
		assert_int_equal(keyslot_parse(c, slot.len, &info, &err),
				 -EBADMSG);
		assert_non_null(strstr(err.msg, bad[i].says));
		/* refused before any Argon2id runs */
		mv_err_clear(&err);
		assert_int_equal(keyslot_unwrap(c, slot.len, repo, PASS,
						strlen(PASS), &got, NULL, &err),
				 -EBADMSG);
		assert_null(got);
	}
	free(c);
	/* the limits themselves are accepted by the parser */
	{
		struct keyslot_info info;
		struct mv_err err = MV_ERR_INIT;

		c = slot_copy();
		mv_put_le64(c + 24, KEYSLOT_MAX_OPS);
		mv_put_le64(c + 32, KEYSLOT_MAX_MEM);
		assert_int_equal(keyslot_parse(c, slot.len, &info, &err), 0);
		free(c);
	}
}

static void test_keyslot_empty_passphrase_refused(void **state)
{
	struct mv_buf out = MV_BUF_INIT;
	struct mv_err err = MV_ERR_INIT;

	(void)state;
	assert_int_equal(
		keyslot_wrap(mk, repo, "", 0, &params, &out, NULL, &err),
		-EINVAL);
	assert_int_equal(out.len, 0);
}

static void test_keyslot_two_slots(void **state)
{
	struct mv_buf second = MV_BUF_INIT;
	struct mv_err err = MV_ERR_INIT;
	struct keyslot_info info;

	(void)state;
	assert_int_equal(keyslot_wrap(mk, repo, "another one", 11, &params,
				      &second, &info, &err),
			 0);
	assert_memory_not_equal(info.id, slot_info.id, KEYSLOT_ID_LEN);
	assert_memory_not_equal(info.salt, slot_info.salt, KEYSLOT_SALT_LEN);
	expect_unwrap(second.data, second.len, repo, "another one", 0);
	expect_unwrap(slot.data, slot.len, repo, PASS, 0);
	expect_unwrap(second.data, second.len, repo, PASS, -EKEYREJECTED);
	mv_buf_release(&second);
}

/* ---- paper form ---- */

static char *encode(void)
{
	struct mv_err err = MV_ERR_INIT;
	char *text = NULL;

	assert_int_equal(
		keyslot_paper_encode(slot.data, slot.len, repo, &text, &err),
		0);
	return text;
}

static void decode_ok(const char *text)
{
	struct mv_buf out = MV_BUF_INIT;
	struct mv_err err = MV_ERR_INIT;
	uint8_t rid[KEYSLOT_REPO_ID_LEN];

	assert_int_equal(keyslot_paper_decode(text, &out, rid, &err), 0);
	assert_int_equal(out.len, slot.len);
	assert_memory_equal(out.data, slot.data, slot.len);
	assert_memory_equal(rid, repo, sizeof(repo));
	mv_buf_release(&out);
}

static void decode_fails(const char *text, const char *says)
{
	struct mv_buf out = MV_BUF_INIT;
	struct mv_err err = MV_ERR_INIT;
	uint8_t rid[KEYSLOT_REPO_ID_LEN];

	assert_int_equal(keyslot_paper_decode(text, &out, rid, &err), -EBADMSG);
	if (!strstr(err.msg, says))
		fail_msg("'%s' does not say '%s'", err.msg, says);
	assert_int_equal(out.len, 0);
	mv_buf_release(&out);
}

/* The position of the n-th hex digit of the numbered line num. */
static char *line_digit(char *text, const char *label, int n)
{
	char *p = strstr(text, label);

	assert_non_null(p);
	p += strlen(label);
	for (;;) {
		if (*p != ' ' && n-- == 0)
			return p;
		p++;
	}
}

static void test_keyslot_paper_round_trip(void **state)
{
	char *text, *p;

	(void)state;
	text = encode();
	assert_non_null(strstr(text, "repo:"));
	assert_non_null(strstr(text, "   5:"));
	assert_non_null(strstr(text, "total:"));
	decode_ok(text);
	/* case, spacing and comments do not matter */
	for (p = text; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	decode_ok(text);
	free(text);
}

static void test_keyslot_paper_typo_named(void **state)
{
	char *text, *p, *cut;
	char saved;

	(void)state;
	text = encode();
	/* one character changed on line 3 */
	p = line_digit(text, "   3:", 5);
	saved = *p;
	*p = *p == '0' ? '1' : '0';
	decode_fails(text, "line 3: check does not match");
	*p = 'O';
	decode_fails(text, "line 3: 'O' is not a hex digit");
	*p = saved;
	/* one character dropped on line 2 */
	p = line_digit(text, "   2:", 10);
	memmove(p, p + 1, strlen(p + 1) + 1);
	decode_fails(text, "line 2: a hex digit too many or too few");
	free(text);

	/* a typo in the repository id, then in the line's own check */
	text = encode();
	p = line_digit(text, "repo:", 0);
	*p = *p == 'a' ? 'b' : 'a';
	decode_fails(text, "'repo' line: check does not match");
	free(text);
	text = encode();
	p = strstr(text, "   4:");
	p = strchr(p, '\n') - 1; /* last digit of its check */
	*p = *p == '0' ? '1' : '0';
	decode_fails(text, "line 4: check does not match");
	free(text);

	/* line 3 left out; the last line left out */
	text = encode();
	p = strstr(text, "   3:");
	cut = strchr(p, '\n') + 1;
	memmove(p, cut, strlen(cut) + 1);
	decode_fails(text, "line 3 is missing");
	free(text);
	text = encode();
	p = strstr(text, "   5:");
	cut = strchr(p, '\n') + 1;
	memmove(p, cut, strlen(cut) + 1);
	decode_fails(text, "line 5 or more is missing");
	free(text);

	/* the total itself mistyped */
	text = encode();
	p = strchr(strstr(text, "total:"), '\n') - 1;
	*p = *p == '0' ? '1' : '0';
	decode_fails(text, "the total does not");
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keyslot_calibrate_test_mode),
		cmocka_unit_test(test_keyslot_round_trip),
		cmocka_unit_test(test_keyslot_wrong_passphrase),
		cmocka_unit_test(test_keyslot_header_fields),
		cmocka_unit_test(test_keyslot_every_byte_flipped),
		cmocka_unit_test(test_keyslot_params_refused),
		cmocka_unit_test(test_keyslot_empty_passphrase_refused),
		cmocka_unit_test(test_keyslot_two_slots),
		cmocka_unit_test(test_keyslot_paper_round_trip),
		cmocka_unit_test(test_keyslot_paper_typo_named),
	};

	return cmocka_run_group_tests_name("keyslot", tests, group_setup,
					   group_teardown);
}
