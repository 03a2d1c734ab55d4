/* mv_err: first-error-wins message record (see include/mv_err.h). */
#include "mv_err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int mv_err_setv(struct mv_err *err, int code, const char *fmt, va_list ap)
{
	if (code >= 0)
		code = -EIO;
	if (!err || err->code)
		return code;
	err->code = code;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	return code;
}

int mv_err_set(struct mv_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	code = mv_err_setv(err, code, fmt, ap);
	va_end(ap);
	return code;
}

int mv_err_set_damaged(struct mv_err *err, int code, const char *fmt, ...)
{
	bool first = err && !err->code;
	va_list ap;

	va_start(ap, fmt);
	code = mv_err_setv(err, code, fmt, ap);
	va_end(ap);
	if (first)
		err->damaged = true;
	return code;
}

int mv_err_prefix(struct mv_err *err, const char *fmt, ...)
{
	char old[MV_ERR_MSG_MAX];
	va_list ap;
	int n;

	if (!err)
		return -EIO;
	snprintf(old, sizeof(old), "%s", mv_err_msg(err));
	va_start(ap, fmt);
	n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n + 3 < sizeof(err->msg)) {
		size_t at = (size_t)n, len = strlen(old);

		if (len > sizeof(err->msg) - at - 3)
			len = sizeof(err->msg) - at - 3;
		memcpy(err->msg + at, ": ", 2);
		memcpy(err->msg + at + 2, old, len);
		err->msg[at + 2 + len] = '\0';
	}
	return err->code;
}

void mv_err_clear(struct mv_err *err)
{
	if (!err)
		return;
	err->code = 0;
	err->msg[0] = '\0';
	err->damaged = false;
}

const char *mv_err_msg(const struct mv_err *err)
{
	if (err->msg[0])
		return err->msg;
	return strerror(err->code < 0 ? -err->code : err->code);
}
