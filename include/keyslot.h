/*
 * keyslot: the master key wrapped by a passphrase (docs/FORMAT-2.md
 * section 4, "Key slots").
 *
 *   slot   := "MVKEY2" u8 version(1)  slot id[16]
 *             u8 kdf(1 = argon2id13)  le64 opslimit  le64 memlimit  salt[16]
 *             nonce[24]  XChaCha20-Poly1305(KEK, keyset)  tag[16]
 *   AAD    := "mailvault key slot" || repo id[16] || the 56 bytes above
 *   keyset := u8 version(1)  MK[32]  varint(zigzag(created, ns))
 *   KEK    := Argon2id(passphrase, salt, opslimit, memlimit)
 *
 * The AAD covers every header field, so a storage box that lowers memlimit
 * or opslimit to make guessing cheaper, swaps the salt, or moves a slot to
 * another repository breaks the slot instead.  A reader refuses parameters
 * below KEYSLOT_MIN_* (a weakened slot) and above KEYSLOT_MAX_* (a crafted
 * slot must not make it allocate or compute without bound).
 *
 * Errors: -EBADMSG for a slot that is malformed or has parameters out of
 * range (before any Argon2id is run); -EKEYREJECTED when the passphrase
 * does not open it.  A sealed part altered on disk also gives
 * -EKEYREJECTED: an AEAD cannot tell the two apart.
 *
 * The paper form is the slot in hex for printing: a title, a "repo:" line,
 * numbered lines of 32 bytes, each with a 2-byte check of its own (BLAKE2b
 * of the line number and bytes), and a "total:" line (the length and 8
 * bytes of BLAKE2b of repo id and slot).  Decoding names the line with a
 * typo.
 */
#ifndef MV_KEYSLOT_H
#define MV_KEYSLOT_H

#include <stddef.h>
#include <stdint.h>

#include "mv_err.h"
#include "util.h"

#define KEYSLOT_ID_LEN 16
#define KEYSLOT_SALT_LEN 16
#define KEYSLOT_REPO_ID_LEN 16 /* MV_REPO_ID_LEN */
#define KEYSLOT_MK_LEN 32
#define KEYSLOT_HEADER_LEN 56 /* magic to salt: what the AAD repeats */
#define KEYSLOT_MIN_LEN 130   /* header, nonce, tag, smallest keyset */
#define KEYSLOT_MAX_LEN 139   /* ... largest keyset */

#define KEYSLOT_KDF_ARGON2ID13 1
#define KEYSLOT_MIN_OPS 3ull
#define KEYSLOT_MAX_OPS 64ull
#define KEYSLOT_MIN_MEM (64ull << 20)
#define KEYSLOT_MAX_MEM (4ull << 30)
/* keyslot_calibrate doubles memory up to this */
#define KEYSLOT_CALIBRATE_MAX_MEM (1ull << 30)

/* Argon2id cost: passes and bytes of memory. */
struct keyslot_params {
	uint64_t opslimit;
	uint64_t memlimit;
};

/* What a slot's readable header says, and what its keyset says once open. */
struct keyslot_info {
	uint8_t id[KEYSLOT_ID_LEN];	/* random, names keys/<hex id> */
	uint8_t kdf;			/* KEYSLOT_KDF_ARGON2ID13 */
	struct keyslot_params params;	/* the KDF's cost */
	uint8_t salt[KEYSLOT_SALT_LEN]; /* the KDF's salt */
	int64_t created_ns;		/* from the keyset; 0 until opened */
};

/*
 * Parameters for a new slot on this machine: t = 3 and memory doubled from
 * 64 MiB while one derivation stays within about a second of CPU time (at
 * most KEYSLOT_CALIBRATE_MAX_MEM), then passes added up to about a second,
 * as a doubling is too coarse a step.  Takes 1-3 s.  With MAILVAULT_KDF_TEST=1
 * in the environment it returns the minimum at once (for tests; readers accept
 * nothing less anyway).  out_seconds (may be NULL): the measured time of one
 * derivation with the returned parameters, 0 when not measured.
 */
int keyslot_calibrate(struct keyslot_params *out, double *out_seconds,
		      struct mv_err *err);

/*
 * Wrap mk for repository repo_id under pass (pass_len bytes, not empty)
 * with params (in the accepted range, else -EINVAL): a fresh slot id, salt
 * and nonce.  Appends the slot to out; out_info (may be NULL) gets its
 * header.  Runs Argon2id once; -ENOMEM when it cannot get the memory.
 */
int keyslot_wrap(const uint8_t mk[KEYSLOT_MK_LEN],
		 const uint8_t repo_id[KEYSLOT_REPO_ID_LEN], const char *pass,
		 size_t pass_len, const struct keyslot_params *params,
		 struct mv_buf *out, struct keyslot_info *out_info,
		 struct mv_err *err);

/*
 * Open a slot: the master key into *out_mk (KEYSLOT_MK_LEN bytes in
 * sodium_malloc'ed memory, freed with keyslot_key_free); out_info (may be
 * NULL) gets header and creation time.  -EBADMSG, -EKEYREJECTED (above),
 * -ENOMEM.
 */
int keyslot_unwrap(const void *slot, size_t len,
		   const uint8_t repo_id[KEYSLOT_REPO_ID_LEN], const char *pass,
		   size_t pass_len, uint8_t **out_mk,
		   struct keyslot_info *out_info, struct mv_err *err);

/* The two halves of keyslot_unwrap, for a caller that derives the KEK once
 * and opens the slot several times (tests of tampering, without one
 * Argon2id per attempt).  keyslot_parse checks the header and length only. */
int keyslot_parse(const void *slot, size_t len, struct keyslot_info *out,
		  struct mv_err *err);
int keyslot_derive(const struct keyslot_info *info, const char *pass,
		   size_t pass_len, uint8_t kek[KEYSLOT_MK_LEN],
		   struct mv_err *err);
int keyslot_open(const void *slot, size_t len,
		 const uint8_t repo_id[KEYSLOT_REPO_ID_LEN],
		 const uint8_t kek[KEYSLOT_MK_LEN], uint8_t **out_mk,
		 struct keyslot_info *out_info, struct mv_err *err);

/* Wipe and free a master key from keyslot_unwrap.  NULL ok. */
void keyslot_key_free(uint8_t *mk);

/* The paper form of a slot as a NUL-terminated text in *out (malloc'ed). */
int keyslot_paper_encode(const void *slot, size_t len,
			 const uint8_t repo_id[KEYSLOT_REPO_ID_LEN], char **out,
			 struct mv_err *err);

/* Read a paper form back: the slot appended to out, the repository id it
 * names into repo_id.  Blank lines, lines starting with '#', case and the
 * spacing inside a line do not matter.  -EBADMSG with the line named:
 * "paper key, line 3: check does not match: a typo on this line?". */
int keyslot_paper_decode(const char *text, struct mv_buf *out,
			 uint8_t repo_id[KEYSLOT_REPO_ID_LEN],
			 struct mv_err *err);

#endif
