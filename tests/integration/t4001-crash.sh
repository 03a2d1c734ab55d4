#!/bin/sh
# t4001-crash: SIGKILL a backup early, in the middle and while it commits;
# every time the repository opens, check --read-data passes, the earlier
# snapshot restores byte-exact, no partial snapshot shows, and the next
# backup takes over the dead writer's lock and succeeds.
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv

R=$T/repo
gen --small --days 1 --tar --out "$T/fx"
assert_ok "$MV" init "$R"
assert_ok "$MV" backup "$R" --name mail volume="$T/fx/day1.tar.gz"
mkdir "$T/ref"
assert_ok "$MV" restore "$R" mail/latest:volume "$T/ref"
tree_digest "$T/ref/volume" >"$T/ref.digest"
"$MV" snapshots "$R" >"$T/snaps-before"

# ~30 MB of incompressible, never-seen data, so the backup writes a lot
python3 - "$T/big" <<'EOF'
import os, sys
os.makedirs(sys.argv[1])
for i in range(30):
	with open(os.path.join(sys.argv[1], "f%02d" % i), "wb") as f:
		f.write(os.urandom(1 << 20))
EOF
tar -czf "$T/big.tgz" -C "$T/big" .
say "big input: $(stat -c %s "$T/big.tgz") bytes"

# slow_cat RATE FILE: copy FILE to stdout at RATE bytes a second
slow_cat()
{
	python3 -c '
import sys, time
rate, path = int(sys.argv[1]), sys.argv[2]
out = sys.stdout.buffer
with open(path, "rb") as f:
	while True:
		b = f.read(rate // 20)
		if not b:
			break
		out.write(b)
		out.flush()
		time.sleep(0.05)
' "$1" "$2"
}

verify()
{
	"$MV" snapshots "$R" >"$T/snaps" ||
		die "$1: the repository does not open"
	cmp -s "$T/snaps-before" "$T/snaps" || {
		cat "$T/snaps"
		die "$1: the snapshot list changed"
	}
	assert_no_grep 'partial|PARTIAL' "$T/snaps"
	"$MV" check --read-data "$R" >"$T/check.out" 2>&1 || {
		cat "$T/check.out"
		die "$1: check --read-data fails"
	}
	rm -rf "$T/out"
	mkdir "$T/out"
	assert_ok "$MV" restore "$R" mail/latest:volume "$T/out"
	tree_digest "$T/out/volume" >"$T/out.digest"
	cmp -s "$T/ref.digest" "$T/out.digest" ||
		die "$1: the earlier snapshot does not restore exactly"
}

# kill_at SECONDS RATE: start a throttled backup, SIGKILL it after SECONDS
kill_at()
{
	rm -f "$T/pipe"
	mkfifo "$T/pipe"
	# the input stays open after the data: the backup never sees its end
	(slow_cat "$2" "$T/big.tgz" 2>/dev/null; exec sleep 60) >"$T/pipe" &
	feeder=$!
	echo "$feeder" >>"$T/.tl-pids"
	"$MV" backup "$R" --name crash volume=- <"$T/pipe" >"$T/k.out" 2>&1 &
	pid=$!
	sleep "$1"
	# a slow start (a sanitizer build on a busy machine loads the
	# formats plugin for longer than the first delay): the input never
	# ends, so the backup is still running whenever the lock appears
	n=0
	while [ ! -f "$R/lock" ] && [ "$n" -lt 100 ] &&
		kill -0 "$pid" 2>/dev/null; do
		sleep 0.1
		n=$((n + 1))
	done
	[ -f "$R/lock" ] || die "no lock while the backup runs"
	assert_eq "pid=$pid" "$(grep '^pid=' "$R/lock")" "lock holder"
	kill -9 "$pid" || die "the backup (pid $pid) is gone"
	rc=0
	wait "$pid" 2>/dev/null || rc=$?
	# the kill, not something else, must have ended it
	[ "$rc" = 137 ] || { cat "$T/k.out"; die "backup exit $rc, not killed"; }
	kill "$feeder" 2>/dev/null || true
	wait "$feeder" 2>/dev/null || true
}

i=0
for point in "0.5 2000000" "3 4000000" "6 8000000"; do
	i=$((i + 1))
	set -- $point
	say "kill $i after $1 s at $2 B/s"
	kill_at "$1" "$2"
	[ -f "$R/lock" ] || die "a killed writer leaves its lock behind"
	verify "kill $i"
done

say "kill near the end: while packs are sealed and the index commits"
tree_digest "$T/big" -x mtime,uid,gid >"$T/big.digest"
for delay in 0.05 0.1 0.15 0.2 0.25 0.3 0.35 0.4 0.5; do
	"$MV" backup "$R" --name end volume="$T/big.tgz" >/dev/null 2>&1 &
	pid=$!
	sleep "$delay"
	kill -9 "$pid" 2>/dev/null || true
	rc=0
	wait "$pid" 2>/dev/null || rc=$?
	# killed (137), or finished before the kill (0); nothing else
	[ "$rc" = 0 ] || [ "$rc" = 137 ] ||
		die "delay $delay: backup exit $rc, neither killed nor done"
	if "$MV" snapshots "$R" | grep -q ' end '; then
		# it committed first (perhaps killed on its way out): that
		# snapshot must be whole
		say "delay $delay: the backup committed before the kill (exit $rc)"
		rm -rf "$T/out"
		mkdir "$T/out"
		assert_ok "$MV" restore "$R" end/latest:volume "$T/out"
		tree_digest "$T/out/volume" -x mtime,uid,gid >"$T/out.digest"
		cmp -s "$T/big.digest" "$T/out.digest" ||
			die "a backup that finished is not whole"
		break
	fi
	[ "$rc" = 137 ] || die "delay $delay: backup exit 0, no snapshot"
	verify "kill at +$delay s"
done

say "the next backup takes the stale lock over and succeeds"
assert_ok "$MV" backup "$R" --name crash volume="$T/big.tgz"
[ ! -f "$R/lock" ] || die "lock left behind after a good backup"
assert_ok "$MV" check --read-data "$R"
rm -rf "$T/out"
mkdir "$T/out"
assert_ok "$MV" restore "$R" crash/latest:volume "$T/out"
assert_same_tree "$T/big" "$T/out/volume" -x mtime,uid,gid
du -sk "$R" | sed 's/^/# repository KiB after the crashes: /'
ok
