/*
 * crypt_bench: the speed of crypt_seal and crypt_open, for the figures of
 * docs/FORMAT-2.md step 1 (>= 600 MB/s sealing 64 KiB records, <= 10 us
 * per 2 KiB metadata node).
 *
 *   crypt_bench [-s SECONDS] [-n]
 *
 *   -s SECONDS  time spent on each measurement (default 1)
 *   -n          the none suite (XXH3-128) instead of XChaCha20-Poly1305
 *
 * Prints one line per record size: MB/s (10^6 bytes per second) of seal
 * and of open, and microseconds per record, from the process's CPU time
 * (so other work on a shared machine does not count), then the same
 * rates by wall-clock time.  Every opened record is compared with what
 * was sealed, so a fast wrong answer exits 1.
 */
#include "crypt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct result {
	double seal_s, open_s;		 /* CPU seconds per record */
	double seal_wall_s, open_wall_s; /* wall-clock seconds per record */
};

static int run(const struct crypt_key *k, size_t len, double secs,
	       struct result *r)
{
	uint8_t *plain = malloc(len), *sealed = malloc(len + CRYPT_OVERHEAD);
	uint8_t *back = malloc(len);
	uint8_t ad[1 + 1 + 4 + 32];
	unsigned long n, i, batch = 16;
	double t0, c0, t;
	int rc = 1;

	if (!plain || !sealed || !back)
		goto out;
	crypt_random(plain, len);
	crypt_random(ad, sizeof(ad));
	/* seal: batches of records until secs have passed */
	n = 0;
	t0 = now(CLOCK_MONOTONIC);
	c0 = now(CLOCK_PROCESS_CPUTIME_ID);
	do {
		for (i = 0; i < batch; i++)
			if (crypt_seal(k, ad, sizeof(ad), plain, len, sealed))
				goto out;
		n += batch;
		t = now(CLOCK_MONOTONIC) - t0;
	} while (t < secs);
	r->seal_wall_s = t / (double)n;
	r->seal_s = (now(CLOCK_PROCESS_CPUTIME_ID) - c0) / (double)n;
	n = 0;
	t0 = now(CLOCK_MONOTONIC);
	c0 = now(CLOCK_PROCESS_CPUTIME_ID);
	do {
		for (i = 0; i < batch; i++)
			if (crypt_open(k, ad, sizeof(ad), sealed,
				       len + CRYPT_OVERHEAD, back))
				goto out;
		n += batch;
		t = now(CLOCK_MONOTONIC) - t0;
	} while (t < secs);
	r->open_wall_s = t / (double)n;
	r->open_s = (now(CLOCK_PROCESS_CPUTIME_ID) - c0) / (double)n;
	if (memcmp(plain, back, len))
		goto out;
	rc = 0;
out:
	free(plain);
	free(sealed);
	free(back);
	return rc;
}

int main(int argc, char **argv)
{
	static const size_t sizes[] = {2048, 4096, 65536, 1u << 20};
	enum crypt_suite suite = CRYPT_XCHACHA20;
	struct crypt_key *k = NULL;
	struct mv_err err = MV_ERR_INIT;
	uint8_t key[CRYPT_KEY_LEN];
	double secs = 1.0;
	size_t i;
	int c, rc = 0;

	while ((c = getopt(argc, argv, "s:n")) != -1) {
		switch (c) {
		case 's':
			secs = atof(optarg);
			break;
		case 'n':
			suite = CRYPT_NONE;
			break;
		default:
			fprintf(stderr,
				"usage: crypt_bench [-s SECONDS] [-n]\n");
			return 2;
		}
	}
	if (crypt_init(&err)) {
		fprintf(stderr, "crypt_bench: %s\n", mv_err_msg(&err));
		return 1;
	}
	crypt_random(key, sizeof(key));
	if (crypt_key_new(suite, key, &k, &err)) {
		fprintf(stderr, "crypt_bench: %s\n", mv_err_msg(&err));
		return 1;
	}
	crypt_wipe(key, sizeof(key));
	printf("%-8s %10s %10s %10s %10s %10s %10s\n",
	       suite == CRYPT_NONE ? "none" : "xchacha", "seal MB/s",
	       "open MB/s", "seal us", "open us", "wall seal", "wall open");
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct result r;

		if (run(k, sizes[i], secs, &r)) {
			fprintf(stderr,
				"crypt_bench: %zu-byte record: seal or open "
				"failed, or opened to other bytes\n",
				sizes[i]);
			rc = 1;
			break;
		}
		printf("%-8zu %10.0f %10.0f %10.2f %10.2f %10.0f %10.0f\n",
		       sizes[i], (double)sizes[i] / r.seal_s / 1e6,
		       (double)sizes[i] / r.open_s / 1e6, r.seal_s * 1e6,
		       r.open_s * 1e6, (double)sizes[i] / r.seal_wall_s / 1e6,
		       (double)sizes[i] / r.open_wall_s / 1e6);
	}
	crypt_key_free(k);
	return rc;
}
