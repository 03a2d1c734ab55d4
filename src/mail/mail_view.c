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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail_name.h"
#include "mail_view_int.h"

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

void view_key_id_add(struct mail_view *v, const uint8_t *id)
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
void view_classify(const char *path, struct vpath *vp)
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

void view_res_free(struct vres *res)
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
	view_res_free(res);
}

/* Decode (when encoded) and parse a new message into res: data holds the
 * first len bytes of a file of total bytes (all of it, or the prefix
 * kept of a large one: res->partial). */
void view_decode_parse(struct mail_view *v, struct vres *res, const void *data,
		       size_t len, uint64_t total, int64_t fallback)
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

	view_classify(path, &vp);
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
	if (view_known_find(v, id)) {
		res->known = true;
		return res;
	}
	view_decode_parse(v, res, data, len, len, fallback);
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
size_t view_str_hash(const char *p)
{
	size_t h = 5381;

	for (; *p; p++)
		h = h * 33 + (unsigned char)*p;
	return h;
}

const char *view_intern(struct mail_view *v, char *s)
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
			for (i = view_str_hash(v->strs[k]) & (cap - 1); t[i];
			     i = (i + 1) & (cap - 1))
				;
			t[i] = v->strs[k];
		}
		free(v->strs);
		v->strs = t;
		v->strs_cap = cap;
	}
	for (i = view_str_hash(s) & (v->strs_cap - 1); v->strs[i];
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
const char *view_src_intern(struct mail_view *v, const char **last,
			    const char *path, size_t n)
{
	if (*last && !strncmp(*last, path, n) && !(*last)[n])
		return *last;
	*last = view_intern(v, strndup(path, n));
	return *last;
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
	if ((e->user && !(f->user = view_intern(v, strdup(e->user)))) ||
	    (e->group && !(f->group = view_intern(v, strdup(e->group)))) ||
	    (e->acl_access &&
	     !(f->acl = view_intern(v, strdup(e->acl_access)))))
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

int view_vfile_copy(struct vfile *f, const struct vfile *o)
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

void view_vfile_release(struct vfile *f)
{
	free(f->chunks);
	free(f->extents);
	memset(f, 0, sizeof(*f));
}

/* The raw file's entry again (borrowing f; one chunk goes to *one). */
void view_vfile_entry(const struct vfile *f, const uint8_t *cid,
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

int view_msgs_grow(struct mail_view *v, struct mv_err *err)
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

char *mail_view_sanitize_path(const char *s)
{
	char comp[MAIL_NAME_MAX + 1], *out;
	size_t len = strlen(s), at = 0;

	/* a component grows at most 3x; one that is only bad bytes may be
	 * named anew, up to MAIL_NAME_MAX */
	out = malloc(len * 3 + MAIL_NAME_MAX + 2);
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

int view_from_parsed(struct vmsg *m, struct vres *res)
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

/* Format a maildir message's view name now, while the input still
 * streams, rather than at finish: only uniqueness within its folder is
 * left for then.  Messages whose state or size may still change (keys
 * met later, encrypted ones) are named at finish. */
static void name_early(struct vmsg *m)
{
	char name[MAIL_NAME_MAX + 1];

	if (m->kind != VK_MAILDIR || m->state != VM_OK || m->layers)
		return;
	if (!view_name_format(m, name, sizeof(name)))
		m->fname = strdup(name); /* NULL: named at finish */
}

/* Count m in the summary; a blob counts only once placed (an export's
 * sieve scripts are blobs too). */
void view_count(struct mail_view *v, struct vmsg *m, unsigned what)
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
bool view_partial_size(struct vres *res, uint64_t file_size, bool has_size,
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

int view_record_msg(struct mail_view *v, const struct vwhere *wh,
		    const struct tree_entry *e, struct vres *res,
		    struct mv_err *err)
{
	const struct known *k;
	struct vmsg *m;
	int rc;

	if (res && res->partial && !res->decode_rc && res->parsed &&
	    !view_partial_size(res, e->size, wh->has_size, wh->size)) {
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
	rc = view_msgs_grow(v, err);
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
		m->account = view_intern(
			v, wh->kind == VK_BLOB
				   ? strdup(wh->account)
				   : mail_view_sanitize_path(wh->account));
		m->mailbox = view_intern(
			v, wh->kind == VK_DUMP
				   ? strdup("")
				   : mail_view_sanitize_path(wh->mailbox));
		if (wh->kind == VK_MAILDIR && m->account && m->mailbox)
			folder_remember(v, wh, m);
	}
	m->srcdir = wh->srcdir;
	m->srcacc = wh->srcacc;
	m->base = strndup(wh->base, wh->base_len);
	rc = vfile_set(v, &m->e, e, m->cid);
	if (rc || !m->account || !m->mailbox || !m->base) {
		view_vfile_release(&m->e);
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
	k = view_known_find(v, m->cid);
	if (k) {
		view_count(v, m, CNT_KNOWN);
		if (from_known(m, k))
			return mv_err_set(err, -ENOMEM, "out of memory");
		if (m->layers)
			view_count(v, m, CNT_DECODED);
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
			view_count(v, m, CNT_KNOWN);
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
		view_count(v, m, CNT_LARGE);
		m->state = VM_LARGE;
		if (wh->has_size && wh->size != e->size) {
			/* S= differs: encoded, readers decode */
			m->layers = MAIL_CRYPT_ENCRYPTED;
			m->size = wh->size;
			view_count(v, m, CNT_DECODED);
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
			view_count(v, m, CNT_NO_KEY);
		else
			view_count(v, m, CNT_CORRUPT);
		return 0;
	}
	if (m->layers)
		view_count(v, m, CNT_DECODED);
	if (res->parsed) {
		view_count(v, m, CNT_PARSED);
		if (res->msg.flags &
		    ~(unsigned)(MAIL_MSG_NO_MESSAGE_ID | MAIL_MSG_LEADING_JUNK))
			view_count(v, m, CNT_BAD_HEADERS);
		if (view_from_parsed(m, res))
			goto oom;
		name_early(m);
		return view_catalog_early(v, m, err);
	}
	return 0;
oom:
	return mv_err_set(err, -ENOMEM, "out of memory");
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
	view_classify(path, &vp);
	if (res && res->kind == RES_KEY) {
		rc = keys_add(v, res->raw, res->raw_len, err);
		if (!rc && e->nchunks == 1 && v->npems)
			view_key_id_add(v, e->chunks[0].id);
		goto out;
	}
	if (vp.kind == RES_JSON) {
		rc = view_json_done(v, path, &vp, e, res, err);
		goto out;
	}
	if (!strcmp(vp.leaf, "subspace_t") && e->nchunks &&
	    !view_dump_find(v, path) && !view_dump_stored_twice(v, e)) {
		/* no bytes came through (an unchanged file reused from the
		 * previous snapshot): scan its stored chunks */
		rc = view_dump_scan_stored(v, path, e, err);
		if (rc)
			goto out;
	}
	if (v->ndumps && !strcmp(vp.leaf, "subspace_t"))
		view_dump_done(v, path, e);
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
		wh.srcdir = view_src_intern(v, &v->prev_srcdir, path,
					    vp.loc.folder_len);
		wh.srcacc = view_src_intern(
			v, &v->prev_srcacc, path,
			vp.loc.root_len ? vp.loc.root_len : vp.loc.folder_len);
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
			view_src_intern(v, &v->prev_srcdir, dir, strlen(dir));
		if (!wh.srcdir) {
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
	}
	if (!res && !e->nchunks && !view_known_find_entry(v, e)) {
		/* an empty file has no chunk for analyze() to see */
		res = calloc(1, sizeof(*res));
		if (!res) {
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		res->kind = vp.kind;
		view_decode_parse(v, res, "", 0, 0, wh.time >= 0 ? wh.time : 0);
	}
	if (res && res->streamed && !res->known && !res->parsed &&
	    !res->decode_rc) {
		/* the prefix of a large message, now that its content id
		 * is known: a message catalogued before is not decoded */
		if (view_known_find_entry(v, e))
			res->known = true;
		else
			view_decode_parse(v, res, res->raw, res->raw_len,
					  e->size, wh.time >= 0 ? wh.time : 0);
	}
	if (res && res->decode_rc == -ENOKEY && res->raw &&
	    res->keys_gen != v->keys_gen) {
		/* a key arrived after this message was analysed */
		res->decode_rc = 0;
		res->why[0] = '\0';
		view_decode_parse(v, res, res->raw, res->raw_len, e->size,
				  wh.time >= 0 ? wh.time : 0);
	}
	n0 = v->nmsgs;
	rc = view_record_msg(v, &wh, e, res, err);
	if (!rc && vp.kind == RES_MSG && e->size > v->small_file && v->db &&
	    v->nmsgs == n0 + 1 && v->msgs[n0].state == VM_OK)
		view_large_note(v, path, e, v->msgs[n0].cid);
out:
	free(dir);
	view_res_free(res);
	return rc;
}

/* ---- setup ------------------------------------------------------------ */

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
	v->hook.stream_begin = view_hook_stream_begin;
	v->hook.stream_data = view_hook_stream_data;
	v->hook.stream_end = view_hook_stream_end;
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
		rc = view_catalog_open(v, err);
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
void view_release_messages(struct mail_view *v)
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
		view_vfile_release(&m->e);
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
	view_catalog_record_join(v);
	if (v->rec_open)
		mail_catalog_snapshot_abort(v->cat);
	view_release_messages(v);
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
