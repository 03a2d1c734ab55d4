/* util: buffers, readers, hex, file I/O and time helpers (include/util.h). */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int mv_buf_reserve(struct mv_buf *b, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (b->cap - b->len >= n)
		return 0;
	if (n > SIZE_MAX / 2 - b->len)
		return -ENOMEM;
	cap = b->cap ? b->cap : 64;
	while (cap - b->len < n)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int mv_buf_append(struct mv_buf *b, const void *p, size_t n)
{
	int rc;

	if (!n)
		return 0;
	rc = mv_buf_reserve(b, n);
	if (rc)
		return rc;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int mv_buf_put_u8(struct mv_buf *b, uint8_t v)
{
	return mv_buf_append(b, &v, 1);
}

int mv_buf_put_le32(struct mv_buf *b, uint32_t v)
{
	uint8_t t[4];

	mv_put_le32(t, v);
	return mv_buf_append(b, t, 4);
}

int mv_buf_put_le64(struct mv_buf *b, uint64_t v)
{
	uint8_t t[8];

	mv_put_le64(t, v);
	return mv_buf_append(b, t, 8);
}

int mv_buf_put_varint(struct mv_buf *b, uint64_t v)
{
	uint8_t t[10];
	size_t n = 0;

	while (v >= 0x80) {
		t[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	t[n++] = (uint8_t)v;
	return mv_buf_append(b, t, n);
}

int mv_buf_put_bytes(struct mv_buf *b, const void *p, size_t n)
{
	int rc = mv_buf_put_varint(b, n);

	return rc ? rc : mv_buf_append(b, p, n);
}

void mv_buf_reset(struct mv_buf *b)
{
	b->len = 0;
}

void mv_buf_release(struct mv_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void mv_reader_init(struct mv_reader *r, const void *p, size_t n)
{
	r->p = p;
	r->end = r->p + n;
}

int mv_reader_u8(struct mv_reader *r, uint8_t *out)
{
	if (r->p >= r->end)
		return -EBADMSG;
	*out = *r->p++;
	return 0;
}

int mv_reader_le32(struct mv_reader *r, uint32_t *out)
{
	if (r->end - r->p < 4)
		return -EBADMSG;
	*out = mv_le32(r->p);
	r->p += 4;
	return 0;
}

int mv_reader_le64(struct mv_reader *r, uint64_t *out)
{
	if (r->end - r->p < 8)
		return -EBADMSG;
	*out = mv_le64(r->p);
	r->p += 8;
	return 0;
}

int mv_reader_varint(struct mv_reader *r, uint64_t *out)
{
	const uint8_t *p = r->p;
	uint64_t v = 0;
	unsigned shift = 0;

	while (p < r->end && shift < 64) {
		uint8_t c = *p++;

		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			r->p = p;
			*out = v;
			return 0;
		}
		shift += 7;
	}
	return -EBADMSG;
}

int mv_reader_bytes(struct mv_reader *r, const uint8_t **out, size_t *out_len)
{
	const uint8_t *save = r->p;
	uint64_t n;

	if (mv_reader_varint(r, &n) || n > (uint64_t)(r->end - r->p)) {
		r->p = save;
		return -EBADMSG;
	}
	*out = r->p;
	*out_len = (size_t)n;
	r->p += n;
	return 0;
}

int mv_reader_fixed(struct mv_reader *r, void *out, size_t n)
{
	if ((size_t)(r->end - r->p) < n)
		return -EBADMSG;
	memcpy(out, r->p, n);
	r->p += n;
	return 0;
}

bool mv_reader_done(const struct mv_reader *r)
{
	return r->p == r->end;
}

void mv_hex(const void *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

int mv_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int mv_unhex(const char *hex, void *out, size_t n)
{
	uint8_t *b = out;
	size_t i;

	for (i = 0; i < n; i++) {
		int hi = mv_hexval(hex[2 * i]), lo;

		if (hi < 0)
			return -EINVAL;
		lo = mv_hexval(hex[2 * i + 1]);
		if (lo < 0)
			return -EINVAL;
		b[i] = (uint8_t)(hi << 4 | lo);
	}
	return hex[2 * n] ? -EINVAL : 0;
}

int mv_write_full(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t w = write(fd, b, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

int mv_pread_full(int fd, void *p, size_t n, off_t off)
{
	uint8_t *b = p;

	while (n) {
		ssize_t r = pread(fd, b, n, off);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -ENODATA;
		b += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

int mv_read_file(const char *path, size_t max, char **out, size_t *out_len,
		 struct mv_err *err)
{
	struct stat st;
	char *buf = NULL;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mv_err_set(err, -errno, "cannot open '%s': %s", path,
				  strerror(errno));
	if (fstat(fd, &st) < 0) {
		rc = mv_err_set(err, -errno, "cannot stat '%s': %s", path,
				strerror(errno));
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		rc = mv_err_set(err, -EFBIG, "'%s' is larger than %zu bytes",
				path, max);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = mv_err_set(err, -ENOMEM, "out of memory reading '%s'",
				path);
		goto out;
	}
	rc = mv_pread_full(fd, buf, (size_t)st.st_size, 0);
	if (rc) {
		mv_err_set(err, rc, "cannot read '%s': %s", path,
			   strerror(-rc));
		free(buf);
		buf = NULL;
		goto out;
	}
	buf[st.st_size] = '\0';
	*out = buf;
	if (out_len)
		*out_len = (size_t)st.st_size;
out:
	close(fd);
	return rc;
}

int mv_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0 && errno != EINVAL)
		rc = -errno;
	close(fd);
	return rc;
}

int mv_write_file_atomic(const char *path, const void *p, size_t n,
			 struct mv_err *err)
{
	return mv_write_file_atomic_mode(path, p, n, 0644, err);
}

int mv_write_file_atomic_mode(const char *path, const void *p, size_t n,
			      mode_t mode, struct mv_err *err)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	char *slash;
	int fd, rc;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return mv_err_set(err, -ENAMETOOLONG, "path too long: '%s'",
				  path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return mv_err_set(err, -errno, "cannot create '%s': %s", tmp,
				  strerror(errno));
	rc = mv_write_full(fd, p, n);
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (!rc && rename(tmp, path) < 0)
		rc = -errno;
	if (rc) {
		unlink(tmp);
		return mv_err_set(err, rc, "cannot write '%s': %s", path,
				  strerror(-rc));
	}
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash) {
		*slash = '\0';
		mv_fsync_dir(dir[0] ? dir : "/");
	} else {
		mv_fsync_dir(".");
	}
	return 0;
}

int mv_create_private(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

int mv_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t i, n = strlen(path);

	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		if (i < n)
			buf[i] = '/';
	}
	return 0;
}

int64_t mv_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void split_ns(int64_t ns, time_t *sec)
{
	int64_t s = ns / 1000000000;

	if (ns % 1000000000 < 0)
		s--;
	*sec = (time_t)s;
}

void mv_time_name(int64_t ns, char *out, size_t n)
{
	struct tm tm;
	time_t sec;

	split_ns(ns, &sec);
	gmtime_r(&sec, &tm);
	strftime(out, n, "%Y-%m-%dT%H%M%SZ", &tm);
}

void mv_time_iso(int64_t ns, char *out, size_t n)
{
	struct tm tm;
	time_t sec;

	split_ns(ns, &sec);
	gmtime_r(&sec, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int mv_time_parse(const char *s, int64_t *out_ns)
{
	int y = 0, mo = 0, d = 0, h = 0, mi = 0, se = 0, used = 0;
	struct tm tm;
	const char *p;
	time_t t;

	if (s[0] == '@') {
		char *end;
		long long v = strtoll(s + 1, &end, 10);

		if (end == s + 1 || *end)
			return -EINVAL;
		*out_ns = (int64_t)v * 1000000000;
		return 0;
	}
	for (p = s; *p; p++)
		if (*p == '+' || (*p == '-' && p != s + 4 && p != s + 7))
			return -EINVAL; /* no signs inside fields */
	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &used) != 3 || used != 10)
		return -EINVAL;
	p = s + used;
	if (*p == 'T' || *p == ' ') {
		p++;
		if (sscanf(p, "%2d:%2d%n", &h, &mi, &used) == 2 && used == 5) {
			p += used;
			if (*p == ':') {
				if (sscanf(p + 1, "%2d%n", &se, &used) != 1 ||
				    used != 2)
					return -EINVAL;
				p += 3;
			}
		} else if (sscanf(p, "%2d%2d%2d%n", &h, &mi, &se, &used) == 3 &&
			   used == 6) {
			p += used;
		} else {
			return -EINVAL;
		}
	}
	if (*p == 'Z')
		p++;
	if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 ||
	    mi < 0 || mi > 59 || se < 0 || se > 60)
		return -EINVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	t = timegm(&tm);
	/* timegm normalises: 2024-02-31 would become March 2 */
	if (tm.tm_mday != d || tm.tm_mon != mo - 1 || tm.tm_year != y - 1900)
		return -EINVAL;
	*out_ns = (int64_t)t * 1000000000;
	return 0;
}

void mv_human_size(uint64_t n, char *out, size_t len)
{
	static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	size_t u = 0;

	while (v >= 1024 && u + 1 < MV_ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, len, "%llu B", (unsigned long long)n);
	else
		snprintf(out, len, "%.1f %s", v, units[u]);
}

void *mv_alloc(size_t n, struct mv_err *err)
{
	void *p = calloc(1, n ? n : 1);

	if (!p)
		mv_err_set(err, -ENOMEM, "out of memory (%zu bytes)", n);
	return p;
}

char *mv_strdup(const char *s, struct mv_err *err)
{
	char *p = strdup(s);

	if (!p)
		mv_err_set(err, -ENOMEM, "out of memory");
	return p;
}
