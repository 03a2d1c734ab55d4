#!/bin/sh
# run.sh BUILD SECONDS [HARNESS...]: run each libFuzzer harness in
# BUILD/fuzz for SECONDS, one after the other (one process: the machine is
# shared).  Inputs found go to BUILD/fuzz-corpus/<harness>; the committed
# seeds in tests/fuzz/corpus/<harness> are read, never written.  A crash,
# leak or timeout stops with status 1 and names the reproducer.
set -u
build=$1
secs=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
names=$*
if [ -z "$names" ]; then
	for f in "$here"/fuzz_*.c; do
		n=$(basename "$f" .c)
		names="$names $n"
	done
fi
failed=
for n in $names; do
	bin=$build/fuzz/$n
	seeds=$here/corpus/$n
	work=$build/fuzz-corpus/$n
	art=$build/fuzz-artifacts/$n
	log=$build/fuzz-logs/$n.log
	[ -x "$bin" ] || { echo "fuzz: missing $bin" >&2; exit 1; }
	mkdir -p "$work" "$art" "$(dirname "$log")" "$seeds"
	"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$art/" -print_final_stats=1 \
		"$work" "$seeds" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
	if [ $rc -ne 0 ]; then
		echo "FAIL $n (status $rc, ${runs:-?} runs); log: $log"
		grep -E 'ERROR|SUMMARY|Test unit written' "$log" | head -5
		failed="$failed $n"
	else
		echo "ok   $n: ${runs:-?} runs in ${secs}s, $cov, corpus $(ls "$work" | wc -l) + $(ls "$seeds" | wc -l) seeds"
	fi
done
if [ -n "$failed" ]; then
	echo "fuzz: failed:$failed" >&2
	exit 1
fi
exit 0
