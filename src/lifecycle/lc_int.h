/*
 * lc_int: helpers shared by the lifecycle files (prune, rebuild, repair).
 */
#ifndef MV_LC_INT_H
#define MV_LC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lifecycle.h"
#include "repo.h"

/* A set of 32-byte ids, open addressing; an all-zero id marks a free
 * slot (keyed ids are never zero).  32 bytes per slot at most half full:
 * about 100 bytes per live chunk. */
struct lc_idset {
	uint8_t (*slots)[MV_ID_LEN];
	size_t size, n;
};

bool lc_idset_has(const struct lc_idset *s, const uint8_t *id);
/* 1 when added, 0 when present already, -ENOMEM. */
int lc_idset_add(struct lc_idset *s, const uint8_t *id);
void lc_idset_free(struct lc_idset *s);

/* Test hook, compiled in only with -DMV_FAULT_HOOKS (the test binary
 * mailvault-faults, docs/TESTING.md): with MAILVAULT_TEST_CRASH_AT=N in
 * the environment the Nth call kills the process with SIGKILL; with
 * MAILVAULT_TEST_STEPS=1 the number of steps taken is printed to stderr at
 * exit.  In the installed binary both are empty functions. */
void lc_step(const char *what);
void lc_steps_report(void);

void lc_say(lifecycle_report_fn fn, void *arg, const char *kind,
	    const char *fmt, ...) MV_PRINTF(4, 5);

/* Encode a tombstone naming ids (n of them) into out. */
int lc_tombstone_encode(const uint8_t (*ids)[MV_ID_LEN], size_t n,
			struct mv_buf *out);
/* Add the ids a tombstone payload names to set; -EBADMSG when it is not
 * one. */
int lc_tombstone_decode(const void *p, size_t len, struct lc_idset *set);

/* True for a pack file name: PACK_NAME_LEN lower-case hex digits. */
bool lc_is_pack_name(const char *name);

/* Every file under packs/XX/: fn(dir, name, size). */
typedef int (*lc_file_fn)(const char *dir, const char *name, uint64_t size,
			  void *arg);
int lc_list_pack_files(struct repo *r, lc_file_fn fn, void *arg,
		       struct mv_err *err);

#endif
