/*
 * mail_view: the mail view of a snapshot, built while it is backed up.
 *
 * Every maildir message met by the backup becomes, besides its raw file,
 * an ordinary tree entry
 *
 *   mail/<account>/<Mailbox/Path>/<YYYY-MM-DD HHMM> <From> - <Subject>
 *        [<id>].eml
 *
 * that references the same chunks as the raw file (no extra storage).
 * mtime is the message's Date; mode, owner and access ACL are the raw
 * file's, a folder's those of the source directory it stands for
 * (docs/MAIL.md), so the view lets read a message who may read the file.
 * A file stored encrypted (mailcow mail_crypt) or compressed (Dovecot zlib
 * plugin) gets xform = TREE_XFORM_MAILCRYPT, size = the decoded size, and
 * an xattr MAIL_VIEW_KEYS_XATTR holding the chunk ids of the PEM key files
 * that decode it (see mail_view_read()).  Files that cannot be decoded (no
 * key, wrong key, corrupt) are shown as raw bytes under
 * "<time> (undecodable) - <reason> <base> [<id>].raw".
 *
 * Other inputs in the same view (docs/MAIL.md):
 *  - Stalwart account exports: mail/<account>/<Mailbox/Path>/ for each
 *    mailbox of each email (mtime = receivedAt), plus a Maildir++ tree
 *    maildir/<account>/ over the same chunks;
 *  - Stalwart server dumps (subspace_t, via mail_view_dump_scan()):
 *    mail/stalwart-dump/, entries with xform = TREE_XFORM_STALWART_DUMP;
 *  - loose .eml files: mail/loose/<directory path>/.
 *
 * Content id of a message (catalogue key, <id> of its name): the chunk id
 * of the raw file when it is one chunk (every file up to the small-file
 * limit), else the keyed id of its chunk id list.  A message file never
 * changes once delivered (flag changes rename it), so this is stable.
 *
 * Use per backup (cmd_backup):
 *   mail_view_new()            before ingest_new(); pass mail_view_hook()
 *   ... sources ...            the hook sees every file
 *   mail_view_finish()         after ingest_finish(), before
 *                              tree_builder_write(): adds the view entries
 *   mail_view_commit()         after repo_writer_commit(): catalogue
 *   mail_view_free()
 *
 * Threading: the hook's analyze() runs in ingest workers; everything else
 * on the producer thread.
 */
#ifndef MV_MAIL_VIEW_H
#define MV_MAIL_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ingest.h"
#include "mv_err.h"
#include "repo.h"
#include "snapshot.h"
#include "tree.h"
#include "util.h"

/* Top-level directory of the view in a snapshot. */
#define MAIL_VIEW_DIR "mail"
/* Top-level directory of the Maildir++ trees built from Stalwart account
 * exports: maildir/<account>/{cur,new,tmp}, .<Folder>.<Sub>/... */
#define MAIL_VIEW_MAILDIR_DIR "maildir"
/* Folder of loose .eml files: mail/loose/<path of their directory>. */
#define MAIL_VIEW_LOOSE "loose"
/* Xattr of TREE_XFORM_MAILCRYPT entries: n x MV_ID_LEN bytes, the chunk
 * ids of PEM private keys.  Internal: readers must not show or restore
 * xattrs whose name starts with MAIL_VIEW_XATTR_PREFIX. */
#define MAIL_VIEW_KEYS_XATTR "mailvault.keys"
#define MAIL_VIEW_XATTR_PREFIX "mailvault."

struct mail_view;

struct mail_view_opts {
	const char *job;      /* snapshot name (catalogue job) */
	const char *keys_dir; /* --mailcow-keys DIR, or NULL */
	bool no_catalog;      /* do not read or write catalog.db */
	bool index_body;      /* catalogue body text */
};

/* What the backup found, for the summary. */
struct mail_view_stats {
	uint64_t messages;	/* maildir message files in the view */
	uint64_t parsed;	/* new messages parsed in this backup */
	uint64_t known;		/* named from the catalogue, not parsed */
	uint64_t decoded;	/* stored encrypted and/or compressed */
	uint64_t no_key;	/* encrypted, no matching key: shown raw */
	uint64_t corrupt;	/* truncated/corrupt encoding: shown raw */
	uint64_t bad_headers;	/* parsed with problems (missing Date...) */
	uint64_t large;		/* over the single-chunk limit: named from
				   the maildir name */
	uint64_t keys;		/* mail_crypt key files found or given */
	uint64_t accounts;	/* distinct accounts */
	uint64_t folders;	/* distinct folders */
	uint64_t exports;	/* Stalwart account exports */
	uint64_t stalwart;	/* their messages (once per mailbox) */
	uint64_t missing_blobs; /* emails whose blobs/<blobId> is absent */
	uint64_t bad_exports;	/* exports with cut or unreadable JSON */
	uint64_t loose;		/* loose .eml files */
	uint64_t dumps;		/* Stalwart server dumps (subspace_t) */
	uint64_t dump_messages; /* their messages */
	uint64_t dump_errors;	/* dumps cut short or corrupt */
	bool catalog;		/* the catalogue was updated */
};

/* Create the view state for one backup of repository r (open for
 * writing).  Opens the catalogue (catalog.db, see mail_view_catalog_path)
 * and loads the known messages, and the keys of keys_dir. */
int mail_view_new(struct repo *r, const struct mail_view_opts *o,
		  struct mail_view **out, struct mv_err *err);
void mail_view_free(struct mail_view *v);

/* The ingest hook (borrowed, valid until mail_view_free). */
const struct ingest_hook *mail_view_hook(struct mail_view *v);

/* True when the hook needs the whole content of the file at path, not
 * only its first chunk (Stalwart export JSON): a source that can read the
 * file cheaply hands it to mail_view_see_whole() before ingesting it. */
bool mail_view_wants_whole(const char *path);

/* The whole content of the file at path (its snapshot path), seen by a
 * source before it is ingested.  Borrowed; copied when needed.  Producer
 * thread.  Returns 0 or -ENOMEM. */
int mail_view_see_whole(struct mail_view *v, const char *path, const void *data,
			size_t len, struct mv_err *err);

/* Folder of the messages of Stalwart server dumps: mail/stalwart-dump/. */
#define MAIL_VIEW_DUMP "stalwart-dump"
/* Xattr of TREE_XFORM_STALWART_DUMP entries: le64 offset and le64 length
 * of the message in the decompressed stream of the chunks. */
#define MAIL_VIEW_RANGE_XATTR "mailvault.range"

/* Scan a Stalwart server dump's blob subspace (a file named subspace_t,
 * read from fd by a source before it is ingested; path is its snapshot
 * path): every record becomes a message of the view, whose entry will
 * reference the chunks of that file (TREE_XFORM_STALWART_DUMP).  A corrupt
 * or cut frame keeps the messages before it and is counted.  Producer
 * thread.  Returns 0, -ENOMEM. */
int mail_view_dump_scan(struct mail_view *v, const char *path, int fd,
			struct mv_err *err);

/* Add the view entries to tb (the backup time gives the directories'
 * mtime).  Key files given with keys_dir are stored through w. */
int mail_view_finish(struct mail_view *v, struct tree_builder *tb,
		     struct repo_writer *w, int64_t time_ns,
		     struct mv_err *err);

/* Record the committed snapshot in the catalogue. */
int mail_view_commit(struct mail_view *v, const struct snapshot *snap,
		     struct mv_err *err);

const struct mail_view_stats *mail_view_get_stats(const struct mail_view *v);

/* A folder path as the view names it: each '/'-separated component
 * through mail_name_sanitize(), "_" for an empty one.  Caller frees. */
char *mail_view_sanitize_path(const char *s);

/* Path of the catalogue of repository r into out: beside its index.db,
 * so <repo>/catalog.db for a local unencrypted repository, and
 * $XDG_CACHE_HOME/mailvault/<repo id>/catalog.db (default ~/.cache) for
 * an sftp:// or an encrypted one, whose index is a cached copy: the
 * repository never holds it.  Returns 0 or -ENAMETOOLONG. */
int mail_view_catalog_path(struct repo *r, char *out, size_t n,
			   struct mv_err *err);

/* Content id of a file entry (see above) into out. */
void mail_view_content_id(struct repo *r, const struct tree_entry *e,
			  uint8_t out[MV_ID_LEN]);

/* Parse the keys a TREE_XFORM_MAILCRYPT entry names into the process's
 * key cache, so that the first mail_view_read() of a message does not pay
 * for it.  Errors are left to mail_view_read(). */
void mail_view_warm_keys(struct repo *r, const struct tree_entry *e);

/* The content of a TREE_XFORM_MAILCRYPT entry: read its chunks, load the
 * keys its MAIL_VIEW_KEYS_XATTR names, decode; appends to out.  Of a
 * TREE_XFORM_STALWART_DUMP entry: decompress its chunks up to the end of
 * the range in MAIL_VIEW_RANGE_XATTR and append that range.  Returns 0
 * or the errors of repo_chunk_read(), mail_crypt_decode() and
 * mail_stalwart_dump_extract().  Thread-safe. */
int mail_view_read(struct repo *r, const struct tree_entry *e,
		   struct mv_buf *out, struct mv_err *err);

#endif
