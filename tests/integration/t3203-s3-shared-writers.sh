#!/bin/sh
# t3203-s3-shared-writers: on a real radosgw, two machines (two caches)
# back up into one encrypted s3:// repository truly at the same time, each
# holding its own shared lock object (locks/NAME, a create-only PUT) while
# the other writes; both snapshots are there, both restore byte-exact,
# check --read-data is clean.  prune is refused with exit 11 while they
# write and waits with --wait; a shared lock of another machine keeps
# prune out, not backups, until unlock --force (docs/LOCKING.md, S3.md).
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv
. "$TOP/tests/lib/ceph.sh"
ceph_start
ceph_bucket mvwriters

set -e
export MAILVAULT_PASSPHRASE="s3 two writers"
R=s3://mvwriters/repo
gen --out "$T/fx" --small --days 2 --seed 3203
host=$(hostname)

run_rc()
{
	set +e
	"$@"
	rc=$?
	set -e
}

# locks: the shared lock objects, one key a line
locks()
{
	ceph_curl "$AWS_ENDPOINT_URL/mvwriters?list-type=2&prefix=repo%2Flocks%2F" |
		tr '<' '\n' | sed -n 's/^Key>//p'
}

nlocks()
{
	locks | grep -c '^repo/locks/[0-9a-f]\{32\}$' || true
}

count_snaps()
{
	"$MV" snapshots "$R" | grep -c "  $1  " || true
}

XDG_CACHE_HOME=$T/cache-c assert_ok "$MV" init \
	--encryption xchacha20-poly1305 "$R" >/dev/null

say "two hosts back up at the same time"
mkfifo "$T/fa" "$T/fb"
XDG_CACHE_HOME=$T/cache-a "$MV" backup "$R" --name hosta --quiet \
	--time 2024-06-01T01:00:00Z vol=- <"$T/fa" >"$T/outa" 2>&1 &
pa=$!
XDG_CACHE_HOME=$T/cache-b "$MV" backup "$R" --name hostb --quiet \
	--time 2024-06-01T02:00:00Z vol=- <"$T/fb" >"$T/outb" 2>&1 &
pb=$!
exec 3>"$T/fa" 4>"$T/fb"
n=0
while [ "$(nlocks)" -lt 2 ] && [ "$n" -lt 300 ]; do
	sleep 0.1
	n=$((n + 1))
done
assert_eq 2 "$(nlocks)" "shared lock objects while both write"

say "prune is refused while they write, and waits with --wait"
run_rc env XDG_CACHE_HOME="$T/cache-c" "$MV" prune "$R" 2>"$T/err"
cat "$T/err"
assert_eq 11 "$rc" "exit status of prune during two backups"
assert_grep "shared lock" "$T/err"
assert_grep "on host '$host'" "$T/err"
XDG_CACHE_HOME=$T/cache-c "$MV" prune --wait "$R" >"$T/outp" 2>&1 3>&- 4>&- &
pp=$!

say "both finish"
tar --format=posix -cf - -C "$T/fx/day1" . >&3
tar --format=posix -cf - -C "$T/fx/day2" . >&4
exec 3>&- 4>&-
wait "$pa" || {
	cat "$T/outa"
	die "backup of host a failed"
}
wait "$pb" || {
	cat "$T/outb"
	die "backup of host b failed"
}
wait "$pp" || {
	cat "$T/outp"
	die "prune --wait failed"
}
assert_eq 0 "$(nlocks)" "shared locks left"

export XDG_CACHE_HOME=$T/cache-fresh
assert_eq 1 "$(count_snaps hosta)" "snapshots of host a"
assert_eq 1 "$(count_snaps hostb)" "snapshots of host b"
assert_ok "$MV" restore "$R" hosta/latest:vol "$T/out/a" >/dev/null
assert_ok "$MV" restore "$R" hostb/latest:vol "$T/out/b" >/dev/null
assert_same_tree "$T/fx/day1" "$T/out/a/vol"
assert_same_tree "$T/fx/day2" "$T/out/b/vol"
assert_ok "$MV" check "$R" --read-data >"$T/check" 2>&1 || {
	cat "$T/check"
	die "check --read-data after two writers"
}

say "another machine's shared lock keeps prune out, not backups"
tok=00112233445566778899aabbccddeeff
printf 'host=nas\npid=1234\ntime=%s\nboot=x\ntoken=%s\n' "$(date +%s)" \
	"$tok" >"$T/lock"
code=$(ceph_curl -o /dev/null -w '%{http_code}' -X PUT -H 'If-None-Match: *' \
	--data-binary @"$T/lock" "$AWS_ENDPOINT_URL/mvwriters/repo/locks/$tok")
assert_eq 200 "$code" "PUT of a foreign shared lock"
assert_ok "$MV" backup "$R" --name hosta --quiet \
	--time 2024-06-02T01:00:00Z d="$T/fx/day2"
run_rc "$MV" prune "$R" 2>"$T/err"
cat "$T/err"
assert_eq 11 "$rc" "exit status of prune with another machine's lock"
assert_grep "on host 'nas'" "$T/err"
assert_ok "$MV" unlock --force "$R" >"$T/out.unlock"
assert_grep "\(shared\)" "$T/out.unlock"
assert_grep "^lock removed$" "$T/out.unlock"
assert_eq 0 "$(nlocks)" "locks after unlock --force"
assert_ok "$MV" prune "$R" >/dev/null
assert_eq 2 "$(count_snaps hosta)" "snapshots of host a at the end"
ok
