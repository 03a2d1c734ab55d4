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

# listings are cached by the kernel: they must change with the snapshots
# wait_listed DIR NAME [absent]: until ls DIR shows NAME (or no longer)
wait_listed()
{
	_n=80
	while [ $_n -gt 0 ]; do
		if ls "$1" | grep -qx "$2"; then
			[ -z "${3:-}" ] && return 0
		elif [ -n "${3:-}" ]; then
			return 0
		fi
		sleep 0.1
		_n=$((_n - 1))
	done
	die "ls $1: $2 ${3:-not} listed: $(ls "$1" | tr '\n' ' ')"
}
ls "$mnt" "$mnt/mail" >/dev/null

say "a new snapshot appears while mounted"
"$MV" backup "$T/repo" --name mail --time 2024-05-02T12:00:00Z \
	"volume=$T/fx/day2" >"$T/b2.log" 2>&1 || die "backup 2 failed"
n=80
while [ ! -d "$mnt/mail/2024-05-02T120000Z" ] && [ $n -gt 0 ]; do
	sleep 0.1
	n=$((n - 1))
done
[ -d "$mnt/mail/2024-05-02T120000Z" ] || die "new snapshot not shown"
wait_listed "$mnt/mail" 2024-05-02T120000Z
# the kernel caches the old target until the entry times out (1 s)
n=80
while [ "$(readlink "$mnt/mail/latest")" != 2024-05-02T120000Z ] &&
	[ $n -gt 0 ]; do
	sleep 0.1
	n=$((n - 1))
done
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
wait_listed "$mnt" other

say "a forgotten snapshot leaves the listing"
"$MV" forget --name mail --keep-last 1 "$T/repo" >"$T/forget.log" 2>&1 ||
	die "forget failed: $(tail -n 3 "$T/forget.log")"
wait_listed "$mnt/mail" 2024-05-01T120000Z absent
assert_eq "2024-05-02T120000Z" "$(readlink "$mnt/mail/latest")" "latest"

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
