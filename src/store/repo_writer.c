/*
 * repo_writer: the write session - records appended to packs, packs
 * sealed, and the one index transaction that publishes them
 * (include/repo.h, design notes).
 */
#include "repo_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "backend.h"
#include "hash.h"
#include "index.h"
#include "pack.h"
#include "seal.h"
#include "snapshot.h"

/* ---- packs of interrupted remote sessions ---------------------------
 *
 * On a remote repository an interrupted backup (connection lost for good)
 * leaves the packs it had sealed on the server: uploading them was the
 * expensive part.  Their names are noted in the cache directory
 * (pending-packs) before each upload and forgotten when a session
 * commits.  The next session scans the noted packs that made it to the
 * server (sealed packs describe themselves) and adds their records to its
 * own index transaction, so it stores nothing twice.  Packs of another
 * machine's failed session are not noted here; check reports them and
 * prune removes them.
 */

struct adopt_rec {
	uint8_t id[MV_ID_LEN];
	struct chunk_loc loc;
};

struct adopt {
	struct adopt_rec *v;
	size_t n, cap;
	int kind; /* enum pack_kind, from the first record */
};

static int adopt_collect(const struct pack_rec *rec, uint64_t offset,
			 const void *payload, void *arg)
{
	struct adopt *a = arg;

	(void)payload;
	if (a->n == a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 256;
		struct adopt_rec *p = realloc(a->v, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		a->v = p;
		a->cap = cap;
	}
	if (!a->n)
		a->kind =
			rec->type == REC_DATA ? PACK_KIND_DATA : PACK_KIND_META;
	memcpy(a->v[a->n].id, rec->id, MV_ID_LEN);
	a->v[a->n].loc.pack = 0;
	a->v[a->n].loc.offset = offset;
	a->v[a->n].loc.stored_size = rec->stored_size;
	a->v[a->n].loc.raw_size = rec->raw_size;
	a->v[a->n].loc.type = rec->type;
	a->v[a->n].loc.comp = rec->comp;
	a->n++;
	return 0;
}

/* Format 2: the records of a pack are in its table. */
static int adopt_table(struct repo *r, const char *name, struct adopt *a,
		       bool *sealed, struct mv_err *err)
{
	struct seal_table t;
	struct pack_rec rec;
	size_t i;
	int rc;

	rc = pack_table_read(r->be, name, r->key_meta, &t, NULL, err);
	if (rc)
		return rc;
	memset(&rec, 0, sizeof(rec));
	for (i = 0; !rc && i < t.n; i++) {
		rec.type = t.e[i].type;
		rec.raw_size = t.e[i].raw;
		rec.stored_size = t.e[i].stored;
		memcpy(rec.id, t.e[i].id, MV_ID_LEN);
		rc = adopt_collect(&rec, t.e[i].offset, NULL, a);
	}
	if (!rc)
		a->kind = t.kind;
	seal_table_release(&t);
	*sealed = true;
	return rc;
}

static int pack_known(int64_t id, const char *name, int kind, uint64_t size,
		      uint32_t records, void *arg)
{
	(void)id;
	(void)kind;
	(void)size;
	(void)records;
	return strcmp(name, (const char *)arg) ? 0 : -EEXIST;
}

/* Add the records of one sealed pack to the open transaction.  A pack
 * that never reached the server, or not whole, is skipped. */
static int adopt_pack(struct repo *r, const char *name, struct mv_err *err)
{
	struct adopt a = {NULL, 0, 0, PACK_KIND_DATA};
	struct mv_err e = MV_ERR_INIT;
	char path[128];
	uint64_t size = 0;
	int64_t id;
	bool sealed = false;
	size_t i;
	int rc;

	rc = index_pack_each(r->ix, pack_known, (void *)name, NULL);
	if (rc == -EEXIST)
		return 0; /* committed after all */
	pack_path(name, path, sizeof(path));
	rc = r->be->ops->stat(r->be, path, &size, NULL, &e);
	if (rc == -ENOENT)
		return 0;
	if (!rc && r->pack_format == 2)
		rc = adopt_table(r, name, &a, &sealed, &e);
	else if (!rc)
		rc = pack_scan(r->be, path, false, adopt_collect, &a, &sealed,
			       &e);
	if (rc == -EBADMSG || (!rc && (!sealed || !a.n))) {
		rc = 0; /* not whole: left for check and prune */
		goto out;
	}
	if (rc) {
		rc = mv_err_set(err, rc, "%s", mv_err_msg(&e));
		goto out;
	}
	rc = index_pack_add(r->ix, name, a.kind, &id, err);
	for (i = 0; !rc && i < a.n; i++) {
		a.v[i].loc.pack = id;
		rc = index_chunk_add(r->ix, a.v[i].id, &a.v[i].loc, err);
	}
	if (!rc)
		rc = index_pack_update(r->ix, id, size, (uint32_t)a.n, err);
out:
	free(a.v);
	return rc;
}

static int adopt_pending(struct repo *r, struct mv_err *err)
{
	char *text = NULL, *line, *save = NULL;
	int rc = 0;

	if (!r->pending_path ||
	    mv_read_file(r->pending_path, 1 << 20, &text, NULL, NULL))
		return 0;
	pthread_mutex_lock(&r->ix_lock);
	for (line = strtok_r(text, "\n", &save); line && !rc;
	     line = strtok_r(NULL, "\n", &save))
		if (strlen(line) == PACK_NAME_LEN &&
		    strspn(line, "0123456789abcdef") == PACK_NAME_LEN)
			rc = adopt_pack(r, line, err);
	pthread_mutex_unlock(&r->ix_lock);
	free(text);
	return rc;
}

/* Note a pack name before its upload (see above). */
static void pending_note(struct repo *r, const char *name)
{
	char line[PACK_NAME_LEN + 2];
	int fd;

	if (!r->pending_path)
		return;
	fd = open(r->pending_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
		  0600);
	if (fd < 0)
		return; /* only an optimisation */
	snprintf(line, sizeof(line), "%s\n", name);
	if (mv_write_full(fd, line, strlen(line)) == 0)
		fdatasync(fd);
	close(fd);
}

int repo_writer_begin(struct repo *r, struct repo_writer **out,
		      struct mv_err *err)
{
	struct repo_writer *w;
	int rc;

	if (!r->locked)
		return mv_err_set(err, -EPERM,
				  "repository '%s' is not open "
				  "for writing",
				  r->location);
	if (r->writer)
		return mv_err_set(err, -EBUSY,
				  "a write session is already "
				  "open");
	w = calloc(1, sizeof(*w));
	if (!w)
		return mv_err_set(err, -ENOMEM, "out of memory");
	w->r = r;
	r->commit_unknown = false;
	/* the session that uploads packs connects while the first is built */
	if (r->be->ops->write_ahead)
		r->be->ops->write_ahead(r->be);
	pthread_mutex_lock(&r->ix_lock);
	rc = index_begin(r->ix, err);
	pthread_mutex_unlock(&r->ix_lock);
	if (rc) {
		free(w);
		return rc;
	}
	if (r->remote) {
		rc = adopt_pending(r, err);
		if (rc) {
			pthread_mutex_lock(&r->ix_lock);
			index_rollback(r->ix);
			pthread_mutex_unlock(&r->ix_lock);
			free(w);
			return rc;
		}
	}
	r->writer = w;
	*out = w;
	return 0;
}

bool repo_writer_has(struct repo_writer *w, const uint8_t id[MV_ID_LEN])
{
	return repo_chunk_find(w->r, id, NULL, NULL) == 0;
}

/* Complete pack k's bytes (its table or footer) and note it as this
 * session's; *out_file is left to commit, then seal_done() with the size
 * and record count.  *out_file is NULL when no pack k is open. */
static int seal_close(struct repo_writer *w, int k,
		      struct backend_file **out_file, uint64_t *out_size,
		      uint32_t *out_records, struct mv_err *err)
{
	struct repo *r = w->r;
	uint64_t before;
	char **p;
	int rc;

	*out_file = NULL;
	*out_size = 0;
	*out_records = 0;
	if (!w->pw[k])
		return 0;
	before = pack_writer_size(w->pw[k]);
	*out_records = pack_writer_records(w->pw[k]);
	p = realloc(w->sealed, (w->nsealed + 1) * sizeof(*p));
	if (!p)
		return mv_err_set(err, -ENOMEM, "out of memory");
	w->sealed = p;
	w->sealed[w->nsealed] = strdup(pack_writer_name(w->pw[k]));
	if (!w->sealed[w->nsealed])
		return mv_err_set(err, -ENOMEM, "out of memory");
	w->nsealed++;
	if (r->remote)
		pending_note(r, pack_writer_name(w->pw[k]));
	rc = pack_writer_close(w->pw[k], out_size, out_file, err);
	w->pw[k] = NULL;
	if (!rc)
		w->stored += *out_size - before;
	return rc;
}

/* A committed pack k's size and record count into the index. */
static int seal_done(struct repo_writer *w, int k, uint64_t size,
		     uint32_t records, struct mv_err *err)
{
	struct repo *r = w->r;
	int rc;

	pthread_mutex_lock(&r->ix_lock);
	rc = index_pack_update(r->ix, w->pack_id[k], size, records, err);
	pthread_mutex_unlock(&r->ix_lock);
	return rc;
}

static int seal_pack(struct repo_writer *w, int k, struct mv_err *err)
{
	struct backend_file *f;
	uint64_t size;
	uint32_t records;
	int rc;

	rc = seal_close(w, k, &f, &size, &records, err);
	if (rc || !f)
		return rc;
	rc = w->r->be->ops->file_commit(f, err);
	if (!rc)
		rc = seal_done(w, k, size, records, err);
	return rc;
}

static int open_pack(struct repo_writer *w, int k, struct mv_err *err)
{
	struct repo *r = w->r;
	int rc;

	if (r->pack_format == 2)
		rc = pack_writer_open2(r->be,
				       k ? PACK_KIND_META : PACK_KIND_DATA,
				       r->key_meta, &w->pw[k], err);
	else
		rc = pack_writer_open(r->be,
				      k ? PACK_KIND_META : PACK_KIND_DATA,
				      &w->pw[k], err);
	if (rc)
		return rc;
	w->stored += pack_writer_size(w->pw[k]);
	pthread_mutex_lock(&r->ix_lock);
	rc = index_pack_add(r->ix, pack_writer_name(w->pw[k]),
			    k ? PACK_KIND_META : PACK_KIND_DATA, &w->pack_id[k],
			    err);
	pthread_mutex_unlock(&r->ix_lock);
	return rc;
}

int repo_seal(struct repo *r, enum rec_type type, const uint8_t id[MV_ID_LEN],
	      const void *raw, size_t raw_len, const void *comp,
	      size_t comp_len, const struct repo_comp *how, struct mv_buf *out,
	      struct mv_err *err)
{
	bool plain = !how || how->kind == PACK_COMP_NONE || !comp;

	mv_buf_reset(out);
	if (r->pack_format != 2)
		return 0;
	/* content under the data key, the rest under the metadata key */
	return seal_record(type == REC_DATA ? r->key_data : r->key_meta,
			   (uint8_t)type, r->key_epoch, id,
			   plain ? PACK_COMP_NONE : how->kind,
			   plain ? 0 : how->dict_id, plain ? raw : comp,
			   plain ? raw_len : comp_len, out, err);
}

/* Append a record: sealed here from payload, or (format 2) already
 * sealed by repo_seal() when sealed is non-NULL. */
static int writer_append(struct repo_writer *w, enum rec_type type,
			 const uint8_t id[MV_ID_LEN], size_t raw_len,
			 const void *payload, size_t stored,
			 const struct repo_comp *how,
			 const struct mv_buf *sealed, bool *out_new,
			 struct mv_err *err)
{
	struct repo *r = w->r;
	int k = type == REC_DATA ? 0 : 1;
	struct pack_rec rec;
	struct chunk_loc loc;
	uint64_t off;
	int rc;

	if (!w->pw[k]) {
		rc = open_pack(w, k, err);
		if (rc)
			return rc;
	}
	memset(&rec, 0, sizeof(rec));
	rec.type = (uint8_t)type;
	rec.comp = how->kind;
	rec.dict_id = how->dict_id;
	rec.raw_size = (uint32_t)raw_len;
	rec.stored_size = (uint32_t)stored;
	memcpy(rec.id, id, MV_ID_LEN);
	if (r->pack_format == 2) {
		/* the index's comp column keeps a copy of the comp inside
		 * the record, for stats only */
		rc = 0;
		if (!sealed) {
			rc = repo_seal(r, type, id, payload, stored, payload,
				       stored, how, &w->sbuf, err);
			sealed = &w->sbuf;
		}
		if (!rc)
			rc = pack_writer_append_sealed(
				w->pw[k], rec.type, (uint8_t)r->key_epoch, id,
				sealed->data, sealed->len, rec.raw_size, &off,
				err);
		if (rc)
			return rc;
		rec.stored_size = (uint32_t)sealed->len;
		w->stored += sealed->len;
	} else {
		rec.checksum = hash_xxh64(payload, rec.stored_size);
		rc = pack_writer_append(w->pw[k], &rec, payload, &off, err);
		if (rc)
			return rc;
		w->stored += PACK_REC_HDR_LEN + rec.stored_size;
	}
	loc.pack = w->pack_id[k];
	loc.offset = off;
	loc.stored_size = rec.stored_size;
	loc.raw_size = rec.raw_size;
	loc.type = rec.type;
	loc.comp = rec.comp;
	pthread_mutex_lock(&r->ix_lock);
	rc = index_chunk_add(r->ix, id, &loc, err);
	pthread_mutex_unlock(&r->ix_lock);
	if (rc)
		return rc;
	if (out_new)
		*out_new = true;
	if (pack_writer_size(w->pw[k]) >=
		    (k ? META_PACK_TARGET : DATA_PACK_TARGET) &&
	    !(k && w->hold_meta))
		rc = seal_pack(w, k, err);
	return rc;
}

/* A record unless the session or the index has it: sealed here from raw
 * or comp, or already sealed (non-NULL sealed). */
static int writer_put(struct repo_writer *w, enum rec_type type,
		      const uint8_t id[MV_ID_LEN], const void *raw,
		      size_t raw_len, const void *comp, size_t comp_len,
		      const struct repo_comp *how, const struct mv_buf *sealed,
		      bool *out_new, struct mv_err *err)
{
	struct repo_comp none = {PACK_COMP_NONE, 0};

	if (out_new)
		*out_new = false;
	if (raw_len > PACK_MAX_RECORD)
		return mv_err_set(err, -EMSGSIZE,
				  "record of %zu bytes is "
				  "too large",
				  raw_len);
	if (repo_writer_has(w, id))
		return 0;
	if (sealed)
		return writer_append(w, type, id, raw_len, NULL, 0,
				     how ? how : &none, sealed, out_new, err);
	if (!how || how->kind == PACK_COMP_NONE || !comp)
		return writer_append(w, type, id, raw_len, raw, raw_len, &none,
				     NULL, out_new, err);
	return writer_append(w, type, id, raw_len, comp, comp_len, how, NULL,
			     out_new, err);
}

int repo_writer_put_comp(struct repo_writer *w, enum rec_type type,
			 const uint8_t id[MV_ID_LEN], const void *raw,
			 size_t raw_len, const void *comp, size_t comp_len,
			 const struct repo_comp *how, bool *out_new,
			 struct mv_err *err)
{
	return writer_put(w, type, id, raw, raw_len, comp, comp_len, how, NULL,
			  out_new, err);
}

int repo_writer_put_sealed(struct repo_writer *w, enum rec_type type,
			   const uint8_t id[MV_ID_LEN], size_t raw_len,
			   const struct repo_comp *how,
			   const struct mv_buf *sealed, bool *out_new,
			   struct mv_err *err)
{
	if (w->r->pack_format != 2 || !sealed || !sealed->len) {
		if (out_new)
			*out_new = false;
		return mv_err_set(err, -EINVAL, "no sealed record to store");
	}
	return writer_put(w, type, id, NULL, raw_len, NULL, 0, how, sealed,
			  out_new, err);
}

int repo_writer_put(struct repo_writer *w, enum rec_type type,
		    const uint8_t id[MV_ID_LEN], const void *raw,
		    size_t raw_len, const void *comp, size_t comp_len,
		    bool *out_new, struct mv_err *err)
{
	struct repo_comp how = {PACK_COMP_ZSTD, 0};

	if (comp)
		return repo_writer_put_comp(w, type, id, raw, raw_len, comp,
					    comp_len, &how, out_new, err);
	if (out_new)
		*out_new = false;
	if (repo_writer_has(w, id))
		return 0;
	how.kind = PACK_COMP_NONE;
	if (type != REC_SNAPSHOT && type != REC_DICT) {
		int rc = repo_compress(w->r, raw, raw_len, &w->cbuf, &how, err);
		if (rc)
			return rc;
	}
	return repo_writer_put_comp(w, type, id, raw, raw_len, w->cbuf.data,
				    w->cbuf.len, &how, out_new, err);
}

int repo_writer_set_dictionary(struct repo_writer *w, const void *dict,
			       size_t len, struct mv_err *err)
{
	struct repo *r = w->r;
	struct repo_dict *d;
	uint8_t id[MV_ID_LEN];
	int rc;

	d = repo_dict_make(r, dict, len, true);
	if (!d)
		return mv_err_set(err, -EINVAL,
				  "not a usable zstd "
				  "dictionary");
	repo_chunk_id(r, dict, len, id);
	rc = repo_writer_put(w, REC_DICT, id, dict, len, NULL, 0, NULL, err);
	if (!rc) {
		pthread_mutex_lock(&r->ix_lock);
		rc = index_dict_add(r->ix, d->dict_id, id, err);
		pthread_mutex_unlock(&r->ix_lock);
	}
	if (rc) {
		repo_dict_free(d);
		return rc;
	}
	pthread_mutex_lock(&r->dict_lock);
	d->next = r->dicts;
	r->dicts = d;
	r->active = d;
	r->dict_probed = true;
	pthread_mutex_unlock(&r->dict_lock);
	return 0;
}

uint64_t repo_writer_stored_bytes(const struct repo_writer *w)
{
	return w->stored;
}

static void writer_free(struct repo_writer *w)
{
	size_t i;

	for (i = 0; i < w->nsealed; i++)
		free(w->sealed[i]);
	free(w->sealed);
	mv_buf_release(&w->cbuf);
	mv_buf_release(&w->sbuf);
	w->r->writer = NULL;
	free(w);
}

/* Make the packs/XX directories of this session's packs durable: each
 * pack's commit syncs its own packs/XX, but a packs/XX created by this
 * session is an entry of packs/ that only a sync of packs/ keeps.  Done
 * once per commit, before the index names any of them (invariant 1). */
static int packs_dir_sync(struct repo_writer *w, struct mv_err *err)
{
	struct repo *r = w->r;

	if (!w->nsealed)
		return 0;
	return r->be->ops->sync_dir(r->be, "packs", err);
}

/* After a COMMIT failed other than by a busy index, SQLite may or may
 * not have made it durable (a failed sync of the journal or WAL is
 * replayed on the next open): the outcome is unknown, the index may name
 * this session's packs, and so they are kept.  prune removes them later
 * if nothing refers to them. */
static int commit_unknown(struct repo_writer *w, int rc,
			  const struct mv_err *cause, struct mv_err *err)
{
	const char *msg = mv_err_msg(cause);

	w->keep_packs = true;
	w->r->commit_unknown = true;
	return mv_err_set(
		err, rc,
		"%s; whether the commit reached the index is unknown, "
		"so the %zu pack(s) this session wrote are kept "
		"('mailvault check' tells; 'mailvault prune' removes "
		"them if nothing refers to them)",
		msg, w->nsealed);
}

/* Commit the session's index transaction and, on a remote repository,
 * publish the index.  Called with ix_lock held. */
static int commit_locked(struct repo_writer *w, struct mv_err *err)
{
	struct repo *r = w->r;
	struct mv_err e = MV_ERR_INIT;
	int rc;

	if (r->segments) {
		/* the segment first, then the local COMMIT: a failure after
		 * the segment is in place leaves a commit the next open
		 * replays, so the packs it names are kept */
		r->seg_maybe_out = false;
		rc = repo_segment_publish(r, false, NULL, &e);
		if (!rc)
			rc = index_commit(r->ix, &e);
		if (rc && r->seg_maybe_out)
			return commit_unknown(w, rc, &e, err);
		if (rc)
			return mv_err_set(err, rc, "%s", mv_err_msg(&e));
		r->seg_legacy = false;
		if (r->pending_path)
			unlink(r->pending_path);
		index_data_version(r->ix, &r->data_version, NULL);
		return 0;
	}
	rc = index_commit(r->ix, &e);

	/* busy, disk full, a failed write: the commit record is not there
	 * whole, the outcome is known (rolled back) */
	if (rc && !index_commit_unknown(r->ix))
		return mv_err_set(err, rc, "%s", mv_err_msg(&e));
	if (rc)
		return commit_unknown(w, rc, &e, err);
	if (r->remote) {
		rc = repo_remote_index_publish(r, err);
		/* the cached index now holds a commit the server may not
		 * have: make the next open download the server's copy */
		if (rc)
			unlink(r->stamp_path);
		else if (r->pending_path)
			unlink(r->pending_path);
	}
	if (!rc)
		index_data_version(r->ix, &r->data_version, NULL);
	return rc;
}

int repo_writer_commit(struct repo_writer *w, struct snapshot *snap,
		       struct mv_err *err)
{
	struct repo *r = w->r;
	struct mv_buf rec = MV_BUF_INIT;
	struct backend_file *df = NULL, *mf = NULL;
	uint64_t dsize = 0, msize = 0;
	uint32_t dn, mn;
	bool had_data, had_meta;
	int rc;

	/* Invariant (2): data packs are durable before the snapshot
	 * record that names them.  The data pack's bytes are completed
	 * first (the snapshot counts them), the record goes into the
	 * metadata pack, held open past its size (hold_meta), and the two
	 * are committed as a pair: the metadata pack durable only after
	 * the data pack, a remote backend uploading it meanwhile. */
	rc = seal_close(w, 0, &df, &dsize, &dn, err);
	if (rc)
		goto fail;
	snap->stats.stored_bytes = w->stored;
	rc = snapshot_encode(snap, &rec, err);
	if (rc)
		goto fail;
	repo_chunk_id(r, rec.data, rec.len, snap->id);
	w->hold_meta = true;
	rc = repo_writer_put(w, REC_SNAPSHOT, snap->id, rec.data, rec.len, NULL,
			     0, NULL, err);
	w->hold_meta = false;
	if (rc)
		goto fail;
	/* no metadata pack when the record was there already (the same
	 * snapshot committed again) and no tree was new */
	rc = seal_close(w, 1, &mf, &msize, &mn, err);
	if (rc)
		goto fail;
	had_data = df != NULL;
	had_meta = mf != NULL;
	/* the publication's check of the server's index, while the data
	 * pack's last bytes are still on their way */
	if (r->remote)
		repo_remote_index_check_ahead(r);
	rc = backend_file_commit_pair(r->be, df, mf, err);
	df = mf = NULL;
	if (!rc && had_data)
		rc = seal_done(w, 0, dsize, dn, err);
	if (!rc && had_meta)
		rc = seal_done(w, 1, msize, mn, err);
	if (rc)
		goto fail;
	rc = packs_dir_sync(w, err);
	if (rc)
		goto fail;
	pthread_mutex_lock(&r->ix_lock);
	rc = index_snapshot_add(r->ix, snap->id, snap->name, snap->time_ns,
				snap->partial, rec.data, rec.len, err);
	if (!rc)
		rc = commit_locked(w, err);
	pthread_mutex_unlock(&r->ix_lock);
	if (rc)
		goto fail;
	mv_buf_release(&rec);
	writer_free(w);
	return 0;
fail:
	if (df)
		r->be->ops->file_abort(df);
	if (mf)
		r->be->ops->file_abort(mf);
	mv_buf_release(&rec);
	repo_writer_abort(w);
	return rc;
}

bool repo_commit_outcome_unknown(const struct repo *r)
{
	return r->commit_unknown;
}

void repo_writer_abort(struct repo_writer *w)
{
	struct repo *r;
	char path[128];
	size_t i;
	int k;

	if (!w)
		return;
	r = w->r;
	/* a generation read ahead for this commit is not the next one's */
	r->pub_gen_known = false;
	for (k = 0; k < 2; k++) {
		pack_writer_abort(w->pw[k]);
		w->pw[k] = NULL;
	}
	pthread_mutex_lock(&r->ix_lock);
	index_rollback(r->ix);
	pthread_mutex_unlock(&r->ix_lock);
	/* Packs sealed by this session are referenced by nothing now,
	 * unless a failed commit may have reached the index after all
	 * (commit_unknown).  On a remote repository they are kept:
	 * uploading them was the cost, and the next session adopts them
	 * (see adopt_pending). */
	for (i = 0; !r->remote && !w->keep_packs && i < w->nsealed; i++) {
		pack_path(w->sealed[i], path, sizeof(path));
		r->be->ops->remove(r->be, path, NULL);
	}
	writer_free(w);
}

int repo_writer_copy(struct repo_writer *w, const uint8_t id[MV_ID_LEN],
		     const struct chunk_loc *from, const void *stored,
		     struct chunk_loc *out, struct mv_err *err)
{
	struct repo *r = w->r;
	int k = from->type == REC_DATA ? 0 : 1;
	size_t span = repo_record_span(r, from);
	uint64_t off;
	int rc;

	if (!w->pw[k]) {
		rc = open_pack(w, k, err);
		if (rc)
			return rc;
	}
	if (r->pack_format == 2) {
		/* the AAD names id, type and epoch, not the pack: the
		 * sealed bytes move as they are */
		rc = pack_writer_append_sealed(
			w->pw[k], from->type, (uint8_t)r->key_epoch, id, stored,
			span, from->raw_size, &off, err);
	} else {
		struct pack_rec rec;

		if (pack_rec_decode(stored, &rec) ||
		    memcmp(rec.id, id, MV_ID_LEN))
			return mv_err_set(err, -EIO,
					  "record header is damaged");
		rc = pack_writer_append(
			w->pw[k], &rec,
			(const uint8_t *)stored + PACK_REC_HDR_LEN, &off, err);
	}
	if (rc)
		return rc;
	w->stored += span;
	*out = *from;
	out->pack = w->pack_id[k];
	out->offset = off;
	if (pack_writer_size(w->pw[k]) >=
	    (k ? META_PACK_TARGET : DATA_PACK_TARGET))
		rc = seal_pack(w, k, err);
	return rc;
}

int repo_writer_finish(struct repo_writer *w, struct mv_err *err)
{
	struct repo *r = w->r;
	int rc;

	rc = seal_pack(w, 0, err);
	if (!rc)
		rc = seal_pack(w, 1, err);
	if (rc)
		goto fail;
	rc = packs_dir_sync(w, err);
	if (rc)
		goto fail;
	pthread_mutex_lock(&r->ix_lock);
	rc = commit_locked(w, err);
	pthread_mutex_unlock(&r->ix_lock);
	if (rc)
		goto fail;
	writer_free(w);
	return 0;
fail:
	repo_writer_abort(w);
	return rc;
}
