/*
 * tree_int: the parts of tree.c's entry codec that ptree.c shares, so a
 * ptree leaf holds entries exactly as format 1 encodes them.  Private to
 * src/store.
 */
#ifndef MV_TREE_INT_H
#define MV_TREE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "tree.h"
#include "util.h"

#define TREE_MAX_DEPTH 1024
/* largest directory a reader accepts (all its encoded bytes) */
#define TREE_MAX_BYTES (256u << 20)
/* smallest encoded entry: eleven one-byte fields (empty name, user and
 * group; zero mode, ids, times, size and flags) */
#define TREE_MIN_ENTRY 11

/* Append one entry in format 1's encoding.  0 or -ENOMEM. */
int tree_entry_encode(struct mv_buf *b, const struct tree_entry *e);

/* An empty tree with room for n zeroed entries (t->n = n), its strings
 * to come from its arena; NULL when out of memory. */
struct tree *tree_alloc(uint32_t n);

/* Decode exactly len bytes as n entries into t->entries[first..first+n),
 * strings and arrays in t's arena, names strictly increasing.  0,
 * -EBADMSG or -ENOMEM. */
int tree_entries_decode(struct tree *t, uint32_t first, uint32_t n,
			const uint8_t *p, size_t len);

/* memcmp order of names, shorter first on a common prefix. */
int tree_name_cmp(const char *a, uint32_t alen, const char *b, uint32_t blen);

#endif
