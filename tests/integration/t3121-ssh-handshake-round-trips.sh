#!/bin/sh
# t3121-ssh-handshake-round-trips: the round trips of an SSH connection
# (TCP excluded: banner, key exchange, authentication) and of an SFTP
# session's start, counted by tools/wanproxy in front of the test sshd;
# each stays within its budget, and keys the server will not take cost
# nothing when the right one is named.
#
# Budgets (docs/REMOTE.md, "Round trips of a connection"): the counts
# measured when they were set.  libssh2 1.10 needs 4 turns to a shared
# key (banner, KEXINIT, ECDH, NEWKEYS + service request), 2 per accepted
# key (query, then signature) and 3 to start SFTP (channel open,
# subsystem, init); the backend then asks nothing until the store does
# (the root is no longer stat'ed: 12 before).  Before this work an SFTP
# session took 10 and every key in the agent that the server refused one
# more.
# A read with the next file opened ahead (a repository's config, then its
# index) costs one round trip less than the two reads.
# MV_RT_SHOW=1 prints the counts without judging them.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"
. "$TOP/tests/lib/wanproxy.sh"

require_cmd ssh-agent
require_cmd ssh-add
sshd_start
wanproxy_start 0
wanproxy_trust
P=$MV_BUILD_DIR/tools/sftp_probe
mkdir -p "$T/r"
R=sftp://root@127.0.0.1:$WANPROXY_PORT$T/r

fails=
# measure NAME BUDGET CMD...: the turns of the connections CMD opened
measure()
{
	_name=$1
	_budget=$2
	shift 2
	wanproxy_reset
	"$@" >/dev/null || die "$_name failed"
	_n=$(wanproxy_turns)
	say "$_name: $_n turns over $(wanproxy_conns) connection(s) (budget $_budget)"
	[ "$_n" -le "$_budget" ] || fails="$fails $_name($_n>$_budget)"
	eval "turns_$(echo "$_name" | tr -c 'a-z0-9\n' _)=$_n"
}

say "a key file"
measure sftp 11 "$P" -i "$SSH_KEY" "$R" check

say "an agent with keys the server refuses, and the right key named"
eval "$(ssh-agent -s)" >/dev/null
echo "$SSH_AGENT_PID" >>"$T/.tl-pids"
for k in 1 2 3; do
	ssh-keygen -q -t ed25519 -N '' -f "$T/other$k" -C "other$k"
	ssh-add -q "$T/other$k" 2>/dev/null
done
measure sftp_agent 11 "$P" -i "$SSH_KEY" "$R" check
# each refused key offered would cost a turn (3 here); the relay counts a
# handshake one turn more or less from run to run (how the server's
# packets fall into reads: 10 and 11 both seen for the same key file)
[ "$turns_sftp_agent" -le "$((turns_sftp + 1))" ] ||
	fails="$fails agent-keys-offered($turns_sftp_agent>$turns_sftp+1)"

say "the named key held by the agent (no passphrase asked)"
ssh-add -q "$SSH_KEY" 2>/dev/null
measure sftp_agent_named 11 "$P" -i "$SSH_KEY" "$R" check
kill "$SSH_AGENT_PID"
unset SSH_AUTH_SOCK SSH_AGENT_PID

say "a file read with the next one opened ahead (repository open: config, then the index)"
printf 'first file\n' >"$T/r/a"
head -c 70000 /dev/urandom >"$T/r/b"
{
	cat "$T/r/a"
	echo 70000
	cat "$T/r/b"
} >"$T/ahead.want"
# the stat and open of a; its read with the stat and open of b; b's
# read: one round trip less than without opening b ahead
# (the fewest of three runs each: the relay may count a handshake one
# turn more or less from run to run)
fewest()
{
	_min=999
	for _i in 1 2 3; do
		wanproxy_reset
		"$@" >/dev/null || die "$*: failed"
		_n=$(wanproxy_turns)
		[ "$_n" -lt "$_min" ] && _min=$_n
	done
	echo "$_min"
}
n0=$(fewest "$P" -i "$SSH_KEY" "$R" ahead0 a b)
n1=$(fewest "$P" -i "$SSH_KEY" "$R" ahead a b)
say "read then stat_read: $n0 turns; with the second opened ahead: $n1"
[ "$n1" -le "$((n0 - 1))" ] || fails="$fails ahead($n1>$n0-1)"
"$P" -i "$SSH_KEY" "$R" ahead0 a b >"$T/ahead0.got" || die "ahead0 failed"
cmp -s "$T/ahead.want" "$T/ahead0.got" || die "ahead0: wrong bytes"
"$P" -i "$SSH_KEY" "$R" ahead a b >"$T/ahead.got" || die "ahead failed"
cmp -s "$T/ahead.want" "$T/ahead.got" || die "ahead: wrong bytes"
# a next file that does not exist costs nothing and is then missing
"$P" -i "$SSH_KEY" "$R" ahead a nosuch >/dev/null 2>"$T/ahead.err" &&
	die "ahead of a missing file succeeded"
[ $? = 4 ] || die "ahead of a missing file: $(cat "$T/ahead.err")"

if [ -n "$fails" ]; then
	[ -n "${MV_RT_SHOW:-}" ] || die "over budget:$fails"
	say "over budget:$fails (not judged: MV_RT_SHOW)"
fi
ok
