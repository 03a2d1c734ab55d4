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
#   MV_JOBS=N          tests run N at a time (default: the number of CPUs);
#                      those that count round trips or time a step run
#                      alone afterwards (serial_tests below)
#   MV_NO_SKIP=1       (and CI=true) a test that skips fails, unless it is
#                      on the allow-list below: where CI runs, root, FUSE
#                      and every package tools/install-deps.sh installs
#                      are there, so a skip means a test that did not run
# Prints ok/FAIL/skip per test as it ends, the tail of the log of a failing test, the
# skipped tests, and last the line "N passed, N failed, N skipped".  Logs
# are kept in $MV_BUILD/test-logs/.  Exits 1 if any test failed.
#
# A test passes only by exiting 0 after printing "PASS: NAME" (test-lib's
# ok) and skips only by exiting 77 after "SKIP: NAME: why" (skip); any
# other ending is a failure, so a test that loses its status on the way
# out cannot pass.
set -u

# Tests that may skip even where skips fail, one per line with the reason.
allowed_skips='
t3106-remote-bench	a benchmark, run only with MV_BENCH=1 (make bench)
'

no_skip=
case ${MV_NO_SKIP:-}/${CI:-} in
1/* | */true | */1) no_skip=1 ;;
esac

top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
MV_BUILD=${MV_BUILD:-build}
export MV_BUILD
timeout=${MV_TEST_TIMEOUT:-300}
logs=$MV_BUILD/test-logs
mkdir -p "$logs"

# One test: run it, decide how it ended, print its line (and the tail of
# its log if it failed) in one write, and leave the outcome in
# $logs/NAME.result for the summary: "ok", "skip WHY" or "fail".
run_one()
{
	t=$1
	name=$(basename "$t" .sh)
	log=$logs/$name.log
	start=$(date +%s)
	timeout -k 10 "$timeout" sh "$t" </dev/null >"$log" 2>&1
	rc=$?
	secs=$(($(date +%s) - start))
	what=
	case $rc in
	0)
		grep -Fqx "PASS: $name" "$log" ||
			what="exit 0 without test-lib's ok"
		;;
	77)
		why=$(sed -n "s/^SKIP: $name: //p" "$log" | tail -n 1)
		[ -n "$why" ] || what="exit 77 without test-lib's skip"
		;;
	124 | 137) what="timeout after ${timeout}s" ;;
	*) what="exit $rc" ;;
	esac
	if [ -z "$what" ] && [ "$rc" = 77 ]; then
		allowed=$(printf '%s\n' "$allowed_skips" |
			sed -n "s/^$name	//p")
		if [ -n "$no_skip" ] && [ -z "$allowed" ]; then
			what="skipped: $why; skips fail here (CI=${CI:-}, MV_NO_SKIP=${MV_NO_SKIP:-})"
		else
			echo "skip $why" >"$logs/$name.result"
			echo "skip $name ($why)"
			return 0
		fi
	fi
	if [ -z "$what" ]; then
		echo ok >"$logs/$name.result"
		echo "ok   $name (${secs}s)"
		return 0
	fi
	echo fail >"$logs/$name.result"
	{
		echo "FAIL $name ($what, ${secs}s; log: $log)"
		tail -n 30 "$log" | sed 's/^/    /'
	} >"$logs/$name.report"
	cat "$logs/$name.report"
	return 0
}

# xargs -P runs this script once per test with --one.
if [ "${1:-}" = --one ]; then
	run_one "$2"
	exit 0
fi

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

# Tests that count round trips or time a step run alone, after the rest.
serial_tests='
t2005-remote-mount-latency
t3001-sftp-backend
t3106-remote-bench
t3121-ssh-handshake-round-trips
t3130-remote-round-trips
t5033-find-round-trips
'

jobs=${MV_JOBS:-$(nproc 2>/dev/null || echo 1)}
case $jobs in
'' | *[!0-9]* | 0) jobs=1 ;;
esac

parallel=
alone=
for t in $tests; do
	name=$(basename "$t" .sh)
	rm -f "$logs/$name.result" "$logs/$name.report"
	if [ "$jobs" -gt 1 ] && printf '%s\n' "$serial_tests" | grep -Fqx "$name"; then
		alone="$alone $t"
	else
		parallel="$parallel $t"
	fi
done
[ "$jobs" = 1 ] || echo "running $(echo $parallel | wc -w) tests $jobs at a time, then $(echo $alone | wc -w) alone"
if [ "$jobs" -gt 1 ] && [ -n "$parallel" ]; then
	printf '%s\n' $parallel |
		xargs -P "$jobs" -n 1 sh "$top/tests/lib/run-integration.sh" --one
else
	for t in $parallel; do
		run_one "$t"
	done
fi
for t in $alone; do
	run_one "$t"
done

passed=0
failed=0
skipped=0
skiplist=
for t in $tests; do
	name=$(basename "$t" .sh)
	r=$(cat "$logs/$name.result" 2>/dev/null || echo fail)
	case $r in
	ok) passed=$((passed + 1)) ;;
	skip*)
		skipped=$((skipped + 1))
		skiplist="$skiplist $name"
		;;
	*)
		failed=$((failed + 1))
		[ -f "$logs/$name.result" ] ||
			echo "FAIL $name (no result: the runner lost it)"
		;;
	esac
done
[ -z "$skiplist" ] || echo "skipped:$skiplist"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
