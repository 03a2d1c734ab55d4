#!/bin/sh
# t9011: check names every snapshot and path that references a damaged
# chunk - also two snapshots of one job made in the same second, one
# imported with --time, that share their trees - and exits 13; its
# summary is whole; --read-data-subset reads N% or group N of M of the
# packs and plain check reads a sample; after check --repair (exit 3, the
# loss recorded) check --read-data accepts the repository (exit 0) and
# still names the files that lost data, in both snapshots.
. "$(dirname "$0")/../lib/test-lib.sh"

R=$T/repo
gen --small --messages 40 --days 1 --out "$T/fx"
assert_ok "$MV" init "$R" >/dev/null
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
assert_ok "$MV" backup "$R" --name mail --quiet --time "$now" \
	data="$T/fx/day1"
assert_ok "$MV" backup "$R" --name mail --quiet data="$T/fx/day1"
"$MV" snapshots "$R" >"$T/snaps"
cat "$T/snaps"
assert_ok "$MV" check --read-data "$R" >"$T/ck0"
assert_grep '^no damage found' "$T/ck0"
# the summary is one whole sentence: no parenthesis left open
assert_grep '^checked [0-9]+ packs, 2 snapshots, [0-9]+ files; read [0-9]+ packs \([0-9]+ chunks\)$' \
	"$T/ck0"
npacks=$(sed -n 's/^checked \([0-9]*\) packs.*/\1/p' "$T/ck0")

say "one pack damaged"
victim=$(find "$R/packs" -type f -size +100k | sort | head -1)
[ -n "$victim" ] || die "no data pack over 100 KiB"
cp -a "$R" "$T/clean"
printf '\377\377\377\377' |
	dd of="$victim" bs=1 seek=40000 conv=notrunc status=none
cp -a "$R" "$T/damaged"

set +e
"$MV" check --read-data "$R" >"$T/ck1" 2>"$T/ck1err"
rc=$?
set -e
cat "$T/ck1" "$T/ck1err"
assert_eq 13 "$rc" "exit status of check --read-data on a damaged pack"
# both snapshots are named, with the same files
# (by id: made in the same second, they share NAME/TIME)
sed -n "s/^error: snapshot [^:]* \[\([0-9a-f]*\)\]: file '\([^']*\)'.*/\1 \2/p" \
	"$T/ck1err" | sort -u >"$T/hits"
[ -s "$T/hits" ] || die "no damaged file named"
cut -d' ' -f1 "$T/hits" | sort -u >"$T/hitsnaps"
assert_eq 2 "$(wc -l <"$T/hitsnaps")" "snapshots named"
for s in $(cat "$T/hitsnaps"); do
	grep "^$s " "$T/hits" | cut -d' ' -f2- >"$T/files.$s"
done
set -- "$T"/files.*
cmp "$1" "$2" || die "the two snapshots are named with different files"
assert_grep 'in 2 snapshots affected' "$T/ck1err"
# a file named is one that fails to read
spec=$(head -1 "$T/hits" | sed "s# /#:#")
assert_fail "$MV" cat "$R" "$spec" >/dev/null 2>&1

say "--read-data-subset"
set +e
"$MV" check --read-data-subset 100% "$T/damaged" >"$T/ck2" 2>&1
rc=$?
set -e
assert_eq 13 "$rc" "exit status of --read-data-subset 100%"
assert_grep "^checked $npacks packs, .* read $npacks packs \\(" "$T/ck2"
total=0
found=0
for n in 1 2 3; do
	set +e
	"$MV" check --read-data-subset "$n/3" "$T/damaged" >"$T/ck3" 2>&1
	rc=$?
	set -e
	case $rc in
	0) ;;
	13) found=$((found + 1)) ;;
	*) cat "$T/ck3"; die "--read-data-subset $n/3: exit $rc" ;;
	esac
	k=$(sed -n 's/.* read \([0-9]*\) packs.*/\1/p' "$T/ck3")
	total=$((total + k))
done
assert_eq "$npacks" "$total" "packs read by the three groups"
assert_eq 1 "$found" "groups that hold the damaged pack"
for bad in 0/3 4/3 0% 101% x; do
	set +e
	"$MV" check --read-data-subset "$bad" "$T/damaged" >/dev/null 2>&1
	rc=$?
	set -e
	assert_eq 2 "$rc" "exit status of --read-data-subset $bad"
done
# plain check reads a sample: at least one pack
"$MV" check "$T/damaged" >"$T/ck4" 2>&1 || true
assert_grep ' read [1-9][0-9]* packs \([0-9]+ chunks\), a subset$' "$T/ck4"
# and all of them when told so through the environment (tests)
set +e
MAILVAULT_CHECK_SUBSET=100% "$MV" check "$T/damaged" >/dev/null 2>&1
rc=$?
set -e
assert_eq 13 "$rc" "plain check with MAILVAULT_CHECK_SUBSET=100%"

say "a missing pack: its files are named without reading data"
rm -f "$T/clean/packs/${victim#"$R/packs/"}"
set +e
MAILVAULT_CHECK_SUBSET=0 "$MV" check "$T/clean" >"$T/ck6" 2>"$T/ck6err"
rc=$?
set -e
cat "$T/ck6" "$T/ck6err"
assert_eq 13 "$rc" "exit status of check with a pack missing"
assert_grep '^error: pack .* is missing' "$T/ck6err"
assert_grep ' read 0 packs \(0 chunks\), a subset$' "$T/ck6"
sed -n "s/^error: snapshot [^:]* \[\([0-9a-f]*\)\]: file.*/\1/p" \
	"$T/ck6err" | sort -u >"$T/gonesnaps"
assert_eq 2 "$(wc -l <"$T/gonesnaps")" "snapshots named for the missing pack"

say "check --repair records the loss"
set +e
"$MV" check --repair "$R" >"$T/rep" 2>"$T/reperr"
rc=$?
set -e
cat "$T/rep" "$T/reperr"
assert_eq 3 "$rc" "exit status of check --repair"
assert_grep 'no snapshot was removed' "$T/reperr"
assert_grep '^known loss: ' "$T/rep"

say "the repaired repository is accepted, the loss still named"
"$MV" check --read-data "$R" >"$T/ck5" 2>"$T/ck5err" || {
	cat "$T/ck5" "$T/ck5err"
	die "check --read-data after repair"
}
cat "$T/ck5"
assert_no_grep '^error:' "$T/ck5err"
assert_grep '^no new damage found' "$T/ck5"
assert_grep '^known loss: [0-9]+ files or directories in 2 snapshots' \
	"$T/ck5"
sed -n "s/^warning: snapshot [^:]* \[\([0-9a-f]*\)\]: file '\([^']*\)': known-lost.*/\1 \2/p" \
	"$T/ck5err" | sort -u >"$T/lost"
cmp "$T/hits" "$T/lost" || die "the known loss names other files"
assert_ok "$MV" check "$R" >/dev/null 2>&1
assert_fail "$MV" cat "$R" "$spec" >/dev/null 2>&1
ok
