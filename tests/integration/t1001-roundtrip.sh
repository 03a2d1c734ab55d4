#!/bin/sh
# t1001-roundtrip: what goes in comes out exactly - directory sources and
# tar streams (gzip, zstd, xz, bzip2, plain; file or stdin) restored and
# exported back with every byte and every piece of metadata: hard links,
# symlinks, xattrs, POSIX ACLs, sparse holes, fifos, devices, odd names.
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv
require_root
require_cmd tar setfattr

R=$T/repo
S=$T/src

# A tree with one of everything.
mkdir -p "$S/a/b" "$S/empty-dir" "$S/sticky"
printf 'hello\n' >"$S/a/b/file"
: >"$S/empty-file"
head -c 300000 /dev/urandom >"$S/a/random.bin"
ln "$S/a/random.bin" "$S/a/hard1"
ln "$S/a/random.bin" "$S/hard2"
ln -s b/file "$S/a/rel-link"
ln -s /etc/passwd "$S/abs-link"
ln -s dangling-target "$S/dangling"
mkfifo "$S/fifo"
mknod "$S/null-dev" c 1 3
mknod "$S/blk-dev" b 7 200
nonutf=$(printf 'caf\351-\377\376')
printf 'latin-1 name\n' >"$S/$nonutf"
mkdir "$S/dir-$nonutf"
truncate -s 20M "$S/sparse"
printf 'middle' | dd of="$S/sparse" bs=1 seek=10485760 conv=notrunc \
	2>/dev/null
printf 'end' | dd of="$S/sparse" bs=1 seek=20971517 conv=notrunc \
	2>/dev/null
chmod 1777 "$S/sticky"
chmod 4755 "$S/a/b/file"
chmod 0600 "$S/empty-file"
chown 1234:5678 "$S/a/b/file"
chown -h 42:43 "$S/a/rel-link"
setfattr -n user.color -v blue "$S/a/b/file" || skip "no user xattrs here"
setfattr -n user.bin -v 0x00ff10 "$S/a"
have_acl=0
if command -v setfacl >/dev/null &&
	setfacl -m u:1234:rw "$S/a/random.bin" 2>/dev/null; then
	setfacl -d -m g:5678:rx "$S/a/b"
	have_acl=1
fi
# nanosecond mtimes, directories last
find "$S" -depth ! -type l -exec touch -d '2023-03-04 05:06:07.123456789' \
	{} +
touch -h -d '2022-01-02 03:04:05.5' "$S/a/rel-link"
touch -d '2021-12-31 23:59:59.000000001' "$S/a/b/file" "$S/a/b" "$S"
say "source tree ($have_acl = ACLs set):"
tree_digest "$S" | sed 's/^/#   /'

assert_ok "$MV" init "$R"

# check_restore SNAP LABEL: restore and export-tar must reproduce $S
check_restore()
{
	rm -rf "$T/out" "$T/x"
	mkdir "$T/out" "$T/x"
	"$MV" restore "$R" "$1:$2" "$T/out" >"$T/restore.log" 2>&1 ||
		{ cat "$T/restore.log"; die "restore $1:$2 failed"; }
	assert_same_tree "$S" "$T/out/$2"
	# holes stay holes
	used=$(du -k "$T/out/$2/sparse" | cut -f1)
	[ "$used" -lt 1024 ] || die "sparse file restored with $used KiB"
	"$MV" export-tar "$R" "$1:$2" >"$T/x.tar" ||
		die "export-tar $1:$2 failed"
	tar --xattrs --xattrs-include='*' --acls --numeric-owner -p \
		--same-owner -xf "$T/x.tar" -C "$T/x" ||
		die "tar cannot read the export of $1:$2"
	assert_same_tree "$S" "$T/x"
}

say "directory source"
assert_ok "$MV" backup "$R" --name dir src="$S"
check_restore dir/latest src

say "gzip tar on stdin"
tar --format=posix --xattrs --xattrs-include='*' --acls -S -czf "$T/src.tgz" \
	-C "$S" .
cat "$T/src.tgz" | "$MV" backup "$R" --name stdin vol=- >"$T/b.log" 2>&1 ||
	{ cat "$T/b.log"; die "backup from stdin failed"; }
check_restore stdin/latest vol

say "zstd, xz, bzip2, plain tar files"
tar --format=posix --xattrs --xattrs-include='*' --acls -S -cf "$T/src.tar" \
	-C "$S" .
zstd -q -c "$T/src.tar" >"$T/src.tar.zst"
xz -c "$T/src.tar" >"$T/src.tar.xz"
bzip2 -c "$T/src.tar" >"$T/src.tar.bz2"
for f in src.tar src.tar.zst src.tar.xz src.tar.bz2; do
	assert_ok "$MV" backup "$R" --name "c-$f" vol="$T/$f"
	check_restore "c-$f/latest" vol
done

say "GNU format (whole-second mtimes) keeps everything else"
tar --format=gnu -S -czf "$T/gnu.tgz" -C "$S" .
assert_ok "$MV" backup "$R" --name gnu vol="$T/gnu.tgz"
rm -rf "$T/out"
mkdir "$T/out"
assert_ok "$MV" restore "$R" gnu/latest:vol "$T/out"
assert_same_tree "$S" "$T/out/vol" -x mtime,xattrs

say "member names ./a/b and /a/b are both stored as a/b (the '/' with a warning, exit 3); ./ labels the root"
python3 - "$T/names.tar" "$T/abs.tar" <<'EOF'
import io, sys, tarfile
def build(path, prefix, root):
	with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
		if root:
			d = tarfile.TarInfo("./")
			d.type = tarfile.DIRTYPE
			d.mode = 0o710
			d.mtime = 1600000000
			d.uid, d.gid = 77, 88
			t.addfile(d)
		d = tarfile.TarInfo(prefix + "a")
		d.type = tarfile.DIRTYPE
		d.mode = 0o755
		d.mtime = 1500000000
		t.addfile(d)
		data = b"content of b\n"
		f = tarfile.TarInfo(prefix + "a/b")
		f.size = len(data)
		f.mtime = 1500000001
		t.addfile(f, io.BytesIO(data))
build(sys.argv[1], "./", True)
build(sys.argv[2], "/", False)
EOF
set +e
"$MV" backup "$R" --name names dot="$T/names.tar" abs="$T/abs.tar" \
	2>"$T/names.err"
rc=$?
set -e
cat "$T/names.err"
assert_eq 3 "$rc" "exit code of the backup of /a/b (completed with warnings)"
assert_grep "^mailvault: warning: abs: 2 member names had leading '/' removed \\(first: '/a/'\\)$" "$T/names.err"
assert_no_grep 'warning: dot:' "$T/names.err"
for l in dot abs; do
	"$MV" ls "$R" "names/latest:$l" >"$T/ls-$l"
	assert_eq "a/" "$(cat "$T/ls-$l")" "ls of $l"
	"$MV" cat "$R" "names/latest:$l/a/b" >"$T/cat-$l"
	assert_eq "content of b" "$(cat "$T/cat-$l")" "cat of $l/a/b"
done
"$MV" ls "$R" names/latest >"$T/ls-top"
assert_no_grep '^\./?$|^\.\./?$' "$T/ls-top"
rm -rf "$T/out"
mkdir "$T/out"
assert_ok "$MV" restore "$R" names/latest "$T/out"
assert_eq "710 77 88 1600000000" \
	"$(stat -c '%a %u %g %Y' "$T/out/dot")" "metadata of the ./ entry"
[ ! -e "$T/out/dot/." ] || [ "$(ls -A "$T/out/dot")" = a ] ||
	die "restore shows more than 'a' in dot: $(ls -A "$T/out/dot")"

say "integrity of the whole repository"
assert_ok "$MV" check --read-data "$R"
ok
