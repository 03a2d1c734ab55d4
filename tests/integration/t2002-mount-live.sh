#!/bin/sh
# t2002-mount-live: a snapshot committed while mounted appears within a few
# seconds and "latest" follows it; the mount helper for mount(8) and fstab
# works; SIGTERM unmounts cleanly.
. "$(dirname "$0")/../lib/test-lib.sh"
require_root
require_fuse
require_mv

gen --small --days 2 --out "$T/fx"
"$MV" init "$T/repo" >/dev/null 2>&1 || die "init failed"
"$MV" backup "$T/repo" --name mail --time 2024-05-01T12:00:00Z \
	"volume=$T/fx/day1" >"$T/b1.log" 2>&1 || die "backup 1 failed"

say "mount through the mount(8) helper, options filtered"
mnt=$T/mnt
mkdir -p "$mnt"
echo "$mnt" >>"$T/.tl-mounts"
MAILVAULT=$MV sh "$TOP/contrib/mount.fuse.mailvault" "$T/repo" "$mnt" \
	-o rw,nofail,_netdev,cache_size=64 || die "mount helper failed"
wait_mounted "$mnt"
assert_eq "2024-05-01T120000Z" "$(readlink "$mnt/mail/latest")" "latest"

say "a new snapshot appears while mounted"
"$MV" backup "$T/repo" --name mail --time 2024-05-02T12:00:00Z \
	"volume=$T/fx/day2" >"$T/b2.log" 2>&1 || die "backup 2 failed"
n=80
while [ ! -d "$mnt/mail/2024-05-02T120000Z" ] && [ $n -gt 0 ]; do
	sleep 0.1
	n=$((n - 1))
done
[ -d "$mnt/mail/2024-05-02T120000Z" ] || die "new snapshot not shown"
assert_eq "2024-05-02T120000Z" "$(readlink "$mnt/mail/latest")" "latest"
assert_same_tree "$T/fx/day2" "$mnt/mail/latest/volume"
assert_same_tree "$T/fx/day1" "$mnt/mail/2024-05-01T120000Z/volume"

say "a second name gets its own directory"
"$MV" backup "$T/repo" --name other --time 2024-05-03T12:00:00Z \
	"volume=$T/fx/day1" >"$T/b3.log" 2>&1 || die "backup 3 failed"
n=80
while [ ! -L "$mnt/other/latest" ] && [ $n -gt 0 ]; do
	sleep 0.1
	n=$((n - 1))
done
[ -L "$mnt/other/latest" ] || die "new name not shown"

say "SIGTERM unmounts"
pid=$(pgrep -f "mailvault mount -o cache_size=64 $T/repo" | head -n 1)
[ -n "$pid" ] || die "no daemon"
kill -TERM "$pid"
n=50
while mountpoint -q "$mnt" && [ $n -gt 0 ]; do
	sleep 0.1
	n=$((n - 1))
done
! mountpoint -q "$mnt" || die "still mounted after SIGTERM"
ok
