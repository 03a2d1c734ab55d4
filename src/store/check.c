/*
 * check: repository verification (include/check.h).  Trees shared by
 * many snapshots are verified once when nothing under them is damaged: a
 * set of clean tree ids keeps a year of dailies from costing 365 walks,
 * while a tree with damage under it is walked again in every snapshot
 * that holds it, so that each of them is named.
 */
#include "check.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "backend.h"
#include "hash.h"
#include "index.h"
#include "pack.h"
#include "refs.h"
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

#define LOSS_PREFIX "lost:" /* index meta key of a known-lost chunk */
/* index meta key of a format 2 pack whose table check --repair found
 * damaged: its records stay readable through the index */
#define TABLE_LOSS_PREFIX "lost-table:"
#define EXPOSED_NAMED 10 /* exposed paths named; the rest counted */

enum ck_pack_state {
	CKP_OK = 0,
	CKP_GONE,    /* missing or unreadable: all its chunks are lost */
	CKP_RESIZED, /* truncated or replaced: its chunks are read */
};

struct ck_pack {
	int64_t id;
	char name[PACK_NAME_LEN + 1];
	int state; /* enum ck_pack_state */
};

struct ck {
	struct repo *r;
	const struct check_opts *o;
	check_report_fn fn;
	void *arg;
	struct check_result *res;
	struct idset bad;      /* chunk ids found damaged */
	struct idset lost;     /* known-lost chunk ids met (counted once) */
	struct idset clean;    /* tree objects with nothing damaged under */
	struct idset packs;    /* names (padded) of indexed packs */
	struct ck_pack *plist; /* indexed packs, for reading a subset */
	size_t nplist, capplist;
	uint64_t *marks; /* damage counter at each open directory */
	size_t nmarks, capmarks;
	uint64_t hits;		      /* damage and loss reported */
	char last[1024];	      /* path of the entry last counted */
	const char *snap;	      /* name of the snapshot walked */
	bool snap_damaged, snap_lost; /* found in this snapshot */
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

/* Format 2: the pack's trailer and table open and agree with its size
 * and with the index.  A pack that fails has its chunks read, so the
 * files it affects are named. */
static void check_table(struct ck *c, struct ck_pack *k, uint32_t records)
{
	struct mv_err e = MV_ERR_INIT;
	struct seal_table t;

	if (repo_pack_table(c->r, k->name, &t, NULL, &e)) {
		char key[sizeof(TABLE_LOSS_PREFIX) + PACK_NAME_LEN], v[64];

		snprintf(key, sizeof(key), "%s%s", TABLE_LOSS_PREFIX, k->name);
		if (!index_meta_get(repo_index(c->r), key, v, sizeof(v),
				    NULL)) {
			say(c, "warning",
			    "%s (recorded by check --repair: its records "
			    "read through the index, rebuild-index would "
			    "not list them)",
			    mv_err_msg(&e));
			return;
		}
		c->res->bad_packs++;
		k->state = CKP_RESIZED;
		say(c, "error", "%s", mv_err_msg(&e));
		return;
	}
	if (records && t.n != records) {
		c->res->bad_packs++;
		k->state = CKP_RESIZED;
		say(c, "error",
		    "pack %s: its table lists %zu records, the index %u",
		    k->name, t.n, records);
	}
	seal_table_release(&t);
}

static int check_pack(int64_t id, const char *name, int kind, uint64_t size,
		      uint32_t records, void *arg)
{
	struct ck *c = arg;
	struct backend *be = repo_backend(c->r);
	struct ck_pack *k;
	char path[128];
	uint8_t key[MV_ID_LEN];
	uint64_t real = 0;
	int rc;

	(void)kind;
	(void)records;
	c->res->packs++;
	name_key(name, key);
	if (idset_add(&c->packs, key))
		return -ENOMEM;
	if (c->nplist == c->capplist) {
		size_t cap = c->capplist ? 2 * c->capplist : 256;
		struct ck_pack *n = realloc(c->plist, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		c->plist = n;
		c->capplist = cap;
	}
	k = &c->plist[c->nplist++];
	k->id = id;
	snprintf(k->name, sizeof(k->name), "%s", name);
	k->state = CKP_OK;
	pack_path(name, path, sizeof(path));
	rc = be->ops->stat(be, path, &real, NULL, NULL);
	if (rc == -ENOENT) {
		c->res->bad_packs++;
		k->state = CKP_GONE;
		say(c, "error", "pack '%s' is missing", path);
	} else if (rc) {
		c->res->bad_packs++;
		k->state = CKP_GONE;
		say(c, "error", "pack '%s' cannot be read", path);
	} else if (size && real != size) {
		c->res->bad_packs++;
		k->state = CKP_RESIZED;
		say(c, "error",
		    "pack '%s' has %llu bytes, the index expects "
		    "%llu (truncated or replaced)",
		    path, (unsigned long long)real, (unsigned long long)size);
	} else if (repo_pack_format(c->r) == 2) {
		check_table(c, k, records);
	}
	return 0;
}

static int check_chunk(const uint8_t id[MV_ID_LEN], const struct chunk_loc *loc,
		       void *arg)
{
	struct ck *c = arg;
	struct mv_err err = MV_ERR_INIT;
	struct mv_buf buf = MV_BUF_INIT;
	int rc = 0;

	(void)loc;
	c->res->chunks++;
	if (repo_chunk_read(c->r, id, true, &buf, &err)) {
		if (err.code == -ENOMEM)
			rc = -ENOMEM;
		c->res->bad_chunks++;
		if (idset_add(&c->bad, id))
			rc = -ENOMEM;
		say(c, "error", "%s", mv_err_msg(&err));
	}
	mv_buf_release(&buf);
	return rc;
}

/*
 * Reading data pack by pack.  Records are gathered in index order (pack,
 * offset) and read in large ranges - a whole pack of up to 32 MiB in one
 * request, records less than 1 MiB apart sharing one - through
 * backend_read_many(), so a remote repository costs a request or a few
 * per pack, not one per record (357 GETs for 4 MB over s3:// before).
 * The records are then verified from memory.  At most RD_BATCH_MAX bytes
 * of pack data are held at once.  A range that fails to read and a
 * record that fails to verify are read again alone (repo_chunk_read):
 * that confirms the damage on the server and names pack and offset as
 * before.
 */
#define RD_GAP ((uint64_t)1 << 20)	  /* a gap read rather than split */
#define RD_RANGE_MAX ((uint64_t)32 << 20) /* bytes of one range */
#define RD_BATCH_MAX ((uint64_t)64 << 20) /* bytes held at once */
#define RD_BATCH_RECS 65536		  /* records held at once */

struct rd_ent {
	uint8_t id[MV_ID_LEN];
	struct chunk_loc loc;
	size_t range; /* index of its range in the batch */
};

struct rd_batch {
	struct ck *c;
	struct rd_ent *ents; /* records in index order */
	size_t n, cap;
	uint64_t bytes;	   /* bytes the batch's ranges will read */
	int64_t pack;	   /* pack of the open range (0: none) */
	uint64_t lo, hi;   /* the open range */
	struct mv_buf out; /* decompressed record, reused */
};

/* Whether a record at [off, end) of pack extends the open range. */
static bool rd_extends(const struct rd_batch *b, int64_t pack, uint64_t off,
		       uint64_t end)
{
	return b->pack == pack && off >= b->lo && off <= b->hi + RD_GAP &&
	       MV_MAX(end, b->hi) - b->lo <= RD_RANGE_MAX;
}

static int rd_flush(struct rd_batch *b, struct mv_err *err)
{
	struct ck *c = b->c;
	struct repo *r = c->r;
	struct backend_range *v = NULL;
	char(*paths)[128] = NULL;
	size_t nr = 0, i;
	int rc = 0;

	if (!b->n)
		return 0;
	v = calloc(b->n, sizeof(*v));
	paths = calloc(b->n, sizeof(*paths));
	if (!v || !paths) {
		rc = -ENOMEM;
		goto out;
	}
	b->pack = 0;
	for (i = 0; i < b->n; i++) {
		struct rd_ent *e = &b->ents[i];
		uint64_t end = e->loc.offset + repo_record_span(r, &e->loc);

		if (nr && rd_extends(b, e->loc.pack, e->loc.offset, end)) {
			b->hi = MV_MAX(b->hi, end);
			v[nr - 1].len = (size_t)(b->hi - b->lo);
		} else if (repo_pack_path(r, e->loc.pack, paths[nr],
					  sizeof(paths[nr]), NULL)) {
			b->pack = 0; /* no name: read alone below */
			e->range = SIZE_MAX;
			continue;
		} else {
			v[nr].path = paths[nr];
			v[nr].off = e->loc.offset;
			v[nr].len = (size_t)(end - e->loc.offset);
			b->pack = e->loc.pack;
			b->lo = e->loc.offset;
			b->hi = end;
			nr++;
		}
		e->range = nr - 1;
	}
	for (i = 0; i < nr; i++) {
		v[i].buf = malloc(v[i].len);
		if (!v[i].buf) {
			rc = -ENOMEM;
			goto out;
		}
	}
	/* failures are per range (rc); their records are read alone */
	backend_read_many(repo_backend(r), v, nr, NULL);
	for (i = 0; !rc && i < b->n; i++) {
		struct rd_ent *e = &b->ents[i];
		struct backend_range *g =
			e->range == SIZE_MAX ? NULL : &v[e->range];
		size_t span = repo_record_span(r, &e->loc);
		struct mv_err e2 = MV_ERR_INIT;

		if (g && !g->rc && e->loc.offset - g->off + span <= g->got &&
		    !repo_record_decode(r, e->id, e->loc.type,
					(const uint8_t *)g->buf +
						(e->loc.offset - g->off),
					span, true, &b->out, &e2)) {
			c->res->chunks++;
			continue;
		}
		if (e2.code == -ENOMEM)
			rc = -ENOMEM;
		else
			rc = check_chunk(e->id, &e->loc, c);
	}
out:
	for (i = 0; v && i < nr; i++)
		free(v[i].buf);
	free(v);
	free(paths);
	b->n = 0;
	b->bytes = 0;
	b->pack = 0;
	if (rc == -ENOMEM)
		return mv_err_set(err, rc, "out of memory");
	return rc;
}

/* repo_chunk_fn: gather one record, reading the batch when it is full. */
static int rd_add(const uint8_t id[MV_ID_LEN], const struct chunk_loc *loc,
		  void *arg)
{
	struct rd_batch *b = arg;
	uint64_t end = loc->offset + repo_record_span(b->c->r, loc);
	uint64_t more;

	more = b->n && rd_extends(b, loc->pack, loc->offset, end)
		       ? (end > b->hi ? end - b->hi : 0)
		       : end - loc->offset;
	if (b->n && (b->bytes + more > RD_BATCH_MAX || b->n == RD_BATCH_RECS)) {
		int rc = rd_flush(b, NULL);

		if (rc)
			return rc;
		more = end - loc->offset;
	}
	if (b->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 1024;
		struct rd_ent *n = realloc(b->ents, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		b->ents = n;
		b->cap = cap;
	}
	if (b->n && rd_extends(b, loc->pack, loc->offset, end)) {
		b->hi = MV_MAX(b->hi, end);
	} else {
		b->pack = loc->pack;
		b->lo = loc->offset;
		b->hi = end;
	}
	memcpy(b->ents[b->n].id, id, MV_ID_LEN);
	b->ents[b->n].loc = *loc;
	b->n++;
	b->bytes += more;
	return 0;
}

/* xorshift64*: the random subset only needs to differ between runs. */
static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

/* Pick the packs to read into the front of plist; returns how many. */
static size_t pick_packs(struct ck *c)
{
	const struct check_opts *o = c->o;
	size_t i;

	if (o->read_data)
		return c->nplist;
	if (o->subset_of) {
		size_t k = 0;

		for (i = 0; i < c->nplist; i++) {
			uint8_t b[4] = {0, 0, 0, 0};

			mv_unhex(c->plist[i].name, b, sizeof(b));
			/* pack names are hashes: the groups are even */
			if ((mv_le32(b) % o->subset_of) + 1 == o->subset_n) {
				struct ck_pack t = c->plist[k];

				c->plist[k++] = c->plist[i];
				c->plist[i] = t;
			}
		}
		return k;
	}
	if (o->subset_pct > 0 && c->nplist) {
		uint64_t seed = o->random_seed;
		size_t want =
			(size_t)((double)c->nplist * o->subset_pct / 100.0 +
				 0.999999);

		if (!seed && getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
			seed = (uint64_t)mv_now_ns();
		seed |= 1;
		want = MV_MIN(MV_MAX(want, (size_t)1), c->nplist);
		for (i = 0; i < want; i++) {
			size_t j = i + next_rand(&seed) % (c->nplist - i);
			struct ck_pack t = c->plist[i];

			c->plist[i] = c->plist[j];
			c->plist[j] = t;
		}
		return want;
	}
	return 0;
}

/* The chunks of a pack that is gone are damaged without a read each. */
static int gone_chunk(const uint8_t id[MV_ID_LEN], const struct chunk_loc *loc,
		      void *arg)
{
	struct ck *c = arg;

	(void)loc;
	return idset_add(&c->bad, id);
}

/* Read the chosen packs; a pack found missing or resized is always
 * looked at, so that the files it affects are named even when the sample
 * does not hold it. */
static int read_packs(struct ck *c, struct mv_err *err)
{
	size_t n = pick_packs(c), i;
	struct rd_batch b;
	int rc = 0;

	memset(&b, 0, sizeof(b));
	b.c = c;
	b.out = (struct mv_buf)MV_BUF_INIT;
	if (c->o->read_data) {
		c->res->packs_read = c->nplist;
		rc = repo_chunk_each(c->r, rd_add, &b, err);
	} else {
		for (i = 0; !rc && i < n; i++) {
			c->res->packs_read++;
			rc = index_pack_chunks(repo_index(c->r), c->plist[i].id,
					       rd_add, &b, err);
		}
		for (i = n; !rc && i < c->nplist; i++)
			if (c->plist[i].state == CKP_RESIZED) {
				c->res->packs_read++;
				rc = index_pack_chunks(repo_index(c->r),
						       c->plist[i].id, rd_add,
						       &b, err);
			}
	}
	if (!rc)
		rc = rd_flush(&b, err);
	free(b.ents);
	mv_buf_release(&b.out);
	for (i = 0; !rc && i < c->nplist; i++)
		if (c->plist[i].state == CKP_GONE)
			rc = index_pack_chunks(repo_index(c->r), c->plist[i].id,
					       gone_chunk, c, err);
	return rc == -ENOMEM ? mv_err_set(err, rc, "out of memory") : rc;
}

enum ck_state {
	CK_OK = 0,
	CK_DAMAGED, /* indexed, unreadable (read this run) */
	CK_MISSING, /* not indexed */
	CK_LOST,    /* not indexed, recorded by check --repair */
};

static const char *const state_name[] = {"", "damaged", "missing",
					 "known-lost"};

/* The index meta row recording chunk id as lost exists. */
static bool loss_recorded(struct repo *r, const uint8_t *id)
{
	char key[sizeof(LOSS_PREFIX) + 2 * MV_ID_LEN], v[8];

	memcpy(key, LOSS_PREFIX, sizeof(LOSS_PREFIX) - 1);
	mv_hex(id, MV_ID_LEN, key + sizeof(LOSS_PREFIX) - 1);
	return !index_meta_get(repo_index(r), key, v, sizeof(v), NULL);
}

bool check_loss_known(struct repo *r, const uint8_t id[MV_ID_LEN])
{
	return repo_chunk_find(r, id, NULL, NULL) && loss_recorded(r, id);
}

static int chunk_state(struct ck *c, const uint8_t *id)
{
	if (idset_has(&c->bad, id))
		return CK_DAMAGED;
	if (!repo_chunk_find(c->r, id, NULL, NULL))
		return CK_OK;
	if (loss_recorded(c->r, id)) {
		if (!idset_has(&c->lost, id)) {
			c->res->lost_chunks++;
			idset_add(&c->lost, id);
		}
		return CK_LOST;
	}
	return CK_MISSING;
}

/* Count the entry at path once as affected by damage or by known loss. */
static void count_hit(struct ck *c, const char *path, int st)
{
	c->hits++;
	if (st == CK_LOST)
		c->snap_lost = true;
	else
		c->snap_damaged = true;
	if (path && !strncmp(path, c->last, sizeof(c->last) - 1))
		return;
	snprintf(c->last, sizeof(c->last), "%s", path ? path : "");
	if (st == CK_LOST)
		c->res->lost_files++;
	else
		c->res->affected_files++;
}

static int push_mark(struct ck *c)
{
	if (c->nmarks == c->capmarks) {
		size_t cap = c->capmarks ? 2 * c->capmarks : 64;
		uint64_t *n = realloc(c->marks, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		c->marks = n;
		c->capmarks = cap;
	}
	c->marks[c->nmarks++] = c->hits;
	return 0;
}

static int ck_dir(void *arg, const char *path, const struct tree_ref *ref,
		  const uint8_t key[MV_ID_LEN])
{
	struct ck *c = arg;

	(void)path;
	(void)ref;
	if (idset_has(&c->clean, key))
		return 1;
	return push_mark(c);
}

static int ck_dir_done(void *arg, const char *path, const struct tree_ref *ref,
		       const uint8_t key[MV_ID_LEN])
{
	struct ck *c = arg;

	(void)path;
	(void)ref;
	if (c->marks[--c->nmarks] == c->hits)
		return idset_add(&c->clean, key);
	return 0;
}

static int ck_dir_error(void *arg, const char *path, const struct mv_err *e)
{
	struct ck *c = arg;

	count_hit(c, path, CK_DAMAGED);
	say(c, "error", "snapshot %s: directory '%s': %s", c->snap,
	    path[0] ? path : "/", mv_err_msg(e));
	return 0;
}

static int ck_entry(void *arg, const char *path, const struct tree_entry *e)
{
	struct ck *c = arg;

	(void)path;
	c->res->files += e->type == TREE_REG;
	return 0;
}

static int ck_chunk(void *arg, const char *path, const struct tree_entry *e,
		    enum refs_kind kind, uint32_t i, uint32_t n,
		    const uint8_t id[MV_ID_LEN])
{
	struct ck *c = arg;
	const char *p = path[0] ? path : "/";
	int st;

	(void)e;
	st = chunk_state(c, id);
	if (st == CK_OK)
		return 0;
	count_hit(c, kind == REFS_SNAPSHOT ? NULL : path, st);
	switch (kind) {
	case REFS_SNAPSHOT:
		say(c, st == CK_LOST ? "warning" : "error",
		    "snapshot %s: %s snapshot record; its files are intact, "
		    "but rebuild-index would not list it",
		    c->snap, state_name[st]);
		break;
	case REFS_TREE:
		say(c, st == CK_LOST ? "warning" : "error",
		    "snapshot %s: directory '%s': %s tree object; its "
		    "entries are lost",
		    c->snap, p, state_name[st]);
		return 1;
	case REFS_CONTENT:
		say(c, st == CK_LOST ? "warning" : "error",
		    "snapshot %s: file '%s': %s data (chunk %u of %u); "
		    "reads of it fail with EIO",
		    c->snap, p, state_name[st], i + 1, n);
		return 1;
	case REFS_KEY:
		say(c, st == CK_LOST ? "warning" : "error",
		    "snapshot %s: file '%s': %s key (%u of %u, "
		    "mailvault.keys); an encrypted message cannot be "
		    "decrypted",
		    c->snap, p, state_name[st], i + 1, n);
		return 0;
	}
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

/* nftw() has no argument for its callback. */
static struct ck *exposed_ck;
static size_t exposed_root_len;

static int exposed_one(const char *path, const struct stat *st, int flag,
		       struct FTW *ftw)
{
	struct ck *c = exposed_ck;
	const char *rel = path + exposed_root_len;
	bool r, w;

	(void)ftw;
	if (flag != FTW_F && flag != FTW_D && flag != FTW_DP)
		return 0;
	if (!(st->st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)))
		return 0;
	while (*rel == '/')
		rel++;
	r = st->st_mode & (S_IRGRP | S_IROTH);
	w = st->st_mode & (S_IWGRP | S_IWOTH);
	if (c->res->exposed++ < EXPOSED_NAMED)
		say(c, "warning",
		    "'%s' in the repository is %s by group or others "
		    "(mode %04o): the repository holds the key to its data "
		    "(chmod -R go-rwx '%s')",
		    rel[0] ? rel : ".",
		    r && w ? "readable and writable"
		    : r	   ? "readable"
			   : "writable",
		    (unsigned)(st->st_mode & 07777), path);
	return 0;
}

static void check_exposed(struct ck *c)
{
	struct backend *be = repo_backend(c->r);
	const char *root = be->ops->local_root ? be->ops->local_root(be) : NULL;

	if (!root)
		return;
	exposed_ck = c;
	exposed_root_len = strlen(root);
	nftw(root, exposed_one, 16, FTW_PHYS);
	exposed_ck = NULL;
	if (c->res->exposed > EXPOSED_NAMED)
		say(c, "warning",
		    "%llu more paths in the repository are open to group or "
		    "others",
		    (unsigned long long)(c->res->exposed - EXPOSED_NAMED));
}

static void bad_segment(const char *name, const char *msg, void *arg)
{
	struct ck *c = arg;

	(void)name;
	if (c->fn)
		c->fn("error", msg, c->arg);
}

/* Every commit segment opens, not only those this cache has not
 * replayed: a fresh machine needs them all (docs/FORMAT-2.md 5.3). */
static int check_segments(struct ck *c, struct mv_err *err)
{
	size_t n = 0, bad = 0;
	int rc = repo_segments_verify(c->r, bad_segment, c, &n, &bad, err);

	c->res->segments = n;
	c->res->bad_segments = bad;
	return rc;
}

int check_run(struct repo *r, const struct check_opts *o, check_report_fn fn,
	      void *arg, struct check_result *out, struct mv_err *err)
{
	struct refs_visit v = {
		.dir = ck_dir,
		.entry = ck_entry,
		.chunk = ck_chunk,
		.dir_error = ck_dir_error,
		.dir_done = ck_dir_done,
	};
	struct snapshot *list = NULL;
	struct backend *be = repo_backend(r);
	struct ck c;
	size_t n = 0, i;
	int rc;

	memset(&c, 0, sizeof(c));
	memset(out, 0, sizeof(*out));
	c.r = r;
	c.o = o;
	c.fn = fn;
	c.arg = arg;
	c.res = out;
	v.arg = &c;
	if (o->check_perms)
		check_exposed(&c);
	rc = check_segments(&c, err);
	if (!rc)
		rc = repo_pack_each(r, check_pack, &c, err);
	if (rc == -ENOMEM)
		rc = mv_err_set(err, rc, "out of memory");
	if (!rc) {
		bool was;

		be->ops->list(be, "packs", orphan_dir, &c, NULL);
		/* the packs as the server holds them, not the records a
		 * remote repository's cache fetched before */
		was = repo_record_cache_bypass(r, true);
		rc = read_packs(&c, err);
		repo_record_cache_bypass(r, was);
	}
	if (!rc)
		rc = snapshot_list(r, &list, &n, err);
	for (i = 0; !rc && i < n; i++) {
		char name[160], dir[64], hex[13];

		/* the id too: two snapshots of a job may share a second */
		snapshot_dir_name(&list[i], dir, sizeof(dir));
		mv_hex(list[i].id, 6, hex);
		snprintf(name, sizeof(name), "%s/%s [%s]", list[i].name, dir,
			 hex);
		out->snapshots++;
		c.snap = name;
		c.snap_damaged = c.snap_lost = false;
		c.last[0] = 0;
		c.nmarks = 0;
		rc = refs_walk_snapshot(r, &list[i], &v, err);
		if (rc == -ENOMEM)
			rc = mv_err_set(err, rc, "out of memory");
		out->affected_snapshots += c.snap_damaged;
		out->lost_snapshots += c.snap_lost;
	}
	snapshot_list_free(list, n);
	idset_free(&c.bad);
	idset_free(&c.lost);
	idset_free(&c.clean);
	idset_free(&c.packs);
	free(c.plist);
	free(c.marks);
	if (!rc && out->bad_segments && !out->bad_packs && !out->bad_chunks &&
	    !out->affected_files)
		rc = mv_err_set_damaged(
			err, -EIO,
			"repository '%s' is damaged: %llu of %llu commit "
			"segments do not open (run 'mailvault rebuild-index': "
			"its base segment replaces them)",
			repo_location(r), (unsigned long long)out->bad_segments,
			(unsigned long long)out->segments);
	if (!rc && (out->bad_packs || out->bad_chunks || out->affected_files))
		rc = mv_err_set(err, -EIO,
				"repository '%s' is damaged: %llu "
				"bad packs, %llu bad chunks, %llu files or "
				"directories in %llu snapshots affected (run "
				"'mailvault check --repair')",
				repo_location(r),
				(unsigned long long)out->bad_packs,
				(unsigned long long)out->bad_chunks,
				(unsigned long long)out->affected_files,
				(unsigned long long)out->affected_snapshots);
	return rc;
}

int check_repo(struct repo *r, bool read_data, check_report_fn fn, void *arg,
	       struct check_result *out, struct mv_err *err)
{
	struct check_opts o;

	memset(&o, 0, sizeof(o));
	o.read_data = read_data;
	return check_run(r, &o, fn, arg, out, err);
}

int check_parse_subset(const char *s, struct check_opts *o, struct mv_err *err)
{
	const char *arg = s;
	char *end = NULL;
	double pct;
	unsigned long a, b;

	if (strchr(s, '/')) {
		a = strtoul(s, &end, 10);
		if (end == s || *end != '/')
			goto bad;
		s = end + 1;
		b = strtoul(s, &end, 10);
		if (end == s || *end || !a || a > b || b > UINT32_MAX)
			goto bad;
		o->subset_n = (uint32_t)a;
		o->subset_of = (uint32_t)b;
		return 0;
	}
	pct = strtod(s, &end);
	if (end == s || strcmp(end, "%") || !(pct > 0) || pct > 100)
		goto bad;
	o->subset_pct = pct;
	o->subset_of = 0;
	return 0;
bad:
	return mv_err_set(err, -EINVAL,
			  "bad subset '%s': give N%% (0 < N <= 100) or N/M "
			  "(1 <= N <= M)",
			  arg);
}

int check_loss_record(struct repo *r, const uint8_t id[MV_ID_LEN],
		      const char *why, struct mv_err *err)
{
	char key[sizeof(LOSS_PREFIX) + 2 * MV_ID_LEN], v[160];

	memcpy(key, LOSS_PREFIX, sizeof(LOSS_PREFIX) - 1);
	mv_hex(id, MV_ID_LEN, key + sizeof(LOSS_PREFIX) - 1);
	snprintf(v, sizeof(v), "%lld %s", (long long)(mv_now_ns() / 1000000000),
		 why);
	return index_meta_set(repo_index(r), key, v, err);
}

int check_table_loss_record(struct repo *r, const char *pack,
			    struct mv_err *err)
{
	struct seal_table t;
	char key[sizeof(TABLE_LOSS_PREFIX) + PACK_NAME_LEN], v[64];
	int rc;

	if (repo_pack_format(r) != 2)
		return 0;
	if (!repo_pack_table(r, pack, &t, NULL, NULL)) {
		seal_table_release(&t);
		return 0;
	}
	snprintf(key, sizeof(key), "%s%s", TABLE_LOSS_PREFIX, pack);
	snprintf(v, sizeof(v), "%lld table damaged",
		 (long long)(mv_now_ns() / 1000000000));
	rc = index_meta_set(repo_index(r), key, v, err);
	return rc ? rc : 1;
}
