#!/bin/sh
# t2006-latest-names-busy: "latest" is the newest snapshot by time, not
# the one stored last (an older --time import after a newer snapshot), in
# the CLI and in the mount; two snapshots of one job in one second get
# distinct names ("-2") in backup's summary, `snapshots`, `find`, the CLI
# and the mount, each resolving to its own snapshot; a second mount on a busy mount point is
# refused with a clear error and nothing is stacked on the first.
. "$(dirname "$0")/../lib/test-lib.sh"

require_fuse
R=$T/repo
assert_ok "$MV" init "$R" >/dev/null
for x in newest a b old; do
	mkdir -p "$T/$x"
	echo "$x" >"$T/$x/f"
done

say "stored out of time order: the newest first, an old import last"
assert_ok "$MV" backup "$R" --name j --time 2026-03-01T00:00:00Z d="$T/newest"
assert_ok "$MV" backup "$R" --name j --time 2026-01-02T03:04:05Z d="$T/a"
assert_ok "$MV" backup "$R" --name j --time 2026-01-02T03:04:05Z d="$T/b"
assert_ok "$MV" backup "$R" --name j --time 2025-01-01T00:00:00Z d="$T/old"

assert_eq newest "$("$MV" cat "$R" j/latest:d/f)" "j/latest in the CLI"

say "two snapshots in one second: two names, each its own snapshot"
"$MV" snapshots --json "$R" >"$T/snaps.json"
python3 -c 'import json,sys
for s in json.load(open(sys.argv[1])): print(s["dir"])' "$T/snaps.json" |
	sort >"$T/dirs"
cat "$T/dirs"
assert_eq 4 "$(sort -u "$T/dirs" | wc -l)" "distinct snapshot names"
assert_grep '^2026-01-02T030405Z$' "$T/dirs"
assert_grep '^2026-01-02T030405Z-2$' "$T/dirs"
"$MV" snapshots "$R" >"$T/snaps.txt"
assert_grep ' 2026-01-02T030405Z-2 ' "$T/snaps.txt"
one=$("$MV" cat "$R" j/2026-01-02T030405Z:d/f)
two=$("$MV" cat "$R" j/2026-01-02T030405Z-2:d/f)
assert_eq "a b" "$(printf '%s\n%s\n' "$one" "$two" | sort | tr '\n' ' ' |
	sed 's/ $//')" "the two snapshots of one second"
mkdir "$T/out"
assert_ok "$MV" restore "$R" j/2026-01-02T030405Z-2:d "$T/out" >/dev/null
assert_eq "$two" "$(cat "$T/out/d/f")" "restore by the -2 name"

say "two snapshots in one second: backup, find and the mount name one -2"
python3 "$TOP/tools/gen_stalwart.py" --out "$T/ex" --account john \
	--variant acl --messages 3 >/dev/null
# Two snapshots of one --time: the one whose id sorts later is "-2".
# Until the second one stored is that one (one try in two), so that a
# find naming its last snapshot without "-2" is caught every time.
i=0
while :; do
	i=$((i + 1))
	[ "$i" -le 12 ] || die "the second snapshot was never the -2 one"
	for n in 1 2; do
		mkdir -p "$T/k$i.$n"
		echo "try $i, backup $n" >"$T/k$i.$n/f"
		"$MV" backup "$R" --name "k$i" --time 2026-02-01T00:00:00Z \
			e="$T/ex" d="$T/k$i.$n" >"$T/k$n.out"
	done
	grep -q '^snapshot k[0-9]*/2026-02-01T000000Z-2 ' "$T/k2.out" && break
done
assert_grep "^snapshot k$i/2026-02-01T000000Z " "$T/k1.out"
K=k$i
cat "$T/k2.out"
second=$(sed -n 's/^snapshot \([^ ]*\) .*/\1/p' "$T/k2.out")
"$MV" find "$R" --name "$K" --limit 1 >"$T/find"
cat "$T/find"
assert_grep "^$second/mail/john/" "$T/find"

say "the mount: the same names, latest the newest by time"
M=$T/mnt
mount_mv "$R" "$M"
[ -f "$M/$(head -n 1 "$T/find")" ] || die "find's path is not in the mount"
assert_eq 2026-03-01T000000Z "$(readlink "$M/j/latest")" "the mount's latest"
assert_eq newest "$(cat "$M/j/latest/d/f")" "read through latest"
ls "$M/j" | grep -v '^latest$' | sort >"$T/mdirs"
cmp "$T/dirs" "$T/mdirs" || die "the mount's names differ from snapshots'"
assert_eq "$two" "$(cat "$M/j/2026-01-02T030405Z-2/d/f")" "the mount's -2"

say "a second mount on the busy mount point is refused"
set +e
"$MV" mount "$R" "$M" >"$T/m2.out" 2>&1
rc=$?
set -e
cat "$T/m2.out"
assert_eq 1 "$rc" "exit of a second mount"
assert_grep "cannot mount on '.*mnt': it is a mount point already \(fuse\.mailvault\)" \
	"$T/m2.out"
real=$(cd "$M" && pwd -P)
assert_eq 1 "$(awk -v m="$real" '$5 == m' /proc/self/mountinfo | wc -l)" \
	"mounts on $M"
# a path that names the same directory another way is the same mount point
assert_fail "$MV" mount "$R" "$T/./mnt/" 2>/dev/null
unmount_mv "$M"
mountpoint -q "$M" && die "something is still mounted on $M"
mount_mv "$R" "$M"
assert_eq newest "$(cat "$M/j/latest/d/f")" "mounted again after unmount"
ok
