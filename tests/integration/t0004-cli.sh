#!/bin/sh
# t0004-cli: usage errors exit 2 with a hint, MAILVAULT_REPO stands for
# REPO, unknown snapshots and paths are clear errors (exit 1), and ls/cat
# show what was stored.
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv

R=$T/repo
mkdir -p "$T/src/d"
printf 'one\n' >"$T/src/d/one.txt"
printf 'two\n' >"$T/src/two.txt"

# exits CODE PATTERN CMD...: CMD exits CODE and says PATTERN on stderr
exits()
{
	_want=$1
	_pat=$2
	shift 2
	set +e
	"$@" >"$T/o" 2>"$T/e"
	_rc=$?
	set -e
	assert_eq "$_want" "$_rc" "exit code of: $*"
	[ -z "$_pat" ] || assert_grep "$_pat" "$T/e"
}

say "usage errors exit 2"
exits 2 'usage: mailvault COMMAND' "$MV"
exits 2 "unknown command 'frobnicate'" "$MV" frobnicate
exits 2 'no repository given' "$MV" backup
exits 2 'give \[REPO\] SNAP' "$MV" ls
exits 2 "needs a label: LABEL=SOURCE" "$MV" backup "$R" --name x nolabel
exits 2 "unrecognized option '--bogus'" "$MV" backup "$R" --bogus
exits 0 '' "$MV" backup --help
assert_grep 'usage: mailvault backup' "$T/o"

say "MAILVAULT_REPO stands for REPO"
MAILVAULT_REPO=$R
export MAILVAULT_REPO
assert_ok "$MV" init
[ -f "$R/config" ] || die "init through MAILVAULT_REPO made no repository"
exits 1 "already a mailvault repository" "$MV" init
assert_ok "$MV" backup --name job --time 2024-05-01T12:00:00Z src="$T/src"
"$MV" snapshots >"$T/snaps"
assert_grep '^[0-9a-f]{12} +job +2024-05-01T120000Z' "$T/snaps"
unset MAILVAULT_REPO

say "ls and cat"
"$MV" ls "$R" job/latest:src >"$T/ls"
assert_eq "d/
two.txt" "$(cat "$T/ls")" "ls of src"
"$MV" ls -l "$R" job/latest:src/d >"$T/ls-l"
assert_grep 'one\.txt$' "$T/ls-l"
assert_eq "one" "$("$MV" cat "$R" job/latest:src/d/one.txt)" "cat"
assert_eq "two" "$("$MV" cat "$R" job/2024-05-01T120000Z:src/two.txt)" \
	"cat by NAME/TIME"
assert_eq "two" "$("$MV" cat "$R" job/2024-05-01T12:00:00Z:src/two.txt)" \
	"cat by NAME/ISO TIME"
id=$(sed -n 's/^\([0-9a-f]*\) .*/\1/p' "$T/snaps" | cut -c1-8)
assert_eq "two" "$("$MV" cat "$R" "$id:src/two.txt")" "cat by id prefix"

say "unknown snapshots, paths and repositories: exit 1, clear message"
exits 1 "no snapshot 'nosuch/latest' in '$R'" "$MV" ls "$R" nosuch/latest
exits 1 "no snapshot 'job/2020-01-01T000000Z'" \
	"$MV" ls "$R" job/2020-01-01T000000Z
exits 1 "cannot parse time 'yesterday'" "$MV" ls "$R" job/yesterday
exits 1 "no snapshot 'ffffffff'" "$MV" ls "$R" ffffffff
exits 1 "'src/nosuch': no such file or directory" \
	"$MV" cat "$R" job/latest:src/nosuch
exits 1 "not a mailvault repository|cannot open repository" \
	"$MV" ls "$T/nonexistent" job/latest
exits 1 "cannot read source '/nonexistent'" \
	"$MV" backup "$R" --name x v=/nonexistent
exits 1 "" "$MV" cat "$R" job/latest:src/d
ok
