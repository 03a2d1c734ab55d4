#!/bin/sh
# t3104-remote-interrupted: a backup into sftp:// whose server goes away
# mid-upload fails with no snapshot; the next backup reuses the packs that
# were uploaded; a dropped session (not the server) is retried and the
# backup completes.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"

sshd_start
sshd_trust
MAILVAULT_SSH_RETRY_MS=100
export MAILVAULT_SSH_RETRY_MS
R=sftp://root@127.0.0.1:$SSHD_PORT$T/repo
assert_ok "$MV" init -i "$SSH_KEY" "$R"

# 320 MB that does not compress: ten 32 MiB data packs
mkdir "$T/src"
for i in 0 1 2 3 4 5 6 7 8 9; do
	head -c 32000000 /dev/urandom >"$T/src/f$i"
done
total=$(cat "$T/src"/f* | wc -c)

packs()
{
	find "$T/repo/packs" -type f -size +1M ! -name '*.tmp-*' 2>/dev/null |
		wc -l
}

say "the server goes away after three packs: no snapshot"
"$MV" backup -i "$SSH_KEY" "$R" --name vol --json d="$T/src" \
	>"$T/out1" 2>"$T/err1" &
pid=$!
n=0
while [ "$(packs)" -lt 3 ]; do
	n=$((n + 1))
	[ "$n" -lt 600 ] || die "no pack uploaded after 60 s"
	kill -0 "$pid" 2>/dev/null || die "backup ended early: $(cat "$T/err1")"
	sleep 0.1
done
sshd_stop
set +e
wait "$pid"
rc=$?
set -e
[ "$rc" = 1 ] || die "backup exit $rc, want 1: $(cat "$T/err1")"
assert_grep "connection lost|cannot connect|gave up" "$T/err1"
assert_grep "no snapshot was written" "$T/err1"
kept=$(packs)
say "$kept packs stayed on the server"
[ "$kept" -ge 3 ] || die "only $kept packs kept"

sshd_restart
"$MV" snapshots -i "$SSH_KEY" "$R" >"$T/snaps"
assert_no_grep "vol" "$T/snaps"

say "its lock stays on the server: refused (exit 11) until unlocked"
# a remote lock is never broken automatically: another machine, or a
# container of the same name, may hold it (docs/REMOTE.md)
[ -f "$T/repo/lock" ] || die "the failed backup left no lock"
set +e
"$MV" backup -i "$SSH_KEY" "$R" --name vol --quiet d="$T/src" 2>"$T/err"
rc=$?
set -e
assert_eq 11 "$rc" "exit status with the server's lock in place"
assert_grep "mailvault unlock" "$T/err"
assert_ok "$MV" unlock -i "$SSH_KEY" --force "$R" >/dev/null
say "the next backup stores only what did not make it"
assert_ok "$MV" backup -i "$SSH_KEY" "$R" --name vol --json d="$T/src" \
	>"$T/out2"
stored=$(python3 -c 'import json,sys
print(json.load(open(sys.argv[1]))["bytes_stored"])' "$T/out2")
say "second run stored $stored of $total bytes"
# three 32 MiB packs were there: at least 90 MB less than the data
[ "$stored" -lt $((total - 90000000)) ] ||
	die "second run stored $stored of $total bytes: packs not reused"
# The pack that was in flight when the server went away may remain as a
# partial ".tmp-" upload; it is garbage for prune, not data stored twice.
pack_bytes=$(find "$T/repo/packs" -type f ! -name '*.tmp-*' -printf '%s\n' |
	awk '{ s += $1 } END { print s + 0 }')
say "complete packs on the server: $pack_bytes bytes for $total bytes of data"
[ "$pack_bytes" -lt $((total + total / 20)) ] ||
	die "the server holds $pack_bytes bytes in packs: data uploaded twice"
assert_ok "$MV" check -i "$SSH_KEY" "$R"
say "prune removes what the interrupted upload left"
# as it is once prune's grace period for unindexed files has passed
find "$T/repo/packs" -type f -exec touch -d '2 hours ago' {} +
assert_ok "$MV" prune -i "$SSH_KEY" "$R" >"$T/prune" 2>&1
left=$(find "$T/repo/packs" -name '*.tmp-*' | wc -l)
assert_eq 0 "$left" "partial uploads left after prune"
repo_bytes=$(du -sb "$T/repo/packs" | cut -f1)
[ "$repo_bytes" -lt $((total + total / 20)) ] ||
	die "the server holds $repo_bytes bytes after prune"
mkdir "$T/back"
assert_ok "$MV" restore -i "$SSH_KEY" "$R" vol/latest:d "$T/back"
for i in 0 1 2 3 4 5 6 7 8 9; do
	cmp "$T/src/f$i" "$T/back/d/f$i" || die "f$i differs after restore"
done

say "sessions killed mid-upload: retried, the backup completes"
head -c 64000000 /dev/urandom >"$T/src/g"
"$MV" backup -i "$SSH_KEY" "$R" --name vol --json d="$T/src" \
	>"$T/out3" 2>"$T/err3" &
pid=$!
before=$(packs)
n=0
while [ "$(packs)" -le "$before" ]; do
	n=$((n + 1))
	[ "$n" -lt 600 ] || die "no pack uploaded after 60 s"
	sleep 0.1
done
sshd_kill_sessions
wait "$pid" || die "backup failed after a dropped session: $(cat "$T/err3")"
"$MV" restore -i "$SSH_KEY" "$R" vol/latest:d/g "$T/back2"
cmp "$T/src/g" "$T/back2/g" || die "g differs"

say "the backup process killed mid-upload: the next run reuses its packs"
for i in 0 1 2; do
	head -c 32000000 /dev/urandom >"$T/src/h$i"
done
"$MV" backup -i "$SSH_KEY" "$R" --name vol --quiet d="$T/src" \
	2>"$T/err4" &
pid=$!
before=$(packs)
n=0
while [ "$(packs)" -le "$((before + 1))" ]; do
	n=$((n + 1))
	[ "$n" -lt 600 ] || die "no pack uploaded after 60 s"
	sleep 0.1
done
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
# the killed process's lock on the server is removed by hand
assert_ok "$MV" unlock -i "$SSH_KEY" --force "$R" >"$T/unlock4"
assert_grep "^locked by pid $pid on host " "$T/unlock4"
assert_ok "$MV" backup -i "$SSH_KEY" "$R" --name vol --json d="$T/src" \
	>"$T/out4"
stored=$(python3 -c 'import json,sys
print(json.load(open(sys.argv[1]))["bytes_stored"])' "$T/out4")
say "after SIGKILL the rerun stored $stored of 96000000 new bytes"
[ "$stored" -lt 70000000 ] || die "packs of the killed backup not reused"
assert_ok "$MV" check -i "$SSH_KEY" "$R"
ok
