#!/bin/sh
# t9003-prune: forget + prune give the space back (within 5 % of a
# repository that only ever held the kept snapshots), keep every kept
# snapshot byte-exact and checkable, show the result in stats, and refuse
# bad options, a locked, an append-only and a damaged repository.
. "$(dirname "$0")/../lib/test-lib.sh"

require_mv
R=$T/repo
gen --small --messages 120 --days 8 --out "$T/fx"

assert_ok "$MV" init "$R" >/dev/null
for d in 1 2 3 4 5 6 7 8; do
	assert_ok "$MV" backup "$R" --name mail \
		--time "2024-05-0${d}T01:00:00Z" --quiet data="$T/fx/day$d"
done
# bytes of the pack files (du -sb would add the file system's directory sizes)
pack_bytes() { find "$1/packs" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }
before=$(pack_bytes "$R")

say "bad options are usage errors and change nothing"
for v in -1 abc 101 5x ""; do
	set +e
	"$MV" prune --max-unused "$v" "$R" >"$T/out" 2>"$T/err"
	rc=$?
	set -e
	assert_eq 2 "$rc" "exit status of prune --max-unused '$v'"
done
assert_exit 2 "$MV" prune --max-unused abc "$R" 2>"$T/err"
assert_grep "bad --max-unused 'abc'" "$T/err"

say "a locked repository is refused with the holder named"
sleep 60 &
holder=$!
echo "$holder" >>"$T/.tl-pids"
printf 'host=%s\npid=%s\ntime=%s\n' "$(hostname)" "$holder" \
	"$(date +%s)" >"$R/lock"
assert_exit 11 "$MV" prune "$R" 2>"$T/err"
assert_grep "locked by pid $holder on host" "$T/err"
rm -f "$R/lock"

say "append-only: forget, prune and repair refuse until turned off"
assert_ok "$MV" config "$R" append-only on >/dev/null
"$MV" config "$R" >"$T/cfg"
assert_grep '^append-only = yes$' "$T/cfg"
assert_fail "$MV" prune "$R" 2>"$T/err"
assert_grep "append-only: prune refuses" "$T/err"
assert_fail "$MV" check --repair "$R" 2>"$T/err" >/dev/null
assert_grep "append-only: repair refuses" "$T/err"
assert_fail "$MV" forget --keep-last 1 "$R" 2>/dev/null
assert_fail "$MV" config "$R" append-only maybe 2>/dev/null
assert_ok "$MV" config "$R" append-only off >/dev/null
"$MV" config "$R" >"$T/cfg"
assert_grep '^append-only = no$' "$T/cfg"
"$MV" snapshots "$R" >"$T/snaps"
assert_eq 8 "$(grep -c ' mail ' "$T/snaps")" "snapshots after refusals"

say "dry run changes nothing"
assert_ok "$MV" forget --keep-last 3 "$R" >/dev/null
ls -R "$R/packs" >"$T/ls1"
assert_ok "$MV" prune --dry-run "$R" >"$T/dry"
ls -R "$R/packs" >"$T/ls2"
cmp -s "$T/ls1" "$T/ls2" || die "prune --dry-run changed the packs"
assert_grep '^would reclaim ' "$T/dry"

say "prune reclaims, kept snapshots restore byte-exact"
# an orphan pack and a leftover temporary file, as a killed backup leaves
mkdir -p "$R/packs/ff"
cp "$(find "$R/packs" -type f | head -1)" \
	"$R/packs/ff/ffffffffffffffffffffffffffffffff"
echo partial >"$R/packs/ff/ffffffffffffffffffffffffffffffee.tmp"
# older than prune's grace period (t9012 tests the young ones)
touch -d '2 hours ago' "$R/packs/ff/ffffffffffffffffffffffffffffffff" \
	"$R/packs/ff/ffffffffffffffffffffffffffffffee.tmp"
assert_ok "$MV" prune "$R" >"$T/prune"
cat "$T/prune"
assert_grep '^removed 2 files not in the index' "$T/prune"
[ ! -e "$R/packs/ff/ffffffffffffffffffffffffffffffee.tmp" ] ||
	die "leftover temporary file not removed"
# forget already recorded its tombstones: prune has none left to write
assert_no_grep '^recorded [1-9]' "$T/prune"
assert_ok "$MV" check --read-data "$R" >/dev/null
for d in 6 7 8; do
	rm -rf "$T/out"
	assert_ok "$MV" restore "$R" "mail/2024-05-0${d}T010000Z:data" \
		"$T/out" >/dev/null
	assert_same_tree "$T/fx/day$d" "$T/out/data"
done
after=$(pack_bytes "$R")
[ "$after" -lt "$before" ] || die "prune did not shrink the packs"

say "no empty pack directories are left behind"
empty=$(find "$R/packs" -mindepth 1 -type d -empty | wc -l)
assert_eq 0 "$empty" "empty directories under packs/"

say "size within 5 % of a repository that only held the kept snapshots"
# same chunker key: two keys cut the changed files at other places, which
# alone moves the size of 3 small snapshots by several percent
assert_fail "$MV" init --chunk-avg 65536 --copy-chunker-params "$R" \
	"$T/bad" 2>"$T/err"
assert_grep "exclude each other" "$T/err"
assert_fail "$MV" init --copy-chunker-params "$T/nowhere" "$T/bad" 2>"$T/err"
assert_grep "nowhere" "$T/err"
[ ! -e "$T/bad/config" ] || die "a failed init left a repository"
assert_ok "$MV" init --copy-chunker-params "$R" "$T/ref" >/dev/null
grep '^secret' "$R/config" >"$T/s1"
grep '^secret' "$T/ref/config" >"$T/s2"
cmp -s "$T/s1" "$T/s2" || die "--copy-chunker-params did not copy the secret"
! cmp -s "$R/config" "$T/ref/config" || die "the copy has the same repository id"
for d in 6 7 8; do
	assert_ok "$MV" backup "$T/ref" --name mail \
		--time "2024-05-0${d}T01:00:00Z" --quiet data="$T/fx/day$d"
done
ref=$(pack_bytes "$T/ref")
say "before $before, after $after, reference $ref bytes"
[ $((after * 100)) -le $((ref * 105)) ] ||
	die "pruned repository $after bytes, reference $ref (over 5 %)"

say "stats shows what prune reclaimed and what is unused"
"$MV" stats "$R" >"$T/stats"
assert_grep '^last prune .*: reclaimed .*, .* unused' "$T/stats"

say "a second prune has nothing to do"
assert_ok "$MV" prune "$R" >"$T/prune2"
assert_grep '^deleted 0 unused packs' "$T/prune2"
assert_grep '^repacked 0 packs' "$T/prune2"

say "a damaged repository is refused: run check"
victim=$(find "$R/packs" -type f -size +2k | head -1)
mv "$victim" "$T/victim"
assert_fail "$MV" prune "$R" 2>"$T/err"
assert_grep "run 'mailvault check'" "$T/err"
mv "$T/victim" "$victim"
assert_ok "$MV" check --read-data "$R" >/dev/null
ok
