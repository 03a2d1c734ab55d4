/*
 * snapshot: one backup - a job name, a time, a host, tags, and the root of
 * its tree.  Snapshot records are stored in packs (REC_SNAPSHOT) and listed
 * in the index; rebuild-index recovers them from the packs.
 */
#ifndef MV_SNAPSHOT_H
#define MV_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mv_err.h"
#include "repo.h"
#include "tree.h"

struct snapshot_tag {
	char *key;
	char *value;
};

struct snapshot_stats {
	uint64_t files;	       /* regular files */
	uint64_t dirs;	       /* directories */
	uint64_t others;       /* symlinks, devices, fifos */
	uint64_t logical;      /* bytes of file content */
	uint64_t new_bytes;    /* raw bytes of chunks new in this snapshot */
	uint64_t stored_bytes; /* bytes this snapshot added to packs */
};

struct snapshot {
	uint8_t id[MV_ID_LEN]; /* keyed hash of the record */
	char *name;	       /* job name, e.g. "stalwart" */
	int64_t time_ns;       /* UTC, ns since the epoch */
	char *host;	       /* where the backup ran */
	uint32_t ntags;
	struct snapshot_tag *tags;
	bool partial;	      /* committed with --partial after an error */
	struct tree_ref root; /* top-level tree: one dir per source label */
	struct snapshot_stats stats;
	int64_t row; /* index row id (0 when not listed) */
};

void snapshot_release(struct snapshot *s);
int snapshot_copy(struct snapshot *dst, const struct snapshot *src);

/* Serialize / parse the record stored in packs. */
int snapshot_encode(const struct snapshot *s, struct mv_buf *out,
		    struct mv_err *err);
int snapshot_decode(const void *buf, size_t len, struct snapshot *out,
		    struct mv_err *err);

/* All snapshots, ordered by name then time.  Free with
 * snapshot_list_free().  Thread-safe. */
int snapshot_list(struct repo *r, struct snapshot **out, size_t *out_n,
		  struct mv_err *err);
void snapshot_list_free(struct snapshot *list, size_t n);

/* Resolve "NAME/TIME" (TIME as shown in the mount or ISO 8601),
 * "NAME/latest", or a unique id prefix (hex, >= 4 digits). */
int snapshot_resolve(struct repo *r, const char *spec, struct snapshot *out,
		     struct mv_err *err);

/* Split "SNAP:PATH" into snapshot spec and path (path "" when absent). */
int snapshot_split_spec(const char *arg, char **out_snap, char **out_path,
			struct mv_err *err);

/* Directory name in the mount: "2024-05-01T120000Z", with ".partial"
 * appended for partial snapshots. */
void snapshot_dir_name(const struct snapshot *s, char *out, size_t n);
/* The unique name of list[i] (a snapshot_list(), ordered by name, time,
 * id): snapshot_dir_name() with "-2", "-3"... before ".partial" when
 * earlier snapshots of the same name fall in the same second - the name
 * the mount shows and snapshot_resolve() takes. */
void snapshot_shown_name(const struct snapshot *list, size_t i, char *out,
			 size_t n);

#endif
