#!/bin/sh
# t5007: Stalwart server dumps (stalwart --export DIR, v0.15+) in a
# directory source.  The raw subspace_<c> files are kept byte for byte;
# the messages of subspace_t are listed under mail/stalwart-dump/ without
# folders, read through the view's transform (the message inside the LZ4
# frame) with their exact bytes and sizes, and catalogued; a corrupt frame
# keeps the messages before it, is counted, and never stops the backup.
. "$(dirname "$0")/../lib/test-lib.sh"

require_cmd lz4 b3sum
G=$TOP/tools/gen_stalwart.py
R=$T/repo
python3 "$G" --dump --out "$T/src/export" --messages 25 \
	--manifest "$T/m.json"
[ "$(od -An -tx1 -N4 "$T/src/export/subspace_t" | tr -d ' ')" = 04224d18 ] ||
	die "fixture: not an LZ4 frame"

"$MV" init "$R" >/dev/null
"$MV" backup "$R" --name sd --time 2024-06-01T00:00:00Z --json \
	s="$T/src" >"$T/b1.json" || die "backup failed"
assert_grep '"dumps":1,"dump_messages":25,"dump_errors":0' "$T/b1.json"
assert_grep '"messages":25,' "$T/b1.json"
S=sd/2024-06-01T000000Z
"$MV" ls "$R" "$S:mail/stalwart-dump" >"$T/l"
assert_eq 25 "$(wc -l <"$T/l" | tr -d ' ')" "dump messages listed"
assert_all_match '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{4} .+ - .+ \[[0-9a-f]{8}\]\.eml$' \
	"$T/l"

# every message: the exact bytes of the record, size right in ls -l
python3 - "$T/m.json" "$T/src/export/subspace_t" "$T/want" <<'PY'
import json, os, subprocess, sys
m = json.load(open(sys.argv[1]))
raw = subprocess.run(["lz4", "-dc", sys.argv[2]], stdout=subprocess.PIPE,
                     check=True).stdout
assert raw[0] == 0x7B and raw[1:2] == b"t"
pos, out = 6, os.makedirs(sys.argv[3], exist_ok=True)
def leb(p):
    v = s = 0
    while True:
        b = raw[p]; p += 1
        v |= (b & 0x7F) << s; s += 7
        if not b & 0x80:
            return v, p
while pos < len(raw):
    kl, pos = leb(pos); key = raw[pos:pos + kl]; pos += kl
    vl, pos = leb(pos); val = raw[pos:pos + vl]; pos += vl
    subj = [x["subject"] for x in m["messages"] if x["key"] == key.hex()][0]
    num = subj.rsplit("#", 1)[1]
    open(os.path.join(sys.argv[3], num), "wb").write(val)
PY
n=0
while IFS= read -r name; do
	num=$(printf '%s' "$name" | sed 's/.*#\([0-9]*\) \[.*/\1/')
	"$MV" cat "$R" "$S:mail/stalwart-dump/$name" >"$T/got"
	cmp "$T/want/$num" "$T/got" || die "message #$num differs"
	n=$((n + 1))
done <"$T/l"
assert_eq 25 "$n" "messages compared"
"$MV" ls -l "$R" "$S:mail/stalwart-dump" >"$T/ll" 2>/dev/null ||
	"$MV" ls "$R" "$S:mail/stalwart-dump" -l >"$T/ll"
first=$(head -1 "$T/l")
num=$(printf '%s' "$first" | sed 's/.*#\([0-9]*\) \[.*/\1/')
assert_grep " $(stat -c %s "$T/want/$num") .*#$num \[" "$T/ll"

# catalogued: find by sender
"$MV" find "$R" --from Jürgen >"$T/f"
assert_grep '^sd/2024-06-01T000000Z/mail/stalwart-dump/.*Jürgen Müller' "$T/f"

# the raw dump is kept byte for byte
mkdir "$T/raw"
"$MV" restore "$R" "$S:s" "$T/raw" >/dev/null
for f in subspace_t subspace_p subspace_i; do
	cmp "$T/src/export/$f" "$T/raw/s/export/$f" || die "$f changed"
done

# a damaged frame: counted, what came before it listed, backup goes on
python3 "$G" --dump --out "$T/src/bad" --messages 400 --seed 9 \
	--corrupt-dump
"$MV" backup "$R" --name sd --time 2024-06-02T00:00:00Z --json \
	s="$T/src" >"$T/b2.json" || die "backup with a damaged dump failed"
assert_grep '"dumps":2,' "$T/b2.json"
assert_grep '"dump_errors":1,' "$T/b2.json"
got=$(sed -n 's/.*"dump_messages":\([0-9]*\).*/\1/p' "$T/b2.json")
[ "$got" -ge 25 ] && [ "$got" -lt 425 ] ||
	die "damaged dump: $got messages listed"
"$MV" check "$R" >/dev/null
ok
