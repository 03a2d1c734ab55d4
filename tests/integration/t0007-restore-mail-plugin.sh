#!/bin/sh
# t0007-restore-mail-plugin: restore-mail and its IMAP client (libetpan,
# which brings Berkeley DB and liblockfile) live in mailvault-formats.so:
# the binary does not link them, so no other command maps them at start.
# Without the plugin, restore-mail stops with exit 1 and a message naming
# the file tried, before it asks for a password or connects; its --help
# and `mailvault help restore-mail` still work; other commands are not
# affected.  (t5021 restores through the plugin against a real Dovecot.)
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv
require_cmd readelf ldd

plugin=$MV_BUILD_DIR/mailvault-formats.so
[ -f "$plugin" ] || die "no $plugin: 'make' builds it beside the binary"

say "the binary leaves libetpan and what it brings to the plugin"
readelf -d "$MV_BIN" | grep NEEDED >"$T/needed"
assert_no_grep "libetpan|libdb-|liblockfile" "$T/needed"
ldd "$MV_BIN" >"$T/ldd"
assert_no_grep "libetpan|libdb-|liblockfile" "$T/ldd"
readelf -d "$plugin" | grep NEEDED >"$T/needed-plugin"
assert_grep "libetpan" "$T/needed-plugin"
readelf --dyn-syms -W "$plugin" | awk '$7 != "UND"' >"$T/plugin-syms"
assert_grep " cmd_restore_mail$" "$T/plugin-syms"
assert_grep " imap_open$" "$T/plugin-syms"

R=$T/repo
mkdir -p "$T/src/example.org/bob/Maildir/cur"
printf 'From: a@example.org\r\nSubject: hello\r\nMessage-ID: <1@example.org>\r\n\r\nhi\r\n' \
	>"$T/src/example.org/bob/Maildir/cur/1715000000.M1P1.host:2,S"
assert_ok "$MV" init "$R" >/dev/null
assert_ok "$MV" backup "$R" --name vol --quiet vol="$T/src"
view=vol/latest:mail/bob@example.org/INBOX

say "without the plugin: restore-mail stops before it connects"
MAILVAULT_PLUGIN=$T/missing/mailvault-formats.so
export MAILVAULT_PLUGIN
# a password on stdin and a port nothing listens on: neither may be used
set +e
echo secret | "$MV" restore-mail "$R" "$view" \
	--to imap://bob@127.0.0.1:1/ --insecure >"$T/o" 2>"$T/e"
rc=$?
set -e
cat "$T/e"
assert_eq 1 "$rc" "exit of restore-mail without the plugin"
assert_grep "cannot load the formats plugin.*$MAILVAULT_PLUGIN" "$T/e"
assert_no_grep "password|connect" "$T/e"
[ ! -s "$T/o" ] || die "restore-mail printed on stdout: $(cat "$T/o")"

say "its help needs no plugin"
assert_ok "$MV" restore-mail --help >"$T/help1"
assert_grep "^usage: mailvault restore-mail" "$T/help1"
assert_grep "--auth-user MASTER" "$T/help1"
assert_ok "$MV" help restore-mail >"$T/help2"
cmp "$T/help1" "$T/help2" || die "restore-mail --help and help restore-mail differ"

say "the other commands do not need it"
assert_ok "$MV" ls "$R" "$view" >"$T/ls"
assert_grep "hello" "$T/ls"

say "with the plugin: restore-mail runs (a dry run lists the message)"
unset MAILVAULT_PLUGIN
assert_ok "$MV" restore-mail "$R" "$view" --to imap://bob@127.0.0.1:1/ \
	--insecure --dry-run >"$T/dry" 2>"$T/dry.err"
assert_grep "1 messages in 1 folders: 1 would be appended" "$T/dry"
ok
