#!/bin/sh
# run-integration.sh: run the shell integration tests.
#
# Usage: tests/lib/run-integration.sh [TEST...]
#   TEST is a test name or prefix (t1001, t1001-roundtrip) or a path;
#   without arguments, $T if it names a test (make check-integration
#   T=t1001), else every tests/integration/t*.sh in order.
#   MV_BUILD           build directory holding mailvault (default build)
#   MV_TEST_TIMEOUT    seconds per test (default 300)
#   MV_KEEP=1          keep each test's temporary directory
# Prints ok/FAIL/skip per test, the tail of the log of a failing test, and
# last the line "N passed, N failed, N skipped".  Logs are kept in
# $MV_BUILD/test-logs/.  Exits 1 if any test failed.
set -u

top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
MV_BUILD=${MV_BUILD:-build}
export MV_BUILD
timeout=${MV_TEST_TIMEOUT:-300}
logs=$MV_BUILD/test-logs
mkdir -p "$logs"

if [ $# = 0 ]; then
	case ${T:-} in
	t[0-9]*) set -- $T ;;
	esac
fi
unset T

tests=
if [ $# = 0 ]; then
	tests=$(ls tests/integration/t[0-9]*.sh 2>/dev/null)
else
	for a in "$@"; do
		if [ -f "$a" ]; then
			tests="$tests $a"
			continue
		fi
		m=$(ls tests/integration/"$a"*.sh 2>/dev/null)
		if [ -z "$m" ]; then
			echo "run-integration: no test matches '$a'" >&2
			exit 2
		fi
		tests="$tests $m"
	done
fi

passed=0
failed=0
skipped=0
for t in $tests; do
	name=$(basename "$t" .sh)
	log=$logs/$name.log
	start=$(date +%s)
	timeout -k 10 "$timeout" sh "$t" </dev/null >"$log" 2>&1
	rc=$?
	secs=$(($(date +%s) - start))
	case $rc in
	0)
		echo "ok   $name (${secs}s)"
		passed=$((passed + 1))
		;;
	77)
		why=$(sed -n 's/^SKIP: [^:]*: //p' "$log" | tail -n 1)
		echo "skip $name${why:+ ($why)}"
		skipped=$((skipped + 1))
		;;
	*)
		what="exit $rc"
		[ "$rc" = 124 ] || [ "$rc" = 137 ] &&
			what="timeout after ${timeout}s"
		echo "FAIL $name ($what, ${secs}s; log: $log)"
		tail -n 30 "$log" | sed 's/^/    /'
		failed=$((failed + 1))
		;;
	esac
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
