/*
 * mv_err: the error record every fallible function fills.
 *
 * Library code returns 0 or a negative errno-style code and records a
 * message for the user in a struct mv_err; only commands print.  The first
 * error recorded wins: later calls keep it, so the message names the deepest
 * cause.  Messages are lower case, say the problem first, quote the subject
 * and then the location: "cannot read 'x.tar': entry 'a/b': truncated".
 */
#ifndef MV_ERR_H
#define MV_ERR_H

#include <stdarg.h>
#include <stdbool.h>

#define MV_ERR_MSG_MAX 1024

struct mv_err {
	int code;		  /* 0 or the first negative errno recorded */
	char msg[MV_ERR_MSG_MAX]; /* message for the user, "" when none */
	bool damaged; /* the repository's own bytes are bad (exit 13) */
};

#define MV_ERR_INIT          \
	{                    \
		0, "", false \
	}

#if defined(__GNUC__)
#define MV_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define MV_UNUSED __attribute__((unused))
#else
#define MV_PRINTF(a, b)
#define MV_UNUSED
#endif

/* Record an error unless one is already recorded; return code (< 0).
 * err may be NULL. */
int mv_err_set(struct mv_err *err, int code, const char *fmt, ...)
	MV_PRINTF(3, 4);

/* Like mv_err_set, and marks the error as damage to the repository itself
 * (a sealed index that does not open), which the command line exits 13
 * for: the same errno from a bad input stream stays a plain failure. */
int mv_err_set_damaged(struct mv_err *err, int code, const char *fmt, ...)
	MV_PRINTF(3, 4);

/* Like mv_err_set with a va_list. */
int mv_err_setv(struct mv_err *err, int code, const char *fmt, va_list ap);

/* Put "prefix: " before the recorded message (adds context on the way up).
 * Returns err->code. */
int mv_err_prefix(struct mv_err *err, const char *fmt, ...) MV_PRINTF(2, 3);

/* Forget the recorded error. */
void mv_err_clear(struct mv_err *err);

/* Message text for printing: the recorded message, or strerror(-code). */
const char *mv_err_msg(const struct mv_err *err);

#endif
