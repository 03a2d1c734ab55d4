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

#define MV_ERR_MSG_MAX 1024

struct mv_err {
	int code;		  /* 0 or the first negative errno recorded */
	char msg[MV_ERR_MSG_MAX]; /* message for the user, "" when none */
};

#define MV_ERR_INIT   \
	{             \
		0, "" \
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
