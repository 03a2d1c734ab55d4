#!/bin/sh
# bench.sh: mailvault side by side with borg, restic, archivemount and a
# tar.gz a day, on the same generated mail volume, in one run.
#
# Usage: sh tools/bench.sh        (or `make bench`; needs root: it drops the
#                                  page cache and mounts with FUSE)
#
# Environment:
#   BENCH_SCALE=full|small  full (default): about 1 GB of mail a day, 7 days,
#                           ingest measured once, a year of dailies for the
#                           lifecycle and the catalogue; small: about 10 MB
#                           a day, everything scaled down (about 2 minutes)
#   BENCH_SIZE_MB=N         mail on day 1 (default 1000; small 10)
#   BENCH_MESSAGES=N        messages on day 1 instead of BENCH_SIZE_MB
#   BENCH_DAYS=N            days (default 7)
#   BENCH_RUNS=N            runs of every mount/restore figure (full 3,
#                           small 2)
#   BENCH_INGEST_RUNS=N     runs of the 7-day ingest (full 1, small 1)
#   BENCH_CAT_RUNS=N        alternating rounds of the last day's backup with
#                           and without the mail view (full 5, small 3)
#   BENCH_TIMEOUT=S         limit per mount operation (default 120 s); a
#                           tool that hits it is not waited for again
#   BENCH_DIR=DIR           scratch (default /var/tmp/mailvault-bench-SCALE;
#                           the generated days are kept there for reuse)
#   BENCH_OUT=FILE          report (default docs/BENCHMARKS.md at full
#                           scale, BENCH_DIR/BENCHMARKS.md otherwise); the
#                           plot goes next to it as bench-repo-size.png
#   BENCH_KEEP=1            keep the repositories afterwards
#   MV=PATH                 the mailvault binary (default build/mailvault)
#   BENCH_ONLY=growth       run only the growth series on real-like mail
#                           (tools/bench/growth.sh; also `make bench-growth`)
#
# Every figure is the median of its runs with min and max; the comparisons
# are ratios mailvault/other from this run.  Raw figures: BENCH_DIR/res/.
set -eu
BENCH_T0=$(date +%s)

TOP=$(cd "$(dirname "$0")/.." && pwd)
B=$TOP/tools/bench
MV=${MV:-$TOP/build/mailvault}
SCALE=${BENCH_SCALE:-full}
case $SCALE in
full)
	SIZE_MB=${BENCH_SIZE_MB:-1000}
	IRUNS=${BENCH_INGEST_RUNS:-1}
	RUNS=${BENCH_RUNS:-3}
	CRUNS=${BENCH_CAT_RUNS:-5}
	BIG_MB=512
	REMOTE_MB=300
	LC_DAYS=365
	CAT_MESSAGES=100000
	CAT_DAYS=365
	MOUNT_MESSAGES=100000
	;;
small)
	SIZE_MB=${BENCH_SIZE_MB:-10}
	IRUNS=${BENCH_INGEST_RUNS:-1}
	RUNS=${BENCH_RUNS:-2}
	CRUNS=${BENCH_CAT_RUNS:-3}
	BIG_MB=64
	REMOTE_MB=30
	LC_DAYS=30
	CAT_MESSAGES=20000
	CAT_DAYS=60
	MOUNT_MESSAGES=10000
	;;
*)
	echo "bench: BENCH_SCALE must be full or small" >&2
	exit 2
	;;
esac
if [ "${BENCH_ONLY:-}" = growth ]; then
	MV=$MV GROWTH_SCALE=$SCALE exec sh "$B/growth.sh"
fi
DAYS=${BENCH_DAYS:-7}
TIMEOUT=${BENCH_TIMEOUT:-120}
W=${BENCH_DIR:-/var/tmp/mailvault-bench-$SCALE}
if [ "$SCALE" = full ]; then
	OUT=${BENCH_OUT:-$TOP/docs/BENCHMARKS.md}
else
	OUT=${BENCH_OUT:-$W/BENCHMARKS.md}
fi
export LC_ALL=C TZ=UTC
export BORG_BASE_DIR="$W/borg-home"
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$W/restic-cache"
export TMPDIR="$W/tmp"
unset MAILVAULT_REPO BORG_REPO BORG_PASSPHRASE RESTIC_REPOSITORY || true

say()
{
	echo "bench: $*" >&2
}

die()
{
	echo "bench: error: $*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || die "run as root (drops caches, mounts with FUSE)"
[ -c /dev/fuse ] || die "no /dev/fuse"
[ -x "$MV" ] || die "no $MV (run make)"
case $W in
/tmp/* | /var/tmp/*) ;;
*) die "BENCH_DIR must be under /tmp or /var/tmp" ;;
esac

say "installing what it compares against"
sh "$TOP/tools/install-deps.sh" bench
# borg mount needs a FUSE binding for Python (not pulled in by borgbackup)
python3 -c 'import pyfuse3' 2>/dev/null ||
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends python3-pyfuse3 >/dev/null

mkdir -p "$W/res" "$W/log" "$W/tmp" "$W/mnt"
R=$W/repos
FX=$W/fx
RES=$W/res/results.tsv
SIZES=$W/res/sizes.tsv
VER=$W/res/verify.tsv
META=$W/res/meta.env
PHASES=$W/res/phases.tsv
: >"$RES"
: >"$SIZES"
: >"$VER"
rm -f "$W/res/remote.log" "$W/res/lifecycle.log" "$W/res/mail.log" \
	"$W/res/mail.env" "$W"/res/find-*
printf 'install\t%s\n' "$BENCH_T0" >"$PHASES"

# phase NAME: the wall time of the bench itself, phase by phase
phase()
{
	printf '%s\t%s\n' "$1" "$(date +%s)" >>"$PHASES"
	say "== $1"
}

# --- cleanup in every path ------------------------------------------------

# is_mounted DIR: in the mount table (also when its daemon died, where
# mountpoint(1) only sees "transport endpoint is not connected")
is_mounted()
{
	awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/self/mounts
}

unmount_all()
{
	for m in "$W"/mnt/*; do
		if is_mounted "$m"; then
			timeout 20 fusermount3 -u "$m" 2>/dev/null ||
				timeout 20 fusermount3 -u -z "$m" 2>/dev/null ||
				umount -l "$m" 2>/dev/null || true
		fi
	done
	if [ -f "$W/.pids" ]; then
		while read -r p; do
			kill -9 "$p" 2>/dev/null || true
		done <"$W/.pids"
		rm -f "$W/.pids"
	fi
}

cleanup()
{
	rc=$?
	trap - EXIT INT TERM HUP
	set +e
	unmount_all
	if [ "${BENCH_KEEP:-}" != 1 ]; then
		rm -rf "$R" "$W/live" "$W/out" "$W/tmp" "$W/big" "$W/ref-tar" \
			"$W/lifecycle" "$W/catcost"
	fi
	[ "$rc" = 0 ] || say "failed (exit $rc); raw results in $W/res"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

drop_caches()
{
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# meas PHASE TOOL DAY RUN CMD...: one timed run into results.tsv
meas()
{
	_k=$(printf '%s\t%s\t%s\t%s' "$1" "$2" "$3" "$4")
	_log=$W/log/$1-$2.log
	shift 4
	python3 "$B/run.py" -t "$TIMEOUT" -e "$_log" -a "$RES" -k "$_k" \
		"$@" >/dev/null
}

# meas_in DIR PHASE TOOL DAY RUN CMD...: the same with CMD run in DIR
meas_in()
{
	_d=$1
	_k=$(printf '%s\t%s\t%s\t%s' "$2" "$3" "$4" "$5")
	_log=$W/log/$2-$3.log
	shift 5
	python3 "$B/run.py" -C "$_d" -t "$TIMEOUT" -e "$_log" -a "$RES" \
		-k "$_k" "$@" >/dev/null
}

# record PHASE TOOL DAY RUN WALL STATUS: a figure measured in-process
record()
{
	printf '%s\t%s\t%s\t%s\t%s\t0\t0\t0\t%s\n' "$1" "$2" "$3" "$4" "$5" \
		"$6" >>"$RES"
}

# fix_last STATUS: replace the status of the last figure
fix_last()
{
	sed -i '$ s/[^	]*$/'"$1"'/' "$RES"
}

last_status()
{
	tail -n 1 "$RES" | cut -f 9
}

size_of()
{
	du -sb "$1" | cut -f 1
}

iso_day()
{
	date -u -d "@$((1717210800 + ($1 - 1) * 86400))" +%Y-%m-%dT%H:%M:%SZ
}

snapdir_day()
{
	date -u -d "@$((1717210800 + ($1 - 1) * 86400))" +%Y-%m-%dT%H%M%SZ
}

# verify TOOL METHOD REF DIR: compare DIR with the reference listing
verify()
{
	python3 "$TOP/tests/lib/tree-digest.py" "$4" >"$W/res/digest-$1-$2"
	_v=$(python3 "$B/cmpdigest.py" "$3" "$W/res/digest-$1-$2") || true
	printf '%s\t%s\t%s\n' "$1" "$2" "$_v" >>"$VER"
	say "verify $1 $2: $_v"
}

# --- data -------------------------------------------------------------------

phase data

if [ -n "${BENCH_MESSAGES:-}" ]; then
	gen_size="--messages $BENCH_MESSAGES"
else
	gen_size="--size-mb $SIZE_MB"
fi
gen_args="--seed bench $gen_size --days $DAYS --tar --owner 5000:5000"
if [ "$(cat "$FX/.args" 2>/dev/null)" != "$gen_args" ]; then
	say "generating the data: gen_fixture.py $gen_args"
	rm -rf "$FX"
	# shellcheck disable=SC2086
	python3 "$TOP/tools/gen_fixture.py" --quiet --out "$FX" $gen_args
	echo "$gen_args" >"$FX/.args"
else
	say "reusing the data in $FX ($gen_args)"
fi
LAST=$DAYS
SNAP_LAST=$(snapdir_day "$LAST")

# reference listings: the tree of the last day (for tools that back up the
# tree) and the content of its tar.gz (for tools that read the tar.gz; GNU
# tar keeps mtimes in whole seconds)
say "reference listings"
python3 "$TOP/tests/lib/tree-digest.py" "$FX/day$LAST" >"$W/res/ref-tree"
rm -rf "$W/ref-tar"
mkdir -p "$W/ref-tar"
tar -xzpf "$FX/day$LAST.tar.gz" -C "$W/ref-tar"
python3 "$TOP/tests/lib/tree-digest.py" "$W/ref-tar" >"$W/res/ref-tar"
rm -rf "$W/ref-tar"
tar_vs_tree=$(python3 "$B/cmpdigest.py" "$W/res/ref-tree" "$W/res/ref-tar") ||
	true
python3 "$B/pick.py" "$FX/day$LAST" >"$W/res/pick"
MBOX=$(sed -n 1p "$W/res/pick")
MSG=$(sed -n 2p "$W/res/pick")

# archivemount 0.8.7 deadlocks on the first directory that holds a tar
# hard-link entry (see tools/bench/notes.md): it gets the same day written
# with --hard-dereference (same names, contents and metadata; each hard
# link stored as a copy)
AMTGZ=$FX/day$LAST-deref.tar.gz
if [ ! -s "$AMTGZ" ] || [ "$(cat "$AMTGZ.args" 2>/dev/null)" != "$gen_args" ]
then
	say "day $LAST without hard links, for archivemount"
	(cd "$FX/day$LAST" && tar --sort=name --hard-dereference -cf - . |
		gzip >"$AMTGZ.tmp") && mv "$AMTGZ.tmp" "$AMTGZ"
	echo "$gen_args" >"$AMTGZ.args"
fi

say "unique data of all days, zstd -3"
unique=$(python3 "$B/unique.py" "$FX" "$DAYS")

{
	echo "scale=$SCALE"
	echo "gen_args='$gen_args'"
	echo "days=$DAYS"
	echo "runs=$RUNS"
	echo "ingest_runs=$IRUNS"
	echo "timeout=$TIMEOUT"
	echo "remote_mb=$REMOTE_MB"
	echo "lc_days=$LC_DAYS"
	echo "big_mb=$BIG_MB"
	echo "date='$(date -u '+%Y-%m-%d %H:%M UTC')'"
	echo "tar_vs_tree='$tar_vs_tree'"
	echo "hardlinks=$(tar -tvzf "$FX/day$LAST.tar.gz" | grep -c '^h' || true)"
	echo "mbox='$MBOX'"
	echo "msg='$MSG'"
	echo "msg_size=$(stat -c %s "$FX/day$LAST/$MBOX/$MSG")"
	echo "mbox_count=$(ls "$FX/day$LAST/$MBOX" | wc -l)"
	echo "unique='$unique'"
	echo "tree_entries=$(wc -l <"$W/res/ref-tree")"
	echo "tree_bytes=$(du -sb --apparent-size "$FX/day$LAST" | cut -f 1)"
	echo "messages='$(python3 -c 'import json,sys
m=json.load(open(sys.argv[1]))["days"]
print(" ".join(str(m[k]["messages"]) for k in sorted(m, key=int)))' \
		"$FX/manifest.json")'"
	echo "tgz_bytes='$(for d in $(seq 1 "$DAYS"); do
		stat -c %s "$FX/day$d.tar.gz"; done | tr '\n' ' ')'"
	echo "mv_version='$(git -C "$TOP" describe --always --dirty 2>/dev/null ||
		echo ?)'"
	echo "borg_version='$(borg --version)'"
	echo "restic_version='$(restic version | cut -d' ' -f1-2)'"
	echo "archivemount_version='$(archivemount --version 2>&1 | head -n 1)'"
	echo "gzip_version='$(gzip --version | head -n 1)'"
	echo "igzip_version='$(igzip --version 2>&1 | head -n 1)'"
	echo "kernel='$(uname -r)'"
	echo "cpu='$(grep -m 1 'model name' /proc/cpuinfo | cut -d: -f2- |
		sed 's/^ *//')'"
	echo "cpus=$(nproc)"
	echo "mem='$(free -m | awk '/^Mem:/ { print $2 " MiB total, " $7 " MiB available" }')'"
	echo "disk='$(df -h "$W" | awk 'NR == 2 { print $1 ", " $2 " (" $5 " used)" }')'"
} >"$META"

# --- ingest -------------------------------------------------------------------

init_repos()
{
	rm -rf "$R" "$W/live" "$BORG_BASE_DIR" "$RESTIC_CACHE_DIR"
	mkdir -p "$R/tgz" "$W/live/volume"
	"$MV" init --encryption none "$R/mv" >/dev/null
	"$MV" init --encryption none "$R/mv-nomail" >/dev/null
	borg init -e none "$R/borg-tar"
	borg init -e none "$R/borg-tree"
	restic init -q --repo "$R/restic" --repository-version 2 >/dev/null
}

ingest_day()
{
	_d=$1
	_r=$2
	_tgz=$FX/day$_d.tar.gz
	# the "live" volume changes in place, as on a server: unchanged files
	# keep inode and ctime, so borg's and restic's file caches work
	rsync -aH --delete "$FX/day$_d/" "$W/live/volume/"
	meas floor-gzip gzip "$_d" "$_r" gzip -dc "$_tgz"
	meas floor-igzip igzip "$_d" "$_r" igzip -dc "$_tgz"
	meas ingest mv "$_d" "$_r" "$MV" backup --quiet "$R/mv" --name mail \
		--time "$(iso_day "$_d")" "volume=$_tgz"
	# the same backup without the mail view and catalogue (issue 5)
	meas ingest mv-nomail "$_d" "$_r" "$MV" backup --quiet --no-mail \
		"$R/mv-nomail" --name mail --time "$(iso_day "$_d")" \
		"volume=$_tgz"
	meas ingest borg-tar "$_d" "$_r" borg import-tar --compression zstd,3 \
		"$R/borg-tar::day$_d" "$_tgz"
	meas ingest borg-tree "$_d" "$_r" borg create --compression zstd,3 \
		"$R/borg-tree::day$_d" "$W/live/volume"
	meas ingest restic "$_d" "$_r" restic --repo "$R/restic" backup -q \
		--host bench "$W/live/volume"
	meas ingest tgz "$_d" "$_r" cp "$_tgz" "$R/tgz/"
	for t in mv mv-nomail borg-tar borg-tree restic tgz; do
		printf '%s\t%s\t%s\t%s\n' "$_r" "$_d" "$t" \
			"$(size_of "$R/$t")" >>"$SIZES"
	done
}

phase ingest
r=1
while [ "$r" -le "$IRUNS" ]; do
	say "ingest run $r/$IRUNS"
	init_repos
	d=1
	while [ "$d" -le "$DAYS" ]; do
		say "  day $d"
		if [ "$r" = "$IRUNS" ] && [ "$d" = "$LAST" ]; then
			# the repositories before the last day, for catcost
			rm -rf "$W/catcost"
			mkdir -p "$W/catcost"
			cp -a "$R/mv" "$W/catcost/mv"
			cp -a "$R/mv-nomail" "$W/catcost/mv-nomail"
		fi
		ingest_day "$d" "$r"
		d=$((d + 1))
	done
	r=$((r + 1))
done

# The catalogue's cost (issue 5), measured on its own: the last day backed
# up with and without the mail view into copies of the repositories as
# they were before it, alternating which goes first, CRUNS rounds.  The
# ingest above runs each day once, one after the other, and a single pair
# on a shared VM varies by more than the 10 % it is judged against.
say "catalogue cost: day $LAST, $CRUNS alternating rounds"
catcost_one()
{
	rm -rf "$W/catcost/t"
	cp -a "$W/catcost/$1" "$W/catcost/t"
	sync
	if [ "$1" = mv ]; then
		meas catcost mv "$LAST" "$2" "$MV" backup --quiet \
			"$W/catcost/t" --name mail --time "$(iso_day "$LAST")" \
			"volume=$FX/day$LAST.tar.gz"
	else
		meas catcost mv-nomail "$LAST" "$2" "$MV" backup --quiet \
			--no-mail "$W/catcost/t" --name mail \
			--time "$(iso_day "$LAST")" "volume=$FX/day$LAST.tar.gz"
	fi
}
r=1
while [ "$r" -le "$CRUNS" ]; do
	if [ $((r % 2)) = 1 ]; then
		catcost_one mv "$r"
		catcost_one mv-nomail "$r"
	else
		catcost_one mv-nomail "$r"
		catcost_one mv "$r"
	fi
	r=$((r + 1))
done
rm -rf "$W/catcost"
echo "cat_runs=$CRUNS" >>"$META"

# the same last day once more: what an unchanged backup adds
say "re-ingest of an unchanged day"
for t in mv borg-tar; do
	eval "before_$(echo "$t" | tr - _)=$(size_of "$R/$t")"
done
# same job name, one hour later: a second snapshot of an unchanged volume
meas reingest mv "$LAST" 1 "$MV" backup --quiet "$R/mv" --name mail \
	--time "$(date -u -d "@$((1717210800 + (LAST - 1) * 86400 + 3600))" \
	+%Y-%m-%dT%H:%M:%SZ)" "volume=$FX/day$LAST.tar.gz"
meas reingest borg-tar "$LAST" 1 borg import-tar --compression zstd,3 \
	"$R/borg-tar::again" "$FX/day$LAST.tar.gz"
echo "reingest_mv=$(($(size_of "$R/mv") - before_mv))" >>"$META"
echo "reingest_borg_tar=$(($(size_of "$R/borg-tar") - before_borg_tar))" \
	>>"$META"

# --- mounts -------------------------------------------------------------------

phase mounts

mount_cmd()
{
	case $1 in
	mv) echo "$MV mount -f $R/mv $2" ;;
	borg) echo "borg mount -f $R/borg-tree::day$LAST $2" ;;
	restic) echo "restic --repo $R/restic mount $2" ;;
	archivemount) echo "archivemount -f -o readonly $AMTGZ $2" ;;
	esac
}

mount_root()
{
	case $1 in
	mv) echo "$2/mail/$SNAP_LAST/volume" ;;
	borg) echo "$2$W/live/volume" ;;
	restic) echo "$2/snapshots/latest$W/live/volume" ;;
	archivemount) echo "$2" ;;
	esac
}

mount_ref()
{
	case $1 in
	mv | archivemount) echo "$W/res/ref-tar" ;;
	*) echo "$W/res/ref-tree" ;;
	esac
}

end_mount()
{
	_m=$1
	_pid=$2
	timeout 30 fusermount3 -u "$_m" 2>/dev/null ||
		timeout 30 fusermount3 -u -z "$_m" 2>/dev/null ||
		umount -l "$_m" 2>/dev/null || true
	_n=0
	while kill -0 "$_pid" 2>/dev/null && [ "$_n" -lt 100 ]; do
		sleep 0.1
		_n=$((_n + 1))
	done
	kill -9 "$_pid" 2>/dev/null || true
	if is_mounted "$_m"; then
		umount -l "$_m" 2>/dev/null || true
	fi
}

# wd_start PID [SECONDS]: kill the mount daemon PID after SECONDS
# (default $TIMEOUT).  A FUSE client
# blocked on a request the daemon already took cannot be killed itself;
# killing the daemon aborts the connection and frees it.
wd_start()
{
	(
		sleep "${2:-$TIMEOUT}"
		kill -9 "$1" 2>/dev/null
	) &
	_wd=$!
}

# wd_stop PHASE TOOL RUN PID: end the watchdog; if it fired, mark the last
# figure as a timeout
wd_stop()
{
	kill "$_wd" 2>/dev/null || true
	wait "$_wd" 2>/dev/null || true
	if ! kill -0 "$4" 2>/dev/null; then
		echo "timeout" >"$W/.hung-$2"
		return 1
	fi
	return 0
}

# mount_run TOOL RUN: mount, first ls, cold cat, find, rsync, unmount
mount_run()
{
	_t=$1
	_r=$2
	_m=$W/mnt/$_t
	mkdir -p "$_m"
	is_mounted "$_m" && die "$_m is still mounted"
	_root=$(mount_root "$_t" "$_m")
	if [ -f "$W/.hung-$_t" ]; then
		# hung in an earlier run: do not wait for it again
		for _p in mount-ls mount-cat mount-find mount-rsync; do
			record "$_p" "$_t" "$LAST" "$_r" 0 "$(cat "$W/.hung-$_t")"
		done
		return 0
	fi
	drop_caches
	# shellcheck disable=SC2046
	_o=$(python3 "$B/fsprobe.py" mount-ls -t "$TIMEOUT" "$W/.mpid" \
		"$W/log/mount-$_t.log" "$_root/$MBOX" -- \
		$(mount_cmd "$_t" "$_m")) || true
	_pid=$(cat "$W/.mpid")
	echo "$_pid" >>"$W/.pids"
	case $_o in
	[0-9]*) record mount-ls "$_t" "$LAST" "$_r" "${_o%%	*}" ok ;;
	*)
		record mount-ls "$_t" "$LAST" "$_r" 0 "${_o:-failed}"
		echo "${_o:-failed}" >"$W/.hung-$_t"
		end_mount "$_m" "$_pid"
		return 0
		;;
	esac
	hung=
	drop_caches
	wd_start "$_pid"
	_o=$(python3 "$B/fsprobe.py" read "$_root/$MBOX/$MSG" 2>/dev/null) ||
		_o=failed
	wd_stop mount-cat "$_t" "$_r" "$_pid" || _o=timeout
	case $_o in
	[0-9]*) record mount-cat "$_t" "$LAST" "$_r" "${_o%%	*}" ok ;;
	*)
		record mount-cat "$_t" "$LAST" "$_r" 0 "$_o"
		hung=1
		echo "$_o" >"$W/.hung-$_t"
		;;
	esac
	if [ -z "$hung" ]; then
		drop_caches
		wd_start "$_pid"
		meas mount-find "$_t" "$LAST" "$_r" sh -c \
			'find "$1/" | wc -l >"$2"' sh "$_root" "$W/res/find-$_t"
		wd_stop mount-find "$_t" "$_r" "$_pid" || fix_last timeout
		if [ "$(last_status)" != ok ]; then
			hung=1
			echo "$(last_status)" >"$W/.hung-$_t"
		fi
	else
		record mount-find "$_t" "$LAST" "$_r" 0 "skipped"
	fi
	if [ -z "$hung" ] && [ -f "$W/.once-$_t" ]; then
		# took more than a quarter of the limit in the first run:
		# measured once (archivemount reads every file from the start
		# of the gzip stream)
		hung=1
	elif [ -z "$hung" ] && [ -f "$W/.slow-$_t" ]; then
		# did not finish within the limit in an earlier run: a tool
		# that is merely slow is not waited for again
		record mount-rsync "$_t" "$LAST" "$_r" 0 timeout
		hung=1
	elif [ -z "$hung" ]; then
		rm -rf "$W/out"
		mkdir -p "$W/out"
		drop_caches
		# later than the limit of rsync itself: a mount that is only
		# slow is not taken for a hung one
		wd_start "$_pid" $((TIMEOUT + 20))
		meas mount-rsync "$_t" "$LAST" "$_r" rsync -aH --numeric-ids \
			"$_root/" "$W/out/"
		wd_stop mount-rsync "$_t" "$_r" "$_pid" || fix_last timeout
		if [ "$(last_status)" != ok ]; then
			hung=1
			# how far it got: files copied when the limit hit
			find "$W/out" -type f | wc -l >"$W/res/partial-$_t"
			echo "$(last_status)" >"$W/.slow-$_t"
		elif [ "$(tail -n 1 "$RES" | cut -f 5 | cut -d. -f1)" -gt \
			$((TIMEOUT / 4)) ]; then
			: >"$W/.once-$_t"
		fi
	else
		record mount-rsync "$_t" "$LAST" "$_r" 0 "skipped"
	fi
	_hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$_pid/status" \
		2>/dev/null || echo 0)
	record mount-rss "$_t" "$LAST" "$_r" "${_hwm:-0}" ok
	end_mount "$_m" "$_pid"
	if [ "$_r" = 1 ] && [ -z "$hung" ]; then
		verify "$_t" mount-rsync "$(mount_ref "$_t")" "$W/out"
	elif [ "$_r" = 1 ]; then
		printf '%s\tmount-rsync\tnot verified: the mount hung (%s s limit)\n' \
			"$_t" "$TIMEOUT" >>"$VER"
	fi
	rm -rf "$W/out"
}

rm -f "$W"/.hung-* "$W"/.slow-* "$W"/.once-*
r=1
while [ "$r" -le "$RUNS" ]; do
	for t in mv borg restic archivemount; do
		say "mount run $r/$RUNS: $t"
		mount_run "$t" "$r"
	done
	r=$((r + 1))
done

# --- restores of the whole last snapshot ----------------------------------

phase restores

restore_run()
{
	_t=$1
	_r=$2
	rm -rf "$W/out"
	mkdir -p "$W/out"
	drop_caches
	case $_t in
	mv)
		meas restore mv "$LAST" "$_r" "$MV" restore "$R/mv" \
			"mail/$SNAP_LAST" "$W/out"
		_dir=$W/out/volume _ref=$W/res/ref-tar
		;;
	borg-tar)
		meas_in "$W/out" restore borg-tar "$LAST" "$_r" borg extract \
			"$R/borg-tar::day$LAST"
		_dir=$W/out _ref=$W/res/ref-tar
		;;
	borg-tree)
		meas_in "$W/out" restore borg-tree "$LAST" "$_r" borg extract \
			"$R/borg-tree::day$LAST"
		_dir=$W/out$W/live/volume _ref=$W/res/ref-tree
		;;
	restic)
		meas restore restic "$LAST" "$_r" restic --repo "$R/restic" \
			restore latest --target "$W/out"
		_dir=$W/out$W/live/volume _ref=$W/res/ref-tree
		;;
	tgz)
		meas restore tgz "$LAST" "$_r" tar -xzpf "$R/tgz/day$LAST.tar.gz" \
			-C "$W/out"
		_dir=$W/out _ref=$W/res/ref-tree
		;;
	esac
	if [ "$_r" = 1 ]; then
		if [ -d "$_dir" ]; then
			verify "$_t" restore "$_ref" "$_dir"
		else
			printf '%s\trestore\tFAILED: no %s\n' "$_t" "$_dir" >>"$VER"
		fi
	fi
}

r=1
while [ "$r" -le "$RUNS" ]; do
	for t in mv borg-tar borg-tree restic tgz; do
		say "restore run $r/$RUNS: $t"
		restore_run "$t" "$r"
	done
	r=$((r + 1))
done
rm -rf "$W/out"

# big_read: sequential read of one large file through the mailvault mount,
# once its chunks are in the mount's cache (page cache dropped)
big_read()
{
	say "large file read through the mailvault mount"
	mkdir -p "$W/big"
	gzip -dc "$FX/day1.tar.gz" | head -c "$((BIG_MB * 1048576))" \
		>"$W/big/big.tar"
	"$MV" init --encryption none "$R/mv-big" >/dev/null
	"$MV" backup --quiet "$R/mv-big" --name big "big=$W/big" >/dev/null
	rm -rf "$W/big"
	r=1
	while [ "$r" -le "$RUNS" ]; do
		_m=$W/mnt/mv-big
		mkdir -p "$_m"
		"$MV" mount -o "cache_size=$((BIG_MB * 2))" "$R/mv-big" "$_m"
		_f=$_m/big/latest/big/big.tar
		cat "$_f" >/dev/null
		sync
		echo 1 >/proc/sys/vm/drop_caches
		_o=$(timeout -s KILL "$TIMEOUT" python3 "$B/fsprobe.py" read "$_f") ||
			_o=timeout
		case $_o in
		[0-9]*) record bigread mv "$LAST" "$r" "${_o%%	*}" ok ;;
		*) record bigread mv "$LAST" "$r" 0 "$_o" ;;
		esac
		timeout 30 fusermount3 -u "$_m" || umount -l "$_m"
		r=$((r + 1))
	done
}

phase bigread
big_read || say "the large file read failed"

# --- remote (issue 6): sftp:// on loopback --------------------------------------

remote_bench()
{
	MV_BENCH=1 MV_BENCH_MB=$REMOTE_MB MV_BUILD=$(dirname "$MV") \
		timeout 1800 sh "$TOP/tests/integration/t3106-remote-bench.sh" \
		>"$W/res/remote.log" 2>&1
}

phase remote
say "remote: backup into, cat and rsync from sftp://127.0.0.1"
remote_bench || say "the remote benchmark failed (see $W/res/remote.log)"
phase wan; MV_BUILD=$(dirname "$MV") timeout 3600 sh "$B/wan.sh" >"$W/res/wan.log" 2>&1 || say "the WAN benchmark failed (see $W/res/wan.log)"
phase s3; MV_BUILD=$(dirname "$MV") timeout 3600 sh "$B/s3.sh" >"$W/res/s3.log" 2>&1 || say "the S3 benchmark failed (see $W/res/s3.log)"

# --- lifecycle (issue 9): a year of dailies, forget + prune vs borg ------------

phase lifecycle
say "lifecycle: $LC_DAYS dailies, forget + prune vs borg prune + compact"
MV=$MV LC_DAYS=$LC_DAYS timeout 3600 sh "$B/lifecycle.sh" "$W/lifecycle" \
	>"$W/res/lifecycle.log" 2>&1 ||
	say "the lifecycle benchmark failed (see $W/res/lifecycle.log)"

MV=$MV sh "$B/imap.sh" "$W/imap" >"$W/res/imap.log" 2>&1 || say "the IMAP restore benchmark (issue 19) failed (see $W/res/imap.log)"
MV=$MV ENC_SIZE_MB=$SIZE_MB ENC_RUNS=$RUNS ENC_FX=$([ "$DAYS" -ge 2 ] && echo "$FX") sh "$B/encrypted.sh" "$W/encrypted" >"$W/res/encrypted.log" 2>&1 || say "the encrypted benchmark (issue 16) failed (see $W/res/encrypted.log)"

# --- mail view and catalogue (issue 5) -------------------------------------------

phase mail
say "mail: a 10k-message folder, mount at $MOUNT_MESSAGES messages, a mailcow message, find over $CAT_DAYS days"
MV_BUILD=$(dirname "$MV") MAIL_RUNS=$RUNS CAT_MESSAGES=$CAT_MESSAGES \
	MOUNT_MESSAGES=$MOUNT_MESSAGES \
	CAT_DAYS=$CAT_DAYS CAT_CACHE=$W/catalog timeout 3600 \
	sh "$B/mail.sh" "$RES" "$W/res/mail.env" >"$W/res/mail.log" 2>&1 ||
	say "the mail benchmark failed (see $W/res/mail.log)"

# --- growth series on real-like mail (issue 15) -----------------------------------

phase growth
say "growth: real-like mail day by day, and an unchanged re-backup"
rm -rf "$W/growth/res"
MV=$MV GROWTH_SCALE=$SCALE GROWTH_DIR=$W/growth GROWTH_OUT=none \
	timeout 3600 sh "$B/growth.sh" >"$W/res/growth.log" 2>&1 ||
	say "the growth series failed (see $W/res/growth.log)"

# --- report ---------------------------------------------------------------------

phase report

say "writing $OUT"
png=$(dirname "$OUT")/bench-repo-size.png
printf 'end\t%s\n' "$(date +%s)" >>"$PHASES"
# report.py writes OUT whole: the growth section is put back after it,
# with the run of the previous commit that OUT held
rm -f "$W/res/before.md"
[ -f "$OUT" ] && cp "$OUT" "$W/res/before.md"
python3 "$B/report.py" "$W/res" "$OUT" "$(basename "$png")"
gnuplot -e "datafile='$W/res/sizes.dat'; outfile='$png'" "$B/repo-size.gp"
if [ -s "$W/growth/res/growth.md" ]; then
	for p in "$W"/growth/res/growth-repo-size-*.png; do
		cp "$p" "$(dirname "$OUT")/"
	done
	python3 "$B/growth.py" splice "$W/growth/res/growth.md" "$OUT" \
		"$W/res/before.md"
fi
say "done in $(($(date +%s) - BENCH_T0)) s: $OUT, $png"
