/*
 * restore_mail: collect the messages of a mail view path, with the flags
 * and internal date of the raw files they were made from
 * (include/restore_mail.h, docs/RESTORE-MAIL.md).
 *
 * Workload: one account of up to ~100k messages.  The raw files of the
 * account are found by one walk of the snapshot's trees outside mail/
 * (the trees are loaded anyway by any listing), their content ids sorted
 * and searched per view message: O((raw + view) log raw), no content read.
 */
#include "restore_mail.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imap_client.h"
#include "mail_name.h"
#include "mail_view.h"
#include "maildir.h"
#include "restore.h"

/* The largest message restore-mail reads (as MAIL_CRYPT_MAX_OUT). */
#define RESTORE_MAIL_MAX ((uint64_t)512 << 20)
/* dovecot-keywords files larger than this are not keyword lists. */
#define KEYWORDS_MAX (64 << 10)

/* A raw maildir file of the account. */
struct raw_hit {
	uint8_t cid[MV_ID_LEN];
	char *mailbox;	/* sanitized, as the view names it */
	unsigned flags; /* enum imap_flags */
	char **kw;	/* keyword names */
	size_t nkw;
	int64_t mtime;
};

struct walk {
	struct repo *r;
	const char *account; /* the view account */
	struct raw_hit *h;
	size_t n, cap;
	struct mv_buf path; /* current path, NUL-terminated */
};

static void hit_release(struct raw_hit *h)
{
	free(h->mailbox);
	for (size_t i = 0; i < h->nkw; i++)
		free(h->kw[i]);
	free(h->kw);
}

/* The content of a small file entry into *out (NUL-terminated). */
static int read_small(struct repo *r, const struct tree_entry *e,
		      struct mv_buf *out, uint64_t max, struct mv_err *err)
{
	struct stat st;
	int fd, rc = 0;

	if (e->size > max)
		return mv_err_set(err, -EMSGSIZE,
				  "'%s' is larger than %llu bytes", e->name,
				  (unsigned long long)max);
	fd = memfd_create("mailvault-msg", MFD_CLOEXEC);
	if (fd < 0)
		return mv_err_set(err, -errno, "memfd_create: %s",
				  strerror(errno));
	rc = restore_file_to_fd(r, e, fd, false, err);
	if (rc)
		goto out;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size > max) {
		rc = mv_err_set(err, -EIO, "cannot size '%s'", e->name);
		goto out;
	}
	rc = mv_buf_reserve(out, (size_t)st.st_size + 1);
	if (rc) {
		rc = mv_err_set(err, rc, "out of memory");
		goto out;
	}
	{
		size_t got = 0, want = (size_t)st.st_size;

		while (got < want) {
			ssize_t k = pread(fd, out->data + out->len + got,
					  want - got, (off_t)got);

			if (k <= 0) {
				rc = mv_err_set(err, -EIO,
						"cannot read back '%s'",
						e->name);
				goto out;
			}
			got += (size_t)k;
		}
		out->len += want;
		out->data[out->len] = '\0';
	}
out:
	close(fd);
	return rc;
}

static int add_hit(struct walk *w, const struct tree_entry *e,
		   const char *account, const struct maildir_loc *loc,
		   const struct maildir_keywords *kw)
{
	struct maildir_file mf;
	struct raw_hit h = {0};
	char *acc;
	bool same;

	acc = mail_view_sanitize_path(account);
	if (!acc)
		return -ENOMEM;
	same = !strcmp(acc, w->account);
	free(acc);
	if (!same || maildir_parse_name(loc->name, &mf))
		return 0;
	mail_view_content_id(w->r, e, h.cid);
	h.mtime = e->mtime_sec;
	h.mailbox = mail_view_sanitize_path(loc->mailbox);
	if (!h.mailbox)
		return -ENOMEM;
	if (mf.flags & MAILDIR_SEEN)
		h.flags |= IMAP_SEEN;
	if (mf.flags & MAILDIR_REPLIED)
		h.flags |= IMAP_ANSWERED;
	if (mf.flags & MAILDIR_FLAGGED)
		h.flags |= IMAP_FLAGGED;
	if (mf.flags & MAILDIR_DRAFT)
		h.flags |= IMAP_DRAFT;
	if (mf.flags & MAILDIR_TRASHED)
		h.flags |= IMAP_DELETED;
	h.kw = calloc(27, sizeof(*h.kw));
	if (!h.kw)
		goto nomem;
	if (mf.flags & MAILDIR_PASSED) {
		h.kw[h.nkw] = strdup("$Forwarded");
		if (!h.kw[h.nkw++])
			goto nomem;
	}
	for (unsigned i = 0; kw && i < 26; i++) {
		if (!(mf.keywords & (1u << i)) || !kw->names[i])
			continue;
		h.kw[h.nkw] = strdup(kw->names[i]);
		if (!h.kw[h.nkw++])
			goto nomem;
	}
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 256;
		struct raw_hit *p = realloc(w->h, cap * sizeof(*p));

		if (!p)
			goto nomem;
		w->h = p;
		w->cap = cap;
	}
	w->h[w->n++] = h;
	return 0;
nomem:
	hit_release(&h);
	return -ENOMEM;
}

static int walk_dir(struct walk *w, const struct tree_entry *dir,
		    const struct maildir_keywords *kw, const char *acct,
		    int depth, struct mv_err *err);

/* Visit the children of a loaded directory (w->path is its path). */
static int walk_children(struct walk *w, const struct tree *t,
			 const struct maildir_keywords *kw, const char *acct,
			 int depth, struct mv_err *err)
{
	struct maildir_keywords own = {{0}};
	const struct tree_entry *kf = tree_find(t, "dovecot-keywords", 16);
	size_t plen = w->path.len;
	int rc = 0;

	if (kf && kf->type == TREE_REG && kf->size <= KEYWORDS_MAX) {
		struct mv_buf b = MV_BUF_INIT;

		/* a keyword list that cannot be read costs the keywords,
		 * never the restore */
		if (!read_small(w->r, kf, &b, KEYWORDS_MAX, NULL) && b.len)
			maildir_keywords_parse((const char *)b.data, b.len,
					       &own, NULL);
		mv_buf_release(&b);
	}
	for (uint32_t i = 0; !rc && i < t->n; i++) {
		const struct tree_entry *c = &t->entries[i];
		const char *sub_acct = acct;

		w->path.len = plen;
		if (depth == 0 && !strcmp(c->name, MAIL_VIEW_DIR))
			continue;
		if ((plen && mv_buf_append(&w->path, "/", 1)) ||
		    mv_buf_append(&w->path, c->name, c->name_len + 1)) {
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			break;
		}
		w->path.len--; /* keep the NUL out of the length */
		if (depth == 1 && acct && !strcmp(acct, "")) /* maildir/<a> */
			sub_acct = c->name;
		if (c->type == TREE_DIR) {
			bool box = !strcmp(c->name, "cur") ||
				   !strcmp(c->name, "new");

			if (depth == 0 &&
			    !strcmp(c->name, MAIL_VIEW_MAILDIR_DIR))
				sub_acct = "";
			rc = walk_dir(w, c, box ? (kf ? &own : kw) : NULL,
				      sub_acct, depth + 1, err);
		} else if (c->type == TREE_REG) {
			struct maildir_loc loc;

			if (maildir_locate((const char *)w->path.data, &loc))
				continue;
			rc = add_hit(w, c, acct && *acct ? acct : loc.account,
				     &loc, kw);
			if (rc)
				rc = mv_err_set(err, rc, "out of memory");
		}
	}
	w->path.len = plen;
	if (w->path.data)
		w->path.data[plen] = '\0';
	maildir_keywords_release(&own);
	return rc;
}

static int walk_dir(struct walk *w, const struct tree_entry *dir,
		    const struct maildir_keywords *kw, const char *acct,
		    int depth, struct mv_err *err)
{
	struct tree *t = NULL;
	int rc;

	if (!dir->subtree.n)
		return 0;
	rc = tree_load(w->r, &dir->subtree, &t, err);
	if (rc)
		return rc;
	rc = walk_children(w, t, kw, acct, depth, err);
	tree_free(t);
	return rc;
}

static int hit_cmp(const void *a, const void *b)
{
	return memcmp(((const struct raw_hit *)a)->cid,
		      ((const struct raw_hit *)b)->cid, MV_ID_LEN);
}

/* ---- the view side ----------------------------------------------------- */

struct collect {
	struct repo *r;
	struct restore_mail_set *s;
	size_t cap;
	struct mv_buf path;   /* snapshot path */
	struct mv_buf folder; /* relative target folder */
};

static bool is_suffix(const char *s, size_t n, const char *suf)
{
	size_t k = strlen(suf);

	return n >= k && !strcasecmp(s + n - k, suf);
}

/* The view mailbox of a message: its path without "mail/<account>/" and
 * the file name. */
static char *view_mailbox(const char *path)
{
	const char *p = strchr(path, '/'), *last = strrchr(path, '/');

	p = p ? strchr(p + 1, '/') : NULL;
	if (!p || p >= last)
		return strdup("");
	return strndup(p + 1, (size_t)(last - p - 1));
}

static int add_msg(struct collect *c, const struct tree_entry *e,
		   struct mv_err *err)
{
	struct restore_mail_msg *m;

	if (is_suffix(e->name, e->name_len, ".raw")) {
		c->s->skipped_raw++;
		return 0;
	}
	if (!is_suffix(e->name, e->name_len, ".eml"))
		return 0;
	if (c->s->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		struct restore_mail_msg *p = realloc(c->s->m, cap * sizeof(*p));

		if (!p)
			return mv_err_set(err, -ENOMEM, "out of memory");
		c->s->m = p;
		c->cap = cap;
	}
	m = &c->s->m[c->s->n];
	memset(m, 0, sizeof(*m));
	m->path = strndup((const char *)c->path.data, c->path.len);
	m->folder = strndup(c->folder.data ? (const char *)c->folder.data : "",
			    c->folder.len);
	m->mailbox = m->path ? view_mailbox(m->path) : NULL;
	if (!m->path || !m->folder || !m->mailbox ||
	    tree_entry_copy(&m->e, e, err)) {
		free(m->path);
		free(m->folder);
		free(m->mailbox);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	m->internal_date = e->mtime_sec;
	c->s->n++;
	return 0;
}

/* Append "/name" (or "name" to an empty buffer) and a NUL not counted. */
static int push(struct mv_buf *b, const char *name, size_t n)
{
	if ((b->len && mv_buf_append(b, "/", 1)) || mv_buf_append(b, name, n) ||
	    mv_buf_append(b, "", 1))
		return -ENOMEM;
	b->len--;
	return 0;
}

static int collect_dir(struct collect *c, const struct tree_entry *dir,
		       struct mv_err *err)
{
	struct tree *t = NULL;
	size_t plen = c->path.len, flen = c->folder.len;
	int rc;

	if (!dir->subtree.n)
		return 0;
	rc = tree_load(c->r, &dir->subtree, &t, err);
	if (rc)
		return rc;
	for (uint32_t i = 0; !rc && i < t->n; i++) {
		const struct tree_entry *e = &t->entries[i];

		c->path.len = plen;
		c->folder.len = flen;
		if (push(&c->path, e->name, e->name_len)) {
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			break;
		}
		if (e->type == TREE_REG) {
			rc = add_msg(c, e, err);
		} else if (e->type == TREE_DIR) {
			if (push(&c->folder, e->name, e->name_len))
				rc = mv_err_set(err, -ENOMEM, "out of memory");
			else
				rc = collect_dir(c, e, err);
		}
	}
	c->path.len = plen;
	c->folder.len = flen;
	tree_free(t);
	return rc;
}

static int msg_cmp(const void *a, const void *b)
{
	const struct restore_mail_msg *x = a, *y = b;
	int d = strcmp(x->folder, y->folder);

	return d ? d : strcmp(x->path, y->path);
}

static void apply_hits(struct restore_mail_set *s, struct walk *w)
{
	for (size_t i = 0; i < s->n; i++) {
		struct restore_mail_msg *m = &s->m[i];
		struct raw_hit key, *lo, *best = NULL;
		char *box;

		memset(&key, 0, sizeof(key));
		mail_view_content_id(w->r, &m->e, key.cid);
		lo = w->n ? bsearch(&key, w->h, w->n, sizeof(*w->h), hit_cmp)
			  : NULL;
		if (!lo) {
			s->unmatched++;
			continue;
		}
		while (lo > w->h && !hit_cmp(lo - 1, &key))
			lo--;
		box = m->mailbox;
		for (struct raw_hit *h = lo;
		     h < w->h + w->n && !hit_cmp(h, &key); h++) {
			if (!best)
				best = h;
			if (box && !strcmp(h->mailbox, box)) {
				best = h;
				break;
			}
		}
		m->matched = true;
		m->flags = best->flags;
		m->internal_date = best->mtime;
		if (best->nkw)
			m->keywords = calloc(best->nkw, sizeof(*m->keywords));
		for (size_t k = 0; m->keywords && k < best->nkw; k++) {
			m->keywords[k] = strdup(best->kw[k]);
			if (m->keywords[k])
				m->n_keywords++;
		}
	}
}

static int split_path(const char *path, char **out_norm, struct mv_err *err)
{
	size_t n = strlen(path), k = 0;
	char *o = malloc(n + 1);

	if (!o)
		return mv_err_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		if (path[i] != '/' || (k && o[k - 1] != '/'))
			o[k++] = path[i];
	if (k && o[k - 1] == '/')
		k--;
	o[k] = '\0';
	*out_norm = o;
	return 0;
}

int restore_mail_collect(struct repo *r, const struct snapshot *snap,
			 const char *path, const struct tree_entry *e,
			 struct restore_mail_set *out, struct mv_err *err)
{
	struct restore_mail_set s = {0};
	struct collect c = {r, &s, 0, MV_BUF_INIT, MV_BUF_INIT};
	struct walk w = {0};
	struct tree_entry root = {0};
	char *norm = NULL, *slash;
	int rc;

	rc = split_path(path, &norm, err);
	if (rc)
		return rc;
	if (strncmp(norm, MAIL_VIEW_DIR "/", strlen(MAIL_VIEW_DIR) + 1)) {
		rc = mv_err_set(err, -EINVAL,
				"'%s' is not in the mail view: give "
				"mail/<account>[/<folder>...][/<message>.eml]",
				path);
		goto out;
	}
	slash = strchr(norm + strlen(MAIL_VIEW_DIR) + 1, '/');
	s.account =
		slash ? strndup(norm + strlen(MAIL_VIEW_DIR) + 1,
				(size_t)(slash -
					 (norm + strlen(MAIL_VIEW_DIR) + 1)))
		      : strdup(norm + strlen(MAIL_VIEW_DIR) + 1);
	if (!s.account || push(&c.path, norm, strlen(norm))) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (e->type == TREE_REG) {
		if (!is_suffix(e->name, e->name_len, ".eml")) {
			rc = mv_err_set(err, -EINVAL,
					"'%s' is not a message of the mail "
					"view (.eml)",
					path);
			goto out;
		}
		rc = add_msg(&c, e, err);
	} else if (e->type == TREE_DIR) {
		rc = collect_dir(&c, e, err);
	} else {
		rc = mv_err_set(err, -EINVAL,
				"'%s' is not a message or a "
				"folder",
				path);
	}
	if (rc)
		goto out;
	if (s.n)
		qsort(s.m, s.n, sizeof(*s.m), msg_cmp);
	/* the raw files of the account: flags and internal dates */
	w.r = r;
	w.account = s.account;
	root.type = TREE_DIR;
	root.subtree = snap->root;
	if (mv_buf_append(&w.path, "", 1)) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	w.path.len = 0;
	rc = walk_dir(&w, &root, NULL, NULL, 0, err);
	if (rc)
		goto out;
	if (w.n)
		qsort(w.h, w.n, sizeof(*w.h), hit_cmp);
	apply_hits(&s, &w);
	*out = s;
	memset(&s, 0, sizeof(s));
out:
	for (size_t i = 0; i < w.n; i++)
		hit_release(&w.h[i]);
	free(w.h);
	mv_buf_release(&w.path);
	mv_buf_release(&c.path);
	mv_buf_release(&c.folder);
	restore_mail_set_release(&s);
	free(norm);
	return rc;
}

void restore_mail_set_release(struct restore_mail_set *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		struct restore_mail_msg *m = &s->m[i];

		free(m->path);
		free(m->folder);
		free(m->mailbox);
		tree_entry_release(&m->e);
		for (size_t k = 0; k < m->n_keywords; k++)
			free(m->keywords[k]);
		free(m->keywords);
	}
	free(s->m);
	free(s->account);
	memset(s, 0, sizeof(*s));
}

int restore_mail_read(struct repo *r, const struct restore_mail_msg *m,
		      struct mv_buf *out, struct mv_err *err)
{
	struct mv_buf raw = MV_BUF_INIT;
	size_t lf = 0;
	int rc;

	rc = read_small(r, &m->e, &raw, RESTORE_MAIL_MAX, err);
	if (rc)
		goto out;
	for (size_t i = 0; i < raw.len; i++)
		if (raw.data[i] == '\n' && (!i || raw.data[i - 1] != '\r'))
			lf++;
	rc = mv_buf_reserve(out, raw.len + lf);
	if (rc) {
		rc = mv_err_set(err, rc, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < raw.len; i++) {
		if (raw.data[i] == '\n' && (!i || raw.data[i - 1] != '\r'))
			out->data[out->len++] = '\r';
		out->data[out->len++] = raw.data[i];
	}
out:
	mv_buf_release(&raw);
	return rc;
}
