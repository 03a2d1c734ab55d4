/*
 * tree: directories of a snapshot.  A directory's entries, sorted by name,
 * each with full metadata and the ids of its content chunks or of its
 * subdirectory's tree, are stored as REC_TREE chunks.  Format 2 writes a
 * ptree (ptree.h): entries cut into content-defined leaves under index
 * nodes, so one changed entry rewrites one leaf and the path above it;
 * the parent names only the root node.  Format 1's single object (cut by
 * FastCDC when large) is still read.  A snapshot is read lazily, one
 * directory at a time.
 *
 * Encoding: see man/mailvault-format.5, "TREE OBJECTS".
 */
#ifndef MV_TREE_H
#define MV_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mv_err.h"
#include "repo.h"

enum tree_type {
	TREE_REG = 1,
	TREE_DIR = 2,
	TREE_LNK = 3,
	TREE_FIFO = 4,
	TREE_CHR = 5,
	TREE_BLK = 6,
	TREE_SOCK = 7,
};

/* One chunk of content (or of a serialized tree). */
struct tree_chunk {
	uint8_t id[MV_ID_LEN]; /* keyed chunk id */
	uint32_t size;	       /* raw bytes */
};

/* The chunks that make up a serialized directory: format 2, one chunk,
 * the root node of its ptree (or format 1's empty object); format 1, the
 * chunks of its tree object. */
struct tree_ref {
	uint32_t n;		   /* number of chunks; 0 = empty directory */
	struct tree_chunk *chunks; /* n chunks */
};

struct tree_xattr {
	char *name;	/* "user.foo", NUL-terminated */
	uint8_t *value; /* value bytes */
	uint32_t len;	/* value length */
};

/* A data extent of a sparse file: content chunks hold the extents'
 * bytes back to back. */
struct tree_extent {
	uint64_t offset; /* file offset of the extent */
	uint64_t len;	 /* bytes */
};

/* How a view entry's content derives from its chunks. */
enum tree_xform {
	TREE_XFORM_NONE = 0,	      /* the chunks are the content */
	TREE_XFORM_MAILCRYPT = 1,     /* mail_crypt_decode() of the chunks */
	TREE_XFORM_STALWART_DUMP = 2, /* a value inside the LZ4 frame of the
					 chunks (mail_view_read()) */
};

struct tree_entry {
	char *name;	    /* raw bytes, NUL-terminated, no NUL inside */
	uint32_t name_len;  /* bytes in name */
	uint8_t type;	    /* enum tree_type */
	uint32_t mode;	    /* permission bits incl. suid/sgid/sticky */
	uint32_t uid, gid;  /* numeric owner */
	char *user, *group; /* names, or NULL */
	int64_t mtime_sec;  /* modification time */
	uint32_t mtime_nsec;
	uint64_t size;	     /* file size (logical, incl. holes) */
	uint32_t rdev_major; /* device nodes */
	uint32_t rdev_minor;
	char *target;	     /* symlink target, or NULL */
	uint64_t link_group; /* hard-link group, 0 = none */
	uint32_t nlink;	     /* links in the snapshot (1 unless grouped) */
	uint32_t nxattrs;
	struct tree_xattr *xattrs;
	char *acl_access; /* POSIX ACL text, or NULL */
	char *acl_default;
	uint32_t nchunks; /* content chunks (REG) */
	struct tree_chunk *chunks;
	uint32_t nextents; /* sparse data extents, 0 = not sparse */
	struct tree_extent *extents;
	struct tree_ref subtree; /* DIR: the directory's tree */
	uint32_t nsubdirs;	 /* DIR: subdirectories (for nlink) */
	uint32_t nentries;	 /* DIR: entries */
	uint8_t xform;		 /* enum tree_xform; size is the derived size */
	/* change detection for directory sources, not restored */
	int64_t ctime_sec;
	uint32_t ctime_nsec;
	uint64_t ino, dev;
};

/* A decoded directory.  Entries sorted by name (memcmp order). */
struct tree {
	uint32_t n;		    /* entries */
	struct tree_entry *entries; /* n entries */
	void *arena;		    /* owns all strings and arrays */
};

/* Decode a serialized tree object (borrowed bytes). */
int tree_decode(const void *buf, size_t len, struct tree **out,
		struct mv_err *err);
/* Fetch the chunks of ref from the repository and decode them.
 * Thread-safe. */
int tree_load(struct repo *r, const struct tree_ref *ref, struct tree **out,
	      struct mv_err *err);
/* A node of a ptree directory below its root (ref's one chunk), reported
 * by tree_load_nodes() before it is read: node i of the n nodes of its
 * level.  Return 0 to go on, > 0 to stop reading the directory, < 0 to
 * stop with that code. */
typedef int (*tree_node_fn)(void *arg, const uint8_t id[MV_ID_LEN], uint32_t i,
			    uint32_t n);
/* tree_load() that reports every other node of a ptree to fn (which may
 * be NULL); returns fn's value when fn stopped it (*out NULL). */
int tree_load_nodes(struct repo *r, const struct tree_ref *ref, tree_node_fn fn,
		    void *arg, struct tree **out, struct mv_err *err);
void tree_free(struct tree *t);

/* Binary search by name; NULL when absent. */
const struct tree_entry *tree_find(const struct tree *t, const char *name,
				   size_t len);

/* Serialize entries (sorted by the caller) into out. */
int tree_encode(const struct tree_entry *entries, uint32_t n,
		struct mv_buf *out, struct mv_err *err);

/* Deep copy of an entry; the copy owns its strings and arrays and is
 * freed with tree_entry_release(). */
int tree_entry_copy(struct tree_entry *dst, const struct tree_entry *src,
		    struct mv_err *err);
void tree_entry_release(struct tree_entry *e);

/* Copy a tree_ref (allocates). */
/* The identity of a list of chunks (a file's content, a tree object): the
 * chunk's id when there is one, else the keyed id of the chunk ids in
 * order.  Returns 0 or -ENOMEM. */
int tree_chunks_key(struct repo *r, const struct tree_chunk *chunks, uint32_t n,
		    uint8_t key[MV_ID_LEN]);

int tree_ref_copy(struct tree_ref *dst, const struct tree_ref *src);
void tree_ref_release(struct tree_ref *ref);

/* ---- building --------------------------------------------------------- */

struct tree_builder;

int tree_builder_new(struct tree_builder **out, struct mv_err *err);
void tree_builder_free(struct tree_builder *tb);

/* Add or replace the entry at path ("a/b/c", components split on '/',
 * empty components dropped; "." and ".." are kept as plain names).  Missing
 * parent directories are created with mode 0755 and the time of the
 * entry.  A directory added after its children keeps them and takes the new
 * metadata.  The entry is copied.  An empty path sets the root's
 * metadata. */
int tree_builder_add(struct tree_builder *tb, const char *path,
		     const struct tree_entry *e, struct mv_err *err);
/* Make path a hard link to target (which must exist): it takes target's
 * content and metadata and both join one link group. */
int tree_builder_link(struct tree_builder *tb, const char *path,
		      const char *target, struct mv_err *err);
/* Look an entry up by path; NULL when absent.  Borrowed. */
struct tree_entry *tree_builder_get(struct tree_builder *tb, const char *path);

/* Write every directory bottom-up as a ptree through w; the root's
 * ref goes to out (caller releases with tree_ref_release).  Totals of the
 * tree are added to the counters when not NULL. */
int tree_builder_write(struct tree_builder *tb, struct repo *r,
		       struct repo_writer *w, struct tree_ref *out,
		       struct tree_entry *out_root, struct mv_err *err);

/* Resolve a '/'-separated path from a root ref.  On success *out is a
 * deep copy of the entry (release it).  "" gives a synthetic root
 * directory entry.  -ENOENT when absent, -ENOTDIR through a non-dir. */
int tree_lookup_path(struct repo *r, const struct tree_ref *root,
		     const char *path, struct tree_entry *out,
		     struct mv_err *err);

#endif
