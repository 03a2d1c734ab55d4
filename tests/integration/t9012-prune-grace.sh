#!/bin/sh
# t9012: prune leaves unindexed pack files and temporary files younger than
# its grace period (1 hour; --orphan-grace, $MAILVAULT_PRUNE_GRACE): a
# backup whose lock was broken may still be writing them.  Older ones go.
. "$(dirname "$0")/../lib/test-lib.sh"

R=$T/repo
gen --small --messages 20 --days 1 --out "$T/fx"
assert_ok "$MV" init "$R" >/dev/null
assert_ok "$MV" backup "$R" --name mail --quiet data="$T/fx/day1"
pack=$(find "$R/packs" -type f | head -1)
mkdir -p "$R/packs/ff"
# what a running backup has written so far: a sealed pack, not yet in
# the index, and the pack it is filling
young=$R/packs/ff/ffffffffffffffffffffffffffffff01
cp "$pack" "$young"
echo filling >"$R/packs/ff/ffffffffffffffffffffffffffffff02.tmp"

say "default grace: both stay"
assert_ok "$MV" prune "$R" -v >"$T/p1" 2>"$T/p1err"
cat "$T/p1" "$T/p1err"
[ -e "$young" ] || die "prune removed a pack written a moment ago"
[ -e "$R/packs/ff/ffffffffffffffffffffffffffffff02.tmp" ] ||
	die "prune removed a temporary file written a moment ago"
assert_grep '^left 2 files not in the index that are younger than 3600 s' \
	"$T/p1"
assert_grep "leaving 'packs/ff/ffffffffffffffffffffffffffffff01' \\(not in the index" \
	"$T/p1err"
assert_no_grep '^removed ' "$T/p1"

say "the environment and the option set it"
touch -d '10 minutes ago' "$young"
assert_ok env MAILVAULT_PRUNE_GRACE=3600 "$MV" prune "$R" >"$T/p2"
[ -e "$young" ] || die "removed within MAILVAULT_PRUNE_GRACE"
assert_ok env MAILVAULT_PRUNE_GRACE=300 "$MV" prune "$R" >"$T/p3"
cat "$T/p3"
[ ! -e "$young" ] || die "a pack older than MAILVAULT_PRUNE_GRACE stayed"
assert_grep '^removed 1 files not in the index' "$T/p3"
[ -e "$R/packs/ff/ffffffffffffffffffffffffffffff02.tmp" ] ||
	die "a young temporary file went with the old pack"
assert_ok "$MV" prune --orphan-grace 0 "$R" >"$T/p4"
[ ! -e "$R/packs/ff/ffffffffffffffffffffffffffffff02.tmp" ] ||
	die "--orphan-grace 0 kept a temporary file"

say "bad values are refused"
assert_fail "$MV" prune --orphan-grace -1 "$R" >/dev/null 2>&1
assert_fail "$MV" prune --orphan-grace 1h "$R" >/dev/null 2>&1
set +e
MAILVAULT_PRUNE_GRACE=soon "$MV" prune "$R" >/dev/null 2>&1
rc=$?
set -e
assert_eq 2 "$rc" "exit status with a bad MAILVAULT_PRUNE_GRACE"
assert_ok "$MV" check --read-data "$R" >/dev/null
ok
