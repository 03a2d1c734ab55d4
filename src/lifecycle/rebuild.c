/*
 * rebuild: a new index.db from the packs alone (include/lifecycle.h).
 *
 * Every file under packs/ is scanned; a pack whose footer is valid (it
 * was sealed, so its records were synced before any index named them)
 * gives its records as chunks.  A pack without one - half written when a
 * backup was killed, truncated, damaged - is reported and not trusted.
 * Snapshot records become snapshots unless a tombstone names them: forget
 * leaves tombstones so that a rebuild does not bring forgotten snapshots
 * back.  Dictionaries (REC_DICT) are listed again under zstd's id.  The index
 * is built in "index.db.rebuild" and renamed over index.db only when complete:
 * killed at any point, the old index (or none) stays and rebuild-index can run
 * again.
 *
 * Format 2 packs (include/pack.h) are read by their trailer and table,
 * which say everything the index needs; only the few records rebuild
 * must look into (snapshots, tombstones, dictionaries) are opened.  A
 * pack whose trailer or table does not open is not trusted.
 */
#include "lifecycle.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "backend.h"
#include "index.h"
#include "lc_int.h"
#include "pack.h"
#include "seal.h"
#include "snapshot.h"
#include "util.h"

struct snap_rec {
	uint8_t id[MV_ID_LEN];
	void *data;
	size_t len;
};

struct rb_rec {
	uint8_t id[MV_ID_LEN];
	struct chunk_loc loc;
};

struct rb_dict {
	uint8_t id[MV_ID_LEN]; /* chunk id of the record */
	uint32_t dict_id;      /* zstd's id of the dictionary */
};

struct rebuild {
	struct repo *r;
	struct index *nix;
	lifecycle_report_fn fn;
	void *arg;
	struct rebuild_result *res;
	struct mv_err *err;
	char (*names)[PACK_NAME_LEN + 1]; /* pack files found */
	size_t nnames, capnames;
	struct rb_rec *recs; /* records of the pack being scanned */
	size_t nrecs, caprecs;
	struct snap_rec *snaps;
	size_t nsnaps, capsnaps;
	size_t pack_snaps; /* snapshots taken from the current pack */
	struct lc_idset tombed;
	struct rb_dict *dicts; /* dictionaries (REC_DICT) found */
	size_t ndicts, capdicts;
	size_t pack_dicts;	    /* dictionaries from the current pack */
	struct lc_idset pack_tombs; /* tombstones of the current pack */
};

static int add_name(const char *dir, const char *name, uint64_t size, void *arg)
{
	struct rebuild *b = arg;

	(void)size;
	if (!lc_is_pack_name(name)) {
		b->res->leftovers++;
		lc_say(b->fn, b->arg, "info",
		       "'%s/%s' is not a pack (%s); "
		       "ignored",
		       dir, name,
		       strstr(name, ".tmp") ? "left by an interrupted write"
					    : "unknown file");
		return 0;
	}
	if (b->nnames == b->capnames) {
		size_t cap = b->capnames ? 2 * b->capnames : 256;
		void *n = realloc(b->names, cap * sizeof(*b->names));

		if (!n)
			return -ENOMEM;
		b->names = n;
		b->capnames = cap;
	}
	snprintf(b->names[b->nnames++], PACK_NAME_LEN + 1, "%s", name);
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

static int scan_rec(const struct pack_rec *rec, uint64_t offset,
		    const void *payload, void *arg);

/* Snapshot and tombstone records are small; one written compressed is
 * decompressed and handled as if it were stored raw. */
static int take_compressed(struct rebuild *b, const struct pack_rec *rec,
			   const void *payload)
{
	struct pack_rec raw = *rec;
	void *buf = malloc(rec->raw_size ? rec->raw_size : 1);
	size_t n;
	int rc;

	if (!buf)
		return -ENOMEM;
	n = ZSTD_decompress(buf, rec->raw_size, payload, rec->stored_size);
	if (ZSTD_isError(n) || n != rec->raw_size) {
		free(buf);
		lc_say(b->fn, b->arg, "warning",
		       "a record of type %u cannot "
		       "be decompressed; ignored",
		       rec->type);
		return 0;
	}
	raw.comp = PACK_COMP_NONE;
	raw.stored_size = rec->raw_size;
	b->nrecs--; /* scan_rec adds it again */
	rc = scan_rec(&raw, b->recs[b->nrecs].loc.offset, buf, b);
	if (!rc) {
		b->recs[b->nrecs - 1].loc.comp = rec->comp;
		b->recs[b->nrecs - 1].loc.stored_size = rec->stored_size;
	}
	free(buf);
	return rc;
}

static int scan_rec(const struct pack_rec *rec, uint64_t offset,
		    const void *payload, void *arg)
{
	struct rebuild *b = arg;
	struct rb_rec *x;

	if (b->nrecs == b->caprecs) {
		size_t cap = b->caprecs ? 2 * b->caprecs : 1024;
		void *n = realloc(b->recs, cap * sizeof(*b->recs));

		if (!n)
			return -ENOMEM;
		b->recs = n;
		b->caprecs = cap;
	}
	x = &b->recs[b->nrecs++];
	memcpy(x->id, rec->id, MV_ID_LEN);
	x->loc.pack = 0;
	x->loc.offset = offset;
	x->loc.stored_size = rec->stored_size;
	x->loc.raw_size = rec->raw_size;
	x->loc.type = rec->type;
	x->loc.comp = rec->comp;
	if (rec->type == REC_DICT && rec->comp == PACK_COMP_NONE) {
		if (b->ndicts == b->capdicts) {
			size_t cap = b->capdicts ? 2 * b->capdicts : 8;
			void *n = realloc(b->dicts, cap * sizeof(*b->dicts));

			if (!n)
				return -ENOMEM;
			b->dicts = n;
			b->capdicts = cap;
		}
		memcpy(b->dicts[b->ndicts].id, rec->id, MV_ID_LEN);
		b->dicts[b->ndicts].dict_id =
			ZSTD_getDictID_fromDict(payload, rec->stored_size);
		if (b->dicts[b->ndicts].dict_id) {
			b->ndicts++;
			b->pack_dicts++;
		}
		return 0;
	}
	if ((rec->type == REC_SNAPSHOT || rec->type == REC_TOMBSTONE) &&
	    rec->comp == PACK_COMP_ZSTD)
		return take_compressed(b, rec, payload);
	if (rec->type == REC_SNAPSHOT && rec->comp == PACK_COMP_NONE) {
		struct snap_rec *s;

		if (b->nsnaps == b->capsnaps) {
			size_t cap = b->capsnaps ? 2 * b->capsnaps : 64;
			void *n = realloc(b->snaps, cap * sizeof(*b->snaps));

			if (!n)
				return -ENOMEM;
			b->snaps = n;
			b->capsnaps = cap;
		}
		s = &b->snaps[b->nsnaps];
		s->data = malloc(rec->stored_size ? rec->stored_size : 1);
		if (!s->data)
			return -ENOMEM;
		memcpy(s->id, rec->id, MV_ID_LEN);
		memcpy(s->data, payload, rec->stored_size);
		s->len = rec->stored_size;
		b->nsnaps++;
		b->pack_snaps++;
	} else if (rec->type == REC_TOMBSTONE && rec->comp == PACK_COMP_NONE) {
		if (lc_tombstone_decode(payload, rec->stored_size,
					&b->pack_tombs) == -ENOMEM)
			return -ENOMEM;
	}
	return 0;
}

/* Drop what the last pack contributed (it was not trusted). */
static void forget_pack(struct rebuild *b)
{
	b->ndicts -= b->pack_dicts;
	b->pack_dicts = 0;
	while (b->pack_snaps) {
		b->nsnaps--;
		free(b->snaps[b->nsnaps].data);
		b->pack_snaps--;
	}
	lc_idset_free(&b->pack_tombs);
}

static int read_kind(struct repo *r, const char *path, int *out)
{
	struct backend *be = repo_backend(r);
	uint8_t hdr[PACK_HDR_LEN];
	size_t got = 0;

	if (be->ops->read_at(be, path, 0, hdr, sizeof(hdr), &got, NULL) ||
	    got != sizeof(hdr))
		return -EBADMSG;
	*out = (int)mv_le32(hdr + 12);
	return 0;
}

/* Feed one entry of a format 2 table to scan_rec; records rebuild looks
 * into are read and opened (as stored raw), the rest only listed. */
static int take_entry(struct rebuild *b, const char *path,
		      const struct seal_entry *e, struct mv_buf *buf,
		      struct mv_buf *raw, struct mv_err *err)
{
	struct backend *be = repo_backend(b->r);
	struct pack_rec rec;
	size_t got = 0;
	int rc;

	memset(&rec, 0, sizeof(rec));
	memcpy(rec.id, e->id, MV_ID_LEN);
	rec.type = e->type;
	rec.raw_size = e->raw;
	rec.stored_size = e->stored;
	if (e->type != REC_SNAPSHOT && e->type != REC_TOMBSTONE &&
	    e->type != REC_DICT)
		return scan_rec(&rec, e->offset, NULL, b);
	mv_buf_reset(buf);
	if (mv_buf_reserve(buf, e->stored))
		return -ENOMEM;
	while (got < e->stored) {
		size_t k = 0;

		rc = be->ops->read_at(be, path, e->offset + got,
				      buf->data + got, e->stored - got, &k,
				      err);
		if (rc)
			return rc;
		if (!k)
			return mv_err_set(err, -EBADMSG, "cut short");
		got += k;
	}
	rc = repo_record_decode(b->r, e->id, e->type, buf->data, e->stored,
				false, raw, err);
	if (rc)
		return rc == -ENOMEM ? rc : -EBADMSG;
	rec.stored_size = (uint32_t)raw->len;
	rc = scan_rec(&rec, e->offset, raw->data, b);
	if (!rc)
		b->recs[b->nrecs - 1].loc.stored_size = e->stored;
	return rc;
}

static int take_table(struct rebuild *b, const char *name, const char *path,
		      int *kind, struct mv_err *err)
{
	struct mv_buf buf = MV_BUF_INIT, raw = MV_BUF_INIT;
	struct seal_table t;
	size_t i;
	int rc;

	rc = repo_pack_table(b->r, name, &t, NULL, err);
	if (rc)
		return rc;
	*kind = t.kind;
	for (i = 0; !rc && i < t.n; i++)
		rc = take_entry(b, path, &t.e[i], &buf, &raw, err);
	seal_table_release(&t);
	mv_buf_release(&buf);
	mv_buf_release(&raw);
	return rc;
}

static int take_pack(struct rebuild *b, const char *name)
{
	struct backend *be = repo_backend(b->r);
	struct mv_err e = MV_ERR_INIT;
	char path[128];
	uint64_t size = 0;
	bool sealed = false;
	int64_t id;
	int kind = PACK_KIND_DATA, rc;
	size_t i;

	pack_path(name, path, sizeof(path));
	b->nrecs = 0;
	b->pack_snaps = 0;
	b->pack_dicts = 0;
	rc = be->ops->stat(be, path, &size, NULL, &e);
	if (!rc && repo_pack_format(b->r) == 2) {
		rc = take_table(b, name, path, &kind, &e);
		sealed = !rc;
	} else {
		if (!rc)
			rc = read_kind(b->r, path, &kind);
		if (!rc)
			rc = pack_scan(be, path, true, scan_rec, b, &sealed,
				       &e);
	}
	if (rc == -ENOMEM)
		return mv_err_set(b->err, rc, "out of memory");
	if (rc || !sealed) {
		forget_pack(b);
		b->res->untrusted++;
		lc_say(b->fn, b->arg, "warning",
		       "pack '%s' is not trusted: "
		       "%s",
		       path,
		       rc == -EBADMSG && !e.msg[0] ? "bad header"
		       : e.msg[0]		   ? mv_err_msg(&e)
						   : "not sealed");
		return 0;
	}
	for (i = 0; i < b->pack_tombs.size; i++) {
		static const uint8_t zero[MV_ID_LEN];

		if (memcmp(b->pack_tombs.slots[i], zero, MV_ID_LEN) &&
		    lc_idset_add(&b->tombed, b->pack_tombs.slots[i]) < 0)
			return mv_err_set(b->err, -ENOMEM, "out of memory");
	}
	lc_idset_free(&b->pack_tombs);
	rc = index_pack_add(b->nix, name, kind, &id, b->err);
	for (i = 0; !rc && i < b->nrecs; i++) {
		b->recs[i].loc.pack = id;
		rc = index_chunk_add(b->nix, b->recs[i].id, &b->recs[i].loc,
				     b->err);
	}
	if (!rc)
		rc = index_pack_update(b->nix, id, size, (uint32_t)b->nrecs,
				       b->err);
	b->res->packs++;
	b->res->records += b->nrecs;
	return rc;
}

static int add_snapshots(struct rebuild *b)
{
	struct mv_err e = MV_ERR_INIT;
	size_t i;
	int rc = 0;

	for (i = 0; !rc && i < b->nsnaps; i++) {
		struct snapshot s;
		char hex[2 * MV_ID_LEN + 1];

		if (lc_idset_has(&b->tombed, b->snaps[i].id)) {
			b->res->forgotten++;
			continue;
		}
		mv_err_clear(&e);
		mv_hex(b->snaps[i].id, MV_ID_LEN, hex);
		if (snapshot_decode(b->snaps[i].data, b->snaps[i].len, &s,
				    &e)) {
			lc_say(b->fn, b->arg, "warning",
			       "snapshot record "
			       "%.12s cannot be decoded: %s",
			       hex, mv_err_msg(&e));
			continue;
		}
		rc = index_snapshot_add(b->nix, b->snaps[i].id, s.name,
					s.time_ns, s.partial, b->snaps[i].data,
					b->snaps[i].len, b->err);
		snapshot_release(&s);
	}
	return rc;
}

int lifecycle_rebuild_index(struct repo *r, lifecycle_report_fn fn, void *arg,
			    struct rebuild_result *out, struct mv_err *err)
{
	struct rebuild b;
	char built[4096], side[4200];
	size_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(&b, 0, sizeof(b));
	b.r = r;
	b.fn = fn;
	b.arg = arg;
	b.res = out;
	b.err = err;
	snprintf(built, sizeof(built), "%s.rebuild", repo_index_path(r));
	unlink(built);
	snprintf(side, sizeof(side), "%s-journal", built);
	unlink(side);
	rc = lc_list_pack_files(r, add_name, &b, err);
	if (rc == -ENOMEM)
		mv_err_set(err, rc, "out of memory");
	if (rc)
		goto out;
	qsort(b.names, b.nnames, sizeof(*b.names), cmp_name);
	rc = index_open(built, true, true, false, &b.nix, err);
	if (!rc)
		rc = index_begin(b.nix, err);
	for (i = 0; !rc && i < b.nnames; i++) {
		rc = take_pack(&b, b.names[i]);
		lc_step("rebuild pack");
	}
	if (!rc)
		rc = add_snapshots(&b);
	for (i = 0; !rc && i < b.ndicts; i++)
		rc = index_dict_add(b.nix, b.dicts[i].dict_id, b.dicts[i].id,
				    err);
	if (!rc)
		rc = index_commit(b.nix, err);
	index_close(b.nix);
	b.nix = NULL;
	if (rc)
		goto out;
	for (i = 0; i < b.nsnaps; i++)
		if (!lc_idset_has(&b.tombed, b.snaps[i].id))
			out->snapshots++;
	lc_step("before install");
	rc = repo_index_install(r, built, err);
	if (!rc)
		lc_step("after install");
out:
	if (rc)
		unlink(built);
	lc_steps_report();
	index_close(b.nix);
	for (i = 0; i < b.nsnaps; i++)
		free(b.snaps[i].data);
	free(b.snaps);
	free(b.dicts);
	free(b.recs);
	free(b.names);
	lc_idset_free(&b.tombed);
	lc_idset_free(&b.pack_tombs);
	return rc;
}
