#!/bin/sh
# t1035-sealed-index-migration: an encrypted repository written before
# commit segments (its index is index.sealed; tests/data/
# sealed-index-repo.tar.zst, made by tests/data/sealed-index-make.sh) is
# read as it is - snapshots, cat, check - by a fresh cache and by one that
# read it before; its first write publishes one base segment holding the
# whole index, its own commit included, and removes index.sealed; then every cache, old or fresh,
# sees all snapshots from the segments.
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv
require_cmd zstd

set -e
export MAILVAULT_PASSPHRASE="legacy horse"
export MAILVAULT_KDF_TEST=1
zstd -dc "$TOP/tests/data/sealed-index-repo.tar.zst" | tar -C "$T" -xf -
R=$T/repo
[ -f "$R/index.sealed" ] || die "the fixture has no index.sealed"
[ ! -d "$R/index" ] || die "the fixture has segments already"
A() { XDG_CACHE_HOME=$T/cacheA "$MV" "$@"; }
B() { XDG_CACHE_HOME=$T/cacheB "$MV" "$@"; }
C() { XDG_CACHE_HOME=$T/cacheC "$MV" "$@"; }
count() { "$@" snapshots "$R" | grep -c '  mail  ' || true; }

say "read as it is, before any write"
assert_eq 2 "$(count A)" "snapshots from index.sealed"
assert_eq 2 "$(count B)" "snapshots from index.sealed, a second cache"
A cat "$R" mail/latest:vol/cur/3 >"$T/three"
printf 'Subject: three\n\nthird\n' >"$T/three.want"
cmp -s "$T/three" "$T/three.want" || die "cat of the third message differs"
assert_ok A check --read-data "$R" >/dev/null
[ -f "$R/index.sealed" ] || die "a reader removed index.sealed"
if [ -d "$R/index" ] && ls "$R/index" | grep -q .; then
	die "a reader wrote a segment"
fi

say "the first write migrates: one base segment, its own commit included"
mkdir -p "$T/src/cur"
printf 'Subject: four\n\nfourth\n' >"$T/src/cur/4"
assert_ok A backup "$R" --name mail --quiet \
	--time 2024-06-03T00:00:00Z vol="$T/src"
[ ! -e "$R/index.sealed" ] || die "index.sealed is still there"
assert_eq 1 "$(ls "$R/index" | grep -c '^[0-9a-f]\{32\}$')" \
	"segments after the migrating backup (one base)"
if grep -rlaF "SQLite format 3" "$R" >"$T/sq"; then
	cat "$T/sq" >&2
	die "an SQLite file in the repository"
fi

say "every cache sees all snapshots: the writer's, an old one, a fresh one"
assert_eq 3 "$(count A)" "snapshots, the writer's cache"
assert_eq 3 "$(count B)" "snapshots, a cache that read index.sealed"
assert_eq 3 "$(count C)" "snapshots, a fresh cache"
C cat "$R" mail/2024-06-02T000000Z:vol/cur/2 >"$T/two"
printf 'Subject: two\n\nsecond\n' >"$T/two.want"
cmp -s "$T/two" "$T/two.want" || die "cat of an old message differs"
assert_ok C check --read-data "$R" >/dev/null
ok
