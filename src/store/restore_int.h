/*
 * restore_int.h: what restore.c shares with restore_tar.c - the content
 * walk, the name check and the map of hard-link groups already written.
 */
#ifndef MV_RESTORE_INT_H
#define MV_RESTORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mv_err.h"
#include "repo.h"
#include "tree.h"

/* Zeros for holes written out as data. */
extern const uint8_t restore_zeros[65536];

/* Called with each piece of a file's content and its file offset. */
typedef int (*restore_put_fn)(const uint8_t *p, size_t n, uint64_t off,
			      void *arg);

/* Walk the content of e in order (a mail view entry: its decoded
 * message), calling put for each piece; stops at put's first error. */
int restore_each_content(struct repo *r, const struct tree_entry *e,
			 restore_put_fn put, void *arg, struct mv_err *err);

/* False for names restore and export refuse: empty, ".", ".." or with
 * a '/'. */
bool restore_name_safe(const struct tree_entry *e);

/* Xattrs mailvault keeps for itself (the mail view's key ids): never
 * restored or exported. */
bool restore_xattr_internal(const char *name);

/* The first path written for each hard-link group: relative to the
 * restore root (restore.c walks it from the root's descriptor), or the
 * member name (restore_tar.c). */
struct restore_link {
	uint64_t group;
	char *path;
};

struct restore_links {
	struct restore_link *v;
	size_t n, cap;
};

const char *restore_links_find(const struct restore_links *l, uint64_t group);
/* On out of memory the group is not remembered: its next member is then
 * written as a copy, never wrongly linked. */
void restore_links_add(struct restore_links *l, uint64_t group,
		       const char *path);
void restore_links_free(struct restore_links *l);

#endif
