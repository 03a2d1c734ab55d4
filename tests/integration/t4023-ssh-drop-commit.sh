#!/bin/sh
# t4023-ssh-drop-commit: the SSH connection of an sftp:// backup drops
# while the index is published: the server's sftp-server and its sshd
# session are killed (the fault shim preloaded into the loopback sshd's
# sftp-server) at each rename of index.db* and in the middle of the index
# upload, so the TCP connection drops.  Whatever the backup
# then reports, the next command opens the repository, check --read-data
# is clean, every earlier snapshot restores byte-exact, a snapshot that
# shows is whole, and the next backup succeeds.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"
. "$TOP/tests/fault/fault-lib.sh"
require_mv
require_faults

sshd_start
# faults on the server: tests/fault/fault-lib.sh
sshd_fault_shim
R=sftp://root@127.0.0.1:$SSHD_PORT$T/repo

gen --small --messages 10 --days 2 --out "$T/fx"
assert_ok "$MV" init "$R" >/dev/null
assert_ok "$MV" backup "$R" --name mail --quiet data="$T/fx/day1"

say "counting the renames of a publish"
echo "rename:$T/repo/index.db*:count:kill" >"$T/rules"
rm -f "$T/srv.log"
assert_ok "$MV" backup "$R" --name mail --quiet data="$T/fx/day2"
[ -f "$T/srv.log" ] || die "the server's sessions do not load the shim"
sed "s|$T/repo/||; s/^/# /" "$T/srv.log"
n=$(grep -c ' rename ' "$T/srv.log" || true)
[ "$n" -ge 1 ] || die "no rename of index.db seen on the server"
: >"$T/rules"
snap_ref "$R"
tree_digest "$T/fx/day2" >"$T/day2.digest"

# drop RULE WHAT: a backup whose session dies by RULE, then verify; the
# next backup succeeds and restores byte-exact
drop()
{
	killed_backup "$R" "$1" "$T/fx/day2" "$T/day2.digest" "$2"
	assert_ok "$MV" backup "$R" --name mail --quiet data="$T/fx/day2"
	rm -rf "$T/out"
	"$MV" restore "$R" mail/latest:data "$T/out" >/dev/null ||
		die "$2: the next backup does not restore"
	tree_digest "$T/out/data" >"$T/out.digest"
	cmp -s "$T/day2.digest" "$T/out.digest" ||
		die "$2: the next backup does not restore byte-exact"
}

k=1
while [ "$k" -le "$n" ]; do
	drop "rename:$T/repo/index.db*:nth=$k:killparent" "rename $k of $n"
	k=$((k + 1))
done
drop "write:$T/repo/index.db*:nth=2:killparent" "mid index upload"
ok
