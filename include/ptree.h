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
/* node sizes (bytes of items): no cut below MIN, always one at MAX */
#define PTREE_MIN 512
#define PTREE_AVG 2048
#define PTREE_MAX 16384
/* K = 2 (AVG - MIN)^2 / pi, rounded: nodes then average AVG */
#define PTREE_K 1501974u
/* levels of a directory's tree, leaves included (10k entries need 3) */
#define PTREE_MAX_HEIGHT 16

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

#endif
