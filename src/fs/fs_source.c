/* fs_source: the repository as the mount's source of snapshots, trees and
 * chunks (repo.h, tree.h, snapshot.h; all thread-safe there). */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "pack.h"

#include "mail_crypt.h"
#include "mail_view.h"
#include "repo.h"
#include "snapshot.h"

static int src_list(void *ctx, struct fs_snap_info **out, size_t *out_n,
		    struct mv_err *err)
{
	struct snapshot *snaps = NULL;
	struct fs_snap_info *list = NULL;
	size_t n = 0, i;
	int rc;

	rc = snapshot_list(ctx, &snaps, &n, err);
	if (rc)
		return rc;
	list = calloc(n ? n : 1, sizeof(*list));
	if (!list) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct fs_snap_info *s = &list[i];
		const struct tree_ref *r = &snaps[i].root;

		s->name = strdup(snaps[i].name ? snaps[i].name : "");
		s->root.chunks = malloc((r->n ? r->n : 1) * sizeof(*r->chunks));
		if (!s->name || !s->root.chunks) {
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			fs_snap_info_free(list, i + 1);
			list = NULL;
			goto out;
		}
		if (r->n)
			memcpy(s->root.chunks, r->chunks,
			       r->n * sizeof(*r->chunks));
		s->root.n = r->n;
		snapshot_dir_name(&snaps[i], s->dir, sizeof(s->dir));
		s->time_ns = snaps[i].time_ns;
		s->partial = snaps[i].partial;
		memcpy(s->id, snaps[i].id, MV_ID_LEN);
	}
	*out = list;
	*out_n = n;
out:
	snapshot_list_free(snaps, n);
	return rc;
}

static int src_refresh(void *ctx, bool *out_changed, struct mv_err *err)
{
	return repo_refresh(ctx, out_changed, err);
}

static int src_tree_load(void *ctx, const struct tree_ref *ref,
			 struct tree **out, struct mv_err *err)
{
	return tree_load(ctx, ref, out, err);
}

static int src_node_load(void *ctx, const uint8_t id[MV_ID_LEN], int level,
			 struct ptree_node **out, struct mv_err *err)
{
	struct mv_buf b = MV_BUF_INIT;
	int rc = repo_chunk_read(ctx, id, false, &b, err);

	if (!rc && !ptree_is_node(b.data, b.len))
		rc = -ENOTSUP; /* format 1: tree_load reads it whole */
	else if (!rc)
		rc = ptree_node_open(ctx, id, b.data, b.len, level, out, err);
	mv_buf_release(&b);
	return rc;
}

static void src_tree_free(void *ctx, struct tree *t)
{
	(void)ctx;
	tree_free(t);
}

/* A buffer grown in powers of two, trimmed to its length (what the cache
 * charges is what it holds); an empty chunk still gets a pointer. */
static void *buf_take(struct mv_buf *b)
{
	void *p;

	if (b->data && b->cap > b->len) {
		p = realloc(b->data, b->len ? b->len : 1);
		if (p)
			b->data = p;
	}
	p = b->data ? b->data : malloc(1);
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

static int src_chunk_read(void *ctx, const uint8_t id[MV_ID_LEN], void **out,
			  size_t *out_len, struct mv_err *err)
{
	struct mv_buf b = MV_BUF_INIT;
	int rc;

	rc = repo_chunk_read(ctx, id, false, &b, err);
	if (rc) {
		mv_buf_release(&b);
		return rc;
	}
	*out_len = b.len;
	*out = buf_take(&b);
	return *out ? 0 : mv_err_set(err, -ENOMEM, "out of memory");
}

static int src_chunk_read_buf(void *ctx, const uint8_t id[MV_ID_LEN],
			      struct mv_buf *buf, struct mv_err *err)
{
	return repo_chunk_read(ctx, id, false, buf, err);
}

static int src_xform_read(void *ctx, const struct tree_entry *e, void **out,
			  size_t *out_len, struct mv_err *err)
{
	struct mv_buf b = MV_BUF_INIT;
	int rc;

	rc = mail_view_read(ctx, e, &b, err);
	if (rc) {
		mv_buf_release(&b);
		return rc;
	}
	*out = b.data ? b.data : malloc(1);
	*out_len = b.len;
	return *out ? 0 : mv_err_set(err, -ENOMEM, "out of memory");
}

/* One read of a pack range instead of a round trip per record: want[0]'s
 * record, grown to take in the records of want[1..) of the same pack while
 * the range stays within max bytes.  Ingest stores a directory's files one
 * after the other, so the next files of a directory are mostly there. */
static int src_chunks_fetch(void *ctx, const struct tree_chunk *want, size_t n,
			    size_t max, fs_chunk_got_fn *got, void *arg,
			    struct mv_err *err)
{
	struct repo *r = ctx;
	struct backend *be = repo_backend(r);
	struct chunk_loc *loc = calloc(n, sizeof(*loc));
	bool *in = calloc(n, sizeof(*in));
	struct mv_buf b = MV_BUF_INIT;
	uint8_t *buf = NULL;
	char path[128];
	uint64_t lo, hi;
	size_t i, got_bytes = 0;
	int rc;

	if (!loc || !in) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	rc = repo_chunk_find(r, want[0].id, &loc[0], err);
	if (rc == -ENOENT)
		rc = mv_err_set(err, -EIO, "chunk missing from the index");
	if (!rc)
		rc = repo_pack_path(r, loc[0].pack, path, sizeof(path), err);
	if (rc)
		goto out;
	lo = loc[0].offset;
	hi = lo + repo_record_span(r, &loc[0]);
	in[0] = true;
	for (i = 1; i < n; i++) {
		uint64_t end;

		if (repo_chunk_find(r, want[i].id, &loc[i], NULL) ||
		    loc[i].pack != loc[0].pack)
			continue;
		end = loc[i].offset + repo_record_span(r, &loc[i]);
		if (MV_MAX(hi, end) - MV_MIN(lo, loc[i].offset) > max)
			continue;
		lo = MV_MIN(lo, loc[i].offset);
		hi = MV_MAX(hi, end);
		in[i] = true;
	}
	buf = malloc(hi - lo);
	if (!buf) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	while (got_bytes < hi - lo) {
		size_t k = 0;

		rc = be->ops->read_at(be, path, lo + got_bytes, buf + got_bytes,
				      hi - lo - got_bytes, &k, err);
		if (rc)
			goto out;
		if (!k) {
			rc = mv_err_set(err, -EIO, "pack '%s' is truncated",
					path);
			goto out;
		}
		got_bytes += k;
	}
	for (i = 0; i < n; i++) {
		size_t off, len;

		if (!in[i])
			continue;
		off = (size_t)(loc[i].offset - lo);
		len = repo_record_span(r, &loc[i]);
		rc = repo_record_decode(r, want[i].id, loc[i].type, buf + off,
					len, false, &b, i ? NULL : err);
		if (rc && i == 0) {
			mv_err_prefix(err, "pack '%s' at offset %llu", path,
				      (unsigned long long)loc[i].offset);
			goto out;
		}
		/* a damaged later record is left to its own reader */
		if (!rc) {
			void *data;
			size_t dlen = b.len;

			data = buf_take(&b);
			if (!data) {
				rc = mv_err_set(err, -ENOMEM, "out of memory");
				goto out;
			}
			got(arg, i, data, dlen);
		}
		rc = 0;
	}
out:
	mv_buf_release(&b);
	free(buf);
	free(loc);
	free(in);
	return rc;
}

static bool src_remote(void *ctx)
{
	struct backend *be = repo_backend(ctx);

	return be && !(be->ops->local_root && be->ops->local_root(be));
}

/* Ask the kernel to read a local file into the page cache (async). */
static void warm_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
	close(fd);
}

struct warm_arg {
	const char *root;
	uint64_t budget; /* bytes of meta packs still to warm */
};

static int warm_pack(int64_t id, const char *name, int kind, uint64_t size,
		     uint32_t records, void *arg)
{
	struct warm_arg *a = arg;
	char rel[128], path[PATH_MAX];

	(void)id, (void)records;
	if (kind != PACK_KIND_META || size > a->budget)
		return 0;
	a->budget -= size;
	pack_path(name, rel, sizeof(rel));
	if (snprintf(path, sizeof(path), "%s/%s", a->root, rel) <
	    (int)sizeof(path))
		warm_file(path);
	return 0;
}

/* A cold first access reads one tree record per path level: have the
 * kernel read the packs of trees ahead, in the background (a 414 MB
 * snapshot has 1.6 MB of trees).  index.db is not touched: closing any
 * descriptor of it would drop SQLite's POSIX locks, and a writer could
 * then reset the WAL under this process's connection. */
static void src_warm(void *ctx)
{
	struct repo *r = ctx;
	struct backend *be = repo_backend(r);
	struct warm_arg a = {NULL, FS_WARM_META_MAX};

	a.root = be && be->ops->local_root ? be->ops->local_root(be) : NULL;
	if (a.root)
		repo_pack_each(r, warm_pack, &a, NULL);
	/* the first mailcow message read would load OpenSSL's algorithms */
	mail_crypt_warm();
}

static void src_xform_warm(void *ctx, const struct tree_entry *e)
{
	mail_view_warm_keys(ctx, e);
}

const struct fs_source_ops fs_source_repo_ops = {
	.list = src_list,
	.refresh = src_refresh,
	.tree_load = src_tree_load,
	.node_load = src_node_load,
	.tree_free = src_tree_free,
	.chunk_read = src_chunk_read,
	.chunk_read_buf = src_chunk_read_buf,
	.xform_read = src_xform_read,
	.xform_warm = src_xform_warm,
	.chunks_fetch = src_chunks_fetch,
	.remote = src_remote,
	.warm = src_warm,
};
