/*
 * fuzz_tree: tree_decode() of any bytes (a directory object from a
 * repository).  A tree that decodes must find each of its entries by
 * name, deep-copy them, and re-encode to a fixed point: the encoding of
 * the decoded tree decodes and encodes to the same bytes.
 */
#include "fuzz.h"
#include "tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mv_buf a = MV_BUF_INIT, b = MV_BUF_INIT;
	struct mv_err err = MV_ERR_INIT;
	struct tree *t, *u;
	uint32_t i;

	if (tree_decode(data, size, &t, &err)) {
		FUZZ_CHECK(err.msg[0]);
		return 0;
	}
	for (i = 0; i < t->n; i++) {
		const struct tree_entry *e = &t->entries[i];
		struct tree_entry c;

		FUZZ_CHECK(tree_find(t, e->name, e->name_len) == e);
		FUZZ_CHECK(strlen(e->name) == e->name_len);
		FUZZ_CHECK(!tree_entry_copy(&c, e, &err));
		FUZZ_CHECK(c.name_len == e->name_len &&
			   !memcmp(c.name, e->name, e->name_len));
		tree_entry_release(&c);
	}
	FUZZ_CHECK(!tree_encode(t->entries, t->n, &a, &err));
	FUZZ_CHECK(!tree_decode(a.data, a.len, &u, &err));
	FUZZ_CHECK(u->n == t->n);
	FUZZ_CHECK(!tree_encode(u->entries, u->n, &b, &err));
	FUZZ_CHECK(a.len == b.len && !memcmp(a.data, b.data, a.len));
	tree_free(u);
	tree_free(t);
	mv_buf_release(&a);
	mv_buf_release(&b);
	return 0;
}
