#!/bin/sh
# t5010: a large maildir message met again at the same path, size and
# mtime is named from the catalogue without keeping its first bytes; one
# whose bytes changed in place all the same is shown with its new bytes
# under a large-message name, and parsed again by the backup after.
. "$(dirname "$0")/../lib/test-lib.sh"

box=$T/vol/example.org/alice/Maildir/cur
mkdir -p "$box"
# a message of about 600 KB (a base64 attachment), and a small one
{
	printf 'From: Erin Planner <erin@example.org>\nTo: alice@example.org\n'
	printf 'Subject: Budget plan 2025\nMessage-ID: <plan@example.org>\n'
	printf 'Date: Tue, 04 Jun 2024 09:30:00 +0000\nMIME-Version: 1.0\n'
	printf 'Content-Type: multipart/mixed; boundary="b1"\n\n--b1\n'
	printf 'Content-Type: text/plain\n\nthe plan is attached\n\n--b1\n'
	printf 'Content-Type: application/pdf; name="plan.pdf"\n'
	printf 'Content-Disposition: attachment; filename="plan.pdf"\n'
	printf 'Content-Transfer-Encoding: base64\n\n'
	head -c 460000 /dev/urandom | base64 -w 76
	printf '\n--b1--\n'
} >"$T/large.eml"
big=$box/1717493400.M1P1.host,S=$(stat -c %s "$T/large.eml"):2,S
cp "$T/large.eml" "$big"
touch -d '2024-06-04 09:30:00' "$big"
printf 'From: bob@example.org\nSubject: lunch\nDate: Tue, 04 Jun 2024 10:00:00 +0000\n\nhi\n' \
	>"$box/1717495200.M2P2.host,S=80:2,S"

"$MV" init "$T/repo" >/dev/null
V=mail/alice@example.org/INBOX
run()
{
	tar -C "$T/vol" -cf "$T/day.tar" .
	"$MV" backup "$T/repo" --name daily --json "v=$T/day.tar" >"$T/$1.json" ||
		die "backup $1"
	"$MV" ls "$T/repo" "daily/latest:$V" >"$T/$1.ls"
}

run 1
assert_grep '"parsed":2,' "$T/1.json"
assert_grep '^2024-06-04 0930 Erin Planner - Budget plan 2025 \[[0-9a-f]{8}\]\.eml$' \
	"$T/1.ls"
# the same again: both named from the catalogue, nothing parsed
run 2
assert_grep '"known":2,' "$T/2.json"
assert_grep '"parsed":0,' "$T/2.json"
assert_grep '"large":0,' "$T/2.json"
cmp "$T/1.ls" "$T/2.ls" || die "the names changed"
n=$(grep 'Budget plan' "$T/2.ls")
"$MV" cat "$T/repo" "daily/latest:$V/$n" | cmp - "$T/large.eml" ||
	die "the large message's bytes differ"

# the file rewritten in place with the same size and mtime (a maildir
# never does this; a restore tool might): new bytes, not the old name
sed 's/^Subject: Budget plan 2025$/Subject: Budget PLAN 2026/' \
	"$T/large.eml" >"$T/large2.eml"
assert_eq "$(stat -c %s "$T/large.eml")" "$(stat -c %s "$T/large2.eml")"
cp "$T/large2.eml" "$big"
touch -d '2024-06-04 09:30:00' "$big"
run 3
assert_grep '"large":1,' "$T/3.json"
assert_no_grep 'Budget plan' "$T/3.ls"
n=$(grep '(large message)' "$T/3.ls") || die "no large-message name"
"$MV" cat "$T/repo" "daily/latest:$V/$n" | cmp - "$T/large2.eml" ||
	die "the rewritten message's bytes differ"
# the next backup reads it again and names it from its headers
run 4
assert_grep '"parsed":1,' "$T/4.json"
assert_grep '^2024-06-04 0930 Erin Planner - Budget PLAN 2026 \[[0-9a-f]{8}\]\.eml$' \
	"$T/4.ls"
"$MV" find "$T/repo" --subject "PLAN 2026" >"$T/find" || die "find"
assert_grep 'Budget PLAN 2026' "$T/find"
ok
