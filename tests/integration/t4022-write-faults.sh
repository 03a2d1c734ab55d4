#!/bin/sh
# t4022-write-faults: EIO, ENOSPC and short writes from the disk under a
# backup, injected with the fault shim (tests/fault/faultshim.c) at each
# kind of write a backup makes: pack data, pack fsync, pack rename, the
# packs/XX directory, pack creation, the index and the catalogue.  A failed
# backup exits 1 with an error naming the file and "no snapshot was
# written", leaves no lock and no snapshot; check --read-data stays clean,
# the earlier snapshot restores byte-exact and the next backup works.  A
# failed fsync of the index leaves the outcome unknown: said so, and a
# snapshot that shows is whole.
# Short writes are completed, not stored short.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/fault/fault-lib.sh"
require_mv
require_faults

gen --small --messages 30 --days 2 --out "$T/fx"
head -c 1000000 /dev/urandom >"$T/fx/day2/new.bin"
B=$T/base
assert_ok "$MV" init "$B" >/dev/null
assert_ok "$MV" backup "$B" --name mail --quiet data="$T/fx/day1"
snap_ref "$B"
"$MV" snapshots "$B" >"$T/snaps-before"
tree_digest "$T/fx/day2" >"$T/day2.digest"
C=$T/c

same_as_day2()
{
	rm -rf "$T/out"
	"$MV" restore "$C" mail/latest:data "$T/out" >/dev/null ||
		die "$1: the new snapshot does not restore"
	tree_digest "$T/out/data" >"$T/out.digest"
	cmp -s "$T/day2.digest" "$T/out.digest" ||
		die "$1: the new snapshot does not restore byte-exact"
}

# fails RULE ERROR-PATTERN: the backup under RULE fails cleanly
fails()
{
	rm -rf "$C"
	cp -a "$B" "$C"
	say "$1"
	rc=0
	faulty "$1" "$MV" backup "$C" --name mail --quiet \
		data="$T/fx/day2" >"$T/b.out" 2>"$T/b.err" || rc=$?
	sed "s|^|# |" "$T/b.err"
	assert_eq 1 "$rc" "exit of the backup under $1"
	grep -q ' fail$' "$T/fault.log" || die "$1: no fault was injected"
	assert_grep "$2" "$T/b.err"
	assert_grep 'no snapshot was written' "$T/b.err"
	assert_no_grep 'INTERNAL|Assertion|Sanitizer|runtime error' "$T/b.err"
	[ ! -e "$C/lock" ] || die "$1: the failed backup left its lock"
	"$MV" snapshots "$C" >"$T/snaps"
	cmp -s "$T/snaps-before" "$T/snaps" || die "$1: a snapshot appeared"
	verify_repo "$C" "$1"
	assert_ok "$MV" backup "$C" --name mail --quiet data="$T/fx/day2"
	same_as_day2 "$1: the next backup"
	assert_ok "$MV" check --read-data "$C" >/dev/null
}

P="$C/packs/*"
say "EIO and ENOSPC at each kind of write"
fails "write:$P:nth=2:eio" "cannot write '.*packs/.*': Input/output error"
fails "write:$P:after=0:enospc" "disk full writing '.*packs/.*'"
fails "fsync:$P.tmp*:nth=1:enospc" \
	"cannot sync '.*packs/.*': No space left on device"
fails "rename:$P:nth=1:eio" "cannot rename '.*packs/.*': Input/output error"
fails "mkdir:$P:always:eio" \
	"cannot create directory '.*packs/..': Input/output error"
fails "open:$P:always:enospc" \
	"cannot create '.*packs/.*': No space left on device"
fails "write:$C/index.db*:always:eio" "index.*I/O error"
fails "write:$C/catalog.db*:always:eio" "catalog.*I/O error"

say "EIO at the index's fsync: outcome unknown, packs kept, nothing lost"
rm -rf "$C"
cp -a "$B" "$C"
rc=0
faulty "fsync:$C/index.db*:always:eio" "$MV" backup "$C" --name mail \
	--quiet data="$T/fx/day2" 2>"$T/b.err" || rc=$?
sed 's/^/# /' "$T/b.err"
assert_eq 1 "$rc" "exit of the backup whose index fsync failed"
grep -q ' fail$' "$T/fault.log" || die "no fsync fault was injected"
assert_grep 'unknown' "$T/b.err"
assert_no_grep 'INTERNAL|Assertion|Sanitizer|runtime error' "$T/b.err"
"$MV" snapshots "$C" >"$T/snaps"
if ! cmp -s "$T/snaps-before" "$T/snaps"; then
	same_as_day2 "the snapshot of the unknown commit"
fi
verify_repo "$C" "index fsync EIO"
assert_ok "$MV" prune --max-unused 0 "$C" >/dev/null
verify_repo "$C" "prune after the index fsync EIO"

say "short writes everywhere in the repository are completed"
rm -rf "$C"
cp -a "$B" "$C"
faulty "write:$C/*:always:short" "$MV" backup "$C" --name mail --quiet \
	data="$T/fx/day2" 2>"$T/b.err" || {
	cat "$T/b.err"
	die "a backup with short writes failed"
}
[ "$(grep -c ' short$' "$T/fault.log")" -gt 10 ] ||
	die "hardly any short write was injected"
assert_ok "$MV" check --read-data "$C" >/dev/null
same_as_day2 "short writes"
verify_repo "$C" "short writes"
ok
