#!/bin/sh
# t2001-mount-rsync: what rsync -aHAX, cp -a and tar copy out of the mount
# is exactly what was backed up (types, modes, owners, ns mtimes, sizes,
# bytes, link targets, xattrs, ACLs, hard links, holes); writes fail with
# EROFS; inode numbers hold; unmounting ends the daemon.
. "$(dirname "$0")/../lib/test-lib.sh"
require_root
require_fuse
require_mv
require_cmd rsync setfattr

src=$T/src
gen --small --days 1 --xattrs --out "$T/fx"
mkdir -p "$src"
cp -a "$T/fx/day1/." "$src/"

say "add what mail volumes rarely hold but a restore must keep"
mkdir -p "$src/odd"
printf 'one\n' >"$src/odd/linked"
ln "$src/odd/linked" "$src/odd/linked2"
ln "$src/odd/linked" "$src/odd/linked3"
ln -s ../odd/linked "$src/odd/symlink"
ln -s /nonexistent/target "$src/odd/dangling"
mkfifo "$src/odd/fifo"
mknod "$src/odd/null" c 1 3
truncate -s 10M "$src/odd/sparse"
printf 'data in the middle' | dd of="$src/odd/sparse" bs=1 seek=4194304 \
	conv=notrunc 2>/dev/null
: >"$src/odd/empty"
printf 'x' >"$src/odd/%percent"
printf 'y' >"$src/odd/name with
newline"
long=$(printf '%0255d' 0 | tr 0 n)
printf 'z' >"$src/odd/$long"
printf 's' >"$src/odd/setuid"
chmod 4755 "$src/odd/setuid"
chown 1234:5678 "$src/odd/empty"
setfattr -n user.note -v "kept" "$src/odd/empty"
if command -v setfacl >/dev/null; then
	setfacl -m u:1000:r-x,g:2000:rw- "$src/odd/linked2" 2>/dev/null || true
fi
head -c 3000000 /dev/urandom >"$src/odd/random"
touch -h -d '2021-03-04 05:06:07.123456789' "$src/odd/empty" \
	"$src/odd/symlink"
# rsync decides whether to set the time of a directory, symlink, fifo or
# device by comparing whole seconds only: an entry made in the second
# the copy runs in keeps the copy's time (rsync 3.5 does the same between
# two local directories).  Everything made here gets a time in the past,
# with nanoseconds, directories last.
find "$src" -newermt '-1 hour' ! -type d -exec \
	touch -h -d '2023-01-02 03:04:05.987654321' {} +
find "$src" -newermt '-1 hour' -type d -exec \
	touch -h -d '2023-01-02 03:04:06.123456789' {} +

say "back up and mount"
"$MV" init "$T/repo" >"$T/init.log" 2>&1 || die "init failed"
"$MV" backup "$T/repo" --name mail "volume=$src" >"$T/backup.log" 2>&1 ||
	die "backup failed: $(tail -n 3 "$T/backup.log")"
mnt=$T/mnt
mount_mv "$T/repo" "$mnt"
[ -L "$mnt/mail/latest" ] || die "no latest symlink"
vol=$mnt/mail/latest/volume
ls "$mnt/mail" | grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{6}Z$' ||
	die "snapshot directory name: $(ls "$mnt/mail")"

say "find lists every name (listings without file attributes)"
(cd "$src" && find . | sort) >"$T/find-src"
(cd "$vol" && find . | sort) >"$T/find-mnt"
cmp "$T/find-src" "$T/find-mnt" || die "find over the mount differs"
(cd "$vol" && find . -type f | sort) >"$T/find-mnt"
(cd "$src" && find . -type f | sort) | cmp - "$T/find-mnt" ||
	die "find -type f over the mount differs"

say "rsync -aHAX --numeric-ids reproduces the tree (after the find)"
rsync -aHAX --numeric-ids "$vol/" "$T/rsync/" ||
	die "rsync from the mount failed"
assert_same_tree "$src" "$T/rsync"
(cd "$src" && find . -type f -print0) >"$T/files"
xargs -0 -I{} cmp "$src/{}" "$vol/{}" <"$T/files" || die "cmp of a file"
[ "$(tr -cd '\0' <"$T/files" | wc -c)" -gt 100 ] || die "too few files"

assert_eq "$(stat -c %i "$vol/odd/linked")" "$(stat -c %i "$vol/odd/linked3")" \
	"hard links share an inode"
assert_eq 3 "$(stat -c %h "$vol/odd/linked")" "nlink"
assert_eq "$(stat -c %i "$vol/odd/random")" "$(stat -c %i "$vol/odd/random")" \
	"inode stable"

say "holes come back as holes"
blocks=$(stat -c %b "$vol/odd/sparse")
[ "$blocks" -lt 1000 ] || die "sparse file shows $blocks blocks"
python3 - "$vol/odd/sparse" <<'PY' || die "SEEK_DATA/SEEK_HOLE"
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
d = os.lseek(fd, 0, os.SEEK_DATA)
h = os.lseek(fd, d, os.SEEK_HOLE)
assert d <= 4194304 < h, (d, h)
PY

say "cp -a and tar over the mount"
cp -a "$vol" "$T/cp"
assert_same_tree "$src" "$T/cp"
tar -C "$mnt/mail/latest" --format=posix --xattrs -cf "$T/vol.tar" volume
mkdir "$T/untar"
tar -C "$T/untar" --xattrs --numeric-owner -xf "$T/vol.tar"
assert_same_tree "$src" "$T/untar/volume" -x xattrs,dirmtime

say "read-only: writes fail with EROFS"
assert_fail touch "$vol/odd/new" 2>"$T/erofs"
assert_grep 'Read-only file system' "$T/erofs"
assert_fail sh -c "echo x >>'$vol/odd/empty'" 2>"$T/erofs"
assert_grep 'Read-only file system' "$T/erofs"
assert_fail mkdir "$mnt/mail/new" 2>"$T/erofs"
assert_fail rm -f "$vol/odd/empty" 2>"$T/erofs"
assert_fail setfattr -n user.x -v y "$vol/odd/random" 2>"$T/erofs"

say "fusermount3 -u ends the daemon"
unmount_mv "$mnt"
! mountpoint -q "$mnt" || die "still mounted"
n=50
while pgrep -f "mailvault mount $T/repo" >/dev/null && [ $n -gt 0 ]; do
	sleep 0.1
	n=$((n - 1))
done
! pgrep -f "mailvault mount $T/repo" >/dev/null || die "daemon still runs"
ok
