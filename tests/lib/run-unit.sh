#!/bin/sh
# run-unit.sh: run cmocka unit test binaries and sum their results.
#
# Usage: tests/lib/run-unit.sh BINARY...
#   MV_VALGRIND=1   run each binary under valgrind (leaks and memory errors
#                   fail the binary); tests/lib/valgrind.supp is used when
#                   it exists
#   MV_NO_SKIP=1    (and CI=true) a test that calls cmocka's skip() fails:
#                   where CI runs, everything a unit test needs is there
# Prints one line per binary, the output of failing ones, the skipped
# tests, and last the line "N passed, N failed, N skipped" counting cmocka
# tests (a binary that crashes or reports valgrind errors counts as one
# failure).  Exits 1 on any failure.
set -u

no_skip=
case ${MV_NO_SKIP:-}/${CI:-} in
1/* | */true | */1) no_skip=1 ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
# cmocka's plain output, whatever the environment asks for
CMOCKA_MESSAGE_OUTPUT=STDOUT
export CMOCKA_MESSAGE_OUTPUT
passed=0
failed=0
skipped=0
skiplist=
log=$(mktemp "${TMPDIR:-/tmp}/mv-unit.XXXXXX")
trap 'rm -f "$log"' EXIT

for bin in "$@"; do
	name=$(basename "$bin")
	if [ ! -x "$bin" ]; then
		echo "FAIL $name (no such binary)"
		failed=$((failed + 1))
		continue
	fi
	if [ "${MV_VALGRIND:-}" = 1 ]; then
		supp=
		[ -f "$here/valgrind.supp" ] &&
			supp="--suppressions=$here/valgrind.supp"
		# shellcheck disable=SC2086
		valgrind -q --error-exitcode=99 --leak-check=full \
			--errors-for-leak-kinds=definite,indirect \
			--show-leak-kinds=definite,indirect $supp \
			"$bin" >"$log" 2>&1
	else
		"$bin" >"$log" 2>&1
	fi
	rc=$?
	p=$(sed -n 's/^\[  PASSED  \] \([0-9][0-9]*\) test.*/\1/p' "$log" |
		awk '{s += $1} END {print s + 0}')
	f=$(sed -n 's/^\[  FAILED  \] \([0-9][0-9]*\) test.*/\1/p' "$log" |
		awk '{s += $1} END {print s + 0}')
	s=$(sed -n 's/^\[  SKIPPED \] \([0-9][0-9]*\) test.*/\1/p' "$log" |
		awk '{s += $1} END {print s + 0}')
	names=$(sed -n 's/^\[  SKIPPED \] \([^ ]*\)$/\1/p' "$log" | sort -u |
		sed "s/^/$name:/" | tr '\n' ' ')
	what=
	if [ "$s" != 0 ] && [ -n "$no_skip" ]; then
		# a skip where everything is installed is a test that did not run
		f=$((f + s))
		what=" ($s skipped: ${names% }; skips fail here)"
		s=0
	fi
	if [ "$rc" = 0 ] && [ "$((p + f + s))" = 0 ]; then
		f=1
		what=" (ran no test)"
	fi
	if [ "$rc" != 0 ] && [ -z "$what" ] && [ "$f" = 0 ]; then
		# crashed, aborted, or valgrind found errors after the tests
		f=1
		if [ "$rc" = 99 ]; then
			what=" (valgrind errors)"
		elif [ "$rc" -gt 128 ]; then
			what=" (killed by signal $((rc - 128)))"
		else
			what=" (exit $rc)"
		fi
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
	[ "$s" = 0 ] || skiplist="$skiplist ${names% }"
	if [ "$f" = 0 ]; then
		echo "ok   $name ($p tests${names:+, skipped: ${names% }})"
	else
		echo "FAIL $name ($p passed, $f failed)$what"
		sed 's/^/    /' "$log"
	fi
done
[ -z "$skiplist" ] || echo "skipped:$skiplist"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
