/*
 * mail_stalwart: Stalwart's two backup shapes.
 *
 * 1. Account exports (stalwart-cli export account, v0.3-v0.15):
 *    <account>/mailboxes.json, emails.json, blobs/<blobId>.  Parsed with
 *    jansson.  The mailbox tree is rebuilt by parentId into full paths
 *    ("Archive/2024"); an email may sit in several mailboxes.  A JSON file
 *    cut short is read up to its last complete element and reported.
 * 2. Server dumps (stalwart --export DIR, v0.15+): one LZ4-frame file per
 *    subspace, "subspace_<c>", holding 0x7B, the letter, a u32 LE schema
 *    version, then LEB128 key length, key, LEB128 value length, value.
 *    In subspace_t the key is the BLAKE3 hash and the value a raw message.
 *    Streamed: a dump of many GiB is never held in memory.
 */
#ifndef MV_MAIL_STALWART_H
#define MV_MAIL_STALWART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mv_err.h"
#include "util.h"

#define MAIL_STALWART_MAX_JSON ((size_t)1 << 30)
#define MAIL_STALWART_MAX_VALUE ((size_t)256 << 20)

/* Problems found in an export (several may be set). */
enum mail_stalwart_problems {
	MAIL_STALWART_MAILBOXES_CUT = (1 << 0), /* mailboxes.json truncated */
	MAIL_STALWART_EMAILS_CUT = (1 << 1),	/* emails.json truncated */
	MAIL_STALWART_BAD_JSON = (1 << 2),	/* a file unreadable as JSON */
	MAIL_STALWART_MISSING_BLOB = (1 << 3),	/* blobs/<id> absent */
	MAIL_STALWART_BAD_PARENT = (1 << 4),	/* unknown parent or a cycle */
	MAIL_STALWART_BAD_ENTRY = (1 << 5),	/* element without id/blobId */
	MAIL_STALWART_NO_MAILBOXES = (1 << 6),	/* mailboxes.json absent */
};

struct mail_stalwart_mailbox {
	char *id;	 /* JMAP id, e.g. "a" */
	char *name;	 /* as exported */
	char *parent_id; /* or NULL */
	char *role;	 /* "inbox", "sent"..., or NULL */
	char *path;	 /* full path by parentId, '/' inside names as '_' */
	bool shared;	 /* a non-empty acl (<= v0.13.3) or shareWith */
};

struct mail_stalwart_email {
	char *id;	    /* JMAP id */
	char *blob_id;	    /* file name under blobs/ */
	char **mailbox_ids; /* ids of the mailboxes holding it */
	size_t n_mailbox_ids;
	char **keywords; /* "$seen", "$flagged", custom... */
	size_t n_keywords;
	int64_t received_at; /* seconds UTC, -1 when absent or bad */
	char *message_id;    /* first messageId, or NULL */
	bool blob_missing;   /* set by mail_stalwart_export_check_blobs() */
};

struct mail_stalwart_export {
	struct mail_stalwart_mailbox *mailboxes;
	size_t n_mailboxes;
	struct mail_stalwart_email *emails;
	size_t n_emails;
	size_t n_missing_blobs;
	unsigned problems; /* enum mail_stalwart_problems */
};

/* Parse the two JSON files given as bytes (mailboxes may be NULL when the
 * file is absent).  Never fails on bad JSON: what can be read is returned
 * and problems are flagged.  Returns 0 or -ENOMEM. */
int mail_stalwart_export_parse(const char *mailboxes, size_t mailboxes_len,
			       const char *emails, size_t emails_len,
			       struct mail_stalwart_export *out,
			       struct mv_err *err);

/* Read dir/mailboxes.json and dir/emails.json and check the blobs.
 * Returns 0, -ENOENT when dir has no emails.json, -ENOMEM, -EIO. */
int mail_stalwart_export_load(const char *dir, struct mail_stalwart_export *out,
			      struct mv_err *err);

/* Mark emails whose dir/blobs/<blobId> is missing. */
void mail_stalwart_export_check_blobs(struct mail_stalwart_export *exp,
				      const char *dir);

/* The mailbox with this id, or NULL. */
const struct mail_stalwart_mailbox *
mail_stalwart_mailbox_find(const struct mail_stalwart_export *exp,
			   const char *id);

void mail_stalwart_export_release(struct mail_stalwart_export *exp);

/* True when the file names of a directory look like an account export
 * (emails.json plus mailboxes.json or blobs). */
bool mail_stalwart_is_export(const char *const *names, size_t n);

/* ---- server dumps ---- */

struct mail_stalwart_dump_info {
	char subspace;	       /* letter from the header ('t' for blobs) */
	uint32_t version;      /* schema version (5: v0.15, 6: v0.16) */
	uint64_t records;      /* records seen */
	uint64_t value_offset; /* during a callback: offset of the value in
				  the decompressed stream */
};

/* Source of compressed bytes: fill buf with up to n bytes, set *got (0 at
 * the end); return 0 or -errno. */
typedef int (*mail_stalwart_read_fn)(void *ctx, void *buf, size_t n,
				     size_t *got);
/* Called for each record; key and value are borrowed for the call.
 * Return 0 to go on, > 0 to stop early (returned as is), < 0 on error. */
typedef int (*mail_stalwart_record_fn)(void *ctx, const uint8_t *key,
				       size_t key_len, const uint8_t *value,
				       size_t value_len);

/* Stream one subspace_<c> file.  Returns 0 at the clean end, the > 0 value
 * a callback stopped with, -EBADMSG for a bad header, a corrupt LZ4 frame
 * or a record cut short (info tells how far it got), -EMSGSIZE for a value
 * larger than MAIL_STALWART_MAX_VALUE, or the errors of rd/cb. */
int mail_stalwart_dump_scan(mail_stalwart_read_fn rd, void *rd_ctx,
			    mail_stalwart_record_fn cb, void *cb_ctx,
			    struct mail_stalwart_dump_info *info,
			    struct mv_err *err);

/* The same scan fed in pieces (the bytes of a file as a backup reads
 * them): feed() decodes and calls cb for every record complete so far;
 * end() says whether the stream ended cleanly (0) or was cut (-EBADMSG).
 * Errors are sticky: after one, feed() and end() return it again.
 * Memory: the LZ4 window plus the record being assembled (at most
 * MAIL_STALWART_MAX_VALUE). */
struct mail_stalwart_dump_scanner;
int mail_stalwart_dump_scanner_new(mail_stalwart_record_fn cb, void *cb_ctx,
				   struct mail_stalwart_dump_scanner **out,
				   struct mv_err *err);
int mail_stalwart_dump_scanner_feed(struct mail_stalwart_dump_scanner *s,
				    const void *data, size_t len,
				    struct mv_err *err);
int mail_stalwart_dump_scanner_end(struct mail_stalwart_dump_scanner *s,
				   struct mv_err *err);
/* Progress so far (value_offset: of the record being handed to cb). */
const struct mail_stalwart_dump_info *
mail_stalwart_dump_scanner_info(const struct mail_stalwart_dump_scanner *s);
void mail_stalwart_dump_scanner_free(struct mail_stalwart_dump_scanner *s);

/* Copy len bytes at offset off of the decompressed stream of one
 * subspace_<c> file (read through rd) into out (appended); stops reading
 * once it has them.  -EBADMSG for a corrupt frame or a stream ending
 * before off + len. */
int mail_stalwart_dump_extract(mail_stalwart_read_fn rd, void *rd_ctx,
			       uint64_t off, uint64_t len, struct mv_buf *out,
			       struct mv_err *err);
/* Append the first max bytes of the decompressed stream (all of it when
 * shorter) to out; max is at most MAIL_STALWART_MAX_VALUE (else
 * -EMSGSIZE).  -EBADMSG for a corrupt or cut frame. */
int mail_stalwart_dump_decode_prefix(mail_stalwart_read_fn rd, void *rd_ctx,
				     uint64_t max, struct mv_buf *out,
				     struct mv_err *err);

/* mail_stalwart_dump_scan() over a file descriptor. */
int mail_stalwart_dump_scan_fd(int fd, mail_stalwart_record_fn cb, void *cb_ctx,
			       struct mail_stalwart_dump_info *info,
			       struct mv_err *err);

#endif
