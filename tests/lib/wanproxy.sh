# wanproxy.sh: a far link in front of the test sshd, and its round-trip
# count (POSIX sh).  Source it after test-lib.sh and sshd.sh:
#
#	. "$TOP/tests/lib/sshd.sh"
#	. "$TOP/tests/lib/wanproxy.sh"
#	sshd_start
#	wanproxy_start 20            # 20 ms each way: a 40 ms round trip
#	wanproxy_reset
#	"$MV" snapshots "sftp://root@127.0.0.1:$WANPROXY_PORT$T/r"
#	n=$(wanproxy_turns)          # round trips of that command
#
# wanproxy_start [MS] [TARGET_PORT]
#     Start $MV_BUILD/tools/wanproxy relaying 127.0.0.1:$WANPROXY_PORT to
#     127.0.0.1:TARGET_PORT (default $SSHD_PORT), adding MS milliseconds
#     (default 0) each way.  Sets WANPROXY_PORT, WANPROXY_PID,
#     WANPROXY_STATS (one line per finished connection, see
#     tools/wanproxy.c).  Stopped at exit with the test's other processes.
#     The host key is known to clients as [127.0.0.1]:$WANPROXY_PORT:
#     wanproxy_trust records it.  $WANPROXY_FLAGS adds options (-v: a
#     line per turn in $T/wanproxy.log; -r KB/S: a bandwidth limit).
# wanproxy_reset     forget the connections counted so far
# wanproxy_turns     wait until every connection the last command opened
#                    has closed, print the sum of their turns
# wanproxy_conns     the same wait, print how many connections there were
# wanproxy_trust     record the sshd host key for the proxy's port

WANPROXY_PID=

wanproxy_start()
{
	_wp_bin=$MV_BUILD_DIR/tools/wanproxy
	[ -x "$_wp_bin" ] || die "no $_wp_bin (make tools)"
	WANPROXY_STATS=$T/wanproxy.stats
	: >"$WANPROXY_STATS"
	rm -f "$T/wanproxy.port"
	# shellcheck disable=SC2086
	"$_wp_bin" ${WANPROXY_FLAGS:-} -d "${1:-0}" -P "$T/wanproxy.port" -s "$WANPROXY_STATS" \
		"127.0.0.1:${2:-$SSHD_PORT}" 2>>"$T/wanproxy.log" &
	WANPROXY_PID=$!
	echo "$WANPROXY_PID" >>"$T/.tl-pids"
	_n=50
	while [ ! -s "$T/wanproxy.port" ]; do
		_n=$((_n - 1))
		[ "$_n" -gt 0 ] || die "wanproxy did not start: $(cat "$T/wanproxy.log")"
		sleep 0.1
	done
	WANPROXY_PORT=$(cat "$T/wanproxy.port")
	export WANPROXY_PORT
	say "wanproxy $WANPROXY_PID on 127.0.0.1:$WANPROXY_PORT, ${1:-0} ms each way"
}

wanproxy_reset()
{
	_wanproxy_settle
	: >"$WANPROXY_STATS"
}

# the proxy writes a connection's line once both directions have closed,
# which can be a delay after the client exited
_wanproxy_settle()
{
	_n=100
	while [ "$(ss -Htn state established "( sport = :$WANPROXY_PORT )" \
		2>/dev/null | wc -l)" -gt 0 ]; do
		_n=$((_n - 1))
		[ "$_n" -gt 0 ] || die "connections through wanproxy stay open"
		sleep 0.05
	done
	sleep 0.1
}

wanproxy_turns()
{
	_wanproxy_settle
	awk '$1 == "conn" { n += $4 } END { print n + 0 }' "$WANPROXY_STATS"
}

wanproxy_conns()
{
	_wanproxy_settle
	awk '$1 == "conn" { n++ } END { print n + 0 }' "$WANPROXY_STATS"
}

wanproxy_trust()
{
	printf '[127.0.0.1]:%s %s\n' "$WANPROXY_PORT" \
		"$(cut -d' ' -f1,2 "$SSHD_HOST_PUB")" >>"$MAILVAULT_KNOWN_HOSTS"
}
