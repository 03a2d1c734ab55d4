#!/bin/sh
# t9002-forget: forget removes exactly what the policy does not keep, per
# job, keeps partial snapshots until a complete one follows, lists the rule
# behind each decision, and refuses without a policy, with bad values, on
# a locked and on an append-only repository - removing nothing then.
. "$(dirname "$0")/../lib/test-lib.sh"

require_mv
eval_bin=$MV_BUILD_DIR/tools/policy_eval
[ -x "$eval_bin" ] || die "no $eval_bin (run make)"
export TZ=Europe/Berlin
R=$T/repo

mkdir -p "$T/src"
assert_ok "$MV" init "$R" >/dev/null
# mail: every night at 01:30 UTC, 2024-12-20 .. 2025-01-10 (22 nights);
# other: three nights
d=20241220
while [ "$d" -le 20250110 ]; do
	day=$(date -u -d "$d" +%Y-%m-%d)
	echo "mailbox of $day" >"$T/src/msg"
	assert_ok "$MV" backup "$R" --name mail --time "${day}T01:30:00Z" \
		--quiet data="$T/src"
	echo "${day}T01:30:00" >>"$T/times"
	d=$(date -u -d "$d + 1 day" +%Y%m%d)
done
for day in 2024-12-30 2024-12-31 2025-01-01; do
	echo "other $day" >"$T/src/msg"
	assert_ok "$MV" backup "$R" --name other --time "${day}T02:00:00Z" \
		--quiet data="$T/src"
done
"$MV" snapshots "$R" >"$T/before"
assert_eq 25 "$(grep -c ' mail \| other ' "$T/before")" "snapshots made"

say "no policy, bad values: usage error, nothing removed"
for args in "" "--keep-daily -2" "--keep-daily x" "--keep-within 7" \
	"--keep-within 2h" "--keep-within 0d" "--keep-hourly"; do
	set +e
	# shellcheck disable=SC2086
	"$MV" forget $args "$R" >"$T/out" 2>"$T/err"
	rc=$?
	set -e
	assert_eq 2 "$rc" "exit status of 'forget $args'"
done
assert_exit 2 "$MV" forget "$R" 2>"$T/err"
assert_grep 'refusing to remove every snapshot' "$T/err"
assert_exit 2 "$MV" forget --keep-within 2h "$R" 2>"$T/err"
assert_grep "invalid duration '2h': unknown unit 'h'" "$T/err"
"$MV" snapshots "$R" >"$T/now"
cmp -s "$T/before" "$T/now" || die "a refused forget changed the snapshots"

policy="--keep-daily 5 --keep-weekly 2 --keep-monthly 3"
say "dry run lists the decisions of the policy, changes nothing"
# shellcheck disable=SC2086
"$MV" forget --dry-run --list --name mail $policy "$R" >"$T/dry"
assert_grep '^mail: keeping 9, would remove 13 of 22 snapshots$' "$T/dry"
assert_grep '^dry run \(--keep-daily 5 --keep-weekly 2 --keep-monthly 3\)' \
	"$T/dry"
"$MV" snapshots "$R" >"$T/now"
cmp -s "$T/before" "$T/now" || die "--dry-run changed the snapshots"
# the same decisions as the policy engine that t9001 compares with borg
# shellcheck disable=SC2086
"$eval_bin" $policy <"$T/times" |
	sed -n 's/^\([0-9-]*\)T\([0-9]*\):\([0-9]*\):\([0-9]*\) /\1T\2\3\4Z /p' |
	awk '{ d = $1; $1 = ""; sub(/^ /, ""); print "mail/" d " " $0 }' |
	sort >"$T/want"
awk '/^(keep|remove) / {
	if ($1 == "keep") print $5, "keep", $2, $3; else print $3, "remove"
}' "$T/dry" | sort >"$T/got"
diff -u "$T/want" "$T/got" || die "forget --list differs from the policy"
assert_grep '^keep +daily #1 +[0-9a-f]{12}  mail/2025-01-10T013000Z$' \
	"$T/dry"
assert_grep '^keep +weekly #1 +[0-9a-f]{12}  mail/2025-01-05T013000Z$' \
	"$T/dry"
assert_grep '^keep +monthly #1 +[0-9a-f]{12}  mail/2024-12-31T013000Z$' \
	"$T/dry"
assert_grep '^keep +monthly\[oldest\] #2 +[0-9a-f]{12}  mail/2024-12-20T' \
	"$T/dry"

say "forget removes exactly the listed snapshots of that job"
# shellcheck disable=SC2086
"$MV" forget --name mail $policy "$R" >"$T/run"
assert_grep '^mail: keeping 9, removing 13 of 22 snapshots$' "$T/run"
assert_grep '^removed 13 snapshots' "$T/run"
"$MV" snapshots "$R" >"$T/after"
awk '$2 == "mail" { print "mail/" $3 }' "$T/after" | sort >"$T/left"
awk '$1 == "keep" { print $5 }' "$T/dry" | sort >"$T/kept"
diff -u "$T/kept" "$T/left" || die "remaining snapshots are not the kept set"
assert_eq 3 "$(awk '$2 == "other"' "$T/after" | wc -l)" "other job untouched"
assert_eq "mailbox of 2024-12-31" \
	"$("$MV" cat "$R" mail/2024-12-31T013000Z:data/msg)" \
	"content of a kept snapshot"
assert_fail "$MV" cat "$R" mail/2025-01-04T013000Z:data/msg 2>/dev/null
# applying the policy again keeps everything
# shellcheck disable=SC2086
"$MV" forget --name mail $policy "$R" >"$T/again"
assert_grep '^mail: keeping 9, removing 0 of 9 snapshots$' "$T/again"

say "json: counts and the rule per snapshot"
"$MV" forget --dry-run --json --keep-last 1 "$R" >"$T/json"
python3 - "$T/json" <<'EOF' || die "bad --json output"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["dry_run"] is True and d["policy"] == "--keep-last 1", d
jobs = {j["name"]: j for j in d["jobs"]}
assert set(jobs) == {"mail", "other"}, jobs
assert (jobs["mail"]["kept"], jobs["mail"]["removed"]) == (1, 8)
assert (d["kept"], d["removed"]) == (2, 10)
first = jobs["other"]["snapshots"][0]
assert first["keep"] and first["rule"] == "secondly #1", first
assert first["time"] == "2025-01-01T02:00:00Z", first
assert all(s["rule"] is None for s in jobs["mail"]["snapshots"][1:])
EOF

say "partial snapshots: kept while newest, removed once a complete follows"
mkdir -p "$T/big"
head -c 400000 /dev/urandom >"$T/big/blob"
tar czf "$T/big.tgz" -C "$T" big
head -c 30000 "$T/big.tgz" >"$T/trunc.tgz"
set +e
"$MV" backup "$R" --name mail --time 2025-01-11T01:30:00Z --partial \
	--quiet data="$T/trunc.tgz" 2>/dev/null
set -e
"$MV" snapshots "$R" | grep -q '2025-01-11T013000Z.partial' ||
	die "no partial snapshot was made"
"$MV" forget --name mail --list --keep-last 1 "$R" >"$T/p1"
assert_grep '^keep +partial +[0-9a-f]{12}  mail/2025-01-11T013000Z\.partial$' \
	"$T/p1"
assert_grep '^keep +secondly #1 .* mail/2025-01-10T013000Z$' "$T/p1"
echo "mailbox of 2025-01-12" >"$T/src/msg"
assert_ok "$MV" backup "$R" --name mail --time 2025-01-12T01:30:00Z \
	--quiet data="$T/src"
"$MV" forget --name mail --list --keep-last 1 "$R" >"$T/p2"
assert_grep '^remove .* mail/2025-01-11T013000Z\.partial$' "$T/p2"
assert_grep '^mail: keeping 1, removing 2 of 3 snapshots$' "$T/p2"
"$MV" snapshots "$R" >"$T/now"
assert_no_grep 'partial' "$T/now"

say "a locked repository: refused with the holder, nothing removed"
sleep 60 &
holder=$!
echo "$holder" >>"$T/.tl-pids"
printf 'host=%s\npid=%s\ntime=%s\n' "$(hostname)" "$holder" \
	"$(($(date +%s) - 5))" >"$R/lock"
"$MV" snapshots "$R" >"$T/before"
set +e
"$MV" forget --keep-last 1 "$R" >/dev/null 2>"$T/err"
rc=$?
set -e
assert_eq 11 "$rc" "exit status on a locked repository"
assert_grep "locked by pid $holder on host '$(hostname)'" "$T/err"
"$MV" snapshots "$R" >"$T/now"
cmp -s "$T/before" "$T/now" || die "forget changed a locked repository"
# --wait waits for the backup to finish
(sleep 1; rm -f "$R/lock") &
"$MV" forget --wait --name other --keep-last 1 "$R" >"$T/out"
assert_grep '^other: keeping 1, removing 2 of 3 snapshots$' "$T/out"

say "append-only: forget refuses, dry run still shows the plan"
A=$T/ao
assert_ok "$MV" init --append-only "$A" >/dev/null
for day in 2025-01-01 2025-01-02; do
	assert_ok "$MV" backup "$A" --name mail --time "${day}T01:30:00Z" \
		--quiet data="$T/src"
done
set +e
"$MV" forget --keep-last 1 "$A" >/dev/null 2>"$T/err"
rc=$?
set -e
assert_eq 1 "$rc" "exit status on an append-only repository"
assert_grep "append-only" "$T/err"
assert_eq 2 "$("$MV" snapshots "$A" | grep -c ' mail ')" \
	"snapshots left in the append-only repository"
"$MV" forget --dry-run --keep-last 1 "$A" >"$T/out"
assert_grep '^mail: keeping 1, would remove 1 of 2 snapshots$' "$T/out"
ok
