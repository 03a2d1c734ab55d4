/*
 * fuzz_mail_crypt: a maildir file as Dovecot's mail_crypt and zlib
 * plugins leave it (CRYPTED header, Dovecot-LZ4, zstd, gzip...), decoded
 * whole and as a prefix, with no keys and with one P-256 key loaded (the
 * seed corpus holds files encrypted for it, so the decryption path is
 * reached too).
 */
#include "fuzz.h"
#include "mail_crypt.h"

/* fixed test key; make_crypt_seeds.sh encrypts the seeds for it */
static const char key_pem[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQggsYsTx7IlMcwC3et\n"
	"OrEpFJHaE6MdzITjq6q8N2IGioGhRANCAASdaZodK3k8muFPXl4YLoDiHpmZHqbN\n"
	"rRZwvwwEb7DP2WWucmJPSixi1Hjr+0gZAaIp1aBDyF1mY+0NI7AN/AAE\n"
	"-----END PRIVATE KEY-----\n";

static struct mail_crypt_keys *keys;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mv_buf out = MV_BUF_INIT;
	struct mv_err err = MV_ERR_INIT;
	unsigned layers = 0;
	int rc;

	if (!keys) {
		FUZZ_CHECK(!mail_crypt_keys_new(&keys, &err));
		FUZZ_CHECK(!mail_crypt_keys_add_pem(keys, key_pem,
						    sizeof(key_pem) - 1, &err));
	}
	(void)mail_crypt_detect(data, size);
	rc = mail_crypt_decode(data, size, keys, &out, &layers, &err);
	FUZZ_CHECK(rc <= 0 && (!rc || err.msg[0]));
	FUZZ_CHECK(rc || out.len <= MAIL_CRYPT_MAX_OUT);
	FUZZ_CHECK(!rc || !out.len);
	mv_buf_reset(&out);
	mv_err_clear(&err);
	rc = mail_crypt_decode(data, size, NULL, &out, NULL, &err);
	FUZZ_CHECK(rc <= 0);
	mv_buf_reset(&out);
	mv_err_clear(&err);
	rc = mail_crypt_decode_prefix(data, size / 2, size, keys, 4096, &out,
				      &layers, &err);
	FUZZ_CHECK(rc <= 0);
	mv_buf_release(&out);
	return 0;
}
