#!/bin/sh
# t4002-full-disk: a repository on a small tmpfs fills up mid-backup: the
# backup fails with a clear "No space" error and a non-zero exit, no
# snapshot appears, earlier snapshots stay intact, and once space is
# freed the next backup works.
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv
require_root

M=$T/small
mkdir "$M"
mount -t tmpfs -o size=8m tmpfs "$M" || skip "cannot mount a tmpfs"
# unmounted at exit by test-lib's cleanup, which keeps the test's status
echo "$M" >>"$T/.tl-mounts"
R=$M/repo

gen --small --days 1 --tar --out "$T/fx"
assert_ok "$MV" init "$R"
assert_ok "$MV" backup "$R" --name mail volume="$T/fx/day1.tar.gz"
mkdir "$T/ref"
assert_ok "$MV" restore "$R" mail/latest:volume "$T/ref"
tree_digest "$T/ref/volume" >"$T/ref.digest"
"$MV" snapshots "$R" >"$T/snaps-before"
df -k "$M" | sed 's/^/# /'

head -c $((12 << 20)) /dev/urandom >"$T/big.bin"
mkdir "$T/bigsrc"
mv "$T/big.bin" "$T/bigsrc/"
say "a 12 MiB incompressible source into what is left of 8 MiB"
set +e
"$MV" backup "$R" --name big data="$T/bigsrc" >"$T/b.out" 2>"$T/b.err"
rc=$?
set -e
cat "$T/b.out" "$T/b.err"
assert_eq 1 "$rc" "exit code of the backup on a full disk"
assert_grep 'disk full|No space left on device' "$T/b.err"
assert_grep 'no snapshot was written' "$T/b.err"
assert_no_grep 'INTERNAL|Assertion|sanitizer' "$T/b.err"
"$MV" snapshots "$R" >"$T/snaps"
cmp -s "$T/snaps-before" "$T/snaps" || die "the snapshot list changed"
[ ! -f "$R/lock" ] || die "the failed backup left its lock"
df -k "$M" | sed 's/^/# after: /'

say "the same from a tar stream on stdin"
tar -czf - -C "$T/bigsrc" . >"$T/big.tgz"
set +e
"$MV" backup "$R" --name big data=- <"$T/big.tgz" >"$T/s.out" 2>"$T/s.err"
rc=$?
set -e
cat "$T/s.err"
assert_eq 1 "$rc" "exit code of the stdin backup on a full disk"
assert_grep 'disk full|No space left on device' "$T/s.err"

say "earlier snapshots intact"
"$MV" check --read-data "$R" >"$T/check.out" 2>&1 || {
	cat "$T/check.out"
	die "check --read-data fails after the full disk"
}
rm -rf "$T/out"
mkdir "$T/out"
assert_ok "$MV" restore "$R" mail/latest:volume "$T/out"
tree_digest "$T/out/volume" >"$T/out.digest"
cmp -s "$T/ref.digest" "$T/out.digest" ||
	die "the earlier snapshot does not restore exactly"

say "with room again, a backup works"
head -c $((1 << 20)) /dev/urandom >"$T/bigsrc/big.bin"
assert_ok "$MV" backup "$R" --name small data="$T/bigsrc"
assert_ok "$MV" check --read-data "$R"
ok
