#!/bin/sh
# t9010: a key given with --mailcow-keys is held only by the
# mailvault.keys xattr of the view's entries; prune keeps it (one snapshot,
# --max-unused 0), encrypted messages still decode through cat and the
# mount, check --read-data stays clean, and check names the messages whose
# key is gone when it is.
. "$(dirname "$0")/../lib/test-lib.sh"

require_root
require_cmd doveadm openssl sqlite3
. "$TOP/tests/lib/dovecot.sh"
mailcow_vmail_fixture

"$MV" backup "$R" --name keys --json --mailcow-keys "$dir/keys" \
	mc="$dir/vmail-only.tar" >"$dir/keys.json" || die "backup"
assert_grep '"decoded":3,' "$dir/keys.json"
V="keys/latest:mail/bob@example.org/INBOX"
small=$("$MV" ls "$R" "$V" | grep 'encrypted hello')
"$MV" cat "$R" "$V/$small" >"$T/out" || die "cat before prune"
cmp "$T/out" "$dir/msg/small.eml" || die "not decoded before prune"

say "prune --max-unused 0 keeps the key"
"$MV" prune "$R" --max-unused 0 >"$T/prune" 2>&1 || {
	cat "$T/prune"
	die "prune"
}
cat "$T/prune"
"$MV" cat "$R" "$V/$small" >"$T/out" || die "cat after prune"
cmp "$T/out" "$dir/msg/small.eml" || die "not decoded after prune"
"$MV" check --read-data "$R" >"$T/ck" 2>&1 || {
	cat "$T/ck"
	die "check --read-data after prune"
}
assert_grep 'no damage found' "$T/ck"

if [ -e /dev/fuse ] && command -v fusermount3 >/dev/null; then
	say "the mount decodes it too"
	mkdir "$T/mnt"
	mount_mv "$R" "$T/mnt"
	f=$(ls "$T/mnt/keys/latest/mail/bob@example.org/INBOX/" |
		grep 'encrypted hello')
	cmp "$T/mnt/keys/latest/mail/bob@example.org/INBOX/$f" \
		"$dir/msg/small.eml" || die "mount: not decoded after prune"
	unmount_mv "$T/mnt"
fi

say "check follows the key reference: the key's row removed"
klen=$(wc -c <"$dir/keys/ecprivkey.pem")
n=$(sqlite3 "$R/index.db" \
	"SELECT count(*) FROM chunks WHERE type = 1 AND raw_size = $klen")
assert_eq 1 "$n" "chunks of the key's size"
sqlite3 "$R/index.db" "DELETE FROM chunks WHERE type = 1 AND raw_size = $klen"
set +e
"$MV" check "$R" >"$T/ck" 2>&1
rc=$?
set -e
cat "$T/ck"
assert_eq 13 "$rc" "exit status of check with the key gone"
assert_grep "snapshot keys/[0-9TZ-]+ \[[0-9a-f]{12}\]: file '/mail/bob@example.org/INBOX/[^']*encrypted hello[^']*': missing key" \
	"$T/ck"
ok
