/*
 * ingest: the backup pipeline.  Sources (tar streams, directories) hand it
 * entries and file bytes in order; it cuts content into chunks (files up
 * to the small-file limit stay whole), and worker threads compute keyed
 * ids, look them up and compress only what is new.  Results are stored in
 * submission order, so the repository content is deterministic whatever
 * the thread timing.  Memory is bounded by the job ring (ING_QUEUE jobs of
 * at most one chunk each).
 *
 * Threading: every ingest_* call comes from one thread (the producer),
 * which is also the thread that writes to the repository.
 */
#ifndef MV_INGEST_H
#define MV_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mv_err.h"
#include "repo.h"
#include "tree.h"

struct ingest;

/* Content hooks: how modules such as the mail view see files as they are
 * backed up without reading them twice.  analyze() runs in a worker
 * thread for every file stored as a single chunk (small files: every
 * maildir message), with the whole content, and for the first chunk of a
 * larger file; its result is handed, in submission order and on the
 * producer thread, to file_done() together with the file's final entry.
 * Any of them may be NULL.
 *
 * Whole files of any size: stream_begin() runs on the producer thread
 * when a file begins (meta: its metadata, size as announced).  When it
 * returns a stream state, the hook sees every byte of that file, in
 * order, through stream_data() as the source passes it in (a sparse
 * file: its data extents back to back), analyze() is not called for
 * the file, and stream_end(keep = true) at the file's end (or cut)
 * returns the result that file_done() receives.  On failure (the backup
 * is abandoned) stream_end(keep = false) only frees the state and
 * returns NULL.  Ingest buffers nothing for a stream: what the hook keeps
 * is its own memory.  Files that reach the tree without their bytes
 * (ingest_entry, ingest_link) are not streamed. */
struct ingest_hook {
	void *ctx;
	/* worker thread; returns a result or NULL; must be thread-safe */
	void *(*analyze)(void *ctx, const char *path,
			 const uint8_t id[MV_ID_LEN], const void *data,
			 size_t len);
	/* producer thread, in order; takes ownership of result */
	int (*file_done)(void *ctx, const char *path,
			 const struct tree_entry *e, void *result,
			 struct mv_err *err);
	/* frees a result that file_done never received (errors) */
	void (*free_result)(void *ctx, void *result);
	/* producer thread; a stream state, or NULL: not streamed */
	void *(*stream_begin)(void *ctx, const char *path,
			      const struct tree_entry *meta);
	/* producer thread; 0, or a negative errno that fails the backup */
	int (*stream_data)(void *ctx, void *stream, const void *data,
			   size_t len, struct mv_err *err);
	/* producer thread; frees stream, returns the result for file_done */
	void *(*stream_end)(void *ctx, void *stream, bool keep);
};

/* The most worker threads an ingest runs. */
#define INGEST_MAX_WORKERS 16

/* The stored objects depend on the input and the repository only, never
 * on workers or on the threads' timing (docs/ARCHITECTURE.md). */
struct ingest_opts {
	const struct ingest_hook *hook; /* NULL: none */
	int workers;	    /* 0: one per core; at most INGEST_MAX_WORKERS */
	bool progress;	    /* live progress line on stderr */
	volatile int *stop; /* set asynchronously to interrupt */
	bool dry_run;	    /* read and chunk, store nothing: w may be NULL, and
			       bytes_new counts the raw bytes of the chunks the
			       repository does not hold */
};

struct ingest_stats {
	uint64_t files, dirs, others; /* entries by kind */
	uint64_t bytes_in;	      /* file bytes read */
	uint64_t logical;	      /* size of all files, read or not */
	uint64_t bytes_new;	      /* raw bytes of new chunks */
	uint64_t chunks, chunks_new;  /* content chunks seen / stored */
	uint64_t files_reused;	      /* unchanged files not re-read */
};

int ingest_new(struct repo *r, struct repo_writer *w, struct tree_builder *tb,
	       const struct ingest_opts *opts, struct ingest **out,
	       struct mv_err *err);
/* Stops the workers; drops pending work (use ingest_finish first to keep
 * it). */
void ingest_free(struct ingest *ing);

/* A regular file: begin, data (any number of calls), end.  meta holds the
 * metadata (no chunks); its extents, if any, describe a sparse file whose
 * data bytes are passed back to back. */
int ingest_file_begin(struct ingest *ing, const char *path,
		      const struct tree_entry *meta, struct mv_err *err);
int ingest_file_data(struct ingest *ing, const void *buf, size_t len,
		     struct mv_err *err);
int ingest_file_end(struct ingest *ing, struct mv_err *err);
/* End the current file, if one is open, at the bytes read so far (after a
 * read error, for --partial).  Its size becomes what was read. */
int ingest_file_cut(struct ingest *ing, struct mv_err *err);
/* Record the data extents of the current (sparse) file, learned while
 * reading it; takes ownership of ext (malloc'ed). */
void ingest_file_set_extents(struct ingest *ing, struct tree_extent *ext,
			     uint32_t n);

/* Any other entry (directory, symlink, device, fifo), or a regular file
 * whose chunks are already known to be stored (unchanged-file cache). */
int ingest_entry(struct ingest *ing, const char *path,
		 const struct tree_entry *meta, struct mv_err *err);
/* A hard link to an earlier path. */
int ingest_link(struct ingest *ing, const char *path, const char *target,
		struct mv_err *err);

/* Wait until everything submitted is stored. */
int ingest_finish(struct ingest *ing, struct mv_err *err);

const struct ingest_stats *ingest_get_stats(const struct ingest *ing);
/* Name shown in the progress line. */
void ingest_set_current(struct ingest *ing, const char *what);
/* Print the progress line now if due (sources call it while reading). */
void ingest_progress(struct ingest *ing, bool force);
/* End the progress line, if one is shown, with its last figures, so that
 * whatever is printed next starts a line of its own. */
void ingest_progress_end(struct ingest *ing);

/* Problems in the input that did not stop the backup (a damaged tar
 * header, a member name that had to be changed).  Sources record them
 * here and the command prints them once the input is read, one line per
 * source and kind with a count, and exits "completed with warnings".
 * A kind is a phrase in the singular and the plural ("member name had
 * leading '/' removed"); first describes the first case met, already
 * quoted ("'/etc/passwd'"), or is NULL.  At most ING_WARN_KINDS kinds are
 * kept; cases of further kinds are counted in one last kind. */
#define ING_WARN_KINDS 32

struct ingest_warning {
	char *source;	/* label of the source */
	char *one;	/* the kind, singular */
	char *many;	/* the kind, plural */
	char *first;	/* the first case met, or NULL */
	uint64_t count; /* cases met */
};

int ingest_warn(struct ingest *ing, const char *source, const char *one,
		const char *many, const char *first, struct mv_err *err);
/* The warnings so far, in the order their kinds were first met.
 * Borrowed: valid until the next ingest_warn or ingest_free. */
const struct ingest_warning *ingest_get_warnings(const struct ingest *ing,
						 size_t *out_n);

#endif
