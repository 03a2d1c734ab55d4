#!/bin/sh
# t5005: mailcow backup folders (backup_and_restore.sh backup all) in a
# directory source.  Each backup_*.tar.zst / .tar.gz is expanded into its
# own subtree (absolute and 2018-style relative member names, GNU LongLink
# names, hard links), so day 2 stores only what changed; the mail view
# finds the vmail messages and the crypt key inside the expanded archives;
# export-tar --mailcow writes archives back whose member names, metadata
# and contents match the originals; an unreadable archive is kept as it is
# and never stops the backup.
. "$(dirname "$0")/../lib/test-lib.sh"

require_cmd zstd openssl
R=$T/repo
gen --out "$T/fx" --small --days 2 --seed 5005
B=$T/backups
long=$(printf 'x%.0s' $(seq 1 120))

# mailcow_folder DAY STAMP: what backup_and_restore.sh writes (GNU tar -P,
# zstd --rsyncable, /vmail and /crypt members)
mkdir -p "$T/crypt"
openssl ecparam -name prime256v1 -genkey 2>/dev/null |
	openssl pkey -out "$T/crypt/ecprivkey.pem"
openssl pkey -in "$T/crypt/ecprivkey.pem" -pubout -out "$T/crypt/ecpubkey.pem"
mailcow_folder()
{
	F=$B/mailcow-$2
	mkdir -p "$F" "$T/fx/$1/example.org/$long"
	echo "a file with a long name" >"$T/fx/$1/example.org/$long/$long"
	cp "$T/fx/config/mailcow/mailcow.conf" "$F/"
	: >"$F/.x86_64"
	tar -P --transform 's,^\./,/vmail/,;s,^\.$,/vmail,' -C "$T/fx/$1" \
		--use-compress-program="zstd --rsyncable -q" \
		-cpf "$F/backup_vmail.tar.zst" .
	tar -P --transform 's,^\./,/crypt/,;s,^\.$,/crypt,' -C "$T/crypt" \
		--use-compress-program="zstd --rsyncable -q" \
		-cpf "$F/backup_crypt.tar.zst" .
	tar -P --transform 's,^\./,/redis/,;s,^\.$,/redis,' \
		-C "$T/fx/config/stalwart" \
		--use-compress-program="zstd --rsyncable -q" \
		-cpf "$F/backup_redis.tar.zst" .
}
mailcow_folder day1 2024-06-01-03-00-00
tar -tvf "$F/backup_vmail.tar.zst" 2>/dev/null | grep -q "/$long/$long\$" ||
	die "fixture: no long member name"

"$MV" init "$R" >/dev/null
"$MV" backup "$R" --name mc --time 2024-06-01T04:00:00Z --json \
	backups="$B" >"$T/b1.json" || die "backup failed"
assert_grep '"mailcow":\{"archives":3,"kept":0\}' "$T/b1.json"
assert_grep '"keys":1,' "$T/b1.json"
S1=mc/2024-06-01T040000Z
D1=backups/mailcow-2024-06-01-03-00-00
"$MV" ls "$R" "$S1:$D1" >"$T/ls1"
for f in .x86_64 mailcow.conf vmail/ crypt/ redis/ \
	backup_vmail.tar.zst.mailvault backup_crypt.tar.zst.mailvault; do
	assert_grep "^$(printf '%s' "$f" | sed 's/[.]/\\./g')\$" "$T/ls1"
done
assert_no_grep '^backup_vmail\.tar\.zst$' "$T/ls1"
"$MV" ls "$R" "$S1:$D1/vmail/example.org/$long" >"$T/ll"
assert_grep "^$long\$" "$T/ll"

# the mail view sees the messages of the expanded archive
n=$(find "$T/fx/day1" -path '*/cur/*' -o -path '*/new/*' -type f | wc -l)
msgs=$(sed -n 's/.*"mail":{"messages":\([0-9]*\).*/\1/p' "$T/b1.json")
[ "$msgs" -gt 200 ] || die "only $msgs messages in the view"
"$MV" ls "$R" "$S1:mail" >"$T/acc"
assert_grep '^alice@example\.org/$' "$T/acc"

# export-tar --mailcow: the archives again, as mailcow restores them
mkdir "$T/out"
"$MV" export-tar --mailcow "$R" "$S1:$D1" "$T/out" >/dev/null
O=$T/out/mailcow-2024-06-01-03-00-00
[ -f "$O/mailcow.conf" ] && [ -f "$O/.x86_64" ] || die "folder files missing"
[ ! -e "$O/backup_vmail.tar.zst.mailvault" ] || die "marker exported"
cmp "$F/mailcow.conf" "$O/mailcow.conf"
# same member names, and the same -tv lines apart from which of two
# hard-linked members is stored first
listing()
{
	tar -tvf "$1" 2>/dev/null | python3 -c '
import sys
lines = [l.rstrip("\n") for l in sys.stdin]
linked = set()
for l in lines:
    if l.startswith("h") and " link to " in l:
        a, b = l.split(" link to ")
        linked.add(a.split(None, 5)[5])
        linked.add("/" + b)
out = []
for l in lines:
    name = l.split(None, 5)[5].split(" link to ")[0]
    out.append(name if name in linked else l)
print("\n".join(sorted(out)))'
}
for a in backup_vmail.tar.zst backup_crypt.tar.zst backup_redis.tar.zst; do
	[ "$(head -c 4 "$O/$a" | od -An -tx1 | tr -d ' ')" = 28b52ffd ] ||
		die "$a: not zstd"
	tar -tf "$F/$a" 2>/dev/null | sort >"$T/n1"
	tar -tf "$O/$a" 2>/dev/null | sort >"$T/n2"
	cmp "$T/n1" "$T/n2" || die "$a: member names differ"
	listing "$F/$a" >"$T/l1"
	listing "$O/$a" >"$T/l2"
	diff "$T/l1" "$T/l2" || die "$a: tar -tv listings differ"
	# restore as backup_and_restore.sh does (-Pxvf into the volume)
	mkdir -p "$T/x1/$a" "$T/x2/$a"
	tar -C "$T/x1/$a" --use-compress-program="zstd -d" -xpf "$F/$a" \
		2>/dev/null
	tar -C "$T/x2/$a" --use-compress-program="zstd -d" -xpf "$O/$a" \
		2>/dev/null
	assert_same_tree "$T/x1/$a" "$T/x2/$a" --no-root
done
# the long names are GNU LongLink members, as GNU tar writes them
zstd -dc "$O/backup_vmail.tar.zst" | grep -c '././@LongLink' >"$T/ll" || true
[ "$(cat "$T/ll")" -gt 0 ] || die "no GNU LongLink members"

# day 2: a new folder; its archives dedup against day 1
mailcow_folder day2 2024-06-02-03-00-00
"$MV" backup "$R" --name mc --time 2024-06-02T04:00:00Z --json \
	backups="$B" >"$T/b2.json"
new=$(sed -n 's/.*"bytes_new":\([0-9]*\).*/\1/p' "$T/b2.json")
# the same two days with the archives stored as they are (a plain
# directory: not a mailcow folder)
Rp=$T/repo-plain
"$MV" init "$Rp" >/dev/null
for d in 2024-06-01-03-00-00 2024-06-02-03-00-00; do
	mkdir -p "$T/plain/$d"
	cp "$B/mailcow-$d"/backup_* "$T/plain/$d/"
	"$MV" backup "$Rp" --name p --json p="$T/plain/$d" >"$T/p.json"
done
asis=$(sed -n 's/.*"bytes_new":\([0-9]*\).*/\1/p' "$T/p.json")
say "day 2 new bytes: $new expanded, $asis with the archives as they are"
[ "$new" -lt "$asis" ] || die "expanding stored $new bytes, as-is $asis"

# 2018 style: .tar.gz with relative member names
F3=$B/mailcow-2018-05-01-03-00-00
mkdir -p "$F3"
cp "$T/fx/config/mailcow/mailcow.conf" "$F3/"
tar -C "$T/fx/day1" --transform 's,^\./,vmail/,;s,^\.$,vmail,' -czpf \
	"$F3/backup_vmail.tar.gz" .
# an unreadable archive: kept as it is
tar -P --transform 's,^\./,/rspamd/,;s,^\.$,/rspamd,' -C "$T/fx/day1" \
	--use-compress-program="zstd -q" -cpf "$T/rspamd.tar.zst" .
head -c 300000 "$T/rspamd.tar.zst" >"$F3/backup_rspamd.tar.zst"
rm -rf "$B/mailcow-2024-06-01-03-00-00"
set +e
"$MV" backup "$R" --name mc --time 2024-06-03T04:00:00Z --json \
	backups="$B" >"$T/b3.json" 2>"$T/b3.err"
rc=$?
set -e
# the cut archive is a warning: stored as it is, exit 3
assert_eq 3 "$rc" "exit code of backup 3"
assert_grep '"mailcow":\{"archives":4,"kept":1\}' "$T/b3.json"
assert_grep 'backup_rspamd\.tar\.zst' "$T/b3.err"
D3=backups/mailcow-2018-05-01-03-00-00
"$MV" ls "$R" "mc/latest:$D3" >"$T/ls3"
assert_grep '^vmail/$' "$T/ls3"
assert_grep '^backup_rspamd\.tar\.zst$' "$T/ls3"
"$MV" cat "$R" "mc/latest:$D3/backup_vmail.tar.gz.mailvault" >"$T/m3"
assert_grep '^names relative$' "$T/m3"
assert_grep '^compression gzip$' "$T/m3"
mkdir "$T/out3"
"$MV" export-tar --mailcow "$R" "mc/latest:$D3" "$T/out3" >/dev/null
O3=$T/out3/mailcow-2018-05-01-03-00-00
gzip -t "$O3/backup_vmail.tar.gz" || die "not gzip"
tar -tf "$F3/backup_vmail.tar.gz" | sort >"$T/g1"
tar -tf "$O3/backup_vmail.tar.gz" | sort >"$T/g2"
cmp "$T/g1" "$T/g2" || die "2018 archive: member names differ"
cmp "$F3/backup_rspamd.tar.zst" "$O3/backup_rspamd.tar.zst" ||
	die "unreadable archive not kept as it was"
[ ! -e "$O3/rspamd" ] || die "members of the cut archive restored too"
"$MV" check "$R" >/dev/null
ok
