#!/bin/sh
# t5002: the mail view of a generated mail volume.  Every maildir message
# appears under mail/<account>/<mailbox>/ with its Date/From/Subject name,
# the same bytes as the raw file and the same name in the next snapshot;
# the catalogue finds messages by sender, subject and deletion; diff
# --mail shows a flag change as a move; a corpus of broken messages is
# counted and shown, and never stops the backup.
. "$(dirname "$0")/../lib/test-lib.sh"

set -e
R=$T/repo
gen --out "$T/fx" --small --days 2 --tar-only --seed 5002
"$MV" init "$R" >/dev/null
"$MV" backup "$R" --name mail --time 2024-06-01T00:00:00Z --json \
	volume="$T/fx/day1.tar.gz" >"$T/b1.json"
"$MV" backup "$R" --name mail --time 2024-06-02T00:00:00Z --json \
	volume="$T/fx/day2.tar.gz" >"$T/b2.json"

# counts in the summary: day 1 parses everything, day 2 only what is new
n1=$(sed -n 's/.*"mail":{"messages":\([0-9]*\),"parsed":\([0-9]*\),"known":\([0-9]*\).*/\1 \2 \3/p' \
	"$T/b1.json")
set -- $n1
[ "$1" -gt 200 ] || die "day 1: too few messages in the view: $n1"
# every message is parsed once; hard-linked copies reuse that parse
assert_eq "$1" "$(($2 + $3))" "day 1 parses every message"
n2=$(sed -n 's/.*"mail":{"messages":\([0-9]*\),"parsed":\([0-9]*\),"known":\([0-9]*\).*/\1 \2 \3/p' \
	"$T/b2.json")
set -- $n2
[ "$2" -lt 20 ] || die "day 2 parsed $2 messages; only new ones must be"
assert_eq "$1" "$(($2 + $3))" "day 2: parsed + known = messages"
assert_grep '"catalogue":true' "$T/b2.json"

S1=mail/2024-06-01T000000Z
S2=mail/2024-06-02T000000Z
"$MV" ls "$R" "$S2:" >"$T/top"
assert_grep '^mail/$' "$T/top"
"$MV" ls "$R" "$S2:mail/alice@example.org" >"$T/folders"
assert_grep '^INBOX/$' "$T/folders"
assert_grep '^Sent/$' "$T/folders"
"$MV" ls "$R" "$S2:mail/alice@example.org/Archive" >"$T/arch"
assert_grep '^2024/$' "$T/arch"

# names: <YYYY-MM-DD HHMM> <From> - <Subject> [<8 hex>].eml
"$MV" ls "$R" "$S2:mail/alice@example.org/INBOX" >"$T/inbox"
assert_all_match '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{4} .+ - .+ \[[0-9a-f]{8}(-[0-9]+)?\]\.eml$' \
	"$T/inbox"

# the same name in both snapshots for a message present in both
"$MV" ls "$R" "$S1:mail/alice@example.org/INBOX" >"$T/inbox1"
common=$(comm -12 "$T/inbox1" "$T/inbox" | wc -l)
[ "$common" -gt 10 ] || die "only $common names shared by two snapshots"

# a view file has the raw file's bytes; its mtime is the Date
name=$(head -1 "$T/inbox")
"$MV" cat "$R" "$S2:mail/alice@example.org/INBOX/$name" >"$T/view.eml"
id=$(grep -i '^Message-ID:' "$T/view.eml" | head -1 | tr -d '\r' |
	sed 's/.*<\(.*\)>.*/\1/')
[ -n "$id" ] || die "view message has no Message-ID"
mkdir "$T/raw"
"$MV" restore "$R" "$S2:volume" "$T/raw" >/dev/null
raw=$(grep -rlF "$id" "$T/raw/volume/example.org/alice/Maildir/cur" \
	"$T/raw/volume/example.org/alice/Maildir/new" | head -1)
[ -n "$raw" ] || die "raw file of $id not found"
cmp "$raw" "$T/view.eml" || die "view differs from the raw file"
"$MV" ls "$R" "$S2:mail/alice@example.org/INBOX" -l 2>/dev/null |
	grep -F "$name" >"$T/lsl" || true

# restore of the whole view gives every message, readable
mkdir "$T/view"
"$MV" restore "$R" "$S2:mail" "$T/view" >/dev/null
nview=$(find "$T/view/mail" -name '*.eml' | wc -l)
set -- $n2
assert_eq "$1" "$nview" "restored view files"
assert_eq "$(stat -c '%a %u %g' "$raw")" \
	"$(stat -c '%a %u %g' "$T/view/mail/alice@example.org/INBOX/$name")" \
	"view file mode and owner (those of its raw file)"
date_hdr=$(grep -i '^Date:' "$T/view.eml" | head -1 | cut -d' ' -f2- |
	tr -d '\r')
want=$(date -u -d "$date_hdr" +%s)
got=$(stat -c %Y "$T/view/mail/alice@example.org/INBOX/$name")
assert_eq "$want" "$got" "mtime = Date"

# export-tar of the view works without special code
"$MV" export-tar "$R" "$S2:mail/alice@example.org" >"$T/view.tar"
tar -tf "$T/view.tar" 2>/dev/null | grep -c '\.eml$' >"$T/ntar"
[ "$(cat "$T/ntar")" -gt 10 ] || die "export-tar of the view is empty"

# catalogue: by sender, by subject, deleted messages
from=$(grep -i '^From:' "$T/view.eml" | head -1 | sed 's/^From: *//;s/ *<.*//' |
	cut -d' ' -f1 | tr -d '"\r')
"$MV" find "$R" --from "$from" >"$T/f1"
assert_grep "$(printf '%s' "$name" | sed 's/[][().*+?^$|]/\\&/g')" "$T/f1"
assert_grep "in 2024-06-01T000000Z \.\. 2024-06-02T000000Z" "$T/f1"
subj=$(printf '%s' "$name" | sed 's/^.\{16\}//; s/^[^-]* - //; s/ \[.*//' |
	cut -d' ' -f1-2)
"$MV" find "$R" --subject "$subj" --json >"$T/f2"
assert_grep '"path":"mail/2024-06-02T000000Z/mail/' "$T/f2"
"$MV" find "$R" --deleted >"$T/fdel"
assert_grep '\(deleted since\)' "$T/fdel"
assert_grep '^mail/2024-06-01T000000Z/mail/' "$T/fdel"
# a deleted message is really gone from day 2's raw tree
dname=$(head -1 "$T/fdel" | sed 's|^mail/2024-06-01T000000Z/||')
assert_fail "$MV" ls "$R" "$S2:$dname" 2>/dev/null

# diff --mail: flag changes are moves, not delete + add
"$MV" diff "$R" "$S1" "$S2" --mail >"$T/diff"
assert_grep "^> .* flags '.*' -> '.*'$" "$T/diff"
assert_grep '^[0-9]+ messages added, [0-9]+ removed, [1-9][0-9]* moved$' \
	"$T/diff"

# broken messages: shown, counted, never stop the backup
B=$T/broken/example.org/eve/Maildir/cur
mkdir -p "$B" "$T/broken/example.org/eve/Maildir/new"
i=1000
for f in "$TOP"/tests/data/mail/*.eml; do
	i=$((i + 1))
	cp "$f" "$B/$i.M1P1.host,S=$(wc -c <"$f"):2,S"
done
: >"$B/2001.M1P1.host:2,"
head -c 3000 /dev/urandom >"$B/2002.M1P1.host:2,"
{
	printf 'Subject: huge\n'
	i=0
	while [ $i -lt 20000 ]; do
		printf 'X-Filler-%d: %s\n' $i "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		i=$((i + 1))
	done
	printf '\nbody\n'
} >"$B/2003.M1P1.host:2,"
printf 'Dovecot-LZ4\r\052\233\305\000\001\000\000\000\000\000\011garbage' >"$B/2004.M1P1.host,S=99:2,"
printf 'CRYPTED\003\007\000\000\000\002trunc' >"$B/2005.M1P1.host,S=99:2,"
nb=$(ls "$B" | wc -l)
"$MV" backup "$R" --name broken --json v="$T/broken" >"$T/b3.json" ||
	die "backup of broken messages failed"
assert_grep "\"messages\":$nb," "$T/b3.json"
assert_grep '"corrupt":[1-9]' "$T/b3.json"
assert_grep '"bad_headers":[1-9]' "$T/b3.json"
"$MV" ls "$R" "broken/latest:mail/eve@example.org/INBOX" >"$T/bl"
assert_eq "$nb" "$(wc -l <"$T/bl" | tr -d ' ')" "broken messages in view"
assert_grep '\(undecodable\) - corrupt 2004\.M1P1\.host.*\.raw$' "$T/bl"
assert_grep '\(undecodable\) - corrupt 2005\.M1P1\.host.*\.raw$' "$T/bl"
assert_grep '\(no sender\) - \(no subject\)' "$T/bl"
"$MV" check "$R" >/dev/null
ok
