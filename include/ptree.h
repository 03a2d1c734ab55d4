/*
 * ptree: a directory as a Prolly tree (docs/FORMAT-2.md, section 2).  Its
 * entries, sorted by name, are cut into content-defined leaves; index
 * nodes list their children as (separator, child id, count) and are cut
 * by the same rule, level by level, until one node - the root - remains.
 * Whether a node ends after an item depends only on that item's name
 * (keyed hash), its encoded size and the node's size so far, so the same
 * entries give the same nodes whatever the history, and one changed entry
 * rewrites its leaf (rarely the next) and the path of index nodes above.
 *
 * node  := "MVN1" u8(kind) u8(level) varint(n) item*n
 * leaf  := kind 1, level 0, items: format 1 entries (tree.c's encoding)
 * index := kind 2, level L >= 1 (children at level L-1), items:
 *          bytes(separator) id[32] varint(entries in the child's subtree)
 * separator: empty for a node's first item, else the shortest prefix of
 * the child's first name that sorts after the previous child's last name.
 * Boundary rule and constants: man/mailvault-format.5, "TREE OBJECTS".
 */
#ifndef MV_PTREE_H
#define MV_PTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mv_err.h"
#include "repo.h"
#include "tree.h"

#define PTREE_MAGIC "MVN1"
#define PTREE_LEAF 1
#define PTREE_INDEX 2
/* leaf sizes (bytes of items): no cut below MIN, always one at MAX.  1 KiB
 * leaves: a flag change, move or deletion rewrites its leaf, and a
 * leaf's bytes are mostly its entries' content ids, which do not
 * compress (docs/FORMAT-2.md, section 10 G) */
#define PTREE_MIN 256
#define PTREE_AVG 1024
#define PTREE_MAX 16384
/* K = 2 (AVG - MIN)^2 / pi, rounded: nodes then average AVG */
#define PTREE_K 375494u
/* index nodes: the same rule with their own sizes; each changed leaf
 * rewrites one node per level above it */
#define PTREE_INDEX_MIN 128
#define PTREE_INDEX_AVG 512
#define PTREE_INDEX_MAX 16384
#define PTREE_INDEX_K 93873u
/* levels of a directory's tree, leaves included (10k entries need 4) */
#define PTREE_MAX_HEIGHT 16

/* Nodes are compressed with a zstd dictionary built into the program
 * (docs/FORMAT-2.md, section 2, "Compressing nodes"): part of the format,
 * never stored in a repository, named in a record's header by its id.
 * Ids below 32768 are ones zstd's trainer never gives, so they cannot
 * meet a repository's own trained dictionaries. */
#define PTREE_DICT_ID 1
/* zstd level of nodes: 1.8 % smaller than level 3 for 19 us a node
 * instead of 7 (level 19: 2.8 %, 75 us); a day writes a few hundred */
#define PTREE_ZSTD_LEVEL 9

/* The bytes of the built-in dictionary dict_id and their length, or NULL
 * when the program has none of that id. */
const void *ptree_dict(uint32_t dict_id, size_t *len);

/* The shape of a written ptree. */
struct ptree_info {
	uint32_t leaves;
	uint32_t index_nodes;
	uint32_t height; /* levels: 1 when the root is a leaf */
};

/* One node of a ptree being built, in write order (leaves in order, then
 * each level of index nodes).  Return 0 or a negative code. */
typedef int (*ptree_node_fn)(void *arg, const uint8_t id[MV_ID_LEN],
			     const void *node, size_t len, struct mv_err *err);

/* Cut n > 0 entries, sorted by name without duplicates, into a ptree of
 * r (its ids and boundary key); fn gets each node.  root: the root's id
 * and raw size.  info may be NULL. */
int ptree_build(struct repo *r, const struct tree_entry *ents, uint32_t n,
		ptree_node_fn fn, void *arg, struct tree_chunk *root,
		struct ptree_info *info, struct mv_err *err);

/* ptree_build() storing each node as a REC_TREE record through w (known
 * nodes are skipped there). */
int ptree_write(struct repo *r, struct repo_writer *w,
		const struct tree_entry *ents, uint32_t n,
		struct tree_chunk *root, struct ptree_info *info,
		struct mv_err *err);

/* True when the bytes start like a ptree node (format 2). */
bool ptree_is_node(const void *p, size_t len);

/* Fetch n nodes: out[i] replaced by the bytes of ids[i]. */
typedef int (*ptree_fetch_fn)(void *arg, const uint8_t (*ids)[MV_ID_LEN],
			      size_t n, struct mv_buf *out, struct mv_err *err);

/* Read a whole directory from its root node (root_id, and its bytes
 * already read), fetching each level of children with one call to fetch
 * and reporting each child to visit (may be NULL) before.  Every node is
 * checked (its keyed id, kind, level, counts against bytes and against
 * its children, separators, names sorted across leaves, height, total
 * size): a damaged one is -EIO naming the node.  Returns visit's value
 * when visit stopped it (*out NULL). */
int ptree_decode(struct repo *r, const uint8_t root_id[MV_ID_LEN],
		 const void *root, size_t len, ptree_fetch_fn fetch,
		 void *fetch_arg, tree_node_fn visit, void *visit_arg,
		 struct tree **out, struct mv_err *err);

/* ptree_decode() fetching from r with repo_chunk_read_many(). */
int ptree_load(struct repo *r, const uint8_t root_id[MV_ID_LEN],
	       const void *root, size_t len, tree_node_fn visit, void *arg,
	       struct tree **out, struct mv_err *err);

/* ---- one path down a directory (docs/FORMAT-2.md, section 7) ---------- */

/* An index node's item: the child's separator, id and entry count, and
 * the entries of the node's subtree before that child. */
struct ptree_child {
	const uint8_t *sep; /* into the node's bytes */
	size_t sep_len;
	const uint8_t *id; /* MV_ID_LEN bytes, into the node's bytes */
	uint64_t count;
	uint64_t before;
};

/* One node, checked and parsed on its own: an index node's items, or a
 * leaf's entries decoded.  What it cannot check alone (counts against
 * the children, order across leaves) ptree_decode() checks when a whole
 * directory is read. */
struct ptree_node {
	uint8_t id[MV_ID_LEN];
	uint8_t kind, level;	  /* PTREE_LEAF (level 0) or PTREE_INDEX */
	uint32_t n;		  /* items */
	uint64_t count;		  /* entries in its subtree */
	struct ptree_child *kids; /* index: n children */
	struct tree *leaf;	  /* leaf: its n entries */
	size_t size;		  /* bytes of the node */
	struct mv_buf buf;	  /* the bytes (index nodes point into them) */
};

/* Check that p, len are the node id (its keyed id when r is not NULL) at
 * level want_level (-1: any, a root) and parse it into *out (the bytes
 * are copied).  A damaged node is -EIO naming it. */
int ptree_node_open(struct repo *r, const uint8_t id[MV_ID_LEN], const void *p,
		    size_t len, int want_level, struct ptree_node **out,
		    struct mv_err *err);
void ptree_node_free(struct ptree_node *nd);
/* Bytes a cache holding nd should charge. */
size_t ptree_node_cost(const struct ptree_node *nd);
/* Index node: the child whose subtree holds name if the directory does. */
uint32_t ptree_node_find(const struct ptree_node *nd, const char *name,
			 size_t len);
/* Index node: the child holding entry *pos of nd's subtree; *pos becomes
 * the position in that child.  -ERANGE past the end. */
int ptree_node_at(const struct ptree_node *nd, uint64_t *pos, uint32_t *child);

/* Look name up in the ptree directory whose root node (root_id, its bytes
 * root) is already read: one node per level, O(height).  0 with *leaf
 * (free with ptree_node_free), *slot the entry in it and *pos its
 * position in the directory; -ENOENT when absent. */
int ptree_lookup(struct repo *r, const uint8_t root_id[MV_ID_LEN],
		 const void *root, size_t len, const char *name,
		 size_t name_len, struct ptree_node **leaf, uint32_t *slot,
		 uint64_t *pos, struct mv_err *err);

#endif
