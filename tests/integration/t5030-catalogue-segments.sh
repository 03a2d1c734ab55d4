#!/bin/sh
# t5030-catalogue-segments: the mail catalogue travels with the repository
# (issue 18 "Search works from any machine", FORMAT-2 section 3).  Three
# daily backups into an encrypted local repository write one segment each
# under catalog/ (the first a base), sealed: no subject in clear; with the
# private cache wiped, `find` answers exactly what the backup host's
# catalogue answered; a second machine that backs up the next day first
# replays the segments, and the first machine then finds its snapshot too;
# find --rebuild gives the same answers; forget + prune leave one base
# segment and a fresh machine finds the kept snapshots; a damaged segment
# is named in a warning (exit 3) and the others still answer.  The same from an
# encrypted sftp:// repository with the cache wiped.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"

require_mv
export MAILVAULT_PASSPHRASE="catalogue segments"
export MAILVAULT_KDF_TEST=1
R=$T/repo
gen --out "$T/fx" --small --days 4 --seed 5030

# on MACHINE CMD...: run CMD with MACHINE's private cache
on()
{
	_m=$1
	shift
	XDG_CACHE_HOME=$T/cache-$_m "$@"
}

backup()
{
	on "$1" "$MV" backup --quiet "$2" --name mail \
		--time "2024-06-0$3T00:00:00Z" "vol=$T/fx/day$3"
}

nsegs()
{
	find "$1/catalog" -type f | wc -l
}

say "three backups from machine a: three segments, nothing in clear"
assert_ok "$MV" init --encryption xchacha20-poly1305 "$R" >/dev/null 2>&1
for d in 1 2 3; do
	assert_ok backup a "$R" "$d"
done
assert_eq 3 "$(nsegs "$R")" "segments after three backups"
subj=$(on a "$MV" find "$R" --json --limit 1 | python3 -c '
import json, sys
print(json.loads(sys.stdin.readline())["subject"])')
[ -n "$subj" ] || die "no subject found on the backup host"
word=$(echo "$subj" | tr -c 'A-Za-z\n' ' ' | awk '{ for (i = 1; i <= NF; i++)
	if (length($i) > 5) { print $i; exit } }')
[ -n "$word" ] || die "no word in '$subj'"
if grep -rl -- "$word" "$R/catalog" >/dev/null; then
	die "'$word' of a subject is in a catalogue segment in clear"
fi
on a "$MV" find "$R" --json >"$T/a.json"
[ "$(wc -l <"$T/a.json")" -gt 50 ] || die "too few hits on the backup host"

say "a fresh machine finds what the backup host finds"
on b "$MV" find "$R" --json >"$T/b.json"
assert_ok cmp "$T/a.json" "$T/b.json"
on b "$MV" find "$R" --subject "$word" >"$T/b.subj"
on a "$MV" find "$R" --subject "$word" >"$T/a.subj"
assert_ok cmp "$T/a.subj" "$T/b.subj"
[ -s "$T/b.subj" ] || die "find --subject '$word' found nothing"

say "machine b backs up day 4; machine a then finds it"
assert_ok backup b "$R" 4
assert_eq 4 "$(nsegs "$R")" "segments after the fourth backup"
on a "$MV" find "$R" --json >"$T/a4.json"
on b "$MV" find "$R" --json >"$T/b4.json"
on c "$MV" find "$R" --json >"$T/c4.json"
assert_ok cmp "$T/a4.json" "$T/b4.json"
assert_ok cmp "$T/a4.json" "$T/c4.json"
grep -q '2024-06-04T000000Z' "$T/c4.json" || die "day 4 not found"

say "find --rebuild rebuilds the same catalogue from the snapshots"
on a "$MV" find "$R" --rebuild --json >"$T/a4r.json" 2>/dev/null
assert_ok cmp "$T/a4.json" "$T/a4r.json"

say "forget + prune: one base segment, the kept snapshots found"
assert_ok on a "$MV" forget "$R" --keep-last 2 >/dev/null
assert_ok on a "$MV" prune "$R" >/dev/null
assert_eq 1 "$(nsegs "$R")" "segments after prune"
on a "$MV" find "$R" --json >"$T/ap.json"
on d "$MV" find "$R" --json >"$T/dp.json"
assert_ok cmp "$T/ap.json" "$T/dp.json"
grep -q '2024-06-04T000000Z' "$T/dp.json" || die "day 4 lost by prune"
# machine b had applied the old segments: it takes the base instead
on b "$MV" find "$R" --json >"$T/bp.json"
assert_ok cmp "$T/ap.json" "$T/bp.json"

say "a damaged segment: a warning, the rest still answers"
assert_ok on a "$MV" backup --quiet "$R" --name mail \
	--time 2024-06-04T12:00:00Z "vol=$T/fx/day4"
seg=$(ls -t "$R/catalog" | head -n 1)
python3 - "$R/catalog/$seg" <<'EOF'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[len(b) // 2] ^= 0x10
open(sys.argv[1], "wb").write(b)
EOF
assert_exit 3 on e "$MV" find "$R" --json >"$T/ep.json" 2>"$T/ep.err"
assert_grep 'catalogue segments of the repository cannot be read' \
	"$T/ep.err"
assert_ok cmp "$T/ap.json" "$T/ep.json"

say "encrypted sftp:// repository, cache wiped"
require_cmd ssh-keygen
sshd_start
sshd_trust
S="sftp://root@127.0.0.1:$SSHD_PORT$T/srepo"
assert_ok "$MV" init --encryption xchacha20-poly1305 "$S" -i "$SSH_KEY" \
	>/dev/null 2>&1
for d in 1 2; do
	assert_ok on s "$MV" backup --quiet "$S" -i "$SSH_KEY" --name mail \
		--time "2024-06-0${d}T00:00:00Z" "vol=$T/fx/day$d"
done
assert_eq 2 "$(nsegs "$T/srepo")" "segments in the sftp repository"
on s "$MV" find "$S" -i "$SSH_KEY" --json >"$T/s.json"
rm -rf "$T/cache-s"
on s "$MV" find "$S" -i "$SSH_KEY" --json >"$T/s2.json"
[ "$(wc -l <"$T/s.json")" -gt 50 ] || die "too few hits over sftp"
assert_ok cmp "$T/s.json" "$T/s2.json"
on s "$MV" find "$S" -i "$SSH_KEY" --subject "$word" >"$T/s.subj"
[ -s "$T/s.subj" ] || die "find --subject '$word' over sftp found nothing"
ok
