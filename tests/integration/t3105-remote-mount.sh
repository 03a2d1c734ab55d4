#!/bin/sh
# t3105-remote-mount: mailvault mount of an sftp:// repository: the tree
# copied out of the mount is the one backed up, a new snapshot shows up,
# and after the server drops every session the mount reconnects for later
# reads instead of hanging.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"

require_fuse
require_cmd rsync
sshd_start
sshd_trust
H=root@127.0.0.1:$SSHD_PORT
R=sftp://$H$T/repo
gen --small --days 2 --out "$T/fx"
MAILVAULT_SSH_RETRY_MS=100
export MAILVAULT_SSH_RETRY_MS

assert_ok "$MV" init -i "$SSH_KEY" "$R"
assert_ok "$MV" backup -i "$SSH_KEY" "$R" --name mx --quiet \
	--time 2024-05-01T03:00:00Z vol="$T/fx/day1"

say "mount over sftp:// and copy the tree out"
mnt=$T/mnt
mount_mv "$R" "$mnt" -i "$SSH_KEY"
vol=$mnt/mx/latest/vol
[ -d "$vol" ] || die "no $vol: $(ls -R "$mnt" | head)"
rsync -aHAX --numeric-ids "$vol/" "$T/rsync/" || die "rsync failed"
assert_same_tree "$T/fx/day1" "$T/rsync"

say "one message, cold, through sftp"
msg=$(cd "$T/fx/day1" && find . -path '*/cur/*' -type f | sort | tail -n 1)
msg=${msg#./}
unmount_mv "$mnt"
rm -rf "$XDG_CACHE_HOME/mailvault"/*/chunks 2>/dev/null || true
mount_mv "$R" "$mnt" -i "$SSH_KEY"
cmp "$T/fx/day1/$msg" "$vol/$msg" || die "message differs"

say "the server drops every session: later reads reconnect"
sshd_kill_sessions
sleep 0.5
msg2=$(cd "$T/fx/day1" && find . -path '*/cur/*' -type f | sort | head -n 1)
msg2=${msg2#./}
n=0
until cmp -s "$T/fx/day1/$msg2" "$vol/$msg2"; do
	n=$((n + 1))
	[ "$n" -lt 5 ] || die "no read works after the sessions were dropped"
	sleep 1
done
say "read after $n failed attempts"

say "a snapshot made while mounted appears"
assert_ok "$MV" backup -i "$SSH_KEY" "$R" --name mx --quiet \
	--time 2024-05-02T03:00:00Z vol="$T/fx/day2"
n=0
until [ -d "$mnt/mx/2024-05-02T030000Z/vol" ]; do
	n=$((n + 1))
	[ "$n" -lt 30 ] || die "the new snapshot did not appear: $(ls "$mnt/mx")"
	sleep 1
done
cmp "$T/fx/day2/$msg2" "$mnt/mx/2024-05-02T030000Z/vol/$msg2" 2>/dev/null ||
	[ ! -e "$T/fx/day2/$msg2" ] || die "day 2 message differs"
unmount_mv "$mnt"
ok
