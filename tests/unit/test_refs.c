/*
 * Unit tests for refs: the walk reports every reference a snapshot holds -
 * its record, the tree chunks of each directory, content chunks, and the
 * key chunks a mail_crypt view entry names in mailvault.keys - with the
 * path of the entry; a directory the visitor has seen is skipped; an
 * xattr of that name on an entry without the mail_crypt transform is
 * not a reference; every node of a multi-level ptree directory is a tree
 * reference, and a lost node skips its directory.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mail_view.h"
#include "refs.h"
#include "repo.h"
#include "snapshot.h"
#include "tree.h"

struct fx {
	char dir[64];
	struct repo *r;
	struct repo_writer *w;
};

#define MAX_SEEN 64

struct seen {
	int kind[MAX_SEEN];
	uint8_t id[MAX_SEEN][MV_ID_LEN];
	char path[MAX_SEEN][64];
	size_t n;
	int dirs, skip_dirs, entries, dirs_done;
	const char *unreadable; /* directory whose tree chunk is skipped */
	uint8_t dir_key[8][MV_ID_LEN];
	int ndir_keys;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct mv_err err = MV_ERR_INIT;
	char repo[96];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_refs.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(repo, sizeof(repo), "%s/r", f->dir);
	assert_int_equal(repo_init(repo, NULL, &err), 0);
	assert_int_equal(repo_open(repo, REPO_OPEN_WRITE, &f->r, &err), 0);
	assert_int_equal(repo_writer_begin(f->r, &f->w, &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	if (f->w)
		repo_writer_abort(f->w);
	repo_close(f->r);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static int on_dir(void *arg, const char *path, const struct tree_ref *ref,
		  const uint8_t key[MV_ID_LEN])
{
	struct seen *s = arg;
	int i;

	(void)path;
	(void)ref;
	s->dirs++;
	for (i = 0; i < s->ndir_keys; i++)
		if (!memcmp(s->dir_key[i], key, MV_ID_LEN))
			return s->skip_dirs ? 1 : 0;
	if (s->ndir_keys < 8)
		memcpy(s->dir_key[s->ndir_keys++], key, MV_ID_LEN);
	return 0;
}

static int on_dir_done(void *arg, const char *path, const struct tree_ref *ref,
		       const uint8_t key[MV_ID_LEN])
{
	struct seen *s = arg;

	(void)path;
	(void)ref;
	(void)key;
	s->dirs_done++;
	return 0;
}

static int on_entry(void *arg, const char *path, const struct tree_entry *e)
{
	struct seen *s = arg;

	(void)path;
	(void)e;
	s->entries++;
	return 0;
}

static int on_chunk(void *arg, const char *path, const struct tree_entry *e,
		    enum refs_kind kind, uint32_t i, uint32_t n,
		    const uint8_t id[MV_ID_LEN])
{
	struct seen *s = arg;

	(void)e;
	(void)i;
	(void)n;
	assert_true(s->n < MAX_SEEN);
	if (kind == REFS_TREE && s->unreadable && !strcmp(path, s->unreadable))
		return 1;
	s->kind[s->n] = kind;
	memcpy(s->id[s->n], id, MV_ID_LEN);
	snprintf(s->path[s->n], sizeof(s->path[0]), "%s", path);
	s->n++;
	return 0;
}

/* How often (kind, id) was reported, and at which path (last one). */
static int count(const struct seen *s, int kind, const uint8_t *id,
		 const char **path)
{
	size_t i;
	int k = 0;

	for (i = 0; i < s->n; i++)
		if (s->kind[i] == kind && !memcmp(s->id[i], id, MV_ID_LEN)) {
			k++;
			if (path)
				*path = s->path[i];
		}
	return k;
}

static void fake_id(uint8_t id[MV_ID_LEN], int v)
{
	memset(id, 0, MV_ID_LEN);
	id[0] = (uint8_t)v;
	id[31] = 0x5a;
}

static void test_refs_every_kind(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct tree_builder *tb = NULL;
	struct tree_entry e, root_e;
	struct tree_chunk content[2], plain_c;
	struct tree_xattr kx, px;
	struct tree_ref root;
	struct snapshot s, *list = NULL;
	struct seen seen;
	struct refs_visit v = {
		.dir = on_dir,
		.entry = on_entry,
		.chunk = on_chunk,
		.dir_done = on_dir_done,
		.arg = &seen,
	};
	uint8_t keys[2 * MV_ID_LEN], bogus[MV_ID_LEN];
	const char *where = NULL;
	size_t n = 0, i;

	fake_id(content[0].id, 1);
	fake_id(content[1].id, 2);
	content[0].size = content[1].size = 10;
	fake_id(keys, 3);
	fake_id(keys + MV_ID_LEN, 4);
	fake_id(plain_c.id, 5);
	plain_c.size = 3;
	fake_id(bogus, 6);
	kx.name = (char *)MAIL_VIEW_KEYS_XATTR;
	kx.value = keys;
	kx.len = sizeof(keys);
	px.name = (char *)MAIL_VIEW_KEYS_XATTR;
	px.value = bogus;
	px.len = sizeof(bogus);

	assert_int_equal(tree_builder_new(&tb, &err), 0);
	memset(&e, 0, sizeof(e));
	e.type = TREE_REG;
	e.mode = 0444;
	e.size = 20;
	e.nchunks = 2;
	e.chunks = content;
	e.xform = TREE_XFORM_MAILCRYPT;
	e.nxattrs = 1;
	e.xattrs = &kx;
	assert_int_equal(tree_builder_add(tb, "mail/box/m.eml", &e, &err), 0);
	/* the same xattr name on a plain file is only a name */
	e.xform = TREE_XFORM_NONE;
	e.nchunks = 1;
	e.chunks = &plain_c;
	e.xattrs = &px;
	assert_int_equal(tree_builder_add(tb, "raw/f", &e, &err), 0);
	if (tree_builder_write(tb, f->r, f->w, &root, &root_e, &err))
		fail_msg("write: %s", err.msg);
	tree_builder_free(tb);
	memset(&s, 0, sizeof(s));
	s.name = (char *)"t";
	s.host = (char *)"h";
	s.time_ns = 1;
	s.root = root;
	if (repo_writer_commit(f->w, &s, &err))
		fail_msg("commit: %s", err.msg);
	f->w = NULL;
	tree_ref_release(&root);
	tree_entry_release(&root_e);

	assert_int_equal(snapshot_list(f->r, &list, &n, &err), 0);
	assert_int_equal(n, 1);
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(refs_walk_snapshot(f->r, &list[0], &v, &err), 0);

	assert_int_equal(count(&seen, REFS_SNAPSHOT, list[0].id, NULL), 1);
	assert_int_equal(count(&seen, REFS_CONTENT, content[0].id, &where), 1);
	assert_string_equal(where, "/mail/box/m.eml");
	assert_int_equal(count(&seen, REFS_CONTENT, content[1].id, NULL), 1);
	assert_int_equal(count(&seen, REFS_KEY, keys, &where), 1);
	assert_string_equal(where, "/mail/box/m.eml");
	assert_int_equal(count(&seen, REFS_KEY, keys + MV_ID_LEN, NULL), 1);
	assert_int_equal(count(&seen, REFS_CONTENT, plain_c.id, &where), 1);
	assert_string_equal(where, "/raw/f");
	assert_int_equal(count(&seen, REFS_KEY, bogus, NULL), 0);
	/* mail, mail/box, mail/box/m.eml, raw, raw/f */
	assert_int_equal(seen.entries, 5);
	/* root, mail, mail/box, raw: one tree chunk each */
	assert_int_equal(seen.dirs, 4);
	assert_int_equal(seen.dirs_done, 4);
	for (i = 0, n = 0; i < seen.n; i++)
		n += seen.kind[i] == REFS_TREE;
	assert_int_equal(n, 4);
	assert_int_equal(
		count(&seen, REFS_TREE, list[0].root.chunks[0].id, &where), 1);
	assert_string_equal(where, "");

	/* walked again with every directory seen: only the record */
	seen.n = 0;
	seen.dirs = 0;
	seen.skip_dirs = 1;
	assert_int_equal(refs_walk_snapshot(f->r, &list[0], &v, &err), 0);
	assert_int_equal(seen.dirs, 1);
	assert_int_equal(seen.n, 1);
	assert_int_equal(seen.kind[0], REFS_SNAPSHOT);

	/* a directory not read still ends: dir_done pairs with dir */
	memset(&seen, 0, sizeof(seen));
	seen.unreadable = "/mail";
	assert_int_equal(refs_walk_snapshot(f->r, &list[0], &v, &err), 0);
	assert_int_equal(seen.dirs, 3); /* root, mail, raw */
	assert_int_equal(seen.dirs_done, 3);
	assert_int_equal(seen.entries, 3); /* mail, raw, raw/f */
	assert_int_equal(count(&seen, REFS_CONTENT, plain_c.id, NULL), 1);
	assert_int_equal(count(&seen, REFS_KEY, keys, NULL), 0);
	snapshot_list_free(list, 1);
}

/* ---- a ptree directory of several levels -------------------------------- */

#define MAX_NODES 2048

struct nodeset {
	uint8_t id[MAX_NODES][MV_ID_LEN];
	size_t n;
	int entries, dirs, dirs_done;
	const uint8_t *lost; /* a node the visitor skips, as prune does */
};

static bool in_set(const struct nodeset *s, const uint8_t id[MV_ID_LEN])
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (!memcmp(s->id[i], id, MV_ID_LEN))
			return true;
	return false;
}

static int ns_dir(void *arg, const char *path, const struct tree_ref *ref,
		  const uint8_t key[MV_ID_LEN])
{
	struct nodeset *s = arg;

	(void)path;
	(void)ref;
	(void)key;
	s->dirs++;
	return 0;
}

static int ns_dir_done(void *arg, const char *path, const struct tree_ref *ref,
		       const uint8_t key[MV_ID_LEN])
{
	struct nodeset *s = arg;

	(void)path;
	(void)ref;
	(void)key;
	s->dirs_done++;
	return 0;
}

static int ns_entry(void *arg, const char *path, const struct tree_entry *e)
{
	struct nodeset *s = arg;

	(void)path;
	(void)e;
	s->entries++;
	return 0;
}

static int ns_chunk(void *arg, const char *path, const struct tree_entry *e,
		    enum refs_kind kind, uint32_t i, uint32_t n,
		    const uint8_t id[MV_ID_LEN])
{
	struct nodeset *s = arg;

	(void)path;
	(void)e;
	(void)i;
	(void)n;
	if (kind != REFS_TREE)
		return 0;
	if (s->lost && !memcmp(s->lost, id, MV_ID_LEN))
		return 1;
	assert_true(s->n < MAX_NODES);
	memcpy(s->id[s->n++], id, MV_ID_LEN);
	return 0;
}

static int ns_node(void *arg, const uint8_t id[MV_ID_LEN], uint32_t i,
		   uint32_t n)
{
	struct nodeset *s = arg;

	assert_true(i < n);
	assert_true(s->n < MAX_NODES);
	memcpy(s->id[s->n++], id, MV_ID_LEN);
	return 0;
}

/* Every node of a directory's ptree - root, index nodes, leaves - is a
 * REFS_TREE reference (what prune keeps); a node the visitor skips (lost
 * to damage) skips the directory, which still ends. */
static void test_refs_ptree_nodes(void **state)
{
	struct fx *f = *state;
	struct mv_err err = MV_ERR_INIT;
	struct tree_builder *tb = NULL;
	static struct nodeset walked, loaded;
	struct snapshot s, *list = NULL;
	struct tree_entry e, big;
	struct tree_chunk c;
	struct tree_ref root;
	struct tree *t = NULL;
	struct refs_visit v = {
		.dir = ns_dir,
		.entry = ns_entry,
		.chunk = ns_chunk,
		.dir_done = ns_dir_done,
		.arg = &walked,
	};
	size_t n = 0, i;
	char path[96];

	assert_int_equal(tree_builder_new(&tb, &err), 0);
	memset(&e, 0, sizeof(e));
	e.type = TREE_REG;
	e.mode = 0600;
	e.nchunks = 1;
	e.chunks = &c;
	c.size = 100;
	for (i = 0; i < 6000; i++) {
		memset(c.id, 0, sizeof(c.id));
		memcpy(c.id, &i, sizeof(i));
		e.mtime_sec = 1700000000 + (int64_t)i;
		snprintf(path, sizeof(path),
			 "big/%010zu.M%zuP%zu.mail.example.org,S=%zu:2,S",
			 1700000000 + i, i, i * 3, i * 17);
		assert_int_equal(tree_builder_add(tb, path, &e, &err), 0);
	}
	if (tree_builder_write(tb, f->r, f->w, &root, NULL, &err))
		fail_msg("write: %s", err.msg);
	tree_builder_free(tb);
	memset(&s, 0, sizeof(s));
	s.name = (char *)"t";
	s.host = (char *)"h";
	s.time_ns = 1;
	s.root = root;
	if (repo_writer_commit(f->w, &s, &err))
		fail_msg("commit: %s", err.msg);
	f->w = NULL;

	/* the nodes as a reader finds them */
	assert_int_equal(tree_lookup_path(f->r, &root, "big", &big, &err), 0);
	assert_int_equal(big.subtree.n, 1);
	loaded.n = 0;
	memcpy(loaded.id[loaded.n++], big.subtree.chunks[0].id, MV_ID_LEN);
	assert_int_equal(
		tree_load_nodes(f->r, &big.subtree, ns_node, &loaded, &t, &err),
		0);
	assert_int_equal(t->n, 6000);
	tree_free(t);
	print_message("6000 entries: %zu nodes\n", loaded.n);
	/* a root, index nodes under it, then leaves: three levels */
	assert_true(loaded.n > 100);

	assert_int_equal(snapshot_list(f->r, &list, &n, &err), 0);
	memset(&walked, 0, sizeof(walked));
	assert_int_equal(refs_walk_snapshot(f->r, &list[0], &v, &err), 0);
	for (i = 0; i < loaded.n; i++)
		assert_true(in_set(&walked, loaded.id[i]));
	/* the snapshot's root directory and every node of big */
	assert_int_equal(walked.n, loaded.n + 1);
	assert_int_equal(walked.entries, 6001);

	/* a lost leaf: big is not read, and still ends */
	memset(&walked, 0, sizeof(walked));
	walked.lost = loaded.id[loaded.n - 1];
	assert_int_equal(refs_walk_snapshot(f->r, &list[0], &v, &err), 0);
	assert_int_equal(walked.entries, 1);
	assert_int_equal(walked.dirs, 2);
	assert_int_equal(walked.dirs_done, 2);
	snapshot_list_free(list, n);
	tree_entry_release(&big);
	tree_ref_release(&root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_refs_every_kind, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_refs_ptree_nodes, setup,
						teardown),
	};

	return cmocka_run_group_tests_name("refs", tests, NULL, NULL);
}
