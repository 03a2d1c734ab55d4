/*
 * snapshot: the snapshot record and listing/resolving snapshots.
 *
 * Record := "MVS1" varint(1) bytes(name) zigzag(time_ns) bytes(host)
 *           u8(partial) varint(ntags) (bytes(key) bytes(value))*
 *           ref(root) varint(files dirs others logical new stored)
 */
#include "snapshot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SNAP_MAGIC "MVS1"

void snapshot_release(struct snapshot *s)
{
	uint32_t i;

	free(s->name);
	free(s->host);
	for (i = 0; i < s->ntags; i++) {
		free(s->tags[i].key);
		free(s->tags[i].value);
	}
	free(s->tags);
	tree_ref_release(&s->root);
	memset(s, 0, sizeof(*s));
}

int snapshot_copy(struct snapshot *dst, const struct snapshot *src)
{
	uint32_t i;

	*dst = *src;
	dst->name = src->name ? strdup(src->name) : NULL;
	dst->host = src->host ? strdup(src->host) : NULL;
	dst->tags = NULL;
	dst->ntags = 0;
	dst->root.chunks = NULL;
	dst->root.n = 0;
	if (tree_ref_copy(&dst->root, &src->root))
		goto fail;
	if (src->ntags) {
		dst->tags = calloc(src->ntags, sizeof(*dst->tags));
		if (!dst->tags)
			goto fail;
		for (i = 0; i < src->ntags; i++) {
			dst->ntags++;
			dst->tags[i].key = strdup(src->tags[i].key);
			dst->tags[i].value = strdup(src->tags[i].value);
			if (!dst->tags[i].key || !dst->tags[i].value)
				goto fail;
		}
	}
	if ((src->name && !dst->name) || (src->host && !dst->host))
		goto fail;
	return 0;
fail:
	snapshot_release(dst);
	return -ENOMEM;
}

static int put_str(struct mv_buf *b, const char *s)
{
	return mv_buf_put_bytes(b, s ? s : "", s ? strlen(s) : 0);
}

int snapshot_encode(const struct snapshot *s, struct mv_buf *out,
		    struct mv_err *err)
{
	uint32_t i;
	int rc = 0;

	rc |= mv_buf_append(out, SNAP_MAGIC, 4);
	rc |= mv_buf_put_varint(out, 1);
	rc |= put_str(out, s->name);
	rc |= mv_buf_put_varint(out,
				((uint64_t)s->time_ns << 1) ^
					(s->time_ns < 0 ? ~(uint64_t)0 : 0));
	rc |= put_str(out, s->host);
	rc |= mv_buf_put_u8(out, s->partial);
	rc |= mv_buf_put_varint(out, s->ntags);
	for (i = 0; i < s->ntags; i++) {
		rc |= put_str(out, s->tags[i].key);
		rc |= put_str(out, s->tags[i].value);
	}
	rc |= mv_buf_put_varint(out, s->root.n);
	for (i = 0; i < s->root.n; i++) {
		rc |= mv_buf_append(out, s->root.chunks[i].id, MV_ID_LEN);
		rc |= mv_buf_put_varint(out, s->root.chunks[i].size);
	}
	rc |= mv_buf_put_varint(out, s->stats.files);
	rc |= mv_buf_put_varint(out, s->stats.dirs);
	rc |= mv_buf_put_varint(out, s->stats.others);
	rc |= mv_buf_put_varint(out, s->stats.logical);
	rc |= mv_buf_put_varint(out, s->stats.new_bytes);
	rc |= mv_buf_put_varint(out, s->stats.stored_bytes);
	if (rc)
		return mv_err_set(err, -ENOMEM, "out of memory");
	return 0;
}

static int get_str(struct mv_reader *r, char **out)
{
	const uint8_t *p;
	size_t n;

	if (mv_reader_bytes(r, &p, &n) || memchr(p, 0, n))
		return -EBADMSG;
	*out = malloc(n + 1);
	if (!*out)
		return -ENOMEM;
	memcpy(*out, p, n);
	(*out)[n] = '\0';
	return 0;
}

/* Bytes not read yet. */
static uint64_t left(const struct mv_reader *r)
{
	return (uint64_t)(r->end - r->p);
}

int snapshot_decode(const void *buf, size_t len, struct snapshot *out,
		    struct mv_err *err)
{
	struct mv_reader r;
	uint64_t v, n;
	uint8_t partial;
	uint32_t i;
	int rc = -EBADMSG;

	memset(out, 0, sizeof(*out));
	mv_reader_init(&r, buf, len);
	if (len < 4 || memcmp(buf, SNAP_MAGIC, 4))
		goto out;
	r.p += 4;
	if (mv_reader_varint(&r, &v) || v != 1)
		goto out;
	if ((rc = get_str(&r, &out->name)))
		goto out;
	rc = -EBADMSG;
	if (mv_reader_varint(&r, &v))
		goto out;
	out->time_ns = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
	if ((rc = get_str(&r, &out->host)))
		goto out;
	rc = -EBADMSG;
	/* counts are untrusted: each tag takes at least its two length
	 * bytes, each root chunk its id and a size byte, so a count the
	 * rest of the record cannot hold is refused before allocating
	 * (divided, never multiplied, so it cannot wrap around) */
	if (mv_reader_u8(&r, &partial) || mv_reader_varint(&r, &n) ||
	    n > left(&r) / 2)
		goto out;
	out->partial = partial != 0;
	if (n && !(out->tags = calloc(n, sizeof(*out->tags)))) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		out->ntags++;
		if ((rc = get_str(&r, &out->tags[i].key)) ||
		    (rc = get_str(&r, &out->tags[i].value)))
			goto out;
	}
	rc = -EBADMSG;
	if (mv_reader_varint(&r, &n) || n > left(&r) / (MV_ID_LEN + 1))
		goto out;
	if (n && !(out->root.chunks = calloc(n, sizeof(*out->root.chunks)))) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		uint64_t sz;

		if (mv_reader_fixed(&r, out->root.chunks[i].id, MV_ID_LEN) ||
		    mv_reader_varint(&r, &sz) || sz > UINT32_MAX)
			goto out;
		out->root.chunks[i].size = (uint32_t)sz;
		out->root.n++;
	}
	if (mv_reader_varint(&r, &out->stats.files) ||
	    mv_reader_varint(&r, &out->stats.dirs) ||
	    mv_reader_varint(&r, &out->stats.others) ||
	    mv_reader_varint(&r, &out->stats.logical) ||
	    mv_reader_varint(&r, &out->stats.new_bytes) ||
	    mv_reader_varint(&r, &out->stats.stored_bytes))
		goto out;
	rc = 0;
out:
	if (rc) {
		snapshot_release(out);
		return mv_err_set(err, rc == -ENOMEM ? rc : -EIO,
				  "damaged snapshot record");
	}
	return 0;
}

struct list_ctx {
	struct repo *r;
	struct snapshot *items;
	size_t n, cap;
	struct mv_err *err;
};

static int list_one(int64_t row, const void *record, size_t len, void *arg)
{
	struct list_ctx *c = arg;
	int rc;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct snapshot *p = realloc(c->items, cap * sizeof(*p));

		if (!p)
			return mv_err_set(c->err, -ENOMEM, "out of memory");
		c->items = p;
		c->cap = cap;
	}
	rc = snapshot_decode(record, len, &c->items[c->n], c->err);
	if (rc)
		return rc == -ENOMEM ? rc
				     : mv_err_prefix(c->err,
						     "snapshot row %lld of the "
						     "index",
						     (long long)row);
	repo_chunk_id(c->r, record, len, c->items[c->n].id);
	c->items[c->n].row = row;
	c->n++;
	return 0;
}

int snapshot_list(struct repo *r, struct snapshot **out, size_t *out_n,
		  struct mv_err *err)
{
	struct list_ctx c = {r, NULL, 0, 0, err};
	int rc;

	rc = repo_snapshot_each(r, list_one, &c, err);
	if (rc) {
		snapshot_list_free(c.items, c.n);
		return rc;
	}
	*out = c.items;
	*out_n = c.n;
	return 0;
}

void snapshot_list_free(struct snapshot *list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		snapshot_release(&list[i]);
	free(list);
}

void snapshot_dir_name(const struct snapshot *s, char *out, size_t n)
{
	char t[40];

	mv_time_name(s->time_ns, t, sizeof(t));
	snprintf(out, n, "%s%s", t, s->partial ? ".partial" : "");
}

int snapshot_split_spec(const char *arg, char **out_snap, char **out_path,
			struct mv_err *err)
{
	const char *colon = strchr(arg, ':');
	size_t n = colon ? (size_t)(colon - arg) : strlen(arg);

	/* ISO times have colons (NAME/2024-05-01T12:00:00Z): only then may
	 * a colon belong to the snapshot part */
	while (colon && memchr(arg, '/', (size_t)(colon - arg)) &&
	       memchr(arg, 'T', (size_t)(colon - arg)) && colon[1] >= '0' &&
	       colon[1] <= '9' && colon[2] >= '0' && colon[2] <= '9' &&
	       (colon[3] == ':' || colon[3] == 'Z' || colon[3] == '\0')) {
		colon = strchr(colon + 1, ':');
		n = colon ? (size_t)(colon - arg) : strlen(arg);
	}
	*out_snap = strndup(arg, n);
	*out_path = strdup(colon ? colon + 1 : "");
	if (!*out_snap || !*out_path) {
		free(*out_snap);
		free(*out_path);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

void snapshot_shown_name(const struct snapshot *list, size_t i, char *out,
			 size_t n)
{
	char base[40], other[40];
	size_t j;
	unsigned dup = 1;

	mv_time_name(list[i].time_ns, base, sizeof(base));
	for (j = 0; j < i; j++) {
		if (strcmp(list[j].name, list[i].name))
			continue;
		mv_time_name(list[j].time_ns, other, sizeof(other));
		if (!strcmp(base, other))
			dup++;
	}
	if (dup > 1)
		snprintf(out, n, "%s-%u%s", base, dup,
			 list[i].partial ? ".partial" : "");
	else
		snapshot_dir_name(&list[i], out, n);
}

int snapshot_resolve(struct repo *r, const char *spec, struct snapshot *out,
		     struct mv_err *err)
{
	struct snapshot *list = NULL, *found = NULL;
	const char *slash = strrchr(spec, '/');
	size_t n = 0, i, matches = 0;
	int rc;

	rc = snapshot_list(r, &list, &n, err);
	if (rc)
		return rc;
	if (slash) {
		size_t nl = (size_t)(slash - spec);
		const char *when = slash + 1;
		struct snapshot *partial = NULL;
		bool latest = !strcmp(when, "latest"), parsed;
		int64_t t = 0;

		parsed = !latest && !mv_time_parse(when, &t);
		for (i = 0; i < n; i++) {
			char name[80];

			if (strlen(list[i].name) != nl ||
			    strncmp(list[i].name, spec, nl))
				continue;
			if (latest) {
				/* ordered by time: the last complete wins */
				if (list[i].partial)
					partial = &list[i];
				else
					found = &list[i];
				continue;
			}
			snapshot_shown_name(list, i, name, sizeof(name));
			if (!strcmp(name, when)) {
				/* the mount's exact directory name */
				found = &list[i];
				matches = 1;
				break;
			}
			if (parsed &&
			    list[i].time_ns / 1000000000 == t / 1000000000) {
				found = &list[i];
				matches++;
			}
		}
		if (latest && !found)
			found = partial;
		if (!found && !latest && !parsed) {
			rc = mv_err_set(err, -EINVAL,
					"cannot parse time '%s' in '%s' (use "
					"NAME/latest, NAME/2024-05-01T120000Z "
					"or an id)",
					when, spec);
			goto out;
		}
	} else {
		size_t len = strlen(spec);
		char hex[2 * MV_ID_LEN + 1];

		if (len < 4) {
			rc = mv_err_set(err, -EINVAL,
					"snapshot '%s': give "
					"NAME/TIME, NAME/latest or at least 4 "
					"hex digits of an id",
					spec);
			goto out;
		}
		for (i = 0; i < n; i++) {
			mv_hex(list[i].id, MV_ID_LEN, hex);
			if (!strncasecmp(hex, spec, len)) {
				found = &list[i];
				matches++;
			}
		}
	}
	if (matches > 1) {
		rc = mv_err_set(err, -EINVAL,
				"snapshot '%s' is ambiguous "
				"(%zu match)",
				spec, matches);
		goto out;
	}
	if (!found) {
		rc = mv_err_set(err, -ENOENT, "no snapshot '%s' in '%s'", spec,
				repo_location(r));
		goto out;
	}
	rc = snapshot_copy(out, found)
		     ? mv_err_set(err, -ENOMEM, "out of memory")
		     : 0;
out:
	snapshot_list_free(list, n);
	return rc;
}
