/* Unit tests for mail_stalwart: account export JSON (acl and shareWith
 * variants, nested mailboxes, truncation, missing blobs) and subspace
 * dump streams. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <lz4frame.h>

#include "mail_stalwart.h"
#include "util.h"

/* shareWith variant (v0.13.4+) */
static const char mailboxes_new[] =
	"[{\"id\":\"a\",\"name\":\"Inbox\",\"parentId\":null,\"role\":"
	"\"inbox\",\"sortOrder\":1,\"isSubscribed\":true},"
	"{\"id\":\"g\",\"name\":\"Archive\",\"parentId\":null,\"role\":"
	"\"archive\",\"sortOrder\":0,\"isSubscribed\":false},"
	"{\"id\":\"f\",\"name\":\"2024\",\"parentId\":\"g\",\"role\":null,"
	"\"sortOrder\":0,\"isSubscribed\":false,\"shareWith\":{\"c\":{"
	"\"mayReadItems\":true,\"mayAddItems\":false}}},"
	"{\"id\":\"h\",\"name\":\"a/b\",\"parentId\":\"f\",\"role\":null}]";
/* acl variant (<= v0.13.3) with a dangling parent */
static const char mailboxes_old[] =
	"[{\"id\":\"a\",\"name\":\"Inbox\",\"parentId\":null,\"role\":"
	"\"inbox\",\"acl\":{\"bob\":[\"read\",\"readItems\"]}},"
	"{\"id\":\"b\",\"name\":\"Lost\",\"parentId\":\"zz\"},"
	"{\"id\":\"c\",\"name\":\"Loop1\",\"parentId\":\"d\"},"
	"{\"id\":\"d\",\"name\":\"Loop2\",\"parentId\":\"c\"}]";
static const char emails[] =
	"[{\"id\":\"eaaaaab\",\"blobId\":\"cblob1\",\"mailboxIds\":{\"a\":"
	"true,\"f\":true},\"keywords\":{\"$seen\":true,\"$flagged\":true,"
	"\"work\":true},\"receivedAt\":\"2024-05-01T12:00:00Z\","
	"\"messageId\":[\"abc@example.org\"]},"
	"{\"id\":\"eaaaaac\",\"blobId\":\"cblob2\",\"mailboxIds\":{\"g\":"
	"true},\"receivedAt\":\"2024-05-02T08:30:00Z\"},"
	"{\"id\":\"eaaaaad\",\"mailboxIds\":{\"g\":true}}]";

static void test_mail_stalwart_export_tree(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct mail_stalwart_export exp;
	const struct mail_stalwart_mailbox *mb;
	const struct mail_stalwart_email *e;

	(void)state;
	assert_int_equal(mail_stalwart_export_parse(
				 mailboxes_new, sizeof(mailboxes_new) - 1,
				 emails, sizeof(emails) - 1, &exp, &err),
			 0);
	assert_int_equal(exp.n_mailboxes, 4);
	mb = mail_stalwart_mailbox_find(&exp, "f");
	assert_string_equal(mb->path, "Archive/2024");
	assert_true(mb->shared);
	assert_null(mb->role);
	assert_string_equal(mail_stalwart_mailbox_find(&exp, "h")->path,
			    "Archive/2024/a_b");
	assert_false(mail_stalwart_mailbox_find(&exp, "a")->shared);
	assert_string_equal(mail_stalwart_mailbox_find(&exp, "a")->role,
			    "inbox");
	assert_int_equal(exp.n_emails, 2); /* the third lacks a blobId */
	assert_true(exp.problems & MAIL_STALWART_BAD_ENTRY);
	e = &exp.emails[0];
	assert_string_equal(e->blob_id, "cblob1");
	assert_int_equal(e->n_mailbox_ids, 2);
	assert_int_equal(e->n_keywords, 3);
	assert_int_equal(e->received_at, 1714564800);
	assert_string_equal(e->message_id, "abc@example.org");
	assert_null(exp.emails[1].message_id);
	assert_int_equal(exp.emails[1].n_keywords, 0);
	mail_stalwart_export_release(&exp);
}

static void test_mail_stalwart_export_acl_and_bad_parents(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct mail_stalwart_export exp;

	(void)state;
	assert_int_equal(mail_stalwart_export_parse(mailboxes_old,
						    sizeof(mailboxes_old) - 1,
						    "[]", 2, &exp, &err),
			 0);
	assert_true(mail_stalwart_mailbox_find(&exp, "a")->shared);
	assert_string_equal(mail_stalwart_mailbox_find(&exp, "b")->path,
			    "Lost");
	assert_true(exp.problems & MAIL_STALWART_BAD_PARENT);
	assert_non_null(mail_stalwart_mailbox_find(&exp, "c")->path);
	mail_stalwart_export_release(&exp);
}

static void test_mail_stalwart_export_truncated(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct mail_stalwart_export exp;
	size_t cut = strstr(emails, "cblob2") - emails;

	(void)state;
	assert_int_equal(mail_stalwart_export_parse(mailboxes_new,
						    sizeof(mailboxes_new) - 1,
						    emails, cut, &exp, &err),
			 0);
	assert_true(exp.problems & MAIL_STALWART_EMAILS_CUT);
	assert_int_equal(exp.n_emails, 1);
	assert_string_equal(exp.emails[0].blob_id, "cblob1");
	mail_stalwart_export_release(&exp);
	/* nothing usable, and absent mailboxes.json */
	assert_int_equal(
		mail_stalwart_export_parse(NULL, 0, "[{\"id", 5, &exp, &err),
		0);
	assert_true(exp.problems & MAIL_STALWART_BAD_JSON);
	assert_true(exp.problems & MAIL_STALWART_NO_MAILBOXES);
	assert_int_equal(exp.n_emails, 0);
	mail_stalwart_export_release(&exp);
}

static void test_mail_stalwart_export_load_blobs(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct mail_stalwart_export exp;
	char dir[] = "/tmp/mv-stalwart.XXXXXX", path[256];
	const char *names[] = {"blobs", "emails.json", "mailboxes.json"};

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/emails.json", dir);
	mv_write_file_atomic(path, emails, sizeof(emails) - 1, &err);
	snprintf(path, sizeof(path), "%s/mailboxes.json", dir);
	mv_write_file_atomic(path, mailboxes_new, sizeof(mailboxes_new) - 1,
			     &err);
	snprintf(path, sizeof(path), "%s/blobs", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/blobs/cblob1", dir);
	mv_write_file_atomic(path, "From: a\n\nx\n", 11, &err);
	assert_int_equal(err.code, 0);
	assert_int_equal(mail_stalwart_export_load(dir, &exp, &err), 0);
	assert_int_equal(exp.n_missing_blobs, 1);
	assert_false(exp.emails[0].blob_missing);
	assert_true(exp.emails[1].blob_missing);
	assert_true(exp.problems & MAIL_STALWART_MISSING_BLOB);
	mail_stalwart_export_release(&exp);
	assert_true(mail_stalwart_is_export(names, 3));
	assert_false(mail_stalwart_is_export(names, 1));
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	assert_int_equal(system(path), 0);
}

/* ---- dumps ---- */

struct mem_src {
	const uint8_t *p;
	size_t n, pos, step;
};

static int mem_read(void *ctx, void *buf, size_t n, size_t *got)
{
	struct mem_src *s = ctx;
	size_t k = MV_MIN(MV_MIN(n, s->n - s->pos), s->step);

	memcpy(buf, s->p + s->pos, k);
	s->pos += k;
	*got = k;
	return 0;
}

struct seen {
	int n;
	size_t total;
	uint8_t first_key[32];
};

static int on_record(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v,
		     size_t vl)
{
	struct seen *s = ctx;

	(void)v;
	if (s->n == 0 && kl == 32)
		memcpy(s->first_key, k, 32);
	s->n++;
	s->total += vl;
	return 0;
}

static size_t make_dump(uint8_t **out, size_t big)
{
	struct mv_buf raw = MV_BUF_INIT;
	uint8_t key[32];
	char *val = malloc(big);
	size_t cap, n;
	int i;

	mv_buf_put_u8(&raw, 0x7b);
	mv_buf_put_u8(&raw, 't');
	mv_buf_put_le32(&raw, 5);
	for (i = 0; i < 3; i++) {
		memset(key, i + 1, sizeof(key));
		mv_buf_put_bytes(&raw, key, sizeof(key));
		memset(val, 'a' + i, big);
		mv_buf_put_bytes(&raw, val, i == 2 ? 0 : big);
	}
	cap = LZ4F_compressFrameBound(raw.len, NULL);
	*out = malloc(cap);
	n = LZ4F_compressFrame(*out, cap, raw.data, raw.len, NULL);
	assert_false(LZ4F_isError(n));
	mv_buf_release(&raw);
	free(val);
	return n;
}

struct offs {
	struct mail_stalwart_dump_info *info;
	uint64_t off[4];
	size_t len[4];
	int n;
};

static int on_offset(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v,
		     size_t vl)
{
	struct offs *o = ctx;

	(void)k;
	(void)kl;
	(void)v;
	if (o->n < 4) {
		o->off[o->n] = o->info->value_offset;
		o->len[o->n] = vl;
		o->n++;
	}
	return 0;
}

/* value_offset during the callback, then each value read back alone */
static void test_mail_stalwart_dump_extract(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct mail_stalwart_dump_info info;
	struct offs o;
	uint8_t *z;
	size_t zn = make_dump(&z, 300000);
	struct mem_src src = {z, zn, 0, 4096};
	int i;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.info = &info;
	assert_int_equal(mail_stalwart_dump_scan(mem_read, &src, on_offset, &o,
						 &info, &err),
			 0);
	assert_int_equal(o.n, 3);
	for (i = 0; i < 2; i++) {
		struct mv_buf out = MV_BUF_INIT;
		size_t k;

		src.pos = 0;
		assert_int_equal(mail_stalwart_dump_extract(mem_read, &src,
							    o.off[i], o.len[i],
							    &out, &err),
				 0);
		assert_int_equal(out.len, 300000);
		for (k = 0; k < out.len; k++)
			if (out.data[k] != 'a' + i)
				break;
		assert_int_equal(k, out.len);
		mv_buf_release(&out);
	}
	/* a range past the end of the stream */
	{
		struct mv_buf out = MV_BUF_INIT;

		src.pos = 0;
		assert_int_equal(mail_stalwart_dump_extract(mem_read, &src,
							    o.off[1], 900000,
							    &out, &err),
				 -EBADMSG);
		mv_buf_release(&out);
	}
	free(z);
}

/* the start of the stream, or all of it when shorter; each value lies at
 * its offset in it, and a cut frame is an error */
static void test_mail_stalwart_dump_decode_prefix(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct mail_stalwart_dump_info info;
	struct mv_buf all = MV_BUF_INIT, some = MV_BUF_INIT, cut = MV_BUF_INIT;
	struct offs o;
	uint8_t *z;
	size_t zn = make_dump(&z, 300000), k;
	struct mem_src src = {z, zn, 0, 4096};

	(void)state;
	memset(&o, 0, sizeof(o));
	o.info = &info;
	assert_int_equal(mail_stalwart_dump_scan(mem_read, &src, on_offset, &o,
						 &info, &err),
			 0);
	src.pos = 0;
	assert_int_equal(
		mail_stalwart_dump_decode_prefix(
			mem_read, &src, MAIL_STALWART_MAX_VALUE, &all, &err),
		0);
	assert_true(all.len >= o.off[1] + o.len[1]);
	for (k = 0; k < o.len[1]; k++)
		if (all.data[o.off[1] + k] != 'b')
			break;
	assert_int_equal(k, o.len[1]);
	src.pos = 0;
	assert_int_equal(mail_stalwart_dump_decode_prefix(mem_read, &src, 1000,
							  &some, &err),
			 0);
	assert_int_equal(some.len, 1000);
	assert_memory_equal(some.data, all.data, 1000);
	src.pos = 0;
	src.n = zn / 2;
	assert_int_equal(
		mail_stalwart_dump_decode_prefix(
			mem_read, &src, MAIL_STALWART_MAX_VALUE, &cut, &err),
		-EBADMSG);
	mv_buf_release(&all);
	mv_buf_release(&some);
	mv_buf_release(&cut);
	free(z);
}

static void test_mail_stalwart_dump(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct mail_stalwart_dump_info info;
	struct seen s = {0, 0, {0}};
	uint8_t *z;
	size_t zn = make_dump(&z, 300000);
	struct mem_src src = {z, zn, 0, 777};

	(void)state;
	assert_int_equal(mail_stalwart_dump_scan(mem_read, &src, on_record, &s,
						 &info, &err),
			 0);
	assert_int_equal(info.subspace, 't');
	assert_int_equal(info.version, 5);
	assert_int_equal(info.records, 3);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.total, 600000);
	assert_int_equal(s.first_key[0], 1);

	/* cut short */
	src.pos = 0;
	src.n = zn / 2;
	assert_int_equal(mail_stalwart_dump_scan(mem_read, &src, NULL, NULL,
						 &info, &err),
			 -EBADMSG);
	mv_err_clear(&err);
	/* corrupt */
	src.pos = 0;
	src.n = zn;
	z[zn / 2] ^= 0x5a;
	z[zn / 2 + 1] ^= 0x5a;
	assert_true(mail_stalwart_dump_scan(mem_read, &src, NULL, NULL, &info,
					    &err) < 0);
	mv_err_clear(&err);
	/* not LZ4 at all */
	src.p = (const uint8_t *)"hello world";
	src.n = 11;
	src.pos = 0;
	assert_int_equal(mail_stalwart_dump_scan(mem_read, &src, NULL, NULL,
						 &info, &err),
			 -EBADMSG);
	free(z);
}

/* The push scanner, fed in pieces of 1, 13 and 64 KiB bytes, sees what
 * the pull scan sees; a cut stream ends with -EBADMSG; a corrupt one fails
 * a feed and stays failed. */
static void test_mail_stalwart_dump_scanner(void **state)
{
	static const size_t pieces[] = {1, 13, 65536};
	struct mail_stalwart_dump_scanner *sc = NULL;
	struct mv_err err = MV_ERR_INIT;
	uint8_t *z;
	size_t zn = make_dump(&z, 300000), i, at;

	(void)state;
	for (i = 0; i < 3; i++) {
		struct seen s = {0, 0, {0}};

		assert_int_equal(mail_stalwart_dump_scanner_new(on_record, &s,
								&sc, &err),
				 0);
		for (at = 0; at < zn; at += pieces[i])
			assert_int_equal(mail_stalwart_dump_scanner_feed(
						 sc, z + at,
						 MV_MIN(pieces[i], zn - at),
						 &err),
					 0);
		assert_int_equal(mail_stalwart_dump_scanner_end(sc, &err), 0);
		assert_int_equal(mail_stalwart_dump_scanner_info(sc)->records,
				 3);
		assert_int_equal(mail_stalwart_dump_scanner_info(sc)->subspace,
				 't');
		assert_int_equal(s.n, 3);
		assert_int_equal(s.total, 600000);
		mail_stalwart_dump_scanner_free(sc);
	}
	/* cut: records before the cut, then -EBADMSG at the end */
	{
		struct seen s = {0, 0, {0}};

		assert_int_equal(mail_stalwart_dump_scanner_new(on_record, &s,
								&sc, &err),
				 0);
		assert_int_equal(
			mail_stalwart_dump_scanner_feed(sc, z, zn - 100, &err),
			0);
		assert_int_equal(mail_stalwart_dump_scanner_end(sc, &err),
				 -EBADMSG);
		assert_true(s.n >= 1 && s.n < 3);
		mail_stalwart_dump_scanner_free(sc);
		mv_err_clear(&err);
	}
	/* corrupt: sticky */
	z[20] ^= 0x5a;
	z[21] ^= 0x5a;
	z[22] ^= 0x5a;
	assert_int_equal(mail_stalwart_dump_scanner_new(NULL, NULL, &sc, &err),
			 0);
	assert_true(mail_stalwart_dump_scanner_feed(sc, z, zn, &err) < 0);
	assert_true(mail_stalwart_dump_scanner_feed(sc, z, 1, &err) < 0);
	assert_true(mail_stalwart_dump_scanner_end(sc, &err) < 0);
	mail_stalwart_dump_scanner_free(sc);
	free(z);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mail_stalwart_export_tree),
		cmocka_unit_test(test_mail_stalwart_export_acl_and_bad_parents),
		cmocka_unit_test(test_mail_stalwart_export_truncated),
		cmocka_unit_test(test_mail_stalwart_export_load_blobs),
		cmocka_unit_test(test_mail_stalwart_dump),
		cmocka_unit_test(test_mail_stalwart_dump_extract),
		cmocka_unit_test(test_mail_stalwart_dump_decode_prefix),
		cmocka_unit_test(test_mail_stalwart_dump_scanner),
	};

	return cmocka_run_group_tests_name("mail_stalwart", tests, NULL, NULL);
}
