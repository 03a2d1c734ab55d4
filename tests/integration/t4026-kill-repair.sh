#!/bin/sh
# t4026-kill-repair: SIGKILL check --repair of a damaged repository at
# each of its steps (the crash hook of mailvault-faults).  Each kill is
# checked to have happened at that step; afterwards the snapshot list is
# unchanged, the next check --repair completes (exit 3, or 0 when the
# killed one had committed), and check --read-data accepts the
# repository with the loss recorded.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/fault/fault-lib.sh"
require_mv
require_faults

gen --small --messages 30 --days 2 --out "$T/fx"
B=$T/base
assert_ok "$MV" init "$B" >/dev/null
for d in 1 2; do
	assert_ok "$MV" backup "$B" --name mail --quiet \
		--time "2024-05-0${d}T01:00:00Z" data="$T/fx/day$d"
done
victim=$(find "$B/packs" -type f -size +100k | sort | head -n 1)
[ -n "$victim" ] || die "no pack to damage"
printf '\377\377\377\377' |
	dd of="$victim" bs=1 seek=40000 conv=notrunc status=none
"$MV" snapshots "$B" >"$T/snaps-before"

rm -rf "$T/c"
cp -a "$B" "$T/c"
rc=0
MAILVAULT_TEST_STEPS=1 "$MVF" check --repair "$T/c" >/dev/null \
	2>"$T/steps" || rc=$?
assert_eq 3 "$rc" "exit of a whole check --repair"
n=$(sed -n 's/^test hook: \([0-9]*\) steps$/\1/p' "$T/steps")
[ -n "$n" ] && [ "$n" -ge 2 ] || die "no step count for check --repair"
say "check --repair takes $n steps; killing it at each"

k=1
while [ "$k" -le "$n" ]; do
	rm -rf "$T/c"
	cp -a "$B" "$T/c"
	rc=0
	MAILVAULT_TEST_CRASH_AT=$k "$MVF" check --repair "$T/c" \
		>/dev/null 2>"$T/err" || rc=$?
	[ "$rc" = 137 ] || die "check --repair not killed at step $k (exit $rc)"
	assert_grep "^test hook: killed at step $k " "$T/err"
	rm -f "$T/c/lock" # the killed process left it behind
	"$MV" snapshots "$T/c" >"$T/snaps" ||
		die "step $k: the repository does not open"
	cmp -s "$T/snaps-before" "$T/snaps" ||
		die "step $k: the snapshot list changed"
	rc=0
	"$MV" check --repair "$T/c" >/dev/null 2>"$T/rep" || rc=$?
	[ "$rc" = 3 ] || [ "$rc" = 0 ] || {
		cat "$T/rep"
		die "step $k: the next check --repair exits $rc"
	}
	"$MV" check --read-data "$T/c" >"$T/ck" 2>"$T/ckerr" || {
		cat "$T/ck" "$T/ckerr"
		die "step $k: check --read-data after the repair"
	}
	assert_grep '^known loss: [1-9][0-9]* files or directories' "$T/ck"
	k=$((k + 1))
done
ok
