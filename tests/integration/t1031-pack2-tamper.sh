#!/bin/sh
# t1031: format 2 packs (config "packs = 2", the none suite) - a byte
# flipped in each kind of object - a data record, a tree record, the
# snapshot record, a pack table, a pack trailer - is named by
# 'check --read-data', and cat / restore of what it holds fail with a
# message naming the pack and the record and a non-zero exit, never with
# other bytes.  Two packs whose names are swapped are refused at their
# trailers.  rebuild-index of an intact repository gives back every
# record from the tables alone.
. "$(dirname "$0")/../lib/test-lib.sh"

R=$T/repo
mkdir -p "$T/src/a" "$T/src/b"
i=0
while [ $i -lt 30 ]; do
	head -c $((3000 + i * 517)) /dev/urandom | od -An -tx1 \
		>"$T/src/a/msg$i"
	i=$((i + 1))
done
echo "small note" >"$T/src/b/note"
assert_ok "$MV" init --encryption none "$R" >/dev/null 2>&1 ||
	assert_ok "$MV" init "$R" >/dev/null
assert_grep '^packs = 2$' "$R/config"
assert_ok "$MV" backup "$R" --name t --quiet data="$T/src"
snap=t/latest
I=$R/index.db
[ -f "$I" ] || skip "the index is not a plain index.db in the repository"
assert_ok "$MV" check --read-data "$R" >/dev/null
# nothing readable in a pack: no format 1 magic, no record header
for p in "$R"/packs/*/*; do
	if grep -q 'MVPACK\|MVR1' "$p"; then
		die "format 1 magic in $p"
	fi
done
cp -a "$R" "$T/clean"

# q SQL: one row of the index
q() { sqlite3 "$I" "$1"; }
pack_of() { q "SELECT name FROM packs WHERE id = $1"; }
flip_at() { # FILE OFFSET
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "$(printf '\\%03o' $(((b + 1) % 256)))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
fresh() {
	rm -rf "$R"
	cp -a "$T/clean" "$R"
}
expect_check_names() { # WHAT PATTERN
	set +e
	"$MV" check --read-data "$R" >"$T/ck.out" 2>"$T/ck.err"
	rc=$?
	set -e
	cat "$T/ck.out" "$T/ck.err"
	[ "$rc" -ne 0 ] || die "check --read-data accepted a damaged $1"
	assert_grep "$2" "$T/ck.err"
}
expect_cat_fails() { # PATH PATTERN
	set +e
	"$MV" cat "$R" "$snap:data/$1" >"$T/cat.out" 2>"$T/cat.err"
	rc=$?
	set -e
	cat "$T/cat.err"
	[ "$rc" -ne 0 ] || die "cat of $1 succeeded on damaged data"
	assert_grep "$2" "$T/cat.err"
	cmp -s "$T/cat.out" "$T/src/$1" && die "cat gave the bytes anyway"
	[ ! -s "$T/cat.out" ] || die "cat wrote bytes of a damaged record"
}

say "a data record"
fresh
row=$(q "SELECT pack, offset, stored_size, lower(hex(substr(id, 1, 8)))
	FROM chunks WHERE type = 1 AND raw_size = (SELECT max(raw_size)
	FROM chunks WHERE type = 1) LIMIT 1")
pk=$(pack_of "${row%%|*}")
rest=${row#*|}
off=${rest%%|*}
rest=${rest#*|}
len=${rest%%|*}
hex=${rest#*|}
flip_at "$R/packs/$(echo "$pk" | cut -c1-2)/$pk" $((off + len / 2))
expect_check_names "data record" "pack $pk: record $hex.*\\(data\\): authentication failed"
big=$(cd "$T/src" && ls -S a | head -1)
expect_cat_fails "a/$big" "pack $pk: record $hex.*authentication failed"
set +e
mkdir -p "$T/out1" && "$MV" restore "$R" "$snap" "$T/out1" >/dev/null 2>"$T/rs.err"
rc=$?
set -e
cat "$T/rs.err"
[ "$rc" -ne 0 ] || die "restore succeeded on a damaged data record"
assert_grep "authentication failed" "$T/rs.err"
if [ -f "$T/out1/data/a/$big" ]; then
	cmp -s "$T/out1/data/a/$big" "$T/src/a/$big" &&
		die "restore wrote the damaged file whole"
fi

say "a tree record"
fresh
row=$(q "SELECT pack, offset, stored_size FROM chunks WHERE type = 2
	LIMIT 1")
pk=$(pack_of "${row%%|*}")
rest=${row#*|}
off=${rest%%|*}
len=${rest#*|}
flip_at "$R/packs/$(echo "$pk" | cut -c1-2)/$pk" $((off + len - 3))
expect_check_names "tree record" "pack $pk: record .*\\(tree node\\): authentication failed"
set +e
mkdir -p "$T/out2" && "$MV" restore "$R" "$snap" "$T/out2" >/dev/null 2>"$T/rs.err"
rc=$?
set -e
cat "$T/rs.err"
[ "$rc" -ne 0 ] || die "restore succeeded on a damaged tree record"
assert_grep "tree node\\): authentication failed" "$T/rs.err"

say "the snapshot record"
fresh
row=$(q "SELECT pack, offset, stored_size FROM chunks WHERE type = 3
	LIMIT 1")
pk=$(pack_of "${row%%|*}")
rest=${row#*|}
off=${rest%%|*}
len=${rest#*|}
flip_at "$R/packs/$(echo "$pk" | cut -c1-2)/$pk" $((off + 30))
expect_check_names "snapshot record" "pack $pk: record .*\\(snapshot\\): authentication failed"
# rebuild-index opens snapshot records: the damaged one is not trusted
set +e
"$MV" rebuild-index "$R" >"$T/rb.out" 2>"$T/rb.err"
set -e
cat "$T/rb.out" "$T/rb.err"
assert_grep "pack '.*$pk' is not trusted" "$T/rb.err"

say "a pack table"
fresh
pk=$(q "SELECT name FROM packs WHERE kind = 1 LIMIT 1")
f=$R/packs/$(echo "$pk" | cut -c1-2)/$pk
end=$(q "SELECT max(offset + stored_size) FROM chunks c JOIN packs p
	ON c.pack = p.id WHERE p.name = '$pk'")
flip_at "$f" $((end + 30))
expect_check_names "table" "pack '?$pk'?: table: authentication failed"
# its records are whole: cat reads them, repair records the table's loss
# and later checks warn instead of failing
assert_ok "$MV" cat "$R" "$snap:data/b/note" >"$T/note"
assert_eq "small note" "$(cat "$T/note")" "cat beside a damaged table"
"$MV" check --repair "$R" >"$T/rep" 2>"$T/reperr" || true
cat "$T/rep" "$T/reperr"
assert_grep "pack '.*$pk': its table is damaged" "$T/reperr"
assert_ok "$MV" check --read-data "$R" >/dev/null 2>"$T/ck2.err"
assert_grep "^warning: pack '?$pk'?: table: authentication failed \(recorded by check --repair" \
	"$T/ck2.err"

say "a pack trailer"
fresh
size=$(wc -c <"$f")
flip_at "$f" $((size - 10))
expect_check_names "trailer" "pack '?$pk'?: trailer: authentication failed"
set +e
"$MV" rebuild-index "$R" >"$T/rb.out" 2>"$T/rb.err"
set -e
assert_grep "pack '.*$pk' is not trusted: pack '?$pk'?: trailer: authentication failed" "$T/rb.err"

say "two packs' names swapped"
fresh
set -- $(q "SELECT name FROM packs ORDER BY name LIMIT 2")
p1=$R/packs/$(echo "$1" | cut -c1-2)/$1
p2=$R/packs/$(echo "$2" | cut -c1-2)/$2
mv "$p1" "$T/swap"
mv "$p2" "$p1"
mv "$T/swap" "$p2"
# check sees the sizes the index expects first; rebuild-index, which has
# only the packs, fails both at their trailers
expect_check_names "swap" "pack '(packs/../)?($1|$2)' has [0-9]+ bytes"
set +e
"$MV" rebuild-index "$R" >"$T/rb.out" 2>"$T/rb.err"
set -e
cat "$T/rb.out" "$T/rb.err"
assert_grep "pack '.*$1' is not trusted: pack '?$1'?: trailer: authentication failed" "$T/rb.err"
assert_grep "pack '.*$2' is not trusted: pack '?$2'?: trailer: authentication failed" "$T/rb.err"

say "rebuild-index from tables alone"
fresh
records=$(q "SELECT count(*) FROM chunks")
assert_ok "$MV" rebuild-index "$R" >"$T/rb.out"
cat "$T/rb.out"
assert_grep "^indexed $records records of [0-9]+ packs; 1 snapshots" "$T/rb.out"
assert_ok "$MV" check --read-data "$R" >/dev/null
mkdir -p "$T/out3"
assert_ok "$MV" restore "$R" "$snap" "$T/out3" >/dev/null
assert_same_tree "$T/src" "$T/out3/data"
ok
