#!/bin/sh
# t0063-exclude-remote: --exclude on sources read over SSH: an ssh://
# directory walked over SFTP (an excluded directory's subtree is left out
# although the walk passes through it) and an ssh-exec:// tar stream.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"

require_cmd tar
sshd_start
sshd_trust
H=root@127.0.0.1:$SSHD_PORT
R=$T/repo
S=$T/src
mkdir -p "$S/vmail/a/cur" "$S/vmail/a/tmp/deep" "$S/logs"
printf 'm\n' >"$S/vmail/a/cur/1.eml"
printf 'x\n' >"$S/vmail/a/tmp/deep/x"
printf 'l\n' >"$S/logs/today.log"
printf 'k\n' >"$S/keep.conf"
printf 's\n' >"$S/swap.tmp"
assert_ok "$MV" init "$R"

for kind in walk exec; do
	say "ssh $kind"
	if [ $kind = walk ]; then
		src="ssh://$H$S"
		set --
	else
		src="ssh-exec://$H"
		set -- --exec "tar -cf - -C '$S' ."
	fi
	assert_ok "$MV" backup -i "$SSH_KEY" "$R" --name $kind \
		--exclude '*.tmp' --exclude /logs --exclude '**/tmp' "$@" \
		v="$src" >/dev/null
	mkdir "$T/out.$kind"
	assert_ok "$MV" restore "$R" "$kind/latest:v" "$T/out.$kind" \
		>/dev/null
	(cd "$T/out.$kind/v" && find . | sort) >"$T/list.$kind"
	cat "$T/list.$kind"
	assert_grep '^\./vmail/a/cur/1\.eml$' "$T/list.$kind"
	assert_grep '^\./keep\.conf$' "$T/list.$kind"
	assert_no_grep 'tmp|logs' "$T/list.$kind"
done
ok
