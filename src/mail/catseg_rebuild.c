/*
 * catseg_rebuild: the repository's mail catalogue made whole again from
 * the snapshots' mail views, and the check that tells `find` it is not
 * (include/catseg.h; docs/MAIL.md "The catalogue in the repository").
 *
 * A segment that is missing or damaged leaves its snapshot out of every
 * machine's search.  The snapshot itself still holds everything the
 * catalogue recorded of it: its mail/ tree names every message's place
 * (account, mailbox, view name) and references the message's bytes, and
 * the message's columns are what mail_msg gives for those bytes.  So the
 * rebuild replays the segments that can still be read (their message
 * rows, with any --index-body text, are kept as they were), drops every
 * snapshot and place, records the places of every snapshot again from
 * its tree, as a backup records them, parses only the messages no
 * readable segment had, and stores the result as one base segment that
 * replaces every segment it listed.
 *
 * Cost: one tree load per folder of every snapshot with a mail view
 * (trees are shared by snapshots where nothing changed, and the
 * repository caches them), and one read of each message no segment
 * holds.
 */
#include "catseg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail_catalog.h"
#include "mail_crypt.h"
#include "mail_msg.h"
#include "mail_view.h"
#include "snapshot.h"
#include "tree.h"

#define PARSE_MAX ((size_t)1 << 20) /* bytes parsed, as a backup does */
#define VIEW_EXT ".eml"
#define TIME_LEN 16 /* "YYYY-MM-DD HHMM " at the start of a view name */

/* A place of the snapshot being recorded. */
struct rplace {
	char *account, *mailbox, *name;
	char *key;    /* name without its -k variant: the sort key */
	long variant; /* k of [id-k], 1 for none */
	uint8_t cid[MV_ID_LEN];
};

struct rebuild {
	struct repo *r;
	sqlite3 *db;
	struct mail_catalog *cat;
	struct catseg_rebuild_stats *st;
	sqlite3_stmt *view_ins; /* the view's naming columns of a message */
	int64_t seq;		/* snapshot being recorded */
	struct rplace *pl;	/* its places */
	size_t npl, cappl;
};

static int db_fail(sqlite3 *db, struct mv_err *err, const char *what)
{
	return mv_err_set(err, -EIO, "catalogue rebuild: %s: %s", what,
			  sqlite3_errmsg(db));
}

/* A message the backup catalogued: a view entry named from its headers,
 * not "<time> (large message) - <base>" (an encoded large file without
 * its size, never parsed) or "<time> (undecodable) - ..." (no key,
 * corrupt): mail_view_tree.c names those, and does not catalogue them. */
static bool is_view_message(const struct tree_entry *e)
{
	static const char *const raw[] = {"(large message) - ",
					  "(undecodable) - "};
	size_t n = strlen(VIEW_EXT), k;

	if (e->type != TREE_REG || e->name_len <= n ||
	    memcmp(e->name + e->name_len - n, VIEW_EXT, n))
		return false;
	for (k = 0; k < sizeof(raw) / sizeof(raw[0]); k++)
		if (e->name_len > TIME_LEN + strlen(raw[k]) &&
		    !strncmp(e->name + TIME_LEN, raw[k], strlen(raw[k])))
			return false;
	return true;
}

/* The outermost layer of a stored message, as the backup noted it. */
static unsigned entry_layers(struct repo *r, const struct tree_entry *e)
{
	struct mv_buf chunk = MV_BUF_INIT;
	struct mv_err ign = MV_ERR_INIT;
	unsigned layers = MAIL_CRYPT_PLAIN;

	if (e->xform != TREE_XFORM_MAILCRYPT || !e->nchunks)
		return layers;
	if (!repo_chunk_read(r, e->chunks[0].id, false, &chunk, &ign))
		layers = (unsigned)mail_crypt_detect(chunk.data, chunk.len);
	mv_buf_release(&chunk);
	return layers;
}

/* Catalogue a message no readable segment had: read it through the view,
 * parse its first MiB as the backup did (mail_view.c, PREFIX_OUT) with
 * the entry's time as the fallback Date, and note its naming columns.
 * 1 when it cannot be read (left out, counted), 0 added, < 0 error. */
static int add_message(struct rebuild *b, const struct tree_entry *e,
		       const uint8_t *cid, struct mv_err *err)
{
	struct mv_buf buf = MV_BUF_INIT;
	struct mv_err rerr = MV_ERR_INIT;
	struct mail_msg m;
	const char *from;
	int rc;

	memset(&m, 0, sizeof(m));
	if (mail_view_read(b->r, e, &buf, &rerr)) {
		b->st->unreadable++;
		if (!b->st->problem[0])
			snprintf(b->st->problem, sizeof(b->st->problem), "%s",
				 mv_err_msg(&rerr));
		mv_buf_release(&buf);
		return 1;
	}
	rc = mail_msg_parse(buf.data ? (const void *)buf.data
				     : (const void *)"",
			    buf.len < PARSE_MAX ? buf.len : PARSE_MAX,
			    e->mtime_sec, 0, &m, err);
	mv_buf_release(&buf);
	if (rc)
		return rc;
	m.size = e->size;
	rc = mail_catalog_add(b->cat, cid, MV_ID_LEN, &m, err);
	from = m.from ? m.from : m.from_addr;
	if (!rc) {
		sqlite3_reset(b->view_ins);
		sqlite3_bind_blob(b->view_ins, 1, cid, MV_ID_LEN,
				  SQLITE_STATIC);
		sqlite3_bind_int64(b->view_ins, 2, m.date);
		sqlite3_bind_text(b->view_ins, 3, from, -1, SQLITE_STATIC);
		sqlite3_bind_text(b->view_ins, 4, m.subject, -1, SQLITE_STATIC);
		sqlite3_bind_int64(b->view_ins, 5, (int64_t)e->size);
		sqlite3_bind_int(b->view_ins, 6, (int)entry_layers(b->r, e));
		if (sqlite3_step(b->view_ins) != SQLITE_DONE)
			rc = db_fail(b->db, err, "cannot name a message");
		sqlite3_reset(b->view_ins);
	}
	mail_msg_release(&m);
	if (!rc)
		b->st->parsed++;
	return rc;
}

/* The view names the copies of one message in a folder "[id]",
 * "[id-2]", "[id-3]"... in the order the backup met them: key is the
 * name without "-k", variant k (1 without). */
static char *variant_key(const char *name, long *variant)
{
	const char *open = strrchr(name, '[');
	const char *dash = open ? strchr(open, '-') : NULL;
	char *end = NULL;
	char *key;
	long k;

	*variant = 1;
	if (!dash)
		return strdup(name);
	k = strtol(dash + 1, &end, 10);
	if (k < 2 || !end || *end != ']')
		return strdup(name);
	key = malloc(strlen(name) + 1);
	if (!key)
		return NULL;
	memcpy(key, name, (size_t)(dash - name));
	strcpy(key + (dash - name), end);
	*variant = k;
	return key;
}

static void places_release(struct rebuild *b)
{
	size_t i;

	for (i = 0; i < b->npl; i++) {
		free(b->pl[i].account);
		free(b->pl[i].mailbox);
		free(b->pl[i].name);
		free(b->pl[i].key);
	}
	b->npl = 0;
}

/* The backup records a snapshot's places by account, mailbox and then
 * the order it named the messages in; the tree lists names, where
 * "[id-2]" sorts before "[id]": by the name without its variant, then
 * the variant, the copies of one message come in their backup order. */
static int place_cmp(const void *x, const void *y)
{
	const struct rplace *a = x, *b = y;
	int c = strcmp(a->account, b->account);

	if (!c)
		c = strcmp(a->mailbox, b->mailbox);
	if (!c)
		c = strcmp(a->key, b->key);
	if (!c)
		c = (a->variant > b->variant) - (a->variant < b->variant);
	return c;
}

static int take_message(struct rebuild *b, const struct tree_entry *e,
			const char *account, const char *mailbox,
			struct mv_err *err)
{
	struct rplace *p;
	uint8_t cid[MV_ID_LEN];
	int rc;

	mail_view_content_id(b->r, e, cid);
	rc = mail_catalog_has(b->cat, cid, MV_ID_LEN, err);
	if (rc < 0)
		return rc;
	if (!rc) {
		rc = add_message(b, e, cid, err);
		if (rc)
			return rc > 0 ? 0 : rc;
	}
	if (b->npl == b->cappl) {
		size_t cap = b->cappl ? 2 * b->cappl : 256;

		p = realloc(b->pl, cap * sizeof(*p));
		if (!p)
			return mv_err_set(err, -ENOMEM, "out of memory");
		b->pl = p;
		b->cappl = cap;
	}
	p = &b->pl[b->npl];
	memset(p, 0, sizeof(*p));
	memcpy(p->cid, cid, MV_ID_LEN);
	p->account = strdup(account);
	p->mailbox = strdup(mailbox);
	p->name = strdup(e->name);
	p->key = variant_key(e->name, &p->variant);
	b->npl++;
	if (!p->account || !p->mailbox || !p->name || !p->key)
		return mv_err_set(err, -ENOMEM, "out of memory");
	return 0;
}

/* Record the places walk() collected, in the backup's order. */
static int places_record(struct rebuild *b, struct mv_err *err)
{
	size_t i;
	int rc = 0;

	if (b->npl)
		qsort(b->pl, b->npl, sizeof(*b->pl), place_cmp);
	for (i = 0; !rc && i < b->npl; i++) {
		const struct rplace *p = &b->pl[i];

		rc = mail_catalog_seen(b->cat, b->seq, p->cid, MV_ID_LEN,
				       p->account, p->mailbox, p->name, err);
		b->st->places++;
	}
	return rc;
}

/* Every message below the folder mailbox ("" for the account's own
 * directory) of account, whose tree is ref. */
static int walk(struct rebuild *b, const struct tree_ref *ref,
		const char *account, const char *mailbox, struct mv_err *err)
{
	struct tree *t = NULL;
	uint32_t i;
	int rc;

	rc = tree_load(b->r, ref, &t, err);
	if (rc)
		return rc;
	for (i = 0; !rc && i < t->n; i++) {
		const struct tree_entry *e = &t->entries[i];
		char *sub;

		if (account && is_view_message(e)) {
			rc = take_message(b, e, account, mailbox, err);
			continue;
		}
		if (e->type != TREE_DIR)
			continue;
		if (!account) {
			rc = walk(b, &e->subtree, e->name, "", err);
			continue;
		}
		if (asprintf(&sub, "%s%s%s", mailbox, *mailbox ? "/" : "",
			     e->name) < 0)
			rc = mv_err_set(err, -ENOMEM, "out of memory");
		else
			rc = walk(b, &e->subtree, account, sub, err);
		free(sub);
	}
	tree_free(t);
	return rc;
}

/* The mail/ directory of snapshot s into out: 1 found, 0 none (no view,
 * or an empty one), < 0 error. */
static int view_dir(struct repo *r, const struct snapshot *s,
		    struct tree_entry *out, struct mv_err *err)
{
	int rc = tree_lookup_path(r, &s->root, MAIL_VIEW_DIR, out, err);

	if (rc == -ENOENT || rc == -ENOTDIR) {
		mv_err_clear(err);
		return 0;
	}
	if (rc)
		return rc;
	if (out->type != TREE_DIR || !out->subtree.n) {
		tree_entry_release(out);
		return 0;
	}
	return 1;
}

static int record_snapshot(struct rebuild *b, const struct snapshot *s,
			   struct mv_err *err)
{
	struct tree_entry mail;
	char hex[2 * MV_ID_LEN + 1];
	int rc;

	memset(&mail, 0, sizeof(mail));
	rc = view_dir(b->r, s, &mail, err);
	if (rc <= 0)
		return rc;
	mv_hex(s->id, MV_ID_LEN, hex);
	rc = mail_catalog_snapshot_begin(b->cat, s->name, hex,
					 s->time_ns / 1000000000, &b->seq, err);
	if (!rc)
		rc = walk(b, &mail.subtree, NULL, NULL, err);
	if (!rc)
		rc = places_record(b, err);
	places_release(b);
	if (!rc)
		rc = mail_catalog_snapshot_end(b->cat, b->seq, err);
	else
		mail_catalog_snapshot_abort(b->cat);
	if (!rc)
		b->st->snapshots++;
	else
		mv_err_prefix(err, "snapshot %s/%.12s", s->name, hex);
	tree_entry_release(&mail);
	return rc;
}

int catseg_rebuild(struct repo *r, sqlite3 *db, struct mail_catalog *cat,
		   struct catseg_rebuild_stats *st, struct mv_err *err)
{
	struct rebuild b;
	struct snapshot *list = NULL;
	size_t n = 0, i;
	int rc;

	memset(st, 0, sizeof(*st));
	memset(&b, 0, sizeof(b));
	b.r = r;
	b.db = db;
	b.cat = cat;
	b.st = st;
	/* what the readable segments still give: message rows as they were
	 * recorded (with their bodies) */
	rc = catseg_reset(db, err);
	if (!rc)
		rc = catseg_sync(r, db, &st->sync, err);
	if (!rc)
		rc = snapshot_list(r, &list, &n, err);
	if (rc)
		goto out;
	if (sqlite3_exec(db,
			 "DELETE FROM place; DELETE FROM folder;"
			 " DELETE FROM snap; DELETE FROM catseg_seen;",
			 NULL, NULL, NULL) != SQLITE_OK) {
		rc = db_fail(db, err, "cannot empty the places");
		goto out;
	}
	if (sqlite3_prepare_v2(db,
			       "INSERT OR IGNORE INTO view (cid, date, from_,"
			       " subject, size, layers) VALUES (?,?,?,?,?,?)",
			       -1, &b.view_ins, NULL) != SQLITE_OK) {
		rc = db_fail(db, err, "cannot prepare");
		goto out;
	}
	/* by job, then time: each job's places as its backups recorded
	 * them, one snapshot after the other */
	for (i = 0; !rc && i < n; i++)
		rc = record_snapshot(&b, &list[i], err);
	if (!rc)
		rc = catseg_publish_base(r, db, true, NULL, &st->removed, err);
out:
	sqlite3_finalize(b.view_ins);
	places_release(&b);
	free(b.pl);
	snapshot_list_free(list, n);
	if (rc)
		mv_err_prefix(err, "cannot rebuild the mail catalogue");
	return rc;
}

/* ---- what the catalogue misses ----------------------------------------- */

static int note_nomail(sqlite3 *db, const char *hex)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;

	if (sqlite3_prepare_v2(db,
			       "INSERT OR IGNORE INTO catseg_nomail"
			       " VALUES (?1)",
			       -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = -EIO;
	sqlite3_finalize(st);
	return rc;
}

int catseg_missing(struct repo *r, sqlite3 *db, const struct snapshot *list,
		   size_t n, unsigned *out_missing, char *first, size_t firstn,
		   struct mv_err *err)
{
	sqlite3_stmt *known = NULL;
	unsigned missing = 0;
	size_t i;
	int rc = 0;

	if (firstn)
		first[0] = '\0';
	if (sqlite3_exec(db,
			 "CREATE TABLE IF NOT EXISTS catseg_nomail"
			 " (snap_id TEXT PRIMARY KEY) WITHOUT ROWID",
			 NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(
		    db,
		    "SELECT 1 FROM snap WHERE snap_id = ?1 UNION ALL"
		    " SELECT 1 FROM catseg_nomail WHERE snap_id = ?1",
		    -1, &known, NULL) != SQLITE_OK)
		return db_fail(db, err, "cannot read snapshots");
	for (i = 0; !rc && i < n; i++) {
		struct tree_entry mail;
		char hex[2 * MV_ID_LEN + 1];
		int has;

		mv_hex(list[i].id, MV_ID_LEN, hex);
		sqlite3_reset(known);
		sqlite3_bind_text(known, 1, hex, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(known) == SQLITE_ROW)
			continue;
		memset(&mail, 0, sizeof(mail));
		has = view_dir(r, &list[i], &mail, err);
		if (has < 0) {
			rc = has;
			break;
		}
		if (!has) { /* a snapshot without mail: asked once */
			note_nomail(db, hex);
			continue;
		}
		tree_entry_release(&mail);
		if (!missing && firstn)
			snprintf(first, firstn, "%s/%.12s", list[i].name, hex);
		missing++;
	}
	sqlite3_finalize(known);
	if (!rc)
		*out_missing = missing;
	return rc;
}
