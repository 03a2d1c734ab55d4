# test-lib.sh: sourced by tests/integration/tNNNN-topic.sh (POSIX sh).
#
#	#!/bin/sh
#	# tNNNN-topic: what this test proves, in one line.
#	. "$(dirname "$0")/../lib/test-lib.sh"
#	gen --small --days 2 --out "$T/fx"
#	"$MV" init "$T/repo"
#	...
#	ok
#
# Provides:
#   $T        a private, empty temporary directory (removed at exit unless
#             MV_KEEP=1; kept and named in the log when the test fails)
#   $TOP      the source tree;  $MV_BIN  the mailvault binary in
#             $MV_BUILD_DIR ($MV_BUILD, default build, relative to $TOP);
#             $MV  runs it through tests/lib/mailvault-plain, whose `init`
#             makes unencrypted repositories unless --encryption is given
#             (MAILVAULT_KDF_TEST=1 keeps key slots at Argon2id's minimum)
#   $GEN      tools/gen_fixture.py;  gen ARGS...  runs it quietly
#   say MSG               progress line "# MSG" in the test log
#   die MSG               fail the test
#   skip MSG              skip the test (exit 77); only when a prerequisite
#                         cannot exist here (not root, no /dev/fuse).  Where
#                         CI=true or MV_NO_SKIP=1, the runner counts a skip
#                         as a failure (tests/lib/run-integration.sh)
#   ok                    end of a passing test; a test that exits in any
#                         other way (falls off its end, `exit 0`, exit 77
#                         from a command) fails
#   at_exit 'CMD'         run CMD (one line, eval'ed) at exit, newest first,
#                         before mounts and background processes are
#                         cleaned up; its status never changes the test's
#   assert_eq WANT GOT [WHAT]
#   assert_ok CMD...      CMD must succeed (its output goes to the log)
#   assert_fail CMD...    CMD must exit non-zero (not by a signal)
#   assert_exit RC CMD... CMD must exit with status RC (redirect its
#                         output with exec or a group: { CMD; } 2>F)
#   assert_grep PATTERN FILE / assert_no_grep PATTERN FILE   (grep -E)
#   assert_all_match PATTERN FILE   every line of FILE matches (grep -E)
#   assert_same_tree A B [-x FIELDS]   tree_digest of both must match
#   tree_digest DIR [-x FIELDS] [--no-root]   see tests/lib/tree-digest.py
#   bg CMD...             start CMD in the background; killed at exit
#   mount_mv REPO DIR [ARGS...]   mailvault mount, wait until mounted;
#                                 unmounted at exit whatever happens
#   unmount_mv DIR        unmount now (fusermount3 -u, lazily if busy)
#   wait_mounted DIR [SECONDS]    wait until DIR is a mount point
#   require_root, require_fuse, require_cmd CMD...   skip unless present
#
# Every test runs with `set -eu`: a failing command fails the test.
# Do not set an EXIT trap of your own: it would replace the cleanup, or hand
# it the exit status of its own commands.  Use at_exit.

set -eu

TEST_NAME=$(basename "$0" .sh)
TOP=$(cd "$(dirname "$0")/../.." && pwd)
MV_BUILD=${MV_BUILD:-build}
case $MV_BUILD in
/*) MV_BUILD_DIR=$MV_BUILD ;;
*) MV_BUILD_DIR=$TOP/$MV_BUILD ;;
esac
MV_BIN=$MV_BUILD_DIR/mailvault
MV=$TOP/tests/lib/mailvault-plain
GEN=$TOP/tools/gen_fixture.py
T=$(mktemp -d "${TMPDIR:-/tmp}/mv-$TEST_NAME.XXXXXX")
export TOP MV MV_BIN MV_BUILD MV_BUILD_DIR GEN T
# key slots made by tests take Argon2id's minimum cost (keyslot.h), and no
# test reads the passphrase of the user running it
export MAILVAULT_KDF_TEST=1
unset MAILVAULT_PASSPHRASE MAILVAULT_PASSCOMMAND MAILVAULT_PASSPHRASE_FILE \
	MAILVAULT_NEW_PASSPHRASE MAILVAULT_KEYFILE CREDENTIALS_DIRECTORY || true
# A test never touches the user's repository by accident.
unset MAILVAULT_REPO || true
# Each test has a private cache of its own (mailvault's and borg's), so
# tests that run at the same time (run-integration.sh, MV_JOBS) never
# share or clear each other's.
XDG_CACHE_HOME=$T/cache
export XDG_CACHE_HOME
export LC_ALL=C TZ=UTC

say()
{
	echo "# $*"
}

# How the test ended, as the shell that runs it saw it: ok, skip or die.
# _tl_cleanup trusts this over an exit status that a command or a trap
# may have replaced.
_tl_end=
_tl_atexit=

die()
{
	_tl_end=die
	echo "FAIL: $TEST_NAME: $*" >&2
	exit 1
}

skip()
{
	_tl_end=skip
	echo "SKIP: $TEST_NAME: $*" >&2
	exit 77
}

ok()
{
	_tl_end=ok
	echo "PASS: $TEST_NAME"
	exit 0
}

at_exit()
{
	_tl_atexit="$1
$_tl_atexit"
}

_tl_cleanup()
{
	rc=$?
	trap - EXIT INT TERM HUP
	set +e
	case $_tl_end in
	ok)
		[ "$rc" = 0 ] ||
			echo "FAIL: $TEST_NAME: exit $rc after ok (a trap?)" >&2
		;;
	skip) rc=77 ;;
	*)
		# died, or left without ok: never a pass, never a skip
		if [ "$rc" = 0 ] || [ "$rc" = 77 ]; then
			[ "$_tl_end" = die ] ||
				echo "FAIL: $TEST_NAME: exit $rc before ok" >&2
			rc=1
		fi
		;;
	esac
	if [ -n "$_tl_atexit" ]; then
		printf '%s\n' "$_tl_atexit" | while IFS= read -r _tl_cmd; do
			[ -n "$_tl_cmd" ] && (eval "$_tl_cmd")
		done
	fi
	if [ -f "$T/.tl-mounts" ]; then
		# newest first
		sed -n '1!G;h;$p' "$T/.tl-mounts" | while IFS= read -r m; do
			if mountpoint -q "$m" 2>/dev/null; then
				fusermount3 -u "$m" 2>/dev/null ||
					fusermount3 -u -z "$m" 2>/dev/null ||
					umount -l "$m" 2>/dev/null
			fi
		done
	fi
	if [ -f "$T/.tl-pids" ]; then
		while IFS= read -r p; do
			kill "$p" 2>/dev/null
		done <"$T/.tl-pids"
		sleep 0.2
		while IFS= read -r p; do
			kill -9 "$p" 2>/dev/null
		done <"$T/.tl-pids"
	fi
	_tl_busy=
	if [ -f "$T/.tl-mounts" ]; then
		while IFS= read -r m; do
			mountpoint -q "$m" 2>/dev/null && _tl_busy="$_tl_busy $m"
		done <"$T/.tl-mounts"
	fi
	if [ -n "$_tl_busy" ]; then
		echo "# $TEST_NAME: still mounted:$_tl_busy; $T kept" >&2
	elif [ "$rc" != 0 ] && [ "$rc" != 77 ]; then
		echo "# $TEST_NAME: exit $rc; files kept in $T" >&2
	elif [ "${MV_KEEP:-}" = 1 ]; then
		echo "# files kept in $T" >&2
	else
		rm -rf "$T"
	fi
	exit "$rc"
}
trap _tl_cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

gen()
{
	python3 "$GEN" --quiet "$@"
}

assert_eq()
{
	[ "$1" = "$2" ] ||
		die "${3:-value}: expected '$1', got '$2'"
}

assert_ok()
{
	"$@" || die "command failed (exit $?): $*"
}

assert_fail()
{
	set +e
	"$@"
	_tl_rc=$?
	set -e
	[ "$_tl_rc" != 0 ] || die "command succeeded but must fail: $*"
	[ "$_tl_rc" -lt 128 ] ||
		die "command died by signal $((_tl_rc - 128)): $*"
}

assert_exit()
{
	_tl_want=$1
	shift
	set +e
	"$@"
	_tl_rc=$?
	set -e
	[ "$_tl_rc" = "$_tl_want" ] ||
		die "exit status $_tl_rc, expected $_tl_want: $*"
}

assert_grep()
{
	grep -Eq -- "$1" "$2" || {
		echo "--- $2:" >&2
		tail -n 20 "$2" >&2
		die "'$1' not found in $2"
	}
}

assert_no_grep()
{
	if grep -Eq -- "$1" "$2"; then
		grep -E -- "$1" "$2" | head -n 5 >&2
		die "'$1' found in $2"
	fi
}

assert_all_match()
{
	if grep -Evq -- "$1" "$2"; then
		grep -Ev -- "$1" "$2" | head -n 5 >&2
		die "lines of $2 do not match '$1'"
	fi
}

tree_digest()
{
	_tl_dir=$1
	shift
	python3 "$TOP/tests/lib/tree-digest.py" "$@" "$_tl_dir"
}

# assert_same_tree A B [tree-digest options]: metadata- and byte-exact.
assert_same_tree()
{
	_tl_a=$1
	_tl_b=$2
	shift 2
	tree_digest "$_tl_a" "$@" >"$T/.tl-digest-a"
	tree_digest "$_tl_b" "$@" >"$T/.tl-digest-b"
	if ! diff -u "$T/.tl-digest-a" "$T/.tl-digest-b" >"$T/.tl-diff"; then
		head -n 40 "$T/.tl-diff" >&2
		die "trees differ: $_tl_a $_tl_b ($(grep -c '^[-+][^-+]' \
			"$T/.tl-diff") lines)"
	fi
}

bg()
{
	"$@" &
	echo $! >>"$T/.tl-pids"
}

wait_mounted()
{
	_tl_n=$(( ${2:-10} * 10 ))
	while [ "$_tl_n" -gt 0 ]; do
		mountpoint -q "$1" 2>/dev/null && return 0
		sleep 0.1
		_tl_n=$((_tl_n - 1))
	done
	die "$1 is not mounted after ${2:-10} s"
}

mount_mv()
{
	_tl_repo=$1
	_tl_mnt=$2
	shift 2
	mkdir -p "$_tl_mnt"
	echo "$_tl_mnt" >>"$T/.tl-mounts"
	"$MV" mount "$_tl_repo" "$_tl_mnt" "$@" ||
		die "mailvault mount $_tl_repo $_tl_mnt failed"
	wait_mounted "$_tl_mnt"
}

unmount_mv()
{
	fusermount3 -u "$1" 2>/dev/null || fusermount3 -u -z "$1" ||
		die "cannot unmount $1"
	_tl_n=50
	while mountpoint -q "$1" 2>/dev/null && [ "$_tl_n" -gt 0 ]; do
		sleep 0.1
		_tl_n=$((_tl_n - 1))
	done
}

require_root()
{
	[ "$(id -u)" = 0 ] || skip "needs root"
}

require_fuse()
{
	[ -c /dev/fuse ] || skip "no /dev/fuse"
	command -v fusermount3 >/dev/null || skip "no fusermount3"
}

require_cmd()
{
	for _tl_c in "$@"; do
		command -v "$_tl_c" >/dev/null || skip "no $_tl_c"
	done
}

require_mv()
{
	[ -x "$MV_BIN" ] || die "no mailvault binary at $MV_BIN (run make)"
}
