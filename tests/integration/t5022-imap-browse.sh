#!/bin/sh
# t5022-imap-browse: the browse-the-archive recipe (contrib/imap/
# dovecot-browse.conf, browse.acl) run as documented, with only its marked
# lines pointed at this test's files: Debian's Dovecot serves the maildirs
# of a mounted snapshot over IMAPS.  A client logs in, lists the folders,
# fetches messages byte-exact with the maildir's flags and delivery times,
# cannot set a flag, and nothing is written to the snapshot.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/dovecot-imap.sh"
require_mv
require_root
require_fuse
require_cmd python3 openssl doveadm
[ -x /usr/sbin/dovecot ] || skip "no /usr/sbin/dovecot (dovecot-core)"
[ -x /usr/lib/dovecot/imap ] || skip "no Dovecot IMAP (dovecot-imapd)"

FX="python3 $TOP/tests/lib/imap_fixture.py"
R=$T/repo
B=$T/browse
mnt=$T/mnt
chmod 0711 "$T"

say "a maildir backed up and mounted with allow_other"
assert_ok $FX make "$T/src"
chmod -R a+rX "$T/src"
assert_ok "$MV" init "$R" >/dev/null
assert_ok "$MV" backup "$R" --name mailcow --quiet vmail="$T/src"
mount_mv "$R" "$mnt" -o allow_other
maildir=$mnt/mailcow/latest/vmail/example.org/alice/Maildir
[ -d "$maildir/cur" ] || die "no maildir in the mount"

say "the recipe, its marked lines pointed here"
mkdir -p "$B/lib" "$B/etc"
chown 5000:5000 "$B/lib"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
	-keyout "$B/etc/key.pem" -out "$B/etc/cert.pem" 2>/dev/null ||
	die "openssl could not make a certificate"
port=$(_dv_free_port)
sed -e "s|/mnt/mailvault|$mnt|g" \
	-e "s|/var/lib/mailvault-browse|$B/lib|g" \
	-e "s|/run/mailvault-browse|$B/run|g" \
	-e "s|/etc/mailvault/|$B/etc/|g" \
	-e "s|^log_path = syslog|log_path = $B/dovecot.log|" \
	-e "s|^listen = \*|listen = 127.0.0.1|" \
	-e "s|^ssl_cert = .*|ssl_cert = <$B/etc/cert.pem|" \
	-e "s|^ssl_key = .*|ssl_key = <$B/etc/key.pem|" \
	-e "s|^mail_uid = vmail|mail_uid = 5000|" \
	-e "s|^mail_gid = vmail|mail_gid = 5000|" \
	-e "s|    port = 10993|    port = $port|" \
	"$TOP/contrib/imap/dovecot-browse.conf" >"$B/etc/dovecot-browse.conf"
cp "$TOP/contrib/imap/browse.acl" "$B/etc/browse.acl"
diff "$TOP/contrib/imap/dovecot-browse.conf" "$B/etc/dovecot-browse.conf" |
	grep '^> [^ #]' >"$T/changed" || true
cat "$T/changed"
# only the settings marked "# <-", listen and the server's own paths
[ "$(wc -l <"$T/changed")" -le 13 ] || die "the recipe needed more changes"
hash=$(doveadm pw -s SHA512-CRYPT -p alicepw) || die "doveadm pw failed"
echo "alice@example.org:$hash" >"$B/etc/browse.passwd"
mkdir -p "$B/run"
bg /usr/sbin/dovecot -F -c "$B/etc/dovecot-browse.conf"
i=0
while ! python3 -c "import socket
socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 100 ] || { cat "$B/dovecot.log" >&2; die "dovecot did not start"; }
	sleep 0.1
done

say "every folder, byte-exact, with the maildir's flags and times"
# keyword letters need dovecot-keywords, which sits with the snapshot's
# maildir, not in the recipe's CONTROL directory: compared without them
assert_ok $FX check --port "$port" --ca "$B/etc/cert.pem" \
	--user alice@example.org --password alicepw \
	--manifest "$T/src/manifest.json" --map = --exact --deleted \
	--no-keywords >"$T/check" || { cat "$T/check" "$B/dovecot.log"; die "check"; }
cat "$T/check"
assert_grep 'checked 12 messages in 5 folders, 0 differences' "$T/check"
assert_ok $FX fetch --port "$port" --ca "$B/etc/cert.pem" \
	--user alice@example.org --password alicepw Archive/2024 1 >"$T/msg"
grep -q 'Subject: ' "$T/msg" || die "fetched no message"

say "read-only: a flag cannot be set, the snapshot is untouched"
python3 - "$port" "$B/etc/cert.pem" >"$T/store" 2>&1 <<'PY' || true
import imaplib, ssl, sys
m = imaplib.IMAP4_SSL("127.0.0.1", int(sys.argv[1]),
                      ssl_context=ssl.create_default_context(cafile=sys.argv[2]))
m.login("alice@example.org", "alicepw")
try:
    typ, data = m.select("INBOX")
    print("select", typ, data)
except imaplib.IMAP4.readonly as e:
    print("select READ-ONLY:", e)
    m.select("INBOX", readonly=True)
typ, data = m._simple_command("STORE", "1", "+FLAGS", "(\\Flagged)")
print("store", typ, data)
PY
cat "$T/store"
assert_grep "^select READ-ONLY" "$T/store"
assert_grep "^store (NO|OK .*ignored with read-only)" "$T/store"
assert_ok $FX check --port "$port" --ca "$B/etc/cert.pem" \
	--user alice@example.org --password alicepw \
	--manifest "$T/src/manifest.json" --map = --exact --deleted \
	--no-keywords >/dev/null
assert_grep 'Login: user=<alice@example.org>' "$B/dovecot.log"
# the one complaint expected: Dovecot tries once to move a message that was
# still in new/ at backup time to cur/ (docs/RESTORE-MAIL.md)
grep -E 'Error|Panic|Fatal' "$B/dovecot.log" |
	grep -v '/new/[^ ]*, [^ ]*/cur/[^ ]*) failed: Read-only file system' \
		>"$T/errors" || true
[ ! -s "$T/errors" ] || { cat "$T/errors"; die "dovecot logged errors"; }

say "a wrong password is refused"
assert_fail $FX fetch --port "$port" --ca "$B/etc/cert.pem" \
	--user alice@example.org --password wrong INBOX 1 2>/dev/null
ok
