#!/bin/sh
# t9015-forget-shown-names: two snapshots of one job in one second are
# named "-2" by forget (--list and --json) exactly as `snapshots`, the
# mount and find name them, so each name forget prints resolves to its own
# snapshot.
. "$(dirname "$0")/../lib/test-lib.sh"

require_mv
R=$T/repo
assert_ok "$MV" init "$R" >/dev/null
for x in a b c; do
	mkdir -p "$T/$x"
	echo "$x" >"$T/$x/f"
done
assert_ok "$MV" backup "$R" --name j --time 2026-01-02T03:04:05Z --quiet \
	d="$T/a"
assert_ok "$MV" backup "$R" --name j --time 2026-01-02T03:04:05Z --quiet \
	d="$T/b"
assert_ok "$MV" backup "$R" --name j --time 2026-01-03T00:00:00Z --quiet \
	d="$T/c"
"$MV" snapshots --json "$R" >"$T/snaps.json"
python3 -c 'import json,sys
for s in json.load(open(sys.argv[1])): print(s["dir"])' "$T/snaps.json" |
	sort >"$T/dirs"
cat "$T/dirs"
assert_grep '^2026-01-02T030405Z-2$' "$T/dirs"

say "forget --dry-run --list: the names snapshots shows"
"$MV" forget --dry-run --list --keep-last 1 "$R" >"$T/list"
cat "$T/list"
sed -n 's|.* j/\([^ ]*\)$|\1|p' "$T/list" | sort >"$T/ldirs"
cmp "$T/dirs" "$T/ldirs" || die "forget --list names differ from snapshots'"
assert_grep '^remove .* j/2026-01-02T030405Z-2$' "$T/list"
assert_grep '^keep .* j/2026-01-03T000000Z$' "$T/list"

say "forget --json: the same names"
"$MV" forget --dry-run --json --keep-last 1 "$R" >"$T/forget.json"
python3 -c 'import json,sys
for j in json.load(open(sys.argv[1]))["jobs"]:
    for s in j["snapshots"]: print(s["dir"])' "$T/forget.json" |
	sort >"$T/jdirs"
cmp "$T/dirs" "$T/jdirs" || die "forget --json names differ from snapshots'"

say "each name forget printed resolves to its own snapshot"
for d in $(cat "$T/ldirs"); do
	"$MV" cat "$R" "j/$d:d/f"
done | sort | tr '\n' ' ' >"$T/contents"
assert_eq "a b c " "$(cat "$T/contents")" "contents by forget's names"

say "forget removes the two of one second and keeps the newest"
assert_ok "$MV" forget --keep-last 1 "$R" >/dev/null
"$MV" snapshots --json "$R" >"$T/after.json"
assert_eq 1 "$(python3 -c 'import json,sys
print(len(json.load(open(sys.argv[1]))))' "$T/after.json")" "snapshots left"
ok
