#!/bin/sh
# t5001: mailcow mail_crypt files made by real Dovecot decode to the
# original message; a missing or wrong key, a truncated file and a corrupt
# block fail with the documented status.
#
# Dovecot (Debian's dovecot-core) is configured as mailcow does: the zlib
# and mail_crypt plugins, global P-256 keys made with openssl exactly as
# mailcow's entrypoint makes them, mail_crypt_save_version = 2,
# zlib_save = lz4.  Messages are saved with "doveadm save" through a
# private dovecot master (for its auth service) that listens on nothing.

. "$(dirname "$0")/../lib/test-lib.sh"

tool=$MV_BUILD_DIR/tools/mail_decode
pass=0
fail=0

ok_() { pass=$((pass + 1)); echo "ok - $1"; }
not_ok() { fail=$((fail + 1)); echo "not ok - $1"; }
check() { # check DESCRIPTION COMMAND...
	d=$1
	shift
	if "$@"; then ok_ "$d"; else not_ok "$d"; fi
}

require_root
require_cmd doveadm openssl
[ -x /usr/sbin/dovecot ] || skip "no /usr/sbin/dovecot (dovecot-core)"
[ -x "$tool" ] || die "missing $tool (run make)"

dir=$T
chmod 755 "$dir"
vuid=5000
mkdir -p "$dir/run" "$dir/state" "$dir/home" "$dir/crypt" "$dir/other"
chown $vuid:$vuid "$dir/home"

# Key pair as mailcow's dovecot entrypoint creates it.
openssl ecparam -name prime256v1 -genkey 2>/dev/null |
	openssl pkey -out "$dir/crypt/ecprivkey.pem" &&
	openssl pkey -in "$dir/crypt/ecprivkey.pem" -pubout \
		-out "$dir/crypt/ecpubkey.pem" || exit 1
openssl ecparam -name prime256v1 -genkey 2>/dev/null |
	openssl pkey -out "$dir/other/ecprivkey.pem" || exit 1

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
  mail_crypt_global_private_key = <$dir/crypt/ecprivkey.pem
  mail_crypt_global_public_key = <$dir/crypt/ecpubkey.pem
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

# Messages (Dovecot stores LF line ends, so the originals use LF).
mkdir -p "$dir/msg"
printf 'From: Alice <alice@example.org>\nTo: bob@example.org\nSubject: small\nMessage-ID: <small@example.org>\nDate: Wed, 01 May 2024 12:00:00 +0000\n\nhello\n' >"$dir/msg/small.eml"
{
	printf 'From: =?UTF-8?Q?J=C3=BCrgen?= <j@example.org>\nSubject: big\nMessage-ID: <big@example.org>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\n'
	i=0
	while [ $i -lt 3000 ]; do
		echo "line $i of a long body that spans several Dovecot LZ4 chunks"
		i=$((i + 1))
	done
	printf -- '--b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=r.bin\n\n'
	head -c 90000 /dev/urandom | base64
	printf -- '--b--\n'
} >"$dir/msg/big.eml"

# save USER LABEL MESSAGE [doveadm -o options...]
save() {
	_user=$1
	_msg=$2
	shift 2
	doveadm -c "$dir/dovecot.conf" "$@" save -u "$_user@example.org" \
		-m INBOX <"$_msg" || return 1
}
newest() { ls -t "$dir/home/example.org/$1/Maildir/new/"* | head -1; }

for m in small big; do
	save crypt "$dir/msg/$m.eml" || not_ok "doveadm save crypt $m"
	cp "$(newest crypt)" "$dir/crypt-$m"
	save lz4 "$dir/msg/$m.eml" -o mail_plugins=zlib || not_ok "save lz4 $m"
	cp "$(newest lz4)" "$dir/lz4-$m"
	save plain "$dir/msg/$m.eml" -o mail_plugins= || not_ok "save plain $m"
	cp "$(newest plain)" "$dir/plain-$m"
	save zstd "$dir/msg/$m.eml" -o mail_plugins=zlib \
		-o plugin/zlib_save=zstd || not_ok "save zstd $m"
	cp "$(newest zstd)" "$dir/zstd-$m"
	save gz "$dir/msg/$m.eml" -o mail_plugins=zlib \
		-o plugin/zlib_save=gz || not_ok "save gz $m"
	cp "$(newest gz)" "$dir/gz-$m"
done

check "dovecot wrote a CRYPTED file" \
	test "$(head -c 7 "$dir/crypt-small")" = CRYPTED
check "dovecot wrote a Dovecot-LZ4 file" \
	test "$(head -c 11 "$dir/lz4-small")" = Dovecot-LZ4

layers() { "$tool" -k "$dir/crypt" -l "$1"; }
check "layers of encrypted file" test "$(layers "$dir/crypt-big")" = \
	"encrypted lz4"
check "layers of lz4 file" test "$(layers "$dir/lz4-big")" = lz4
check "layers of plain file" test "$(layers "$dir/plain-big")" = plain
check "layers of zstd file" test "$(layers "$dir/zstd-big")" = zstd
check "layers of gzip file" test "$(layers "$dir/gz-big")" = gzip

for kind in crypt lz4 plain zstd gz; do
	for m in small big; do
		"$tool" -k "$dir/crypt" "$dir/$kind-$m" >"$dir/out" \
			2>"$dir/err" || true
		check "$kind $m decodes to the original bytes" \
			cmp -s "$dir/out" "$dir/msg/$m.eml"
	done
done

# S= in the maildir name is the decoded size.
f=$(ls "$dir/home/example.org/crypt/Maildir/new/" | head -1)
s=$(echo "$f" | sed -n 's/.*,S=\([0-9]*\).*/\1/p')
"$tool" -k "$dir/crypt" "$dir/home/example.org/crypt/Maildir/new/$f" |
	wc -c >"$dir/n"
check "S= matches decoded size" test -n "$s" -a "$(tr -d ' ' <"$dir/n")" = "$s"

expect_status() { # expect_status DESC STATUS ARGS...
	d=$1
	want=$2
	shift 2
	got=0
	"$tool" "$@" >/dev/null 2>"$dir/err" || got=$?
	if [ "$got" = "$want" ]; then
		ok_ "$d ($(cat "$dir/err"))"
	else
		not_ok "$d: status $got, want $want: $(cat "$dir/err")"
	fi
}

expect_status "no key: ENOKEY" 3 "$dir/crypt-small"
expect_status "wrong key: ENOKEY" 3 -k "$dir/other" "$dir/crypt-small"
expect_status "lz4 without key still decodes" 0 "$dir/lz4-small"

size=$(wc -c <"$dir/crypt-big")
head -c $((size - 100)) "$dir/crypt-big" >"$dir/trunc-body"
expect_status "truncated body: EBADMSG" 4 -k "$dir/crypt" "$dir/trunc-body"
head -c 100 "$dir/crypt-big" >"$dir/trunc-hdr"
expect_status "truncated header: EBADMSG" 4 -k "$dir/crypt" "$dir/trunc-hdr"
head -c 12 "$dir/crypt-big" >"$dir/trunc-magic"
expect_status "truncated after magic: EBADMSG" 4 -k "$dir/crypt" \
	"$dir/trunc-magic"

# flip one byte of ciphertext, one byte of the ephemeral key, one LZ4 byte
flip() { # flip IN OUT OFFSET
	cp "$1" "$2"
	b=$(od -An -tu1 -j "$3" -N1 "$1" | tr -d ' ')
	printf "$(printf '\\%03o' $(((b + 1) % 256)))" |
		dd of="$2" bs=1 seek="$3" conv=notrunc 2>/dev/null
}
flip "$dir/crypt-big" "$dir/corrupt-body" 5000
expect_status "corrupt ciphertext: EBADMSG" 4 -k "$dir/crypt" \
	"$dir/corrupt-body"
flip "$dir/crypt-big" "$dir/corrupt-eph" 90
expect_status "corrupt ephemeral key: EBADMSG" 4 -k "$dir/crypt" \
	"$dir/corrupt-eph"
flip "$dir/lz4-big" "$dir/corrupt-lz4" 21
expect_status "corrupt lz4 chunk length: EBADMSG" 4 "$dir/corrupt-lz4"
lsize=$(wc -c <"$dir/lz4-big")
head -c $((lsize - 10)) "$dir/lz4-big" >"$dir/trunc-lz4"
expect_status "truncated lz4: EBADMSG" 4 "$dir/trunc-lz4"

say "$pass checks passed, $fail failed"
[ "$fail" = 0 ] || die "$fail checks failed"
ok
