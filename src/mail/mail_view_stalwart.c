/*
 * mail_view_stalwart: Stalwart in the mail view - server dumps
 * (subspace_t: every record a message referencing the dump's chunks) and
 * account exports (mailboxes.json, emails.json, blobs/: placed in
 * mail/<account>/ and as a Maildir++ tree in maildir/<account>/).
 */
#include "mail_view_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "mail_name.h"

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

	view_classify(path, &vp);
	if (vp.kind != RES_JSON || len > MAIL_STALWART_MAX_JSON)
		return 0;
	x = export_get(v, path, vp.dir_len);
	if (!x || export_set_json(x, vp.emails, data, len, true))
		return mv_err_set(err, -ENOMEM, "out of memory");
	return 0;
}

/* An export's JSON file: keep its bytes (whole, or the first chunk) and
 * its entry, to read the rest from the repository when it is stored. */
int view_json_done(struct mail_view *v, const char *path,
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

int view_dump_record(void *ctx, const uint8_t *key, size_t key_len,
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
	if (view_known_find(v, cid))
		res->known = true;
	else
		view_decode_parse(v, res, value, value_len, value_len, 0);
	/* a one-chunk entry stands for the message until finish */
	memset(&e, 0, sizeof(e));
	e.type = TREE_REG;
	e.size = value_len;
	e.nchunks = 1;
	e.chunks = calloc(1, sizeof(*e.chunks));
	if (!e.chunks) {
		view_res_free(res);
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
	rc = view_record_msg(v, &wh, &e, res, ds->err);
	free(e.chunks);
	view_res_free(res);
	if (rc)
		return rc;
	m = &v->msgs[v->nmsgs - 1];
	m->dump = ds->dump;
	m->doff = ds->info->value_offset;
	m->hidden = true; /* until its file is stored */
	v->st.dump_messages++;
	return 0;
}

int mail_view_dump_scan(struct mail_view *v, const char *path, int fd,
			struct mv_err *err)
{
	struct mail_stalwart_dump_info info;
	struct mv_err e = MV_ERR_INIT;
	struct dump_scan ds;
	struct sw_dump *d;
	uint8_t magic[4];
	int rc;

	d = view_dump_add(v, path);
	if (!d)
		return mv_err_set(err, -ENOMEM, "out of memory");
	ds.v = v;
	ds.info = &info;
	ds.dump = (size_t)(d - v->dumps);
	ds.err = err;
	if (pread(fd, magic, 4, 0) != 4 || memcmp(magic, "\x04\x22\x4d\x18", 4))
		return 0; /* not an LZ4 frame: not a dump */
	rc = mail_stalwart_dump_scan_fd(fd, view_dump_record, &ds, &info, &e);
	if (rc == -ENOMEM)
		return mv_err_set(err, rc, "%s", mv_err_msg(&e));
	v->st.dumps++;
	if (rc)
		v->st.dump_errors++;
	return 0;
}

void view_dump_done(struct mail_view *v, const char *path,
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

struct sw_dump *view_dump_find(struct mail_view *v, const char *path)
{
	size_t i;

	for (i = 0; i < v->ndumps; i++)
		if (!v->dumps[i].have && !strcmp(v->dumps[i].path, path))
			return &v->dumps[i];
	return NULL;
}

/* A new dump file at path, its messages to come; NULL on -ENOMEM. */
struct sw_dump *view_dump_add(struct mail_view *v, const char *path)
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

/* True when a dump with the same chunks is listed (a hard link). */
bool view_dump_stored_twice(struct mail_view *v, const struct tree_entry *e)
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
int view_dump_scan_stored(struct mail_view *v, const char *path,
			  const struct tree_entry *e, struct mv_err *err)
{
	struct mv_buf chunk = MV_BUF_INIT;
	struct vstream *vs;
	uint32_t i;
	int rc = 0;

	vs = view_hook_stream_begin(v, path, e);
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
			rc = view_hook_stream_data(v, vs, chunk.data, chunk.len,
						   err);
	}
	mv_buf_release(&chunk);
	if (rc == -ENOMEM && err && !err->code)
		mv_err_set(err, rc, "out of memory");
	view_hook_stream_end(v, vs, rc == 0);
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
	int rc = view_msgs_grow(v, err);

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
	m->account = view_intern(v, mail_view_sanitize_path(account));
	m->mailbox = view_intern(v, mail_view_sanitize_path(mailbox));
	m->srcdir = m->srcacc = o->srcdir;
	m->base = strdup(base);
	m->from = o->from ? strdup(o->from) : NULL;
	m->subject = o->subject ? strdup(o->subject) : NULL;
	m->reason = o->reason ? strdup(o->reason) : NULL;
	if (view_vfile_copy(&m->e, &o->e)) {
		view_vfile_release(&m->e);
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
		view_count(v, m, o->cnt);
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

/* The custom keywords of one Maildir++ folder: letters a-z (its
 * dovecot-keywords file) in the order of each keyword's first use - the
 * earliest receivedAt (then email id) of the folder's emails carrying it,
 * then its name - as Dovecot appends a keyword when it is first used.  So
 * a keyword that comes with new mail takes the next letter and the
 * letters of the others, and the names of their files, stay (in name
 * order, a new keyword sorting first renamed every file carrying one). */
struct kwuse {
	const char *kw, *id; /* keyword; email id of its first use */
	int64_t first;	     /* receivedAt of its first use */
};

struct kwset {
	const char *kw[26]; /* by letter, once collected */
	unsigned n;
	struct kwuse use[26];
};

static int kwuse_cmp(const void *a, const void *b)
{
	const struct kwuse *x = a, *y = b;
	int c;

	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	c = strcmp(x->id, y->id);
	return c ? c : strcmp(x->kw, y->kw);
}

static bool is_custom(const char *kw)
{
	return !maildir_flags_from_keyword(kw) && strcasecmp(kw, "$recent") &&
	       !strpbrk(kw, " \n\r\t");
}

/* Keyword u is used: keep the 26 keywords first used earliest, each with
 * its first use (the same set and order whatever the emails' order). */
static void kw_note(struct kwset *ks, const struct kwuse *u)
{
	unsigned t, last = 0;

	for (t = 0; t < ks->n; t++)
		if (!strcmp(ks->use[t].kw, u->kw))
			break;
	if (t < ks->n) {
		if (kwuse_cmp(u, &ks->use[t]) < 0)
			ks->use[t] = *u;
		return;
	}
	if (ks->n < 26) {
		ks->use[ks->n++] = *u;
		return;
	}
	for (t = 1; t < ks->n; t++)
		if (kwuse_cmp(&ks->use[t], &ks->use[last]) > 0)
			last = t;
	if (kwuse_cmp(u, &ks->use[last]) < 0)
		ks->use[last] = *u;
}

/* kws[n_mailboxes] is the root (mailboxes unknown to mailboxes.json). */
static void kw_collect(const struct mail_stalwart_export *exp,
		       struct kwset *kws)
{
	size_t i, k, j;
	unsigned t;

	for (i = 0; i < exp->n_emails; i++) {
		const struct mail_stalwart_email *em = &exp->emails[i];
		struct kwuse u;

		u.first = em->received_at;
		u.id = em->id ? em->id : em->blob_id ? em->blob_id : "";
		for (k = 0; k < em->n_mailbox_ids; k++) {
			const struct mail_stalwart_mailbox *mb =
				mail_stalwart_mailbox_find(exp,
							   em->mailbox_ids[k]);
			struct kwset *ks =
				&kws[mb ? (size_t)(mb - exp->mailboxes)
					: exp->n_mailboxes];

			for (j = 0; j < em->n_keywords; j++) {
				if (!is_custom(em->keywords[j]))
					continue;
				u.kw = em->keywords[j];
				kw_note(ks, &u);
			}
		}
	}
	for (i = 0; i <= exp->n_mailboxes; i++) {
		struct kwset *ks = &kws[i];

		if (ks->n > 1)
			qsort(ks->use, ks->n, sizeof(ks->use[0]), kwuse_cmp);
		for (t = 0; t < ks->n; t++)
			ks->kw[t] = ks->use[t].kw;
	}
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
			rc = view_add_dirs(tb, p, dir, err);
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

int view_stalwart_place(struct mail_view *v, struct tree_builder *tb,
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
