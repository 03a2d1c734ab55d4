#!/bin/sh
# t9004-rebuild-repair: rebuild-index from the packs alone lists the same
# snapshots (forgotten ones stay forgotten) and restores byte-exact;
# check --repair after a deleted pack, a truncated pack, flipped bits and
# a corrupt index keeps every snapshot, names the files that lost data,
# and those read with EIO, never wrong bytes.
. "$(dirname "$0")/../lib/test-lib.sh"

require_mv
R=$T/repo
gen --small --messages 100 --days 4 --out "$T/fx"
assert_ok "$MV" init "$R" >/dev/null
for d in 1 2 3 4; do
	assert_ok "$MV" backup "$R" --name mail \
		--time "2024-05-0${d}T01:00:00Z" --quiet data="$T/fx/day$d"
done
assert_ok "$MV" forget --keep-last 3 "$R" >/dev/null
assert_ok "$MV" prune "$R" >/dev/null

say "index deleted: rebuilt, same snapshots, byte-exact, checkable"
"$MV" snapshots "$R" >"$T/s1"
rm -f "$R"/index.db*
assert_ok "$MV" rebuild-index "$R" >"$T/rb"
assert_grep '3 snapshots' "$T/rb"
"$MV" snapshots "$R" >"$T/s2"
diff -u "$T/s1" "$T/s2" || die "rebuilt index lists other snapshots"
assert_ok "$MV" check --read-data "$R" >/dev/null
for d in 2 3 4; do
	rm -rf "$T/out"
	assert_ok "$MV" restore "$R" "mail/2024-05-0${d}T010000Z:data" \
		"$T/out" >/dev/null 2>&1
	assert_same_tree "$T/fx/day$d" "$T/out/data"
done

say "a half-written pack is reported and not trusted"
f=$(find "$R/packs" -type f -size +8k | head -1)
mkdir -p "$R/packs/ee"
head -c 5000 "$f" >"$R/packs/ee/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
assert_ok "$MV" rebuild-index "$R" >"$T/rb" 2>"$T/rberr"
assert_grep "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee' is not trusted" "$T/rberr"
# only the fake pack: a real pack's name may start with "ee" too
rm -f "$R/packs/ee/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
rmdir "$R/packs/ee" 2>/dev/null || true
assert_ok "$MV" rebuild-index "$R" >/dev/null 2>&1

# damage DAMAGE: copy the repository, damage it, repair, look at it
damage()
{
	rm -rf "$T/d"
	cp -a "$R" "$T/d"
	victim=$(find "$T/d/packs" -type f -size +100k | sort | head -1)
	case $1 in
	delete) rm -f "$victim" ;;
	truncate) truncate -s 60000 "$victim" ;;
	flip)
		printf '\377\377\377\377' |
			dd of="$victim" bs=1 seek=40000 conv=notrunc \
				status=none
		;;
	index) echo "garbage, not SQLite" >"$T/d/index.db"
		rm -f "$T/d/index.db-wal" "$T/d/index.db-shm" ;;
	esac
}

for kind in delete truncate flip; do
	say "damage: $kind"
	damage $kind
	assert_fail "$MV" check --read-data "$T/d" >/dev/null 2>&1
	"$MV" snapshots "$T/d" >"$T/before"
	set +e
	"$MV" check --repair "$T/d" >"$T/rep" 2>"$T/reperr"
	rc=$?
	set -e
	cat "$T/rep" "$T/reperr"
	# 3: completed, with the loss recorded and listed
	assert_eq 3 "$rc" "exit status of check --repair after $kind"
	assert_grep 'no snapshot was removed' "$T/reperr"
	assert_grep "snapshot mail/2024-05-0[234]T010000Z \[[0-9a-f]{12}\]: (file|directory) '" \
		"$T/reperr"
	"$MV" snapshots "$T/d" >"$T/after"
	diff -u "$T/before" "$T/after" || die "repair changed the snapshots"
	# every named file reads with an error, never wrong bytes
	sed -n "s/^[a-z]*: snapshot \([^: ]*\) [^:]*: file '\/\([^']*\)'.*/\1:\2/p" \
		"$T/reperr" | head -5 >"$T/lost"
	[ -s "$T/lost" ] || grep -q "directory '" "$T/reperr" ||
		die "no lost file named after $kind"
	while IFS= read -r spec; do
		assert_fail "$MV" cat "$T/d" "$spec" >/dev/null 2>&1
	done <"$T/lost"
	# the repaired repository is accepted; the loss is still named
	assert_ok "$MV" check --read-data "$T/d" >"$T/ck" 2>"$T/ckerr"
	assert_grep '^known loss: [1-9][0-9]* files or directories' "$T/ck"
	assert_grep '^no new damage found' "$T/ck"
	assert_grep "^warning: snapshot mail/[^:]*: (file|directory) '.*known-lost" \
		"$T/ckerr"
	assert_no_grep '^error:' "$T/ckerr"
done

say "damage: corrupt index is rebuilt, nothing lost"
damage index
assert_fail "$MV" snapshots "$T/d" >/dev/null 2>&1
assert_ok "$MV" check --repair "$T/d" >"$T/rep" 2>&1
assert_grep 'index rebuilt' "$T/rep"
"$MV" snapshots "$T/d" >"$T/after"
diff -u "$T/s1" "$T/after" || die "rebuilt index lists other snapshots"
assert_ok "$MV" check --read-data "$T/d" >/dev/null
ok
