/*
 * chunk_bakeoff: measure chunker parameters on real data.  For each
 * parameter set it cuts OLD and NEW versions of the input (two directory
 * trees, e.g. generator day1 and day2, plus a synthetic database file with
 * scattered 16 KiB page changes) and prints the number of chunks, the
 * bytes of NEW not found in OLD (what a second backup stores) and the
 * index rows.  Used for docs/CHUNKING.md.
 *
 * usage: chunk_bakeoff OLD_DIR NEW_DIR
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunker.h"
#include "hash.h"
#include "util.h"

struct set {
	uint64_t *h;
	size_t size, n;
};

static int set_add(struct set *s, uint64_t v)
{
	size_t j;

	if ((s->n + 1) * 2 > s->size) {
		struct set g = {NULL, s->size ? s->size * 2 : 4096, 0};
		size_t i;

		g.h = calloc(g.size, sizeof(*g.h));
		if (!g.h)
			return -ENOMEM;
		for (i = 0; i < s->size; i++)
			if (s->h[i])
				set_add(&g, s->h[i]);
		free(s->h);
		*s = g;
	}
	v |= 1;
	for (j = v & (s->size - 1); s->h[j]; j = (j + 1) & (s->size - 1))
		if (s->h[j] == v)
			return 0;
	s->h[j] = v;
	s->n++;
	return 1;
}

static int set_has(const struct set *s, uint64_t v)
{
	size_t j;

	v |= 1;
	if (!s->size)
		return 0;
	for (j = v & (s->size - 1); s->h[j]; j = (j + 1) & (s->size - 1))
		if (s->h[j] == v)
			return 1;
	return 0;
}

struct run {
	struct chunker ch;
	struct chunker_params p;
	struct set *seen; /* chunks of OLD */
	int phase;	  /* 0: OLD, 1: NEW */
	uint64_t chunks, new_bytes, bytes;
};

static void cut(struct run *r, const uint8_t *p, size_t n)
{
	size_t off = 0;

	if (n <= r->p.small_file) {
		uint64_t h = hash_xxh3(p, n);

		r->chunks++;
		r->bytes += n;
		if (r->phase == 0)
			set_add(r->seen, h);
		else if (!set_has(r->seen, h))
			r->new_bytes += n;
		return;
	}
	while (off < n) {
		size_t c;
		uint64_t h;

		chunker_reset(&r->ch);
		c = chunker_scan(&r->ch, p + off, n - off, true);
		h = hash_xxh3(p + off, c);
		r->chunks++;
		r->bytes += c;
		if (r->phase == 0)
			set_add(r->seen, h);
		else if (!set_has(r->seen, h))
			r->new_bytes += c;
		off += c;
	}
}

static void walk(struct run *r, const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[4096];
		struct stat st;

		if (de->d_name[0] == '.' &&
		    (!de->d_name[1] ||
		     (de->d_name[1] == '.' && !de->d_name[2])))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &st))
			continue;
		if (S_ISDIR(st.st_mode)) {
			walk(r, path);
		} else if (S_ISREG(st.st_mode) && st.st_size > 0) {
			char *buf = NULL;
			size_t n = 0;

			if (!mv_read_file(path, 1u << 30, &buf, &n, NULL)) {
				cut(r, (uint8_t *)buf, n);
				free(buf);
			}
		}
	}
	closedir(d);
}

/* A 64 MiB "database": 16 KiB pages; NEW rewrites 0.5% of the pages. */
static void db_pair(uint8_t **old, uint8_t **nw, size_t *n)
{
	size_t size = 64u << 20, page = 16384, i;
	uint64_t x = 88172645463325252ull;

	*old = malloc(size);
	*nw = malloc(size);
	for (i = 0; i < size; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		/* compressible-ish: low entropy in half the bytes */
		memcpy(*old + i, &x, 4);
		memset(*old + i + 4, (int)(i / page) & 0xff, 4);
	}
	memcpy(*nw, *old, size);
	for (i = 0; i < size / page / 200; i++) {
		size_t pg;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		pg = x % (size / page);
		memset(*nw + pg * page + 100, (int)(x >> 8), 200);
	}
	*n = size;
}

int main(int argc, char **argv)
{
	static const uint32_t avgs[] = {16384,	32768,	65536,
					131072, 262144, 1048576};
	uint8_t key[32] = {1, 2, 3};
	uint8_t *dbo, *dbn;
	size_t dbsize, i;

	if (argc != 3) {
		fprintf(stderr, "usage: chunk_bakeoff OLD_DIR NEW_DIR\n");
		return 2;
	}
	db_pair(&dbo, &dbn, &dbsize);
	printf("%-22s %10s %12s %12s %12s %10s\n", "min/avg/max (KiB)",
	       "chunks", "mail new", "db new", "db chunks", "avg size");
	for (i = 0; i < MV_ARRAY_SIZE(avgs); i++) {
		struct set mail = {NULL, 0, 0}, db = {NULL, 0, 0};
		struct run a, b;

		memset(&a, 0, sizeof(a));
		a.p.avg_size = avgs[i];
		a.p.min_size = avgs[i] / 4;
		a.p.max_size = avgs[i] * 4;
		a.p.small_file = a.p.max_size;
		if (chunker_init(&a.ch, &a.p, key, sizeof(key), NULL))
			return 1;
		b = a;
		a.seen = &mail;
		walk(&a, argv[1]);
		a.phase = 1;
		a.new_bytes = 0;
		a.chunks = 0;
		a.bytes = 0;
		walk(&a, argv[2]);
		b.seen = &db;
		cut(&b, dbo, dbsize);
		b.phase = 1;
		b.new_bytes = 0;
		b.chunks = 0;
		b.bytes = 0;
		cut(&b, dbn, dbsize);
		printf("%6u/%6u/%6u    %10llu %10.2f M %10.2f M %12llu %8.1f "
		       "K\n",
		       a.p.min_size >> 10, a.p.avg_size >> 10,
		       a.p.max_size >> 10, (unsigned long long)a.chunks,
		       (double)a.new_bytes / 1048576,
		       (double)b.new_bytes / 1048576,
		       (unsigned long long)b.chunks,
		       (double)b.bytes / (double)b.chunks / 1024);
		free(mail.h);
		free(db.h);
	}
	free(dbo);
	free(dbn);
	return 0;
}
