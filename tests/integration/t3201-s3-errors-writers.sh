#!/bin/sh
# t3201-s3-errors-writers: on a real radosgw, wrong credentials, a missing
# bucket, a bad location and an endpoint nobody listens on each fail with a
# message that says so (and nothing is written); credentials come from
# AWS_PROFILE and ~/.aws/credentials as well as from the environment; two
# machines (two caches) backing up into one bucket, one after the other and
# then at the same time with --wait, lose no snapshot; the lock is a
# create-only object and a held lock makes a second writer exit 11.
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv
. "$TOP/tests/lib/ceph.sh"
ceph_start
ceph_bucket mvshared

export MAILVAULT_PASSPHRASE="s3 shared horse"
R=s3://mvshared/repo
mkdir -p "$T/a" "$T/b"
echo "mail of host a" >"$T/a/m1"
echo "mail of host b" >"$T/b/m1"

run_rc()
{
	set +e
	"$@"
	rc=$?
	set -e
}

nsnaps()
{
	"$MV" snapshots "$R" | grep -c "  $1  " || true
}

say "wrong secret key: access denied, names the bucket and the variables"
run_rc env AWS_SECRET_ACCESS_KEY=wrong "$MV" init "$R" 2>"$T/err"
cat "$T/err"
[ "$rc" != 0 ] || die "init with a wrong secret key succeeded"
assert_grep "access denied to bucket 'mvshared'" "$T/err"
assert_grep "AWS_SECRET_ACCESS_KEY" "$T/err"

say "unknown access key: access denied too"
run_rc env AWS_ACCESS_KEY_ID=NOSUCHKEY "$MV" init "$R" 2>"$T/err"
cat "$T/err"
[ "$rc" != 0 ] || die "init with an unknown access key succeeded"
assert_grep "access denied to bucket 'mvshared'" "$T/err"

say "missing bucket: says it does not exist"
run_rc "$MV" init s3://nosuchbucket/repo 2>"$T/err"
cat "$T/err"
[ "$rc" != 0 ] || die "init into a missing bucket succeeded"
assert_grep "bucket 'nosuchbucket' does not exist" "$T/err"

say "a bad location is refused before any request"
run_rc "$MV" init "s3://Bad_Bucket!/x" 2>"$T/err"
cat "$T/err"
[ "$rc" != 0 ] || die "init of a bad s3 location succeeded"
assert_grep "bad S3 location" "$T/err"

say "no credentials at all"
run_rc env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$MV" init "$R" \
	2>"$T/err"
cat "$T/err"
[ "$rc" != 0 ] || die "init without credentials succeeded"
assert_grep "no S3 credentials" "$T/err"

say "an endpoint nobody listens on: retried, then a clear error"
port=$(_ceph_free_port)
run_rc env AWS_ENDPOINT_URL_S3="http://127.0.0.1:$port" "$MV" init "$R" \
	2>"$T/err"
cat "$T/err"
[ "$rc" != 0 ] || die "init against a closed port succeeded"
assert_grep "cannot reach S3 endpoint 'http://127.0.0.1:$port'" "$T/err"
assert_grep "6 tries" "$T/err"
ceph_curl "$AWS_ENDPOINT_URL/mvshared?list-type=2" >"$T/list"
assert_no_grep '<Key>' "$T/list"

say "credentials from AWS_PROFILE and ~/.aws/credentials"
mkdir -p "$HOME/.aws"
cat >"$HOME/.aws/credentials" <<EOF
[default]
aws_access_key_id = WRONGDEFAULT
aws_secret_access_key = wrong

[ceph]
aws_access_key_id = $AWS_ACCESS_KEY_ID
aws_secret_access_key = $AWS_SECRET_ACCESS_KEY
EOF
assert_ok env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY AWS_PROFILE=ceph \
	"$MV" init "$R" >/dev/null
run_rc env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY \
	"$MV" snapshots "$R" 2>"$T/err"
[ "$rc" != 0 ] || die "the default profile's wrong keys were accepted"
assert_grep "access denied" "$T/err"

say "two machines, one after the other"
for i in 1 2; do
	echo "day $i" >>"$T/a/m1"
	echo "day $i" >>"$T/b/m1"
	XDG_CACHE_HOME=$T/cache-a assert_ok "$MV" backup "$R" --name hosta \
		--quiet --time "2024-06-0${i}T01:00:00Z" d="$T/a"
	XDG_CACHE_HOME=$T/cache-b assert_ok "$MV" backup "$R" --name hostb \
		--quiet --time "2024-06-0${i}T02:00:00Z" d="$T/b"
done
export XDG_CACHE_HOME=$T/cache-c
assert_eq 2 "$(nsnaps hosta)" "snapshots of host a"
assert_eq 2 "$(nsnaps hostb)" "snapshots of host b"

say "a held lock: the second writer exits 11 naming the holder"
printf 'host=otherhost\npid=1\ntime=%s\nboot=x\ntoken=feedface\n' \
	"$(date +%s)" >"$T/lock"
code=$(ceph_curl -o /dev/null -w '%{http_code}' -X PUT -H 'If-None-Match: *' \
	--data-binary @"$T/lock" "$AWS_ENDPOINT_URL/mvshared/repo/lock")
assert_eq 200 "$code" "PUT of a foreign lock"
code=$(ceph_curl -o /dev/null -w '%{http_code}' -X PUT -H 'If-None-Match: *' \
	--data-binary @"$T/lock" "$AWS_ENDPOINT_URL/mvshared/repo/lock")
assert_eq 412 "$code" "a second create-only PUT of the lock"
run_rc "$MV" backup "$R" --name hosta --quiet d="$T/a" 2>"$T/err"
cat "$T/err"
assert_eq 11 "$rc" "exit status of a backup into a locked repository"
assert_grep "otherhost" "$T/err"
assert_ok "$MV" unlock --force "$R" >/dev/null

say "two machines at the same time, with --wait"
for i in 3 4; do
	echo "day $i" >>"$T/a/m1"
	echo "day $i" >>"$T/b/m1"
	XDG_CACHE_HOME=$T/cache-a "$MV" backup "$R" --name hosta --quiet \
		--wait=120 --time "2024-06-0${i}T01:00:00Z" d="$T/a" \
		>"$T/outa" 2>&1 &
	pa=$!
	XDG_CACHE_HOME=$T/cache-b "$MV" backup "$R" --name hostb --quiet \
		--wait=120 --time "2024-06-0${i}T02:00:00Z" d="$T/b" \
		>"$T/outb" 2>&1 &
	pb=$!
	wait "$pa" || { cat "$T/outa"; die "backup of host a failed"; }
	wait "$pb" || { cat "$T/outb"; die "backup of host b failed"; }
done
assert_eq 4 "$(nsnaps hosta)" "snapshots of host a after concurrent runs"
assert_eq 4 "$(nsnaps hostb)" "snapshots of host b after concurrent runs"
rm -rf "$T/r"
assert_ok "$MV" restore "$R" hostb/latest:d "$T/r" >/dev/null
cmp "$T/b/m1" "$T/r/d/m1" || die "host b's latest restores other bytes"
assert_ok "$MV" check "$R" >/dev/null
ok
