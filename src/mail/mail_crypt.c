/*
 * mail_crypt: Dovecot mail_crypt (CRYPTED v2) and zlib-plugin decoding.
 *
 * The CRYPTED v2 layout, all integers big-endian (Dovecot lib-dcrypt,
 * ostream-encrypt.c / istream-decrypt.c):
 *
 *   0   9  magic "CRYPTED\3\7"
 *   9   1  version 2
 *   10  4  flags (2 = AEAD integrity)
 *   14  4  hdr_len: ciphertext starts at this offset from byte 0
 *   18     DER OID of the body cipher (aes-256-gcm)
 *          DER OID of the digest (sha256), used for PBKDF2 and the check
 *      4   PBKDF2 rounds
 *      4   key data length
 *      1   key count, then per key:
 *            1 key type (2 = EC), 32 key id,
 *            4+n ephemeral public point, 4+n encrypted key blob,
 *            4+n check hash
 *   hdr_len ... end-16  AES-256-GCM ciphertext; end-16 ... end  GCM tag
 *
 * Key id: SHA-256 of the DER SubjectPublicKeyInfo with the point written
 * compressed.  Key blob: ECDH(private, ephemeral) -> S;
 * PBKDF2-HMAC-SHA256(S, salt = ephemeral point bytes, rounds, 48) -> CBC
 * key (32) and IV (16); AES-256-CBC-decrypt -> 32 key | 12 IV | 16 AAD.
 * Check hash: h = SHA256(blob), then 2048 times h = SHA256(h | be32(i)).
 *
 * Dovecot's LZ4 stream: "Dovecot-LZ4\r\x2a\x9b\xc5", be32 largest chunk,
 * then chunks of be32 length + one LZ4 block (iostream-lz4.h).
 */
#include "mail_crypt.h"

#include <errno.h>
#include <limits.h>
#include <lz4.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define CRYPT_MAGIC "CRYPTED\x03\x07"
#define CRYPT_MAGIC_LEN 9
#define CRYPT_FLAG_HMAC 0x1u
#define CRYPT_FLAG_AEAD 0x2u
#define CRYPT_FLAG_SAME_CALG 0x8u
#define CRYPT_TAG_LEN 16
#define KEY_ID_LEN 32
#define KEY_TYPE_EC 2
#define MAX_ROUNDS 1000000u

#define LZ4_MAGIC "Dovecot-LZ4\x0d\x2a\x9b\xc5"
#define LZ4_MAGIC_LEN 15
#define LZ4_MAX_CHUNK (1024 * 1024)

/* DER OIDs Dovecot writes (06 len ...). */
static const uint8_t oid_aes256gcm[] = {0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
					0x65, 0x03, 0x04, 0x01, 0x2e};
static const uint8_t oid_sha256[] = {0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
				     0x65, 0x03, 0x04, 0x02, 0x01};

struct crypt_key {
	EVP_PKEY *pkey;		/* P-256 private key */
	uint8_t id[KEY_ID_LEN]; /* Dovecot key id (see file header) */
};

struct mail_crypt_keys {
	struct crypt_key *v; /* loaded keys */
	size_t n;	     /* count */
};

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

int mail_crypt_keys_new(struct mail_crypt_keys **out, struct mv_err *err)
{
	struct mail_crypt_keys *k = calloc(1, sizeof(*k));

	if (!k)
		return mv_err_set(err, -ENOMEM, "out of memory");
	*out = k;
	return 0;
}

void mail_crypt_keys_free(struct mail_crypt_keys *keys)
{
	size_t i;

	if (!keys)
		return;
	for (i = 0; i < keys->n; i++)
		EVP_PKEY_free(keys->v[i].pkey);
	free(keys->v);
	free(keys);
}

size_t mail_crypt_keys_count(const struct mail_crypt_keys *keys)
{
	return keys ? keys->n : 0;
}

/* Dovecot's key id: SHA-256 over the compressed-point SubjectPublicKeyInfo. */
static int key_id(EVP_PKEY *pkey, uint8_t id[KEY_ID_LEN])
{
	EVP_PKEY *pub = NULL;
	unsigned char *der = NULL;
	int len, rc = -EINVAL;

	pub = EVP_PKEY_dup(pkey);
	if (!pub)
		goto out;
	if (!EVP_PKEY_set_utf8_string_param(
		    pub, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
		    OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_COMPRESSED))
		goto out;
	len = i2d_PUBKEY(pub, &der);
	if (len <= 0)
		goto out;
	SHA256(der, (size_t)len, id);
	rc = 0;
out:
	OPENSSL_free(der);
	EVP_PKEY_free(pub);
	return rc;
}

int mail_crypt_keys_add_pem(struct mail_crypt_keys *keys, const void *pem,
			    size_t len, struct mv_err *err)
{
	BIO *bio = NULL;
	EVP_PKEY *pkey = NULL;
	struct crypt_key *v;
	char group[64];
	size_t glen = 0;
	int rc;

	if (len > INT_MAX)
		return mv_err_set(err, -EINVAL, "key file too large");
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		return mv_err_set(err, -ENOMEM, "out of memory");
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (!pkey) {
		rc = mv_err_set(err, -EINVAL, "not a PEM private key");
		goto out;
	}
	if (!EVP_PKEY_is_a(pkey, "EC") ||
	    !EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
					    group, sizeof(group), &glen) ||
	    strcmp(group, "prime256v1") != 0) {
		rc = mv_err_set(err, -EINVAL,
				"not a P-256 (prime256v1) EC private key");
		goto out;
	}
	v = realloc(keys->v, (keys->n + 1) * sizeof(*v));
	if (!v) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	keys->v = v;
	if (key_id(pkey, v[keys->n].id) < 0) {
		rc = mv_err_set(err, -EINVAL, "cannot compute the key id");
		goto out;
	}
	v[keys->n].pkey = pkey;
	pkey = NULL;
	keys->n++;
	rc = 0;
out:
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	return rc;
}

int mail_crypt_keys_add_all(struct mail_crypt_keys *keys,
			    const struct mail_crypt_keys *src,
			    struct mv_err *err)
{
	struct crypt_key *v;
	size_t i;

	if (!src->n)
		return 0;
	v = realloc(keys->v, (keys->n + src->n) * sizeof(*v));
	if (!v)
		return mv_err_set(err, -ENOMEM, "out of memory");
	keys->v = v;
	for (i = 0; i < src->n; i++) {
		if (!EVP_PKEY_up_ref(src->v[i].pkey))
			return mv_err_set(err, -ENOMEM, "out of memory");
		keys->v[keys->n++] = src->v[i];
	}
	return 0;
}

void mail_crypt_warm(void)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	EVP_PKEY *k = NULL;
	uint8_t out[32], key[32] = {0};
	int l = 0;

	if (ctx && EVP_PKEY_keygen_init(ctx) > 0 &&
	    EVP_PKEY_CTX_set_group_name(ctx, "prime256v1") > 0)
		EVP_PKEY_keygen(ctx, &k);
	PKCS5_PBKDF2_HMAC("", 0, key, sizeof(key), 1, EVP_sha256(), sizeof(out),
			  out);
	if (c) {
		static const uint8_t iv[16];

		EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, iv);
		EVP_DecryptUpdate(c, out, &l, key, sizeof(key));
		EVP_CIPHER_CTX_reset(c);
		EVP_DecryptInit_ex(c, EVP_aes_256_cbc(), NULL, key, iv);
	}
	EVP_CIPHER_CTX_free(c);
	EVP_PKEY_free(k);
	EVP_PKEY_CTX_free(ctx);
}

int mail_crypt_keys_load_dir(struct mail_crypt_keys *keys, const char *dir,
			     struct mv_err *err)
{
	char path[PATH_MAX];
	struct mv_err e = MV_ERR_INIT;
	char *data = NULL;
	size_t len = 0;
	int rc;

	if ((size_t)snprintf(path, sizeof(path), "%s/ecprivkey.pem", dir) >=
	    sizeof(path))
		return mv_err_set(err, -ENAMETOOLONG, "path too long: '%s'",
				  dir);
	rc = mv_read_file(path, 1 << 20, &data, &len, &e);
	if (rc < 0)
		return mv_err_set(err, rc, "cannot read key '%s': %s", path,
				  mv_err_msg(&e));
	rc = mail_crypt_keys_add_pem(keys, data, len, &e);
	if (rc < 0)
		mv_err_set(err, rc, "cannot load key '%s': %s", path,
			   mv_err_msg(&e));
	OPENSSL_cleanse(data, len);
	free(data);
	return rc;
}

static bool has_prefix(const uint8_t *p, size_t n, const void *m, size_t mn)
{
	return n >= mn && memcmp(p, m, mn) == 0;
}

unsigned mail_crypt_detect(const void *vp, size_t n)
{
	const uint8_t *p = vp;

	if (has_prefix(p, n, CRYPT_MAGIC, CRYPT_MAGIC_LEN))
		return MAIL_CRYPT_ENCRYPTED;
	if (has_prefix(p, n, LZ4_MAGIC, LZ4_MAGIC_LEN))
		return MAIL_CRYPT_LZ4;
	if (has_prefix(p, n, "\x28\xb5\x2f\xfd", 4))
		return MAIL_CRYPT_ZSTD;
	if (has_prefix(p, n, "\x1f\x8b\x08", 3))
		return MAIL_CRYPT_GZIP;
	if (n >= 10 && has_prefix(p, n, "BZh", 3) && p[3] >= '1' &&
	    p[3] <= '9' && memcmp(p + 4, "\x31\x41\x59\x26\x53\x59", 6) == 0)
		return MAIL_CRYPT_BZIP2;
	if (has_prefix(p, n,
		       "\xfd"
		       "7zXZ\0",
		       6))
		return MAIL_CRYPT_XZ;
	return MAIL_CRYPT_PLAIN;
}

/* ---- decryption ---- */

struct hdr_reader {
	const uint8_t *p, *end, *start;
};

static int rd_u32(struct hdr_reader *r, uint32_t *v)
{
	if (r->end - r->p < 4)
		return -1;
	*v = be32(r->p);
	r->p += 4;
	return 0;
}

static int rd_block(struct hdr_reader *r, const uint8_t **b, uint32_t *len)
{
	if (rd_u32(r, len) < 0 || (size_t)(r->end - r->p) < *len)
		return -1;
	*b = r->p;
	r->p += *len;
	return 0;
}

static int rd_oid(struct hdr_reader *r, const uint8_t *oid, size_t n)
{
	if ((size_t)(r->end - r->p) < n || memcmp(r->p, oid, n) != 0)
		return -1;
	r->p += n;
	return 0;
}

/* ECDH with the ephemeral point, PBKDF2, CBC: the 60-byte key blob. */
static int unwrap_key(EVP_PKEY *priv, const uint8_t *eph, uint32_t eph_len,
		      const uint8_t *ek, uint32_t ek_len, uint32_t rounds,
		      uint8_t blob[64], int *blob_len, struct mv_err *err)
{
	EVP_PKEY *peer = NULL;
	EVP_PKEY_CTX *dctx = NULL;
	EVP_CIPHER_CTX *cctx = NULL;
	uint8_t secret[66], kiv[48];
	size_t slen = sizeof(secret);
	int l1 = 0, l2 = 0, rc = -EBADMSG;
	const char *what = "corrupt ephemeral key in header";

	peer = EVP_PKEY_new();
	if (!peer || !EVP_PKEY_copy_parameters(peer, priv) ||
	    !EVP_PKEY_set1_encoded_public_key(peer, eph, eph_len))
		goto fail;
	dctx = EVP_PKEY_CTX_new(priv, NULL);
	if (!dctx || EVP_PKEY_derive_init(dctx) <= 0 ||
	    EVP_PKEY_derive_set_peer(dctx, peer) <= 0 ||
	    EVP_PKEY_derive(dctx, secret, &slen) <= 0)
		goto fail;
	what = "key derivation failed";
	if (!PKCS5_PBKDF2_HMAC((const char *)secret, (int)slen, eph,
			       (int)eph_len, (int)rounds, EVP_sha256(),
			       sizeof(kiv), kiv))
		goto fail;
	/* The blob is 60 bytes, padded to 64: never more than 64 in. */
	what = "cannot decrypt the message key: corrupt header";
	if (ek_len == 0 || ek_len > 64 || ek_len % 16)
		goto fail;
	cctx = EVP_CIPHER_CTX_new();
	if (!cctx ||
	    !EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, kiv, kiv + 32) ||
	    !EVP_DecryptUpdate(cctx, blob, &l1, ek, (int)ek_len) ||
	    !EVP_DecryptFinal_ex(cctx, blob + l1, &l2))
		goto fail;
	*blob_len = l1 + l2;
	rc = 0;
	goto out;
fail:
	mv_err_set(err, rc, "%s", what);
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(kiv, sizeof(kiv));
	EVP_CIPHER_CTX_free(cctx);
	EVP_PKEY_CTX_free(dctx);
	EVP_PKEY_free(peer);
	return rc;
}

static bool check_hash_ok(const uint8_t *blob, size_t n, const uint8_t *h,
			  uint32_t hlen)
{
	uint8_t cur[SHA256_DIGEST_LENGTH + 4];
	uint8_t res[SHA256_DIGEST_LENGTH];
	uint32_t i;
	bool ok;

	if (hlen != SHA256_DIGEST_LENGTH)
		return false;
	SHA256(blob, n, res);
	for (i = 1; i <= 2048; i++) {
		memcpy(cur, res, SHA256_DIGEST_LENGTH);
		cur[32] = (uint8_t)(i >> 24);
		cur[33] = (uint8_t)(i >> 16);
		cur[34] = (uint8_t)(i >> 8);
		cur[35] = (uint8_t)i;
		SHA256(cur, sizeof(cur), res);
	}
	ok = CRYPTO_memcmp(res, h, SHA256_DIGEST_LENGTH) == 0;
	return ok;
}

/* Decrypt p[0..n).  When total > n, p is the start of a total-byte file:
 * the ciphertext available is decrypted (GCM is CTR mode underneath, so
 * the bytes are exact) without the tag check, which needs the whole
 * file. */
static int decrypt_v2(const uint8_t *p, size_t n, size_t total,
		      const struct mail_crypt_keys *keys, struct mv_buf *out,
		      struct mv_err *err)
{
	bool prefix = total > n;
	struct hdr_reader r;
	uint32_t flags, hdr_len, rounds, kdlen, eph_len, ek_len, h_len;
	const uint8_t *eph, *ek, *h, *id = NULL;
	const struct crypt_key *key = NULL;
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t blob[64];
	int blob_len = 0, l1 = 0, l2 = 0, rc;
	char hex[2 * KEY_ID_LEN + 1];
	uint8_t nkeys, type = 0;
	size_t body_len, i;

	if (n < 18)
		return mv_err_set(err, -EBADMSG,
				  "truncated encryption header: %zu bytes", n);
	flags = be32(p + 10);
	hdr_len = be32(p + 14);
	if (hdr_len < 18 || hdr_len > n)
		return mv_err_set(err, -EBADMSG,
				  "truncated encryption header: header "
				  "length %u, file %zu bytes",
				  (unsigned)hdr_len, total);
	if (!(flags & CRYPT_FLAG_AEAD) || (flags & CRYPT_FLAG_HMAC) ||
	    (flags & CRYPT_FLAG_SAME_CALG))
		return mv_err_set(err, -ENOTSUP,
				  "unsupported encryption flags 0x%x",
				  (unsigned)flags);
	r.start = p;
	r.p = p + 18;
	r.end = p + hdr_len;
	if (rd_oid(&r, oid_aes256gcm, sizeof(oid_aes256gcm)) < 0 ||
	    rd_oid(&r, oid_sha256, sizeof(oid_sha256)) < 0)
		return mv_err_set(err, -ENOTSUP,
				  "unsupported cipher in encryption header "
				  "(only aes-256-gcm-sha256)");
	if (rd_u32(&r, &rounds) < 0 || rd_u32(&r, &kdlen) < 0 || r.p == r.end)
		goto truncated;
	if (rounds == 0 || rounds > MAX_ROUNDS)
		return mv_err_set(err, -EBADMSG,
				  "corrupt encryption header: %u rounds",
				  (unsigned)rounds);
	nkeys = *r.p++;
	for (i = 0; i < nkeys; i++) {
		size_t k;

		if (r.end - r.p < 1 + KEY_ID_LEN)
			goto truncated;
		type = *r.p++;
		id = r.p;
		r.p += KEY_ID_LEN;
		for (k = 0; keys && k < keys->n; k++) {
			if (memcmp(keys->v[k].id, id, KEY_ID_LEN) == 0) {
				key = &keys->v[k];
				break;
			}
		}
		if (key)
			break;
		/* not ours: skip its blocks; a bad length ends the search */
		if (rd_block(&r, &eph, &eph_len) < 0 ||
		    rd_block(&r, &ek, &ek_len) < 0)
			break;
	}
	if (!key) {
		if (id)
			mv_hex(id, KEY_ID_LEN, hex);
		else
			snprintf(hex, sizeof(hex), "none");
		return mv_err_set(err, -ENOKEY,
				  "no private key for this message "
				  "(encrypted for key id %s, %zu key(s) "
				  "loaded)",
				  hex, mail_crypt_keys_count(keys));
	}
	if (type != KEY_TYPE_EC)
		return mv_err_set(err, -ENOTSUP,
				  "unsupported key type %u (only EC)",
				  (unsigned)type);
	if (rd_block(&r, &eph, &eph_len) < 0 ||
	    rd_block(&r, &ek, &ek_len) < 0 || rd_block(&r, &h, &h_len) < 0)
		goto truncated;
	rc = unwrap_key(key->pkey, eph, eph_len, ek, ek_len, rounds, blob,
			&blob_len, err);
	if (rc < 0)
		return rc;
	/* The check hash costs 2049 SHA-256 rounds: verify it only when the
	 * GCM tag fails, to tell a corrupt header from a corrupt body. */
	if (blob_len != 32 + 12 + CRYPT_TAG_LEN) {
		rc = mv_err_set(err, -EBADMSG,
				"corrupt encryption header: message key of "
				"%d bytes",
				blob_len);
		goto out;
	}
	if (total - hdr_len < CRYPT_TAG_LEN) {
		rc = mv_err_set(err, -EBADMSG,
				"truncated encrypted message: no "
				"authentication tag (%zu bytes)",
				total);
		goto out;
	}
	body_len = MV_MIN(n, total - CRYPT_TAG_LEN) - hdr_len;
	if (body_len > INT_MAX || body_len > MAIL_CRYPT_MAX_OUT) {
		rc = mv_err_set(err, -EMSGSIZE, "encrypted message too large");
		goto out;
	}
	rc = mv_buf_reserve(out, body_len + 16);
	if (rc < 0) {
		mv_err_set(err, rc, "out of memory");
		goto out;
	}
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx ||
	    !EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) ||
	    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) ||
	    !EVP_DecryptInit_ex(ctx, NULL, NULL, blob, blob + 32) ||
	    !EVP_DecryptUpdate(ctx, NULL, &l1, blob + 44, CRYPT_TAG_LEN) ||
	    !EVP_DecryptUpdate(ctx, out->data + out->len, &l1, p + hdr_len,
			       (int)body_len) ||
	    (!prefix &&
	     !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CRYPT_TAG_LEN,
				  (void *)(p + n - CRYPT_TAG_LEN)))) {
		rc = mv_err_set(err, -EIO, "AES-256-GCM setup failed");
		goto out;
	}
	if (prefix) {
		/* no tag to check before the end of the file */
		out->len += (size_t)l1;
		rc = 0;
		goto out;
	}
	if (EVP_DecryptFinal_ex(ctx, out->data + out->len + l1, &l2) <= 0) {
		OPENSSL_cleanse(out->data + out->len, (size_t)l1);
		if (!check_hash_ok(blob, (size_t)blob_len, h, h_len)) {
			rc = mv_err_set(err, -EBADMSG,
					"corrupt encryption header: the "
					"message key fails its check hash");
			goto out;
		}
		rc = mv_err_set(err, -EBADMSG,
				"encrypted message is truncated or corrupt: "
				"authentication tag mismatch (%zu bytes of "
				"ciphertext)",
				body_len);
		goto out;
	}
	out->len += (size_t)l1 + (size_t)l2;
	rc = 0;
out:
	OPENSSL_cleanse(blob, sizeof(blob));
	EVP_CIPHER_CTX_free(ctx);
	return rc;
truncated:
	return mv_err_set(err, -EBADMSG,
			  "truncated or corrupt encryption header at byte %zu",
			  (size_t)(r.p - r.start));
}

/* ---- decompression ---- */

/* Prefix decoding (max_out != 0): p is the start of a longer stream; stop
 * at its last complete chunk or once max_out bytes are out. */
static int lz4_decode(const uint8_t *p, size_t n, size_t max_out,
		      struct mv_buf *out, struct mv_err *err)
{
	size_t off = LZ4_MAGIC_LEN + 4, chunk_no = 0, start = out->len;
	uint32_t max_chunk;

	if (n < off)
		return max_out ? 0
			       : mv_err_set(err, -EBADMSG,
					    "truncated LZ4 header");
	max_chunk = be32(p + LZ4_MAGIC_LEN);
	if (max_chunk == 0 || max_chunk > LZ4_MAX_CHUNK)
		return mv_err_set(err, -EBADMSG,
				  "corrupt LZ4 header: chunk size %u",
				  (unsigned)max_chunk);
	while (off < n && (!max_out || out->len - start < max_out)) {
		uint32_t clen;
		int dlen, rc;

		if (max_out && (n - off < 4 || be32(p + off) > n - off - 4))
			break; /* the rest of the chunk is beyond the prefix */
		if (n - off < 4)
			return mv_err_set(err, -EBADMSG,
					  "truncated LZ4 chunk %zu at byte %zu",
					  chunk_no, off);
		clen = be32(p + off);
		off += 4;
		if (clen == 0 || clen > n - off || clen > INT_MAX)
			return mv_err_set(err, -EBADMSG,
					  "truncated or corrupt LZ4 chunk %zu "
					  "at byte %zu: length %u",
					  chunk_no, off - 4, (unsigned)clen);
		if (out->len + max_chunk > MAIL_CRYPT_MAX_OUT)
			return mv_err_set(err, -EMSGSIZE,
					  "decompressed message too large");
		rc = mv_buf_reserve(out, max_chunk);
		if (rc < 0)
			return mv_err_set(err, rc, "out of memory");
		dlen = LZ4_decompress_safe((const char *)p + off,
					   (char *)out->data + out->len,
					   (int)clen, (int)max_chunk);
		if (dlen < 0)
			return mv_err_set(err, -EBADMSG,
					  "corrupt LZ4 block in chunk %zu at "
					  "byte %zu",
					  chunk_no, off);
		out->len += (size_t)dlen;
		off += clen;
		chunk_no++;
	}
	return 0;
}

static int zstd_decode(const uint8_t *p, size_t n, size_t max_out,
		       struct mv_buf *out, struct mv_err *err)
{
	ZSTD_DStream *ds = ZSTD_createDStream();
	ZSTD_inBuffer in = {p, n, 0};
	size_t r = 1, start = out->len;
	int rc = 0;

	if (!ds)
		return mv_err_set(err, -ENOMEM, "out of memory");
	while ((in.pos < in.size || r != 0) &&
	       (!max_out || out->len - start < max_out)) {
		ZSTD_outBuffer ob;
		size_t before = in.pos;

		rc = mv_buf_reserve(out, 65536);
		if (rc < 0) {
			mv_err_set(err, rc, "out of memory");
			goto out;
		}
		ob.dst = out->data + out->len;
		ob.size = out->cap - out->len;
		ob.pos = 0;
		r = ZSTD_decompressStream(ds, &ob, &in);
		if (ZSTD_isError(r)) {
			rc = mv_err_set(err, -EBADMSG,
					"corrupt zstd stream at byte %zu: %s",
					in.pos, ZSTD_getErrorName(r));
			goto out;
		}
		out->len += ob.pos;
		if (out->len > MAIL_CRYPT_MAX_OUT) {
			rc = mv_err_set(err, -EMSGSIZE,
					"decompressed message too large");
			goto out;
		}
		if (in.pos == in.size && r != 0 && ob.pos == 0 &&
		    before == in.pos) {
			if (max_out)
				break; /* the rest is beyond the prefix */
			rc = mv_err_set(err, -EBADMSG,
					"truncated zstd stream (%zu bytes)", n);
			goto out;
		}
	}
out:
	ZSTD_freeDStream(ds);
	return rc;
}

static int decompress(unsigned kind, const uint8_t *p, size_t n, size_t max_out,
		      struct mv_buf *out, struct mv_err *err)
{
	switch (kind) {
	case MAIL_CRYPT_LZ4:
		return lz4_decode(p, n, max_out, out, err);
	case MAIL_CRYPT_ZSTD:
		return zstd_decode(p, n, max_out, out, err);
	default:
		return mail_crypt_zlib_decode(p, n, max_out, out, err);
	}
}

/* Whole file (total == n, max_out ignored) or its first n bytes. */
static int decode(const uint8_t *p, size_t n, size_t total,
		  const struct mail_crypt_keys *keys, size_t max_out,
		  struct mv_buf *out, unsigned *layers, struct mv_err *err)
{
	bool prefix = total > n;
	struct mv_buf plain = MV_BUF_INIT, tmp = MV_BUF_INIT;
	unsigned kind, found = 0;
	int rc;

	kind = mail_crypt_detect(p, n);
	if (kind == MAIL_CRYPT_ENCRYPTED) {
		found |= kind;
		if (n < CRYPT_MAGIC_LEN + 1) {
			rc = mv_err_set(err, -EBADMSG,
					"truncated encryption header: %zu "
					"bytes",
					n);
			goto out;
		}
		if (p[CRYPT_MAGIC_LEN] != 2) {
			rc = mv_err_set(err, -ENOTSUP,
					"unsupported encryption format "
					"version %u",
					(unsigned)p[CRYPT_MAGIC_LEN]);
			goto out;
		}
		rc = decrypt_v2(p, n, prefix ? total : n, keys, &plain, err);
		if (rc < 0)
			goto out;
		p = plain.data;
		n = plain.len;
		kind = mail_crypt_detect(p, n);
	}
	if (kind != MAIL_CRYPT_PLAIN && kind != MAIL_CRYPT_ENCRYPTED) {
		found |= kind;
		rc = decompress(kind, p, n, prefix ? MV_MAX(max_out, 1) : 0,
				&tmp, err);
		if (rc < 0)
			goto out;
		p = tmp.data;
		n = tmp.len;
	}
	if (prefix && n > max_out)
		n = max_out;
	rc = mv_buf_append(out, p, n);
	if (rc < 0) {
		mv_err_set(err, rc, "out of memory");
		goto out;
	}
	if (layers)
		*layers = found;
out:
	if (plain.data)
		OPENSSL_cleanse(plain.data, plain.cap);
	mv_buf_release(&plain);
	if (tmp.data)
		OPENSSL_cleanse(tmp.data, tmp.cap);
	mv_buf_release(&tmp);
	return rc;
}

int mail_crypt_decode(const void *p, size_t n,
		      const struct mail_crypt_keys *keys, struct mv_buf *out,
		      unsigned *layers, struct mv_err *err)
{
	return decode(p, n, n, keys, 0, out, layers, err);
}

int mail_crypt_decode_prefix(const void *p, size_t n, uint64_t total,
			     const struct mail_crypt_keys *keys, size_t max_out,
			     struct mv_buf *out, unsigned *layers,
			     struct mv_err *err)
{
	if (total <= n)
		return decode(p, n, n, keys, 0, out, layers, err);
	return decode(p, n, total > SIZE_MAX ? SIZE_MAX : (size_t)total, keys,
		      max_out, out, layers, err);
}
