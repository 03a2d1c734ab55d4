#!/bin/sh
# encrypted.sh: issue 16's speed figures, encrypted compared with encrypted.
#
#   1. a day's ingest of the tar.gz (day 1, then day 2 on top of it) into an
#      encrypted repository against `--encryption none` (goal <= 1.1x);
#   2. cold `cat` of one message through the mount of the encrypted
#      repository, page cache dropped (goal < 5 ms);
#   3. `rsync -a` of the whole volume from that mount against `borg
#      extract` of a borg repository made with --encryption repokey-blake2
#      from the same tar.gz (goal <= borg extract).
#
# usage: tools/bench/encrypted.sh WORKDIR      (root: drops the page cache,
#                                              mounts with FUSE)
# Environment: MV (binary), ENC_SIZE_MB (mail on day 1, default 1000),
# ENC_RUNS (runs of every figure, default 3), ENC_FX (a gen_fixture.py
# output with day1.tar.gz and day2.tar.gz to reuse).  Prints "# encrypted:"
# lines; the raw runs are in WORKDIR/enc.tsv.  Run by tools/bench.sh.
#
# Passphrases come from MAILVAULT_PASSPHRASE with MAILVAULT_KDF_TEST=1 (a
# cheap Argon2id), so the one unlock per command (about 1 s of Argon2id
# with real parameters) is not counted: what is compared is the cost of
# sealing and opening records.  borg's repokey-blake2 pays its own key
# derivation (PBKDF2, ~0.1 s) in every run.
set -eu
W=$1
TOP=$(cd "$(dirname "$0")/../.." && pwd)
B=$TOP/tools/bench
MV=${MV:-$TOP/build/mailvault}
SIZE_MB=${ENC_SIZE_MB:-1000}
RUNS=${ENC_RUNS:-3}
TIMEOUT=${ENC_TIMEOUT:-1800}
export TZ=UTC LC_ALL=C
export MAILVAULT_PASSPHRASE=bench-passphrase MAILVAULT_KDF_TEST=1
export BORG_PASSPHRASE=bench-passphrase BORG_BASE_DIR="$W/borg-home"
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export XDG_CACHE_HOME="$W/cache"
unset MAILVAULT_REPO BORG_REPO || true

say() { echo "# encrypted: $*"; }
die() {
	echo "encrypted.sh: $*" >&2
	exit 1
}
[ "$(id -u)" = 0 ] || die "run as root (drops caches, mounts with FUSE)"
[ -x "$MV" ] || die "no $MV (run make)"
command -v borg >/dev/null || die "no borg"
case $W in
/tmp/* | /var/tmp/*) ;;
*) die "WORKDIR must be under /tmp or /var/tmp" ;;
esac

MNT=$W/mnt
MPID=
cleanup() {
	rc=$?
	set +e
	if [ -n "$MPID" ]; then
		fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT"
		kill "$MPID" 2>/dev/null
	fi
	rm -rf "$W/repos" "$W/out" "$W/cache" "$W/borg-home"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

mkdir -p "$W" "$MNT"
RES=$W/enc.tsv
: >"$RES"

FX=${ENC_FX:-$W/fx}
args="--seed bench --size-mb $SIZE_MB --days 2 --tar --owner 5000:5000"
if [ -z "${ENC_FX:-}" ] && [ "$(cat "$FX/.args" 2>/dev/null)" != "$args" ]
then
	say "generating $SIZE_MB MB of mail, two days"
	rm -rf "$FX"
	# shellcheck disable=SC2086
	python3 "$TOP/tools/gen_fixture.py" --quiet --out "$FX" $args
	echo "$args" >"$FX/.args"
fi
[ -s "$FX/day1.tar.gz" ] && [ -s "$FX/day2.tar.gz" ] ||
	die "no day1.tar.gz and day2.tar.gz in $FX"

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# meas WHAT RUN CMD...: wall seconds of one run into enc.tsv
meas() {
	_what=$1
	_run=$2
	shift 2
	_o=$(python3 "$B/run.py" -t "$TIMEOUT" -e "$W/$_what.log" "$@")
	printf '%s\t%s\t%s\n' "$_what" "$_run" "$_o" >>"$RES"
	case $_o in
	*"	ok" | *" ok") ;;
	*) die "$_what run $_run failed: $_o (see $W/$_what.log)" ;;
	esac
}

day_time() { date -u -d "@$((1717210800 + ($1 - 1) * 86400))" +%Y-%m-%dT%H:%M:%SZ; }
snap_dir() { date -u -d "@$((1717210800 + ($1 - 1) * 86400))" +%Y-%m-%dT%H%M%SZ; }

# --- 1. ingest: encrypted against none, alternating which goes first -------
R=$W/repos
r=1
while [ "$r" -le "$RUNS" ]; do
	rm -rf "$R" "$W/cache"
	mkdir -p "$R"
	"$MV" init --encryption none "$R/none" >/dev/null 2>&1
	"$MV" init "$R/enc" >/dev/null 2>&1
	if [ $((r % 2)) = 1 ]; then order="enc none"; else order="none enc"; fi
	for d in 1 2; do
		for t in $order; do
			drop_caches
			meas "ingest-day$d-$t" "$r" "$MV" backup --quiet \
				"$R/$t" --name mail --time "$(day_time "$d")" \
				"volume=$FX/day$d.tar.gz"
		done
	done
	say "ingest run $r/$RUNS done"
	r=$((r + 1))
done
echo "size	none	$(du -sb "$R/none" | cut -f 1)" >>"$RES"
echo "size	enc	$(du -sb "$R/enc" | cut -f 1)" >>"$RES"

# --- borg repokey-blake2 from the same tar.gz ---------------------------------
borg init --encryption repokey-blake2 "$R/borg" >/dev/null 2>&1
borg import-tar --compression zstd,3 "$R/borg::day2" "$FX/day2.tar.gz"

# --- 2. and 3. the mount of the encrypted repository --------------------------
SNAP=$(snap_dir 2)
msg=$(tar -tzf "$FX/day2.tar.gz" | grep '/cur/' | sed -n '1000p;$p' | head -n 1)
msg=${msg#./}
# mount_up REPO: mount it in the background, wait for the snapshot
mount_up() {
	"$MV" mount -f "$1" "$MNT" >"$W/mount.log" 2>&1 &
	MPID=$!
	i=0
	until [ -d "$MNT/mail/$SNAP/volume" ]; do
		i=$((i + 1))
		[ "$i" -lt 600 ] || die "mount did not come up (see $W/mount.log)"
		sleep 0.1
	done
}

mount_down() {
	fusermount3 -u "$MNT"
	wait "$MPID" || true
	MPID=
}

# cold_cats TOOL RUN: three cold reads of the message, the directory
# listed once before (as the main bench's mount-ls does)
cold_cats() {
	ls "$MNT/mail/$SNAP/volume/$(dirname "$msg")" >/dev/null
	for k in 1 2 3; do
		drop_caches
		o=$(python3 "$B/fsprobe.py" read "$MNT/mail/$SNAP/volume/$msg")
		printf 'cat-%s\t%s.%s\t%s\n' "$1" "$2" "$k" "$o" >>"$RES"
	done
}

r=1
while [ "$r" -le "$RUNS" ]; do
	drop_caches
	mount_up "$R/none"
	cold_cats none "$r"
	mount_down
	drop_caches
	mount_up "$R/enc"
	cold_cats enc "$r"
	rm -rf "$W/out"
	mkdir -p "$W/out"
	drop_caches
	meas rsync-mount "$r" rsync -a --numeric-ids \
		"$MNT/mail/$SNAP/volume/" "$W/out/"
	mount_down
	rm -rf "$W/out"
	mkdir -p "$W/out"
	drop_caches
	meas borg-extract "$r" sh -c 'cd "$1" && borg extract "$2"' sh \
		"$W/out" "$R/borg::day2"
	rm -rf "$W/out"
	say "mount run $r/$RUNS done"
	r=$((r + 1))
done

# --- figures: median of the runs ----------------------------------------------
python3 - "$RES" <<'EOF'
import statistics, sys
runs = {}
size = {}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if f[0] == "size":
        size[f[1]] = int(f[2])
        continue
    runs.setdefault(f[0], []).append(float(f[2].split()[0]))
def cpu(k):
    v = [float(l.split("\t")[3]) + float(l.split("\t")[4])
         for l in open(sys.argv[1]) if l.startswith(k + "\t")]
    return statistics.median(v) if v else 0
def med(k):
    v = runs.get(k, [])
    return (statistics.median(v), min(v), max(v)) if v else (0, 0, 0)
def show(k, unit="s", scale=1.0):
    m, lo, hi = med(k)
    return "%.3f %s (%.3f-%.3f, %d runs)" % (m * scale, unit, lo * scale,
                                              hi * scale, len(runs.get(k, [])))
for d in ("1", "2"):
    e, n = med("ingest-day%s-enc" % d)[0], med("ingest-day%s-none" % d)[0]
    ce, cn = cpu("ingest-day%s-enc" % d), cpu("ingest-day%s-none" % d)
    print("# encrypted: ingest day %s: encrypted %s, none %s, ratio %.3f;"
          " CPU (user+sys) %.2f s / %.2f s, ratio %.3f"
          % (d, show("ingest-day%s-enc" % d), show("ingest-day%s-none" % d),
             e / n if n else 0, ce, cn, ce / cn if cn else 0))
print("# encrypted: cold cat through the mount: encrypted %s; none %s"
      % (show("cat-enc", "ms", 1000), show("cat-none", "ms", 1000)))
e, b = med("rsync-mount")[0], med("borg-extract")[0]
print("# encrypted: rsync -a from the mount %s; borg extract "
      "(repokey-blake2) %s; ratio %.3f" % (show("rsync-mount"),
                                          show("borg-extract"),
                                          e / b if b else 0))
print("# encrypted: repository after two days: encrypted %d B, none %d B"
      % (size.get("enc", 0), size.get("none", 0)))
EOF
