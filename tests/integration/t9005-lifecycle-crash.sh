#!/bin/sh
# t9005-lifecycle-crash: SIGKILL at every step of prune and rebuild-index
# (the MAILVAULT_TEST_CRASH_AT hook of the test binary mailvault-faults,
# docs/TESTING.md) leaves a repository that passes check --read-data with
# every kept snapshot byte-exact, and a later run finishes the job.  Each
# kill is checked: the exit is SIGKILL's and the hook names the step.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/fault/fault-lib.sh"

require_mv
require_faults
R=$T/repo
gen --small --messages 60 --days 5 --out "$T/fx"
assert_ok "$MV" init "$R" >/dev/null
for d in 1 2 3 4 5; do
	assert_ok "$MV" backup "$R" --name mail \
		--time "2024-05-0${d}T01:00:00Z" --quiet data="$T/fx/day$d"
done
assert_ok "$MV" forget --keep-last 2 "$R" >/dev/null
cp -a "$R" "$T/base"

# verify: the kept snapshots are there, checkable and byte-exact
verify()
{
	"$MV" check --read-data "$1" >"$T/ck" 2>&1 ||
		{ cat "$T/ck"; die "check failed after a kill ($2)"; }
	for d in 4 5; do
		rm -rf "$T/out"
		"$MV" restore "$1" "mail/2024-05-0${d}T010000Z:data" \
			"$T/out" >/dev/null 2>&1 || die "restore day $d ($2)"
		assert_same_tree "$T/fx/day$d" "$T/out/data"
	done
}

# how many steps a full run takes
MAILVAULT_TEST_STEPS=1 "$MVF" prune --max-unused 0 "$T/base" \
	>/dev/null 2>"$T/steps" || die "prune failed"
n=$(sed -n 's/^test hook: \([0-9]*\) steps$/\1/p' "$T/steps")
[ -n "$n" ] && [ "$n" -gt 3 ] || die "no step count from the test hook"
say "prune takes $n steps; killing it at each"
rm -rf "$T/base"
cp -a "$R" "$T/base"
# every step near the commit and the deletions, a sample before
stride=$(((n - 10) / 8))
[ "$stride" -ge 1 ] || stride=1
k=1
while [ "$k" -le "$n" ]; do
	rm -rf "$T/c"
	cp -a "$T/base" "$T/c"
	set +e
	MAILVAULT_TEST_CRASH_AT=$k "$MVF" prune --max-unused 0 "$T/c" \
		>/dev/null 2>"$T/err"
	rc=$?
	set -e
	[ "$rc" = 137 ] || die "prune was not killed at step $k (exit $rc)"
	assert_grep "^test hook: killed at step $k " "$T/err"
	rm -f "$T/c/lock" # the killed process left it behind
	verify "$T/c" "prune killed at step $k"
	assert_ok "$MV" prune --max-unused 0 "$T/c" >"$T/p2"
	verify "$T/c" "prune after a kill at step $k"
	# the job is finished: nothing left to do
	"$MV" prune --dry-run --max-unused 0 "$T/c" >"$T/p3"
	assert_grep '^would delete 0 unused packs' "$T/p3"
	assert_grep '^would repack 0 packs' "$T/p3"
	if [ "$k" -lt $((n - 10)) ]; then
		k=$((k + stride))
	else
		k=$((k + 1))
	fi
done

say "rebuild-index killed at each step"
assert_ok "$MV" prune "$R" >/dev/null
"$MV" snapshots "$R" >"$T/s1"
MAILVAULT_TEST_STEPS=1 "$MVF" rebuild-index "$R" >/dev/null 2>"$T/steps"
n=$(sed -n 's/^test hook: \([0-9]*\) steps$/\1/p' "$T/steps")
[ -n "$n" ] && [ "$n" -gt 2 ] || die "no step count for rebuild-index"
k=1
while [ "$k" -le "$n" ]; do
	set +e
	MAILVAULT_TEST_CRASH_AT=$k "$MVF" rebuild-index "$R" >/dev/null \
		2>"$T/err"
	rc=$?
	set -e
	[ "$rc" = 137 ] || die "rebuild-index not killed at step $k"
	assert_grep "^test hook: killed at step $k " "$T/err"
	rm -f "$R/lock"
	verify "$R" "rebuild-index killed at step $k"
	"$MV" snapshots "$R" >"$T/s2"
	diff -u "$T/s1" "$T/s2" || die "snapshots changed (step $k)"
	k=$((k + 1))
done
say "index deleted, rebuild killed, then run again"
rm -f "$R"/index.db*
run_rc rc env MAILVAULT_TEST_CRASH_AT=2 "$MVF" rebuild-index "$R" \
	>/dev/null 2>"$T/err"
[ "$rc" = 137 ] || die "rebuild-index of a lost index not killed (exit $rc)"
rm -f "$R/lock"
assert_ok "$MV" rebuild-index "$R" >/dev/null
"$MV" snapshots "$R" >"$T/s2"
diff -u "$T/s1" "$T/s2" || die "snapshots changed after a killed rebuild"
verify "$R" "rebuild after a killed rebuild"
ok
