#!/bin/sh
# t4024-read-faults: EIO and short reads from pack files (the fault shim)
# under restore, cat and the FUSE mount.  A read that fails is an error
# naming the pack and offset (restore, cat: non-zero exit; the mount:
# EIO for that file) and never other bytes: what a failed read wrote out
# is a prefix of the true content.  Files in other packs stay readable;
# short reads are completed; the repository is unharmed afterwards.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/fault/fault-lib.sh"
require_mv
require_faults
require_root
require_fuse

gen --small --messages 20 --days 1 --out "$T/fx"
head -c 2000000 /dev/urandom >"$T/fx/day1/big.bin"
R=$T/repo
assert_ok "$MV" init "$R" >/dev/null
assert_ok "$MV" backup "$R" --name mail --quiet data="$T/fx/day1"
snap_ref "$R"
# big.bin does not compress: the largest pack holds it
DP=$(ls -S "$R"/packs/*/* | head -n 1)
say "data pack: ${DP#"$R"/}"

# prefix_of GOT WANT: GOT is empty or a prefix of WANT
prefix_of()
{
	_n=$(stat -c %s "$1")
	[ "$_n" -le "$(stat -c %s "$2")" ] &&
		cmp -s -n "$_n" "$1" "$2" || die "$3: wrong bytes ($_n read)"
}

say "restore with EIO on the data pack"
rm -rf "$T/out"
rc=0
faulty "read:$DP:always:eio" "$MV" restore "$R" mail/latest:data "$T/out" \
	>/dev/null 2>"$T/r.err" || rc=$?
cat "$T/r.err"
[ "$rc" != 0 ] && [ "$rc" -lt 128 ] || die "restore exit $rc under EIO"
grep -q ' fail$' "$T/fault.log" || die "no EIO was injected"
# format 1 names the pack and offset, format 2 the pack and the record
assert_grep "pack ('packs/.*' at offset [0-9]+|[0-9a-f]{32}: record [0-9a-f]+).*Input/output error" \
	"$T/r.err"
if [ -f "$T/out/data/big.bin" ]; then
	prefix_of "$T/out/data/big.bin" "$T/fx/day1/big.bin" "restore"
fi

say "cat with EIO on the data pack"
rc=0
faulty "read:$DP:always:eio" "$MV" cat "$R" mail/latest:data/big.bin \
	>"$T/cat.out" 2>"$T/c.err" || rc=$?
cat "$T/c.err"
[ "$rc" != 0 ] && [ "$rc" -lt 128 ] || die "cat exit $rc under EIO"
assert_grep "Input/output error" "$T/c.err"
prefix_of "$T/cat.out" "$T/fx/day1/big.bin" "cat"

say "short reads everywhere are completed"
rm -rf "$T/out"
faulty "read:$R/*:always:short" "$MV" restore "$R" mail/latest:data \
	"$T/out" >/dev/null || die "restore with short reads failed"
grep -q ' short$' "$T/fault.log" || die "no short read was injected"
assert_same_tree "$T/fx/day1" "$T/out/data"

say "the mount answers EIO, never other bytes"
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
LD_PRELOAD=$FAULTSHIM MVFAULT="read:$DP:always:eio"
export LD_PRELOAD MVFAULT ASAN_OPTIONS
mount_mv "$R" "$T/mnt"
unset LD_PRELOAD MVFAULT
F=$T/mnt/mail/latest/data/big.bin
[ -e "$F" ] || die "big.bin is not listed in the mount"
rc=0
cat "$F" >"$T/m.out" 2>"$T/m.err" || rc=$?
cat "$T/m.err"
[ "$rc" != 0 ] || die "reading big.bin through the mount succeeded"
assert_grep "Input/output error" "$T/m.err"
prefix_of "$T/m.out" "$T/fx/day1/big.bin" "the mount"
# a file in another pack (the config is in the first small pack, if any)
# and the directory tree stay readable
ls -R "$T/mnt/mail/latest/data" >/dev/null || die "the tree does not list"
unmount_mv "$T/mnt"
verify_repo "$R" "after the read faults"
ok
