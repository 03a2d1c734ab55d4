/*
 * maildir: Dovecot/mailcow maildir names and layouts.
 *
 * Message file names: <secs>.M<usecs>P<pid>.<host>[,S=<size>][,W=<vsize>]
 * [:2,<flags>], flags D F P R S T and keyword letters a-z (their names in
 * the folder's dovecot-keywords file).  The base (everything before ':')
 * stays the same when flags change, so it matches a message across
 * snapshots; a move between folders is found by content id instead.
 *
 * Layouts recognised by maildir_locate() for a path in a backup:
 *   <domain>/<user>/Maildir/{cur,new}/...        (mailcow since 2019)
 *   <domain>/<user>/{cur,new}/...                (mailcow before 2019)
 *   <root>/.<Folder>[.<Sub>]/{cur,new}/...       (Maildir++, default)
 *   <.../Maildir>/<Folder>/<Sub>/{cur,new}/...   (LAYOUT=fs)
 * Maildir++ names are split on '.', Dovecot's listescape "\2e" sequences
 * are unescaped, and modified UTF-7 ("&APw-") is decoded to UTF-8.
 */
#ifndef MV_MAILDIR_H
#define MV_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mv_err.h"

enum maildir_flags {
	MAILDIR_DRAFT = (1 << 0),   /* D */
	MAILDIR_FLAGGED = (1 << 1), /* F */
	MAILDIR_PASSED = (1 << 2),  /* P (forwarded) */
	MAILDIR_REPLIED = (1 << 3), /* R */
	MAILDIR_SEEN = (1 << 4),    /* S */
	MAILDIR_TRASHED = (1 << 5), /* T */
};

struct maildir_file {
	const char *base; /* points into the name: the part before ':' */
	size_t base_len;
	int64_t time;	   /* leading seconds, -1 when not numeric */
	uint64_t size;	   /* S=, the message size (decoded), or 0 */
	uint64_t vsize;	   /* W=, size with CRLF line ends, or 0 */
	bool has_size;	   /* S= present */
	bool has_vsize;	   /* W= present */
	bool has_info;	   /* ":2," present */
	unsigned flags;	   /* enum maildir_flags */
	uint32_t keywords; /* bit i = keyword letter 'a' + i */
};

/* Parse a message file name (the last path component).  Never fails on
 * odd names: unknown parts are ignored.  Returns 0, or -EINVAL for an
 * empty name or one starting with '.' (not a message). */
int maildir_parse_name(const char *name, struct maildir_file *out);

/* Write the info suffix for flags/keywords (":2," + letters in ASCII
 * order, as Dovecot does) into out (at least 40 bytes). */
void maildir_info(unsigned flags, uint32_t keywords, char *out, size_t n);

/* Flag letters from JMAP/IMAP keywords ("$seen"/"\\Seen" -> S, "$flagged"
 * F, "$answered" R, "$draft" D, "$deleted" T, "$forwarded" P).  Others
 * are ignored.  Case-insensitive. */
unsigned maildir_flags_from_keyword(const char *kw);

/* The keyword names of one folder (dovecot-keywords: "<idx> <name>"). */
struct maildir_keywords {
	char *names[26]; /* names[i] for letter 'a' + i, or NULL */
};

/* Parse the contents of a dovecot-keywords file; bad lines are skipped.
 * Returns 0 or -ENOMEM. */
int maildir_keywords_parse(const char *data, size_t n,
			   struct maildir_keywords *out, struct mv_err *err);
void maildir_keywords_release(struct maildir_keywords *kw);

/* Where a message file sits. */
struct maildir_loc {
	char account[256];  /* "user@domain", or the user directory name */
	char mailbox[1024]; /* "INBOX", "Sent", "Archive/2024" (UTF-8) */
	size_t root_len;    /* bytes of path that are the maildir root */
	size_t folder_len;  /* bytes of path that are the folder directory */
	const char *name;   /* the file name inside path */
	bool in_new;	    /* under new/ rather than cur/ */
};

/* Recognise a message file path (relative or absolute, '/'-separated):
 * returns 0 and fills *out when path is <folder>/{cur,new}/<file>,
 * -ENOENT when it is not a maildir message (tmp/, control files, other
 * trees).  Stateless: the same path always gives the same answer. */
int maildir_locate(const char *path, struct maildir_loc *out);

/* Decode one Maildir++ folder directory name (".Archive.2024" or
 * "Archive.2024") into a mailbox path ("Archive/2024") in out.  Returns
 * 0, or -ENAMETOOLONG. */
int maildir_folder_decode(const char *dirname, size_t len, char *out, size_t n);

/* The Maildir++ directory name of a mailbox path ("Archive/2024" ->
 * ".Archive.2024", "Gelöschte" -> ".Gel&APY-schte"; '.' and '\' inside a
 * name escaped as \2e and \5c; "" -> "" for INBOX), the inverse of
 * maildir_folder_decode().  Returns 0, -EINVAL (invalid UTF-8) or
 * -ENAMETOOLONG. */
int maildir_folder_encode(const char *path, char *out, size_t n);

/* Decode one modified UTF-7 (RFC 3501) mailbox name segment into UTF-8.
 * Invalid input is copied as is.  Returns 0 or -ENAMETOOLONG. */
int maildir_mutf7_decode(const char *s, size_t len, char *out, size_t n);

#endif
