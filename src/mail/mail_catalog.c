/*
 * mail_catalog: distinct messages, their places as snapshot ranges, FTS5.
 *
 * Invariants:
 *  1. A content id is split in two halves, each stored once: msg.cid
 *     holds bytes 0-15 (what view names and hits need), msg_cid.key bytes
 *     16-31 (the lookup key of the WITHOUT ROWID table).  One msg row per
 *     distinct content.
 *  2. A place row [first_snap, last_snap] means the message was in
 *     folder (job, account, mailbox) under its name in every snapshot of
 *     that job whose sequence number lies in the range; a gap starts a
 *     new row.  last_snap NULL: open, still there in the job's latest
 *     snapshot.  A daily backup then writes only what changed (new
 *     places, places closed at the previous snapshot); an unchanged
 *     message's row is read, never rewritten.
 *  3. place.name is NULL when the name is mail_name_format() of the msg
 *     row (date, from_, subject, cid), the integer n when it is that
 *     name's n-th variant, else the name itself: a name is never stored
 *     when the message's columns give it.
 *  4. snap.seq grows with each snapshot recorded; ranges compare seqs.
 *     A place is recorded in its first snapshot, as the n-th of it, so
 *     (first_snap, n) is the order places were recorded in (rows
 *     migrated from version 1 take n = their old rowid, which grew the
 *     same way).
 *  5. msg_fts.rowid = msg.id (contentless FTS5: only the index is kept).
 *  6. msg.layers IS NULL: the mail view has not named the message; the
 *     view's `view` (mail_view.c's table before version 2) lists only
 *     rows where it is set, vsize being its size when it differs.
 */
#include "mail_catalog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "mail_name.h"

/* last_snap of a place still present is NULL (no bytes in the row); read
 * as this, larger than any real seq, so "seq BETWEEN first_snap AND
 * last_snap" holds for every later snapshot. */
#define PLACE_OPEN_SQL "9223372036854775807"
#define LAST_SQL(p) "coalesce(" p ".last_snap, " PLACE_OPEN_SQL ")"
#define CID_LEN MAIL_CATALOG_ID_LEN /* keyed 256-bit hashes */
#define CID_HEAD 16 /* bytes of it in msg.cid; the rest is msg_cid.key */
#define SCHEMA_VERSION 2

static const char schema[] =
	"CREATE TABLE msg ("
	" id INTEGER PRIMARY KEY, cid BLOB NOT NULL, date INTEGER,"
	" size INTEGER, layers INTEGER, vsize INTEGER, flags INTEGER,"
	" message_id TEXT, from_ TEXT, from_addr TEXT, to_ TEXT, cc TEXT,"
	" subject TEXT, attachments TEXT);"
	"CREATE TABLE msg_cid (key BLOB PRIMARY KEY, msg INTEGER NOT NULL)"
	" WITHOUT ROWID;"
	"CREATE INDEX msg_date ON msg(date);"
	"CREATE TABLE IF NOT EXISTS snap ("
	" seq INTEGER PRIMARY KEY, job TEXT NOT NULL,"
	" snap_id TEXT NOT NULL UNIQUE, time INTEGER);"
	"CREATE INDEX IF NOT EXISTS snap_job ON snap(job, seq);"
	"CREATE TABLE folder (id INTEGER PRIMARY KEY, job TEXT NOT NULL,"
	" account TEXT NOT NULL, mailbox TEXT NOT NULL,"
	" UNIQUE (job, account, mailbox));"
	"CREATE TABLE place (msg INTEGER NOT NULL, folder INTEGER NOT NULL,"
	" first_snap INTEGER NOT NULL, n INTEGER NOT NULL, name,"
	" last_snap INTEGER, PRIMARY KEY (msg, folder, first_snap, n))"
	" WITHOUT ROWID;"
	"CREATE VIEW view AS SELECT m.cid || c.key AS cid, m.date AS date,"
	" m.from_ AS from_, m.subject AS subject,"
	" coalesce(m.vsize, m.size) AS size, m.layers AS layers"
	" FROM msg_cid c JOIN msg m ON m.id = c.msg"
	" WHERE m.layers IS NOT NULL;"
	"CREATE TRIGGER view_insert INSTEAD OF INSERT ON view BEGIN"
	" UPDATE msg SET layers = NEW.layers, vsize = nullif(NEW.size, size)"
	" WHERE id = (SELECT msg FROM msg_cid WHERE key = substr(NEW.cid, 17))"
	" AND cid = substr(NEW.cid, 1, 16) AND layers IS NULL; END;";

/* contentless, no docsize table (only bm25 reads it; find sorts by date) */
static const char fts_schema[] =
	"CREATE VIRTUAL TABLE msg_fts USING fts5("
	" subject, from_, to_, cc, attachments, body, content='',"
	" columnsize=0, tokenize='unicode61 remove_diacritics 2');";

struct seen_place {
	int64_t msg, folder, first, n; /* the key of a place row */
};

struct mail_catalog {
	sqlite3 *db;	      /* borrowed, or own */
	sqlite3 *own;	      /* in-memory copy of a read-only old catalogue */
	sqlite3_stmt *has;    /* msg id (and naming columns) of a cid */
	sqlite3_stmt *lookup; /* open places of a message in a folder */
	sqlite3_stmt *insert; /* INSERT INTO place */
	sqlite3_stmt *folder; /* folder id */
	sqlite3_stmt *folder_ins;
	struct seen_place *seen; /* places seen in this snapshot */
	size_t nseen, capseen;
	char *job;	   /* job of the snapshot being recorded */
	char *facc, *fbox; /* the last folder looked up, and its id */
	int64_t fid;
	int64_t seq, prev; /* its seq and the job's previous seq (or -1) */
	int64_t nins;	   /* places inserted in this snapshot */
	bool closed;	   /* unseen places closed (snapshot_close) */
	bool keep_bodies;  /* body text also into temp.catseg_body */
};

static int db_err(struct mail_catalog *cat, struct mv_err *err,
		  const char *what)
{
	return mv_err_set(err, -EIO, "catalogue: %s: %s", what,
			  sqlite3_errmsg(cat->db));
}

static int exec(struct mail_catalog *cat, const char *sql, struct mv_err *err,
		const char *what)
{
	if (sqlite3_exec(cat->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_err(cat, err, what);
	return 0;
}

/* 1 if the schema object exists with this type, 0 if not, < 0 error. */
static int has_object(struct mail_catalog *cat, const char *type,
		      const char *name, struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(cat->db,
			       "SELECT 1 FROM sqlite_schema"
			       " WHERE type = ?1 AND name = ?2",
			       -1, &st, NULL) != SQLITE_OK)
		return db_err(cat, err, "cannot read the schema");
	sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : db_err(cat, err, "cannot read schema");
}

static int user_version(struct mail_catalog *cat, int *out, struct mv_err *err)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(cat->db, "PRAGMA user_version", -1, &st, NULL) !=
		    SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return db_err(cat, err, "cannot read the schema version");
	}
	*out = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return 0;
}

/* The name the view gives a message from its columns (invariant 3). */
static int derive_name(int64_t date, const char *from, const char *subject,
		       const void *cid, char *out)
{
	return mail_name_format(date, from, subject, cid, CID_HEAD, out,
				MAIL_NAME_MAX + 1);
}

/* How place.name stores name given the derived one: NULL (*n = 1), a
 * variant (*n >= 2) or the text (*n = 0). */
static unsigned name_code(const char *name, const char *derived)
{
	char var[MAIL_NAME_MAX + 1];
	const char *dash, *end;
	unsigned long n;

	if (!strcmp(name, derived))
		return 1;
	end = strrchr(name, ']');
	dash = strrchr(name, '-');
	if (!end || !dash || dash > end)
		return 0;
	n = strtoul(dash + 1, NULL, 10);
	if (n < 2 || n > 1000000 ||
	    mail_name_variant(derived, (unsigned)n, var, sizeof(var)) ||
	    strcmp(var, name))
		return 0;
	return (unsigned)n;
}

static void bind_name(sqlite3_stmt *st, int i, const char *name, unsigned n)
{
	if (n == 1)
		sqlite3_bind_null(st, i);
	else if (n > 1)
		sqlite3_bind_int(st, i, (int)n);
	else
		sqlite3_bind_text(st, i, name, -1, SQLITE_STATIC);
}

/* The name of a place from place.name (column col of st) and the
 * message's derived name. */
static const char *place_name(sqlite3_stmt *st, int col, const char *derived,
			      char *out)
{
	switch (sqlite3_column_type(st, col)) {
	case SQLITE_NULL:
		return derived;
	case SQLITE_INTEGER:
		if (mail_name_variant(derived,
				      (unsigned)sqlite3_column_int(st, col),
				      out, MAIL_NAME_MAX + 1) == 0)
			return out;
		return derived;
	default:
		return (const char *)sqlite3_column_text(st, col);
	}
}

/* Split an old msg.from_ ("Name <addr>", or one of them) into the
 * display part and the address; view_from is what the view named the
 * message with (the display part), when known. */
static void split_from(const char *from, const char *view_from, char **disp,
		       char **addr)
{
	size_t n = from ? strlen(from) : 0, k;
	const char *lt;

	*disp = *addr = NULL;
	if (!from)
		return;
	if (view_from) {
		k = strlen(view_from);
		if (!strcmp(from, view_from)) {
			*disp = strdup(from);
			return;
		}
		if (n > k + 3 && !strncmp(from, view_from, k) &&
		    !strncmp(from + k, " <", 2) && from[n - 1] == '>') {
			*disp = strndup(from, k);
			*addr = strndup(from + k + 2, n - k - 3);
			return;
		}
	}
	lt = NULL;
	for (k = 0; k + 1 < n; k++)
		if (from[k] == ' ' && from[k + 1] == '<')
			lt = from + k;
	if (lt && from[n - 1] == '>' && from + n - 1 > lt + 1) {
		*disp = strndup(from, (size_t)(lt - from));
		*addr = strndup(lt + 2, (size_t)(from + n - 1 - (lt + 2)));
	} else {
		*disp = strdup(from);
	}
}

/* Version 1 (msg with the whole cid and a unique index, view, place with
 * job/account/mailbox/name strings) to version 2, in one transaction.
 * The FTS table is kept as it is: it is contentless, so its rows (and a
 * --index-body text) cannot be read back to fill a new one. */
static int migrate_v1(struct mail_catalog *cat, struct mv_err *err)
{
	sqlite3_stmt *sel = NULL, *ins = NULL, *cid = NULL;
	int rc, step;

	rc = exec(cat,
		  "DROP INDEX IF EXISTS msg_message_id;"
		  "DROP INDEX IF EXISTS msg_date;"
		  "DROP INDEX IF EXISTS place_key;"
		  "DROP INDEX IF EXISTS place_job;"
		  "ALTER TABLE msg RENAME TO msg_v1;"
		  "ALTER TABLE place RENAME TO place_v1;",
		  err, "cannot migrate");
	if (!rc && has_object(cat, "table", "view", err) == 1)
		rc = exec(cat, "ALTER TABLE view RENAME TO view_v1;", err,
			  "cannot migrate");
	else if (!rc)
		rc = exec(cat,
			  "CREATE TABLE view_v1 (cid BLOB PRIMARY KEY, date,"
			  " from_, subject, size, layers) WITHOUT ROWID;",
			  err, "cannot migrate");
	if (!rc)
		rc = exec(cat, schema, err, "cannot create the schema");
	if (rc)
		return rc;
	rc = exec(cat,
		  "INSERT INTO folder (job, account, mailbox)"
		  " SELECT job, account, mailbox FROM place_v1"
		  " GROUP BY job, account, mailbox ORDER BY min(id);",
		  err, "cannot migrate places");
	if (rc)
		return rc;
	if (sqlite3_prepare_v2(cat->db,
			       "SELECT m.id, m.cid, m.date, m.size, v.layers,"
			       " v.size, m.flags, m.message_id, m.from_,"
			       " v.from_, m.to_, m.cc, m.subject,"
			       " m.attachments FROM msg_v1 m LEFT JOIN view_v1"
			       " v ON v.cid = m.cid ORDER BY m.id",
			       -1, &sel, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(cat->db,
			       "INSERT INTO msg (id, cid, date, size, layers,"
			       " vsize, flags, message_id, from_, from_addr,"
			       " to_, cc, subject, attachments) VALUES"
			       " (?1, ?2, ?3, ?4, ?5, nullif(?6, ?4), ?7, ?8,"
			       " ?9, ?10, ?11, ?12, ?13, ?14)",
			       -1, &ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(cat->db,
			       "INSERT INTO msg_cid (key, msg) VALUES (?, ?)",
			       -1, &cid, NULL) != SQLITE_OK) {
		rc = db_err(cat, err, "cannot migrate messages");
		goto out;
	}
	while ((step = sqlite3_step(sel)) == SQLITE_ROW) {
		const uint8_t *c = sqlite3_column_blob(sel, 1);
		char *disp = NULL, *addr = NULL;
		int i;

		if (sqlite3_column_bytes(sel, 1) != CID_LEN)
			continue;
		split_from((const char *)sqlite3_column_text(sel, 8),
			   (const char *)sqlite3_column_text(sel, 9), &disp,
			   &addr);
		sqlite3_reset(ins);
		sqlite3_bind_int64(ins, 1, sqlite3_column_int64(sel, 0));
		sqlite3_bind_blob(ins, 2, c, CID_HEAD, SQLITE_TRANSIENT);
		for (i = 2; i <= 7; i++)
			sqlite3_bind_value(ins, i + 1,
					   sqlite3_column_value(sel, i));
		sqlite3_bind_text(ins, 9, disp, -1, free);
		sqlite3_bind_text(ins, 10, addr, -1, free);
		for (i = 10; i <= 13; i++)
			sqlite3_bind_value(ins, i + 1,
					   sqlite3_column_value(sel, i));
		sqlite3_reset(cid);
		sqlite3_bind_blob(cid, 1, c + CID_HEAD, CID_LEN - CID_HEAD,
				  SQLITE_TRANSIENT);
		sqlite3_bind_int64(cid, 2, sqlite3_column_int64(sel, 0));
		if (sqlite3_step(ins) != SQLITE_DONE ||
		    sqlite3_step(cid) != SQLITE_DONE) {
			rc = db_err(cat, err, "cannot migrate a message");
			goto out;
		}
	}
	if (step != SQLITE_DONE) {
		rc = db_err(cat, err, "cannot migrate messages");
		goto out;
	}
	sqlite3_finalize(sel);
	sqlite3_finalize(ins);
	sel = ins = NULL;
	if (sqlite3_prepare_v2(
		    cat->db,
		    /* places ended at their job's latest snapshot were
		     * written before open ranges: they are open */
		    "SELECT p.id, p.msg, f.id, p.name, p.first_snap,"
		    " CASE WHEN p.last_snap >= (SELECT max(seq) FROM snap s"
		    " WHERE s.job = p.job) THEN NULL ELSE p.last_snap END,"
		    " m.date, m.from_, m.subject, m.cid"
		    " FROM place_v1 p JOIN msg m ON m.id = p.msg"
		    " JOIN folder f ON f.job = p.job AND f.account = p.account"
		    " AND f.mailbox = p.mailbox ORDER BY p.id",
		    -1, &sel, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(cat->db,
			       "INSERT INTO place (msg, folder, n, name,"
			       " first_snap, last_snap)"
			       " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
			       -1, &ins, NULL) != SQLITE_OK) {
		rc = db_err(cat, err, "cannot migrate places");
		goto out;
	}
	while ((step = sqlite3_step(sel)) == SQLITE_ROW) {
		char derived[MAIL_NAME_MAX + 1];
		const char *name = (const char *)sqlite3_column_text(sel, 3);
		unsigned code = 0;

		if (!name)
			name = "";
		if (sqlite3_column_bytes(sel, 9) >= MAIL_NAME_ID_BYTES &&
		    derive_name(sqlite3_column_int64(sel, 6),
				(const char *)sqlite3_column_text(sel, 7),
				(const char *)sqlite3_column_text(sel, 8),
				sqlite3_column_blob(sel, 9), derived) == 0)
			code = name_code(name, derived);
		sqlite3_reset(ins);
		sqlite3_bind_int64(ins, 1, sqlite3_column_int64(sel, 1));
		sqlite3_bind_int64(ins, 2, sqlite3_column_int64(sel, 2));
		sqlite3_bind_int64(ins, 3, sqlite3_column_int64(sel, 0));
		bind_name(ins, 4, name, code);
		sqlite3_bind_int64(ins, 5, sqlite3_column_int64(sel, 4));
		sqlite3_bind_value(ins, 6, sqlite3_column_value(sel, 5));
		if (sqlite3_step(ins) != SQLITE_DONE) {
			rc = db_err(cat, err, "cannot migrate a place");
			goto out;
		}
	}
	if (step != SQLITE_DONE) {
		rc = db_err(cat, err, "cannot migrate places");
		goto out;
	}
	rc = exec(cat,
		  "DROP TABLE place_v1; DROP TABLE msg_v1; DROP TABLE view_v1;",
		  err, "cannot migrate");
out:
	sqlite3_finalize(sel);
	sqlite3_finalize(ins);
	sqlite3_finalize(cid);
	return rc;
}

/* Create or migrate the schema (one transaction). */
static int schema_setup(struct mail_catalog *cat, bool *migrated,
			struct mv_err *err)
{
	int rc, ver = 0, has_msg;

	*migrated = false;
	rc = exec(cat, "BEGIN IMMEDIATE", err, "cannot begin");
	if (rc)
		return rc;
	rc = user_version(cat, &ver, err);
	if (rc || ver >= SCHEMA_VERSION)
		goto out;
	has_msg = has_object(cat, "table", "msg", err);
	if (has_msg < 0) {
		rc = has_msg;
		goto out;
	}
	if (has_msg) {
		rc = migrate_v1(cat, err);
		*migrated = true;
	} else {
		/* a new catalogue: mail_view may have made its old view
		 * table already (empty: nothing was catalogued) */
		rc = exec(cat, "DROP TABLE IF EXISTS view;", err,
			  "cannot create the schema");
		if (!rc)
			rc = exec(cat, schema, err, "cannot create the schema");
		if (!rc)
			rc = exec(cat, fts_schema, err,
				  "cannot create the schema");
	}
	if (!rc)
		rc = exec(cat, "PRAGMA user_version = 2", err,
			  "cannot create the schema");
out:
	if (!rc)
		rc = exec(cat, "COMMIT", err, "cannot commit the schema");
	if (rc)
		sqlite3_exec(cat->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* A read-only catalogue of version 1 (find on a repository the user
 * cannot write): migrated in memory for this process. */
static int copy_to_memory(struct mail_catalog *cat, struct mv_err *err)
{
	sqlite3_backup *b;
	int rc;

	if (sqlite3_open(":memory:", &cat->own) != SQLITE_OK)
		return mv_err_set(err, -ENOMEM, "catalogue: out of memory");
	b = sqlite3_backup_init(cat->own, "main", cat->db, "main");
	if (!b)
		return mv_err_set(err, -EIO, "catalogue: cannot copy: %s",
				  sqlite3_errmsg(cat->own));
	rc = sqlite3_backup_step(b, -1);
	sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE)
		return mv_err_set(err, -EIO, "catalogue: cannot copy: %s",
				  sqlite3_errstr(rc));
	cat->db = cat->own;
	return 0;
}

int mail_catalog_open(sqlite3 *db, struct mail_catalog **out,
		      struct mv_err *err)
{
	struct mail_catalog *cat = calloc(1, sizeof(*cat));
	bool migrated = false;
	int rc, ver = 0;

	if (!cat)
		return mv_err_set(err, -ENOMEM, "out of memory");
	cat->db = db;
	rc = user_version(cat, &ver, err);
	if (rc)
		goto fail;
	if (ver < SCHEMA_VERSION && sqlite3_db_readonly(db, "main") == 1) {
		rc = copy_to_memory(cat, err);
		if (rc)
			goto fail;
	}
	if (ver < SCHEMA_VERSION) {
		rc = schema_setup(cat, &migrated, err);
		if (rc)
			goto fail;
	}
	/* give the migrated file its free pages back (outside the
	 * transaction; harmless when it cannot run now) */
	if (migrated && !cat->own)
		sqlite3_exec(cat->db, "VACUUM", NULL, NULL, NULL);
	if (sqlite3_prepare_v2(cat->db,
			       "SELECT m.id, m.date, m.from_, m.subject"
			       " FROM msg_cid c JOIN msg m ON m.id = c.msg"
			       " WHERE c.key = ?1 AND m.cid = ?2",
			       -1, &cat->has, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(cat->db,
			       "INSERT INTO place (msg, folder, n, name,"
			       " first_snap) VALUES (?1, ?2, ?3, ?4, ?5)",
			       -1, &cat->insert, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(cat->db,
			       "SELECT first_snap, n, name FROM place"
			       " WHERE msg = ?1 AND folder = ?2"
			       " AND last_snap IS NULL",
			       -1, &cat->lookup, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(cat->db,
			       "SELECT id FROM folder WHERE job = ?1"
			       " AND account = ?2 AND mailbox = ?3",
			       -1, &cat->folder, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(cat->db,
			       "INSERT INTO folder (job, account, mailbox)"
			       " VALUES (?1, ?2, ?3)",
			       -1, &cat->folder_ins, NULL) != SQLITE_OK) {
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
	sqlite3_finalize(cat->folder);
	sqlite3_finalize(cat->folder_ins);
	if (cat->own)
		sqlite3_close(cat->own);
	free(cat->seen);
	free(cat->job);
	free(cat->facc);
	free(cat->fbox);
	free(cat);
}

/* msg.id of cid: > 0, 0 when unknown, < 0 on error.  When derived is
 * set, the message's view name from its columns is written to it. */
static int64_t msg_id(struct mail_catalog *cat, const void *cid, size_t n,
		      char *derived, struct mv_err *err)
{
	int64_t id = 0;
	int rc;

	if (n != CID_LEN)
		return mv_err_set(err, -EINVAL,
				  "catalogue: content id of %zu bytes", n);
	sqlite3_reset(cat->has);
	sqlite3_bind_blob(cat->has, 1, (const uint8_t *)cid + CID_HEAD,
			  CID_LEN - CID_HEAD, SQLITE_STATIC);
	sqlite3_bind_blob(cat->has, 2, cid, CID_HEAD, SQLITE_STATIC);
	rc = sqlite3_step(cat->has);
	if (rc == SQLITE_ROW) {
		id = sqlite3_column_int64(cat->has, 0);
		if (derived &&
		    derive_name(sqlite3_column_int64(cat->has, 1),
				(const char *)sqlite3_column_text(cat->has, 2),
				(const char *)sqlite3_column_text(cat->has, 3),
				cid, derived))
			derived[0] = '\0'; /* no derivation: names stored */
	} else if (rc != SQLITE_DONE) {
		id = db_err(cat, err, "lookup failed");
	}
	sqlite3_reset(cat->has);
	return id;
}

int mail_catalog_keep_bodies(struct mail_catalog *cat, struct mv_err *err)
{
	int rc = exec(cat,
		      "CREATE TEMP TABLE IF NOT EXISTS catseg_body"
		      " (msg INTEGER PRIMARY KEY, body TEXT)",
		      err, "cannot keep bodies");

	if (!rc)
		cat->keep_bodies = true;
	return rc;
}

int mail_catalog_has(struct mail_catalog *cat, const void *cid, size_t cid_len,
		     struct mv_err *err)
{
	int64_t id = msg_id(cat, cid, cid_len, NULL, err);

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
	sqlite3_stmt *st = NULL, *key = NULL, *fts = NULL;
	const char *from = m->from ? m->from : m->from_addr;
	char *att = NULL;
	int64_t id;
	int rc = 0;

	id = msg_id(cat, cid, cid_len, NULL, err);
	if (id != 0)
		return id < 0 ? (int)id : 0;
	att = join_attachments(m);
	if (!att)
		return mv_err_set(err, -ENOMEM, "out of memory");
	if (sqlite3_prepare_v2(cat->db,
			       "INSERT INTO msg (cid, message_id, date, from_,"
			       " from_addr, to_, cc, subject, size,"
			       " attachments, flags)"
			       " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
			       -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(cat->db,
			       "INSERT INTO msg_cid (key, msg) VALUES (?, ?)",
			       -1, &key, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(
		    cat->db,
		    "INSERT INTO msg_fts (rowid, subject, from_, to_,"
		    " cc, attachments, body)"
		    " VALUES (?,?,?,?,?,?,?)",
		    -1, &fts, NULL) != SQLITE_OK) {
		rc = db_err(cat, err, "cannot prepare insert");
		goto out;
	}
	sqlite3_bind_blob(st, 1, cid, CID_HEAD, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, m->message_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, m->date);
	/* from_ is what the view names the message with; the address only
	 * when it adds to it (find shows "from_ <from_addr>") */
	sqlite3_bind_text(st, 4, from, -1, SQLITE_STATIC);
	if (m->from && m->from_addr && strcmp(m->from, m->from_addr) != 0)
		sqlite3_bind_text(st, 5, m->from_addr, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, m->to, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, m->cc, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, m->subject, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 9, (int64_t)m->size);
	sqlite3_bind_text(st, 10, att, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 11, m->flags);
	if (sqlite3_step(st) != SQLITE_DONE) {
		rc = db_err(cat, err, "cannot add message");
		goto out;
	}
	id = sqlite3_last_insert_rowid(cat->db);
	sqlite3_bind_blob(key, 1, (const uint8_t *)cid + CID_HEAD,
			  CID_LEN - CID_HEAD, SQLITE_STATIC);
	sqlite3_bind_int64(key, 2, id);
	if (sqlite3_step(key) != SQLITE_DONE) {
		rc = db_err(cat, err, "cannot add message");
		goto out;
	}
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
	if (sqlite3_step(fts) != SQLITE_DONE) {
		rc = db_err(cat, err, "cannot index message");
		goto out;
	}
	if (cat->keep_bodies && m->body) {
		/* for the snapshot's catalogue segment (catseg.h) */
		sqlite3_finalize(st);
		st = NULL;
		if (sqlite3_prepare_v2(cat->db,
				       "INSERT OR REPLACE INTO temp.catseg_body"
				       " (msg, body) VALUES (?1, ?2)",
				       -1, &st, NULL) != SQLITE_OK) {
			rc = db_err(cat, err, "cannot keep a body");
			goto out;
		}
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_text(st, 2, m->body, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = db_err(cat, err, "cannot keep a body");
	}
out:
	sqlite3_finalize(st);
	sqlite3_finalize(key);
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
	free(cat->facc);
	free(cat->fbox);
	cat->facc = cat->fbox = NULL;
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
	cat->nins = 0;
	cat->closed = false;
	*seq = cat->seq;
	return 0;
fail:
	sqlite3_exec(cat->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* The id of folder (job, account, mailbox), created when new. */
static int64_t folder_id(struct mail_catalog *cat, const char *account,
			 const char *mailbox, struct mv_err *err)
{
	int64_t id = 0;
	int rc;

	if (cat->facc && !strcmp(cat->facc, account) &&
	    !strcmp(cat->fbox, mailbox))
		return cat->fid;
	sqlite3_reset(cat->folder);
	sqlite3_bind_text(cat->folder, 1, cat->job, -1, SQLITE_STATIC);
	sqlite3_bind_text(cat->folder, 2, account, -1, SQLITE_STATIC);
	sqlite3_bind_text(cat->folder, 3, mailbox, -1, SQLITE_STATIC);
	rc = sqlite3_step(cat->folder);
	if (rc == SQLITE_ROW)
		id = sqlite3_column_int64(cat->folder, 0);
	sqlite3_reset(cat->folder);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_err(cat, err, "cannot look a folder up");
	if (!id) {
		sqlite3_reset(cat->folder_ins);
		sqlite3_bind_text(cat->folder_ins, 1, cat->job, -1,
				  SQLITE_STATIC);
		sqlite3_bind_text(cat->folder_ins, 2, account, -1,
				  SQLITE_STATIC);
		sqlite3_bind_text(cat->folder_ins, 3, mailbox, -1,
				  SQLITE_STATIC);
		rc = sqlite3_step(cat->folder_ins);
		sqlite3_reset(cat->folder_ins);
		if (rc != SQLITE_DONE)
			return db_err(cat, err, "cannot add a folder");
		id = sqlite3_last_insert_rowid(cat->db);
	}
	free(cat->facc);
	free(cat->fbox);
	cat->facc = strdup(account);
	cat->fbox = strdup(mailbox);
	if (!cat->facc || !cat->fbox) {
		free(cat->facc);
		free(cat->fbox);
		cat->facc = cat->fbox = NULL;
	}
	cat->fid = id;
	return id;
}

static int seen_add(struct mail_catalog *cat, int64_t msg, int64_t folder,
		    int64_t first, int64_t n, struct mv_err *err)
{
	if (cat->nseen == cat->capseen) {
		size_t cap = cat->capseen ? cat->capseen * 2 : 1024;
		struct seen_place *p = realloc(cat->seen, cap * sizeof(*p));

		if (!p)
			return mv_err_set(err, -ENOMEM, "out of memory");
		cat->seen = p;
		cat->capseen = cap;
	}
	cat->seen[cat->nseen].msg = msg;
	cat->seen[cat->nseen].folder = folder;
	cat->seen[cat->nseen].first = first;
	cat->seen[cat->nseen].n = n;
	cat->nseen++;
	return 0;
}

/* Is place.name (column col of st) the stored form of name (code)? */
static bool name_matches(sqlite3_stmt *st, int col, const char *name,
			 unsigned code)
{
	switch (sqlite3_column_type(st, col)) {
	case SQLITE_NULL:
		return code == 1;
	case SQLITE_INTEGER:
		return code > 1 && sqlite3_column_int64(st, col) == code;
	default:
		return code == 0 &&
		       !strcmp((const char *)sqlite3_column_text(st, col),
			       name);
	}
}

int mail_catalog_seen(struct mail_catalog *cat, int64_t seq, const void *cid,
		      size_t cid_len, const char *account, const char *mailbox,
		      const char *name, struct mv_err *err)
{
	char derived[MAIL_NAME_MAX + 1];
	int64_t id, folder;
	unsigned code;
	int rc = 0;

	if (!cat->job || seq != cat->seq)
		return mv_err_set(err, -EINVAL,
				  "catalogue: snapshot %lld not begun",
				  (long long)seq);
	id = msg_id(cat, cid, cid_len, derived, err);
	if (id <= 0)
		return id < 0 ? (int)id
			      : mv_err_set(err, -ENOENT,
					   "catalogue: message not added");
	folder = folder_id(cat, account, mailbox, err);
	if (folder < 0)
		return (int)folder;
	code = derived[0] ? name_code(name, derived) : 0;
	sqlite3_reset(cat->lookup);
	sqlite3_bind_int64(cat->lookup, 1, id);
	sqlite3_bind_int64(cat->lookup, 2, folder);
	while ((rc = sqlite3_step(cat->lookup)) == SQLITE_ROW) {
		/* open since an earlier snapshot, or seen twice: keep it */
		if (name_matches(cat->lookup, 2, name, code)) {
			int64_t first = sqlite3_column_int64(cat->lookup, 0);
			int64_t n = sqlite3_column_int64(cat->lookup, 1);

			sqlite3_reset(cat->lookup);
			return seen_add(cat, id, folder, first, n, err);
		}
	}
	sqlite3_reset(cat->lookup);
	if (rc != SQLITE_DONE)
		return db_err(cat, err, "cannot look a place up");
	rc = 0;
	sqlite3_reset(cat->insert);
	sqlite3_bind_int64(cat->insert, 1, id);
	sqlite3_bind_int64(cat->insert, 2, folder);
	sqlite3_bind_int64(cat->insert, 3, cat->nins++);
	bind_name(cat->insert, 4, name, code);
	sqlite3_bind_int64(cat->insert, 5, seq);
	if (sqlite3_step(cat->insert) != SQLITE_DONE)
		rc = db_err(cat, err, "cannot add a place");
	sqlite3_reset(cat->insert);
	return rc;
}

static int cmp64(int64_t x, int64_t y)
{
	return x < y ? -1 : x > y;
}

static int place_cmp(const void *a, const void *b)
{
	const struct seen_place *x = a, *y = b;
	int c = cmp64(x->msg, y->msg);

	if (!c)
		c = cmp64(x->folder, y->folder);
	if (!c)
		c = cmp64(x->first, y->first);
	return c ? c : cmp64(x->n, y->n);
}

/* Places open before this snapshot but not seen in it: the message left
 * that place, so its range ends at the previous snapshot.  One scan of
 * the open places of the job (no index: a backup already reads every
 * message once, and an index on (folder, last_snap) cost ~20 bytes per
 * message). */
static int close_unseen(struct mail_catalog *cat, struct mv_err *err)
{
	sqlite3_stmt *sel = NULL, *upd = NULL;
	struct seen_place *gone = NULL;
	size_t ngone = 0, cap = 0, i;
	int rc = 0;

	qsort(cat->seen, cat->nseen, sizeof(*cat->seen), place_cmp);
	if (sqlite3_prepare_v2(cat->db,
			       "SELECT msg, folder, first_snap, n FROM place"
			       " WHERE last_snap IS NULL"
			       " AND first_snap < ?2 AND folder IN"
			       " (SELECT id FROM folder WHERE job = ?1)",
			       -1, &sel, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(cat->db,
			       "UPDATE place SET last_snap = ?1 WHERE msg = ?2"
			       " AND folder = ?3 AND first_snap = ?4"
			       " AND n = ?5",
			       -1, &upd, NULL) != SQLITE_OK) {
		rc = db_err(cat, err, "cannot close ranges");
		goto out;
	}
	sqlite3_bind_text(sel, 1, cat->job, -1, SQLITE_STATIC);
	sqlite3_bind_int64(sel, 2, cat->seq);
	while (sqlite3_step(sel) == SQLITE_ROW) {
		struct seen_place p;

		p.msg = sqlite3_column_int64(sel, 0);
		p.folder = sqlite3_column_int64(sel, 1);
		p.first = sqlite3_column_int64(sel, 2);
		p.n = sqlite3_column_int64(sel, 3);
		if (bsearch(&p, cat->seen, cat->nseen, sizeof(*cat->seen),
			    place_cmp))
			continue;
		if (ngone == cap) {
			struct seen_place *q;

			cap = cap ? cap * 2 : 256;
			q = realloc(gone, cap * sizeof(*q));
			if (!q) {
				rc = mv_err_set(err, -ENOMEM, "out of memory");
				goto out;
			}
			gone = q;
		}
		gone[ngone++] = p;
	}
	for (i = 0; i < ngone; i++) {
		sqlite3_reset(upd);
		sqlite3_bind_int64(upd, 1, cat->prev);
		sqlite3_bind_int64(upd, 2, gone[i].msg);
		sqlite3_bind_int64(upd, 3, gone[i].folder);
		sqlite3_bind_int64(upd, 4, gone[i].first);
		sqlite3_bind_int64(upd, 5, gone[i].n);
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
	/* folder ids made in the transaction are gone with it */
	free(cat->facc);
	free(cat->fbox);
	cat->facc = cat->fbox = NULL;
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
	char *msql = NULL, *mexpr = NULL, varname[MAIL_NAME_MAX + 1];
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
	/* Filter, sort and limit on place, folder and msg alone; the
	 * snapshot names are joined to the rows kept only.  latest: each
	 * job's newest snapshot by time (an older --time import is recorded
	 * after it: seqs give membership, never age); top: its last one
	 * recorded, the end of an open range. */
	sqlite3_str_appendall(
		sql,
		"WITH latest(job, seq, top) AS"
		" (SELECT job, (SELECT s.seq FROM snap s WHERE s.job = j.job"
		" ORDER BY s.time DESC, s.seq DESC LIMIT 1), max(seq)"
		" FROM snap j GROUP BY job)"
		" SELECT m.cid, m.message_id, CASE WHEN m.from_addr IS"
		" NULL THEN m.from_ ELSE m.from_ || ' <' || m.from_addr"
		" || '>' END, m.to_, m.subject, m.date, m.size, f.job,"
		" f.account, f.mailbox, p.name, s1.snap_id, s2.snap_id,"
		" k.gone, m.from_ FROM"
		" (SELECT p.msg AS pmsg, p.folder AS pfolder,"
		" p.first_snap AS pfirst, p.n AS pn,"
		" m.date AS date, l.top AS top,"
		" NOT (p.first_snap <= l.seq AND " LAST_SQL(
			"p") " >= l.seq)"
			     " AS gone"
			     " FROM msg m JOIN place p ON p.msg = m.id"
			     " JOIN folder f ON f.id = p.folder"
			     " JOIN latest l ON l.job = f.job WHERE 1");
	if (mexpr && *mexpr)
		sqlite3_str_appendall(sql, " AND m.id IN (SELECT rowid FROM"
					   " msg_fts WHERE msg_fts MATCH ?1)");
	if (q->has_since)
		sqlite3_str_appendall(sql, " AND m.date >= ?2");
	if (q->has_until)
		sqlite3_str_appendall(sql, " AND m.date < ?3");
	if (q->account)
		sqlite3_str_appendall(sql, " AND f.account = ?4");
	if (q->job)
		sqlite3_str_appendall(sql, " AND f.job = ?5");
	if (q->snapshot)
		sqlite3_str_appendall(
			sql, " AND (SELECT seq FROM snap WHERE"
			     " snap_id = ?6) BETWEEN p.first_snap"
			     " AND " LAST_SQL(
				     "p") " AND f.job = (SELECT"
					  " job FROM snap WHERE snap_id = ?6)");
	if (q->deleted)
		sqlite3_str_appendall(
			sql,
			/* not in the latest snapshot, in no folder of it */
			" AND NOT (p.first_snap <= l.seq AND " LAST_SQL(
				"p") " >= l.seq) AND NOT EXISTS"
				     " (SELECT 1 FROM place o JOIN folder g"
				     " ON g.id = o.folder WHERE o.msg = p.msg"
				     " AND g.job = f.job AND o.first_snap <="
				     " l.seq AND " LAST_SQL("o") " >= l.seq)");
	sqlite3_str_appendall(sql, " ORDER BY m.date DESC, p.first_snap, p.n");
	/* a LIMIT (-1: none) keeps SQLite from flattening the subquery, so
	 * the outer joins run for the rows kept only */
	sqlite3_str_appendf(sql, " LIMIT %lld",
			    q->limit ? (long long)q->limit : -1LL);
	sqlite3_str_appendall(
		sql,
		") k JOIN place p ON p.msg = k.pmsg"
		" AND p.folder = k.pfolder AND p.first_snap = k.pfirst"
		" AND p.n = k.pn"
		" JOIN msg m ON m.id = p.msg"
		" JOIN folder f ON f.id = p.folder"
		/* a range's first and last snapshot by time */
		" JOIN snap s1 ON s1.seq = (SELECT r.seq FROM snap r"
		" WHERE r.job = f.job AND r.seq BETWEEN p.first_snap"
		" AND min(" LAST_SQL("p") ", k.top)"
					  " ORDER BY r.time, r.seq LIMIT 1)"
					  " JOIN snap s2 ON s2.seq = (SELECT"
					  " r.seq FROM snap r WHERE r.job ="
					  " f.job AND r.seq BETWEEN"
					  " p.first_snap AND min(" LAST_SQL(
						  "p") ", k.top)"
						       " ORDER BY r.time DESC,"
						       " r.seq DESC LIMIT 1)"
						       " ORDER BY k.date DESC,"
						       " k.pfirst, k.pn");
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
		char derived[MAIL_NAME_MAX + 1];
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
		h.first_snap = (const char *)sqlite3_column_text(st, 11);
		h.last_snap = (const char *)sqlite3_column_text(st, 12);
		h.deleted = sqlite3_column_int(st, 13) != 0;
		if (sqlite3_column_type(st, 10) == SQLITE_TEXT ||
		    h.cid_len < MAIL_NAME_ID_BYTES ||
		    derive_name(h.date,
				(const char *)sqlite3_column_text(st, 14),
				h.subject, h.cid, derived))
			h.name = (const char *)sqlite3_column_text(st, 10);
		else
			h.name = place_name(st, 10, derived, varname);
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
