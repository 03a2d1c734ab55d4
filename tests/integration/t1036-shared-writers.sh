#!/bin/sh
# t1036-shared-writers: two machines (two caches) back up into one
# encrypted repository, local and sftp://, truly at the same time: each
# holds its own shared lock (locks/NAME) while the other writes, both
# snapshots are there afterwards, both restore byte-exact and check
# --read-data is clean (docs/LOCKING.md).  While they write, prune is
# refused with exit 11 naming a shared holder, prune --wait waits and then
# runs, and a second writer through the same cache is refused.  A shared
# lock of a dead process of this boot is taken over by prune (local
# only); another machine's keeps prune out, not backups, until unlock
# --force.  A segment upload a killed writer left (index/NAME.tmp*) is
# removed by the next writer once a day old, and by prune at once.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"

"$MV_BIN" init --help 2>&1 | grep -q -- --encryption ||
	skip "init does not encrypt in this build"
set -e
export MAILVAULT_PASSPHRASE="two hosts one vault"
export MAILVAULT_KDF_TEST=1
gen --out "$T/fx" --small --days 2 --seed 1036
host=$(hostname)
boot=$(cat /proc/sys/kernel/random/boot_id)
sh -c 'exit 0' &
dead=$!
wait "$dead"

run_rc()
{
	set +e
	"$@"
	rc=$?
	set -e
}

# nlocks DIR: shared locks under DIR/locks
nlocks()
{
	ls "$1/locks" 2>/dev/null | grep -c '^[0-9a-f]\{32\}$' || true
}

# wait_locks DIR N: until N shared locks are held
wait_locks()
{
	n=0
	while [ "$(nlocks "$1")" -lt "$2" ] && [ "$n" -lt 300 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	[ "$(nlocks "$1")" -ge "$2" ] ||
		die "$2 shared locks were never held at once"
}

# count_snaps NAME REPO [options]: snapshots of job NAME
count_snaps()
{
	_name=$1
	shift
	"$MV" snapshots "$@" | grep -c "  $_name  " || true
}

# scenario R DIR [ssh options]
scenario()
{
	R=$1
	D=$2
	shift 2
	say "$R: two hosts back up at the same time"
	XDG_CACHE_HOME=$T/cache-c assert_ok "$MV" init \
		--encryption xchacha20-poly1305 "$@" "$R" >/dev/null
	rm -f "$T/fa" "$T/fb"
	mkfifo "$T/fa" "$T/fb"
	XDG_CACHE_HOME=$T/cache-a "$MV" backup "$R" "$@" --name hosta \
		--quiet --time 2024-06-01T01:00:00Z vol=- <"$T/fa" \
		>"$T/outa" 2>&1 &
	pa=$!
	XDG_CACHE_HOME=$T/cache-b "$MV" backup "$R" "$@" --name hostb \
		--quiet --time 2024-06-01T02:00:00Z vol=- <"$T/fb" \
		>"$T/outb" 2>&1 &
	pb=$!
	exec 3>"$T/fa" 4>"$T/fb"
	wait_locks "$D" 2
	[ ! -e "$D/lock" ] || die "a backup took the exclusive lock"

	say "$R: prune is refused while they write, and waits with --wait"
	run_rc env XDG_CACHE_HOME="$T/cache-c" "$MV" prune "$@" "$R" \
		2>"$T/err"
	cat "$T/err"
	assert_eq 11 "$rc" "exit status of prune during two backups"
	assert_grep "shared lock" "$T/err"
	assert_grep "on host '$host'" "$T/err"
	[ ! -e "$D/lock" ] || die "the refused prune left its lock"
	XDG_CACHE_HOME=$T/cache-c "$MV" prune "$@" --wait "$R" \
		>"$T/outp" 2>&1 3>&- 4>&- &
	pp=$!

	say "$R: a second writer through the same cache is refused"
	run_rc env XDG_CACHE_HOME="$T/cache-a" "$MV" backup "$R" "$@" \
		--name hosta --quiet d="$T/fx/day2" 2>"$T/err"
	cat "$T/err"
	assert_eq 11 "$rc" "exit status of a second writer of cache a"
	assert_grep "locked by pid $pa on this machine" "$T/err"
	assert_grep "same cache" "$T/err"

	say "$R: both finish"
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
	assert_eq 0 "$(nlocks "$D")" "shared locks left"
	[ ! -e "$D/lock" ] || die "prune --wait left its lock"

	export XDG_CACHE_HOME=$T/cache-fresh
	rm -rf "$XDG_CACHE_HOME"
	assert_eq 1 "$(count_snaps hosta "$R" "$@")" "snapshots of host a"
	assert_eq 1 "$(count_snaps hostb "$R" "$@")" "snapshots of host b"
	rm -rf "$T/out"
	assert_ok "$MV" restore "$R" "$@" hosta/latest:vol "$T/out/a" >/dev/null
	assert_ok "$MV" restore "$R" "$@" hostb/latest:vol "$T/out/b" >/dev/null
	assert_same_tree "$T/fx/day1" "$T/out/a/vol"
	assert_same_tree "$T/fx/day2" "$T/out/b/vol"
	assert_ok "$MV" check "$R" "$@" --read-data >"$T/check" 2>&1 || {
		cat "$T/check"
		die "check --read-data after two writers"
	}
	# each writer's cache sees the other's snapshot too
	for c in a b; do
		n=$(env XDG_CACHE_HOME="$T/cache-$c" "$MV" snapshots "$R" "$@" |
			grep -c '  host[ab]  ' || true)
		assert_eq 2 "$n" "snapshots seen from cache $c"
	done

	say "$R: stale shared locks"
	mkdir -p "$D/locks"
	tok=00112233445566778899aabbccddeeff
	printf 'host=nas\npid=1234\ntime=%s\nboot=x\ntoken=%s\n' \
		"$(date +%s)" "$tok" >"$D/locks/$tok"
	assert_ok "$MV" backup "$R" "$@" --name hosta --quiet \
		--time 2024-06-02T01:00:00Z d="$T/fx/day2"
	run_rc "$MV" prune "$@" "$R" 2>"$T/err"
	assert_eq 11 "$rc" "exit status of prune with another host's lock"
	assert_grep "on host 'nas'" "$T/err"
	run_rc "$MV" unlock "$@" "$R" >"$T/out.unlock" 2>"$T/err"
	assert_eq 11 "$rc" "exit status of unlock of another host's lock"
	assert_grep "^locked by pid 1234 on host 'nas' .*\(shared\)" \
		"$T/out.unlock"
	assert_ok "$MV" unlock --force "$@" "$R" >"$T/out.unlock"
	assert_grep "^lock removed$" "$T/out.unlock"
	assert_eq 0 "$(nlocks "$D")" "locks after unlock --force"
	printf 'host=%s\npid=%s\ntime=%s\nboot=%s\ntoken=%s\n' "$host" \
		"$dead" "$(date +%s)" "$boot" "$tok" >"$D/locks/$tok"
	if [ "$D" = "$R" ]; then
		# local: provably dead (this host, this boot, no pid, no
		# flock), so prune takes it over
		assert_ok "$MV" prune "$@" "$R" >/dev/null
	else
		run_rc "$MV" prune "$@" "$R" 2>"$T/err"
		assert_eq 11 "$rc" "exit status of prune, remote dead lock"
		assert_ok "$MV" unlock --force "$@" "$R" >/dev/null
		assert_ok "$MV" prune "$@" "$R" >/dev/null
	fi
	assert_eq 0 "$(nlocks "$D")" "stale shared locks left"
	assert_eq 2 "$(count_snaps hosta "$R" "$@")" "snapshots of a at the end"

	say "$R: publications a killed writer left are cleaned"
	old=0123456789abcdef0123456789abcdef.tmp-dead
	young=fedcba9876543210fedcba9876543210.tmp
	echo half >"$D/index/$old"
	echo half >"$D/index/$young"
	touch -d '2 days ago' "$D/index/$old"
	assert_ok "$MV" backup "$R" "$@" --name hosta --quiet \
		--time 2024-06-03T01:00:00Z d="$T/fx/day1"
	[ ! -e "$D/index/$old" ] || die "the next writer left a day-old tmp"
	[ -e "$D/index/$young" ] || die "a shared writer removed a young tmp"
	assert_ok "$MV" prune "$@" "$R" >/dev/null
	[ ! -e "$D/index/$young" ] || die "prune left a tmp"
	XDG_CACHE_HOME=$T/cache
}

scenario "$T/repo" "$T/repo"

require_cmd ssh-keygen
sshd_start
sshd_trust
scenario "sftp://root@127.0.0.1:$SSHD_PORT$T/srepo" "$T/srepo" -i "$SSH_KEY"
ok
