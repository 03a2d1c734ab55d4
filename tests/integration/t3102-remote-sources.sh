#!/bin/sh
# t3102-remote-sources: backup sources read over SSH with no ssh binary:
# ssh://host/path walks a directory over SFTP (modes, owners, mtimes,
# symlinks; unchanged files are not read again), ssh-exec://host runs a
# command whose stdout is a tar stream; a failing command (its exit status
# and stderr reported) or a lost connection makes no snapshot.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"

require_cmd tar
sshd_start
sshd_trust
H=root@127.0.0.1:$SSHD_PORT
R=$T/repo
assert_ok "$MV" init "$R"
gen --small --days 2 --out "$T/fx"
S=$T/fx/day1

# whole-second mtimes (SFTP carries no more), a symlink, odd modes, owners
mkdir "$S/odd"
ln -s ../config "$S/odd/rel-link"
ln -s /etc/passwd "$S/odd/abs-link"
printf 'x' >"$S/odd/setuid"
chmod 4750 "$S/odd/setuid"
chown 1234:5678 "$S/odd/setuid"
: >"$S/odd/empty"
head -c 5000000 /dev/urandom >"$S/odd/big"
find "$S" -exec touch -h -d '2024-02-03 04:05:06' {} +

say "ssh:// walks the directory over SFTP"
assert_ok "$MV" backup -i "$SSH_KEY" "$R" --name walk --json \
	vol="ssh://$H$S" >"$T/w1.json"
mkdir "$T/out"
assert_ok "$MV" restore "$R" walk/latest:vol "$T/out" >/dev/null
# SFTP cannot see hard links: each name is a file (content deduplicated)
assert_same_tree "$S" "$T/out/vol" -x link

say "an unchanged file is not read again, a changed one is"
json()
{
	python3 -c 'import json,sys
print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}
printf 'changed\n' >>"$S/odd/empty"
touch -d '2024-02-03 04:05:07' "$S/odd/empty"
assert_ok "$MV" backup -i "$SSH_KEY" "$R" --name walk --json \
	vol="ssh://$H$S" >"$T/w2.json"
assert_eq "$(($(json "$T/w1.json" files) - 1))" \
	"$(json "$T/w2.json" files_unchanged)" "files not read again"
assert_eq 8 "$(json "$T/w2.json" bytes_read)" "bytes read"
rm -rf "$T/out"
mkdir "$T/out"
assert_ok "$MV" restore "$R" walk/latest:vol "$T/out" >/dev/null
# SFTP cannot see hard links: each name is a file (content deduplicated)
assert_same_tree "$S" "$T/out/vol" -x link

say "a file written in the second of the backup is read again"
printf 'racy' >"$S/odd/racy"
assert_ok "$MV" backup -i "$SSH_KEY" "$R" --name race --json \
	--time "@$(stat -c %Y "$S/odd/racy")" vol="ssh://$H$S/odd" \
	>"$T/r1.json"
printf 'racy' >"$S/odd/racy"
assert_ok "$MV" backup -i "$SSH_KEY" "$R" --name race --json \
	vol="ssh://$H$S/odd" >"$T/r2.json"
[ "$(json "$T/r2.json" bytes_read)" -ge 4 ] ||
	die "a file as new as its parent snapshot was trusted"

say "ssh:// of a missing path or a file fails with no snapshot"
assert_fail "$MV" backup -i "$SSH_KEY" "$R" --name bad \
	vol="ssh://$H$T/nowhere" 2>"$T/err"
assert_grep "nowhere" "$T/err"
assert_fail "$MV" backup -i "$SSH_KEY" "$R" --name bad \
	vol="ssh://$H$S/odd/big" 2>"$T/err"
assert_grep "not a directory" "$T/err"
"$MV" snapshots "$R" >"$T/snaps"
assert_no_grep " bad " "$T/snaps"

say "ssh-exec:// runs tar -czf - on the server and stores its stream"
D=$T/fx/day2
assert_ok "$MV" backup -i "$SSH_KEY" "$R" --name exec --json \
	vol="ssh-exec://$H" --exec "tar -czf - -C '$D' ." >"$T/e1.json"
rm -rf "$T/out"
mkdir "$T/out"
assert_ok "$MV" restore "$R" exec/latest:vol "$T/out" >/dev/null
# GNU tar keeps whole seconds
assert_same_tree "$D" "$T/out/vol" -x mtime
assert_eq "$(json "$T/e1.json" files)" "$(find "$D" -type f | wc -l)" \
	"files in the stream"

say "two ssh-exec sources take their --exec in order"
assert_ok "$MV" backup -i "$SSH_KEY" "$R" --name two --quiet \
	a="ssh-exec://$H" b="ssh-exec://$H" \
	--exec "tar -cf - -C '$S/odd' ." --exec "tar -cf - -C '$D' ."
rm -rf "$T/out"
mkdir "$T/out"
assert_ok "$MV" restore "$R" two/latest "$T/out" >/dev/null
assert_same_tree "$S/odd" "$T/out/a" -x mtime
assert_same_tree "$D" "$T/out/b" -x mtime
assert_fail "$MV" backup -i "$SSH_KEY" "$R" --name two \
	a="ssh-exec://$H" 2>"$T/err"
assert_grep "one --exec" "$T/err"

say "a command that fails: its status and stderr, no snapshot"
assert_fail "$MV" backup -i "$SSH_KEY" "$R" --name fail vol="ssh-exec://$H" \
	--exec "echo 'volume mailcow_vmail not found' >&2; exit 3" 2>"$T/err"
cat "$T/err"
assert_grep "exited with status 3" "$T/err"
assert_grep "volume mailcow_vmail not found" "$T/err"
assert_grep "no snapshot was written" "$T/err"
say "a complete archive followed by a failure is still a failure"
assert_fail "$MV" backup -i "$SSH_KEY" "$R" --name fail vol="ssh-exec://$H" \
	--exec "tar -cf - -C '$S/odd' .; echo 'tar: x: file changed' >&2; exit 1" \
	2>"$T/err"
assert_grep "exited with status 1: tar: x: file changed" "$T/err"
say "a command killed by a signal"
assert_fail "$MV" backup -i "$SSH_KEY" "$R" --name fail vol="ssh-exec://$H" \
	--exec 'tar -cf - -C / etc/hostname; kill -9 $$' 2>"$T/err"
assert_grep "signal|status" "$T/err"
say "output that is not an archive, with status 0"
assert_fail "$MV" backup -i "$SSH_KEY" "$R" --name fail vol="ssh-exec://$H" \
	--exec "echo hello" 2>"$T/err"
assert_grep "ssh-exec" "$T/err"
"$MV" snapshots "$R" >"$T/snaps"
assert_no_grep " fail " "$T/snaps"

say "the connection is lost while the command streams: no snapshot"
MAILVAULT_SSH_RETRY_MS=50 "$MV" backup -i "$SSH_KEY" "$R" --name lost \
	vol="ssh-exec://$H" \
	--exec "tar -cf - -C '$D' .; sleep 30" >"$T/out.log" 2>"$T/err" &
pid=$!
sleep 2
sshd_kill_sessions
set +e
wait "$pid"
rc=$?
set -e
[ "$rc" = 1 ] || die "exit $rc after a lost connection: $(cat "$T/err")"
cat "$T/err"
"$MV" snapshots "$R" >"$T/snaps"
assert_no_grep " lost " "$T/snaps"
ok
