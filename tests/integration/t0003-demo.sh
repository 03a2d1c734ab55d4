#!/bin/sh
# t0003-demo: `make demo`'s script runs the main job end to end on a small
# volume: every day is stored, the repository verifies, and it is under
# half the size of the daily tar.gz files it replaces.
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv

MV_DEMO_DIR=$T/demo MV_DEMO_DAYS=3 MV_DEMO_MB=8 MV=$MV \
	sh "$TOP/tools/demo.sh" >"$T/out" 2>&1 || {
	tail -n 40 "$T/out" >&2
	die "demo.sh failed"
}
cat "$T/out"
repo=$T/demo/repo
"$MV" snapshots "$repo" >"$T/snaps"
assert_eq 4 "$(grep -c 'mail' "$T/snaps")" "snapshots listed"
assert_grep '2024-06-01' "$T/snaps"
assert_grep '2024-06-03' "$T/snaps"
assert_ok "$MV" check "$repo" --read-data
tgz=$(du -cb "$T"/demo/fixture/day*.tar.gz | tail -n 1 | cut -f 1)
rsz=$(du -sb "$repo" | cut -f 1)
say "3 tar.gz: $tgz bytes, repository: $rsz bytes"
# three days of mail cost little more than one
[ "$rsz" -lt $((tgz / 2)) ] ||
	die "repository ($rsz) not under half the tar.gz files ($tgz)"
assert_grep 'mailvault mount' "$T/out"
ok
