/*
 * mail_crypt: turn a Dovecot/mailcow maildir file into the message bytes.
 *
 * mailcow stores every message as encrypt(lz4(RFC 5322)) with Dovecot's
 * mail_crypt plugin ("CRYPTED" header, version 2, AES-256-GCM, a global
 * P-256 key pair) and the zlib plugin (Dovecot's own LZ4 framing).  Files
 * written before encryption was enabled are LZ4-only or plain.  This module
 * detects the layers by their magic bytes and peels them off:
 *
 *   plain                      -> copied as is
 *   compressed (lz4/zstd/gz/bz2/xz) -> decompressed
 *   CRYPTED v2 around either   -> decrypted, then as above
 *
 * All cryptography is OpenSSL EVP (ECDH, PBKDF2-HMAC-SHA256, AES-256-CBC
 * for the key blob, AES-256-GCM for the body); LZ4 is liblz4, zstd is
 * libzstd, gz/bz2/xz go through libarchive's raw reader.
 *
 * A key set is immutable once loaded and may be shared by threads.
 */
#ifndef MV_MAIL_CRYPT_H
#define MV_MAIL_CRYPT_H

#include <stddef.h>
#include <stdint.h>

#include "mv_err.h"
#include "util.h"

/* Largest decoded message accepted (a decompression bomb stops here). */
#define MAIL_CRYPT_MAX_OUT ((size_t)512 << 20)

/* Layers found by mail_crypt_detect()/mail_crypt_decode(). */
enum mail_crypt_layer {
	MAIL_CRYPT_PLAIN = 0,
	MAIL_CRYPT_ENCRYPTED = (1 << 0), /* "CRYPTED" header, any version */
	MAIL_CRYPT_LZ4 = (1 << 1),	 /* Dovecot-LZ4 stream */
	MAIL_CRYPT_ZSTD = (1 << 2),
	MAIL_CRYPT_GZIP = (1 << 3),
	MAIL_CRYPT_BZIP2 = (1 << 4),
	MAIL_CRYPT_XZ = (1 << 5),
};

struct mail_crypt_keys;

/* An empty key set.  Returns 0 or -ENOMEM. */
int mail_crypt_keys_new(struct mail_crypt_keys **out, struct mv_err *err);

/* Add a private key given as PEM (PKCS#8 or "EC PRIVATE KEY", as mailcow's
 * ecprivkey.pem).  Only P-256 keys are accepted.  Returns 0, -EINVAL for
 * text that is not such a key, -ENOMEM. */
int mail_crypt_keys_add_pem(struct mail_crypt_keys *keys, const void *pem,
			    size_t len, struct mv_err *err);

/* Add dir/ecprivkey.pem (the layout of mailcow's crypt volume and of
 * --mailcow-keys DIR).  Returns 0, -ENOENT when the file is missing, or
 * the errors of mail_crypt_keys_add_pem(). */
int mail_crypt_keys_load_dir(struct mail_crypt_keys *keys, const char *dir,
			     struct mv_err *err);

/* Add the keys of src to keys (shared, not copied: src may be freed
 * after).  Returns 0 or -ENOMEM. */
int mail_crypt_keys_add_all(struct mail_crypt_keys *keys,
			    const struct mail_crypt_keys *src,
			    struct mv_err *err);

/* Have OpenSSL load what decoding uses (EC, SHA-256, AES-GCM, AES-CBC,
 * PBKDF2): its first use in a process costs about a millisecond, which a
 * mount pays in the background instead of on someone's first read. */
void mail_crypt_warm(void);

/* Number of keys loaded. */
size_t mail_crypt_keys_count(const struct mail_crypt_keys *keys);

/* Free a key set (NULL is a no-op); key material is wiped. */
void mail_crypt_keys_free(struct mail_crypt_keys *keys);

/* The outermost layer of p, from its first bytes alone (MAIL_CRYPT_PLAIN
 * when no magic matches). */
unsigned mail_crypt_detect(const void *p, size_t n);

/* Decode a whole maildir file: decrypt when it carries the CRYPTED header,
 * then decompress when it carries a compression magic, and append the
 * message bytes to out.  keys may be NULL (plain and compressed files
 * still decode).  *layers (may be NULL) receives the layers peeled off.
 * out is left untouched on failure.
 *
 * Returns 0, or
 *   -ENOKEY    encrypted and no loaded key matches the file's key id
 *   -EBADMSG   truncated or corrupt (header, tag, LZ4 chunk...), the
 *              message names the problem and the offset
 *   -ENOTSUP   a format variant not handled (version 1, RSA key)
 *   -EMSGSIZE  the result would exceed MAIL_CRYPT_MAX_OUT
 *   -ENOMEM */
int mail_crypt_decode(const void *p, size_t n,
		      const struct mail_crypt_keys *keys, struct mv_buf *out,
		      unsigned *layers, struct mv_err *err);

/* Decode the first n bytes p of a maildir file of total bytes (a message
 * too large to hold whole while it is backed up): appends to out a
 * prefix of the message bytes, at most max_out of them.  The ciphertext in hand
 * is decrypted exactly (AES-256-GCM is CTR mode underneath) but the
 * authentication tag, at the end of the file, is not checked: a corrupt or
 * truncated body past the prefix is found only by mail_crypt_decode() of the
 * whole file.  A compressed stream cut by the prefix ends at its last complete
 * chunk. When total <= n this is mail_crypt_decode() (max_out ignored). Returns
 * 0 or the errors of mail_crypt_decode() for what lies in the prefix (-ENOKEY,
 * -EBADMSG for a corrupt header or LZ4 block...). */
int mail_crypt_decode_prefix(const void *p, size_t n, uint64_t total,
			     const struct mail_crypt_keys *keys, size_t max_out,
			     struct mv_buf *out, unsigned *layers,
			     struct mv_err *err);

/* One gzip, bzip2 or xz stream (Dovecot's zlib plugin) appended to out:
 * all of it, or when max_out is non-zero at least max_out bytes of it (a
 * prefix may end inside the stream).  -EBADMSG for a corrupt stream,
 * -EMSGSIZE past MAIL_CRYPT_MAX_OUT.  In mail_crypt_zlib.c, part of the
 * formats plugin (libarchive). */
int mail_crypt_zlib_decode(const uint8_t *p, size_t n, size_t max_out,
			   struct mv_buf *out, struct mv_err *err);

#endif
