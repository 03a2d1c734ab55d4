#!/bin/sh
# t4021-kill-backup-steps: SIGKILL a backup at every step that changes the
# repository (each fsync, rename, unlink and mkdir under it, found by a
# counting run of the fault shim) and in the middle of its pack writes.
# After each kill: the kill happened where asked, check --read-data is
# clean, every earlier snapshot restores byte-exact, a snapshot shows only
# if it is whole, and the next backup succeeds and restores exact.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/fault/fault-lib.sh"
require_mv
require_faults

gen --small --messages 30 --days 2 --out "$T/fx"
# the second day adds data that is not in the first
head -c 1000000 /dev/urandom >"$T/fx/day2/new.bin"
B=$T/base
assert_ok "$MV" init "$B" >/dev/null
assert_ok "$MV" backup "$B" --name mail --quiet data="$T/fx/day1"
snap_ref "$B"
tree_digest "$T/fx/day2" >"$T/day2.digest"
"$MV" snapshots "$B" >"$T/snaps-before"
STEPS='fsync,rename,unlink,mkdir'

say "counting the steps of a backup"
rm -rf "$T/c"
cp -a "$B" "$T/c"
faulty "$STEPS:$T/c/*:count:kill;write:$T/c/packs/*:count:kill" \
	"$MV" backup "$T/c" --name mail --quiet data="$T/fx/day2" ||
	die "the counting backup failed"
# "op path" of each step, in order
awk '$2 == 0 { print $4, $5 }' "$T/fault.log" | sed "s|$T/c/||" >"$T/steps"
n=$(wc -l <"$T/steps")
w=$(awk '$2 == 1' "$T/fault.log" | wc -l)
say "$n steps, $w pack writes"
[ "$n" -ge 8 ] || die "only $n steps counted: the shim does not see them"
[ "$w" -ge 2 ] || die "only $w pack writes counted"

same_as_day2()
{
	tree_digest "$T/out/data" >"$T/out.digest"
	cmp -s "$T/day2.digest" "$T/out.digest" ||
		die "$1 does not restore byte-exact"
}

# kill_at RULE WHAT: a backup killed by RULE, then everything verified
kill_at()
{
	rm -rf "$T/c"
	cp -a "$B" "$T/c"
	rc=0
	faulty "$1" "$MV" backup "$T/c" --name mail --quiet \
		data="$T/fx/day2" >"$T/k.out" 2>&1 || rc=$?
	[ "$rc" = 137 ] || { cat "$T/k.out"; die "$2: exit $rc, not killed"; }
	grep -q ' kill$' "$T/fault.log" || die "$2: the shim did not kill"
	"$MV" snapshots "$T/c" >"$T/snaps" 2>&1 ||
		{ cat "$T/snaps"; die "$2: the repository does not open"; }
	if ! cmp -s "$T/snaps-before" "$T/snaps"; then
		# the kill came after the commit: that snapshot is whole
		rm -rf "$T/out"
		"$MV" restore "$T/c" mail/latest:data "$T/out" >/dev/null ||
			die "$2: the new snapshot does not restore"
		same_as_day2 "$2: the snapshot committed before the kill"
		say "$2: the snapshot was committed before the kill"
	fi
	verify_repo "$T/c" "$2"
	assert_ok "$MV" backup "$T/c" --name mail --quiet data="$T/fx/day2"
	rm -rf "$T/out"
	"$MV" restore "$T/c" mail/latest:data "$T/out" >/dev/null ||
		die "$2: the next backup does not restore"
	same_as_day2 "$2: the next backup"
}

k=1
while [ "$k" -le "$n" ]; do
	kill_at "$STEPS:$T/c/*:nth=$k:kill" \
		"step $k of $n ($(sed -n "${k}p" "$T/steps"))"
	k=$((k + 1))
done
for k in 1 $((w / 2)) "$w"; do
	kill_at "write:$T/c/packs/*:nth=$k:kill" "pack write $k of $w"
done
ok
