/*
 * Unit tests for the mount's tree logic (src/fs): name escaping both ways,
 * ACL conversion, the LRU cache, the inode table (stable numbers, hard
 * links, forget), listings, reads across chunks and holes, SEEK_DATA /
 * SEEK_HOLE, xattrs with the ERANGE protocol, EIO on a damaged chunk, and
 * snapshots appearing and disappearing - over an in-memory source.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../src/fs/fs_int.h"

/* ---- an in-memory source ---------------------------------------------- */

enum { T_ROOT = 1, T_VOL, T_SUB, T_ROOT2 };
enum { C_A = 1, C_B, C_C, C_BAD };

static const uint32_t chunk_sizes[] = {0, 1000, 2000, 500, 64};

static struct tree_chunk chunks[5];
static struct tree_chunk tref_chunk[5];
static char long_name[301];
static char long_slashes[201];
static struct tree_extent sparse_ext[] = {{4096, 1000}, {65536, 2000}};
static struct tree_xattr xattrs[] = {
	{(char *)"user.a", (uint8_t *)"hello", 5},
	{(char *)"user.b", (uint8_t *)"", 0},
};
static struct tree_xattr view_xattrs[] = {
	{(char *)"mailvault.keys",
	 (uint8_t *)"0123456789abcdef0123456789abcdef", 32},
	{(char *)"user.k", (uint8_t *)"v", 1},
};
#define DECODED "From: a@example.org\nSubject: hi\n\nhello\n"
static int nsnaps = 1;
static int xform_reads;
static int direct_reads; /* chunk_read_buf calls */
static bool changed;
static int tree_loads;
static char last_log[2048];

static void fake_log(void *arg, const char *msg)
{
	(void)arg;
	snprintf(last_log, sizeof(last_log), "%s", msg);
}

static uint8_t pattern(int k, size_t i)
{
	return (uint8_t)(i * 7 + (size_t)k * 31);
}

static struct tree_ref tref(int t)
{
	struct tree_ref r = {1, &tref_chunk[t]};

	return r;
}

static void setup_ids(void)
{
	int i;

	for (i = 1; i < 5; i++) {
		memset(&chunks[i], 0, sizeof(chunks[i]));
		chunks[i].id[0] = 'C';
		chunks[i].id[1] = (uint8_t)i;
		chunks[i].size = chunk_sizes[i];
		memset(&tref_chunk[i], 0, sizeof(tref_chunk[i]));
		tref_chunk[i].id[0] = 'T';
		tref_chunk[i].id[1] = (uint8_t)i;
		tref_chunk[i].size = 100;
	}
	memset(long_name, 'L', 300);
	for (i = 0; i < 200; i++)
		long_slashes[i] = (i % 2) ? '/' : 'S';
}

static struct tree_entry mk(const char *name, uint8_t type)
{
	struct tree_entry e;

	memset(&e, 0, sizeof(e));
	e.name = (char *)name;
	e.name_len = (uint32_t)strlen(name);
	e.type = type;
	e.mode = type == TREE_DIR ? 0755 : 0644;
	e.uid = 1000;
	e.gid = 100;
	e.mtime_sec = 1700000000;
	e.mtime_nsec = 123456789;
	e.nlink = 1;
	return e;
}

static int ent_cmp(const void *a, const void *b)
{
	const struct tree_entry *x = a, *y = b;
	size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
	int c = memcmp(x->name, y->name, n);

	return c ? c : (int)x->name_len - (int)y->name_len;
}

static struct tree *build(int t)
{
	struct tree *tr = calloc(1, sizeof(*tr));
	struct tree_entry *e = calloc(32, sizeof(*e));
	uint32_t n = 0;

	assert_non_null(tr);
	assert_non_null(e);
	if (t == T_ROOT || t == T_ROOT2) {
		e[n] = mk("volume", TREE_DIR);
		e[n].subtree = tref(t == T_ROOT ? T_VOL : T_SUB);
		e[n++].nsubdirs = 1;
	} else if (t == T_VOL) {
		e[n] = mk("big", TREE_REG);
		e[n].size = 3500;
		e[n].nchunks = 3;
		e[n++].chunks = &chunks[C_A];
		e[n] = mk("hard1", TREE_REG);
		e[n].size = 1000;
		e[n].nchunks = 1;
		e[n].chunks = &chunks[C_A];
		e[n].link_group = 7;
		e[n++].nlink = 2;
		e[n] = e[n - 1];
		e[n].name = (char *)"hard2";
		n++;
		e[n] = mk("link", TREE_LNK);
		e[n++].target = (char *)"big";
		e[n] = mk("dev", TREE_CHR);
		e[n].rdev_major = 1;
		e[n++].rdev_minor = 3;
		e[n] = mk("sparse", TREE_REG);
		e[n].size = 1 << 20;
		e[n].nchunks = 2;
		e[n].chunks = &chunks[C_A];
		e[n].nextents = 2;
		e[n++].extents = sparse_ext;
		e[n] = mk("bad", TREE_REG);
		e[n].size = 64;
		e[n].nchunks = 1;
		e[n++].chunks = &chunks[C_BAD];
		e[n] = mk("x", TREE_REG);
		e[n].nxattrs = 2;
		e[n].xattrs = xattrs;
		e[n++].acl_access = (char *)"user::rw-,user:1000:r--,"
					    "group::r--,mask::r--,other::---";
		e[n++] = mk("", TREE_REG);
		e[n++] = mk(".", TREE_REG);
		e[n++] = mk("..", TREE_DIR);
		e[n++] = mk("a/b", TREE_REG);
		e[n++] = mk("%x", TREE_REG);
		e[n++] = mk("%..", TREE_REG);
		e[n++] = mk(long_name, TREE_REG);
		e[n++] = mk(long_slashes, TREE_REG);
		e[n] = mk("sub", TREE_DIR);
		e[n++].subtree = tref(T_SUB);
	} else if (t == T_SUB) {
		e[n] = mk("f", TREE_REG);
		e[n].size = 500;
		e[n].nchunks = 1;
		e[n++].chunks = &chunks[C_C];
		/* mail view entries: stored encrypted, shown decoded */
		e[n] = mk("m.eml", TREE_REG);
		e[n].xform = TREE_XFORM_MAILCRYPT;
		e[n].size = sizeof(DECODED) - 1;
		e[n].nchunks = 1;
		e[n].chunks = &chunks[C_C];
		e[n].nxattrs = 2;
		e[n++].xattrs = view_xattrs;
		e[n] = mk("nokey.eml", TREE_REG);
		e[n].xform = TREE_XFORM_MAILCRYPT;
		e[n].size = 10;
		e[n].nchunks = 1;
		e[n++].chunks = &chunks[C_A];
		e[n] = mk("short.eml", TREE_REG);
		e[n].xform = TREE_XFORM_MAILCRYPT;
		e[n].size = sizeof(DECODED) + 5;
		e[n].nchunks = 1;
		e[n++].chunks = &chunks[C_C];
	}
	qsort(e, n, sizeof(*e), ent_cmp);
	tr->n = n;
	tr->entries = e;
	return tr;
}

static int src_list(void *ctx, struct fs_snap_info **out, size_t *out_n,
		    struct mv_err *err)
{
	struct fs_snap_info *l = calloc(2, sizeof(*l));
	int i, k = 0;

	(void)ctx, (void)err;
	assert_non_null(l);
	for (i = 0; i < 2; i++) {
		if (!(nsnaps & (1 << i)))
			continue;
		l[k].name = strdup("mail");
		snprintf(l[k].dir, sizeof(l[k].dir), "2024-05-0%dT120000Z",
			 i + 1);
		l[k].time_ns = (1714564800 + i * 86400) * 1000000000LL;
		l[k].id[0] = (uint8_t)(i + 1);
		l[k].root.n = 1;
		l[k].root.chunks = malloc(sizeof(struct tree_chunk));
		*l[k].root.chunks = tref_chunk[i ? T_ROOT2 : T_ROOT];
		k++;
	}
	*out = l;
	*out_n = (size_t)k;
	return 0;
}

static int src_refresh(void *ctx, bool *out, struct mv_err *err)
{
	(void)ctx, (void)err;
	*out = changed;
	changed = false;
	return 0;
}

static int src_tree_load(void *ctx, const struct tree_ref *ref,
			 struct tree **out, struct mv_err *err)
{
	(void)ctx, (void)err;
	tree_loads++;
	*out = build(ref->chunks[0].id[1]);
	return 0;
}

static void src_tree_free(void *ctx, struct tree *t)
{
	(void)ctx;
	free(t->entries);
	free(t);
}

static int src_chunk_read(void *ctx, const uint8_t id[MV_ID_LEN], void **out,
			  size_t *out_len, struct mv_err *err)
{
	int k = id[1];
	uint8_t *p;
	size_t i;

	(void)ctx;
	if (k == C_BAD)
		return mv_err_set(err, -EIO,
				  "pack 'packs/ab/cd' offset 4096: checksum "
				  "mismatch");
	p = malloc(chunk_sizes[k] + 1);
	for (i = 0; i < chunk_sizes[k]; i++)
		p[i] = pattern(k, i);
	*out = p;
	*out_len = chunk_sizes[k];
	return 0;
}

static int src_chunk_read_buf(void *ctx, const uint8_t id[MV_ID_LEN],
			      struct mv_buf *b, struct mv_err *err)
{
	void *p = NULL;
	size_t n = 0;
	int rc;

	direct_reads++;
	rc = src_chunk_read(ctx, id, &p, &n, err);
	if (rc)
		return rc;
	mv_buf_reset(b);
	rc = mv_buf_append(b, p, n);
	free(p);
	return rc;
}

static int src_xform_read(void *ctx, const struct tree_entry *e, void **out,
			  size_t *out_len, struct mv_err *err)
{
	(void)ctx;
	xform_reads++;
	if (e->chunks[0].id[1] != C_C)
		return mv_err_set(err, -ENOKEY, "no key for '%s'", e->name);
	*out = strdup(DECODED);
	*out_len = sizeof(DECODED) - 1;
	return 0;
}

static const struct fs_source_ops fake_ops = {
	.list = src_list,
	.refresh = src_refresh,
	.tree_load = src_tree_load,
	.tree_free = src_tree_free,
	.chunk_read = src_chunk_read,
	.chunk_read_buf = src_chunk_read_buf,
	.xform_read = src_xform_read,
};

static struct fs *new_fs(void)
{
	struct mv_err err = MV_ERR_INIT;
	struct fs_opts o;
	struct fs *fs = NULL;

	setup_ids();
	nsnaps = 1;
	changed = false;
	tree_loads = 0;
	fs_opts_init(&o);
	assert_int_equal(fs_new(&fake_ops, NULL, &o, &fs, &err), 0);
	fs_set_log(fs, fake_log, NULL);
	return fs;
}

static uint64_t look(struct fs *fs, uint64_t parent, const char *name)
{
	struct fuse_entry_param e;

	assert_int_equal(fs_do_lookup(fs, parent, name, &e), 0);
	return e.ino;
}

/* Inode of MOUNT/mail/<first snapshot>/volume. */
static uint64_t volume(struct fs *fs)
{
	uint64_t mail = look(fs, FS_ROOT_INO, "mail");
	uint64_t snap = look(fs, mail, "2024-05-01T120000Z");

	assert_true(mail && snap);
	return look(fs, snap, "volume");
}

struct listing {
	char names[64][FS_NAME_MAX + 1];
	uint64_t inos[64];
	int n;
	int limit; /* entries before "full" */
};

static int collect(void *arg, const char *name,
		   const struct fuse_entry_param *e, off_t next)
{
	struct listing *l = arg;

	(void)next;
	if (l->n >= l->limit)
		return 1;
	snprintf(l->names[l->n], sizeof(l->names[0]), "%s", name);
	l->inos[l->n++] = e->ino ? e->ino : e->attr.st_ino;
	return 0;
}

static int list_dir(struct fs *fs, uint64_t ino, bool plus, struct listing *l)
{
	struct fs_dh *dh = NULL;
	int rc;

	memset(l, 0, sizeof(*l));
	l->limit = 64;
	rc = fs_do_opendir(fs, ino, &dh);
	if (rc)
		return rc;
	rc = fs_do_readdir(fs, dh, 0, plus, collect, l);
	fs_do_releasedir(fs, dh);
	return rc;
}

static bool listed(const struct listing *l, const char *name)
{
	int i;

	for (i = 0; i < l->n; i++)
		if (!strcmp(l->names[i], name))
			return true;
	return false;
}

/* ---- names -------------------------------------------------------------- */

static void roundtrip(const char *name, size_t len, const char *want)
{
	char shown[FS_NAME_MAX + 1], raw[FS_NAME_MAX + 1];
	size_t n = 0;

	fs_name_show(name, len, false, shown);
	assert_true(strlen(shown) >= 1 && strlen(shown) <= FS_NAME_MAX);
	assert_null(strchr(shown, '/'));
	assert_string_not_equal(shown, ".");
	assert_string_not_equal(shown, "..");
	if (want)
		assert_string_equal(shown, want);
	if (!fs_name_is_hostile(name, len))
		return; /* shown as they are */
	if (fs_name_parse(shown, raw, &n) == -ENAMETOOLONG)
		return;
	assert_int_equal(fs_name_parse(shown, raw, &n), 0);
	assert_int_equal(n, len);
	assert_memory_equal(raw, name, len);
}

static void test_fs_name_escape_roundtrip(void **state)
{
	(void)state;
	setup_ids();
	roundtrip("cur", 3, "cur");
	roundtrip("1714.M1P2.host,S=42:2,S", 23, "1714.M1P2.host,S=42:2,S");
	roundtrip("", 0, "%");
	roundtrip(".", 1, "%.");
	roundtrip("..", 2, "%..");
	roundtrip("a/b", 3, "%a%2Fb");
	roundtrip("%x", 2, "%x");
	roundtrip("%..", 3, "%..");
	roundtrip("100%", 4, "100%");
	roundtrip("...", 3, "...");
	roundtrip(long_name, 300, NULL);
	roundtrip(long_slashes, 200, NULL);
	roundtrip(long_name, 255, long_name + 45); /* exactly NAME_MAX */
}

static void test_fs_name_long_forms_differ(void **state)
{
	char a[FS_NAME_MAX + 1], b[FS_NAME_MAX + 1], raw[FS_NAME_MAX + 1];
	char other[301];
	size_t n;

	(void)state;
	setup_ids();
	memcpy(other, long_name, 300);
	other[299] = 'M';
	fs_name_show(long_name, 300, false, a);
	fs_name_show(other, 300, false, b);
	assert_string_not_equal(a, b);
	assert_non_null(strstr(a, "%~"));
	assert_int_equal(fs_name_parse(a, raw, &n), -ENAMETOOLONG);
	/* forced long form of a short hostile name */
	fs_name_show("..", 2, true, a);
	assert_true(strncmp(a, "%..%~", 5) == 0);
	assert_int_equal(strlen(a), 5 + 16);
}

static void test_fs_name_rejects_noncanonical(void **state)
{
	char raw[FS_NAME_MAX + 1];
	size_t n;

	(void)state;
	assert_int_equal(fs_name_parse("%abc", raw, &n), -ENOENT);
	assert_int_equal(fs_name_parse("%%41", raw, &n), -ENOENT);
	assert_int_equal(fs_name_parse("%a%2fb", raw, &n), -ENOENT);
	assert_int_equal(fs_name_parse("%a%2", raw, &n), -ENOENT);
	assert_int_equal(fs_name_parse("%a%00b", raw, &n), -ENOENT);
	assert_int_equal(fs_name_parse("..", raw, &n), -ENOENT);
	assert_int_equal(fs_name_parse("%a%2Fb", raw, &n), 0);
	assert_string_equal(raw, "a/b");
}

/* ---- ACLs -----------------------------------------------------------------
 */

static void test_fs_acl_binary(void **state)
{
	struct mv_buf b = MV_BUF_INIT;
	/* version, then (tag, perm, id) sorted by tag and id */
	static const uint8_t want[] = {
		2,    0, 0, 0,			       /* version 2 */
		0x01, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, /* user:: rw- */
		0x02, 0, 4, 0, 0x2a, 0,	   0,	 0,    /* user:42: r-- */
		0x02, 0, 5, 0, 0xe8, 0x03, 0,	 0,    /* user:1000: r-x */
		0x04, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, /* group:: r-- */
		0x10, 0, 5, 0, 0xff, 0xff, 0xff, 0xff, /* mask:: r-x */
		0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, /* other:: --- */
	};

	(void)state;
	assert_int_equal(fs_acl_to_xattr("user::rw-,user:1000:r-x,"
					 "group::r--,mask::r-x,other::---,"
					 "user:42:r--",
					 &b),
			 0);
	assert_int_equal(b.len, sizeof(want));
	assert_memory_equal(b.data, want, sizeof(want));
	/* libarchive's name:perms:id form and comments, newlines */
	assert_int_equal(fs_acl_to_xattr("# file: x\nu::rw-\nuser:bob:r-x:1000"
					 "\nuser:42:r--\ng::r--\nm::r-x\no::---"
					 "\n",
					 &b),
			 0);
	assert_memory_equal(b.data, want, sizeof(want));
	assert_int_equal(fs_acl_to_xattr("user:bob:rwx,other::---", &b),
			 -EINVAL);
	assert_int_equal(fs_acl_to_xattr("", &b), -EINVAL);
	assert_int_equal(fs_acl_to_xattr("user::rwz", &b), -EINVAL);
	mv_buf_release(&b);
}

/* ---- cache ----------------------------------------------------------------
 */

static int loads;

static int load_n(void *arg, void **out, size_t *size, size_t *cost,
		  struct mv_err *err)
{
	(void)err;
	loads++;
	*out = malloc(8);
	memcpy(*out, arg, 8);
	*size = 8;
	*cost = 100;
	return 0;
}

static int load_fail(void *arg, void **out, size_t *size, size_t *cost,
		     struct mv_err *err)
{
	(void)arg, (void)out, (void)size, (void)cost;
	return mv_err_set(err, -EIO, "damaged");
}

static void free_val(void *arg, void *v)
{
	(void)arg;
	free(v);
}

static void test_fs_cache_lru(void **state)
{
	struct fs_cache c;
	struct fs_cache_item *it, *pinned;
	char key[8];
	int i;

	(void)state;
	loads = 0;
	assert_int_equal(fs_cache_init(&c, 300, free_val, NULL), 0);
	for (i = 0; i < 3; i++) {
		memset(key, 0, sizeof(key));
		key[0] = 'k';
		key[1] = (char)('0' + i);
		assert_int_equal(
			fs_cache_get(&c, key, 8, load_n, key, &it, NULL), 0);
		assert_memory_equal(it->value, key, 8);
		fs_cache_put(&c, it);
	}
	assert_int_equal(loads, 3);
	/* hit: no load, k0 becomes most recent */
	assert_int_equal(fs_cache_get(&c, "k0\0\0\0\0\0", 8, load_n,
				      (void *)"k0\0\0\0\0\0", &pinned, NULL),
			 0);
	assert_int_equal(loads, 3);
	/* k3 pushes out the least recent unpinned one: k1 */
	assert_int_equal(fs_cache_get(&c, "k3\0\0\0\0\0", 8, load_n,
				      (void *)"k3\0\0\0\0\0", &it, NULL),
			 0);
	fs_cache_put(&c, it);
	assert_true(fs_cache_has(&c, "k0\0\0\0\0\0", 8));
	assert_false(fs_cache_has(&c, "k1\0\0\0\0\0", 8));
	assert_true(fs_cache_has(&c, "k2\0\0\0\0\0", 8));
	assert_true(c.used <= c.limit);
	/* a pinned item survives any pressure */
	for (i = 4; i < 10; i++) {
		memset(key, 0, sizeof(key));
		key[0] = 'k';
		key[1] = (char)('0' + i);
		assert_int_equal(
			fs_cache_get(&c, key, 8, load_n, key, &it, NULL), 0);
		fs_cache_put(&c, it);
	}
	assert_true(fs_cache_has(&c, "k0\0\0\0\0\0", 8));
	fs_cache_put(&c, pinned);
	/* a failed load is not cached */
	assert_int_equal(fs_cache_get(&c, "bad", 3, load_fail, NULL, &it, NULL),
			 -EIO);
	assert_false(fs_cache_has(&c, "bad", 3));
	fs_cache_release(&c);
}

/* A claimed key is filled by its claimer (no load), is not claimed twice,
 * and once given up is loaded by the next reader. */
static void test_fs_cache_claim(void **state)
{
	struct fs_cache c;
	struct fs_cache_item *a, *b, *it;
	char *v = malloc(8);

	(void)state;
	loads = 0;
	assert_non_null(v);
	memcpy(v, "ka\0\0\0\0\0", 8);
	assert_int_equal(fs_cache_init(&c, 1000, free_val, NULL), 0);
	assert_int_equal(fs_cache_claim(&c, "ka\0\0\0\0\0", 8, &a), 0);
	assert_int_equal(fs_cache_claim(&c, "kb\0\0\0\0\0", 8, &b), 0);
	assert_int_equal(fs_cache_claim(&c, "ka\0\0\0\0\0", 8, &it), -EEXIST);
	assert_true(fs_cache_has(&c, "ka\0\0\0\0\0", 8));
	fs_cache_fill(&c, a, v, 8, 8);
	fs_cache_abandon(&c, b);
	assert_false(fs_cache_has(&c, "kb\0\0\0\0\0", 8));
	assert_int_equal(fs_cache_get(&c, "ka\0\0\0\0\0", 8, load_n,
				      (void *)"kx\0\0\0\0\0", &it, NULL),
			 0);
	assert_memory_equal(it->value, "ka", 2);
	fs_cache_put(&c, it);
	assert_int_equal(loads, 0);
	assert_int_equal(fs_cache_get(&c, "kb\0\0\0\0\0", 8, load_n,
				      (void *)"kb\0\0\0\0\0", &it, NULL),
			 0);
	assert_int_equal(loads, 1);
	fs_cache_put(&c, it);
	fs_cache_release(&c);
}

/* ---- the file system ------------------------------------------------------
 */

static void test_fs_layout_latest(void **state)
{
	struct fs *fs = new_fs();
	struct listing l;
	struct stat st;
	double to;
	char *target = NULL;
	uint64_t mail, latest;

	(void)state;
	assert_int_equal(list_dir(fs, FS_ROOT_INO, false, &l), 0);
	assert_int_equal(l.n, 3);
	assert_true(listed(&l, "mail"));
	mail = look(fs, FS_ROOT_INO, "mail");
	assert_int_equal(list_dir(fs, mail, false, &l), 0);
	assert_true(listed(&l, "2024-05-01T120000Z"));
	assert_true(listed(&l, "latest"));
	latest = look(fs, mail, "latest");
	assert_int_equal(fs_do_getattr(fs, latest, &st, &to), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(fs_do_readlink(fs, latest, &target), 0);
	assert_string_equal(target, "2024-05-01T120000Z");
	free(target);
	assert_int_equal(look(fs, FS_ROOT_INO, "nope"), 0);
	/* nothing proportional to the snapshot at mount time */
	assert_int_equal(tree_loads, 0);
	fs_free(fs);
}

static void test_fs_inode_stable_and_forget(void **state)
{
	struct fs *fs = new_fs();
	struct fs_stats s0, s1;
	uint64_t vol, a, b;

	(void)state;
	vol = volume(fs);
	fs_stats(fs, &s0);
	a = look(fs, vol, "big");
	b = look(fs, vol, "big");
	assert_int_equal(a, b);
	assert_int_not_equal(a, look(fs, vol, "sub"));
	fs_stats(fs, &s1);
	assert_int_equal(s1.nodes, s0.nodes + 2);
	fs_do_forget(fs, a, 1);
	fs_stats(fs, &s1);
	assert_int_equal(s1.nodes, s0.nodes + 2); /* one lookup left */
	assert_int_equal(look(fs, vol, "big"), a);
	fs_do_forget(fs, a, 2);
	fs_stats(fs, &s1);
	assert_int_equal(s1.nodes, s0.nodes + 1);
	/* a forgotten path gets a fresh number, never an old one */
	assert_true(look(fs, vol, "big") > a);
	fs_free(fs);
}

static void test_fs_hard_links_share_ino(void **state)
{
	struct fs *fs = new_fs();
	struct fuse_entry_param e1, e2;
	uint64_t vol;

	(void)state;
	vol = volume(fs);
	assert_int_equal(fs_do_lookup(fs, vol, "hard1", &e1), 0);
	assert_int_equal(fs_do_lookup(fs, vol, "hard2", &e2), 0);
	assert_int_equal(e1.ino, e2.ino);
	assert_int_equal(e1.attr.st_nlink, 2);
	assert_int_equal(e1.attr.st_ino, e1.ino);
	fs_do_forget(fs, e1.ino, 2);
	/* the group keeps its number for the whole mount */
	assert_int_equal(look(fs, vol, "hard2"), e1.ino);
	fs_free(fs);
}

static void test_fs_attributes(void **state)
{
	struct fs *fs = new_fs();
	struct fuse_entry_param e;
	struct stat st;
	double to;
	char *target = NULL;
	uint64_t vol;

	(void)state;
	vol = volume(fs);
	assert_int_equal(fs_do_lookup(fs, vol, "big", &e), 0);
	assert_true(S_ISREG(e.attr.st_mode));
	assert_int_equal(e.attr.st_mode & 07777, 0644);
	assert_int_equal(e.attr.st_uid, 1000);
	assert_int_equal(e.attr.st_gid, 100);
	assert_int_equal(e.attr.st_size, 3500);
	assert_int_equal(e.attr.st_blocks, 7);
	assert_int_equal(e.attr.st_mtim.tv_sec, 1700000000);
	assert_int_equal(e.attr.st_mtim.tv_nsec, 123456789);
	assert_true(e.entry_timeout >= 3600);
	assert_int_equal(fs_do_getattr(fs, e.ino, &st, &to), 0);
	assert_memory_equal(&st, &e.attr, sizeof(st));
	assert_int_equal(fs_do_lookup(fs, vol, "dev", &e), 0);
	assert_true(S_ISCHR(e.attr.st_mode));
	assert_int_equal(major(e.attr.st_rdev), 1);
	assert_int_equal(minor(e.attr.st_rdev), 3);
	assert_int_equal(fs_do_lookup(fs, vol, "sparse", &e), 0);
	assert_int_equal(e.attr.st_size, 1 << 20);
	assert_int_equal(e.attr.st_blocks, (3000 + 511) / 512);
	assert_int_equal(fs_do_lookup(fs, vol, "sub", &e), 0);
	assert_true(S_ISDIR(e.attr.st_mode));
	assert_int_equal(e.attr.st_nlink, 2);
	assert_int_equal(fs_do_lookup(fs, vol, "link", &e), 0);
	assert_true(S_ISLNK(e.attr.st_mode));
	assert_int_equal(e.attr.st_size, 3);
	assert_int_equal(fs_do_readlink(fs, e.ino, &target), 0);
	assert_string_equal(target, "big");
	free(target);
	/* misses inside a snapshot are cached by the kernel */
	assert_int_equal(fs_do_lookup(fs, vol, "missing", &e), 0);
	assert_int_equal(e.ino, 0);
	assert_true(e.entry_timeout >= 3600);
	fs_free(fs);
}

static void test_fs_hostile_names(void **state)
{
	struct fs *fs = new_fs();
	char shown[FS_NAME_MAX + 1];
	struct listing l;
	uint64_t vol, dotdot;
	int i;

	(void)state;
	vol = volume(fs);
	assert_int_equal(list_dir(fs, vol, false, &l), 0);
	assert_int_equal(l.n, 2 + 17);
	for (i = 2; i < l.n; i++) {
		assert_string_not_equal(l.names[i], ".");
		assert_string_not_equal(l.names[i], "..");
		assert_null(strchr(l.names[i], '/'));
		assert_true(strlen(l.names[i]) <= FS_NAME_MAX);
		assert_int_not_equal(look(fs, vol, l.names[i]), 0);
	}
	assert_true(listed(&l, "%"));
	assert_true(listed(&l, "%."));
	assert_true(listed(&l, "%a%2Fb"));
	/* names a file system can hold come back as they are, even with
	 * '%': a plain "%.." keeps its name and the stored ".." moves
	 * to the long form */
	assert_true(listed(&l, "%x"));
	assert_true(listed(&l, "%.."));
	fs_name_show("..", 2, true, shown);
	assert_true(listed(&l, shown));
	fs_name_show(long_name, 300, false, shown);
	assert_true(listed(&l, shown));
	/* a stored ".." is a directory like any other, not the parent */
	dotdot = look(fs, vol, shown);
	assert_int_not_equal(dotdot, vol);
	assert_int_not_equal(dotdot, look(fs, vol, "%.."));
	assert_int_equal(look(fs, vol, "%%25x"), 0);
	assert_int_equal(look(fs, vol, ".."), 0);
	assert_int_equal(look(fs, vol, "a"), 0);
	fs_free(fs);
}

static void test_fs_readdirplus_full_buffer(void **state)
{
	struct fs *fs = new_fs();
	struct fs_stats s0, s1;
	struct listing l;
	struct fs_dh *dh = NULL;
	uint64_t vol;

	(void)state;
	vol = volume(fs);
	fs_stats(fs, &s0);
	memset(&l, 0, sizeof(l));
	l.limit = 4; /* ".", "..", two entries, then full */
	assert_int_equal(fs_do_opendir(fs, vol, &dh), 0);
	assert_int_equal(fs_do_readdir(fs, dh, 0, true, collect, &l), 0);
	assert_int_equal(l.n, 4);
	fs_stats(fs, &s1);
	/* the entry that did not fit holds no lookup */
	assert_int_equal(s1.nodes, s0.nodes + 2);
	l.limit = 64;
	assert_int_equal(fs_do_readdir(fs, dh, 4, true, collect, &l), 0);
	assert_int_equal(l.n, 19);
	fs_do_releasedir(fs, dh);
	fs_free(fs);
}

static void test_fs_read_chunks(void **state)
{
	struct fs *fs = new_fs();
	struct fs_fh *fh = NULL;
	char buf[4096];
	size_t n, i;
	uint64_t vol, ino;

	(void)state;
	vol = volume(fs);
	ino = look(fs, vol, "big");
	assert_int_equal(fs_do_open(fs, ino, O_WRONLY, &fh), -EROFS);
	assert_int_equal(fs_do_open(fs, ino, O_RDWR, &fh), -EROFS);
	assert_int_equal(fs_do_open(fs, ino, O_RDONLY, &fh), 0);
	assert_int_equal(fs_do_read(fs, fh, buf, sizeof(buf), 0, &n), 0);
	assert_int_equal(n, 3500);
	for (i = 0; i < 1000; i++)
		assert_int_equal((uint8_t)buf[i], pattern(C_A, i));
	for (i = 0; i < 2000; i++)
		assert_int_equal((uint8_t)buf[1000 + i], pattern(C_B, i));
	for (i = 0; i < 500; i++)
		assert_int_equal((uint8_t)buf[3000 + i], pattern(C_C, i));
	/* across a boundary, and past the end */
	assert_int_equal(fs_do_read(fs, fh, buf, 10, 995, &n), 0);
	assert_int_equal(n, 10);
	assert_int_equal((uint8_t)buf[4], pattern(C_A, 999));
	assert_int_equal((uint8_t)buf[5], pattern(C_B, 0));
	assert_int_equal(fs_do_read(fs, fh, buf, 10, 3500, &n), 0);
	assert_int_equal(n, 0);
	fs_do_release(fs, fh);
	assert_int_equal(fs_do_open(fs, vol, O_RDONLY, &fh), -EISDIR);
	fs_free(fs);
}

/* A small file read whole in one request bypasses the chunk cache (its
 * own buffer per reader); a partial read goes through the cache, and a
 * cached chunk is served from there. */
static void test_fs_small_file_read_around_cache(void **state)
{
	struct fs *fs = new_fs();
	struct fs_fh *fh = NULL;
	char buf[4096];
	size_t n, i;

	(void)state;
	direct_reads = 0;
	assert_int_equal(
		fs_do_open(fs, look(fs, volume(fs), "hard1"), O_RDONLY, &fh),
		0);
	assert_int_equal(fs_do_read(fs, fh, buf, sizeof(buf), 0, &n), 0);
	assert_int_equal(n, 1000);
	for (i = 0; i < n; i++)
		assert_int_equal((uint8_t)buf[i], pattern(C_A, i));
	assert_int_equal(direct_reads, 1);
	assert_false(fs_cache_has(&fs->chunks, chunks[C_A].id, MV_ID_LEN));
	/* part of it: through the cache */
	assert_int_equal(fs_do_read(fs, fh, buf, 10, 5, &n), 0);
	assert_int_equal(n, 10);
	assert_int_equal((uint8_t)buf[0], pattern(C_A, 5));
	assert_int_equal(direct_reads, 1);
	assert_true(fs_cache_has(&fs->chunks, chunks[C_A].id, MV_ID_LEN));
	/* whole again, now cached: no second decompression */
	assert_int_equal(fs_do_read(fs, fh, buf, sizeof(buf), 0, &n), 0);
	assert_int_equal(n, 1000);
	assert_int_equal((uint8_t)buf[999], pattern(C_A, 999));
	assert_int_equal(direct_reads, 1);
	fs_do_release(fs, fh);
	fs_free(fs);
}

static void test_fs_sparse_holes(void **state)
{
	struct fs *fs = new_fs();
	struct fs_fh *fh = NULL;
	char *buf = malloc(1 << 20);
	size_t n, i;
	off_t o;

	(void)state;
	assert_int_equal(
		fs_do_open(fs, look(fs, volume(fs), "sparse"), O_RDONLY, &fh),
		0);
	assert_int_equal(fs_do_read(fs, fh, buf, 1 << 20, 0, &n), 0);
	assert_int_equal(n, 1 << 20);
	for (i = 0; i < 4096; i++)
		assert_int_equal(buf[i], 0);
	for (i = 0; i < 1000; i++)
		assert_int_equal((uint8_t)buf[4096 + i], pattern(C_A, i));
	for (i = 5096; i < 65536; i++)
		assert_int_equal(buf[i], 0);
	for (i = 0; i < 2000; i++)
		assert_int_equal((uint8_t)buf[65536 + i], pattern(C_B, i));
	for (i = 67536; i < (1 << 20); i++)
		assert_int_equal(buf[i], 0);
	/* a read that starts in a hole and ends in data */
	assert_int_equal(fs_do_read(fs, fh, buf, 10, 4090, &n), 0);
	assert_int_equal(buf[5], 0);
	assert_int_equal((uint8_t)buf[6], pattern(C_A, 0));
	assert_int_equal(fs_do_lseek(fs, fh, 0, SEEK_DATA, &o), 0);
	assert_int_equal(o, 4096);
	assert_int_equal(fs_do_lseek(fs, fh, 4096, SEEK_HOLE, &o), 0);
	assert_int_equal(o, 5096);
	assert_int_equal(fs_do_lseek(fs, fh, 5096, SEEK_DATA, &o), 0);
	assert_int_equal(o, 65536);
	assert_int_equal(fs_do_lseek(fs, fh, 0, SEEK_HOLE, &o), 0);
	assert_int_equal(o, 0);
	assert_int_equal(fs_do_lseek(fs, fh, 70000, SEEK_DATA, &o), -ENXIO);
	assert_int_equal(fs_do_lseek(fs, fh, 70000, SEEK_HOLE, &o), 0);
	assert_int_equal(o, 70000);
	assert_int_equal(fs_do_lseek(fs, fh, 1 << 20, SEEK_HOLE, &o), -ENXIO);
	fs_do_release(fs, fh);
	free(buf);
	fs_free(fs);
}

static void test_fs_damaged_chunk_eio(void **state)
{
	struct fs *fs = new_fs();
	struct fs_fh *fh = NULL;
	char buf[64];
	size_t n;
	uint64_t vol;

	(void)state;
	vol = volume(fs);
	last_log[0] = '\0';
	assert_int_equal(fs_do_open(fs, look(fs, vol, "bad"), O_RDONLY, &fh),
			 0);
	assert_int_equal(fs_do_read(fs, fh, buf, sizeof(buf), 0, &n), -EIO);
	assert_non_null(strstr(last_log, "mail/2024-05-01T120000Z/volume/bad"));
	assert_non_null(strstr(last_log, "pack 'packs/ab/cd' offset 4096"));
	/* a second try fails the same way, nothing wrong is cached */
	assert_int_equal(fs_do_read(fs, fh, buf, sizeof(buf), 0, &n), -EIO);
	fs_do_release(fs, fh);
	/* other files stay readable */
	assert_int_equal(fs_do_open(fs, look(fs, vol, "big"), O_RDONLY, &fh),
			 0);
	assert_int_equal(fs_do_read(fs, fh, buf, sizeof(buf), 0, &n), 0);
	assert_int_equal(n, sizeof(buf));
	fs_do_release(fs, fh);
	fs_free(fs);
}

static void test_fs_xattrs_and_acl(void **state)
{
	struct fs *fs = new_fs();
	char buf[256];
	size_t n;
	uint64_t ino;

	(void)state;
	ino = look(fs, volume(fs), "x");
	assert_int_equal(fs_do_getxattr(fs, ino, "user.a", NULL, 0, &n), 0);
	assert_int_equal(n, 5);
	assert_int_equal(fs_do_getxattr(fs, ino, "user.a", buf, 4, &n),
			 -ERANGE);
	assert_int_equal(fs_do_getxattr(fs, ino, "user.a", buf, 5, &n), 0);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(fs_do_getxattr(fs, ino, "user.b", buf, 5, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(fs_do_getxattr(fs, ino, "user.c", buf, 5, &n),
			 -ENODATA);
	assert_int_equal(fs_do_getxattr(fs, ino, "system.posix_acl_access", buf,
					sizeof(buf), &n),
			 0);
	assert_int_equal(n, 4 + 5 * 8);
	assert_int_equal(fs_do_listxattr(fs, ino, NULL, 0, &n), 0);
	assert_int_equal(n, sizeof("user.a") + sizeof("user.b") +
				    sizeof("system.posix_acl_access"));
	assert_int_equal(fs_do_listxattr(fs, ino, buf, 3, &n), -ERANGE);
	assert_int_equal(fs_do_listxattr(fs, ino, buf, sizeof(buf), &n), 0);
	assert_memory_equal(buf, "user.a\0user.b\0system.posix_acl_access", n);
	fs_free(fs);
}

static void test_fs_mail_view_decoded(void **state)
{
	struct fs *fs = new_fs();
	struct fuse_entry_param e;
	struct fs_fh *fh = NULL, *fh2 = NULL;
	char buf[256];
	size_t n;
	uint64_t sub;

	(void)state;
	sub = look(fs, volume(fs), "sub");
	assert_int_equal(fs_do_lookup(fs, sub, "m.eml", &e), 0);
	assert_int_equal(e.attr.st_size, sizeof(DECODED) - 1);
	xform_reads = 0;
	assert_int_equal(fs_do_open(fs, e.ino, O_RDONLY, &fh), 0);
	assert_int_equal(xform_reads, 1);
	assert_int_equal(fs_do_read(fs, fh, buf, sizeof(buf), 0, &n), 0);
	assert_int_equal(n, sizeof(DECODED) - 1);
	assert_memory_equal(buf, DECODED, n);
	/* pieces come from the handle's buffer: decoded once */
	assert_int_equal(fs_do_read(fs, fh, buf, 5, 6, &n), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(buf, DECODED + 6, 5);
	assert_int_equal(fs_do_read(fs, fh, buf, 5, (off_t)sizeof(DECODED), &n),
			 0);
	assert_int_equal(n, 0);
	assert_int_equal(xform_reads, 1);
	/* each open file has its own */
	assert_int_equal(fs_do_open(fs, e.ino, O_RDONLY, &fh2), 0);
	assert_int_equal(xform_reads, 2);
	fs_do_release(fs, fh2);
	assert_int_equal(fs_do_read(fs, fh, buf, 4, 0, &n), 0);
	assert_memory_equal(buf, "From", 4);
	fs_do_release(fs, fh);

	/* internal xattrs are not shown */
	assert_int_equal(fs_do_listxattr(fs, e.ino, buf, sizeof(buf), &n), 0);
	assert_int_equal(n, sizeof("user.k"));
	assert_memory_equal(buf, "user.k", n);
	assert_int_equal(fs_do_getxattr(fs, e.ino, "mailvault.keys", buf,
					sizeof(buf), &n),
			 -ENODATA);
	assert_int_equal(
		fs_do_getxattr(fs, e.ino, "user.k", buf, sizeof(buf), &n), 0);

	/* no key, or fewer bytes than recorded: EIO and a log line */
	last_log[0] = '\0';
	assert_int_equal(
		fs_do_open(fs, look(fs, sub, "nokey.eml"), O_RDONLY, &fh),
		-EIO);
	assert_non_null(strstr(last_log, "volume/sub/nokey.eml"));
	assert_non_null(strstr(last_log, "no key"));
	last_log[0] = '\0';
	assert_int_equal(
		fs_do_open(fs, look(fs, sub, "short.eml"), O_RDONLY, &fh),
		-EIO);
	assert_non_null(strstr(last_log, "short.eml"));
	fs_free(fs);
}

static void test_fs_warm_loads_top_trees(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct fs *fs = new_fs();
	struct fs_stats st;

	(void)state;
	assert_int_equal(tree_loads, 0); /* mounting reads no tree */
	assert_int_equal(fs_start(fs, &err), 0);
	/* fs_free() waits for the warm-up: every directory of the newest
	 * snapshot is cached (root, volume, volume/sub) */
	pthread_join(fs->warm_thread, NULL);
	fs->warming = false;
	assert_int_equal(tree_loads, 3);
	fs_stats(fs, &st);
	assert_int_equal(st.tree_misses, 3);
	look(fs, volume(fs), "sub");
	assert_int_equal(tree_loads, 3);
	fs_free(fs);
}

static void test_fs_warm_stops_at_half_the_tree_cache(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct fs *fs = new_fs();

	(void)state;
	fs->trees.limit = 1; /* full after one tree */
	assert_int_equal(fs_start(fs, &err), 0);
	pthread_join(fs->warm_thread, NULL);
	fs->warming = false;
	assert_int_equal(tree_loads, 1);
	fs_free(fs);
}

struct bare_listing {
	int n, with_attrs, dirs_with_attrs;
};

static int count_attrs(void *arg, const char *name,
		       const struct fuse_entry_param *e, off_t next)
{
	struct bare_listing *l = arg;

	(void)name, (void)next;
	l->n++;
	if (e->ino) {
		l->with_attrs++;
		l->dirs_with_attrs += S_ISDIR(e->attr.st_mode);
	}
	return 0;
}

static uint64_t invalidated[8];
static int ninvalidated;

static void fake_inval(void *arg, uint64_t ino)
{
	(void)arg;
	if (ninvalidated < 8)
		invalidated[ninvalidated] = ino;
	ninvalidated++;
}

static struct bare_listing list_as(struct fs *fs, uint64_t ino, int pid)
{
	struct bare_listing l = {0, 0, 0};
	struct fs_dh *dh = NULL;

	assert_int_equal(fs_do_opendir(fs, ino, &dh), 0);
	assert_int_equal(fs_do_readdir(fs, dh, 0,
				       fs_reader_listing(fs, pid, dh, 0),
				       count_attrs, &l),
			 0);
	fs_do_releasedir(fs, dh);
	return l;
}

/* How pid's next listing of directory ino would go (counts as one). */
static int how_for(struct fs *fs, int pid, uint64_t ino)
{
	struct fs_dh *dh = NULL;
	int how;

	assert_int_equal(fs_do_opendir(fs, ino, &dh), 0);
	how = fs_reader_listing(fs, pid, dh, 0);
	fs_do_releasedir(fs, dh);
	return how;
}

static void test_fs_readers_learn_to_get_attributes(void **state)
{
	struct fs *fs = new_fs();
	struct fuse_entry_param e;
	struct bare_listing l;
	uint64_t vol, top;

	(void)state;
	fs->inval_dir = fake_inval;
	ninvalidated = 0;
	vol = volume(fs);
	/* a new reader (find) gets attributes for directories only: "sub"
	 * and the escaped ".." (a stored directory of that name) */
	l = list_as(fs, vol, 100);
	assert_int_equal(l.n, 2 + 17);
	assert_int_equal(l.with_attrs, 2);
	assert_int_equal(l.dirs_with_attrs, 2);
	/* looking up directories and top-level names teaches nothing */
	top = look(fs, FS_ROOT_INO, "mail");
	assert_int_equal(fs_do_lookup_by(fs, 100, top, "latest", &e), 0);
	assert_int_equal(fs_do_lookup_by(fs, 100, vol, "sub", &e), 0);
	assert_int_equal(how_for(fs, 100, vol), FS_LIST_DIRS);
	assert_int_equal(ninvalidated, 0);
	/* a file's attributes (rsync, ls -l): full entries from now on,
	 * and the kernel forgets the bare listing it cached */
	assert_int_equal(fs_do_lookup_by(fs, 100, vol, "big", &e), 0);
	assert_true(e.ino != 0);
	assert_int_equal(ninvalidated, 1);
	assert_int_equal(invalidated[0], vol);
	l = list_as(fs, vol, 100);
	assert_int_equal(l.with_attrs, 17);
	/* only that process: another one still starts bare */
	assert_int_equal(how_for(fs, 200, vol), FS_LIST_DIRS);
	assert_int_equal(fs_do_lookup_by(fs, 100, vol, "x", &e), 0);
	assert_int_equal(ninvalidated, 1); /* once per reader */
	fs_free(fs);
}

static void test_fs_readers_table_reuses_oldest(void **state)
{
	struct fs *fs = new_fs();
	struct fuse_entry_param e;
	uint64_t vol;
	int pid;

	(void)state;
	vol = volume(fs);
	assert_int_equal(fs_do_lookup_by(fs, 1, vol, "big", &e), 0);
	assert_int_equal(how_for(fs, 1, vol), FS_LIST_PLUS);
	/* more processes than slots: the least recently seen goes */
	for (pid = 2; pid < 2 + FS_READERS; pid++)
		assert_int_equal(how_for(fs, pid, vol), FS_LIST_DIRS);
	assert_int_equal(how_for(fs, 1, vol), FS_LIST_DIRS);
	fs_free(fs);
}

static void test_fs_readers_large_listing_full_until_walker(void **state)
{
	struct fs *fs = new_fs();
	struct fuse_entry_param e;
	uint64_t vol, sub;

	(void)state;
	vol = volume(fs);
	sub = look(fs, vol, "sub");
	fs->bare_small = 4; /* volume (17 entries) is large, sub (4) not */
	/* a new process listing a large folder may be an ls -l: all but
	 * the first few entries come with attributes */
	assert_int_equal(how_for(fs, 300, vol), FS_LIST_PROBE);
	/* small listings go bare; when no file was looked up after two
	 * listings, the process walks names only (find): large ones bare */
	assert_int_equal(how_for(fs, 300, sub), FS_LIST_DIRS);
	assert_int_equal(how_for(fs, 300, vol), FS_LIST_DIRS);
	/* an ls -l of the large folder: looks up what it got bare */
	assert_int_equal(how_for(fs, 301, vol), FS_LIST_PROBE);
	assert_int_equal(fs_do_lookup_by(fs, 301, vol, "big", &e), 0);
	assert_int_equal(how_for(fs, 301, vol), FS_LIST_PLUS);
	fs_free(fs);
}

static void test_fs_probe_listing_bares_first_entries(void **state)
{
	struct fs *fs = new_fs();
	struct bare_listing l;
	uint64_t vol;

	(void)state;
	vol = volume(fs);
	fs->bare_small = 4;
	/* 19 entries with "." and "..": the first 16 bare except
	 * directories, the 3 after them full */
	l = list_as(fs, vol, 400);
	assert_int_equal(l.n, 19);
	assert_true(l.with_attrs >= 3 && l.with_attrs <= 5);
	fs_free(fs);
}

static void test_fs_new_and_removed_snapshots(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct fs *fs = new_fs();
	struct listing l;
	char *target = NULL;
	uint64_t mail, old, vol, latest;

	(void)state;
	mail = look(fs, FS_ROOT_INO, "mail");
	old = look(fs, mail, "2024-05-01T120000Z");
	vol = look(fs, old, "volume");
	latest = look(fs, mail, "latest");
	nsnaps = 3;
	changed = true;
	assert_int_equal(fs_refresh(fs, true, &err), 0);
	assert_int_equal(list_dir(fs, mail, false, &l), 0);
	assert_true(listed(&l, "2024-05-02T120000Z"));
	/* a new target, a new inode: the kernel caches link targets */
	assert_int_not_equal(look(fs, mail, "latest"), latest);
	latest = look(fs, mail, "latest");
	assert_int_equal(fs_do_readlink(fs, latest, &target), 0);
	assert_string_equal(target, "2024-05-02T120000Z");
	free(target);
	/* the old snapshot keeps its inode */
	assert_int_equal(look(fs, mail, "2024-05-01T120000Z"), old);
	nsnaps = 2;
	changed = true;
	assert_int_equal(fs_refresh(fs, true, &err), 0);
	/* the target did not change: neither does the inode */
	assert_int_equal(look(fs, mail, "latest"), latest);
	assert_int_equal(list_dir(fs, mail, false, &l), 0);
	assert_false(listed(&l, "2024-05-01T120000Z"));
	assert_int_equal(look(fs, mail, "2024-05-01T120000Z"), 0);
	/* what the kernel still holds keeps working until forgotten */
	assert_int_not_equal(look(fs, vol, "big"), 0);
	nsnaps = 0;
	changed = true;
	assert_int_equal(fs_refresh(fs, true, &err), 0);
	assert_int_equal(list_dir(fs, FS_ROOT_INO, false, &l), 0);
	assert_int_equal(l.n, 2);
	fs_free(fs);
}

static void test_fs_opts(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct fs_opts o;

	(void)state;
	fs_opts_init(&o);
	assert_int_equal(o.cache_mib, FS_CACHE_DEFAULT_MIB);
	assert_false(o.allow_other);
	assert_int_equal(
		fs_opts_parse(&o, "ro,allow_other,cache_size=256", &err), 0);
	assert_true(o.allow_other);
	assert_true(o.default_permissions);
	assert_int_equal(o.cache_mib, 256);
	assert_int_equal(fs_opts_parse(&o, "rw", &err), -EINVAL);
	mv_err_clear(&err);
	assert_int_equal(fs_opts_parse(&o, "cache_size=x", &err), -EINVAL);
	mv_err_clear(&err);
	assert_int_equal(fs_opts_parse(&o, "bogus", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "bogus"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fs_name_escape_roundtrip),
		cmocka_unit_test(test_fs_name_long_forms_differ),
		cmocka_unit_test(test_fs_name_rejects_noncanonical),
		cmocka_unit_test(test_fs_acl_binary),
		cmocka_unit_test(test_fs_cache_lru),
		cmocka_unit_test(test_fs_cache_claim),
		cmocka_unit_test(test_fs_layout_latest),
		cmocka_unit_test(test_fs_inode_stable_and_forget),
		cmocka_unit_test(test_fs_hard_links_share_ino),
		cmocka_unit_test(test_fs_attributes),
		cmocka_unit_test(test_fs_hostile_names),
		cmocka_unit_test(test_fs_readdirplus_full_buffer),
		cmocka_unit_test(test_fs_read_chunks),
		cmocka_unit_test(test_fs_small_file_read_around_cache),
		cmocka_unit_test(test_fs_sparse_holes),
		cmocka_unit_test(test_fs_damaged_chunk_eio),
		cmocka_unit_test(test_fs_xattrs_and_acl),
		cmocka_unit_test(test_fs_mail_view_decoded),
		cmocka_unit_test(test_fs_warm_loads_top_trees),
		cmocka_unit_test(test_fs_warm_stops_at_half_the_tree_cache),
		cmocka_unit_test(test_fs_readers_learn_to_get_attributes),
		cmocka_unit_test(test_fs_readers_table_reuses_oldest),
		cmocka_unit_test(
			test_fs_readers_large_listing_full_until_walker),
		cmocka_unit_test(test_fs_probe_listing_bares_first_entries),
		cmocka_unit_test(test_fs_new_and_removed_snapshots),
		cmocka_unit_test(test_fs_opts),
	};

	return cmocka_run_group_tests_name("fs", tests, NULL, NULL);
}
