#!/bin/sh
# wan.sh: the WAN phase of `make bench` (issue 18).  A relay adding
# WAN_DELAY_MS (default 20) each way (tools/wanproxy: a 40 ms round trip)
# sits in front of a private sshd on loopback; over it, on the same
# real-like day of mail (gen_fixture.py --profile realmail, 5500
# messages), side by side with borg 1.2 over the same link:
#
#   backup   the day's tar.gz into the remote repository
#            (mailvault backup / borg import-tar)
#   one      a fresh workstation (empty caches): mount, read one message
#            (mailvault mount / borg mount)
#   rsync    rsync -a of the whole volume out of a fresh mount
#   restore  the whole volume (mailvault restore / borg extract)
#
# and the round trips (request/response turns counted by the relay) of
# each mailvault command.  One line per figure on stdout:
#   wan TOOL WHAT SECONDS TURNS
# Needs root (sshd, FUSE), borg for its side (skipped without it).
# Usage: sh tools/bench/wan.sh   (MV_BUILD as for the tests; WAN_RUNS=N
# runs of every figure (the backup's into new repositories), the median kept; WAN_MESSAGES=N; WAN_RESTORE_SERIAL=1
# adds a restore without the read-ahead thread; WAN_NO_BORG=1 leaves borg
# out; WAN_TRACE=FILE traces the fresh mount's requests, MAILVAULT_SFTP_TRACE,
# and FILE.cat the warm cat's)
. "$(dirname "$0")/../../tests/lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"
. "$TOP/tests/lib/wanproxy.sh"

require_fuse
require_cmd rsync
sshd_start
sshd_trust
RUNS=${WAN_RUNS:-1}
say "generating the day ($(date -u +%H:%M:%S))"
gen --profile realmail --messages "${WAN_MESSAGES:-5500}" --days 1 \
	--out "$T/fx"
TGZ=$T/day.tar.gz
# names without "./": borg mount shows nothing of an import-tar of "./x"
(cd "$T/fx/day1" && ls -A) >"$T/top"
tar -czf "$TGZ" -C "$T/fx/day1" -T "$T/top"
say "input: $(find "$T/fx/day1" -type f | wc -l) files," \
	"$(du -sm "$T/fx/day1" | cut -f1) MiB, tar.gz $(du -m "$TGZ" | cut -f1) MiB"
msg=$(cd "$T/fx/day1" && find . -path '*/cur/*' -type f | sort | tail -n 1)
msg=${msg#./}

wanproxy_start "${WAN_DELAY_MS:-20}"
wanproxy_trust
P=$WANPROXY_PORT
R=sftp://root@127.0.0.1:$P$T/mv
B=ssh://root@127.0.0.1:$P$T/borg
BORG_RSH="ssh -i $SSH_KEY -o UserKnownHostsFile=$MAILVAULT_KNOWN_HOSTS \
-o StrictHostKeyChecking=yes -o BatchMode=yes"
BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export BORG_RSH BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK \
	BORG_RELOCATED_REPO_ACCESS_IS_OK
have_borg=false
[ "${WAN_NO_BORG:-0}" = 1 ] || ! command -v borg >/dev/null || have_borg=true

now()
{
	date +%s%N
}

# figure TOOL WHAT T0 T1: print one line, with the relay's turns
figure()
{
	_turns=$(wanproxy_turns)
	printf 'wan %s %s %s %s\n' "$1" "$2" \
		"$(python3 -c "print('%.2f' % (($4 - $3) / 1e9))")" "$_turns"
}

# both tools keep their caches under $XDG_CACHE_HOME (test-lib.sh sets it
# to $T/cache), borg's beside mailvault's
fresh()
{
	rm -rf "${XDG_CACHE_HOME:-$HOME/.cache}/mailvault" \
		"${XDG_CACHE_HOME:-$HOME/.cache}/borg" "$HOME/.cache/borg"
}

assert_ok "$MV" init -i "$SSH_KEY" "$R"
if $have_borg; then
	borg init -e none "$B" >/dev/null 2>&1 || die "borg init over ssh failed"
fi

# the backup WAN_RUNS times too: the first into the repositories the rows
# below read, the others into new ones (each with the cache its init left)
run=0
while [ "$run" -lt "$RUNS" ]; do
	run=$((run + 1))
	say "run $run: backup of the day's tar.gz"
	Rb=$R
	Bb=$B
	if [ "$run" -gt 1 ]; then
		Rb=$R-b$run
		Bb=$B-b$run
		assert_ok "$MV" init -i "$SSH_KEY" "$Rb" >/dev/null
		if $have_borg; then
			borg init -e none "$Bb" >/dev/null 2>&1 ||
				die "borg init over ssh failed"
		fi
	fi
	wanproxy_reset
	t0=$(now)
	"$MV" backup -i "$SSH_KEY" "$Rb" --name d --quiet \
		--time 2024-05-01T03:00:00Z v="$TGZ" || die "mailvault backup failed"
	t1=$(now)
	figure mailvault backup "$t0" "$t1"
	if $have_borg; then
		wanproxy_reset
		t0=$(now)
		borg import-tar "$Bb::d" "$TGZ" || die "borg import-tar failed"
		t1=$(now)
		figure borg backup "$t0" "$t1"
	fi
	[ "$run" = 1 ] || rm -rf "$T/mv-b$run" "$T/borg-b$run"
done

mnt=$T/mnt
run=0
while [ "$run" -lt "$RUNS" ]; do
	run=$((run + 1))
	say "run $run: fresh mount + one message"
	fresh
	wanproxy_reset
	t0=$(now)
	MAILVAULT_SFTP_TRACE=${WAN_TRACE:-0} mount_mv "$R" "$mnt" -i "$SSH_KEY"
	cmp "$mnt/d/latest/v/$msg" "$T/fx/day1/$msg" || die "message differs"
	t1=$(now)
	unmount_mv "$mnt"
	figure mailvault one "$t0" "$t1"
	if $have_borg; then
		fresh
		wanproxy_reset
		t0=$(now)
		mkdir -p "$T/bmnt"
		borg mount "$B::d" "$T/bmnt" || die "borg mount failed"
		echo "$T/bmnt" >>"$T/.tl-mounts"
		wait_mounted "$T/bmnt" 120
		cmp "$T/bmnt/$msg" "$T/fx/day1/$msg" ||
			die "message differs in borg's mount: $(ls "$T/bmnt")"
		t1=$(now)
		borg umount "$T/bmnt"
		figure borg one "$t0" "$t1"
	fi

	say "run $run: rsync -a of the volume from a fresh mount"
	fresh
	rm -rf "$T/rs"
	wanproxy_reset
	mount_mv "$R" "$mnt" -i "$SSH_KEY"
	t0=$(now)
	rsync -a "$mnt/d/latest/v/" "$T/rs/" || die "rsync failed"
	t1=$(now)
	unmount_mv "$mnt"
	figure mailvault rsync "$t0" "$t1"
	diff -r "$T/fx/day1" "$T/rs" >/dev/null || die "rsync copy differs"

	say "run $run: restore (extract) of the volume, fresh"
	fresh
	rm -rf "$T/rs"
	wanproxy_reset
	t0=$(now)
	"$MV" restore -i "$SSH_KEY" "$R" d/latest:v "$T/rs" >/dev/null ||
		die "mailvault restore failed"
	t1=$(now)
	figure mailvault restore "$t0" "$t1"
	diff -r "$T/fx/day1" "$T/rs/v" >/dev/null || die "restore differs"
	if [ "${WAN_RESTORE_SERIAL:-0}" = 1 ]; then
		# without the read-ahead thread: one batch at a time
		fresh
		rm -rf "$T/rs"
		wanproxy_reset
		t0=$(now)
		MAILVAULT_RESTORE_AHEAD=0 "$MV" restore -i "$SSH_KEY" "$R" \
			d/latest:v "$T/rs" >/dev/null ||
			die "mailvault restore failed"
		t1=$(now)
		figure mailvault restore-serial "$t0" "$t1"
		diff -r "$T/fx/day1" "$T/rs/v" >/dev/null ||
			die "restore differs"
	fi
	if $have_borg; then
		fresh
		rm -rf "$T/bx"
		mkdir -p "$T/bx"
		wanproxy_reset
		t0=$(now)
		(cd "$T/bx" && borg extract "$B::d") || die "borg extract failed"
		t1=$(now)
		figure borg restore "$t0" "$t1"
	fi
done

say "round trips of the read-only commands, warm cache"
"$MV" snapshots -i "$SSH_KEY" "$R" >/dev/null
wanproxy_reset
t0=$(now)
"$MV" snapshots -i "$SSH_KEY" "$R" >/dev/null
t1=$(now)
figure mailvault snapshots-warm "$t0" "$t1"
# warm: the cache already holds what this cat reads (borg's side emptied
# it before its extract)
"$MV" cat -i "$SSH_KEY" "$R" "d/latest:v/$msg" >/dev/null
wanproxy_reset
t0=$(now)
MAILVAULT_SFTP_TRACE=${WAN_TRACE:+$WAN_TRACE.cat} \
	"$MV" cat -i "$SSH_KEY" "$R" "d/latest:v/$msg" >/dev/null
t1=$(now)
figure mailvault cat-warm "$t0" "$t1"

say "find from a fresh workstation (the catalogue's segments fetched)"
fresh
wanproxy_reset
t0=$(now)
"$MV" find -i "$SSH_KEY" "$R" --subject report --limit 5 >/dev/null ||
	[ $? = 1 ] || die "mailvault find failed"
t1=$(now)
figure mailvault find-fresh "$t0" "$t1"
ok
