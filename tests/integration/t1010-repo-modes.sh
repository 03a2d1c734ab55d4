#!/bin/sh
# t1010-repo-modes: under umask 022, a repository made by init (into an
# existing directory), backup, prune and rebuild-index has no file or
# directory that group or others can read - locally and over sftp.
. "$(dirname "$0")/../lib/test-lib.sh"

umask 022
gen --small --messages 40 --users 2 --days 2 --out "$T/fx"

# exercise REPO [MV OPTIONS...]: every command that writes the repository
exercise()
{
	_r=$1
	shift
	assert_ok "$MV" init "$@" "$_r" >/dev/null
	assert_ok "$MV" backup "$@" "$_r" --name mail --quiet \
		vmail="$T/fx/day1"
	assert_ok "$MV" backup "$@" "$_r" --name mail --quiet \
		vmail="$T/fx/day2"
	assert_ok "$MV" forget "$@" "$_r" --keep-last 1 >/dev/null
	assert_ok "$MV" prune "$@" "$_r" --max-unused 0 >/dev/null
	assert_ok "$MV" rebuild-index "$@" "$_r" >/dev/null
	assert_ok "$MV" check "$@" "$_r" >/dev/null
}

# no_open_modes DIR: nothing in DIR (nor DIR) has a group or other bit
no_open_modes()
{
	find "$1" -perm /077 -printf '%m %p\n' >"$T/open"
	if [ -s "$T/open" ]; then
		cat "$T/open" >&2
		die "$(wc -l <"$T/open") repository paths open to group/others"
	fi
	[ "$(find "$1" -type f | wc -l)" -gt 3 ] || die "no files in $1?"
}

say "local, into an existing directory made 0755"
mkdir "$T/repo"
exercise "$T/repo"
no_open_modes "$T/repo"
[ -f "$T/repo/catalog.db" ] || die "no catalogue: the mail view did not run"

say "local, a directory init creates"
exercise "$T/new/repo"
no_open_modes "$T/new/repo"

if [ "$(id -u)" = 0 ] && [ -x /usr/sbin/sshd ]; then
	. "$TOP/tests/lib/sshd.sh"
	sshd_start
	sshd_trust
	say "sftp, into an existing directory made 0755"
	mkdir "$T/srepo"
	exercise "sftp://root@127.0.0.1:$SSHD_PORT$T/srepo" -i "$SSH_KEY"
	no_open_modes "$T/srepo"
	say "sftp, a directory init creates"
	exercise "sftp://root@127.0.0.1:$SSHD_PORT$T/snew/repo" -i "$SSH_KEY"
	no_open_modes "$T/snew"
else
	say "sftp part not run: needs root and sshd"
fi
ok
