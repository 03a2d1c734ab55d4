#!/bin/sh
# t0002-testlib: the comparison the round-trip tests rely on sees every
# kind of difference (content, mode, owner, mtime ns, symlink target,
# xattrs, hard links, type), and the runners report and count correctly.
. "$(dirname "$0")/../lib/test-lib.sh"

mk()
{
	rm -rf "$1"
	mkdir -p "$1/d/sub"
	printf 'hello\n' >"$1/d/a"
	printf 'hello\n' >"$1/d/b"
	ln "$1/d/a" "$1/d/a2"
	ln -s ../d/a "$1/d/sub/link"
	: >"$1/d/$(printf '\377name')"
	chmod 0640 "$1/d/b"
	find "$1" -exec touch -h -d '2024-06-01 03:00:00.123456789' {} +
	touch -h -d '2024-06-01 03:00:00.5' "$1/d/sub/link"
}

check_differs()
{
	what=$1
	shift
	mk "$T/y"
	"$@"
	tree_digest "$T/x" >"$T/dx"
	tree_digest "$T/y" >"$T/dy"
	if cmp -s "$T/dx" "$T/dy"; then
		die "tree_digest misses a difference in $what"
	fi
}

mk "$T/x"
mk "$T/y"
assert_same_tree "$T/x" "$T/y"
grep -q '^d/\\xffname ' "$T/.tl-digest-a" || die "non-UTF-8 name not escaped"
grep -q '^d/a .* d/a$' "$T/.tl-digest-a" || die "hard link group not shown"
grep -q '^d/a2 .* d/a$' "$T/.tl-digest-a" || die "hard link group not shown"
grep -q '^d/sub/link l .* \.\./d/a ' "$T/.tl-digest-a" ||
	die "symlink target not shown"

check_differs content sh -c 'printf x >>"$T/y/d/b"'
check_differs mode chmod 0600 "$T/y/d/b"
check_differs owner chown 12345:54321 "$T/y/d/b"
check_differs "mtime ns" touch -d '2024-06-01 03:00:00.123456788' "$T/y/d/b"
check_differs "dir mtime" touch -d '2020-01-01' "$T/y/d/sub"
check_differs "symlink target" sh -c \
	'rm "$T/y/d/sub/link" && ln -s ../d/b "$T/y/d/sub/link" &&
	 touch -h -d "2024-06-01 03:00:00.5" "$T/y/d/sub/link"'
check_differs "hard link" sh -c \
	'rm "$T/y/d/a2" && cp -p "$T/y/d/a" "$T/y/d/a2"'
check_differs type sh -c 'rm "$T/y/d/b" && mkfifo -m 0640 "$T/y/d/b"'
check_differs "missing entry" rm "$T/y/d/sub/link"
if setfattr -n user.t -v 1 "$T/x/d/b" 2>/dev/null; then
	check_differs xattr setfattr -n user.t -v 2 "$T/y/d/b"
	setfattr -x user.t "$T/x/d/b"
else
	say "no user xattrs on $T's filesystem; xattr case not run"
fi
tree_digest "$T/x" -x mtime,uid >"$T/dx"
assert_eq 8 "$(awk '{print NF; exit}' "$T/dx")" "fields with -x mtime,uid"

say "assert helpers"
assert_fail false
( assert_fail true ) 2>/dev/null && die "assert_fail true passed"
( assert_fail sh -c 'kill -9 $$' ) 2>/dev/null &&
	die "assert_fail accepted a death by signal"
( assert_eq a b ) 2>/dev/null && die "assert_eq a b passed"
echo 'x=1' >"$T/f"
assert_grep '^x=[0-9]$' "$T/f"
( assert_grep '^y' "$T/f" ) 2>/dev/null && die "assert_grep matched"

say "run-integration.sh: ok, FAIL with log tail, skip, timeout, counts"
mkdir -p "$T/tree/tests/integration" "$T/tree/tests/lib"
cp "$TOP/tests/lib/"* "$T/tree/tests/lib/"
cd "$T/tree/tests/integration"
printf '. "$(dirname "$0")/../lib/test-lib.sh"\nok\n' >t9901-pass.sh
printf '. "$(dirname "$0")/../lib/test-lib.sh"\necho marker-77\ndie broken\n' \
	>t9902-fail.sh
printf '. "$(dirname "$0")/../lib/test-lib.sh"\nskip "no such thing"\n' \
	>t9903-skip.sh
printf '. "$(dirname "$0")/../lib/test-lib.sh"\nsleep 30\n' >t9904-hang.sh
cd "$T/tree"
TMPDIR=$T MV_TEST_TIMEOUT=2 sh tests/lib/run-integration.sh >"$T/out" 2>&1 &&
	die "run-integration.sh exited 0 with failures"
cat "$T/out"
assert_grep '^ok   t9901-pass' "$T/out"
assert_grep '^FAIL t9902-fail' "$T/out"
assert_grep 'marker-77' "$T/out"
assert_grep '^skip t9903-skip \(no such thing\)' "$T/out"
assert_grep '^FAIL t9904-hang \(timeout' "$T/out"
assert_eq "1 passed, 2 failed, 1 skipped" "$(tail -n 1 "$T/out")"
TMPDIR=$T sh tests/lib/run-integration.sh t9901 >"$T/out1" ||
	die "a passing selection failed"
assert_eq "1 passed, 0 failed, 0 skipped" "$(tail -n 1 "$T/out1")"
ls "$T"/mv-t9901-pass.* >/dev/null 2>&1 && die "temporary dir left behind"

say "cleanup kills background processes and unmounts, also on failure"
cat >tests/integration/t9905-cleanup.sh <<'EOS'
. "$(dirname "$0")/../lib/test-lib.sh"
bg sleep 1000
echo $! >"$OUT/pid"
if [ "$(id -u)" = 0 ]; then
	mkdir "$T/src" "$T/m"
	mount --bind "$T/src" "$T/m"
	echo "$T/m" >>"$T/.tl-mounts"
	echo "$T/m" >"$OUT/mnt"
fi
die "failing on purpose"
EOS
mkdir "$T/o"
OUT=$T/o TMPDIR=$T sh tests/lib/run-integration.sh t9905 >"$T/out5" 2>&1 &&
	die "t9905 passed"
pid=$(cat "$T/o/pid")
! kill -0 "$pid" 2>/dev/null || die "background process $pid survived"
if [ -f "$T/o/mnt" ]; then
	! mountpoint -q "$(cat "$T/o/mnt")" || die "mount survived the test"
fi

say "run-unit.sh sums cmocka's counts and fails on crashes"
cat >"$T/u1" <<'EOS'
#!/bin/sh
echo "[==========] tests: Running 3 test(s)."
echo "[  PASSED  ] 3 test(s)."
EOS
cat >"$T/u2" <<'EOS'
#!/bin/sh
echo "[  PASSED  ] 4 test(s)."
echo "[  FAILED  ] 1 test(s), listed below:"
echo "[  FAILED  ] test_x"
exit 1
EOS
cat >"$T/u3" <<'EOS'
#!/bin/sh
echo "[  PASSED  ] 2 test(s)."
kill -SEGV $$
EOS
chmod +x "$T/u1" "$T/u2" "$T/u3"
sh tests/lib/run-unit.sh "$T/u1" >"$T/uo" || die "run-unit failed on passes"
assert_eq "3 passed, 0 failed" "$(tail -n 1 "$T/uo")"
sh tests/lib/run-unit.sh "$T/u1" "$T/u2" "$T/u3" >"$T/uo" &&
	die "run-unit passed with failures"
assert_eq "9 passed, 2 failed" "$(tail -n 1 "$T/uo")"
assert_grep 'FAIL u3 .*signal 11' "$T/uo"
ok
