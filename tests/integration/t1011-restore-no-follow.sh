#!/bin/sh
# t1011-restore-no-follow: restoring as root into a directory another user
# can write never writes, chmods, chowns or sets ACLs/xattrs through a
# symlink that user put at an entry's path (before the restore, or swapped
# in right after restore created the entry), and metadata still comes back
# exactly, also for entries deeper than PATH_MAX.
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv
require_root
require_cmd cc setfattr setfacl getfacl

R=$T/repo
S=$T/src
O=$T/outside

# The source: a directory with a private file, a hard link to it, a plain
# file and a fifo, each with its own owner, mode, xattr or ACL.
mkdir -p "$S/d" "$O/dir"
printf 'secret mail\n' >"$S/d/f"
ln "$S/d/f" "$S/hl"
printf 'top\n' >"$S/top"
mkfifo "$S/fifo"
chown 1000:1000 "$S/d" "$S/d/f"
chmod 0750 "$S/d"
chmod 0644 "$S/d/f" "$S/top"
chmod 0664 "$S/fifo"
setfattr -n user.mark -v restored "$S/d/f" || skip "no user xattrs here"
setfacl -m u:4242:rw "$S/top" || skip "no ACLs here"
setfacl -d -m g:4242:rx "$S/d"
find "$S" -depth -exec touch -h -d '2023-03-04 05:06:07.123456789' {} +
assert_ok "$MV" init "$R" >/dev/null
assert_ok "$MV" backup "$R" --name t --quiet s="$S"

# What an attacker points at: files and a directory of theirs, 0600.
victims()
{
	printf 'victim\n' >"$O/victim"
	: >"$O/dir/keep"
	chown -R 65534:65534 "$O"
	chmod 0600 "$O/victim" "$O/dir/keep"
	chmod 0700 "$O/dir"
	tree_digest "$O" >"$T/outside.before"
}
victims_untouched()
{
	tree_digest "$O" >"$T/outside.after"
	diff -u "$T/outside.before" "$T/outside.after" >&2 ||
		die "restore changed files outside its target ($1)"
	[ "$(ls "$O/dir")" = keep ] || die "restore wrote into $O/dir ($1)"
}

say "symlinks planted at a file's, a fifo's and a directory's path"
victims
D=$T/dest1
mkdir -p "$D/s"
ln -s "$O/victim" "$D/s/top"
ln -s "$O/victim" "$D/s/fifo"
ln -s "$O/victim" "$D/s/hl"
ln -s "$O/dir" "$D/s/d"
rc=0
"$MV" restore "$R" t/latest:s "$D" 2>"$T/err1" || rc=$?
cat "$T/err1"
assert_eq 0 "$rc" "restore's exit code"
victims_untouched planted
[ -d "$D/s/d" ] && [ ! -L "$D/s/d" ] || die "s/d is not a directory"
assert_same_tree "$S" "$D/s"

say "an entry swapped for a symlink once restore has written it"
# The shim replaces the entry named $SWAP_NAME with a symlink to
# $SWAP_TARGET when restore closes its descriptor: the moment between
# creating an entry and setting its metadata that a path-based restore
# leaves open.
cat >"$T/swap.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int close(int fd)
{
	static int (*real_close)(int);
	static int done;
	const char *name = getenv("SWAP_NAME"), *target = getenv("SWAP_TARGET");
	char link[64], path[PATH_MAX], moved[PATH_MAX + 8];
	ssize_t n;

	if (!real_close)
		real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	if (!done && name && target &&
	    (n = readlink(link, path, sizeof(path) - 1)) > 0) {
		size_t k = strlen(name);

		path[n] = '\0';
		if ((size_t)n > k && path[n - k - 1] == '/' &&
		    !strcmp(path + n - k, name)) {
			done = 1;
			snprintf(moved, sizeof(moved), "%s.moved", path);
			if (rename(path, moved) == 0)
				symlink(target, path);
		}
	}
	return real_close(fd);
}
EOF
cc -shared -fPIC -O -o "$T/swap.so" "$T/swap.c" -ldl
for what in top:victim d:dir; do
	name=${what%%:*}
	victims
	D=$T/dest-$name
	mkdir -p "$D"
	# an ASan build loads its runtime first; the shim only wraps close
	SWAP_NAME=$name SWAP_TARGET=$O/${what#*:} LD_PRELOAD=$T/swap.so \
		ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
		"$MV" restore "$R" t/latest:s "$D" >"$T/out-$name" 2>&1 || true
	cat "$T/out-$name"
	[ -L "$D/s/$name" ] || die "the shim did not swap s/$name"
	victims_untouched "swapped $name"
	# what restore wrote is the moved entry, with all its metadata
	if [ "$name" = d ]; then
		assert_same_tree "$S/d" "$D/s/d.moved"
		# hl, linked to d/f, must not have been linked through d
		[ ! -e "$O/dir/f" ] || die "a link made through s/d"
	else
		rm "$D/s/$name"
		mv "$D/s/$name.moved" "$D/s/$name"
		touch -d '2023-03-04 05:06:07.123456789' "$D/s"
		assert_same_tree "$S" "$D/s"
	fi
done

say "metadata of entries deeper than PATH_MAX comes back too"
# (set by path, it was cut at PATH_MAX or refused with ENAMETOOLONG)
# deep.py make|check DIR: 24 levels of 240-byte names, a file at the
# bottom with an xattr, mode 0640 and uid 1234; walked by descriptor
cat >"$T/deep.py" <<'PY'
import os, sys
what, top = sys.argv[1], sys.argv[2]
fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
for i in range(24):
    name = ("%02d" % i) * 120
    if what == "make":
        os.mkdir(name, 0o750, dir_fd=fd)
    nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                  dir_fd=fd)
    os.close(fd)
    fd = nfd
if what == "make":
    f = os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd)
    os.write(f, b"deep\n")
    os.setxattr(f, "user.deep", b"down here")
    os.fchmod(f, 0o640)
    os.fchown(f, 1234, 1234)
    os.close(f)
else:
    f = os.open("leaf", os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
    st = os.fstat(f)
    got = (oct(st.st_mode & 0o7777), st.st_uid, os.getxattr(f, "user.deep"),
           os.read(f, 99))
    want = ("0o640", 1234, b"down here", b"deep\n")
    if got != want:
        sys.exit("leaf: %r, want %r" % (got, want))
PY
mkdir "$T/deep"
python3 "$T/deep.py" make "$T/deep"
assert_ok "$MV" backup "$R" --name deep --quiet deep="$T/deep"
rc=0
"$MV" restore "$R" deep/latest:deep "$T/deep-out" 2>"$T/err-deep" || rc=$?
cat "$T/err-deep"
assert_eq 0 "$rc" "deep restore's exit code"
python3 "$T/deep.py" check "$T/deep-out/deep" || die "deep leaf metadata"
ok
