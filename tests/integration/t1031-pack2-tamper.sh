#!/bin/sh
# t1031: format 2 packs (config "packs = 2"), in both suites - the none
# suite (XXH3-128) and xchacha20-poly1305 (the default) - a byte flipped
# in each kind of object - a data record, a tree record, the snapshot
# record, a pack table, a pack trailer - is named by 'check --read-data',
# and cat / restore of what it holds fail with a message naming the pack
# and the record and a non-zero exit, never with other bytes.  Two packs
# whose names are swapped are refused at their trailers.  rebuild-index of
# an intact repository gives back every record from the tables alone.
# Encrypted: the index is read from the private cache (the repository
# holds none), every step starts with an empty cache so that no record
# comes from it, and a flipped bit in the key slot opens nothing (exit 12).
. "$(dirname "$0")/../lib/test-lib.sh"

export MAILVAULT_PASSPHRASE="tamper test passphrase"

# suite ENC: the whole test against a repository of that encryption
suite()
{
ENC=$1
W=$T/$ENC
mkdir -p "$W"
export XDG_CACHE_HOME=$W/cache
R=$W/repo
mkdir -p "$W/src/a" "$W/src/b"
i=0
while [ $i -lt 30 ]; do
	head -c $((3000 + i * 517)) /dev/urandom | od -An -tx1 \
		>"$W/src/a/msg$i"
	i=$((i + 1))
done
echo "small note" >"$W/src/b/note"
assert_ok "$MV" init --encryption "$ENC" "$R" >/dev/null
assert_grep '^packs = 2$' "$R/config"
assert_ok "$MV" backup "$R" --name t --quiet data="$W/src"
snap=t/latest
if [ "$ENC" = none ]; then
	I=$R/index.db
else
	# the repository holds no index; the cache's copy tells where
	# records are, read from a copy so that wiping the cache keeps it
	[ ! -e "$R/index.db" ] || die "an encrypted repository holds index.db"
	cp "$(find "$XDG_CACHE_HOME/mailvault" -name index.db | head -1)" \
		"$W/index.db"
	I=$W/index.db
fi
[ -f "$I" ] || die "no index at $I"
assert_ok "$MV" check --read-data "$R" >/dev/null
# nothing readable in a pack: no format 1 magic, no record header
for p in "$R"/packs/*/*; do
	if grep -q 'MVPACK\|MVR1' "$p"; then
		die "format 1 magic in $p"
	fi
done
cp -a "$R" "$W/clean"

# q SQL: one row of the index
q() { sqlite3 "$I" "$1"; }
pack_of() { q "SELECT name FROM packs WHERE id = $1"; }
flip_at() { # FILE OFFSET
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "$(printf '\\%03o' $(((b + 1) % 256)))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
fresh() {
	rm -rf "$R" "$XDG_CACHE_HOME"
	cp -a "$W/clean" "$R"
}
expect_check_names() { # WHAT PATTERN
	set +e
	"$MV" check --read-data "$R" >"$W/ck.out" 2>"$W/ck.err"
	rc=$?
	set -e
	cat "$W/ck.out" "$W/ck.err"
	[ "$rc" -ne 0 ] || die "check --read-data accepted a damaged $1"
	assert_grep "$2" "$W/ck.err"
}
expect_cat_fails() { # PATH PATTERN
	set +e
	"$MV" cat "$R" "$snap:data/$1" >"$W/cat.out" 2>"$W/cat.err"
	rc=$?
	set -e
	cat "$W/cat.err"
	[ "$rc" -ne 0 ] || die "cat of $1 succeeded on damaged data"
	assert_grep "$2" "$W/cat.err"
	cmp -s "$W/cat.out" "$W/src/$1" && die "cat gave the bytes anyway"
	[ ! -s "$W/cat.out" ] || die "cat wrote bytes of a damaged record"
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
big=$(cd "$W/src" && ls -S a | head -1)
expect_cat_fails "a/$big" "pack $pk: record $hex.*authentication failed"
set +e
mkdir -p "$W/out1" && "$MV" restore "$R" "$snap" "$W/out1" >/dev/null 2>"$W/rs.err"
rc=$?
set -e
cat "$W/rs.err"
[ "$rc" -ne 0 ] || die "restore succeeded on a damaged data record"
assert_grep "authentication failed" "$W/rs.err"
if [ -f "$W/out1/data/a/$big" ]; then
	cmp -s "$W/out1/data/a/$big" "$W/src/a/$big" &&
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
mkdir -p "$W/out2" && "$MV" restore "$R" "$snap" "$W/out2" >/dev/null 2>"$W/rs.err"
rc=$?
set -e
cat "$W/rs.err"
[ "$rc" -ne 0 ] || die "restore succeeded on a damaged tree record"
assert_grep "tree node\\): authentication failed" "$W/rs.err"

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
"$MV" rebuild-index "$R" >"$W/rb.out" 2>"$W/rb.err"
set -e
cat "$W/rb.out" "$W/rb.err"
assert_grep "pack '.*$pk' is not trusted" "$W/rb.err"

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
assert_ok "$MV" cat "$R" "$snap:data/b/note" >"$W/note"
assert_eq "small note" "$(cat "$W/note")" "cat beside a damaged table"
"$MV" check --repair "$R" >"$W/rep" 2>"$W/reperr" || true
cat "$W/rep" "$W/reperr"
assert_grep "pack '.*$pk': its table is damaged" "$W/reperr"
assert_ok "$MV" check --read-data "$R" >/dev/null 2>"$W/ck2.err"
assert_grep "^warning: pack '?$pk'?: table: authentication failed \(recorded by check --repair" \
	"$W/ck2.err"

say "a pack trailer"
fresh
size=$(wc -c <"$f")
flip_at "$f" $((size - 10))
expect_check_names "trailer" "pack '?$pk'?: trailer: authentication failed"
set +e
"$MV" rebuild-index "$R" >"$W/rb.out" 2>"$W/rb.err"
set -e
assert_grep "pack '.*$pk' is not trusted: pack '?$pk'?: trailer: authentication failed" "$W/rb.err"

say "two packs' names swapped"
fresh
set -- $(q "SELECT name FROM packs ORDER BY name LIMIT 2")
p1=$R/packs/$(echo "$1" | cut -c1-2)/$1
p2=$R/packs/$(echo "$2" | cut -c1-2)/$2
mv "$p1" "$W/swap"
mv "$p2" "$p1"
mv "$W/swap" "$p2"
# check sees the sizes the index expects first; rebuild-index, which has
# only the packs, fails both at their trailers
expect_check_names "swap" "pack '(packs/../)?($1|$2)' has [0-9]+ bytes"
set +e
"$MV" rebuild-index "$R" >"$W/rb.out" 2>"$W/rb.err"
set -e
cat "$W/rb.out" "$W/rb.err"
assert_grep "pack '.*$1' is not trusted: pack '?$1'?: trailer: authentication failed" "$W/rb.err"
assert_grep "pack '.*$2' is not trusted: pack '?$2'?: trailer: authentication failed" "$W/rb.err"

say "rebuild-index from tables alone"
fresh
records=$(q "SELECT count(*) FROM chunks")
assert_ok "$MV" rebuild-index "$R" >"$W/rb.out"
cat "$W/rb.out"
assert_grep "^indexed $records records of [0-9]+ packs; 1 snapshots" "$W/rb.out"
assert_ok "$MV" check --read-data "$R" >/dev/null
mkdir -p "$W/out3"
assert_ok "$MV" restore "$R" "$snap" "$W/out3" >/dev/null
assert_same_tree "$W/src" "$W/out3/data"

if [ "$ENC" != none ]; then
	say "a key slot"
	fresh
	slot=$(ls "$R/keys" | head -1)
	size=$(wc -c <"$R/keys/$slot")
	flip_at "$R/keys/$slot" $((size - 5))
	set +e
	"$MV" cat "$R" "$snap:data/b/note" >"$W/cat.out" 2>"$W/cat.err"
	rc=$?
	set -e
	cat "$W/cat.err"
	assert_eq 12 "$rc" "exit of cat with a flipped key slot"
	assert_grep "no key slot of .* (opens|can be read)" "$W/cat.err"
	[ ! -s "$W/cat.out" ] || die "cat wrote bytes through a damaged slot"
fi
}

suite none
suite xchacha20-poly1305
ok
