#!/bin/sh
# t1020-tar-malformed: archives GNU tar and bsdtar complain about (a pax
# header without its newline or '=', a NUL in an xattr name, member names
# with a leading '/' or '..' components) are stored with one warning per
# problem kind and its count, exit 3 and a committed snapshot; a clean
# archive still exits 0 without a word.
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv

R=$T/repo
python3 - "$T" <<'EOF'
import io, sys, tarfile
d = sys.argv[1]

def block(b):
	return b + b"\0" * ((512 - len(b) % 512) % 512)

def hdr(name, size, typ=tarfile.REGTYPE, linkname=""):
	i = tarfile.TarInfo(name)
	i.size = size
	i.mtime = 1700000000
	i.mode = 0o644
	i.type = typ
	i.linkname = linkname
	return i.tobuf(format=tarfile.USTAR_FORMAT)

def plain(name, data=b"x\n"):
	return hdr(name, len(data)) + block(data)

def link(name, target):
	return hdr(name, 0, tarfile.LNKTYPE, target)

def pax(records, name, data=b"x\n"):
	return (hdr("PaxHeaders/" + name, len(records), tarfile.XHDTYPE) +
		block(records) + plain(name, data))

def rec(k, v):
	body = b" " + k + b"=" + v + b"\n"
	n = len(body) + 1
	while len(str(n)) + len(body) != n:
		n += 1
	return str(n).encode() + body

def write(name, members):
	with open(d + "/" + name, "wb") as f:
		f.write(b"".join(members) + b"\0" * 1024)

# the last record's newline is replaced by another byte
write("nonl.tar", [plain("ok.txt"),
	pax(rec(b"mtime", b"1700000001")[:-1] + b"X", "nonl.txt"),
	plain("after.txt")])
# a record without '='
write("noeq.tar", [plain("ok.txt"),
	pax(b"12 mtimeabc\n", "noeq.txt"), plain("after.txt")])
# a NUL inside an xattr name
write("nulx.tar", [plain("ok.txt"),
	pax(rec(b"SCHILY.xattr.user.a\0b", b"v"), "nulx.txt"),
	plain("after.txt")])
write("names.tar", [plain("ok.txt", b"fine\n"),
	plain("/etc/passwd", b"absolute\n"),
	plain("//abs2", b"two slashes\n"),
	plain("/abs/dir/f", b"absolute deep\n"),
	plain("../x", b"parent\n"),
	plain("a/../../y", b"climbs out\n"),
	plain("./../w", b"dot then parent\n"),
	plain("c/d/../e", b"inner dotdot\n"),
	plain("..", b"nothing left\n"),
	plain("keep/./f", b"inner dot\n"),
	link("hl", "/ok.txt"),
	link("hl2", "../ok.txt")])
# a name that would drive the terminal if printed as it is
write("ctl.tar", [plain("/esc\x1b[31mred\nx", b"ctl\n")])
# a clean pax archive with what must not be taken for damage: a UTF-8
# name, a name longer than ustar holds, an xattr
with tarfile.open(d + "/clean.tar", "w", format=tarfile.PAX_FORMAT) as t:
	for n in ["./", "./Entw\u00fcrfe/\u00e4.txt", "./" + "x" * 120 + "/long.txt"]:
		i = tarfile.TarInfo(n)
		if n == "./":
			i.type = tarfile.DIRTYPE
			t.addfile(i)
			continue
		i.size = 2
		i.pax_headers = {"SCHILY.xattr.user.k": "v"}
		t.addfile(i, io.BytesIO(b"a\n"))
EOF
assert_ok "$MV" init "$R"

# backup_rc NAME WANT ARGS...: run a backup, its exit code must be WANT
backup_rc()
{
	_n=$1
	_want=$2
	shift 2
	set +e
	"$MV" backup "$R" --name "$_n" "$@" >"$T/$_n.out" 2>"$T/$_n.err"
	_rc=$?
	set -e
	cat "$T/$_n.out" "$T/$_n.err"
	assert_eq "$_want" "$_rc" "exit code of the backup $_n"
	"$MV" snapshots "$R" >"$T/snaps"
	assert_grep "^[0-9a-f]+ +$_n " "$T/snaps"
}

say "a clean archive: exit 0, no warning"
backup_rc clean 0 v="$T/clean.tar"
assert_no_grep 'warning' "$T/clean.err"
"$MV" ls "$R" clean/latest:v >"$T/ls"
assert_grep "^Entw.*rfe" "$T/ls"

say "a gzip stream with trailing garbage: a warning of its own"
gzip -c "$T/clean.tar" >"$T/garbage.tgz"
printf 'garbage' >>"$T/garbage.tgz"
backup_rc garbage 3 v=- <"$T/garbage.tgz"
assert_grep "^mailvault: warning: v: 'v=-': 7 bytes of trailing garbage after the gzip data at compressed byte [0-9]+ ignored$" "$T/garbage.err"
assert_eq 1 "$(grep -c '^mailvault: warning:' "$T/garbage.err")" \
	"warnings of garbage"

for c in nonl noeq nulx; do
	say "pax header: $c"
	case $c in
	nonl) why='Ignoring malformed pax extended attribute' ;;
	*) why='Invalid pax extended attributes' ;;
	esac
	backup_rc "$c" 3 v="$T/$c.tar"
	assert_grep "^mailvault: warning: v: 1 member had a damaged header \\($why\\); stored with the fields that could be read \\('$c\\.txt'\\)$" "$T/$c.err"
	assert_eq 1 "$(grep -c '^mailvault: warning:' "$T/$c.err")" "warnings of $c"
	assert_grep '^mailvault: backup completed with warnings' "$T/$c.err"
	"$MV" ls "$R" "$c/latest:v" >"$T/ls"
	assert_eq "after.txt $c.txt ok.txt" "$(sort "$T/ls" | tr '\n' ' ' |
		sed 's/ $//')" "stored names of $c"
done

say "member names with leading '/' and '..' components, on stdin"
backup_rc names 3 v=- <"$T/names.tar"
assert_grep "^mailvault: warning: v: 3 member names had leading '/' removed \\(first: '/etc/passwd'\\)$" "$T/names.err"
assert_grep "^mailvault: warning: v: 4 member names had everything up to their last '\\.\\.' removed \\(first: '\\.\\./x' stored as 'x'\\)$" "$T/names.err"
assert_grep "^mailvault: warning: v: 1 member had no name left once cleaned and was skipped \\('\\.\\.'\\)$" "$T/names.err"
assert_grep "^mailvault: warning: v: 1 hard link target had leading '/' removed \\('/ok\\.txt'\\)$" "$T/names.err"
assert_grep "^mailvault: warning: v: 1 hard link target had everything up to its last '\\.\\.' removed \\('\\.\\./ok\\.txt' stored as 'ok\\.txt'\\)$" "$T/names.err"
assert_eq 5 "$(grep -c '^mailvault: warning:' "$T/names.err")" "warnings of names"
"$MV" ls "$R" names/latest:v >"$T/ls"
cat "$T/ls"
assert_eq "abs abs2 e etc hl hl2 keep ok.txt w x y" \
	"$(sed 's,/$,,' "$T/ls" | sort | tr '\n' ' ' | sed 's/ $//')" \
	"top-level names"
assert_no_grep '^\.\.?/?$' "$T/ls"
assert_eq "absolute" "$("$MV" cat "$R" names/latest:v/etc/passwd)" "etc/passwd"
assert_eq "absolute deep" "$("$MV" cat "$R" names/latest:v/abs/dir/f)" "abs/dir/f"
assert_eq "climbs out" "$("$MV" cat "$R" names/latest:v/y)" "y"
assert_eq "inner dotdot" "$("$MV" cat "$R" names/latest:v/e)" "e"
assert_eq "inner dot" "$("$MV" cat "$R" names/latest:v/keep/f)" "keep/f"
assert_eq "fine" "$("$MV" cat "$R" names/latest:v/hl2)" "hl2"
"$MV" ls "$R" names/latest:v/keep >"$T/ls-keep"
assert_eq "f" "$(cat "$T/ls-keep")" "keep/ holds f only"
# the label's directory is still a directory: '..' did not replace it
mkdir "$T/out"
assert_ok "$MV" restore "$R" names/latest:v "$T/out"
assert_eq "fine" "$(cat "$T/out/v/hl")" "restored hl"
[ -d "$T/out/v/etc" ] || die "etc/ was not restored"

say "control characters in a name are escaped in the warning"
backup_rc ctl 3 v="$T/ctl.tar"
assert_grep "^mailvault: warning: v: 1 member name had leading '/' removed \\('/esc\\\\x1b\\[31mred\\\\nx'\\)$" "$T/ctl.err"
if tr -d '\n' <"$T/ctl.err" | grep -q "$(printf '\033')"; then
	die "an escape character reached the terminal"
fi
assert_eq 2 "$(wc -l <"$T/ctl.err")" "lines of the warning output"

say "--json counts the warnings"
set +e
"$MV" backup "$R" --name j --json v="$T/noeq.tar" >"$T/j.out" 2>"$T/j.err"
rc=$?
set -e
cat "$T/j.out" "$T/j.err"
assert_eq 3 "$rc" "exit code with --json"
assert_grep '"warnings":\[\{"source":"v","count":1,"what":"member had a damaged header \(Invalid pax extended attributes\); stored with the fields that could be read","first":"'"'"'noeq\.txt'"'"'"\}\]' "$T/j.out"

assert_ok "$MV" check --read-data "$R"
ok
