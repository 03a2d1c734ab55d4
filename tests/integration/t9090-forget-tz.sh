#!/bin/sh
# t9090-forget-tz: forget counts retention periods in the local time zone
# and refuses, removing nothing, when that zone cannot be loaded (no
# tzdata, a misspelt name, a file that is no zone) instead of counting in
# UTC; a POSIX TZ string or UTC needs no zone file.
. "$(dirname "$0")/../lib/test-lib.sh"

require_mv
R=$T/repo
mkdir -p "$T/src" "$T/nozones"
assert_ok "$MV" init "$R" >/dev/null
# 22:30 UTC on the 2nd is the 3rd in Berlin: --keep-daily 2 keeps the 1st
# and 3rd backups in UTC, the 2nd and 3rd in Berlin
for t in 2024-06-01T12:00:00Z 2024-06-02T12:00:00Z 2024-06-02T22:30:00Z; do
	echo "$t" >"$T/src/msg"
	assert_ok "$MV" backup "$R" --name mail --time "$t" --quiet \
		data="$T/src"
done
"$MV" snapshots "$R" >"$T/before"

# refused: exit 1, the zone named, nothing removed
refused()
{
	set +e
	env "$@" "$MV" forget --keep-daily 1 "$R" >"$T/out" 2>"$T/err"
	rc=$?
	set -e
	cat "$T/err"
	assert_eq 1 "$rc" "exit code of forget with $*"
	"$MV" snapshots "$R" >"$T/now"
	cmp -s "$T/before" "$T/now" || die "forget with $* removed snapshots"
}

say "a zone that does not exist"
refused TZ=Nowhere/Atlantis
assert_grep "time zone 'Nowhere/Atlantis' cannot be loaded" "$T/err"
assert_grep "/usr/share/zoneinfo/Nowhere/Atlantis" "$T/err"
refused TZ=:Nowhere/Atlantis
assert_grep "'Nowhere/Atlantis'" "$T/err"

say "a machine without tzdata (an empty TZDIR)"
refused TZDIR="$T/nozones" TZ=Europe/Berlin
assert_grep "time zone 'Europe/Berlin' cannot be loaded" "$T/err"
assert_grep 'install tzdata' "$T/err"

say "a file that is no zone file"
echo "not a zone" >"$T/junk"
refused TZ="$T/junk"
assert_grep "is not a time zone file" "$T/err"

say "a dry run is refused the same way"
set +e
TZ=Nowhere/Atlantis "$MV" forget --dry-run --keep-daily 1 "$R" \
	>"$T/out" 2>"$T/err"
rc=$?
set -e
assert_eq 1 "$rc" "exit code of forget --dry-run"
assert_grep "'Nowhere/Atlantis'" "$T/err"

say "a POSIX TZ string and UTC need no zone file"
TZDIR="$T/nozones" TZ='CET-1CEST,M3.5.0,M10.5.0/3' \
	"$MV" forget --dry-run --list --keep-daily 2 "$R" >"$T/posix" 2>&1 ||
	die "forget refused a POSIX TZ string"
TZDIR="$T/nozones" TZ=UTC \
	"$MV" forget --dry-run --list --keep-daily 2 "$R" >"$T/utc" 2>&1 ||
	die "forget refused TZ=UTC"
cat "$T/posix" "$T/utc"
assert_grep '^keep .*mail/2024-06-02T120000Z' "$T/posix"
assert_grep '^keep .*mail/2024-06-01T120000Z' "$T/utc"

say "with the zone there, Berlin's days are counted"
[ -f /usr/share/zoneinfo/Europe/Berlin ] ||
	die "no /usr/share/zoneinfo/Europe/Berlin: install tzdata"
TZ=Europe/Berlin "$MV" forget --dry-run --list --keep-daily 2 "$R" \
	>"$T/berlin" 2>&1 ||
	die "forget failed with TZ=Europe/Berlin"
cmp -s "$T/posix" "$T/berlin" ||
	die "Europe/Berlin and its POSIX rules kept different snapshots"
ok
