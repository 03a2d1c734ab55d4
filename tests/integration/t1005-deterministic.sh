#!/bin/sh
# t1005-deterministic: the stored result does not depend on thread timing.
# Two copies of one empty repository (same secret, so the same keyed
# chunker and ids) take the same two days; their indexes list the same
# records at the same pack offsets with the same stored sizes.
. "$(dirname "$0")/../lib/test-lib.sh"

require_cmd sqlite3
gen --small --days 2 --tar --out "$T/fx"
"$MV" init "$T/a" >/dev/null
cp -a "$T/a" "$T/b"
for r in a b; do
	for d in 1 2; do
		assert_ok "$MV" backup "$T/$r" --name mail --quiet \
			--time "2024-06-0${d}T03:00:00Z" \
			volume="$T/fx/day$d.tar.gz"
	done
	sqlite3 "$T/$r/index.db" "SELECT hex(id), type, comp, offset,
		stored_size, raw_size FROM chunks ORDER BY id" >"$T/$r.list"
	sqlite3 "$T/$r/index.db" "SELECT hex(id) FROM snapshots
		ORDER BY time_ns" >"$T/$r.snaps"
done
[ -s "$T/a.list" ] || die "no chunks listed"
cmp "$T/a.list" "$T/b.list" || die "the two repositories stored different records"
cmp "$T/a.snaps" "$T/b.snaps" || die "the snapshot ids differ"
say "$(wc -l <"$T/a.list") records, identical in both"
ok
