#!/bin/sh
# t1032-commit-segments: an encrypted repository, local or sftp://, holds
# its index as commit segments under index/ (docs/FORMAT-2.md 5.3) and
# never index.db, catalog.db or any SQLite file; its working copy lives in
# the private cache.  Each backup adds one segment of the size of its
# change; forget adds two (the removal, the tombstone); prune publishes a base and removes the rest.
# With the cache gone, snapshots and restore work again.  A flipped bit in
# a segment is named and refused with exit 13 by a fresh cache, and by
# check from a cache that replayed it before; a segment this machine has
# read that goes away is refused as a rollback (exit 13), and taken once
# the cache the message names is removed.  A mount of the local one shows
# a snapshot published after it started.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"

"$MV_BIN" init --help 2>&1 | grep -q -- --encryption ||
	skip "init does not encrypt in this build"
set -e
export MAILVAULT_PASSPHRASE="correct horse battery"
export MAILVAULT_KDF_TEST=1
gen --out "$T/fx" --small --days 2 --seed 1032

# no_plain_index DIR: nothing SQLite-shaped in any byte of the repository
no_plain_index()
{
	for f in index.db catalog.db index.db-wal catalog.db-wal \
		index.sealed; do
		[ ! -e "$1/$f" ] || die "$1/$f exists"
	done
	if grep -rlaF "SQLite format 3" "$1" >"$T/sqlite-files"; then
		cat "$T/sqlite-files" >&2
		die "an SQLite header in $1"
	fi
	if grep -rlaF "CREATE TABLE" "$1" >"$T/sqlite-files"; then
		cat "$T/sqlite-files" >&2
		die "SQL schema text in $1"
	fi
}

# nseg DIR: segments under DIR/index
nseg()
{
	ls "$1/index" | grep -c '^[0-9a-f]\{32\}$' || true
}

# newest DIR: the segment written last
newest()
{
	ls -t "$1/index" | grep '^[0-9a-f]\{32\}$' | head -n 1
}

# flip_bit FILE OFFSET
flip_bit()
{
	python3 - "$1" "$2" <<'PY'
import sys
p, at = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, "rb").read())
b[at] ^= 0x04
open(p, "wb").write(b)
PY
}

count_snaps()
{
	"$MV" snapshots "$@" | grep -c '  mail  ' || true
}

# scenario R DIR [ssh options]: the whole story on one repository
scenario()
{
	R=$1
	D=$2
	shift 2
	say "$R: init and two backups, one segment each"
	assert_ok "$MV" init --encryption xchacha20-poly1305 "$@" "$R" \
		>/dev/null
	assert_eq 1 "$(nseg "$D")" "segments after init"
	assert_ok "$MV" backup "$R" "$@" --name mail --quiet \
		--time 2024-06-01T00:00:00Z vol="$T/fx/day1"
	assert_eq 2 "$(nseg "$D")" "segments after a backup"
	first=$(newest "$D")
	sleep 1 # ls -t tells the next one apart
	assert_ok "$MV" backup "$R" "$@" --name mail --quiet \
		--time 2024-06-02T00:00:00Z vol="$T/fx/day2"
	assert_eq 3 "$(nseg "$D")" "segments after two backups"
	second=$(newest "$D")
	[ "$first" != "$second" ] || die "the second backup wrote no segment"
	no_plain_index "$D"
	ls "$XDG_CACHE_HOME"/mailvault/*/index.db >/dev/null ||
		die "the index is not in the cache"
	"$MV" find "$R" "$@" --limit 5 >"$T/find0" ||
		die "find with the cache in place"
	[ -s "$T/find0" ] || die "find found nothing"

	say "$R: the cache removed, a fresh machine"
	rm -rf "$XDG_CACHE_HOME"
	assert_eq 2 "$(count_snaps "$R" "$@")" "snapshots from a fresh cache"
	rm -rf "$T/out"
	assert_ok "$MV" restore "$R" "$@" mail/latest:vol "$T/out" >/dev/null
	assert_same_tree "$T/fx/day2" "$T/out/vol"

	say "$R: a flipped bit in a segment is named"
	cp "$D/index/$second" "$T/good.seg"
	size=$(stat -c %s "$D/index/$second")
	for at in 0 30 $((size - 1)); do
		cp "$T/good.seg" "$D/index/$second"
		flip_bit "$D/index/$second" "$at"
		rm -rf "$T/cache2"
		set +e
		env XDG_CACHE_HOME="$T/cache2" "$MV" snapshots "$R" "$@" \
			2>"$T/err"
		rc=$?
		set -e
		assert_eq 13 "$rc" "exit status, bit $at of a segment flipped"
		assert_grep "segment 'index/$second' of .* (damaged|tampered)" \
			"$T/err"
	done
	# a cache that replayed it already opens; check reads every segment
	assert_ok "$MV" snapshots "$R" "$@" >/dev/null
	set +e
	"$MV" check "$R" "$@" >/dev/null 2>"$T/err"
	rc=$?
	set -e
	assert_eq 13 "$rc" "exit status of check with a segment damaged"
	assert_grep "segment 'index/$second' of .* (damaged|tampered)" \
		"$T/err"
	cp "$T/good.seg" "$D/index/$second"
	assert_ok "$MV" check "$R" "$@" >/dev/null

	say "$R: a segment this machine has read, gone, is a rollback"
	mv "$D/index/$second" "$T/held-back.seg"
	set +e
	"$MV" snapshots "$R" "$@" >/dev/null 2>"$T/err"
	rc=$?
	set -e
	assert_eq 13 "$rc" "exit status with a segment held back"
	assert_grep "segment 'index/$second' .* is gone" "$T/err"
	assert_fail "$MV" backup "$R" "$@" --name mail --quiet \
		vol="$T/fx/day2" 2>"$T/err"
	assert_grep "is gone" "$T/err"
	say "$R: rolled back on purpose: the cache the message names removed"
	ip=$(sed -n "s/.*remove '\([^']*\)' and run again.*/\1/p" "$T/err")
	[ -f "$ip" ] || die "the message names no file: $(cat "$T/err")"
	rm "$ip"
	assert_eq 1 "$(count_snaps "$R" "$@")" \
		"snapshots without the held-back segment, taken on purpose"
	mv "$T/held-back.seg" "$D/index/$second"
	assert_eq 2 "$(count_snaps "$R" "$@")" \
		"snapshots once the segment is back"

	say "$R: forget adds segments, prune replaces them with one base"
	# one for the snapshot removed, one for its tombstone
	assert_ok "$MV" forget "$R" "$@" --keep-last 1 >/dev/null
	assert_eq 5 "$(nseg "$D")" "segments after forget"
	assert_eq 1 "$(count_snaps "$R" "$@")" "snapshots after forget"
	assert_ok "$MV" prune "$R" "$@" >/dev/null
	assert_eq 1 "$(nseg "$D")" "segments after prune"
	rm -rf "$XDG_CACHE_HOME"
	assert_eq 1 "$(count_snaps "$R" "$@")" "snapshots after prune, fresh"
	assert_ok "$MV" check --read-data "$R" "$@" >/dev/null
	rm -rf "$T/out"
	assert_ok "$MV" restore "$R" "$@" mail/latest:vol "$T/out" >/dev/null
	assert_same_tree "$T/fx/day2" "$T/out/vol"
	no_plain_index "$D"

	# the mount's handle replays what a later backup publishes
	if [ "$R" = "$D" ]; then
		say "$R: a mount shows the snapshot a later backup publishes"
		mount_mv "$R" "$T/mnt"
		ls "$T/mnt/mail" >/dev/null
		assert_ok "$MV" backup "$R" --name mail --quiet \
			--time 2024-06-05T00:00:00Z vol="$T/fx/day1"
		n=300
		while [ ! -d "$T/mnt/mail/2024-06-05T000000Z" ] &&
			[ $n -gt 0 ]; do
			sleep 0.1
			n=$((n - 1))
		done
		[ -d "$T/mnt/mail/2024-06-05T000000Z" ] ||
			die "the mount does not show the new snapshot"
		unmount_mv "$T/mnt"
	fi
	rm -rf "$XDG_CACHE_HOME"
}

scenario "$T/repo" "$T/repo"

require_cmd ssh-keygen
require_fuse
sshd_start
sshd_trust
scenario "sftp://root@127.0.0.1:$SSHD_PORT$T/srepo" "$T/srepo" -i "$SSH_KEY"
ok
