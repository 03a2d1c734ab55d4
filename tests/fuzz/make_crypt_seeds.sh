#!/bin/sh
# make_crypt_seeds.sh: write seeds for fuzz_mail_crypt made by real
# Dovecot (dovecot-core, as root): a small message saved with mail_crypt
# (version 2, the harness's P-256 key) over lz4 and over nothing, and with
# the zlib plugin alone (gz, bz2; Debian's Dovecot has no xz).  Run once
# by hand; the files are committed under corpus/fuzz_mail_crypt/.  Setup
# as in tests/integration/t5001-mailcrypt.sh.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$here/corpus/fuzz_mail_crypt
dir=$(mktemp -d /tmp/mv-crypt-seeds.XXXXXX)
chmod 755 "$dir"
trap 'kill "$(cat "$dir/run/master.pid" 2>/dev/null)" 2>/dev/null; rm -rf "$dir"' EXIT
vuid=5000
mkdir -p "$dir/run" "$dir/state" "$dir/home" "$dir/crypt"
chown $vuid:$vuid "$dir/home"
# the key of tests/fuzz/fuzz_mail_crypt.c
sed -n '/BEGIN PRIVATE KEY/,/END PRIVATE KEY/p' "$here/fuzz_mail_crypt.c" |
	sed 's/^[^"]*"//; s/\\n"[;]*$//' >"$dir/crypt/ecprivkey.pem"
openssl pkey -in "$dir/crypt/ecprivkey.pem" -pubout -out "$dir/crypt/ecpubkey.pem"
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
/usr/sbin/dovecot -c "$dir/dovecot.conf"
i=0
while [ ! -S "$dir/run/auth-userdb" ] && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
printf 'From: Alice <alice@example.org>\nSubject: small\nMessage-ID: <s@example.org>\n\nhello\n' >"$dir/msg"
# save SEED USER [doveadm -o options...]
save() {
	seed=$1
	user=$2
	shift 2
	doveadm -c "$dir/dovecot.conf" "$@" save -u "$user@example.org" \
		-m INBOX <"$dir/msg"
	cp "$(ls -t "$dir/home/example.org/$user/Maildir/new/"* | head -1)" \
		"$out/$seed"
}
mkdir -p "$out"
save dovecot-crypt-lz4 c1
save dovecot-crypt c2 -o plugin/zlib_save=
save dovecot-gz z1 -o mail_plugins=zlib -o plugin/zlib_save=gz
save dovecot-bz2 z2 -o mail_plugins=zlib -o plugin/zlib_save=bz2
chmod 644 "$out"/dovecot-*
ls -l "$out"
