/*
 * fuzz_stalwart_json: the two JSON files of a Stalwart account export
 * (mailboxes.json, emails.json) as mail_stalwart_export_parse() gets them
 * from a backup source.  The input is split at its first NUL: mailboxes
 * before, emails after; without a NUL there is no mailboxes.json.
 */
#include "fuzz.h"
#include "mail_stalwart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mv_err err = MV_ERR_INIT;
	struct mail_stalwart_export exp;
	const uint8_t *nul = memchr(data, 0, size);
	char *mb = NULL, *em;
	size_t mb_len = 0, em_len;

	if (nul) {
		mb_len = (size_t)(nul - data);
		mb = fuzz_str(data, mb_len);
		em_len = size - mb_len - 1;
		em = fuzz_str(nul + 1, em_len);
	} else {
		em_len = size;
		em = fuzz_str(data, size);
	}
	memset(&exp, 0, sizeof(exp));
	if (!mail_stalwart_export_parse(mb, mb_len, em, em_len, &exp, &err)) {
		size_t i;

		for (i = 0; i < exp.n_mailboxes; i++) {
			const struct mail_stalwart_mailbox *m =
				&exp.mailboxes[i];

			FUZZ_CHECK(m->id && m->path);
			FUZZ_CHECK(mail_stalwart_mailbox_find(&exp, m->id));
		}
		for (i = 0; i < exp.n_emails; i++) {
			const struct mail_stalwart_email *e = &exp.emails[i];
			size_t j;

			for (j = 0; j < e->n_mailbox_ids; j++)
				(void)mail_stalwart_mailbox_find(
					&exp, e->mailbox_ids[j]);
			for (j = 0; j < e->n_keywords; j++)
				FUZZ_CHECK(e->keywords[j]);
		}
	}
	mail_stalwart_export_release(&exp);
	free(mb);
	free(em);
	return 0;
}
