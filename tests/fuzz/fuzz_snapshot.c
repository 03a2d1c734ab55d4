/*
 * fuzz_snapshot: snapshot_decode() of any bytes (a record read from a
 * repository someone else may have written).  A record that decodes must
 * encode to bytes that decode to the same encoding again, copy, and name
 * a mount directory.
 */
#include "fuzz.h"
#include "snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mv_buf a = MV_BUF_INIT, b = MV_BUF_INIT;
	struct mv_err err = MV_ERR_INIT;
	struct snapshot s, d, c;
	char name[64];

	if (snapshot_decode(data, size, &s, &err)) {
		FUZZ_CHECK(err.msg[0]);
		return 0;
	}
	FUZZ_CHECK(s.name && s.host);
	FUZZ_CHECK(!snapshot_encode(&s, &a, &err));
	FUZZ_CHECK(!snapshot_decode(a.data, a.len, &d, &err));
	FUZZ_CHECK(!snapshot_encode(&d, &b, &err));
	FUZZ_CHECK(a.len == b.len && !memcmp(a.data, b.data, a.len));
	FUZZ_CHECK(!strcmp(s.name, d.name) && s.time_ns == d.time_ns);
	FUZZ_CHECK(s.ntags == d.ntags && s.root.n == d.root.n);
	FUZZ_CHECK(!snapshot_copy(&c, &s));
	snapshot_dir_name(&c, name, sizeof(name));
	FUZZ_CHECK(strlen(name) < sizeof(name) - 1);
	snapshot_release(&c);
	snapshot_release(&d);
	snapshot_release(&s);
	mv_buf_release(&a);
	mv_buf_release(&b);
	return 0;
}
