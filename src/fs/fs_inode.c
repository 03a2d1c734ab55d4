/*
 * fs_inode: inode numbers and what they stand for.  The kernel names files
 * by inode number and tells how many lookups it holds on each; a node
 * lives while it holds any (or, at the top level, while its snapshot is in
 * the repository), so memory follows what the kernel caches, not the size
 * of the repository.  Numbers are handed out in order and never reused.
 * One mutex guards the table; operations copy what they need into a
 * struct fs_pin and work without it.
 */
#include "fs_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define GOLDEN 0x9e3779b97f4a7c15ull

static uint64_t ino_hash(uint64_t ino)
{
	return ino * GOLDEN;
}

static uint64_t name_hash(uint64_t parent, const char *shown)
{
	return XXH3_64bits_withSeed(shown, strlen(shown), parent);
}

static uint64_t group_hash(uint64_t snap_ino, uint64_t group)
{
	return (snap_ino * GOLDEN) ^ (group * 0xc2b2ae3d27d4eb4full);
}

void fs_snap_info_free(struct fs_snap_info *list, size_t n)
{
	size_t i;

	for (i = 0; list && i < n; i++) {
		free(list[i].name);
		free(list[i].root.chunks);
	}
	free(list);
}

/* ---- refcounted snapshots and directories ---------------------------- */

static void ref_release(struct tree_ref *r)
{
	free(r->chunks);
	r->chunks = NULL;
	r->n = 0;
}

static int ref_copy(struct tree_ref *dst, const struct tree_ref *src)
{
	dst->n = 0;
	dst->chunks = NULL;
	if (!src->n)
		return 0;
	dst->chunks = malloc(src->n * sizeof(*src->chunks));
	if (!dst->chunks)
		return -ENOMEM;
	memcpy(dst->chunks, src->chunks, src->n * sizeof(*src->chunks));
	dst->n = src->n;
	return 0;
}

static void snap_unref(struct fs_snap *s)
{
	if (!s || --s->refs)
		return;
	free(s->name);
	ref_release(&s->root);
	free(s);
}

static void dir_unref(struct fs_dir *d)
{
	if (!d || --d->refs)
		return;
	snap_unref(d->snap);
	ref_release(&d->ref);
	free(d->path);
	free(d);
}

static struct fs_dir *dir_new(struct fs_snap *snap, const struct tree_ref *ref,
			      const char *parent_path, const char *shown,
			      uint64_t ino)
{
	struct fs_dir *d = calloc(1, sizeof(*d));
	size_t pl = strlen(parent_path), sl = strlen(shown);

	if (!d)
		return NULL;
	d->path = malloc(pl + sl + 2);
	if (!d->path || ref_copy(&d->ref, ref)) {
		free(d->path);
		free(d);
		return NULL;
	}
	memcpy(d->path, parent_path, pl);
	d->path[pl] = '/';
	memcpy(d->path + pl + 1, shown, sl + 1);
	d->refs = 1;
	d->snap = snap;
	snap->refs++;
	d->ino = ino;
	return d;
}

/* ---- hash tables ------------------------------------------------------ */

static struct fs_node *find_ino(struct fs_itable *t, uint64_t ino)
{
	struct fs_node *n = t->by_ino[ino_hash(ino) & (t->ino_cap - 1)];

	while (n && n->ino != ino)
		n = n->ino_next;
	return n;
}

static struct fs_node *find_name(struct fs_itable *t, uint64_t parent,
				 const char *shown)
{
	uint64_t h = name_hash(parent, shown);
	struct fs_node *n = t->by_name[h & (t->name_cap - 1)];

	while (n && (n->parent != parent || strcmp(n->shown, shown)))
		n = n->name_next;
	return n;
}

static void rehash_ino(struct fs_itable *t)
{
	size_t ncap = t->ino_cap * 2, i;
	struct fs_node **nt = calloc(ncap, sizeof(*nt));

	if (!nt)
		return;
	for (i = 0; i < t->ino_cap; i++) {
		struct fs_node *n = t->by_ino[i], *next;

		for (; n; n = next) {
			next = n->ino_next;
			n->ino_next = nt[ino_hash(n->ino) & (ncap - 1)];
			nt[ino_hash(n->ino) & (ncap - 1)] = n;
		}
	}
	free(t->by_ino);
	t->by_ino = nt;
	t->ino_cap = ncap;
}

static void rehash_name(struct fs_itable *t)
{
	size_t ncap = t->name_cap * 2, i;
	struct fs_node **nt = calloc(ncap, sizeof(*nt));

	if (!nt)
		return;
	for (i = 0; i < t->name_cap; i++) {
		struct fs_node *n = t->by_name[i], *next;

		for (; n; n = next) {
			uint64_t h = name_hash(n->parent, n->shown);

			next = n->name_next;
			n->name_next = nt[h & (ncap - 1)];
			nt[h & (ncap - 1)] = n;
		}
	}
	free(t->by_name);
	t->by_name = nt;
	t->name_cap = ncap;
}

static void add_name(struct fs_itable *t, struct fs_node *n)
{
	uint64_t h;

	if (t->nnamed >= t->name_cap)
		rehash_name(t);
	h = name_hash(n->parent, n->shown);
	n->name_next = t->by_name[h & (t->name_cap - 1)];
	t->by_name[h & (t->name_cap - 1)] = n;
	n->named = true;
	t->nnamed++;
}

static void drop_name(struct fs_itable *t, struct fs_node *n)
{
	uint64_t h = name_hash(n->parent, n->shown);
	struct fs_node **pp = &t->by_name[h & (t->name_cap - 1)];

	if (!n->named)
		return;
	while (*pp && *pp != n)
		pp = &(*pp)->name_next;
	if (*pp)
		*pp = n->name_next;
	n->named = false;
	t->nnamed--;
}

static struct fs_node *node_new(struct fs_itable *t, enum fs_kind kind,
				uint64_t ino, uint64_t parent,
				const char *shown)
{
	struct fs_node *n = calloc(1, sizeof(*n));
	uint64_t h;

	if (!n)
		return NULL;
	n->shown = strdup(shown);
	if (!n->shown) {
		free(n);
		return NULL;
	}
	n->kind = kind;
	n->ino = ino ? ino : t->next_ino++;
	n->parent = parent;
	if (t->nnodes >= t->ino_cap)
		rehash_ino(t);
	h = ino_hash(n->ino);
	n->ino_next = t->by_ino[h & (t->ino_cap - 1)];
	t->by_ino[h & (t->ino_cap - 1)] = n;
	t->nnodes++;
	return n;
}

static void node_free(struct fs_itable *t, struct fs_node *n)
{
	struct fs_node **pp = &t->by_ino[ino_hash(n->ino) & (t->ino_cap - 1)];

	while (*pp && *pp != n)
		pp = &(*pp)->ino_next;
	if (*pp)
		*pp = n->ino_next;
	t->nnodes--;
	drop_name(t, n);
	snap_unref(n->snap);
	dir_unref(n->dir);
	dir_unref(n->self);
	free(n->shown);
	free(n);
}

static void node_maybe_free(struct fs_itable *t, struct fs_node *n)
{
	if (n->nlookup == 0 && !n->live && n->kind != FS_ROOT)
		node_free(t, n);
}

/* ---- setup ----------------------------------------------------------- */

int fs_itable_init(struct fs_itable *t)
{
	struct fs_node *root;

	memset(t, 0, sizeof(*t));
	t->ino_cap = t->name_cap = t->group_cap = 1024;
	t->by_ino = calloc(t->ino_cap, sizeof(*t->by_ino));
	t->by_name = calloc(t->name_cap, sizeof(*t->by_name));
	t->groups = calloc(t->group_cap, sizeof(*t->groups));
	t->next_ino = FS_ROOT_INO;
	if (!t->by_ino || !t->by_name || !t->groups)
		goto fail;
	root = node_new(t, FS_ROOT, 0, FS_ROOT_INO, "");
	if (!root)
		goto fail;
	root->live = true;
	pthread_mutex_init(&t->lock, NULL);
	return 0;
fail:
	free(t->by_ino);
	free(t->by_name);
	free(t->groups);
	return -ENOMEM;
}

void fs_itable_release(struct fs_itable *t)
{
	size_t i;

	for (i = 0; i < t->ino_cap; i++) {
		while (t->by_ino[i])
			node_free(t, t->by_ino[i]);
	}
	for (i = 0; i < t->group_cap; i++) {
		struct fs_group *g = t->groups[i], *next;

		for (; g; g = next) {
			next = g->next;
			free(g);
		}
	}
	for (i = 0; i < t->nsnaps; i++)
		snap_unref(t->snaps[i]);
	free(t->snaps);
	free(t->by_ino);
	free(t->by_name);
	free(t->groups);
	pthread_mutex_destroy(&t->lock);
}

/* ---- the top level ---------------------------------------------------- */

static int snap_id_cmp(const void *a, const void *b)
{
	const struct fs_snap *x = *(struct fs_snap *const *)a;
	const struct fs_snap *y = *(struct fs_snap *const *)b;

	return memcmp(x->id, y->id, MV_ID_LEN);
}

static struct fs_snap *snap_new(const struct fs_snap_info *in)
{
	struct fs_snap *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->name = strdup(in->name);
	if (!s->name || ref_copy(&s->root, &in->root)) {
		free(s->name);
		free(s);
		return NULL;
	}
	s->refs = 1;
	fs_name_show(in->name, strlen(in->name), false, s->shown);
	s->time_ns = in->time_ns;
	s->partial = in->partial;
	memcpy(s->id, in->id, MV_ID_LEN);
	return s;
}

/* A live top-level node named shown under parent, created when needed. */
static struct fs_node *top_node(struct fs_itable *t, enum fs_kind kind,
				uint64_t parent, const char *shown)
{
	struct fs_node *n = find_name(t, parent, shown);

	if (!n) {
		n = node_new(t, kind, 0, parent, shown);
		if (!n)
			return NULL;
		add_name(t, n);
	}
	n->live = true;
	return n;
}

static void retire(struct fs_itable *t, struct fs_node *n)
{
	drop_name(t, n);
	n->live = false;
	node_maybe_free(t, n);
}

/* The snapshot "latest" of the name shown points at (t->lock held). */
static const struct fs_snap *latest_of(struct fs_itable *t, const char *shown)
{
	const struct fs_snap *best = NULL;
	size_t i;

	for (i = 0; i < t->nsnaps; i++) {
		const struct fs_snap *s = t->snaps[i];

		if (strcmp(s->shown, shown))
			continue;
		/* ordered by time: a later one wins unless it is partial
		 * and a complete one was seen */
		if (!best || !s->partial || best->partial)
			best = s;
	}
	return best;
}

/* The kernel keeps a symlink's target by inode (FUSE_CAP_CACHE_SYMLINKS),
 * so a "latest" whose target changed becomes a new node: the kernel finds
 * it once the old entry times out, and reads the new target. */
static void renew_latest(struct fs_itable *t)
{
	size_t i;

	for (i = 0; i < t->nsnaps; i++) {
		const struct fs_snap *best;
		struct fs_node *nn, *ln;

		/* ordered by name: once per name */
		if (i > 0 &&
		    !strcmp(t->snaps[i]->shown, t->snaps[i - 1]->shown))
			continue;
		nn = find_name(t, FS_ROOT_INO, t->snaps[i]->shown);
		ln = nn ? find_name(t, nn->ino, FS_LATEST_NAME) : NULL;
		best = latest_of(t, t->snaps[i]->shown);
		if (!ln || !best || ln->target == best->ino)
			continue;
		if (ln->target) {
			retire(t, ln);
			ln = top_node(t, FS_LATEST, nn->ino, FS_LATEST_NAME);
			if (!ln)
				continue; /* out of memory: no "latest" */
		}
		ln->target = best->ino;
	}
}

int fs_itable_update(struct fs_itable *t, const struct fs_snap_info *list,
		     size_t n)
{
	struct fs_snap **old = NULL, **snaps = NULL;
	size_t nold, i, dup = 1;
	int rc = -ENOMEM;

	snaps = calloc(n ? n : 1, sizeof(*snaps));
	if (!snaps)
		return -ENOMEM;
	pthread_mutex_lock(&t->lock);
	nold = t->nsnaps;
	old = malloc((nold ? nold : 1) * sizeof(*old));
	if (!old)
		goto out;
	if (nold)
		memcpy(old, t->snaps, nold * sizeof(*old));
	qsort(old, nold, sizeof(*old), snap_id_cmp);

	for (i = 0; i < n; i++) {
		struct fs_snap key, *kp = &key, **found;
		struct fs_node *name, *sn;

		memcpy(key.id, list[i].id, MV_ID_LEN);
		found = bsearch(&kp, old, nold, sizeof(*old), snap_id_cmp);
		if (found) {
			snaps[i] = *found;
			snaps[i]->refs++;
			continue;
		}
		snaps[i] = snap_new(&list[i]);
		if (!snaps[i])
			goto out;
		name = top_node(t, FS_NAME, FS_ROOT_INO, snaps[i]->shown);
		if (!name || !top_node(t, FS_LATEST, name->ino, FS_LATEST_NAME))
			goto out;
		/* two snapshots of one name in one second: "...Z-2" */
		snprintf(snaps[i]->dir, sizeof(snaps[i]->dir), "%s",
			 list[i].dir);
		for (dup = 2; find_name(t, name->ino, snaps[i]->dir); dup++) {
			char base[64];
			const char *dot = strstr(list[i].dir, ".partial");
			size_t bl = dot ? (size_t)(dot - list[i].dir)
					: strlen(list[i].dir);

			snprintf(base, sizeof(base), "%.*s", (int)bl,
				 list[i].dir);
			snprintf(snaps[i]->dir, sizeof(snaps[i]->dir),
				 "%s-%zu%s", base, dup, dot ? dot : "");
		}
		sn = top_node(t, FS_SNAP, name->ino, snaps[i]->dir);
		if (!sn)
			goto out;
		sn->snap = snaps[i];
		snaps[i]->refs++;
		snaps[i]->ino = sn->ino;
		sn->self = dir_new(snaps[i], &snaps[i]->root, snaps[i]->shown,
				   snaps[i]->dir, sn->ino);
		if (!sn->self)
			goto out;
	}
	/* snapshots that went away lose their names */
	for (i = 0; i < nold; i++) {
		struct fs_snap *s = t->snaps[i];
		struct fs_node *sn = find_ino(t, s->ino);
		size_t j;
		bool keep = false, name_left = false;

		for (j = 0; j < n && !keep; j++)
			keep = snaps[j] == s;
		if (keep)
			continue;
		for (j = 0; j < n && !name_left; j++)
			name_left = !strcmp(snaps[j]->shown, s->shown);
		if (sn)
			retire(t, sn);
		if (!name_left) {
			struct fs_node *nn =
				find_name(t, FS_ROOT_INO, s->shown);

			if (nn) {
				struct fs_node *ln =
					find_name(t, nn->ino, FS_LATEST_NAME);

				if (ln)
					retire(t, ln);
				retire(t, nn);
			}
		}
	}
	for (i = 0; i < nold; i++)
		snap_unref(t->snaps[i]);
	free(t->snaps);
	t->snaps = snaps;
	t->nsnaps = n;
	snaps = NULL;
	renew_latest(t);
	rc = 0;
out:
	if (snaps) {
		for (i = 0; i < n; i++)
			snap_unref(snaps[i]);
		free(snaps);
	}
	pthread_mutex_unlock(&t->lock);
	free(old);
	return rc;
}

/* ---- pins, lookups, forgets ------------------------------------------ */

static void fill_pin(const struct fs_node *n, struct fs_pin *out)
{
	memset(out, 0, sizeof(*out));
	out->ino = n->ino;
	out->kind = n->kind;
	out->parent = n->parent;
	out->snap = n->snap;
	out->dir = n->dir;
	out->self = n->self;
	out->index = n->index;
	out->type = n->type;
	out->has_leaf = n->has_leaf;
	out->slot = n->slot;
	memcpy(out->leaf, n->leaf, MV_ID_LEN);
	if (out->snap)
		out->snap->refs++;
	if (out->dir)
		out->dir->refs++;
	if (out->self)
		out->self->refs++;
}

int fs_itable_pin(struct fs_itable *t, uint64_t ino, struct fs_pin *out)
{
	struct fs_node *n;
	int rc = 0;

	pthread_mutex_lock(&t->lock);
	n = find_ino(t, ino);
	if (!n) {
		rc = -ESTALE;
	} else {
		fill_pin(n, out);
		if (n->kind == FS_NAME) {
			out->shown = strdup(n->shown);
			if (!out->shown)
				rc = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&t->lock);
	if (rc && n)
		fs_itable_unpin(t, out);
	return rc;
}

void fs_itable_unpin(struct fs_itable *t, struct fs_pin *p)
{
	pthread_mutex_lock(&t->lock);
	snap_unref(p->snap);
	dir_unref(p->dir);
	dir_unref(p->self);
	pthread_mutex_unlock(&t->lock);
	free(p->shown);
	memset(p, 0, sizeof(*p));
}

int fs_itable_lookup_top(struct fs_itable *t, uint64_t parent,
			 const char *shown, struct fs_pin *out)
{
	struct fs_node *n;
	int rc = 0;

	pthread_mutex_lock(&t->lock);
	n = find_name(t, parent, shown);
	if (!n || n->kind == FS_ENTRY) {
		rc = -ENOENT;
	} else {
		fill_pin(n, out);
		if (n->kind == FS_NAME) {
			out->shown = strdup(n->shown);
			if (!out->shown)
				rc = -ENOMEM;
		}
		if (!rc)
			n->nlookup++;
	}
	pthread_mutex_unlock(&t->lock);
	if (rc && n && n->kind != FS_ENTRY)
		fs_itable_unpin(t, out);
	return rc;
}

static struct fs_group *group_find(struct fs_itable *t, uint64_t snap_ino,
				   uint64_t group)
{
	struct fs_group *g =
		t->groups[group_hash(snap_ino, group) & (t->group_cap - 1)];

	while (g && (g->snap_ino != snap_ino || g->group != group))
		g = g->next;
	return g;
}

static struct fs_group *group_add(struct fs_itable *t, uint64_t snap_ino,
				  uint64_t group)
{
	struct fs_group *g = calloc(1, sizeof(*g));
	size_t b;

	if (!g)
		return NULL;
	if (t->ngroups >= t->group_cap) {
		size_t ncap = t->group_cap * 2;
		struct fs_group **nt = calloc(ncap, sizeof(*nt));

		if (nt) {
			size_t i;

			for (i = 0; i < t->group_cap; i++) {
				struct fs_group *x = t->groups[i], *next;

				for (; x; x = next) {
					size_t nb = group_hash(x->snap_ino,
							       x->group) &
						    (ncap - 1);

					next = x->next;
					x->next = nt[nb];
					nt[nb] = x;
				}
			}
			free(t->groups);
			t->groups = nt;
			t->group_cap = ncap;
		}
	}
	g->snap_ino = snap_ino;
	g->group = group;
	g->ino = t->next_ino++;
	b = group_hash(snap_ino, group) & (t->group_cap - 1);
	g->next = t->groups[b];
	t->groups[b] = g;
	t->ngroups++;
	return g;
}

int fs_itable_lookup_entry(struct fs_itable *t, const struct fs_pin *parent,
			   const char *shown, const struct tree_entry *e,
			   uint32_t index, uint64_t *out_ino)
{
	return fs_itable_lookup_leaf(t, parent, shown, e, index, NULL, 0,
				     out_ino);
}

int fs_itable_lookup_leaf(struct fs_itable *t, const struct fs_pin *parent,
			  const char *shown, const struct tree_entry *e,
			  uint32_t index, const uint8_t leaf[MV_ID_LEN],
			  uint32_t slot, uint64_t *out_ino)
{
	struct fs_node *n = NULL;
	uint64_t ino = 0;
	int rc = 0;

	pthread_mutex_lock(&t->lock);
	if (e->link_group) {
		struct fs_group *g =
			group_find(t, parent->snap->ino, e->link_group);

		if (!g)
			g = group_add(t, parent->snap->ino, e->link_group);
		if (!g) {
			rc = -ENOMEM;
			goto out;
		}
		ino = g->ino;
		n = find_ino(t, ino);
	} else {
		n = find_name(t, parent->ino, shown);
	}
	if (!n) {
		n = node_new(t, FS_ENTRY, ino, parent->ino, shown);
		if (!n) {
			rc = -ENOMEM;
			goto out;
		}
		n->snap = parent->snap;
		n->snap->refs++;
		n->dir = parent->self;
		n->dir->refs++;
		n->index = index;
		n->type = e->type;
		if (e->type == TREE_DIR) {
			n->self = dir_new(n->snap, &e->subtree,
					  parent->self->path, shown, n->ino);
			if (!n->self) {
				node_free(t, n);
				rc = -ENOMEM;
				goto out;
			}
		}
		if (!e->link_group)
			add_name(t, n);
	}
	/* the leaf of the directory the node reads its entry from */
	if (leaf && !n->has_leaf && n->dir == parent->self &&
	    n->index == index) {
		memcpy(n->leaf, leaf, MV_ID_LEN);
		n->slot = slot;
		n->has_leaf = true;
	}
	n->nlookup++;
	*out_ino = n->ino;
out:
	pthread_mutex_unlock(&t->lock);
	return rc;
}

uint64_t fs_itable_peek(struct fs_itable *t, uint64_t parent, const char *shown,
			const struct tree_entry *e, const struct fs_snap *snap)
{
	uint64_t ino = 0;

	pthread_mutex_lock(&t->lock);
	if (e && e->link_group) {
		struct fs_group *g = group_find(t, snap->ino, e->link_group);

		if (g)
			ino = g->ino;
	} else {
		struct fs_node *n = find_name(t, parent, shown);

		if (n)
			ino = n->ino;
	}
	pthread_mutex_unlock(&t->lock);
	return ino;
}

void fs_itable_forget(struct fs_itable *t, uint64_t ino, uint64_t nlookup)
{
	struct fs_node *n;

	pthread_mutex_lock(&t->lock);
	n = find_ino(t, ino);
	if (n) {
		n->nlookup = nlookup > n->nlookup ? 0 : n->nlookup - nlookup;
		node_maybe_free(t, n);
	}
	pthread_mutex_unlock(&t->lock);
}

void fs_topent_free(struct fs_topent *list, size_t n)
{
	size_t i;

	for (i = 0; list && i < n; i++)
		free(list[i].shown);
	free(list);
}

static int top_add(struct fs_topent **list, size_t *n, const char *shown,
		   uint64_t ino, mode_t type)
{
	struct fs_topent *nl = realloc(*list, (*n + 1) * sizeof(**list));

	if (!nl)
		return -ENOMEM;
	*list = nl;
	nl[*n].shown = strdup(shown);
	if (!nl[*n].shown)
		return -ENOMEM;
	nl[*n].ino = ino;
	nl[*n].type = type;
	(*n)++;
	return 0;
}

int fs_itable_list_top(struct fs_itable *t, uint64_t ino,
		       struct fs_topent **out, size_t *out_n)
{
	struct fs_topent *list = NULL;
	struct fs_node *dirn, *n;
	size_t cnt = 0, i;
	int rc = 0;

	pthread_mutex_lock(&t->lock);
	dirn = find_ino(t, ino);
	if (!dirn || (dirn->kind != FS_ROOT && dirn->kind != FS_NAME)) {
		rc = -ENOTDIR;
		goto out;
	}
	for (i = 0; i < t->nsnaps && !rc; i++) {
		const struct fs_snap *s = t->snaps[i];

		if (dirn->kind == FS_ROOT) {
			if (i > 0 && !strcmp(t->snaps[i - 1]->shown, s->shown))
				continue;
			n = find_name(t, FS_ROOT_INO, s->shown);
			if (n)
				rc = top_add(&list, &cnt, s->shown, n->ino,
					     S_IFDIR);
		} else if (!strcmp(s->shown, dirn->shown)) {
			rc = top_add(&list, &cnt, s->dir, s->ino, S_IFDIR);
		}
	}
	if (!rc && dirn->kind == FS_NAME) {
		n = find_name(t, dirn->ino, FS_LATEST_NAME);
		if (n)
			rc = top_add(&list, &cnt, FS_LATEST_NAME, n->ino,
				     S_IFLNK);
	}
out:
	pthread_mutex_unlock(&t->lock);
	if (rc) {
		fs_topent_free(list, cnt);
		return rc;
	}
	*out = list;
	*out_n = cnt;
	return 0;
}

int fs_itable_latest(struct fs_itable *t, uint64_t parent, char *out, size_t n,
		     int64_t *out_time)
{
	const struct fs_snap *best = NULL;
	struct fs_node *dirn;
	int rc = -ENOENT;

	pthread_mutex_lock(&t->lock);
	dirn = find_ino(t, parent);
	if (dirn)
		best = latest_of(t, dirn->shown);
	if (best) {
		snprintf(out, n, "%s", best->dir);
		*out_time = best->time_ns;
		rc = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int fs_itable_latest_roots(struct fs_itable *t, struct tree_ref **out,
			   size_t *out_n)
{
	struct tree_ref *refs = NULL;
	size_t i, n = 0;
	int rc = 0;

	pthread_mutex_lock(&t->lock);
	refs = calloc(t->nsnaps ? t->nsnaps : 1, sizeof(*refs));
	if (!refs)
		rc = -ENOMEM;
	/* ordered by name, then time: the last of each name is the newest */
	for (i = 0; !rc && i < t->nsnaps; i++) {
		if (i + 1 < t->nsnaps &&
		    !strcmp(t->snaps[i]->shown, t->snaps[i + 1]->shown))
			continue;
		rc = ref_copy(&refs[n], &t->snaps[i]->root);
		if (!rc)
			n++;
	}
	pthread_mutex_unlock(&t->lock);
	if (rc) {
		for (i = 0; i < n; i++)
			ref_release(&refs[i]);
		free(refs);
		return rc;
	}
	*out = refs;
	*out_n = n;
	return 0;
}
