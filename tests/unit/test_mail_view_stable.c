/* Unit tests for the stability of mail view entries: a message that did
 * not change must have a byte-identical view entry in the next snapshot
 * (so that directories stored as content-defined leaves share it), and
 * the view must not depend on the order the input delivered the files.
 * Backups are driven through the ingest hook as ingest drives it, into a
 * real repository, and the committed trees are walked with tree_load. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "mail_view.h"

#define NMSG 300

/* One file of the input. */
struct mfile {
	char path[160];
	char *content;
	int64_t mtime;
};

struct input {
	struct mfile f[NMSG + 64];
	size_t n;
};

/* A view entry of a committed snapshot: its path and encoding. */
struct ventry {
	char *path;
	struct mv_buf enc;
};

struct walk {
	struct ventry *e;
	size_t n, cap;
};

struct fx {
	char dir[64];
	struct repo *r;
};

static int setup(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct fx *f = calloc(1, sizeof(*f));
	char repo[128];

	snprintf(f->dir, sizeof(f->dir), "/tmp/mv-test-stable.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(repo, sizeof(repo), "%s/repo", f->dir);
	assert_int_equal(repo_init(repo, NULL, &err), 0);
	assert_int_equal(repo_open(repo, REPO_OPEN_WRITE, &f->r, &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	repo_close(f->r);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static char *message(int64_t date, const char *from, const char *subject,
		     unsigned body)
{
	char when[64], *s;
	time_t t = (time_t)date;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	assert_true(asprintf(&s,
			     "From: %s <x@example.org>\nSubject: %s\n"
			     "%s%s%sMessage-ID: <%u@example.org>\n\n"
			     "body %u\n",
			     from, subject, date ? "Date: " : "",
			     date ? when : "", date ? "\n" : "", body,
			     body) > 0);
	return s;
}

static void add(struct input *in, const char *path, char *content,
		int64_t mtime)
{
	struct mfile *m = &in->f[in->n++];

	assert_true(in->n <= sizeof(in->f) / sizeof(in->f[0]));
	snprintf(m->path, sizeof(m->path), "%s", path);
	m->content = content;
	m->mtime = mtime;
}

static struct mfile *find(struct input *in, const char *path)
{
	size_t i;

	for (i = 0; i < in->n; i++)
		if (!strcmp(in->f[i].path, path))
			return &in->f[i];
	fail_msg("no file '%s'", path);
	return NULL;
}

static void drop(struct input *in, const char *path)
{
	struct mfile *m = find(in, path);

	free(m->content);
	*m = in->f[--in->n];
}

static void input_free(struct input *in)
{
	size_t i;

	for (i = 0; i < in->n; i++)
		free(in->f[i].content);
	in->n = 0;
}

#define U1 "vol/d.org/u1/Maildir"
#define U2 "vol/d.org/u2/Maildir"
#define T0 1700000000

/* Day 1: NMSG small messages of two accounts in cur/ and new/ of INBOX
 * and a Maildir++ subfolder. */
static void day1(struct input *in)
{
	char path[160], from[32], subj[32];
	unsigned i;

	for (i = 0; i < NMSG; i++) {
		int64_t t = T0 + (int64_t)i * 600;
		const char *acc = i % 3 == 2 ? U2 : U1;
		const char *box = i % 5 == 4 ? "/.Archive.2024" : "";
		const char *sub = i % 7 == 6 ? "new" : "cur";

		snprintf(from, sizeof(from), "Sender %u", i % 17);
		snprintf(subj, sizeof(subj), "Subject %u", i);
		snprintf(path, sizeof(path), "%s%s/%s/%lld.M%uP1.h%s", acc, box,
			 sub, (long long)t, i, i % 7 == 6 ? "" : ":2,S");
		add(in, path, message(t, from, subj, i), t);
	}
}

/* Feed one file through the hook as ingest does, and store its raw
 * entry in the tree. */
static void feed(struct repo *r, struct mail_view *v, struct tree_builder *tb,
		 const struct mfile *m)
{
	const struct ingest_hook *h = mail_view_hook(v);
	struct mv_err err = MV_ERR_INIT;
	struct tree_chunk ch;
	struct tree_entry e;
	size_t len = strlen(m->content);
	void *res;

	memset(&e, 0, sizeof(e));
	e.type = TREE_REG;
	e.mode = 0600;
	e.uid = 5000;
	e.gid = 5000;
	e.mtime_sec = m->mtime;
	e.size = len;
	e.nlink = 1;
	e.nchunks = 1;
	e.chunks = &ch;
	ch.size = (uint32_t)len;
	repo_chunk_id(r, m->content, len, ch.id);
	res = h->analyze(h->ctx, m->path, ch.id, m->content, len);
	assert_int_equal(h->file_done(h->ctx, m->path, &e, res, &err), 0);
	assert_int_equal(tree_builder_add(tb, m->path, &e, &err), 0);
}

static void walk_dir(struct repo *r, const struct tree_ref *ref,
		     const char *prefix, struct walk *w)
{
	struct mv_err err = MV_ERR_INIT;
	struct tree *t = NULL;
	uint32_t i;

	if (!ref->n)
		return;
	assert_int_equal(tree_load(r, ref, &t, &err), 0);
	for (i = 0; i < t->n; i++) {
		const struct tree_entry *e = &t->entries[i];
		struct ventry *ve;

		if (w->n == w->cap) {
			w->cap = w->cap ? 2 * w->cap : 256;
			w->e = realloc(w->e, w->cap * sizeof(*w->e));
			assert_non_null(w->e);
		}
		ve = &w->e[w->n++];
		assert_true(asprintf(&ve->path, "%s/%s", prefix, e->name) > 0);
		memset(&ve->enc, 0, sizeof(ve->enc));
		assert_int_equal(tree_encode(e, 1, &ve->enc, &err), 0);
		if (e->type == TREE_DIR)
			walk_dir(r, &e->subtree, ve->path, w);
	}
	tree_free(t);
}

static void walk_free(struct walk *w)
{
	size_t i;

	for (i = 0; i < w->n; i++) {
		free(w->e[i].path);
		mv_buf_release(&w->e[i].enc);
	}
	free(w->e);
	memset(w, 0, sizeof(*w));
}

static const struct ventry *walk_find(const struct walk *w, const char *path)
{
	size_t i;

	for (i = 0; i < w->n; i++)
		if (!strcmp(w->e[i].path, path))
			return &w->e[i];
	return NULL;
}

/* One backup of in, files fed in the order of a permutation drawn from
 * seed (0: as listed), the source directories' times set to the backup
 * time.  The view's entries go to out when not NULL; its root id to
 * root. */
static void backup(struct repo *r, struct input *in, unsigned seed,
		   int64_t when, bool catalog, struct walk *out,
		   uint8_t root[MV_ID_LEN])
{
	static const char *const dirs[] = {
		U1, U1 "/cur", U1 "/new", U1 "/.Archive.2024",
		U2, U2 "/cur", U2 "/new", U2 "/.Archive.2024"};
	struct mail_view_opts o = {"job", NULL, !catalog, false};
	struct mv_err err = MV_ERR_INIT;
	struct repo_writer *w = NULL;
	struct tree_builder *tb = NULL;
	struct mail_view *v = NULL;
	struct tree *top = NULL;
	const struct tree_entry *mail;
	struct snapshot s;
	struct tree_entry d;
	size_t *order, i;
	uint64_t x = seed;

	assert_int_equal(repo_writer_begin(r, &w, &err), 0);
	assert_int_equal(tree_builder_new(&tb, &err), 0);
	if (mail_view_new(r, &o, &v, &err))
		fail_msg("mail_view_new: %s", err.msg);
	memset(&d, 0, sizeof(d));
	d.type = TREE_DIR;
	d.mode = 0700;
	d.uid = d.gid = 5000;
	d.mtime_sec = when; /* a source folder's time changes every day */
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		assert_int_equal(tree_builder_add(tb, dirs[i], &d, &err), 0);
	order = malloc(in->n * sizeof(*order));
	assert_non_null(order);
	for (i = 0; i < in->n; i++)
		order[i] = i;
	for (i = in->n; seed && i > 1; i--) {
		size_t j, t;

		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		j = (size_t)(x >> 33) % i;
		t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
	for (i = 0; i < in->n; i++)
		feed(r, v, tb, &in->f[order[i]]);
	free(order);
	if (mail_view_finish(v, tb, w, when * 1000000000, &err))
		fail_msg("finish: %s", err.msg);
	memset(&s, 0, sizeof(s));
	if (tree_builder_write(tb, r, w, &s.root, NULL, &err))
		fail_msg("write: %s", err.msg);
	s.name = (char *)"job";
	s.host = (char *)"h";
	s.time_ns = when * 1000000000;
	if (repo_writer_commit(w, &s, &err))
		fail_msg("commit: %s", err.msg);
	if (mail_view_commit(v, &s, &err))
		fail_msg("view commit: %s", err.msg);
	mail_view_free(v);
	tree_builder_free(tb);
	assert_int_equal(tree_load(r, &s.root, &top, &err), 0);
	mail = tree_find(top, MAIL_VIEW_DIR, strlen(MAIL_VIEW_DIR));
	assert_non_null(mail);
	assert_int_equal(
		tree_chunks_key(r, mail->subtree.chunks, mail->subtree.n, root),
		0);
	if (out)
		walk_dir(r, &mail->subtree, MAIL_VIEW_DIR, out);
	tree_free(top);
	tree_ref_release(&s.root);
}

/* A day of churn (new mail, new -> cur moves, flag changes, deletions,
 * the input in another order): every message present both days keeps a
 * byte-identical view entry, and so does every folder whose messages did
 * not change; an unchanged re-backup gives the same view root. */
static void test_mail_view_stable_churn(void **state)
{
	struct fx *f = *state;
	static struct input in;
	struct walk w1 = {0}, w2 = {0}, w3 = {0};
	uint8_t r1[MV_ID_LEN], r2[MV_ID_LEN], r3[MV_ID_LEN];
	char path[160], gone[4][16];
	unsigned i, k, ngone = 0, kept = 0;

	day1(&in);
	/* a message without a Date, in two folders: dated by its place */
	add(&in, U1 "/cur/1690000000.M900P1.h:2,S",
	    message(0, "Nodate", "No date", 900), 1690000000);
	add(&in, U1 "/.Archive.2024/cur/1680000000.M901P1.h:2,S",
	    message(0, "Nodate", "No date", 900), 1680000000);
	backup(f->r, &in, 0, T0 + 86400 * 10, true, &w1, r1);

	/* day 2 */
	for (i = 0; i < 5; i++) { /* new mail */
		int64_t t = T0 + 86400 * 10 + i * 60;

		snprintf(path, sizeof(path), "%s/new/%lld.M%uP2.h", U1,
			 (long long)t, 1000 + i);
		add(&in, path, message(t, "New", "New mail", 1000 + i), t);
	}
	for (i = 6; i < 6 + 7 * 5; i += 7) { /* new -> cur */
		struct mfile *m;
		int64_t t = T0 + (int64_t)i * 600;
		const char *acc = i % 3 == 2 ? U2 : U1;
		const char *box = i % 5 == 4 ? "/.Archive.2024" : "";

		snprintf(path, sizeof(path), "%s%s/new/%lld.M%uP1.h", acc, box,
			 (long long)t, i);
		m = find(&in, path);
		snprintf(m->path, sizeof(m->path), "%s%s/cur/%lld.M%uP1.h:2,",
			 acc, box, (long long)t, i);
	}
	for (k = 0; k < 3; k++) { /* flag changes: S -> RS (u1's INBOX) */
		static const unsigned flagged[] = {0, 10, 30};
		struct mfile *m;
		int64_t t;

		i = flagged[k];
		t = T0 + (int64_t)i * 600;

		snprintf(path, sizeof(path), "%s/cur/%lld.M%uP1.h:2,S", U1,
			 (long long)t, i);
		m = find(&in, path);
		snprintf(m->path, sizeof(m->path), "%s/cur/%lld.M%uP1.h:2,RS",
			 U1, (long long)t, i);
	}
	for (i = 1; i < 60; i += 30) { /* deletions (account u1 only) */
		int64_t t = T0 + (int64_t)i * 600;
		uint8_t id[MV_ID_LEN];
		struct mfile *m;

		snprintf(path, sizeof(path), "%s/cur/%lld.M%uP1.h:2,S", U1,
			 (long long)t, i);
		m = find(&in, path);
		repo_chunk_id(f->r, m->content, strlen(m->content), id);
		mv_hex(id, 4, gone[ngone++]);
		drop(&in, path);
	}
	backup(f->r, &in, 7, T0 + 86400 * 11, true, &w2, r2);
	assert_memory_not_equal(r1, r2, MV_ID_LEN);

	for (i = 0; i < w1.n; i++) {
		const struct ventry *a = &w1.e[i], *b;
		size_t len = strlen(a->path);
		bool deleted = false;

		if (len < 4 || strcmp(a->path + len - 4, ".eml"))
			continue;
		for (k = 0; k < ngone; k++)
			deleted |= strstr(a->path, gone[k]) != NULL;
		b = walk_find(&w2, a->path);
		if (deleted) {
			assert_null(b);
			continue;
		}
		if (!b)
			fail_msg("'%s' is gone on day 2", a->path);
		if (a->enc.len != b->enc.len ||
		    memcmp(a->enc.data, b->enc.data, a->enc.len))
			fail_msg("'%s' changed on day 2", a->path);
		kept++;
	}
	assert_int_equal(kept, NMSG + 2 - ngone);
	/* u2's INBOX and Archive lost nor gained nothing, only moves of
	 * new/ to cur/ and of the Archive's: the folder entries (with
	 * their trees) are the same */
	{
		const char *same[] = {"mail/u1@d.org/Archive"};
		const struct ventry *a = walk_find(&w1, same[0]);
		const struct ventry *b = walk_find(&w2, same[0]);

		assert_non_null(a);
		assert_non_null(b);
		assert_int_equal(a->enc.len, b->enc.len);
		assert_memory_equal(a->enc.data, b->enc.data, a->enc.len);
	}

	/* day 3: nothing changed but the order and the time */
	backup(f->r, &in, 1234, T0 + 86400 * 12, true, &w3, r3);
	assert_memory_equal(r2, r3, MV_ID_LEN);
	walk_free(&w1);
	walk_free(&w2);
	walk_free(&w3);
	input_free(&in);
}

/* Names that collide in a folder - one message stored twice, or a
 * message without a Date in two places - and different messages with
 * the same Date, From and Subject: the same view whatever the order the
 * files came in. */
static void test_mail_view_stable_collisions(void **state)
{
	struct fx *f = *state;
	static struct input in;
	struct walk w1 = {0}, w2 = {0};
	uint8_t r1[MV_ID_LEN], r2[MV_ID_LEN], id[MV_ID_LEN];
	char *same = message(T0, "Twin", "Same subject", 1);
	char path[512], hex[9];
	unsigned seed;

	add(&in, U1 "/cur/1700000000.M1P1.h:2,S", strdup(same), T0);
	add(&in, U1 "/cur/1700000100.M2P1.h:2,S", strdup(same), T0 + 100);
	add(&in, U1 "/cur/1700000200.M3P1.h:2,S",
	    message(T0, "Twin", "Same subject", 2), T0 + 200);
	add(&in, U1 "/cur/1700000300.M4P1.h:2,S",
	    message(T0, "Twin", "Same subject", 3), T0 + 300);
	add(&in, U1 "/new/1690000000.M5P1.h", message(0, "Nodate", "x", 4),
	    1690000000);
	add(&in, U1 "/.Archive.2024/cur/1680000000.M6P1.h:2,S",
	    message(0, "Nodate", "x", 4), 1680000000);
	add(&in, U2 "/cur/1700000400.M7P1.h:2,", strdup(same), T0 + 400);
	backup(f->r, &in, 0, T0 + 86400, false, &w1, r1);
	for (seed = 1; seed < 6; seed++) {
		backup(f->r, &in, seed, T0 + 86400 * (1 + seed), false,
		       seed == 1 ? &w2 : NULL, r2);
		assert_memory_equal(r1, r2, MV_ID_LEN);
	}
	/* the copy with the earlier maildir base keeps the plain name */
	repo_chunk_id(f->r, same, strlen(same), id);
	mv_hex(id, 4, hex);
	snprintf(path, sizeof(path),
		 "mail/u1@d.org/INBOX/2023-11-14 2213 Twin - Same subject "
		 "[%s-2].eml",
		 hex);
	assert_non_null(walk_find(&w1, path));
	/* both copies of the undated message: the earlier place's time */
	repo_chunk_id(f->r, in.f[4].content, strlen(in.f[4].content), id);
	mv_hex(id, 4, hex);
	snprintf(path, sizeof(path),
		 "mail/u1@d.org/INBOX/2023-03-28 1040 Nodate - x [%s].eml",
		 hex);
	assert_non_null(walk_find(&w1, path));
	snprintf(path, sizeof(path),
		 "mail/u1@d.org/Archive/2024/2023-03-28 1040 Nodate - x "
		 "[%s].eml",
		 hex);
	assert_non_null(walk_find(&w1, path));
	free(same);
	walk_free(&w1);
	walk_free(&w2);
	input_free(&in);
}

/* One backup of a Stalwart export of account john (no catalogue): its
 * blobs, mailboxes.json and emails, the latter in the order given. */
static void export_day(struct fx *f, const char *const *emails, size_t n,
		       struct tree_builder **tbo)
{
	struct mail_view_opts o = {"job", NULL, true, false};
	struct mv_err err = MV_ERR_INIT;
	struct repo_writer *w = NULL;
	struct mail_view *v = NULL;
	struct mfile m;
	size_t i, at = 1;

	assert_int_equal(repo_writer_begin(f->r, &w, &err), 0);
	assert_int_equal(tree_builder_new(tbo, &err), 0);
	assert_int_equal(mail_view_new(f->r, &o, &v, &err), 0);
	m.mtime = T0;
	snprintf(m.path, sizeof(m.path), "x/john/blobs/b1");
	m.content = message(T0, "One", "first", 1);
	feed(f->r, v, *tbo, &m);
	free(m.content);
	snprintf(m.path, sizeof(m.path), "x/john/blobs/b2");
	m.content = message(T0 + 3600, "Two", "second", 2);
	feed(f->r, v, *tbo, &m);
	free(m.content);
	snprintf(m.path, sizeof(m.path), "x/john/mailboxes.json");
	m.content = strdup("[{\"id\":\"i\",\"name\":\"Inbox\","
			   "\"parentId\":null,\"role\":\"inbox\"}]");
	feed(f->r, v, *tbo, &m);
	free(m.content);
	m.content = malloc(4096);
	assert_non_null(m.content);
	m.content[0] = '[';
	for (i = 0; i < n; i++)
		at += (size_t)snprintf(m.content + at, 4096 - at, "%s%s",
				       i ? "," : "", emails[i]);
	snprintf(m.content + at, 4096 - at, "]");
	snprintf(m.path, sizeof(m.path), "x/john/emails.json");
	feed(f->r, v, *tbo, &m);
	free(m.content);
	if (mail_view_finish(v, *tbo, w, (T0 + 86400) * 1000000000LL, &err))
		fail_msg("finish: %s", err.msg);
	mail_view_free(v);
	repo_writer_abort(w);
}

/* Custom keywords of an export's Maildir++ folder keep their letters
 * when a keyword that sorts before them comes with new mail, whatever
 * the order of emails.json: the files of unchanged emails keep their
 * names. */
static void test_mail_view_stable_keywords(void **state)
{
	struct fx *f = *state;
	static const char e1[] =
		"{\"id\":\"a\",\"blobId\":\"b1\",\"mailboxIds\":"
		"{\"i\":true},\"keywords\":{\"$seen\":true,\"work\":true},"
		"\"receivedAt\":\"2024-05-01T00:00:00Z\"}";
	static const char e2[] =
		"{\"id\":\"b\",\"blobId\":\"b2\",\"mailboxIds\":"
		"{\"i\":true},\"keywords\":{\"alpha\":true},"
		"\"receivedAt\":\"2024-05-03T00:00:00Z\"}";
	const char *first[] = {e1}, *both[] = {e1, e2}, *back[] = {e2, e1};
	struct tree_builder *tb;
	char *m1 = message(T0, "One", "first", 1);
	char *m2 = message(T0 + 3600, "Two", "second", 2);
	char p1[256], p2[256];
	unsigned k;

	snprintf(p1, sizeof(p1),
		 "maildir/john/cur/1714521600.a.stalwart,S=%zu:2,Sa",
		 strlen(m1));
	snprintf(p2, sizeof(p2),
		 "maildir/john/cur/1714694400.b.stalwart,S=%zu:2,b",
		 strlen(m2));
	export_day(f, first, 1, &tb);
	assert_non_null(tree_builder_get(tb, p1));
	tree_builder_free(tb);
	for (k = 0; k < 2; k++) {
		export_day(f, k ? back : both, 2, &tb);
		if (!tree_builder_get(tb, p1))
			fail_msg("'%s' renamed on day 2", p1);
		assert_non_null(tree_builder_get(tb, p2));
		assert_non_null(
			tree_builder_get(tb, "maildir/john/dovecot-keywords"));
		assert_int_equal(
			tree_builder_get(tb, "maildir/john/dovecot-keywords")
				->size,
			strlen("0 work\n1 alpha\n"));
		tree_builder_free(tb);
	}
	free(m1);
	free(m2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mail_view_stable_churn,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_mail_view_stable_collisions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mail_view_stable_keywords,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
