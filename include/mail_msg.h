/*
 * mail_msg: what the catalogue and the mail view need to know about one
 * RFC 5322 message, parsed with GMime 3.
 *
 * Parsing never fails on malformed input: whatever could be read is
 * returned and the problems are reported as MAIL_MSG_* flags.  Header
 * values come back as valid UTF-8: RFC 2047 words in any charset are
 * decoded, raw 8-bit header bytes are read as UTF-8 when valid and as
 * ISO-8859-1 (Windows-1252) otherwise.  Input is bounded: at most
 * MAIL_MSG_MAX_HEADER bytes of header are parsed, the MIME tree is walked
 * only up to MAIL_MSG_MAX_PARTS parts, extracted body text is cut at
 * MAIL_MSG_MAX_BODY bytes.
 *
 * Safe to call from several threads at once; GMime is initialised once.
 */
#ifndef MV_MAIL_MSG_H
#define MV_MAIL_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "mv_err.h"

#define MAIL_MSG_MAX_HEADER ((size_t)256 << 10)
#define MAIL_MSG_MAX_PARTS 512
#define MAIL_MSG_MAX_NESTING 64
#define MAIL_MSG_MAX_BODY ((size_t)1 << 20)
#define MAIL_MSG_MAX_ATTACHMENTS 256

/* Options for mail_msg_parse(). */
enum mail_msg_opts {
	MAIL_MSG_WANT_BODY = (1 << 0), /* extract body text (--index-body) */
	MAIL_MSG_NO_PARTS = (1 << 1),  /* headers only: skip the MIME walk */
};

/* Problems found; several may be set. */
enum mail_msg_flags {
	MAIL_MSG_NO_DATE = (1 << 0),	   /* no Date header: fallback used */
	MAIL_MSG_BAD_DATE = (1 << 1),	   /* unparsable Date: fallback used */
	MAIL_MSG_NO_FROM = (1 << 2),	   /* no usable From */
	MAIL_MSG_NO_SUBJECT = (1 << 3),	   /* no Subject header */
	MAIL_MSG_NO_MESSAGE_ID = (1 << 4), /* no Message-ID header */
	MAIL_MSG_HEADER_CUT = (1 << 5),	   /* header > MAIL_MSG_MAX_HEADER */
	MAIL_MSG_8BIT_HEADER = (1 << 6),   /* raw 8-bit bytes in the header */
	MAIL_MSG_NO_BODY = (1 << 7),	   /* no blank line ending the header */
	MAIL_MSG_NOT_MIME = (1 << 8),	   /* GMime could not parse it at all */
	MAIL_MSG_TOO_COMPLEX = (1 << 9),   /* MIME walk stopped at a limit */
	MAIL_MSG_BODY_CUT = (1 << 10),	   /* body text cut at the limit */
	MAIL_MSG_EMPTY = (1 << 11),	   /* zero bytes */
	MAIL_MSG_LEADING_JUNK = (1 << 12), /* lines before the first field
					      skipped (mbox "From ") */
};

struct mail_msg {
	char *message_id;   /* without angle brackets, or NULL */
	int64_t date;	    /* seconds since the epoch, UTC */
	char *from;	    /* display name, else address, or NULL */
	char *from_addr;    /* first From address, or NULL */
	char *to;	    /* decoded To list ("A <a@x>, b@y"), or NULL */
	char *cc;	    /* decoded Cc list, or NULL */
	char *subject;	    /* decoded Subject, or NULL */
	char **attachments; /* file names of parts that carry one */
	size_t n_attachments;
	char *body;	/* UTF-8 text (MAIL_MSG_WANT_BODY), or NULL */
	uint64_t size;	/* message bytes */
	unsigned flags; /* enum mail_msg_flags */
};

/* Parse n bytes of message.  fallback_date (seconds, UTC) is used when the
 * Date header is missing or unparsable: pass the maildir delivery time or
 * Stalwart's receivedAt.  opts is enum mail_msg_opts.  Fills *out (which
 * the caller releases with mail_msg_release()); returns 0, or -ENOMEM. */
int mail_msg_parse(const void *p, size_t n, int64_t fallback_date,
		   unsigned opts, struct mail_msg *out, struct mv_err *err);

/* Free the strings of m and zero it (NULL or a zeroed struct is fine). */
void mail_msg_release(struct mail_msg *m);

/* A header value as UTF-8 from raw header bytes: RFC 2047 decoded, 8-bit
 * read as UTF-8 or ISO-8859-1, folding removed.  Returns a malloc'd string
 * or NULL on out of memory. */
char *mail_msg_decode_header(const char *raw);

#endif
