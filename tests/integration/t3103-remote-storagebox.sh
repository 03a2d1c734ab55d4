#!/bin/sh
# t3103-remote-storagebox: a repository on an SFTP-only account chrooted
# like a storage box (ForceCommand internal-sftp, no shell): every command
# works there, paths are those the account sees (/data, /~/data), and a
# command source cannot run on such an account.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"

sshd_start sftponly
sshd_trust
H=$SSHD_SFTP_USER@127.0.0.1:$SSHD_PORT
R=sftp://$H/data/mailvault
gen --small --days 2 --tar --out "$T/fx"

say "init, two backups, list, restore, check on the chrooted account"
assert_ok "$MV" init -i "$SSH_KEY" "$R"
[ -f "$SSHD_CHROOT/data/mailvault/config" ] ||
	die "the repository is not in the account's /data"
for d in 1 2; do
	assert_ok "$MV" backup -i "$SSH_KEY" "$R" --name mx --quiet \
		--time "2024-05-0${d}T03:00:00Z" vol="$T/fx/day$d.tar.gz"
done
"$MV" snapshots -i "$SSH_KEY" "$R" >"$T/snaps"
assert_eq 2 "$(grep -c ' mx ' "$T/snaps")" "snapshots"
mkdir "$T/out"
assert_ok "$MV" restore -i "$SSH_KEY" "$R" mx/latest:vol "$T/out" >/dev/null
assert_same_tree "$T/fx/day2" "$T/out/vol" -x mtime,uid,gid
assert_ok "$MV" check -i "$SSH_KEY" "$R"
assert_ok "$MV" stats -i "$SSH_KEY" "$R" >/dev/null

say "/~/ names the same directory, relative to the login directory"
"$MV" snapshots -i "$SSH_KEY" "sftp://$H/~/data/mailvault" >"$T/snaps2"
assert_eq "$(grep -c ' mx ' "$T/snaps")" "$(grep -c ' mx ' "$T/snaps2")" \
	"snapshots through /~/"

say "nothing outside the chroot is reachable"
assert_fail "$MV" init -i "$SSH_KEY" "sftp://$H$T/escape" 2>"$T/err"
[ ! -e "$T/escape" ] || die "a repository was created outside the chroot"

say "ssh-exec needs a shell: refused on an SFTP-only account, no snapshot"
assert_fail "$MV" backup -i "$SSH_KEY" "$R" --name exec \
	vol="ssh-exec://$H" --exec "tar -cf - -C /etc hostname" 2>"$T/err"
cat "$T/err"
assert_grep "no snapshot was written" "$T/err"
"$MV" snapshots -i "$SSH_KEY" "$R" >"$T/snaps"
assert_no_grep " exec " "$T/snaps"

say "an ssh:// source walks the account's files"
mkdir -p "$SSHD_CHROOT/data/in/sub"
printf 'hello\n' >"$SSHD_CHROOT/data/in/sub/f"
assert_ok "$MV" backup -i "$SSH_KEY" "$R" --name walk --quiet \
	in="ssh://$H/data/in"
assert_eq hello "$("$MV" cat -i "$SSH_KEY" "$R" walk/latest:in/sub/f)" \
	"walked file"
ok
