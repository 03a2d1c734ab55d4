/*
 * mail_view_tree: the view's entries in the snapshot's tree, added by
 * mail_view_finish() once the input has ended: messages sorted and named
 * uniquely per folder, folders with their sources' owners and modes,
 * every entry independent of the input's order and of its neighbours
 * (docs/MAIL.md, "Stable view entries").
 */
#include "mail_view_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail_name.h"

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
void view_dir_from(struct tree_builder *tb, const char *src, uint32_t file_mode,
		   uint32_t uid, uint32_t gid, int64_t mtime,
		   struct tree_entry *out)
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

void view_top_add(struct view_top *t, const struct tree_entry *acc)
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
int view_add_dirs(struct tree_builder *tb, const char *path,
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
	return view_partial_size(res, m->e.size, mf.has_size, mf.size);
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
		view_decode_parse(v, &res, m->raw, m->raw_len, m->e.size,
				  m->date);
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
		if (view_from_parsed(m, &res)) {
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
		view_key_id_add(v, id);
	return rc;
}

/* The view name of m before it is made unique in its folder. */
int view_name_format(const struct vmsg *m, char *name, size_t n)
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

		rc = view_name_format(m, name, sizeof(name));
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

static int folder_times_grow(struct folder_times *ft)
{
	size_t cap = ft->cap ? 2 * ft->cap : 64, k, i;
	struct folder_time *tab = calloc(cap, sizeof(*tab));

	if (!tab)
		return -ENOMEM;
	for (k = 0; k < ft->cap; k++) {
		if (!ft->tab[k].path)
			continue;
		for (i = view_str_hash(ft->tab[k].path) & (cap - 1);
		     tab[i].path; i = (i + 1) & (cap - 1))
			;
		tab[i] = ft->tab[k];
	}
	free(ft->tab);
	ft->tab = tab;
	ft->cap = cap;
	return 0;
}

/* The folder of the first len bytes of path holds an entry of time t. */
static int folder_times_put(struct folder_times *ft, const char *path,
			    size_t len, int64_t t)
{
	struct folder_time *e;
	char *p;
	size_t i;

	if (2 * (ft->n + 1) > ft->cap && folder_times_grow(ft))
		return -ENOMEM;
	p = strndup(path, len);
	if (!p)
		return -ENOMEM;
	for (i = view_str_hash(p) & (ft->cap - 1); ft->tab[i].path;
	     i = (i + 1) & (ft->cap - 1))
		if (!strcmp(ft->tab[i].path, p))
			break;
	e = &ft->tab[i];
	if (e->path) {
		free(p);
		e->t = MV_MAX(e->t, t);
		return 0;
	}
	e->path = p;
	e->t = t;
	ft->n++;
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
		view_vfile_entry(&m->e, m->cid, &one, &ve);
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
		return view_catalog_batch_end(v, err);
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
	rc = view_stalwart_place(v, tb, w, &dir, err);
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
				view_src_intern(v, &v->prev_srcdir, d->path,
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
				rc = view_add_dirs(tb, folder, &accd, err);
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
		view_catalog_record_start(v, time_ns);
	return rc;
}
