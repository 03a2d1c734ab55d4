#!/bin/sh
# t3106-remote-bench: figures for docs/REMOTE.md (run with MV_BENCH=1;
# skipped otherwise): a day's tar.gz backed up into sftp://127.0.0.1 and
# into a local repository, a cold `cat` through sftp, a cold read of one
# message and a full rsync from a mount of each.  Prints the figures and
# fails only when a remote figure misses its target by far (3x the
# ratio), so a slow machine does not fail it.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"

[ "${MV_BENCH:-}" = 1 ] || skip "benchmark: run with MV_BENCH=1"
require_fuse
require_cmd rsync
sshd_start
sshd_trust
H=root@127.0.0.1:$SSHD_PORT
RR=sftp://$H$T/remote
RL=$T/local
MB=${MV_BENCH_MB:-300}
gen --size-mb "$MB" --days 1 --tar-only --out "$T/fx"
TGZ=$T/fx/day1.tar.gz
say "input: $(du -m "$TGZ" | cut -f1) MiB tar.gz ($MB MB of mail)"

now() { date +%s.%N; }
secs() { python3 -c "print('%.3f' % ($2 - $1))"; }

"$MV" init -i "$SSH_KEY" "$RR" >/dev/null
"$MV" init "$RL" >/dev/null
sync
t0=$(now)
"$MV" backup "$RL" --name d --quiet --time 2024-05-01T03:00:00Z v="$TGZ"
t1=$(now)
"$MV" backup -i "$SSH_KEY" "$RR" --name d --quiet \
	--time 2024-05-01T03:00:00Z v="$TGZ"
t2=$(now)
local_s=$(secs "$t0" "$t1")
remote_s=$(secs "$t1" "$t2")
ratio=$(python3 -c "print('%.2f' % ($remote_s / $local_s))")
say "backup: local $local_s s, sftp://127.0.0.1 $remote_s s, ratio $ratio (target 1.5)"

path=$(cd "$T" && tar -tzf "$TGZ" | grep '/cur/.' | head -n 1)
path=${path#./}
say "cold cat of one message through sftp (no cached index)"
rm -rf "$XDG_CACHE_HOME/mailvault"
t0=$(now)
"$MV" cat -i "$SSH_KEY" "$RR" "d/latest:v/$path" >"$T/m1"
t1=$(now)
"$MV" cat -i "$SSH_KEY" "$RR" "d/latest:v/$path" >"$T/m2"
t2=$(now)
cmp "$T/m1" "$T/m2"
say "cat: cold $(secs "$t0" "$t1") s (index download included), with the index cached $(secs "$t1" "$t2") s"

say "mounts: cold read of one message, then a full rsync"
rm -rf "$XDG_CACHE_HOME/mailvault"
mount_mv "$RL" "$T/ml"
mount_mv "$RR" "$T/mr" -i "$SSH_KEY"
for m in ml mr; do
	t0=$(now)
	cat "$T/$m/d/latest/v/$path" >/dev/null
	t1=$(now)
	eval "cold_$m=$(secs "$t0" "$t1")"
done
say "cold read of one message: local $cold_ml s, sftp $cold_mr s (target 0.1)"
for m in ml mr; do
	t0=$(now)
	rsync -a "$T/$m/d/latest/v/" "$T/rs-$m/"
	t1=$(now)
	eval "rsync_$m=$(secs "$t0" "$t1")"
done
rratio=$(python3 -c "print('%.2f' % ($rsync_mr / $rsync_ml))")
say "full rsync from the mount: local $rsync_ml s, sftp $rsync_mr s, ratio $rratio (target 2)"
unmount_mv "$T/ml"
unmount_mv "$T/mr"
python3 -c "import sys; sys.exit(0 if $ratio < 4.5 and $rratio < 6 else 1)" ||
	die "remote far slower than local: backup $ratio, rsync $rratio"
ok
