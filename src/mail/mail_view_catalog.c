/*
 * mail_view_catalog: the mail view's side of catalog.db - opening it,
 * the known messages (loaded once into a read-only table the ingest
 * workers consult without locks), the large messages of the job's
 * previous backup (borg's files cache for the one costly thing: the
 * prefix copy), the new messages catalogued while the input streams, and
 * the snapshot's places recorded on a thread of their own.
 */
#include "mail_view_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catseg.h"
#include "index.h"

/* ---- known messages --------------------------------------------------- */

static size_t slot_of(const struct mail_view *v, const uint8_t *cid)
{
	uint64_t h;

	memcpy(&h, cid, sizeof(h));
	return (size_t)h & (v->cap - 1);
}

const struct known *view_known_find(const struct mail_view *v,
				    const uint8_t *cid)
{
	size_t i;

	if (!v->cap)
		return NULL;
	for (i = slot_of(v, cid); v->tab[i].used; i = (i + 1) & (v->cap - 1))
		if (!memcmp(v->tab[i].cid, cid, MV_ID_LEN))
			return &v->tab[i];
	return NULL;
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s ? strdup((const char *)s) : NULL;
}

/* End a read of the catalogue whose last sqlite3_step() gave step. */
static int read_end(struct mail_view *v, sqlite3_stmt *st, int step,
		    struct mv_err *err)
{
	int rc = 0;

	if (step != SQLITE_DONE)
		rc = mv_err_set(err, -EIO, "catalogue: cannot read: %s",
				sqlite3_errmsg(v->db));
	sqlite3_finalize(st);
	return rc;
}

static int known_load(struct mail_view *v, struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	int64_t n = 0;
	int rc = 0;

	if (sqlite3_prepare_v2(v->db, "SELECT count(*) FROM view", -1, &st,
			       NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		goto db_fail;
	n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	for (v->cap = 1024; v->cap < 2 * (size_t)n; v->cap *= 2)
		;
	v->tab = calloc(v->cap, sizeof(*v->tab));
	if (!v->tab)
		return mv_err_set(err, -ENOMEM, "out of memory");
	if (sqlite3_prepare_v2(v->db,
			       "SELECT cid, date, from_, subject, size, layers"
			       " FROM view",
			       -1, &st, NULL) != SQLITE_OK)
		goto db_fail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const void *cid = sqlite3_column_blob(st, 0);
		struct known *k;
		size_t i;

		if (sqlite3_column_bytes(st, 0) != MV_ID_LEN ||
		    v->nknown * 2 >= v->cap)
			continue;
		for (i = slot_of(v, cid); v->tab[i].used;
		     i = (i + 1) & (v->cap - 1))
			;
		k = &v->tab[i];
		memcpy(k->cid, cid, MV_ID_LEN);
		k->used = true;
		k->date = sqlite3_column_int64(st, 1);
		k->from = col_dup(st, 2);
		k->subject = col_dup(st, 3);
		k->size = (uint64_t)sqlite3_column_int64(st, 4);
		k->layers = (unsigned)sqlite3_column_int(st, 5);
		v->nknown++;
	}
	return read_end(v, st, rc, err);
db_fail:
	rc = mv_err_set(err, -EIO, "catalogue: %s", sqlite3_errmsg(v->db));
	sqlite3_finalize(st);
	return rc;
}

/* ---- large messages met before ---------------------------------------- */

static struct large_file *large_slot(struct large_file *tab, size_t cap,
				     const char *path)
{
	size_t i;

	for (i = view_str_hash(path) & (cap - 1); tab[i].path;
	     i = (i + 1) & (cap - 1))
		if (!strcmp(tab[i].path, path))
			return &tab[i];
	return &tab[i];
}

static int large_load(struct mail_view *v, struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	int64_t n = 0;
	int rc;

	/* sized once from the count, as known_load does: no rehashing */
	if (sqlite3_prepare_v2(v->db,
			       "SELECT count(*) FROM large WHERE job = ?1", -1,
			       &st, NULL) != SQLITE_OK)
		goto db_fail;
	sqlite3_bind_text(st, 1, v->job, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (!n)
		return 0;
	for (v->lprev_cap = 16; v->lprev_cap < 2 * (size_t)n; v->lprev_cap *= 2)
		;
	v->lprev = calloc(v->lprev_cap, sizeof(*v->lprev));
	if (!v->lprev) {
		v->lprev_cap = 0;
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	if (sqlite3_prepare_v2(v->db,
			       "SELECT path, size, mtime, cid FROM large"
			       " WHERE job = ?",
			       -1, &st, NULL) != SQLITE_OK)
		goto db_fail;
	sqlite3_bind_text(st, 1, v->job, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *path = (const char *)sqlite3_column_text(st, 0);
		const void *cid = sqlite3_column_blob(st, 3);
		struct large_file *l;

		if (!path || sqlite3_column_bytes(st, 3) != MV_ID_LEN ||
		    !view_known_find(v, cid))
			continue;
		l = large_slot(v->lprev, v->lprev_cap, path);
		if (l->path)
			continue;
		l->path = strdup(path);
		if (!l->path) {
			sqlite3_finalize(st);
			return mv_err_set(err, -ENOMEM, "out of memory");
		}
		l->size = (uint64_t)sqlite3_column_int64(st, 1);
		l->mtime = sqlite3_column_int64(st, 2);
		memcpy(l->cid, cid, MV_ID_LEN);
	}
	return read_end(v, st, rc, err);
db_fail:
	return mv_err_set(err, -EIO, "catalogue: %s", sqlite3_errmsg(v->db));
}

/* The large message at path was in the job's previous backup with this
 * size and mtime, and its content is catalogued. */
bool view_large_unchanged(const struct mail_view *v, const char *path,
			  const struct tree_entry *meta)
{
	const struct large_file *l;

	if (!v->lprev_cap)
		return false;
	l = large_slot(v->lprev, v->lprev_cap, path);
	return l->path && l->size == meta->size && l->mtime == meta->mtime_sec;
}

/* Remember a large message of this backup for the next one (best
 * effort: out of memory only costs the next backup a prefix). */
void view_large_note(struct mail_view *v, const char *path,
		     const struct tree_entry *e, const uint8_t *cid)
{
	struct large_file *l;

	if (v->nlnow == v->caplnow) {
		size_t cap = v->caplnow ? 2 * v->caplnow : 256;

		l = realloc(v->lnow, cap * sizeof(*l));
		if (!l)
			return;
		v->lnow = l;
		v->caplnow = cap;
	}
	l = &v->lnow[v->nlnow];
	l->path = strdup(path);
	if (!l->path)
		return;
	l->size = e->size;
	l->mtime = e->mtime_sec;
	memcpy(l->cid, cid, MV_ID_LEN);
	v->nlnow++;
}

/* Replace the job's large messages in the catalogue by this backup's
 * (inside the snapshot's transaction). */
static int large_store(struct mail_view *v, struct mv_err *err)
{
	sqlite3_stmt *del = NULL, *ins = NULL;
	size_t i;
	int rc = 0;

	if (sqlite3_prepare_v2(v->db, "DELETE FROM large WHERE job = ?", -1,
			       &del, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(v->db,
			       "INSERT OR REPLACE INTO large (job, path, size,"
			       " mtime, cid) VALUES (?,?,?,?,?)",
			       -1, &ins, NULL) != SQLITE_OK)
		goto db_fail;
	sqlite3_bind_text(del, 1, v->job, -1, SQLITE_STATIC);
	if (sqlite3_step(del) != SQLITE_DONE)
		goto db_fail;
	for (i = 0; i < v->nlnow; i++) {
		const struct large_file *l = &v->lnow[i];

		sqlite3_reset(ins);
		sqlite3_bind_text(ins, 1, v->job, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 2, l->path, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 3, (int64_t)l->size);
		sqlite3_bind_int64(ins, 4, l->mtime);
		sqlite3_bind_blob(ins, 5, l->cid, MV_ID_LEN, SQLITE_STATIC);
		if (sqlite3_step(ins) != SQLITE_DONE)
			goto db_fail;
	}
	goto out;
db_fail:
	rc = mv_err_set(err, -EIO, "catalogue: large messages: %s",
			sqlite3_errmsg(v->db));
out:
	sqlite3_finalize(del);
	sqlite3_finalize(ins);
	return rc;
}

#define CATALOG_BATCH 2000 /* new messages per catalogue transaction */

/* Catalogue a new message now (its msg and view rows depend on its
 * content only), so that the parsed headers need not be held until the
 * snapshot is committed. */
static int catalog_write(struct mail_view *v, struct vmsg *m,
			 struct mv_err *err)
{
	int rc;

	if (!v->view_ins &&
	    sqlite3_prepare_v2(v->db,
			       "INSERT OR IGNORE INTO view (cid, date, from_,"
			       " subject, size, layers) VALUES (?,?,?,?,?,?)",
			       -1, &v->view_ins, NULL) != SQLITE_OK)
		return mv_err_set(err, -EIO, "catalogue: %s",
				  sqlite3_errmsg(v->db));
	rc = mail_catalog_add(v->cat, m->cid, MV_ID_LEN, m->msg, err);
	if (rc)
		return rc;
	sqlite3_reset(v->view_ins);
	sqlite3_bind_blob(v->view_ins, 1, m->cid, MV_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(v->view_ins, 2, m->date);
	sqlite3_bind_text(v->view_ins, 3, m->from, -1, SQLITE_STATIC);
	sqlite3_bind_text(v->view_ins, 4, m->subject, -1, SQLITE_STATIC);
	sqlite3_bind_int64(v->view_ins, 5, (int64_t)m->size);
	sqlite3_bind_int(v->view_ins, 6, (int)m->layers);
	if (sqlite3_step(v->view_ins) != SQLITE_DONE)
		return mv_err_set(err, -EIO, "catalogue: %s",
				  sqlite3_errmsg(v->db));
	sqlite3_reset(v->view_ins);
	sqlite3_clear_bindings(v->view_ins);
	mail_msg_release(m->msg);
	free(m->msg);
	m->msg = NULL;
	return 0;
}

int view_catalog_batch_end(struct mail_view *v, struct mv_err *err)
{
	if (!v->batch)
		return 0;
	v->batch = 0;
	if (sqlite3_exec(v->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		return mv_err_set(err, -EIO, "catalogue: %s",
				  sqlite3_errmsg(v->db));
	return 0;
}

/* A parsed maildir, loose or dump message: catalogued at once (a
 * Stalwart blob waits: it may be a sieve script, placed or not). */
int view_catalog_early(struct mail_view *v, struct vmsg *m, struct mv_err *err)
{
	int rc;

	if (!m->msg || m->kind == VK_BLOB || m->state != VM_OK)
		return 0;
	/* dated by its place (no usable Date): named and catalogued at
	 * finish, once every copy of it is known (fallback_dates_unify) */
	if (m->msg->flags & DATE_FALLBACK)
		return 0;
	if (!v->cat) {
		mail_msg_release(m->msg);
		free(m->msg);
		m->msg = NULL;
		return 0;
	}
	if (!v->batch &&
	    sqlite3_exec(v->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return mv_err_set(err, -EIO, "catalogue: %s",
				  sqlite3_errmsg(v->db));
	v->batch++;
	rc = catalog_write(v, m, err);
	if (!rc && v->batch >= CATALOG_BATCH)
		rc = view_catalog_batch_end(v, err);
	return rc;
}

bool view_known_find_entry(struct mail_view *v, const struct tree_entry *e)
{
	uint8_t cid[MV_ID_LEN];

	mail_view_content_id(v->r, e, cid);
	return view_known_find(v, cid) != NULL;
}

/* ---- opening the catalogue ------------------------------------------- */

static const char view_schema[] =
	"CREATE TABLE IF NOT EXISTS view ("
	" cid BLOB PRIMARY KEY, date INTEGER, from_ TEXT, subject TEXT,"
	" size INTEGER, layers INTEGER) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS large ("
	" job TEXT NOT NULL, path TEXT NOT NULL, size INTEGER,"
	" mtime INTEGER, cid BLOB, PRIMARY KEY (job, path)) WITHOUT ROWID;";

/* Beside index.db: in the repository directory when the index is there,
 * in the private cache when the index is a cached copy (sftp://, and an
 * encrypted repository, which must not hold the catalogue in clear). */
int mail_view_catalog_path(struct repo *r, char *out, size_t n,
			   struct mv_err *err)
{
	const char *ix = repo_index_path(r);
	const char *slash = ix ? strrchr(ix, '/') : NULL;
	int k;

	if (!slash)
		return mv_err_set(err, -EINVAL, "repository '%s' has no index",
				  repo_location(r));
	k = snprintf(out, n, "%.*s/catalog.db", (int)(slash - ix), ix);
	if (k < 0 || (size_t)k >= n)
		return mv_err_set(err, -ENAMETOOLONG,
				  "catalogue path too long");
	return 0;
}

int view_catalog_open(struct mail_view *v, struct mv_err *err)
{
	char path[4096], *slash;
	int rc;

	rc = mail_view_catalog_path(v->r, path, sizeof(path), err);
	if (rc)
		return rc;
	slash = strrchr(path, '/');
	if (slash) { /* the cache directory may not exist yet */
		*slash = '\0';
		rc = mv_mkdir_p(path, 0700);
		*slash = '/';
		if (rc)
			return mv_err_set(err, rc, "cannot create '%s'", path);
	}
	rc = mv_create_private(path); /* not 0644 less the umask */
	if (rc)
		return mv_err_set(err, rc, "cannot create catalogue '%s': %s",
				  path, strerror(-rc));
	if (sqlite3_open_v2(path, &v->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
			    NULL) != SQLITE_OK) {
		rc = mv_err_set(err, -EIO, "cannot open catalogue '%s': %s",
				path, v->db ? sqlite3_errmsg(v->db) : "");
		sqlite3_close(v->db);
		v->db = NULL;
		return rc;
	}
	rc = index_sqlite_defend(v->db, "catalogue", err);
	if (rc)
		return rc;
	sqlite3_busy_timeout(v->db, 10000);
	/* a daily backup looks every message up (by content, then its
	 * place) in random order: with SQLite's default 2 MB page cache
	 * most lookups went to the file (16k preads a day at 17k messages,
	 * +18 % on the backup).  32 MiB holds the catalogue of about 50k
	 * messages; larger ones still read less. */
	sqlite3_exec(v->db,
		     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
		     " PRAGMA cache_size=-32768",
		     NULL, NULL, NULL);
	if (sqlite3_exec(v->db, view_schema, NULL, NULL, NULL) != SQLITE_OK)
		return mv_err_set(err, -EIO, "catalogue '%s': %s", path,
				  sqlite3_errmsg(v->db));
	rc = mail_catalog_open(v->db, &v->cat, err);
	if (!rc) {
		/* what other machines (or a prune) stored in the repository
		 * first; a repository that cannot give its segments now
		 * costs a fresh client a rebuild, not this backup */
		struct mv_err serr = MV_ERR_INIT;

		if (catseg_sync(v->r, v->db, &v->seg_sync, &serr))
			v->seg_sync.damaged++;
	}
	if (!rc && v->index_body)
		rc = mail_catalog_keep_bodies(v->cat, err);
	if (!rc)
		rc = known_load(v, err);
	if (!rc)
		rc = large_load(v, err);
	if (rc)
		mv_err_prefix(err, "'%s'", path);
	return rc;
}

/* ---- catalogue -------------------------------------------------------- */

/* Record every message's place in the catalogue, in one transaction left
 * open for mail_view_commit: the bulk of the catalogue's work, done on
 * its own thread while the repository writes the snapshot's trees. */
static int catalog_record(struct mail_view *v, struct mv_err *err)
{
	sqlite3_stmt *ins = NULL;
	size_t i;
	int rc;

	rc = view_catalog_batch_end(v, err);
	if (rc)
		return rc;
	rc = mail_catalog_snapshot_begin(v->cat, v->job, NULL, v->rec_time,
					 &v->rec_seq, err);
	if (rc)
		return rc;
	v->rec_open = true;
	if (sqlite3_prepare_v2(v->db,
			       "INSERT OR IGNORE INTO view (cid, date, from_,"
			       " subject, size, layers) VALUES (?,?,?,?,?,?)",
			       -1, &ins, NULL) != SQLITE_OK) {
		rc = mv_err_set(err, -EIO, "catalogue: %s",
				sqlite3_errmsg(v->db));
		goto out;
	}
	/* every new message first: a message in several mailboxes is
	 * parsed into one of its places only */
	for (i = 0; !rc && i < v->nmsgs; i++) {
		struct vmsg *m = &v->msgs[i];

		if (m->state != VM_OK || m->hidden || !m->msg)
			continue;
		rc = mail_catalog_add(v->cat, m->cid, MV_ID_LEN, m->msg, err);
		if (rc)
			break;
		sqlite3_reset(ins);
		sqlite3_bind_blob(ins, 1, m->cid, MV_ID_LEN, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 2, m->date);
		sqlite3_bind_text(ins, 3, m->from, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 4, m->subject, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 5, (int64_t)m->size);
		sqlite3_bind_int(ins, 6, (int)m->layers);
		if (sqlite3_step(ins) != SQLITE_DONE)
			rc = mv_err_set(err, -EIO, "catalogue: %s",
					sqlite3_errmsg(v->db));
	}
	for (i = 0; !rc && i < v->nmsgs; i++) {
		struct vmsg *m = &v->msgs[i];

		if (m->state == VM_OK && !m->hidden)
			rc = mail_catalog_seen(v->cat, v->rec_seq, m->cid,
					       MV_ID_LEN, m->account,
					       m->mailbox, m->name, err);
	}
	if (!rc)
		rc = mail_catalog_snapshot_close(v->cat, v->rec_seq, err);
	if (!rc)
		rc = large_store(v, err);
out:
	sqlite3_finalize(ins);
	if (rc) {
		mail_catalog_snapshot_abort(v->cat);
		v->rec_open = false;
	}
	return rc;
}

static void *catalog_record_main(void *arg)
{
	struct mail_view *v = arg;

	v->rec_rc = catalog_record(v, &v->rec_err);
	/* nothing reads the messages after this; freeing 17k of them took
	 * 20 ms at the end of the backup, on one thread */
	view_release_messages(v);
	return NULL;
}

/* Start catalog_record; run inline when no thread can be had. */
void view_catalog_record_start(struct mail_view *v, int64_t time_ns)
{
	v->rec_time = time_ns / 1000000000;
	if (pthread_create(&v->rec_thread, NULL, catalog_record_main, v) == 0)
		v->rec_running = true;
	else
		catalog_record_main(v);
}

void view_catalog_record_join(struct mail_view *v)
{
	if (!v->rec_running)
		return;
	pthread_join(v->rec_thread, NULL);
	v->rec_running = false;
}

int mail_view_commit(struct mail_view *v, const struct snapshot *snap,
		     struct mv_err *err)
{
	char id[2 * MV_ID_LEN + 1];
	int rc;

	if (!v->cat || !v->nmsgs)
		return 0;
	view_catalog_record_join(v);
	if (v->rec_rc) {
		mv_err_set(err, v->rec_rc, "%s", mv_err_msg(&v->rec_err));
		return v->rec_rc;
	}
	if (!v->rec_open)
		return mv_err_set(err, -EINVAL,
				  "catalogue: the view was not finished");
	mv_hex(snap->id, MV_ID_LEN, id);
	rc = mail_catalog_snapshot_name(v->cat, v->rec_seq, id, err);
	if (!rc)
		rc = mail_catalog_snapshot_end(v->cat, v->rec_seq, err);
	if (rc)
		mail_catalog_snapshot_abort(v->cat);
	v->rec_open = false;
	if (rc)
		return rc;
	v->st.catalog = true;
	/* and into the repository, for every other machine */
	return catseg_publish(v->r, v->db, id, err);
}
