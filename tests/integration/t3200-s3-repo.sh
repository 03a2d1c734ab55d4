#!/bin/sh
# t3200-s3-repo: an encrypted repository at s3://BUCKET/PREFIX on a real
# Ceph radosgw works for every command: init, three backups, snapshots, ls,
# cat through the mail view, restore byte- and metadata-exact, the mount,
# find, forget + prune, check --read-data, rebuild-index from the bucket
# alone.  Packs are create-only objects, nothing is left under a temporary
# name, and the request counts go to docs/S3.md's cost model.
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv
require_fuse
. "$TOP/tests/lib/ceph.sh"
ceph_start
ceph_bucket mvbackup

export MAILVAULT_PASSPHRASE="s3 horse battery"
export MAILVAULT_S3_STATS=$T/s3stats
R=s3://mvbackup/servers/mail1
gen --out "$T/fx" --small --days 3 --seed 3200
S1=mail/2024-06-01T000000Z
S2=mail/2024-06-02T000000Z
S3=mail/2024-06-03T000000Z

nsnaps()
{
	"$MV" snapshots "$1" | grep -c '  mail  ' || true
}

restore_exact()
{
	rm -rf "$T/out"
	assert_ok "$MV" restore "$R" "$1:vol" "$T/out" >/dev/null
	assert_same_tree "$T/fx/day$2" "$T/out/vol"
}

# keys: every object key of the bucket, one a line
keys()
{
	ceph_curl "$AWS_ENDPOINT_URL/mvbackup?list-type=2&max-keys=1000" |
		tr '<' '\n' | sed -n 's/^Key>//p'
}

# stats LABEL: the request counts of the last command, labelled
stats()
{
	printf '%s %s\n' "$1" "$(tail -1 "$MAILVAULT_S3_STATS")" >>"$T/cost"
}

say "init encrypted, three backups with churn between them"
assert_ok "$MV" init --encryption xchacha20-poly1305 "$R" >/dev/null
stats init
for d in 1 2 3; do
	assert_ok "$MV" backup "$R" --name mail --quiet \
		--time "2024-06-0${d}T00:00:00Z" vol="$T/fx/day$d"
	stats "backup$d"
done
keys >"$T/keys"
cat "$T/keys"
assert_grep '^servers/mail1/config$' "$T/keys"
assert_grep '^servers/mail1/packs/' "$T/keys"
assert_grep '^servers/mail1/index/[0-9a-f]{32}$' "$T/keys"
assert_no_grep '^servers/mail1/index\.db$' "$T/keys"
assert_no_grep '^servers/mail1/lock$' "$T/keys"
assert_all_match '^servers/mail1/' "$T/keys"
assert_eq 3 "$(nsnaps "$R")" "snapshots after three backups"
stats snapshots

say "packs are create-only: a second PUT of a pack key is refused"
pack=$(grep '^servers/mail1/packs/' "$T/keys" | head -1)
code=$(ceph_curl -o /dev/null -w '%{http_code}' -X PUT \
	-H 'If-None-Match: *' --data-binary x "$AWS_ENDPOINT_URL/mvbackup/$pack")
assert_eq 412 "$code" "If-None-Match: * on an existing pack"

say "ls and cat through the mail view"
"$MV" ls "$R" "$S3:" >"$T/top"
assert_grep '^vol/$' "$T/top"
"$MV" ls "$R" "$S3:mail/alice@example.org/INBOX" >"$T/inbox"
[ -s "$T/inbox" ] || die "the INBOX of the mail view is empty"
name=$(head -1 "$T/inbox")
"$MV" cat "$R" "$S3:mail/alice@example.org/INBOX/$name" >"$T/view.eml"
id=$(grep -i '^Message-ID:' "$T/view.eml" | head -1 | tr -d '\r' |
	sed 's/.*<\(.*\)>.*/\1/')
raw=$(grep -rlF "$id" "$T/fx/day3" | head -1)
[ -n "$raw" ] || die "raw file of $id not found in the fixture"
cmp "$raw" "$T/view.eml" || die "the view differs from the raw file"

say "restore byte- and metadata-exact"
restore_exact "$S1" 1
stats restore1
restore_exact "$S3" 3

say "find: the catalogue is searchable"
from=$(grep -i '^From:' "$T/view.eml" | head -1 | tr -d '\r' |
	sed -n 's/.*<\([^>]*@[^>]*\)>.*/\1/p')
"$MV" find "$R" --from "$from" >"$T/find"
assert_grep "$(printf '%s' "$name" | sed 's/[][().*+?^$|]/\\&/g')" \
	"$T/find"

say "mount: read the snapshots through FUSE"
mount_mv "$R" "$T/mnt"
cmp "$T/view.eml" \
	"$T/mnt/mail/2024-06-03T000000Z/mail/alice@example.org/INBOX/$name" ||
	die "the mount's mail view differs"
diff -r "$T/fx/day2" "$T/mnt/mail/2024-06-02T000000Z/vol" >/dev/null ||
	die "the mounted day 2 differs from the source"
unmount_mv "$T/mnt"

say "forget, prune, check --read-data"
assert_ok "$MV" forget --name mail --keep-last 2 "$R" >"$T/forget"
assert_grep '^mail: keeping 2, removing 1 of 3 snapshots$' "$T/forget"
assert_ok "$MV" prune "$R" >"$T/prune"
stats prune
cat "$T/prune"
assert_grep '^deleted [0-9]+ unused packs' "$T/prune"
assert_ok "$MV" check --read-data "$R" >"$T/check"
stats check-read-data
assert_eq 2 "$(nsnaps "$R")" "snapshots after prune"
restore_exact "$S2" 2

say "rebuild-index from the bucket alone, with no cache"
"$MV" snapshots "$R" >"$T/s1"
keys | grep '^servers/mail1/index/' | while read -r k; do
	ceph_curl -X DELETE "$AWS_ENDPOINT_URL/mvbackup/$k"
done
rm -rf "$XDG_CACHE_HOME"
assert_ok "$MV" rebuild-index "$R" >"$T/rb"
stats rebuild-index
assert_grep '2 snapshots' "$T/rb"
rm -rf "$XDG_CACHE_HOME"
"$MV" snapshots "$R" >"$T/s2"
diff -u "$T/s1" "$T/s2" || die "the rebuilt index lists other snapshots"
restore_exact "$S3" 3

say "multipart upload above the limit: the object is whole, nothing pending"
mkdir -p "$T/big"
head -c 3145728 /dev/urandom >"$T/big/blob"
assert_ok env MAILVAULT_S3_MULTIPART_MIB=1 "$MV" backup "$R" --name big \
	--quiet b="$T/big"
stats backup-multipart
rm -rf "$T/out"
assert_ok "$MV" restore "$R" big/latest:b "$T/out" >/dev/null
cmp "$T/big/blob" "$T/out/b/blob" || die "the multipart upload restores other bytes"
ceph_curl "$AWS_ENDPOINT_URL/mvbackup?uploads" >"$T/uploads"
assert_no_grep '<UploadId>' "$T/uploads"
assert_ok "$MV" check --read-data "$R" >/dev/null

say "request counts (docs/S3.md)"
cat "$T/cost"
say "ceph started in $CEPH_START_MS ms"
ok
