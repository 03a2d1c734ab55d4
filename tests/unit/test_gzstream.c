/*
 * Unit tests for gzstream: gzip inflation against data compressed by the
 * gzip program, pass-through, and every bad input ingest must reject.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>

#include "gzstream.h"
#include "util.h"

struct bytes {
	uint8_t *p;
	size_t n;
};

static char tmpdir[] = "/tmp/test_gzstream.XXXXXX";

static void bytes_append(struct bytes *b, const void *p, size_t n)
{
	b->p = realloc(b->p, b->n + n + 1);
	assert_non_null(b->p);
	if (n)
		memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void bytes_free(struct bytes *b)
{
	free(b->p);
	b->p = NULL;
	b->n = 0;
}

/* Mail-like text: compressible, but not trivially. */
static struct bytes make_text(size_t n, uint32_t seed)
{
	static const char *const words[] = {
		"Received:", "from",	  "mail.example.org",
		"by",	     "the",	  "meeting",
		"report",    "Subject:",  "please",
		"thanks",    "quarterly", "invoice\n",
		"attached",  "regards,",  "Bob",
		"Alice\n",
	};
	struct bytes b = {NULL, 0};
	uint32_t x = seed | 1;

	b.p = malloc(n + 1);
	assert_non_null(b.p);
	while (b.n < n) {
		const char *w;
		char num[16];
		size_t len;

		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		if (x % 7 == 0) {
			snprintf(num, sizeof(num), "%u ", x % 100000);
			w = num;
		} else {
			w = words[x % MV_ARRAY_SIZE(words)];
		}
		len = strlen(w);
		if (len > n - b.n)
			len = n - b.n;
		memcpy(b.p + b.n, w, len);
		b.n += len;
		if (b.n < n && w != num && w[strlen(w) - 1] != '\n')
			b.p[b.n++] = ' ';
	}
	return b;
}

/* Bytes that do not compress: gzip stores them in stored blocks. */
static struct bytes make_random(size_t n, uint32_t seed)
{
	struct bytes b = {NULL, 0};
	uint32_t x = seed | 1;

	b.p = malloc(n + 1);
	assert_non_null(b.p);
	for (b.n = 0; b.n < n; b.n++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		b.p[b.n] = (uint8_t)(x >> 11);
	}
	return b;
}

static void write_file(const char *path, const struct bytes *b)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	if (b->n)
		assert_int_equal(fwrite(b->p, 1, b->n, f), b->n);
	assert_int_equal(fclose(f), 0);
}

static struct bytes read_path(const char *path)
{
	struct bytes b = {NULL, 0};
	char buf[65536];
	FILE *f = fopen(path, "rb");
	size_t n;

	assert_non_null(f);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		bytes_append(&b, buf, n);
	fclose(f);
	if (!b.p)
		bytes_append(&b, "", 0);
	return b;
}

/* Compress with the gzip program.  With_name stores the file name in the
 * header (FNAME), as `gzip FILE` does. */
static struct bytes gzip_bytes(const struct bytes *in, int level,
			       bool with_name)
{
	char src[256], dst[256], cmd[800];
	struct bytes out;

	snprintf(src, sizeof(src), "%s/in", tmpdir);
	snprintf(dst, sizeof(dst), "%s/in.gz", tmpdir);
	write_file(src, in);
	if (with_name)
		snprintf(cmd, sizeof(cmd), "gzip -c -%d '%s' > '%s'", level,
			 src, dst);
	else
		snprintf(cmd, sizeof(cmd), "gzip -c -n -%d < '%s' > '%s'",
			 level, src, dst);
	assert_int_equal(system(cmd), 0);
	out = read_path(dst);
	unlink(src);
	unlink(dst);
	return out;
}

/* A regular file holding b, opened for reading. */
static int file_fd(const struct bytes *b)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/input", tmpdir);
	write_file(path, b);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	unlink(path);
	return fd;
}

/* Read a whole stream with next_block; returns gzstream's code. */
static int drain_blocks(struct gzstream *g, struct bytes *out,
			struct mv_err *err)
{
	for (;;) {
		const void *p;
		size_t n;
		int rc = gzstream_next_block(g, &p, &n, err);

		if (rc)
			return rc;
		if (!n) {
			assert_null(p);
			return 0;
		}
		bytes_append(out, p, n);
	}
}

/* Open b as a file and read it all; returns the first error. */
static int decode_file(const struct bytes *b, const struct gzstream_opts *o,
		       struct bytes *out, struct mv_err *err)
{
	struct gzstream *g = NULL;
	int fd = file_fd(b);
	int rc;

	rc = gzstream_open_opts(fd, "day1.tar.gz", o, &g, err);
	if (!rc)
		rc = drain_blocks(g, out, err);
	gzstream_close(g);
	close(fd);
	return rc;
}

static void assert_same(const struct bytes *a, const struct bytes *b)
{
	assert_int_equal(a->n, b->n);
	if (a->n)
		assert_memory_equal(a->p, b->p, a->n);
}

static const struct gzstream_opts tiny = {
	.block_size = 4096, .nblocks = 2, .in_size = 1000};

static void test_gzstream_round_trip(void **state)
{
	struct bytes data = make_text(5 << 20, 1);
	struct bytes gz = gzip_bytes(&data, 6, false);
	struct mv_err err = MV_ERR_INIT;
	struct bytes out = {NULL, 0};
	struct gzstream *g = NULL;
	int fd = file_fd(&gz);

	(void)state;
	assert_true(gz.n < data.n / 2);
	assert_int_equal(gzstream_open(fd, "day1.tar.gz", &g, &err), 0);
	assert_true(gzstream_is_gzip(g));
	assert_int_equal(drain_blocks(g, &out, &err), 0);
	assert_same(&out, &data);
	assert_int_equal(gzstream_total_in(g), gz.n);
	assert_int_equal(gzstream_total_out(g), data.n);
	assert_int_equal(gzstream_compressed_offset(g), gz.n);
	assert_null(gzstream_warning(g));
	gzstream_close(g);
	close(fd);

	bytes_free(&out);
	assert_int_equal(decode_file(&gz, &tiny, &out, &err), 0);
	assert_same(&out, &data);
	bytes_free(&out);
	bytes_free(&gz);
	bytes_free(&data);
}

static void test_gzstream_levels_and_stored_blocks(void **state)
{
	struct bytes text = make_text(300000, 7);
	struct bytes rnd = make_random(300000, 9);
	struct mv_err err = MV_ERR_INIT;
	const int levels[] = {1, 9};
	size_t i;

	(void)state;
	for (i = 0; i < 2; i++) {
		struct bytes gz = gzip_bytes(&text, levels[i], false);
		struct bytes out = {NULL, 0};

		assert_int_equal(decode_file(&gz, &tiny, &out, &err), 0);
		assert_same(&out, &text);
		bytes_free(&out);
		bytes_free(&gz);
	}
	{
		struct bytes gz = gzip_bytes(&rnd, 6, true);
		struct bytes out = {NULL, 0};

		assert_int_equal(decode_file(&gz, NULL, &out, &err), 0);
		assert_same(&out, &rnd);
		bytes_free(&out);
		bytes_free(&gz);
	}
	bytes_free(&text);
	bytes_free(&rnd);
}

static void test_gzstream_multi_member(void **state)
{
	struct bytes a = make_text(200000, 2), b = make_random(5000, 3);
	struct bytes c = make_text(1, 4), none = {NULL, 0};
	struct bytes gz = {NULL, 0}, want = {NULL, 0}, out = {NULL, 0};
	struct bytes parts[4], members[4];
	struct mv_err err = MV_ERR_INIT;
	size_t i;

	(void)state;
	bytes_append(&none, "", 0);
	parts[0] = a;
	parts[1] = none;
	parts[2] = b;
	parts[3] = c;
	for (i = 0; i < 4; i++) {
		members[i] = gzip_bytes(&parts[i], 6, i == 2);
		bytes_append(&gz, members[i].p, members[i].n);
		bytes_append(&want, parts[i].p, parts[i].n);
		bytes_free(&members[i]);
	}
	assert_int_equal(decode_file(&gz, NULL, &out, &err), 0);
	assert_same(&out, &want);
	bytes_free(&out);
	assert_int_equal(decode_file(&gz, &tiny, &out, &err), 0);
	assert_same(&out, &want);
	bytes_free(&out);
	bytes_free(&gz);
	bytes_free(&want);
	bytes_free(&a);
	bytes_free(&b);
	bytes_free(&c);
	bytes_free(&none);
}

/* Many small members, as bgzip and `split | gzip` make them. */
static void test_gzstream_many_small_members(void **state)
{
	struct bytes gz = {NULL, 0}, want = {NULL, 0}, out = {NULL, 0};
	struct gzstream_opts o = {
		.block_size = 777, .nblocks = 3, .in_size = 100};
	struct mv_err err = MV_ERR_INIT;
	int i;

	(void)state;
	for (i = 0; i < 60; i++) {
		struct bytes part =
			make_text(1000 + (size_t)i * 37, (uint32_t)i + 10);
		struct bytes member = gzip_bytes(&part, 6, false);

		bytes_append(&gz, member.p, member.n);
		bytes_append(&want, part.p, part.n);
		bytes_free(&member);
		bytes_free(&part);
	}
	assert_int_equal(decode_file(&gz, &o, &out, &err), 0);
	assert_same(&out, &want);
	bytes_free(&out);
	bytes_free(&gz);
	bytes_free(&want);
}

static void test_gzstream_passthrough(void **state)
{
	struct bytes data = make_random(3 << 20, 5);
	struct bytes one = {NULL, 0}, out = {NULL, 0};
	struct mv_err err = MV_ERR_INIT;
	struct gzstream *g = NULL;
	int fd;

	(void)state;
	data.p[0] = 0x28; /* zstd's magic starts 28 b5 2f fd */
	fd = file_fd(&data);
	assert_int_equal(gzstream_open(fd, "day1.tar.zst", &g, &err), 0);
	assert_false(gzstream_is_gzip(g));
	assert_int_equal(drain_blocks(g, &out, &err), 0);
	assert_same(&out, &data);
	assert_int_equal(gzstream_compressed_offset(g), data.n);
	gzstream_close(g);
	close(fd);
	bytes_free(&out);

	assert_int_equal(decode_file(&data, &tiny, &out, &err), 0);
	assert_same(&out, &data);
	bytes_free(&out);

	/* One byte that could start a gzip magic is still just a byte. */
	bytes_append(&one, "\x1f", 1);
	assert_int_equal(decode_file(&one, NULL, &out, &err), 0);
	assert_same(&out, &one);
	bytes_free(&out);
	bytes_free(&one);
	bytes_free(&data);
}

static void test_gzstream_empty_input(void **state)
{
	struct bytes empty = {NULL, 0};
	struct mv_err err = MV_ERR_INIT;
	struct gzstream *g = NULL;
	int fds[2];

	(void)state;
	assert_int_equal(decode_file(&empty, NULL, &empty, &err), -ENODATA);
	assert_string_equal(err.msg, "cannot read 'day1.tar.gz': input is "
				     "empty");

	mv_err_clear(&err);
	assert_int_equal(pipe(fds), 0);
	close(fds[1]);
	assert_int_equal(gzstream_open(fds[0], "volume=-", &g, &err), -ENODATA);
	assert_null(g);
	assert_string_equal(err.msg, "cannot read 'volume=-': input is empty");
	close(fds[0]);
}

static void test_gzstream_truncated(void **state)
{
	struct bytes data = make_text(400000, 6);
	struct bytes gz = gzip_bytes(&data, 6, true);
	size_t cuts[] = {2, 5, 9, 12, 100, 0, 0, 0, 0};
	size_t i;

	(void)state;
	cuts[5] = gz.n / 2;
	cuts[6] = gz.n - 8; /* no trailer */
	cuts[7] = gz.n - 3; /* half a trailer */
	cuts[8] = gz.n - 1;
	for (i = 0; i < MV_ARRAY_SIZE(cuts); i++) {
		struct bytes part = {NULL, 0}, out = {NULL, 0};
		struct mv_err err = MV_ERR_INIT;
		char want[128];

		bytes_append(&part, gz.p, cuts[i]);
		assert_int_equal(decode_file(&part, &tiny, &out, &err), -EPIPE);
		snprintf(want, sizeof(want),
			 "cannot read 'day1.tar.gz': gzip stream truncated at "
			 "compressed byte %zu",
			 cuts[i]);
		assert_string_equal(err.msg, want);
		/* What came before the cut is the true data. */
		assert_true(out.n <= data.n);
		if (out.n)
			assert_memory_equal(out.p, data.p, out.n);
		bytes_free(&out);
		bytes_free(&part);
	}
	bytes_free(&gz);
	bytes_free(&data);
}

/* A truncated second member is an error too, as in gzip -dc. */
static void test_gzstream_truncated_second_member(void **state)
{
	struct bytes data = make_text(1000, 8);
	struct bytes gz = gzip_bytes(&data, 6, false);
	struct bytes two = {NULL, 0}, out = {NULL, 0};
	struct mv_err err = MV_ERR_INIT;

	(void)state;
	bytes_append(&two, gz.p, gz.n);
	bytes_append(&two, gz.p, 1);
	assert_int_equal(decode_file(&two, NULL, &out, &err), -EPIPE);
	assert_non_null(strstr(err.msg, "truncated at compressed byte"));
	assert_same(&out, &data);
	bytes_free(&out);
	bytes_free(&two);
	bytes_free(&gz);
	bytes_free(&data);
}

static void test_gzstream_corrupt_crc(void **state)
{
	struct bytes data = make_random(200000, 11);
	struct bytes text = make_text(200000, 12);
	struct bytes gz = gzip_bytes(&data, 6, false);
	struct bytes tgz = gzip_bytes(&text, 6, false);
	struct bytes out = {NULL, 0};
	size_t flips[3];
	size_t i;

	(void)state;
	flips[0] = gz.n - 6; /* CRC-32 */
	flips[1] = gz.n - 2; /* ISIZE */
	flips[2] = gz.n / 2; /* inside a stored block */
	for (i = 0; i < MV_ARRAY_SIZE(flips); i++) {
		struct mv_err err = MV_ERR_INIT;

		gz.p[flips[i]] ^= 0x40;
		assert_int_equal(decode_file(&gz, &tiny, &out, &err), -EBADMSG);
		assert_non_null(strstr(err.msg, "cannot read 'day1.tar.gz': "
						"gzip data corrupt at "
						"compressed byte"));
		assert_non_null(strstr(err.msg, "CRC-32 or length mismatch "
						"in the member starting at "
						"byte 0"));
		gz.p[flips[i]] ^= 0x40;
		bytes_free(&out);
	}

	/* Damage inside Huffman-coded data: some error, never silence. */
	for (i = 1; i < 20; i++) {
		struct mv_err err = MV_ERR_INIT;
		size_t at = tgz.n * i / 20;
		int rc;

		tgz.p[at] ^= 0x10;
		rc = decode_file(&tgz, NULL, &out, &err);
		assert_true(rc == -EBADMSG || rc == -EPIPE);
		assert_non_null(strstr(err.msg, "cannot read 'day1.tar.gz': "
						"gzip "));
		tgz.p[at] ^= 0x10;
		bytes_free(&out);
	}
	bytes_free(&gz);
	bytes_free(&tgz);
	bytes_free(&data);
	bytes_free(&text);
}

static void test_gzstream_bad_header(void **state)
{
	struct bytes data = make_text(1000, 13);
	struct bytes gz = gzip_bytes(&data, 6, false);
	struct bytes out = {NULL, 0};
	struct mv_err err = MV_ERR_INIT;

	(void)state;
	gz.p[2] = 7; /* compression method */
	assert_int_equal(decode_file(&gz, NULL, &out, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "compression method is not deflate"));
	assert_int_equal(out.n, 0);
	bytes_free(&gz);
	bytes_free(&data);
}

static void test_gzstream_trailing_bytes(void **state)
{
	struct bytes data = make_text(50000, 14);
	struct bytes gz = gzip_bytes(&data, 6, false);
	struct bytes padded = {NULL, 0}, junk = {NULL, 0};
	struct mv_err err = MV_ERR_INIT;
	struct gzstream *g = NULL;
	uint8_t zeros[10240] = {0};
	struct bytes out = {NULL, 0};
	char want[200];
	int fd;

	(void)state;
	/* Zero padding, as tape blocking leaves it: silently ignored. */
	bytes_append(&padded, gz.p, gz.n);
	bytes_append(&padded, zeros, sizeof(zeros));
	fd = file_fd(&padded);
	assert_int_equal(gzstream_open_opts(fd, "day1.tar.gz", &tiny, &g, &err),
			 0);
	assert_int_equal(drain_blocks(g, &out, &err), 0);
	assert_same(&out, &data);
	assert_null(gzstream_warning(g));
	assert_int_equal(gzstream_total_in(g), padded.n);
	gzstream_close(g);
	close(fd);
	bytes_free(&out);

	/* Other bytes: ignored with a warning, as gzip -dc does. */
	bytes_append(&junk, gz.p, gz.n);
	bytes_append(&junk, "\0\0garbage", 9);
	fd = file_fd(&junk);
	assert_int_equal(gzstream_open(fd, "day1.tar.gz", &g, &err), 0);
	assert_null(gzstream_warning(g));
	assert_int_equal(drain_blocks(g, &out, &err), 0);
	assert_same(&out, &data);
	snprintf(want, sizeof(want),
		 "'day1.tar.gz': 9 bytes of trailing garbage after the gzip "
		 "data at compressed byte %zu ignored",
		 gz.n);
	assert_non_null(gzstream_warning(g));
	assert_string_equal(gzstream_warning(g), want);
	gzstream_close(g);
	close(fd);
	bytes_free(&out);
	bytes_free(&junk);
	bytes_free(&padded);
	bytes_free(&gz);
	bytes_free(&data);
}

/* After the consumer stops early, finish still checks the trailer. */
static void test_gzstream_finish(void **state)
{
	struct bytes data = make_text(200000, 20);
	struct bytes gz = gzip_bytes(&data, 6, false);
	struct mv_err err = MV_ERR_INIT;
	struct gzstream *g = NULL;
	uint64_t skipped = 0;
	uint8_t buf[1000];
	size_t n;
	int fd;

	(void)state;
	fd = file_fd(&gz);
	assert_int_equal(gzstream_open_opts(fd, "x", &tiny, &g, &err), 0);
	assert_int_equal(gzstream_read(g, buf, sizeof(buf), &n, &err), 0);
	assert_int_equal(gzstream_finish(g, &skipped, &err), 0);
	assert_int_equal(skipped, data.n - sizeof(buf));
	assert_int_equal(gzstream_total_out(g), data.n);
	gzstream_close(g);
	close(fd);

	gz.p[gz.n - 5] ^= 1; /* CRC-32 */
	fd = file_fd(&gz);
	assert_int_equal(gzstream_open_opts(fd, "x", &tiny, &g, &err), 0);
	assert_int_equal(gzstream_read(g, buf, sizeof(buf), &n, &err), 0);
	assert_int_equal(gzstream_finish(g, NULL, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "CRC-32 or length mismatch"));
	gzstream_close(g);
	close(fd);
	bytes_free(&gz);
	bytes_free(&data);
}

static void test_gzstream_small_reads_match_large(void **state)
{
	struct bytes data = make_text(300000, 15);
	struct bytes gz = gzip_bytes(&data, 6, false);
	struct bytes small = {NULL, 0}, large = {NULL, 0};
	struct mv_err err = MV_ERR_INIT;
	struct gzstream *g = NULL;
	uint8_t *big = malloc(1 << 20);
	uint8_t c;
	size_t n;
	int fd;

	(void)state;
	assert_non_null(big);
	fd = file_fd(&gz);
	assert_int_equal(gzstream_open_opts(fd, "x", &tiny, &g, &err), 0);
	for (;;) {
		assert_int_equal(gzstream_read(g, &c, 1, &n, &err), 0);
		if (!n)
			break;
		bytes_append(&small, &c, 1);
	}
	/* The end is sticky. */
	assert_int_equal(gzstream_read(g, &c, 1, &n, &err), 0);
	assert_int_equal(n, 0);
	gzstream_close(g);
	close(fd);

	fd = file_fd(&gz);
	assert_int_equal(gzstream_open(fd, "x", &g, &err), 0);
	assert_int_equal(gzstream_read(g, big, 1 << 20, &n, &err), 0);
	/* A read is filled completely unless the stream ends. */
	assert_int_equal(n, data.n);
	bytes_append(&large, big, n);
	assert_int_equal(gzstream_read(g, big, 1 << 20, &n, &err), 0);
	assert_int_equal(n, 0);
	gzstream_close(g);
	close(fd);

	assert_same(&small, &data);
	assert_same(&large, &data);
	free(big);
	bytes_free(&small);
	bytes_free(&large);
	bytes_free(&gz);
	bytes_free(&data);
}

/* Reads and borrowed blocks can be mixed without losing a byte. */
static void test_gzstream_mixed_read_and_block(void **state)
{
	struct bytes data = make_text(100000, 16);
	struct bytes gz = gzip_bytes(&data, 6, false);
	struct bytes out = {NULL, 0};
	struct mv_err err = MV_ERR_INIT;
	struct gzstream *g = NULL;
	uint8_t buf[10];
	const void *p;
	size_t n;
	int fd = file_fd(&gz);

	(void)state;
	assert_int_equal(gzstream_open_opts(fd, "x", &tiny, &g, &err), 0);
	for (;;) {
		assert_int_equal(gzstream_read(g, buf, sizeof(buf), &n, &err),
				 0);
		bytes_append(&out, buf, n);
		assert_int_equal(gzstream_next_block(g, &p, &n, &err), 0);
		if (!n)
			break;
		bytes_append(&out, p, n);
	}
	assert_same(&out, &data);
	gzstream_close(g);
	close(fd);
	bytes_free(&out);
	bytes_free(&gz);
	bytes_free(&data);
}

struct feeder {
	int fd;		  /* write end, closed by the feeder when close_fd */
	const uint8_t *p; /* bytes to write */
	size_t n;	  /* how many */
	size_t chunk;	  /* bytes per write(2) */
	bool close_fd;	  /* close fd when done */
};

static void *feeder_main(void *arg)
{
	struct feeder *f = arg;
	size_t off = 0;

	while (off < f->n) {
		size_t n = f->n - off < f->chunk ? f->n - off : f->chunk;
		ssize_t r = write(f->fd, f->p + off, n);

		if (r <= 0)
			break;
		off += (size_t)r;
	}
	if (f->close_fd)
		close(f->fd);
	return NULL;
}

static void test_gzstream_pipe_input(void **state)
{
	struct bytes data = make_text(2 << 20, 17);
	struct bytes gz = gzip_bytes(&data, 6, false);
	struct bytes out = {NULL, 0};
	struct mv_err err = MV_ERR_INIT;
	struct gzstream *g = NULL;
	struct feeder f;
	pthread_t t;
	int fds[2];

	(void)state;
	alarm(60);
	assert_int_equal(pipe(fds), 0);
	f = (struct feeder){fds[1], gz.p, gz.n, 3001, true};
	assert_int_equal(pthread_create(&t, NULL, feeder_main, &f), 0);
	assert_int_equal(gzstream_open(fds[0], "volume=-", &g, &err), 0);
	assert_true(gzstream_is_gzip(g));
	assert_int_equal(drain_blocks(g, &out, &err), 0);
	assert_same(&out, &data);
	assert_int_equal(gzstream_total_in(g), gz.n);
	gzstream_close(g);
	pthread_join(t, NULL);
	close(fds[0]);

	/* Truncated on a pipe: the message names the label. */
	assert_int_equal(pipe(fds), 0);
	f = (struct feeder){fds[1], gz.p, gz.n / 3, 4096, true};
	assert_int_equal(pthread_create(&t, NULL, feeder_main, &f), 0);
	assert_int_equal(gzstream_open(fds[0], "volume=-", &g, &err), 0);
	bytes_free(&out);
	assert_int_equal(drain_blocks(g, &out, &err), -EPIPE);
	assert_non_null(strstr(err.msg, "cannot read 'volume=-': gzip stream "
					"truncated at compressed byte"));
	/* The error is sticky. */
	mv_err_clear(&err);
	assert_int_equal(drain_blocks(g, &out, &err), -EPIPE);
	gzstream_close(g);
	pthread_join(t, NULL);
	close(fds[0]);
	alarm(0);
	bytes_free(&out);
	bytes_free(&gz);
	bytes_free(&data);
}

/* Closing while the producer waits for room in a full ring. */
static void test_gzstream_close_with_full_ring(void **state)
{
	struct bytes data = make_text(3 << 20, 18);
	struct bytes gz = gzip_bytes(&data, 6, false);
	struct mv_err err = MV_ERR_INIT;
	struct gzstream *g = NULL;
	const void *p;
	size_t n;
	int fd = file_fd(&gz);

	(void)state;
	alarm(30);
	assert_int_equal(gzstream_open_opts(fd, "x", &tiny, &g, &err), 0);
	assert_int_equal(gzstream_next_block(g, &p, &n, &err), 0);
	assert_int_equal(n, 4096);
	assert_memory_equal(p, data.p, n);
	usleep(50000); /* let the producer fill the ring and wait */
	gzstream_close(g);

	/* And without reading anything. */
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(gzstream_open_opts(fd, "x", &tiny, &g, &err), 0);
	gzstream_close(g);
	alarm(0);
	close(fd);
	bytes_free(&gz);
	bytes_free(&data);
}

/* Closing while the producer is blocked in read(2) on a quiet pipe. */
static void test_gzstream_close_while_reading_pipe(void **state)
{
	struct bytes data = make_text(1 << 20, 19);
	struct bytes gz = gzip_bytes(&data, 6, false);
	struct mv_err err = MV_ERR_INIT;
	struct gzstream *g = NULL;
	const void *p;
	size_t n;
	int fds[2];

	(void)state;
	alarm(30);
	assert_int_equal(pipe(fds), 0);
	/* Half the stream; the write end stays open and silent. */
	assert_int_equal(write(fds[1], gz.p, 30000), 30000);
	assert_int_equal(
		gzstream_open_opts(fds[0], "volume=-", &tiny, &g, &err), 0);
	assert_int_equal(gzstream_next_block(g, &p, &n, &err), 0);
	assert_int_equal(n, 4096);
	assert_memory_equal(p, data.p, n);
	gzstream_close(g);
	close(fds[1]);
	close(fds[0]);

	/* Pass-through input on a quiet pipe, nothing taken yet. */
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], "plain tar", 9), 9);
	assert_int_equal(gzstream_open(fds[0], "volume=-", &g, &err), 0);
	assert_false(gzstream_is_gzip(g));
	usleep(20000);
	gzstream_close(g);
	alarm(0);
	close(fds[1]);
	close(fds[0]);
	bytes_free(&gz);
	bytes_free(&data);
}

struct la_source {
	struct gzstream *g;
	struct mv_err err;
};

static la_ssize_t la_read(struct archive *a, void *data, const void **buf)
{
	struct la_source *s = data;
	size_t n;

	if (gzstream_next_block(s->g, buf, &n, &s->err) < 0) {
		archive_set_error(a, EIO, "%s", s->err.msg);
		return -1;
	}
	return (la_ssize_t)n;
}

/* Read a tar archive made by tar(1) through gzstream and libarchive, as
 * ingest does; returns the number of entries and the content of "d/b". */
static int read_tar(const char *path, struct bytes *b_content, bool *gzip)
{
	struct la_source s = {NULL, MV_ERR_INIT};
	struct archive_entry *e;
	struct archive *a = archive_read_new();
	int fd = open(path, O_RDONLY);
	int entries = 0;
	char buf[4096];
	la_ssize_t n;

	assert_true(fd >= 0);
	assert_int_equal(gzstream_open(fd, path, &s.g, &s.err), 0);
	*gzip = gzstream_is_gzip(s.g);
	archive_read_support_filter_all(a);
	archive_read_support_format_all(a);
	assert_int_equal(archive_read_open(a, &s, NULL, la_read, NULL),
			 ARCHIVE_OK);
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname(e);
		size_t len = strlen(name);

		entries++;
		if (len >= 3 && !strcmp(name + len - 3, "d/b"))
			while ((n = archive_read_data(a, buf, sizeof(buf))) > 0)
				bytes_append(b_content, buf, (size_t)n);
	}
	assert_int_equal(archive_errno(a), 0);
	archive_read_free(a);
	assert_int_equal(gzstream_finish(s.g, NULL, &s.err), 0);
	gzstream_close(s.g);
	close(fd);
	return entries;
}

/* The read callback shape works with libarchive, for tar.gz through
 * ISA-L and for other compressions passed through to libarchive. */
static void test_gzstream_libarchive(void **state)
{
	static const char *const flags[] = {"-z", "", "-J", "--zstd"};
	static const char *const progs[] = {"gzip", "tar", "xz", "zstd"};
	struct bytes data = make_text(300000, 21);
	char dir[256], path[300], cmd[1000];
	size_t i;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/src", tmpdir);
	snprintf(path, sizeof(path), "%s/d", dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/d/a", dir);
	write_file(path, &data);
	snprintf(path, sizeof(path), "%s/d/b", dir);
	write_file(path, &data);
	for (i = 0; i < MV_ARRAY_SIZE(flags); i++) {
		struct bytes got = {NULL, 0};
		bool gzip = false;

		snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null",
			 progs[i]);
		if (system(cmd))
			continue;
		snprintf(path, sizeof(path), "%s/out.tar", tmpdir);
		snprintf(cmd, sizeof(cmd), "tar -C '%s' %s -cf '%s' .", dir,
			 flags[i], path);
		assert_int_equal(system(cmd), 0);
		/* ./, ./d/, ./d/a, ./d/b */
		assert_int_equal(read_tar(path, &got, &gzip), 4);
		assert_int_equal(gzip, !strcmp(flags[i], "-z"));
		assert_same(&got, &data);
		unlink(path);
		bytes_free(&got);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	bytes_free(&data);
}

static int setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return rmdir(tmpdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gzstream_round_trip),
		cmocka_unit_test(test_gzstream_levels_and_stored_blocks),
		cmocka_unit_test(test_gzstream_multi_member),
		cmocka_unit_test(test_gzstream_many_small_members),
		cmocka_unit_test(test_gzstream_passthrough),
		cmocka_unit_test(test_gzstream_empty_input),
		cmocka_unit_test(test_gzstream_truncated),
		cmocka_unit_test(test_gzstream_truncated_second_member),
		cmocka_unit_test(test_gzstream_corrupt_crc),
		cmocka_unit_test(test_gzstream_bad_header),
		cmocka_unit_test(test_gzstream_trailing_bytes),
		cmocka_unit_test(test_gzstream_finish),
		cmocka_unit_test(test_gzstream_small_reads_match_large),
		cmocka_unit_test(test_gzstream_mixed_read_and_block),
		cmocka_unit_test(test_gzstream_pipe_input),
		cmocka_unit_test(test_gzstream_close_with_full_ring),
		cmocka_unit_test(test_gzstream_close_while_reading_pipe),
		cmocka_unit_test(test_gzstream_libarchive),
	};

	return cmocka_run_group_tests_name("gzstream", tests, setup, teardown);
}
