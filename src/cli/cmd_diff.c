/* mailvault diff: what changed between two snapshots - files and, with
 * --mail, messages (added, removed, moved; a maildir flag change is a
 * move of the same message, not a delete and an add).
 *
 * Directories whose tree objects are identical are skipped without being
 * loaded, so a diff of two dailies reads only the changed folders. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mail_view.h"
#include "maildir.h"
#include "repo.h"
#include "snapshot.h"
#include "tree.h"

struct dmsg {
	uint8_t cid[MV_ID_LEN];
	char *path;	  /* raw path in the snapshot */
	char *folder;	  /* account/mailbox */
	const char *base; /* into path */
	size_t base_len;
	const char *flags; /* into path: after ":2,", or "" */
	bool matched;
};

struct dmsgs {
	struct dmsg *v;
	size_t n, cap;
};

struct dctx {
	struct repo *r;
	bool mail, quiet;
	struct dmsgs side[2]; /* 0: only in SNAP1, 1: only in SNAP2 */
	unsigned long added, removed, changed;
	int inside;	 /* > 0: under a directory on one side only */
	json_t *changes; /* --json: the changes, unless --quiet */
	struct mv_err *err;
};

static int collect(struct dctx *c, int side, const char *path,
		   const struct tree_entry *e)
{
	struct maildir_loc loc;
	struct maildir_file mf;
	struct dmsgs *s = &c->side[side];
	struct dmsg *m;
	const char *info;

	if (!c->mail || e->type != TREE_REG || maildir_locate(path, &loc) ||
	    maildir_parse_name(loc.name, &mf))
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		struct dmsg *v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return mv_err_set(c->err, -ENOMEM, "out of memory");
		s->v = v;
		s->cap = cap;
	}
	m = &s->v[s->n];
	memset(m, 0, sizeof(*m));
	mail_view_content_id(c->r, e, m->cid);
	m->path = strdup(path);
	m->folder = malloc(strlen(loc.account) + strlen(loc.mailbox) + 2);
	if (!m->path || !m->folder) {
		free(m->path);
		free(m->folder);
		return mv_err_set(c->err, -ENOMEM, "out of memory");
	}
	sprintf(m->folder, "%s/%s", loc.account, loc.mailbox);
	m->base = m->path + (loc.name - path);
	m->base_len = mf.base_len;
	info = strstr(m->base, ":2,");
	m->flags = info ? info + 3 : "";
	s->n++;
	return 0;
}

static void report(struct dctx *c, char what, const char *path, bool dir)
{
	if (c->inside)
		return;
	if (what == '+')
		c->added++;
	else if (what == '-')
		c->removed++;
	else
		c->changed++;
	if (c->quiet)
		return;
	if (c->changes)
		json_array_append_new(c->changes,
				      json_pack("{s:s, s:s, s:b}", "change",
						what == '+'   ? "added"
						: what == '-' ? "removed"
							      : "modified",
						"path", path, "dir", dir));
	else
		printf("%c %s%s\n", what, path, dir ? "/" : "");
}

static bool same_ref(const struct tree_ref *a, const struct tree_ref *b)
{
	uint32_t i;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++)
		if (memcmp(a->chunks[i].id, b->chunks[i].id, MV_ID_LEN))
			return false;
	return true;
}

static bool same_content(const struct tree_entry *a, const struct tree_entry *b)
{
	uint32_t i;

	if (a->type != b->type || a->size != b->size ||
	    a->nchunks != b->nchunks || a->xform != b->xform)
		return false;
	if (a->type == TREE_LNK)
		return !strcmp(a->target ? a->target : "",
			       b->target ? b->target : "");
	for (i = 0; i < a->nchunks; i++)
		if (memcmp(a->chunks[i].id, b->chunks[i].id, MV_ID_LEN))
			return false;
	return true;
}

static int walk(struct dctx *c, const struct tree_ref *a,
		const struct tree_ref *b, const char *prefix, int depth);

/* Everything under a directory present on one side only (messages are
 * collected; files are not listed one by one). */
static int one_side(struct dctx *c, int side, const struct tree_entry *e,
		    const char *path, int depth)
{
	struct tree_ref empty = {0, NULL};
	int rc;

	if (e->type != TREE_DIR)
		return collect(c, side, path, e);
	if (!c->mail)
		return 0;
	c->inside++;
	rc = side ? walk(c, &empty, &e->subtree, path, depth + 1)
		  : walk(c, &e->subtree, &empty, path, depth + 1);
	c->inside--;
	return rc;
}

static char *join(const char *prefix, const struct tree_entry *e)
{
	size_t n = strlen(prefix);
	char *p = malloc(n + e->name_len + 2);

	if (p)
		sprintf(p, "%s%s%s", prefix, n ? "/" : "", e->name);
	return p;
}

static int walk(struct dctx *c, const struct tree_ref *a,
		const struct tree_ref *b, const char *prefix, int depth)
{
	struct tree *ta = NULL, *tb = NULL;
	uint32_t i = 0, j = 0;
	int rc = 0;

	if (depth > 4096)
		return mv_err_set(c->err, -ELOOP, "tree too deep");
	if (same_ref(a, b))
		return 0;
	if (a->n)
		rc = tree_load(c->r, a, &ta, c->err);
	if (!rc && b->n)
		rc = tree_load(c->r, b, &tb, c->err);
	while (!rc && (i < (ta ? ta->n : 0) || j < (tb ? tb->n : 0))) {
		const struct tree_entry *x =
			ta && i < ta->n ? &ta->entries[i] : NULL;
		const struct tree_entry *y =
			tb && j < tb->n ? &tb->entries[j] : NULL;
		int cmp;
		char *path;

		if (x && y) {
			size_t n = MV_MIN(x->name_len, y->name_len);

			cmp = memcmp(x->name, y->name, n);
			if (!cmp)
				cmp = x->name_len < y->name_len	  ? -1
				      : x->name_len > y->name_len ? 1
								  : 0;
		} else {
			cmp = x ? -1 : 1;
		}
		path = join(prefix, cmp <= 0 ? x : y);
		if (!path) {
			rc = mv_err_set(c->err, -ENOMEM, "out of memory");
			break;
		}
		if (cmp < 0) {
			report(c, '-', path, x->type == TREE_DIR);
			rc = one_side(c, 0, x, path, depth);
			i++;
		} else if (cmp > 0) {
			report(c, '+', path, y->type == TREE_DIR);
			rc = one_side(c, 1, y, path, depth);
			j++;
		} else {
			if (x->type == TREE_DIR && y->type == TREE_DIR) {
				rc = walk(c, &x->subtree, &y->subtree, path,
					  depth + 1);
			} else if (!same_content(x, y)) {
				report(c, 'M', path, false);
				if (!rc)
					rc = collect(c, 0, path, x);
				if (!rc)
					rc = collect(c, 1, path, y);
			}
			i++;
			j++;
		}
		free(path);
	}
	tree_free(ta);
	tree_free(tb);
	return rc;
}

static int dmsg_cmp(const void *a, const void *b)
{
	const struct dmsg *x = a, *y = b;
	int c = memcmp(x->cid, y->cid, MV_ID_LEN);

	return c ? c : strcmp(x->path, y->path);
}

/* A message change as JSON: change, folder (to for a move), from (a
 * move's old folder), message (the maildir base name), flags (and
 * flags_from for a move). */
static void json_msg(json_t *arr, const char *change, const struct dmsg *x,
		     const struct dmsg *y)
{
	char *base = strndup(x->base, x->base_len);

	if (!base)
		return;
	if (y)
		json_array_append_new(
			arr,
			json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "change",
				  change, "from", x->folder, "folder",
				  y->folder, "message", base, "flags_from",
				  x->flags, "flags", y->flags));
	else
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s}",
						     "change", change, "folder",
						     x->folder, "message", base,
						     "flags", x->flags));
	free(base);
}

/* Messages added, removed and moved; as text, or into out (--json). */
static void print_messages(struct dctx *c, json_t *out)
{
	struct dmsgs *A = &c->side[0], *B = &c->side[1];
	unsigned long added = 0, removed = 0, moved = 0;
	json_t *arr = out ? json_array() : NULL;
	size_t i, j;

	qsort(A->v, A->n, sizeof(*A->v), dmsg_cmp);
	qsort(B->v, B->n, sizeof(*B->v), dmsg_cmp);
	if (!out)
		printf("messages:\n");
	/* the same content on both sides, at another path: a move */
	for (i = 0, j = 0; i < A->n && j < B->n;) {
		int cmp = memcmp(A->v[i].cid, B->v[j].cid, MV_ID_LEN);

		if (cmp < 0) {
			i++;
		} else if (cmp > 0) {
			j++;
		} else {
			struct dmsg *x = &A->v[i++], *y = &B->v[j++];

			x->matched = y->matched = true;
			if (!strcmp(x->path, y->path))
				continue;
			moved++;
			if (arr) {
				if (!c->quiet)
					json_msg(arr, "moved", x, y);
				continue;
			}
			printf("> %s -> %s  %.*s", x->folder, y->folder,
			       (int)x->base_len, x->base);
			if (strcmp(x->flags, y->flags))
				printf("  flags '%s' -> '%s'", x->flags,
				       y->flags);
			printf("\n");
		}
	}
	for (i = 0; i < A->n; i++)
		if (!A->v[i].matched) {
			removed++;
			if (arr && !c->quiet)
				json_msg(arr, "removed", &A->v[i], NULL);
			if (!arr)
				printf("- %s  %.*s\n", A->v[i].folder,
				       (int)A->v[i].base_len, A->v[i].base);
		}
	for (j = 0; j < B->n; j++)
		if (!B->v[j].matched) {
			added++;
			if (arr && !c->quiet)
				json_msg(arr, "added", &B->v[j], NULL);
			if (!arr)
				printf("+ %s  %.*s\n", B->v[j].folder,
				       (int)B->v[j].base_len, B->v[j].base);
		}
	if (out) {
		json_object_set_new(out, "messages",
				    json_pack("{s:o, s:I, s:I, s:I}", "changes",
					      arr, "added", (json_int_t)added,
					      "removed", (json_int_t)removed,
					      "moved", (json_int_t)moved));
		return;
	}
	printf("%lu messages added, %lu removed, %lu moved\n", added, removed,
	       moved);
}

int cmd_diff(int argc, char **argv)
{
	static const struct option opts[] = {
		{"mail", no_argument, NULL, 'm'},
		{"quiet", no_argument, NULL, 'q'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct mv_err err = MV_ERR_INIT;
	struct snapshot s1, s2;
	struct dctx ctx;
	const char *repo = NULL, *spec1, *spec2;
	bool json = false;
	size_t i;
	int c, k, rc, ret = MV_EXIT_FAIL;

	memset(&ctx, 0, sizeof(ctx));
	memset(&s1, 0, sizeof(s1));
	memset(&s2, 0, sizeof(s2));
	ctx.err = &err;
	while ((c = getopt_long(argc, argv, "hq", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			ctx.mail = true;
			break;
		case 'q':
			ctx.quiet = true;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			cli_help_print("diff", stdout);
			return MV_EXIT_OK;
		default:
			return cli_usage("diff", "unknown option");
		}
	}
	if (argc - optind == 3)
		repo = argv[optind++];
	if (argc - optind != 2)
		return cli_usage("diff", "give [REPO] SNAP1 SNAP2");
	spec1 = argv[optind];
	spec2 = argv[optind + 1];
	repo = cli_repo_arg(repo);
	if (!repo)
		return cli_usage("diff", "no repository given (argument or "
					 "MAILVAULT_REPO)");
	if (json) {
		ctx.changes = json_array();
		if (!ctx.changes)
			return cli_fail(&err);
	}
	rc = repo_open(repo, REPO_OPEN_READ, &ctx.r, &err);
	if (!rc)
		rc = snapshot_resolve(ctx.r, spec1, &s1, &err);
	if (!rc)
		rc = snapshot_resolve(ctx.r, spec2, &s2, &err);
	if (!rc)
		rc = walk(&ctx, &s1.root, &s2.root, "", 0);
	if (rc) {
		ret = cli_fail(&err);
		goto out;
	}
	if (json) {
		char id1[2 * MV_ID_LEN + 1], id2[2 * MV_ID_LEN + 1];
		json_t *o;

		mv_hex(s1.id, MV_ID_LEN, id1);
		mv_hex(s2.id, MV_ID_LEN, id2);
		o = json_pack("{s:s, s:s, s:s, s:s, s:O, s:I, s:I, s:I}",
			      "from", spec1, "from_id", id1, "to", spec2,
			      "to_id", id2, "changes", ctx.changes, "added",
			      (json_int_t)ctx.added, "removed",
			      (json_int_t)ctx.removed, "modified",
			      (json_int_t)ctx.changed);
		if (o && ctx.mail)
			print_messages(&ctx, o);
		cli_json_out(o);
		ret = MV_EXIT_OK;
		goto out;
	}
	printf("%lu added, %lu removed, %lu changed\n", ctx.added, ctx.removed,
	       ctx.changed);
	if (ctx.mail)
		print_messages(&ctx, NULL);
	ret = MV_EXIT_OK;
out:
	json_decref(ctx.changes);
	for (k = 0; k < 2; k++) {
		for (i = 0; i < ctx.side[k].n; i++) {
			free(ctx.side[k].v[i].path);
			free(ctx.side[k].v[i].folder);
		}
		free(ctx.side[k].v);
	}
	snapshot_release(&s1);
	snapshot_release(&s2);
	repo_close(ctx.r);
	return ret;
}
