#!/bin/sh
# t0050-run-job: `mailvault run` carries out a job file end to end against
# a local HTTP server standing in for healthchecks.io and a fake sendmail:
# a good job pings /start then success, runs its hooks in order, stores
# its stream, directory, command and file sources, removes what the
# retention policy says and writes the node-exporter textfile; a job with
# a failing source pings /fail with the log's tail, mails, exits 1 and
# still runs its after-hook and on-error hook; a stream failing after its
# tar fails the job; a hook past its timeout is stopped and SIGTERM to run
# exits 130, the after-hook running in both; a second run of a running
# job exits 11; run --all runs every job;
# an invalid job file stops everything with exit 2 naming file:line; the
# examples in contrib/jobs validate; and
# backup --wait[=SECONDS] waits for a held lock.
. "$(dirname "$0")/../lib/test-lib.sh"

require_cmd python3
R=$T/repo
J=$T/jobs
export MAILVAULT_JOB_DIR=$J MAILVAULT_STATE_DIR=$T/state
mkdir -p "$J" "$T/src/sub" "$T/bin"
echo "a message" >"$T/src/sub/msg"
echo "CREATE TABLE t (x int);" >"$T/dump.sql"
echo "127.0.0.1 localhost" >"$T/hosts"
assert_ok "$MV" init "$R" >/dev/null

# a healthcheck endpoint recording every request, and a sendmail
. "$TOP/tests/lib/fake-notify.sh"
hc_start
fake_sendmail

cat >"$J/good.conf" <<EOF
# a home server: a directory, a tar stream, a database dump, one file
[job]
repository = $R
tag = host=test

[source data]
path = $T/src

[source volume]
stream = tar -czf - -C $T/src .

[source db]
command = cat $T/dump.sql
file-name = dump.sql

[source etc]
file = $T/hosts

[retention]
keep-last = 2

[prune]
every = 0

[hook before]
command = echo before >>$T/hooks.good
timeout = 30s

[hook after]
command = echo after >>$T/hooks.good

[notify]
healthcheck = $URL/ping/good
textfile = $T/good.prom
EOF

say "the plan: --dry-run runs nothing"
assert_ok "$MV" run --dry-run good >"$T/plan"
assert_grep 'hook before \(timeout 30s\): echo before' "$T/plan"
assert_grep "backup: .* data=$T/src .*volume=/dev/fd/N" "$T/plan"
assert_grep 'forget: .*--keep-last=2' "$T/plan"
[ ! -e "$T/hooks.good" ] || die "--dry-run ran a hook"
assert_eq 0 "$(wc -l <"$T/hc/requests")" "requests of a dry run"

say "a good job, three times: start + success pings, hooks in order"
for i in 1 2 3; do
	assert_exit 0 "$MV" run good >"$T/run$i.out" 2>&1
	sleep 1 # one snapshot per second of the job's name
done
assert_eq "GET /ping/good/start
POST /ping/good
GET /ping/good/start
POST /ping/good
GET /ping/good/start
POST /ping/good" "$(cat "$T/hc/requests")" "requests"
assert_eq "before
after
before
after
before
after" "$(cat "$T/hooks.good")" "hooks"
grep -q 'mailvault run good: done (exit 0)' "$T/hc/body.1" ||
	die "the success ping does not carry the log"
"$MV" snapshots "$R" >"$T/snaps"
assert_eq 2 "$(grep -c ' good ' "$T/snaps")" "snapshots kept by keep-last = 2"
assert_grep 'removing 1 of 3 snapshots' "$T/run3.out"
assert_grep 'reclaimed' "$T/run3.out"
"$MV" cat "$R" good/latest:db/dump.sql >"$T/got.sql"
cmp "$T/dump.sql" "$T/got.sql" || die "the command source differs"
"$MV" cat "$R" good/latest:etc/hosts >"$T/got.hosts"
cmp "$T/hosts" "$T/got.hosts" || die "the file source differs"
"$MV" cat "$R" good/latest:volume/sub/msg >"$T/got.msg"
cmp "$T/src/sub/msg" "$T/got.msg" || die "the stream source differs"
"$MV" cat "$R" good/latest:data/sub/msg >"$T/got.msg2"
cmp "$T/src/sub/msg" "$T/got.msg2" || die "the path source differs"
[ ! -e "$T/state/good.spool" ] || die "the spool directory was left behind"

say "the textfile: last success, snapshots, repository size"
assert_grep '^mailvault_job_last_success_timestamp_seconds\{job="good"\} [1-9][0-9]+$' "$T/good.prom"
assert_grep '^mailvault_job_exit_code\{job="good"\} 0$' "$T/good.prom"
assert_grep '^mailvault_repository_snapshots\{job="good"\} 2$' "$T/good.prom"
assert_grep '^mailvault_repository_size_bytes\{job="good"\} [1-9][0-9]+$' "$T/good.prom"
assert_grep '^mailvault_job_bytes_added\{job="good"\} [0-9]+$' "$T/good.prom"
# the check ran once (daily), on part 1 of 7; the state says part 2 next
assert_eq 1 "$(cat "$T"/run*.out | grep -c 'check --read-data-subset 1/7')" "checks"
assert_grep '^next-part = 2$' "$T/state/good.state"

cat >"$J/bad.conf" <<EOF
[job]
repository = $R

[source volume]
stream = echo boom-from-the-stream >&2; exit 3

[hook after]
command = echo after >>$T/hooks.bad

[hook on-error]
command = echo on-error >>$T/hooks.bad

[notify]
healthcheck = $URL/ping/bad
mail-to = admin@example.org
EOF

say "a failing source: /fail with the log tail, exit 1, after-hook runs"
: >"$T/hc/requests"
assert_exit 1 "$MV" run bad >"$T/bad.out" 2>&1
assert_eq "GET /ping/bad/start
POST /ping/bad/fail" "$(cat "$T/hc/requests")" "requests"
assert_grep 'boom-from-the-stream' "$T/hc/body.1"
assert_grep 'backup failed' "$T/hc/body.1"
assert_grep 'FAILED \(exit 1\)' "$T/hc/body.1"
assert_eq "after
on-error" "$(cat "$T/hooks.bad")" "hooks of the failed job"
assert_grep '^sendmail -t -i$' "$T/mail"
assert_grep '^To: admin@example.org$' "$T/mail"
assert_grep '^Subject: mailvault job bad on .*: FAILED \(exit 1\)$' "$T/mail"
assert_grep 'boom-from-the-stream' "$T/mail"
assert_eq 0 "$("$MV" snapshots "$R" | grep -c ' bad ' || true)" "bad snapshots"

say "a stream that fails after its tar: the snapshot is there, the job fails"
cat >"$J/late.conf" <<EOF
[job]
repository = $R

[source volume]
stream = tar -cf - -C $T/src . && echo late-failure >&2 && exit 4

[hook after]
command = echo after >>$T/hooks.late
EOF
assert_exit 1 "$MV" run late >"$T/late.out" 2>&1
assert_grep 'stream volume failed \(exit 4\)' "$T/late.out"
assert_grep 'late-failure' "$T/late.out"
assert_eq 1 "$("$MV" snapshots "$R" | grep -c ' late ')" "snapshots of late"
assert_eq after "$(cat "$T/hooks.late")" "hooks of late"
rm "$J/late.conf"

say "a hook past its timeout is stopped: no backup, the after-hook runs"
cat >"$J/slow.conf" <<EOF
[job]
repository = $R

[source data]
path = $T/src

[hook before]
command = echo before >>$T/hooks.slow && exec sleep 600
timeout = 1s

[hook after]
command = echo after >>$T/hooks.slow
EOF
assert_exit 1 "$MV" run slow >"$T/slow.out" 2>&1
assert_grep 'did not finish within 1 s and was stopped' "$T/slow.out"
assert_grep 'no backup: the before-hook failed' "$T/slow.out"
assert_eq "before
after" "$(cat "$T/hooks.slow")" "hooks of slow"
assert_eq 0 "$("$MV" snapshots "$R" | grep -c ' slow ' || true)" "slow snapshots"

say "SIGTERM to run: the step stops, the after-hook runs, exit 130"
: >"$T/hooks.slow"
sed -i 's/^timeout = 1s$/timeout = 10m/' "$J/slow.conf"
"$MV" run slow >"$T/term.out" 2>&1 &
runner=$!
n=0
while [ ! -s "$T/hooks.slow" ] && [ "$n" -lt 300 ]; do
	sleep 0.1
	n=$((n + 1))
done
[ -s "$T/hooks.slow" ] || die "the before-hook did not start"
# meanwhile a second run of the same job is refused, not run twice
assert_exit 11 "$MV" run slow >"$T/twice.out" 2>&1
assert_grep 'another run of this job holds' "$T/twice.out"
kill -TERM "$runner"
set +e
wait "$runner"
rc=$?
set -e
assert_eq 130 "$rc" "exit status of a stopped run"
assert_eq "before
after" "$(cat "$T/hooks.slow")" "hooks of the stopped run"
rm "$J/slow.conf"

say "run --all: every job, the worst exit code"
: >"$T/hc/requests"
assert_exit 1 "$MV" run --all >"$T/all.out" 2>&1
assert_grep '^GET /ping/bad/start$' "$T/hc/requests"
assert_grep '^POST /ping/bad/fail$' "$T/hc/requests"
assert_grep '^GET /ping/good/start$' "$T/hc/requests"
assert_grep '^POST /ping/good$' "$T/hc/requests"

say "an invalid job file: exit 2 naming file:line, nothing runs"
printf '[job]\nrepository = %s\n[source x]\npath = /x\n[retention]\nkeep-daly = 7\n' \
	"$R" >"$J/typo.conf"
: >"$T/hc/requests"
assert_exit 2 "$MV" run typo 2>"$T/typo.err"
assert_grep "$J/typo.conf:6: \[retention\] keep-daly: unknown key" "$T/typo.err"
assert_exit 2 "$MV" run --all 2>"$T/typo.err"
assert_grep "typo.conf:6:" "$T/typo.err"
assert_eq 0 "$(wc -l <"$T/hc/requests")" "requests with an invalid job"
assert_exit 2 "$MV" run 2>/dev/null
assert_exit 2 "$MV" run --all good 2>/dev/null
assert_ok "$MV" run --help >"$T/help"
assert_grep 'mailvault-job\(5\)' "$T/help"
[ -f "$TOP/man/mailvault-job.5" ] || die "no man/mailvault-job.5"

say "the job files of contrib/jobs validate"
for f in "$TOP"/contrib/jobs/*.conf; do
	assert_ok "$MV" run --dry-run "$f" >"$T/contrib.out"
	assert_grep 'backup: ' "$T/contrib.out"
done

say "backup --wait: exit 11 when the lock stays, the backup when it goes"
assert_exit 2 "$MV" backup "$R" --name w --wait=soon d="$T/src" 2>/dev/null
mkfifo "$T/fifo"
"$MV" backup "$R" --name holder --quiet vol=- <"$T/fifo" 2>/dev/null &
holder=$!
exec 3>"$T/fifo"
n=0
while [ ! -f "$R/lock" ] && [ "$n" -lt 100 ]; do
	sleep 0.1
	n=$((n + 1))
done
[ -f "$R/lock" ] || die "no lock while the holder runs"
assert_exit 11 "$MV" backup "$R" --name w --quiet --wait=1 d="$T/src" \
	2>"$T/wait.err"
assert_grep 'is locked by' "$T/wait.err"
# (without the fifo's write end, or the holder would never see its end)
"$MV" backup "$R" --name w --quiet --wait=300 d="$T/src" 2>"$T/wait.err" 3>&- &
waiter=$!
exec 3>&-
wait "$holder" || true
set +e
wait "$waiter"
rc=$?
set -e
assert_eq 0 "$rc" "exit status of the waiting backup"
assert_eq 1 "$("$MV" snapshots "$R" | grep -c ' w ')" "snapshots of the waiter"

ok
