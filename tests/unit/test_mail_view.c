/* Unit tests for mail_view: the view entries a backup adds for maildir
 * messages, driven through the ingest hook as ingest drives it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <lz4frame.h>

#include "mail_view.h"

struct fx {
	char dir[64];
	struct repo *r;
	struct repo_writer *w;
	struct tree_builder *tb;
	struct mail_view *v;
};

static int setup(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct mail_view_opts o = {"job", NULL, false, false};
	struct fx *f = calloc(1, sizeof(*f));
	char repo[128];

	snprintf(f->dir, sizeof(f->dir), "/tmp/mv-test-view.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(repo, sizeof(repo), "%s/repo", f->dir);
	assert_int_equal(repo_init(repo, NULL, &err), 0);
	assert_int_equal(repo_open(repo, REPO_OPEN_WRITE, &f->r, &err), 0);
	assert_int_equal(repo_writer_begin(f->r, &f->w, &err), 0);
	assert_int_equal(tree_builder_new(&f->tb, &err), 0);
	assert_int_equal(mail_view_new(f->r, &o, &f->v, &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	mail_view_free(f->v);
	tree_builder_free(f->tb);
	repo_writer_abort(f->w);
	repo_close(f->r);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Feed one file through the hook as ingest does. */
static void feed(struct fx *f, const char *path, const char *content,
		 uint32_t uid)
{
	const struct ingest_hook *h = mail_view_hook(f->v);
	struct mv_err err = MV_ERR_INIT;
	struct tree_chunk ch;
	struct tree_entry e;
	size_t len = strlen(content);
	void *res;

	memset(&e, 0, sizeof(e));
	e.type = TREE_REG;
	e.mode = 0600;
	e.uid = uid;
	e.size = len;
	e.nchunks = 1;
	e.chunks = &ch;
	ch.size = (uint32_t)len;
	repo_chunk_id(f->r, content, len, ch.id);
	res = h->analyze(h->ctx, path, ch.id, content, len);
	assert_int_equal(h->file_done(h->ctx, path, &e, res, &err), 0);
}

static const char msg1[] = "From: Alice Example <alice@example.org>\n"
			   "Subject: Quarterly report\n"
			   "Date: Wed, 01 May 2024 12:30:00 +0000\n"
			   "Message-ID: <q@example.org>\n\nbody\n";

static void test_mail_view_entry(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct tree_entry *e, d;
	uint8_t id[MV_ID_LEN];
	char path[512], hex[9];

	feed(f, "vol/example.org/alice/Maildir/cur/1714566600.M1P2.h,S=140:2,S",
	     msg1, 5000);
	feed(f, "vol/example.org/alice/Maildir/tmp/1714566600.M9P9.h", msg1,
	     5000);
	feed(f, "vol/etc/passwd", "root:x:0:0\n", 0);
	/* the maildir's directory, as a source would have added it */
	memset(&d, 0, sizeof(d));
	d.type = TREE_DIR;
	d.mode = 0750;
	d.uid = 5000;
	d.gid = 12;
	assert_int_equal(tree_builder_add(f->tb,
					  "vol/example.org/alice/Maildir", &d,
					  &err),
			 0);
	assert_int_equal(mail_view_finish(f->v, f->tb, f->w, 0, &err), 0);
	repo_chunk_id(f->r, msg1, strlen(msg1), id);
	mv_hex(id, 4, hex);
	snprintf(path, sizeof(path),
		 "mail/alice@example.org/INBOX/2024-05-01 1230 Alice Example - "
		 "Quarterly report [%s].eml",
		 hex);
	e = tree_builder_get(f->tb, path);
	assert_non_null(e);
	assert_int_equal(e->type, TREE_REG);
	assert_int_equal(e->mode, 0600); /* the message file's */
	assert_int_equal(e->uid, 5000);
	assert_int_equal(e->mtime_sec, 1714566600);
	assert_int_equal(e->size, strlen(msg1));
	assert_int_equal(e->xform, TREE_XFORM_NONE);
	assert_int_equal(e->nchunks, 1);
	assert_memory_equal(e->chunks[0].id, id, MV_ID_LEN);
	/* folders: as the maildir's directory; mail/ as its one account */
	e = tree_builder_get(f->tb, "mail/alice@example.org");
	assert_non_null(e);
	assert_int_equal(e->mode, 0750);
	assert_int_equal(e->uid, 5000);
	assert_int_equal(e->gid, 12);
	e = tree_builder_get(f->tb, "mail/alice@example.org/INBOX");
	assert_non_null(e);
	assert_int_equal(e->mode, 0750);
	assert_int_equal(e->gid, 12);
	e = tree_builder_get(f->tb, "mail");
	assert_non_null(e);
	assert_int_equal(e->mode, 0750);
	assert_int_equal(e->uid, 5000);
	assert_int_equal(mail_view_get_stats(f->v)->messages, 1);
	assert_int_equal(mail_view_get_stats(f->v)->parsed, 1);
}

/* A Stalwart export whose blobs come before its JSON: placed in both
 * mailboxes, mtime = receivedAt, a Maildir++ file with flags; a missing
 * blob counted; a loose .eml in its own folder. */
static void test_mail_view_stalwart_export(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	const struct mail_view_stats *st;
	struct tree_entry *e;
	uint8_t id[MV_ID_LEN];
	char path[512], hex[9];

	feed(f, "x/john/blobs/cblob1", msg1, 0);
	feed(f, "x/john/blobs/csieve", "require [\"fileinto\"];\n", 0);
	feed(f, "x/john/emails.json",
	     "[{\"id\":\"a\",\"blobId\":\"cblob1\",\"mailboxIds\":"
	     "{\"a\":true,\"c\":true},\"keywords\":{\"$seen\":true,"
	     "\"$flagged\":true},\"receivedAt\":\"2024-05-02T00:00:00Z\"},"
	     "{\"id\":\"b\",\"blobId\":\"cgone\",\"mailboxIds\":"
	     "{\"a\":true}}]",
	     0);
	feed(f, "x/john/mailboxes.json",
	     "[{\"id\":\"a\",\"name\":\"Inbox\",\"parentId\":null,"
	     "\"role\":\"inbox\"},{\"id\":\"b\",\"name\":\"Archive\","
	     "\"parentId\":null,\"role\":null},{\"id\":\"c\",\"name\":"
	     "\"2024\",\"parentId\":\"b\",\"role\":null,\"shareWith\":"
	     "{\"c\":{\"mayReadItems\":true}}}]",
	     0);
	feed(f, "v/saved/note.eml", msg1, 0);
	assert_int_equal(mail_view_finish(f->v, f->tb, f->w, 0, &err), 0);
	repo_chunk_id(f->r, msg1, strlen(msg1), id);
	mv_hex(id, 4, hex);
	snprintf(path, sizeof(path),
		 "mail/john/Inbox/2024-05-01 1230 Alice Example - "
		 "Quarterly report [%s].eml",
		 hex);
	e = tree_builder_get(f->tb, path);
	assert_non_null(e);
	assert_int_equal(e->mtime_sec, 1714608000);
	assert_memory_equal(e->chunks[0].id, id, MV_ID_LEN);
	snprintf(path, sizeof(path),
		 "mail/john/Archive/2024/2024-05-01 1230 Alice Example - "
		 "Quarterly report [%s].eml",
		 hex);
	assert_non_null(tree_builder_get(f->tb, path));
	e = tree_builder_get(f->tb, "maildir/john/cur/1714608000.a.stalwart,"
				    "S=138:2,FS");
	assert_non_null(e);
	assert_memory_equal(e->chunks[0].id, id, MV_ID_LEN);
	assert_non_null(tree_builder_get(
		f->tb, "maildir/john/.Archive.2024/cur/1714608000.a.stalwart,"
		       "S=138:2,FS"));
	assert_non_null(
		tree_builder_get(f->tb, "maildir/john/.Archive/maildirfolder"));
	snprintf(path, sizeof(path),
		 "mail/loose/v/saved/2024-05-01 1230 Alice Example - "
		 "Quarterly report [%s].eml",
		 hex);
	assert_non_null(tree_builder_get(f->tb, path));
	st = mail_view_get_stats(f->v);
	assert_int_equal(st->exports, 1);
	assert_int_equal(st->stalwart, 2);
	assert_int_equal(st->missing_blobs, 1);
	assert_int_equal(st->loose, 1);
	assert_int_equal(st->messages, 3);
	assert_int_equal(st->bad_headers, 0);
}

static void test_mail_view_duplicates_and_folders(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	uint8_t id[MV_ID_LEN];
	char path[512], hex[9];

	/* the same message twice in one folder (fed out of order) and once
	 * in a Maildir++ subfolder */
	feed(f, "v/d.org/u/Maildir/cur/2.M1P1.h:2,", msg1, 1);
	feed(f, "v/d.org/u/Maildir/cur/1.M1P1.h:2,S", msg1, 1);
	feed(f, "v/d.org/u/Maildir/.Archive.2024/new/3.M1P1.h", msg1, 1);
	assert_int_equal(mail_view_finish(f->v, f->tb, f->w, 0, &err), 0);
	repo_chunk_id(f->r, msg1, strlen(msg1), id);
	mv_hex(id, 4, hex);
	snprintf(path, sizeof(path),
		 "mail/u@d.org/INBOX/2024-05-01 1230 Alice Example - "
		 "Quarterly report [%s].eml",
		 hex);
	assert_non_null(tree_builder_get(f->tb, path));
	snprintf(path, sizeof(path),
		 "mail/u@d.org/INBOX/2024-05-01 1230 Alice Example - "
		 "Quarterly report [%s-2].eml",
		 hex);
	assert_non_null(tree_builder_get(f->tb, path));
	snprintf(path, sizeof(path),
		 "mail/u@d.org/Archive/2024/2024-05-01 1230 Alice Example - "
		 "Quarterly report [%s].eml",
		 hex);
	assert_non_null(tree_builder_get(f->tb, path));
	assert_int_equal(mail_view_get_stats(f->v)->folders, 2);
	assert_int_equal(mail_view_get_stats(f->v)->accounts, 1);
}

static void test_mail_view_undecodable(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	const struct mail_view_stats *st;
	uint8_t id[MV_ID_LEN];
	char path[512], hex[9];
	static const char bad[] = "CRYPTED\003\007\000\000\000\002cut";
	const struct ingest_hook *h = mail_view_hook(f->v);
	struct tree_chunk ch;
	struct tree_entry e;
	void *res;

	memset(&e, 0, sizeof(e));
	e.type = TREE_REG;
	e.size = sizeof(bad) - 1;
	e.nchunks = 1;
	e.chunks = &ch;
	ch.size = (uint32_t)e.size;
	repo_chunk_id(f->r, bad, sizeof(bad) - 1, ch.id);
	res = h->analyze(h->ctx, "d.org/u/cur/100.M1P1.h,S=9:2,", ch.id, bad,
			 sizeof(bad) - 1);
	assert_int_equal(h->file_done(h->ctx, "d.org/u/cur/100.M1P1.h,S=9:2,",
				      &e, res, &err),
			 0);
	assert_int_equal(mail_view_finish(f->v, f->tb, f->w, 0, &err), 0);
	st = mail_view_get_stats(f->v);
	assert_int_equal(st->messages, 1);
	assert_int_equal(st->corrupt + st->no_key, 1);
	memcpy(id, ch.id, MV_ID_LEN);
	mv_hex(id, 4, hex);
	snprintf(path, sizeof(path),
		 "mail/u@d.org/INBOX/1970-01-01 0001 (undecodable) - %s "
		 "100.M1P1.h,S=9 [%s].raw",
		 st->corrupt ? "corrupt" : "no key", hex);
	assert_non_null(tree_builder_get(f->tb, path));
}

/* Feed one file through the hook's stream, in pieces of `piece` bytes,
 * as ingest does for a file the hook streams; the entry is one chunk. */
static void stream(struct fx *f, const char *path, const void *data, size_t len,
		   size_t piece)
{
	const struct ingest_hook *h = mail_view_hook(f->v);
	struct mv_err err = MV_ERR_INIT;
	struct tree_chunk ch;
	struct tree_entry e;
	void *st, *res;
	size_t at;

	memset(&e, 0, sizeof(e));
	e.type = TREE_REG;
	e.mode = 0600;
	e.size = len;
	e.nchunks = 1;
	e.chunks = &ch;
	ch.size = (uint32_t)len;
	repo_chunk_id(f->r, data, len, ch.id);
	st = h->stream_begin(h->ctx, path, &e);
	assert_non_null(st);
	for (at = 0; at < len; at += piece)
		assert_int_equal(h->stream_data(h->ctx, st,
						(const char *)data + at,
						MV_MIN(piece, len - at), &err),
				 0);
	res = h->stream_end(h->ctx, st, true);
	assert_int_equal(h->file_done(h->ctx, path, &e, res, &err), 0);
}

static const char msg2[] = "From: Bob <bob@example.org>\n"
			   "Subject: Second\n"
			   "Date: Thu, 02 May 2024 08:00:00 +0000\n\nhi\n";

/* Stalwart inputs seen through the stream (tar, stdin, ssh:// sources):
 * the export's JSON whole, a dump scanned in small pieces; other files
 * are not streamed; a dump stream dropped on failure leaves nothing. */
static void test_mail_view_streams(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	const struct ingest_hook *h = mail_view_hook(f->v);
	static const char emails[] =
		"[{\"id\":\"a\",\"blobId\":\"cblob1\",\"mailboxIds\":"
		"{\"a\":true},\"receivedAt\":\"2024-05-02T00:00:00Z\"}]";
	static const char boxes[] =
		"[{\"id\":\"a\",\"name\":\"Inbox\",\"parentId\":null,"
		"\"role\":\"inbox\"}]";
	struct mv_buf raw = MV_BUF_INIT;
	const struct mail_view_stats *st;
	struct tree_entry meta, *e;
	uint8_t key[32], *z, id[MV_ID_LEN];
	size_t zn, cap;
	char path[512], hex[9];
	void *s;
	int i;

	memset(&meta, 0, sizeof(meta));
	meta.type = TREE_REG;
	meta.size = 100;
	/* not for the stream: messages, blobs, other files */
	assert_null(h->stream_begin(h->ctx, "x/john/blobs/cblob1", &meta));
	assert_null(h->stream_begin(h->ctx, "v/d.org/u/Maildir/cur/1.M1P1.h",
				    &meta));
	assert_null(h->stream_begin(h->ctx, "etc/passwd", &meta));

	stream(f, "x/john/emails.json", emails, strlen(emails), 7);
	feed(f, "x/john/blobs/cblob1", msg1, 0);
	stream(f, "x/john/mailboxes.json", boxes, strlen(boxes), 3);

	/* a dump: two records in one LZ4 frame, fed 5 bytes at a time */
	mv_buf_put_u8(&raw, 0x7b);
	mv_buf_put_u8(&raw, 't');
	mv_buf_put_le32(&raw, 5);
	for (i = 0; i < 2; i++) {
		const char *m = i ? msg2 : msg1;
		size_t len;

		memset(key, i + 1, sizeof(key));
		mv_buf_put_u8(&raw, 32);
		mv_buf_append(&raw, key, 32);
		len = strlen(m); /* LEB128 */
		for (; len >= 0x80; len >>= 7)
			mv_buf_put_u8(&raw, (uint8_t)(len | 0x80));
		mv_buf_put_u8(&raw, (uint8_t)len);
		mv_buf_append(&raw, m, strlen(m));
	}
	cap = LZ4F_compressFrameBound(raw.len, NULL);
	z = malloc(cap);
	assert_non_null(z);
	zn = LZ4F_compressFrame(z, cap, raw.data, raw.len, NULL);
	assert_false(LZ4F_isError(zn));
	stream(f, "d/export/subspace_t", z, zn, 5);
	/* a second one abandoned half-way (the backup failed) */
	meta.size = zn;
	s = h->stream_begin(h->ctx, "d2/subspace_t", &meta);
	assert_non_null(s);
	assert_int_equal(h->stream_data(h->ctx, s, z, zn / 2, &err), 0);
	assert_null(h->stream_end(h->ctx, s, false));

	assert_int_equal(mail_view_finish(f->v, f->tb, f->w, 0, &err), 0);
	st = mail_view_get_stats(f->v);
	assert_int_equal(st->exports, 1);
	assert_int_equal(st->stalwart, 1);
	assert_int_equal(st->bad_exports, 0);
	assert_int_equal(st->dumps, 1);
	assert_int_equal(st->dump_messages, 2);
	assert_int_equal(st->dump_errors, 0);
	repo_chunk_id(f->r, msg1, strlen(msg1), id);
	mv_hex(id, 4, hex);
	snprintf(path, sizeof(path),
		 "mail/john/Inbox/2024-05-01 1230 Alice Example - "
		 "Quarterly report [%s].eml",
		 hex);
	assert_non_null(tree_builder_get(f->tb, path));
	snprintf(path, sizeof(path),
		 "mail/stalwart-dump/2024-05-01 1230 Alice Example - "
		 "Quarterly report [%s].eml",
		 hex);
	e = tree_builder_get(f->tb, path);
	assert_non_null(e);
	assert_int_equal(e->xform, TREE_XFORM_STALWART_DUMP);
	assert_int_equal(e->size, strlen(msg1));
	repo_chunk_id(f->r, msg2, strlen(msg2), id);
	mv_hex(id, 4, hex);
	snprintf(path, sizeof(path),
		 "mail/stalwart-dump/2024-05-02 0800 Bob - Second [%s].eml",
		 hex);
	assert_non_null(tree_builder_get(f->tb, path));
	mv_buf_release(&raw);
	free(z);
}

/* A plain message larger than one chunk, seen through the stream: named
 * from its headers and sized as the file; an abandoned stream is
 * freed. */
static void test_mail_view_large(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	const struct ingest_hook *h = mail_view_hook(f->v);
	const char *path = "v/d.org/u/Maildir/cur/1714600000.M1P1.h:2,S";
	struct mv_buf m = MV_BUF_INIT;
	struct tree_chunk ch[3];
	struct tree_entry e, *ve;
	uint8_t cid[MV_ID_LEN];
	char vpath[512], hex[9];
	void *st, *res;
	size_t at, i;

	static const char hdr[] =
		"From: Alice Example <alice@example.org>\n"
		"Subject: Quarterly report\n"
		"Date: Wed, 01 May 2024 12:30:00 +0000\n"
		"MIME-Version: 1.0\n"
		"Content-Type: multipart/mixed; boundary=\"b\"\n\n"
		"--b\nContent-Type: text/plain\n\n";

	mv_buf_append(&m, hdr, strlen(hdr));
	for (i = 0; i < 8000; i++)
		mv_buf_append(&m, "a line of text that makes the body long.\n",
			      41);
	static const char att[] =
		"\n--b\nContent-Type: application/pdf\n"
		"Content-Disposition: attachment; filename=\"deep.pdf\"\n\n"
		"JVBERi0=\n--b--\n";
	mv_buf_append(&m, att, strlen(att));
	assert_true(m.len > 256 << 10);
	memset(&e, 0, sizeof(e));
	e.type = TREE_REG;
	e.mode = 0600;
	e.size = m.len;
	e.nchunks = 3;
	e.chunks = ch;
	for (i = 0; i < 3; i++) {
		size_t a = i * m.len / 3, b = (i + 1) * m.len / 3;

		e.chunks[i].size = (uint32_t)(b - a);
		repo_chunk_id(f->r, m.data + a, b - a, e.chunks[i].id);
	}
	st = h->stream_begin(h->ctx, path, &e);
	assert_non_null(st);
	for (at = 0; at < m.len; at += 4096)
		assert_int_equal(h->stream_data(h->ctx, st, m.data + at,
						MV_MIN(4096, m.len - at), &err),
				 0);
	res = h->stream_end(h->ctx, st, true);
	assert_non_null(res);
	assert_int_equal(h->file_done(h->ctx, path, &e, res, &err), 0);
	/* an abandoned stream gives its budget back too */
	st = h->stream_begin(h->ctx, path, &e);
	assert_non_null(st);
	assert_null(h->stream_end(h->ctx, st, false));
	assert_int_equal(mail_view_finish(f->v, f->tb, f->w, 0, &err), 0);
	assert_int_equal(mail_view_get_stats(f->v)->parsed, 1);
	assert_int_equal(mail_view_get_stats(f->v)->large, 0);
	mail_view_content_id(f->r, &e, cid);
	mv_hex(cid, 4, hex);
	snprintf(vpath, sizeof(vpath),
		 "mail/u@d.org/INBOX/2024-05-01 1230 Alice Example - "
		 "Quarterly report [%s].eml",
		 hex);
	ve = tree_builder_get(f->tb, vpath);
	assert_non_null(ve);
	assert_int_equal(ve->size, m.len);
	assert_int_equal(ve->nchunks, 3);
	assert_int_equal(ve->xform, TREE_XFORM_NONE);
	mv_buf_release(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mail_view_entry, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_mail_view_duplicates_and_folders, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mail_view_stalwart_export,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_mail_view_undecodable,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_mail_view_large, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_mail_view_streams, setup,
						teardown),
	};

	return cmocka_run_group_tests_name("mail_view", tests, NULL, NULL);
}
