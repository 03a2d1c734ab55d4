#!/bin/sh
# t4028-ssh-stream-upload: a pack that grows past 4 MiB is uploaded while
# the backup builds it, by a thread on an SSH session of its own
# (docs/REMOTE.md, "Uploads while the pack is built").  The metadata pack
# is sent meanwhile and renamed into place only after the data pack.  Its
# bytes and the snapshot restore exactly, and the server syncs every pack and the index
# (the fsync and the close of an upload go out together); a backup whose input breaks while a pack is
# streaming leaves no snapshot, no temporary file on the server and a
# clean repository; a connection killed in the middle of the stream is
# retried (or the backup fails cleanly) and every snapshot still
# restores byte-exact.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"
. "$TOP/tests/fault/fault-lib.sh"
require_mv
require_faults

sshd_start
# faults on the server: tests/fault/fault-lib.sh
sshd_fault_shim
R=sftp://root@127.0.0.1:$SSHD_PORT$T/repo

# incompressible files: the data pack passes 4 MiB after about 4 MiB
mkdir -p "$T/big/a" "$T/big/b"
head -c 6000000 /dev/urandom >"$T/big/a/one"
head -c 5000000 /dev/urandom >"$T/big/b/two"
echo small >"$T/big/b/three"
tree_digest "$T/big" >"$T/big.digest"

assert_ok "$MV" init --encryption none "$R" >/dev/null 2>&1

say "a streamed upload"
# the server syncs every file it is sent (fsync and close go out
# together, fsync first)
echo "fsync:$T/repo/*:count:kill" >"$T/rules"
rm -f "$T/srv.log"
MAILVAULT_SFTP_TRACE=$T/trace "$MV" backup "$R" --name big --quiet \
	data="$T/big" || die "backup failed"
: >"$T/rules"
nsync=$(grep -c ' fsync .*packs/.*\.tmp-' "$T/srv.log" || true)
[ "$nsync" -ge 2 ] || die "packs not synced on the server: $nsync"
grep -q ' fsync .*index\.db\.tmp-' "$T/srv.log" ||
	die "index not synced on the server: $(cat "$T/srv.log")"
grep -q 'upload stream packs/' "$T/trace" ||
	die "no pack was streamed: $(grep upload "$T/trace")"
grep -Eq 'upload done packs/.* 0\+[0-9]{8}' "$T/trace" ||
	die "no large pack finished: $(grep upload "$T/trace")"
# the metadata pack (it holds the snapshot record) is sent while the
# data pack's stream finishes, and published only after it (invariant 2)
data_done=$(grep -n 'upload done packs/.* 0+[0-9]\{8\}' "$T/trace" |
	head -n 1 | cut -d: -f1)
meta_sent=$(grep -n 'upload (after) packs/' "$T/trace" | head -n 1 | cut -d: -f1)
meta_done=$(grep -n 'upload done packs/' "$T/trace" | tail -n 1 | cut -d: -f1)
[ -n "$meta_sent" ] || die "the metadata pack was not sent beside the stream: $(grep upload "$T/trace")"
[ "$meta_sent" -lt "$data_done" ] && [ "$data_done" -lt "$meta_done" ] ||
	die "metadata pack not sent during the stream, or published before the data pack: $(grep upload "$T/trace")"
rm -rf "$T/out"
assert_ok "$MV" restore "$R" big/latest:data "$T/out" >/dev/null
tree_digest "$T/out/data" >"$T/out.digest"
cmp -s "$T/big.digest" "$T/out.digest" || die "the streamed snapshot differs"
snap_ref "$R"

no_tmp()
{
	left=$(find "$T/repo" -name '*.tmp-*' | head -n 3)
	[ -z "$left" ] || die "$1: temporary files left on the server: $left"
}

say "the input breaks while the pack streams"
# a tar.gz cut in the middle of its second file
mkdir -p "$T/t"
head -c 7000000 /dev/urandom >"$T/t/x"
head -c 7000000 /dev/urandom >"$T/t/y"
tar -czf "$T/t.tgz" -C "$T" t
head -c 11000000 "$T/t.tgz" >"$T/cut.tgz"
rc=0
MAILVAULT_SFTP_TRACE=$T/trace.cut "$MV" backup "$R" --name cut --quiet \
	vol="$T/cut.tgz" 2>"$T/cut.err" || rc=$?
sed 's/^/# backup: /' "$T/cut.err"
[ "$rc" != 0 ] || die "a backup of a cut tar.gz succeeded"
# the message names the input, where it broke, and that nothing was kept
assert_grep "cut\.tgz.*truncated at compressed byte 11000000" "$T/cut.err"
assert_grep 'no snapshot was written' "$T/cut.err"
grep -q 'upload stream packs/' "$T/trace.cut" ||
	die "the cut backup did not stream a pack"
"$MV" snapshots "$R" >"$T/snaps" || die "snapshots after the failure"
assert_no_grep ' cut ' "$T/snaps"
no_tmp "cut input"
verify_repo "$R" "cut input"

say "the connection dies in the middle of the stream"
# new content (the first files are stored already)
mkdir -p "$T/big2"
head -c 9000000 /dev/urandom >"$T/big2/three"
tree_digest "$T/big2" >"$T/big2.digest"
MAILVAULT_SFTP_TRACE=$T/trace.drop
export MAILVAULT_SFTP_TRACE
killed_backup "$R" "write:$T/repo/packs/*.tmp-*:nth=60:killparent" \
	"$T/big2" "$T/big2.digest" "dropped stream"
unset MAILVAULT_SFTP_TRACE
grep -q 'upload stream packs/' "$T/trace.drop" ||
	die "the dropped backup did not stream a pack"
ok
