#!/bin/sh
# t1030-format1-compat: a repository written by format 1 (config version
# 1, directories as one tree object cut by FastCDC; made by
# tests/data/format1-make.sh with the binary of 0272db6) is read by this
# one: restore and mount reproduce its snapshot byte- and metadata-exact,
# check --read-data accepts it without changing its version; a backup
# into it writes ptree directories and moves the config to version 2;
# then both snapshots read back exactly, side by side, also after prune
# (which must keep every node of a three-level ptree).
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv
require_root
require_fuse
require_cmd zstd tar

R=$T/repo
zstd -dc "$TOP/tests/data/format1-repo.tar.zst" | tar -C "$T" -xf -
zstd -dc "$TOP/tests/data/format1-src.digest.zst" >"$T/src.digest"
assert_grep '^version = 1$' "$R/config"

# same_as_src DIR: DIR's digest is the source tree's
same_as_src()
{
	tree_digest "$1" >"$T/got.digest"
	diff -u "$T/src.digest" "$T/got.digest" >"$T/diff" || {
		head -n 20 "$T/diff" >&2
		die "$1 differs from the format 1 source tree"
	}
}

say "format 1: restore is byte- and metadata-exact"
assert_ok "$MV" restore "$R" old/latest:vol "$T/r1"
same_as_src "$T/r1/vol"
[ "$(ls "$T/r1/vol/big" | wc -l)" = 900 ] || die "big directory incomplete"

say "format 1: check --read-data, and the config stays version 1"
assert_ok "$MV" check "$R" --read-data
assert_grep '^version = 1$' "$R/config"

say "format 1: the mount shows the same tree"
mnt=$T/mnt
mount_mv "$R" "$mnt"
same_as_src "$mnt/old/latest/vol"
[ -d "$mnt/old/latest/mail" ] || die "no mail view in the old snapshot"
(cd "$mnt/old/latest/mail" && ls -lR .) >"$T/mail-old.ls"
unmount_mv "$mnt"

say "a backup into it writes ptrees and moves the config to version 2"
# and a directory of 6000 entries: a ptree of three levels
python3 -c '
import os, sys
d = sys.argv[1]
os.makedirs(d)
for i in range(6000):
	with open("%s/%010d.M%dP%d.host,S=%d:2,S" % (d, 1700000000 + i, i, i * 3,
						     i * 17), "w") as f:
		f.write("m%d\n" % i)
' "$T/many"
assert_ok "$MV" backup "$R" --name new --time 2024-03-01T00:00:00Z \
	"vol=$T/r1/vol" "many=$T/many"
assert_grep '^version = 2$' "$R/config"
assert_no_grep '^version = 1$' "$R/config"
"$MV" snapshots "$R" >"$T/snaps"
assert_grep ' old +2024-02-04' "$T/snaps"
assert_grep ' new +2024-03-01' "$T/snaps"

say "both snapshots restore exactly"
assert_ok "$MV" restore "$R" old/latest:vol "$T/r2"
same_as_src "$T/r2/vol"
assert_ok "$MV" restore "$R" new/latest:vol "$T/r3"
same_as_src "$T/r3/vol"
assert_ok "$MV" check "$R" --read-data

say "prune keeps every node of both encodings"
assert_ok "$MV" prune "$R"
assert_ok "$MV" check "$R" --read-data
assert_ok "$MV" restore "$R" new/latest:many "$T/r4"
assert_same_tree "$T/many" "$T/r4/many"
mount_mv "$R" "$mnt"
same_as_src "$mnt/old/latest/vol"
same_as_src "$mnt/new/latest/vol"
assert_same_tree "$T/many" "$mnt/new/latest/many"
(cd "$mnt/old/latest/mail" && ls -lR .) | cmp - "$T/mail-old.ls" ||
	die "the old mail view changed"
(cd "$mnt/old/latest/mail" && ls -R .) >"$T/mail-old.names"
(cd "$mnt/new/latest/mail" && ls -R .) | cmp - "$T/mail-old.names" ||
	die "the new mail view lists other names than the old"
unmount_mv "$mnt"

say "an old binary's reader would now refuse: the version says why"
sed -i 's/^version = 2$/version = 3/' "$R/config"
assert_fail "$MV" snapshots "$R"
ok
