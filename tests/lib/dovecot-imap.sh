# dovecot-imap.sh: Debian's Dovecot as a throwaway IMAP server on 127.0.0.1,
# for restore-mail's tests and benchmark.  Source after test-lib.sh.
#
#   dovecot_imap_start DIR
#       users from a passwd-file: bob@example.org (password bobpw) and
#       carol@example.org (carolpw); a master user admin (masterpw) logging
#       in as "user*admin"; a self-signed certificate for 127.0.0.1 and
#       localhost in DIR/cert.pem; maildirs under DIR/home/<domain>/<user>.
#       Sets IMAP_PORT (STARTTLS), IMAPS_PORT (implicit TLS), IMAP_CERT,
#       IMAP_DIR.  The server is stopped by test-lib's cleanup.

_dv_free_port()
{
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

dovecot_imap_start()
{
	IMAP_DIR=$1
	[ "$(id -u)" = 0 ] || skip "Dovecot tests need root"
	[ -x /usr/sbin/dovecot ] || skip "no /usr/sbin/dovecot (dovecot-core)"
	[ -x /usr/lib/dovecot/imap ] || skip "no Dovecot IMAP (dovecot-imapd)"
	command -v openssl >/dev/null || skip "no openssl"
	_dv_uid=5000
	mkdir -p "$IMAP_DIR/run" "$IMAP_DIR/state" "$IMAP_DIR/home"
	chown "$_dv_uid:$_dv_uid" "$IMAP_DIR/home"
	# Dovecot's processes (uid 5000, dovenull) walk down to their files
	_dv_d=$IMAP_DIR
	while [ "$_dv_d" != / ]; do
		chmod o+x "$_dv_d" 2>/dev/null
		_dv_d=$(dirname "$_dv_d")
	done
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout "$IMAP_DIR/key.pem" -out "$IMAP_DIR/cert.pem" \
		2>/dev/null || die "openssl could not make a certificate"
	IMAP_CERT=$IMAP_DIR/cert.pem
	cat >"$IMAP_DIR/users" <<EOF
bob@example.org:{PLAIN}bobpw::::::
carol@example.org:{PLAIN}carolpw::::::
EOF
	echo 'admin:{PLAIN}masterpw::::::' >"$IMAP_DIR/masters"
	IMAP_PORT=$(_dv_free_port)
	IMAPS_PORT=$(_dv_free_port)
	cat >"$IMAP_DIR/dovecot.conf" <<EOF
protocols = imap
listen = 127.0.0.1
base_dir = $IMAP_DIR/run
state_dir = $IMAP_DIR/state
log_path = $IMAP_DIR/dovecot.log
ssl = yes
ssl_cert = <$IMAP_DIR/cert.pem
ssl_key = <$IMAP_DIR/key.pem
auth_mechanisms = plain login
auth_master_user_separator = *
mail_location = maildir:~/Maildir
mail_uid = $_dv_uid
mail_gid = $_dv_uid
first_valid_uid = 1000
mail_max_userip_connections = 100
${DOVECOT_EXTRA:-}
namespace inbox {
  inbox = yes
  separator = /
}
passdb {
  driver = passwd-file
  args = $IMAP_DIR/masters
  master = yes
  result_success = continue
}
passdb {
  driver = passwd-file
  args = $IMAP_DIR/users
}
userdb {
  driver = static
  args = uid=$_dv_uid gid=$_dv_uid home=$IMAP_DIR/home/%d/%n
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $IMAPS_PORT
    ssl = yes
  }
}
service stats {
  unix_listener stats-reader {
    mode = 0600
  }
  unix_listener stats-writer {
    mode = 0600
  }
}
EOF
	bg /usr/sbin/dovecot -F -c "$IMAP_DIR/dovecot.conf"
	_dv_i=0
	while ! python3 -c "import socket,sys
s = socket.create_connection(('127.0.0.1', $IMAPS_PORT), 1)" 2>/dev/null; do
		_dv_i=$((_dv_i + 1))
		[ $_dv_i -lt 100 ] || {
			cat "$IMAP_DIR/dovecot.log" >&2 2>/dev/null
			die "dovecot did not start"
		}
		sleep 0.1
	done
	export IMAP_PORT IMAPS_PORT IMAP_CERT IMAP_DIR
}
