#!/bin/sh
# t5035-catalogue-two-writers: catalogue segments stay right when backups
# run at the same time under shared locks (docs/LOCKING.md).  Two
# machines back up two jobs of the same mail at once (every message is
# first placed by one job's segment and named by cid in the other's), then
# one machine backs up both jobs at once into one catalog.db; a fresh
# machine and both backup hosts answer alike, with both jobs and days.
. "$(dirname "$0")/../lib/test-lib.sh"

require_mv
export MAILVAULT_PASSPHRASE="two writers"
export MAILVAULT_KDF_TEST=1
R=$T/repo
gen --out "$T/fx" --small --days 2 --seed 5035

# bk MACHINE JOB DAY: a backup in the background, its status in a file
bk()
{
	(XDG_CACHE_HOME=$T/cache-$1 "$MV" backup --quiet "$R" --name "$2" \
		--time "2024-06-0${3}T00:00:00Z" "vol=$T/fx/day$3" \
		>"$T/bk-$1-$2.out" 2>&1
	echo $? >"$T/bk-$1-$2.rc") &
}

check_bk()
{
	assert_eq 0 "$(cat "$T/bk-$1-$2.rc")" \
		"backup of $2 on $1: $(cat "$T/bk-$1-$2.out")"
}

assert_ok "$MV" init --encryption xchacha20-poly1305 "$R" >/dev/null 2>&1
say "machines a and b back up jobs one and two at once"
bk a one 1
bk b two 1
wait
check_bk a one
check_bk b two

say "again the next day, machine b for job one, a for job two"
bk b one 2
bk a two 2
wait
check_bk b one
check_bk a two

say "a fresh machine and both hosts answer alike"
for m in c a b; do
	assert_ok env XDG_CACHE_HOME="$T/cache-$m" "$MV" find "$R" --json \
		>"$T/$m.json"
done
# the same hits; of two with the same Date, the order is the order this
# machine's catalogue recorded them in, which differs between machines
# that recorded the two jobs' snapshots in another order
for m in c a b; do
	sort "$T/$m.json" >"$T/$m.sorted"
done
assert_ok cmp "$T/c.sorted" "$T/a.sorted"
assert_ok cmp "$T/c.sorted" "$T/b.sorted"
for j in one two; do
	grep -q "\"path\":\"$j/2024-06-02T000000Z/" "$T/c.json" ||
		die "day 2 of job $j not found"
done
assert_exit 0 env XDG_CACHE_HOME="$T/cache-c" "$MV" find "$R" \
	--name two --snapshot two/2024-06-01T000000Z --json >"$T/c1.json"
[ -s "$T/c1.json" ] || die "day 1 of job two not found"
ok
