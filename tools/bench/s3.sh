#!/bin/sh
# s3.sh: the S3 phase of `make bench` (issue 20).  A private Ceph
# (tests/lib/ceph.sh: one monitor, one OSD on memstore, radosgw on
# loopback) holds an encrypted repository at s3://mvbench/repo with one
# real-like day of mail (gen_fixture.py --profile realmail, S3_MESSAGES
# messages, default 20000: about 110 MB of mail in 20,000 files, a
# repository of some 40 MB - well inside memstore's 1 GiB).  Measured,
# each from an empty local cache:
#
#   backup   the day's directory into the bucket
#   restore  mailvault restore of the whole volume
#   rsync    rsync -a of the whole volume out of a fresh mount
#   rsync-warm  the same again from that mount once every chunk is in its
#            cache (-o cache_size=512): what the mount itself costs
#   one      a fresh mount, then one message read (cmp)
#   find     mailvault find --from ADDRESS
#   check    mailvault check --read-data
#
# with the requests each sent, by class (MAILVAULT_S3_STATS).  The issue's
# target: rsync from the mount within 1.5x of mailvault restore.  Both
# write into S3_OUT (default /dev/shm: the disks of a shared machine add
# seconds of noise to 20,000 file creations).  One line per figure on
# stdout:
#   s3 WHAT SECONDS get=N head=N put=N list=N delete=N retries=N up=B down=B
# and at the end
#   s3 target rsync/restore RATIO (ok|MISSED, target 1.5)
# Needs root (Ceph, FUSE).  Usage: sh tools/bench/s3.sh  (MV_BUILD as for
# the tests; S3_RUNS=N runs of restore, rsync and one, the median kept;
# S3_MESSAGES=N)
. "$(dirname "$0")/../../tests/lib/test-lib.sh"
require_mv
require_fuse
require_cmd rsync
. "$TOP/tests/lib/ceph.sh"

RUNS=${S3_RUNS:-3}
OUT=${S3_OUT:-/dev/shm}
[ -d "$OUT" ] || OUT=$T
OUT=$(mktemp -d "$OUT/mv-s3-out.XXXXXX")
at_exit "rm -rf '$OUT'"
say "generating the day ($(date -u +%H:%M:%S))"
gen --profile realmail --messages "${S3_MESSAGES:-20000}" --days 1 \
	--out "$T/fx"
DAY=$T/fx/day1
say "input: $(find "$DAY" -type f | wc -l) files, $(du -sm "$DAY" | cut -f1) MiB"
msg=$(cd "$DAY" && find . -path '*/cur/*' -type f | sort | tail -n 1)
msg=${msg#./}
from=$(grep -i -m1 '^From:' "$DAY/$msg" | tr -d '\r' |
	sed -n 's/.*<\([^>]*@[^>]*\)>.*/\1/p')

ceph_start
ceph_bucket mvbench
export MAILVAULT_PASSPHRASE="bench the bucket"
export XDG_CACHE_HOME=$T/cache
export MAILVAULT_S3_STATS=$T/s3stats
: >"$MAILVAULT_S3_STATS"
R=s3://mvbench/repo

now()
{
	date +%s%N
}

fresh()
{
	rm -rf "$XDG_CACHE_HOME"
}

# stats_wait N: wait (up to 10 s) until the stats file has N lines - a
# mount writes its counts when it closes, just after the unmount
stats_wait()
{
	_i=0
	while [ "$(wc -l <"$MAILVAULT_S3_STATS")" -lt "$1" ] && [ $_i -lt 100 ]; do
		sleep 0.1
		_i=$((_i + 1))
	done
}

# figure WHAT T0 T1: one line, with the last command's requests
figure()
{
	printf 's3 %s %s %s\n' "$1" \
		"$(python3 -c "print('%.2f' % (($3 - $2) / 1e9))")" \
		"$(tail -1 "$MAILVAULT_S3_STATS")" | tee -a "$T/figures"
}

# median WHAT: the median seconds of the figures of WHAT
median()
{
	grep "^s3 $1 " "$T/figures" | cut -d' ' -f3 | sort -n |
		awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

assert_ok "$MV" init --encryption xchacha20-poly1305 "$R" >/dev/null
say "backup of the day"
t0=$(now)
"$MV" backup "$R" --name d --quiet --time 2024-05-01T03:00:00Z v="$DAY" ||
	die "mailvault backup failed"
t1=$(now)
figure backup "$t0" "$t1"
ceph_curl "$AWS_ENDPOINT_URL/mvbench?list-type=2&max-keys=1000" |
	python3 -c '
import re, sys
for c in re.findall(r"<Contents>(.*?)</Contents>", sys.stdin.read()):
    if "<Key>repo/packs/" in c:
        print(re.search(r"<Size>(\d+)</Size>", c).group(1))' >"$T/packsizes"
say "bucket: $(wc -l <"$T/packsizes") packs, $(awk '{ s += $1 } END \
{ printf "%.1f", s / 1048576 }' "$T/packsizes") MiB"

mnt=$T/mnt
run=0
while [ "$run" -lt "$RUNS" ]; do
	run=$((run + 1))
	say "run $run: restore of the volume, fresh cache"
	fresh
	rm -rf "$OUT/rs"
	t0=$(now)
	"$MV" restore "$R" d/latest:v "$OUT/rs" >/dev/null ||
		die "mailvault restore failed"
	t1=$(now)
	figure restore "$t0" "$t1"
	diff -r "$DAY" "$OUT/rs/v" >/dev/null || die "restore differs"

	say "run $run: rsync -a of the volume from a fresh mount"
	fresh
	rm -rf "$OUT/rs"
	mount_mv "$R" "$mnt"
	n=$(wc -l <"$MAILVAULT_S3_STATS")
	t0=$(now)
	rsync -a "$mnt/d/latest/v/" "$OUT/rs/" || die "rsync failed"
	t1=$(now)
	unmount_mv "$mnt"
	stats_wait $((n + 1))
	figure rsync "$t0" "$t1"
	diff -r "$DAY" "$OUT/rs" >/dev/null || die "rsync copy differs"

	say "run $run: fresh mount + one message"
	fresh
	n=$(wc -l <"$MAILVAULT_S3_STATS")
	t0=$(now)
	mount_mv "$R" "$mnt"
	cmp "$mnt/d/latest/v/$msg" "$DAY/$msg" || die "message differs"
	t1=$(now)
	unmount_mv "$mnt"
	stats_wait $((n + 2))
	figure one "$t0" "$t1"
done

say "rsync -a from a mount whose cache holds every chunk"
fresh
rm -rf "$OUT/rs"
mount_mv "$R" "$mnt" -o cache_size=512
rsync -a "$mnt/d/latest/v/" "$OUT/rs/" || die "rsync failed"
rm -rf "$OUT/rs"
n=$(wc -l <"$MAILVAULT_S3_STATS")
t0=$(now)
rsync -a "$mnt/d/latest/v/" "$OUT/rs/" || die "rsync failed"
t1=$(now)
unmount_mv "$mnt"
stats_wait $((n + 1))
figure rsync-warm "$t0" "$t1"
rm -rf "$OUT/rs"

say "find --from $from, fresh cache"
fresh
t0=$(now)
"$MV" find "$R" --from "$from" >"$T/find" || die "mailvault find failed"
t1=$(now)
figure find "$t0" "$t1"
[ -s "$T/find" ] || die "find found nothing from $from"

say "check --read-data"
t0=$(now)
"$MV" check --read-data "$R" >/dev/null || die "check --read-data failed"
t1=$(now)
figure check "$t0" "$t1"

grep -E '^s3 (restore|rsync) ' "$T/figures" | cut -d' ' -f3 | paste - - |
	awk '{ printf "s3 run %d rsync/restore %.2f\n", NR, $2 / $1 }'
say "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
rst=$(median restore)
rsy=$(median rsync)
python3 - "$rst" "$rsy" <<'PY'
import sys
rst, rsy = float(sys.argv[1]), float(sys.argv[2])
r = rsy / rst if rst > 0 else float("inf")
print("s3 target rsync/restore %.2f (%s, target 1.5; medians %.2f s / %.2f s)"
      % (r, "ok" if r <= 1.5 else "MISSED", rsy, rst))
PY
say "ceph started in $CEPH_START_MS ms"
ok
