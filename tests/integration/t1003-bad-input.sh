#!/bin/sh
# t1003-bad-input: truncated or corrupt gzip, random bytes, an empty
# stream, a tar cut mid-member: a clear error naming the input, entry and
# offset, a non-zero exit, no snapshot, earlier snapshots intact; with
# --partial what was read is committed and marked partial.
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv

R=$T/repo
gen --small --days 1 --tar --out "$T/fx"
good=$T/fx/day1.tar.gz
assert_ok "$MV" init "$R"
assert_ok "$MV" backup "$R" --name mail volume="$good"
"$MV" snapshots "$R" >"$T/snaps-before"

sz=$(stat -c %s "$good")
head -c $((sz / 2)) "$good" >"$T/trunc.tgz"
# corrupt bytes at several places: in file data (caught by the CRC at
# the end) and where they break the tar structure
for i in 1 2 3 4 5; do
	cp "$good" "$T/corrupt$i.tgz"
	printf '\125\252' | dd of="$T/corrupt$i.tgz" bs=1 \
		seek=$((sz * i / 6)) conv=notrunc 2>/dev/null
done
head -c 200000 /dev/urandom >"$T/random.bin"
gzip -dc "$good" >"$T/plain.tar"
tsz=$(stat -c %s "$T/plain.tar")
head -c $((tsz / 2 + 700)) "$T/plain.tar" >"$T/trunc.tar"
: >"$T/empty"

# bad_backup NAME PATTERN ARGS...: the backup must fail with PATTERN in
# its message, exit 1, and leave the snapshots as they were
bad_backup()
{
	_n=$1
	_pat=$2
	shift 2
	set +e
	"$MV" backup "$R" --name bad "$@" >"$T/$_n.out" 2>"$T/$_n.err"
	_rc=$?
	set -e
	cat "$T/$_n.err"
	assert_eq 1 "$_rc" "exit code of the backup of $_n"
	assert_grep "$_pat" "$T/$_n.err"
	assert_grep 'no snapshot was written' "$T/$_n.err"
	"$MV" snapshots "$R" >"$T/snaps"
	cmp -s "$T/snaps-before" "$T/snaps" ||
		die "the snapshot list changed after the failed backup of $_n"
}

say "truncated gzip"
bad_backup trunc "cannot read '.*trunc\.tgz': gzip stream truncated at compressed byte [0-9]+: entry 'v/" \
	v="$T/trunc.tgz"
say "truncated gzip on stdin"
bad_backup trunc-stdin "cannot read 'v=-': gzip stream truncated at compressed byte [0-9]+" \
	v=- <"$T/trunc.tgz"
for i in 1 2 3 4 5; do
	say "corrupt gzip $i"
	bad_backup "corrupt$i" "cannot read '.*corrupt$i\.tgz': .*(gzip data corrupt at compressed byte [0-9]+|Damaged tar archive after [0-9]+ entries \(archive byte [0-9]+\))" \
		v="$T/corrupt$i.tgz"
done
say "random bytes"
# a file that is no archive is kept as a file (mailvault(1), backup), as
# borg and restic keep any file; a stream of them is refused
assert_ok "$MV" backup "$R" --name rnd v="$T/random.bin" >/dev/null
"$MV" cat "$R" rnd/latest:v/random.bin | cmp - "$T/random.bin"
"$MV" snapshots "$R" >"$T/snaps-before"
bad_backup random-stdin "cannot read 'v=-'" v=- <"$T/random.bin"
say "empty input"
bad_backup empty "cannot read 'v=-': input is empty" v=- <"$T/empty"
bad_backup empty-file "cannot read '.*empty': input is empty" v="$T/empty"
say "tar cut in the middle of a member"
bad_backup trunc-tar "cannot read '.*trunc\.tar': entry 'v/[^']+' \(archive byte [0-9]+\): Truncated tar archive" \
	v="$T/trunc.tar"
say "a good source with a bad one: nothing of either is kept"
bad_backup mixed "cannot read '.*trunc\.tgz'" ok="$good" v="$T/trunc.tgz"

say "earlier snapshots intact"
assert_ok "$MV" check --read-data "$R"
mkdir "$T/out" "$T/ref"
assert_ok "$MV" restore "$R" mail/latest:volume "$T/out"
tar -xzf "$good" -C "$T/ref"
assert_same_tree "$T/ref" "$T/out/volume" -x mtime

say "--partial commits what was read, marked partial"
set +e
"$MV" backup "$R" --name part --partial v="$T/trunc.tgz" >"$T/p.out" \
	2>"$T/p.err"
rc=$?
set -e
cat "$T/p.out" "$T/p.err"
[ "$rc" != 0 ] || die "a partial backup must not exit 0"
assert_grep 'gzip stream truncated' "$T/p.err"
assert_grep 'PARTIAL' "$T/p.err"
"$MV" snapshots "$R" >"$T/snaps"
assert_grep '^[0-9a-f]+ +part +[0-9TZ-]+\.partial .*PARTIAL' "$T/snaps"
"$MV" snapshots --json "$R" >"$T/snaps.json"
assert_grep '"name":"part",[^}]*"partial":true' "$T/snaps.json"
"$MV" ls "$R" part/latest:v >"$T/ls-part"
[ -s "$T/ls-part" ] || die "the partial snapshot holds nothing"
# what it holds is what the first half of the archive holds
n=$(gzip -dc "$T/trunc.tgz" 2>/dev/null | tar -tf - 2>/dev/null |
	grep -c '[^/]$' || true)
assert_grep 'PARTIAL' "$T/p.err"
say "partial snapshot: $n files readable in the truncated input"
mkdir "$T/pout"
assert_ok "$MV" restore "$R" part/latest:v "$T/pout"
got=$(find "$T/pout/v" -type f | wc -l)
[ "$got" -ge $((n - 1)) ] && [ "$got" -le "$n" ] ||
	die "partial snapshot has $got files, the input $n"
assert_ok "$MV" check --read-data "$R"
ok
