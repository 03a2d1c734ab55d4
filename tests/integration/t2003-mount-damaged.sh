#!/bin/sh
# t2003-mount-damaged: a damaged chunk makes reads of its file fail with
# EIO and a log line naming the pack, the offset and the file; other files
# stay readable and the mount never returns wrong bytes.
. "$(dirname "$0")/../lib/test-lib.sh"
require_root
require_fuse
require_mv

mkdir -p "$T/a" "$T/b"
head -c 2000000 /dev/urandom >"$T/a/victim"
"$MV" init "$T/repo" >/dev/null 2>&1 || die "init failed"
"$MV" backup "$T/repo" --name one "volume=$T/a" >/dev/null 2>&1 ||
	die "backup 1 failed"
find "$T/repo" -path '*packs*' -type f | sort >"$T/packs1"
cp "$T/a/victim" "$T/b/victim"
head -c 500000 /dev/urandom >"$T/b/healthy"
"$MV" backup "$T/repo" --name two "volume=$T/b" >/dev/null 2>&1 ||
	die "backup 2 failed"

say "flip a byte in the middle of the first backup's largest pack"
pack=$(xargs ls -S <"$T/packs1" | head -n 1)
[ -n "$pack" ] || die "no pack"
size=$(stat -c %s "$pack")
off=$((size / 2))
b=$(dd if="$pack" bs=1 skip=$off count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
printf "$(printf '\\%03o' $(((b + 1) % 256)))" |
	dd of="$pack" bs=1 seek=$off conv=notrunc 2>/dev/null

mnt=$T/mnt
mkdir -p "$mnt"
echo "$mnt" >>"$T/.tl-mounts"
bg "$MV" mount -f "$T/repo" "$mnt" 2>"$T/mount.log"
wait_mounted "$mnt"

say "the damaged file fails with EIO, the healthy one reads"
assert_fail cat "$mnt/two/latest/volume/victim" >/dev/null 2>"$T/cat.err"
assert_grep 'Input/output error' "$T/cat.err"
cmp "$T/b/healthy" "$mnt/two/latest/volume/healthy" ||
	die "healthy file differs"
sleep 0.2
assert_grep "victim" "$T/mount.log"
assert_grep "pack" "$T/mount.log"
assert_grep "offset" "$T/mount.log"
unmount_mv "$mnt"
ok
