#!/bin/sh
# sealed-index-make.sh: how tests/data/sealed-index-repo.tar.zst was made.
#
# Usage (from the source tree, with a binary that still writes
# index.sealed - commit 7fcf6ff^ or older):
#     sh tests/data/sealed-index-make.sh MAILVAULT OUTDIR
#
# An encrypted repository (passphrase "legacy horse", Argon2id at the test
# cost) whose index is index.sealed, as encrypted repositories were before
# commit segments: two snapshots "mail" of a three-message folder, the
# third message new on the second day.  t1035-sealed-index-migration
# reads it and lets a newer binary migrate it.
set -eu
MV=$1
OUT=$2
TOP=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$OUT"
mkdir -p "$OUT/src/cur"
cd "$OUT"
export XDG_CACHE_HOME=$OUT/cache MAILVAULT_PASSPHRASE="legacy horse"
export MAILVAULT_KDF_TEST=1
printf 'Subject: one\n\nfirst\n' >src/cur/1
printf 'Subject: two\n\nsecond\n' >src/cur/2
touch -d 2024-01-01 src/cur/1 src/cur/2 src/cur src
"$MV" init --encryption xchacha20-poly1305 repo >/dev/null
"$MV" backup repo --name mail --quiet --time 2024-06-01T00:00:00Z vol=src
printf 'Subject: three\n\nthird\n' >src/cur/3
touch -d 2024-01-02 src/cur/3
"$MV" backup repo --name mail --quiet --time 2024-06-02T00:00:00Z vol=src
[ -f repo/index.sealed ] || { echo "no index.sealed: a newer binary" >&2; exit 1; }
tar -C "$OUT" -cf - repo | zstd -19 -q -o "$TOP/tests/data/sealed-index-repo.tar.zst" -f
