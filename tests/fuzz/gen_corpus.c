/*
 * gen_corpus: write the seed corpus of the fuzz harnesses from real
 * encodings made by the project's own encoders (snapshot_encode,
 * tree_encode, pack_writer, LZ4F/zstd as Dovecot and Stalwart use them)
 * and a few hand-written mail names, JSON exports and messages.
 *
 *   gen_fuzz_corpus DIR      writes DIR/<harness>/<seed>
 *
 * Deterministic: the same build writes the same files (pack names are
 * random, but only their bytes are kept).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lz4.h>
#include <lz4frame.h>
#include <sodium.h>
#include <xxhash.h>
#include <zstd.h>

#include "backend.h"
#include "crypt.h"
#include "hash.h"
#include "pack.h"
#include "snapshot.h"
#include "tree.h"
#include "util.h"

static const char *root;

static void die(const char *what)
{
	fprintf(stderr, "gen_fuzz_corpus: %s\n", what);
	exit(1);
}

static void put(const char *harness, const char *name, const void *p, size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, harness);
	if (mv_mkdir_p(path, 0755))
		die(path);
	snprintf(path, sizeof(path), "%s/%s/%s", root, harness, name);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f))
		die(path);
}

static void put_str(const char *harness, const char *name, const char *s)
{
	put(harness, name, s, strlen(s));
}

/* ---- trees and snapshots ---- */

static struct tree_chunk chunks[2] = {{{1, 2, 3}, 4096}, {{9, 8, 7}, 10}};
static struct tree_extent extents[2] = {{0, 4096}, {1 << 20, 10}};
static uint8_t xval[] = {0x00, 0xff, 0x10};
static struct tree_xattr xattrs[2] = {
	{(char *)"user.bin", xval, sizeof(xval)},
	{(char *)"user.empty", (uint8_t *)"", 0},
};

static void entry(struct tree_entry *e, const char *name, uint8_t type)
{
	memset(e, 0, sizeof(*e));
	e->name = (char *)name;
	e->name_len = (uint32_t)strlen(name);
	e->type = type;
	e->mode = type == TREE_DIR ? 0755 : 0644;
	e->uid = 1000;
	e->gid = 1000;
	e->mtime_sec = 1714564800;
	e->mtime_nsec = 5;
	e->nlink = 1;
}

static void trees(struct mv_buf *one_tree)
{
	struct tree_entry e[6];
	struct mv_buf b = MV_BUF_INIT;
	struct mv_err err = MV_ERR_INIT;

	if (tree_encode(NULL, 0, &b, &err))
		die("tree_encode");
	put("fuzz_tree", "empty", b.data, b.len);
	mv_buf_reset(&b);

	entry(&e[0], ".Archive", TREE_DIR);
	e[0].subtree.n = 1;
	e[0].subtree.chunks = chunks;
	e[0].nsubdirs = 2;
	e[0].nentries = 7;
	entry(&e[1], "1714564800.M1P2.mx,S=120:2,S", TREE_REG);
	e[1].size = 4106;
	e[1].nchunks = 2;
	e[1].chunks = chunks;
	e[1].user = (char *)"vmail";
	e[1].group = (char *)"vmail";
	e[1].nxattrs = 2;
	e[1].xattrs = xattrs;
	e[1].acl_access = (char *)"user::rw-,user:1000:rw-,group::r--,"
				  "mask::rw-,other::---";
	e[1].ino = 99;
	e[1].dev = 2049;
	e[1].ctime_sec = -5;
	entry(&e[2], "dev", TREE_CHR);
	e[2].rdev_major = 1;
	e[2].rdev_minor = 3;
	entry(&e[3], "link", TREE_LNK);
	e[3].target = (char *)"../x";
	entry(&e[4], "sparse", TREE_REG);
	e[4].size = (1 << 20) + 10;
	e[4].nextents = 2;
	e[4].extents = extents;
	e[4].nchunks = 1;
	e[4].chunks = chunks;
	e[4].link_group = 3;
	e[4].nlink = 2;
	entry(&e[5], "view.eml", TREE_REG);
	e[5].xform = TREE_XFORM_MAILCRYPT;
	e[5].nchunks = 1;
	e[5].chunks = chunks + 1;
	if (tree_encode(e, 6, &b, &err))
		die("tree_encode");
	put("fuzz_tree", "mixed", b.data, b.len);
	if (mv_buf_append(one_tree, b.data, b.len))
		die("oom");
	mv_buf_reset(&b);
	if (tree_encode(e + 1, 1, &b, &err))
		die("tree_encode");
	put("fuzz_tree", "one-file", b.data, b.len);
	mv_buf_release(&b);
}

static void snapshots(struct mv_buf *one_snap)
{
	struct snapshot_tag tags[2] = {{(char *)"host", (char *)"mx1"},
				       {(char *)"kind", (char *)""}};
	struct mv_buf b = MV_BUF_INIT;
	struct mv_err err = MV_ERR_INIT;
	struct snapshot s;

	memset(&s, 0, sizeof(s));
	s.name = (char *)"stalwart";
	s.time_ns = 1714564800ll * 1000000000 + 123;
	s.host = (char *)"backup.example";
	s.root.n = 1;
	s.root.chunks = chunks;
	s.stats.files = 10;
	s.stats.logical = 1 << 30;
	if (snapshot_encode(&s, &b, &err))
		die("snapshot_encode");
	put("fuzz_snapshot", "plain", b.data, b.len);
	if (mv_buf_append(one_snap, b.data, b.len))
		die("oom");
	mv_buf_reset(&b);
	s.ntags = 2;
	s.tags = tags;
	s.partial = true;
	s.root.n = 2;
	s.time_ns = -86400ll * 1000000000;
	if (snapshot_encode(&s, &b, &err))
		die("snapshot_encode");
	put("fuzz_snapshot", "tags-partial", b.data, b.len);
	mv_buf_release(&b);
}

/* ---- packs ---- */

static void pack_add(struct pack_writer *pw, uint8_t type, const void *p,
		     size_t n, uint8_t fill)
{
	struct mv_err err = MV_ERR_INIT;
	struct pack_rec rec;

	memset(&rec, 0, sizeof(rec));
	rec.type = type;
	rec.comp = PACK_COMP_NONE;
	rec.raw_size = (uint32_t)n;
	rec.stored_size = (uint32_t)n;
	memset(rec.id, fill, sizeof(rec.id));
	rec.checksum = hash_xxh64(p, n);
	if (pack_writer_append(pw, &rec, p, NULL, &err))
		die(err.msg);
}

static void pack(const struct mv_buf *t, const struct mv_buf *s)
{
	char tmp[] = "/tmp/mv-fuzz-corpus.XXXXXX", dir[16], path[128];
	struct mv_err err = MV_ERR_INIT;
	struct pack_writer *pw;
	struct backend *be;
	const char *name;
	void *bytes;
	size_t n;
	uint8_t *seed;

	if (!mkdtemp(tmp) || backend_local_open(tmp, false, &be, &err))
		die("temporary directory");
	if (be->ops->mkdir(be, "packs", &err))
		die(err.msg);
	if (pack_writer_open(be, PACK_KIND_META, &pw, &err))
		die(err.msg);
	pack_add(pw, REC_DATA, "hello, world\n", 13, 1);
	pack_add(pw, REC_TREE, t->data, t->len, 2);
	pack_add(pw, REC_SNAPSHOT, s->data, s->len, 3);
	name = pack_writer_name(pw);
	pack_path(name, path, sizeof(path));
	snprintf(dir, sizeof(dir), "packs/%.2s", name);
	if (pack_writer_seal(pw, &err))
		die(err.msg);
	if (backend_read_all(be, path, 1 << 20, &bytes, &n, &err))
		die(err.msg);
	seed = malloc(n + 1);
	if (!seed)
		die("oom");
	memcpy(seed + 1, bytes, n);
	seed[0] = 0; /* whole reads */
	put("fuzz_pack", "sealed", seed, n + 1);
	seed[0] = 200; /* reads cut to 73 bytes */
	put("fuzz_pack", "sealed-short-reads", seed, n + 1);
	seed[0] = 0;
	put("fuzz_pack", "unsealed", seed, n + 1 - PACK_FOOTER_LEN);
	free(seed);
	free(bytes);
	be->ops->remove(be, path, NULL);
	be->ops->remove(be, dir, NULL);
	be->ops->remove(be, "packs", NULL);
	backend_close(be);
	rmdir(tmp);
}

/* ---- Stalwart ---- */

static const char mailboxes[] =
	"[{\"id\":\"a\",\"name\":\"Inbox\",\"parentId\":null,\"role\":"
	"\"inbox\",\"sortOrder\":1,\"isSubscribed\":true},"
	"{\"id\":\"g\",\"name\":\"Archive\",\"parentId\":null,\"role\":"
	"\"archive\",\"acl\":{\"bob\":[\"read\"]}},"
	"{\"id\":\"f\",\"name\":\"2024\",\"parentId\":\"g\",\"role\":null,"
	"\"shareWith\":{\"c\":{\"mayReadItems\":true}}},"
	"{\"id\":\"c\",\"name\":\"Loop1\",\"parentId\":\"d\"},"
	"{\"id\":\"d\",\"name\":\"Loop2\",\"parentId\":\"c\"},"
	"{\"id\":\"h\",\"name\":\"a/b\",\"parentId\":\"f\",\"role\":null}]";
static const char emails[] =
	"[{\"id\":\"eaaaaab\",\"blobId\":\"cblob1\",\"mailboxIds\":{\"a\":"
	"true,\"f\":true},\"keywords\":{\"$seen\":true,\"$flagged\":true,"
	"\"work\":true},\"receivedAt\":\"2024-05-01T12:00:00Z\","
	"\"messageId\":[\"abc@example.org\"]},"
	"{\"id\":\"eaaaaac\",\"blobId\":\"cblob2\",\"mailboxIds\":{\"g\":"
	"true},\"receivedAt\":\"2024-05-02T08:30:00Z\"},"
	"{\"id\":\"eaaaaad\",\"mailboxIds\":{\"g\":true}}]";

static void stalwart(void)
{
	struct mv_buf b = MV_BUF_INIT, z = MV_BUF_INIT;
	uint8_t key[32];
	size_t cap, n;
	int i;

	if (mv_buf_append(&b, mailboxes, sizeof(mailboxes)) ||
	    mv_buf_append(&b, emails, sizeof(emails) - 1))
		die("oom");
	put("fuzz_stalwart_json", "export", b.data, b.len);
	put_str("fuzz_stalwart_json", "emails-only", emails);
	put("fuzz_stalwart_json", "emails-cut", emails, sizeof(emails) / 2);
	mv_buf_reset(&b);

	/* subspace_t: 0x7B 't' u32 version, then (key, value) records */
	mv_buf_put_u8(&b, 7); /* the harness's piece size - 1 */
	mv_buf_put_u8(&z, 0x7b);
	mv_buf_put_u8(&z, 't');
	mv_buf_put_le32(&z, 5);
	for (i = 0; i < 3; i++) {
		memset(key, i + 1, sizeof(key));
		mv_buf_put_bytes(&z, key, sizeof(key));
		mv_buf_put_bytes(&z, "From: a@b\r\n\r\nhi\r\n",
				 i == 2 ? 0 : 17);
	}
	cap = LZ4F_compressFrameBound(z.len, NULL);
	if (mv_buf_reserve(&b, cap))
		die("oom");
	n = LZ4F_compressFrame(b.data + 1, cap, z.data, z.len, NULL);
	if (LZ4F_isError(n))
		die("LZ4F_compressFrame");
	put("fuzz_stalwart_dump", "three-records", b.data, n + 1);
	/* records LZ4 cannot shrink are stored as a raw block, so the
	 * fuzzer's changes land on the record bytes themselves */
	mv_buf_reset(&z);
	mv_buf_put_u8(&z, 0x7b);
	mv_buf_put_u8(&z, 't');
	mv_buf_put_le32(&z, 6);
	for (i = 0; i < 2; i++) {
		uint8_t v[40];
		size_t k;

		for (k = 0; k < sizeof(key); k++)
			key[k] = (uint8_t)(k * 151 + i * 7 + 13);
		for (k = 0; k < sizeof(v); k++)
			v[k] = (uint8_t)(k * 197 + i * 31 + 101);
		mv_buf_put_bytes(&z, key, sizeof(key));
		mv_buf_put_bytes(&z, v, sizeof(v));
	}
	cap = LZ4F_compressFrameBound(z.len, NULL);
	if (mv_buf_reserve(&b, cap + 1))
		die("oom");
	b.data[0] = 0; /* one byte at a time */
	n = LZ4F_compressFrame(b.data + 1, cap, z.data, z.len, NULL);
	if (LZ4F_isError(n))
		die("LZ4F_compressFrame");
	put("fuzz_stalwart_dump", "raw-block", b.data, n + 1);
	mv_buf_release(&b);
	mv_buf_release(&z);
}

/* ---- mail_crypt: the layers Dovecot's plugins write ---- */

static const char msg[] = "From: Alice <a@example.org>\r\n"
			  "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n"
			  "Date: Wed, 01 May 2024 12:00:00 +0200\r\n"
			  "Message-ID: <abc@example.org>\r\n\r\nbody\r\n";

static void crypt_layers(void)
{
	uint8_t out[1024];
	size_t n;
	int c;

	put_str("fuzz_mail_crypt", "plain", msg);
	/* Dovecot-LZ4: magic, le32 max chunk, then be32 length + block */
	memcpy(out, "Dovecot-LZ4\x0d\x2a\x9b\xc5\0\1\0\0", 19);
	c = LZ4_compress_default(msg, (char *)out + 23, (int)strlen(msg),
				 (int)sizeof(out) - 23);
	if (c <= 0)
		die("LZ4_compress_default");
	out[19] = 0;
	out[20] = 0;
	out[21] = (uint8_t)(c >> 8);
	out[22] = (uint8_t)c;
	put("fuzz_mail_crypt", "dovecot-lz4", out, 23 + (size_t)c);
	n = ZSTD_compress(out, sizeof(out), msg, strlen(msg), 3);
	if (ZSTD_isError(n))
		die("ZSTD_compress");
	put("fuzz_mail_crypt", "zstd", out, n);
}

/* ---- crypt: records sealed by libsodium directly, fixed nonce ---- */

/* one fuzz_crypt_open input: flags byte, ad, nonce || sealed || tag */
static void crypt_record(const char *name, int none, size_t ad_len,
			 const char *plain)
{
	uint8_t key[32], in[512], *ad = in + 1, *rec = in + 1 + ad_len;
	size_t i, n = strlen(plain);
	unsigned long long clen = 0;
	XXH128_canonical_t c;

	for (i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i + 1); /* the harness's key */
	in[0] = (uint8_t)(ad_len << 1 | (none ? 1 : 0));
	for (i = 0; i < ad_len; i++)
		ad[i] = (uint8_t)i;
	for (i = 0; i < 24; i++)
		rec[i] = (uint8_t)(0x40 + i);
	if (none) {
		/* tag = XXH3-128(ad || nonce || plain), ad and nonce being
		 * adjacent here already */
		memcpy(rec + 24, plain, n);
		XXH128_canonicalFromHash(&c, XXH3_128bits(ad, ad_len + 24 + n));
		memcpy(rec + 24 + n, c.digest, 16);
	} else if (crypto_aead_xchacha20poly1305_ietf_encrypt(
			   rec + 24, &clen, (const uint8_t *)plain, n, ad,
			   ad_len, NULL, rec, key)) {
		die("crypto_aead_xchacha20poly1305_ietf_encrypt");
	}
	put("fuzz_crypt_open", name, in, 1 + ad_len + 24 + n + 16);
}

static void crypt_records(void)
{
	if (sodium_init() < 0)
		die("sodium_init");
	crypt_record("xchacha", 0, 38, msg);
	crypt_record("xchacha-empty", 0, 0, "");
	crypt_record("none", 1, 38, msg);
	crypt_record("none-empty", 1, 0, "");
}

/* fuzz_seal inputs: the plaintexts seal_record and seal_table write,
 * built by hand (the harness seals them) */
static void seal_plaintexts(void)
{
	uint8_t in[1024], body[256];
	size_t n = strlen(msg), i, b = 0, c;

	memset(in, 0, sizeof(in));
	/* record: comp 0, dict 0, varint length, payload, padding */
	in[0] = 0;
	in[1] = 0;
	in[2] = 0;
	in[3] = (uint8_t)(n | 0x80);
	in[4] = (uint8_t)(n >> 7);
	memcpy(in + 5, msg, n);
	put("fuzz_seal", "record", in, 1 + crypt_padded_len(4 + n));
	/* table: kind 2, two entries, zstd, padding */
	body[b++] = 2;
	body[b++] = 2;
	for (i = 0; i < 2; i++) {
		memset(body + b, (int)(0x30 + i), 32);
		b += 32;
		body[b++] = 2;			/* type */
		body[b++] = 0;			/* epoch */
		body[b++] = (uint8_t)(i * 100); /* offset */
		body[b++] = 100;		/* stored */
		body[b++] = 120;		/* raw */
	}
	memset(in, 0, sizeof(in));
	in[0] = 1;
	c = ZSTD_compress(in + 1, sizeof(in) - 1, body, b, 3);
	if (ZSTD_isError(c))
		die("ZSTD_compress");
	memset(in + 1 + c, 0, sizeof(in) - 1 - c);
	put("fuzz_seal", "table", in, 1 + crypt_padded_len(c));
}

/* ---- names and messages ---- */

static void names(void)
{
	static const char *const seeds[][2] = {
		{"maildir-name", "1714564800.M123P456.mx1,S=1234,W=1260:2,FSa"},
		{"maildir-new", "1714564800.M1P2.host"},
		{"path-mailcow", "example.org/alice/Maildir/.Archive.2024/cur/"
				 "1714564800.M1P2.mx:2,S"},
		{"path-old", "example.org/bob/new/1.M2P3.mx"},
		{"path-fs", "Maildir/Gel&APY-schte/Sub/cur/1.M2P3.mx:2,"},
		{"folder-mutf7", ".Gel&APY-schte.2024\\2e1"},
		{"keywords", "0 $Forwarded\n1 work\n25 last\nbad line\n"},
		{"from-subject", "Alice \"Ops\" <alice@example.org>\t/"
				 "Re: ../../etc \xc3\xa9t\xc3\xa9 \x01\x7f"},
	};
	size_t i;

	for (i = 0; i < MV_ARRAY_SIZE(seeds); i++)
		put_str("fuzz_mail_name", seeds[i][0], seeds[i][1]);
}

static void messages(void)
{
	put_str("fuzz_mail_msg", "simple", msg);
	put_str("fuzz_mail_msg", "multipart",
		"From: =?ISO-8859-1?Q?J=F6rg?= <j@example.org>\n"
		"To: a@example.org, \"B, C\" <b@example.org>\n"
		"Subject: report\n"
		"MIME-Version: 1.0\n"
		"Content-Type: multipart/mixed; boundary=\"xx\"\n\n"
		"--xx\nContent-Type: text/plain; charset=utf-8\n\nhello\n"
		"--xx\nContent-Type: application/pdf; name=\"r.pdf\"\n"
		"Content-Disposition: attachment; filename=\"r.pdf\"\n"
		"Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n"
		"--xx--\n");
	put_str("fuzz_mail_msg", "mbox-from",
		"From alice@example.org Wed May  1 12:00:00 2024\n"
		"Subject: \xe9t\xe9\n\nbody\n");
}

int main(int argc, char **argv)
{
	struct mv_buf t = MV_BUF_INIT, s = MV_BUF_INIT;

	if (argc != 2) {
		fprintf(stderr, "usage: gen_fuzz_corpus DIR\n");
		return 2;
	}
	root = argv[1];
	trees(&t);
	snapshots(&s);
	pack(&t, &s);
	stalwart();
	crypt_layers();
	crypt_records();
	seal_plaintexts();
	names();
	messages();
	mv_buf_release(&t);
	mv_buf_release(&s);
	return 0;
}
