#!/bin/sh
# run-unit.sh: run cmocka unit test binaries and sum their results.
#
# Usage: tests/lib/run-unit.sh BINARY...
#   MV_VALGRIND=1   run each binary under valgrind (leaks and memory errors
#                   fail the binary); tests/lib/valgrind.supp is used when
#                   it exists
# Prints one line per binary, the output of failing ones, and last the line
# "N passed, N failed" counting cmocka tests (a binary that crashes or
# reports valgrind errors counts as one failure).  Exits 1 on any failure.
set -u

here=$(cd "$(dirname "$0")" && pwd)
# cmocka's plain output, whatever the environment asks for
CMOCKA_MESSAGE_OUTPUT=STDOUT
export CMOCKA_MESSAGE_OUTPUT
passed=0
failed=0
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
	what=
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
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
	if [ "$f" = 0 ]; then
		echo "ok   $name ($p tests)"
	else
		echo "FAIL $name ($p passed, $f failed)$what"
		sed 's/^/    /' "$log"
	fi
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
