#!/bin/sh
# t5006: loose .eml files anywhere in a source appear under
# mail/loose/<path of their directory>/ with their view names and bytes;
# --index-body puts body text into the catalogue (find --text), and
# without it body words are not found.
. "$(dirname "$0")/../lib/test-lib.sh"

R=$T/repo
S=$T/src
mkdir -p "$S/exports/2024" "$S/other"
i=0
for f in "$TOP"/tests/data/mail/*.eml; do
	i=$((i + 1))
	cp "$f" "$S/exports/2024/m$i.eml"
done
printf 'From: Dana <dana@example.org>\nSubject: plain\nDate: Wed, 01 May 2024 12:00:00 +0000\nMessage-ID: <loose1@example.org>\n\nthe zanzibar plan\n' \
	>"$S/other/Saved Message.EML"
printf 'not a message at all' >"$S/other/notes.txt"
n=$((i + 1))

"$MV" init "$R" >/dev/null
"$MV" backup "$R" --name l --time 2024-06-01T00:00:00Z --json src="$S" \
	>"$T/b1.json" || die "backup failed"
assert_grep "\"loose\":$n," "$T/b1.json"
assert_grep "\"messages\":$n," "$T/b1.json"
"$MV" ls "$R" "l/latest:mail/loose/src" >"$T/dirs"
assert_grep '^exports/$' "$T/dirs"
assert_grep '^other/$' "$T/dirs"
"$MV" ls "$R" "l/latest:mail/loose/src/exports/2024" >"$T/l1"
assert_eq "$i" "$(wc -l <"$T/l1" | tr -d ' ')" "loose messages listed"
"$MV" ls "$R" "l/latest:mail/loose/src/other" >"$T/l2"
assert_grep '^2024-05-01 1200 Dana - plain \[[0-9a-f]{8}\]\.eml$' "$T/l2"
name=$(cat "$T/l2")
"$MV" cat "$R" "l/latest:mail/loose/src/other/$name" >"$T/got"
cmp "$S/other/Saved Message.EML" "$T/got" || die "loose view differs"
"$MV" find "$R" --from Dana >"$T/f1"
assert_grep '/mail/loose/src/other/2024-05-01 1200 Dana - plain' "$T/f1"
assert_fail "$MV" find "$R" --text zanzibar >/dev/null 2>&1

# --index-body: body words are searchable (a new repository: the
# catalogue parses each message once)
R2=$T/repo2
"$MV" init "$R2" >/dev/null
"$MV" backup "$R2" --name l --index-body src="$S" >/dev/null
"$MV" find "$R2" --text zanzibar >"$T/f2"
assert_grep 'Dana - plain' "$T/f2"
ok
