#!/bin/sh
# t2004: mail view messages stored encrypted and LZ4-compressed by real
# Dovecot (mailcow's mail_crypt v2 + zlib) read decoded through the mount:
# cat of a view .eml is the message, its size is the decoded size, pieces
# read at any offset match, mailvault's own xattrs are not shown, raw
# vmail files stay byte for byte, and a message without its key is shown
# raw under its (undecodable) name.
. "$(dirname "$0")/../lib/test-lib.sh"

require_root
require_fuse
require_mv
require_cmd doveadm openssl getfattr
. "$TOP/tests/lib/dovecot.sh"
mailcow_vmail_fixture
"$MV" backup "$R" --name mc --json mc="$dir/crypt-first.tar" \
	>"$dir/backup.json" || die "backup"
assert_grep '"decoded":3,' "$dir/backup.json"
"$MV" backup "$R" --name nokey mc="$dir/vmail-only.tar" >/dev/null ||
	die "backup without key"

mnt=$dir/mnt
mount_mv "$R" "$mnt" -o cache_size=16
V=$mnt/mc/latest/mail/bob@example.org

say "cat through the mount gives the decoded messages"
small=$(ls "$V/INBOX/" | grep 'encrypted hello')
big=$(ls "$V/INBOX/" | grep 'big report')
cmp "$V/INBOX/$small" "$dir/msg/small.eml" || die "small message differs"
cmp "$V/INBOX/$big" "$dir/msg/big.eml" || die "big message differs"
arch=$(ls "$V/Archive/" | head -1)
cmp "$V/Archive/$arch" "$dir/msg/lz4.eml" || die "LZ4-only message differs"
assert_eq "$(stat -c %s "$dir/msg/big.eml")" "$(stat -c %s "$V/INBOX/$big")" \
	"size of the decoded message"

say "reads at offsets, in small pieces, match"
python3 - "$V/INBOX/$big" "$dir/msg/big.eml" <<'PY' || die "piecewise read"
import os, sys
want = open(sys.argv[2], "rb").read()
fd = os.open(sys.argv[1], os.O_RDONLY)
for off in (0, 1, 4095, 4096, 70000, len(want) - 3, len(want), len(want) + 9):
    got = os.pread(fd, 7000, off)
    assert got == want[off:off + 7000], off
got = b""
while True:
    b = os.read(fd, 333)
    if not b:
        break
    got += b
assert got == want[:len(got)] and os.pread(fd, 1 << 20, 0) == want
PY

say "rsync of the view folder gives the decoded messages"
rsync -a "$V/" "$dir/copy/" || die "rsync from the mount"
cmp "$dir/copy/INBOX/$big" "$dir/msg/big.eml" || die "rsync copy differs"

say "mailvault's own xattrs are not shown"
getfattr -d -m - "$V/INBOX/$small" >"$dir/xattrs" 2>&1 || true
assert_no_grep 'mailvault' "$dir/xattrs"
assert_fail getfattr -n mailvault.keys "$V/INBOX/$small" 2>/dev/null

say "raw vmail files are kept as stored"
raw=$(ls "$mnt/mc/latest/mc/vmail/example.org/bob/Maildir/new/" | head -1)
cmp "$mnt/mc/latest/mc/vmail/example.org/bob/Maildir/new/$raw" \
	"$dir/mc/vmail/example.org/bob/Maildir/new/$raw" || die "raw differs"

say "without a key: raw bytes under the (undecodable) name"
N=$mnt/nokey/latest/mail/bob@example.org/INBOX
rawname=$(ls "$N/" | grep 'no key' | head -1)
[ -n "$rawname" ] || die "no undecodable entry: $(ls "$N/")"
head -c 7 "$N/$rawname" | grep -q CRYPTED || die "raw view is not raw"
ok
