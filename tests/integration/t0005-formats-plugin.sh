#!/bin/sh
# t0005-formats-plugin: the mailvault binary does not link libarchive,
# GMime or ISA-L; their code is loaded from mailvault-formats.so when a
# command needs it.  Without the plugin, backup and export-tar stop before
# they change anything, with a message naming the file; ls, cat, restore
# and mount still work, and through the mount only a message stored
# gzip-compressed (Dovecot's zlib plugin) fails, with EIO.
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv
require_cmd readelf gzip
require_fuse

plugin=$MV_BUILD_DIR/mailvault-formats.so
[ -f "$plugin" ] || die "no $plugin: 'make' builds it beside the binary"

say "the binary leaves the format libraries to the plugin"
readelf -d "$MV_BIN" | grep NEEDED >"$T/needed"
assert_no_grep "libarchive|libgmime|libisal|libgio" "$T/needed"
readelf -d "$plugin" | grep NEEDED >"$T/needed-plugin"
assert_grep "libarchive" "$T/needed-plugin"
assert_grep "libgmime" "$T/needed-plugin"

R=$T/repo
M=$T/src/example.org/bob/Maildir
mkdir -p "$M/cur" "$M/new" "$M/tmp"
printf 'From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: gzip stored hello\r\nDate: Mon, 6 May 2024 10:00:00 +0000\r\nMessage-ID: <g1@example.org>\r\n\r\nHello from a compressed maildir.\r\n' \
	>"$T/gz.eml"
gzip -c "$T/gz.eml" >"$M/cur/1715000000.M1P1.host,S=$(stat -c %s "$T/gz.eml"):2,S"
printf 'From: Carol <carol@example.org>\r\nTo: bob@example.org\r\nSubject: plain hello\r\nDate: Mon, 6 May 2024 11:00:00 +0000\r\nMessage-ID: <p1@example.org>\r\n\r\nHello.\r\n' \
	>"$M/cur/1715000001.M2P1.host:2,S"
assert_ok "$MV" init "$R" >/dev/null
assert_ok "$MV" backup "$R" --name vol --quiet vol="$T/src"

# fails CMD...: exit 1, the plugin named on stderr
fails()
{
	set +e
	"$@" >"$T/o" 2>"$T/e"
	_rc=$?
	set -e
	assert_eq 1 "$_rc" "exit code of: $*"
	assert_grep "cannot load the formats plugin.*$MAILVAULT_PLUGIN" "$T/e"
}

say "a missing plugin: backup and export-tar stop, nothing written"
MAILVAULT_PLUGIN=$T/missing/mailvault-formats.so
export MAILVAULT_PLUGIN
"$MV" snapshots "$R" >"$T/snaps-before"
fails "$MV" backup "$R" --name vol vol="$T/src"
assert_grep "no snapshot was written" "$T/e"
tar -cf "$T/src.tar" -C "$T/src" .
fails "$MV" backup "$R" --name tar tar=- <"$T/src.tar"
fails "$MV" export-tar "$R" vol/latest:vol
"$MV" snapshots "$R" >"$T/snaps-after"
cmp "$T/snaps-before" "$T/snaps-after" || die "snapshots changed"

say "a file that is not the plugin: its missing entry point is named"
libz=$(ldd "$MV_BIN" | awk '/libz\.so/ { print $3 }')
[ -n "$libz" ] || die "no libz in ldd $MV_BIN"
MAILVAULT_PLUGIN=$libz
fails "$MV" backup "$R" --name vol vol="$T/src"
assert_grep "no symbol 'source_tar_read'" "$T/e"

say "ls, cat and restore need no plugin"
MAILVAULT_PLUGIN=$T/missing/mailvault-formats.so
assert_ok "$MV" ls "$R" vol/latest:vol/example.org/bob/Maildir/cur >"$T/ls"
assert_grep "1715000001.M2P1.host" "$T/ls"
"$MV" cat "$R" "vol/latest:vol/example.org/bob/Maildir/cur/1715000001.M2P1.host:2,S" \
	>"$T/cat" || die "cat without the plugin"
cmp "$T/cat" "$M/cur/1715000001.M2P1.host:2,S" || die "cat differs"
# the volume as stored (the mail view's copy of the gzip-stored message
# is decoded, which takes the plugin)
assert_ok "$MV" restore "$R" vol/latest:vol "$T/back" >/dev/null
assert_same_tree "$T/src" "$T/back/vol"

say "mount without the plugin: only the gzip-stored message fails"
mount_mv "$R" "$T/mnt"
V=$T/mnt/vol/latest/mail/bob@example.org/INBOX
gz=$(ls "$V" | grep 'gzip stored hello')
plain=$(ls "$V" | grep 'plain hello')
assert_fail cat "$V/$gz"
cat "$V/$plain" >/dev/null || die "plain message unreadable"
unmount_mv "$T/mnt"

say "mount with the plugin: loaded on the first gzip read"
unset MAILVAULT_PLUGIN
mount_mv "$R" "$T/mnt"
cmp "$V/$gz" "$T/gz.eml" || die "decoded message differs"
unmount_mv "$T/mnt"

say "with the plugin: export-tar and backup work"
unset MAILVAULT_PLUGIN
assert_ok "$MV" export-tar "$R" vol/latest:vol >"$T/out.tar"
tar -tf "$T/out.tar" | grep -q "1715000001.M2P1.host" || die "export-tar"
assert_ok "$MV" backup "$R" --name tar --quiet tar=- <"$T/src.tar"
ok
