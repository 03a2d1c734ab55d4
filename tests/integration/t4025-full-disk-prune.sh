#!/bin/sh
# t4025-full-disk-prune: prune and backup on a repository whose tmpfs is
# full to the last block.  Each fails with exit 1 and "No space left" /
# "disk full" naming the file, changes no snapshot, and leaves no lock;
# once space is freed, check --read-data is clean, every snapshot
# restores byte-exact, and prune finishes its job.  (Reading on a disk
# full to the last block is not asked here: SQLite needs room for the
# index's -shm file; docs/TESTING.md.)
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/fault/fault-lib.sh"
require_mv
require_root

M=$T/small
mkdir "$M"
mount -t tmpfs -o size=24m tmpfs "$M" || die "cannot mount a tmpfs"
at_exit "umount -l '$M'"
R=$M/repo

gen --small --messages 30 --days 3 --out "$T/fx"
for d in 1 2 3; do
	head -c 1500000 /dev/urandom >"$T/fx/day$d/only-day$d.bin"
done
assert_ok "$MV" init "$R" >/dev/null
for d in 1 2 3; do
	assert_ok "$MV" backup "$R" --name mail --quiet \
		--time "2024-05-0${d}T01:00:00Z" data="$T/fx/day$d"
done
assert_ok "$MV" forget --keep-last 1 "$R" >/dev/null
snap_ref "$R"
"$MV" snapshots "$R" >"$T/snaps-before"

# fill [KIB]: fill the tmpfs, leaving KIB KiB free
fill()
{
	dd if=/dev/zero of="$M/fill" bs=16k >/dev/null 2>&1 || true
	[ "${1:-0}" = 0 ] ||
		truncate -s "-${1}K" "$M/fill"
	df -k "$M" | sed 's/^/# /'
}

# full RC-FILE ERR-FILE WHAT: the command failed cleanly on a full disk
full()
{
	sed 's/^/# /' "$2"
	assert_eq 1 "$(cat "$1")" "exit of $3 on a full disk"
	assert_grep 'No space left on device|disk full|disk is full' "$2"
	# the file, or the index (SQLite names no file)
	assert_grep "'[^']*$M/repo/[^']*'|'packs/[^']*'|index: " "$2"
	assert_no_grep 'INTERNAL|Assertion|Sanitizer|runtime error' "$2"
	[ ! -e "$R/lock" ] || die "$3 left its lock on a full disk"
	rm -f "$M/fill"
	"$MV" snapshots "$R" >"$T/snaps" 2>"$T/s.err" || {
		cat "$T/s.err"
		die "the snapshot list does not read after $3"
	}
	cmp -s "$T/snaps-before" "$T/snaps" ||
		die "$3 on a full disk changed the snapshots"
}

say "prune on a full disk"
fill
rc=0
"$MV" prune --max-unused 0 "$R" >"$T/p.out" 2>"$T/p.err" || rc=$?
echo "$rc" >"$T/rc"
full "$T/rc" "$T/p.err" "prune"

say "prune on a disk with room for its lock, not for its new packs"
fill 400
rc=0
"$MV" prune --max-unused 0 "$R" >"$T/p.out" 2>"$T/p.err" || rc=$?
echo "$rc" >"$T/rc"
full "$T/rc" "$T/p.err" "prune (repack)"
verify_repo "$R" "after prune on a full disk"

cp -a "$T/fx/day3" "$T/day4"
head -c 2000000 /dev/urandom >"$T/day4/new.bin"
for free in 0 400; do
	say "backup on a full disk ($free KiB free)"
	fill "$free"
	rc=0
	"$MV" backup "$R" --name mail --quiet data="$T/day4" \
		>/dev/null 2>"$T/b.err" || rc=$?
	echo "$rc" >"$T/rc"
	full "$T/rc" "$T/b.err" "backup"
	assert_grep 'no snapshot was written' "$T/b.err"
done

say "space freed: everything intact, prune finishes"
verify_repo "$R" "after the full disk"
assert_ok "$MV" prune --max-unused 0 "$R" >/dev/null
"$MV" prune --dry-run --max-unused 0 "$R" >"$T/p3"
assert_grep '^would delete 0 unused packs' "$T/p3"
verify_repo "$R" "after prune"
rm -rf "$T/out"
assert_ok "$MV" restore "$R" mail/latest:data "$T/out" >/dev/null
assert_same_tree "$T/fx/day3" "$T/out/data"
ok
