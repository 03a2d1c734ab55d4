/*
 * prune: give back the space of forgotten snapshots (include/lifecycle.h).
 *
 * Phases, each safe to be killed in (repo.h invariant (4)):
 *  1. Look: every indexed pack exists with its indexed size, else refuse.
 *  2. Remove orphans: pack files the index does not name (an interrupted
 *     backup or an earlier prune killed after its commit) and leftover
 *     temporary files, once older than the grace period.  Nothing reads
 *     them; the writer lock keeps new sessions out, and the grace period
 *     protects a backup that still writes after its lock was broken.
 *  3. Mark: every reference of every listed snapshot (refs.h: records,
 *     trees, content, keys held in xattrs), each tree walked once (a
 *     seen-set keeps shared trees from being walked again), into a set of
 *     live ids.  This set is the only per-chunk memory.
 *  4. Sweep, one pack at a time from the index: live bytes per pack.
 *  5. Plan: wholly unused packs go; partly used ones are repacked, the
 *     emptiest first, until the unused bytes left are within max_unused
 *     percent of the live bytes (restic's --max-unused).
 *  6. Copy the live records of those packs as they are stored into new
 *     packs of one write session; in its transaction point the chunks at
 *     the copies and drop the rows and packs that go; seal and sync the
 *     new packs, then commit.
 *  7. Only then delete the old pack files.  Killed before the commit: the
 *     new packs are orphans (phase 2 of the next prune).  Killed after:
 *     the old ones are.
 */
#include "lifecycle.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "catseg.h"
#include "check.h"
#include "hash.h"
#include "index.h"
#include "lc_int.h"
#include "pack.h"
#include "refs.h"
#include "snapshot.h"
#include "tree.h"
#include "util.h"

enum pk_action {
	PK_KEEP = 0,
	PK_DELETE,
	PK_REPACK,
};

struct pk {
	int64_t id;
	char name[PACK_NAME_LEN + 1];
	uint64_t size;	/* indexed size */
	uint64_t live;	/* bytes of live records (headers included) */
	uint64_t recs;	/* records indexed */
	uint64_t lrecs; /* live records */
	int action;	/* enum pk_action */
};

struct prune {
	struct repo *r;
	struct index *ix;
	const struct prune_opts *o;
	lifecycle_report_fn fn;
	void *arg;
	struct prune_result *res;
	struct mv_err *err;
	struct pk *packs;
	size_t npacks, cap;
	struct lc_idset live;	/* chunk ids the snapshots reach */
	struct lc_idset walked; /* trees walked (digest of their chunk ids) */
	struct lc_idset known;	/* pack names (as ids) in the index */
	struct lc_idset tombed; /* snapshot ids some tombstone names */
	uint64_t live_hits;	/* live ids found in the index */
	uint8_t (*dead_snaps)[MV_ID_LEN]; /* to tombstone */
	size_t ndead, deadcap;
	struct pk *cur;	      /* pack of the sweep callback */
	char emptied[256][8]; /* packs/<xx> directories that lost a file */
	size_t nemptied;
};

/* Remember a pack directory that lost a file, to drop it once empty. */
static void note_emptied(struct prune *p, const char *dir)
{
	size_t i;

	for (i = 0; i < p->nemptied; i++)
		if (!strcmp(p->emptied[i], dir + 6))
			return;
	if (p->nemptied < 256 && strlen(dir + 6) < sizeof(p->emptied[0]))
		strcpy(p->emptied[p->nemptied++], dir + 6);
}

static void name_key(const char *name, uint8_t key[MV_ID_LEN])
{
	memset(key, 0, MV_ID_LEN);
	mv_unhex(name, key, PACK_NAME_LEN / 2);
	key[MV_ID_LEN - 1] = 1; /* never all zero */
}

static int add_pack(int64_t id, const char *name, int kind, uint64_t size,
		    uint32_t records, void *arg)
{
	struct prune *p = arg;
	uint8_t key[MV_ID_LEN];
	struct pk *k;

	(void)kind;
	if (p->npacks == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 256;
		struct pk *n = realloc(p->packs, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		p->packs = n;
		p->cap = cap;
	}
	k = &p->packs[p->npacks++];
	memset(k, 0, sizeof(*k));
	k->id = id;
	snprintf(k->name, sizeof(k->name), "%s", name);
	k->size = size;
	k->recs = records;
	name_key(name, key);
	return lc_idset_add(&p->known, key) < 0 ? -ENOMEM : 0;
}

/* Phase 1. */
static int look(struct prune *p)
{
	struct backend *be = repo_backend(p->r);
	char path[128];
	size_t i;
	int rc;

	rc = index_pack_each(p->ix, add_pack, p, p->err);
	if (rc)
		return rc == -ENOMEM ? mv_err_set(p->err, rc, "out of memory")
				     : rc;
	for (i = 0; i < p->npacks; i++) {
		uint64_t real = 0;

		pack_path(p->packs[i].name, path, sizeof(path));
		rc = be->ops->stat(be, path, &real, NULL, NULL);
		if (rc || real != p->packs[i].size)
			return mv_err_set(p->err, -EIO,
					  "pack '%s' is %s; prune "
					  "refuses to work on a damaged "
					  "repository (run 'mailvault check', "
					  "then 'mailvault check --repair')",
					  path,
					  rc ? "missing"
					     : "truncated or "
					       "replaced");
		p->res->packs++;
		p->res->pack_bytes += real;
	}
	return 0;
}

/* Phase 2: a file under packs/ that is not an indexed pack. */
static int orphan(const char *dir, const char *name, uint64_t size, void *arg)
{
	struct prune *p = arg;
	struct backend *be = repo_backend(p->r);
	char path[256];

	if (lc_is_pack_name(name)) {
		uint8_t key[MV_ID_LEN];

		name_key(name, key);
		if (lc_idset_has(&p->known, key))
			return 0;
	} else if (!strstr(name, ".tmp")) {
		lc_say(p->fn, p->arg, "warning",
		       "'%s/%s' is not a pack "
		       "file; left alone",
		       dir, name);
		return 0;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (p->o->orphan_grace > 0) {
		int64_t mtime = 0;

		/* a file that cannot be stat'ed is young: never guess old */
		if (be->ops->stat(be, path, NULL, &mtime, NULL) ||
		    mv_now_ns() - mtime <
			    p->o->orphan_grace * (int64_t)1000000000) {
			p->res->young_orphans++;
			lc_say(p->fn, p->arg, "info",
			       "leaving '%s' (%s, written less than %lld "
			       "s ago: a backup may still be writing it)",
			       path,
			       lc_is_pack_name(name) ? "not in the index"
						     : "temporary",
			       (long long)p->o->orphan_grace);
			return 0;
		}
	}
	p->res->orphans++;
	p->res->orphan_bytes += size;
	lc_say(p->fn, p->arg, "info", "%s '%s' (%llu bytes, %s)",
	       p->o->dry_run ? "would remove" : "removing", path,
	       (unsigned long long)size,
	       lc_is_pack_name(name) ? "not in the index" : "leftover");
	if (p->o->dry_run)
		return 0;
	lc_step("remove orphan");
	be->ops->remove(be, path, NULL);
	if (!strncmp(dir, "packs/", 6))
		note_emptied(p, dir);
	return 0;
}

/* Phase 3: every reference of every listed snapshot (refs.h), each
 * directory's tree object walked once. */
struct mark_ctx {
	struct prune *p;
	const char *snap;
};

static int mark_dir(void *arg, const char *path, const struct tree_ref *ref,
		    const uint8_t key[MV_ID_LEN])
{
	struct mark_ctx *m = arg;
	int rc = lc_idset_add(&m->p->walked, key);

	(void)path;
	(void)ref;
	if (rc < 0)
		return mv_err_set(m->p->err, -ENOMEM, "out of memory");
	return rc ? 0 : 1; /* 1: walked before, skip */
}

static int mark_chunk(void *arg, const char *path, const struct tree_entry *e,
		      enum refs_kind kind, uint32_t i, uint32_t n,
		      const uint8_t id[MV_ID_LEN])
{
	struct mark_ctx *m = arg;

	(void)e;
	(void)i;
	(void)n;
	if (lc_idset_add(&m->p->live, id) < 0)
		return mv_err_set(m->p->err, -ENOMEM, "out of memory");
	/* A directory check --repair recorded as lost cannot be read: what
	 * only it referenced is unreachable, and prune goes on (refusing
	 * would send the user back to check, which accepts the
	 * repository). */
	if (kind == REFS_TREE && check_loss_known(m->p->r, id)) {
		m->p->res->lost_dirs++;
		lc_say(m->p->fn, m->p->arg, "warning",
		       "snapshot %s: directory '%s' was lost to damage that "
		       "check --repair recorded; what only it referenced "
		       "goes",
		       m->snap, path[0] ? path : "/");
		return 1;
	}
	return 0;
}

static int mark_dir_error(void *arg, const char *path, const struct mv_err *e)
{
	struct mark_ctx *m = arg;

	return mv_err_set(m->p->err, -EIO,
			  "snapshot %s: directory '%s' cannot be read (%s); "
			  "prune refuses to work on a damaged repository "
			  "(run 'mailvault check')",
			  m->snap, path[0] ? path : "/", mv_err_msg(e));
}

static int mark(struct prune *p)
{
	struct snapshot *list = NULL;
	struct mark_ctx m = {p, NULL};
	const struct refs_visit v = {
		.dir = mark_dir,
		.chunk = mark_chunk,
		.dir_error = mark_dir_error,
		.arg = &m,
	};
	size_t n = 0, i;
	int rc;

	rc = snapshot_list(p->r, &list, &n, p->err);
	for (i = 0; !rc && i < n; i++) {
		char name[128], dir[64];

		snapshot_dir_name(&list[i], dir, sizeof(dir));
		snprintf(name, sizeof(name), "%s/%s", list[i].name, dir);
		m.snap = name;
		rc = refs_walk_snapshot(p->r, &list[i], &v, p->err);
		p->res->snapshots++;
	}
	snapshot_list_free(list, n);
	return rc;
}

/* Records that no tree names but that must stay: dictionaries,
 * tombstones, and types this version does not know. */
static bool always_live(int type)
{
	return type != REC_DATA && type != REC_TREE && type != REC_SNAPSHOT;
}

static int sweep_chunk(const uint8_t id[MV_ID_LEN], const struct chunk_loc *loc,
		       void *arg)
{
	struct prune *p = arg;
	bool listed = lc_idset_has(&p->live, id);

	if (listed)
		p->live_hits++;
	if (!listed && !always_live(loc->type))
		return 0;
	p->cur->live += repo_record_span(p->r, loc);
	p->cur->lrecs++;
	return 0;
}

/* Phase 4 and 5. */
static int cmp_unused(const void *a, const void *b)
{
	const struct pk *x = *(const struct pk *const *)a;
	const struct pk *y = *(const struct pk *const *)b;
	double fx = (double)(x->size - x->live) / (double)(x->size + 1);
	double fy = (double)(y->size - y->live) / (double)(y->size + 1);

	return fx < fy ? 1 : fx > fy ? -1 : 0;
}

static uint64_t pack_unused(const struct prune *p, const struct pk *k)
{
	/* format 2: table (about 50 bytes a record, id incompressible)
	 * and trailer, counted generously so no live pack looks unused */
	uint64_t used = repo_pack_format(p->r) == 2
				? k->live + (uint64_t)k->recs * 56 + 256
				: k->live + PACK_HDR_LEN + PACK_FOOTER_LEN;

	return k->size > used ? k->size - used : 0;
}

static int plan(struct prune *p)
{
	struct pk **cand = NULL;
	uint64_t unused = 0, allowed;
	size_t i, nc = 0;

	for (i = 0; i < p->npacks; i++) {
		int rc;

		p->cur = &p->packs[i];
		rc = index_pack_chunks(p->ix, p->packs[i].id, sweep_chunk, p,
				       p->err);
		if (rc)
			return rc;
		p->res->live_bytes += p->packs[i].live;
	}
	p->res->live_chunks = p->live.n;
	p->res->missing_chunks = p->live.n - p->live_hits;
	if (p->res->missing_chunks)
		lc_say(p->fn, p->arg, "warning",
		       "%llu chunks the snapshots "
		       "reference are not in the index (damage that check "
		       "--repair recorded; the files read with EIO)",
		       (unsigned long long)p->res->missing_chunks);
	cand = calloc(p->npacks ? p->npacks : 1, sizeof(*cand));
	if (!cand)
		return mv_err_set(p->err, -ENOMEM, "out of memory");
	for (i = 0; i < p->npacks; i++) {
		struct pk *k = &p->packs[i];

		if (!k->lrecs) {
			k->action = PK_DELETE;
			p->res->deleted_packs++;
			p->res->deleted_bytes += k->size;
			continue;
		}
		unused += pack_unused(p, k);
		if (pack_unused(p, k))
			cand[nc++] = k;
	}
	p->res->unused_bytes = p->res->pack_bytes - p->res->live_bytes;
	allowed = p->o->max_unused < 0 ? UINT64_MAX
				       : (uint64_t)((double)p->res->live_bytes *
						    p->o->max_unused / 100.0);
	qsort(cand, nc, sizeof(*cand), cmp_unused);
	for (i = 0; i < nc && unused > allowed; i++) {
		cand[i]->action = PK_REPACK;
		unused -= pack_unused(p, cand[i]);
		p->res->repacked_packs++;
		p->res->repacked_bytes += cand[i]->size;
		p->res->moved_records += cand[i]->lrecs;
		p->res->moved_bytes += cand[i]->live;
	}
	free(cand);
	p->res->after_unused = unused;
	/* what goes, pack by pack (prune -v, --dry-run -v) */
	for (i = 0; i < p->npacks; i++) {
		const struct pk *k = &p->packs[i];

		if (k->action == PK_DELETE || k->action == PK_REPACK)
			lc_say(p->fn, p->arg, "info",
			       "%s pack '%s' (%llu bytes, %llu of %llu "
			       "records live)",
			       k->action == PK_DELETE
				       ? (p->o->dry_run ? "would delete"
							: "deleting")
				       : (p->o->dry_run ? "would repack"
							: "repacking"),
			       k->name, (unsigned long long)k->size,
			       (unsigned long long)k->lrecs,
			       (unsigned long long)k->recs);
	}
	return 0;
}

/* Dead snapshot records without a tombstone. */
static int find_tomb(const uint8_t id[MV_ID_LEN], const struct chunk_loc *loc,
		     void *arg)
{
	struct lc_idset *ids = arg;

	(void)loc;
	return lc_idset_add(ids, id) < 0 ? -ENOMEM : 0;
}

static int find_dead_snap(const uint8_t id[MV_ID_LEN],
			  const struct chunk_loc *loc, void *arg)
{
	struct prune *p = arg;
	int rc;

	(void)loc;
	if (lc_idset_has(&p->tombed, id))
		return 0;
	rc = index_snapshot_has(p->ix, id, p->err);
	if (rc)
		return rc < 0 ? rc : 0;
	if (p->ndead == p->deadcap) {
		size_t cap = p->deadcap ? 2 * p->deadcap : 64;
		void *n = realloc(p->dead_snaps, cap * MV_ID_LEN);

		if (!n)
			return -ENOMEM;
		p->dead_snaps = n;
		p->deadcap = cap;
	}
	memcpy(p->dead_snaps[p->ndead++], id, MV_ID_LEN);
	return 0;
}

static int find_forgotten(struct prune *p)
{
	struct lc_idset tombs = {NULL, 0, 0};
	struct mv_buf buf = MV_BUF_INIT;
	size_t i;
	int rc;

	rc = index_chunk_each_type(p->ix, REC_TOMBSTONE, find_tomb, &tombs,
				   p->err);
	for (i = 0; !rc && i < tombs.size; i++) {
		if (!tombs.slots[i][0] &&
		    !memcmp(tombs.slots[i], tombs.slots[i] + 1, MV_ID_LEN - 1))
			continue; /* free slot */
		rc = repo_chunk_read(p->r, tombs.slots[i], false, &buf, p->err);
		if (!rc)
			rc = lc_tombstone_decode(buf.data, buf.len, &p->tombed);
		if (rc == -EBADMSG)
			rc = 0;
	}
	if (!rc)
		rc = index_chunk_each_type(p->ix, REC_SNAPSHOT, find_dead_snap,
					   p, p->err);
	if (rc == -ENOMEM)
		mv_err_set(p->err, rc, "out of memory");
	lc_idset_free(&tombs);
	mv_buf_release(&buf);
	return rc;
}

static int put_tombstone(struct prune *p, struct repo_writer *w)
{
	struct mv_buf buf = MV_BUF_INIT;
	uint8_t id[MV_ID_LEN];
	int rc;

	if (!p->ndead)
		return 0;
	if (lc_tombstone_encode((const uint8_t(*)[MV_ID_LEN])p->dead_snaps,
				p->ndead, &buf))
		return mv_err_set(p->err, -ENOMEM, "out of memory");
	repo_chunk_id(p->r, buf.data, buf.len, id);
	rc = repo_writer_put(w, (enum rec_type)REC_TOMBSTONE, id, buf.data,
			     buf.len, NULL, 0, NULL, p->err);
	mv_buf_release(&buf);
	if (!rc)
		p->res->tombstoned += p->ndead;
	return rc;
}

/* Phase 6, one pack: collect its rows, copy the live records. */
struct row {
	uint8_t id[MV_ID_LEN];
	struct chunk_loc loc;
};

struct rows {
	struct row *v;
	size_t n, cap;
};

static int collect_row(const uint8_t id[MV_ID_LEN], const struct chunk_loc *loc,
		       void *arg)
{
	struct rows *rs = arg;

	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? 2 * rs->cap : 256;
		struct row *n = realloc(rs->v, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		rs->v = n;
		rs->cap = cap;
	}
	memcpy(rs->v[rs->n].id, id, MV_ID_LEN);
	rs->v[rs->n].loc = *loc;
	rs->n++;
	return 0;
}

static int read_record(struct repo *r, const char *path, const struct row *row,
		       struct mv_buf *buf, struct mv_err *err)
{
	struct backend *be = repo_backend(r);
	size_t need = repo_record_span(r, &row->loc), got = 0;

	mv_buf_reset(buf);
	if (mv_buf_reserve(buf, need))
		return mv_err_set(err, -ENOMEM, "out of memory");
	while (got < need) {
		size_t k = 0;
		int rc;

		rc = be->ops->read_at(be, path, row->loc.offset + got,
				      buf->data + got, need - got, &k, err);
		if (rc)
			return rc;
		if (!k)
			break;
		got += k;
	}
	if (got < need ||
	    repo_record_verify(r, row->id, &row->loc, buf->data, need, NULL))
		return mv_err_set(err, -EIO,
				  "pack '%s': the record at offset "
				  "%llu is damaged; prune stops (run "
				  "'mailvault check --repair')",
				  path, (unsigned long long)row->loc.offset);
	buf->len = need;
	return 0;
}

static int repack(struct prune *p, struct repo_writer *w, struct index_batch *b,
		  const struct pk *k)
{
	struct rows rs = {NULL, 0, 0};
	struct mv_buf buf = MV_BUF_INIT;
	struct chunk_loc loc;
	char path[128];
	size_t i;
	int rc;

	pack_path(k->name, path, sizeof(path));
	rc = index_pack_chunks(p->ix, k->id, collect_row, &rs, p->err);
	if (rc == -ENOMEM)
		rc = mv_err_set(p->err, rc, "out of memory");
	for (i = 0; !rc && i < rs.n; i++) {
		if (!lc_idset_has(&p->live, rs.v[i].id) &&
		    !always_live(rs.v[i].loc.type))
			continue;
		rc = read_record(p->r, path, &rs.v[i], &buf, p->err);
		if (!rc)
			rc = repo_writer_copy(w, rs.v[i].id, &rs.v[i].loc,
					      buf.data, &loc, p->err);
		if (!rc)
			rc = index_batch_move(b, rs.v[i].id, &loc, p->err);
		lc_step("copy record");
	}
	if (!rc) {
		p->res->dropped_records += k->recs - k->lrecs;
		rc = index_pack_delete(p->ix, k->id, p->err);
	}
	free(rs.v);
	mv_buf_release(&buf);
	return rc;
}

/* What stats shows after a prune. */
static int note(struct prune *p)
{
	const struct prune_result *res = p->res;
	char v[128];

	snprintf(v, sizeof(v), "%lld %llu %llu", (long long)mv_now_ns(),
		 (unsigned long long)(res->pack_bytes + res->orphan_bytes -
				      res->after_bytes),
		 (unsigned long long)res->after_unused);
	return index_meta_set(p->ix, "last-prune", v, p->err);
}

static int rewrite(struct prune *p)
{
	struct repo_writer *w = NULL;
	struct index_batch *b = NULL;
	size_t i;
	int rc;

	rc = repo_writer_begin(p->r, &w, p->err);
	if (rc)
		return rc;
	rc = index_batch_new(p->ix, &b, p->err);
	if (!rc)
		rc = put_tombstone(p, w);
	for (i = 0; !rc && i < p->npacks; i++) {
		const struct pk *k = &p->packs[i];

		if (k->action == PK_REPACK) {
			rc = repack(p, w, b, k);
		} else if (k->action == PK_DELETE) {
			p->res->dropped_records += k->recs;
			rc = index_pack_delete(p->ix, k->id, p->err);
		}
	}
	index_batch_free(b);
	if (!rc)
		rc = note(p);
	if (rc) {
		repo_writer_abort(w);
		return rc;
	}
	lc_step("before commit");
	rc = repo_writer_finish(w, p->err);
	if (!rc)
		lc_step("after commit");
	return rc;
}

/* Phase 7. */
static void remove_old(struct prune *p)
{
	struct backend *be = repo_backend(p->r);
	char path[128], dir[64];
	size_t i;

	for (i = 0; i < p->npacks; i++) {
		if (p->packs[i].action == PK_KEEP)
			continue;
		pack_path(p->packs[i].name, path, sizeof(path));
		be->ops->remove(be, path, NULL);
		snprintf(dir, sizeof(dir), "packs/%.2s", p->packs[i].name);
		be->ops->sync_dir(be, dir, NULL);
		note_emptied(p, dir);
		lc_step("remove old pack");
	}
	/* An empty packs/<xx> costs a directory entry and a listing round
	 * trip on a remote; backup makes it again when it needs it.  Only
	 * the writer lock holder creates packs, so nothing races this. */
	for (i = 0; i < p->nemptied; i++) {
		snprintf(dir, sizeof(dir), "packs/%s", p->emptied[i]);
		be->ops->remove(be, dir, NULL);
	}
	if (p->nemptied)
		be->ops->sync_dir(be, "packs", NULL);
}

int lifecycle_prune(struct repo *r, const struct prune_opts *o,
		    lifecycle_report_fn fn, void *arg, struct prune_result *out,
		    struct mv_err *err)
{
	struct prune p;
	struct repo_totals tot;
	unsigned catsegs;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(&p, 0, sizeof(p));
	p.r = r;
	p.ix = repo_index(r);
	p.o = o;
	p.fn = fn;
	p.arg = arg;
	p.res = out;
	p.err = err;
	if (repo_get_config(r)->flags & REPO_APPEND_ONLY)
		return mv_err_set(err, -EPERM,
				  "repository '%s' is "
				  "append-only: prune refuses to delete "
				  "anything (turn it off with 'mailvault "
				  "config REPO append-only off' where that is "
				  "allowed)",
				  repo_location(r));
	rc = look(&p);
	if (!rc)
		rc = lc_list_pack_files(r, orphan, &p, err);
	if (!rc)
		rc = mark(&p);
	if (!rc)
		rc = plan(&p);
	if (!rc)
		rc = find_forgotten(&p);
	if (rc)
		goto out;
	out->after_bytes = out->pack_bytes - out->deleted_bytes -
			   out->repacked_bytes + out->moved_bytes;
	if (o->dry_run)
		goto out;
	rc = rewrite(&p);
	if (rc)
		goto out;
	remove_old(&p);
	/* the catalogue in the repository: one base segment for the kept
	 * snapshots in place of the segments before it (catseg.h) */
	rc = catseg_prune(r, &catsegs, err);
	if (rc)
		goto out;
	if (!repo_totals(r, &tot, NULL))
		out->after_bytes = tot.pack_bytes;
out:
	lc_steps_report();
	free(p.packs);
	free(p.dead_snaps);
	lc_idset_free(&p.live);
	lc_idset_free(&p.walked);
	lc_idset_free(&p.known);
	lc_idset_free(&p.tombed);
	return rc;
}

int lifecycle_tombstone_forgotten(struct repo *r, uint64_t *out_n,
				  struct mv_err *err)
{
	struct prune_result res;
	struct prune_opts o = {false, 0, 0};
	struct repo_writer *w = NULL;
	struct prune p;
	int rc;

	memset(&p, 0, sizeof(p));
	memset(&res, 0, sizeof(res));
	p.r = r;
	p.ix = repo_index(r);
	p.o = &o;
	p.res = &res;
	p.err = err;
	*out_n = 0;
	rc = find_forgotten(&p);
	if (!rc && p.ndead) {
		rc = repo_writer_begin(r, &w, err);
		if (!rc)
			rc = put_tombstone(&p, w);
		if (!rc)
			rc = repo_writer_finish(w, err);
		else
			repo_writer_abort(w);
	}
	if (!rc)
		*out_n = res.tombstoned;
	free(p.dead_snaps);
	lc_idset_free(&p.tombed);
	return rc;
}
