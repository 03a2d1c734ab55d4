#!/bin/sh
# t5003: a mailcow-style vmail tree written by real Dovecot (mail_crypt
# v2 + LZ4, as mailcow configures it) shows decrypted, decompressed
# messages in the mail view: with the key from the same backup's crypt
# directory (before or after vmail in the input), with --mailcow-keys DIR,
# and as raw bytes under a clear name when no key is available.  The raw
# vmail files stay byte for byte as they were.
. "$(dirname "$0")/../lib/test-lib.sh"

require_root
require_cmd doveadm openssl
. "$TOP/tests/lib/dovecot.sh"
mailcow_vmail_fixture
for t in crypt-first vmail-first; do
	"$MV" backup "$R" --name $t --json mc="$dir/$t.tar" >"$dir/$t.json" ||
		die "backup $t"
	assert_grep '"messages":3,' "$dir/$t.json"
	assert_grep '"decoded":3,' "$dir/$t.json"
	assert_grep '"no_key":0,' "$dir/$t.json"
	V="$t/latest:mail/bob@example.org"
	"$MV" ls "$R" "$V/INBOX" >"$dir/$t.ls"
	assert_grep '^2024-05-01 1200 Alice Example - encrypted hello \[[0-9a-f]{8}\]\.eml$' \
		"$dir/$t.ls"
	assert_grep '^2024-05-02 0830 Jürgen - big report \[[0-9a-f]{8}\]\.eml$' \
		"$dir/$t.ls"
	small=$(grep 'encrypted hello' "$dir/$t.ls")
	big=$(grep 'big report' "$dir/$t.ls")
	"$MV" cat "$R" "$V/INBOX/$small" >"$dir/out" || die "cat $t small"
	cmp "$dir/out" "$dir/msg/small.eml" || die "$t: small not decoded"
	"$MV" cat "$R" "$V/INBOX/$big" >"$dir/out" || die "cat $t big"
	cmp "$dir/out" "$dir/msg/big.eml" || die "$t: big not decoded"
	arch=$("$MV" ls "$R" "$V/Archive" | head -1)
	"$MV" cat "$R" "$V/Archive/$arch" >"$dir/out"
	cmp "$dir/out" "$dir/msg/lz4.eml" || die "$t: lz4 not decompressed"
done

# restore and export-tar write the decoded messages with the exact size
mkdir "$dir/rest"
"$MV" restore "$R" "crypt-first/latest:mail" "$dir/rest" >/dev/null ||
	die "restore of the view"
f=$(ls "$dir/rest/mail/bob@example.org/INBOX/"*big*)
cmp "$f" "$dir/msg/big.eml" || die "restored view message differs"
"$MV" export-tar "$R" "crypt-first/latest:mail" >"$dir/view.tar"
mkdir "$dir/untar"
tar -C "$dir/untar" -xf "$dir/view.tar" 2>/dev/null
f=$(ls "$dir/untar/bob@example.org/INBOX/"*hello*)
cmp "$f" "$dir/msg/small.eml" || die "exported view message differs"

# the raw vmail files are kept exactly
mkdir "$dir/raw"
"$MV" restore "$R" "crypt-first/latest:mc/vmail" "$dir/raw" >/dev/null
diff -r "$dir/raw/vmail/example.org" "$dir/mc/vmail/example.org" >/dev/null ||
	die "raw vmail changed"

# no key: encrypted files are shown raw under a clear name, counted
"$MV" backup "$R" --name nokey --json mc="$dir/vmail-only.tar" \
	>"$dir/nokey.json" || die "backup without key"
assert_grep '"no_key":2,' "$dir/nokey.json"
"$MV" ls "$R" "nokey/latest:mail/bob@example.org/INBOX" >"$dir/nokey.ls"
assert_grep '\(undecodable\) - no key .*\.raw$' "$dir/nokey.ls"
raw=$(grep -m1 'no key' "$dir/nokey.ls")
"$MV" cat "$R" "nokey/latest:mail/bob@example.org/INBOX/$raw" >"$dir/out"
head -c 7 "$dir/out" | grep -q CRYPTED || die "raw view is not the raw file"

# --mailcow-keys DIR decodes an input without its crypt directory
"$MV" backup "$R" --name keysdir --json --mailcow-keys "$dir/keys" \
	mc="$dir/vmail-only.tar" >"$dir/keysdir.json" || die "backup keysdir"
assert_grep '"decoded":3,' "$dir/keysdir.json"
V="keysdir/latest:mail/bob@example.org/INBOX"
small=$("$MV" ls "$R" "$V" | grep 'encrypted hello')
"$MV" cat "$R" "$V/$small" >"$dir/out"
cmp "$dir/out" "$dir/msg/small.eml" || die "--mailcow-keys: not decoded"
"$MV" find "$R" --subject "encrypted hello" >"$dir/find"
assert_grep 'mail/bob@example.org/INBOX/2024-05-01 1200 Alice Example' \
	"$dir/find"
"$MV" check "$R" >/dev/null || die "check"
ok
