#!/bin/sh
# t3210-s3-check-reads-packs: check --read-data of an s3:// repository
# reads each pack in a few large ranged GETs (not one GET per record, 357
# for 4 MB before) and verifies its records from memory; it downloads
# every byte of every pack from the bucket, also after a restore filled
# the local record cache.  Large ranges are read in parts at once
# (MAILVAULT_S3_GET_PART_KIB makes the parts small here), by check, by
# restore and by the mount.  A byte that rots in a pack on the server is
# found, the pack named, exit 13.  Counted with MAILVAULT_S3_STATS.
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv
require_fuse
. "$TOP/tests/lib/ceph.sh"
ceph_start
ceph_bucket mvcheck

export MAILVAULT_PASSPHRASE="check the packs"
export MAILVAULT_S3_STATS=$T/s3stats
R=s3://mvcheck/repo
gen --out "$T/fx" --small --days 1 --seed 3210

# field NAME: NAME=VALUE of the last command's request counts
field()
{
	tail -1 "$MAILVAULT_S3_STATS" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

# pack_keys: key and size of every pack object, one a line
pack_keys()
{
	ceph_curl "$AWS_ENDPOINT_URL/mvcheck?list-type=2&max-keys=1000" |
		python3 -c '
import re, sys
for c in re.findall(r"<Contents>(.*?)</Contents>", sys.stdin.read()):
    k = re.search(r"<Key>(.*?)</Key>", c).group(1)
    if k.startswith("repo/packs/"):
        print(k, re.search(r"<Size>(\d+)</Size>", c).group(1))'
}

assert_ok "$MV" init --encryption xchacha20-poly1305 "$R" >/dev/null
assert_ok "$MV" backup "$R" --name mail --quiet \
	--time 2024-06-01T00:00:00Z vol="$T/fx/day1"
pack_keys >"$T/packs"
npacks=$(wc -l <"$T/packs")
bytes=$(awk '{ s += $2 } END { print s }' "$T/packs")
say "$npacks packs, $bytes bytes in the bucket"
[ "$npacks" -ge 2 ] || die "expected at least two packs, got $npacks"

say "a restore fills the record cache; check --read-data still reads the bucket"
assert_ok "$MV" restore "$R" mail/latest:vol "$T/out" >/dev/null
assert_same_tree "$T/fx/day1" "$T/out/vol"
assert_ok "$MV" check --read-data "$R" >"$T/check"
gets=$(field get)
down=$(field down)
say "check --read-data: $gets GETs, $down bytes down"
# the config, the key slot, the commit segment, each pack's table and
# its range of records: a few GETs per pack, not one per record
[ "$gets" -le $((3 * npacks + 10)) ] ||
	die "check --read-data sent $gets GETs for $npacks packs"
[ "$down" -ge "$bytes" ] ||
	die "check --read-data downloaded $down bytes of $bytes in the packs"

say "parts of 64 KiB: check, restore and the mount read large ranges in parts"
export MAILVAULT_S3_GET_PART_KIB=64
assert_ok "$MV" check --read-data "$R" >/dev/null
parts=$(field get)
[ "$parts" -gt "$gets" ] ||
	die "64 KiB parts took $parts GETs, whole ranges $gets"
rm -rf "$T/out" "$XDG_CACHE_HOME"
assert_ok "$MV" restore "$R" mail/latest:vol "$T/out" >/dev/null
assert_same_tree "$T/fx/day1" "$T/out/vol"
rm -rf "$XDG_CACHE_HOME"
mount_mv "$R" "$T/mnt"
diff -r "$T/fx/day1" "$T/mnt/mail/latest/vol" >/dev/null ||
	die "the mount reads other bytes with 64 KiB parts"
unmount_mv "$T/mnt"
unset MAILVAULT_S3_GET_PART_KIB

say "a byte of the largest pack rots in the bucket"
key=$(sort -k2 -n "$T/packs" | tail -1 | cut -d' ' -f1)
ceph_curl -o "$T/pack" "$AWS_ENDPOINT_URL/mvcheck/$key"
python3 - "$T/pack" <<'PY'
import sys
p = sys.argv[1]
with open(p, 'r+b') as f:
    f.seek(0, 2)
    n = f.tell()
    f.seek(n // 2)
    b = f.read(1)
    f.seek(n // 2)
    f.write(bytes([b[0] ^ 0x5a]))
PY
code=$(ceph_curl -o /dev/null -w '%{http_code}' -X PUT \
	--data-binary @"$T/pack" "$AWS_ENDPOINT_URL/mvcheck/$key")
assert_eq 200 "$code" "PUT of the rotten pack"

say "check --read-data finds it and names the pack"
rc=0
"$MV" check --read-data "$R" >"$T/check" 2>&1 || rc=$?
cat "$T/check"
assert_eq 13 "$rc" "check --read-data exit status"
assert_grep "$(basename "$key" | cut -c1-12)" "$T/check"
ok
