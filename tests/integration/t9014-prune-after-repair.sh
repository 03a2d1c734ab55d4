#!/bin/sh
# t9014: after check --repair lost a directory's tree object (a damaged
# metadata pack), prune goes on instead of refusing and sending the user
# back to check, which accepts the repository; afterwards check
# --read-data still accepts it and the other snapshot restores byte-exact.
. "$(dirname "$0")/../lib/test-lib.sh"

require_cmd sqlite3
R=$T/repo
gen --small --messages 40 --days 2 --out "$T/fx"
assert_ok "$MV" init "$R" >/dev/null
for d in 1 2; do
	assert_ok "$MV" backup "$R" --name mail --quiet \
		--time "2024-05-0${d}T01:00:00Z" data="$T/fx/day$d"
done
# the first backup's metadata pack: its trees
meta=$(sqlite3 "$R/index.db" \
	"SELECT name FROM packs WHERE kind = 2 ORDER BY id LIMIT 1")
[ -n "$meta" ] || die "no metadata pack"
f=$(find "$R/packs" -name "$meta")
size=$(wc -c <"$f")
printf '\377\377\377\377' |
	dd of="$f" bs=1 seek=$((size / 2)) conv=notrunc status=none

set +e
"$MV" check --repair "$R" >"$T/rep" 2>"$T/reperr"
rc=$?
set -e
cat "$T/rep" "$T/reperr"
assert_eq 3 "$rc" "exit status of check --repair"
assert_grep "directory '[^']*': known-lost tree object" "$T/reperr"
assert_ok "$MV" check "$R" >/dev/null 2>&1

say "prune goes on"
"$MV" prune --max-unused 0 "$R" >"$T/prune" 2>"$T/prunerr" || {
	cat "$T/prune" "$T/prunerr"
	die "prune refused after check --repair"
}
cat "$T/prune" "$T/prunerr"
assert_grep "^warning: snapshot mail/2024-05-01T010000Z: directory '[^']*' was lost to damage that check --repair recorded" \
	"$T/prunerr"
"$MV" check --read-data "$R" >"$T/ck" 2>&1 || {
	cat "$T/ck"
	die "check --read-data after prune"
}
assert_grep '^known loss: ' "$T/ck"
rm -rf "$T/out"
assert_ok "$MV" restore "$R" "mail/2024-05-02T010000Z:data" "$T/out" >/dev/null
assert_same_tree "$T/fx/day2" "$T/out/data"
ok
