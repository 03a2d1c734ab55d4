/*
 * check: repository verification (include/check.h).  Trees shared by
 * many snapshots are verified once: a set of tree ids already seen keeps
 * a year of dailies from costing 365 walks.
 */
#include "check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "hash.h"
#include "pack.h"
#include "snapshot.h"
#include "tree.h"

/* A set of 32-byte ids (open addressing). */
struct idset {
	uint8_t (*slots)[MV_ID_LEN];
	uint8_t *used;
	size_t size, n;
};

static bool idset_has(const struct idset *s, const uint8_t *id)
{
	size_t j;

	if (!s->size)
		return false;
	for (j = mv_le64(id) & (s->size - 1); s->used[j];
	     j = (j + 1) & (s->size - 1))
		if (!memcmp(s->slots[j], id, MV_ID_LEN))
			return true;
	return false;
}

static int idset_add(struct idset *s, const uint8_t *id)
{
	size_t j;

	if ((s->n + 1) * 2 >= s->size) {
		struct idset g = {NULL, NULL, s->size ? s->size * 2 : 1024, 0};
		size_t i;

		g.slots = malloc(g.size * MV_ID_LEN);
		g.used = calloc(g.size, 1);
		if (!g.slots || !g.used) {
			free(g.slots);
			free(g.used);
			return -ENOMEM;
		}
		for (i = 0; i < s->size; i++)
			if (s->used[i])
				idset_add(&g, s->slots[i]);
		free(s->slots);
		free(s->used);
		*s = g;
	}
	if (idset_has(s, id))
		return 0;
	for (j = mv_le64(id) & (s->size - 1); s->used[j];
	     j = (j + 1) & (s->size - 1))
		;
	memcpy(s->slots[j], id, MV_ID_LEN);
	s->used[j] = 1;
	s->n++;
	return 0;
}

static void idset_free(struct idset *s)
{
	free(s->slots);
	free(s->used);
}

struct ck {
	struct repo *r;
	bool read_data;
	check_report_fn fn;
	void *arg;
	struct check_result *res;
	struct idset bad;      /* chunk ids found damaged */
	struct idset trees_ok; /* tree objects verified */
	struct idset packs;    /* names (padded) of indexed packs */
	char msg[2048];
};

static void say(struct ck *c, const char *kind, const char *fmt, ...)
	MV_PRINTF(3, 4);

static void say(struct ck *c, const char *kind, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
	va_end(ap);
	if (c->fn)
		c->fn(kind, c->msg, c->arg);
}

static void name_key(const char *name, uint8_t key[MV_ID_LEN])
{
	memset(key, 0, MV_ID_LEN);
	if (mv_unhex(name, key, PACK_NAME_LEN / 2))
		memcpy(key, name, MV_MIN(strlen(name), (size_t)MV_ID_LEN));
}

static int check_pack(int64_t id, const char *name, int kind, uint64_t size,
		      uint32_t records, void *arg)
{
	struct ck *c = arg;
	struct backend *be = repo_backend(c->r);
	char path[128];
	uint8_t key[MV_ID_LEN];
	uint64_t real = 0;
	int rc;

	(void)id;
	(void)kind;
	(void)records;
	c->res->packs++;
	name_key(name, key);
	idset_add(&c->packs, key);
	pack_path(name, path, sizeof(path));
	rc = be->ops->stat(be, path, &real, NULL, NULL);
	if (rc == -ENOENT) {
		c->res->bad_packs++;
		say(c, "error", "pack '%s' is missing", path);
	} else if (rc) {
		c->res->bad_packs++;
		say(c, "error", "pack '%s' cannot be read", path);
	} else if (size && real != size) {
		c->res->bad_packs++;
		say(c, "error",
		    "pack '%s' has %llu bytes, the index expects "
		    "%llu (truncated or replaced)",
		    path, (unsigned long long)real, (unsigned long long)size);
	}
	return 0;
}

static int check_chunk(const uint8_t id[MV_ID_LEN], const struct chunk_loc *loc,
		       void *arg)
{
	struct ck *c = arg;
	struct mv_err err = MV_ERR_INIT;
	struct mv_buf buf = MV_BUF_INIT;

	(void)loc;
	c->res->chunks++;
	if (repo_chunk_read(c->r, id, true, &buf, &err)) {
		c->res->bad_chunks++;
		idset_add(&c->bad, id);
		say(c, "error", "%s", mv_err_msg(&err));
	}
	mv_buf_release(&buf);
	return 0;
}

static bool chunk_ok(struct ck *c, const uint8_t *id, const char **why)
{
	if (idset_has(&c->bad, id)) {
		*why = "damaged";
		return false;
	}
	if (repo_chunk_find(c->r, id, NULL, NULL)) {
		*why = "missing";
		return false;
	}
	return true;
}

static int walk(struct ck *c, const char *snapname, const char *path,
		const struct tree_ref *ref, int depth)
{
	struct mv_err err = MV_ERR_INIT;
	struct tree *t = NULL;
	const char *why;
	uint32_t i, k;
	bool ok = true;

	if (ref->n && idset_has(&c->trees_ok, ref->chunks[0].id) && ref->n == 1)
		return 0;
	for (k = 0; k < ref->n; k++) {
		if (!chunk_ok(c, ref->chunks[k].id, &why)) {
			c->res->affected_files++;
			say(c, "error",
			    "snapshot %s: directory '%s': %s tree "
			    "object; its entries are lost",
			    snapname, path[0] ? path : "/", why);
			return 0;
		}
	}
	if (tree_load(c->r, ref, &t, &err)) {
		c->res->affected_files++;
		say(c, "error", "snapshot %s: directory '%s': %s", snapname,
		    path[0] ? path : "/", mv_err_msg(&err));
		return 0;
	}
	for (i = 0; i < t->n; i++) {
		const struct tree_entry *e = &t->entries[i];
		char *sub = NULL;

		if (asprintf(&sub, "%s/%s", path, e->name) < 0) {
			tree_free(t);
			return -ENOMEM;
		}
		if (e->type == TREE_DIR && depth < 4096) {
			walk(c, snapname, sub, &e->subtree, depth + 1);
		} else if (e->type == TREE_REG) {
			c->res->files++;
			for (k = 0; k < e->nchunks; k++) {
				if (!chunk_ok(c, e->chunks[k].id, &why)) {
					ok = false;
					c->res->affected_files++;
					say(c, "error",
					    "snapshot %s: file "
					    "'%s': %s data (chunk %u of %u); "
					    "reads of it fail with EIO",
					    snapname, sub, why, k + 1,
					    e->nchunks);
					break;
				}
			}
		}
		free(sub);
	}
	tree_free(t);
	if (ok && ref->n == 1)
		idset_add(&c->trees_ok, ref->chunks[0].id);
	return 0;
}

struct orphan_ctx {
	struct ck *c;
	const char *dir;
};

static int orphan_file(const char *name, bool is_dir, uint64_t size, void *arg)
{
	struct orphan_ctx *o = arg;
	uint8_t key[MV_ID_LEN];

	(void)size;
	if (is_dir)
		return 0;
	if (strlen(name) != PACK_NAME_LEN) {
		o->c->res->orphan_packs++;
		say(o->c, "info",
		    "leftover file '%s/%s' (an interrupted "
		    "write; prune removes it)",
		    o->dir, name);
		return 0;
	}
	name_key(name, key);
	if (!idset_has(&o->c->packs, key)) {
		o->c->res->orphan_packs++;
		say(o->c, "info",
		    "pack '%s/%s' is not in the index (left by "
		    "an interrupted backup; prune removes it)",
		    o->dir, name);
	}
	return 0;
}

static int orphan_dir(const char *name, bool is_dir, uint64_t size, void *arg)
{
	struct ck *c = arg;
	struct backend *be = repo_backend(c->r);
	char dir[64];
	struct orphan_ctx o = {c, dir};

	(void)size;
	if (!is_dir)
		return 0;
	snprintf(dir, sizeof(dir), "packs/%s", name);
	be->ops->list(be, dir, orphan_file, &o, NULL);
	return 0;
}

int check_repo(struct repo *r, bool read_data, check_report_fn fn, void *arg,
	       struct check_result *out, struct mv_err *err)
{
	struct snapshot *list = NULL;
	struct backend *be = repo_backend(r);
	struct ck c;
	size_t n = 0, i;
	int rc;

	memset(&c, 0, sizeof(c));
	memset(out, 0, sizeof(*out));
	c.r = r;
	c.read_data = read_data;
	c.fn = fn;
	c.arg = arg;
	c.res = out;
	rc = repo_pack_each(r, check_pack, &c, err);
	if (!rc)
		be->ops->list(be, "packs", orphan_dir, &c, NULL);
	if (!rc && read_data)
		rc = repo_chunk_each(r, check_chunk, &c, err);
	if (!rc)
		rc = snapshot_list(r, &list, &n, err);
	for (i = 0; !rc && i < n; i++) {
		char name[128], dir[64];

		snapshot_dir_name(&list[i], dir, sizeof(dir));
		snprintf(name, sizeof(name), "%s/%s", list[i].name, dir);
		out->snapshots++;
		rc = walk(&c, name, "", &list[i].root, 0);
	}
	snapshot_list_free(list, n);
	idset_free(&c.bad);
	idset_free(&c.trees_ok);
	idset_free(&c.packs);
	if (!rc && (out->bad_packs || out->bad_chunks || out->affected_files))
		rc = mv_err_set(err, -EIO,
				"repository '%s' is damaged: %llu "
				"bad packs, %llu bad chunks, %llu files or "
				"directories affected (run 'mailvault check "
				"--repair')",
				repo_location(r),
				(unsigned long long)out->bad_packs,
				(unsigned long long)out->bad_chunks,
				(unsigned long long)out->affected_files);
	return rc;
}
