#!/bin/sh
# t0001-fixture: the fixture generator is deterministic and its days churn
# the way a mail server does (about 1% new mail, new/ -> cur/ renames,
# flag changes, deletions), with Dovecot names and control files.
. "$(dirname "$0")/../lib/test-lib.sh"

say "same seed, same trees and archives"
gen --small --days 2 --tar --out "$T/a"
gen --small --days 2 --tar --out "$T/b"
for d in day1 day2 config; do
	assert_same_tree "$T/a/$d" "$T/b/$d"
done
cmp "$T/a/day1.tar.gz" "$T/b/day1.tar.gz" || die "day1.tar.gz differs"
cmp "$T/a/day2.tar.gz" "$T/b/day2.tar.gz" || die "day2.tar.gz differs"

say "--day 2 alone gives the day 2 of --days 2; --link changes nothing"
gen --small --day 2 --out "$T/c"
[ ! -e "$T/c/day1" ] || die "--day 2 wrote day1"
assert_same_tree "$T/a/day2" "$T/c/day2"
gen --small --days 2 --link --tar --out "$T/l"
assert_same_tree "$T/a/day2" "$T/l/day2"
cmp "$T/a/day2.tar.gz" "$T/l/day2.tar.gz" || die "--link changed day2.tar.gz"

say "another seed, another tree"
gen --small --day 1 --seed 2 --out "$T/s2"
tree_digest "$T/a/day1" >"$T/d1"
tree_digest "$T/s2/day1" >"$T/d2"
! cmp -s "$T/d1" "$T/d2" || die "seed 2 gave the same tree as seed 1"

say "layout: Maildir++ folders, control files, Dovecot names"
cd "$T/a/day1"
for f in .Sent .Drafts .Trash .Junk .Archive.2024 '.Entw&APw-rfe' \
	'.Gel&APY-schte Objekte'; do
	ls -d ./*/*/Maildir/"$f"/cur >/dev/null 2>&1 || die "no folder $f"
	ls ./*/*/Maildir/"$f"/maildirfolder >/dev/null 2>&1 ||
		die "no maildirfolder in $f"
done
for f in dovecot-uidlist subscriptions maildirsize dovecot-keywords; do
	ls ./*/*/Maildir/"$f" >/dev/null 2>&1 || die "no $f"
done
[ -f mariadb/ibdata1 ] || die "no mariadb/ibdata1"
[ $(($(stat -c %s mariadb/ibdata1) % 16384)) = 0 ] ||
	die "ibdata1 is not made of 16 KiB pages"
find . -name dovecot-uidlist -exec head -n 1 {} + | grep -v '^==>' |
	grep -v '^$' >"$T/uidhdr"
assert_all_match '^3 V[0-9]+ N[0-9]+ G[0-9a-f]{32}$' "$T/uidhdr"
find . -path '*/cur/*' -type f >"$T/cur1"
find . -path '*/new/*' -type f >"$T/new1"
assert_all_match '/cur/[0-9]+\.M[0-9]+P[0-9]+\.[0-9a-f]{12},S=[0-9]+,W=[0-9]+:2,[A-Za-z]*$' \
	"$T/cur1"
assert_all_match '/new/[0-9]+\.M[0-9]+P[0-9]+\.[0-9a-f]{12},S=[0-9]+,W=[0-9]+$' \
	"$T/new1"
say "S= is the file size, W= counts LF as CRLF, uidlist names every file"
while IFS= read -r f; do
	s=${f##*,S=}
	s=${s%%,*}
	w=${f##*,W=}
	w=${w%%:*}
	[ "$(stat -c %s "$f")" = "$s" ] || die "S= wrong: $f"
	[ "$((s + $(wc -l <"$f")))" = "$w" ] || die "W= wrong: $f"
	b=$(basename "$f")
	b=${b%%:*}
	grep -qF " :$b" "$(dirname "$(dirname "$f")")/dovecot-uidlist" ||
		die "not in dovecot-uidlist: $f"
done <"$T/cur1"
n=$(grep -l '^Content-Disposition: attachment' -r . | wc -l)
[ "$n" -ge 3 ] || die "only $n messages with attachments"
grep -rqE '^Subject: =\?(UTF-8|utf-8)\?[BQ]\?' . || die "no RFC 2047 UTF-8 subject"
grep -rqiE '^Subject: =\?iso-8859-1\?[QB]\?' . ||
	die "no RFC 2047 ISO-8859-1 subject"
grep -rq 'multipart/alternative' . || die "no multipart/alternative"
big=$(find . -path '*/cur/*' -size +100k | wc -l)
[ "$big" -ge 1 ] || die "no message over 100 KB"
links=$(find . -type f -links +1 | wc -l)
[ "$links" -ge 2 ] || die "no hard-linked message copies"

say "day 2: ~1% new, renames new/ -> cur/, flag changes, deletions"
base()
{
	sed 's|.*/||; s|,S=.*||' "$1" | sort
}
find "$T/a/day1" -path '*/[cn][ue][rw]/*' -type f >"$T/all1"
find "$T/a/day2" -path '*/[cn][ue][rw]/*' -type f >"$T/all2"
base "$T/all1" >"$T/b1"
base "$T/all2" >"$T/b2"
n1=$(wc -l <"$T/b1")
new=$(comm -13 "$T/b1" "$T/b2" | wc -l)
gone=$(comm -23 "$T/b1" "$T/b2" | wc -l)
say "day1 $n1 messages, day2 $new new, $gone gone"
[ "$new" -ge $((n1 / 200)) ] && [ "$new" -le $((n1 / 50 + 1)) ] ||
	die "day 2 has $new new messages for $n1 (want about 1%)"
[ "$gone" -ge 1 ] || die "nothing deleted on day 2"
moved=0
while IFS= read -r f; do
	b=$(basename "$f")
	grep -q "/cur/$b:2,[A-Z]*S" "$T/all2" && moved=$((moved + 1))
done <"$T/new1"
[ "$moved" -ge 1 ] || die "no new/ -> cur/ rename on day 2"
sed 's|.*/||' "$T/all1" | sort >"$T/n1"
sed 's|.*/||' "$T/all2" | sort >"$T/n2"
comm -13 "$T/n1" "$T/n2" | grep ':2,' | sed 's/:2,.*//' >"$T/renamed"
flagged=0
while IFS= read -r b; do
	grep -q "/cur/$b:2," "$T/all1" && flagged=$((flagged + 1))
done <"$T/renamed"
[ "$flagged" -ge 1 ] || die "no flag change (cur/ rename) on day 2"
cmp -s "$T/a/day1/mariadb/ibdata1" "$T/a/day2/mariadb/ibdata1" &&
	die "ibdata1 unchanged on day 2"
pages=$(cmp -l "$T/a/day1/mariadb/ibdata1" "$T/a/day2/mariadb/ibdata1" \
	2>/dev/null | awk '{print int(($1 - 1) / 16384)}' | sort -u | wc -l)
[ "$pages" -ge 3 ] && [ "$pages" -le 12 ] ||
	die "$pages ibdata1 pages changed (want a few)"

say "tar members are ./..., and the archive is the tree"
tar -tzf "$T/a/day1.tar.gz" >"$T/members"
assert_eq "./" "$(head -n 1 "$T/members")" "first member"
assert_all_match '^\./' "$T/members"
mkdir "$T/x"
tar -xzf "$T/a/day1.tar.gz" -C "$T/x"
assert_same_tree "$T/a/day1" "$T/x" -x mtime
gen --small --day 1 --tar --tar-format pax --out "$T/p"
mkdir "$T/xp"
tar -xzf "$T/p/day1.tar.gz" -C "$T/xp"
assert_same_tree "$T/p/day1" "$T/xp"
ok
