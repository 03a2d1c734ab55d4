#!/bin/sh
# mount-local.sh: rsync -a of a real-like day (gen_fixture.py --profile
# realmail, LOCAL_MESSAGES messages, default 5500) out of a fresh mount of
# a local encrypted repository, next to mailvault restore of the same
# volume - the local side of the mount's read-ahead (docs/MOUNT.md): a
# remote mount reads pack ranges ahead, a local one must not get slower.
# Each figure from a fresh mount (empty chunk cache; the page cache keeps
# the packs, as on a backup host that just wrote them).  One line each:
#   local WHAT RUN SECONDS
# and the medians.  Needs root (FUSE).  Usage: sh tools/bench/mount-local.sh
# (MV_BUILD as for the tests; LOCAL_RUNS=N, default 5; LOCAL_OUT, default
# /dev/shm)
. "$(dirname "$0")/../../tests/lib/test-lib.sh"
require_mv
require_fuse
require_cmd rsync

RUNS=${LOCAL_RUNS:-5}
OUT=${LOCAL_OUT:-/dev/shm}
[ -d "$OUT" ] || OUT=$T
OUT=$(mktemp -d "$OUT/mv-local-out.XXXXXX")
at_exit "rm -rf '$OUT'"
gen --profile realmail --messages "${LOCAL_MESSAGES:-5500}" --days 1 \
	--out "$T/fx"
DAY=$T/fx/day1
export MAILVAULT_PASSPHRASE="bench the disk" MAILVAULT_KDF_TEST=1
export XDG_CACHE_HOME=$T/cache
"$MV" init "$T/repo" >/dev/null 2>&1 || die "init failed"
"$MV" backup "$T/repo" --name d --quiet --time 2024-05-01T03:00:00Z \
	v="$DAY" || die "backup failed"

now()
{
	date +%s%N
}

secs()
{
	python3 -c "print('%.2f' % (($2 - $1) / 1e9))"
}

mnt=$T/mnt
run=0
: >"$T/figures"
while [ "$run" -lt "$RUNS" ]; do
	run=$((run + 1))
	rm -rf "$OUT/rs"
	mount_mv "$T/repo" "$mnt"
	t0=$(now)
	rsync -a "$mnt/d/latest/v/" "$OUT/rs/" || die "rsync failed"
	t1=$(now)
	unmount_mv "$mnt"
	echo "local rsync $run $(secs "$t0" "$t1")" | tee -a "$T/figures"
	diff -r "$DAY" "$OUT/rs" >/dev/null || die "rsync copy differs"
	rm -rf "$OUT/rs"
	t0=$(now)
	"$MV" restore "$T/repo" d/latest:v "$OUT/rs" >/dev/null ||
		die "restore failed"
	t1=$(now)
	echo "local restore $run $(secs "$t0" "$t1")" | tee -a "$T/figures"
done
for what in rsync restore; do
	grep "^local $what " "$T/figures" | cut -d' ' -f4 | sort -n |
		awk -v w="$what" '{ v[NR] = $1 }
		END { print "local " w " median " v[int((NR + 1) / 2)] }'
done
say "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
ok
