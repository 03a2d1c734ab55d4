#!/bin/sh
# t4010-lock-unlock: the writer lock keeps a second writer out with exit 11
# and the holder named; a lock is taken over only when its holder is
# provably dead here (this host, this boot, pid gone); 'mailvault unlock'
# shows the holder, removes a provably dead one, needs --force for one it
# cannot judge, and never removes the lock of a running process.
. "$(dirname "$0")/../lib/test-lib.sh"

R=$T/repo
mkdir -p "$T/src"
echo "a message" >"$T/src/msg"
assert_ok "$MV" init "$R"
host=$(hostname)
boot=$(cat /proc/sys/kernel/random/boot_id)
sh -c 'exit 0' &
dead=$!
wait "$dead"

# run "$@", its exit status in $rc (asserted by the caller, so that a
# failure is reported outside the command's redirections)
run_rc()
{
	set +e
	"$@"
	rc=$?
	set -e
}

say "a running backup keeps a second writer out: exit 11, holder named"
mkfifo "$T/fifo"
"$MV" backup "$R" --name slow --quiet vol=- <"$T/fifo" 2>"$T/slow.err" &
slow=$!
exec 3>"$T/fifo"
n=0
while [ ! -f "$R/lock" ] && [ "$n" -lt 100 ]; do
	sleep 0.1
	n=$((n + 1))
done
[ -f "$R/lock" ] || die "no lock while the backup runs"
run_rc "$MV" backup "$R" --name other --quiet d="$T/src" 2>"$T/err"
assert_eq 11 "$rc" "exit status of: backup $R --name other --quiet d=$T/src"
cat "$T/err"
assert_grep "locked by pid $slow on host '$host' since [0-9-]+ [0-9:]+ UTC" \
	"$T/err"
assert_grep "mailvault unlock" "$T/err"
say "unlock refuses to remove the lock of a running process, even forced"
run_rc "$MV" unlock --force "$R" >"$T/out" 2>"$T/err"
assert_eq 11 "$rc" "exit status of: unlock --force $R"
assert_grep "^locked by pid $slow on host '$host'" "$T/out"
assert_grep "running" "$T/err"
[ -f "$R/lock" ] || die "unlock removed a running writer's lock"
tar -cf - -C "$T/src" . >&3
exec 3>&-
wait "$slow" || die "the first backup failed: $(cat "$T/slow.err")"
[ ! -f "$R/lock" ] || die "the backup left its lock behind"

say "a lock of a dead process of this boot is taken over"
printf 'host=%s\npid=%s\ntime=%s\nboot=%s\ntoken=%s\n' "$host" "$dead" \
	"$(date +%s)" "$boot" 0123456789abcdef >"$R/lock"
assert_ok "$MV" backup "$R" --name d --quiet d="$T/src"
[ ! -f "$R/lock" ] || die "lock left behind"

say "the same pid gone, but from another boot (or a machine of that name)"
printf 'host=%s\npid=%s\ntime=%s\nboot=%s\ntoken=%s\n' "$host" "$dead" \
	"$(date +%s)" "not-this-boot" 1111 >"$R/lock"
run_rc "$MV" backup "$R" --name d --quiet d="$T/src" 2>"$T/err"
assert_eq 11 "$rc" "exit status of: backup $R --name d --quiet d=$T/src"
assert_grep "locked by pid $dead on host '$host'" "$T/err"
run_rc "$MV" unlock "$R" >"$T/out" 2>"$T/err"
assert_eq 11 "$rc" "exit status of: unlock $R"
assert_grep "^locked by pid $dead on host '$host'" "$T/out"
assert_grep "another machine, or this one before a reboot" "$T/err"
assert_grep "with --force" "$T/err"
[ -f "$R/lock" ] || die "unlock without --force removed the lock"
assert_ok "$MV" unlock --force "$R" >"$T/out"
assert_grep "^lock removed$" "$T/out"
[ ! -f "$R/lock" ] || die "unlock --force left the lock"

say "another host's lock: refused, removed with --force"
printf 'host=nas\npid=1234\ntime=%s\nboot=b\ntoken=2222\n' \
	"$(date +%s)" >"$R/lock"
run_rc "$MV" prune "$R" 2>"$T/err"
assert_eq 11 "$rc" "exit status of: prune $R"
assert_grep "locked by pid 1234 on host 'nas'" "$T/err"
run_rc "$MV" unlock "$R" >/dev/null 2>&1
assert_eq 11 "$rc" "exit status of: unlock $R"
run_rc "$MV" unlock --force "$R" >/dev/null
assert_eq 0 "$rc" "exit status of: unlock --force $R"
[ ! -f "$R/lock" ] || die "unlock --force left the lock"

say "a provably dead holder needs no --force"
printf 'host=%s\npid=%s\ntime=%s\nboot=%s\ntoken=3333\n' "$host" "$dead" \
	"$(date +%s)" "$boot" >"$R/lock"
assert_ok "$MV" unlock "$R" >"$T/out"
assert_grep "^lock removed$" "$T/out"

say "no lock: nothing to do"
assert_ok "$MV" unlock "$R" >"$T/out"
assert_grep "is not locked" "$T/out"
run_rc "$MV" unlock >/dev/null 2>&1
assert_eq 2 "$rc" "exit status of: unlock"
assert_ok env MAILVAULT_REPO="$R" "$MV" unlock >/dev/null
assert_ok "$MV" check "$R" >/dev/null
ok
