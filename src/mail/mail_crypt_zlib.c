/*
 * mail_crypt_zlib: the gzip, bzip2 and xz streams of Dovecot's zlib
 * plugin, read with libarchive's raw format (a single stream, any of the
 * filters it knows).  Kept apart from mail_crypt.c because libarchive is
 * loaded with the formats plugin, not by every mailvault command.
 */
#include "mail_crypt.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>

int mail_crypt_zlib_decode(const uint8_t *p, size_t n, size_t max_out,
			   struct mv_buf *out, struct mv_err *err)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	size_t start = out->len;
	int rc = 0;

	if (!a)
		return mv_err_set(err, -ENOMEM, "out of memory");
	archive_read_support_filter_all(a);
	archive_read_support_format_raw(a);
	if (archive_read_open_memory(a, p, n) != ARCHIVE_OK ||
	    archive_read_next_header(a, &e) != ARCHIVE_OK) {
		rc = mv_err_set(err, -EBADMSG, "corrupt compressed stream: %s",
				archive_error_string(a));
		goto out;
	}
	for (;;) {
		la_ssize_t got;

		rc = mv_buf_reserve(out, 65536);
		if (rc < 0) {
			mv_err_set(err, rc, "out of memory");
			goto out;
		}
		got = archive_read_data(a, out->data + out->len,
					out->cap - out->len);
		if (got < 0 && max_out && out->len > start)
			break; /* the prefix ends inside the stream */
		if (got < 0) {
			rc = mv_err_set(err, -EBADMSG,
					"truncated or corrupt compressed "
					"stream: %s",
					archive_error_string(a));
			goto out;
		}
		if (got == 0)
			break;
		out->len += (size_t)got;
		if (max_out && out->len - start >= max_out)
			break;
		if (out->len > MAIL_CRYPT_MAX_OUT) {
			rc = mv_err_set(err, -EMSGSIZE,
					"decompressed message too large");
			goto out;
		}
	}
out:
	archive_read_free(a);
	return rc;
}
