/*
 * fs_int: internals of the mount shared by the files of src/fs/ and by the
 * unit tests.  The tree logic (fs_do_*) knows nothing of FUSE requests: it
 * returns 0 or a negative errno and fills plain structs, so cmocka tests
 * drive it over an in-memory source without mounting anything.
 *
 * DESIGN NOTES (docs/MOUNT.md says more):
 *  (1) Nothing at mount time is proportional to a snapshot's size: the
 *      snapshot list is read, trees are loaded when a directory is first
 *      looked into, chunks when a file is first read.
 *  (2) An inode number is never reused during a mount.  A path keeps its
 *      inode while the kernel holds a lookup on it; the files of one
 *      hard-link group of a snapshot share one inode for the whole mount.
 *  (3) Everything FUSE worker threads share is either immutable after
 *      creation (trees, chunk bytes, fs_dir, fs_snap contents) and
 *      refcounted, or guarded by the inode table's mutex.
 *  (4) Memory is bounded: trees and chunks live in two LRU caches of
 *      fixed size; nodes exist only while the kernel holds lookups on them
 *      (plus one small record per hard-link group looked up).
 */
#ifndef MV_FS_INT_H
#define MV_FS_INT_H

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 314
#endif

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>

#include "fs.h"
#include "mv_err.h"
#include "ptree.h"
#include "tree.h"
#include "util.h"

#define FS_NAME_MAX 255 /* NAME_MAX of the shown names */
#define FS_ROOT_INO 1
#define FS_TOP_TIMEOUT 1.0	 /* s: root, <name>/, latest (change) */
#define FS_SNAP_TIMEOUT 86400.0	 /* s: inside snapshots (never change) */
#define FS_REFRESH_NS 2000000000 /* poll the index at most this often */
#define FS_LATEST_NAME "latest"

/* ---- names (fs_name.c) ------------------------------------------------ */

/* Hostile names: empty, ".", "..", containing '/', or longer than
 * FS_NAME_MAX - names no file system can hold. */
bool fs_name_is_hostile(const char *name, size_t len);

/* The name under which a stored name is shown, into out (FS_NAME_MAX + 1
 * bytes); returns its length.  Plain names are shown as they are.  A
 * hostile name is shown as '%' followed by the name with '%' and '/'
 * percent-encoded ("a/b" -> "%a%2Fb", ".." -> "%..", "" -> "%").  When
 * that is too long, or force_long (its short form is the name of a plain
 * sibling), it is cut to 236 bytes (never inside a %XX) and "%~" plus 16
 * hex digits of the XXH3 hash of the stored name follow. */
size_t fs_name_show(const char *name, size_t len, bool force_long, char *out);

/* The hostile stored name behind a shown name, into out (FS_NAME_MAX + 1
 * bytes).  0: *out_len bytes in out; -ENAMETOOLONG: a hashed long form,
 * find it by comparing shown names; -ENOENT: not the short form of a
 * hostile name (it can only be a plain name). */
int fs_name_parse(const char *shown, char *out, size_t *out_len);

/* ---- POSIX ACLs (fs_acl.c) -------------------------------------------- */

/* Convert ACL text (acl(5) long or short form, entries separated by ',' or
 * newlines; qualifiers numeric, or "name:perms:id" as libarchive writes
 * them) into the binary system.posix_acl_* xattr value the kernel expects
 * (version 2, entries sorted by tag and id).  -EINVAL on text it cannot
 * map without a user database. */
int fs_acl_to_xattr(const char *text, struct mv_buf *out);

/* ---- caches (fs_cache.c) ---------------------------------------------- */

/* A cached value.  Pinned values are never evicted. */
struct fs_cache_item {
	void *value;			/* the cached object */
	size_t size;			/* bytes of value (chunk data) */
	size_t cost;			/* bytes charged against the limit */
	uint64_t hash;			/* of the key */
	unsigned pins;			/* users holding it */
	int state;			/* 1 ready, 0 loading, < 0 failed */
	struct fs_cache_item *hnext;	/* hash chain */
	struct fs_cache_item *lru_prev; /* LRU list, most recent first */
	struct fs_cache_item *lru_next;
	size_t klen;   /* bytes of key */
	uint8_t key[]; /* the key */
};

/* Fill a missing value: *out_value, *out_size (value bytes) and *out_cost
 * (bytes charged).  0 or -errno with a message in err. */
typedef int fs_cache_load_fn(void *arg, void **out_value, size_t *out_size,
			     size_t *out_cost, struct mv_err *err);

struct fs_cache {
	pthread_mutex_t lock;
	pthread_cond_t loaded;	    /* a load finished */
	size_t limit;		    /* bytes */
	size_t used;		    /* bytes charged by ready items */
	struct fs_cache_item **tab; /* hash table */
	size_t cap;		    /* buckets, a power of two */
	size_t count;		    /* items in the table */
	struct fs_cache_item *lru_head;
	struct fs_cache_item *lru_tail;
	void (*free_value)(void *arg, void *value);
	void *free_arg;
	uint64_t hits, misses, evictions;
	size_t freed; /* bytes evicted since the last malloc_trim() */
};

#define FS_MIB ((size_t)1 << 20)
#define FS_CACHE_TRIM_BYTES ((size_t)16 << 20)
/* free heap memory a trim leaves alone */
#define FS_CACHE_SLACK ((size_t)32 << 20)

int fs_cache_init(struct fs_cache *c, size_t limit,
		  void (*free_value)(void *arg, void *value), void *free_arg);
/* Frees every value; no item may be pinned. */
void fs_cache_release(struct fs_cache *c);
/* Find key or load it (once: concurrent callers wait for the first
 * loader).  On success *out is pinned; give it back with fs_cache_put(). */
int fs_cache_get(struct fs_cache *c, const void *key, size_t klen,
		 fs_cache_load_fn *load, void *load_arg,
		 struct fs_cache_item **out, struct mv_err *err);
/* True when key is cached or being loaded. */
bool fs_cache_has(struct fs_cache *c, const void *key, size_t klen);
/* Claim the load of a missing key for a caller that fills several keys
 * from one fetch: 0 and *out in the loading state (readers of the key wait
 * for it), -EEXIST when the key is cached or being loaded.  Every claimed
 * item ends with fs_cache_fill() or fs_cache_abandon(). */
int fs_cache_claim(struct fs_cache *c, const void *key, size_t klen,
		   struct fs_cache_item **out);
/* Make a claimed item ready with value (the cache owns it now). */
void fs_cache_fill(struct fs_cache *c, struct fs_cache_item *item, void *value,
		   size_t size, size_t cost);
/* Give a claimed key up: its waiters load it themselves. */
void fs_cache_abandon(struct fs_cache *c, struct fs_cache_item *item);
void fs_cache_put(struct fs_cache *c, struct fs_cache_item *item);

/* Wait while key is being loaded (claimed or fs_cache_get); true when it
 * is then ready, false when it is absent, failed or was given up. */
bool fs_cache_ready(struct fs_cache *c, const void *key, size_t klen);

/* A small pool of threads that loads chunks ahead of a sequential reader
 * and runs the pack range reads ahead of it (calls, served first).  Jobs
 * beyond a queue's capacity are refused: read-ahead is a hint. */
#define FS_PREFETCH_QUEUE 64
#define FS_PREFETCH_CALLS 16
#define FS_PREFETCH_THREADS 2

/* A queued call; cancel: the pool stops, only free what arg holds. */
typedef void fs_prefetch_call_fn(void *arg, bool cancel);

struct fs_prefetch_call {
	fs_prefetch_call_fn *fn;
	void *arg;
};

struct fs_prefetch {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t threads[FS_PREFETCH_THREADS];
	unsigned nthreads;			   /* started */
	bool stop;				   /* shutting down */
	struct tree_chunk ring[FS_PREFETCH_QUEUE]; /* queued chunks */
	unsigned head, count;
	struct fs_prefetch_call calls[FS_PREFETCH_CALLS]; /* queued calls */
	unsigned call_head, ncalls;
	void (*fn)(void *arg, const struct tree_chunk *c);
	void *arg;
};

int fs_prefetch_start(struct fs_prefetch *p,
		      void (*fn)(void *arg, const struct tree_chunk *c),
		      void *arg);
/* Queue a chunk; false when the queue is full or stopped. */
bool fs_prefetch_push(struct fs_prefetch *p, const struct tree_chunk *c);
/* Queue fn(arg, false); false when the queue is full or stopped (arg
 * stays the caller's).  Calls still queued at stop get fn(arg, true). */
bool fs_prefetch_call(struct fs_prefetch *p, fs_prefetch_call_fn *fn,
		      void *arg);
void fs_prefetch_stop(struct fs_prefetch *p);

/* ---- where the bytes come from (fs_source.c: the repository) ----------- */

/* One snapshot as the source lists it. */
struct fs_snap_info {
	char *name;	       /* job name */
	char dir[64];	       /* directory name: snapshot_dir_name() */
	int64_t time_ns;       /* UTC ns */
	bool partial;	       /* committed with --partial */
	uint8_t id[MV_ID_LEN]; /* snapshot id */
	struct tree_ref root;  /* top-level tree */
};

void fs_snap_info_free(struct fs_snap_info *list, size_t n);

/* Receives chunk want[i] of a chunks_fetch (data malloc'd, now owned). */
typedef void fs_chunk_got_fn(void *arg, size_t i, void *data, size_t len);

/* All calls are made from several threads at once. */
struct fs_source_ops {
	/* Snapshots ordered by name, then time (malloc'd; fs_snap_info_free) */
	int (*list)(void *ctx, struct fs_snap_info **out, size_t *out_n,
		    struct mv_err *err);
	/* Has a writer committed since the last call? */
	int (*refresh)(void *ctx, bool *out_changed, struct mv_err *err);
	int (*tree_load)(void *ctx, const struct tree_ref *ref,
			 struct tree **out, struct mv_err *err);
	/* Optional: one node of a ptree directory, checked and parsed
	 * (ptree_node_open; level -1 for a root).  -ENOTSUP when id is a
	 * format 1 directory object, which only tree_load reads. */
	int (*node_load)(void *ctx, const uint8_t id[MV_ID_LEN], int level,
			 struct ptree_node **out, struct mv_err *err);
	void (*tree_free)(void *ctx, struct tree *t);
	/* Decompressed, verified chunk bytes (malloc'd, caller frees).  A
	 * damaged chunk is -EIO with pack and offset in the message. */
	int (*chunk_read)(void *ctx, const uint8_t id[MV_ID_LEN], void **out,
			  size_t *out_len, struct mv_err *err);
	/* Optional: the same into buf, which the caller keeps and reuses
	 * (no allocation once it is large enough). */
	int (*chunk_read_buf)(void *ctx, const uint8_t id[MV_ID_LEN],
			      struct mv_buf *buf, struct mv_err *err);
	/* The content of an entry whose chunks are not its content (xform
	 * TREE_XFORM_MAILCRYPT: decrypted, decompressed mail), malloc'd.
	 * -ENOKEY, -EBADMSG... with a message when it cannot be decoded. */
	int (*xform_read)(void *ctx, const struct tree_entry *e, void **out,
			  size_t *out_len, struct mv_err *err);
	/* Optional, from the warm-up: load what xform_read of e will
	 * need besides e's own chunks (the keys of mailcow messages). */
	void (*xform_warm)(void *ctx, const struct tree_entry *e);
	/* Optional: read the records of several chunks that lie together
	 * in one pack with one request: want[0] and those of want[1..n)
	 * stored in its pack, as far as the whole range stays within max
	 * bytes.  got() takes each decoded chunk (malloc'd) with its index
	 * in want.  -errno when want[0] cannot be read. */
	int (*chunks_fetch)(void *ctx, const struct tree_chunk *want, size_t n,
			    size_t max, fs_chunk_got_fn *got, void *arg,
			    struct mv_err *err);
	/* Optional: true when every read is a round trip to a server. */
	bool (*remote)(void *ctx);
	/* Optional: start reading what a first access needs (index, trees)
	 * into memory in the background.  Called once, from its own
	 * thread, when the mount is ready. */
	void (*warm)(void *ctx);
};

#define FS_WARM_META_MAX ((uint64_t)256 << 20) /* packs of trees warmed */
#define FS_WARM_TREES 100000 /* directories loaded ahead at mount */

/* The repository as a source.  Borrows r. */
extern const struct fs_source_ops fs_source_repo_ops;

/* ---- inode table (fs_inode.c) ------------------------------------------ */

enum fs_kind {
	FS_ROOT = 1, /* the mount point */
	FS_NAME,     /* <name>/ */
	FS_SNAP,     /* <name>/<time>/ */
	FS_LATEST,   /* <name>/latest */
	FS_ENTRY,    /* anything inside a snapshot */
};

/* A snapshot as the mount shows it.  Contents immutable; refcounted under
 * the table lock. */
struct fs_snap {
	unsigned refs;		     /* nodes, dirs and pins */
	char *name;		     /* job name as stored */
	char shown[FS_NAME_MAX + 1]; /* job name as shown */
	char dir[80];		     /* directory name in <name>/ */
	int64_t time_ns;	     /* UTC ns */
	bool partial;		     /* marked ".partial" */
	uint8_t id[MV_ID_LEN];	     /* snapshot id */
	struct tree_ref root;	     /* top-level tree */
	uint64_t ino;		     /* of its directory */
};

/* A directory inside a snapshot whose entries have nodes.  Immutable;
 * refcounted under the table lock. */
struct fs_dir {
	unsigned refs;
	struct fs_snap *snap; /* holds a reference */
	struct tree_ref ref;  /* the directory's tree (own copy) */
	char *path;	      /* "<name>/<time>/a/b", for messages */
	uint64_t ino;	      /* of the directory */
};

struct fs_node {
	uint64_t ino;
	enum fs_kind kind;
	uint64_t nlookup;	 /* lookups the kernel holds */
	bool live;		 /* top level still in the repository */
	bool named;		 /* in the (parent, shown) index */
	uint64_t parent;	 /* ino of the parent directory */
	char *shown;		 /* name in the parent */
	struct fs_snap *snap;	 /* SNAP, ENTRY: holds a reference */
	struct fs_dir *dir;	 /* ENTRY: directory holding the entry */
	uint32_t index;		 /* ENTRY: position in dir's tree */
	uint8_t type;		 /* ENTRY: enum tree_type */
	bool has_leaf;		 /* ENTRY: leaf and slot are known */
	uint32_t slot;		 /* ENTRY: position in its leaf */
	uint8_t leaf[MV_ID_LEN]; /* ENTRY: the ptree leaf holding it */
	struct fs_dir *self;	 /* SNAP, ENTRY dir: its own directory */
	uint64_t target;	 /* LATEST: inode of the snapshot it names */
	struct fs_node *ino_next;
	struct fs_node *name_next;
};

/* A hard-link group's inode number, kept for the whole mount. */
struct fs_group {
	uint64_t snap_ino; /* the snapshot's directory inode */
	uint64_t group;	   /* tree_entry.link_group */
	uint64_t ino;
	struct fs_group *next;
};

struct fs_itable {
	pthread_mutex_t lock;
	struct fs_node **by_ino; /* hash by ino */
	size_t ino_cap, nnodes;
	struct fs_node **by_name; /* hash by (parent, shown) */
	size_t name_cap, nnamed;
	struct fs_group **groups; /* hash by (snap_ino, group) */
	size_t group_cap, ngroups;
	uint64_t next_ino;	/* never reused */
	struct fs_snap **snaps; /* current, by name then time */
	size_t nsnaps;
};

/* What an operation needs of a node, with references taken so a
 * concurrent forget cannot free it. */
struct fs_pin {
	uint64_t ino;
	enum fs_kind kind;
	uint64_t parent;
	struct fs_snap *snap;	 /* SNAP, ENTRY */
	struct fs_dir *dir;	 /* ENTRY */
	uint32_t index;		 /* ENTRY */
	uint8_t type;		 /* ENTRY */
	bool has_leaf;		 /* ENTRY: attributes from one leaf */
	uint32_t slot;		 /* ENTRY */
	uint8_t leaf[MV_ID_LEN]; /* ENTRY */
	struct fs_dir *self;	 /* SNAP, ENTRY dir */
	char *shown;		 /* NAME: copy of its name */
};

/* One line of a top-level directory listing. */
struct fs_topent {
	char *shown;
	uint64_t ino;
	mode_t type; /* S_IFDIR or S_IFLNK */
};

int fs_itable_init(struct fs_itable *t);
void fs_itable_release(struct fs_itable *t);
/* Replace the top level by list (ordered by name, then time): new
 * snapshots get nodes, vanished ones lose their names. */
int fs_itable_update(struct fs_itable *t, const struct fs_snap_info *list,
		     size_t n);
int fs_itable_pin(struct fs_itable *t, uint64_t ino, struct fs_pin *out);
void fs_itable_unpin(struct fs_itable *t, struct fs_pin *p);
/* Root and <name>/: find a child by shown name, add a lookup, pin it. */
int fs_itable_lookup_top(struct fs_itable *t, uint64_t parent,
			 const char *shown, struct fs_pin *out);
/* Inside a snapshot: the node of entry e (index in parent's tree, shown
 * name) with one more lookup, created when needed. */
int fs_itable_lookup_entry(struct fs_itable *t, const struct fs_pin *parent,
			   const char *shown, const struct tree_entry *e,
			   uint32_t index, uint64_t *out_ino);
/* The same for an entry found in a ptree leaf (leaf, slot): the node's
 * attributes then come from that one leaf. */
int fs_itable_lookup_leaf(struct fs_itable *t, const struct fs_pin *parent,
			  const char *shown, const struct tree_entry *e,
			  uint32_t index, const uint8_t leaf[MV_ID_LEN],
			  uint32_t slot, uint64_t *out_ino);
/* The inode of a child if it has one now, else 0.  No lookup added. */
uint64_t fs_itable_peek(struct fs_itable *t, uint64_t parent, const char *shown,
			const struct tree_entry *e, const struct fs_snap *snap);
void fs_itable_forget(struct fs_itable *t, uint64_t ino, uint64_t n);
/* Listing of the root or of a <name>/ directory. */
int fs_itable_list_top(struct fs_itable *t, uint64_t ino,
		       struct fs_topent **out, size_t *out_n);
void fs_topent_free(struct fs_topent *list, size_t n);
/* Copies of the root refs of the newest snapshot of each name (free each
 * ref's chunks, then the array). */
int fs_itable_latest_roots(struct fs_itable *t, struct tree_ref **out,
			   size_t *out_n);
/* Newest snapshot of the <name>/ directory parent: its directory name
 * (complete snapshots win over partial ones) and time. */
int fs_itable_latest(struct fs_itable *t, uint64_t parent, char *out, size_t n,
		     int64_t *out_time);

/* ---- the file system (fs_core.c) --------------------------------------- */

struct fs_stats {
	uint64_t tree_hits, tree_misses;
	uint64_t node_hits, node_misses; /* ptree nodes read one by one */
	size_t node_bytes;
	uint64_t chunk_hits, chunk_misses;
	size_t chunk_bytes, tree_bytes;
	size_t nodes;
	uint64_t ranges_waited; /* pack ranges read for a reader that waited */
	uint64_t ranges_ahead;	/* pack ranges read in the background */
};

/* Open-file states by inode, for reads that come without an open (the
 * kernel skips open and release once open answered ENOSYS). */
#define FS_FH_SLOTS 64

struct fs_fh_slot {
	uint64_t ino;	  /* 0: free */
	struct fs_fh *fh; /* owned by the slot */
	unsigned refs;	  /* reads using it now */
	uint64_t used;	  /* tick of the last use, for eviction */
};

/* How a process reads listings (fs_reader_*): a find wants names only, an
 * rsync or ls -l then asks the attributes of every file. */
#define FS_READERS 64	    /* processes remembered */
#define FS_BARE_DIRS 4096   /* directories remembered as listed bare */
#define FS_BARE_SMALL 64    /* a listing this small may go bare untried */
#define FS_WALKER_DIRS 2    /* bare listings with files, none looked up */
#define FS_PROBE_ENTRIES 16 /* FS_LIST_PROBE: entries listed bare */

struct fs_reader {
	int pid;	 /* 0: free */
	bool stats;	 /* asked the attributes of a file inside */
	unsigned bare;	 /* listings with files it got bare */
	int64_t seen_ns; /* last listing or lookup, for reuse of the slot */
};

/* A directory read in order by a remote reader: the pack ranges of its
 * next files are read in the background (fs_ahead.c, "ranges ahead"). */
#define FS_STREAMS 8	   /* directories followed at once */
#define FS_STREAM_RANGES 2 /* ranges in flight for one directory */

struct fs_stream {
	struct tree_ref dref; /* the directory (own copy); n 0: slot free */
	char *path;	      /* for messages */
	uint32_t next;	      /* first file no range took whole */
	uint32_t marker;      /* a read of a file at or past it: next range */
	size_t size;	      /* bytes of the next range */
	unsigned inflight;    /* ranges being read */
	uint64_t gen;	      /* new directory in the slot */
	uint64_t seq;	      /* new position (a reader waited) */
	uint64_t used;	      /* tick of the last use, for reuse */
};

/* Directories a reader of attributes listed (rsync lists ahead of what
 * it reads): their files' ranges are read in the background while a
 * reader goes through directories in order (fs_ahead.c, "listed"). */
#define FS_LISTED 64		   /* remembered at most */
#define FS_LISTED_BATCH 8	   /* read together */
#define FS_LISTED_NS 5000000000LL  /* forgotten after */
#define FS_READING_NS 2000000000LL /* a stream triggered this recently */

struct fs_listed {
	struct tree_ref dref; /* own copy */
	char *path;
	int64_t ns; /* when listed */
};

struct fs {
	const struct fs_source_ops *src;
	void *src_ctx;
	struct fs_opts opts;
	struct fs_itable itab;
	struct fs_cache trees;	/* decoded directories */
	struct fs_cache nodes;	/* ptree nodes by id (lookups, attributes) */
	struct fs_cache chunks; /* decompressed content chunks */
	struct fs_prefetch ahead;
	size_t pack_ahead; /* bytes of a pack range read at once, 0: off */
	size_t ramp;	   /* size of the next range read (fh_lock) */
	uint8_t ramp_dir[MV_ID_LEN]; /* directory of the last range read */
	uint32_t ramp_index;	     /* and the file it started at */
	pthread_mutex_t stream_lock; /* guards streams, stream_tick */
	struct fs_stream streams[FS_STREAMS];
	uint64_t stream_tick;
	struct fs_listed listed[FS_LISTED]; /* ring, stream_lock */
	unsigned listed_head, nlisted;
	bool listed_busy;   /* listed_main queued or running */
	int64_t reading_ns; /* a stream last asked for a range */
	uint64_t ranges_waited, ranges_ahead; /* atomic counters */
	bool no_open;	 /* open answers ENOSYS: reads come with no handle */
	bool no_opendir; /* opendir answers ENOSYS: listings too */
	pthread_mutex_t fh_lock; /* guards fh_slots, fh_tick */
	struct fs_fh_slot fh_slots[FS_FH_SLOTS];
	uint64_t fh_tick;
	pthread_t warm_thread; /* source's warm(), when warming */
	bool warming;
	bool stopping; /* fs_free() began: background work ends */
	pthread_mutex_t refresh_lock;
	int64_t refreshed_ns; /* last poll of the index */
	bool stale;	      /* a re-read failed: read again */
	uid_t uid;	      /* owner of the top levels */
	gid_t gid;
	/* mtime of the root and name directories: when this mount last saw
	 * the snapshot list change (at first, when it was mounted) */
	int64_t top_ns;
	void (*log)(void *arg, const char *msg);
	void *log_arg;
	pthread_mutex_t readers_lock; /* guards readers, bare, nbare */
	struct fs_reader readers[FS_READERS];
	size_t bare_small;	     /* FS_BARE_SMALL; tests lower it */
	uint64_t bare[FS_BARE_DIRS]; /* ring of directories listed bare */
	size_t nbare;		     /* entries ever added to the ring */
	/* drop the kernel's cached listing of a directory (fs_ops) */
	void (*inval_dir)(void *arg, uint64_t ino);
	void *inval_arg;
};

/* An open directory. */
struct fs_dh {
	struct fs_pin pin;
	struct fs_cache_item *tree; /* pinned tree, NULL for empty/top */
	const struct tree *t;	    /* SNAP, ENTRY */
	struct fs_topent *top;	    /* ROOT, NAME */
	size_t ntop;
};

/* An open file: what reading it needs, copied out of its tree. */
struct fs_fh {
	uint64_t ino;
	uint64_t size; /* logical size */
	uint32_t nchunks;
	struct tree_chunk *chunks;
	uint64_t *offs;	   /* nchunks + 1 offsets in the data stream */
	uint32_t nextents; /* 0: not sparse */
	struct tree_extent *extents;
	uint64_t *ext_data;   /* data stream offset of each extent */
	char *path;	      /* for messages */
	char *decoded;	      /* xform entries: the whole content */
	size_t decoded_len;   /* bytes in decoded (capped at size) */
	pthread_mutex_t lock; /* guards the read-ahead state */
	uint64_t next_off;    /* where a sequential reader goes next */
	uint32_t ahead;	      /* chunks [0, ahead) were queued */
	struct tree_ref dref; /* its directory's tree (own copy) */
	uint32_t dindex;      /* its index in that tree */
	bool has_leaf;	      /* found by lookup: the leaf holding it */
	uint32_t slot;	      /* its slot in that leaf */
	uint8_t leaf[MV_ID_LEN];
	bool dir_queued; /* the next files' chunks were queued */
};

/* The bytes of one read: pieces of pinned cached chunks, of an open
 * file's decoded content, or zeros.  Large: keep one per thread or heap. */
#define FS_IOV_MAX 160 /* 1 MiB of 16 KiB chunks is 65 pieces */

struct fs_iov {
	unsigned niov;	 /* pieces in iov */
	unsigned nitems; /* pinned chunks in items */
	size_t len;	 /* bytes in iov */
	struct iovec iov[FS_IOV_MAX];
	struct fs_cache_item *items[FS_IOV_MAX];
	/* A whole small file read in one request is decompressed here, not
	 * into the chunk cache: the kernel's page cache keeps it, and a
	 * restore reads each file once.  Kept for the owner's life (its
	 * pages stay mapped); fs_iov_init() / fs_iov_free(). */
	struct mv_buf direct;
};

/* A read vector's life: init before its first use, free at the end. */
void fs_iov_init(struct fs_iov *v);
void fs_iov_free(struct fs_iov *v);

/* Emit one directory entry; returns 1 when the reply buffer is full. */
typedef int fs_emit_fn(void *arg, const char *name,
		       const struct fuse_entry_param *e, off_t next);

/* A file system over a source.  Reads the snapshot list only. */
int fs_new(const struct fs_source_ops *src, void *src_ctx,
	   const struct fs_opts *o, struct fs **out, struct mv_err *err);
/* Start the read-ahead threads (after daemonizing). */
int fs_start(struct fs *fs, struct mv_err *err);
void fs_free(struct fs *fs);
void fs_set_log(struct fs *fs, void (*log)(void *arg, const char *msg),
		void *arg);
void fs_stats(struct fs *fs, struct fs_stats *out);
/* Poll the source for new snapshots now (force) or when due. */
int fs_refresh(struct fs *fs, bool force, struct mv_err *err);

int fs_do_lookup(struct fs *fs, uint64_t parent, const char *name,
		 struct fuse_entry_param *out);
void fs_do_forget(struct fs *fs, uint64_t ino, uint64_t nlookup);
int fs_do_getattr(struct fs *fs, uint64_t ino, struct stat *out,
		  double *out_timeout);
/* Symlink target, malloc'd. */
int fs_do_readlink(struct fs *fs, uint64_t ino, char **out);
int fs_do_opendir(struct fs *fs, uint64_t ino, struct fs_dh **out);
/* How fs_do_readdir lists: names and types only (FS_LIST_NAMES), full
 * attributes and a lookup for every entry (FS_LIST_PLUS), or for
 * directories only (FS_LIST_DIRS: a readdirplus reply whose other entries
 * carry no attributes, so neither this process nor the kernel makes an
 * inode for them), or for all but the first FS_PROBE_ENTRIES entries
 * (FS_LIST_PROBE: whether the reader then looks those up tells what it
 * is, at the price of a few lookups). */
enum { FS_LIST_NAMES = 0, FS_LIST_PLUS = 1, FS_LIST_DIRS = 2, FS_LIST_PROBE };

/* Entries from offset off on, listed as how says. */
int fs_do_readdir(struct fs *fs, struct fs_dh *dh, off_t off, int how,
		  fs_emit_fn *emit, void *arg);
/* How to answer a readdirplus of process pid for dh from offset off.  A
 * process that asked for the attributes of a file inside a snapshot
 * (rsync, ls -l, du) gets FS_LIST_PLUS.  Else a small listing (at most
 * bare_small entries) goes FS_LIST_DIRS: if the process then stats its
 * files it pays a lookup for each of those few and is known from then
 * on.  A large one goes FS_LIST_DIRS only to a process that already got
 * FS_WALKER_DIRS listings with files bare and looked none of them up
 * (find), else FS_LIST_PROBE: wrongly bare, a 10k-message folder would
 * cost an ls -l 10k lookups; wrongly full, a find pays about 5 us per
 * entry. */
int fs_reader_listing(struct fs *fs, int pid, const struct fs_dh *dh,
		      off_t off);
/* Lookup on behalf of process pid: as fs_do_lookup, and a file found
 * inside a snapshot marks pid as reading attributes.  The first time,
 * the directories listed bare so far are handed to inval_dir, so the
 * kernel asks for them again rather than serving its cached bare
 * listing (and pid would pay one lookup per file). */
int fs_do_lookup_by(struct fs *fs, int pid, uint64_t parent, const char *name,
		    struct fuse_entry_param *out);
void fs_do_releasedir(struct fs *fs, struct fs_dh *dh);
/* -EROFS for any access mode other than O_RDONLY. */
int fs_do_open(struct fs *fs, uint64_t ino, int flags, struct fs_fh **out);
/* Up to size bytes from off into v (short only at the end of the file,
 * or when v is full: v->len tells).  Give v back with fs_iov_release()
 * once its bytes are sent; on error nothing is held. */
int fs_do_read_iov(struct fs *fs, struct fs_fh *fh, size_t size, off_t off,
		   struct fs_iov *v);
void fs_iov_release(struct fs *fs, struct fs_iov *v);
/* The same, copied into buf. */
int fs_do_read(struct fs *fs, struct fs_fh *fh, char *buf, size_t size,
	       off_t off, size_t *out_len);
void fs_do_release(struct fs *fs, struct fs_fh *fh);
/* The state of regular file ino for a read without an open: shared,
 * kept for the next reads of the file.  Give it back with fs_fh_put(). */
int fs_fh_get(struct fs *fs, uint64_t ino, struct fs_fh **out);
void fs_fh_put(struct fs *fs, struct fs_fh *fh);
int fs_do_lseek(struct fs *fs, struct fs_fh *fh, off_t off, int whence,
		off_t *out);
int fs_do_statfs(struct fs *fs, struct statvfs *out);
/* size 0: only *out_len; too small: -ERANGE. */
int fs_do_getxattr(struct fs *fs, uint64_t ino, const char *name, void *buf,
		   size_t size, size_t *out_len);
int fs_do_listxattr(struct fs *fs, uint64_t ino, char *buf, size_t size,
		    size_t *out_len);

/* What fs_core.c shares with fs_ahead.c.  The trees and nodes come
 * pinned in their caches: give them back with fs_cache_put(). */
int64_t fs_mono_ns(void);
/* The decoded directory of ref (*out_item NULL for an empty one). */
int fs_tree_get(struct fs *fs, const struct tree_ref *ref, const char *path,
		struct fs_cache_item **out_item, const struct tree **out);
/* Node id at level (-1: a root). */
int fs_node_get(struct fs *fs, const uint8_t id[MV_ID_LEN], int level,
		const char *path, struct fs_cache_item **out_item,
		const struct ptree_node **out);
/* Whether ref's whole directory is in the tree cache. */
bool fs_tree_cached(struct fs *fs, const struct tree_ref *ref);
/* Copy of ref's chunk list (the tree that holds ref may be evicted). */
int fs_ref_dup(struct tree_ref *dst, const struct tree_ref *src);
/* Whether one of the first n entries of t is not a directory. */
bool fs_has_files(const struct tree *t, size_t n);
/* Index of the chunk of fh holding data offset doff. */
uint32_t fs_chunk_at(const struct fs_fh *fh, uint64_t doff);

/* ---- reading ahead of a reader (fs_ahead.c) ---------------------------- */

/* A read of fh from off to end (the data stream to dend): a sequential
 * reader gets its next chunks loaded in the background. */
void fs_ahead_sequential(struct fs *fs, struct fs_fh *fh, uint64_t off,
			 uint64_t end, uint64_t dend);
/* Chunk k of fh is missing (remote): read the range of its pack that
 * holds it and what follows in the file and directory, waiting for it,
 * and leave a stream so the directory's next ranges go out ahead. */
void fs_ahead_range(struct fs *fs, const struct fs_fh *fh, uint32_t k);
/* A read of fh (remote): past its directory's marker, the next range
 * goes to a read-ahead thread. */
void fs_ahead_check(struct fs *fs, const struct fs_fh *fh);
/* dh was listed with attributes (rsync, ls -l): its files may be read
 * in the background once a reader reads in order. */
void fs_ahead_listed(struct fs *fs, const struct fs_dh *dh);
/* Free the streams and listed directories (fs_free). */
void fs_ahead_release(struct fs *fs);

/* The FUSE operations table (fs_ops.c). */
const struct fuse_lowlevel_ops *fs_ops_table(void);

#endif
