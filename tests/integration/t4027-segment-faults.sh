#!/bin/sh
# t4027-segment-faults: the commit of an encrypted repository is its
# commit segment (docs/FORMAT-2.md 5.3).  A backup killed or failing at
# the segment's rename leaves packs no segment names and nothing else: no
# snapshot, check --read-data clean, every earlier snapshot byte-exact,
# the next backup works.  A failure after the rename (the sync of index/)
# has an unknown outcome: said so, the packs are kept, and the snapshot
# that shows (replayed by the next open) is whole.  Each case replays the
# repository into a fresh cache, as another machine would.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/fault/fault-lib.sh"
require_mv
require_faults

export MAILVAULT_PASSPHRASE="fault horse" MAILVAULT_KDF_TEST=1
gen --small --messages 30 --days 2 --out "$T/fx"
B=$T/base
export XDG_CACHE_HOME=$T/cache-base
assert_ok "$MV" init --encryption xchacha20-poly1305 "$B" >/dev/null
assert_ok "$MV" backup "$B" --name mail --quiet data="$T/fx/day1"
snap_ref "$B"
"$MV" snapshots "$B" >"$T/snaps-before"
tree_digest "$T/fx/day2" --no-root >"$T/day2.digest"
C=$T/c
n=0

# fresh: C a copy of the base repository, with a cache of its own
fresh()
{
	n=$((n + 1))
	rm -rf "$C"
	cp -a "$B" "$C"
	export XDG_CACHE_HOME=$T/cache-$n
	segs_before=$(ls "$C/index" | grep -c '^[0-9a-f]\{32\}$')
}

same_as_day2()
{
	rm -rf "$T/out"
	"$MV" restore "$C" mail/latest:data "$T/out" >/dev/null ||
		die "$1: the new snapshot does not restore"
	tree_digest "$T/out/data" --no-root >"$T/out.digest"
	cmp -s "$T/day2.digest" "$T/out.digest" ||
		die "$1: the new snapshot does not restore byte-exact"
}

# nothing_changed WHAT: no snapshot, no segment, all else sound
nothing_changed()
{
	assert_eq "$segs_before" "$(ls "$C/index" | grep -c '^[0-9a-f]\{32\}$')" \
		"$1: segments after the failed backup"
	"$MV" snapshots "$C" >"$T/snaps"
	cmp -s "$T/snaps-before" "$T/snaps" || die "$1: a snapshot appeared"
	export XDG_CACHE_HOME=$T/cache-$n-other
	"$MV" snapshots "$C" >"$T/snaps"
	cmp -s "$T/snaps-before" "$T/snaps" ||
		die "$1: a snapshot appeared to another machine"
	verify_repo "$C" "$1"
	assert_ok "$MV" backup "$C" --name mail --quiet data="$T/fx/day2"
	same_as_day2 "$1: the next backup"
}

# The segment's rename failing (EIO) or the backup killed there: either
# way no snapshot and nothing else changed.
for how in eio kill; do
	case $how in
	eio)
		what="EIO at the rename of the segment"
		spec="rename:$C/index/*:always:eio" want=1
		;;
	kill)
		what="killed at the rename of the segment"
		spec="rename:$C/index/*:nth=1:kill" want=137
		;;
	esac
	say "$what"
	fresh
	rc=0
	faulty "$spec" "$MV" backup "$C" \
		--name mail --quiet data="$T/fx/day2" 2>"$T/b.err" || rc=$?
	sed 's/^/# /' "$T/b.err"
	assert_eq "$want" "$rc" "exit of the backup: $what"
	assert_no_grep 'INTERNAL|Assertion|Sanitizer|runtime error' "$T/b.err"
	if [ "$how" = eio ]; then
		grep -q ' fail$' "$T/fault.log" || die "no rename fault was injected"
		assert_grep 'no snapshot was written' "$T/b.err"
		[ ! -e "$C/lock" ] || die "the failed backup left its lock"
	else
		ls "$C/packs"/*/* >/dev/null 2>&1 || die "no pack was sealed before"
	fi
	nothing_changed "$what"
done

say "EIO at the sync of index/ after the rename: outcome unknown"
fresh
rc=0
faulty "fsync:$C/index:always:eio" "$MV" backup "$C" \
	--name mail --quiet data="$T/fx/day2" 2>"$T/b.err" || rc=$?
sed 's/^/# /' "$T/b.err"
assert_eq 1 "$rc" "exit of the backup whose index/ sync failed"
grep -q ' fail$' "$T/fault.log" || die "no fsync fault was injected"
assert_grep 'unknown' "$T/b.err"
assert_no_grep 'INTERNAL|Assertion|Sanitizer|runtime error' "$T/b.err"
"$MV" snapshots "$C" >"$T/snaps"
if ! cmp -s "$T/snaps-before" "$T/snaps"; then
	same_as_day2 "the snapshot of the unknown commit"
fi
export XDG_CACHE_HOME=$T/cache-$n-other
"$MV" snapshots "$C" >"$T/snaps2"
cmp -s "$T/snaps" "$T/snaps2" || die "two machines disagree after it"
verify_repo "$C" "index/ sync EIO"
ok
