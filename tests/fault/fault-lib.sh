# fault-lib.sh: helpers for the fault-injection tests (docs/TESTING.md).
# Source after test-lib.sh:
#
#	. "$(dirname "$0")/../lib/test-lib.sh"
#	. "$TOP/tests/fault/fault-lib.sh"
#
# Provides:
#   $MVF          the test binary with fault hooks (make all builds it as
#                 $MV_BUILD_DIR/mailvault-faults; never installed)
#   $FAULTSHIM    the LD_PRELOAD shim (tests/fault/faultshim.c)
#   require_faults      die unless both are built
#   faulty SPEC CMD...  run CMD with the shim and MVFAULT=SPEC; its exit
#                       status is returned (not a test failure); calls
#                       are logged to $T/fault.log
#   fault_count OP      how many calls the last `faulty` logged for OP
#                       (a kill, a fault or a counted pass)
#   snap_ref REPO       restore every snapshot of REPO now into $T/ref/ID
#                       and record its digest (tests/lib/tree-digest.py)
#   verify_repo REPO WHAT   check --read-data is clean and every snapshot
#                       recorded by snap_ref restores byte-exact
#   run_rc VAR CMD...   run CMD, store its exit status in VAR (set -e off)
#   sshd_fault_shim     (after sshd_start) the test sshd's sftp subsystem
#                       becomes OpenSSH's sftp-server run with the shim:
#                       each session reads its rules from $T/rules (empty
#                       at first), logs to $T/srv.log and fires at most
#                       one fault across sessions ($T/once: remove it to
#                       arm again); the key becomes the default identity
#                       and reconnections wait 100 ms
#   killed_backup REPO RULE DIR DIGEST WHAT
#                       (after sshd_fault_shim and snap_ref) a backup of
#                       DIR as "drop" whose server session RULE kills
#                       (armed once); whatever it reports (exit 0 or 1,
#                       no sanitizer report; $KB_RC), the next command
#                       opens REPO, a "drop" snapshot that shows restores
#                       to DIGEST (tree_digest of DIR), none shows only
#                       when the backup failed, and verify_repo passes

MVF=$MV_BUILD_DIR/mailvault-faults
FAULTSHIM=$MV_BUILD_DIR/tests/faultshim.so
export MVF FAULTSHIM

require_faults()
{
	[ -x "$MVF" ] || die "no test binary at $MVF (run make all)"
	[ -f "$FAULTSHIM" ] || die "no fault shim at $FAULTSHIM (run make all)"
}

sshd_fault_shim()
{
	# OpenSSH's sftp-server, not the in-process internal-sftp, which
	# runs partly in a seccomp sandbox the shim's readlink calls break
	_fl_srv=/usr/lib/openssh/sftp-server
	[ -x "$_fl_srv" ] || skip "no $_fl_srv (openssh-sftp-server)"
	: >"$T/rules"
	{
		echo '#!/bin/sh'
		echo "LD_PRELOAD=$FAULTSHIM MVFAULT=@$T/rules" \
			"MVFAULT_LOG=$T/srv.log MVFAULT_ONCE=$T/once" \
			"exec $_fl_srv \"\$@\""
	} >"$T/sftp-shim"
	chmod 755 "$T/sftp-shim"
	sed -i "s|^Subsystem sftp .*|Subsystem sftp $T/sftp-shim|" \
		"$SSHD_DIR/sshd_config"
	sshd_restart
	sshd_trust
	cp "$SSH_KEY" "$HOME/.ssh/id_ed25519"
	MAILVAULT_SSH_RETRY_MS=100
	export MAILVAULT_SSH_RETRY_MS
}

killed_backup()
{
	_kb_repo=$1
	_kb_data=$3
	_kb_digest=$4
	_kb_what=$5
	rm -f "$T/once" "$T/srv.log"
	echo "$2" >"$T/rules"
	KB_RC=0
	# libssh2 cannot free a handle whose connection died (t3001)
	LSAN_OPTIONS=suppressions=$TOP/tests/lib/lsan-libssh2.supp \
		"$MV" backup "$_kb_repo" --name drop --quiet data="$_kb_data" \
		>"$T/b.out" 2>"$T/b.err" || KB_RC=$?
	: >"$T/rules"
	sed 's/^/# backup: /' "$T/b.err"
	say "$_kb_what: backup exit $KB_RC"
	grep -q ' kill$' "$T/srv.log" 2>/dev/null ||
		die "$_kb_what: the session was not killed"
	[ "$KB_RC" = 0 ] || [ "$KB_RC" = 1 ] ||
		die "$_kb_what: backup exit $KB_RC"
	assert_no_grep 'INTERNAL|Assertion|Sanitizer|runtime error' "$T/b.err"
	"$MV" snapshots "$_kb_repo" >"$T/snaps" 2>"$T/s.err" || {
		cat "$T/s.err"
		die "$_kb_what: the next command does not open the repository"
	}
	if grep -q ' drop ' "$T/snaps"; then
		rm -rf "$T/out"
		"$MV" restore "$_kb_repo" drop/latest:data "$T/out" >/dev/null ||
			die "$_kb_what: the snapshot that shows does not restore"
		tree_digest "$T/out/data" >"$T/out.digest"
		cmp -s "$_kb_digest" "$T/out.digest" ||
			die "$_kb_what: the snapshot that shows is not whole"
	else
		[ "$KB_RC" != 0 ] || die "$_kb_what: backup said ok, no snapshot shows"
	fi
	verify_repo "$_kb_repo" "$_kb_what"
}

run_rc()
{
	_fl_var=$1
	shift
	set +e
	"$@"
	eval "$_fl_var=\$?"
	set -e
}

faulty()
{
	_fl_spec=$1
	shift
	rm -f "$T/fault.log"
	set +e
	# the shim comes before the sanitizer runtime in a sanitizer build
	env LD_PRELOAD="$FAULTSHIM" MVFAULT="$_fl_spec" \
		MVFAULT_LOG="$T/fault.log" \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
		"$@"
	_fl_rc=$?
	set -e
	return "$_fl_rc"
}

fault_count()
{
	[ -f "$T/fault.log" ] || {
		echo 0
		return 0
	}
	awk -v op="$1" '$4 == op' "$T/fault.log" | wc -l
}

snap_ref()
{
	rm -rf "$T/ref"
	mkdir "$T/ref"
	"$MV" snapshots --json "$1" >"$T/ref/list.json" ||
		die "snapshots of $1"
	python3 -c 'import json, sys
for s in json.load(open(sys.argv[1])):
	print(s["id"])' "$T/ref/list.json" >"$T/ref/ids"
	[ -s "$T/ref/ids" ] || die "no snapshot to refer to"
	while IFS= read -r _fl_id; do
		"$MV" restore "$1" "$_fl_id" "$T/ref/$_fl_id" >/dev/null 2>&1 ||
			die "restore of snapshot $_fl_id"
		tree_digest "$T/ref/$_fl_id" --no-root >"$T/ref/$_fl_id.digest"
	done <"$T/ref/ids"
}

verify_repo()
{
	"$MV" check --read-data "$1" >"$T/check.out" 2>&1 || {
		cat "$T/check.out"
		die "$2: check --read-data fails"
	}
	while IFS= read -r _fl_id; do
		rm -rf "$T/out"
		"$MV" restore "$1" "$_fl_id" "$T/out" >/dev/null 2>&1 ||
			die "$2: snapshot $_fl_id does not restore"
		tree_digest "$T/out" --no-root >"$T/out.digest"
		cmp -s "$T/ref/$_fl_id.digest" "$T/out.digest" || {
			diff "$T/ref/$_fl_id.digest" "$T/out.digest" | head -n 10
			die "$2: snapshot $_fl_id does not restore byte-exact"
		}
	done <"$T/ref/ids"
}
