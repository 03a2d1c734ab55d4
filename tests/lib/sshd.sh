# sshd.sh: a private OpenSSH server for remote tests (POSIX sh).  Source it
# after test-lib.sh:
#
#	. "$(dirname "$0")/../lib/test-lib.sh"
#	. "$TOP/tests/lib/sshd.sh"
#	sshd_start                  # or: sshd_start sftponly
#	"$TOP/build/tools/sftp_probe" "sftp://root@127.0.0.1:$SSHD_PORT/$T/r" init
#
# sshd_start [sftponly]
#     Start /usr/sbin/sshd -D -e on 127.0.0.1 and a free port, with a fresh
#     host key, a fresh client key authorized for root, StrictModes no,
#     UsePAM no, its PidFile in $SSHD_DIR.  With "sftponly" it also creates
#     the user $SSHD_SFTP_USER, allowed only internal-sftp chrooted to
#     $SSHD_CHROOT (the layout of a storage box account; the writable
#     directory is $SSHD_CHROOT/data, "/data" as the user sees it; the
#     chroot lives under /run, as /tmp is world-writable).  Sets:
#       SSHD_DIR SSHD_PORT SSHD_PID   the server
#       SSH_KEY                       client private key (no passphrase)
#       SSHD_HOST_PUB                 the host public key
#       MAILVAULT_KNOWN_HOSTS         exported; an empty file
#       HOME                          exported; $SSHD_DIR/home (no agent,
#                                     no ~/.ssh of the real user)
# sshd_trust         record the host key in $MAILVAULT_KNOWN_HOSTS
# sshd_restart [newkey]  restart on the same port (new host key if asked)
# sshd_kill_sessions kill every session process (sshd children)
# sshd_stop          stop the server (also done at exit, with the user)
#
# Requires root (to run sshd and to create the chrooted user).

SSHD_BIN=${SSHD_BIN:-/usr/sbin/sshd}
SSHD_PID=
SSHD_SFTP_USER=
_sshd_user_made=

_sshd_cleanup()
{
	set +e
	sshd_stop
	if [ -n "$_sshd_user_made" ]; then
		userdel "$SSHD_SFTP_USER" >/dev/null 2>&1
		rm -rf "$SSHD_CHROOT"
		_sshd_user_made=
	fi
}
trap '_sshd_rc=$?; _sshd_cleanup; (exit $_sshd_rc); _tl_cleanup' EXIT

_sshd_free_port()
{
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

sshd_start()
{
	[ "$(id -u)" = 0 ] || skip "sshd tests need root"
	[ -x "$SSHD_BIN" ] || skip "no $SSHD_BIN (install openssh-server)"
	command -v ssh-keygen >/dev/null || skip "no ssh-keygen"
	SSHD_DIR=$T/sshd
	mkdir -p "$SSHD_DIR/home/.ssh" "$SSHD_DIR/keys" /run/sshd
	chmod 700 "$SSHD_DIR/home/.ssh"
	ssh-keygen -q -t ed25519 -N '' -f "$SSHD_DIR/host_key" -C host
	ssh-keygen -q -t ed25519 -N '' -f "$SSHD_DIR/client_key" -C client
	SSH_KEY=$SSHD_DIR/client_key
	SSHD_HOST_PUB=$SSHD_DIR/host_key.pub
	cp "$SSH_KEY.pub" "$SSHD_DIR/keys/root"
	SSHD_PORT=$(_sshd_free_port)
	cat >"$SSHD_DIR/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $SSHD_PORT
HostKey $SSHD_DIR/host_key
PidFile $SSHD_DIR/sshd.pid
AuthorizedKeysFile $SSHD_DIR/keys/%u
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
LogLevel ERROR
MaxStartups 50
MaxSessions 50
Subsystem sftp internal-sftp
EOF
	if [ "${1:-}" = sftponly ]; then
		SSHD_SFTP_USER=mvsftp$$
		# every directory above a chroot must be root's and not
		# writable by others, which rules out /tmp
		SSHD_CHROOT=/run/mailvault-test-chroot.$$
		useradd -M -d / -p '*' -s /usr/sbin/nologin "$SSHD_SFTP_USER" ||
			die "cannot create user $SSHD_SFTP_USER"
		_sshd_user_made=1
		# "*": no password, but not locked (sshd refuses locked users)
		# a chroot must be owned by root and not writable by others,
		# every directory above it too
		mkdir -p "$SSHD_CHROOT/data"
		chmod 755 "$T" "$SSHD_CHROOT"
		chown "$SSHD_SFTP_USER" "$SSHD_CHROOT/data"
		cp "$SSH_KEY.pub" "$SSHD_DIR/keys/$SSHD_SFTP_USER"
		chmod 644 "$SSHD_DIR/keys/$SSHD_SFTP_USER"
		chmod 755 "$SSHD_DIR" "$SSHD_DIR/keys"
		cat >>"$SSHD_DIR/sshd_config" <<EOF
Match User $SSHD_SFTP_USER
	ForceCommand internal-sftp
	ChrootDirectory $SSHD_CHROOT
	AllowTcpForwarding no
	X11Forwarding no
	PermitTTY no
EOF
	fi
	# the port was free when it was chosen; a test running beside this
	# one may have taken it since: then another port
	_tries=1
	until _sshd_run; do
		_tries=$((_tries + 1))
		[ "$_tries" -le 5 ] ||
			die "sshd did not start: $(cat "$SSHD_DIR/sshd.log")"
		SSHD_PORT=$(_sshd_free_port)
		sed -i "s/^Port .*/Port $SSHD_PORT/" "$SSHD_DIR/sshd_config"
	done
	HOME=$SSHD_DIR/home
	MAILVAULT_KNOWN_HOSTS=$SSHD_DIR/known_hosts
	: >"$MAILVAULT_KNOWN_HOSTS"
	unset SSH_AUTH_SOCK || true
	export HOME MAILVAULT_KNOWN_HOSTS SSHD_PORT SSH_KEY
	say "sshd $SSHD_PID on 127.0.0.1:$SSHD_PORT"
}

_sshd_run()
{
	"$SSHD_BIN" -t -f "$SSHD_DIR/sshd_config" ||
		die "sshd rejects the test configuration"
	"$SSHD_BIN" -D -e -f "$SSHD_DIR/sshd_config" \
		2>>"$SSHD_DIR/sshd.log" &
	SSHD_PID=$!
	echo "$SSHD_PID" >>"$T/.tl-pids"
	_n=50
	while ! python3 -c "import socket
socket.create_connection(('127.0.0.1', $SSHD_PORT), 1).close()" \
		2>/dev/null; do
		_n=$((_n - 1))
		[ "$_n" -gt 0 ] || die "sshd did not start: $(cat "$SSHD_DIR/sshd.log")"
		kill -0 "$SSHD_PID" 2>/dev/null ||
			die "sshd exited: $(cat "$SSHD_DIR/sshd.log")"
		sleep 0.1
	done
	# an answer may have come from another listener on the port, the
	# one this sshd could not bind (it then exits at once): false
	sleep 0.2
	kill -0 "$SSHD_PID" 2>/dev/null
}

# sshd_restart [newkey]: stop and start again on the same port, with a new
# host key when asked (a reinstalled server, or a man in the middle).
sshd_restart()
{
	sshd_stop
	if [ "${1:-}" = newkey ]; then
		rm -f "$SSHD_DIR/host_key" "$SSHD_DIR/host_key.pub"
		ssh-keygen -q -t ed25519 -N '' -f "$SSHD_DIR/host_key" -C host
	fi
	_sshd_run || die "sshd did not start again on port $SSHD_PORT: $(cat "$SSHD_DIR/sshd.log")"
}

sshd_trust()
{
	printf '[127.0.0.1]:%s %s\n' "$SSHD_PORT" \
		"$(cut -d' ' -f1,2 "$SSHD_HOST_PUB")" >>"$MAILVAULT_KNOWN_HOSTS"
}

sshd_kill_sessions()
{
	for _p in $(pgrep -P "$SSHD_PID" 2>/dev/null); do
		kill -9 "$_p" 2>/dev/null || true
	done
}

sshd_stop()
{
	[ -n "$SSHD_PID" ] || return 0
	sshd_kill_sessions
	kill "$SSHD_PID" 2>/dev/null
	wait "$SSHD_PID" 2>/dev/null
	SSHD_PID=
	return 0
}
