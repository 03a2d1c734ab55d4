/*
 * catseg: catalogue segments - the mail catalogue kept in the repository
 * (include/catseg.h; docs/FORMAT-2.md section 3, docs/MAIL.md).
 *
 * Segment (the plaintext; stored zstd-compressed, padded and sealed):
 *
 *   seg    := "MVC2" u8 version(1) u8 kind
 *             varint n  snap*      snap   := str job, str id, zz time
 *             str prev             (delta: the job's previous snapshot)
 *             varint n  folder*    folder := str job, str account,
 *                                            str mailbox
 *             varint n  msg*       msg    := cid[32] zz date, int size,
 *                                            int layers, int vsize,
 *                                            int flags, str message_id,
 *                                            from_, from_addr, to_, cc,
 *                                            subject, attachments, body
 *             varint n  place*     place  := ref varint(folder) varint(n)
 *                                            name varint(first)
 *                                            varint(last + 1, 0 = open)
 *             varint n  close*     close  := cid[32] varint(folder) name
 *   str    := varint 0 (NULL) | varint(len + 1) bytes
 *   int    := varint 0 (NULL) | varint(zigzag(v) + 1)
 *   ref    := varint i: the i-th msg of the segment, or i = n(msg) and
 *             cid[32] of a message catalogued before
 *   name   := varint 0 (derived) | 1 varint(variant) | 2 str(text)
 *
 * Snapshots, folders and messages are named by their index in the
 * segment.  A delta has one snapshot: its places have first = 0 and are
 * open; its closes end open places of the job at the snapshot before it.
 * A base lists every snapshot the catalogue knows and every place with
 * its range.
 *
 * Invariants:
 *  1. A message's row goes into the segment of the first snapshot that
 *     places it (no place of it with an earlier first_snap in the
 *     catalogue), so replaying the segments in order knows every message
 *     a place names.  A base holds every message a place names.
 *  2. A delta applies only on top of its job's previous snapshot (prev):
 *     the closes then end the same places recording ended.
 *  3. The applied segments are named in catseg_seen; the backup that
 *     writes a segment names it there in the same catalogue, so its own
 *     segments are never fetched back.
 */
#include "catseg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zstd.h>

#include "backend.h"
#include "crypt.h"
#include "mail_catalog.h"
#include "mail_view.h"
#include "pack.h"
#include "seal.h"
#include "snapshot.h"

#define MAGIC "MVC2"
#define VERSION 1
#define CID_LEN 32
#define CID_HEAD 16
#define OPEN_SQL "9223372036854775807"

/* ---- encoding helpers ---------------------------------------------------- */

static uint64_t zz(int64_t v)
{
	return ((uint64_t)v << 1) ^ (v < 0 ? ~(uint64_t)0 : 0);
}

static int64_t unzz(uint64_t v)
{
	return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static int put_str(struct mv_buf *b, const unsigned char *s, int n)
{
	if (!s)
		return mv_buf_put_varint(b, 0);
	if (mv_buf_put_varint(b, (uint64_t)n + 1))
		return -ENOMEM;
	return mv_buf_append(b, s, (size_t)n);
}

static int put_col_str(struct mv_buf *b, sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return put_str(b, NULL, 0);
	return put_str(b, sqlite3_column_text(st, i),
		       sqlite3_column_bytes(st, i));
}

static int put_col_int(struct mv_buf *b, sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return mv_buf_put_varint(b, 0);
	return mv_buf_put_varint(b, zz(sqlite3_column_int64(st, i)) + 1);
}

/* place.name (column i): NULL derived, an integer variant, else text */
static int put_col_name(struct mv_buf *b, sqlite3_stmt *st, int i)
{
	switch (sqlite3_column_type(st, i)) {
	case SQLITE_NULL:
		return mv_buf_put_varint(b, 0);
	case SQLITE_INTEGER:
		if (mv_buf_put_varint(b, 1))
			return -ENOMEM;
		return mv_buf_put_varint(b, zz(sqlite3_column_int64(st, i)));
	default:
		if (mv_buf_put_varint(b, 2))
			return -ENOMEM;
		return put_col_str(b, st, i);
	}
}

struct cs_str {
	const char *p; /* NULL: SQL NULL */
	int n;
};

struct cs_int {
	bool null;
	int64_t v;
};

static int get_str(struct mv_reader *r, struct cs_str *out)
{
	uint64_t n;

	if (mv_reader_varint(r, &n))
		return -EBADMSG;
	if (!n) {
		out->p = NULL;
		out->n = 0;
		return 0;
	}
	n--;
	if (n > (uint64_t)(r->end - r->p) || n > INT32_MAX)
		return -EBADMSG;
	out->p = (const char *)r->p;
	out->n = (int)n;
	r->p += n;
	return 0;
}

static int get_int(struct mv_reader *r, struct cs_int *out)
{
	uint64_t v;

	if (mv_reader_varint(r, &v))
		return -EBADMSG;
	out->null = v == 0;
	out->v = v ? unzz(v - 1) : 0;
	return 0;
}

struct cs_name {
	int kind; /* 0 derived, 1 variant, 2 text */
	int64_t variant;
	struct cs_str text;
};

static int get_name(struct mv_reader *r, struct cs_name *out)
{
	uint64_t k, v;

	if (mv_reader_varint(r, &k) || k > 2)
		return -EBADMSG;
	out->kind = (int)k;
	if (k == 1) {
		if (mv_reader_varint(r, &v))
			return -EBADMSG;
		out->variant = unzz(v);
	} else if (k == 2) {
		if (get_str(r, &out->text) || !out->text.p)
			return -EBADMSG;
	}
	return 0;
}

static void bind_str(sqlite3_stmt *st, int i, const struct cs_str *s)
{
	if (s->p)
		sqlite3_bind_text(st, i, s->p, s->n, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

static void bind_int(sqlite3_stmt *st, int i, const struct cs_int *v)
{
	if (v->null)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_int64(st, i, v->v);
}

static void bind_name(sqlite3_stmt *st, int i, const struct cs_name *nm)
{
	if (nm->kind == 0)
		sqlite3_bind_null(st, i);
	else if (nm->kind == 1)
		sqlite3_bind_int64(st, i, nm->variant);
	else
		bind_str(st, i, &nm->text);
}

static int db_fail(sqlite3 *db, struct mv_err *err, const char *what)
{
	return mv_err_set(err, -EIO, "catalogue segments: %s: %s", what,
			  sqlite3_errmsg(db));
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st,
		struct mv_err *err)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
		return db_fail(db, err, "cannot prepare");
	return 0;
}

/* ---- building ------------------------------------------------------------ */

/* The columns of a message row after its content id and date, in the
 * order a segment holds them (the format: append only, never reorder).
 * The encoder, the decoder and both statements are driven by this one
 * table. */
enum msg_col_kind {
	MC_INT, /* int: NULL or a zigzag varint */
	MC_STR, /* str: NULL or bytes */
};

enum msg_col_id {
	MC_SIZE,
	MC_LAYERS,
	MC_VSIZE,
	MC_FLAGS,
	MC_MESSAGE_ID,
	MC_FROM,
	MC_FROM_ADDR,
	MC_TO,
	MC_CC,
	MC_SUBJECT,
	MC_ATTACHMENTS,
	MC_N
};

static const struct msg_col {
	const char *name; /* of the msg table */
	enum msg_col_kind kind;
} msg_col[MC_N] = {
	[MC_SIZE] = {"size", MC_INT},
	[MC_LAYERS] = {"layers", MC_INT},
	[MC_VSIZE] = {"vsize", MC_INT},
	[MC_FLAGS] = {"flags", MC_INT},
	[MC_MESSAGE_ID] = {"message_id", MC_STR},
	[MC_FROM] = {"from_", MC_STR},
	[MC_FROM_ADDR] = {"from_addr", MC_STR},
	[MC_TO] = {"to_", MC_STR},
	[MC_CC] = {"cc", MC_STR},
	[MC_SUBJECT] = {"subject", MC_STR},
	[MC_ATTACHMENTS] = {"attachments", MC_STR},
};

#define MSG_COL_FIRST 2		       /* result column of msg_col[0] */
#define MSG_COL_ID (2 + MC_N)	       /* result column of m.id */
#define MSG_SQL_MAX (1024 + 32 * MC_N) /* bytes of a statement below */

/* "SELECT cid, date, <msg_col...>, id FROM msg ... <where>" into out.
 * msg_cid has no index on msg (it would cost bytes for every message):
 * it is read once, outer, and each row's msg found by its rowid.  With
 * msg outer, SQLite read the whole of msg_cid again for each message
 * (100k new messages: ten minutes).  where may name c.msg and m. */
static void msg_select(char *out, size_t n, const char *where)
{
	size_t k, len;

	len = (size_t)snprintf(out, n, "SELECT m.cid || c.key, m.date");
	for (k = 0; k < MC_N && len < n; k++)
		len += (size_t)snprintf(out + len, n - len, ", m.%s",
					msg_col[k].name);
	if (len < n)
		snprintf(out + len, n - len,
			 ", m.id FROM msg_cid c CROSS JOIN msg m"
			 " ON m.id = c.msg %s",
			 where);
}

/* "INSERT INTO msg (cid, date, <msg_col...>) VALUES (?1, ...)". */
static void msg_insert(char *out, size_t n)
{
	size_t k, len;

	len = (size_t)snprintf(out, n, "INSERT INTO msg (cid, date");
	for (k = 0; k < MC_N && len < n; k++)
		len += (size_t)snprintf(out + len, n - len, ", %s",
					msg_col[k].name);
	if (len < n)
		len += (size_t)snprintf(out + len, n - len, ") VALUES (?1, ?2");
	for (k = 0; k < MC_N && len < n; k++)
		len += (size_t)snprintf(out + len, n - len, ", ?%zu", k + 3);
	if (len < n)
		snprintf(out + len, n - len, ")");
}

/* One msg row (st from msg_select) and its body from temp.catseg_body. */
static int put_msg(struct mv_buf *b, sqlite3_stmt *st, sqlite3_stmt *body)
{
	int k, rc = 0;

	if (sqlite3_column_bytes(st, 0) != CID_LEN)
		return -EINVAL;
	rc = mv_buf_append(b, sqlite3_column_blob(st, 0), CID_LEN);
	if (!rc)
		rc = mv_buf_put_varint(b, zz(sqlite3_column_int64(st, 1)));
	for (k = 0; !rc && k < MC_N; k++)
		rc = msg_col[k].kind == MC_INT
			     ? put_col_int(b, st, MSG_COL_FIRST + k)
			     : put_col_str(b, st, MSG_COL_FIRST + k);
	if (rc)
		return rc;
	if (body) {
		sqlite3_reset(body);
		sqlite3_bind_int64(body, 1,
				   sqlite3_column_int64(st, MSG_COL_ID));
		if (sqlite3_step(body) == SQLITE_ROW) {
			rc = put_col_str(b, body, 0);
			sqlite3_reset(body);
			return rc;
		}
		sqlite3_reset(body);
	}
	return put_str(b, NULL, 0);
}

static sqlite3_stmt *body_stmt(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(db,
			       "SELECT body FROM temp.catseg_body"
			       " WHERE msg = ?1",
			       -1, &st, NULL) != SQLITE_OK)
		return NULL; /* no bodies kept */
	return st;
}

/* A table of int64 -> index, for folder and message numbers. */
struct idmap {
	int64_t *k;
	size_t n, cap;
};

static int64_t idmap_find(const struct idmap *m, int64_t k)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (m->k[mid] == k)
			return (int64_t)mid;
		if (m->k[mid] < k)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* keys must come in increasing order */
static int idmap_add(struct idmap *m, int64_t k)
{
	if (m->n == m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 64;
		int64_t *p = realloc(m->k, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		m->k = p;
		m->cap = cap;
	}
	m->k[m->n++] = k;
	return 0;
}

/* Folders named by query sel (id, job, account, mailbox ordered by id). */
static int put_folders(sqlite3 *db, struct mv_buf *b, const char *sql,
		       int64_t arg, struct idmap *map, struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, step;
	uint64_t n = 0;
	struct mv_buf tmp = MV_BUF_INIT;

	rc = prep(db, sql, &st, err);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, arg);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (idmap_add(map, sqlite3_column_int64(st, 0)) ||
		    put_col_str(&tmp, st, 1) || put_col_str(&tmp, st, 2) ||
		    put_col_str(&tmp, st, 3)) {
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		n++;
	}
	if (step != SQLITE_DONE) {
		rc = db_fail(db, err, "cannot read folders");
		goto out;
	}
	if (mv_buf_put_varint(b, n) || mv_buf_append(b, tmp.data, tmp.len))
		rc = mv_err_set(err, -ENOMEM, "out of memory");
out:
	sqlite3_finalize(st);
	mv_buf_release(&tmp);
	return rc;
}

/* Messages of query sql (msg_select ... ORDER BY m.id) into b. */
static int put_msgs(sqlite3 *db, struct mv_buf *b, const char *sql, int64_t arg,
		    struct idmap *map, struct mv_err *err)
{
	sqlite3_stmt *st = NULL, *body = body_stmt(db);
	struct mv_buf tmp = MV_BUF_INIT;
	uint64_t n = 0;
	int rc, step;

	rc = prep(db, sql, &st, err);
	if (rc)
		goto out;
	sqlite3_bind_int64(st, 1, arg);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		rc = put_msg(&tmp, st, body);
		if (rc == -EINVAL) { /* not a whole id: cannot be named */
			rc = 0;
			continue;
		}
		if (rc ||
		    idmap_add(map, sqlite3_column_int64(st, MSG_COL_ID))) {
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		n++;
	}
	if (step != SQLITE_DONE) {
		rc = db_fail(db, err, "cannot read messages");
		goto out;
	}
	if (mv_buf_put_varint(b, n) || mv_buf_append(b, tmp.data, tmp.len))
		rc = mv_err_set(err, -ENOMEM, "out of memory");
out:
	sqlite3_finalize(st);
	sqlite3_finalize(body);
	mv_buf_release(&tmp);
	return rc;
}

/* A message reference: its index in the segment, or n and its cid. */
static int put_ref(struct mv_buf *b, const struct idmap *msgs, int64_t id,
		   const void *cid, int cid_len)
{
	int64_t i = idmap_find(msgs, id);

	if (i >= 0)
		return mv_buf_put_varint(b, (uint64_t)i);
	if (cid_len != CID_LEN)
		return -EINVAL;
	if (mv_buf_put_varint(b, msgs->n))
		return -ENOMEM;
	return mv_buf_append(b, cid, CID_LEN);
}

static int snap_of(sqlite3 *db, const char *snap_id, int64_t *seq, char **job,
		   int64_t *time, struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = 0, step;

	rc = prep(db, "SELECT seq, job, time FROM snap WHERE snap_id = ?1", &st,
		  err);
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, snap_id, -1, SQLITE_STATIC);
	step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		*seq = sqlite3_column_int64(st, 0);
		*job = strdup((const char *)sqlite3_column_text(st, 1));
		*time = sqlite3_column_int64(st, 2);
		if (!*job)
			rc = mv_err_set(err, -ENOMEM, "out of memory");
	} else if (step == SQLITE_DONE) {
		rc = mv_err_set(err, -ENOENT,
				"catalogue segments: snapshot %.12s is not in "
				"the catalogue",
				snap_id);
	} else {
		rc = db_fail(db, err, "cannot read snapshots");
	}
	sqlite3_finalize(st);
	return rc;
}

int catseg_build(sqlite3 *db, const char *snap_id, struct mv_buf *out,
		 struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	struct idmap folders = {0}, msgs = {0};
	struct mv_buf pl = MV_BUF_INIT;
	char *job = NULL, *prev = NULL;
	int64_t seq = 0, time = 0, prev_seq = -1;
	uint64_t n = 0;
	int rc, step;

	rc = snap_of(db, snap_id, &seq, &job, &time, err);
	if (rc)
		return rc;
	rc = prep(db,
		  "SELECT seq, snap_id FROM snap WHERE job = ?1 AND seq < ?2"
		  " ORDER BY seq DESC LIMIT 1",
		  &st, err);
	if (rc)
		goto out;
	sqlite3_bind_text(st, 1, job, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, seq);
	if (sqlite3_step(st) == SQLITE_ROW) {
		prev_seq = sqlite3_column_int64(st, 0);
		prev = strdup((const char *)sqlite3_column_text(st, 1));
		if (!prev) {
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
	}
	sqlite3_finalize(st);
	st = NULL;
	if (mv_buf_append(out, MAGIC, 4) || mv_buf_put_u8(out, VERSION) ||
	    mv_buf_put_u8(out, CATSEG_DELTA) || mv_buf_put_varint(out, 1) ||
	    put_str(out, (const unsigned char *)job, (int)strlen(job)) ||
	    put_str(out, (const unsigned char *)snap_id,
		    (int)strlen(snap_id)) ||
	    mv_buf_put_varint(out, zz(time)) ||
	    put_str(out, (const unsigned char *)prev,
		    prev ? (int)strlen(prev) : 0)) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	/* the folders of the places opened or closed now */
	rc = put_folders(db, out,
			 "SELECT id, job, account, mailbox FROM folder f"
			 " WHERE EXISTS (SELECT 1 FROM place p WHERE"
			 " p.folder = f.id AND (p.first_snap = ?1 OR"
			 " p.last_snap = (SELECT max(seq) FROM snap WHERE"
			 " seq < ?1 AND job = f.job))) ORDER BY id",
			 seq, &folders, err);
	if (rc)
		goto out;
	/* invariant 1: the messages first placed by this snapshot */
	{
		char sql[MSG_SQL_MAX];

		msg_select(sql, sizeof(sql),
			   "WHERE c.msg IN (SELECT p.msg FROM place p"
			   " WHERE p.first_snap = ?1 AND NOT EXISTS"
			   " (SELECT 1 FROM place q WHERE q.msg = p.msg"
			   " AND q.first_snap < ?1)) ORDER BY m.id");
		rc = put_msgs(db, out, sql, seq, &msgs, err);
	}
	if (rc)
		goto out;
	rc = prep(db,
		  "SELECT p.msg, p.folder, p.n, p.name, m.cid || c.key"
		  " FROM place p JOIN msg m ON m.id = p.msg"
		  " JOIN msg_cid c ON c.msg = m.id"
		  " WHERE p.first_snap = ?1 ORDER BY p.n",
		  &st, err);
	if (rc)
		goto out;
	sqlite3_bind_int64(st, 1, seq);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t f = idmap_find(&folders, sqlite3_column_int64(st, 1));

		if (f < 0 ||
		    put_ref(&pl, &msgs, sqlite3_column_int64(st, 0),
			    sqlite3_column_blob(st, 4),
			    sqlite3_column_bytes(st, 4)) ||
		    mv_buf_put_varint(&pl, (uint64_t)f) ||
		    mv_buf_put_varint(&pl,
				      (uint64_t)sqlite3_column_int64(st, 2)) ||
		    put_col_name(&pl, st, 3) || mv_buf_put_varint(&pl, 0) ||
		    mv_buf_put_varint(&pl, 0))
			continue; /* a place that cannot be named */
		n++;
	}
	if (step != SQLITE_DONE) {
		rc = db_fail(db, err, "cannot read places");
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (mv_buf_put_varint(out, n) || mv_buf_append(out, pl.data, pl.len)) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	/* the places this snapshot ended at the one before it */
	mv_buf_reset(&pl);
	n = 0;
	if (prev_seq >= 0) {
		rc = prep(db,
			  "SELECT p.folder, p.name, m.cid || c.key FROM place p"
			  " JOIN folder f ON f.id = p.folder"
			  " JOIN msg m ON m.id = p.msg"
			  " JOIN msg_cid c ON c.msg = m.id"
			  " WHERE p.last_snap = ?1 AND f.job = ?2"
			  " ORDER BY p.msg, p.folder, p.first_snap, p.n",
			  &st, err);
		if (rc)
			goto out;
		sqlite3_bind_int64(st, 1, prev_seq);
		sqlite3_bind_text(st, 2, job, -1, SQLITE_STATIC);
		while ((step = sqlite3_step(st)) == SQLITE_ROW) {
			int64_t f = idmap_find(&folders,
					       sqlite3_column_int64(st, 0));

			if (f < 0 || sqlite3_column_bytes(st, 2) != CID_LEN)
				continue;
			if (mv_buf_append(&pl, sqlite3_column_blob(st, 2),
					  CID_LEN) ||
			    mv_buf_put_varint(&pl, (uint64_t)f) ||
			    put_col_name(&pl, st, 1)) {
				rc = mv_err_set(err, -ENOMEM, "out of memory");
				goto out;
			}
			n++;
		}
		if (step != SQLITE_DONE) {
			rc = db_fail(db, err, "cannot read places");
			goto out;
		}
	}
	if (mv_buf_put_varint(out, n) || mv_buf_append(out, pl.data, pl.len))
		rc = mv_err_set(err, -ENOMEM, "out of memory");
out:
	sqlite3_finalize(st);
	free(folders.k);
	free(msgs.k);
	mv_buf_release(&pl);
	free(job);
	free(prev);
	return rc;
}

int catseg_build_base(sqlite3 *db, struct mv_buf *out, struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	struct idmap snaps = {0}, folders = {0}, msgs = {0};
	struct mv_buf pl = MV_BUF_INIT;
	uint64_t n = 0;
	int rc, step;
	char sql[MSG_SQL_MAX];

	if (mv_buf_append(out, MAGIC, 4) || mv_buf_put_u8(out, VERSION) ||
	    mv_buf_put_u8(out, CATSEG_BASE))
		return mv_err_set(err, -ENOMEM, "out of memory");
	rc = prep(db, "SELECT seq, job, snap_id, time FROM snap ORDER BY seq",
		  &st, err);
	if (rc)
		return rc;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (idmap_add(&snaps, sqlite3_column_int64(st, 0)) ||
		    put_col_str(&pl, st, 1) || put_col_str(&pl, st, 2) ||
		    mv_buf_put_varint(&pl, zz(sqlite3_column_int64(st, 3)))) {
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
	}
	if (step != SQLITE_DONE) {
		rc = db_fail(db, err, "cannot read snapshots");
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	{
		/* a base's "prev" is when it was made: the newest base wins */
		struct timespec ts;
		char made[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		snprintf(made, sizeof(made), "%lld%09ld", (long long)ts.tv_sec,
			 (long)ts.tv_nsec);
		if (mv_buf_put_varint(out, snaps.n) ||
		    mv_buf_append(out, pl.data, pl.len) ||
		    put_str(out, (const unsigned char *)made,
			    (int)strlen(made)))
			rc = -ENOMEM;
	}
	if (rc) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	rc = put_folders(db, out,
			 "SELECT id, job, account, mailbox FROM folder"
			 " WHERE ?1 = ?1 AND id IN (SELECT folder FROM place)"
			 " ORDER BY id",
			 0, &folders, err);
	if (rc)
		goto out;
	msg_select(sql, sizeof(sql),
		   "WHERE ?1 = ?1 AND m.id IN (SELECT msg FROM place)"
		   " ORDER BY m.id");
	rc = put_msgs(db, out, sql, 0, &msgs, err);
	if (rc)
		goto out;
	mv_buf_reset(&pl);
	rc = prep(db,
		  "SELECT p.msg, p.folder, p.n, p.name, p.first_snap,"
		  " p.last_snap FROM place p ORDER BY p.first_snap, p.n",
		  &st, err);
	if (rc)
		goto out;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t f = idmap_find(&folders, sqlite3_column_int64(st, 1));
		int64_t m = idmap_find(&msgs, sqlite3_column_int64(st, 0));
		int64_t s1 = idmap_find(&snaps, sqlite3_column_int64(st, 4));
		int64_t s2 = -1;

		if (sqlite3_column_type(st, 5) != SQLITE_NULL) {
			s2 = idmap_find(&snaps, sqlite3_column_int64(st, 5));
			if (s2 < 0)
				continue;
		}
		if (f < 0 || m < 0 || s1 < 0)
			continue;
		if (mv_buf_put_varint(&pl, (uint64_t)m) ||
		    mv_buf_put_varint(&pl, (uint64_t)f) ||
		    mv_buf_put_varint(&pl,
				      (uint64_t)sqlite3_column_int64(st, 2)) ||
		    put_col_name(&pl, st, 3) ||
		    mv_buf_put_varint(&pl, (uint64_t)s1) ||
		    mv_buf_put_varint(&pl, (uint64_t)(s2 + 1))) {
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		n++;
	}
	if (step != SQLITE_DONE) {
		rc = db_fail(db, err, "cannot read places");
		goto out;
	}
	if (mv_buf_put_varint(out, n) || mv_buf_append(out, pl.data, pl.len) ||
	    mv_buf_put_varint(out, 0))
		rc = mv_err_set(err, -ENOMEM, "out of memory");
out:
	sqlite3_finalize(st);
	free(snaps.k);
	free(folders.k);
	free(msgs.k);
	mv_buf_release(&pl);
	return rc;
}

/* ---- reading ------------------------------------------------------------- */

static int head_read(struct mv_reader *rd, const void *seg, size_t len,
		     uint8_t *kind)
{
	uint8_t ver;

	mv_reader_init(rd, seg, len);
	if (len < 6 || memcmp(seg, MAGIC, 4))
		return -EBADMSG;
	rd->p += 4;
	if (mv_reader_u8(rd, &ver) || ver != VERSION ||
	    mv_reader_u8(rd, kind) || *kind > CATSEG_BASE)
		return -EBADMSG;
	return 0;
}

static void str_copy(char *dst, size_t n, const struct cs_str *s)
{
	snprintf(dst, n, "%.*s", s->p ? s->n : 0, s->p ? s->p : "");
}

int catseg_peek(const void *seg, size_t len, struct catseg_head *out,
		struct mv_err *err)
{
	struct mv_reader rd;
	struct cs_str job, id, prev;
	uint64_t nsnap, t;
	uint8_t kind;

	memset(out, 0, sizeof(*out));
	if (head_read(&rd, seg, len, &kind))
		goto bad;
	out->kind = kind;
	if (kind == CATSEG_BASE) {
		uint64_t i;

		if (mv_reader_varint(&rd, &nsnap) ||
		    nsnap > (uint64_t)(rd.end - rd.p))
			goto bad;
		for (i = 0; i < nsnap; i++)
			if (get_str(&rd, &job) || get_str(&rd, &id) ||
			    mv_reader_varint(&rd, &t))
				goto bad;
		if (get_str(&rd, &prev))
			goto bad;
		str_copy(out->prev, sizeof(out->prev), &prev);
		out->made = prev.p ? strtoll(out->prev, NULL, 10) : 0;
		return 0;
	}
	if (mv_reader_varint(&rd, &nsnap) || nsnap != 1 || get_str(&rd, &job) ||
	    get_str(&rd, &id) || mv_reader_varint(&rd, &t) ||
	    get_str(&rd, &prev) || !job.p || !id.p)
		goto bad;
	str_copy(out->job, sizeof(out->job), &job);
	str_copy(out->snap_id, sizeof(out->snap_id), &id);
	str_copy(out->prev, sizeof(out->prev), &prev);
	return 0;
bad:
	return mv_err_set(err, -EBADMSG, "catalogue segment is malformed");
}

/* ---- replaying ----------------------------------------------------------- */

struct apply {
	sqlite3 *db;
	struct mv_err *err;
	int64_t *snap_seq; /* seq of the segment's snapshots */
	int64_t *folder_id;
	int64_t *msg_id;
	uint64_t nsnap, nfolder, nmsg;
	int64_t prev_seq; /* delta: the job's latest seq before it */
	sqlite3_stmt *find, *ins_msg, *ins_cid, *ins_fts, *ins_place;
};

static void apply_release(struct apply *a)
{
	free(a->snap_seq);
	free(a->folder_id);
	free(a->msg_id);
	sqlite3_finalize(a->find);
	sqlite3_finalize(a->ins_msg);
	sqlite3_finalize(a->ins_cid);
	sqlite3_finalize(a->ins_fts);
	sqlite3_finalize(a->ins_place);
}

/* msg.id of a 32-byte content id: > 0, 0 unknown, < 0 error */
static int64_t find_msg(struct apply *a, const uint8_t *cid)
{
	int64_t id = 0;
	int step;

	sqlite3_reset(a->find);
	sqlite3_bind_blob(a->find, 1, cid + CID_HEAD, CID_LEN - CID_HEAD,
			  SQLITE_STATIC);
	sqlite3_bind_blob(a->find, 2, cid, CID_HEAD, SQLITE_STATIC);
	step = sqlite3_step(a->find);
	if (step == SQLITE_ROW)
		id = sqlite3_column_int64(a->find, 0);
	else if (step != SQLITE_DONE)
		id = db_fail(a->db, a->err, "cannot look a message up");
	sqlite3_reset(a->find);
	return id;
}

static int64_t job_latest(sqlite3 *db, const struct cs_str *job, char *id,
			  size_t n)
{
	sqlite3_stmt *st = NULL;
	int64_t seq = -1;

	id[0] = '\0';
	if (sqlite3_prepare_v2(db,
			       "SELECT seq, snap_id FROM snap WHERE job = ?1"
			       " ORDER BY seq DESC LIMIT 1",
			       -1, &st, NULL) != SQLITE_OK)
		return -2;
	bind_str(st, 1, job);
	if (sqlite3_step(st) == SQLITE_ROW) {
		seq = sqlite3_column_int64(st, 0);
		snprintf(id, n, "%s", (const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_finalize(st);
	return seq;
}

static bool str_eq(const struct cs_str *s, const char *c)
{
	return s->p && (size_t)s->n == strlen(c) && !memcmp(s->p, c, s->n);
}

static int snap_known(sqlite3 *db, const struct cs_str *id)
{
	sqlite3_stmt *st = NULL;
	int known;

	if (sqlite3_prepare_v2(db, "SELECT 1 FROM snap WHERE snap_id = ?1", -1,
			       &st, NULL) != SQLITE_OK)
		return -EIO;
	bind_str(st, 1, id);
	known = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return known;
}

/* Empty the catalogue (a base replaces it).  The FTS table is contentless:
 * 'delete-all' is its way to be emptied. */
static int catalogue_clear(sqlite3 *db, struct mv_err *err)
{
	if (sqlite3_exec(db,
			 "DELETE FROM place; DELETE FROM folder;"
			 " DELETE FROM msg_cid; DELETE FROM msg;"
			 " DELETE FROM snap;"
			 " INSERT INTO msg_fts(msg_fts) VALUES('delete-all');",
			 NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(db, err, "cannot empty the catalogue");
	return 0;
}

static int apply_snaps(struct apply *a, struct mv_reader *rd, uint8_t kind)
{
	sqlite3_stmt *st = NULL;
	struct cs_str job = {0}, id = {0}, prev;
	uint64_t i, t;
	char latest[80];
	int rc;

	if (mv_reader_varint(rd, &a->nsnap) ||
	    a->nsnap > (uint64_t)(rd->end - rd->p) ||
	    (kind == CATSEG_DELTA && a->nsnap != 1))
		return -EBADMSG;
	a->snap_seq = calloc(a->nsnap + 1, sizeof(*a->snap_seq));
	if (!a->snap_seq)
		return mv_err_set(a->err, -ENOMEM, "out of memory");
	rc = prep(a->db, "INSERT INTO snap (job, snap_id, time) VALUES (?,?,?)",
		  &st, a->err);
	if (rc)
		return rc;
	for (i = 0; i < a->nsnap; i++) {
		if (get_str(rd, &job) || get_str(rd, &id) ||
		    mv_reader_varint(rd, &t) || !job.p || !id.p) {
			rc = -EBADMSG;
			goto out;
		}
		if (kind == CATSEG_DELTA) {
			/* invariant 2: only on top of its previous snapshot */
			if (get_str(rd, &prev)) {
				rc = -EBADMSG;
				goto out;
			}
			rc = snap_known(a->db, &id);
			if (rc) /* 1: applied already */
				goto out;
			a->prev_seq =
				job_latest(a->db, &job, latest, sizeof(latest));
			if (a->prev_seq < -1) {
				rc = db_fail(a->db, a->err, "cannot read");
				goto out;
			}
			if ((prev.p && !str_eq(&prev, latest)) ||
			    (!prev.p && a->prev_seq >= 0)) {
				rc = -EAGAIN;
				goto out;
			}
		}
		sqlite3_reset(st);
		bind_str(st, 1, &job);
		bind_str(st, 2, &id);
		sqlite3_bind_int64(st, 3, unzz(t));
		if (sqlite3_step(st) != SQLITE_DONE) {
			rc = db_fail(a->db, a->err, "cannot add a snapshot");
			goto out;
		}
		a->snap_seq[i] = sqlite3_last_insert_rowid(a->db);
	}
	if (kind == CATSEG_BASE && get_str(rd, &prev))
		rc = -EBADMSG;
out:
	sqlite3_finalize(st);
	return rc;
}

static int apply_folders(struct apply *a, struct mv_reader *rd)
{
	sqlite3_stmt *sel = NULL, *ins = NULL;
	struct cs_str s[3];
	uint64_t i;
	int rc, k;

	if (mv_reader_varint(rd, &a->nfolder) ||
	    a->nfolder > (uint64_t)(rd->end - rd->p))
		return -EBADMSG;
	a->folder_id = calloc(a->nfolder + 1, sizeof(*a->folder_id));
	if (!a->folder_id)
		return mv_err_set(a->err, -ENOMEM, "out of memory");
	rc = prep(a->db,
		  "SELECT id FROM folder WHERE job = ?1 AND account = ?2"
		  " AND mailbox = ?3",
		  &sel, a->err);
	if (!rc)
		rc = prep(a->db,
			  "INSERT INTO folder (job, account, mailbox)"
			  " VALUES (?1, ?2, ?3)",
			  &ins, a->err);
	for (i = 0; !rc && i < a->nfolder; i++) {
		for (k = 0; k < 3; k++)
			if (get_str(rd, &s[k]) || !s[k].p)
				rc = -EBADMSG;
		if (rc)
			break;
		sqlite3_reset(sel);
		for (k = 0; k < 3; k++)
			bind_str(sel, k + 1, &s[k]);
		if (sqlite3_step(sel) == SQLITE_ROW) {
			a->folder_id[i] = sqlite3_column_int64(sel, 0);
			continue;
		}
		sqlite3_reset(ins);
		for (k = 0; k < 3; k++)
			bind_str(ins, k + 1, &s[k]);
		if (sqlite3_step(ins) != SQLITE_DONE)
			rc = db_fail(a->db, a->err, "cannot add a folder");
		a->folder_id[i] = sqlite3_last_insert_rowid(a->db);
	}
	sqlite3_finalize(sel);
	sqlite3_finalize(ins);
	return rc;
}

/* One column of a message row as read from a segment. */
struct cs_col {
	struct cs_int i; /* MC_INT */
	struct cs_str s; /* MC_STR */
};

static void bind_col(sqlite3_stmt *st, int i, const struct cs_col *c,
		     enum msg_col_kind kind)
{
	if (kind == MC_INT)
		bind_int(st, i, &c->i);
	else
		bind_str(st, i, &c->s);
}

static int apply_msgs(struct apply *a, struct mv_reader *rd)
{
	uint64_t i, date;
	int rc = 0, k;

	if (mv_reader_varint(rd, &a->nmsg) ||
	    a->nmsg > (uint64_t)(rd->end - rd->p) / CID_LEN)
		return -EBADMSG;
	a->msg_id = calloc(a->nmsg + 1, sizeof(*a->msg_id));
	if (!a->msg_id)
		return mv_err_set(a->err, -ENOMEM, "out of memory");
	for (i = 0; i < a->nmsg; i++) {
		const uint8_t *cid = rd->p;
		struct cs_col c[MC_N];
		struct cs_str body;
		const struct cs_str *fn, *fa;
		int64_t id;
		char *from;

		if ((size_t)(rd->end - rd->p) < CID_LEN)
			return -EBADMSG;
		rd->p += CID_LEN;
		if (mv_reader_varint(rd, &date))
			return -EBADMSG;
		memset(c, 0, sizeof(c));
		for (k = 0; k < MC_N; k++)
			if (msg_col[k].kind == MC_INT ? get_int(rd, &c[k].i)
						      : get_str(rd, &c[k].s))
				return -EBADMSG;
		if (get_str(rd, &body))
			return -EBADMSG;
		id = find_msg(a, cid);
		if (id < 0)
			return (int)id;
		if (id > 0) { /* catalogued already (a base of another) */
			a->msg_id[i] = id;
			continue;
		}
		/* as mail_catalog_add and the view's trigger write it */
		sqlite3_reset(a->ins_msg);
		sqlite3_bind_blob(a->ins_msg, 1, cid, CID_HEAD, SQLITE_STATIC);
		sqlite3_bind_int64(a->ins_msg, 2, unzz(date));
		for (k = 0; k < MC_N; k++)
			bind_col(a->ins_msg, 3 + k, &c[k], msg_col[k].kind);
		if (sqlite3_step(a->ins_msg) != SQLITE_DONE)
			return db_fail(a->db, a->err, "cannot add a message");
		id = sqlite3_last_insert_rowid(a->db);
		a->msg_id[i] = id;
		sqlite3_reset(a->ins_cid);
		sqlite3_bind_blob(a->ins_cid, 1, cid + CID_HEAD,
				  CID_LEN - CID_HEAD, SQLITE_STATIC);
		sqlite3_bind_int64(a->ins_cid, 2, id);
		if (sqlite3_step(a->ins_cid) != SQLITE_DONE)
			return db_fail(a->db, a->err, "cannot add a message");
		/* from_ is the display name or the address, from_addr the
		 * address when it adds to it: the FTS column held both */
		fn = &c[MC_FROM].s;
		fa = c[MC_FROM_ADDR].s.p ? &c[MC_FROM_ADDR].s : fn;
		from = sqlite3_mprintf("%.*s %.*s", fn->p ? fn->n : 0,
				       fn->p ? fn->p : "", fa->p ? fa->n : 0,
				       fa->p ? fa->p : "");
		if (!from)
			return mv_err_set(a->err, -ENOMEM, "out of memory");
		sqlite3_reset(a->ins_fts);
		sqlite3_bind_int64(a->ins_fts, 1, id);
		bind_str(a->ins_fts, 2, &c[MC_SUBJECT].s);
		sqlite3_bind_text(a->ins_fts, 3, from, -1, sqlite3_free);
		bind_str(a->ins_fts, 4, &c[MC_TO].s);
		bind_str(a->ins_fts, 5, &c[MC_CC].s);
		bind_str(a->ins_fts, 6, &c[MC_ATTACHMENTS].s);
		bind_str(a->ins_fts, 7, &body);
		if (sqlite3_step(a->ins_fts) != SQLITE_DONE)
			return db_fail(a->db, a->err, "cannot index a message");
	}
	return rc;
}

static int apply_places(struct apply *a, struct mv_reader *rd, uint8_t kind)
{
	uint64_t n, i, ref, folder, pn, first, last;
	struct cs_name nm;

	if (mv_reader_varint(rd, &n) || n > (uint64_t)(rd->end - rd->p))
		return -EBADMSG;
	for (i = 0; i < n; i++) {
		int64_t msg;

		if (mv_reader_varint(rd, &ref) || ref > a->nmsg)
			return -EBADMSG;
		if (ref == a->nmsg) {
			if ((size_t)(rd->end - rd->p) < CID_LEN)
				return -EBADMSG;
			msg = find_msg(a, rd->p);
			rd->p += CID_LEN;
			if (msg < 0)
				return (int)msg;
			if (!msg) /* in a segment of another job, not yet
				     replayed (invariant 1) */
				return -EAGAIN;
		} else {
			msg = a->msg_id[ref];
		}
		if (mv_reader_varint(rd, &folder) || folder >= a->nfolder ||
		    mv_reader_varint(rd, &pn) || get_name(rd, &nm) ||
		    mv_reader_varint(rd, &first) || first >= a->nsnap ||
		    mv_reader_varint(rd, &last) || last > a->nsnap ||
		    (kind == CATSEG_DELTA && last))
			return -EBADMSG;
		sqlite3_reset(a->ins_place);
		sqlite3_bind_int64(a->ins_place, 1, msg);
		sqlite3_bind_int64(a->ins_place, 2, a->folder_id[folder]);
		sqlite3_bind_int64(a->ins_place, 3, a->snap_seq[first]);
		sqlite3_bind_int64(a->ins_place, 4, (int64_t)pn);
		bind_name(a->ins_place, 5, &nm);
		if (last)
			sqlite3_bind_int64(a->ins_place, 6,
					   a->snap_seq[last - 1]);
		else
			sqlite3_bind_null(a->ins_place, 6);
		if (sqlite3_step(a->ins_place) != SQLITE_DONE)
			return db_fail(a->db, a->err, "cannot add a place");
	}
	return 0;
}

/* The places a delta ended: the open one of that message, folder and
 * name, recorded before the delta's snapshot, ends at prev_seq. */
static int apply_closes(struct apply *a, struct mv_reader *rd)
{
	sqlite3_stmt *st = NULL;
	uint64_t n, i, folder;
	struct cs_name nm;
	int rc;

	if (mv_reader_varint(rd, &n) || n > (uint64_t)(rd->end - rd->p))
		return -EBADMSG;
	if (!n)
		return 0;
	if (a->prev_seq < 0)
		return -EBADMSG;
	rc = prep(a->db,
		  "UPDATE place SET last_snap = ?1 WHERE msg = ?2"
		  " AND folder = ?3 AND last_snap IS NULL"
		  " AND first_snap < ?4 AND name IS ?5",
		  &st, a->err);
	if (rc)
		return rc;
	for (i = 0; i < n; i++) {
		const uint8_t *cid = rd->p;
		int64_t msg;

		if ((size_t)(rd->end - rd->p) < CID_LEN) {
			rc = -EBADMSG;
			break;
		}
		rd->p += CID_LEN;
		if (mv_reader_varint(rd, &folder) || folder >= a->nfolder ||
		    get_name(rd, &nm)) {
			rc = -EBADMSG;
			break;
		}
		msg = find_msg(a, cid);
		if (msg <= 0) {
			rc = msg < 0 ? (int)msg : 0;
			if (rc)
				break;
			continue;
		}
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, a->prev_seq);
		sqlite3_bind_int64(st, 2, msg);
		sqlite3_bind_int64(st, 3, a->folder_id[folder]);
		sqlite3_bind_int64(st, 4, a->snap_seq[0]);
		bind_name(st, 5, &nm);
		if (sqlite3_step(st) != SQLITE_DONE) {
			rc = db_fail(a->db, a->err, "cannot end a place");
			break;
		}
	}
	sqlite3_finalize(st);
	return rc;
}

int catseg_apply(sqlite3 *db, const void *seg, size_t len, struct mv_err *err)
{
	struct apply a;
	struct mv_reader rd;
	uint8_t kind;
	bool savepoint = false;
	int rc;

	memset(&a, 0, sizeof(a));
	a.db = db;
	a.err = err;
	a.prev_seq = -1;
	if (head_read(&rd, seg, len, &kind))
		return mv_err_set(err, -EBADMSG,
				  "catalogue segment is malformed");
	rc = prep(db,
		  "SELECT m.id FROM msg_cid c JOIN msg m ON m.id = c.msg"
		  " WHERE c.key = ?1 AND m.cid = ?2",
		  &a.find, err);
	if (!rc) {
		char sql[MSG_SQL_MAX];

		msg_insert(sql, sizeof(sql));
		rc = prep(db, sql, &a.ins_msg, err);
	}
	if (!rc)
		rc = prep(db, "INSERT INTO msg_cid (key, msg) VALUES (?1, ?2)",
			  &a.ins_cid, err);
	if (!rc)
		rc = prep(db,
			  "INSERT INTO msg_fts (rowid, subject, from_, to_, cc,"
			  " attachments, body) VALUES (?,?,?,?,?,?,?)",
			  &a.ins_fts, err);
	if (!rc)
		rc = prep(db,
			  "INSERT OR IGNORE INTO place (msg, folder,"
			  " first_snap, n, name, last_snap)"
			  " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
			  &a.ins_place, err);
	/* all or nothing, inside whatever transaction the caller has */
	if (!rc && sqlite3_exec(db, "SAVEPOINT catseg_apply", NULL, NULL,
				NULL) != SQLITE_OK)
		rc = db_fail(db, err, "cannot begin");
	else if (!rc)
		savepoint = true;
	if (!rc && kind == CATSEG_BASE)
		rc = catalogue_clear(db, err);
	if (!rc)
		rc = apply_snaps(&a, &rd, kind);
	if (!rc)
		rc = apply_folders(&a, &rd);
	if (!rc)
		rc = apply_msgs(&a, &rd);
	if (!rc)
		rc = apply_places(&a, &rd, kind);
	if (!rc)
		rc = apply_closes(&a, &rd);
	if (!rc && !mv_reader_done(&rd))
		rc = -EBADMSG;
	apply_release(&a);
	if (savepoint && rc)
		sqlite3_exec(db, "ROLLBACK TO catseg_apply", NULL, NULL, NULL);
	if (savepoint)
		sqlite3_exec(db, "RELEASE catseg_apply", NULL, NULL, NULL);
	if (rc == -EBADMSG)
		mv_err_set(err, -EBADMSG, "catalogue segment is malformed");
	return rc;
}

/* ---- in the repository --------------------------------------------------- */

int catseg_init_db(sqlite3 *db, struct mv_err *err)
{
	if (sqlite3_exec(db,
			 "CREATE TABLE IF NOT EXISTS catseg_seen ("
			 " name TEXT PRIMARY KEY, kind INTEGER) WITHOUT ROWID;",
			 NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(db, err, "cannot create the table of segments");
	return 0;
}

/* The catalogue key of r: XChaCha20 from the master key of an encrypted
 * repository, the none suite's XXH3 tag otherwise. */
static int seg_key(struct repo *r, struct crypt_key **out, struct mv_err *err)
{
	const uint8_t *mk = repo_master_key(r, NULL);
	uint8_t k[CRYPT_KEY_LEN];
	int rc;

	rc = crypt_init(err);
	if (rc)
		return rc;
	if (!mk)
		return crypt_key_new(CRYPT_NONE, NULL, out, err);
	rc = crypt_derive(mk, CRYPT_SK_CATALOG, 0, k);
	if (!rc)
		rc = crypt_key_new(CRYPT_XCHACHA20, k, out, err);
	crypt_wipe(k, sizeof(k));
	if (rc)
		return mv_err_set(err, rc, "cannot derive the catalogue key");
	return 0;
}

/* Name of an object: the hex of its 32-byte id. */
static void seg_path(const uint8_t id[SEAL_ID_LEN], char *out, size_t n)
{
	char hex[2 * SEAL_ID_LEN + 1];

	mv_hex(id, SEAL_ID_LEN, hex);
	snprintf(out, n, "%s/%s", CATSEG_DIR, hex);
}

/* Compress and seal plain as object id into out. */
static int seg_seal(const struct crypt_key *k, const uint8_t *id,
		    const struct mv_buf *plain, struct mv_buf *out,
		    struct mv_err *err)
{
	size_t bound = ZSTD_compressBound(plain->len);
	void *z = malloc(bound ? bound : 1);
	size_t zn;
	int rc;

	if (!z)
		return mv_err_set(err, -ENOMEM, "out of memory");
	zn = ZSTD_compress(z, bound, plain->data, plain->len, 3);
	if (ZSTD_isError(zn)) {
		free(z);
		return mv_err_set(err, -EIO, "catalogue segment: zstd: %s",
				  ZSTD_getErrorName(zn));
	}
	rc = seal_record(k, CATSEG_REC_TYPE, 0, id, PACK_COMP_ZSTD, 0, z, zn,
			 out, err);
	free(z);
	return rc;
}

/* Open a stored segment named by its hex name into plain. */
static int seg_open(const struct crypt_key *k, const char *name,
		    const void *stored, size_t len, struct mv_buf *plain,
		    struct mv_err *err)
{
	struct mv_buf z = MV_BUF_INIT;
	uint8_t id[SEAL_ID_LEN], comp = 0;
	uint32_t dict = 0;
	unsigned long long n;
	int rc;

	if (mv_unhex(name, id, SEAL_ID_LEN))
		return mv_err_set(err, -EBADMSG, "not a segment name");
	rc = seal_record_open(k, CATSEG_REC_TYPE, 0, id, stored, len, &comp,
			      &dict, &z, err);
	if (rc)
		goto out;
	if (comp != PACK_COMP_ZSTD) {
		rc = mv_err_set(err, -EBADMSG, "segment is not zstd");
		goto out;
	}
	n = ZSTD_getFrameContentSize(z.data, z.len);
	if (n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN ||
	    n > CATSEG_MAX) {
		rc = mv_err_set(err, -EBADMSG, "segment has a bad size");
		goto out;
	}
	mv_buf_reset(plain);
	rc = mv_buf_reserve(plain, (size_t)n + 1);
	if (rc) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (ZSTD_decompress(plain->data, (size_t)n + 1, z.data, z.len) != n) {
		rc = mv_err_set(err, -EBADMSG, "segment does not decompress");
		goto out;
	}
	plain->len = (size_t)n;
out:
	mv_buf_release(&z);
	return rc;
}

static int seen_add(sqlite3 *db, const char *name, int kind, struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;

	rc = prep(db, "INSERT OR REPLACE INTO catseg_seen VALUES (?1, ?2)", &st,
		  err);
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, kind);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_fail(db, err, "cannot note a segment");
	sqlite3_finalize(st);
	return rc;
}

static int seen_count(sqlite3 *db, int64_t *out, struct mv_err *err)
{
	sqlite3_stmt *st = NULL;

	if (prep(db, "SELECT count(*) FROM catseg_seen", &st, err))
		return -EIO;
	*out = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return 0;
}

/* Does db know a snapshot other than snap_id? */
static bool knows_before(sqlite3 *db, const char *snap_id)
{
	sqlite3_stmt *st = NULL;
	bool yes = false;

	if (sqlite3_prepare_v2(db,
			       "SELECT 1 FROM snap WHERE snap_id != ?1 LIMIT 1",
			       -1, &st, NULL) != SQLITE_OK)
		return true; /* a base is never wrong */
	sqlite3_bind_text(st, 1, snap_id, -1, SQLITE_STATIC);
	yes = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return yes;
}

/* CATSEG_BASE_EVERY, or MAILVAULT_CATSEG_BASE_EVERY for tests (so that
 * they need not make 66 backups to see the rule work). */
static int64_t base_every(void)
{
	const char *e = getenv("MAILVAULT_CATSEG_BASE_EVERY");
	long n = e ? strtol(e, NULL, 10) : 0;

	return n > 0 ? n : CATSEG_BASE_EVERY;
}

/* Deltas applied since the last base (a base resets catseg_seen). */
static int deltas_count(sqlite3 *db, int64_t *out, struct mv_err *err)
{
	sqlite3_stmt *st = NULL;

	if (prep(db, "SELECT count(*) FROM catseg_seen WHERE kind = 0", &st,
		 err))
		return -EIO;
	*out = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return 0;
}

/* Seal plain as object id and store it (catalog/ made when missing). */
static int seg_store(struct repo *r, const uint8_t *id,
		     const struct mv_buf *plain, char *path, size_t pathn,
		     struct mv_err *err)
{
	struct backend *be = repo_backend(r);
	struct crypt_key *k = NULL;
	struct mv_buf sealed = MV_BUF_INIT;
	struct mv_err ign = MV_ERR_INIT;
	int rc;

	rc = seg_key(r, &k, err);
	if (!rc)
		rc = seg_seal(k, id, plain, &sealed, err);
	if (rc)
		goto out;
	seg_path(id, path, pathn);
	/* catalog/ exists after the first segment: made only when missing
	 * (a round trip saved on every backup to a remote repository) */
	rc = backend_write_atomic(be, path, sealed.data, sealed.len, &ign);
	if (rc == -ENOENT) {
		be->ops->mkdir(be, CATSEG_DIR, NULL);
		rc = backend_write_atomic(be, path, sealed.data, sealed.len,
					  err);
	} else if (rc) {
		mv_err_set(err, rc, "%s", mv_err_msg(&ign));
	}
out:
	crypt_key_free(k);
	mv_buf_release(&sealed);
	return rc;
}

int catseg_publish(struct repo *r, sqlite3 *db, const char *snap_id,
		   struct mv_err *err)
{
	struct mv_buf plain = MV_BUF_INIT;
	uint8_t id[SEAL_ID_LEN];
	char path[128];
	int64_t nseen = 0;
	int kind = CATSEG_DELTA, rc;

	rc = catseg_init_db(db, err);
	if (!rc)
		rc = seen_count(db, &nseen, err);
	if (rc)
		return rc;
	if (!nseen && knows_before(db, snap_id)) {
		/* the first segment of a catalogue older than segments: a
		 * base, so that what it knew is in the repository too.  A
		 * catalogue that knows only this snapshot writes a delta: two
		 * new machines backing up at once then both count (of two
		 * bases only the newer would) */
		kind = CATSEG_BASE;
		rc = catseg_build_base(db, &plain, err);
		crypt_random(id, sizeof(id));
	} else {
		static const char tag[] = "mailvault catalogue segment ";
		struct mv_buf nb = MV_BUF_INIT;

		rc = catseg_build(db, snap_id, &plain, err);
		/* a keyed hash of the snapshot id: the same name if the
		 * segment is written again, and nothing said about it */
		if (!rc && (mv_buf_append(&nb, tag, sizeof(tag) - 1) ||
			    mv_buf_append(&nb, snap_id, strlen(snap_id))))
			rc = mv_err_set(err, -ENOMEM, "out of memory");
		if (!rc)
			repo_chunk_id(r, nb.data, nb.len, id);
		mv_buf_release(&nb);
	}
	if (!rc)
		rc = seg_store(r, id, &plain, path, sizeof(path), err);
	if (!rc)
		rc = seen_add(db, path + strlen(CATSEG_DIR) + 1, kind, err);
	mv_buf_release(&plain);
	if (rc) {
		mv_err_prefix(err, "cannot store the catalogue segment");
		return rc;
	}
	/* a fresh machine fetches the newest base and the deltas after it:
	 * keep those few (FORMAT-2 section 3) */
	if (kind == CATSEG_DELTA && !deltas_count(db, &nseen, err) &&
	    nseen > base_every()) {
		unsigned removed = 0;

		/* this backup's delta stays until the next base: another
		 * machine's base made at the same time lacks its snapshot,
		 * and may be the one readers take */
		rc = catseg_publish_base(r, db, false,
					 path + strlen(CATSEG_DIR) + 1,
					 &removed, err);
	}
	return rc;
}

/* ---- fetching ------------------------------------------------------------ */

struct fetched {
	char name[2 * SEAL_ID_LEN + 1];
	uint64_t size;
	struct mv_buf plain;	 /* opened segment */
	struct catseg_head head; /* what it is */
	int rc;			 /* of fetching and opening */
	struct mv_err err;
	bool done;    /* applied or skipped */
	bool fetched; /* read (rc says how it went) */
	bool checked; /* seen by check_fetched */
};

struct fetch {
	struct repo *r;
	const struct crypt_key *k;
	struct fetched *f;
	size_t n;
	sqlite3 *db;
	size_t cap;
};

static int list_one(const char *name, bool is_dir, uint64_t size, void *arg)
{
	struct fetch *fx = arg;
	uint8_t id[SEAL_ID_LEN];
	struct fetched *p;

	if (is_dir || strlen(name) != 2 * SEAL_ID_LEN ||
	    mv_unhex(name, id, SEAL_ID_LEN))
		return 0; /* a temporary file of a writer, or not ours */
	if (fx->n == fx->cap) {
		size_t cap = fx->cap ? 2 * fx->cap : 64;

		p = realloc(fx->f, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		fx->f = p;
		fx->cap = cap;
	}
	p = &fx->f[fx->n++];
	memset(p, 0, sizeof(*p));
	memcpy(p->name, name, sizeof(p->name));
	p->size = size;
	return 0;
}

/* The segments under catalog/ into fx; a repository without the folder
 * has none. */
static int list_segments(struct backend *be, struct fetch *fx,
			 struct mv_err *err)
{
	int rc = be->ops->list(be, CATSEG_DIR, list_one, fx, err);

	if (rc == -ENOENT) {
		mv_err_clear(err);
		rc = 0;
	}
	return rc;
}

/* Names applied before: marked done; names no longer listed dropped. */
static int mark_seen(struct fetch *fx, struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	size_t i;
	int rc;

	rc = prep(fx->db, "SELECT 1 FROM catseg_seen WHERE name = ?1", &st,
		  err);
	if (rc)
		return rc;
	for (i = 0; i < fx->n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, fx->f[i].name, -1, SQLITE_STATIC);
		fx->f[i].done = sqlite3_step(st) == SQLITE_ROW;
	}
	sqlite3_finalize(st);
	return 0;
}

static int forget_unlisted(struct fetch *fx, struct mv_err *err)
{
	size_t i;
	int rc;

	rc = sqlite3_exec(
		     fx->db,
		     "CREATE TEMP TABLE IF NOT EXISTS catseg_listed"
		     " (name TEXT PRIMARY KEY); DELETE FROM catseg_listed;",
		     NULL, NULL, NULL) == SQLITE_OK
		     ? 0
		     : db_fail(fx->db, err, "cannot note segments");
	for (i = 0; !rc && i < fx->n; i++) {
		sqlite3_stmt *st = NULL;

		rc = prep(fx->db, "INSERT INTO catseg_listed VALUES (?1)", &st,
			  err);
		if (rc)
			break;
		sqlite3_bind_text(st, 1, fx->f[i].name, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = db_fail(fx->db, err, "cannot note segments");
		sqlite3_finalize(st);
	}
	if (!rc && sqlite3_exec(fx->db,
				"DELETE FROM catseg_seen WHERE name NOT IN"
				" (SELECT name FROM catseg_listed)",
				NULL, NULL, NULL) != SQLITE_OK)
		rc = db_fail(fx->db, err, "cannot note segments");
	return rc;
}

/* Read every segment not done yet in one wave of parallel reads
 * (backend_read_many: over SFTP all requests in flight on the one
 * connection, not one round trip each), then open each. */
static int fetch_all(struct fetch *fx)
{
	struct backend *be = repo_backend(fx->r);
	struct backend_range *v = NULL;
	struct fetched **of = NULL;
	char(*paths)[128] = NULL;
	struct mv_err ign = MV_ERR_INIT;
	size_t i, n = 0;

	v = calloc(fx->n + 1, sizeof(*v));
	of = calloc(fx->n + 1, sizeof(*of));
	paths = calloc(fx->n + 1, sizeof(*paths));
	if (!v || !of || !paths) {
		free(v);
		free(of);
		free(paths);
		return -ENOMEM;
	}
	for (i = 0; i < fx->n; i++) {
		struct fetched *f = &fx->f[i];

		if (f->done || f->fetched)
			continue;
		f->fetched = true;
		snprintf(paths[n], sizeof(paths[n]), "%s/%s", CATSEG_DIR,
			 f->name);
		if (f->size > CATSEG_MAX || f->size < CRYPT_OVERHEAD) {
			f->rc = mv_err_set(&f->err, -EBADMSG,
					   "'%s' has a bad size", paths[n]);
			continue;
		}
		v[n].buf = malloc(f->size);
		if (!v[n].buf) {
			f->rc = mv_err_set(&f->err, -ENOMEM, "out of memory");
			continue;
		}
		v[n].path = paths[n];
		v[n].len = (size_t)f->size;
		of[n++] = f;
	}
	if (n)
		backend_read_many(be, v, n, &ign); /* each range says */
	for (i = 0; i < n; i++) {
		struct fetched *f = of[i];

		if (v[i].rc)
			f->rc = mv_err_set(&f->err, v[i].rc, "cannot read: %s",
					   strerror(-v[i].rc));
		else if (v[i].got != v[i].len)
			f->rc = mv_err_set(&f->err, -EIO, "it shrank");
		if (!f->rc)
			f->rc = seg_open(fx->k, f->name, v[i].buf, v[i].got,
					 &f->plain, &f->err);
		if (!f->rc)
			f->rc = catseg_peek(f->plain.data, f->plain.len,
					    &f->head, &f->err);
		if (f->rc)
			mv_err_prefix(&f->err, "catalogue segment '%s'",
				      v[i].path);
		free(v[i].buf);
	}
	free(v);
	free(of);
	free(paths);
	return 0;
}

/* Sort what fetch_all brought: damaged ones counted, the newest base
 * kept (prune and a backup's new base remove the older ones). */
static void check_fetched(struct fetch *fx, struct catseg_sync_stats *st,
			  struct fetched **base)
{
	size_t i;

	for (i = 0; i < fx->n; i++) {
		struct fetched *f = &fx->f[i];

		if (f->done || !f->fetched || f->checked)
			continue;
		f->checked = true;
		st->bytes += f->size;
		if (f->rc) {
			st->damaged++;
			if (!st->problem[0])
				snprintf(st->problem, sizeof(st->problem), "%s",
					 mv_err_msg(&f->err));
			f->done = true;
			continue;
		}
		if (f->head.kind != CATSEG_BASE)
			continue;
		if (!*base || f->head.made > (*base)->head.made) {
			if (*base)
				(*base)->done = true;
			*base = f;
		} else {
			f->done = true;
		}
	}
}

static int apply_one(struct fetch *fx, struct fetched *f,
		     struct catseg_sync_stats *st, struct mv_err *err)
{
	struct mv_err e = MV_ERR_INIT;
	int rc;

	rc = catseg_apply(fx->db, f->plain.data, f->plain.len, &e);
	if (rc == -EAGAIN)
		return rc;
	f->done = true;
	if (rc == -EBADMSG) {
		st->damaged++;
		if (!st->problem[0])
			snprintf(st->problem, sizeof(st->problem),
				 "catalogue segment '%s/%s' is malformed",
				 CATSEG_DIR, f->name);
		return 0;
	}
	if (rc < 0) {
		mv_err_set(err, rc, "%s", mv_err_msg(&e));
		return rc;
	}
	if (rc == 0)
		st->applied++;
	return seen_add(fx->db, f->name, (int)f->head.kind, err);
}

int catseg_sync(struct repo *r, sqlite3 *db, struct catseg_sync_stats *st,
		struct mv_err *err)
{
	struct backend *be = repo_backend(r);
	struct crypt_key *k = NULL;
	struct fetch fx;
	struct fetched *base = NULL;
	size_t i;
	bool progress;
	int rc;

	memset(st, 0, sizeof(*st));
	memset(&fx, 0, sizeof(fx));
	fx.r = r;
	fx.db = db;
	rc = catseg_init_db(db, err);
	if (rc)
		return rc;
	rc = list_segments(be, &fx, err);
	if (rc)
		goto out;
	st->listed = (unsigned)fx.n;
	rc = mark_seen(&fx, err);
	if (rc)
		goto out;
	for (i = 0; i < fx.n; i++)
		if (!fx.f[i].done)
			break;
	if (i == fx.n) { /* nothing new: one listing was all */
		if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK) {
			rc = forget_unlisted(&fx, err);
			sqlite3_exec(db, rc ? "ROLLBACK" : "COMMIT", NULL, NULL,
				     NULL);
		}
		goto out;
	}
	rc = seg_key(r, &k, err);
	if (rc)
		goto out;
	fx.k = k;
	fetch_all(&fx);
	check_fetched(&fx, st, &base);
	if (base) {
		/* the base empties the catalogue, and may lack a delta this
		 * machine applied before (another writer's, written while
		 * the base was made): those are fetched again */
		size_t again = 0;

		for (i = 0; i < fx.n; i++)
			if (fx.f[i].done && !fx.f[i].fetched) {
				fx.f[i].done = false;
				again++;
			}
		if (again) {
			fetch_all(&fx);
			check_fetched(&fx, st, &base);
		}
	}
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		rc = db_fail(db, err, "cannot begin");
		goto out;
	}
	if (base) {
		/* a base replaces the catalogue: every segment applied
		 * before it is part of it or was pruned away */
		if (sqlite3_exec(db, "DELETE FROM catseg_seen", NULL, NULL,
				 NULL) != SQLITE_OK)
			rc = db_fail(db, err, "cannot note segments");
		if (!rc)
			rc = apply_one(&fx, base, st, err);
	}
	/* deltas in the order they follow on, pass after pass */
	do {
		progress = false;
		for (i = 0; !rc && i < fx.n; i++) {
			struct fetched *f = &fx.f[i];

			if (f->done || f->head.kind != CATSEG_DELTA)
				continue;
			rc = apply_one(&fx, f, st, err);
			if (rc == -EAGAIN) {
				rc = 0;
				continue;
			}
			progress = true;
		}
	} while (!rc && progress);
	for (i = 0; !rc && i < fx.n; i++) {
		const struct fetched *f = &fx.f[i];

		if (f->done)
			continue;
		if (!st->stuck && !st->problem[0])
			snprintf(st->problem, sizeof(st->problem),
				 "catalogue segment '%s/%.16s' of job '%.64s' "
				 "follows snapshot %.12s, which no segment "
				 "gives",
				 CATSEG_DIR, f->name, f->head.job,
				 f->head.prev);
		st->stuck++;
	}
	if (!rc)
		rc = forget_unlisted(&fx, err);
	if (!rc && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = db_fail(db, err, "cannot commit");
	if (rc)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
out:
	for (i = 0; i < fx.n; i++)
		mv_buf_release(&fx.f[i].plain);
	free(fx.f);
	crypt_key_free(k);
	return rc;
}

int catseg_reset(sqlite3 *db, struct mv_err *err)
{
	int rc = catseg_init_db(db, err);

	if (rc)
		return rc;
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(db, err, "cannot begin");
	rc = catalogue_clear(db, err);
	if (!rc && sqlite3_exec(db, "DELETE FROM catseg_seen", NULL, NULL,
				NULL) != SQLITE_OK)
		rc = db_fail(db, err, "cannot forget the segments");
	if (!rc && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = db_fail(db, err, "cannot commit");
	if (rc)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* Names of db's applied segments into fx (fx->n of them). */
static int list_seen(struct fetch *fx, struct mv_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, step;

	rc = prep(fx->db, "SELECT name FROM catseg_seen", &st, err);
	if (rc)
		return rc;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);

		if (name && list_one(name, false, 0, fx)) {
			sqlite3_finalize(st);
			return mv_err_set(err, -ENOMEM, "out of memory");
		}
	}
	sqlite3_finalize(st);
	if (step != SQLITE_DONE)
		return db_fail(fx->db, err, "cannot read segments");
	return 0;
}

static int drop_unkept(struct repo *r, sqlite3 *db, struct mv_err *err);

/* Store the catalogue's whole state as one base segment and note it as the
 * only segment seen, in one transaction (prune first drops the places of
 * snapshots no longer kept); then remove the segments of fx the base
 * replaces, all but keep. */
static int base_replace(struct repo *r, sqlite3 *db, bool prune,
			const struct fetch *fx, const char *keep,
			unsigned *out_removed, struct mv_err *err)
{
	struct backend *be = repo_backend(r);
	struct mv_buf plain = MV_BUF_INIT;
	uint8_t id[SEAL_ID_LEN];
	char seg[128];
	size_t i;
	int rc;

	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(db, err, "cannot begin");
	rc = prune ? drop_unkept(r, db, err) : 0;
	if (!rc)
		rc = catseg_build_base(db, &plain, err);
	crypt_random(id, sizeof(id));
	if (!rc)
		rc = seg_store(r, id, &plain, seg, sizeof(seg), err);
	if (!rc && sqlite3_exec(db, "DELETE FROM catseg_seen", NULL, NULL,
				NULL) != SQLITE_OK)
		rc = db_fail(db, err, "cannot note segments");
	if (!rc)
		rc = seen_add(db, seg + strlen(CATSEG_DIR) + 1, CATSEG_BASE,
			      err);
	if (!rc && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = db_fail(db, err, "cannot commit");
	if (rc) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		goto out;
	}
	/* the base is stored: what it replaces can go */
	for (i = 0; i < fx->n; i++) {
		struct mv_err e = MV_ERR_INIT;
		char p[128];

		snprintf(p, sizeof(p), "%s/%s", CATSEG_DIR, fx->f[i].name);
		if (!strcmp(p, seg) || (keep && !strcmp(fx->f[i].name, keep)))
			continue;
		if (!be->ops->remove(be, p, &e))
			(*out_removed)++;
	}
out:
	mv_buf_release(&plain);
	return rc;
}

int catseg_publish_base(struct repo *r, sqlite3 *db, bool all, const char *keep,
			unsigned *out_removed, struct mv_err *err)
{
	struct backend *be = repo_backend(r);
	struct fetch fx;
	int rc;

	*out_removed = 0;
	memset(&fx, 0, sizeof(fx));
	fx.db = db;
	rc = catseg_init_db(db, err);
	if (rc)
		return rc;
	rc = all ? list_segments(be, &fx, err) : list_seen(&fx, err);
	if (!rc)
		rc = base_replace(r, db, false, &fx, keep, out_removed, err);
	if (rc)
		mv_err_prefix(err, "cannot store a catalogue base");
	free(fx.f);
	return rc;
}

/* ---- prune ----------------------------------------------------------------
 */

/* Keep the places whose range holds a snapshot of the repository. */
static int drop_unkept(struct repo *r, sqlite3 *db, struct mv_err *err)
{
	struct snapshot *list = NULL;
	sqlite3_stmt *st = NULL;
	size_t n = 0, i;
	int rc;

	rc = snapshot_list(r, &list, &n, err);
	if (rc)
		return rc;
	if (sqlite3_exec(
		    db,
		    "CREATE TEMP TABLE IF NOT EXISTS catseg_kept"
		    " (snap_id TEXT PRIMARY KEY); DELETE FROM catseg_kept;",
		    NULL, NULL, NULL) != SQLITE_OK) {
		rc = db_fail(db, err, "cannot note the kept snapshots");
		goto out;
	}
	rc = prep(db, "INSERT OR IGNORE INTO catseg_kept VALUES (?1)", &st,
		  err);
	for (i = 0; !rc && i < n; i++) {
		char hex[2 * MV_ID_LEN + 1];

		mv_hex(list[i].id, MV_ID_LEN, hex);
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, hex, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = db_fail(db, err, "cannot note the kept snapshots");
	}
	sqlite3_finalize(st);
	if (!rc &&
	    sqlite3_exec(db,
			 "DELETE FROM place WHERE NOT EXISTS (SELECT 1 FROM"
			 " catseg_kept k JOIN snap s ON s.snap_id = k.snap_id"
			 " JOIN folder f ON f.job = s.job"
			 " WHERE f.id = place.folder AND s.seq BETWEEN"
			 " place.first_snap AND coalesce(place.last_snap,"
			 " " OPEN_SQL "))",
			 NULL, NULL, NULL) != SQLITE_OK)
		rc = db_fail(db, err,
			     "cannot drop the places of forgotten "
			     "snapshots");
out:
	snapshot_list_free(list, n);
	return rc;
}

int catseg_prune(struct repo *r, unsigned *out_removed, struct mv_err *err)
{
	struct backend *be = repo_backend(r);
	struct mail_catalog *cat = NULL;
	struct catseg_sync_stats st;
	struct fetch fx;
	sqlite3 *db = NULL;
	char path[4096];
	int rc;

	*out_removed = 0;
	memset(&fx, 0, sizeof(fx));
	rc = mail_view_catalog_path(r, path, sizeof(path), err);
	if (rc)
		return rc;
	rc = list_segments(be, &fx, err);
	if (rc)
		goto out;
	if (access(path, F_OK) < 0 && !fx.n)
		goto out; /* no catalogue anywhere */
	{
		char *slash = strrchr(path, '/');

		*slash = '\0';
		rc = mv_mkdir_p(path, 0700);
		*slash = '/';
		if (!rc)
			rc = mv_create_private(path);
		if (rc) {
			rc = mv_err_set(err, rc, "cannot create '%s'", path);
			goto out;
		}
	}
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK) {
		rc = mv_err_set(err, -EIO, "cannot open catalogue '%s': %s",
				path, db ? sqlite3_errmsg(db) : "");
		goto out;
	}
	sqlite3_busy_timeout(db, 10000);
	rc = mail_catalog_open(db, &cat, err);
	if (!rc)
		rc = catseg_sync(r, db, &st, err);
	if (rc)
		goto out;
	rc = base_replace(r, db, true, &fx, NULL, out_removed, err);
out:
	if (rc)
		mv_err_prefix(err, "catalogue");
	mail_catalog_close(cat);
	if (db)
		sqlite3_close(db);
	free(fx.f);
	return rc;
}
