/*
 * util: small helpers every module uses - a growable byte buffer, hex,
 * whole-buffer I/O on file descriptors, directory fsync, time formatting.
 */
#ifndef MV_UTIL_H
#define MV_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mv_err.h"

#define MV_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MV_MIN(a, b) ((a) < (b) ? (a) : (b))
#define MV_MAX(a, b) ((a) > (b) ? (a) : (b))

/* A growable byte buffer.  data is NULL until the first append; len bytes
 * are valid; the owner frees with mv_buf_release(). */
struct mv_buf {
	uint8_t *data; /* bytes, or NULL when empty */
	size_t len;    /* bytes in use */
	size_t cap;    /* bytes allocated */
};

#define MV_BUF_INIT        \
	{                  \
		NULL, 0, 0 \
	}

/* Make room for n more bytes; returns 0 or -ENOMEM. */
int mv_buf_reserve(struct mv_buf *b, size_t n);
int mv_buf_append(struct mv_buf *b, const void *p, size_t n);
int mv_buf_put_u8(struct mv_buf *b, uint8_t v);
int mv_buf_put_le32(struct mv_buf *b, uint32_t v);
int mv_buf_put_le64(struct mv_buf *b, uint64_t v);
/* LEB128 unsigned varint. */
int mv_buf_put_varint(struct mv_buf *b, uint64_t v);
/* varint length followed by the bytes. */
int mv_buf_put_bytes(struct mv_buf *b, const void *p, size_t n);
void mv_buf_reset(struct mv_buf *b);
void mv_buf_release(struct mv_buf *b);

/* A bounded reader over bytes someone else owns.  Every get fails with
 * -EBADMSG once the input is exhausted or malformed; the position stays. */
struct mv_reader {
	const uint8_t *p; /* next byte */
	const uint8_t *end;
};

void mv_reader_init(struct mv_reader *r, const void *p, size_t n);
int mv_reader_u8(struct mv_reader *r, uint8_t *out);
int mv_reader_le32(struct mv_reader *r, uint32_t *out);
int mv_reader_le64(struct mv_reader *r, uint64_t *out);
int mv_reader_varint(struct mv_reader *r, uint64_t *out);
/* Borrow n bytes that follow a varint length; *out points into the input. */
int mv_reader_bytes(struct mv_reader *r, const uint8_t **out, size_t *out_len);
int mv_reader_fixed(struct mv_reader *r, void *out, size_t n);
bool mv_reader_done(const struct mv_reader *r);

static inline uint32_t mv_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint64_t mv_le64(const uint8_t *p)
{
	return (uint64_t)mv_le32(p) | (uint64_t)mv_le32(p + 4) << 32;
}

static inline void mv_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline void mv_put_le64(uint8_t *p, uint64_t v)
{
	mv_put_le32(p, (uint32_t)v);
	mv_put_le32(p + 4, (uint32_t)(v >> 32));
}

/* Lower-case hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void mv_hex(const void *p, size_t n, char *out);
/* The value of one hex digit, or -1. */
int mv_hexval(int c);
/* Parse exactly 2n hex digits; returns 0 or -EINVAL. */
int mv_unhex(const char *hex, void *out, size_t n);

/* write(2)/pread(2) until done; return 0 or -errno. */
int mv_write_full(int fd, const void *p, size_t n);
int mv_pread_full(int fd, void *p, size_t n, off_t off);
/* Read a whole file up to max bytes into a new buffer (NUL-terminated). */
int mv_read_file(const char *path, size_t max, char **out, size_t *out_len,
		 struct mv_err *err);
/* Write path.tmp, fsync, rename over path, fsync the directory. */
int mv_write_file_atomic(const char *path, const void *p, size_t n,
			 struct mv_err *err);
/* The same, the file created with mode (0600 for the private cache). */
int mv_write_file_atomic_mode(const char *path, const void *p, size_t n,
			      mode_t mode, struct mv_err *err);
/* fsync the directory that holds path (or the directory path itself). */
int mv_fsync_dir(const char *dir);
/* mkdir -p; returns 0 or -errno. */
int mv_mkdir_p(const char *path, mode_t mode);
/* Create path empty with mode 0600 if it does not exist, so that a
 * library creating it later (SQLite: 0644 less the umask) keeps that mode;
 * returns 0 or -errno. */
int mv_create_private(const char *path);

/* Current time in nanoseconds since the epoch (UTC). */
int64_t mv_now_ns(void);
/* "2024-05-01T120000Z" style name used in the mount (no colons).  out
 * must hold 32 bytes. */
void mv_time_name(int64_t ns, char *out, size_t n);
/* ISO 8601 "2024-05-01T12:00:00Z". */
void mv_time_iso(int64_t ns, char *out, size_t n);
/* Parse "2024-05-01", "2024-05-01T12:00[:00][Z]", "2024-05-01T120000Z" or
 * "@SECONDS" as UTC; returns 0 or -EINVAL. */
int mv_time_parse(const char *s, int64_t *out_ns);

/* Human-readable size ("1.5 MiB") into out. */
void mv_human_size(uint64_t n, char *out, size_t len);

/* malloc that records -ENOMEM in err on failure. */
void *mv_alloc(size_t n, struct mv_err *err);
char *mv_strdup(const char *s, struct mv_err *err);

#endif
