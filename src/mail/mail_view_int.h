/*
 * mail_view_int: what the modules of the mail view share; not an
 * interface for anything else (include/mail_view.h is the contract).
 *
 *   mail_view.c           the view's state and setup, the ingest hook's
 *                         analyze() and file_done(), the message records
 *   mail_view_catalog.c   catalog.db: known messages, large messages met
 *                         before, the records of new messages and places
 *   mail_view_stream.c    whole files through the ingest stream (export
 *                         JSON, dumps, prefixes of large messages)
 *   mail_view_stalwart.c  Stalwart account exports and server dumps
 *   mail_view_tree.c      the view's entries in the snapshot's tree
 *   mail_view_read.c      readers: mail_view_read(), key and dump caches
 *
 * Threading: analyze() runs in ingest workers and reads only the known
 * table and the key set (behind lock); everything else runs on the
 * producer thread, and the catalogue records on a thread of their own
 * between mail_view_finish() and mail_view_commit().
 */
#ifndef MV_MAIL_VIEW_INT_H
#define MV_MAIL_VIEW_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "catseg.h"
#include "mail_catalog.h"
#include "mail_crypt.h"
#include "mail_msg.h"
#include "mail_stalwart.h"
#include "mail_view.h"
#include "maildir.h"

#define KEY_FILE "ecprivkey.pem"
#define KEY_MAX 16384	 /* bytes of a PEM key file */
#define MAX_KEY_FILES 64 /* distinct key files referenced */
/* Messages whose key was not met yet, kept in case the key file comes
 * later in the input; bounded well inside the ingest memory bound. */
#define RAW_KEEP_MAX ((size_t)64 << 20)
/* Messages larger than one chunk: the first PREFIX_MAX raw bytes are kept
 * from the ingest stream until the file's content id is known, then
 * decoded (at most PREFIX_OUT bytes) and parsed when the message is new.
 * All prefixes held at once stay within PREFIX_BUDGET, each keeping at
 * least PREFIX_MIN (the header block). */
#define PREFIX_MAX ((size_t)1 << 20)
#define PREFIX_MIN ((size_t)64 << 10)
#define PREFIX_BUDGET ((size_t)32 << 20)
#define PREFIX_OUT ((size_t)1 << 20)

enum res_kind {
	RES_MSG = 1,  /* maildir message */
	RES_KEY = 2,  /* ecprivkey.pem */
	RES_JSON = 3, /* Stalwart export mailboxes.json / emails.json */
	RES_BLOB = 4, /* Stalwart export blobs/<blobId> */
	RES_EML = 5,  /* loose .eml file */
};

/* What a path is to the view (stateless, from the path alone). */
struct vpath {
	int kind;	  /* enum res_kind, 0 = nothing */
	size_t dir_len;	  /* RES_JSON/RES_BLOB: bytes of the export dir */
	bool emails;	  /* RES_JSON: emails.json (else mailboxes.json) */
	const char *leaf; /* last component */
	struct maildir_loc loc;
	struct maildir_file mf;
};

/* analyze() result */
struct vres {
	int kind;	 /* enum res_kind */
	unsigned layers; /* mail_crypt_detect() of the raw bytes */
	bool known;	 /* in the catalogue: not decoded */
	int decode_rc;	 /* mail_crypt_decode() result */
	char why[160];	 /* its message */
	uint64_t dsize;	 /* decoded size */
	bool parsed;	 /* msg filled */
	struct mail_msg msg;
	uint8_t *raw; /* kept for keys and -ENOKEY retries */
	size_t raw_len;
	unsigned keys_gen; /* key generation used */
	bool streamed;	   /* raw: the first bytes of a large file */
	bool partial;	   /* msg parsed from a prefix of the message */
	size_t held;	   /* prefix budget taken (mail_view.held) */
};

/* A maildir message larger than one chunk, by where it was in a backup. */
struct large_file {
	char *path; /* snapshot path; NULL: free slot */
	uint64_t size;
	int64_t mtime;
	uint8_t cid[MV_ID_LEN];
};

/* A catalogued message, as needed to name it. */
struct known {
	uint8_t cid[MV_ID_LEN];
	bool used;
	int64_t date;
	char *from, *subject;
	uint64_t size;
	unsigned layers;
};

enum vmsg_state {
	VM_OK = 0,
	VM_NOKEY,   /* encrypted, no key: raw */
	VM_CORRUPT, /* cannot decode: raw */
	VM_LARGE,   /* not analysed: named from the maildir name */
};

enum vmsg_kind {
	VK_MAILDIR = 0,
	VK_BLOB, /* a Stalwart blob, placed per mailbox at finish */
	VK_EML,	 /* a loose .eml file */
	VK_DUMP, /* a record of a Stalwart server dump */
};

/* What a view entry needs of the raw file's entry (a tree_entry is
 * ~200 bytes; this is 64, and a one-chunk file's chunk is its cid). */
struct vfile {
	struct tree_chunk *chunks; /* NULL when one chunk: (cid, size) */
	struct tree_extent *extents;
	const char *user, *group; /* interned, or NULL */
	const char *acl;	  /* access ACL text (interned), or NULL */
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mode, uid, gid, nchunks, nextents;
};

struct vmsg {
	const char *account; /* sanitized component (interned) */
	const char *mailbox; /* sanitized components joined by '/' (interned) */
	char *base;	     /* maildir base name (sort key) */
	char *reason;	     /* VM_NOKEY/VM_CORRUPT */
	uint8_t cid[MV_ID_LEN];
	struct vfile e; /* the raw file's entry, what the view needs */
	int64_t date;
	char *from, *subject;
	uint64_t size;	      /* size in the view */
	unsigned layers;      /* non-zero: xform */
	int state;	      /* enum vmsg_state */
	struct mail_msg *msg; /* new: to catalogue, or NULL */
	uint8_t *raw;	      /* VM_NOKEY: the file, for a key seen later */
	size_t raw_len;
	char *name;  /* view name, set by finish */
	char *fname; /* view_name_format() done while the input streams, or NULL
		      */
	int kind;    /* enum vmsg_kind */
	bool hidden; /* not in the view itself (a blob before placing) */
	bool has_mtime;
	int64_t mtime; /* view mtime when has_mtime (receivedAt) */
	char *mdir;    /* Maildir++ view path below maildir/, or NULL */
	/* snapshot paths (interned) of the directories whose mode and owner
	 * its view folder and its account folder take, or NULL */
	const char *srcdir, *srcacc;
	unsigned cnt;  /* VK_BLOB: counts owed to the summary when placed */
	size_t dump;   /* VK_DUMP: index in mail_view.dumps */
	uint64_t doff; /* VK_DUMP: offset of the message in the stream */
};

/* A Stalwart server dump's blob file. */
struct sw_dump {
	char *path;	     /* snapshot path of subspace_t */
	struct tree_entry e; /* its entry once stored */
	bool have;	     /* e is set */
};

enum vmsg_count {
	CNT_KNOWN = (1 << 0),
	CNT_DECODED = (1 << 1),
	CNT_LARGE = (1 << 2),
	CNT_NO_KEY = (1 << 3),
	CNT_CORRUPT = (1 << 4),
	CNT_PARSED = (1 << 5),
	CNT_BAD_HEADERS = (1 << 6),
};

/* A Stalwart account export met in the input. */
struct sw_export {
	char *dir;		  /* snapshot path of <account>/ */
	struct mv_buf json[2];	  /* mailboxes.json, emails.json */
	bool have[2], whole[2];	  /* seen; complete bytes */
	struct tree_entry ent[2]; /* their entries (chunks) */
};

/* Owner and mode of a top view folder (mail/, maildir/): those of its
 * account folders when they all agree (modes and-ed), else root's 0711:
 * each user still reaches their own account folder by name, nobody lists
 * the accounts. */
struct view_top {
	bool have, mixed;
	uint32_t mode, uid, gid;
};

struct mail_view {
	struct repo *r;
	struct ingest_hook hook;
	char *job;
	bool index_body;
	/* catalogue */
	sqlite3 *db;
	struct mail_catalog *cat;
	struct known *tab; /* open addressing, cap power of two */
	size_t cap, nknown;
	/* keys */
	pthread_mutex_t lock;
	struct mail_crypt_keys *keys; /* current set, or NULL */
	struct mail_crypt_keys **old; /* superseded sets, freed at the end */
	size_t nold;
	unsigned keys_gen;
	char **pems; /* every PEM loaded, to rebuild sets */
	size_t *pem_lens;
	size_t npems;
	uint8_t key_ids[MAX_KEY_FILES][MV_ID_LEN];
	size_t nkey_ids;
	char *dir_pem; /* --mailcow-keys file, stored at finish */
	size_t dir_pem_len;
	/* messages */
	struct vmsg *msgs;
	size_t nmsgs, capmsgs;
	size_t raw_kept; /* bytes of vmsg.raw held */
	struct sw_export *exps;
	size_t nexps;
	struct sw_dump *dumps;
	size_t ndumps;
	size_t held;	     /* budget of large-message prefixes held */
	uint32_t small_file; /* larger files are streamed (prefix) */
	struct mail_view_stats st;
	/* interned account and mailbox names (open addressing) */
	char **strs;
	size_t strs_cap, nstrs;
	/* the folder of the previous maildir message, raw and sanitized:
	 * messages come folder by folder */
	char *prev_acc_raw, *prev_mbox_raw;
	const char *prev_acc, *prev_mbox;
	const char *prev_srcdir, *prev_srcacc; /* of the last message */
	struct view_top top_mail, top_mdir;    /* mail/ and maildir/ */
	/* Large messages of the job's previous backup whose content the
	 * catalogue knows, by path (open addressing): the same path, size
	 * and mtime is taken as the same message and no prefix is kept (a
	 * maildir file never changes in place; when it did after all, the
	 * content id at its end tells, and it is named as a large message).
	 * Without this every backup copied the first MiB of each: 565 MB a
	 * day on the bench data. */
	struct large_file *lprev;
	size_t lprev_cap;
	/* the large messages of this backup, for the next one */
	struct large_file *lnow;
	size_t nlnow, caplnow;
	/* new messages catalogued during the backup, in batches */
	sqlite3_stmt *view_ins;
	unsigned batch; /* messages in the open transaction */
	/* the snapshot's catalogue records, made on their own thread while
	 * the repository writes the trees (mail_view_finish .. _commit) */
	pthread_t rec_thread;
	bool rec_running; /* rec_thread to be joined */
	bool rec_open;	  /* its transaction is open, not yet committed */
	int rec_rc;
	struct mv_err rec_err;
	int64_t rec_seq, rec_time;
	struct catseg_sync_stats seg_sync; /* segments replayed at open */
};
/* the Date of a message came from its place, not its bytes */
#define DATE_FALLBACK (MAIL_MSG_NO_DATE | MAIL_MSG_BAD_DATE)

/* Where and what a message file is, for view_record_msg(). */
struct vwhere {
	int kind;	     /* enum vmsg_kind */
	const char *account; /* raw; VK_BLOB: the export directory */
	const char *mailbox; /* raw, '/'-separated */
	const char *base;    /* sort key: maildir base, blob id, file name */
	size_t base_len;
	int64_t time;  /* delivery time, -1 unknown */
	bool has_size; /* size: the decoded size (maildir S=) */
	uint64_t size;
	const char *srcdir, *srcacc; /* see struct vmsg (interned) */
};

struct dump_scan {
	struct mail_view *v;
	const struct mail_stalwart_dump_info *info;
	size_t dump;
	struct mv_err *err;
};

enum { VS_JSON = 1, VS_DUMP = 2, VS_MSG = 3 };

struct vstream {
	int kind;
	struct mv_buf buf; /* VS_JSON: the bytes; VS_DUMP: the magic */
	bool off;	   /* VS_JSON too large / VS_DUMP not a dump /
			      VS_MSG unchanged (large_unchanged) */
	bool failed;	   /* VS_DUMP: corrupt or cut, counted at end */
	struct mail_stalwart_dump_scanner *scan;
	struct dump_scan ds;
	struct mv_err err;
	char *path; /* VS_DUMP: snapshot path */
	int mkind;  /* VS_MSG: enum res_kind of the message */
	size_t cap; /* VS_MSG: bytes kept (budget taken) */
};

/* ---- mail_view.c ------------------------------------------------------ */

void view_key_id_add(struct mail_view *v, const uint8_t *id);
void view_classify(const char *path, struct vpath *vp);
void view_res_free(struct vres *res);
void view_decode_parse(struct mail_view *v, struct vres *res, const void *data,
		       size_t len, uint64_t total, int64_t fallback);
size_t view_str_hash(const char *p);
const char *view_intern(struct mail_view *v, char *s);
const char *view_src_intern(struct mail_view *v, const char **last,
			    const char *path, size_t n);
int view_vfile_copy(struct vfile *f, const struct vfile *o);
void view_vfile_release(struct vfile *f);
void view_vfile_entry(const struct vfile *f, const uint8_t *cid,
		      struct tree_chunk *one, struct tree_entry *e);
int view_msgs_grow(struct mail_view *v, struct mv_err *err);
int view_from_parsed(struct vmsg *m, struct vres *res);
void view_count(struct mail_view *v, struct vmsg *m, unsigned what);
bool view_partial_size(struct vres *res, uint64_t file_size, bool has_size,
		       uint64_t size);
int view_record_msg(struct mail_view *v, const struct vwhere *wh,
		    const struct tree_entry *e, struct vres *res,
		    struct mv_err *err);
void view_release_messages(struct mail_view *v);

/* ---- mail_view_catalog.c ---------------------------------------------- */

const struct known *view_known_find(const struct mail_view *v,
				    const uint8_t *cid);
bool view_large_unchanged(const struct mail_view *v, const char *path,
			  const struct tree_entry *meta);
void view_large_note(struct mail_view *v, const char *path,
		     const struct tree_entry *e, const uint8_t *cid);
int view_catalog_batch_end(struct mail_view *v, struct mv_err *err);
int view_catalog_early(struct mail_view *v, struct vmsg *m, struct mv_err *err);
bool view_known_find_entry(struct mail_view *v, const struct tree_entry *e);
int view_catalog_open(struct mail_view *v, struct mv_err *err);
void view_catalog_record_start(struct mail_view *v, int64_t time_ns);
void view_catalog_record_join(struct mail_view *v);

/* ---- mail_view_stream.c ----------------------------------------------- */

void *view_hook_stream_begin(void *ctx, const char *path,
			     const struct tree_entry *meta);
int view_hook_stream_data(void *ctx, void *stream, const void *data, size_t len,
			  struct mv_err *err);
void *view_hook_stream_end(void *ctx, void *stream, bool keep);

/* ---- mail_view_stalwart.c --------------------------------------------- */

int view_json_done(struct mail_view *v, const char *path,
		   const struct vpath *vp, const struct tree_entry *e,
		   struct vres *res, struct mv_err *err);
int view_dump_record(void *ctx, const uint8_t *key, size_t key_len,
		     const uint8_t *value, size_t value_len);
void view_dump_done(struct mail_view *v, const char *path,
		    const struct tree_entry *e);
struct sw_dump *view_dump_find(struct mail_view *v, const char *path);
struct sw_dump *view_dump_add(struct mail_view *v, const char *path);
bool view_dump_stored_twice(struct mail_view *v, const struct tree_entry *e);
int view_dump_scan_stored(struct mail_view *v, const char *path,
			  const struct tree_entry *e, struct mv_err *err);
int view_stalwart_place(struct mail_view *v, struct tree_builder *tb,
			struct repo_writer *w, const struct tree_entry *dir,
			struct mv_err *err);

/* ---- mail_view_tree.c ------------------------------------------------- */

void view_dir_from(struct tree_builder *tb, const char *src, uint32_t file_mode,
		   uint32_t uid, uint32_t gid, int64_t mtime,
		   struct tree_entry *out);
void view_top_add(struct view_top *t, const struct tree_entry *acc);
int view_add_dirs(struct tree_builder *tb, const char *path,
		  const struct tree_entry *dir, struct mv_err *err);
int view_name_format(const struct vmsg *m, char *name, size_t n);

#endif
