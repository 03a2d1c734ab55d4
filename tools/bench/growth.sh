#!/bin/sh
# growth.sh: the growth series of issue 15.  A vmail volume of real-like
# mail (gen_fixture.py --profile realmail: mostly small text messages in
# Maildir++ folders, Dovecot index files) and its daily churn, one tar.gz
# a day, fed to mailvault (mail view on), mailvault --no-mail, borg 1.2
# import-tar (unencrypted and repokey-blake2) and restic; the repository
# size, the bytes each day added and the ingest wall time, day by day.
# Then the same tar of a 100k-file tree backed up twice: what an unchanged
# re-backup adds.
#
# usage: sh tools/bench/growth.sh       (or make bench-growth; tools/bench.sh
#                                       runs it as its phase "growth")
# Environment:
#   GROWTH_SCALE=full|small   default BENCH_SCALE, else full.  full: 5500
#                             messages, 30 days, a 100k-file re-backup;
#                             small: 1000 messages, 8 days, 10k files
#   GROWTH_MESSAGES=N         messages on day 1
#   GROWTH_DAYS=N             days
#   GROWTH_TREE=N             messages of the re-backup tree
#   GROWTH_DIR=DIR            scratch (default /var/tmp/mailvault-growth-SCALE;
#                             the generated days are kept for reuse)
#   GROWTH_OUT=FILE|none      the report the section "Growth series: real-like
#                             mail" is written into (default docs/BENCHMARKS.md
#                             at full scale, GROWTH_DIR/BENCHMARKS.md
#                             otherwise); the plot goes next to it
#   GROWTH_KEEP=1             keep the repositories afterwards
#   MV=PATH                   the mailvault binary (default build/mailvault)
#   MV_COMMIT=REV             the commit MV was built from, for the report
#                             (default: this checkout's HEAD)
#
# Raw figures: GROWTH_DIR/res/growth.tsv (DAY TOOL WALL USER SYS MAXRSS
# STATUS DU_BYTES FILE_BYTES CACHE_BYTES) and rebackup.tsv; the section alone is
# GROWTH_DIR/res/growth.md.
set -eu
T0=$(date +%s)
TOP=$(cd "$(dirname "$0")/../.." && pwd)
B=$TOP/tools/bench
MV=${MV:-$TOP/build/mailvault}
SCALE=${GROWTH_SCALE:-${BENCH_SCALE:-full}}
case $SCALE in
full)
	MSGS=${GROWTH_MESSAGES:-5500}
	DAYS=${GROWTH_DAYS:-30}
	TREE=${GROWTH_TREE:-100000}
	;;
small)
	MSGS=${GROWTH_MESSAGES:-1000}
	DAYS=${GROWTH_DAYS:-8}
	TREE=${GROWTH_TREE:-10000}
	;;
*)
	echo "growth: GROWTH_SCALE must be full or small" >&2
	exit 2
	;;
esac
W=${GROWTH_DIR:-/var/tmp/mailvault-growth-$SCALE}
if [ "$SCALE" = full ]; then
	OUT=${GROWTH_OUT:-$TOP/docs/BENCHMARKS.md}
else
	OUT=${GROWTH_OUT:-$W/BENCHMARKS.md}
fi
export LC_ALL=C TZ=UTC
export BORG_BASE_DIR="$W/borg-home"
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export BORG_PASSPHRASE=bench RESTIC_PASSWORD=bench MAILVAULT_PASSPHRASE=bench
export RESTIC_CACHE_DIR="$W/restic-cache"
# mailvault's cache directory, one per repository (mvcache TOOL): a remote
# or encrypted repository keeps its catalogue and index copy there, a local
# unencrypted one keeps them inside the repository; measured on its own
mvcache() {
	XDG_CACHE_HOME=$W/mv-cache/$1
	export XDG_CACHE_HOME
}
export TMPDIR="$W/tmp"
unset MAILVAULT_REPO BORG_REPO RESTIC_REPOSITORY || true

say() { echo "growth: $*" >&2; }
die() {
	echo "growth: error: $*" >&2
	exit 1
}

[ -x "$MV" ] || die "no $MV (run make)"
case $W in
/tmp/* | /var/tmp/*) ;;
*) die "GROWTH_DIR must be under /tmp or /var/tmp" ;;
esac
for t in borg restic gnuplot; do
	command -v "$t" >/dev/null ||
		sh "$TOP/tools/install-deps.sh" bench ||
		die "no $t (tools/install-deps.sh bench)"
done

R=$W/repos
FX=$W/fx
RES=$W/res
mkdir -p "$RES" "$W/log" "$W/tmp"
rm -rf "$R" "$W/live" "$W/x" "$BORG_BASE_DIR" "$RESTIC_CACHE_DIR" \
	"$W/mv-cache"
mkdir -p "$R" "$W/live/volume" "$W/mv-cache/mv" "$W/mv-cache/mv-nomail" \
	"$W/mv-cache/mv-enc"
: >"$RES/growth.tsv"
: >"$RES/rebackup.tsv"

cleanup() {
	rc=$?
	trap - EXIT INT TERM HUP
	if [ "${GROWTH_KEEP:-}" != 1 ]; then
		rm -rf "$R" "$W/live" "$W/x" "$W/tree" "$W/tmp"
	fi
	[ "$rc" = 0 ] || say "failed (exit $rc); raw results in $RES"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

iso_day() {
	date -u -d "@$((1717210800 + ($1 - 1) * 86400))" +%Y-%m-%dT%H:%M:%SZ
}
# bytes of the repository as du counts them (files and directories,
# apparent size) and of its files alone
du_b() { du -sb --apparent-size "$@" | awk '{s += $1} END {print s + 0}'; }
files_b() {
	find "$@" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'
}
# what a tool's repository is, the same rule for every tool: the
# directory the storage side holds.  Local caches are measured on their
# own (cache_b): mailvault's cache directory (an encrypted
# repository's index copy and catalog.db, rebuilt from the repository's
# index/ and catalog/ when lost); borg's and restic's caches
# (BORG_BASE_DIR, RESTIC_CACHE_DIR) are not measured, as before
repo_paths() { echo "$R/$1"; }
cache_b() {
	case $1 in
	mv | mv-nomail | mv-enc) du_b "$W/mv-cache/$1" ;;
	*) echo 0 ;;
	esac
}

# one DAY TOOL CMD...: a timed ingest and the repository's size after it
one() {
	_d=$1
	_t=$2
	shift 2
	mvcache "$_t"
	_o=$(python3 "$B/run.py" -e "$W/log/$_t.log" "$@")
	# shellcheck disable=SC2046
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$_d" "$_t" "$_o" \
		"$(du_b $(repo_paths "$_t"))" "$(files_b $(repo_paths "$_t"))" \
		"$(cache_b "$_t")" >>"$RES/growth.tsv"
	case $_o in
	*ok) ;;
	*) say "day $_d $_t: $_o (see $W/log/$_t.log)" ;;
	esac
}

# --- data -------------------------------------------------------------------
gen_args="--profile realmail --seed growth --messages $MSGS --days $DAYS --tar-only"
# the generator's own hash too: data of an older generator is made again
gen_sum=$(sha1sum "$TOP/tools/gen_fixture.py" | cut -c1-12)
if [ "$(cat "$FX/.args" 2>/dev/null)" != "$gen_args $gen_sum" ]; then
	say "generating: gen_fixture.py $gen_args"
	rm -rf "$FX"
	# shellcheck disable=SC2086
	python3 "$TOP/tools/gen_fixture.py" --quiet --out "$FX" $gen_args
	echo "$gen_args $gen_sum" >"$FX/.args"
else
	say "reusing the data in $FX"
fi

# --- the series -----------------------------------------------------------------
# format 2 encrypts by default: mailvault and mailvault --no-mail are
# compared unencrypted, and an encrypted mailvault (mail view on) beside
# borg's repokey-blake2
ENC=
if "$MV" init --help 2>&1 | grep -q -- --encryption; then
	ENC="--encryption none"
fi
mvcache mv
# shellcheck disable=SC2086
"$MV" init $ENC "$R/mv" >/dev/null
mvcache mv-nomail
# shellcheck disable=SC2086
"$MV" init $ENC "$R/mv-nomail" >/dev/null
TOOLS="mv mv-nomail borg borg-enc restic"
if [ -n "$ENC" ]; then
	mvcache mv-enc
	"$MV" init "$R/mv-enc" >/dev/null
	TOOLS="$TOOLS mv-enc"
fi
borg init --encryption none "$R/borg" >/dev/null 2>&1
borg init --encryption repokey-blake2 "$R/borg-enc" >/dev/null 2>&1
restic init -q --repo "$R/restic" --repository-version 2 >/dev/null
for t in $TOOLS; do
	# shellcheck disable=SC2046
	printf '0\t%s\t0\t0\t0\t0\tok\t%s\t%s\t%s\n' "$t" \
		"$(du_b $(repo_paths "$t"))" "$(files_b $(repo_paths "$t"))" \
		"$(cache_b "$t")" >>"$RES/growth.tsv"
done
d=1
while [ "$d" -le "$DAYS" ]; do
	tgz=$FX/day$d.tar.gz
	say "day $d/$DAYS ($(stat -c %s "$tgz") bytes of tar.gz)"
	one "$d" mv "$MV" backup --quiet "$R/mv" --name mail \
		--time "$(iso_day "$d")" "volume=$tgz"
	one "$d" mv-nomail "$MV" backup --quiet --no-mail "$R/mv-nomail" \
		--name mail --time "$(iso_day "$d")" "volume=$tgz"
	if [ -n "$ENC" ]; then
		one "$d" mv-enc "$MV" backup --quiet "$R/mv-enc" --name mail \
			--time "$(iso_day "$d")" "volume=$tgz"
	fi
	one "$d" borg borg import-tar --compression zstd,3 "$R/borg::day$d" "$tgz"
	one "$d" borg-enc borg import-tar --compression zstd,3 \
		"$R/borg-enc::day$d" "$tgz"
	# restic reads the tar's contents as a directory (untimed: extracted,
	# then synced into one path so unchanged files keep their inode and
	# ctime, as on a server, and its file cache works)
	rm -rf "$W/x"
	mkdir -p "$W/x"
	tar -xzpf "$tgz" -C "$W/x"
	rsync -aH --delete "$W/x/" "$W/live/volume/"
	rm -rf "$W/x"
	one "$d" restic restic --repo "$R/restic" backup -q --host bench \
		"$W/live/volume"
	d=$((d + 1))
done
say "series done in $(($(date +%s) - T0)) s"
mvcache mv
"$MV" stats "$R/mv" >"$RES/mv-stats.txt" 2>&1 || true
"$MV" check "$R/mv" >"$RES/mv-check.txt" 2>&1 ||
	say "mailvault check failed (see $RES/mv-check.txt)"

# --- unchanged re-backup of a 100k-file tree -------------------------------------
T1=$(date +%s)
targs="--profile realmail --seed rebackup --messages $TREE --users 20 --day 1 --tar-only"
if [ "$(cat "$W/tree-fx/.args" 2>/dev/null)" != "$targs $gen_sum" ]; then
	say "generating the re-backup tree: gen_fixture.py $targs"
	rm -rf "$W/tree-fx"
	# shellcheck disable=SC2086
	python3 "$TOP/tools/gen_fixture.py" --quiet --out "$W/tree-fx" $targs
	echo "$targs $gen_sum" >"$W/tree-fx/.args"
fi
ttgz=$W/tree-fx/day1.tar.gz
nfiles=$(tar -tzf "$ttgz" | grep -vc '/$')
rm -rf "$W/tree"
mkdir -p "$W/tree"
mvcache tree
# shellcheck disable=SC2086
"$MV" init $ENC "$W/tree/mv" >/dev/null
# shellcheck disable=SC2086
"$MV" init $ENC "$W/tree/mv-nomail" >/dev/null
borg init --encryption none "$W/tree/borg" >/dev/null 2>&1
for run in 1 2; do
	t=$(iso_day 1)
	[ "$run" = 2 ] && t=$(date -u -d "@$((1717210800 + 3600))" \
		+%Y-%m-%dT%H:%M:%SZ)
	for tool in mv mv-nomail borg; do
		before=$(du_b "$W/tree/$tool")
		case $tool in
		mv) o=$(python3 "$B/run.py" -e "$W/log/tree-$tool.log" "$MV" \
			backup --quiet "$W/tree/mv" --name tree --time "$t" \
			"volume=$ttgz") ;;
		mv-nomail) o=$(python3 "$B/run.py" -e "$W/log/tree-$tool.log" \
			"$MV" backup --quiet --no-mail "$W/tree/mv-nomail" \
			--name tree --time "$t" "volume=$ttgz") ;;
		borg) o=$(python3 "$B/run.py" -e "$W/log/tree-$tool.log" borg \
			import-tar --compression zstd,3 "$W/tree/borg::run$run" \
			"$ttgz") ;;
		esac
		after=$(du_b "$W/tree/$tool")
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$tool" \
			"$nfiles" "$before" "$after" "$(files_b "$W/tree/$tool")" \
			"$(stat -c %s "$ttgz")" "$o" >>"$RES/rebackup.tsv"
		say "re-backup run $run $tool: $before -> $after bytes ($o)"
	done
done
rm -rf "$W/tree"

# --- report -------------------------------------------------------------------------
{
	echo "scale=$SCALE"
	echo "gen_args='$gen_args'"
	echo "tree_args='$targs'"
	echo "days=$DAYS"
	echo "date='$(date -u '+%Y-%m-%d %H:%M UTC')'"
	echo "mv_version='${MV_COMMIT:-$(git -C "$TOP" describe --always \
		--dirty 2>/dev/null || echo ?)}'"
	echo "mv_commit='$(git -C "$TOP" log -1 --format='%h %s' \
		"${MV_COMMIT:-HEAD}" 2>/dev/null | tr -d "'")'"
	echo "borg_version='$(borg --version)'"
	echo "restic_version='$(restic version | cut -d' ' -f1-2)'"
	echo "cpu='$(grep -m 1 'model name' /proc/cpuinfo | cut -d: -f2- |
		sed 's/^ *//'), $(nproc) CPUs'"
	echo "series_s=$((T1 - T0))"
	echo "rebackup_s=$(($(date +%s) - T1))"
	echo "day1_bytes=$(tar -tvzf "$FX/day1.tar.gz" |
		awk '{s += $3} END {print s + 0}')"
	echo "day1_files=$(tar -tzf "$FX/day1.tar.gz" | grep -vc '/$')"
} >"$RES/meta.env"
# one plot per commit measured: the section keeps the runs of two commits
png=growth-repo-size-$(git -C "$TOP" rev-parse --short "${MV_COMMIT:-HEAD}" \
	2>/dev/null || echo x).png
python3 "$B/growth.py" report "$RES" "$FX/manifest.json" "$png" \
	>"$RES/growth.md"
gnuplot -e "datafile='$RES/growth-sizes.dat'; outfile='$RES/$png'" \
	"$B/growth.gp"
if [ "$OUT" != none ]; then
	cp "$RES/$png" "$(dirname "$OUT")/$png"
	python3 "$B/growth.py" splice "$RES/growth.md" "$OUT"
	say "wrote the section into $OUT, the plot $(dirname "$OUT")/$png"
fi
say "done in $(($(date +%s) - T0)) s"
