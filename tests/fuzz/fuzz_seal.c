/*
 * fuzz_seal: the decoders behind format 2's tags.  A fuzzer cannot forge
 * a Poly1305 tag, so the input is sealed first, with crypt_seal under the
 * right associated data, as a plaintext only a writer holding the key
 * could have made; then seal_record_open or seal_table_open must parse it
 * (header, lengths, zstd frame, padding, entry counts) without crashing,
 * leaking or over-reading.
 *
 * Input: one byte (bit 0: a table instead of a record), then the
 * plaintext.  Checks: a failure is -EBADMSG with a message and leaves the
 * output empty; what opens seals again with seal_record / seal_table and
 * opens to the same payload or entries.
 */
#include "crypt.h"
#include "fuzz.h"
#include "seal.h"
#include "util.h"

#define NAME "0123456789abcdef0123456789abcdef"

static struct crypt_key *key;

static void key_init(void)
{
	struct mv_err err = MV_ERR_INIT;
	uint8_t bytes[CRYPT_KEY_LEN];

	if (key)
		return;
	memset(bytes, 0x5a, sizeof(bytes));
	FUZZ_CHECK(!crypt_init(&err));
	FUZZ_CHECK(!crypt_key_new(CRYPT_XCHACHA20, bytes, &key, &err));
}

static uint8_t *seal_plain(const void *aad, size_t aad_len, const uint8_t *p,
			   size_t n)
{
	uint8_t *out = malloc(n + CRYPT_OVERHEAD);

	FUZZ_CHECK(out);
	FUZZ_CHECK(!crypt_seal(key, aad, aad_len, p, n, out));
	return out;
}

static void record(const uint8_t *p, size_t n)
{
	struct mv_buf back = MV_BUF_INIT, again = MV_BUF_INIT,
		      back2 = MV_BUF_INIT;
	struct mv_err err = MV_ERR_INIT;
	uint8_t aad[SEAL_AAD_LEN], id[SEAL_ID_LEN], *sealed, comp = 0, c2 = 0;
	uint32_t dict = 0, d2 = 0;
	int rc;

	memset(id, 0x11, sizeof(id));
	aad[0] = SEAL_VERSION;
	aad[1] = 2;
	mv_put_le32(aad + 2, 3);
	memcpy(aad + 6, id, SEAL_ID_LEN);
	sealed = seal_plain(aad, sizeof(aad), p, n);
	rc = seal_record_open(key, 2, 3, id, sealed, n + CRYPT_OVERHEAD, &comp,
			      &dict, &back, &err);
	if (rc) {
		FUZZ_CHECK(rc == -EBADMSG && err.msg[0] && back.len == 0);
	} else {
		FUZZ_CHECK(back.len <= SEAL_MAX_PAYLOAD);
		FUZZ_CHECK(!seal_record(key, 2, 3, id, comp, dict, back.data,
					back.len, &again, &err));
		FUZZ_CHECK(again.len == n + CRYPT_OVERHEAD);
		FUZZ_CHECK(!seal_record_open(key, 2, 3, id, again.data,
					     again.len, &c2, &d2, &back2,
					     &err));
		FUZZ_CHECK(c2 == comp && d2 == dict && back2.len == back.len);
		FUZZ_CHECK(!back.len ||
			   !memcmp(back.data, back2.data, back.len));
	}
	free(sealed);
	mv_buf_release(&back);
	mv_buf_release(&back2);
	mv_buf_release(&again);
}

static void table(const uint8_t *p, size_t n)
{
	struct seal_table t = {0, 0, NULL}, t2 = {0, 0, NULL};
	struct mv_buf again = MV_BUF_INIT;
	struct mv_err err = MV_ERR_INIT;
	uint8_t aad[5 + sizeof(NAME) - 1], *sealed;
	int rc;

	memcpy(aad, "table", 5);
	memcpy(aad + 5, NAME, sizeof(NAME) - 1);
	sealed = seal_plain(aad, sizeof(aad), p, n);
	rc = seal_table_open(key, NAME, sealed, n + CRYPT_OVERHEAD, &t, &err);
	if (rc) {
		FUZZ_CHECK(rc == -EBADMSG && err.msg[0] && !t.e && !t.n);
	} else {
		FUZZ_CHECK(
			!seal_table(key, NAME, t.kind, t.e, t.n, &again, &err));
		FUZZ_CHECK(!seal_table_open(key, NAME, again.data, again.len,
					    &t2, &err));
		FUZZ_CHECK(t2.kind == t.kind && t2.n == t.n);
		FUZZ_CHECK(!t.n || !memcmp(t.e, t2.e, t.n * sizeof(*t.e)));
	}
	free(sealed);
	seal_table_release(&t);
	seal_table_release(&t2);
	mv_buf_release(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	key_init();
	if (data[0] & 1)
		table(data + 1, size - 1);
	else
		record(data + 1, size - 1);
	return 0;
}
