#!/bin/sh
# t3130-remote-round-trips: the request/response turns that `snapshots`,
# `cat` and a mount's first read of one message cost on an sftp://
# repository, counted by a relay in front of sshd, with empty and with
# warm caches; each must stay within its budget (counts, not times: the
# relay, tools/wanproxy, adds 10 ms each way).
# MV_RT_SHOW=1 prints the counts without judging them.
#
# Budgets: the counts measured when they were set (docs/REMOTE.md, round
# trips) plus a margin of 2-3 turns for the proxy's counting of the SSH
# handshake and for a daemon's background refresh.  Before the pipelining
# work the same run counted 24, 23, 39, 23, 93 and 70; before the mount
# kept the repository it opened across its fork and config and the index
# header were asked with their stat, 21, 20, 27, 20, 35 and 31; before a
# refresh right after the open asked nothing and the index download
# stopped at the size it knew, 17, 16, 23, 17, 26 and 22; before the
# index was opened along with the read of config, 16, 16, 22, 16, 22 and
# 19 (a fresh machine reading a small index whole with its header had
# taken one off each fresh count); before the cached handles were closed
# together at the end (one round trip, not one each), 15, 15, 21, 15, 21
# and 18; now 14, 14, 18, 14, 18 and 16.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"
. "$TOP/tests/lib/wanproxy.sh"

require_fuse
sshd_start
sshd_trust
gen --small --days 1 --out "$T/fx"
R0=sftp://root@127.0.0.1:$SSHD_PORT$T/repo
assert_ok "$MV" init -i "$SSH_KEY" "$R0"
assert_ok "$MV" backup -i "$SSH_KEY" "$R0" --name mx --quiet \
	--time 2024-05-01T03:00:00Z vol="$T/fx/day1"

wanproxy_start 10
wanproxy_trust
R=sftp://root@127.0.0.1:$WANPROXY_PORT$T/repo

# measure NAME BUDGET CONNS CMD...: run CMD, count the turns of the
# connections it opened (all closed when it returns).  The budget is on
# the connection with the most turns, which bounds what the command
# waited for: a mount whose FUSE workers ask at the same moment opens a
# second session (a handshake's worth of turns, in parallel) when the
# machine is slow, and that must not fail the count; CONNS bounds how
# many sessions it may open.
fails=
measure()
{
	_name=$1
	_budget=$2
	_conns=$3
	shift 3
	wanproxy_reset
	_s=$(date +%s%N)
	"$@" || die "$_name failed"
	_ms=$((($(date +%s%N) - _s) / 1000000))
	_sum=$(wanproxy_turns)
	_c=$(wanproxy_conns)
	_n=$(awk '$1 == "conn" && $4 > n { n = $4 } END { print n + 0 }' \
		"$WANPROXY_STATS")
	say "$_name: $_n turns on its busiest connection ($_sum in all), $_c connections, $_ms ms (budget $_budget, $_conns)"
	[ "$_n" -le "$_budget" ] || fails="$fails $_name($_n>$_budget)"
	[ "$_c" -le "$_conns" ] || fails="$fails $_name($_c>$_conns connections)"
}

msg=$(cd "$T/fx/day1" && find . -path '*/cur/*' -type f | sort | tail -n 1)
msg=${msg#./}
snap=mx/2024-05-01T030000Z

fresh_cache()
{
	rm -rf "$XDG_CACHE_HOME/mailvault"
}

cat_one()
{
	"$MV" cat -i "$SSH_KEY" "$R" "$snap:vol/$msg" >"$T/cat.out" &&
		cmp -s "$T/cat.out" "$T/fx/day1/$msg"
}

mnt=$T/mnt
# the mount's connections close when it is unmounted
mount_read()
{
	mount_mv "$R" "$mnt" -i "$SSH_KEY" &&
		cmp -s "$mnt/$snap/vol/$msg" "$T/fx/day1/$msg" &&
		unmount_mv "$mnt"
}

fresh_cache
measure "snapshots, fresh cache" "${B_SNAP_FRESH:-16}" 1 \
	"$MV" snapshots -i "$SSH_KEY" "$R"
measure "snapshots, warm cache" "${B_SNAP_WARM:-16}" 1 \
	"$MV" snapshots -i "$SSH_KEY" "$R"
fresh_cache
measure "cat, fresh cache" "${B_CAT_FRESH:-20}" 1 cat_one
measure "cat, warm cache" "${B_CAT_WARM:-16}" 1 cat_one
fresh_cache
measure "mount + first read, fresh cache" "${B_MNT_FRESH:-20}" 2 mount_read
measure "mount + first read, warm cache" "${B_MNT_WARM:-18}" 2 mount_read

# a whole restore: the read-ahead thread fetches the contents of several
# directories per request and the pack spans around them (before, a
# round trip per directory and per run of records in it: 55 turns on
# the busier of two connections, 80 in all; 23 on one after, 22 with the
# index opened along with config, 19 with the handles closed together)
restore_all()
{
	rm -rf "$T/rs" &&
		"$MV" restore -i "$SSH_KEY" "$R" "$snap:vol" "$T/rs" >/dev/null &&
		diff -r "$T/fx/day1" "$T/rs/vol" >/dev/null
}
fresh_cache
measure "restore, fresh cache" "${B_RESTORE_FRESH:-22}" 2 restore_all

# The same on an encrypted repository (what init makes by default).  A
# warm cache reads the key slot that opened last time without listing
# keys/, and one listing of index/ validates the cached index (before:
# two, one to count the segments and one to sync): 35, 29, 40, 29, 41
# and 32 turns before, 31, 20, 37, 20, 37 and 24 after; 27, 19, 31, 19,
# 31 and 21 with the cached handles closed together at the end.
export MAILVAULT_PASSPHRASE="round trips" MAILVAULT_KDF_TEST=1
E0=sftp://root@127.0.0.1:$SSHD_PORT$T/erepo
assert_ok "$MV" init --encryption xchacha20-poly1305 -i "$SSH_KEY" "$E0" \
	>/dev/null 2>&1
assert_ok "$MV" backup -i "$SSH_KEY" "$E0" --name mx --quiet \
	--time 2024-05-01T03:00:00Z vol="$T/fx/day1"
R=sftp://root@127.0.0.1:$WANPROXY_PORT$T/erepo
fresh_cache
measure "encrypted: snapshots, fresh cache" "${B_ESNAP_FRESH:-30}" 1 \
	"$MV" snapshots -i "$SSH_KEY" "$R"
measure "encrypted: snapshots, warm cache" "${B_ESNAP_WARM:-21}" 1 \
	"$MV" snapshots -i "$SSH_KEY" "$R"
fresh_cache
measure "encrypted: cat, fresh cache" "${B_ECAT_FRESH:-34}" 1 cat_one
measure "encrypted: cat, warm cache" "${B_ECAT_WARM:-21}" 1 cat_one
fresh_cache
# and no pack comes whole twice: a second miss while the first metadata
# wave was still being written to the cache used to fetch the wave's
# packs again, on a second SSH session
MAILVAULT_SFTP_TRACE=$T/trace.mnt
export MAILVAULT_SFTP_TRACE
measure "encrypted: mount + first read, fresh cache" \
	"${B_EMNT_FRESH:-34}" 2 mount_read
unset MAILVAULT_SFTP_TRACE
twice=$(awk '$5 == "read_many" && $6 ~ /^packs\// { print $2, $6, $7 }' \
	"$T/trace.mnt" | sort | uniq -d)
grep -q 'read_many packs/' "$T/trace.mnt" || die "no trace of the mount's reads"
[ -z "$twice" ] || fails="$fails packs-fetched-twice($twice)"
measure "encrypted: mount + first read, warm cache" "${B_EMNT_WARM:-24}" \
	2 mount_read
[ -z "$fails" ] || [ "${MV_RT_SHOW:-0}" = 1 ] ||
	die "more round trips than budgeted:$fails"
ok
