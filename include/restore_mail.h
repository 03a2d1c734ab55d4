/*
 * restore_mail: the messages of a mail view path of a snapshot, with
 * what an IMAP APPEND needs to put each one back as it was
 * (docs/RESTORE-MAIL.md).
 *
 * The view (mail/<account>/<Mailbox/Path>/<name>.eml) has neither flags
 * nor the delivery time: an entry's mtime is the Date header.  Both are in
 * the raw file the entry was made from, which shares its chunks: for each
 * message the raw files of the same account with the same content id
 * (mail_view_content_id) are looked up, the one in the same mailbox
 * preferred, and its maildir name gives the flags (S R F D T, P as the
 * $Forwarded keyword, keyword letters through the folder's
 * dovecot-keywords) and its mtime the internal date (Dovecot's maildir
 * received time; for a Stalwart export the maildir/ tree's file, whose
 * mtime is receivedAt).  A message without a raw file keeps the entry's
 * mtime and no flags (counted as `unmatched`).
 *
 * Paths accepted: mail/<account> (every folder, the tree kept),
 * mail/<account>/<folder...> (that folder and its subfolders), or one
 * .eml.  Undecodable ".raw" entries of the view are not messages and are
 * left out (counted).
 */
#ifndef MV_RESTORE_MAIL_H
#define MV_RESTORE_MAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mv_err.h"
#include "repo.h"
#include "snapshot.h"
#include "tree.h"
#include "util.h"

struct restore_mail_msg {
	char *path;	     /* snapshot path of the .eml */
	char *folder;	     /* target folder below the given one, '/'
				separated; "" = the given folder */
	char *mailbox;	     /* its folder in the view ("Archive/2024") */
	struct tree_entry e; /* the view entry (a copy) */
	unsigned flags;	     /* enum imap_flags (IMAP_DELETED for T) */
	char **keywords;     /* keyword names ($Forwarded, custom) */
	size_t n_keywords;
	int64_t internal_date; /* seconds */
	bool matched;	       /* flags and date from the raw file */
};

struct restore_mail_set {
	struct restore_mail_msg *m; /* sorted by folder, then path */
	size_t n;
	size_t unmatched;   /* messages with no raw file found */
	size_t skipped_raw; /* undecodable ".raw" entries left out */
	char *account;	    /* the view account */
};

/* Collect the messages below path (the snapshot path of e, as
 * cli_open_entry resolved it).  -EINVAL when path is not in the mail
 * view. */
int restore_mail_collect(struct repo *r, const struct snapshot *snap,
			 const char *path, const struct tree_entry *e,
			 struct restore_mail_set *out, struct mv_err *err);
void restore_mail_set_release(struct restore_mail_set *s);

/* The message's bytes for APPEND, appended to out: decoded as the view
 * shows it, bare LF line ends made CRLF (IMAP's line end; servers that
 * store LF, as Dovecot does, store the original bytes again). */
int restore_mail_read(struct repo *r, const struct restore_mail_msg *m,
		      struct mv_buf *out, struct mv_err *err);

#endif
