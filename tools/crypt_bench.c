/*
 * crypt_bench: the speed of crypt_seal and crypt_open, for the figures of
 * docs/FORMAT-2.md step 1 (>= 600 MB/s sealing 64 KiB records, <= 10 us
 * per 2 KiB metadata node).
 *
 *   crypt_bench [-s SECONDS] [-n] [-r]
 *
 *   -s SECONDS  time spent on each measurement (default 1)
 *   -n          the none suite (XXH3-128) instead of XChaCha20-Poly1305
 *   -r          whole format 2 records (seal_record, seal_record_open:
 *               header, Padme padding, checks) instead of crypt_seal and
 *               crypt_open of the bare bytes
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

#include "seal.h"
#include "util.h"

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

/* One seal (framed: seal_record, with the format 2 header and Padme
 * padding) of plain into *sealed; 0 or -1. */
static int seal_one(const struct crypt_key *k, int framed, const uint8_t *ad,
		    const uint8_t *plain, size_t len, struct mv_buf *sealed)
{
	struct mv_err err = MV_ERR_INIT;

	mv_buf_reset(sealed);
	if (framed)
		return seal_record(k, 1, 0, ad + 6, 1, 0, plain, len, sealed,
				   &err)
			       ? -1
			       : 0;
	if (mv_buf_reserve(sealed, len + CRYPT_OVERHEAD) ||
	    crypt_seal(k, ad, SEAL_AAD_LEN, plain, len, sealed->data))
		return -1;
	sealed->len = len + CRYPT_OVERHEAD;
	return 0;
}

static int open_one(const struct crypt_key *k, int framed, const uint8_t *ad,
		    const struct mv_buf *sealed, struct mv_buf *back)
{
	struct mv_err err = MV_ERR_INIT;
	uint8_t comp;
	uint32_t dict;

	if (framed)
		return seal_record_open(k, 1, 0, ad + 6, sealed->data,
					sealed->len, &comp, &dict, back, &err)
			       ? -1
			       : 0;
	if (mv_buf_reserve(back, sealed->len) ||
	    crypt_open(k, ad, SEAL_AAD_LEN, sealed->data, sealed->len,
		       back->data))
		return -1;
	back->len = sealed->len - CRYPT_OVERHEAD;
	return 0;
}

static int run(const struct crypt_key *k, int framed, size_t len, double secs,
	       struct result *r)
{
	struct mv_buf sealed = MV_BUF_INIT, back = MV_BUF_INIT;
	uint8_t *plain = malloc(len), ad[SEAL_AAD_LEN];
	unsigned long n, i, batch = 16;
	double t0, c0, t;
	int rc = 1;

	if (!plain)
		goto out;
	crypt_random(plain, len);
	/* the record AAD: version, type 1, epoch 0, a random id */
	crypt_random(ad, sizeof(ad));
	ad[0] = SEAL_VERSION;
	ad[1] = 1;
	memset(ad + 2, 0, 4);
	/* seal: batches of records until secs have passed */
	n = 0;
	t0 = now(CLOCK_MONOTONIC);
	c0 = now(CLOCK_PROCESS_CPUTIME_ID);
	do {
		for (i = 0; i < batch; i++)
			if (seal_one(k, framed, ad, plain, len, &sealed))
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
			if (open_one(k, framed, ad, &sealed, &back))
				goto out;
		n += batch;
		t = now(CLOCK_MONOTONIC) - t0;
	} while (t < secs);
	r->open_wall_s = t / (double)n;
	r->open_s = (now(CLOCK_PROCESS_CPUTIME_ID) - c0) / (double)n;
	if (back.len != len || memcmp(plain, back.data, len))
		goto out;
	rc = 0;
out:
	free(plain);
	mv_buf_release(&sealed);
	mv_buf_release(&back);
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
	int c, rc = 0, framed = 0;

	while ((c = getopt(argc, argv, "s:nr")) != -1) {
		switch (c) {
		case 's':
			secs = atof(optarg);
			break;
		case 'n':
			suite = CRYPT_NONE;
			break;
		case 'r':
			framed = 1;
			break;
		default:
			fprintf(stderr,
				"usage: crypt_bench [-s SECONDS] [-n] [-r]\n");
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
	       framed ? (suite == CRYPT_NONE ? "none rec" : "xch rec")
		      : (suite == CRYPT_NONE ? "none" : "xchacha"),
	       "seal MB/s", "open MB/s", "seal us", "open us", "wall seal",
	       "wall open");
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct result r;

		if (run(k, framed, sizes[i], secs, &r)) {
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
