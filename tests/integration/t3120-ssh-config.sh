#!/bin/sh
# t3120-ssh-config: sftp:// and ssh:// locations follow the user's OpenSSH
# configuration (~/.ssh/config of a private HOME): a Host alias with
# HostName, Port, User, IdentityFile, UserKnownHostsFile is enough for
# init, backup (with an ssh:// source), snapshots and ls; a port written
# in the location wins; IdentitiesOnly keeps the agent's keys out;
# ProxyJump goes through a jump host; an unknown alias, a mistake in the
# file and a missing ssh binary each say what happened.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"
. "$TOP/tests/lib/wanproxy.sh"

require_cmd ssh
require_cmd ssh-agent
require_cmd ssh-add
sshd_start
# the configuration's UserKnownHostsFile is the one that counts here
unset MAILVAULT_KNOWN_HOSTS
KH=$T/known_hosts
: >"$KH"
# a key the server does not accept, and the one it does
ssh-keygen -q -t ed25519 -N '' -f "$T/wrong_key" -C wrong
mkdir -p "$T/src/a"
echo "one message" >"$T/src/a/1"
echo "another" >"$T/src/a/2"

# jump: the same sshd, reached through wanproxy so that its use shows in
# the relay's count of connections
wanproxy_start 0

cat >"$HOME/.ssh/config" <<EOF
Host vault
	HostName 127.0.0.1
	Port $SSHD_PORT
	User root
	IdentityFile $SSH_KEY
	UserKnownHostsFile $KH

Host onlywrong
	HostName 127.0.0.1
	Port $SSHD_PORT
	User root
	IdentityFile $T/wrong_key
	IdentitiesOnly yes
	UserKnownHostsFile $KH

Host anywrong
	HostName 127.0.0.1
	Port $SSHD_PORT
	User root
	IdentityFile $T/wrong_key
	UserKnownHostsFile $KH

Host jump
	HostName 127.0.0.1
	Port $WANPROXY_PORT
	User root
	IdentityFile $SSH_KEY
	UserKnownHostsFile $KH
	BatchMode yes

Host behind
	HostName 127.0.0.1
	Port $SSHD_PORT
	User root
	IdentityFile $SSH_KEY
	UserKnownHostsFile $KH
	ProxyJump jump

Host viacommand
	HostName 127.0.0.1
	Port $SSHD_PORT
	User root
	IdentityFile $SSH_KEY
	UserKnownHostsFile $KH
	ProxyCommand ssh -F $HOME/.ssh/config -W %h:%p jump

Host aliased
	HostName 127.0.0.1
	Port $SSHD_PORT
	User root
	IdentityFile $SSH_KEY
	UserKnownHostsFile $T/kh_alias
	HostKeyAlias vault-key
EOF
chmod 600 "$HOME/.ssh/config"
R=sftp://vault$T/repo

say "the alias's host key is checked against its UserKnownHostsFile"
assert_fail "$MV" init "$R" 2>"$T/err"
cat "$T/err"
assert_grep "host '\[127.0.0.1\]:$SSHD_PORT' is not known" "$T/err"
grep -qF "$KH" "$T/err" || die "the message does not name $KH"
[ ! -e "$T/repo" ] || die "repository created on an unverified host"

say "init, backup, snapshots, ls by the alias alone (no -i, no user, no port)"
assert_ok "$MV" init --accept-new-host-key "$R"
ssh-keygen -F "[127.0.0.1]:$SSHD_PORT" -f "$KH" >/dev/null ||
	die "the key was not recorded in UserKnownHostsFile"
[ ! -s "$HOME/.ssh/known_hosts" ] || die "recorded in ~/.ssh/known_hosts"
assert_ok "$MV" backup "$R" --name vol --quiet d="ssh://vault$T/src"
"$MV" snapshots "$R" >"$T/snaps"
assert_eq 1 "$(grep -c -E '^[0-9a-f]{12} ' "$T/snaps")" "snapshots"
"$MV" ls "$R" vol/latest:d/a >"$T/ls"
assert_grep '(^| )1$' "$T/ls"
assert_grep '(^| )2$' "$T/ls"
"$MV" cat "$R" vol/latest:d/a/2 >"$T/msg"
cmp "$T/src/a/2" "$T/msg" || die "cat gives other bytes"

say "a port written in the location wins over Port"
port_closed=$(_sshd_free_port)
assert_fail "$MV" snapshots "sftp://vault:$port_closed$T/repo" 2>"$T/err"
cat "$T/err"
assert_grep "port $port_closed" "$T/err"

say "IdentitiesOnly: the agent's keys are not offered"
eval "$(ssh-agent -s)" >/dev/null
echo "$SSH_AGENT_PID" >>"$T/.tl-pids"
ssh-add -q "$SSH_KEY" 2>/dev/null
# the right key is in the agent; the configuration names a wrong one
assert_fail "$MV" snapshots "sftp://onlywrong$T/repo" 2>"$T/err"
cat "$T/err"
assert_grep "cannot authenticate" "$T/err"
assert_grep "wrong_key" "$T/err"
# without IdentitiesOnly the agent's key is used after the named one
assert_ok "$MV" snapshots "sftp://anywrong$T/repo" >/dev/null
kill "$SSH_AGENT_PID"
unset SSH_AUTH_SOCK SSH_AGENT_PID

say "ProxyJump: through the jump host"
printf '[127.0.0.1]:%s %s\n' "$WANPROXY_PORT" \
	"$(cut -d' ' -f1,2 "$SSHD_HOST_PUB")" >>"$KH"
wanproxy_reset
MAILVAULT_SSH_DEBUG=1 "$MV" snapshots "sftp://behind$T/repo" \
	>"$T/snaps2" 2>"$T/dbg"
cat "$T/dbg"
cmp "$T/snaps" "$T/snaps2" || die "other snapshots through the jump host"
assert_grep "ProxyJump" "$T/dbg"
[ "$(wanproxy_conns)" -ge 1 ] || die "the jump host saw no connection"
# the jump host's own key is checked by ssh: unknown, it is refused
grep -v "^\[127.0.0.1\]:$WANPROXY_PORT " "$KH" >"$T/kh2"
cp "$T/kh2" "$KH"
assert_fail "$MV" snapshots "sftp://behind$T/repo" 2>"$T/err"
cat "$T/err"
assert_grep "through ProxyJump 'jump'" "$T/err"

say "ProxyCommand: the same through a command"
printf '[127.0.0.1]:%s %s\n' "$WANPROXY_PORT" \
	"$(cut -d' ' -f1,2 "$SSHD_HOST_PUB")" >>"$KH"
wanproxy_reset
"$MV" snapshots "sftp://viacommand$T/repo" >"$T/snaps4"
cmp "$T/snaps" "$T/snaps4" || die "other snapshots through ProxyCommand"
[ "$(wanproxy_conns)" -ge 1 ] || die "the jump host saw no connection"

say "HostKeyAlias: the key is known under the alias's name"
printf 'vault-key %s\n' "$(cut -d' ' -f1,2 "$SSHD_HOST_PUB")" >"$T/kh_alias"
"$MV" snapshots "sftp://aliased$T/repo" >"$T/snaps5"
cmp "$T/snaps" "$T/snaps5" || die "other snapshots with HostKeyAlias"
printf '[127.0.0.1]:%s %s\n' "$SSHD_PORT" \
	"$(cut -d' ' -f1,2 "$SSHD_HOST_PUB")" >"$T/kh_alias"
assert_fail "$MV" snapshots "sftp://aliased$T/repo" 2>"$T/err"
cat "$T/err"
assert_grep "host 'vault-key' is not known" "$T/err"

say "an alias that does not exist says so"
assert_fail "$MV" snapshots "sftp://nosuchalias$T/repo" 2>"$T/err"
cat "$T/err"
assert_grep "cannot resolve host 'nosuchalias'" "$T/err"
assert_grep "not a Host in ~/.ssh/config" "$T/err"

say "a mistake in the configuration is ssh's message"
printf 'Host *\n\tNoSuchOption yes\n' >"$T/bad_config"
assert_fail "$MV" snapshots --ssh-config "$T/bad_config" "$R" 2>"$T/err"
cat "$T/err"
assert_grep "line 2" "$T/err"
assert_grep "cannot read the ssh configuration" "$T/err"

say "--ssh-config none, or no ssh binary: the location as written"
assert_fail "$MV" snapshots --ssh-config none "$R" 2>"$T/err"
assert_grep "cannot resolve host 'vault'" "$T/err"
MAILVAULT_SSH=/nonexistent/ssh MAILVAULT_SSH_DEBUG=1 \
	"$MV" snapshots "$R" 2>"$T/err" && die "the alias resolved without ssh"
cat "$T/err"
assert_grep "cannot run '/nonexistent/ssh'" "$T/err"
MAILVAULT_SSH=/nonexistent/ssh MAILVAULT_KNOWN_HOSTS=$KH \
	"$MV" snapshots -i "$SSH_KEY" \
	"sftp://root@127.0.0.1:$SSHD_PORT$T/repo" >"$T/snaps3"
cmp "$T/snaps" "$T/snaps3" || die "other snapshots without ssh"
ok
