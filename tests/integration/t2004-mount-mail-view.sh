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
[ -x /usr/sbin/dovecot ] || skip "no /usr/sbin/dovecot (dovecot-core)"

dir=$T
chmod 755 "$dir"
vuid=5000
mkdir -p "$dir/run" "$dir/state" "$dir/home" "$dir/keys"
chown $vuid:$vuid "$dir/home"
openssl ecparam -name prime256v1 -genkey 2>/dev/null |
	openssl pkey -out "$dir/keys/ecprivkey.pem" &&
	openssl pkey -in "$dir/keys/ecprivkey.pem" -pubout \
		-out "$dir/keys/ecpubkey.pem" || exit 1

cat >"$dir/dovecot.conf" <<CONF
ssl = no
protocols =
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
mail_plugins = zlib mail_crypt
mail_location = maildir:~/Maildir
mail_uid = $vuid
mail_gid = $vuid
first_valid_uid = 1000
namespace inbox {
  inbox = yes
  separator = /
  mailbox Archive {
    auto = create
  }
}
passdb {
  driver = static
  args = password=unused
}
userdb {
  driver = static
  args = uid=$vuid gid=$vuid home=$dir/home/%d/%n
}
plugin {
  mail_crypt_global_private_key = <$dir/keys/ecprivkey.pem
  mail_crypt_global_public_key = <$dir/keys/ecpubkey.pem
  mail_crypt_save_version = 2
  zlib_save = lz4
}
CONF

bg /usr/sbin/dovecot -F -c "$dir/dovecot.conf"
i=0
while { [ ! -S "$dir/run/auth-userdb" ] || [ ! -s "$dir/run/master.pid" ]; } &&
	[ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ -S "$dir/run/auth-userdb" ] || die "dovecot did not start"

mkdir -p "$dir/msg"
printf 'From: Alice Example <alice@example.org>\nTo: bob@example.org\nSubject: encrypted hello\nMessage-ID: <small@example.org>\nDate: Wed, 01 May 2024 12:00:00 +0000\n\nhello\n' >"$dir/msg/small.eml"
{
	printf 'From: =?UTF-8?Q?J=C3=BCrgen?= <j@example.org>\nSubject: big report\nMessage-ID: <big@example.org>\nDate: Thu, 02 May 2024 08:30:00 +0000\nMIME-Version: 1.0\nContent-Type: text/plain\n\n'
	i=0
	while [ $i -lt 3000 ]; do
		echo "line $i of a long body that spans several Dovecot LZ4 chunks"
		i=$((i + 1))
	done
} >"$dir/msg/big.eml"
printf 'From: Carol <carol@example.org>\nSubject: archived lz4 only\nMessage-ID: <lz4@example.org>\nDate: Fri, 03 May 2024 09:00:00 +0000\n\nold\n' >"$dir/msg/lz4.eml"

dv() { doveadm -c "$dir/dovecot.conf" "$@"; }
dv save -u bob@example.org -m INBOX <"$dir/msg/small.eml" || die "save"
dv save -u bob@example.org -m INBOX <"$dir/msg/big.eml" || die "save"
dv -o mail_plugins=zlib save -u bob@example.org -m Archive \
	<"$dir/msg/lz4.eml" || die "save lz4"

# mailcow's volumes: /vmail/<domain>/<user>/Maildir, /crypt/*.pem
mkdir -p "$dir/mc/crypt"
cp -a "$dir/home" "$dir/mc/vmail"
cp "$dir/keys/"*.pem "$dir/mc/crypt/"
head -c 9 "$(ls "$dir"/mc/vmail/example.org/bob/Maildir/new/* | head -1)" |
	grep -q CRYPTED || die "dovecot did not encrypt"
tar -C "$dir/mc" -cf "$dir/crypt-first.tar" crypt vmail
tar -C "$dir/mc" -cf "$dir/vmail-first.tar" vmail crypt
tar -C "$dir/mc" -cf "$dir/vmail-only.tar" vmail

R=$dir/repo
"$MV" init "$R" >/dev/null
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
