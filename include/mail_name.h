/*
 * mail_name: file names of the mail view.
 *
 *   <YYYY-MM-DD HHMM> <From> - <Subject> [<id>].eml
 *
 * The time is the message's Date in UTC (the same name on every machine
 * whatever its time zone).  <id> is the first MAIL_NAME_ID_BYTES bytes of
 * the message's content id in hex, so one message has the same name in
 * every snapshot and in every folder.  From and Subject are sanitized (no
 * '/', no NUL or control characters, blanks collapsed, trimmed) and cut on
 * a UTF-8 character boundary so the name fits NAME_MAX (255 bytes).
 */
#ifndef MV_MAIL_NAME_H
#define MV_MAIL_NAME_H

#include <stddef.h>
#include <stdint.h>

#include "mv_err.h"

#define MAIL_NAME_MAX 255
#define MAIL_NAME_ID_BYTES 4
#define MAIL_NAME_FROM_MAX 64 /* bytes of From kept at most */

/* Sanitize s (any bytes; invalid UTF-8 is replaced) into out as one path
 * component of at most max bytes (max < out_size): '/' and '\\' become
 * '_', control characters (C0, DEL, C1) become blanks, blanks collapse,
 * leading dots and blanks and trailing blanks are dropped, the cut falls
 * on a character boundary.  An empty result becomes "_".  Returns the
 * length written. */
size_t mail_name_sanitize(const char *s, char *out, size_t out_size,
			  size_t max);

/* The view name of a message into out (at least MAIL_NAME_MAX + 1 bytes).
 * from/subject may be NULL ("(no sender)", "(no subject)").  cid must
 * hold at least MAIL_NAME_ID_BYTES bytes.  Returns 0 or -EINVAL. */
int mail_name_format(int64_t date, const char *from, const char *subject,
		     const void *cid, size_t cid_len, char *out,
		     size_t out_size);

/* The n-th (n >= 2) variant of a name that collides inside a folder:
 * "... [id].eml" becomes "... [id-n].eml", still within MAIL_NAME_MAX.
 * Callers number duplicates in a stable order (e.g. by maildir base name
 * or Stalwart email id) so names stay stable.  Returns 0 or -EINVAL. */
int mail_name_variant(const char *name, unsigned n, char *out, size_t out_size);

/* A folder's set of names, handing out unique ones. */
struct mail_name_set;

int mail_name_set_new(struct mail_name_set **out, struct mv_err *err);
void mail_name_set_free(struct mail_name_set *set);
/* Put name in the set, or its first free variant; the chosen name is
 * written to out (MAIL_NAME_MAX + 1 bytes).  Returns 0, -ENOMEM. */
int mail_name_set_add(struct mail_name_set *set, const char *name, char *out,
		      size_t out_size, struct mv_err *err);

#endif
