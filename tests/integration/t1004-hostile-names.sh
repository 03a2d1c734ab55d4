#!/bin/sh
# t1004-hostile-names: entries named ../evil, /abs/path, a/../../b are
# stored with those parts cut as GNU tar cuts them (exit 3, t1020), and
# symlinks and hard links pointing outside are stored as the archive has
# them, but restore and export-tar never write outside the destination.
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv

R=$T/repo
# The destination sits two levels down in a directory that must stay
# exactly as it is.
mkdir -p "$T/jail/inner"
echo keep >"$T/jail/keep"
python3 - "$T/hostile.tar" "$T/through.tar" <<'EOF'
import io, sys, tarfile
def f(t, name, data=b"x\n", **kw):
	i = tarfile.TarInfo(name)
	i.size = len(data)
	i.mtime = 1700000000
	for k, v in kw.items():
		setattr(i, k, v)
	t.addfile(i, io.BytesIO(data))
def l(t, name, typ, target):
	i = tarfile.TarInfo(name)
	i.type = typ
	i.linkname = target
	i.mtime = 1700000000
	t.addfile(i)
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
	f(t, "ok.txt", b"fine\n")
	f(t, "../evil", b"evil parent\n")
	f(t, "../../evil2", b"evil grandparent\n")
	f(t, "/abs/path", b"absolute\n")
	f(t, "a/../../b", b"dotdot inside\n")
	f(t, "./x/./../../c", b"dot and dotdot\n")
	l(t, "outlink", tarfile.SYMTYPE, "../../keep")
	l(t, "abslink", tarfile.SYMTYPE, "/etc/passwd")
	# writing through a symlink that points outside
	f(t, "outlink", b"overwrite through the link\n")
	l(t, "dirlink", tarfile.SYMTYPE, "..")
	# hard links to outside names
	l(t, "hardout", tarfile.LNKTYPE, "../keep")
	l(t, "hardabs", tarfile.LNKTYPE, "/etc/passwd")
	l(t, "hardok", tarfile.LNKTYPE, "ok.txt")
with tarfile.open(sys.argv[2], "w", format=tarfile.PAX_FORMAT) as t:
	l(t, "dirlink", tarfile.SYMTYPE, "..")
	f(t, "dirlink/through-dir", b"written through a dir link\n")
EOF
snapshot_jail()
{
	(cd "$T/jail" && find . -path ./inner -prune -o -print |
		sort | xargs -d '\n' stat -c '%n %s %Y %i' --) >"$T/$1"
}
snapshot_jail jail-before
stat -c '%s %Y %i' /etc/passwd >"$T/passwd-before"

assert_ok "$MV" init "$R"
set +e
"$MV" backup "$R" --name h v="$T/hostile.tar" >"$T/b.out" 2>"$T/b.err"
rc=$?
set -e
cat "$T/b.out" "$T/b.err"
assert_eq 3 "$rc" "exit code of the backup (completed with warnings)"
"$MV" snapshots "$R" >"$T/snaps"
assert_grep '^[0-9a-f]+ +h ' "$T/snaps"
"$MV" ls "$R" h/latest:v >"$T/ls"
cat "$T/ls"
assert_grep '^ok\.txt$' "$T/ls"

say "restore writes nothing outside the destination"
set +e
"$MV" restore "$R" h/latest:v "$T/jail/inner/dest" >"$T/r.out" 2>"$T/r.err"
rc=$?
set -e
cat "$T/r.out" "$T/r.err"
assert_eq 0 "$rc" "exit code of the restore"
snapshot_jail jail-after
diff -u "$T/jail-before" "$T/jail-after" ||
	die "restore changed files outside its destination"
assert_eq "$(cat "$T/passwd-before")" "$(stat -c '%s %Y %i' /etc/passwd)" \
	"/etc/passwd"
[ "$(cat "$T/jail/keep")" = keep ] || die "jail/keep was overwritten"
assert_eq "fine" "$(cat "$T/jail/inner/dest/v/ok.txt")" "ok.txt"
# nothing but the destination appeared in inner/
assert_eq "dest" "$(ls -A "$T/jail/inner")" "contents of inner/"
# every regular file in the destination is a copy, never a link outside
find "$T/jail/inner/dest" -type f -links +1 >"$T/multi"
while IFS= read -r f; do
	case $(stat -c %i "$f") in
	$(stat -c %i "$T/jail/keep") | $(stat -c %i /etc/passwd))
		die "$f is a hard link to a file outside" ;;
	esac
done <"$T/multi"
# the symlinks exist as symlinks (not followed), when restored at all
for l in outlink abslink dirlink; do
	p=$T/jail/inner/dest/v/$l
	[ ! -e "$p" ] && [ ! -L "$p" ] && continue
	[ -L "$p" ] || [ -f "$p" ] || die "$l restored as something odd"
done

say "restore of the whole snapshot and export-tar extraction stay inside"
assert_ok "$MV" restore "$R" h/latest "$T/jail/inner/dest2" >/dev/null
assert_ok "$MV" export-tar "$R" h/latest:v >"$T/x.tar"
mkdir "$T/jail/inner/x"
# GNU tar refuses ../ members and strips leading / by itself; the export
# must be extractable by it, whole and without escaping
assert_ok tar -xf "$T/x.tar" -C "$T/jail/inner/x"
snapshot_jail jail-after2
diff -u "$T/jail-before" "$T/jail-after2" ||
	die "restore or export-tar changed files outside the destination"
tar -tf "$T/x.tar" >"$T/x.list"
cat "$T/x.list"
assert_no_grep '(^|/)\.\.(/|$)' "$T/x.list"
assert_no_grep '^/' "$T/x.list"

say "an entry below a symlink cannot be stored: clear error, no snapshot"
set +e
"$MV" backup "$R" --name t v="$T/through.tar" >"$T/t.out" 2>"$T/t.err"
rc=$?
set -e
cat "$T/t.err"
assert_eq 1 "$rc" "exit code of the backup through a symlink"
assert_grep "'v/dirlink/through-dir'.*not a directory" "$T/t.err"
"$MV" snapshots "$R" >"$T/snaps"
assert_no_grep '^[0-9a-f]+ +t ' "$T/snaps"
snapshot_jail jail-after3
diff -u "$T/jail-before" "$T/jail-after3" || die "the jail changed"
assert_ok "$MV" check --read-data "$R"
ok
