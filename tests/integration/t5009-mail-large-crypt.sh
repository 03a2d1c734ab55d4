#!/bin/sh
# t5009: a message of several MiB (an attachment) stored by real Dovecot
# encrypted (mail_crypt v2) and LZ4-compressed, as mailcow stores it, gets
# its proper view name and catalogue row from a tar and from a directory
# source; its bytes through the view equal the original; a second backup
# does not parse it again; a wrong key and truncated copies get clear
# names and are counted.
. "$(dirname "$0")/../lib/test-lib.sh"

require_root
require_cmd doveadm openssl base64
. "$TOP/tests/lib/dovecot.sh"
mailcow_vmail_fixture

# a 6 MiB message: text part, then a 4.5 MiB PDF-like attachment
{
	printf 'From: Dana Attach <dana@example.org>\nTo: bob@example.org\n'
	printf 'Subject: quarterly slides with attachment\n'
	printf 'Message-ID: <large@example.org>\n'
	printf 'Date: Mon, 03 Jun 2024 14:15:00 +0000\nMIME-Version: 1.0\n'
	printf 'Content-Type: multipart/mixed; boundary="b1"\n\n--b1\n'
	printf 'Content-Type: text/plain\n\nthe slides are attached\n\n--b1\n'
	printf 'Content-Type: application/pdf; name="q3-slides.pdf"\n'
	printf 'Content-Disposition: attachment; filename="q3-slides.pdf"\n'
	printf 'Content-Transfer-Encoding: base64\n\n'
	head -c 4718592 /dev/urandom | base64 -w 76
	printf '\n--b1--\n'
} >"$dir/msg/large.eml"
dv save -u bob@example.org -m INBOX <"$dir/msg/large.eml" || die "save large"

rm -rf "$dir/mc/vmail"
cp -a "$dir/home" "$dir/mc/vmail"
lf=$(ls -S "$dir"/mc/vmail/example.org/bob/Maildir/new/* | head -1)
size=$(stat -c %s "$lf")
[ "$size" -gt 3000000 ] || die "large message stored in $size bytes"
head -c 9 "$lf" | grep -q CRYPTED || die "large message not encrypted"
tar -C "$dir/mc" -cf "$dir/large.tar" crypt vmail

V=mail/bob@example.org/INBOX
name_re='^2024-06-03 1415 Dana Attach - quarterly slides with attachment \[[0-9a-f]{8}\]\.eml$'
for src in tar dir; do
	if [ $src = tar ]; then
		in="mc=$dir/large.tar"
	else
		in="mc=$dir/mc"
	fi
	"$MV" backup "$R" --name $src --json "$in" >"$dir/$src.json" ||
		die "backup $src"
	assert_grep '"messages":4,' "$dir/$src.json"
	assert_grep '"decoded":4,' "$dir/$src.json"
	assert_grep '"large":0,' "$dir/$src.json"
	"$MV" ls "$R" "$src/latest:$V" >"$dir/$src.ls"
	assert_grep "$name_re" "$dir/$src.ls"
	big=$(grep 'quarterly slides' "$dir/$src.ls")
	"$MV" cat "$R" "$src/latest:$V/$big" >"$dir/out" || die "cat $src"
	cmp "$dir/out" "$dir/msg/large.eml" || die "$src: large not decoded"
	"$MV" ls -l "$R" "$src/latest:$V/$big" >"$dir/$src.ll"
	assert_grep " $(stat -c %s "$dir/msg/large.eml") " "$dir/$src.ll"
done
# the tar backup parsed it; the directory backup met it known
assert_grep '"parsed":4,' "$dir/tar.json"
assert_grep '"known":4,' "$dir/dir.json"
assert_grep '"parsed":0,' "$dir/dir.json"

"$MV" find "$R" --subject "quarterly slides" >"$dir/find" ||
	die "find --subject"
assert_grep 'mail/bob@example.org/INBOX/2024-06-03 1415 Dana Attach - quarterly slides' \
	"$dir/find"
"$MV" find "$R" --text "q3 slides pdf" >"$dir/find2" ||
	die "attachment name not catalogued"
assert_grep 'quarterly slides' "$dir/find2"
"$MV" find "$R" --from dana --json >"$dir/find3" || die "find --from"
assert_grep 'quarterly slides with attachment' "$dir/find3"

# a wrong key (in a repository that never saw these messages with the
# right one): counted, named clearly, raw bytes
mkdir -p "$dir/wrong/crypt"
openssl ecparam -name prime256v1 -genkey 2>/dev/null |
	openssl pkey -out "$dir/wrong/crypt/ecprivkey.pem"
cp -a "$dir/mc/vmail" "$dir/wrong/vmail"
R2=$dir/repo2
"$MV" init "$R2" >/dev/null
"$MV" backup "$R2" --name wrong --json mc="$dir/wrong" >"$dir/wrong.json" ||
	die "backup with a wrong key"
assert_grep '"no_key":3,' "$dir/wrong.json"
"$MV" ls "$R2" "wrong/latest:$V" >"$dir/wrong.ls"
raw=$(grep "(undecodable) - no key $(basename "$lf" | cut -d: -f1 |
	cut -c1-20)" "$dir/wrong.ls") || die "large: no clear no-key name"
case "$raw" in *.raw) ;; *) die "no-key name '$raw'" ;; esac
"$MV" cat "$R2" "wrong/latest:$V/$raw" | cmp - "$lf" ||
	die "no-key view is not the raw file"

# truncated copies: cut inside the first MiB (decoded whole: corrupt) and
# at 3 MiB (named from its headers; reading it reports the damage)
for cut in 600000 3000000; do
	rm -rf "$dir/cut"
	mkdir -p "$dir/cut"
	cp -a "$dir/mc/crypt" "$dir/mc/vmail" "$dir/cut/"
	f=$dir/cut/vmail/example.org/bob/Maildir/new/$(basename "$lf")
	truncate -s $cut "$f"
	"$MV" backup "$R" --name cut$cut --json mc="$dir/cut" \
		>"$dir/cut.json" || die "backup of a truncated file"
	assert_grep '"messages":4,' "$dir/cut.json"
	"$MV" ls "$R" "cut$cut/latest:$V" >"$dir/cut.ls"
	if [ $cut = 600000 ]; then
		assert_grep '"corrupt":1,' "$dir/cut.json"
		assert_grep '\(undecodable\) - corrupt .*\.raw$' "$dir/cut.ls"
	else
		assert_grep "$name_re" "$dir/cut.ls"
		big=$(grep 'quarterly slides' "$dir/cut.ls")
		if "$MV" cat "$R" "cut$cut/latest:$V/$big" >"$dir/out" \
			2>"$dir/err"; then
			die "a truncated message read without error"
		fi
		assert_grep 'authentication tag|truncated' "$dir/err"
	fi
done
"$MV" check "$R" >/dev/null || die "check"
ok
