/* lc: helpers shared by prune, rebuild-index and repair (lc_int.h). */
#include "lc_int.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "pack.h"
#include "util.h"

static const uint8_t zero_id[MV_ID_LEN];

bool lc_idset_has(const struct lc_idset *s, const uint8_t *id)
{
	size_t j;

	if (!s->size)
		return false;
	for (j = mv_le64(id) & (s->size - 1);
	     memcmp(s->slots[j], zero_id, MV_ID_LEN);
	     j = (j + 1) & (s->size - 1))
		if (!memcmp(s->slots[j], id, MV_ID_LEN))
			return true;
	return false;
}

static void place(struct lc_idset *s, const uint8_t *id)
{
	size_t j;

	for (j = mv_le64(id) & (s->size - 1);
	     memcmp(s->slots[j], zero_id, MV_ID_LEN);
	     j = (j + 1) & (s->size - 1))
		;
	memcpy(s->slots[j], id, MV_ID_LEN);
	s->n++;
}

int lc_idset_add(struct lc_idset *s, const uint8_t *id)
{
	if (!memcmp(id, zero_id, MV_ID_LEN))
		return 0;
	if ((s->n + 1) * 2 >= s->size) {
		struct lc_idset g = {NULL, s->size ? s->size * 2 : 1024, 0};
		size_t i;

		g.slots = calloc(g.size, MV_ID_LEN);
		if (!g.slots)
			return -ENOMEM;
		for (i = 0; i < s->size; i++)
			if (memcmp(s->slots[i], zero_id, MV_ID_LEN))
				place(&g, s->slots[i]);
		free(s->slots);
		*s = g;
	}
	if (lc_idset_has(s, id))
		return 0;
	place(s, id);
	return 1;
}

void lc_idset_free(struct lc_idset *s)
{
	free(s->slots);
	s->slots = NULL;
	s->size = s->n = 0;
}

/* The crash hook exists only in the test binary (mailvault-faults, built
 * with -DMV_FAULT_HOOKS); the installed mailvault has neither the code nor
 * the variable names, so no environment can make it kill itself. */
#ifdef MV_FAULT_HOOKS
static unsigned long steps;

void lc_step(const char *what)
{
	const char *at = getenv("MAILVAULT_TEST_CRASH_AT");

	steps++;
	if (at && strtoul(at, NULL, 10) == steps) {
		fprintf(stderr, "test hook: killed at step %lu (%s)\n", steps,
			what);
		fflush(stderr);
		raise(SIGKILL);
	}
}

void lc_steps_report(void)
{
	const char *s = getenv("MAILVAULT_TEST_STEPS");

	if (s && *s == '1')
		fprintf(stderr, "test hook: %lu steps\n", steps);
}
#else
void lc_step(const char *what)
{
	(void)what;
}

void lc_steps_report(void)
{
}
#endif

void lc_say(lifecycle_report_fn fn, void *arg, const char *kind,
	    const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fn(kind, msg, arg);
}

int lc_tombstone_encode(const uint8_t (*ids)[MV_ID_LEN], size_t n,
			struct mv_buf *out)
{
	size_t i;

	mv_buf_reset(out);
	if (mv_buf_append(out, TOMBSTONE_MAGIC, 8) ||
	    mv_buf_put_le32(out, (uint32_t)n) || mv_buf_put_le32(out, 0))
		return -ENOMEM;
	for (i = 0; i < n; i++)
		if (mv_buf_append(out, ids[i], MV_ID_LEN))
			return -ENOMEM;
	return 0;
}

int lc_tombstone_decode(const void *p, size_t len, struct lc_idset *set)
{
	const uint8_t *b = p;
	uint32_t n, i;

	if (len < TOMBSTONE_HDR_LEN || memcmp(b, TOMBSTONE_MAGIC, 8))
		return -EBADMSG;
	n = mv_le32(b + 8);
	if ((len - TOMBSTONE_HDR_LEN) / MV_ID_LEN != n ||
	    (len - TOMBSTONE_HDR_LEN) % MV_ID_LEN)
		return -EBADMSG;
	for (i = 0; i < n; i++) {
		int rc = lc_idset_add(set, b + TOMBSTONE_HDR_LEN +
						   (size_t)i * MV_ID_LEN);
		if (rc < 0)
			return rc;
	}
	return 0;
}

bool lc_is_pack_name(const char *name)
{
	return strlen(name) == PACK_NAME_LEN &&
	       strspn(name, "0123456789abcdef") == PACK_NAME_LEN;
}

struct list_ctx {
	struct repo *r;
	lc_file_fn fn;
	void *arg;
	char dir[64];
	struct mv_err *err;
	int rc;
};

static int list_file(const char *name, bool is_dir, uint64_t size, void *arg)
{
	struct list_ctx *c = arg;

	if (is_dir)
		return 0;
	c->rc = c->fn(c->dir, name, size, c->arg);
	return c->rc;
}

static int list_dir(const char *name, bool is_dir, uint64_t size, void *arg)
{
	struct list_ctx *c = arg;
	struct backend *be = repo_backend(c->r);
	int rc;

	(void)size;
	if (!is_dir)
		return 0;
	snprintf(c->dir, sizeof(c->dir), "packs/%s", name);
	rc = be->ops->list(be, c->dir, list_file, c, c->err);
	return c->rc ? c->rc : rc;
}

int lc_list_pack_files(struct repo *r, lc_file_fn fn, void *arg,
		       struct mv_err *err)
{
	struct backend *be = repo_backend(r);
	struct list_ctx c = {r, fn, arg, "", err, 0};
	int rc;

	rc = be->ops->list(be, "packs", list_dir, &c, err);
	if (c.rc)
		return c.rc;
	return rc;
}
