#!/bin/sh
# t5036-view-unchanged-rebackup: issue 15, "an unchanged re-backup adds
# under 64 KiB" with the mail view on.  The same tar.gz backed up twice
# under one name an hour apart: the second backup adds a fixed amount
# (the snapshot record, the root and label trees, one catalogue delta,
# one pack's table and trailer), nothing per message.  Two fixtures of
# 300 and 3000 messages, unencrypted and encrypted (whose catalogue and
# index copy live in the cache directory, counted too): the second
# backup adds under 2 KiB + 0.65 bytes a file (64 KiB for 100k files),
# the larger fixture no more than 256 bytes over the smaller (a view or
# catalogue that wrote 2 bytes a message would add 5.4 KB), and the view
# no more than 512 bytes over the same re-backup with --no-mail.
. "$(dirname "$0")/../lib/test-lib.sh"

require_mv
export MAILVAULT_PASSPHRASE="unchanged re-backup"
export MAILVAULT_KDF_TEST=1
for n in 300 3000; do
	gen --out "$T/fx$n" --small --profile realmail --messages "$n" \
		--users 3 --seed 5036 --tar-only
done

# the bytes of the files under the given directories; an SQLite file (the
# index, the catalogue) counts the payload of its pages (dbstat), not its
# size: a row that happens to split a full page grows the file by a whole
# page (4 KiB, by chance, as the keys are random), which says nothing of
# what a backup stores
bytes()
{
	python3 - "$@" <<'EOF'
import os
import sqlite3
import sys

total = 0
for top in sys.argv[1:]:
    for d, _, names in os.walk(top):
        for n in names:
            p = os.path.join(d, n)
            with open(p, "rb") as f:
                is_db = f.read(16) == b"SQLite format 3\0"
            if not is_db:
                total += os.path.getsize(p)
                continue
            c = sqlite3.connect("file:%s?immutable=1" % p, uri=True)
            total += c.execute("SELECT sum(payload) FROM dbstat").fetchone()[0] or 0
            c.close()
print(total)
EOF
}

# rebackup N MODE [--no-mail]: what the second of two backups of fixture
# N's tar into a fresh repository (MODE plain or enc) adds, in bytes of
# the repository's and its cache directory's files; checks that
# stats --json counts no more than that
rebackup()
{
	_n=$1
	_m=$2
	shift 2
	_w=$T/$_n-$_m${1:-}
	mkdir -p "$_w"
	XDG_CACHE_HOME=$_w/cache
	export XDG_CACHE_HOME
	if [ "$_m" = enc ]; then
		assert_ok "$MV" init --encryption xchacha20-poly1305 \
			"$_w/repo" >/dev/null
	else
		assert_ok "$MV" init "$_w/repo" >/dev/null
	fi
	assert_ok "$MV" backup --quiet "$@" "$_w/repo" --name mail \
		--time 2024-06-01T03:00:00Z "volume=$T/fx$_n/day1.tar.gz"
	_b=$(bytes "$_w/repo" "$_w/cache")
	find "$_w/repo" "$_w/cache" -type f -printf '%s %P\n' 2>/dev/null |
		sort -k2 >"$_w/files1"
	assert_ok "$MV" backup --quiet "$@" "$_w/repo" --name mail \
		--time 2024-06-01T04:00:00Z "volume=$T/fx$_n/day1.tar.gz"
	_a=$(bytes "$_w/repo" "$_w/cache")
	find "$_w/repo" "$_w/cache" -type f -printf '%s %P\n' 2>/dev/null |
		sort -k2 >"$_w/files2"
	diff "$_w/files1" "$_w/files2" | sed -n 's/^[<>] /# /p' >&2 || true
	_s=$("$MV" stats --json "$_w/repo" | python3 -c '
import json, sys
d = json.load(sys.stdin)
s = d["per_snapshot"]
assert len(s) == 2, "%d snapshots" % len(s)
print(s[-1]["added"])')
	[ "$_s" -le $((_a - _b)) ] ||
		die "$_n $_m: stats counts $_s bytes added, the files grew by $((_a - _b))"
	echo $((_a - _b))
}

for m in plain enc; do
	files=$(tar -tzf "$T/fx3000/day1.tar.gz" | grep -vc '/$')
	small=$(rebackup 300 "$m")
	large=$(rebackup 3000 "$m")
	nomail=$(rebackup 3000 "$m" --no-mail)
	say "$m: the second backup adds $small bytes (300 messages)," \
		"$large bytes (3000 messages, $files files), $nomail with --no-mail"
	bound=$((2048 + files * 65536 / 100000))
	[ "$large" -lt "$bound" ] ||
		die "$m: an unchanged re-backup of $files files added $large bytes (bound $bound)"
	[ "$large" -le $((small + 256)) ] ||
		die "$m: 2700 more messages made an unchanged re-backup add $((large - small)) bytes more"
	[ "$large" -le $((nomail + 512)) ] ||
		die "$m: the view made an unchanged re-backup add $((large - nomail)) bytes more"
	# both snapshots have the same view
	XDG_CACHE_HOME=$T/3000-$m/cache
	export XDG_CACHE_HOME
	for t in 030000Z 040000Z; do
		"$MV" ls -l "$T/3000-$m/repo" \
			"mail/2024-06-01T$t:mail/alice@example.org/INBOX" \
			>"$T/view-$m-$t"
	done
	[ "$(grep -c '\.eml$' "$T/view-$m-030000Z")" -gt 50 ] ||
		die "$m: no view in the first snapshot"
	assert_ok cmp "$T/view-$m-030000Z" "$T/view-$m-040000Z"
done
ok
