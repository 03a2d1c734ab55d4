/*
 * chunker: FastCDC (Xia et al., USENIX ATC'16) with normalized chunking.
 * Workload: every byte of every large file passes through the inner loop,
 * so it is one shift, one add and one mask test per byte.  The masks test
 * the fingerprint's high bits, which depend on the last 64 bytes.
 */
#include "chunker.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "hash.h"

static int log2u(uint32_t v)
{
	int n = 0;

	while (v > 1) {
		v >>= 1;
		n++;
	}
	return n;
}

static uint64_t top_mask(int bits)
{
	if (bits <= 0)
		return 0;
	if (bits >= 64)
		return ~(uint64_t)0;
	return ~(uint64_t)0 << (64 - bits);
}

int chunker_params_check(const struct chunker_params *p, struct mv_err *err)
{
	if (p->avg_size < 256 || (p->avg_size & (p->avg_size - 1)))
		return mv_err_set(err, -EINVAL,
				  "chunker: average size %u is "
				  "not a power of two >= 256",
				  p->avg_size);
	if (p->min_size < 64 || p->min_size > p->avg_size ||
	    p->max_size < p->avg_size || p->max_size > (64u << 20))
		return mv_err_set(err, -EINVAL,
				  "chunker: sizes min %u avg %u "
				  "max %u are not ordered or too large",
				  p->min_size, p->avg_size, p->max_size);
	if (p->small_file > (64u << 20))
		return mv_err_set(err, -EINVAL,
				  "chunker: small-file limit %u "
				  "too large",
				  p->small_file);
	return 0;
}

int chunker_init(struct chunker *c, const struct chunker_params *p,
		 const void *key, size_t key_len, struct mv_err *err)
{
	uint8_t block[HASH_ID_LEN];
	char label[32];
	int rc, i, bits;

	rc = chunker_params_check(p, err);
	if (rc)
		return rc;
	memset(c, 0, sizeof(*c));
	c->p = *p;
	/* gear[i] = first 8 bytes of HMAC(key, "gear" i): keyed, fixed for
	 * the repository, so chunk boundaries are reproducible. */
	for (i = 0; i < 256; i++) {
		int n = snprintf(label, sizeof(label), "mailvault-gear-%d", i);

		hash_hmac(key, key_len, label, (size_t)n, block);
		memcpy(&c->gear[i], block, 8);
	}
	bits = log2u(p->avg_size);
	c->mask_small = top_mask(bits + 2);
	c->mask_large = top_mask(bits - 2);
	return 0;
}

void chunker_reset(struct chunker *c)
{
	c->fp = 0;
	c->pos = 0;
}

size_t chunker_scan(struct chunker *c, const uint8_t *buf, size_t len,
		    bool final)
{
	size_t i = c->pos, normal = c->p.avg_size, limit = len;
	uint64_t fp = c->fp;

	if (limit > c->p.max_size)
		limit = c->p.max_size;
	if (i < c->p.min_size)
		i = c->p.min_size;
	for (; i < limit && i < normal; i++) {
		fp = (fp << 1) + c->gear[buf[i]];
		if (!(fp & c->mask_small))
			return i + 1;
	}
	for (; i < limit; i++) {
		fp = (fp << 1) + c->gear[buf[i]];
		if (!(fp & c->mask_large))
			return i + 1;
	}
	c->fp = fp;
	c->pos = i;
	if (len >= c->p.max_size)
		return c->p.max_size;
	if (final)
		return len;
	return 0;
}
