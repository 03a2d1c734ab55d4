/*
 * fuzz_mail_msg: a message's MIME header and parts as GMime parses them
 * for the view and the catalogue (mail_msg_parse), and one raw header
 * value decoded (RFC 2047, 8-bit, folding).
 */
#include "fuzz.h"
#include "mail_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mv_err err = MV_ERR_INIT;
	struct mail_msg m;
	char *s, *h;

	memset(&m, 0, sizeof(m));
	if (!mail_msg_parse(data, size, 1700000000, MAIL_MSG_WANT_BODY, &m,
			    &err)) {
		size_t i;

		FUZZ_CHECK(m.size == size);
		for (i = 0; i < m.n_attachments; i++)
			FUZZ_CHECK(m.attachments[i]);
	}
	mail_msg_release(&m);
	s = fuzz_str(data, size < 4096 ? size : 4096);
	h = mail_msg_decode_header(s);
	FUZZ_CHECK(h);
	free(h);
	free(s);
	return 0;
}
