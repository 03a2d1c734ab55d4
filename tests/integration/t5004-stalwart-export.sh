#!/bin/sh
# t5004: Stalwart account exports (stalwart-cli export account) in a
# backup.  Every email appears under mail/<account>/<Mailbox/Path>/ in each
# of its mailboxes (mtime = receivedAt, the blob's bytes), and under
# maildir/<account>/ as a Maildir++ tree with flags from keywords that
# Debian's Dovecot opens and counts; both the acl and the shareWith
# variants; a cut emails.json and a missing blob are counted and shown
# best-effort, never stopping the backup.
. "$(dirname "$0")/../lib/test-lib.sh"

require_cmd b3sum
G=$TOP/tools/gen_stalwart.py
R=$T/repo
X=$T/export
python3 "$G" --out "$X" --account john --variant sharewith --messages 14 \
	--missing-blob --manifest "$T/john.json"
python3 "$G" --out "$X" --account jane --variant acl --messages 9 \
	--seed 2 --cut-emails --manifest "$T/jane.json"
# the export is compact JSON on one line, as the CLI writes it
assert_eq 0 "$(wc -l <"$X/john/emails.json" | tr -d ' ')" "emails.json lines"
assert_grep '"shareWith":\{"c":\{"mayReadItems":true' "$X/john/mailboxes.json"
assert_grep '"acl":\{"jane":\["read"' "$X/jane/mailboxes.json"

# man: the expected counts from the manifests
count()
{
	python3 - "$@" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
what = sys.argv[2]
arg = sys.argv[3] if len(sys.argv) > 3 else None
ok = [e for e in m["emails"] if e["listed"] and e["blob"]]
if what == "placed":
    print(sum(len(e["mailboxes"]) for e in ok))
elif what == "in":
    print(sum(arg in e["mailboxes"] for e in ok))
elif what == "unlisted":
    print(sum(1 for e in m["emails"] if not e["listed"]))
PY
}

"$MV" init "$R" >/dev/null
"$MV" backup "$R" --name sw --time 2024-06-01T00:00:00Z --json \
	export="$X" >"$T/b1.json" || die "backup of the exports failed"
placed=$(($(count "$T/john.json" placed) + $(count "$T/jane.json" placed)))
unl=$(count "$T/jane.json" unlisted)
assert_grep '"exports":2,' "$T/b1.json"
assert_grep "\"stalwart\":$((placed + unl))," "$T/b1.json"
assert_grep '"missing_blobs":1,' "$T/b1.json"
assert_grep '"bad_exports":1,' "$T/b1.json"
assert_grep '"bad_headers":0,' "$T/b1.json"
assert_grep '"catalogue":true' "$T/b1.json"

S=sw/2024-06-01T000000Z
"$MV" ls "$R" "$S:mail/john" >"$T/folders"
for f in Inbox Sent Drafts 'Gelöschte Objekte' Archive Projects; do
	assert_grep "^$f/\$" "$T/folders"
done
"$MV" ls "$R" "$S:mail/john/Archive" >"$T/arch"
assert_grep '^2024/$' "$T/arch"
"$MV" ls "$R" "$S:mail/john/Projects" >"$T/proj"
assert_grep '^a\.b/$' "$T/proj"

# email 0 sits in Inbox and Archive/2024: the same name in both
"$MV" ls "$R" "$S:mail/john/Inbox" >"$T/inbox"
"$MV" ls "$R" "$S:mail/john/Archive/2024" >"$T/a2024"
assert_eq "$(count "$T/john.json" in Inbox)" "$(wc -l <"$T/inbox" | tr -d ' ')" \
	"john's Inbox"
n0=$(grep ' #0 \[' "$T/inbox")
[ -n "$n0" ] || die "email 0 not in Inbox"
assert_grep "^$(printf '%s' "$n0" | sed 's/[][().*+?^$|#]/\\&/g')\$" \
	"$T/a2024"
assert_all_match '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{4} .+ - .+ \[[0-9a-f]{8}\]\.eml$' \
	"$T/inbox"

# content = the blob's bytes; mtime = receivedAt
bid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["emails"][0]["blobId"])' \
	"$T/john.json")
"$MV" cat "$R" "$S:mail/john/Archive/2024/$n0" >"$T/m0.eml"
cmp "$X/john/blobs/$bid" "$T/m0.eml" || die "view differs from the blob"
mkdir "$T/view"
"$MV" restore "$R" "$S:mail/john" "$T/view" >/dev/null
rec=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["emails"][0]["receivedAt"])' \
	"$T/john.json")
assert_eq "$(date -u -d "$rec" +%s)" \
	"$(stat -c %Y "$T/view/john/Inbox/$n0")" "mtime = receivedAt"

# the cut export: listed emails placed, the rest shown under
# "(not in emails.json)"
"$MV" ls "$R" "$S:mail/jane" >"$T/jf"
assert_grep '^\(not in emails\.json\)/$' "$T/jf"
"$MV" ls "$R" "$S:mail/jane/(not in emails.json)" >"$T/jnl"
assert_eq "$unl" "$(wc -l <"$T/jnl" | tr -d ' ')" "unlisted messages shown"

# the Maildir++ tree
"$MV" ls "$R" "$S:maildir/john" >"$T/mdls"
for f in cur/ new/ tmp/ .Sent/ .Archive/ .Archive.2024/ '.Gel&APY-schte Objekte/' \
	'.Projects.a\\2eb/'; do
	assert_grep "^$(printf '%s' "$f" | sed 's/[.]/\\./g')\$" "$T/mdls"
done
"$MV" ls "$R" "$S:maildir/john/cur" >"$T/mdcur"
assert_all_match '^[0-9]+\.[a-z0-9]+\.stalwart,S=[0-9]+:2,[DFRST]*$' "$T/mdcur"
# email 1 has $seen and $flagged: ":2,FS"; email 0 is "$seen": ":2,S"
assert_grep '^[0-9]+\.b\.stalwart,S=[0-9]+:2,FS$' \
	"$(mkdir -p "$T/x" && "$MV" ls "$R" "$S:maildir/john/.Sent/cur" \
		>"$T/x/sent" && echo "$T/x/sent")"
assert_grep '^[0-9]+\.a\.stalwart,S=[0-9]+:2,S$' "$T/mdcur"
"$MV" ls "$R" "$S:maildir/john/.Archive.2024" >"$T/x/a24"
assert_grep '^maildirfolder$' "$T/x/a24"
# email 5 ("$seen", "work") is in Archive/2024: keyword letter a
"$MV" cat "$R" "$S:maildir/john/.Archive.2024/dovecot-keywords" >"$T/x/kw"
assert_eq "0 work" "$(cat "$T/x/kw")" "dovecot-keywords"
"$MV" ls "$R" "$S:maildir/john/.Archive.2024/cur" >"$T/x/a24cur"
assert_grep '^[0-9]+\.[a-z0-9]+\.stalwart,S=[0-9]+:2,Sa$' "$T/x/a24cur"

# Debian's Dovecot opens it: message counts and a header
mkdir "$T/md"
"$MV" restore "$R" "$S:maildir" "$T/md" >/dev/null
if [ -x /usr/sbin/dovecot ] && command -v doveadm >/dev/null; then
	vuid=5000
	d=$T/dc
	mkdir -p "$d/run" "$d/state" "$d/ctl"
	chmod 755 "$T"
	# Dovecot reads dovecot-keywords from the control directory, which
	# is outside the read-only tree here: give it the tree's files
	(cd "$T/md/maildir" && find . -name dovecot-keywords) |
		while IFS= read -r k; do
			mkdir -p "$d/ctl/$(dirname "$k")"
			cp "$T/md/maildir/$k" "$d/ctl/$k"
		done
	chown -R $vuid:$vuid "$T/md" "$d/ctl"
	cat >"$d/dovecot.conf" <<CONF
ssl = no
protocols =
base_dir = $d/run
state_dir = $d/state
log_path = $d/dovecot.log
mail_location = maildir:$T/md/maildir/%n:INDEX=MEMORY:CONTROL=$d/ctl/%n
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
  args = uid=$vuid gid=$vuid home=$d/ctl/%n
}
CONF
	bg /usr/sbin/dovecot -F -c "$d/dovecot.conf"
	i=0
	while { [ ! -S "$d/run/auth-userdb" ] || [ ! -s "$d/run/master.pid" ]; } &&
		[ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ -S "$d/run/auth-userdb" ] || die "dovecot did not start"
	dv()
	{
		doveadm -c "$d/dovecot.conf" "$@"
	}
	# the first access creates the control directory (CONTROL=, outside
	# the read-only tree); Dovecot lists the folders then
	dv mailbox list -u john >"$T/dlist"
	assert_grep '^Gelöschte Objekte$' "$T/dlist"
	assert_grep '^Archive/2024$' "$T/dlist"
	# search syncs the mailbox from the files, then status
	got=$(dv search -u john mailbox INBOX all | wc -l | tr -d ' ')
	assert_eq "$(count "$T/john.json" in Inbox)" "$got" "dovecot: INBOX"
	got=$(dv mailbox status -u john messages INBOX | sed 's/.*=//')
	assert_eq "$(count "$T/john.json" in Inbox)" "$got" "dovecot: INBOX"
	dv search -u john mailbox Archive/2024 all >/dev/null
	got=$(dv mailbox status -u john messages Archive/2024 | sed 's/.*=//')
	assert_eq "$(count "$T/john.json" in Archive/2024)" "$got" \
		"dovecot: Archive/2024"
	mid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["emails"][0]["messageId"])' \
		"$T/john.json")
	dv fetch -u john hdr.message-id mailbox Archive/2024 >"$T/dhdr"
	assert_grep "<$mid>" "$T/dhdr"
	dv fetch -u john flags mailbox Sent >"$T/dflags"
	assert_grep 'Flagged' "$T/dflags"
	dv fetch -u john flags mailbox Archive/2024 >"$T/dkw"
	assert_grep 'flags: .*work' "$T/dkw"
	dv fetch -u john text mailbox INBOX >"$T/dtext"
	assert_grep "^Message-ID: <$mid>" "$T/dtext"
else
	say "no dovecot here: the Maildir++ tree is checked by name only"
fi

# a second backup of the same exports: everything known, same names
"$MV" backup "$R" --name sw --time 2024-06-02T00:00:00Z --json \
	export="$X" >"$T/b2.json"
assert_grep '"parsed":0,' "$T/b2.json"
"$MV" ls "$R" "sw/2024-06-02T000000Z:mail/john/Inbox" >"$T/inbox2"
cmp "$T/inbox" "$T/inbox2" || die "names changed between snapshots"
"$MV" find "$R" --account john --subject "Quarterly report" >"$T/find"
assert_grep '/mail/john/Archive/2024/' "$T/find"
assert_grep 'in 2024-06-01T000000Z \.\. 2024-06-02T000000Z' "$T/find"

# the raw export stays byte for byte
mkdir "$T/raw"
"$MV" restore "$R" "$S:export" "$T/raw" >/dev/null
diff -r "$X" "$T/raw/export" || die "raw export changed"
"$MV" check "$R" >/dev/null
ok
