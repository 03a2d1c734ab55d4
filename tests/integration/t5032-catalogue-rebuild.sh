#!/bin/sh
# t5032-catalogue-rebuild: a catalogue segment deleted and another damaged
# (issue 18: "a command rebuilds it from the snapshots when it is missing
# or damaged").  On a fresh machine `find` names the problem and exits 3
# (an answer that misses snapshots); so does a repository whose newest
# segment is gone (no later segment refers to it: the snapshot's mail
# view says it is missing).  `find --rebuild` walks the snapshots' mail
# views, stores one base segment in place of every segment, and answers
# exactly what the backup host answered before (find --json compared
# byte for byte); a fresh machine, the backup host and the next backup
# all agree with it.  The same in an encrypted sftp:// repository.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"

require_mv
export MAILVAULT_PASSPHRASE="catalogue rebuild"
export MAILVAULT_KDF_TEST=1
R=$T/repo
gen --out "$T/fx" --small --days 5 --seed 5032

# on MACHINE CMD...: run CMD with MACHINE's private cache
on()
{
	_m=$1
	shift
	XDG_CACHE_HOME=$T/cache-$_m "$@"
}

nsegs()
{
	find "$1/catalog" -type f | wc -l
}

# the segments oldest first (each backup writes one)
segs()
{
	ls -tr "$1/catalog"
}

flip()
{
	python3 - "$1" <<'EOF'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[len(b) // 2] ^= 0x10
open(sys.argv[1], "wb").write(b)
EOF
}

say "four backups from machine a: four deltas"
assert_ok "$MV" init --encryption xchacha20-poly1305 "$R" >/dev/null
for d in 1 2 3 4; do
	assert_ok on a "$MV" backup --quiet "$R" --name mail \
		--time "2024-06-0${d}T00:00:00Z" "vol=$T/fx/day$d"
	sleep 0.01 # distinct mtimes: segs lists them in order
done
assert_eq 4 "$(nsegs "$R")" "segments after four backups"
assert_ok on a "$MV" find "$R" --json >"$T/before.json"
[ "$(wc -l <"$T/before.json")" -gt 50 ] || die "too few hits"
grep -q '2024-06-04T000000Z' "$T/before.json" || die "day 4 not found"

say "the newest segment deleted: find says the snapshot is missing"
cp -a "$R" "$T/last"
rm "$T/last/catalog/$(segs "$T/last" | tail -n 1)"
assert_exit 3 on b0 "$MV" find "$T/last" --json >"$T/last.json" \
	2>"$T/last.err"
assert_grep '1 snapshots with a mail view are not in the catalogue' \
	"$T/last.err"
assert_grep "find --rebuild" "$T/last.err"
grep -q '2024-06-04T000000Z' "$T/last.json" &&
	die "day 4 found without its segment"
# asked again: still named (the check is not a one-off)
assert_exit 3 on b0 "$MV" find "$T/last" --json >/dev/null 2>"$T/last2.err"
assert_grep 'not in the catalogue' "$T/last2.err"

say "day 2's segment deleted, day 3's damaged: named, exit 3"
set -- $(segs "$R")
rm "$R/catalog/$2"
flip "$R/catalog/$3"
assert_exit 3 on b "$MV" find "$R" --json >"$T/b.json" 2>"$T/b.err"
assert_grep '1 catalogue segments of the repository cannot be read and 1 do not follow on' \
	"$T/b.err"
assert_grep "catalog/$3" "$T/b.err"
assert_grep "find --rebuild" "$T/b.err"
grep -q '2024-06-03T000000Z' "$T/b.json" && die "day 3 found from damage"
cmp -s "$T/before.json" "$T/b.json" && die "nothing missed"

say "find --rebuild: the answers of before, one base segment"
assert_ok on b "$MV" find "$R" --rebuild --json >"$T/rb.json" \
	2>"$T/rb.err"
assert_grep 'rebuilt the mail catalogue from 4 snapshots' "$T/rb.err"
assert_ok cmp "$T/before.json" "$T/rb.json"
assert_eq 1 "$(nsegs "$R")" "segments after the rebuild"

say "a fresh machine and the backup host agree with it"
assert_ok on c "$MV" find "$R" --json >"$T/c.json" 2>"$T/c.err"
assert_ok cmp "$T/before.json" "$T/c.json"
assert_no_grep 'warning' "$T/c.err"
assert_ok on a "$MV" find "$R" --json >"$T/a.json"
assert_ok cmp "$T/before.json" "$T/a.json"

say "the next backup follows on from the rebuilt base"
assert_ok on a "$MV" backup --quiet "$R" --name mail \
	--time 2024-06-05T00:00:00Z "vol=$T/fx/day5"
assert_ok on a "$MV" find "$R" --json >"$T/a5.json"
assert_ok on d "$MV" find "$R" --json >"$T/d5.json"
assert_ok cmp "$T/a5.json" "$T/d5.json"
grep -q '2024-06-05T000000Z' "$T/d5.json" || die "day 5 not found"

say "encrypted sftp:// repository: deleted and damaged, rebuilt"
require_cmd ssh-keygen
sshd_start
sshd_trust
S="sftp://root@127.0.0.1:$SSHD_PORT$T/srepo"
assert_ok "$MV" init --encryption xchacha20-poly1305 "$S" -i "$SSH_KEY" \
	>/dev/null
for d in 1 2 3; do
	assert_ok on s "$MV" backup --quiet "$S" -i "$SSH_KEY" --name mail \
		--time "2024-06-0${d}T00:00:00Z" "vol=$T/fx/day$d"
	sleep 0.01
done
assert_ok on s "$MV" find "$S" -i "$SSH_KEY" --json >"$T/s.json"
set -- $(segs "$T/srepo")
rm "$T/srepo/catalog/$2"
flip "$T/srepo/catalog/$3"
assert_exit 3 on t "$MV" find "$S" -i "$SSH_KEY" --json >/dev/null \
	2>"$T/t.err"
assert_grep 'cannot be read' "$T/t.err"
assert_ok on t "$MV" find "$S" -i "$SSH_KEY" --rebuild --json \
	>"$T/t.json" 2>/dev/null
assert_ok cmp "$T/s.json" "$T/t.json"
assert_eq 1 "$(nsegs "$T/srepo")" "segments after the sftp rebuild"
assert_ok on u "$MV" find "$S" -i "$SSH_KEY" --json >"$T/u.json"
assert_ok cmp "$T/s.json" "$T/u.json"
ok
