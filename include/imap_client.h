/*
 * imap_client: what restore-mail needs of an IMAP server, on libetpan
 * (Debian libetpan-dev): connect over implicit TLS (imaps://), STARTTLS
 * or - only when asked - plain text, verify the server's certificate
 * with OpenSSL against the system store (or a given CA file) and its host
 * name, log in (also as a master user), list, create and select folders,
 * read the Message-ID and size of every message of a folder, and APPEND a
 * message with its flags, keywords and internal date.
 *
 * libetpan does the protocol: commands, literals, response parsing.  This
 * module never parses IMAP itself.  One connection per struct imap; not
 * thread-safe.  Every failing call records the server's response text (or
 * the connection's error) in err and returns a negative errno:
 *   -ECONNREFUSED, -EHOSTUNREACH  no connection (the message says which)
 *   -EKEYREJECTED                 the certificate is not trusted
 *   -EACCES                       login refused
 *   -EPROTO                       the server said NO or BAD, or a TLS or
 *                                 protocol error
 *   -ENOTSUP                      STARTTLS needed but not offered
 */
#ifndef MV_IMAP_CLIENT_H
#define MV_IMAP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mv_err.h"

/* imap://USER@HOST[:PORT]/FOLDER or imaps://...: user and folder
 * percent-decoded ("%40" for an '@' in the user is optional: the last '@'
 * before the host ends the user); folder "" when absent. */
struct imap_url {
	char *user;	   /* login name */
	char *host;	   /* name or address; [v6] without brackets */
	uint16_t port;	   /* 143 or 993 when not given */
	char *folder;	   /* target folder, '/'-separated, UTF-8 */
	bool implicit_tls; /* imaps:// */
};

int imap_url_parse(const char *s, struct imap_url *out, struct mv_err *err);
void imap_url_release(struct imap_url *u);

struct imap_opts {
	const struct imap_url *url; /* borrowed */
	const char *password;	    /* borrowed */
	const char *auth_user;	    /* master user, or NULL */
	const char *auth_sep;	    /* between user and master; "*" */
	const char *ca_file;	    /* extra trusted CAs (PEM), or NULL */
	bool insecure;		    /* no certificate check; plain text
				       when STARTTLS is not offered */
	int timeout;		    /* seconds; 0 = 60 */
};

struct imap;

/* Connect and log in.  *out is written on success only. */
int imap_open(const struct imap_opts *o, struct imap **out, struct mv_err *err);
/* Log out and close; NULL ok. */
void imap_close(struct imap *c);

/* The hierarchy delimiter of the server's personal namespace ('/' or
 * '.'); '/' when the server names none. */
char imap_delimiter(const struct imap *c);

/* A folder path ('/'-separated UTF-8 components) as the server names it:
 * components joined with the delimiter and encoded in modified UTF-7
 * (RFC 3501 5.1.3).  A component holding the delimiter gets it replaced
 * by '_'.  Returns a new string or NULL (out of memory). */
char *imap_folder_name(const struct imap *c, const char *path);
/* The same for a given delimiter (no connection needed). */
char *imap_folder_name_with(const char *path, char delim);

/* Create the folder (server name) unless it exists, with its parents.
 * Returns 0 or an error. */
int imap_folder_ensure(struct imap *c, const char *name, struct mv_err *err);

/* What a folder holds, for skipping messages already there. */
struct imap_have {
	char *msgid;   /* Message-ID without angle brackets, or NULL */
	uint64_t size; /* RFC822.SIZE */
	uint32_t uid;
};

/* Select the folder and read the Message-ID and size of each message:
 * *out (free with imap_have_free) and *out_n.  A folder that does not
 * exist is -ENOENT. */
int imap_folder_scan(struct imap *c, const char *name, struct imap_have **out,
		     size_t *out_n, struct mv_err *err);
void imap_have_free(struct imap_have *h, size_t n);

/* The message with that UID of the selected folder into *out (malloc'ed)
 * and *out_len. */
int imap_fetch_uid(struct imap *c, uint32_t uid, char **out, size_t *out_len,
		   struct mv_err *err);

enum imap_flags {
	IMAP_SEEN = (1 << 0),
	IMAP_ANSWERED = (1 << 1),
	IMAP_FLAGGED = (1 << 2),
	IMAP_DRAFT = (1 << 3),
	IMAP_DELETED = (1 << 4),
};

/* One message to append. */
struct imap_msg {
	const char *data; /* bytes, CRLF line ends */
	size_t len;
	unsigned flags;		     /* enum imap_flags */
	const char *const *keywords; /* n_keywords atoms ("$Forwarded") */
	size_t n_keywords;
	int64_t internal_date; /* seconds since the epoch; < 0 = none */
};

/* APPEND m to folder name.  A NO names the server's reason in err. */
int imap_append(struct imap *c, const char *name, const struct imap_msg *m,
		struct mv_err *err);

/* APPEND the n messages m to folder name, as few round trips as the
 * server allows: when it offers MULTIAPPEND (RFC 3502) and LITERAL+
 * (RFC 7888), one command for all of them (all or nothing on the server's
 * side); when that is refused, or not offered, one APPEND each, so that a
 * bad message fails alone.  rcs[i] and errs[i] (n each) receive each
 * message's result.  Returns the number of messages that failed. */
size_t imap_append_many(struct imap *c, const char *name,
			const struct imap_msg *m, size_t n, int *rcs,
			struct mv_err *errs);

/* Whether one imap_append_many() can append several messages in one
 * command (MULTIAPPEND and LITERAL+ offered). */
bool imap_can_multiappend(const struct imap *c);

/* True when the connection broke (no further command can work). */
bool imap_is_broken(const struct imap *c);

/* Whether the server offered an extension (capability name). */
bool imap_has_capability(struct imap *c, const char *name);

#endif
