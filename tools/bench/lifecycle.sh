#!/bin/sh
# lifecycle.sh: issue 9's benchmark.  A year of small generated dailies is
# backed up into mailvault and into borg (zstd,3); then `mailvault forget`
# + `mailvault prune` and `borg prune` + `borg compact` run with the same
# policy (7 daily, 4 weekly, 12 monthly); wall time and peak RSS of each,
# and the repository sizes afterwards against a mailvault repository that
# only ever held the kept snapshots (goal: within 5 %).
#
# usage: tools/bench/lifecycle.sh WORKDIR   (MV, LC_DAYS=365 in the env)
# Prints "# lifecycle: ..." lines; run by tools/bench.sh.
set -eu
W=$1
TOP=$(cd "$(dirname "$0")/../.." && pwd)
MV=${MV:-$TOP/build/mailvault}
DAYS=${LC_DAYS:-365}
export TZ=UTC BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
POLICY="--keep-daily 7 --keep-weekly 4 --keep-monthly 12"

say() { echo "# lifecycle: $*"; }
day_time() { date -u -d "2024-01-01 +$1 days" +%Y-%m-%dT03:00:00Z; }
# bytes of the files under a directory (du -sb would add directory sizes)
size() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }
# run CMD...: "SECONDS PEAK_KiB" of one command
run() {
	/usr/bin/time -f '%e %M' -o "$W/time.out" "$@" >/dev/null 2>&1 ||
		{ say "failed: $*"; return 1; }
	cat "$W/time.out"
}

rm -rf "$W" && mkdir -p "$W"
python3 "$TOP/tools/gen_fixture.py" --out "$W/fx" --small --messages 40 \
	--users 2 --days "$DAYS" --link --quiet
"$MV" init --encryption none "$W/mv" >/dev/null
borg init --encryption=none "$W/borg" >/dev/null 2>&1
d=1
while [ "$d" -le "$DAYS" ]; do
	t=$(day_time "$d")
	"$MV" backup "$W/mv" --name mail --quiet --no-mail --time "$t" \
		v="$W/fx/day$d"
	(cd "$W/fx/day$d" && borg create --compression zstd,3 \
		--timestamp "${t%Z}" "$W/borg::day$d" . >/dev/null 2>&1)
	d=$((d + 1))
done
say "$DAYS dailies: mailvault $(size "$W/mv") B, borg $(size "$W/borg") B"

# the kept set, from mailvault's own dry run (borg keeps the same: t9001)
# shellcheck disable=SC2086
"$MV" forget "$W/mv" $POLICY --dry-run --json |
	python3 -c '
import json, sys
for j in json.load(sys.stdin)["jobs"]:
    for s in j["snapshots"]:
        if s["keep"]:
            print(s["time"])' >"$W/kept"
say "policy $POLICY keeps $(wc -l <"$W/kept") snapshots"

# shellcheck disable=SC2086
mf=$(run "$MV" forget "$W/mv" $POLICY)
mp=$(run "$MV" prune "$W/mv")
# shellcheck disable=SC2086
bp=$(run borg prune $POLICY "$W/borg")
bc=$(run borg compact "$W/borg")
say "mailvault forget: ${mf% *} s, peak ${mf#* } KiB; prune: ${mp% *} s, peak ${mp#* } KiB"
say "borg prune: ${bp% *} s, peak ${bp#* } KiB; compact: ${bc% *} s, peak ${bc#* } KiB"

# a repository that only ever held the kept snapshots, with the same
# chunker key (another key cuts the changed files elsewhere, which alone
# moves the size by a few percent)
"$MV" init --encryption none --copy-chunker-params "$W/mv" "$W/ref" >/dev/null
while read -r t; do
	d=$(( ($(date -u -d "$t" +%s) - $(date -u -d 2024-01-01T03:00:00Z +%s)) / 86400 ))
	"$MV" backup "$W/ref" --name mail --quiet --no-mail --time "$t" \
		v="$W/fx/day$d"
done <"$W/kept"
mv_s=$(size "$W/mv/packs")
ref_s=$(size "$W/ref/packs")
say "after prune: mailvault packs $mv_s B, kept-only packs $ref_s B, ratio $(echo "$mv_s $ref_s" | awk '{printf "%.3f", $1 / $2}') (goal <= 1.05); borg $(size "$W/borg") B"
"$MV" check --read-data "$W/mv" >/dev/null && say "check --read-data after prune: clean"
