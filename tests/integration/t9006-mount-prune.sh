#!/bin/sh
# t9006-mount-prune: a mount kept open across forget + prune keeps serving
# every kept file byte-exact (no EIO while chunks move to new packs), also
# while prune runs, and drops the forgotten snapshots.
. "$(dirname "$0")/../lib/test-lib.sh"
require_root
require_fuse
require_mv

R=$T/repo
gen --small --messages 120 --days 4 --out "$T/fx"
assert_ok "$MV" init "$R" >/dev/null
for d in 1 2 3 4; do
	assert_ok "$MV" backup "$R" --name mail \
		--time "2024-05-0${d}T01:00:00Z" --quiet data="$T/fx/day$d"
done
mnt=$T/mnt
mkdir -p "$mnt"
mount_mv "$R" "$mnt"
[ -d "$mnt/mail/2024-05-01T010000Z" ] || die "snapshot 1 not mounted"
# warm the mount on one kept snapshot; the other is read first after prune
assert_same_tree "$T/fx/day4" "$mnt/mail/2024-05-04T010000Z/data"

say "forget + prune (repack everything) while a reader loops"
(
	while [ ! -e "$T/stop" ]; do
		find "$mnt/mail/2024-05-04T010000Z/data" -type f \
			-exec cat {} + >/dev/null 2>>"$T/reader.err" ||
			echo "read failed" >>"$T/reader.err"
	done
) &
echo $! >>"$T/.tl-pids"
assert_ok "$MV" forget --keep-last 2 "$R" >/dev/null
assert_ok "$MV" prune --max-unused 0 "$R" >"$T/prune"
assert_grep '^repacked [1-9]' "$T/prune"
touch "$T/stop"
sleep 1
[ ! -s "$T/reader.err" ] || { cat "$T/reader.err"; die "reads failed"; }

say "every kept file reads byte-exact from the open mount"
assert_same_tree "$T/fx/day3" "$mnt/mail/2024-05-03T010000Z/data"
assert_same_tree "$T/fx/day4" "$mnt/mail/2024-05-04T010000Z/data"
n=80
while [ -d "$mnt/mail/2024-05-01T010000Z" ] && [ $n -gt 0 ]; do
	sleep 0.1
	n=$((n - 1))
done
[ ! -d "$mnt/mail/2024-05-01T010000Z" ] ||
	die "forgotten snapshot still mounted"
ok
