/*
 * refs: every chunk a snapshot references, whatever field holds it.
 *
 * A snapshot references its record, the chunks of each directory's tree
 * object (for a ptree directory: its root, then every other node, level
 * by level), the content chunks of each entry, and chunk ids held in
 * internal xattrs (the PEM keys of mail_crypt view entries,
 * MAIL_VIEW_KEYS_XATTR).  prune marks what this walk reaches and check
 * verifies the same set, so that anything prune keeps check looks at and
 * nothing check relies on can be deleted by prune.  A new kind of
 * reference is added here, once, for both.
 *
 * Dictionaries and tombstones are referenced by no snapshot; prune keeps
 * them always (docs/LIFECYCLE.md).
 */
#ifndef MV_REFS_H
#define MV_REFS_H

#include <stdbool.h>
#include <stdint.h>

#include "mv_err.h"
#include "repo.h"
#include "snapshot.h"
#include "tree.h"

enum refs_kind {
	REFS_SNAPSHOT = 0, /* the snapshot record itself */
	REFS_TREE = 1,	   /* a chunk of a directory's tree object, or a
			      node of its ptree */
	REFS_CONTENT = 2,  /* a content chunk of an entry */
	REFS_KEY = 3,	   /* a key chunk named by MAIL_VIEW_KEYS_XATTR */
};

/* What the walk reports.  path is the entry's path in the snapshot,
 * starting with '/' ("" for the root), valid during the call.  e is the
 * entry that holds the reference (NULL for the snapshot record and the
 * root directory).  Every callback may be NULL. */
struct refs_visit {
	/* A directory about to be read (its tree chunks not yet reported);
	 * key identifies its tree object.  Return 0 to walk it, 1 to skip
	 * it (seen before), < 0 to stop the walk with that code. */
	int (*dir)(void *arg, const char *path, const struct tree_ref *ref,
		   const uint8_t key[MV_ID_LEN]);
	/* An entry of a directory, before its references.  Return 0 to go
	 * on, < 0 to stop the walk. */
	int (*entry)(void *arg, const char *path, const struct tree_entry *e);
	/* One reference: chunk i of n of this kind (a ptree node below the
	 * root: node i of the n of its level, reported before it is read).
	 * Return 0 to go on, 1 to skip the other references of this kind of
	 * the entry (for a tree chunk or node: the directory is not read),
	 * < 0 to stop the walk. */
	int (*chunk)(void *arg, const char *path, const struct tree_entry *e,
		     enum refs_kind kind, uint32_t i, uint32_t n,
		     const uint8_t id[MV_ID_LEN]);
	/* A directory whose tree could not be read or decoded.  Return 0 to
	 * go on without its entries, < 0 to stop. */
	int (*dir_error)(void *arg, const char *path, const struct mv_err *e);
	/* The end of every directory dir() accepted: walked to its end,
	 * subdirectories included, or not read (its tree chunk skipped or
	 * unreadable). */
	int (*dir_done)(void *arg, const char *path, const struct tree_ref *ref,
			const uint8_t key[MV_ID_LEN]);
	void *arg;
};

/* Walk every reference of snapshot s depth first, directories in tree
 * order.  Returns 0, the first negative code a callback returned (err
 * left to the callback), or -ENOMEM. */
int refs_walk_snapshot(struct repo *r, const struct snapshot *s,
		       const struct refs_visit *v, struct mv_err *err);

/* The identity of a directory's tree object: its chunk id when it is one
 * chunk, else the keyed id of its chunk ids.  -ENOMEM. */
int refs_tree_key(struct repo *r, const struct tree_ref *ref,
		  uint8_t key[MV_ID_LEN]);

#endif
