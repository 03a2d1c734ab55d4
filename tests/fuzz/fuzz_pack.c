/*
 * fuzz_pack: a pack file as a repository serves it.  The first input byte
 * picks how short the backend's reads are; the rest is the pack, scanned
 * with pack_scan() as check and rebuild-index do.  Every record header is
 * decoded by pack_rec_decode(); uncompressed tree and snapshot records
 * go on to their decoders, as rebuild-index reads them.
 */
#include "fuzz.h"
#include "pack.h"
#include "snapshot.h"
#include "tree.h"

struct seen {
	uint64_t last;
	unsigned n;
};

static int on_record(const struct pack_rec *rec, uint64_t offset,
		     const void *payload, void *arg)
{
	struct seen *s = arg;
	struct mv_err err = MV_ERR_INIT;

	FUZZ_CHECK(!s->n || offset > s->last);
	FUZZ_CHECK(rec->stored_size <= PACK_MAX_RECORD);
	s->last = offset;
	s->n++;
	FUZZ_CHECK(payload);
	if (rec->comp != PACK_COMP_NONE || rec->raw_size != rec->stored_size)
		return 0;
	if (rec->type == REC_TREE) {
		struct tree *t;

		if (!tree_decode(payload, rec->stored_size, &t, &err))
			tree_free(t);
	} else if (rec->type == REC_SNAPSHOT) {
		struct snapshot sn;

		if (!snapshot_decode(payload, rec->stored_size, &sn, &err))
			snapshot_release(&sn);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_backend f;
	struct mv_err err = MV_ERR_INIT;
	struct seen s = {0, 0};
	struct pack_rec rec;
	bool sealed;
	int rc;

	if (!size)
		return 0;
	f.be.ops = &fuzz_be_ops;
	f.be.url = (char *)"fuzz";
	/* read through &f.be by fuzz_be_read_at() */
	/* cppcheck-suppress unreadVariable */
	f.cut = data[0] < 128 ? 0 : (size_t)(data[0] - 127);
	f.data = data + 1;
	f.size = size - 1;
	if (f.size >= PACK_HDR_LEN + PACK_REC_HDR_LEN)
		(void)pack_rec_decode(f.data + PACK_HDR_LEN, &rec);
	rc = pack_scan(&f.be, "packs/00/00", true, on_record, &s, &sealed,
		       &err);
	FUZZ_CHECK(rc <= 0);
	FUZZ_CHECK(!rc || err.msg[0]);
	FUZZ_CHECK(rc || sealed);
	return 0;
}
