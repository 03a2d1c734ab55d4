#!/bin/sh
# t0041-encryption-remote: an encrypted repository at sftp:// keeps its key
# slots on the server: init, backup and byte-exact restore with the
# passphrase; a wrong one exits 12 and changes no file on the server; key
# add, export and import work through SFTP; no config or slot on the
# server holds a secret in clear.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"

require_mv
require_cmd setsid
sshd_start
H=root@127.0.0.1:$SSHD_PORT
R=sftp://$H$T/repo
mkdir -p "$T/src/d"
printf 'Subject: over sftp\n\nheld-back words\n' >"$T/src/d/msg"
head -c 100000 /dev/urandom >"$T/src/blob"

NT=$T/mv-no-tty
printf '#!/bin/sh\nexec setsid -w "%s" "$@" -i "%s" </dev/null\n' \
	"$MV_BIN" "$SSH_KEY" >"$NT"
chmod +x "$NT"

files()
{
	find "$T/repo" -printf '%P %s %T@\n' | sort
}

say "init on the server, encrypted by default"
MAILVAULT_PASSPHRASE=remote-one "$NT" init --accept-new-host-key "$R" \
	>"$T/init.out"
assert_grep 'key = repokey' "$T/init.out"
assert_grep '^encryption = xchacha20-poly1305$' "$T/repo/config"
assert_no_grep '^secret' "$T/repo/config"
assert_eq 1 "$(ls "$T/repo/keys" | wc -l)" "slots on the server"
[ "$(stat -c %a "$T/repo/keys/$(ls "$T/repo/keys")")" = 600 ] ||
	die "key slot on the server not 0600"

say "backup and restore through SFTP"
MAILVAULT_PASSPHRASE=remote-one "$NT" backup "$R" --name t d="$T/src" \
	>/dev/null
MAILVAULT_PASSPHRASE=remote-one "$NT" restore "$R" t/latest:d "$T/r1" \
	>/dev/null
assert_same_tree "$T/src" "$T/r1/d"

say "a wrong passphrase exits 12 and changes nothing on the server"
files >"$T/before"
set +e
MAILVAULT_PASSPHRASE=remote-two "$NT" backup "$R" --name t d="$T/src" \
	2>"$T/e"
rc=$?
set -e
cat "$T/e"
assert_eq 12 "$rc" "exit of a wrong passphrase"
assert_grep 'wrong passphrase: no key slot of .* opens with it' "$T/e"
files >"$T/after"
diff "$T/before" "$T/after" || die "a refused backup changed the server"

say "key add, export and import through SFTP"
MAILVAULT_PASSPHRASE=remote-one MAILVAULT_NEW_PASSPHRASE=remote-two \
	"$NT" key add "$R" >/dev/null
assert_eq 2 "$(ls "$T/repo/keys" | wc -l)" "slots after key add"
MAILVAULT_PASSPHRASE=remote-two "$NT" snapshots "$R" >/dev/null
MAILVAULT_PASSPHRASE=remote-two "$NT" key export --paper "$R" \
	"$T/key.txt" >/dev/null
rm -f "$T"/repo/keys/*
set +e
MAILVAULT_PASSPHRASE=remote-two "$NT" snapshots "$R" 2>"$T/e"
rc=$?
set -e
assert_eq 12 "$rc" "exit with no slot on the server"
MAILVAULT_PASSPHRASE=remote-two "$NT" key import "$R" "$T/key.txt" \
	>/dev/null
MAILVAULT_PASSPHRASE=remote-two "$NT" restore "$R" t/latest:d "$T/r2" \
	>/dev/null
assert_same_tree "$T/src" "$T/r2/d"
ok
