/*
 * pack: append-only files of self-describing records.
 *
 *   pack   := header record* footer
 *   header := "MVPACK\0\1" le32 version le32 kind              (16 bytes)
 *   record := rec_hdr payload                          (64 + stored bytes)
 *   rec_hdr:= "MVR1" u8 type u8 comp le16 flags le32 raw_size
 *              le32 stored_size id[32] le64 xxh64(payload) le32 dict_id
 *              le32 xxh32-of-first-60-bytes(as low 32 bits of XXH64)
 *   footer := "MVPEND\0\1" le32 records le32 0 le64 footer_offset
 *              le64 xxh64(all bytes before the footer)         (32 bytes)
 *
 * A pack without a valid footer was never sealed: its records are not
 * trusted (rebuild-index reports it).  See man/mailvault-format.5.
 *
 * Format 2 (docs/FORMAT-2.md section 5.2, framing in seal.h): no clear
 * header, no magic; sealed records, then the sealed table listing them,
 * then the fixed SEAL_TRAILER_LEN trailer that says where the table is.
 * A repository's packs are all of one format (config "packs").  The
 * writer takes records already sealed (pack_writer_append_sealed): the
 * caller picks the key by record type; table and trailer are sealed with
 * the metadata key given to pack_writer_open2, the pack name in the AAD.
 */
#ifndef MV_PACK_H
#define MV_PACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mv_err.h"
#include "repo.h"
#include "seal.h"

#define PACK_HDR_LEN 16
#define PACK_REC_HDR_LEN 64
#define PACK_FOOTER_LEN 32
#define PACK_MAX_RECORD (64u << 20) /* largest payload accepted */
#define PACK_NAME_LEN 32	    /* hex digits in a pack name */

enum pack_kind {
	PACK_KIND_DATA = 1, /* file content */
	PACK_KIND_META = 2, /* trees, snapshots, dictionaries */
};

enum pack_comp {
	PACK_COMP_NONE = 0,	 /* stored raw */
	PACK_COMP_ZSTD = 1,	 /* one zstd frame */
	PACK_COMP_ZSTD_DICT = 2, /* zstd frame using dictionary dict_id */
};

enum pack_rec_flags {
	PACK_REC_ENCRYPTED = (1 << 0), /* reserved for encryption at rest */
};

struct pack_rec {
	uint8_t type;	       /* enum rec_type */
	uint8_t comp;	       /* enum pack_comp */
	uint16_t flags;	       /* enum pack_rec_flags */
	uint32_t raw_size;     /* bytes after decompression */
	uint32_t stored_size;  /* payload bytes */
	uint8_t id[MV_ID_LEN]; /* keyed id of the raw bytes */
	uint64_t checksum;     /* XXH64 of the payload */
	uint32_t dict_id;      /* dictionary for PACK_COMP_ZSTD_DICT */
};

void pack_rec_encode(const struct pack_rec *rec, uint8_t out[PACK_REC_HDR_LEN]);
/* -EBADMSG when the magic or the header checksum is wrong. */
int pack_rec_decode(const uint8_t in[PACK_REC_HDR_LEN], struct pack_rec *out);

/* Relative path of a pack: "packs/ab/ab....". */
void pack_path(const char *name, char *out, size_t n);

struct backend;
struct backend_file;
struct pack_writer;

/* Start a new pack with a random name under packs/. */
int pack_writer_open(struct backend *be, enum pack_kind kind,
		     struct pack_writer **out, struct mv_err *err);
/* Append one record; *out_offset is where its header starts. */
int pack_writer_append(struct pack_writer *pw, const struct pack_rec *rec,
		       const void *payload, uint64_t *out_offset,
		       struct mv_err *err);
/* Bytes written so far (header included). */
uint64_t pack_writer_size(const struct pack_writer *pw);
uint32_t pack_writer_records(const struct pack_writer *pw);
const char *pack_writer_name(const struct pack_writer *pw);
/* Write the footer, sync, rename into place.  Frees the writer. */
int pack_writer_seal(struct pack_writer *pw, struct mv_err *err);
/* pack_writer_seal that also tells the pack's final size (a format 2
 * pack's table is only sized when it is sealed). */
int pack_writer_seal_size(struct pack_writer *pw, uint64_t *out_size,
			  struct mv_err *err);
/* pack_writer_seal_size without the commit: the pack's bytes are
 * complete and *out_file is left to commit (backend_file_commit_pair:
 * a pack made durable before another).  Frees the writer; on failure
 * the file is dropped too. */
int pack_writer_close(struct pack_writer *pw, uint64_t *out_size,
		      struct backend_file **out_file, struct mv_err *err);
/* Drop an unsealed pack.  Frees the writer. */
void pack_writer_abort(struct pack_writer *pw);

/* Walk the records of a pack.  fn gets each header, its offset, and the
 * payload (only when want_payload).  A pack that is truncated or was never
 * sealed gives -EBADMSG after the records that are intact; *out_sealed
 * tells whether a valid footer was found. */
typedef int (*pack_scan_fn)(const struct pack_rec *rec, uint64_t offset,
			    const void *payload, void *arg);
int pack_scan(struct backend *be, const char *path, bool want_payload,
	      pack_scan_fn fn, void *arg, bool *out_sealed, struct mv_err *err);

/* ---- format 2 ---- */

/* Start a format 2 pack; meta (kept, not owned) seals table and trailer. */
int pack_writer_open2(struct backend *be, enum pack_kind kind,
		      const struct crypt_key *meta, struct pack_writer **out,
		      struct mv_err *err);
/* Append one sealed record (seal_record's output) that claims id, type
 * and epoch and decompresses to raw bytes; *out_offset is its start. */
int pack_writer_append_sealed(struct pack_writer *pw, uint8_t type,
			      uint8_t epoch, const uint8_t id[MV_ID_LEN],
			      const void *sealed, size_t len, uint32_t raw,
			      uint64_t *out_offset, struct mv_err *err);

/* Read and open the trailer and the table of format 2 pack `name` and
 * check them against each other and the pack's size (*out_size set).
 * -EBADMSG naming the pack for anything wrong (a flipped bit, a pack cut
 * short or renamed), -ENOENT when the pack is missing.  Release out with
 * seal_table_release. */
int pack_table_read(struct backend *be, const char *name,
		    const struct crypt_key *meta, struct seal_table *out,
		    uint64_t *out_size, struct mv_err *err);

#endif
