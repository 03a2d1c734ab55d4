/*
 * keyslot: the master key wrapped by a passphrase with Argon2id and sealed
 * with crypt_seal (include/keyslot.h).  Workload: a handful of slots per
 * command, each costing one Argon2id of about a second; nothing here is on
 * a hot path, so the code favours checks over speed.
 */
#include "keyslot.h"

#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypt.h"
#include "repo.h"

_Static_assert(KEYSLOT_REPO_ID_LEN == MV_REPO_ID_LEN, "repository id length");
_Static_assert(KEYSLOT_MK_LEN == CRYPT_KEY_LEN, "master key length");
_Static_assert(KEYSLOT_SALT_LEN == crypto_pwhash_SALTBYTES, "salt length");

#define MAGIC "MVKEY2"
#define MAGIC_LEN 6
#define SLOT_VERSION 1
#define KEYSET_VERSION 1
#define KEYSET_MIN (1 + KEYSLOT_MK_LEN + 1)
#define KEYSET_MAX (1 + KEYSLOT_MK_LEN + 10)
#define AAD_PREFIX "mailvault key slot"
#define AAD_PREFIX_LEN (sizeof(AAD_PREFIX) - 1)
#define AAD_LEN (AAD_PREFIX_LEN + KEYSLOT_REPO_ID_LEN + KEYSLOT_HEADER_LEN)
/* offsets in the header */
#define OFF_VERSION 6
#define OFF_ID 7
#define OFF_KDF 23
#define OFF_OPS 24
#define OFF_MEM 32
#define OFF_SALT 40

_Static_assert(OFF_SALT + KEYSLOT_SALT_LEN == KEYSLOT_HEADER_LEN, "header");
_Static_assert(KEYSLOT_HEADER_LEN + CRYPT_OVERHEAD + KEYSET_MIN ==
		       KEYSLOT_MIN_LEN,
	       "min length");
_Static_assert(KEYSLOT_HEADER_LEN + CRYPT_OVERHEAD + KEYSET_MAX ==
		       KEYSLOT_MAX_LEN,
	       "max length");

/* calibration: stop doubling once one derivation would pass this */
#define CALIBRATE_TARGET_S 1.0
/* and never keep a level measured above this */
#define CALIBRATE_LIMIT_S 1.2

static uint64_t zigzag(int64_t v)
{
	return ((uint64_t)v << 1) ^ (v < 0 ? UINT64_MAX : 0);
}

static int64_t unzigzag(uint64_t v)
{
	return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static void id_hex(const uint8_t id[KEYSLOT_ID_LEN], char out[33])
{
	mv_hex(id, KEYSLOT_ID_LEN, out);
}

/* The accepted range; what a reader refuses, a writer refuses too. */
static int check_params(const struct keyslot_params *p, const char *what,
			int code, struct mv_err *err)
{
	if (p->opslimit < KEYSLOT_MIN_OPS)
		return mv_err_set(err, code,
				  "%s: argon2id opslimit %llu is below the "
				  "minimum %llu: refusing a weakened key slot",
				  what, (unsigned long long)p->opslimit,
				  KEYSLOT_MIN_OPS);
	if (p->memlimit < KEYSLOT_MIN_MEM)
		return mv_err_set(err, code,
				  "%s: argon2id memlimit %llu KiB is below the "
				  "minimum %llu KiB: refusing a weakened key "
				  "slot",
				  what, (unsigned long long)(p->memlimit >> 10),
				  KEYSLOT_MIN_MEM >> 10);
	if (p->opslimit > KEYSLOT_MAX_OPS)
		return mv_err_set(err, code,
				  "%s: argon2id opslimit %llu is above the "
				  "maximum %llu",
				  what, (unsigned long long)p->opslimit,
				  KEYSLOT_MAX_OPS);
	if (p->memlimit > KEYSLOT_MAX_MEM || p->memlimit > SIZE_MAX)
		return mv_err_set(err, code,
				  "%s: argon2id memlimit %llu MiB is above the "
				  "maximum %llu MiB",
				  what, (unsigned long long)(p->memlimit >> 20),
				  KEYSLOT_MAX_MEM >> 20);
	return 0;
}

static int kdf(const struct keyslot_params *p, const uint8_t *salt,
	       const char *pass, size_t pass_len, uint8_t kek[KEYSLOT_MK_LEN],
	       struct mv_err *err)
{
	if (crypto_pwhash(kek, KEYSLOT_MK_LEN, pass, pass_len, salt,
			  p->opslimit, (size_t)p->memlimit,
			  crypto_pwhash_ALG_ARGON2ID13) != 0)
		return mv_err_set(err, -ENOMEM,
				  "argon2id: cannot get %llu MiB of memory",
				  (unsigned long long)(p->memlimit >> 20));
	return 0;
}

/* This thread's CPU time (Argon2id with one lane runs on the calling
 * thread), not wall time: a slot's cost is fixed for its life, and a
 * machine busy while calibrating must not make it cheaper to guess.
 * Measured here at load 12 on 2 vCPUs, wall-time calibration fell to
 * 64 MiB, t = 5 (0.15 s of CPU per guess); CPU time chose 512 MiB, t = 3
 * (0.9-1.0 s), at the price of a slower unlock (1.8-2.8 s) while the
 * machine stays that busy. */
static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Seconds for one derivation with p; < 0 when it could not run. */
static double time_kdf(const struct keyslot_params *p)
{
	uint8_t salt[KEYSLOT_SALT_LEN], kek[KEYSLOT_MK_LEN];
	double t0 = now_s(), t;

	crypt_random(salt, sizeof(salt));
	if (kdf(p, salt, "calibration", 11, kek, NULL) < 0)
		return -1;
	t = now_s() - t0;
	crypt_wipe(kek, sizeof(kek));
	return t;
}

int keyslot_calibrate(struct keyslot_params *out, double *out_seconds,
		      struct mv_err *err)
{
	struct keyslot_params p = {KEYSLOT_MIN_OPS, KEYSLOT_MIN_MEM};
	const char *test = getenv("MAILVAULT_KDF_TEST");
	double t, chosen_t;
	int rc;

	rc = crypt_init(err);
	if (rc < 0)
		return rc;
	if (test && strcmp(test, "1") == 0) {
		*out = p;
		if (out_seconds)
			*out_seconds = 0;
		return 0;
	}
	chosen_t = time_kdf(&p);
	if (chosen_t < 0)
		return mv_err_set(err, -ENOMEM,
				  "argon2id: cannot get %llu MiB of memory",
				  KEYSLOT_MIN_MEM >> 20);
	/* Argon2id's time is linear in memory: double while the next level
	 * is predicted within the target, keep it if it measured so */
	while (p.memlimit < KEYSLOT_CALIBRATE_MAX_MEM &&
	       2 * chosen_t <= CALIBRATE_TARGET_S) {
		struct keyslot_params next = {p.opslimit, p.memlimit * 2};

		t = time_kdf(&next);
		if (t < 0 || t > CALIBRATE_LIMIT_S)
			break;
		p = next;
		chosen_t = t;
	}
	/* a doubling is too coarse for the 0.8-1.2 s aimed at (0.5 s may
	 * become 1.0 or 1.3), and memory stops at its cap: fill the rest
	 * with passes */
	if (chosen_t > 0) {
		double want =
			(double)p.opslimit * CALIBRATE_TARGET_S / chosen_t;
		struct keyslot_params more = {p.opslimit, p.memlimit};

		more.opslimit = want >= (double)KEYSLOT_MAX_OPS
					? KEYSLOT_MAX_OPS
					: (uint64_t)want;
		if (more.opslimit > p.opslimit) {
			t = time_kdf(&more);
			if (t > 0 && t <= CALIBRATE_LIMIT_S) {
				p = more;
				chosen_t = t;
			}
		}
	}
	*out = p;
	if (out_seconds)
		*out_seconds = chosen_t;
	return 0;
}

static void put_header(uint8_t h[KEYSLOT_HEADER_LEN],
		       const struct keyslot_info *info)
{
	memcpy(h, MAGIC, MAGIC_LEN);
	h[OFF_VERSION] = SLOT_VERSION;
	memcpy(h + OFF_ID, info->id, KEYSLOT_ID_LEN);
	h[OFF_KDF] = info->kdf;
	mv_put_le64(h + OFF_OPS, info->params.opslimit);
	mv_put_le64(h + OFF_MEM, info->params.memlimit);
	memcpy(h + OFF_SALT, info->salt, KEYSLOT_SALT_LEN);
}

static void make_aad(uint8_t aad[AAD_LEN],
		     const uint8_t repo_id[KEYSLOT_REPO_ID_LEN],
		     const uint8_t header[KEYSLOT_HEADER_LEN])
{
	memcpy(aad, AAD_PREFIX, AAD_PREFIX_LEN);
	memcpy(aad + AAD_PREFIX_LEN, repo_id, KEYSLOT_REPO_ID_LEN);
	memcpy(aad + AAD_PREFIX_LEN + KEYSLOT_REPO_ID_LEN, header,
	       KEYSLOT_HEADER_LEN);
}

int keyslot_wrap(const uint8_t mk[KEYSLOT_MK_LEN],
		 const uint8_t repo_id[KEYSLOT_REPO_ID_LEN], const char *pass,
		 size_t pass_len, const struct keyslot_params *params,
		 struct mv_buf *out, struct keyslot_info *out_info,
		 struct mv_err *err)
{
	uint8_t aad[AAD_LEN], header[KEYSLOT_HEADER_LEN];
	uint8_t sealed[KEYSET_MAX + CRYPT_OVERHEAD];
	struct crypt_key *key = NULL;
	struct keyslot_info info;
	uint8_t *kek = NULL, *keyset = NULL;
	size_t keyset_len = 0;
	uint64_t created;
	int rc;

	rc = crypt_init(err);
	if (rc < 0)
		return rc;
	if (pass_len == 0)
		return mv_err_set(err, -EINVAL,
				  "empty passphrase: a key slot "
				  "needs one");
	rc = check_params(params, "new key slot", -EINVAL, err);
	if (rc < 0)
		return rc;
	memset(&info, 0, sizeof(info));
	crypt_random(info.id, sizeof(info.id));
	crypt_random(info.salt, sizeof(info.salt));
	info.kdf = KEYSLOT_KDF_ARGON2ID13;
	info.params = *params;
	info.created_ns = mv_now_ns();

	kek = sodium_malloc(KEYSLOT_MK_LEN);
	keyset = sodium_malloc(KEYSET_MAX);
	if (!kek || !keyset) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	rc = kdf(params, info.salt, pass, pass_len, kek, err);
	if (rc < 0)
		goto out;
	rc = crypt_key_new(CRYPT_XCHACHA20, kek, &key, err);
	if (rc < 0)
		goto out;

	keyset[keyset_len++] = KEYSET_VERSION;
	memcpy(keyset + keyset_len, mk, KEYSLOT_MK_LEN);
	keyset_len += KEYSLOT_MK_LEN;
	for (created = zigzag(info.created_ns); created >= 0x80; created >>= 7)
		keyset[keyset_len++] = (uint8_t)(created | 0x80);
	keyset[keyset_len++] = (uint8_t)created;

	put_header(header, &info);
	make_aad(aad, repo_id, header);
	rc = crypt_seal(key, aad, sizeof(aad), keyset, keyset_len, sealed);
	if (rc < 0) {
		rc = mv_err_set(err, rc, "cannot seal the key slot");
		goto out;
	}
	rc = mv_buf_reserve(out, sizeof(header) + keyset_len + CRYPT_OVERHEAD);
	if (rc < 0) {
		rc = mv_err_set(err, rc, "out of memory");
		goto out;
	}
	mv_buf_append(out, header, sizeof(header));
	mv_buf_append(out, sealed, keyset_len + CRYPT_OVERHEAD);
	if (out_info)
		*out_info = info;
out:
	crypt_key_free(key);
	sodium_free(kek);
	sodium_free(keyset);
	return rc;
}

int keyslot_parse(const void *slot, size_t len, struct keyslot_info *out,
		  struct mv_err *err)
{
	const uint8_t *s = slot;
	struct keyslot_info info;
	char what[64], hex[33];
	int rc;

	if (len < KEYSLOT_HEADER_LEN || memcmp(s, MAGIC, MAGIC_LEN) != 0)
		return mv_err_set(err, -EBADMSG, "not a mailvault key slot");
	memset(&info, 0, sizeof(info));
	memcpy(info.id, s + OFF_ID, KEYSLOT_ID_LEN);
	id_hex(info.id, hex);
	snprintf(what, sizeof(what), "key slot %s", hex);
	if (s[OFF_VERSION] != SLOT_VERSION)
		return mv_err_set(err, -EBADMSG,
				  "%s: version %u, this mailvault reads %u",
				  what, s[OFF_VERSION], SLOT_VERSION);
	info.kdf = s[OFF_KDF];
	if (info.kdf != KEYSLOT_KDF_ARGON2ID13)
		return mv_err_set(err, -EBADMSG,
				  "%s: unknown key derivation %u", what,
				  info.kdf);
	info.params.opslimit = mv_le64(s + OFF_OPS);
	info.params.memlimit = mv_le64(s + OFF_MEM);
	rc = check_params(&info.params, what, -EBADMSG, err);
	if (rc < 0)
		return rc;
	memcpy(info.salt, s + OFF_SALT, KEYSLOT_SALT_LEN);
	if (len < KEYSLOT_MIN_LEN || len > KEYSLOT_MAX_LEN)
		return mv_err_set(err, -EBADMSG,
				  "%s: %zu bytes, a key slot has %d to %d",
				  what, len, KEYSLOT_MIN_LEN, KEYSLOT_MAX_LEN);
	*out = info;
	return 0;
}

int keyslot_derive(const struct keyslot_info *info, const char *pass,
		   size_t pass_len, uint8_t kek[KEYSLOT_MK_LEN],
		   struct mv_err *err)
{
	int rc = crypt_init(err);

	if (rc < 0)
		return rc;
	rc = check_params(&info->params, "key slot", -EBADMSG, err);
	if (rc < 0)
		return rc;
	return kdf(&info->params, info->salt, pass, pass_len, kek, err);
}

int keyslot_open(const void *slot, size_t len,
		 const uint8_t repo_id[KEYSLOT_REPO_ID_LEN],
		 const uint8_t kek[KEYSLOT_MK_LEN], uint8_t **out_mk,
		 struct keyslot_info *out_info, struct mv_err *err)
{
	const uint8_t *s = slot;
	struct crypt_key *key = NULL;
	struct keyslot_info info;
	struct mv_reader r;
	uint8_t aad[AAD_LEN];
	uint8_t *keyset = NULL, *mk = NULL;
	size_t keyset_len;
	uint64_t created;
	char hex[33];
	uint8_t version;
	int rc;

	rc = keyslot_parse(slot, len, &info, err);
	if (rc < 0)
		return rc;
	id_hex(info.id, hex);
	keyset_len = len - KEYSLOT_HEADER_LEN - CRYPT_OVERHEAD;
	keyset = sodium_malloc(KEYSET_MAX);
	mk = sodium_malloc(KEYSLOT_MK_LEN);
	if (!keyset || !mk) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	rc = crypt_key_new(CRYPT_XCHACHA20, kek, &key, err);
	if (rc < 0)
		goto out;
	make_aad(aad, repo_id, s);
	rc = crypt_open(key, aad, sizeof(aad), s + KEYSLOT_HEADER_LEN,
			len - KEYSLOT_HEADER_LEN, keyset);
	if (rc == -EBADMSG) {
		rc = mv_err_set(err, -EKEYREJECTED,
				"wrong passphrase for key slot %s", hex);
		goto out;
	}
	if (rc < 0) {
		rc = mv_err_set(err, rc, "cannot open key slot %s", hex);
		goto out;
	}
	/* authentic from here on: a bad keyset is a writer's bug */
	mv_reader_init(&r, keyset, keyset_len);
	if (mv_reader_u8(&r, &version) < 0 || version != KEYSET_VERSION ||
	    mv_reader_fixed(&r, mk, KEYSLOT_MK_LEN) < 0 ||
	    mv_reader_varint(&r, &created) < 0 || !mv_reader_done(&r)) {
		rc = mv_err_set(err, -EBADMSG,
				"key slot %s: malformed key set inside", hex);
		goto out;
	}
	info.created_ns = unzigzag(created);
	if (out_info)
		*out_info = info;
	*out_mk = mk;
	mk = NULL;
out:
	crypt_key_free(key);
	sodium_free(keyset);
	sodium_free(mk);
	return rc;
}

int keyslot_unwrap(const void *slot, size_t len,
		   const uint8_t repo_id[KEYSLOT_REPO_ID_LEN], const char *pass,
		   size_t pass_len, uint8_t **out_mk,
		   struct keyslot_info *out_info, struct mv_err *err)
{
	struct keyslot_info info;
	uint8_t *kek = NULL;
	int rc;

	rc = crypt_init(err);
	if (rc < 0)
		return rc;
	rc = keyslot_parse(slot, len, &info, err);
	if (rc < 0)
		return rc;
	kek = sodium_malloc(KEYSLOT_MK_LEN);
	if (!kek)
		return mv_err_set(err, -ENOMEM, "out of memory");
	rc = keyslot_derive(&info, pass, pass_len, kek, err);
	if (rc == 0)
		rc = keyslot_open(slot, len, repo_id, kek, out_mk, out_info,
				  err);
	sodium_free(kek);
	return rc;
}

void keyslot_key_free(uint8_t *mk)
{
	sodium_free(mk);
}

/* ---- paper form ---- */

#define PAPER_LINE 32	     /* bytes per numbered line */
#define PAPER_CHECK 2	     /* bytes of each line's check */
#define PAPER_TOTAL 8	     /* bytes of the total's check */
#define PAPER_MAX_BYTES 4096 /* a slot is ~140; bounds what decode takes */

/* BLAKE2b of tag, number and bytes; the first n bytes into out. */
static void paper_hash(uint8_t tag, uint32_t num, const uint8_t *p, size_t len,
		       uint8_t *out, size_t n)
{
	crypto_generichash_state st;
	uint8_t pre[5], h[crypto_generichash_BYTES_MIN];

	pre[0] = tag;
	mv_put_le32(pre + 1, num);
	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, pre, sizeof(pre));
	crypto_generichash_update(&st, p, len);
	crypto_generichash_final(&st, h, sizeof(h));
	memcpy(out, h, n);
}

static void total_hash(const uint8_t *repo_id, const uint8_t *slot, size_t len,
		       uint8_t out[PAPER_TOTAL])
{
	crypto_generichash_state st;
	uint8_t pre[5], h[crypto_generichash_BYTES_MIN];

	pre[0] = 'T';
	mv_put_le32(pre + 1, (uint32_t)len);
	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, pre, sizeof(pre));
	crypto_generichash_update(&st, repo_id, KEYSLOT_REPO_ID_LEN);
	crypto_generichash_update(&st, slot, len);
	crypto_generichash_final(&st, h, sizeof(h));
	memcpy(out, h, PAPER_TOTAL);
}

/* Bytes as hex in groups of 4 bytes, then two spaces and the check. */
static int put_line(struct mv_buf *b, const char *label, const uint8_t *p,
		    size_t len, const uint8_t *check)
{
	char hex[9], chk[2 * PAPER_CHECK + 1];
	size_t i;
	int rc = 0;

	rc |= mv_buf_append(b, label, strlen(label));
	for (i = 0; i < len; i += 4) {
		size_t n = MV_MIN(4, len - i);

		mv_hex(p + i, n, hex);
		rc |= mv_buf_put_u8(b, ' ');
		rc |= mv_buf_append(b, hex, 2 * n);
	}
	mv_hex(check, PAPER_CHECK, chk);
	rc |= mv_buf_append(b, "  ", 2);
	rc |= mv_buf_append(b, chk, strlen(chk));
	rc |= mv_buf_put_u8(b, '\n');
	return rc;
}

int keyslot_paper_encode(const void *slot, size_t len,
			 const uint8_t repo_id[KEYSLOT_REPO_ID_LEN], char **out,
			 struct mv_err *err)
{
	static const char title[] =
		"# mailvault key slot, paper form: type the lines back with\n"
		"# 'mailvault key import --paper'.  Each line ends with a "
		"check of its own.\n";
	struct mv_buf b = MV_BUF_INIT;
	uint8_t check[PAPER_CHECK], total[PAPER_TOTAL];
	char label[16], hex[2 * PAPER_TOTAL + 1];
	size_t off;
	uint32_t num;
	int rc = 0;

	if (len == 0 || len > PAPER_MAX_BYTES)
		return mv_err_set(err, -EINVAL, "paper key: %zu bytes", len);
	if (sodium_init() < 0)
		return mv_err_set(err, -EIO, "cannot start libsodium");
	rc |= mv_buf_append(&b, title, sizeof(title) - 1);
	paper_hash('R', 0, repo_id, KEYSLOT_REPO_ID_LEN, check, PAPER_CHECK);
	rc |= put_line(&b, "repo:", repo_id, KEYSLOT_REPO_ID_LEN, check);
	for (off = 0, num = 1; off < len; off += PAPER_LINE, num++) {
		size_t n = MV_MIN(PAPER_LINE, len - off);

		paper_hash('L', num, (const uint8_t *)slot + off, n, check,
			   PAPER_CHECK);
		snprintf(label, sizeof(label), "%4u:", num);
		rc |= put_line(&b, label, (const uint8_t *)slot + off, n,
			       check);
	}
	total_hash(repo_id, slot, len, total);
	mv_hex(total, PAPER_TOTAL, hex);
	snprintf(label, sizeof(label), "total: %zu  ", len);
	rc |= mv_buf_append(&b, label, strlen(label));
	rc |= mv_buf_append(&b, hex, strlen(hex));
	rc |= mv_buf_append(&b, "\n", 2); /* with the NUL */
	if (rc < 0) {
		mv_buf_release(&b);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	*out = (char *)b.data;
	return 0;
}

/* One line of the form cut into its label and its hex (spaces removed),
 * and the last word apart (the check). */
struct paper_line {
	char label[16];
	char hex[2 * PAPER_LINE + 64];
	size_t hex_len;
	char last[2 * PAPER_TOTAL + 8];
};

static int split_line(const char *s, size_t n, struct paper_line *pl,
		      const char *where, struct mv_err *err)
{
	const char *colon = memchr(s, ':', n), *p, *end = s + n;
	size_t i = 0, lab = 0;

	memset(pl, 0, sizeof(*pl));
	if (!colon)
		return mv_err_set(err, -EBADMSG, "%s: no ':' after the label",
				  where);
	for (p = s; p < colon; p++)
		if (!isspace((unsigned char)*p) && lab < sizeof(pl->label) - 1)
			pl->label[lab++] = (char)tolower((unsigned char)*p);
	/* words after the colon: all but the last are hex, the last the check
	 */
	p = colon + 1;
	for (;;) {
		const char *w;
		size_t wl;

		while (p < end && isspace((unsigned char)*p))
			p++;
		if (p == end)
			break;
		w = p;
		while (p < end && !isspace((unsigned char)*p))
			p++;
		wl = (size_t)(p - w);
		/* the previous last word was data */
		if (pl->last[0]) {
			size_t ll = strlen(pl->last);

			if (i + ll >= sizeof(pl->hex))
				return mv_err_set(err, -EBADMSG, "%s: too long",
						  where);
			memcpy(pl->hex + i, pl->last, ll);
			i += ll;
		}
		if (wl >= sizeof(pl->last))
			return mv_err_set(err, -EBADMSG,
					  "%s: '%.*s' is too long for a word",
					  where, (int)MV_MIN(wl, 40), w);
		memcpy(pl->last, w, wl);
		pl->last[wl] = '\0';
	}
	pl->hex[i] = '\0';
	pl->hex_len = i;
	return 0;
}

static int parse_hex(const char *hex, size_t len, uint8_t *out,
		     const char *where, struct mv_err *err)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!isxdigit((unsigned char)hex[i]))
			return mv_err_set(err, -EBADMSG,
					  "%s: '%c' is not a hex digit", where,
					  hex[i]);
	if (len % 2)
		return mv_err_set(err, -EBADMSG,
				  "%s: a hex digit too many or too few", where);
	return mv_unhex(hex, out, len / 2) < 0
		       ? mv_err_set(err, -EBADMSG, "%s: bad hex", where)
		       : 0;
}

/* Check the data and check words of a line against its hash. */
static int check_line(const struct paper_line *pl, uint8_t tag, uint32_t num,
		      uint8_t *data, size_t *data_len, size_t max,
		      const char *where, struct mv_err *err)
{
	uint8_t want[PAPER_CHECK], got[PAPER_CHECK];
	int rc;

	if (strlen(pl->last) != 2 * PAPER_CHECK)
		return mv_err_set(err, -EBADMSG,
				  "%s: the check at the end must be %d hex "
				  "digits",
				  where, 2 * PAPER_CHECK);
	rc = parse_hex(pl->last, 2 * PAPER_CHECK, got, where, err);
	if (rc < 0)
		return rc;
	if (pl->hex_len > 2 * max)
		return mv_err_set(err, -EBADMSG, "%s: more than %zu bytes",
				  where, max);
	rc = parse_hex(pl->hex, pl->hex_len, data, where, err);
	if (rc < 0)
		return rc;
	*data_len = pl->hex_len / 2;
	paper_hash(tag, num, data, *data_len, want, PAPER_CHECK);
	if (memcmp(want, got, PAPER_CHECK) != 0)
		return mv_err_set(err, -EBADMSG,
				  "%s: check does not match: a typo on this "
				  "line?",
				  where);
	return 0;
}

int keyslot_paper_decode(const char *text, struct mv_buf *out,
			 uint8_t repo_id[KEYSLOT_REPO_ID_LEN],
			 struct mv_err *err)
{
	struct mv_buf slot = MV_BUF_INIT;
	struct paper_line pl;
	uint8_t data[PAPER_LINE], total[PAPER_TOTAL], want[PAPER_TOTAL];
	bool have_repo = false, have_total = false, short_seen = false;
	uint32_t next = 1;
	unsigned long long total_len = 0;
	const char *s = text;
	char where[48];
	int rc = 0;

	if (sodium_init() < 0)
		return mv_err_set(err, -EIO, "cannot start libsodium");
	while (*s && rc == 0) {
		const char *nl = strchr(s, '\n');
		size_t n = nl ? (size_t)(nl - s) : strlen(s), skip = 0, dl;
		char *end;

		while (skip < n && isspace((unsigned char)s[skip]))
			skip++;
		if (skip == n || s[skip] == '#')
			goto next_line;
		if (have_total) {
			rc = mv_err_set(err, -EBADMSG,
					"paper key: a line "
					"after 'total'");
			break;
		}
		rc = split_line(s, n, &pl, "paper key", err);
		if (rc < 0)
			break;
		snprintf(where, sizeof(where), "paper key, line %s", pl.label);
		if (strcmp(pl.label, "repo") == 0) {
			snprintf(where, sizeof(where),
				 "paper key, 'repo' line");
			rc = check_line(&pl, 'R', 0, data, &dl,
					KEYSLOT_REPO_ID_LEN, where, err);
			if (rc == 0 && dl != KEYSLOT_REPO_ID_LEN)
				rc = mv_err_set(err, -EBADMSG,
						"%s: %zu bytes, not %d", where,
						dl, KEYSLOT_REPO_ID_LEN);
			if (rc == 0) {
				memcpy(repo_id, data, KEYSLOT_REPO_ID_LEN);
				have_repo = true;
			}
		} else if (strcmp(pl.label, "total") == 0) {
			snprintf(where, sizeof(where),
				 "paper key, 'total' line");
			total_len = strtoull(pl.hex, &end, 10);
			if (strlen(pl.last) != 2 * PAPER_TOTAL || *end ||
			    !pl.hex_len) {
				rc = mv_err_set(err, -EBADMSG,
						"%s: expected the length and "
						"%d hex digits",
						where, 2 * PAPER_TOTAL);
				break;
			}
			rc = parse_hex(pl.last, 2 * PAPER_TOTAL, total, where,
				       err);
			have_total = rc == 0;
		} else {
			unsigned long num = strtoul(pl.label, &end, 10);

			if (*end || !pl.label[0]) {
				rc = mv_err_set(err, -EBADMSG,
						"paper key: unknown line '%s'",
						pl.label);
				break;
			}
			if (num != next) {
				rc = mv_err_set(err, -EBADMSG,
						"paper key: line %u is missing "
						"(found line %lu)",
						next, num);
				break;
			}
			if (short_seen) {
				rc = mv_err_set(err, -EBADMSG,
						"paper key, line %u: has fewer "
						"than %d bytes, only the last "
						"may",
						next - 1, PAPER_LINE);
				break;
			}
			rc = check_line(&pl, 'L', next, data, &dl, PAPER_LINE,
					where, err);
			if (rc == 0 && slot.len + dl > PAPER_MAX_BYTES)
				rc = mv_err_set(err, -EBADMSG,
						"paper key: too long");
			if (rc == 0)
				rc = mv_buf_append(&slot, data, dl);
			short_seen = dl < PAPER_LINE;
			next++;
		}
	next_line:
		s += n;
		if (*s == '\n')
			s++;
	}
	if (rc < 0)
		goto out;
	if (!have_repo || !have_total || slot.len == 0) {
		rc = mv_err_set(err, -EBADMSG, "paper key: no %s line",
				!have_repo	? "'repo'"
				: slot.len == 0 ? "numbered"
						: "'total'");
		goto out;
	}
	if (total_len != slot.len) {
		rc = mv_err_set(err, -EBADMSG,
				"paper key: %zu bytes read but 'total' says "
				"%llu: line %u or more is missing",
				slot.len, total_len, next);
		goto out;
	}
	total_hash(repo_id, slot.data, slot.len, want);
	if (memcmp(want, total, PAPER_TOTAL) != 0) {
		rc = mv_err_set(err, -EBADMSG,
				"paper key: every line checks but the total "
				"does not: a typo on the 'total' line or one "
				"the line checks missed");
		goto out;
	}
	rc = mv_buf_append(out, slot.data, slot.len);
	if (rc < 0)
		rc = mv_err_set(err, rc, "out of memory");
out:
	mv_buf_release(&slot);
	return rc;
}
