#!/bin/sh
# t1034-encrypted-lifecycle: every command works on an encrypted local
# repository as on a plain one: three backups with churn, snapshots, ls,
# cat through the mail view, diff, find, export-tar, the mount, restore
# byte- and metadata-exact, forget + prune (check --read-data clean, kept
# snapshots exact), rebuild-index, check --repair on a clean repository
# (changes nothing), append-only refusing forget and prune with the exit
# status of a plain repository, unlock.  A flipped bit in the newest
# commit segment and a segment held back exit 13 (damaged repository); a
# bad tar stream into the same repository still exits 1.
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv
require_fuse

export MAILVAULT_PASSPHRASE="lifecycle horse battery"
R=$T/repo
gen --out "$T/fx" --small --days 3 --seed 1034
S1=mail/2024-06-01T000000Z
S2=mail/2024-06-02T000000Z
S3=mail/2024-06-03T000000Z

# run_rc CMD...: CMD's exit status in $rc (asserted by the caller)
run_rc()
{
	set +e
	"$@"
	rc=$?
	set -e
}

# nsnaps REPO: how many snapshots of the job mail it lists
nsnaps()
{
	"$MV" snapshots "$1" | grep -c '  mail  ' || true
}

# restore_exact SNAP DAY: SNAP's vol restores as day DAY of the fixture
restore_exact()
{
	rm -rf "$T/out"
	assert_ok "$MV" restore "$R" "$1:vol" "$T/out" >/dev/null
	assert_same_tree "$T/fx/day$2" "$T/out/vol"
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

say "init encrypted, three backups with churn between them"
assert_ok "$MV" init --encryption xchacha20-poly1305 "$R" >/dev/null
assert_grep '^encryption = xchacha20-poly1305$' "$R/config"
for d in 1 2 3; do
	assert_ok "$MV" backup "$R" --name mail --quiet \
		--time "2024-06-0${d}T00:00:00Z" vol="$T/fx/day$d"
done
ls "$R/index" | grep -q '^[0-9a-f]\{32\}$' ||
	die "no commit segment in an encrypted repository"
[ ! -e "$R/index.db" ] || die "an encrypted repository holds index.db"
assert_eq 3 "$(nsnaps "$R")" "snapshots after three backups"
"$MV" snapshots "$R" >"$T/snaps"
for s in 2024-06-01T000000Z 2024-06-02T000000Z 2024-06-03T000000Z; do
	assert_grep "  mail  .*$s|$s.*  mail  " "$T/snaps"
done

say "ls: the raw tree and the mail view"
"$MV" ls "$R" "$S3:" >"$T/top"
assert_grep '^vol/$' "$T/top"
assert_grep '^mail/$' "$T/top"
"$MV" ls "$R" "$S3:mail/alice@example.org" >"$T/folders"
assert_grep '^INBOX/$' "$T/folders"
"$MV" ls "$R" "$S3:mail/alice@example.org/INBOX" >"$T/inbox"
[ -s "$T/inbox" ] || die "the INBOX of the mail view is empty"
assert_all_match '\.eml$' "$T/inbox"

say "cat of a message through the mail view: the raw file's bytes"
name=$(head -1 "$T/inbox")
"$MV" cat "$R" "$S3:mail/alice@example.org/INBOX/$name" >"$T/view.eml"
id=$(grep -i '^Message-ID:' "$T/view.eml" | head -1 | tr -d '\r' |
	sed 's/.*<\(.*\)>.*/\1/')
[ -n "$id" ] || die "the view message has no Message-ID"
raw=$(grep -rlF "$id" "$T/fx/day3" | head -1)
[ -n "$raw" ] || die "raw file of $id not found in the fixture"
cmp "$raw" "$T/view.eml" || die "the view differs from the raw file"

say "diff between snapshots"
"$MV" diff "$R" "$S1" "$S3" >"$T/diff"
[ -s "$T/diff" ] || die "diff of two days with churn is empty"
"$MV" diff "$R" "$S1" "$S3" --mail >"$T/diffm"
assert_grep '^[0-9]+ messages added, [0-9]+ removed, [0-9]+ moved$' \
	"$T/diffm"
assert_no_grep '^0 messages added, 0 removed, 0 moved$' "$T/diffm"
"$MV" diff "$R" "$S3" "$S3" >"$T/diff0"
assert_no_grep '^[-+>] ' "$T/diff0"

say "find: the catalogue is searchable"
from=$(grep -i '^From:' "$T/view.eml" | head -1 | tr -d '\r' |
	sed -n 's/.*<\([^>]*@[^>]*\)>.*/\1/p')
[ -n "$from" ] || die "no From in the view message"
"$MV" find "$R" --from "$from" >"$T/find"
assert_grep "$(printf '%s' "$name" | sed 's/[][().*+?^$|]/\\&/g')" \
	"$T/find"
"$MV" find "$R" --from "nobody-$$@nowhere.invalid" >"$T/find0" || true
assert_no_grep "$(printf '%s' "$name" | sed 's/[][().*+?^$|]/\\&/g')" \
	"$T/find0"

say "export-tar: the tar lists every file and unpacks to the same bytes"
"$MV" export-tar "$R" "$S3:vol" >"$T/x.tar" || die "export-tar failed"
tar -tf "$T/x.tar" >"$T/x.list"
nsrc=$(find "$T/fx/day3" -type f | wc -l)
ntar=$(tar -tvf "$T/x.tar" | grep -c '^[-h]' || true)
assert_eq "$nsrc" "$ntar" "files and hard links in the exported tar"
assert_grep "$(basename "$raw")" "$T/x.list"
mkdir "$T/xt"
tar -xf "$T/x.tar" -C "$T/xt"
diff -r "$T/fx/day3" "$T/xt" >/dev/null ||
	die "export-tar unpacks to other bytes"

say "mount, cat through the mount, umount"
mount_mv "$R" "$T/mnt"
[ -d "$T/mnt/mail/2024-06-01T000000Z" ] || die "no snapshot in the mount"
cmp "$T/view.eml" \
	"$T/mnt/mail/2024-06-03T000000Z/mail/alice@example.org/INBOX/$name" ||
	die "the mount's mail view differs"
cmp "$raw" "$T/mnt/mail/2024-06-03T000000Z/vol/${raw#"$T/fx/day3/"}" ||
	die "the mount's raw file differs"
diff -r "$T/fx/day2" "$T/mnt/mail/2024-06-02T000000Z/vol" >/dev/null ||
	die "the mounted day 2 differs from the source"
unmount_mv "$T/mnt"
! mountpoint -q "$T/mnt" || die "still mounted after umount"

say "restore byte- and metadata-exact"
restore_exact "$S1" 1
restore_exact "$S2" 2
restore_exact "$S3" 3

say "forget with a policy, then prune"
assert_ok "$MV" forget --name mail --keep-last 2 "$R" >"$T/forget"
assert_grep '^mail: keeping 2, removing 1 of 3 snapshots$' "$T/forget"
assert_eq 2 "$(nsnaps "$R")" "snapshots after forget"
assert_fail "$MV" ls "$R" "$S1:" >/dev/null 2>&1
assert_ok "$MV" prune "$R" >"$T/prune"
cat "$T/prune"
assert_grep '^deleted [0-9]+ unused packs' "$T/prune"
assert_ok "$MV" check --read-data "$R" >"$T/check"
assert_eq 2 "$(nsnaps "$R")" "snapshots after prune"
restore_exact "$S2" 2
restore_exact "$S3" 3
assert_ok "$MV" prune "$R" >"$T/prune2"
assert_grep '^deleted 0 unused packs' "$T/prune2"
assert_grep '^repacked 0 packs' "$T/prune2"

say "rebuild-index from the packs alone, with no cache"
"$MV" snapshots "$R" >"$T/s1"
rm -rf "$R/index"
rm -rf "$XDG_CACHE_HOME"
assert_ok "$MV" rebuild-index "$R" >"$T/rb"
assert_grep '2 snapshots' "$T/rb"
ls "$R/index" | grep -q '^[0-9a-f]\{32\}$' ||
	die "rebuild-index wrote no commit segment"
[ ! -e "$R/index.db" ] || die "rebuild-index wrote a plain index.db"
rm -rf "$XDG_CACHE_HOME"
"$MV" snapshots "$R" >"$T/s2"
diff -u "$T/s1" "$T/s2" || die "the rebuilt index lists other snapshots"
restore_exact "$S2" 2
restore_exact "$S3" 3
assert_ok "$MV" check --read-data "$R" >/dev/null

say "check --repair on a clean repository changes nothing"
# the files, sizes and bytes of the repository (the lock comes and goes)
repo_state()
{
	(cd "$R" && find . -type f ! -name lock -exec sha256sum {} + | sort)
}
repo_state >"$T/state1"
run_rc "$MV" check --repair "$R" >"$T/rep" 2>"$T/reperr"
cat "$T/rep" "$T/reperr"
assert_eq 0 "$rc" "exit status of check --repair on a clean repository"
repo_state >"$T/state2"
diff -u "$T/state1" "$T/state2" ||
	die "check --repair changed a clean repository"
assert_eq 2 "$(nsnaps "$R")" "snapshots after check --repair"

say "append-only: forget and prune refuse as on a plain repository"
P=$T/plain
assert_ok "$MV" init --append-only "$P" >/dev/null
for d in 1 2; do
	assert_ok "$MV" backup "$P" --name mail --quiet \
		--time "2024-06-0${d}T00:00:00Z" vol="$T/fx/day$d"
done
run_rc "$MV" forget --keep-last 1 "$P" >/dev/null 2>&1
plain_forget=$rc
run_rc "$MV" prune "$P" >/dev/null 2>&1
plain_prune=$rc
[ "$plain_forget" != 0 ] || die "forget succeeded on a plain append-only repository"
[ "$plain_prune" != 0 ] || die "prune succeeded on a plain append-only repository"
assert_ok "$MV" config "$R" append-only on >/dev/null
"$MV" config "$R" >"$T/cfg"
assert_grep '^append-only = yes$' "$T/cfg"
run_rc "$MV" forget --keep-last 1 "$R" >/dev/null 2>"$T/err"
cat "$T/err"
assert_eq "$plain_forget" "$rc" "exit status of forget, append-only"
assert_grep "append-only" "$T/err"
run_rc "$MV" prune "$R" >/dev/null 2>"$T/err"
cat "$T/err"
assert_eq "$plain_prune" "$rc" "exit status of prune, append-only"
assert_grep "append-only: prune refuses" "$T/err"
assert_eq 2 "$(nsnaps "$R")" "snapshots after the refusals"
assert_ok "$MV" backup "$R" --name mail --quiet \
	--time 2024-06-04T00:00:00Z vol="$T/fx/day1"
assert_eq 3 "$(nsnaps "$R")" "an append-only repository takes backups"
assert_ok "$MV" config "$R" append-only off >/dev/null

say "unlock: a lock of a dead process is removed"
sh -c 'exit 0' &
dead=$!
wait "$dead"
printf 'host=%s\npid=%s\ntime=%s\nboot=%s\ntoken=3333\n' "$(hostname)" \
	"$dead" "$(date +%s)" "$(cat /proc/sys/kernel/random/boot_id)" \
	>"$R/lock"
assert_ok "$MV" unlock "$R" >"$T/unlock.out"
assert_grep "^lock removed$" "$T/unlock.out"
[ ! -f "$R/lock" ] || die "unlock left the lock"
assert_ok "$MV" unlock "$R" >"$T/unlock.out"
assert_grep "is not locked" "$T/unlock.out"

say "a damaged or held-back segment exits 13; a bad tar stream exits 1"
assert_ok "$MV" backup "$R" --name mail --quiet \
	--time 2024-06-05T00:00:00Z vol="$T/fx/day2"
seg=$R/index/$(ls -t "$R/index" | grep '^[0-9a-f]\{32\}$' | head -n 1)
cp "$seg" "$T/newer.seg"
size=$(stat -c %s "$seg")
for at in 100 $((size - 1)); do
	cp "$T/newer.seg" "$seg"
	flip_bit "$seg" "$at"
	rm -rf "$T/cache2"
	run_rc env XDG_CACHE_HOME="$T/cache2" "$MV" snapshots "$R" \
		>/dev/null 2>"$T/err"
	cat "$T/err"
	assert_eq 13 "$rc" "exit status with bit $at of a segment flipped"
	assert_grep "segment 'index/.*' of .* (damaged|tampered)" "$T/err"
done
rm "$seg"
run_rc "$MV" snapshots "$R" >/dev/null 2>"$T/err"
cat "$T/err"
assert_eq 13 "$rc" "exit status with a segment held back"
assert_grep "is gone" "$T/err"
cp "$T/newer.seg" "$seg"
assert_eq 4 "$(nsnaps "$R")" "snapshots once the index is whole again"
head -c 4096 /dev/urandom >"$T/random.bin"
run_rc "$MV" backup "$R" --name bad vol=- <"$T/random.bin" >/dev/null \
	2>"$T/err"
cat "$T/err"
assert_eq 1 "$rc" "exit status of a backup of random bytes"
assert_eq 4 "$(nsnaps "$R")" "snapshots after the failed backup"
ok
