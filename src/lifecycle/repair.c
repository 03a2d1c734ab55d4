/*
 * repair: make the index agree with the packs after damage
 * (include/lifecycle.h).
 *
 * A corrupt index is rebuilt from the packs.  Then every indexed record
 * is read back and verified (checksum, decompression, keyed id); the rows
 * of records that are gone or damaged are removed, so a read of them
 * fails with EIO instead of returning wrong bytes.  Records that survive
 * in sealed packs the index does not name (an interrupted prune leaves
 * such copies) are taken back.  The ids of the removed rows are recorded
 * as known loss (check_loss_record()), in the same transaction, so that
 * later checks name the files that lost data without calling the
 * repository damaged again.  Snapshots are never removed: the caller runs
 * check afterwards, which names every file that lost data.
 */
#include "lifecycle.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "check.h"
#include "index.h"
#include "lc_int.h"
#include "pack.h"
#include "util.h"

struct rp_pack {
	int64_t id;
	char name[PACK_NAME_LEN + 1];
	uint64_t size;
};

struct rp_row {
	uint8_t id[MV_ID_LEN];
	struct chunk_loc loc;
};

struct repair {
	struct repo *r;
	struct index *ix;
	lifecycle_report_fn fn;
	void *arg;
	struct repair_result *res;
	struct mv_err *err;
	struct rp_pack *packs;
	size_t npacks, cap;
	struct rp_row *rows;
	size_t nrows, caprows;
	struct lc_idset known; /* indexed pack names */
	/* adoption of one unindexed pack */
	int64_t adopt_id;
	const char *adopt_name;
	int adopt_kind;
	uint32_t adopted;
};

static void name_key(const char *name, uint8_t key[MV_ID_LEN])
{
	memset(key, 0, MV_ID_LEN);
	mv_unhex(name, key, PACK_NAME_LEN / 2);
	key[MV_ID_LEN - 1] = 1;
}

static int add_pack(int64_t id, const char *name, int kind, uint64_t size,
		    uint32_t records, void *arg)
{
	struct repair *p = arg;
	uint8_t key[MV_ID_LEN];

	(void)kind;
	(void)records;
	if (p->npacks == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 256;
		void *n = realloc(p->packs, cap * sizeof(*p->packs));

		if (!n)
			return -ENOMEM;
		p->packs = n;
		p->cap = cap;
	}
	p->packs[p->npacks].id = id;
	snprintf(p->packs[p->npacks].name, PACK_NAME_LEN + 1, "%s", name);
	p->packs[p->npacks].size = size;
	p->npacks++;
	name_key(name, key);
	return lc_idset_add(&p->known, key) < 0 ? -ENOMEM : 0;
}

static int add_row(const uint8_t id[MV_ID_LEN], const struct chunk_loc *loc,
		   void *arg)
{
	struct repair *p = arg;

	if (p->nrows == p->caprows) {
		size_t cap = p->caprows ? 2 * p->caprows : 1024;
		void *n = realloc(p->rows, cap * sizeof(*p->rows));

		if (!n)
			return -ENOMEM;
		p->rows = n;
		p->caprows = cap;
	}
	memcpy(p->rows[p->nrows].id, id, MV_ID_LEN);
	p->rows[p->nrows].loc = *loc;
	p->nrows++;
	return 0;
}

static int check_pack(struct repair *p, struct index_batch *b,
		      const struct rp_pack *k)
{
	struct backend *be = repo_backend(p->r);
	struct mv_buf buf = MV_BUF_INIT;
	char path[128], hex[17];
	uint64_t real = 0;
	size_t i, bad = 0;
	int rc;

	pack_path(k->name, path, sizeof(path));
	p->nrows = 0;
	rc = index_pack_chunks(p->ix, k->id, add_row, p, p->err);
	if (rc)
		return rc == -ENOMEM ? mv_err_set(p->err, rc, "out of memory")
				     : rc;
	if (be->ops->stat(be, path, &real, NULL, NULL) == -ENOENT) {
		p->res->packs_missing++;
		p->res->records_dropped += p->nrows;
		lc_say(p->fn, p->arg, "error",
		       "pack '%s' is missing: %zu "
		       "records lost",
		       path, p->nrows);
		for (i = 0; !rc && i < p->nrows; i++)
			rc = check_loss_record(p->r, p->rows[i].id,
					       "pack missing", p->err);
		return rc ? rc : index_pack_delete(p->ix, k->id, p->err);
	}
	for (i = 0; !rc && i < p->nrows; i++) {
		struct mv_err e = MV_ERR_INIT;

		if (!repo_chunk_read(p->r, p->rows[i].id, true, &buf, &e))
			continue;
		if (e.code == -ENOMEM) {
			rc = mv_err_set(p->err, e.code, "out of memory");
			break;
		}
		bad++;
		mv_hex(p->rows[i].id, 8, hex);
		lc_say(p->fn, p->arg, "error", "%s", mv_err_msg(&e));
		rc = index_batch_drop(b, p->rows[i].id, p->err);
		if (!rc)
			rc = check_loss_record(p->r, p->rows[i].id,
					       "record damaged", p->err);
		lc_step("repair drop");
	}
	mv_buf_release(&buf);
	if (rc)
		return rc;
	if (bad || real != k->size) {
		p->res->packs_damaged++;
		p->res->records_dropped += bad;
		lc_say(p->fn, p->arg, "error",
		       "pack '%s' is damaged: %zu of "
		       "%zu records unreadable%s",
		       path, bad, p->nrows,
		       real != k->size ? " (its size changed)" : "");
	}
	if (bad == p->nrows && p->nrows)
		return index_pack_delete(p->ix, k->id, p->err);
	rc = check_table_loss_record(p->r, k->name, p->err);
	if (rc > 0) {
		/* a recorded loss is a change: the session must commit */
		p->res->packs_damaged++;
		lc_say(p->fn, p->arg, "error",
		       "pack '%s': its table is damaged; its readable "
		       "records stay in the index (recorded)",
		       path);
		rc = 0;
	}
	if (!rc && real != k->size)
		rc = index_pack_update(p->ix, k->id, real,
				       (uint32_t)(p->nrows - bad), p->err);
	return rc;
}

/* Take back records of an unindexed sealed pack that the index lacks. */
static int adopt_rec(const struct pack_rec *rec, uint64_t offset,
		     const void *payload, void *arg)
{
	struct repair *p = arg;
	struct chunk_loc loc;

	(void)payload;
	if (index_chunk_find(p->ix, rec->id, NULL, NULL) != -ENOENT)
		return 0;
	if (!p->adopt_id) {
		int rc = index_pack_add(p->ix, p->adopt_name, p->adopt_kind,
					&p->adopt_id, p->err);
		if (rc)
			return rc;
	}
	loc.pack = p->adopt_id;
	loc.offset = offset;
	loc.stored_size = rec->stored_size;
	loc.raw_size = rec->raw_size;
	loc.type = rec->type;
	loc.comp = rec->comp;
	p->adopted++;
	return index_chunk_add(p->ix, rec->id, &loc, p->err);
}

static int scan_noop(const struct pack_rec *rec, uint64_t offset,
		     const void *payload, void *arg)
{
	(void)rec;
	(void)offset;
	(void)payload;
	(void)arg;
	return 0;
}

/* Format 2: a pack whose trailer and table open is whole; its table
 * lists its records. */
static int adopt_table(struct repair *p, const char *name)
{
	struct mv_err e = MV_ERR_INIT;
	struct seal_table t;
	struct pack_rec rec;
	size_t i;
	int rc;

	if (repo_pack_table(p->r, name, &t, NULL, &e))
		return 0;
	p->adopt_kind = t.kind;
	memset(&rec, 0, sizeof(rec));
	for (i = 0, rc = 0; !rc && i < t.n; i++) {
		memcpy(rec.id, t.e[i].id, MV_ID_LEN);
		rec.type = t.e[i].type;
		rec.raw_size = t.e[i].raw;
		rec.stored_size = t.e[i].stored;
		rc = adopt_rec(&rec, t.e[i].offset, NULL, p);
	}
	seal_table_release(&t);
	return rc;
}

/* Format 1: a pack whose footer is valid is whole; scan its records.
 * 1 when adopted, 0 for a pack not trusted, or an error. */
static int adopt_scan(struct repair *p, const char *path)
{
	struct backend *be = repo_backend(p->r);
	struct mv_err e = MV_ERR_INIT;
	uint8_t hdr[PACK_HDR_LEN];
	size_t got = 0;
	bool sealed = false;
	int rc;

	if (be->ops->read_at(be, path, 0, hdr, sizeof(hdr), &got, NULL) ||
	    got != sizeof(hdr))
		return 0;
	/* only a sealed pack is trusted: look at all of it first */
	if (pack_scan(be, path, false, scan_noop, NULL, &sealed, &e) || !sealed)
		return 0;
	p->adopt_kind = (int)mv_le32(hdr + 12);
	rc = pack_scan(be, path, false, adopt_rec, p, &sealed, &e);
	if (rc)
		return rc == -ENOMEM
			       ? mv_err_set(p->err, rc, "out of memory")
			       : mv_err_set(p->err, rc, "%s", mv_err_msg(&e));
	return 1;
}

static int adopt(const char *dir, const char *name, uint64_t size, void *arg)
{
	struct repair *p = arg;
	uint8_t key[MV_ID_LEN];
	char path[128];
	int rc;

	(void)dir;
	if (!lc_is_pack_name(name))
		return 0;
	name_key(name, key);
	if (lc_idset_has(&p->known, key))
		return 0;
	pack_path(name, path, sizeof(path));
	p->adopt_id = 0;
	p->adopt_name = name;
	p->adopted = 0;
	if (repo_pack_format(p->r) == 2) {
		rc = adopt_table(p, name);
		if (rc)
			return rc;
	} else {
		rc = adopt_scan(p, path);
		if (rc <= 0)
			return rc;
	}
	if (p->adopt_id) {
		rc = index_pack_update(p->ix, p->adopt_id, size, p->adopted,
				       p->err);
		p->res->records_adopted += p->adopted;
		lc_say(p->fn, p->arg, "info",
		       "took back %u records from "
		       "pack '%s', which the index did not name",
		       p->adopted, path);
		name_key(name, key);
		if (!rc && lc_idset_add(&p->known, key) < 0)
			rc = mv_err_set(p->err, -ENOMEM, "out of memory");
	}
	return rc;
}

int lifecycle_repair(struct repo *r, lifecycle_report_fn fn, void *arg,
		     struct repair_result *out, struct mv_err *err)
{
	struct repo_writer *w = NULL;
	struct index_batch *b = NULL;
	struct repair p;
	size_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(&p, 0, sizeof(p));
	p.r = r;
	p.fn = fn;
	p.arg = arg;
	p.res = out;
	p.err = err;
	if (repo_get_config(r)->flags & REPO_APPEND_ONLY)
		return mv_err_set(err, -EPERM,
				  "repository '%s' is "
				  "append-only: repair refuses to change the "
				  "index (check without --repair reports the "
				  "damage)",
				  repo_location(r));
	if (repo_index(r)) {
		struct mv_err e = MV_ERR_INIT;

		if (index_quick_check(repo_index(r), &e)) {
			lc_say(fn, arg, "error",
			       "%s; rebuilding the index "
			       "from the packs",
			       mv_err_msg(&e));
			out->index_rebuilt = true;
		}
	} else {
		out->index_rebuilt = true;
	}
	if (out->index_rebuilt) {
		struct rebuild_result rb;

		rc = lifecycle_rebuild_index(r, fn, arg, &rb, err);
		if (rc)
			return rc;
	}
	p.ix = repo_index(r);
	rc = index_pack_each(p.ix, add_pack, &p, err);
	if (rc == -ENOMEM)
		rc = mv_err_set(err, rc, "out of memory");
	if (!rc)
		rc = repo_writer_begin(r, &w, err);
	if (rc)
		goto out;
	rc = index_batch_new(p.ix, &b, err);
	for (i = 0; !rc && i < p.npacks; i++)
		rc = check_pack(&p, b, &p.packs[i]);
	if (!rc && out->records_dropped)
		rc = lc_list_pack_files(r, adopt, &p, err);
	index_batch_free(b);
	if (rc) {
		repo_writer_abort(w);
		goto out;
	}
	lc_step("repair commit");
	/* nothing dropped: committing would only publish the same index
	 * again, as a new generation when it is sealed */
	if (!out->packs_missing && !out->packs_damaged &&
	    !out->records_dropped) {
		repo_writer_abort(w);
		goto out;
	}
	rc = repo_writer_finish(w, err);
out:
	lc_steps_report();
	free(p.packs);
	free(p.rows);
	lc_idset_free(&p.known);
	return rc;
}
