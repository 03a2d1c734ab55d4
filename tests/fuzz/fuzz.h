/*
 * Helpers shared by the libFuzzer harnesses: a NUL-terminated copy of the
 * input, a check that aborts (so libFuzzer saves the input), and a
 * read-only in-memory backend serving one file.
 */
#ifndef MV_FUZZ_H
#define MV_FUZZ_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
			abort();                                               \
		}                                                              \
	} while (0)

/* The input as a C string (it may hold NULs: the string ends at the
 * first). */
static inline char *fuzz_str(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	FUZZ_CHECK(s);
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* One file, its bytes borrowed from the input; reads may be cut short
 * (every `cut` bytes) the way a network backend returns them. */
struct fuzz_backend {
	struct backend be;
	const uint8_t *data;
	size_t size;
	size_t cut;
};

static inline int fuzz_be_read_at(struct backend *be, const char *path,
				  uint64_t off, void *buf, size_t len,
				  size_t *out_len, struct mv_err *err)
{
	struct fuzz_backend *f = (struct fuzz_backend *)be;
	size_t n;

	(void)path;
	(void)err;
	*out_len = 0;
	if (off >= f->size)
		return 0;
	n = f->size - (size_t)off;
	if (n > len)
		n = len;
	if (f->cut && n > f->cut)
		n = f->cut;
	memcpy(buf, f->data + off, n);
	*out_len = n;
	return 0;
}

static inline int fuzz_be_stat(struct backend *be, const char *path,
			       uint64_t *out_size, int64_t *out_mtime_ns,
			       struct mv_err *err)
{
	struct fuzz_backend *f = (struct fuzz_backend *)be;

	(void)path;
	(void)err;
	if (out_size)
		*out_size = f->size;
	if (out_mtime_ns)
		*out_mtime_ns = 0;
	return 0;
}

static const struct backend_ops fuzz_be_ops = {
	.scheme = "fuzz",
	.read_at = fuzz_be_read_at,
	.stat = fuzz_be_stat,
};

#endif
