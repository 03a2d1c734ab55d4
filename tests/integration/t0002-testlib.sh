#!/bin/sh
# t0002-testlib: the comparison the round-trip tests rely on sees every
# kind of difference (content, mode, owner, mtime ns, symlink target,
# xattrs, hard links, type), the runners report and count correctly, a
# test written with the library can fail however it ends (its own EXIT
# trap, at_exit, bg, mount_mv, exit 0 or 77 before ok), and skips fail
# where CI=true or MV_NO_SKIP=1 asks every test to run.
. "$(dirname "$0")/../lib/test-lib.sh"

# The runners as a developer runs them: skips are skips.  The CI modes
# are tested below with the variables set explicitly.
run_int()
{
	env -u CI -u MV_NO_SKIP MV_BUILD=bld TMPDIR="$T" \
		sh tests/lib/run-integration.sh "$@"
}

run_unit()
{
	env -u CI -u MV_NO_SKIP sh tests/lib/run-unit.sh "$@"
}

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
# the nested tests find mailvault through a build directory of their own,
# so that their logs stay in $T
mkdir "$T/tree/bld"
for f in "$MV_BUILD_DIR"/*; do
	[ ! -e "$f" ] || [ "${f##*/}" = test-logs ] ||
		ln -s "$f" "$T/tree/bld/"
done
cd "$T/tree/tests/integration"
printf '. "$(dirname "$0")/../lib/test-lib.sh"\nok\n' >t9901-pass.sh
printf '. "$(dirname "$0")/../lib/test-lib.sh"\necho marker-77\ndie broken\n' \
	>t9902-fail.sh
printf '. "$(dirname "$0")/../lib/test-lib.sh"\nskip "no such thing"\n' \
	>t9903-skip.sh
printf '. "$(dirname "$0")/../lib/test-lib.sh"\nsleep 30\n' >t9904-hang.sh
cd "$T/tree"
MV_TEST_TIMEOUT=2 run_int >"$T/out" 2>&1 &&
	die "run-integration.sh exited 0 with failures"
cat "$T/out"
assert_grep '^ok   t9901-pass' "$T/out"
assert_grep '^FAIL t9902-fail' "$T/out"
assert_grep 'marker-77' "$T/out"
assert_grep '^skip t9903-skip \(no such thing\)' "$T/out"
assert_grep '^FAIL t9904-hang \(timeout' "$T/out"
assert_eq "1 passed, 2 failed, 1 skipped" "$(tail -n 1 "$T/out")"
run_int t9901 >"$T/out1" ||
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
OUT=$T/o run_int t9905 >"$T/out5" 2>&1 &&
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
run_unit "$T/u1" >"$T/uo" || die "run-unit failed on passes"
assert_eq "3 passed, 0 failed, 0 skipped" "$(tail -n 1 "$T/uo")"
run_unit "$T/u1" "$T/u2" "$T/u3" >"$T/uo" &&
	die "run-unit passed with failures"
assert_eq "9 passed, 2 failed, 0 skipped" "$(tail -n 1 "$T/uo")"
assert_grep 'FAIL u3 .*signal 11' "$T/uo"

say "run-unit.sh: cmocka skip() is listed, and fails where skips fail"
cat >"$T/u4" <<'EOS'
#!/bin/sh
echo "[ RUN      ] test_a"
echo "[       OK ] test_a"
echo "[ RUN      ] test_b"
echo "[  SKIPPED ] test_b"
echo "[==========] 2 test(s) run."
echo "[  PASSED  ] 1 test(s)."
echo "[  SKIPPED ] 1 test(s), listed below:"
echo "[  SKIPPED ] test_b"
EOS
printf '#!/bin/sh\necho nothing\n' >"$T/u5"
chmod +x "$T/u4" "$T/u5"
run_unit "$T/u1" "$T/u4" >"$T/uo" || die "run-unit failed on a skip"
cat "$T/uo"
assert_grep '^skipped: u4:test_b$' "$T/uo"
assert_eq "4 passed, 0 failed, 1 skipped" "$(tail -n 1 "$T/uo")"
for v in MV_NO_SKIP=1 CI=true; do
	env -u CI -u MV_NO_SKIP "$v" sh tests/lib/run-unit.sh "$T/u1" "$T/u4" \
		>"$T/uo" && die "run-unit passed a skip with $v"
	cat "$T/uo"
	assert_grep '^FAIL u4 .*u4:test_b' "$T/uo"
	assert_eq "4 passed, 1 failed, 0 skipped" "$(tail -n 1 "$T/uo")"
done
run_unit "$T/u5" >"$T/uo" && die "run-unit passed a binary that ran no test"
assert_grep '^FAIL u5 .*ran no test' "$T/uo"

say "run-integration.sh: skips fail where CI=true or MV_NO_SKIP=1"
for v in MV_NO_SKIP=1 CI=true; do
	env -u CI -u MV_NO_SKIP "$v" MV_BUILD=bld TMPDIR="$T" \
		sh tests/lib/run-integration.sh t9901 t9903 >"$T/out6" 2>&1 &&
		die "a skip passed with $v"
	cat "$T/out6"
	assert_grep '^FAIL t9903-skip \(skipped: no such thing; skips fail' \
		"$T/out6"
	assert_eq "1 passed, 1 failed, 0 skipped" "$(tail -n 1 "$T/out6")"
done
run_int t9901 t9903 >"$T/out6" || die "a skip failed outside CI"
assert_grep '^skipped: t9903-skip$' "$T/out6"
# the allow-list: the benchmark skips unless MV_BENCH=1
printf '. "$(dirname "$0")/../lib/test-lib.sh"\nskip "benchmark"\n' \
	>tests/integration/t3106-remote-bench.sh
env -u CI MV_NO_SKIP=1 MV_BUILD=bld TMPDIR="$T" \
	sh tests/lib/run-integration.sh t3106 \
	>"$T/out7" 2>&1 || die "an allowed skip failed"
assert_eq "0 passed, 0 failed, 1 skipped" "$(tail -n 1 "$T/out7")"

say "a test fails however it ends, whatever its traps do"
# Each throwaway test below must fail: run directly (its own exit status)
# and through the runner (FAIL line, non-zero exit).
must_fail()
{
	_n=$1
	shift
	printf '. "$(dirname "$0")/../lib/test-lib.sh"\n%s\n' "$*" \
		>"tests/integration/$_n.sh"
	set +e
	OUT=$T/o MV_BUILD=bld TMPDIR=$T \
		sh "tests/integration/$_n.sh" >"$T/direct.log" 2>&1
	_rc=$?
	set -e
	if [ "$_rc" = 0 ] || [ "$_rc" = 77 ]; then
		cat "$T/direct.log"
		die "$_n exits $_rc but must fail"
	fi
	OUT=$T/o run_int "$_n" >"$T/out8" 2>&1 && {
		cat "$T/out8"
		die "the runner passed $_n"
	}
	assert_grep "^FAIL $_n " "$T/out8"
	assert_eq "0 passed, 1 failed, 0 skipped" "$(tail -n 1 "$T/out8")"
}
rm -f "$T/o/"*
# t4002 had this trap: the cleanup saw umount's status, 0, and passed
must_fail t9910-own-trap 'trap "true; _tl_cleanup" EXIT
false
ok'
must_fail t9911-own-trap-die 'trap "true; _tl_cleanup" EXIT
die "failing on purpose"'
must_fail t9912-no-ok 'say "falls off its end"'
must_fail t9913-exit0 'exit 0
ok'
must_fail t9914-cmd77 'sh -c "exit 77"
ok'
# a test that drops the cleanup and exits 0 early: only the runner sees it
printf '. "$(dirname "$0")/../lib/test-lib.sh"\ntrap - EXIT\nexit 0\nok\n' \
	>tests/integration/t9915-no-cleanup.sh
run_int t9915 >"$T/out8" 2>&1 && die "the runner passed t9915"
assert_grep "^FAIL t9915-no-cleanup \(exit 0 without test-lib's ok" "$T/out8"
must_fail t9916-at-exit 'at_exit "touch \"\$OUT/at-exit-ran\""
at_exit "false"
bg sleep 1000
echo $! >"$OUT/pid2"
assert_ok false
ok'
[ -f "$T/o/at-exit-ran" ] || die "at_exit command did not run"
! kill -0 "$(cat "$T/o/pid2")" 2>/dev/null || die "bg process survived"
must_fail t9917-bg-status 'bg sh -c "exit 3"
wait $! || die "background command failed ($?)"
ok'
if [ "$(id -u)" = 0 ] && [ -c /dev/fuse ] && command -v fusermount3 >/dev/null &&
	[ -x "$MV" ]; then
	must_fail t9918-mount 'require_mv
"$MV" init "$T/r" >/dev/null
mount_mv "$T/r" "$T/m"
echo "$T/m" >"$OUT/mnt2"
assert_ok test -e "$T/m/no-such-job"
ok'
	! mountpoint -q "$(cat "$T/o/mnt2")" || die "mount_mv's mount survived"
	must_fail t9919-mount-none 'mount_mv "$T/no-repo" "$T/m"
ok'
elif [ -n "${CI:-}${MV_NO_SKIP:-}" ]; then
	die "mount_mv cases need root, /dev/fuse, fusermount3 and $MV"
else
	say "not root, no FUSE or no binary: mount_mv cases not run"
fi
ok
