#!/bin/sh
# t5011: the mail view's entries of unchanged messages are the same in
# every snapshot, whatever the order of the tar's members and whatever
# the backup time: an unchanged volume re-packed in reverse order, with
# its folders' times changed, gives the same listing of every view folder
# (every field ls -l shows: mode, links, owner, size, mtime, name); after
# a day of churn (new mail, new/ -> cur/, a flag change, a deletion)
# every message still there keeps its line.
. "$(dirname "$0")/../lib/test-lib.sh"

vol=$T/vol
u1=$vol/example.org/alice/Maildir
u2=$vol/example.org/bob/Maildir
mkdir -p "$u1/cur" "$u1/new" "$u1/tmp" "$u1/.Archive/cur" "$u1/.Archive/new" \
	"$u2/cur" "$u2/new"
msg()
{ # msg FILE N TIME: a small message
	printf 'From: Sender %s <s%s@example.org>\nTo: alice@example.org\n' \
		$(($2 % 13)) $(($2 % 13)) >"$1"
	printf 'Subject: Report %s\nMessage-ID: <%s@example.org>\n' "$2" "$2" \
		>>"$1"
	printf 'Date: %s\n\nbody %s\n' "$(date -u -R -d "@$3")" "$2" >>"$1"
	touch -d "@$3" "$1"
}
i=0
while [ $i -lt 240 ]; do
	t=$((1700000000 + i * 900))
	case $((i % 4)) in
	0) d=$u1/cur f=$t.M${i}P1.h,S=100:2,S ;;
	1) d=$u1/new f=$t.M${i}P1.h ;;
	2) d=$u1/.Archive/cur f=$t.M${i}P1.h:2, ;;
	*) d=$u2/cur f=$t.M${i}P1.h:2,S ;;
	esac
	msg "$d/$f" $i $t
	i=$((i + 1))
done
# one message without a Date, in two folders
printf 'From: x@example.org\nSubject: undated\n\nno date\n' >"$u1/cur/1690000000.M9P1.h:2,S"
cp "$u1/cur/1690000000.M9P1.h:2,S" "$u1/.Archive/cur/1680000000.M9P2.h:2,S"

"$MV" init "$T/repo" >/dev/null

lsr()
{ # lsr SNAP PATH: ls -l of PATH and of every folder below it
	"$MV" ls -l "$T/repo" "$1:$2" | sed "s|^|$2: |"
	"$MV" ls "$T/repo" "$1:$2" | sed -n 's|/$||p' | while read -r d; do
		lsr "$1" "$2/$d"
	done
}
day()
{ # day N [tar options]: back up the volume as a tar, list the view
	n=$1
	shift
	(cd "$vol" && find . -mindepth 1 | sort "$@") >"$T/members"
	tar -C "$vol" --no-recursion -cf "$T/day.tar" -T "$T/members"
	"$MV" backup "$T/repo" --name daily --time "2026-01-0$n 03:00:00" \
		--json "v=$T/day.tar" >"$T/$n.json" || die "backup $n"
	lsr daily/latest mail >"$T/$n.ls"
	[ -s "$T/$n.ls" ] || die "no view on day $n"
}

day 1
assert_grep '"messages":242,' "$T/1.json"
assert_eq "$(grep -c '\.eml$' "$T/1.ls")" 242

# the same volume, members in reverse order, folders touched, a day later
find "$vol" -type d -exec touch -d '2026-01-02 02:00' {} +
day 2 -r
diff "$T/1.ls" "$T/2.ls" >"$T/diff12" || {
	cat "$T/diff12" >&2
	die "an unchanged volume changed the view"
}
# both copies of the undated message carry the earlier place's time
assert_eq "$(grep -c '2023-03-28 1040 x@example.org - undated' "$T/2.ls")" 2

# a day of churn
t=$((1700000000 + 240 * 900))
msg "$u1/new/$t.M999P1.h" 999 $t
mv "$u1/new/1700000900.M1P1.h" "$u1/cur/1700000900.M1P1.h:2,"
mv "$u1/cur/1700000000.M0P1.h,S=100:2,S" "$u1/cur/1700000000.M0P1.h,S=100:2,RS"
rm "$u2/cur/1700002700.M3P1.h:2,S"
find "$vol" -type d -exec touch -d '2026-01-03 02:00' {} +
day 3
grep '\.eml$' "$T/1.ls" | grep -v 'Report 3 \[' >"$T/kept"
assert_eq "$(wc -l <"$T/kept")" 241
grep -vxF -f "$T/3.ls" "$T/kept" >"$T/lost" && {
	cat "$T/lost" >&2
	die "an unchanged message's entry changed"
}
assert_grep 'Report 999 \[' "$T/3.ls"
assert_no_grep 'Report 3 \[' "$T/3.ls"
ok
