#!/bin/sh
# t5034-catalogue-base-every: FORMAT-2 section 3, "with more than 64
# segments since the last base, the next backup writes a new base".
# MAILVAULT_CATSEG_BASE_EVERY=4 stands for 64 (66 backups took 3 minutes
# on the shared machine; MV_BASE_EVERY=64 runs the real count, 65): into an
# encrypted repository the first 4 backups write a delta each (4
# segments), the 5th its delta and then a base in place of all the
# others (2 segments: its own delta stays until the next base, in case a
# base another machine made at the same time wins); a fresh machine
# finds what the backup host finds, and the next backup adds a delta on
# top of the new base.
. "$(dirname "$0")/../lib/test-lib.sh"

require_mv
export MAILVAULT_PASSPHRASE="base every 64"
export MAILVAULT_KDF_TEST=1
export XDG_CACHE_HOME=$T/cache-host
N=${MV_BASE_EVERY:-4}
[ "$N" = 64 ] || export MAILVAULT_CATSEG_BASE_EVERY=$N
R=$T/repo
gen --out "$T/fx" --small --messages 20 --users 1 --days 2 --seed 5034

nsegs()
{
	find "$R/catalog" -type f | wc -l
}

backup()
{
	_t=$(python3 -c "import sys; n = int(sys.argv[1]);
print('2024-%02d-%02dT%02d:00:00Z' % (1 + n // 28, 1 + n % 28, n % 24))" "$1")
	assert_ok "$MV" backup --quiet "$R" --name mail --time "$_t" \
		"vol=$T/fx/day$2"
}

assert_ok "$MV" init --encryption xchacha20-poly1305 "$R" >/dev/null 2>&1
say "$N backups: $N deltas"
i=1
while [ "$i" -le "$N" ]; do
	backup "$i" $((1 + i % 2))
	i=$((i + 1))
done
assert_eq "$N" "$(nsegs)" "segments after $N backups"

say "the next one: a new base in place of every segment but its own"
backup $((N + 1)) 1
assert_eq 2 "$(nsegs)" "segments after $((N + 1)) backups"
assert_ok "$MV" find "$R" --json >"$T/host.json"
[ "$(wc -l <"$T/host.json")" -gt 10 ] || die "too few hits"
assert_ok env XDG_CACHE_HOME="$T/cache-fresh" "$MV" find "$R" --json \
	>"$T/fresh.json"
assert_ok cmp "$T/host.json" "$T/fresh.json"

say "the next backup follows on from it"
backup $((N + 2)) 2
assert_eq 3 "$(nsegs)" "segments after $((N + 2)) backups"
assert_ok "$MV" find "$R" --json >"$T/host2.json"
assert_ok env XDG_CACHE_HOME="$T/cache-fresh2" "$MV" find "$R" --json \
	>"$T/fresh2.json"
assert_ok cmp "$T/host2.json" "$T/fresh2.json"
ok
