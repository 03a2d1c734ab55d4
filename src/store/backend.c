/* backend: dispatch by location and helpers over the ops table. */
#include "backend.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "s3.h"
#include "sftp.h"

bool backend_is_remote(const char *location)
{
	return !strncmp(location, "sftp://", 7) || s3_is_url(location);
}

int backend_open(const char *location, bool create, struct backend **out,
		 struct mv_err *err)
{
	if (s3_is_url(location))
		return backend_s3_open(location, create, out, err);
	if (backend_is_remote(location))
		return backend_sftp_open(location, create, out, err);
	if (strstr(location, "://"))
		return mv_err_set(err, -EINVAL,
				  "unsupported repository location '%s' "
				  "(use a path, sftp://[user@]host[:port]/path "
				  "or s3://bucket/prefix)",
				  location);
	return backend_local_open(location, create, out, err);
}

void backend_close(struct backend *be)
{
	if (be)
		be->ops->close(be);
}

int backend_read_all(struct backend *be, const char *path, size_t max,
		     void **out, size_t *out_len, struct mv_err *err)
{
	uint64_t size;
	uint8_t *buf;
	size_t got = 0;
	int rc;

	if (be->ops->read_all)
		return be->ops->read_all(be, path, max, out, out_len, err);
	rc = be->ops->stat(be, path, &size, NULL, err);
	if (rc)
		return rc;
	if (size > max)
		return mv_err_set(err, -EFBIG,
				  "'%s' in '%s' is too large "
				  "(%llu bytes, at most %zu)",
				  path, be->url, (unsigned long long)size, max);
	buf = malloc((size_t)size + 1);
	if (!buf)
		return mv_err_set(err, -ENOMEM, "out of memory");
	while (got < size) {
		size_t n = 0;

		rc = be->ops->read_at(be, path, got, buf + got,
				      (size_t)size - got, &n, err);
		if (rc) {
			free(buf);
			return rc;
		}
		if (!n) {
			free(buf);
			return mv_err_set(err, -EIO,
					  "'%s' in '%s' shrank "
					  "while reading",
					  path, be->url);
		}
		got += n;
	}
	buf[got] = '\0';
	*out = buf;
	*out_len = got;
	return 0;
}

int backend_stat_read(struct backend *be, const char *path, uint64_t *out_size,
		      int64_t *out_mtime_ns, void *buf, size_t len,
		      size_t whole, size_t *out_got, struct mv_err *err)
{
	uint8_t *p = buf;
	uint64_t size = 0;
	int rc;

	*out_got = 0;
	if (be->ops->stat_read)
		return be->ops->stat_read(be, path, out_size, out_mtime_ns, buf,
					  len, whole, out_got, err);
	rc = be->ops->stat(be, path, &size, out_mtime_ns, err);
	if (!rc && out_size)
		*out_size = size;
	if (!rc && size <= whole)
		len = (size_t)size;
	while (!rc && *out_got < len) {
		size_t n = 0;

		rc = be->ops->read_at(be, path, *out_got, p + *out_got,
				      len - *out_got, &n, err);
		if (!n)
			break;
		*out_got += n;
	}
	return rc;
}

int backend_file_commit_pair(struct backend *be, struct backend_file *first,
			     struct backend_file *f, struct mv_err *err)
{
	int rc;

	if (!first)
		return f ? be->ops->file_commit(f, err) : 0;
	if (!f)
		return be->ops->file_commit(first, err);
	if (be->ops->file_commit_after)
		return be->ops->file_commit_after(f, first, err);
	rc = be->ops->file_commit(first, err);
	if (rc) {
		be->ops->file_abort(f);
		return rc;
	}
	return be->ops->file_commit(f, err);
}

int backend_write_atomic(struct backend *be, const char *path, const void *buf,
			 size_t len, struct mv_err *err)
{
	struct backend_file *f = NULL;
	int rc;

	rc = be->ops->file_create(be, path, &f, err);
	if (rc)
		return rc;
	rc = be->ops->file_write(f, buf, len, err);
	if (rc) {
		be->ops->file_abort(f);
		return rc;
	}
	return be->ops->file_commit(f, err);
}

/* One range to its end or the end of the file. */
static int read_range(struct backend *be, struct backend_range *r,
		      struct mv_err *err)
{
	r->got = 0;
	while (r->got < r->len) {
		size_t n = 0;
		int rc = be->ops->read_at(be, r->path, r->off + r->got,
					  (uint8_t *)r->buf + r->got,
					  r->len - r->got, &n, err);

		if (rc)
			return rc;
		if (!n)
			break;
		r->got += n;
	}
	return 0;
}

int backend_read_many(struct backend *be, struct backend_range *v, size_t n,
		      struct mv_err *err)
{
	size_t i;
	int rc = 0;

	if (be->ops->read_many)
		return be->ops->read_many(be, v, n, err);
	for (i = 0; i < n; i++) {
		v[i].rc = read_range(be, &v[i], rc ? NULL : err);
		if (v[i].rc && !rc)
			rc = v[i].rc;
	}
	return rc;
}
