/*
 * mail_view: the mail view of a snapshot, built during the backup (see
 * include/mail_view.h for the contract).
 *
 * Workload: a day's backup of a mail server - 10k to 1M message files of
 * which a few hundred are new.  So:
 *  1. The catalogue's view table (cid -> date, from, subject, size,
 *     layers) is loaded once into a read-only hash table; workers look it
 *     up without locks, and only messages it does not know are decoded
 *     and parsed.
 *  2. Message records are small and kept in memory until the view is
 *     added to the tree (sorted by account, mailbox, maildir base so that
 *     names, and their -2/-3 variants, are the same in every snapshot).
 *  3. Keys are published as immutable sets behind a mutex; a message
 *     analysed before the key file was seen is decoded again on the
 *     producer thread.
 */
#include "mail_view.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sqlite3.h>

#include "index.h"
#include "mail_catalog.h"
#include "mail_crypt.h"
#include "mail_msg.h"
#include "mail_name.h"
#include "mail_stalwart.h"
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

/* A catalogued message, as needed to name it. */
/* A maildir message larger than one chunk, by where it was in a backup. */
struct large_file {
	char *path; /* snapshot path; NULL: free slot */
	uint64_t size;
	int64_t mtime;
	uint8_t cid[MV_ID_LEN];
};

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
	char *fname; /* name_format() done while the input streams, or NULL */
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
};

static void catalog_record_start(struct mail_view *v, int64_t time_ns);
static void catalog_record_join(struct mail_view *v);

/* ---- known messages --------------------------------------------------- */

static size_t slot_of(const struct mail_view *v, const uint8_t *cid)
{
	uint64_t h;

	memcpy(&h, cid, sizeof(h));
	return (size_t)h & (v->cap - 1);
}

static const struct known *known_find(const struct mail_view *v,
				      const uint8_t *cid)
{
	size_t i;

	if (!v->cap)
		return NULL;
	for (i = slot_of(v, cid); v->tab[i].used; i = (i + 1) & (v->cap - 1))
		if (!memcmp(v->tab[i].cid, cid, MV_ID_LEN))
			return &v->tab[i];
	return NULL;
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s ? strdup((const char *)s) : NULL;
}

/* End a read of the catalogue whose last sqlite3_step() gave step. */
static int read_end(struct mail_view *v, sqlite3_stmt *st, int step,
		    struct mv_err *err)
{
	int rc = 0;

	if (step != SQLITE_DONE)
		rc = mv_err_set(err, -EIO, "catalogue: cannot read: %s",
				sqlite3_errmsg(v->db));
	sqlite3_finalize(st);
	return rc;
}

static int known_load(struct mail_view *v, struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	int64_t n = 0;
	int rc = 0;

	if (sqlite3_prepare_v2(v->db, "SELECT count(*) FROM view", -1, &st,
			       NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		goto db_fail;
	n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	for (v->cap = 1024; v->cap < 2 * (size_t)n; v->cap *= 2)
		;
	v->tab = calloc(v->cap, sizeof(*v->tab));
	if (!v->tab)
		return mv_err_set(err, -ENOMEM, "out of memory");
	if (sqlite3_prepare_v2(v->db,
			       "SELECT cid, date, from_, subject, size, layers"
			       " FROM view",
			       -1, &st, NULL) != SQLITE_OK)
		goto db_fail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const void *cid = sqlite3_column_blob(st, 0);
		struct known *k;
		size_t i;

		if (sqlite3_column_bytes(st, 0) != MV_ID_LEN ||
		    v->nknown * 2 >= v->cap)
			continue;
		for (i = slot_of(v, cid); v->tab[i].used;
		     i = (i + 1) & (v->cap - 1))
			;
		k = &v->tab[i];
		memcpy(k->cid, cid, MV_ID_LEN);
		k->used = true;
		k->date = sqlite3_column_int64(st, 1);
		k->from = col_dup(st, 2);
		k->subject = col_dup(st, 3);
		k->size = (uint64_t)sqlite3_column_int64(st, 4);
		k->layers = (unsigned)sqlite3_column_int(st, 5);
		v->nknown++;
	}
	return read_end(v, st, rc, err);
db_fail:
	rc = mv_err_set(err, -EIO, "catalogue: %s", sqlite3_errmsg(v->db));
	sqlite3_finalize(st);
	return rc;
}

/* ---- large messages met before ---------------------------------------- */

static size_t str_hash(const char *p);

static struct large_file *large_slot(struct large_file *tab, size_t cap,
				     const char *path)
{
	size_t i;

	for (i = str_hash(path) & (cap - 1); tab[i].path;
	     i = (i + 1) & (cap - 1))
		if (!strcmp(tab[i].path, path))
			return &tab[i];
	return &tab[i];
}

static int large_load(struct mail_view *v, struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	int64_t n = 0;
	int rc;

	/* sized once from the count, as known_load does: no rehashing */
	if (sqlite3_prepare_v2(v->db,
			       "SELECT count(*) FROM large WHERE job = ?1", -1,
			       &st, NULL) != SQLITE_OK)
		goto db_fail;
	sqlite3_bind_text(st, 1, v->job, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (!n)
		return 0;
	for (v->lprev_cap = 16; v->lprev_cap < 2 * (size_t)n; v->lprev_cap *= 2)
		;
	v->lprev = calloc(v->lprev_cap, sizeof(*v->lprev));
	if (!v->lprev) {
		v->lprev_cap = 0;
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	if (sqlite3_prepare_v2(v->db,
			       "SELECT path, size, mtime, cid FROM large"
			       " WHERE job = ?",
			       -1, &st, NULL) != SQLITE_OK)
		goto db_fail;
	sqlite3_bind_text(st, 1, v->job, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *path = (const char *)sqlite3_column_text(st, 0);
		const void *cid = sqlite3_column_blob(st, 3);
		struct large_file *l;

		if (!path || sqlite3_column_bytes(st, 3) != MV_ID_LEN ||
		    !known_find(v, cid))
			continue;
		l = large_slot(v->lprev, v->lprev_cap, path);
		if (l->path)
			continue;
		l->path = strdup(path);
		if (!l->path) {
			sqlite3_finalize(st);
			return mv_err_set(err, -ENOMEM, "out of memory");
		}
		l->size = (uint64_t)sqlite3_column_int64(st, 1);
		l->mtime = sqlite3_column_int64(st, 2);
		memcpy(l->cid, cid, MV_ID_LEN);
	}
	return read_end(v, st, rc, err);
db_fail:
	return mv_err_set(err, -EIO, "catalogue: %s", sqlite3_errmsg(v->db));
}

/* The large message at path was in the job's previous backup with this
 * size and mtime, and its content is catalogued. */
static bool large_unchanged(const struct mail_view *v, const char *path,
			    const struct tree_entry *meta)
{
	const struct large_file *l;

	if (!v->lprev_cap)
		return false;
	l = large_slot(v->lprev, v->lprev_cap, path);
	return l->path && l->size == meta->size && l->mtime == meta->mtime_sec;
}

/* Remember a large message of this backup for the next one (best
 * effort: out of memory only costs the next backup a prefix). */
static void large_note(struct mail_view *v, const char *path,
		       const struct tree_entry *e, const uint8_t *cid)
{
	struct large_file *l;

	if (v->nlnow == v->caplnow) {
		size_t cap = v->caplnow ? 2 * v->caplnow : 256;

		l = realloc(v->lnow, cap * sizeof(*l));
		if (!l)
			return;
		v->lnow = l;
		v->caplnow = cap;
	}
	l = &v->lnow[v->nlnow];
	l->path = strdup(path);
	if (!l->path)
		return;
	l->size = e->size;
	l->mtime = e->mtime_sec;
	memcpy(l->cid, cid, MV_ID_LEN);
	v->nlnow++;
}

/* Replace the job's large messages in the catalogue by this backup's
 * (inside the snapshot's transaction). */
static int large_store(struct mail_view *v, struct mv_err *err)
{
	sqlite3_stmt *del = NULL, *ins = NULL;
	size_t i;
	int rc = 0;

	if (sqlite3_prepare_v2(v->db, "DELETE FROM large WHERE job = ?", -1,
			       &del, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(v->db,
			       "INSERT OR REPLACE INTO large (job, path, size,"
			       " mtime, cid) VALUES (?,?,?,?,?)",
			       -1, &ins, NULL) != SQLITE_OK)
		goto db_fail;
	sqlite3_bind_text(del, 1, v->job, -1, SQLITE_STATIC);
	if (sqlite3_step(del) != SQLITE_DONE)
		goto db_fail;
	for (i = 0; i < v->nlnow; i++) {
		const struct large_file *l = &v->lnow[i];

		sqlite3_reset(ins);
		sqlite3_bind_text(ins, 1, v->job, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 2, l->path, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 3, (int64_t)l->size);
		sqlite3_bind_int64(ins, 4, l->mtime);
		sqlite3_bind_blob(ins, 5, l->cid, MV_ID_LEN, SQLITE_STATIC);
		if (sqlite3_step(ins) != SQLITE_DONE)
			goto db_fail;
	}
	goto out;
db_fail:
	rc = mv_err_set(err, -EIO, "catalogue: large messages: %s",
			sqlite3_errmsg(v->db));
out:
	sqlite3_finalize(del);
	sqlite3_finalize(ins);
	return rc;
}

/* ---- keys ------------------------------------------------------------- */

static struct mail_crypt_keys *keys_get(struct mail_view *v, unsigned *gen)
{
	struct mail_crypt_keys *k;

	pthread_mutex_lock(&v->lock);
	k = v->keys;
	*gen = v->keys_gen;
	pthread_mutex_unlock(&v->lock);
	return k;
}

/* Add a PEM to the key set (producer thread).  Bad PEMs are ignored and
 * counted nowhere: a file named ecprivkey.pem may be anything. */
static int keys_add(struct mail_view *v, const void *pem, size_t len,
		    struct mv_err *err)
{
	struct mail_crypt_keys *k = NULL, **old;
	char **pems;
	size_t *lens, i;
	int rc;

	for (i = 0; i < v->npems; i++)
		if (v->pem_lens[i] == len && !memcmp(v->pems[i], pem, len))
			return 0;
	rc = mail_crypt_keys_new(&k, err);
	if (rc)
		return rc;
	if (mail_crypt_keys_add_pem(k, pem, len, NULL)) {
		mail_crypt_keys_free(k);
		return 0;
	}
	for (i = 0; i < v->npems; i++)
		mail_crypt_keys_add_pem(k, v->pems[i], v->pem_lens[i], NULL);
	pems = realloc(v->pems, (v->npems + 1) * sizeof(*pems));
	if (pems)
		v->pems = pems;
	lens = realloc(v->pem_lens, (v->npems + 1) * sizeof(*lens));
	if (lens)
		v->pem_lens = lens;
	old = realloc(v->old, (v->nold + 1) * sizeof(*old));
	if (old)
		v->old = old;
	if (!pems || !lens || !old ||
	    !(v->pems[v->npems] = malloc(len ? len : 1))) {
		mail_crypt_keys_free(k);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	memcpy(v->pems[v->npems], pem, len);
	v->pem_lens[v->npems++] = len;
	pthread_mutex_lock(&v->lock);
	if (v->keys)
		v->old[v->nold++] = v->keys;
	v->keys = k;
	v->keys_gen++;
	pthread_mutex_unlock(&v->lock);
	v->st.keys++;
	return 0;
}

static void key_id_add(struct mail_view *v, const uint8_t *id)
{
	size_t i;

	for (i = 0; i < v->nkey_ids; i++)
		if (!memcmp(v->key_ids[i], id, MV_ID_LEN))
			return;
	if (v->nkey_ids < MAX_KEY_FILES)
		memcpy(v->key_ids[v->nkey_ids++], id, MV_ID_LEN);
}

/* ---- hook ------------------------------------------------------------- */

static bool blob_id_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
			return false;
	return true;
}

static bool has_eml_suffix(const char *s)
{
	size_t n = strlen(s);

	return n > 4 && !strcasecmp(s + n - 4, ".eml");
}

/* What path is to the view; stateless. */
static void classify(const char *path, struct vpath *vp)
{
	const char *leaf = strrchr(path, '/');
	size_t plen;

	memset(vp, 0, sizeof(*vp));
	leaf = leaf ? leaf + 1 : path;
	vp->leaf = leaf;
	plen = (size_t)(leaf - path);
	if (!strcmp(leaf, KEY_FILE)) {
		vp->kind = RES_KEY;
	} else if (plen > 1 && (!strcmp(leaf, "emails.json") ||
				!strcmp(leaf, "mailboxes.json"))) {
		vp->kind = RES_JSON;
		vp->emails = leaf[0] == 'e';
		vp->dir_len = plen - 1;
	} else if (!maildir_locate(path, &vp->loc) &&
		   !maildir_parse_name(vp->loc.name, &vp->mf)) {
		vp->kind = RES_MSG;
	} else if (plen > 7 && !memcmp(leaf - 7, "/blobs/", 7) &&
		   blob_id_ok(leaf)) {
		/* <account>/blobs/<blobId> of an export */
		vp->kind = RES_BLOB;
		vp->dir_len = plen - 7;
	} else if (has_eml_suffix(leaf) && leaf[0] != '.') {
		vp->kind = RES_EML;
	}
}

static void res_free(struct vres *res)
{
	if (!res)
		return;
	mail_msg_release(&res->msg);
	free(res->raw);
	free(res);
}

static void hook_free(void *ctx, void *result)
{
	struct mail_view *v = ctx;
	struct vres *res = result;

	if (res)
		v->held -= res->held;
	res_free(res);
}

/* Decode (when encoded) and parse a new message into res: data holds the
 * first len bytes of a file of total bytes (all of it, or the prefix
 * kept of a large one: res->partial). */
static void decode_parse(struct mail_view *v, struct vres *res,
			 const void *data, size_t len, uint64_t total,
			 int64_t fallback)
{
	struct mv_buf buf = MV_BUF_INIT;
	struct mv_err e = MV_ERR_INIT;
	const void *p = data;
	size_t n = len;

	if (res->layers != MAIL_CRYPT_PLAIN) {
		struct mail_crypt_keys *keys = keys_get(v, &res->keys_gen);

		res->decode_rc = mail_crypt_decode_prefix(
			data, len, total, keys, PREFIX_OUT, &buf, NULL, &e);
		if (res->decode_rc) {
			snprintf(res->why, sizeof(res->why), "%s",
				 mv_err_msg(&e));
			mv_buf_release(&buf);
			return;
		}
		p = buf.data ? (const void *)buf.data : (const void *)"";
		n = buf.len;
	}
	res->partial = total > len;
	res->dsize = n;
	mv_err_clear(&e);
	if (!mail_msg_parse(p, n, fallback,
			    v->index_body ? MAIL_MSG_WANT_BODY : 0, &res->msg,
			    &e))
		res->parsed = true;
	mv_buf_release(&buf);
}

static void *hook_analyze(void *ctx, const char *path,
			  const uint8_t id[MV_ID_LEN], const void *data,
			  size_t len)
{
	struct mail_view *v = ctx;
	struct vpath vp;
	struct vres *res;
	int64_t fallback = 0;

	classify(path, &vp);
	if (!vp.kind)
		return NULL;
	if (vp.kind == RES_KEY || vp.kind == RES_JSON) {
		if (vp.kind == RES_KEY && len > KEY_MAX)
			return NULL;
		res = calloc(1, sizeof(*res));
		if (!res)
			return NULL;
		res->kind = vp.kind;
		res->raw = malloc(len ? len : 1);
		if (!res->raw) {
			free(res);
			return NULL;
		}
		memcpy(res->raw, data, len);
		res->raw_len = len;
		return res;
	}
	if (vp.kind == RES_MSG && vp.mf.time >= 0)
		fallback = vp.mf.time;
	res = calloc(1, sizeof(*res));
	if (!res)
		return NULL;
	res->kind = vp.kind;
	res->layers = mail_crypt_detect(data, len);
	if (known_find(v, id)) {
		res->known = true;
		return res;
	}
	decode_parse(v, res, data, len, len, fallback);
	if (res->decode_rc == -ENOKEY) {
		/* the key file may come later in this backup */
		res->raw = malloc(len ? len : 1);
		if (res->raw) {
			memcpy(res->raw, data, len);
			res->raw_len = len;
		}
	}
	return res;
}

/* One copy of each account, mailbox, user and group name, shared by the
 * messages (100k messages live in a few hundred folders).  Takes s
 * (malloc'd); returns the interned string, or NULL on out of memory (s
 * freed). */
static size_t str_hash(const char *p)
{
	size_t h = 5381;

	for (; *p; p++)
		h = h * 33 + (unsigned char)*p;
	return h;
}

static const char *intern(struct mail_view *v, char *s)
{
	size_t i;

	if (!s)
		return NULL;
	if (v->nstrs * 2 >= v->strs_cap) {
		size_t cap = v->strs_cap ? v->strs_cap * 2 : 256, k;
		char **t = calloc(cap, sizeof(*t));

		if (!t) {
			free(s);
			return NULL;
		}
		for (k = 0; k < v->strs_cap; k++) {
			if (!v->strs[k])
				continue;
			for (i = str_hash(v->strs[k]) & (cap - 1); t[i];
			     i = (i + 1) & (cap - 1))
				;
			t[i] = v->strs[k];
		}
		free(v->strs);
		v->strs = t;
		v->strs_cap = cap;
	}
	for (i = str_hash(s) & (v->strs_cap - 1); v->strs[i];
	     i = (i + 1) & (v->strs_cap - 1))
		if (!strcmp(v->strs[i], s)) {
			free(s);
			return v->strs[i];
		}
	v->strs[i] = s;
	v->nstrs++;
	return s;
}

/* The first n bytes of path, interned; *last (the previous answer) is
 * reused without a copy when it is the same, as it is for every message
 * of a folder in a row. */
static const char *src_intern(struct mail_view *v, const char **last,
			      const char *path, size_t n)
{
	if (*last && !strncmp(*last, path, n) && !(*last)[n])
		return *last;
	*last = intern(v, strndup(path, n));
	return *last;
}

#define CATALOG_BATCH 2000 /* new messages per catalogue transaction */
/* the Date of a message came from its place, not its bytes */
#define DATE_FALLBACK (MAIL_MSG_NO_DATE | MAIL_MSG_BAD_DATE)

/* Catalogue a new message now (its msg and view rows depend on its
 * content only), so that the parsed headers need not be held until the
 * snapshot is committed. */
static int catalog_write(struct mail_view *v, struct vmsg *m,
			 struct mv_err *err)
{
	int rc;

	if (!v->view_ins &&
	    sqlite3_prepare_v2(v->db,
			       "INSERT OR IGNORE INTO view (cid, date, from_,"
			       " subject, size, layers) VALUES (?,?,?,?,?,?)",
			       -1, &v->view_ins, NULL) != SQLITE_OK)
		return mv_err_set(err, -EIO, "catalogue: %s",
				  sqlite3_errmsg(v->db));
	rc = mail_catalog_add(v->cat, m->cid, MV_ID_LEN, m->msg, err);
	if (rc)
		return rc;
	sqlite3_reset(v->view_ins);
	sqlite3_bind_blob(v->view_ins, 1, m->cid, MV_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(v->view_ins, 2, m->date);
	sqlite3_bind_text(v->view_ins, 3, m->from, -1, SQLITE_STATIC);
	sqlite3_bind_text(v->view_ins, 4, m->subject, -1, SQLITE_STATIC);
	sqlite3_bind_int64(v->view_ins, 5, (int64_t)m->size);
	sqlite3_bind_int(v->view_ins, 6, (int)m->layers);
	if (sqlite3_step(v->view_ins) != SQLITE_DONE)
		return mv_err_set(err, -EIO, "catalogue: %s",
				  sqlite3_errmsg(v->db));
	sqlite3_reset(v->view_ins);
	sqlite3_clear_bindings(v->view_ins);
	mail_msg_release(m->msg);
	free(m->msg);
	m->msg = NULL;
	return 0;
}

static int catalog_batch_end(struct mail_view *v, struct mv_err *err)
{
	if (!v->batch)
		return 0;
	v->batch = 0;
	if (sqlite3_exec(v->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		return mv_err_set(err, -EIO, "catalogue: %s",
				  sqlite3_errmsg(v->db));
	return 0;
}

/* A parsed maildir, loose or dump message: catalogued at once (a
 * Stalwart blob waits: it may be a sieve script, placed or not). */
static int catalog_early(struct mail_view *v, struct vmsg *m,
			 struct mv_err *err)
{
	int rc;

	if (!m->msg || m->kind == VK_BLOB || m->state != VM_OK)
		return 0;
	/* dated by its place (no usable Date): named and catalogued at
	 * finish, once every copy of it is known (fallback_dates_unify) */
	if (m->msg->flags & DATE_FALLBACK)
		return 0;
	if (!v->cat) {
		mail_msg_release(m->msg);
		free(m->msg);
		m->msg = NULL;
		return 0;
	}
	if (!v->batch &&
	    sqlite3_exec(v->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return mv_err_set(err, -EIO, "catalogue: %s",
				  sqlite3_errmsg(v->db));
	v->batch++;
	rc = catalog_write(v, m, err);
	if (!rc && v->batch >= CATALOG_BATCH)
		rc = catalog_batch_end(v, err);
	return rc;
}

/* Keep what the view needs of a raw file's entry e (content id cid). */
static int vfile_set(struct mail_view *v, struct vfile *f,
		     const struct tree_entry *e, const uint8_t *cid)
{
	memset(f, 0, sizeof(*f));
	f->size = e->size;
	f->mtime_sec = e->mtime_sec;
	f->mode = e->mode;
	f->uid = e->uid;
	f->gid = e->gid;
	f->nchunks = e->nchunks;
	f->nextents = e->nextents;
	if ((e->user && !(f->user = intern(v, strdup(e->user)))) ||
	    (e->group && !(f->group = intern(v, strdup(e->group)))) ||
	    (e->acl_access && !(f->acl = intern(v, strdup(e->acl_access)))))
		return -ENOMEM;
	if (e->nchunks &&
	    (e->nchunks > 1 || e->nextents || e->chunks[0].size != e->size ||
	     memcmp(e->chunks[0].id, cid, MV_ID_LEN))) {
		f->chunks = malloc(e->nchunks * sizeof(*f->chunks));
		if (!f->chunks)
			return -ENOMEM;
		memcpy(f->chunks, e->chunks, e->nchunks * sizeof(*f->chunks));
	}
	if (e->nextents) {
		f->extents = malloc(e->nextents * sizeof(*f->extents));
		if (!f->extents)
			return -ENOMEM;
		memcpy(f->extents, e->extents,
		       e->nextents * sizeof(*f->extents));
	}
	return 0;
}

static int vfile_copy(struct vfile *f, const struct vfile *o)
{
	*f = *o;
	f->chunks = NULL;
	f->extents = NULL;
	if (o->chunks) {
		f->chunks = malloc(o->nchunks * sizeof(*f->chunks));
		if (!f->chunks)
			return -ENOMEM;
		memcpy(f->chunks, o->chunks, o->nchunks * sizeof(*f->chunks));
	}
	if (o->extents) {
		f->extents = malloc(o->nextents * sizeof(*f->extents));
		if (!f->extents)
			return -ENOMEM;
		memcpy(f->extents, o->extents,
		       o->nextents * sizeof(*f->extents));
	}
	return 0;
}

static void vfile_release(struct vfile *f)
{
	free(f->chunks);
	free(f->extents);
	memset(f, 0, sizeof(*f));
}

/* The raw file's entry again (borrowing f; one chunk goes to *one). */
static void vfile_entry(const struct vfile *f, const uint8_t *cid,
			struct tree_chunk *one, struct tree_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->type = TREE_REG;
	e->mode = f->mode;
	e->uid = f->uid;
	e->gid = f->gid;
	e->user = (char *)f->user;
	e->group = (char *)f->group;
	e->acl_access = (char *)f->acl;
	e->size = f->size;
	e->mtime_sec = f->mtime_sec;
	e->nlink = 1;
	e->nchunks = f->nchunks;
	e->chunks = f->chunks;
	e->nextents = f->nextents;
	e->extents = f->extents;
	if (f->nchunks == 1 && !f->chunks) {
		memcpy(one->id, cid, MV_ID_LEN);
		one->size = (uint32_t)f->size;
		e->chunks = one;
	}
}

static int msgs_grow(struct mail_view *v, struct mv_err *err)
{
	struct vmsg *m;
	size_t cap;

	if (v->nmsgs < v->capmsgs)
		return 0;
	/* first as many as the catalogue knows (a day's backup holds about
	 * that many; pages not used are never touched), then 1.5x: at 100k
	 * messages the slack of doubling is tens of MiB */
	cap = v->capmsgs ? v->capmsgs + v->capmsgs / 2 : 256 + v->nknown;
	m = realloc(v->msgs, cap * sizeof(*m));
	if (!m)
		return mv_err_set(err, -ENOMEM, "out of memory");
	v->msgs = m;
	v->capmsgs = cap;
	return 0;
}

/* Sanitize each '/'-separated component of s into a new string. */
static char *sanitize_path(const char *s)
{
	char comp[MAIL_NAME_MAX + 1], *out;
	size_t len = strlen(s), at = 0;

	out = malloc(len * 3 + 2 + len / 2 * 2);
	if (!out)
		return NULL;
	while (*s) {
		const char *slash = strchr(s, '/');
		size_t n = slash ? (size_t)(slash - s) : strlen(s);
		char *part = strndup(s, n);

		if (!part) {
			free(out);
			return NULL;
		}
		if (n) {
			size_t k = mail_name_sanitize(part, comp, sizeof(comp),
						      MAIL_NAME_MAX);
			if (at)
				out[at++] = '/';
			memcpy(out + at, comp, k);
			at += k;
		}
		free(part);
		s += n + (slash != NULL);
	}
	if (!at)
		out[at++] = '_';
	out[at] = '\0';
	return out;
}

/* Fill m's naming fields from a known message. */
static int from_known(struct vmsg *m, const struct known *k)
{
	m->date = k->date;
	m->from = k->from ? strdup(k->from) : NULL;
	m->subject = k->subject ? strdup(k->subject) : NULL;
	m->size = k->size;
	m->layers = k->layers;
	if ((k->from && !m->from) || (k->subject && !m->subject))
		return -ENOMEM;
	return 0;
}

static int from_parsed(struct vmsg *m, struct vres *res)
{
	struct mail_msg *msg = &res->msg;

	m->date = msg->date;
	m->from = msg->from	   ? strdup(msg->from)
		  : msg->from_addr ? strdup(msg->from_addr)
				   : NULL;
	m->subject = msg->subject ? strdup(msg->subject) : NULL;
	m->size = res->dsize;
	m->msg = malloc(sizeof(*m->msg));
	if (!m->msg)
		return -ENOMEM;
	*m->msg = *msg;
	memset(msg, 0, sizeof(*msg));
	res->parsed = false;
	return 0;
}

static int name_format(const struct vmsg *m, char *name, size_t n);

/* Format a maildir message's view name now, while the input still
 * streams, rather than at finish: only uniqueness within its folder is
 * left for then.  Messages whose state or size may still change (keys
 * met later, encrypted ones) are named at finish. */
static void name_early(struct vmsg *m)
{
	char name[MAIL_NAME_MAX + 1];

	if (m->kind != VK_MAILDIR || m->state != VM_OK || m->layers)
		return;
	if (!name_format(m, name, sizeof(name)))
		m->fname = strdup(name); /* NULL: named at finish */
}

/* Where and what a message file is, for record_msg(). */
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

/* Count m in the summary; a blob counts only once placed (an export's
 * sieve scripts are blobs too). */
static void count(struct mail_view *v, struct vmsg *m, unsigned what)
{
	if (m->kind == VK_BLOB) {
		m->cnt |= what;
		return;
	}
	if (what & CNT_KNOWN)
		v->st.known++;
	if (what & CNT_DECODED)
		v->st.decoded++;
	if (what & CNT_LARGE)
		v->st.large++;
	if (what & CNT_NO_KEY)
		v->st.no_key++;
	if (what & CNT_CORRUPT)
		v->st.corrupt++;
	if (what & CNT_PARSED)
		v->st.parsed++;
	if (what & CNT_BAD_HEADERS)
		v->st.bad_headers++;
}

/* A message parsed from the prefix of a large file (res->partial): its
 * size is the file's when plain, else the maildir S= (the decoded size
 * Dovecot writes in the name).  False when it is not known. */
static bool partial_size(struct vres *res, uint64_t file_size, bool has_size,
			 uint64_t size)
{
	if (res->layers == MAIL_CRYPT_PLAIN)
		res->dsize = file_size;
	else if (has_size)
		res->dsize = size;
	else
		return false;
	res->msg.size = res->dsize;
	return true;
}

static void folder_remember(struct mail_view *v, const struct vwhere *wh,
			    const struct vmsg *m)
{
	free(v->prev_acc_raw);
	free(v->prev_mbox_raw);
	v->prev_acc_raw = strdup(wh->account);
	v->prev_mbox_raw = strdup(wh->mailbox);
	if (!v->prev_acc_raw || !v->prev_mbox_raw) {
		free(v->prev_acc_raw);
		free(v->prev_mbox_raw);
		v->prev_acc_raw = v->prev_mbox_raw = NULL;
	}
	v->prev_acc = m->account;
	v->prev_mbox = m->mailbox;
}

static int record_msg(struct mail_view *v, const struct vwhere *wh,
		      const struct tree_entry *e, struct vres *res,
		      struct mv_err *err)
{
	const struct known *k;
	struct vmsg *m;
	int rc;

	if (res && res->partial && !res->decode_rc && res->parsed &&
	    !partial_size(res, e->size, wh->has_size, wh->size)) {
		/* an encoded prefix without S=: the decoded size is
		 * unknown, named from the maildir name */
		res = NULL;
	}
	if (res && e->nchunks > 1 && !res->streamed) {
		/* analysed from its first chunk only: the headers are
		 * right, the size is the file's; an encoded file cannot be
		 * decoded from a part */
		if (res->layers == MAIL_CRYPT_PLAIN && !res->decode_rc &&
		    res->parsed)
			res->dsize = e->size;
		else
			res = NULL;
	}
	rc = msgs_grow(v, err);
	if (rc)
		return rc;
	m = &v->msgs[v->nmsgs];
	memset(m, 0, sizeof(*m));
	mail_view_content_id(v->r, e, m->cid);
	m->kind = wh->kind;
	m->hidden = wh->kind == VK_BLOB;
	if (wh->kind == VK_MAILDIR && v->prev_acc_raw &&
	    !strcmp(wh->account, v->prev_acc_raw) &&
	    !strcmp(wh->mailbox, v->prev_mbox_raw)) {
		m->account = v->prev_acc;
		m->mailbox = v->prev_mbox;
	} else {
		m->account = intern(v, wh->kind == VK_BLOB
					       ? strdup(wh->account)
					       : sanitize_path(wh->account));
		m->mailbox = intern(v, wh->kind == VK_DUMP
					       ? strdup("")
					       : sanitize_path(wh->mailbox));
		if (wh->kind == VK_MAILDIR && m->account && m->mailbox)
			folder_remember(v, wh, m);
	}
	m->srcdir = wh->srcdir;
	m->srcacc = wh->srcacc;
	m->base = strndup(wh->base, wh->base_len);
	rc = vfile_set(v, &m->e, e, m->cid);
	if (rc || !m->account || !m->mailbox || !m->base) {
		vfile_release(&m->e);
		free(m->base);
		goto oom;
	}
	v->nmsgs++;
	m->date = wh->time >= 0 ? wh->time : e->mtime_sec;
	m->size = e->size;
	if (wh->kind != VK_BLOB && wh->kind != VK_DUMP)
		v->st.messages++;
	if (wh->kind == VK_EML)
		v->st.loose++;
	k = known_find(v, m->cid);
	if (k) {
		count(v, m, CNT_KNOWN);
		if (from_known(m, k))
			return mv_err_set(err, -ENOMEM, "out of memory");
		if (m->layers)
			count(v, m, CNT_DECODED);
		name_early(m);
		return 0;
	}
	if (!res) {
		/* a hard link to a message seen earlier in this backup
		 * (Dovecot copies): same content, same names */
		size_t i;

		for (i = 0; i + 1 < v->nmsgs; i++) {
			const struct vmsg *o = &v->msgs[i];

			if (o->state != VM_OK ||
			    memcmp(o->cid, m->cid, MV_ID_LEN))
				continue;
			count(v, m, CNT_KNOWN);
			m->date = o->date;
			m->size = o->size;
			m->layers = o->layers;
			m->from = o->from ? strdup(o->from) : NULL;
			m->subject = o->subject ? strdup(o->subject) : NULL;
			if ((o->from && !m->from) ||
			    (o->subject && !m->subject))
				goto oom;
			return 0;
		}
		/* not analysed: larger than one chunk */
		count(v, m, CNT_LARGE);
		m->state = VM_LARGE;
		if (wh->has_size && wh->size != e->size) {
			/* S= differs: encoded, readers decode */
			m->layers = MAIL_CRYPT_ENCRYPTED;
			m->size = wh->size;
			count(v, m, CNT_DECODED);
		}
		return 0;
	}
	m->layers = res->layers;
	if (res->decode_rc) {
		m->state = res->decode_rc == -ENOKEY ? VM_NOKEY : VM_CORRUPT;
		m->layers = 0;
		m->reason = strdup(res->decode_rc == -ENOKEY ? "no key"
							     : "corrupt");
		if (!m->reason)
			goto oom;
		if (m->state == VM_NOKEY && res->raw &&
		    v->raw_kept + res->raw_len <= RAW_KEEP_MAX) {
			/* the key file may still come later in the input */
			m->raw = res->raw;
			m->raw_len = res->raw_len;
			res->raw = NULL;
			v->raw_kept += m->raw_len;
		}
		if (m->state == VM_NOKEY)
			count(v, m, CNT_NO_KEY);
		else
			count(v, m, CNT_CORRUPT);
		return 0;
	}
	if (m->layers)
		count(v, m, CNT_DECODED);
	if (res->parsed) {
		count(v, m, CNT_PARSED);
		if (res->msg.flags &
		    ~(unsigned)(MAIL_MSG_NO_MESSAGE_ID | MAIL_MSG_LEADING_JUNK))
			count(v, m, CNT_BAD_HEADERS);
		if (from_parsed(m, res))
			goto oom;
		name_early(m);
		return catalog_early(v, m, err);
	}
	return 0;
oom:
	return mv_err_set(err, -ENOMEM, "out of memory");
}

static bool known_find_entry(struct mail_view *v, const struct tree_entry *e)
{
	uint8_t cid[MV_ID_LEN];

	mail_view_content_id(v->r, e, cid);
	return known_find(v, cid) != NULL;
}

/* The export whose directory is dir (len bytes), created when absent. */
static struct sw_export *export_get(struct mail_view *v, const char *dir,
				    size_t len)
{
	struct sw_export *x;
	size_t i;

	for (i = 0; i < v->nexps; i++)
		if (strlen(v->exps[i].dir) == len &&
		    !memcmp(v->exps[i].dir, dir, len))
			return &v->exps[i];
	x = realloc(v->exps, (v->nexps + 1) * sizeof(*x));
	if (!x)
		return NULL;
	v->exps = x;
	x = &v->exps[v->nexps];
	memset(x, 0, sizeof(*x));
	x->dir = strndup(dir, len);
	if (!x->dir)
		return NULL;
	v->nexps++;
	return x;
}

static int export_set_json(struct sw_export *x, int k, const void *data,
			   size_t len, bool whole)
{
	if (x->whole[k] || (x->have[k] && len <= x->json[k].len))
		return 0;
	x->json[k].len = 0;
	if (mv_buf_append(&x->json[k], len ? data : "", len))
		return -ENOMEM;
	x->have[k] = true;
	x->whole[k] = whole;
	return 0;
}

bool mail_view_wants_whole(const char *path)
{
	const char *leaf = strrchr(path, '/');

	/* cheap: called for every file of a directory source */
	return leaf && leaf > path &&
	       (!strcmp(leaf, "/emails.json") ||
		!strcmp(leaf, "/mailboxes.json"));
}

int mail_view_see_whole(struct mail_view *v, const char *path, const void *data,
			size_t len, struct mv_err *err)
{
	struct sw_export *x;
	struct vpath vp;

	classify(path, &vp);
	if (vp.kind != RES_JSON || len > MAIL_STALWART_MAX_JSON)
		return 0;
	x = export_get(v, path, vp.dir_len);
	if (!x || export_set_json(x, vp.emails, data, len, true))
		return mv_err_set(err, -ENOMEM, "out of memory");
	return 0;
}

/* An export's JSON file: keep its bytes (whole, or the first chunk) and
 * its entry, to read the rest from the repository when it is stored. */
static int json_done(struct mail_view *v, const char *path,
		     const struct vpath *vp, const struct tree_entry *e,
		     struct vres *res, struct mv_err *err)
{
	struct sw_export *x = export_get(v, path, vp->dir_len);
	int k = vp->emails;
	int rc;

	if (!x)
		return mv_err_set(err, -ENOMEM, "out of memory");
	if (res && export_set_json(x, k, res->raw, res->raw_len,
				   res->raw_len == e->size))
		return mv_err_set(err, -ENOMEM, "out of memory");
	if (!res && !e->size && export_set_json(x, k, "", 0, true))
		return mv_err_set(err, -ENOMEM, "out of memory");
	x->have[k] = true;
	tree_entry_release(&x->ent[k]);
	rc = tree_entry_copy(&x->ent[k], e, err);
	if (rc)
		memset(&x->ent[k], 0, sizeof(x->ent[k]));
	return rc;
}

/* ---- Stalwart server dumps ------------------------------------------ */

struct dump_scan {
	struct mail_view *v;
	const struct mail_stalwart_dump_info *info;
	size_t dump;
	struct mv_err *err;
};

static int dump_record(void *ctx, const uint8_t *key, size_t key_len,
		       const uint8_t *value, size_t value_len)
{
	struct dump_scan *ds = ctx;
	struct mail_view *v = ds->v;
	char hex[2 * 32 + 1];
	struct vwhere wh;
	struct tree_entry e;
	struct vres *res;
	struct vmsg *m;
	uint8_t cid[MV_ID_LEN];
	int rc;

	if (!value_len)
		return 0;
	mv_hex(key, MV_MIN(key_len, (size_t)32), hex);
	repo_chunk_id(v->r, value, value_len, cid);
	res = calloc(1, sizeof(*res));
	if (!res)
		return mv_err_set(ds->err, -ENOMEM, "out of memory");
	res->kind = RES_EML;
	res->layers = MAIL_CRYPT_PLAIN;
	if (known_find(v, cid))
		res->known = true;
	else
		decode_parse(v, res, value, value_len, value_len, 0);
	/* a one-chunk entry stands for the message until finish */
	memset(&e, 0, sizeof(e));
	e.type = TREE_REG;
	e.size = value_len;
	e.nchunks = 1;
	e.chunks = calloc(1, sizeof(*e.chunks));
	if (!e.chunks) {
		res_free(res);
		return mv_err_set(ds->err, -ENOMEM, "out of memory");
	}
	memcpy(e.chunks[0].id, cid, MV_ID_LEN);
	e.chunks[0].size = (uint32_t)value_len;
	memset(&wh, 0, sizeof(wh));
	wh.kind = VK_DUMP;
	wh.account = MAIL_VIEW_DUMP;
	wh.mailbox = "";
	wh.base = hex;
	wh.base_len = strlen(hex);
	wh.time = -1;
	rc = record_msg(v, &wh, &e, res, ds->err);
	free(e.chunks);
	res_free(res);
	if (rc)
		return rc;
	m = &v->msgs[v->nmsgs - 1];
	m->dump = ds->dump;
	m->doff = ds->info->value_offset;
	m->hidden = true; /* until its file is stored */
	v->st.dump_messages++;
	return 0;
}

static struct sw_dump *dump_add(struct mail_view *v, const char *path);

int mail_view_dump_scan(struct mail_view *v, const char *path, int fd,
			struct mv_err *err)
{
	struct mail_stalwart_dump_info info;
	struct mv_err e = MV_ERR_INIT;
	struct dump_scan ds;
	struct sw_dump *d;
	uint8_t magic[4];
	int rc;

	d = dump_add(v, path);
	if (!d)
		return mv_err_set(err, -ENOMEM, "out of memory");
	ds.v = v;
	ds.info = &info;
	ds.dump = (size_t)(d - v->dumps);
	ds.err = err;
	if (pread(fd, magic, 4, 0) != 4 || memcmp(magic, "\x04\x22\x4d\x18", 4))
		return 0; /* not an LZ4 frame: not a dump */
	rc = mail_stalwart_dump_scan_fd(fd, dump_record, &ds, &info, &e);
	if (rc == -ENOMEM)
		return mv_err_set(err, rc, "%s", mv_err_msg(&e));
	v->st.dumps++;
	if (rc)
		v->st.dump_errors++;
	return 0;
}

static void dump_done(struct mail_view *v, const char *path,
		      const struct tree_entry *e)
{
	size_t i;

	for (i = 0; i < v->ndumps; i++) {
		struct sw_dump *d = &v->dumps[i];

		if (d->have || strcmp(d->path, path))
			continue;
		if (tree_entry_copy(&d->e, e, NULL))
			memset(&d->e, 0, sizeof(d->e));
		else
			d->have = true;
	}
}

/* ---- whole files through the ingest stream ----------------------------
 *
 * Every source (directory, tar, stdin, ssh://) passes each file's bytes
 * through ingest once; the view asks for the whole bytes of the files it
 * cannot understand from their first chunk:
 *  - an export's mailboxes.json / emails.json: kept (as a directory
 *    source's mail_view_see_whole() keeps them) up to
 *    MAIL_STALWART_MAX_JSON;
 *  - a dump's subspace_t: scanned as it passes (LZ4 window and the record
 *    being assembled only), every record becoming a message whose entry
 *    references the file's chunks once the file is stored.
 * Files a directory source already handed over (see_whole, dump_scan) are
 * not streamed again. */

enum { VS_JSON = 1, VS_DUMP = 2, VS_MSG = 3 };

#define LZ4_MAGIC "\x04\x22\x4d\x18"

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

static bool export_has_whole(struct mail_view *v, const char *path,
			     const struct vpath *vp)
{
	size_t i;

	for (i = 0; i < v->nexps; i++) {
		const struct sw_export *x = &v->exps[i];

		if (strlen(x->dir) == vp->dir_len &&
		    !memcmp(x->dir, path, vp->dir_len) && x->whole[vp->emails])
			return true;
	}
	return false;
}

static struct sw_dump *dump_find(struct mail_view *v, const char *path)
{
	size_t i;

	for (i = 0; i < v->ndumps; i++)
		if (!v->dumps[i].have && !strcmp(v->dumps[i].path, path))
			return &v->dumps[i];
	return NULL;
}

/* A new dump file at path, its messages to come; NULL on -ENOMEM. */
static struct sw_dump *dump_add(struct mail_view *v, const char *path)
{
	struct sw_dump *d = realloc(v->dumps, (v->ndumps + 1) * sizeof(*d));

	if (!d)
		return NULL;
	v->dumps = d;
	d = &v->dumps[v->ndumps];
	memset(d, 0, sizeof(*d));
	d->path = strdup(path);
	if (!d->path)
		return NULL;
	v->ndumps++;
	return d;
}

static void *hook_stream_begin(void *ctx, const char *path,
			       const struct tree_entry *meta)
{
	struct mail_view *v = ctx;
	struct vstream *vs;
	struct vpath vp;
	const char *leaf = strrchr(path, '/');

	leaf = leaf ? leaf + 1 : path;
	if (!strcmp(leaf, "subspace_t")) {
		if (dump_find(v, path))
			return NULL; /* scanned by the directory source */
		vs = calloc(1, sizeof(*vs));
		if (!vs)
			return NULL;
		vs->kind = VS_DUMP;
		vs->ds.v = v;
		vs->ds.err = &vs->err;
		vs->path = strdup(path);
		if (!vs->path) {
			free(vs);
			return NULL;
		}
		return vs;
	}
	if (meta->size > v->small_file && !mail_view_wants_whole(path)) {
		/* a message larger than one chunk: keep its first bytes */
		classify(path, &vp);
		if (vp.kind != RES_MSG && vp.kind != RES_EML &&
		    vp.kind != RES_BLOB)
			return NULL;
		if (vp.kind == RES_MSG && large_unchanged(v, path, meta)) {
			/* named from the catalogue: a stream that keeps
			 * nothing, so that analyze() does not parse its
			 * first chunk either */
			vs = calloc(1, sizeof(*vs));
			if (vs) {
				vs->kind = VS_MSG;
				vs->off = true;
			}
			return vs;
		}
		vs = calloc(1, sizeof(*vs));
		if (!vs)
			return NULL;
		vs->kind = VS_MSG;
		vs->mkind = vp.kind;
		vs->cap =
			v->held + PREFIX_MAX <= PREFIX_BUDGET
				? PREFIX_MAX
				: MV_MAX(PREFIX_BUDGET -
						 MV_MIN(v->held, PREFIX_BUDGET),
					 PREFIX_MIN);
		v->held += vs->cap;
		return vs;
	}
	if (!mail_view_wants_whole(path))
		return NULL;
	classify(path, &vp);
	if (vp.kind != RES_JSON || meta->size > MAIL_STALWART_MAX_JSON ||
	    export_has_whole(v, path, &vp))
		return NULL;
	vs = calloc(1, sizeof(*vs));
	if (vs)
		vs->kind = VS_JSON;
	return vs;
}

/* The first bytes of a would-be dump: start the scan when they are the
 * LZ4 frame magic. */
static int stream_dump_start(struct mail_view *v, struct vstream *vs,
			     struct mv_err *err)
{
	struct sw_dump *d;
	int rc;

	if (memcmp(vs->buf.data, LZ4_MAGIC, 4)) {
		vs->off = true; /* a file named subspace_t, not a dump */
		return 0;
	}
	d = dump_add(v, vs->path);
	if (!d)
		return mv_err_set(err, -ENOMEM, "out of memory");
	vs->ds.dump = (size_t)(d - v->dumps);
	rc = mail_stalwart_dump_scanner_new(dump_record, &vs->ds, &vs->scan,
					    err);
	if (!rc)
		vs->ds.info = mail_stalwart_dump_scanner_info(vs->scan);
	return rc;
}

static int stream_dump_feed(struct vstream *vs, const void *data, size_t len,
			    struct mv_err *err)
{
	int rc;

	if (vs->failed)
		return 0;
	mv_err_clear(&vs->err);
	rc = mail_stalwart_dump_scanner_feed(vs->scan, data, len, &vs->err);
	if (rc == -ENOMEM)
		return mv_err_set(err, rc, "%s", mv_err_msg(&vs->err));
	if (rc)
		vs->failed = true; /* keep the messages before it */
	return 0;
}

static int hook_stream_data(void *ctx, void *stream, const void *data,
			    size_t len, struct mv_err *err)
{
	struct mail_view *v = ctx;
	struct vstream *vs = stream;

	if (vs->off)
		return 0;
	if (vs->kind == VS_MSG) {
		size_t k = MV_MIN(len, vs->cap - vs->buf.len);

		if (!vs->buf.data && mv_buf_reserve(&vs->buf, vs->cap))
			return mv_err_set(err, -ENOMEM, "out of memory");
		if (k && mv_buf_append(&vs->buf, data, k))
			return mv_err_set(err, -ENOMEM, "out of memory");
		return 0;
	}
	if (vs->kind == VS_JSON) {
		if (vs->buf.len + len > MAIL_STALWART_MAX_JSON) {
			vs->off = true;
			mv_buf_release(&vs->buf);
			return 0;
		}
		if (mv_buf_append(&vs->buf, data, len))
			return mv_err_set(err, -ENOMEM, "out of memory");
		return 0;
	}
	if (!vs->scan) {
		int rc;
		/* collect the 4 magic bytes, then feed them first */
		size_t k = MV_MIN(len, 4 - vs->buf.len);

		if (mv_buf_append(&vs->buf, data, k))
			return mv_err_set(err, -ENOMEM, "out of memory");
		data = (const uint8_t *)data + k;
		len -= k;
		if (vs->buf.len < 4)
			return 0;
		rc = stream_dump_start(v, vs, err);
		if (rc)
			return rc;
		if (vs->off)
			return 0;
		rc = stream_dump_feed(vs, vs->buf.data, vs->buf.len, err);
		mv_buf_release(&vs->buf);
		if (rc)
			return rc;
	}
	return len ? stream_dump_feed(vs, data, len, err) : 0;
}

static void *hook_stream_end(void *ctx, void *stream, bool keep)
{
	struct mail_view *v = ctx;
	struct vstream *vs = stream;
	struct vres *res = NULL;

	if (vs->kind == VS_MSG && vs->off) {
		free(vs); /* large_unchanged: file_done names it */
		return NULL;
	}
	if (vs->kind == VS_MSG && !keep)
		v->held -= vs->cap;
	if (keep && vs->kind == VS_MSG) {
		res = calloc(1, sizeof(*res));
		if (res) {
			res->kind = vs->mkind;
			res->streamed = true;
			res->held = vs->cap;
			res->raw_len = vs->buf.len;
			res->raw = vs->buf.data ? vs->buf.data : malloc(1);
			memset(&vs->buf, 0, sizeof(vs->buf));
			res->layers = mail_crypt_detect(res->raw, res->raw_len);
		}
		if (res && !res->raw) {
			free(res);
			res = NULL;
		}
		if (!res)
			v->held -= vs->cap;
	} else if (keep && vs->kind == VS_JSON && !vs->off) {
		res = calloc(1, sizeof(*res));
		if (res) {
			res->kind = RES_JSON;
			res->raw_len = vs->buf.len;
			res->raw = vs->buf.data ? vs->buf.data : malloc(1);
			if (!res->raw) {
				free(res);
				res = NULL;
			}
			memset(&vs->buf, 0, sizeof(vs->buf));
		}
	} else if (keep && vs->kind == VS_DUMP) {
		if (!vs->scan && !vs->off && vs->buf.len < 4) {
			/* shorter than the magic: not a dump */
		} else if (vs->scan) {
			v->st.dumps++;
			if (vs->failed ||
			    mail_stalwart_dump_scanner_end(vs->scan, &vs->err))
				v->st.dump_errors++;
		}
	}
	mail_stalwart_dump_scanner_free(vs->scan);
	mv_buf_release(&vs->buf);
	free(vs->path);
	free(vs);
	return res;
}

/* True when a dump with the same chunks is listed (a hard link). */
static bool dump_stored_twice(struct mail_view *v, const struct tree_entry *e)
{
	size_t i;

	for (i = 0; i < v->ndumps; i++) {
		const struct tree_entry *o = &v->dumps[i].e;

		if (v->dumps[i].have && o->nchunks == e->nchunks &&
		    !memcmp(o->chunks[0].id, e->chunks[0].id, MV_ID_LEN) &&
		    o->size == e->size)
			return true;
	}
	return false;
}

/* Scan a dump file whose chunks are in the repository already. */
static int dump_scan_stored(struct mail_view *v, const char *path,
			    const struct tree_entry *e, struct mv_err *err)
{
	struct mv_buf chunk = MV_BUF_INIT;
	struct vstream *vs;
	uint32_t i;
	int rc = 0;

	vs = hook_stream_begin(v, path, e);
	if (!vs)
		return mv_err_set(err, -ENOMEM, "out of memory");
	for (i = 0; !rc && i < e->nchunks && !vs->off && !vs->failed; i++) {
		rc = repo_chunk_read(v->r, e->chunks[i].id, false, &chunk,
				     &vs->err);
		if (rc && rc != -ENOMEM) {
			vs->failed = vs->scan != NULL;
			rc = 0;
			break;
		}
		if (!rc)
			rc = hook_stream_data(v, vs, chunk.data, chunk.len,
					      err);
	}
	mv_buf_release(&chunk);
	if (rc == -ENOMEM && err && !err->code)
		mv_err_set(err, rc, "out of memory");
	hook_stream_end(v, vs, rc == 0);
	return rc;
}

static int hook_file_done(void *ctx, const char *path,
			  const struct tree_entry *e, void *result,
			  struct mv_err *err)
{
	struct mail_view *v = ctx;
	struct vres *res = result;
	struct vwhere wh;
	struct vpath vp;
	char *dir = NULL;
	size_t n0;
	int rc = 0;

	if (res) {
		v->held -= res->held;
		res->held = 0;
	}
	if (e->type != TREE_REG)
		goto out;
	classify(path, &vp);
	if (res && res->kind == RES_KEY) {
		rc = keys_add(v, res->raw, res->raw_len, err);
		if (!rc && e->nchunks == 1 && v->npems)
			key_id_add(v, e->chunks[0].id);
		goto out;
	}
	if (vp.kind == RES_JSON) {
		rc = json_done(v, path, &vp, e, res, err);
		goto out;
	}
	if (!strcmp(vp.leaf, "subspace_t") && e->nchunks &&
	    !dump_find(v, path) && !dump_stored_twice(v, e)) {
		/* no bytes came through (an unchanged file reused from the
		 * previous snapshot): scan its stored chunks */
		rc = dump_scan_stored(v, path, e, err);
		if (rc)
			goto out;
	}
	if (v->ndumps && !strcmp(vp.leaf, "subspace_t"))
		dump_done(v, path, e);
	if (vp.kind != RES_MSG && vp.kind != RES_BLOB && vp.kind != RES_EML)
		goto out;
	memset(&wh, 0, sizeof(wh));
	wh.time = -1;
	if (vp.kind == RES_MSG) {
		wh.kind = VK_MAILDIR;
		wh.account = vp.loc.account;
		wh.mailbox = vp.loc.mailbox;
		wh.base = vp.mf.base;
		wh.base_len = vp.mf.base_len;
		wh.time = vp.mf.time;
		wh.has_size = vp.mf.has_size;
		wh.size = vp.mf.size;
		wh.srcdir =
			src_intern(v, &v->prev_srcdir, path, vp.loc.folder_len);
		wh.srcacc = src_intern(v, &v->prev_srcacc, path,
				       vp.loc.root_len ? vp.loc.root_len
						       : vp.loc.folder_len);
		if (!wh.srcdir || !wh.srcacc) {
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
	} else {
		size_t dl = vp.kind == RES_BLOB ? vp.dir_len
						: (size_t)(vp.leaf - path);

		dir = strndup(path, dl ? dl : 0);
		if (!dir)
			return mv_err_set(err, -ENOMEM, "out of memory");
		if (vp.kind == RES_EML && dl)
			dir[dl - 1] = '\0';
		wh.kind = vp.kind == RES_BLOB ? VK_BLOB : VK_EML;
		wh.account = vp.kind == RES_BLOB ? dir : MAIL_VIEW_LOOSE;
		wh.mailbox = vp.kind == RES_BLOB ? "" : dir;
		wh.base = vp.leaf;
		wh.base_len = strlen(vp.leaf);
		/* an export's messages: its directory; loose ones: theirs */
		wh.srcdir = wh.srcacc =
			src_intern(v, &v->prev_srcdir, dir, strlen(dir));
		if (!wh.srcdir) {
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
	}
	if (!res && !e->nchunks && !known_find_entry(v, e)) {
		/* an empty file has no chunk for analyze() to see */
		res = calloc(1, sizeof(*res));
		if (!res) {
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		res->kind = vp.kind;
		decode_parse(v, res, "", 0, 0, wh.time >= 0 ? wh.time : 0);
	}
	if (res && res->streamed && !res->known && !res->parsed &&
	    !res->decode_rc) {
		/* the prefix of a large message, now that its content id
		 * is known: a message catalogued before is not decoded */
		if (known_find_entry(v, e))
			res->known = true;
		else
			decode_parse(v, res, res->raw, res->raw_len, e->size,
				     wh.time >= 0 ? wh.time : 0);
	}
	if (res && res->decode_rc == -ENOKEY && res->raw &&
	    res->keys_gen != v->keys_gen) {
		/* a key arrived after this message was analysed */
		res->decode_rc = 0;
		res->why[0] = '\0';
		decode_parse(v, res, res->raw, res->raw_len, e->size,
			     wh.time >= 0 ? wh.time : 0);
	}
	n0 = v->nmsgs;
	rc = record_msg(v, &wh, e, res, err);
	if (!rc && vp.kind == RES_MSG && e->size > v->small_file && v->db &&
	    v->nmsgs == n0 + 1 && v->msgs[n0].state == VM_OK)
		large_note(v, path, e, v->msgs[n0].cid);
out:
	free(dir);
	res_free(res);
	return rc;
}

/* ---- setup ------------------------------------------------------------ */

static const char view_schema[] =
	"CREATE TABLE IF NOT EXISTS view ("
	" cid BLOB PRIMARY KEY, date INTEGER, from_ TEXT, subject TEXT,"
	" size INTEGER, layers INTEGER) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS large ("
	" job TEXT NOT NULL, path TEXT NOT NULL, size INTEGER,"
	" mtime INTEGER, cid BLOB, PRIMARY KEY (job, path)) WITHOUT ROWID;";

int mail_view_catalog_path(struct repo *r, char *out, size_t n,
			   struct mv_err *err)
{
	const char *loc = repo_location(r);
	const char *cache = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	int k;

	if (!strstr(loc, "://")) {
		k = snprintf(out, n, "%s/catalog.db", loc);
	} else {
		char id[2 * MV_REPO_ID_LEN + 1];

		mv_hex(repo_get_config(r)->id, MV_REPO_ID_LEN, id);
		if (cache && *cache)
			k = snprintf(out, n, "%s/mailvault/%s/catalog.db",
				     cache, id);
		else
			k = snprintf(out, n,
				     "%s/.cache/mailvault/%s/catalog.db",
				     home ? home : "/tmp", id);
	}
	if (k < 0 || (size_t)k >= n)
		return mv_err_set(err, -ENAMETOOLONG,
				  "catalogue path too long");
	return 0;
}

static int catalog_open(struct mail_view *v, struct mv_err *err)
{
	char path[4096], *slash;
	int rc;

	rc = mail_view_catalog_path(v->r, path, sizeof(path), err);
	if (rc)
		return rc;
	slash = strrchr(path, '/');
	if (slash && strstr(repo_location(v->r), "://")) {
		*slash = '\0';
		rc = mv_mkdir_p(path, 0700);
		*slash = '/';
		if (rc)
			return mv_err_set(err, rc, "cannot create '%s'", path);
	}
	rc = mv_create_private(path); /* not 0644 less the umask */
	if (rc)
		return mv_err_set(err, rc, "cannot create catalogue '%s': %s",
				  path, strerror(-rc));
	if (sqlite3_open_v2(path, &v->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
			    NULL) != SQLITE_OK) {
		rc = mv_err_set(err, -EIO, "cannot open catalogue '%s': %s",
				path, v->db ? sqlite3_errmsg(v->db) : "");
		sqlite3_close(v->db);
		v->db = NULL;
		return rc;
	}
	rc = index_sqlite_defend(v->db, "catalogue", err);
	if (rc)
		return rc;
	sqlite3_busy_timeout(v->db, 10000);
	/* a daily backup looks every message up (by content, then its
	 * place) in random order: with SQLite's default 2 MB page cache
	 * most lookups went to the file (16k preads a day at 17k messages,
	 * +18 % on the backup).  32 MiB holds the catalogue of about 50k
	 * messages; larger ones still read less. */
	sqlite3_exec(v->db,
		     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
		     " PRAGMA cache_size=-32768",
		     NULL, NULL, NULL);
	if (sqlite3_exec(v->db, view_schema, NULL, NULL, NULL) != SQLITE_OK)
		return mv_err_set(err, -EIO, "catalogue '%s': %s", path,
				  sqlite3_errmsg(v->db));
	rc = mail_catalog_open(v->db, &v->cat, err);
	if (!rc)
		rc = known_load(v, err);
	if (!rc)
		rc = large_load(v, err);
	if (rc)
		mv_err_prefix(err, "'%s'", path);
	return rc;
}

int mail_view_new(struct repo *r, const struct mail_view_opts *o,
		  struct mail_view **out, struct mv_err *err)
{
	struct mail_view *v = calloc(1, sizeof(*v));
	char path[4096];
	int rc;

	if (!v)
		return mv_err_set(err, -ENOMEM, "out of memory");
	pthread_mutex_init(&v->lock, NULL);
	v->r = r;
	v->small_file = repo_get_config(r)->chunker.small_file;
	v->index_body = o->index_body;
	v->job = strdup(o->job ? o->job : "");
	v->hook.ctx = v;
	v->hook.analyze = hook_analyze;
	v->hook.file_done = hook_file_done;
	v->hook.free_result = hook_free;
	v->hook.stream_begin = hook_stream_begin;
	v->hook.stream_data = hook_stream_data;
	v->hook.stream_end = hook_stream_end;
	if (!v->job) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	if (o->keys_dir) {
		char *pem = NULL;
		size_t len = 0;

		snprintf(path, sizeof(path), "%s/%s", o->keys_dir, KEY_FILE);
		rc = mv_read_file(path, KEY_MAX, &pem, &len, err);
		if (!rc) {
			struct mail_crypt_keys *k = NULL;

			rc = mail_crypt_keys_new(&k, err);
			if (!rc)
				rc = mail_crypt_keys_add_pem(k, pem, len, err);
			mail_crypt_keys_free(k);
		}
		if (!rc)
			rc = keys_add(v, pem, len, err);
		if (rc) {
			free(pem);
			mv_err_prefix(err, "--mailcow-keys '%s'", path);
			goto fail;
		}
		v->dir_pem = pem;
		v->dir_pem_len = len;
	}
	if (!o->no_catalog) {
		rc = catalog_open(v, err);
		if (rc)
			goto fail;
	}
	*out = v;
	return 0;
fail:
	mail_view_free(v);
	return rc;
}

/* Free the messages, their names, the known set and the large-message
 * tables: what finish and catalog_record need, and nothing later.
 * v->nmsgs stays (mail_view_commit tests it). */
static void release_messages(struct mail_view *v)
{
	size_t i;

	for (i = 0; v->msgs && i < v->nmsgs; i++) {
		struct vmsg *m = &v->msgs[i];

		free(m->base);
		free(m->reason);
		free(m->from);
		free(m->subject);
		free(m->name);
		free(m->fname);
		free(m->mdir);
		free(m->raw);
		vfile_release(&m->e);
		if (m->msg) {
			mail_msg_release(m->msg);
			free(m->msg);
		}
	}
	free(v->msgs);
	v->msgs = NULL;
	v->capmsgs = 0;
	for (i = 0; i < v->strs_cap; i++)
		free(v->strs[i]);
	free(v->strs);
	v->strs = NULL;
	v->strs_cap = v->nstrs = 0;
	for (i = 0; i < v->lprev_cap; i++)
		free(v->lprev[i].path);
	free(v->lprev);
	v->lprev = NULL;
	v->lprev_cap = 0;
	for (i = 0; i < v->nlnow; i++)
		free(v->lnow[i].path);
	free(v->lnow);
	v->lnow = NULL;
	v->nlnow = v->caplnow = 0;
	for (i = 0; i < v->cap; i++) {
		free(v->tab[i].from);
		free(v->tab[i].subject);
	}
	free(v->tab);
	v->tab = NULL;
	v->cap = v->nknown = 0;
}

void mail_view_free(struct mail_view *v)
{
	size_t i;

	if (!v)
		return;
	/* a backup that failed after mail_view_finish: drop its records */
	catalog_record_join(v);
	if (v->rec_open)
		mail_catalog_snapshot_abort(v->cat);
	release_messages(v);
	free(v->prev_acc_raw);
	free(v->prev_mbox_raw);
	if (v->batch)
		sqlite3_exec(v->db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_finalize(v->view_ins);
	for (i = 0; i < v->nexps; i++) {
		struct sw_export *x = &v->exps[i];

		free(x->dir);
		mv_buf_release(&x->json[0]);
		mv_buf_release(&x->json[1]);
		tree_entry_release(&x->ent[0]);
		tree_entry_release(&x->ent[1]);
	}
	free(v->exps);
	for (i = 0; i < v->ndumps; i++) {
		free(v->dumps[i].path);
		tree_entry_release(&v->dumps[i].e);
	}
	free(v->dumps);
	mail_catalog_close(v->cat);
	if (v->db)
		sqlite3_close(v->db);
	mail_crypt_keys_free(v->keys);
	for (i = 0; i < v->nold; i++)
		mail_crypt_keys_free(v->old[i]);
	free(v->old);
	for (i = 0; i < v->npems; i++)
		free(v->pems[i]);
	free(v->pems);
	free(v->pem_lens);
	free(v->dir_pem);
	free(v->job);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

const struct ingest_hook *mail_view_hook(struct mail_view *v)
{
	return &v->hook;
}

const struct mail_view_stats *mail_view_get_stats(const struct mail_view *v)
{
	return &v->st;
}

void mail_view_content_id(struct repo *r, const struct tree_entry *e,
			  uint8_t out[MV_ID_LEN])
{
	/* out of memory: an id no content has, so the message is only
	 * parsed again, never taken for another */
	if (tree_chunks_key(r, e->chunks, e->nchunks, out))
		memset(out, 0, MV_ID_LEN);
}

/* ---- the view in the tree --------------------------------------------- */

/* Same folder, same base, same content: one message met twice. */
static int vmsg_place_cmp(const struct vmsg *x, const struct vmsg *y)
{
	int c = strcmp(x->account, y->account);

	if (!c)
		c = strcmp(x->mailbox, y->mailbox);
	if (!c)
		c = strcmp(x->base, y->base);
	if (!c)
		c = memcmp(x->cid, y->cid, MV_ID_LEN);
	return c;
}

static int str_cmp0(const char *x, const char *y)
{
	if (!x || !y)
		return (x != NULL) - (y != NULL);
	return strcmp(x, y);
}

#define CMP_NUM(a, b)                              \
	do {                                       \
		if ((a) != (b))                    \
			return (a) < (b) ? -1 : 1; \
	} while (0)

/* A total order of the messages: by place (the -2/-3 variants of a name
 * follow it), then by everything that reaches a view entry, so that which
 * of two copies of one file is shown, and named first, never depends on
 * the order the input delivered them (tar member order, directory order;
 * qsort is not stable). */
static int vmsg_cmp(const void *a, const void *b)
{
	const struct vmsg *x = a, *y = b;
	int c = vmsg_place_cmp(x, y);

	if (c)
		return c;
	CMP_NUM(x->kind, y->kind);
	CMP_NUM(x->state, y->state);
	c = str_cmp0(x->srcdir, y->srcdir);
	if (!c)
		c = str_cmp0(x->srcacc, y->srcacc);
	if (!c)
		c = str_cmp0(x->e.user, y->e.user);
	if (!c)
		c = str_cmp0(x->e.group, y->e.group);
	if (!c)
		c = str_cmp0(x->e.acl, y->e.acl);
	if (c)
		return c;
	CMP_NUM(x->e.mode, y->e.mode);
	CMP_NUM(x->e.uid, y->e.uid);
	CMP_NUM(x->e.gid, y->e.gid);
	CMP_NUM(x->e.size, y->e.size);
	CMP_NUM(x->e.mtime_sec, y->e.mtime_sec);
	CMP_NUM(x->date, y->date);
	CMP_NUM(x->size, y->size);
	CMP_NUM(x->layers, y->layers);
	CMP_NUM(x->has_mtime, y->has_mtime);
	CMP_NUM(x->mtime, y->mtime);
	CMP_NUM(x->dump, y->dump);
	CMP_NUM(x->doff, y->doff);
	CMP_NUM(x->hidden, y->hidden);
	return str_cmp0(x->mdir, y->mdir);
}

/* Add the directory at path and its parents below the view root. */
/* The view folder standing for the source directory at snapshot path
 * src: its mode, owner and group, time mtime.  Without src in the tree (a
 * tar with no member for it) those of a file of it, file_mode with x
 * where it has r. */
static void view_dir_from(struct tree_builder *tb, const char *src,
			  uint32_t file_mode, uint32_t uid, uint32_t gid,
			  int64_t mtime, struct tree_entry *out)
{
	const struct tree_entry *d = src ? tree_builder_get(tb, src) : NULL;

	memset(out, 0, sizeof(*out));
	out->type = TREE_DIR;
	out->mtime_sec = mtime;
	if (d && d->type == TREE_DIR) {
		out->mode = d->mode & 0777;
		out->uid = d->uid;
		out->gid = d->gid;
		out->user = d->user;
		out->group = d->group;
		out->acl_access = d->acl_access;
	} else {
		out->mode = (file_mode & 0777) | (file_mode & 0444) >> 2;
		out->uid = uid;
		out->gid = gid;
	}
}

static void view_top_add(struct view_top *t, const struct tree_entry *acc)
{
	if (!t->have) {
		t->have = true;
		t->mode = acc->mode & 0777;
		t->uid = acc->uid;
		t->gid = acc->gid;
		return;
	}
	t->mixed |= t->uid != acc->uid || t->gid != acc->gid;
	t->mode &= acc->mode;
}

/* Set top folder path from t (nothing when it has no account). */
static int view_top_set(struct tree_builder *tb, const char *path,
			const struct view_top *t, int64_t mtime,
			struct mv_err *err)
{
	struct tree_entry d;

	if (!t->have)
		return 0;
	memset(&d, 0, sizeof(d));
	d.type = TREE_DIR;
	d.mtime_sec = mtime;
	d.mode = t->mixed ? 0711 : t->mode;
	d.uid = t->mixed ? 0 : t->uid;
	d.gid = t->mixed ? 0 : t->gid;
	return tree_builder_add(tb, path, &d, err);
}

/* The directories of path that are not there yet, as dir (a folder
 * placed before keeps its own metadata). */
static int add_dirs(struct tree_builder *tb, const char *path,
		    const struct tree_entry *dir, struct mv_err *err)
{
	char *p = strdup(path), *s;
	int rc = 0;

	if (!p)
		return mv_err_set(err, -ENOMEM, "out of memory");
	for (s = strchr(p, '/'); !rc; s = strchr(s + 1, '/')) {
		if (s)
			*s = '\0';
		if (!tree_builder_get(tb, p))
			rc = tree_builder_add(tb, p, dir, err);
		if (!s)
			break;
		*s = '/';
	}
	free(p);
	return rc;
}

static int cid_ptr_cmp(const void *a, const void *b)
{
	const struct vmsg *x = *(struct vmsg *const *)a;
	const struct vmsg *y = *(struct vmsg *const *)b;

	return memcmp(x->cid, y->cid, MV_ID_LEN);
}

/* A new message without a usable Date is dated by its place (maildir
 * delivery time, file time), so two copies of it met in one backup could
 * be named with different times, and the catalogue would keep whichever
 * came first in the input - and name both that way from the next backup
 * on.  Give every copy the earliest of their times: the same whatever the
 * input order, and what the catalogue records (catalog_record). */
static int fallback_dates_unify(struct mail_view *v, struct mv_err *err)
{
	struct vmsg **a = NULL;
	size_t n = 0, i, k;

	for (i = 0; i < v->nmsgs; i++)
		n += v->msgs[i].msg && (v->msgs[i].msg->flags & DATE_FALLBACK);
	if (!n)
		return 0;
	a = malloc(n * sizeof(*a));
	if (!a)
		return mv_err_set(err, -ENOMEM, "out of memory");
	for (i = 0, k = 0; i < v->nmsgs; i++)
		if (v->msgs[i].msg && (v->msgs[i].msg->flags & DATE_FALLBACK))
			a[k++] = &v->msgs[i];
	qsort(a, n, sizeof(*a), cid_ptr_cmp);
	/* a[k]->date becomes the earliest of its cid's group */
	for (i = 0; i < n; i = k) {
		int64_t t = a[i]->date;
		size_t j;

		for (k = i + 1; k < n && !cid_ptr_cmp(&a[i], &a[k]); k++)
			t = MV_MIN(t, a[k]->date);
		for (j = i; j < k; j++)
			a[j]->date = t;
	}
	/* every copy, parsed or not (a hard link took its first copy's) */
	for (i = 0; i < v->nmsgs; i++) {
		struct vmsg *m = &v->msgs[i], key, *kp = &key, **hit;

		if (m->state != VM_OK)
			continue;
		memcpy(key.cid, m->cid, MV_ID_LEN);
		hit = bsearch(&kp, a, n, sizeof(*a), cid_ptr_cmp);
		if (!hit || m->date == (*hit)->date)
			continue;
		m->date = (*hit)->date;
		if (m->msg)
			m->msg->date = m->date;
		free(m->fname); /* formatted with the old time */
		m->fname = NULL;
	}
	for (i = 0; i < n; i++) {
		if (a[i]->msg)
			a[i]->msg->date = a[i]->date;
		free(a[i]->fname);
		a[i]->fname = NULL;
	}
	free(a);
	return 0;
}

/* No key in this backup: messages known to be encrypted (named from the
 * catalogue) cannot be read decoded, so show them raw. */
static void demote_encrypted(struct mail_view *v)
{
	size_t i;

	for (i = 0; i < v->nmsgs; i++) {
		struct vmsg *m = &v->msgs[i];

		if (!(m->layers & MAIL_CRYPT_ENCRYPTED) || m->hidden)
			continue;
		if (m->state == VM_LARGE) {
			m->layers = 0;
			m->size = m->e.size;
			v->st.decoded--;
			continue;
		}
		if (m->state != VM_OK)
			continue;
		m->reason = strdup("no key");
		if (!m->reason)
			continue;
		m->state = VM_NOKEY;
		m->layers = 0;
		m->size = m->e.size;
		v->st.no_key++;
		v->st.decoded--;
	}
}

/* The size of a large message decoded from its prefix at finish. */
static bool retry_size(const struct vmsg *m, struct vres *res)
{
	struct maildir_file mf;

	if (m->kind != VK_MAILDIR || maildir_parse_name(m->base, &mf))
		memset(&mf, 0, sizeof(mf));
	return partial_size(res, m->e.size, mf.has_size, mf.size);
}

/* Messages met before the key file in the input: decode them now. */
static int retry_no_key(struct mail_view *v, struct mv_err *err)
{
	size_t i;

	for (i = 0; v->npems && i < v->nmsgs; i++) {
		struct vmsg *m = &v->msgs[i];
		struct vres res;

		if (m->state != VM_NOKEY || !m->raw || m->hidden)
			continue;
		memset(&res, 0, sizeof(res));
		res.layers = mail_crypt_detect(m->raw, m->raw_len);
		decode_parse(v, &res, m->raw, m->raw_len, m->e.size, m->date);
		if (res.decode_rc || !res.parsed ||
		    (res.partial && !retry_size(m, &res))) {
			mail_msg_release(&res.msg);
			continue;
		}
		free(m->reason);
		m->reason = NULL;
		m->state = VM_OK;
		m->layers = res.layers;
		v->st.no_key--;
		v->st.decoded++;
		v->st.parsed++;
		if (res.msg.flags &
		    ~(unsigned)(MAIL_MSG_NO_MESSAGE_ID | MAIL_MSG_LEADING_JUNK))
			v->st.bad_headers++;
		if (from_parsed(m, &res)) {
			mail_msg_release(&res.msg);
			return mv_err_set(err, -ENOMEM, "out of memory");
		}
		free(m->raw);
		m->raw = NULL;
	}
	return 0;
}

static int key_id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, MV_ID_LEN);
}

static int store_dir_key(struct mail_view *v, struct repo_writer *w,
			 struct mv_err *err)
{
	uint8_t id[MV_ID_LEN];
	bool is_new;
	int rc;

	if (!v->dir_pem)
		return 0;
	repo_chunk_id(v->r, v->dir_pem, v->dir_pem_len, id);
	rc = repo_writer_put(w, REC_DATA, id, v->dir_pem, v->dir_pem_len, NULL,
			     0, &is_new, err);
	if (!rc)
		key_id_add(v, id);
	return rc;
}

/* ---- Stalwart account exports ---------------------------------------- */

#define NOT_LISTED "(not in emails.json)"

/* The JSON file k of x as complete bytes: what the hook saw, or, for a
 * file larger than one chunk, its chunks read back when they are already
 * stored (an unchanged file).  Else the first chunk stays: the parser
 * reads up to its last complete element. */
static void export_complete(struct mail_view *v, struct sw_export *x, int k)
{
	struct mv_buf all = MV_BUF_INIT, chunk = MV_BUF_INIT;
	const struct tree_entry *e = &x->ent[k];
	uint32_t i;
	int rc = 0;

	if (x->whole[k] || !e->nchunks)
		return;
	for (i = 0; !rc && i < e->nchunks; i++) {
		rc = repo_chunk_read(v->r, e->chunks[i].id, false, &chunk,
				     NULL);
		if (!rc && mv_buf_append(&all, chunk.data, chunk.len))
			rc = -ENOMEM;
	}
	if (!rc && all.len == e->size) {
		mv_buf_release(&x->json[k]);
		x->json[k] = all;
		x->whole[k] = true;
		memset(&all, 0, sizeof(all));
	}
	mv_buf_release(&all);
	mv_buf_release(&chunk);
}

/* A copy of blob message b placed in a mailbox (b may move: index). */
static int place_clone(struct mail_view *v, size_t b, const char *account,
		       const char *mailbox, const char *base, bool first,
		       struct vmsg **out, struct mv_err *err)
{
	struct vmsg *m, *o;
	int rc = msgs_grow(v, err);

	if (rc)
		return rc;
	o = &v->msgs[b];
	m = &v->msgs[v->nmsgs];
	memset(m, 0, sizeof(*m));
	memcpy(m->cid, o->cid, MV_ID_LEN);
	m->kind = VK_BLOB;
	m->date = o->date;
	m->size = o->size;
	m->layers = o->layers;
	m->state = o->state;
	m->account = intern(v, sanitize_path(account));
	m->mailbox = intern(v, sanitize_path(mailbox));
	m->srcdir = m->srcacc = o->srcdir;
	m->base = strdup(base);
	m->from = o->from ? strdup(o->from) : NULL;
	m->subject = o->subject ? strdup(o->subject) : NULL;
	m->reason = o->reason ? strdup(o->reason) : NULL;
	if (vfile_copy(&m->e, &o->e)) {
		vfile_release(&m->e);
		free(m->base);
		free(m->from);
		free(m->subject);
		free(m->reason);
		return -ENOMEM;
	}
	v->nmsgs++;
	if (!m->account || !m->mailbox || !m->base || (o->from && !m->from) ||
	    (o->subject && !m->subject) || (o->reason && !m->reason))
		return mv_err_set(err, -ENOMEM, "out of memory");
	if (first) {
		/* the parse goes to the catalogue once */
		m->msg = o->msg;
		o->msg = NULL;
		m->kind = VK_EML;
		count(v, m, o->cnt);
		m->kind = VK_BLOB;
		o->cnt = 0;
	}
	v->st.messages++;
	v->st.stalwart++;
	*out = m;
	return 0;
}

static int blob_cmp(const void *a, const void *b)
{
	const struct vmsg *x = *(struct vmsg *const *)a;
	const struct vmsg *y = *(struct vmsg *const *)b;

	return strcmp(x->base, y->base);
}

/* The custom keywords of one Maildir++ folder, letters a-z in name order
 * (its dovecot-keywords file). */
struct kwset {
	const char *kw[26];
	unsigned n;
};

static int kw_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool is_custom(const char *kw)
{
	return !maildir_flags_from_keyword(kw) && strcasecmp(kw, "$recent") &&
	       !strpbrk(kw, " \n\r\t");
}

/* kws[n_mailboxes] is the root (mailboxes unknown to mailboxes.json). */
static void kw_collect(const struct mail_stalwart_export *exp,
		       struct kwset *kws)
{
	size_t i, k, j;

	for (i = 0; i < exp->n_emails; i++) {
		const struct mail_stalwart_email *em = &exp->emails[i];

		for (k = 0; k < em->n_mailbox_ids; k++) {
			const struct mail_stalwart_mailbox *mb =
				mail_stalwart_mailbox_find(exp,
							   em->mailbox_ids[k]);
			struct kwset *ks =
				&kws[mb ? (size_t)(mb - exp->mailboxes)
					: exp->n_mailboxes];

			for (j = 0; j < em->n_keywords; j++) {
				unsigned t;

				if (!is_custom(em->keywords[j]))
					continue;
				for (t = 0; t < ks->n; t++)
					if (!strcmp(ks->kw[t], em->keywords[j]))
						break;
				if (t == ks->n && ks->n < 26)
					ks->kw[ks->n++] = em->keywords[j];
			}
		}
	}
	for (i = 0; i <= exp->n_mailboxes; i++)
		if (kws[i].n > 1)
			qsort(kws[i].kw, kws[i].n, sizeof(kws[i].kw[0]),
			      kw_cmp);
}

/* Maildir++ path of one placed message below maildir/. */
static int mdir_path(struct vmsg *m, const char *account, const char *path,
		     bool inbox, const struct mail_stalwart_email *em,
		     const struct kwset *ks, int64_t rtime)
{
	char folder[1024], acc[MAIL_NAME_MAX + 1], info[64], *p = NULL;
	unsigned flags = 0;
	uint32_t letters = 0;
	size_t i;

	mail_name_sanitize(account, acc, sizeof(acc), MAIL_NAME_MAX);
	if (inbox)
		folder[0] = '\0';
	else if (maildir_folder_encode(path, folder, sizeof(folder)))
		snprintf(folder, sizeof(folder), "._%s", em->id ? em->id : "");
	for (i = 0; i < em->n_keywords; i++) {
		unsigned t;

		flags |= maildir_flags_from_keyword(em->keywords[i]);
		for (t = 0; ks && t < ks->n; t++)
			if (!strcmp(ks->kw[t], em->keywords[i]))
				letters |= 1u << t;
	}
	maildir_info(flags, letters, info, sizeof(info));
	if (m->layers || m->state != VM_OK) {
		if (asprintf(&p, "%s%s%s/cur/%lld.%s.stalwart%s", acc,
			     *folder ? "/" : "", folder, (long long)rtime,
			     m->base, info) < 0)
			p = NULL;
	} else if (asprintf(&p, "%s%s%s/cur/%lld.%s.stalwart,S=%llu%s", acc,
			    *folder ? "/" : "", folder, (long long)rtime,
			    m->base, (unsigned long long)m->e.size, info) < 0) {
		p = NULL;
	}
	m->mdir = p;
	return p ? 0 : -ENOMEM;
}

/* A folder's dovecot-keywords file, stored through w. */
static int mdir_keywords(struct mail_view *v, struct tree_builder *tb,
			 struct repo_writer *w, const char *path,
			 const struct kwset *ks, struct tree_entry *f,
			 struct mv_err *err)
{
	struct mv_buf b = MV_BUF_INIT;
	struct tree_chunk ch;
	char line[512];
	bool is_new;
	unsigned t;
	int rc = 0;

	for (t = 0; t < ks->n; t++) {
		int n = snprintf(line, sizeof(line), "%u %s\n", t, ks->kw[t]);

		if (n > 0 && (size_t)n < sizeof(line) &&
		    mv_buf_append(&b, line, (size_t)n))
			rc = mv_err_set(err, -ENOMEM, "out of memory");
	}
	if (!rc && b.len) {
		repo_chunk_id(v->r, b.data, b.len, ch.id);
		ch.size = (uint32_t)b.len;
		rc = repo_writer_put(w, REC_DATA, ch.id, b.data, b.len, NULL, 0,
				     &is_new, err);
	}
	if (!rc && b.len) {
		f->name = (char *)"dovecot-keywords";
		f->name_len = 16;
		f->size = b.len;
		f->nchunks = 1;
		f->chunks = &ch;
		rc = tree_builder_add(tb, path, f, err);
		f->nchunks = 0;
		f->chunks = NULL;
		f->size = 0;
	}
	mv_buf_release(&b);
	return rc;
}

/* The Maildir++ folders of an export, even empty ones. */
static int mdir_folders(struct mail_view *v, struct tree_builder *tb,
			struct repo_writer *w, const char *account,
			const struct mail_stalwart_export *exp,
			const struct kwset *kws, const struct tree_entry *dir,
			struct mv_err *err)
{
	static const char *const sub[] = {"cur", "new", "tmp"};
	char acc[MAIL_NAME_MAX + 1], folder[1024], *p = NULL;
	struct tree_entry f;
	size_t i, k;
	int rc = 0;

	mail_name_sanitize(account, acc, sizeof(acc), MAIL_NAME_MAX);
	memset(&f, 0, sizeof(f));
	f.type = TREE_REG;
	f.mode = dir->mode & 0666; /* made up: as the export's folder */
	f.mtime_sec = dir->mtime_sec;
	f.uid = dir->uid;
	f.gid = dir->gid;
	f.nlink = 1;
	for (i = 0; !rc && i <= exp->n_mailboxes; i++) {
		const struct mail_stalwart_mailbox *mb =
			i < exp->n_mailboxes ? &exp->mailboxes[i] : NULL;
		bool inbox = !mb || (mb->role && !strcmp(mb->role, "inbox"));

		if (inbox)
			folder[0] = '\0';
		else if (maildir_folder_encode(mb->path, folder,
					       sizeof(folder)))
			continue;
		for (k = 0; !rc && k < 3; k++) {
			free(p);
			if (asprintf(&p, "%s/%s%s%s/%s", MAIL_VIEW_MAILDIR_DIR,
				     acc, *folder ? "/" : "", folder,
				     sub[k]) < 0) {
				p = NULL;
				rc = mv_err_set(err, -ENOMEM, "out of memory");
				break;
			}
			rc = add_dirs(tb, p, dir, err);
		}
		if (!rc && *folder) {
			free(p);
			if (asprintf(&p, "%s/%s/%s/maildirfolder",
				     MAIL_VIEW_MAILDIR_DIR, acc, folder) < 0) {
				p = NULL;
				rc = mv_err_set(err, -ENOMEM, "out of memory");
				break;
			}
			f.name = (char *)"maildirfolder";
			f.name_len = 13;
			rc = tree_builder_add(tb, p, &f, err);
		}
		if (!rc && kws[i].n && w) {
			free(p);
			if (asprintf(&p, "%s/%s%s%s/dovecot-keywords",
				     MAIL_VIEW_MAILDIR_DIR, acc,
				     *folder ? "/" : "", folder) < 0) {
				p = NULL;
				rc = mv_err_set(err, -ENOMEM, "out of memory");
				break;
			}
			rc = mdir_keywords(v, tb, w, p, &kws[i], &f, err);
		}
	}
	free(p);
	return rc;
}

/* Place every email of export x in each of its mailboxes. */
static int export_place(struct mail_view *v, struct sw_export *x,
			struct tree_builder *tb, struct repo_writer *w,
			const struct tree_entry *dir, struct mv_err *err)
{
	struct mail_stalwart_export exp;
	struct tree_entry xd;
	struct kwset *kws = NULL;
	struct vmsg **blobs = NULL;
	const char *leaf = strrchr(x->dir, '/');
	const char *account = leaf ? leaf + 1 : x->dir;
	bool *used = NULL;
	size_t nb = 0, i, j;
	int rc;

	export_complete(v, x, 0);
	export_complete(v, x, 1);
	rc = mail_stalwart_export_parse(
		x->have[0] ? (const char *)x->json[0].data : NULL,
		x->json[0].len,
		x->json[1].data ? (const char *)x->json[1].data : "",
		x->json[1].len, &exp, err);
	if (rc)
		return rc;
	v->st.exports++;
	if (!x->whole[1] || (x->have[0] && !x->whole[0]) ||
	    (exp.problems &
	     (MAIL_STALWART_MAILBOXES_CUT | MAIL_STALWART_EMAILS_CUT |
	      MAIL_STALWART_BAD_JSON | MAIL_STALWART_BAD_ENTRY)))
		v->st.bad_exports++;
	for (i = 0; i < v->nmsgs; i++)
		nb += v->msgs[i].kind == VK_BLOB && v->msgs[i].hidden &&
		      !strcmp(v->msgs[i].account, x->dir);
	blobs = calloc(nb + 1, sizeof(*blobs));
	used = calloc(nb + 1, sizeof(*used));
	kws = calloc(exp.n_mailboxes + 1, sizeof(*kws));
	if (!blobs || !used || !kws) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	/* indices, not pointers: placing grows v->msgs */
	for (i = 0, j = 0; i < v->nmsgs; i++)
		if (v->msgs[i].kind == VK_BLOB && v->msgs[i].hidden &&
		    !strcmp(v->msgs[i].account, x->dir))
			blobs[j++] = &v->msgs[i];
	if (nb > 1)
		qsort(blobs, nb, sizeof(*blobs), blob_cmp);
	for (i = 0; i < nb; i++)
		blobs[i] = (struct vmsg *)(uintptr_t)(blobs[i] - v->msgs);
	kw_collect(&exp, kws);
	/* its Maildir++ folders: as the export's directory */
	view_dir_from(tb, x->dir, dir->mode, dir->uid, dir->gid, dir->mtime_sec,
		      &xd);
	view_top_add(&v->top_mdir, &xd);
	rc = mdir_folders(v, tb, w, account, &exp, kws, &xd, err);
	for (i = 0; !rc && i < exp.n_emails; i++) {
		const struct mail_stalwart_email *em = &exp.emails[i];
		size_t lo = 0, hi = nb, b = SIZE_MAX, k;
		bool first = true;

		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			int c = strcmp(v->msgs[(uintptr_t)blobs[mid]].base,
				       em->blob_id);

			if (!c) {
				b = (uintptr_t)blobs[mid];
				used[mid] = true;
				break;
			}
			if (c < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (b == SIZE_MAX) {
			v->st.missing_blobs++;
			continue;
		}
		if (em->received_at >= 0 && v->msgs[b].msg &&
		    (v->msgs[b].msg->flags &
		     (MAIL_MSG_NO_DATE | MAIL_MSG_BAD_DATE))) {
			v->msgs[b].msg->date = em->received_at;
			v->msgs[b].date = em->received_at;
		}
		for (k = 0; !rc && k < MV_MAX(em->n_mailbox_ids, 1); k++) {
			const struct mail_stalwart_mailbox *mb =
				em->n_mailbox_ids
					? mail_stalwart_mailbox_find(
						  &exp, em->mailbox_ids[k])
					: NULL;
			const char *path = mb ? mb->path : "_";
			bool inbox =
				mb && mb->role && !strcmp(mb->role, "inbox");
			struct vmsg *m;

			rc = place_clone(v, b, account, path,
					 em->id ? em->id : em->blob_id, first,
					 &m, err);
			if (rc)
				break;
			first = false;
			if (em->received_at >= 0) {
				m->has_mtime = true;
				m->mtime = em->received_at;
			}
			if (mdir_path(m, account, path, inbox, em,
				      &kws[mb ? (size_t)(mb - exp.mailboxes)
					      : exp.n_mailboxes],
				      em->received_at >= 0 ? em->received_at
							   : m->e.mtime_sec))
				rc = mv_err_set(err, -ENOMEM, "out of memory");
		}
	}
	/* a cut emails.json lost the records of some blobs: show the ones
	 * that read as messages rather than hide them */
	for (i = 0; !rc &&
		    (exp.problems &
		     (MAIL_STALWART_EMAILS_CUT | MAIL_STALWART_BAD_JSON)) &&
		    i < nb;
	     i++) {
		size_t b = (uintptr_t)blobs[i];
		struct vmsg *m;

		if (used[i] || v->msgs[b].state != VM_OK ||
		    (!v->msgs[b].from && !v->msgs[b].subject))
			continue;
		rc = place_clone(v, b, account, NOT_LISTED, v->msgs[b].base,
				 true, &m, err);
	}
out:
	free(blobs);
	free(used);
	free(kws);
	mail_stalwart_export_release(&exp);
	return rc;
}

static int stalwart_place(struct mail_view *v, struct tree_builder *tb,
			  struct repo_writer *w, const struct tree_entry *dir,
			  struct mv_err *err)
{
	size_t i;
	int rc = 0;

	for (i = 0; !rc && i < v->nexps; i++) {
		struct sw_export *x = &v->exps[i];
		size_t k;
		bool blobs = false;

		/* an export: emails.json with mailboxes.json or blobs/ (any
		 * other program's emails.json is left alone) */
		for (k = 0; !x->have[0] && !blobs && k < v->nmsgs; k++)
			blobs = v->msgs[k].kind == VK_BLOB &&
				!strcmp(v->msgs[k].account, x->dir);
		if (x->have[1] && (x->have[0] || blobs))
			rc = export_place(v, x, tb, w, dir, err);
	}
	return rc;
}

/* The view name of m before it is made unique in its folder. */
static int name_format(const struct vmsg *m, char *name, size_t n)
{
	char subj[MAIL_NAME_MAX + 1];
	int rc;

	switch (m->state) {
	case VM_NOKEY:
	case VM_CORRUPT:
		snprintf(subj, sizeof(subj), "%s %s", m->reason, m->base);
		rc = mail_name_format(m->date, "(undecodable)", subj, m->cid,
				      MV_ID_LEN, name, n);
		break;
	case VM_LARGE:
		rc = mail_name_format(m->date, "(large message)", m->base,
				      m->cid, MV_ID_LEN, name, n);
		break;
	default:
		rc = mail_name_format(m->date, m->from, m->subject, m->cid,
				      MV_ID_LEN, name, n);
	}
	return rc;
}

static int view_name(struct vmsg *m, struct mail_name_set *set,
		     struct mv_err *err)
{
	char uniq[MAIL_NAME_MAX + 1];
	int rc;

	if (m->fname) {
		rc = mail_name_set_add(set, m->fname, uniq, sizeof(uniq), err);
	} else {
		char name[MAIL_NAME_MAX + 1];

		rc = name_format(m, name, sizeof(name));
		if (rc)
			return mv_err_set(err, rc, "cannot name message '%s'",
					  m->base);
		rc = mail_name_set_add(set, name, uniq, sizeof(uniq), err);
	}
	if (rc)
		return rc;
	if (m->state == VM_NOKEY || m->state == VM_CORRUPT) {
		size_t n = strlen(uniq);

		if (n > 4 && !strcmp(uniq + n - 4, ".eml"))
			memcpy(uniq + n - 4, ".raw", 4);
	}
	m->name = strdup(uniq);
	return m->name ? 0 : mv_err_set(err, -ENOMEM, "out of memory");
}

/* The mtime of every view folder is the newest mtime of what it holds
 * (its messages, and its subfolders' times; the epoch when it holds
 * nothing): it changes only when its content does, never with the
 * backup's time or with a neighbour folder. */
struct folder_time {
	char *path; /* NULL: free slot */
	int64_t t;
};

struct folder_times {
	struct folder_time *tab; /* open addressing, cap power of two */
	size_t cap, n;
	char *cur; /* the folder noted last, not yet folded into tab */
	int64_t cur_t;
};

static int folder_times_put(struct folder_times *ft, const char *path,
			    size_t len, int64_t t)
{
	size_t i;

	if (2 * (ft->n + 1) > ft->cap) {
		size_t cap = ft->cap ? 2 * ft->cap : 64, k;
		struct folder_time *tab = calloc(cap, sizeof(*tab));

		if (!tab)
			return -ENOMEM;
		for (k = 0; k < ft->cap; k++) {
			if (!ft->tab[k].path)
				continue;
			for (i = str_hash(ft->tab[k].path) & (cap - 1);
			     tab[i].path; i = (i + 1) & (cap - 1))
				;
			tab[i] = ft->tab[k];
		}
		free(ft->tab);
		ft->tab = tab;
		ft->cap = cap;
	}
	{
		char *p = strndup(path, len);
		struct folder_time *e;

		if (!p)
			return -ENOMEM;
		for (i = str_hash(p) & (ft->cap - 1); ft->tab[i].path;
		     i = (i + 1) & (ft->cap - 1))
			if (!strcmp(ft->tab[i].path, p))
				break;
		e = &ft->tab[i];
		if (e->path) {
			free(p);
			e->t = MV_MAX(e->t, t);
		} else {
			e->path = p;
			e->t = t;
			ft->n++;
		}
	}
	return 0;
}

/* Fold the current folder's time into it and its parents. */
static int folder_times_flush(struct folder_times *ft)
{
	size_t len;
	int rc = 0;

	if (!ft->cur)
		return 0;
	for (len = strlen(ft->cur); !rc && len;) {
		const char *slash;

		rc = folder_times_put(ft, ft->cur, len, ft->cur_t);
		slash = memrchr(ft->cur, '/', len);
		len = slash ? (size_t)(slash - ft->cur) : 0;
	}
	free(ft->cur);
	ft->cur = NULL;
	return rc;
}

/* An entry of time t was added to folder (messages come folder by
 * folder: one flush per folder). */
static int folder_times_note(struct folder_times *ft, const char *folder,
			     int64_t t, struct mv_err *err)
{
	if (ft->cur && !strcmp(ft->cur, folder)) {
		ft->cur_t = MV_MAX(ft->cur_t, t);
		return 0;
	}
	if (folder_times_flush(ft) || !(ft->cur = strdup(folder)))
		return mv_err_set(err, -ENOMEM, "out of memory");
	ft->cur_t = t;
	return 0;
}

static int folder_times_apply(struct folder_times *ft, struct tree_builder *tb,
			      struct mv_err *err)
{
	size_t i;

	if (folder_times_flush(ft))
		return mv_err_set(err, -ENOMEM, "out of memory");
	for (i = 0; i < ft->cap; i++) {
		struct tree_entry *e;

		if (!ft->tab[i].path)
			continue;
		e = tree_builder_get(tb, ft->tab[i].path);
		if (e && e->type == TREE_DIR) {
			e->mtime_sec = ft->tab[i].t;
			e->mtime_nsec = 0;
		}
	}
	return 0;
}

static void folder_times_release(struct folder_times *ft)
{
	size_t i;

	for (i = 0; i < ft->cap; i++)
		free(ft->tab[i].path);
	free(ft->tab);
	free(ft->cur);
	memset(ft, 0, sizeof(*ft));
}

static int add_message(struct tree_builder *tb, struct folder_times *ft,
		       struct vmsg *m, const char *folder, const char *name,
		       const struct tree_xattr *keyx,
		       const struct tree_entry *dump, struct mv_err *err)
{
	struct tree_entry ve;
	struct tree_chunk one;
	struct tree_xattr rx;
	uint8_t range[16];
	char *path;
	int rc;

	if (dump)
		ve = *dump;
	else
		vfile_entry(&m->e, m->cid, &one, &ve);
	ve.name = (char *)name;
	ve.name_len = (uint32_t)strlen(name);
	/* the message file's permissions (a dump: the dump file's), so the
	 * view lets read a message exactly who may read the file */
	ve.mode &= 0777;
	ve.mtime_sec = m->has_mtime ? m->mtime : m->date;
	ve.mtime_nsec = 0;
	ve.size = m->size;
	ve.link_group = 0;
	ve.nlink = 1;
	ve.nxattrs = 0;
	ve.xattrs = NULL;
	ve.acl_default = NULL; /* the access ACL decides with the mode */
	ve.ctime_sec = 0;
	ve.ctime_nsec = 0;
	ve.ino = ve.dev = 0;
	ve.xform = TREE_XFORM_NONE;
	if (m->layers) {
		ve.xform = TREE_XFORM_MAILCRYPT;
		ve.nextents = 0;
		ve.extents = NULL;
		/* only an encrypted file needs keys: a compressed one must
		 * not change when a key file comes or goes */
		if (keyx && (m->layers & MAIL_CRYPT_ENCRYPTED)) {
			ve.nxattrs = 1;
			ve.xattrs = (struct tree_xattr *)keyx;
		}
	}
	if (dump) {
		/* the message inside the dump's LZ4 frame */
		ve.xform = TREE_XFORM_STALWART_DUMP;
		ve.nextents = 0;
		ve.extents = NULL;
		mv_put_le64(range, m->doff);
		mv_put_le64(range + 8, m->size);
		rx.name = (char *)MAIL_VIEW_RANGE_XATTR;
		rx.value = range;
		rx.len = sizeof(range);
		ve.nxattrs = 1;
		ve.xattrs = &rx;
	}
	if (asprintf(&path, "%s/%s", folder, name) < 0)
		return mv_err_set(err, -ENOMEM, "out of memory");
	rc = tree_builder_add(tb, path, &ve, err);
	free(path);
	if (!rc)
		rc = folder_times_note(ft, folder, ve.mtime_sec, err);
	return rc;
}

int mail_view_finish(struct mail_view *v, struct tree_builder *tb,
		     struct repo_writer *w, int64_t time_ns, struct mv_err *err)
{
	struct mail_name_set *set = NULL;
	struct folder_times ft = {0};
	struct tree_entry dir, accd, boxd;
	struct tree_xattr keyx;
	uint8_t keyval[MAX_KEY_FILES * MV_ID_LEN];
	char *folder = NULL;
	const char *acc = NULL, *mbox = NULL;
	size_t i, last;
	int rc;

	/* the last batch of new messages is committed by catalog_record,
	 * on its thread */
	if (!v->nmsgs && !v->nexps)
		return catalog_batch_end(v, err);
	rc = retry_no_key(v, err);
	if (!rc)
		rc = store_dir_key(v, w, err);
	if (rc)
		return rc;
	if (!v->nkey_ids)
		demote_encrypted(v);
	/* sorted: the order key files were met in must not reach the
	 * entries */
	if (v->nkey_ids > 1)
		qsort(v->key_ids, v->nkey_ids, MV_ID_LEN, key_id_cmp);
	for (i = 0; i < v->nkey_ids; i++)
		memcpy(keyval + i * MV_ID_LEN, v->key_ids[i], MV_ID_LEN);
	keyx.name = (char *)MAIL_VIEW_KEYS_XATTR;
	keyx.value = keyval;
	keyx.len = (uint32_t)(v->nkey_ids * MV_ID_LEN);
	/* until its accounts are known: root's only */
	memset(&dir, 0, sizeof(dir));
	dir.type = TREE_DIR;
	dir.mode = 0700;
	/* folder times are settled by folder_times_apply(): the backup's
	 * time would change every folder entry every day */
	dir.mtime_sec = 0;
	rc = stalwart_place(v, tb, w, &dir, err);
	if (!rc)
		rc = view_top_set(tb, MAIL_VIEW_MAILDIR_DIR, &v->top_mdir,
				  dir.mtime_sec, err);
	if (rc)
		return rc;
	for (i = 0; i < v->nmsgs; i++) {
		struct vmsg *m = &v->msgs[i];
		const struct sw_dump *d;
		const char *slash;

		if (m->kind != VK_DUMP || !v->dumps[m->dump].have)
			continue;
		m->hidden = false;
		v->st.messages++;
		/* its folder: as the dump file's directory */
		d = &v->dumps[m->dump];
		m->e.mode = d->e.mode;
		m->e.uid = d->e.uid;
		m->e.gid = d->e.gid;
		slash = strrchr(d->path, '/');
		if (slash && !m->srcdir)
			m->srcdir = m->srcacc =
				src_intern(v, &v->prev_srcdir, d->path,
					   (size_t)(slash - d->path));
	}
	rc = fallback_dates_unify(v, err);
	if (rc)
		return rc;
	if (v->nmsgs > 1)
		qsort(v->msgs, v->nmsgs, sizeof(*v->msgs), vmsg_cmp);
	/* the same file twice in one folder (two daily mailcow folders, a
	 * maildir backed up from two places): shown once */
	for (i = 1, last = 0; i < v->nmsgs; i++) {
		struct vmsg *m = &v->msgs[i], *o = &v->msgs[last];

		if (m->hidden)
			continue;
		if (o->hidden || m->kind != VK_MAILDIR ||
		    vmsg_place_cmp(m, o)) {
			last = i;
			continue;
		}
		m->hidden = true;
		v->st.messages--;
		if (m->msg && !o->msg) {
			o->msg = m->msg;
			m->msg = NULL;
		}
	}
	rc = tree_builder_add(tb, MAIL_VIEW_DIR, &dir, err);
	for (i = 0; !rc && i < v->nmsgs; i++) {
		struct vmsg *m = &v->msgs[i];

		if (m->hidden)
			continue;

		if (!folder || strcmp(acc, m->account) ||
		    strcmp(mbox, m->mailbox)) {
			if (!acc || strcmp(acc, m->account))
				v->st.accounts++;
			v->st.folders++;
			free(folder);
			folder = malloc(strlen(MAIL_VIEW_DIR) +
					strlen(m->account) +
					strlen(m->mailbox) + 3);
			if (!folder) {
				rc = mv_err_set(err, -ENOMEM, "out of memory");
				break;
			}
			/* the account folder as the account's directory,
			 * the mailbox folder as its maildir folder */
			view_dir_from(tb, m->srcacc, m->e.mode, m->e.uid,
				      m->e.gid, dir.mtime_sec, &accd);
			view_dir_from(tb, m->srcdir, m->e.mode, m->e.uid,
				      m->e.gid, dir.mtime_sec, &boxd);
			sprintf(folder, "%s/%s", MAIL_VIEW_DIR, m->account);
			if (!acc || strcmp(acc, m->account)) {
				view_top_add(&v->top_mail, &accd);
				rc = tree_builder_add(tb, folder, &accd, err);
			}
			sprintf(folder, "%s/%s/%s", MAIL_VIEW_DIR, m->account,
				m->mailbox);
			acc = m->account;
			mbox = m->mailbox;
			mail_name_set_free(set);
			set = NULL;
			if (!rc)
				rc = mail_name_set_new(&set, err);
			if (!rc)
				rc = add_dirs(tb, folder, &accd, err);
			if (!rc)
				rc = tree_builder_add(tb, folder, &boxd, err);
			if (rc)
				break;
		}
		rc = view_name(m, set, err);
		if (!rc)
			rc = add_message(tb, &ft, m, folder, m->name,
					 v->nkey_ids ? &keyx : NULL,
					 m->kind == VK_DUMP
						 ? &v->dumps[m->dump].e
						 : NULL,
					 err);
	}
	mail_name_set_free(set);
	free(folder);
	folder = NULL;
	if (!rc)
		rc = view_top_set(tb, MAIL_VIEW_DIR, &v->top_mail,
				  dir.mtime_sec, err);
	/* the Maildir++ trees of Stalwart exports: same chunks */
	for (i = 0; !rc && i < v->nmsgs; i++) {
		struct vmsg *m = &v->msgs[i];
		char *slash;

		if (!m->mdir)
			continue;
		slash = strrchr(m->mdir, '/');
		*slash = '\0';
		if (asprintf(&folder, "%s/%s", MAIL_VIEW_MAILDIR_DIR, m->mdir) <
		    0) {
			*slash = '/';
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			break;
		}
		*slash = '/';
		rc = add_message(tb, &ft, m, folder, slash + 1,
				 v->nkey_ids ? &keyx : NULL, NULL, err);
		free(folder);
	}
	if (!rc)
		rc = folder_times_apply(&ft, tb, err);
	folder_times_release(&ft);
	/* names are final: the catalogue can record the places now */
	if (!rc && v->cat)
		catalog_record_start(v, time_ns);
	return rc;
}

/* ---- catalogue -------------------------------------------------------- */

/* Record every message's place in the catalogue, in one transaction left
 * open for mail_view_commit: the bulk of the catalogue's work, done on
 * its own thread while the repository writes the snapshot's trees. */
static int catalog_record(struct mail_view *v, struct mv_err *err)
{
	sqlite3_stmt *ins = NULL;
	size_t i;
	int rc;

	rc = catalog_batch_end(v, err);
	if (rc)
		return rc;
	rc = mail_catalog_snapshot_begin(v->cat, v->job, NULL, v->rec_time,
					 &v->rec_seq, err);
	if (rc)
		return rc;
	v->rec_open = true;
	if (sqlite3_prepare_v2(v->db,
			       "INSERT OR IGNORE INTO view (cid, date, from_,"
			       " subject, size, layers) VALUES (?,?,?,?,?,?)",
			       -1, &ins, NULL) != SQLITE_OK) {
		rc = mv_err_set(err, -EIO, "catalogue: %s",
				sqlite3_errmsg(v->db));
		goto out;
	}
	/* every new message first: a message in several mailboxes is
	 * parsed into one of its places only */
	for (i = 0; !rc && i < v->nmsgs; i++) {
		struct vmsg *m = &v->msgs[i];

		if (m->state != VM_OK || m->hidden || !m->msg)
			continue;
		rc = mail_catalog_add(v->cat, m->cid, MV_ID_LEN, m->msg, err);
		if (rc)
			break;
		sqlite3_reset(ins);
		sqlite3_bind_blob(ins, 1, m->cid, MV_ID_LEN, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 2, m->date);
		sqlite3_bind_text(ins, 3, m->from, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 4, m->subject, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 5, (int64_t)m->size);
		sqlite3_bind_int(ins, 6, (int)m->layers);
		if (sqlite3_step(ins) != SQLITE_DONE)
			rc = mv_err_set(err, -EIO, "catalogue: %s",
					sqlite3_errmsg(v->db));
	}
	for (i = 0; !rc && i < v->nmsgs; i++) {
		struct vmsg *m = &v->msgs[i];

		if (m->state == VM_OK && !m->hidden)
			rc = mail_catalog_seen(v->cat, v->rec_seq, m->cid,
					       MV_ID_LEN, m->account,
					       m->mailbox, m->name, err);
	}
	if (!rc)
		rc = mail_catalog_snapshot_close(v->cat, v->rec_seq, err);
	if (!rc)
		rc = large_store(v, err);
out:
	sqlite3_finalize(ins);
	if (rc) {
		mail_catalog_snapshot_abort(v->cat);
		v->rec_open = false;
	}
	return rc;
}

static void *catalog_record_main(void *arg)
{
	struct mail_view *v = arg;

	v->rec_rc = catalog_record(v, &v->rec_err);
	/* nothing reads the messages after this; freeing 17k of them took
	 * 20 ms at the end of the backup, on one thread */
	release_messages(v);
	return NULL;
}

/* Start catalog_record; run inline when no thread can be had. */
static void catalog_record_start(struct mail_view *v, int64_t time_ns)
{
	v->rec_time = time_ns / 1000000000;
	if (pthread_create(&v->rec_thread, NULL, catalog_record_main, v) == 0)
		v->rec_running = true;
	else
		catalog_record_main(v);
}

static void catalog_record_join(struct mail_view *v)
{
	if (!v->rec_running)
		return;
	pthread_join(v->rec_thread, NULL);
	v->rec_running = false;
}

int mail_view_commit(struct mail_view *v, const struct snapshot *snap,
		     struct mv_err *err)
{
	char id[2 * MV_ID_LEN + 1];
	int rc;

	if (!v->cat || !v->nmsgs)
		return 0;
	catalog_record_join(v);
	if (v->rec_rc) {
		mv_err_set(err, v->rec_rc, "%s", mv_err_msg(&v->rec_err));
		return v->rec_rc;
	}
	if (!v->rec_open)
		return mv_err_set(err, -EINVAL,
				  "catalogue: the view was not finished");
	mv_hex(snap->id, MV_ID_LEN, id);
	rc = mail_catalog_snapshot_name(v->cat, v->rec_seq, id, err);
	if (!rc)
		rc = mail_catalog_snapshot_end(v->cat, v->rec_seq, err);
	if (rc)
		mail_catalog_snapshot_abort(v->cat);
	v->rec_open = false;
	if (!rc)
		v->st.catalog = true;
	return rc;
}

/* ---- readers ---------------------------------------------------------- */

/* Chunks of an entry as a read function for the LZ4 frame decoder. */
struct chunk_rd {
	struct repo *r;
	const struct tree_entry *e;
	uint32_t next;
	struct mv_buf chunk;
	size_t pos;
	struct mv_err *err;
};

static int chunk_read_fn(void *ctx, void *buf, size_t n, size_t *got)
{
	struct chunk_rd *c = ctx;

	while (c->pos == c->chunk.len) {
		int rc;

		if (c->next == c->e->nchunks) {
			*got = 0;
			return 0;
		}
		rc = repo_chunk_read(c->r, c->e->chunks[c->next++].id, false,
				     &c->chunk, c->err);
		if (rc)
			return rc;
		c->pos = 0;
	}
	*got = MV_MIN(n, c->chunk.len - c->pos);
	memcpy(buf, c->chunk.data + c->pos, *got);
	c->pos += *got;
	return 0;
}

/* A Stalwart dump's messages lie inside one LZ4 frame that cannot be
 * entered in the middle: decoding each message from the frame's start
 * made a restore of n messages cost n times the stream (a minute for
 * 5.5k messages).  The decoded start of the last stream read, up to
 * DUMP_CACHE_MAX bytes, is kept for the process, so a restore or a mount
 * decodes each stream once; messages beyond that are decoded as before. */
#define DUMP_CACHE_MAX ((uint64_t)64 << 20)

static struct {
	pthread_mutex_t lock;
	const struct repo *r;
	uint8_t key[MV_ID_LEN]; /* tree_chunks_key of the stream's chunks */
	struct mv_buf data;	/* its first data.len decoded bytes */
} dump_cache = {.lock = PTHREAD_MUTEX_INITIALIZER, .data = MV_BUF_INIT};

static int dump_decode(struct repo *r, const struct tree_entry *e, uint64_t off,
		       uint64_t len, struct mv_buf *out, struct mv_err *err)
{
	struct chunk_rd c;
	int rc;

	memset(&c, 0, sizeof(c));
	c.r = r;
	c.e = e;
	c.err = err;
	if (len == UINT64_MAX) /* the start of the stream, for the cache */
		rc = mail_stalwart_dump_decode_prefix(chunk_read_fn, &c, off,
						      out, err);
	else
		rc = mail_stalwart_dump_extract(chunk_read_fn, &c, off, len,
						out, err);
	mv_buf_release(&c.chunk);
	return rc;
}

/* Copy [off, off + len) from the cached start of e's stream into out,
 * filling the cache first when it holds another stream.  1 when the range
 * lies beyond what the cache keeps. */
static int dump_read_cached(struct repo *r, const struct tree_entry *e,
			    uint64_t off, uint64_t len, struct mv_buf *out,
			    struct mv_err *err)
{
	uint8_t key[MV_ID_LEN];
	int rc = 0;

	if (off > DUMP_CACHE_MAX || len > DUMP_CACHE_MAX - off ||
	    tree_chunks_key(r, e->chunks, e->nchunks, key))
		return 1;
	pthread_mutex_lock(&dump_cache.lock);
	if (dump_cache.r != r || memcmp(dump_cache.key, key, MV_ID_LEN)) {
		dump_cache.r = NULL;
		dump_cache.data.len = 0;
		rc = dump_decode(r, e, DUMP_CACHE_MAX, UINT64_MAX,
				 &dump_cache.data, err);
		if (rc) {
			mv_buf_release(&dump_cache.data);
			goto out;
		}
		dump_cache.r = r;
		memcpy(dump_cache.key, key, MV_ID_LEN);
	}
	if (off + len > dump_cache.data.len) {
		rc = dump_cache.data.len < DUMP_CACHE_MAX
			     ? mv_err_set(err, -EBADMSG,
					  "stream ends at %zu, before %llu",
					  dump_cache.data.len,
					  (unsigned long long)(off + len))
			     : 1;
		goto out;
	}
	if (mv_buf_append(out, dump_cache.data.data + off, (size_t)len))
		rc = mv_err_set(err, -ENOMEM, "out of memory");
out:
	pthread_mutex_unlock(&dump_cache.lock);
	return rc;
}

static int dump_read(struct repo *r, const struct tree_entry *e,
		     struct mv_buf *out, struct mv_err *err)
{
	uint64_t off, len;
	uint32_t i;
	int rc;

	for (i = 0; i < e->nxattrs; i++)
		if (!strcmp(e->xattrs[i].name, MAIL_VIEW_RANGE_XATTR) &&
		    e->xattrs[i].len == 16)
			break;
	if (i == e->nxattrs)
		return mv_err_set(err, -EBADMSG, "'%s': no message range",
				  e->name ? e->name : "");
	off = mv_le64(e->xattrs[i].value);
	len = mv_le64(e->xattrs[i].value + 8);
	if (len > MAIL_STALWART_MAX_VALUE)
		return mv_err_set(err, -EMSGSIZE, "'%s': value too large",
				  e->name ? e->name : "");
	rc = dump_read_cached(r, e, off, len, out, err);
	if (rc == 1)
		rc = dump_decode(r, e, off, len, out, err);
	if (rc)
		mv_err_prefix(err, "'%s'", e->name ? e->name : "");
	return rc;
}

/* Parsed keys by the id of their stored PEM: a mount decodes message
 * after message with the same few keys, and parsing one costs about a
 * millisecond (4 ms the first time).  Process-wide, small, FIFO. */
#define KEY_CACHE_SLOTS 16

static struct {
	pthread_mutex_t lock;
	uint8_t id[KEY_CACHE_SLOTS][MV_ID_LEN];
	struct mail_crypt_keys *keys[KEY_CACHE_SLOTS];
	unsigned next;
} key_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Add the key stored as chunk id to keys, parsed once per process.  A
 * chunk that is not a key adds nothing (another key may match). */
static int add_stored_key(struct repo *r, const uint8_t *id,
			  struct mail_crypt_keys *keys, struct mv_err *err)
{
	struct mail_crypt_keys *one = NULL;
	struct mv_buf pem = MV_BUF_INIT;
	unsigned i;
	int rc;

	pthread_mutex_lock(&key_cache.lock);
	for (i = 0; i < KEY_CACHE_SLOTS; i++) {
		if (key_cache.keys[i] &&
		    !memcmp(key_cache.id[i], id, MV_ID_LEN)) {
			rc = mail_crypt_keys_add_all(keys, key_cache.keys[i],
						     err);
			pthread_mutex_unlock(&key_cache.lock);
			return rc;
		}
	}
	pthread_mutex_unlock(&key_cache.lock);
	rc = repo_chunk_read(r, id, false, &pem, err);
	if (!rc)
		rc = mail_crypt_keys_new(&one, err);
	if (rc)
		goto out;
	mail_crypt_keys_add_pem(one, pem.data, pem.len, NULL);
	rc = mail_crypt_keys_add_all(keys, one, err);
	if (rc)
		goto out;
	pthread_mutex_lock(&key_cache.lock);
	i = key_cache.next++ % KEY_CACHE_SLOTS;
	mail_crypt_keys_free(key_cache.keys[i]);
	key_cache.keys[i] = one;
	memcpy(key_cache.id[i], id, MV_ID_LEN);
	one = NULL;
	pthread_mutex_unlock(&key_cache.lock);
out:
	mail_crypt_keys_free(one);
	mv_buf_release(&pem);
	return rc;
}

/* Add the keys e names (MAIL_VIEW_KEYS_XATTR) to keys. */
static int add_entry_keys(struct repo *r, const struct tree_entry *e,
			  struct mail_crypt_keys *keys, struct mv_err *err)
{
	uint32_t i, k;
	int rc = 0;

	for (i = 0; !rc && i < e->nxattrs; i++) {
		const struct tree_xattr *x = &e->xattrs[i];

		if (strcmp(x->name, MAIL_VIEW_KEYS_XATTR))
			continue;
		for (k = 0; !rc && k + MV_ID_LEN <= x->len; k += MV_ID_LEN)
			rc = add_stored_key(r, x->value + k, keys, err);
	}
	return rc;
}

void mail_view_warm_keys(struct repo *r, const struct tree_entry *e)
{
	struct mail_crypt_keys *keys = NULL;

	if (e->xform == TREE_XFORM_MAILCRYPT &&
	    !mail_crypt_keys_new(&keys, NULL))
		add_entry_keys(r, e, keys, NULL);
	mail_crypt_keys_free(keys);
}

int mail_view_read(struct repo *r, const struct tree_entry *e,
		   struct mv_buf *out, struct mv_err *err)
{
	struct mv_buf raw = MV_BUF_INIT, chunk = MV_BUF_INIT;
	struct mail_crypt_keys *keys = NULL;
	uint32_t i;
	int rc = 0;

	if (e->xform == TREE_XFORM_STALWART_DUMP)
		return dump_read(r, e, out, err);
	for (i = 0; !rc && i < e->nchunks; i++) {
		rc = repo_chunk_read(r, e->chunks[i].id, false, &chunk, err);
		if (!rc && mv_buf_append(&raw, chunk.data, chunk.len))
			rc = mv_err_set(err, -ENOMEM, "out of memory");
	}
	if (rc)
		goto out;
	if (mail_crypt_detect(raw.data, raw.len) & MAIL_CRYPT_ENCRYPTED) {
		rc = mail_crypt_keys_new(&keys, err);
		if (!rc)
			rc = add_entry_keys(r, e, keys, err);
		if (rc)
			goto out;
	}
	rc = mail_crypt_decode(raw.data ? (const void *)raw.data
					: (const void *)"",
			       raw.len, keys, out, NULL, err);
	if (rc)
		mv_err_prefix(err, "'%s'", e->name ? e->name : "");
out:
	mail_crypt_keys_free(keys);
	mv_buf_release(&chunk);
	mv_buf_release(&raw);
	return rc;
}
