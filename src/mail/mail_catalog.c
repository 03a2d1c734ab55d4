/*
 * mail_catalog: distinct messages, their places as snapshot ranges, FTS5.
 *
 * Invariants:
 *  1. msg.cid is unique: one row per distinct message content.
 *  2. A place row [first_snap, last_snap] means the message was at
 *     (job, account, mailbox, name) in every snapshot of that job whose
 *     sequence number lies in the range; a gap starts a new row.
 *     last_snap = PLACE_OPEN: still there in the job's latest snapshot.
 *     A daily backup then writes only what changed (new places, places
 *     closed at the previous snapshot); an unchanged message's row is
 *     read, never rewritten.
 *  3. snap.seq grows with each snapshot recorded; ranges compare seqs.
 *  4. msg_fts.rowid = msg.id (contentless FTS5: only the index is kept).
 */
#include "mail_catalog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

/* last_snap of a place still present: larger than any real seq, so
 * "seq BETWEEN first_snap AND last_snap" holds for every later snapshot. */
#define PLACE_OPEN INT64_MAX
#define PLACE_OPEN_SQL "9223372036854775807"

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS msg ("
	" id INTEGER PRIMARY KEY,"
	" cid BLOB NOT NULL UNIQUE,"
	" message_id TEXT, date INTEGER, from_ TEXT, to_ TEXT, cc TEXT,"
	" subject TEXT, size INTEGER, attachments TEXT, flags INTEGER);"
	"CREATE INDEX IF NOT EXISTS msg_message_id ON msg(message_id);"
	"CREATE INDEX IF NOT EXISTS msg_date ON msg(date);"
	"CREATE TABLE IF NOT EXISTS snap ("
	" seq INTEGER PRIMARY KEY, job TEXT NOT NULL,"
	" snap_id TEXT NOT NULL UNIQUE, time INTEGER);"
	"CREATE INDEX IF NOT EXISTS snap_job ON snap(job, seq);"
	"CREATE TABLE IF NOT EXISTS place ("
	" id INTEGER PRIMARY KEY,"
	" msg INTEGER NOT NULL REFERENCES msg(id),"
	" job TEXT NOT NULL, account TEXT NOT NULL, mailbox TEXT NOT NULL,"
	" name TEXT NOT NULL,"
	" first_snap INTEGER NOT NULL, last_snap INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS place_key ON place(msg, job, last_snap);"
	"CREATE INDEX IF NOT EXISTS place_job ON place(job, last_snap);"
	"CREATE VIRTUAL TABLE IF NOT EXISTS msg_fts USING fts5("
	" subject, from_, to_, cc, attachments, body, content='',"
	" tokenize='unicode61 remove_diacritics 2');";

struct mail_catalog {
	sqlite3 *db;	      /* borrowed */
	sqlite3_stmt *has;    /* SELECT id FROM msg WHERE cid = ? */
	sqlite3_stmt *lookup; /* the place already extended to this seq */
	int64_t *seen;	      /* place ids seen in this snapshot */
	size_t nseen, capseen;
	sqlite3_stmt *insert; /* INSERT INTO place */
	char *job;	      /* job of the snapshot being recorded */
	int64_t seq, prev;    /* its seq and the job's previous seq (or -1) */
	bool closed;	      /* unseen places closed (snapshot_close) */
};

static int db_err(struct mail_catalog *cat, struct mv_err *err,
		  const char *what)
{
	return mv_err_set(err, -EIO, "catalogue: %s: %s", what,
			  sqlite3_errmsg(cat->db));
}

int mail_catalog_open(sqlite3 *db, struct mail_catalog **out,
		      struct mv_err *err)
{
	struct mail_catalog *cat = calloc(1, sizeof(*cat));
	int rc;

	if (!cat)
		return mv_err_set(err, -ENOMEM, "out of memory");
	cat->db = db;
	if (sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK) {
		rc = db_err(cat, err, "cannot create the schema");
		goto fail;
	}
	if (sqlite3_prepare_v2(db, "SELECT id FROM msg WHERE cid = ?", -1,
			       &cat->has, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "INSERT INTO place (msg, job, account, mailbox,"
			       " name, first_snap, last_snap)"
			       " VALUES (?, ?, ?, ?, ?, ?6, " PLACE_OPEN_SQL
			       ")",
			       -1, &cat->insert, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(
		    db,
		    "SELECT id FROM place WHERE msg = ?1 AND job = ?2"
		    " AND last_snap = ?3 AND account = ?4"
		    " AND mailbox = ?5 AND name = ?6",
		    -1, &cat->lookup, NULL) != SQLITE_OK) {
		rc = db_err(cat, err, "cannot prepare statements");
		goto fail;
	}
	*out = cat;
	return 0;
fail:
	mail_catalog_close(cat);
	return rc;
}

void mail_catalog_close(struct mail_catalog *cat)
{
	if (!cat)
		return;
	sqlite3_finalize(cat->has);
	sqlite3_finalize(cat->insert);
	sqlite3_finalize(cat->lookup);
	free(cat->seen);
	free(cat->job);
	free(cat);
}

/* msg.id of cid: > 0, 0 when unknown, < 0 on error. */
static int64_t msg_id(struct mail_catalog *cat, const void *cid, size_t n,
		      struct mv_err *err)
{
	int64_t id = 0;
	int rc;

	sqlite3_reset(cat->has);
	sqlite3_bind_blob(cat->has, 1, cid, (int)n, SQLITE_STATIC);
	rc = sqlite3_step(cat->has);
	if (rc == SQLITE_ROW)
		id = sqlite3_column_int64(cat->has, 0);
	else if (rc != SQLITE_DONE)
		id = db_err(cat, err, "lookup failed");
	sqlite3_reset(cat->has);
	return id;
}

int mail_catalog_has(struct mail_catalog *cat, const void *cid, size_t cid_len,
		     struct mv_err *err)
{
	int64_t id = msg_id(cat, cid, cid_len, err);

	return id < 0 ? (int)id : id > 0;
}

static char *join_attachments(const struct mail_msg *m)
{
	size_t i, len = 1, off = 0;
	char *s;

	for (i = 0; i < m->n_attachments; i++)
		len += strlen(m->attachments[i]) + 1;
	s = malloc(len);
	if (!s)
		return NULL;
	for (i = 0; i < m->n_attachments; i++) {
		size_t k = strlen(m->attachments[i]);

		if (i)
			s[off++] = '\n';
		memcpy(s + off, m->attachments[i], k);
		off += k;
	}
	s[off] = '\0';
	return s;
}

int mail_catalog_add(struct mail_catalog *cat, const void *cid, size_t cid_len,
		     const struct mail_msg *m, struct mv_err *err)
{
	sqlite3_stmt *st = NULL, *fts = NULL;
	char *att = NULL;
	int64_t id;
	int rc = 0;

	id = msg_id(cat, cid, cid_len, err);
	if (id != 0)
		return id < 0 ? (int)id : 0;
	att = join_attachments(m);
	if (!att)
		return mv_err_set(err, -ENOMEM, "out of memory");
	if (sqlite3_prepare_v2(cat->db,
			       "INSERT INTO msg (cid, message_id, date, from_,"
			       " to_, cc, subject, size, attachments, flags)"
			       " VALUES (?,?,?,?,?,?,?,?,?,?)",
			       -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(
		    cat->db,
		    "INSERT INTO msg_fts (rowid, subject, from_, to_,"
		    " cc, attachments, body)"
		    " VALUES (?,?,?,?,?,?,?)",
		    -1, &fts, NULL) != SQLITE_OK) {
		rc = db_err(cat, err, "cannot prepare insert");
		goto out;
	}
	sqlite3_bind_blob(st, 1, cid, (int)cid_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, m->message_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, m->date);
	if (m->from && m->from_addr && strcmp(m->from, m->from_addr) != 0)
		sqlite3_bind_text(
			st, 4,
			sqlite3_mprintf("%s <%s>", m->from, m->from_addr), -1,
			sqlite3_free);
	else
		sqlite3_bind_text(st, 4, m->from ? m->from : m->from_addr, -1,
				  SQLITE_STATIC);
	sqlite3_bind_text(st, 5, m->to, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, m->cc, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, m->subject, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, (int64_t)m->size);
	sqlite3_bind_text(st, 9, att, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 10, m->flags);
	if (sqlite3_step(st) != SQLITE_DONE) {
		rc = db_err(cat, err, "cannot add message");
		goto out;
	}
	id = sqlite3_last_insert_rowid(cat->db);
	sqlite3_bind_int64(fts, 1, id);
	sqlite3_bind_text(fts, 2, m->subject, -1, SQLITE_STATIC);
	sqlite3_bind_text(fts, 3,
			  sqlite3_mprintf("%s %s", m->from ? m->from : "",
					  m->from_addr ? m->from_addr : ""),
			  -1, sqlite3_free);
	sqlite3_bind_text(fts, 4, m->to, -1, SQLITE_STATIC);
	sqlite3_bind_text(fts, 5, m->cc, -1, SQLITE_STATIC);
	sqlite3_bind_text(fts, 6, att, -1, SQLITE_STATIC);
	sqlite3_bind_text(fts, 7, m->body, -1, SQLITE_STATIC);
	if (sqlite3_step(fts) != SQLITE_DONE)
		rc = db_err(cat, err, "cannot index message");
out:
	sqlite3_finalize(st);
	sqlite3_finalize(fts);
	free(att);
	return rc;
}

int mail_catalog_snapshot_begin(struct mail_catalog *cat, const char *job,
				const char *snap_id, int64_t time, int64_t *seq,
				struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_exec(cat->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return db_err(cat, err, "cannot begin");
	free(cat->job);
	cat->job = strdup(job);
	if (!cat->job) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	cat->prev = -1;
	if (sqlite3_prepare_v2(cat->db,
			       "SELECT max(seq) FROM snap WHERE job = ?", -1,
			       &st, NULL) != SQLITE_OK) {
		rc = db_err(cat, err, "cannot read snapshots");
		goto fail;
	}
	sqlite3_bind_text(st, 1, job, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_type(st, 0) != SQLITE_NULL)
		cat->prev = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(cat->db,
			       "INSERT INTO snap (job, snap_id, time)"
			       " VALUES (?, ?, ?)",
			       -1, &st, NULL) != SQLITE_OK) {
		rc = db_err(cat, err, "cannot record snapshot");
		goto fail;
	}
	sqlite3_bind_text(st, 1, job, -1, SQLITE_STATIC);
	if (snap_id) {
		sqlite3_bind_text(st, 2, snap_id, -1, SQLITE_STATIC);
	} else {
		/* unique until snapshot_name, inside this transaction only */
		char tmp[48];

		snprintf(tmp, sizeof(tmp), "pending-%ld-%lld", (long)getpid(),
			 (long long)time);
		sqlite3_bind_text(st, 2, tmp, -1, SQLITE_TRANSIENT);
	}
	sqlite3_bind_int64(st, 3, time);
	if (sqlite3_step(st) != SQLITE_DONE) {
		rc = db_err(cat, err, "cannot record snapshot");
		sqlite3_finalize(st);
		goto fail;
	}
	sqlite3_finalize(st);
	cat->seq = sqlite3_last_insert_rowid(cat->db);
	cat->nseen = 0;
	cat->closed = false;
	/* Places open in the previous snapshot stay open unless closed in
	 * snapshot_close.  Catalogues written before open ranges ended them
	 * at the job's latest snapshot: open those (once; afterwards no
	 * place ends at the previous snapshot, so this finds no row). */
	if (cat->prev >= 0) {
		if (sqlite3_prepare_v2(
			    cat->db,
			    "UPDATE place SET last_snap = " PLACE_OPEN_SQL
			    " WHERE job = ?1 AND last_snap = ?2",
			    -1, &st, NULL) != SQLITE_OK) {
			rc = db_err(cat, err, "cannot extend ranges");
			goto fail;
		}
		sqlite3_bind_text(st, 1, job, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, cat->prev);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : 1;
		sqlite3_finalize(st);
		if (rc) {
			rc = db_err(cat, err, "cannot extend ranges");
			goto fail;
		}
	}
	*seq = cat->seq;
	return 0;
fail:
	sqlite3_exec(cat->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int mail_catalog_seen(struct mail_catalog *cat, int64_t seq, const void *cid,
		      size_t cid_len, const char *account, const char *mailbox,
		      const char *name, struct mv_err *err)
{
	int64_t id;
	int rc = 0;

	if (!cat->job || seq != cat->seq)
		return mv_err_set(err, -EINVAL,
				  "catalogue: snapshot %lld not begun",
				  (long long)seq);
	id = msg_id(cat, cid, cid_len, err);
	if (id <= 0)
		return id < 0 ? (int)id
			      : mv_err_set(err, -ENOENT,
					   "catalogue: message not added");
	sqlite3_reset(cat->lookup);
	sqlite3_bind_int64(cat->lookup, 1, id);
	sqlite3_bind_text(cat->lookup, 2, cat->job, -1, SQLITE_STATIC);
	sqlite3_bind_int64(cat->lookup, 3, PLACE_OPEN);
	sqlite3_bind_text(cat->lookup, 4, account, -1, SQLITE_STATIC);
	sqlite3_bind_text(cat->lookup, 5, mailbox, -1, SQLITE_STATIC);
	sqlite3_bind_text(cat->lookup, 6, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(cat->lookup);
	if (rc == SQLITE_ROW) {
		/* open since an earlier snapshot, or seen twice: keep it */
		int64_t pid = sqlite3_column_int64(cat->lookup, 0);

		sqlite3_reset(cat->lookup);
		if (cat->nseen == cat->capseen) {
			size_t cap = cat->capseen ? cat->capseen * 2 : 1024;
			int64_t *p = realloc(cat->seen, cap * sizeof(*p));

			if (!p)
				return mv_err_set(err, -ENOMEM,
						  "out of memory");
			cat->seen = p;
			cat->capseen = cap;
		}
		cat->seen[cat->nseen++] = pid;
		return 0;
	}
	sqlite3_reset(cat->lookup);
	if (rc != SQLITE_DONE)
		return db_err(cat, err, "cannot look a place up");
	rc = 0;
	sqlite3_reset(cat->insert);
	sqlite3_bind_int64(cat->insert, 1, id);
	sqlite3_bind_text(cat->insert, 2, cat->job, -1, SQLITE_STATIC);
	sqlite3_bind_text(cat->insert, 3, account, -1, SQLITE_STATIC);
	sqlite3_bind_text(cat->insert, 4, mailbox, -1, SQLITE_STATIC);
	sqlite3_bind_text(cat->insert, 5, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(cat->insert, 6, seq);
	if (sqlite3_step(cat->insert) != SQLITE_DONE)
		rc = db_err(cat, err, "cannot add a place");
	sqlite3_reset(cat->insert);
	return rc;
}

static int id_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Places open before this snapshot but not seen in it: the message left
 * that place, so its range ends at the previous snapshot. */
static int close_unseen(struct mail_catalog *cat, struct mv_err *err)
{
	sqlite3_stmt *sel = NULL, *upd = NULL;
	int64_t *gone = NULL;
	size_t ngone = 0, cap = 0, i;
	int rc = 0;

	qsort(cat->seen, cat->nseen, sizeof(*cat->seen), id_cmp);
	if (sqlite3_prepare_v2(cat->db,
			       "SELECT id FROM place WHERE job = ?1"
			       " AND last_snap = " PLACE_OPEN_SQL
			       " AND first_snap < ?2",
			       -1, &sel, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(cat->db,
			       "UPDATE place SET last_snap = ?1 WHERE id = ?2",
			       -1, &upd, NULL) != SQLITE_OK) {
		rc = db_err(cat, err, "cannot close ranges");
		goto out;
	}
	sqlite3_bind_text(sel, 1, cat->job, -1, SQLITE_STATIC);
	sqlite3_bind_int64(sel, 2, cat->seq);
	while (sqlite3_step(sel) == SQLITE_ROW) {
		int64_t pid = sqlite3_column_int64(sel, 0);

		if (bsearch(&pid, cat->seen, cat->nseen, sizeof(*cat->seen),
			    id_cmp))
			continue;
		if (ngone == cap) {
			int64_t *p;

			cap = cap ? cap * 2 : 256;
			p = realloc(gone, cap * sizeof(*p));
			if (!p) {
				rc = mv_err_set(err, -ENOMEM, "out of memory");
				goto out;
			}
			gone = p;
		}
		gone[ngone++] = pid;
	}
	for (i = 0; i < ngone; i++) {
		sqlite3_reset(upd);
		sqlite3_bind_int64(upd, 1, cat->prev);
		sqlite3_bind_int64(upd, 2, gone[i]);
		if (sqlite3_step(upd) != SQLITE_DONE) {
			rc = db_err(cat, err, "cannot close a range");
			goto out;
		}
	}
out:
	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	free(gone);
	cat->nseen = 0;
	return rc;
}

int mail_catalog_snapshot_name(struct mail_catalog *cat, int64_t seq,
			       const char *snap_id, struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;

	if (!cat->job || seq != cat->seq)
		return mv_err_set(err, -EINVAL,
				  "catalogue: snapshot %lld not begun",
				  (long long)seq);
	if (sqlite3_prepare_v2(cat->db,
			       "UPDATE snap SET snap_id = ?1 WHERE seq = ?2",
			       -1, &st, NULL) != SQLITE_OK)
		return db_err(cat, err, "cannot name the snapshot");
	sqlite3_bind_text(st, 1, snap_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, seq);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_err(cat, err, "cannot name the snapshot");
	sqlite3_finalize(st);
	return rc;
}

int mail_catalog_snapshot_close(struct mail_catalog *cat, int64_t seq,
				struct mv_err *err)
{
	int rc = 0;

	if (!cat->job || seq != cat->seq)
		return mv_err_set(err, -EINVAL,
				  "catalogue: snapshot %lld not begun",
				  (long long)seq);
	if (!cat->closed && cat->prev >= 0)
		rc = close_unseen(cat, err);
	if (!rc)
		cat->closed = true;
	return rc;
}

int mail_catalog_snapshot_end(struct mail_catalog *cat, int64_t seq,
			      struct mv_err *err)
{
	int rc = mail_catalog_snapshot_close(cat, seq, err);

	if (rc)
		return rc;
	free(cat->job);
	cat->job = NULL;
	if (sqlite3_exec(cat->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		return db_err(cat, err, "cannot commit");
	return 0;
}

void mail_catalog_snapshot_abort(struct mail_catalog *cat)
{
	if (!cat->job)
		return;
	free(cat->job);
	cat->job = NULL;
	cat->nseen = 0;
	sqlite3_exec(cat->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Append 'col : "words"' (quotes doubled) to an FTS5 expression. */
static void fts_term(sqlite3_str *s, const char *cols, const char *words)
{
	const char *p;

	if (sqlite3_str_length(s))
		sqlite3_str_appendall(s, " AND ");
	if (cols)
		sqlite3_str_appendf(s, "{%s} : ", cols);
	sqlite3_str_appendchar(s, 1, '"');
	for (p = words; *p; p++) {
		if (*p == '"')
			sqlite3_str_appendchar(s, 1, '"');
		sqlite3_str_appendchar(s, 1, *p);
	}
	sqlite3_str_appendchar(s, 1, '"');
}

int mail_catalog_find(struct mail_catalog *cat,
		      const struct mail_catalog_query *q,
		      mail_catalog_hit_fn cb, void *ctx, struct mv_err *err)
{
	sqlite3_str *sql = sqlite3_str_new(cat->db);
	sqlite3_str *match = sqlite3_str_new(cat->db);
	sqlite3_stmt *st = NULL;
	char *msql = NULL, *mexpr = NULL;
	int rc, n = 0, step;

	if (q->from)
		fts_term(match, "from_", q->from);
	if (q->to)
		fts_term(match, "to_ cc", q->to);
	if (q->subject)
		fts_term(match, "subject", q->subject);
	if (q->text)
		fts_term(match, NULL, q->text);
	mexpr = sqlite3_str_finish(match);
	/* Filter, sort and limit on place and msg alone; the snapshot names
	 * are joined to the rows kept only.  latest: each job's newest
	 * snapshot, the end of an open range. */
	sqlite3_str_appendall(
		sql, "WITH latest(job, seq) AS"
		     " (SELECT job, max(seq) FROM snap GROUP BY job)"
		     " SELECT m.cid, m.message_id, m.from_, m.to_, m.subject,"
		     " m.date, m.size, p.job, p.account, p.mailbox, p.name,"
		     " s1.snap_id, s2.snap_id, k.gone FROM"
		     " (SELECT p.id AS pid, m.date AS date, l.seq AS latest,"
		     " p.last_snap < l.seq AS gone"
		     " FROM msg m JOIN place p ON p.msg = m.id"
		     " JOIN latest l ON l.job = p.job WHERE 1");
	if (mexpr && *mexpr)
		sqlite3_str_appendall(sql, " AND m.id IN (SELECT rowid FROM"
					   " msg_fts WHERE msg_fts MATCH ?1)");
	if (q->has_since)
		sqlite3_str_appendall(sql, " AND m.date >= ?2");
	if (q->has_until)
		sqlite3_str_appendall(sql, " AND m.date < ?3");
	if (q->account)
		sqlite3_str_appendall(sql, " AND p.account = ?4");
	if (q->job)
		sqlite3_str_appendall(sql, " AND p.job = ?5");
	if (q->snapshot)
		sqlite3_str_appendall(sql,
				      " AND (SELECT seq FROM snap WHERE"
				      " snap_id = ?6) BETWEEN p.first_snap"
				      " AND p.last_snap AND p.job = (SELECT"
				      " job FROM snap WHERE snap_id = ?6)");
	if (q->deleted)
		sqlite3_str_appendall(
			sql, " AND p.last_snap < l.seq AND NOT EXISTS"
			     " (SELECT 1 FROM place o WHERE o.msg = p.msg"
			     " AND o.job = p.job AND o.last_snap >= l.seq)");
	sqlite3_str_appendall(sql, " ORDER BY m.date DESC, p.id");
	if (q->limit)
		sqlite3_str_appendf(sql, " LIMIT %u", q->limit);
	sqlite3_str_appendall(
		sql, ") k JOIN place p ON p.id = k.pid"
		     " JOIN msg m ON m.id = p.msg"
		     " JOIN snap s1 ON s1.seq = p.first_snap"
		     " JOIN snap s2 ON s2.seq = min(p.last_snap, k.latest)"
		     " ORDER BY k.date DESC, k.pid");
	msql = sqlite3_str_finish(sql);
	if (!msql) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (sqlite3_prepare_v2(cat->db, msql, -1, &st, NULL) != SQLITE_OK) {
		rc = db_err(cat, err, "cannot prepare the query");
		goto out;
	}
	if (mexpr && *mexpr)
		sqlite3_bind_text(st, 1, mexpr, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, q->since);
	sqlite3_bind_int64(st, 3, q->until);
	sqlite3_bind_text(st, 4, q->account, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, q->job, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, q->snapshot, -1, SQLITE_STATIC);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct mail_catalog_hit h;

		h.cid = sqlite3_column_blob(st, 0);
		h.cid_len = (size_t)sqlite3_column_bytes(st, 0);
		h.message_id = (const char *)sqlite3_column_text(st, 1);
		h.from = (const char *)sqlite3_column_text(st, 2);
		h.to = (const char *)sqlite3_column_text(st, 3);
		h.subject = (const char *)sqlite3_column_text(st, 4);
		h.date = sqlite3_column_int64(st, 5);
		h.size = sqlite3_column_int64(st, 6);
		h.job = (const char *)sqlite3_column_text(st, 7);
		h.account = (const char *)sqlite3_column_text(st, 8);
		h.mailbox = (const char *)sqlite3_column_text(st, 9);
		h.name = (const char *)sqlite3_column_text(st, 10);
		h.first_snap = (const char *)sqlite3_column_text(st, 11);
		h.last_snap = (const char *)sqlite3_column_text(st, 12);
		h.deleted = sqlite3_column_int(st, 13) != 0;
		n++;
		if (cb && cb(ctx, &h) != 0)
			break;
	}
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		rc = db_err(cat, err, "query failed");
	else
		rc = n;
out:
	sqlite3_finalize(st);
	sqlite3_free(msql);
	sqlite3_free(mexpr);
	return rc;
}
