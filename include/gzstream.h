/*
 * gzstream: the input stream ingest reads archives through.
 *
 * A gzstream wraps a file descriptor the caller owns (a tar.gz file or a
 * pipe such as stdin).  When the input starts with the gzip magic it is
 * inflated with ISA-L, which decodes about three times as fast as zlib, in
 * a background thread that keeps a small ring of large blocks filled ahead
 * of the consumer, so that decompression runs on its own core while the
 * caller parses and chunks.  Any other input (zstd, xz, bzip2, plain tar)
 * passes through unchanged, read ahead the same way, and libarchive
 * detects its format itself.
 *
 * Gzip handling follows `gzip -dc`:
 *  - concatenated members are one stream; each member's CRC-32 and ISIZE
 *    are verified when its trailer is reached;
 *  - zero bytes after the last member (tape or block padding) are ignored
 *    silently;
 *  - other bytes after the last member are ignored, and
 *    gzstream_warning() says so once the end has been reached (gzip prints
 *    "decompression OK, trailing garbage ignored" and exits 2);
 *  - a lone 0x1f byte after a member is taken as the start of a member
 *    that is cut short, as gzip does.
 *
 * Decompressed bytes are handed out as soon as they are decoded, before
 * the member's CRC is checked: an error returned later invalidates
 * everything read from the stream.  Errors are sticky; every later read
 * returns the same code and message.
 *
 *   -ENODATA   the input is empty (gzstream_open)
 *   -EPIPE     the gzip stream ends inside a member: "cannot read
 *              'volume=-': gzip stream truncated at compressed byte 123456"
 *   -EBADMSG   corrupt gzip data: bad header, invalid deflate data, or a
 *              CRC-32/length mismatch, with the compressed byte offset
 *   -EIO etc.  read(2) failed
 *
 * Memory is bounded: nblocks * block_size bytes of decompressed data, one
 * input buffer of in_size bytes, and the inflate state (about 100 KiB).
 *
 * Threading: one gzstream is used by one consumer thread; the background
 * thread is internal.  The accessors below may be called from the consumer
 * thread at any time.
 */
#ifndef MV_GZSTREAM_H
#define MV_GZSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mv_err.h"

struct gzstream;

/* Tuning knobs; zero fields take the defaults.  Tests use tiny blocks to
 * reach block boundaries; tools/inflate_bench tries other sizes. */
struct gzstream_opts {
	size_t block_size; /* decompressed bytes per block, default 1 MiB,
			      at most 64 MiB */
	unsigned nblocks;  /* blocks in the ring, default 4, at least 2 */
	size_t in_size;	   /* bytes asked of each read(2), default 1 MiB */
};

#define GZSTREAM_BLOCK_SIZE (1u << 20)
#define GZSTREAM_NBLOCKS 4u
#define GZSTREAM_IN_SIZE (1u << 20)

/* Wrap fd, which the caller keeps owning and must not read while the
 * stream is open.  Reads the first bytes to detect gzip (this blocks on a
 * pipe until data or end of input arrives), then starts the background
 * thread.  label names the input in messages ("volume=-", a path) and is
 * copied.  Fails with -ENODATA and "cannot read 'LABEL': input is empty"
 * on an empty input, -ENOMEM, or a read(2) error.  *out is written only on
 * success. */
int gzstream_open(int fd, const char *label, struct gzstream **out,
		  struct mv_err *err);

/* gzstream_open with explicit sizes; opts may be NULL. */
int gzstream_open_opts(int fd, const char *label,
		       const struct gzstream_opts *opts, struct gzstream **out,
		       struct mv_err *err);

/* Copy up to len decompressed bytes into buf, waiting for the background
 * thread as needed.  *out_len < len only at the end of the stream or when
 * an error follows the bytes returned (the next call returns it);
 * *out_len == 0 means the end.  Returns 0 or a negative code (see above). */
int gzstream_read(struct gzstream *g, void *buf, size_t len, size_t *out_len,
		  struct mv_err *err);

/* Borrow the next run of decompressed bytes without copying: *out stays
 * valid until the next gzstream_read, gzstream_next_block or
 * gzstream_close call.  Bytes not yet taken by gzstream_read come first,
 * so both calls can be mixed.  *out_len == 0 (and *out == NULL) at the
 * end.  This is the shape of libarchive's read callback. */
int gzstream_next_block(struct gzstream *g, const void **out, size_t *out_len,
			struct mv_err *err);

/* Read and discard the rest of the stream, then report how it ended: 0
 * when it ended cleanly, else the error a read would have returned.  Call
 * it after libarchive has seen the end of the tar archive: libarchive stops
 * at the end-of-archive blocks, before the gzip trailer that holds the
 * CRC-32 and length, so without this a truncated or corrupt tail would go
 * unnoticed.  *out_skipped (may be NULL) receives the bytes discarded. */
int gzstream_finish(struct gzstream *g, uint64_t *out_skipped,
		    struct mv_err *err);

/* True when the input is gzip and is being inflated. */
bool gzstream_is_gzip(const struct gzstream *g);

/* Compressed bytes behind the decompressed bytes handed out so far (for
 * progress against the input's size).  In pass-through mode this equals
 * gzstream_total_out(). */
uint64_t gzstream_compressed_offset(const struct gzstream *g);

/* Bytes read from fd so far, including read-ahead. */
uint64_t gzstream_total_in(const struct gzstream *g);

/* Decompressed bytes handed out to the consumer so far. */
uint64_t gzstream_total_out(const struct gzstream *g);

/* A warning for the user once the end has been reached, such as
 * "'x.tar.gz': 8 bytes of trailing garbage after the gzip data at
 * compressed byte 1234 ignored", or NULL. */
const char *gzstream_warning(const struct gzstream *g);

/* Stop the background thread (also when it is blocked on a full ring or in
 * read(2) on a pipe), join it and free everything.  Does not close fd.
 * Accepts NULL. */
void gzstream_close(struct gzstream *g);

#endif
