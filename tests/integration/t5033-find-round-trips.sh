#!/bin/sh
# t5033-find-round-trips: `find` on an encrypted sftp:// repository from a
# fresh workstation (empty cache) and again with the cache warm, counted
# in request/response turns by a relay in front of sshd (issue 18: find
# from any machine <= 1 s at 40 ms RTT; counts, not times: the relay,
# tools/wanproxy, adds 10 ms each way).  Five backups give five
# deltas: the fresh find must fetch them in one wave, on one connection,
# and answer what the backup host answers.
# MV_RT_SHOW=1 prints the counts without judging them.
#
# Budgets: the counts measured when they were set (docs/REMOTE.md, find:
# 54 fresh, 23 warm since the cached handles are closed together at the
# end; 62 and 25 since the open lists index/ once and a warm cache reads
# its key slot without listing keys/; 65-66 and 32 before) plus a margin
# of 3 turns for the proxy's counting of the SSH handshake.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"
. "$TOP/tests/lib/wanproxy.sh"

require_mv
export MAILVAULT_PASSPHRASE="find round trips"
export MAILVAULT_KDF_TEST=1
sshd_start
sshd_trust
gen --small --days 5 --out "$T/fx" --seed 5033
R0=sftp://root@127.0.0.1:$SSHD_PORT$T/repo
assert_ok "$MV" init --encryption xchacha20-poly1305 -i "$SSH_KEY" "$R0" \
	>/dev/null 2>&1
for d in 1 2 3 4 5; do
	assert_ok env XDG_CACHE_HOME="$T/cache-host" "$MV" backup \
		-i "$SSH_KEY" "$R0" --name mx --quiet \
		--time "2024-05-0${d}T03:00:00Z" vol="$T/fx/day$d"
done
assert_eq 5 "$(find "$T/repo/catalog" -type f | wc -l)" "segments"
XDG_CACHE_HOME=$T/cache-host "$MV" find -i "$SSH_KEY" "$R0" --json \
	>"$T/host.json"
[ "$(wc -l <"$T/host.json")" -gt 50 ] || die "too few hits on the host"

wanproxy_start 10
wanproxy_trust
R=sftp://root@127.0.0.1:$WANPROXY_PORT$T/repo

# measure NAME BUDGET CONNS CMD...: as t3130 (the budget is on the
# busiest connection; CONNS bounds how many the command opened)
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

find_ws()
{
	XDG_CACHE_HOME=$T/cache-ws "$MV" find -i "$SSH_KEY" "$R" --json \
		>"$T/ws.json" && cmp -s "$T/host.json" "$T/ws.json"
}

rm -rf "$T/cache-ws"
measure "find, fresh cache" "${B_FIND_FRESH:-57}" 1 find_ws
measure "find, warm cache" "${B_FIND_WARM:-26}" 1 find_ws
[ -z "$fails" ] || [ "${MV_RT_SHOW:-0}" = 1 ] ||
	die "more round trips than budgeted:$fails"
ok
