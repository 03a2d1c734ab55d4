#!/bin/sh
# t9001-policy-vs-borg: retention policies decide exactly as `borg prune`
# 1.2 does: the same snapshot times and --keep-* options give the same kept
# set and the same rule for every kept snapshot, in three time zones,
# across a year end with ISO week 53, both DST changes, month ends that
# differ between local time and UTC, equal timestamps, --keep-within,
# checkpoints and unlimited counts.

. "$(dirname "$0")/../lib/test-lib.sh"

require_cmd borg
eval_bin=$MV_BUILD_DIR/tools/policy_eval
[ -x "$eval_bin" ] || die "no $eval_bin (run make)"

work=$T
export BORG_BASE_DIR="$work/borg-home"
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
unset BORG_REPO BORG_PASSPHRASE BORG_RSH || true

now=$(date -u +%s)
ago() {
	date -u -d "@$((now - $1))" +%Y-%m-%dT%H:%M:%S
}

# One snapshot per line, UTC, optionally "partial".  Equal times must keep
# their relative order (later line = newer), as borg orders equal times by
# archive name.
cat >"$work/times" <<EOF
2018-03-01T10:00:00
2018-07-01T10:00:00
2019-03-01T10:00:00
2019-11-30T23:30:00
2020-02-29T12:00:00
2020-12-25T11:00:00
2020-12-27T11:00:00
2020-12-28T11:00:00
2020-12-31T11:00:00
2021-01-01T11:00:00
2021-01-03T22:30:00
2021-01-04T11:00:00
2021-01-06T11:00:00
2021-01-31T22:30:00
2021-01-31T23:30:00
2021-03-27T22:30:00
2021-03-28T00:30:00
2021-03-28T00:59:59
2021-03-28T01:00:00
2021-03-28T01:30:00
2021-03-28T02:30:00
2021-06-15T09:00:00 partial
2021-06-15T10:00:00
2021-06-15T10:00:00
2021-06-15T10:00:30
2021-06-15T10:00:59
2021-06-15T10:01:00
2021-10-30T23:30:00
2021-10-31T00:30:00
2021-10-31T01:30:00
2021-10-31T02:30:00
2021-12-31T22:59:59
2021-12-31T23:00:00
$(ago 864000)
$(ago 259200) partial
$(ago 259100)
$(ago 108000)
$(ago 3600)
$(ago 600) partial
EOF

mkdir "$work/empty"
say "$(borg --version): $(wc -l <"$work/times") archives"
borg init -e none "$work/repo"
i=0
while read -r t flag; do
	i=$((i + 1))
	name=$(printf 'a%04d' "$i")
	[ "$flag" = partial ] && name=$name.checkpoint
	borg create --timestamp "$t" "$work/repo::$name" "$work/empty"
done <"$work/times"

# borg's --list lines -> "aNNNN keep RULE #N" / "aNNNN remove"
borg_decisions() {
	borg prune --dry-run --list "$@" "$work/repo" 2>&1 |
		sed -n -e 's/^Keeping archive (rule: \(.*\)): *\(a[0-9]*\) .*/\2 keep \1/p' \
			-e 's/^Keeping checkpoint archive: *\(a[0-9]*\)\.checkpoint .*/\1 keep partial/p' \
			-e 's/^Would prune: *\(a[0-9]*\)[. ].*/\1 remove/p' |
		sort
}

mv_decisions() {
	"$eval_bin" "$@" <"$work/times" |
		awk '{ $1 = sprintf("a%04d", NR); print }' | sort
}

pass=0
fail=0
n=$(wc -l <"$work/times")
for tz in Europe/Berlin UTC America/New_York; do
	export TZ=$tz
	while read -r policy; do
		# shellcheck disable=SC2086
		borg_decisions $policy >"$work/borg.out"
		# shellcheck disable=SC2086
		mv_decisions $policy >"$work/mv.out"
		if [ "$(wc -l <"$work/borg.out")" -ne "$n" ]; then
			echo "FAIL: TZ=$tz $policy: borg listed" \
				"$(wc -l <"$work/borg.out") of $n archives"
			fail=$((fail + 1))
		elif diff -u "$work/borg.out" "$work/mv.out" >"$work/diff"; then
			pass=$((pass + 1))
		else
			echo "FAIL: TZ=$tz $policy"
			cat "$work/diff"
			fail=$((fail + 1))
		fi
	done <<EOF
--keep-daily 7
--keep-daily 14 --keep-monthly 6 --keep-yearly 1
--keep-last 5 --keep-hourly 6
--keep-hourly 12
--keep-minutely 4 --keep-daily 3
--keep-weekly 8
--keep-monthly 4 --keep-yearly -1
--keep-within 2d --keep-weekly 2
--keep-within 36H
--keep-within 1m --keep-yearly 2
--keep-last 3 --keep-minutely 3 --keep-hourly 3 --keep-daily 3 --keep-weekly 3 --keep-monthly 3 --keep-yearly 3
--keep-yearly 10
--keep-daily -1
--keep-last 100
EOF
done
say "policy vs $(borg --version): $pass agree, $fail differ"
[ "$fail" -eq 0 ] || die "$fail policies decide differently from borg"
[ "$pass" -eq 42 ] || die "only $pass of 42 comparisons ran"
ok
