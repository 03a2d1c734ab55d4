# dovecot.sh: a private Dovecot configured as mailcow configures it
# (mail_crypt v2 with a global P-256 key pair, zlib with lz4), for tests
# that need real mailcow vmail files.  Source after test-lib.sh.
#
# mailcow_vmail_fixture: starts Dovecot in $T, saves three messages for
# bob@example.org (two encrypted + LZ4 in INBOX, one LZ4-only in Archive),
# and writes mailcow-shaped tar archives of the volumes:
#   $T/crypt-first.tar  crypt/ then vmail/
#   $T/vmail-first.tar  vmail/ then crypt/
#   $T/vmail-only.tar   vmail/ without the keys
# The original messages are in $T/msg/{small,big,lz4}.eml; dv runs doveadm
# with this configuration.  It also creates an empty repository at
# R=$T/repo.

dv() { doveadm -c "$dir/dovecot.conf" "$@"; }

mailcow_vmail_fixture()
{
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

	cat >"$dir/dovecot.conf" <<-CONF
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
}
