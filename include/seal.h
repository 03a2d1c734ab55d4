/*
 * seal: format 2's framing of records, pack tables and pack trailers
 * (docs/FORMAT-2.md section 5.2) over crypt_.  Pure functions: bytes in,
 * bytes out; the pack writer and reader decide where they go.
 *
 *   record  := crypt_seal(key, AAD, plain)     nonce || ciphertext || tag
 *   plain   := u8 comp  varint(dict_id)  varint(payload_len)  payload
 *              zero padding up to crypt_padded_len(of all before it)
 *   AAD     := u8 SEAL_VERSION  u8 type  le32 epoch  id[32]
 *   table   := crypt_seal(key, "table" || pack name,
 *                         zstd(body)  zero padding (as above))
 *   body    := u8 kind  varint(n)  (id[32] u8 type u8 epoch varint(offset)
 *              varint(stored) varint(raw))*
 *   trailer := crypt_seal(key, "trailer" || pack name,
 *                         le64 table_offset  le32 table_len  le32 records
 *                         u8 kind)             SEAL_TRAILER_LEN (57) bytes
 *
 * The AAD binds what a record claims to be, so a record moved to another
 * id, type or epoch does not open; the pack name in the table's and the
 * trailer's AAD makes two packs whose names were swapped fail at the
 * trailer.  Opening checks everything a writer fixes: the padding is
 * exactly crypt_padded_len() and all zero, lengths agree, table offsets
 * increase without overlap; any of that wrong is -EBADMSG, as a wrong tag
 * is, with a message naming the object.  The caller passes the right key
 * (data key for content, metadata key for the rest, of the record's
 * epoch); nothing here derives keys.
 */
#ifndef MV_SEAL_H
#define MV_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "crypt.h"
#include "mv_err.h"
#include "util.h"

#define SEAL_VERSION 2 /* first byte of every record's AAD */
#define SEAL_ID_LEN 32
#define SEAL_AAD_LEN (1 + 1 + 4 + SEAL_ID_LEN)
#define SEAL_TRAILER_PLAIN_LEN (8 + 4 + 4 + 1)
#define SEAL_TRAILER_LEN (SEAL_TRAILER_PLAIN_LEN + CRYPT_OVERHEAD)
#define SEAL_MAX_PAYLOAD (64u << 20)	/* as format 1's PACK_MAX_RECORD */
#define SEAL_MAX_TABLE_BODY (64u << 20) /* decompressed table bytes */
#define SEAL_MAX_NAME 64		/* bytes of a pack name */

/* The stored size of a record of payload_len bytes with dict_id: what
 * seal_record appends.  0 when payload_len exceeds SEAL_MAX_PAYLOAD. */
size_t seal_record_len(uint32_t dict_id, size_t payload_len);

/* Seal payload (already compressed as comp says) as record id of type
 * and epoch; append the sealed bytes to out.  -EINVAL for a payload over
 * SEAL_MAX_PAYLOAD, -ENOMEM. */
int seal_record(const struct crypt_key *k, uint8_t type, uint32_t epoch,
		const uint8_t id[SEAL_ID_LEN], uint8_t comp, uint32_t dict_id,
		const void *payload, size_t len, struct mv_buf *out,
		struct mv_err *err);

/* Open a sealed record of len bytes claimed to be id of type and epoch.
 * On success payload holds the payload (its previous contents replaced)
 * and *comp, *dict_id are set; on failure payload is empty.  -EBADMSG
 * when the tag fails or the plaintext is malformed, -ENOMEM. */
int seal_record_open(const struct crypt_key *k, uint8_t type, uint32_t epoch,
		     const uint8_t id[SEAL_ID_LEN], const void *sealed,
		     size_t len, uint8_t *comp, uint32_t *dict_id,
		     struct mv_buf *payload, struct mv_err *err);

/* One line of a pack table: where a record is and what it claims. */
struct seal_entry {
	uint8_t id[SEAL_ID_LEN]; /* object id, as in the record's AAD */
	uint8_t type;		 /* enum rec_type */
	uint8_t epoch;		 /* key epoch */
	uint64_t offset;	 /* of the sealed record in the pack */
	uint32_t stored;	 /* sealed bytes */
	uint32_t raw;		 /* bytes after decompression */
};

struct seal_table {
	uint8_t kind;	      /* enum pack_kind */
	size_t n;	      /* entries */
	struct seal_entry *e; /* n entries, offsets increasing */
};

/* Seal a pack table of n entries (offsets strictly increasing, records
 * not overlapping) for pack `name`; append to out.  -EINVAL for entries
 * out of order, a name longer than SEAL_MAX_NAME, -ENOMEM, -EIO (zstd). */
int seal_table(const struct crypt_key *k, const char *name, uint8_t kind,
	       const struct seal_entry *e, size_t n, struct mv_buf *out,
	       struct mv_err *err);

/* Open the sealed table of pack `name` into out (release with
 * seal_table_release; untouched on failure).  -EBADMSG, -ENOMEM. */
int seal_table_open(const struct crypt_key *k, const char *name,
		    const void *sealed, size_t len, struct seal_table *out,
		    struct mv_err *err);
void seal_table_release(struct seal_table *t);

struct seal_trailer {
	uint64_t table_offset; /* where the sealed table starts */
	uint32_t table_len;    /* its sealed bytes */
	uint32_t records;      /* entries in the table */
	uint8_t kind;	       /* enum pack_kind */
};

/* Seal the trailer of pack `name` into out (SEAL_TRAILER_LEN bytes).
 * -EINVAL for a name longer than SEAL_MAX_NAME. */
int seal_trailer(const struct crypt_key *k, const char *name,
		 const struct seal_trailer *t, uint8_t out[SEAL_TRAILER_LEN],
		 struct mv_err *err);

/* Open the last SEAL_TRAILER_LEN bytes of pack `name`.  -EBADMSG. */
int seal_trailer_open(const struct crypt_key *k, const char *name,
		      const uint8_t in[SEAL_TRAILER_LEN],
		      struct seal_trailer *out, struct mv_err *err);

/* Check that a pack's opened trailer and table agree with each other and
 * with the pack's size: the table ends where the trailer begins, the
 * trailer ends the pack, the record count and kind match, and every
 * record lies before the table.  -EBADMSG naming the pack otherwise (a
 * pack cut short or grown, a table of another pack of the same name). */
int seal_pack_check(const char *name, uint64_t pack_size,
		    const struct seal_trailer *tr, const struct seal_table *t,
		    struct mv_err *err);

#endif
