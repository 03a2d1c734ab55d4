#!/bin/sh
# t1032-sealed-index: an encrypted repository, local or sftp://, never
# holds index.db or catalog.db, nor any SQLite file: its index is
# index.sealed and its working copy and catalogue live in the private
# cache.  With the cache gone, snapshots, restore and (after a backup
# from this machine) find work again; find says why it has nothing
# before.  A flipped bit in index.sealed is named and refused with exit
# 13 (a damaged repository); an older index.sealed put back is refused
# by a cache that saw a newer one; a publication that died between its
# two renames is recovered; a mount of the local one shows a snapshot
# published after it started.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"

"$MV_BIN" init --help 2>&1 | grep -q -- --encryption ||
	skip "init does not encrypt in this build"
set -e
export MAILVAULT_PASSPHRASE="correct horse battery"
export XDG_CACHE_HOME=$T/cache
gen --out "$T/fx" --small --days 2 --seed 1032

# no_plain_index DIR: nothing SQLite-shaped in any byte of the repository
no_plain_index()
{
	for f in index.db catalog.db index.db-wal catalog.db-wal; do
		[ ! -e "$1/$f" ] || die "$1/$f exists"
	done
	[ -f "$1/index.sealed" ] || die "no index.sealed in $1"
	if grep -rlaF "SQLite format 3" "$1" >"$T/sqlite-files"; then
		cat "$T/sqlite-files" >&2
		die "an SQLite header in $1"
	fi
	if grep -rlaF "CREATE TABLE" "$1" >"$T/sqlite-files"; then
		cat "$T/sqlite-files" >&2
		die "SQL schema text in $1"
	fi
}

# flip_bit FILE OFFSET
flip_bit()
{
	python3 - "$1" "$2" <<'EOF'
import sys
p, at = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, "rb").read())
b[at] ^= 0x04
open(p, "wb").write(b)
EOF
}

# scenario R DIR [ssh options]: the whole story on one repository
scenario()
{
	R=$1
	D=$2
	shift 2
	say "$R: init and two backups"
	assert_ok "$MV" init --encryption xchacha20-poly1305 "$@" "$R" \
		>/dev/null
	assert_ok "$MV" backup "$R" "$@" --name mail --quiet \
		--time 2024-06-01T00:00:00Z vol="$T/fx/day1"
	cp "$D/index.sealed" "$T/older.sealed"
	assert_ok "$MV" backup "$R" "$@" --name mail --quiet \
		--time 2024-06-02T00:00:00Z vol="$T/fx/day2"
	no_plain_index "$D"
	ls "$XDG_CACHE_HOME"/mailvault/*/catalog.db >/dev/null ||
		die "the catalogue is not in the cache"
	"$MV" find "$R" "$@" --limit 5 >"$T/find0" ||
		die "find with the cache in place"
	[ -s "$T/find0" ] || die "find found nothing"

	say "$R: the cache removed, a fresh machine"
	rm -rf "$XDG_CACHE_HOME"
	assert_eq 2 "$("$MV" snapshots "$R" "$@" | grep -c '  mail  ')" \
		"snapshots from a fresh cache"
	rm -rf "$T/out"
	assert_ok "$MV" restore "$R" "$@" mail/latest:vol "$T/out" >/dev/null
	assert_same_tree "$T/fx/day2" "$T/out/vol"
	assert_fail "$MV" find "$R" "$@" --limit 5 2>"$T/err"
	assert_grep "no mail catalogue .*backup made here starts it" "$T/err"
	assert_ok "$MV" backup "$R" "$@" --name mail --quiet \
		--time 2024-06-03T00:00:00Z vol="$T/fx/day2"
	"$MV" find "$R" "$@" --limit 5 >"$T/find1" ||
		die "find after a backup from this machine"
	[ -s "$T/find1" ] || die "find found nothing after the backup"
	no_plain_index "$D"

	say "$R: a flipped bit in index.sealed is named"
	cp "$D/index.sealed" "$T/good.sealed"
	size=$(stat -c %s "$D/index.sealed")
	for at in 100 $((size - 1)) 40; do
		cp "$T/good.sealed" "$D/index.sealed"
		flip_bit "$D/index.sealed" "$at"
		rm -rf "$T/cache2"
		set +e
		env XDG_CACHE_HOME="$T/cache2" "$MV" snapshots "$R" "$@" \
			2>"$T/err"
		rc=$?
		set -e
		assert_eq 13 "$rc" "exit status, bit $at of index.sealed flipped"
		assert_grep "sealed index 'index.sealed' of .* (damaged|tampered)" \
			"$T/err"
	done
	cp "$T/good.sealed" "$D/index.sealed"
	assert_ok "$MV" snapshots "$R" "$@" >/dev/null

	say "$R: an older index.sealed put back is refused"
	cp "$T/older.sealed" "$D/index.sealed"
	assert_fail "$MV" snapshots "$R" "$@" 2>"$T/err"
	assert_grep "is generation [0-9]+, older than generation [0-9]+" \
		"$T/err"
	assert_fail "$MV" backup "$R" "$@" --name mail --quiet \
		vol="$T/fx/day2" 2>"$T/err"
	assert_grep "older than generation" "$T/err"
	say "$R: restored on purpose: the file the message names is removed"
	hp=$(sed -n "s/.*remove '\([^']*\)' and run again.*/\1/p" "$T/err")
	[ -f "$hp" ] || die "the message names no file: $(cat "$T/err")"
	rm "$hp"
	assert_eq 1 "$("$MV" snapshots "$R" "$@" | grep -c '  mail  ')" \
		"snapshots of the older index, taken on purpose"
	cp "$T/good.sealed" "$D/index.sealed"
	assert_eq 3 "$("$MV" snapshots "$R" "$@" | grep -c '  mail  ')" \
		"snapshots once the newer index is back"

	say "$R: a publication that died between its renames is recovered"
	mv "$D/index.sealed" "$D/index.sealed.old-deadbeef"
	head -c $((size / 2)) "$D/index.sealed.old-deadbeef" \
		>"$D/index.sealed.tmp-0badc0de" # an upload cut short
	rm -rf "$XDG_CACHE_HOME"
	assert_eq 3 "$("$MV" snapshots "$R" "$@" | grep -c '  mail  ')" \
		"snapshots a reader sees with index.sealed missing"
	[ ! -e "$D/index.sealed" ] || die "a reader put index.sealed back"
	assert_ok "$MV" backup "$R" "$@" --name mail --quiet \
		--time 2024-06-04T00:00:00Z vol="$T/fx/day2"
	[ -f "$D/index.sealed" ] || die "the writer did not put it back"
	assert_eq 4 "$("$MV" snapshots "$R" "$@" | grep -c '  mail  ')" \
		"snapshots after the writer recovered"
	no_plain_index "$D"

	# the mount's handle reads index.sealed again after each publication
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
