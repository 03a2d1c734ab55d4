#!/bin/sh
# t3202-s3-faults: between mailvault and a real radosgw, a proxy answers
# 503 SlowDown, resets the connection in the middle of a pack's upload, and
# loses the reply to a pack's upload that went through; each time the
# backup is retried with backoff, succeeds, leaves no partial object and
# restores byte-exact.  A server that keeps answering 503 fails the backup
# with a message naming the status, and no snapshot is written.
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv
require_cmd python3
. "$TOP/tests/lib/ceph.sh"
ceph_start
ceph_bucket mvfaults

export MAILVAULT_PASSPHRASE="s3 fault horse"
export MAILVAULT_S3_STATS=$T/s3stats
R=s3://mvfaults/repo
mkdir -p "$T/src"
head -c 1500000 /dev/urandom >"$T/src/blob1"
echo "a message" >"$T/src/m1"
assert_ok "$MV" init "$R" >/dev/null

# proxy MODE COUNT: start the fault proxy and point AWS_ENDPOINT_URL_S3 at it
proxy()
{
	rm -f "$T/port"
	bg python3 "$TOP/tests/lib/s3fault.py" "$T/port" "$CEPH_RGW_PORT" \
		"$1" "$2" "$T/proxy-$1.log"
	i=0
	until [ -s "$T/port" ]; do
		i=$((i + 1))
		[ $i -lt 100 ] || die "the fault proxy did not start"
		sleep 0.1
	done
	AWS_ENDPOINT_URL_S3=http://127.0.0.1:$(cat "$T/port")
	export AWS_ENDPOINT_URL_S3
}

# backup_day N: one more backup with changed content, restored exact
backup_day()
{
	head -c 1500000 /dev/urandom >"$T/src/blob$1"
	assert_ok "$MV" backup "$R" --name j --quiet \
		--time "2024-06-0$1T00:00:00Z" d="$T/src"
	rm -rf "$T/out"
	assert_ok "$MV" restore "$R" j/latest:d "$T/out" >/dev/null
	diff -r "$T/src" "$T/out/d" || die "day $1 restores other bytes"
}

# retries: the retries of the last command
retries()
{
	tail -1 "$MAILVAULT_S3_STATS" | sed 's/.*retries=\([0-9]*\).*/\1/'
}

say "503 SlowDown on the first three requests: retried with backoff"
proxy slowdown 3
assert_ok "$MV" backup "$R" --name j --quiet \
	--time 2024-06-01T00:00:00Z d="$T/src"
[ "$(retries)" -ge 3 ] || die "3 SlowDown replies, $(retries) retries"
assert_eq 3 "$(grep -c -- '-> 503' "$T/proxy-slowdown.log")" "503 replies"
unset AWS_ENDPOINT_URL_S3

say "a connection reset in the middle of a pack's upload"
proxy reset-put 1
backup_day 2
assert_grep 'reset mid-body' "$T/proxy-reset-put.log"
unset AWS_ENDPOINT_URL_S3

say "the reply to a pack's upload is lost: the retry finds its own pack"
proxy lost-reply 1
backup_day 3
assert_grep 'reply lost' "$T/proxy-lost-reply.log"
unset AWS_ENDPOINT_URL_S3

say "nothing partial: every pack is whole"
assert_ok "$MV" check --read-data "$R" >"$T/check"
ceph_curl "$AWS_ENDPOINT_URL/mvfaults?uploads" >"$T/uploads"
assert_no_grep '<UploadId>' "$T/uploads"
assert_eq 3 "$("$MV" snapshots "$R" | grep -c '  j  ' || true)" "snapshots"

say "a server that keeps answering 503: a clear failure, no snapshot"
proxy slowdown 1000
set +e
"$MV" backup "$R" --name j --quiet --time 2024-06-04T00:00:00Z \
	d="$T/src" 2>"$T/err"
rc=$?
set -e
cat "$T/err"
[ "$rc" != 0 ] || die "a backup through a server answering 503 succeeded"
assert_grep 'kept failing .*6 tries, last HTTP 503' "$T/err"
unset AWS_ENDPOINT_URL_S3
assert_eq 3 "$("$MV" snapshots "$R" | grep -c '  j  ' || true)" \
	"snapshots after the failed backup"
ok
