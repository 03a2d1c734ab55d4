#!/bin/sh
# t3111-remote-index-version: the cached index of an sftp:// repository is
# trusted only when the server's copy is the same version (its generation
# and size), not when size and mtime merely agree: two publications in one
# second from two clients lose no snapshot.  A publication that died
# between its two renames (index.db moved aside, the new one not renamed
# in) is recovered by readers and writers alike.  An encrypted repository
# (commit segments, docs/FORMAT-2.md 5.3) written by three machines in
# turn, each with a cache that missed the others' commits, loses no
# snapshot either, and a forget on one is seen by the others.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"

require_cmd sqlite3
sshd_start
sshd_trust
R=sftp://root@127.0.0.1:$SSHD_PORT$T/repo
I=$T/repo/index.db
mkdir -p "$T/src" "$T/cacheA" "$T/cacheB" "$T/cacheC"
echo "one" >"$T/src/m"

# client A, B and C: three machines, three index caches
A() { XDG_CACHE_HOME=$T/cacheA "$MV" "$@" -i "$SSH_KEY"; }
B() { XDG_CACHE_HOME=$T/cacheB "$MV" "$@" -i "$SSH_KEY"; }
C() { XDG_CACHE_HOME=$T/cacheC "$MV" "$@" -i "$SSH_KEY"; }
count() { C snapshots "$R" | grep -c '  job  ' || true; }

assert_ok A init "$R"
assert_ok A backup "$R" --name job --time 2025-01-01T00:00:00Z --quiet \
	d="$T/src"
say "B caches the server's index"
assert_ok B snapshots "$R" >/dev/null
cp -p "$I" "$T/v1.db"
sz1=$(stat -c %s "$I")

say "A publishes another version in the same second, of the same size"
echo "two" >"$T/src/m"
assert_ok A backup "$R" --name job --time 2025-01-02T00:00:00Z --quiet \
	d="$T/src"
sz2=$(stat -c %s "$I")
[ "$sz1" = "$sz2" ] ||
	die "the test needs two versions of one size ($sz1, $sz2)"
cmp -s "$I" "$T/v1.db" && die "the index did not change"
touch -r "$T/v1.db" "$I" # the same second, as an SFTP client sees it
assert_eq 2 "$(count)" "snapshots after A's second backup"

say "B writes next: it must not publish over A's version"
echo "three" >"$T/src/m"
assert_ok B backup "$R" --name job --time 2025-01-03T00:00:00Z --quiet \
	d="$T/src"
assert_eq 3 "$(count)" "snapshots after B's backup (none lost)"
assert_ok C check "$R" >/dev/null

say "a publication died between its renames: readers and writers recover"
mv "$I" "$I.old-deadbeef"
head -c 4096 "$I.old-deadbeef" >"$I.tmp-0badc0de" # an upload cut short
rm -rf "$T/cacheC"
assert_eq 3 "$(count)" "snapshots a reader sees with index.db missing"
[ ! -e "$I" ] || die "a reader put index.db back"
echo "four" >"$T/src/m"
assert_ok A backup "$R" --name job --time 2025-01-04T00:00:00Z --quiet \
	d="$T/src"
[ -f "$I" ] || die "the writer did not put index.db back"
assert_eq 4 "$(count)" "snapshots after the writer recovered"
assert_eq 0 "$(sqlite3 "$I" 'PRAGMA quick_check' | grep -vc '^ok$' || true)" \
	"quick_check of the recovered index"

say "commit segments: three machines take turns on an encrypted repository"
export MAILVAULT_PASSPHRASE="three machines" MAILVAULT_KDF_TEST=1
E=sftp://root@127.0.0.1:$SSHD_PORT$T/erepo
rm -rf "$T/cacheA" "$T/cacheB" "$T/cacheC"
ecount() { C snapshots "$E" | grep -c '  job  ' || true; }
assert_ok A init --encryption xchacha20-poly1305 "$E" >/dev/null
i=1
for who in A B C A B; do
	echo "$who $i" >"$T/src/m"
	assert_ok "$who" backup "$E" --name job --quiet \
		--time "2025-02-0${i}T00:00:00Z" d="$T/src"
	i=$((i + 1))
done
assert_eq 6 "$(ls "$T/erepo/index" | wc -l)" "segments: init and five"
assert_eq 5 "$(ecount)" "snapshots seen by C after five backups"
[ ! -e "$T/erepo/index.db" ] || die "an encrypted repository holds index.db"
assert_ok A forget "$E" --keep-last 3 >/dev/null
assert_eq 3 "$(B snapshots "$E" | grep -c '  job  ')" "B sees A's forget"
assert_eq 3 "$(ecount)" "C sees A's forget"
assert_ok B check "$E" >/dev/null
ok
