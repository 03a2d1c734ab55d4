#!/bin/sh
# t3110-remote-lock: a lock on an sftp:// repository is never broken
# automatically, even when it names this host, this boot and a pid that is
# gone here (another container or machine of the same name may hold it);
# the writer exits 11 naming the holder, and 'mailvault unlock' removes
# the lock only with --force.  A writer's own lock is removed on success.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"

sshd_start
sshd_trust
R=sftp://root@127.0.0.1:$SSHD_PORT$T/repo
mkdir -p "$T/src"
echo "a message" >"$T/src/m"
assert_ok "$MV" init -i "$SSH_KEY" "$R"
sh -c 'exit 0' &
dead=$!
wait "$dead"

say "a lock naming this host, this boot and a dead pid is kept"
printf 'host=%s\npid=%s\ntime=%s\nboot=%s\ntoken=%s\n' "$(hostname)" \
	"$dead" "$(date +%s)" "$(cat /proc/sys/kernel/random/boot_id)" \
	feedface >"$T/repo/lock"
set +e
"$MV" backup -i "$SSH_KEY" "$R" --name j --quiet d="$T/src" 2>"$T/err"
rc=$?
set -e
cat "$T/err"
assert_eq 11 "$rc" "exit status of a backup into a locked repository"
assert_grep "locked by pid $dead on host '$(hostname)'" "$T/err"
grep -q feedface "$T/repo/lock" || die "the remote lock was broken"

say "unlock shows it and needs --force on a remote repository"
set +e
"$MV" unlock -i "$SSH_KEY" "$R" >"$T/out" 2>"$T/err"
rc=$?
set -e
assert_eq 11 "$rc" "exit status of unlock without --force"
assert_grep "^locked by pid $dead on host '$(hostname)'" "$T/out"
assert_grep "the repository is remote" "$T/err"
[ -f "$T/repo/lock" ] || die "unlock without --force removed the lock"
assert_ok "$MV" unlock -i "$SSH_KEY" --force "$R" >"$T/out"
assert_grep "^lock removed$" "$T/out"
[ ! -e "$T/repo/lock" ] || die "unlock --force left the lock"

say "a writer removes its own lock when it is done"
assert_ok "$MV" backup -i "$SSH_KEY" "$R" --name j --quiet d="$T/src"
[ ! -e "$T/repo/lock" ] || die "the backup left its lock on the server"
ok
