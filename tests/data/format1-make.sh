#!/bin/sh
# format1-make.sh: how tests/data/format1-repo.tar.zst was made.
#
# Usage (as root, from the source tree, with a binary of format 1 -
# commit 0272db6 or older):  sh tests/data/format1-make.sh MAILVAULT OUTDIR
#
# Writes OUTDIR/src (the source tree), OUTDIR/repo (one snapshot "old" of
# it, mail view on) and, in tests/data, format1-repo.tar.zst (the
# repository and its catalogue) and format1-src.digest.zst (the source tree's
# tests/lib/tree-digest.py listing), which t1030-format1-compat reads.
# The tree has a directory large enough that format 1 cut its tree object
# into several chunks, hard links, symlinks, xattrs, an empty directory,
# a non-UTF-8 name and a small maildir (so the repository has mail view
# entries and a catalogue).
set -eu
MV=$1
OUT=$2
TOP=$(cd "$(dirname "$0")/../.." && pwd)
S=$OUT/src
rm -rf "$OUT"
mkdir -p "$S/big" "$S/empty" "$S/links/sub" \
	"$S/Maildir/cur" "$S/Maildir/new" "$S/Maildir/tmp"
i=0
while [ $i -lt 900 ]; do
	printf 'file %d\n' $i >"$S/big/$(printf '17%08d.M%dP%d.host,S=%d:2,S' $i $i $((i * 7)) $((i * 13)))"
	i=$((i + 1))
done
printf 'hello\n' >"$S/links/orig"
ln "$S/links/orig" "$S/links/sub/hard"
ln -s ../orig "$S/links/sub/rel"
ln -s /nowhere "$S/links/dangling"
printf 'latin-1\n' >"$S/$(printf 'caf\351')"
: >"$S/empty-file"
chmod 0640 "$S/links/orig"
chown 1234:5678 "$S/links/orig"
setfattr -n user.color -v blue "$S/links/orig"
n=0
for m in "$TOP"/tests/data/mail/0[1-5]-*.eml; do
	n=$((n + 1))
	cp "$m" "$S/Maildir/cur/$((1700000000 + n)).M${n}P1.host,S=$(wc -c <"$m"):2,S"
done
find "$S" -depth ! -type l -exec touch -d '2024-02-03 04:05:06.123456789' {} +
touch -h -d '2023-01-02 03:04:05.5' "$S/links/sub/rel"
"$MV" init "$OUT/repo" >/dev/null
"$MV" backup "$OUT/repo" --name old --time 2024-02-04T00:00:00Z "vol=$S" \
	>/dev/null
"$MV" check "$OUT/repo" --read-data >/dev/null
python3 "$TOP/tests/lib/tree-digest.py" "$S" |
	zstd -19 -q -f -o "$TOP/tests/data/format1-src.digest.zst"
tar -C "$OUT" -cf - repo | zstd -19 -q -o "$TOP/tests/data/format1-repo.tar.zst" -f
