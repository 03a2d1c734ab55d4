/*
 * inflate_bench: decompress an archive through gzstream and report the
 * rate, to compare with `gzip -dc FILE >/dev/null` and `igzip -dc`.
 *
 *   inflate_bench [-b BLOCK] [-n NBLOCKS] [-i INSIZE] [-r READSIZE] [-t]
 *                 [-c] [-a] FILE|-
 *
 *   -b, -n, -i  ring block size, number of blocks, read(2) size (bytes,
 *               suffix k or m allowed)
 *   -r N        copy out with gzstream_read(N bytes) instead of borrowing
 *               blocks with gzstream_next_block
 *   -t          touch every decompressed byte (sum of 64-bit words), as a
 *               consumer that parses the data would
 *   -c          write the decompressed bytes to stdout (to check them with
 *               cmp against gzip -dc); the figures then go to stderr
 *   -a          parse the stream as an archive with libarchive and read
 *               every entry's data (borrowed blocks), as ingest does; the
 *               line then also gives the number of entries
 *
 * Prints one line: input and output sizes, seconds, output MB/s (10^6
 * bytes per second) and input MB/s.  Exit status 1 on a read error, with
 * gzstream's message.
 */
#include "gzstream.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static size_t parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (*end == 'k' || *end == 'K')
		v <<= 10;
	else if (*end == 'm' || *end == 'M')
		v <<= 20;
	return (size_t)v;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t touch(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t sum = 0, w;
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&w, b + i, 8);
		sum += w;
	}
	for (; i < n; i++)
		sum += b[i];
	return sum;
}

static int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t r = write(fd, b, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

struct la_src {
	struct gzstream *g;
	struct mv_err *err;
};

static la_ssize_t la_read(struct archive *a, void *data, const void **buf)
{
	struct la_src *s = data;
	size_t n;

	if (gzstream_next_block(s->g, buf, &n, s->err) < 0) {
		archive_set_error(a, EIO, "%s", s->err->msg);
		return -1;
	}
	return (la_ssize_t)n;
}

/* Read every entry through libarchive; adds the data bytes to *out. */
static int parse_archive(struct gzstream *g, bool do_touch, uint64_t *out,
			 uint64_t *entries, uint64_t *sum, struct mv_err *err)
{
	struct la_src s = {g, err};
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	int rc = 0, r;

	if (!a)
		return mv_err_set(err, -ENOMEM, "out of memory");
	archive_read_support_filter_all(a);
	archive_read_support_format_all(a);
	r = archive_read_open(a, &s, NULL, la_read, NULL);
	while (r == ARCHIVE_OK &&
	       (r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const void *p;
		size_t n;
		la_int64_t off;

		(*entries)++;
		while ((r = archive_read_data_block(a, &p, &n, &off)) ==
		       ARCHIVE_OK) {
			*out += n;
			if (do_touch)
				*sum += touch(p, n);
		}
		if (r == ARCHIVE_EOF)
			r = ARCHIVE_OK;
	}
	if (r != ARCHIVE_EOF)
		rc = mv_err_set(err, -EIO, "cannot read archive: %s",
				archive_error_string(a));
	archive_read_free(a);
	if (!rc)
		rc = gzstream_finish(g, NULL, err);
	return rc;
}

static int usage(void)
{
	fprintf(stderr, "usage: inflate_bench [-b BLOCK] [-n NBLOCKS] "
			"[-i INSIZE] [-r READSIZE] [-t] [-c] [-a] FILE|-\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct gzstream_opts opts = {0};
	struct mv_err err = MV_ERR_INIT;
	struct gzstream *g = NULL;
	size_t read_size = 0;
	bool do_touch = false, do_cat = false, do_archive = false;
	uint8_t *buf = NULL;
	uint64_t out = 0, sum = 0, entries = 0;
	const char *path;
	FILE *report;
	double t0, t;
	int fd, opt, rc;

	while ((opt = getopt(argc, argv, "b:n:i:r:tca")) != -1) {
		switch (opt) {
		case 'b':
			opts.block_size = parse_size(optarg);
			break;
		case 'n':
			opts.nblocks = (unsigned)parse_size(optarg);
			break;
		case 'i':
			opts.in_size = parse_size(optarg);
			break;
		case 'r':
			read_size = parse_size(optarg);
			break;
		case 't':
			do_touch = true;
			break;
		case 'c':
			do_cat = true;
			break;
		case 'a':
			do_archive = true;
			break;
		default:
			return usage();
		}
	}
	if (optind + 1 != argc)
		return usage();
	path = argv[optind];
	fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : 0;
	if (fd < 0) {
		fprintf(stderr, "inflate_bench: cannot open '%s': %s\n", path,
			strerror(errno));
		return 1;
	}
	report = do_cat ? stderr : stdout;
	if (read_size) {
		buf = malloc(read_size);
		if (!buf) {
			fprintf(stderr, "inflate_bench: out of memory\n");
			return 1;
		}
	}

	t0 = now_s();
	rc = gzstream_open_opts(fd, path, &opts, &g, &err);
	if (!rc && do_archive)
		rc = parse_archive(g, do_touch, &out, &entries, &sum, &err);
	while (!rc && !do_archive) {
		const void *p = buf;
		size_t n;

		if (read_size)
			rc = gzstream_read(g, buf, read_size, &n, &err);
		else
			rc = gzstream_next_block(g, &p, &n, &err);
		if (rc || !n)
			break;
		out += n;
		if (do_touch)
			sum += touch(p, n);
		if (do_cat) {
			rc = write_all(1, p, n);
			if (rc)
				mv_err_set(&err, rc, "cannot write output: %s",
					   strerror(-rc));
		}
	}
	t = now_s() - t0;
	if (rc) {
		fprintf(stderr, "inflate_bench: %s\n", mv_err_msg(&err));
	} else {
		uint64_t in = gzstream_total_in(g);

		if (gzstream_warning(g))
			fprintf(stderr, "inflate_bench: warning: %s\n",
				gzstream_warning(g));
		fprintf(report,
			"%s: %s, %" PRIu64 " bytes in, %" PRIu64
			" bytes out, %.3f s, %.1f MB/s out, %.1f MB/s in",
			path, gzstream_is_gzip(g) ? "gzip" : "pass-through", in,
			out, t, (double)out / t / 1e6, (double)in / t / 1e6);
		if (do_archive)
			fprintf(report, ", %" PRIu64 " entries", entries);
		/* The sum keeps the touching loop from being optimized out. */
		fprintf(report, "%s\n", do_touch && sum == 42 ? " " : "");
	}
	gzstream_close(g);
	free(buf);
	if (fd > 0)
		close(fd);
	return rc ? 1 : 0;
}
