/*
 * view_cat: write the content of one entry of a snapshot to stdout the way
 * a reader of the mail view must produce it: mail_view_read() for entries
 * with a content transform (mailcow mail_crypt, Stalwart dump messages),
 * the chunks as they are otherwise.  For tests of the view independent of
 * cat, restore and the mount.
 *
 *   view_cat REPO SNAP:PATH
 *
 * Exit 0, 1 on error (the message on stderr), 2 usage.
 */
#include <stdio.h>

#include "../src/cli/cli.h"
#include "mail_view.h"
#include "repo.h"
#include "snapshot.h"
#include "tree.h"

int main(int argc, char **argv)
{
	struct mv_err err = MV_ERR_INIT;
	struct mv_buf out = MV_BUF_INIT, chunk = MV_BUF_INIT;
	struct snapshot snap;
	struct tree_entry e;
	struct repo *r = NULL;
	int rc = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: view_cat REPO SNAP:PATH\n");
		return 2;
	}
	if (cli_open_entry(argv[1], argv[2], &r, &snap, &e, NULL, &err)) {
		fprintf(stderr, "view_cat: %s\n", mv_err_msg(&err));
		return 1;
	}
	if (e.xform != TREE_XFORM_NONE) {
		rc = mail_view_read(r, &e, &out, &err);
	} else {
		for (uint32_t i = 0; !rc && i < e.nchunks; i++) {
			rc = repo_chunk_read(r, e.chunks[i].id, true, &chunk,
					     &err);
			if (!rc && mv_buf_append(&out, chunk.data, chunk.len))
				rc = -1;
		}
	}
	if (!rc && out.len &&
	    fwrite(out.data, 1, out.len < e.size ? out.len : e.size, stdout) ==
		    0)
		rc = -1;
	if (rc)
		fprintf(stderr, "view_cat: %s\n", mv_err_msg(&err));
	mv_buf_release(&out);
	mv_buf_release(&chunk);
	tree_entry_release(&e);
	snapshot_release(&snap);
	repo_close(r);
	return rc ? 1 : 0;
}
