#!/bin/sh
# t3002-sftp-storagebox: an SFTP-only chrooted account (ForceCommand
# internal-sftp, like a storage box) holds a repository; passphrase keys.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"

P=$MV_BUILD_DIR/tools/sftp_probe
[ -x "$P" ] || die "no $P (run make)"
sshd_start sftponly
sshd_trust
H=$SSHD_SFTP_USER@127.0.0.1:$SSHD_PORT

say "the chrooted account sees /data and nothing above it"
U=sftp://$H/data/repo
assert_ok "$P" -i "$SSH_KEY" "$U" init
head -c 1000000 /dev/urandom >"$T/blob"
"$P" -i "$SSH_KEY" "$U" put p1 <"$T/blob"
cmp "$T/blob" "$SSHD_CHROOT/data/repo/p1" || die "bytes differ"
assert_eq "$(cat "$T/blob" | sha256sum)" \
	"$("$P" -i "$SSH_KEY" "$U" cat p1 | sha256sum)" "read back"
echo a | "$P" -i "$SSH_KEY" "$U" put index.db
echo b | "$P" -i "$SSH_KEY" "$U" put index.db
assert_eq b "$("$P" -i "$SSH_KEY" "$U" cat index.db)" "replaced"
assert_ok "$P" -i "$SSH_KEY" "$U" excl lock me
assert_fail "$P" -i "$SSH_KEY" "$U" excl lock you
assert_fail "$P" -i "$SSH_KEY" "sftp://$H$T/repo2" init 2>"$T/err"
say "a path relative to the login directory"
assert_ok "$P" -i "$SSH_KEY" "sftp://$H/~/data/repo" check

say "no command runs on an SFTP-only account"
assert_fail "$P" -i "$SSH_KEY" "ssh-exec://$H" exec "echo hi" \
	>"$T/out" 2>"$T/err"
assert_no_grep "^hi$" "$T/out"

say "a passphrase-protected key: from the environment, from a file"
ssh-keygen -q -t ed25519 -N 'correct horse' -f "$T/enc" -C enc
cp "$T/enc.pub" "$SSHD_DIR/keys/$SSHD_SFTP_USER"
MAILVAULT_SSH_PASSPHRASE='correct horse' \
	assert_ok "$P" -i "$T/enc" "$U" check
printf 'correct horse\n' >"$T/pass"
MAILVAULT_SSH_PASSPHRASE_FILE=$T/pass assert_ok "$P" -i "$T/enc" "$U" check
MAILVAULT_SSH_PASSPHRASE=wrong assert_fail "$P" -i "$T/enc" "$U" check \
	2>"$T/err" </dev/null
assert_grep "wrong passphrase" "$T/err"
setsid "$P" -i "$T/enc" "$U" check </dev/null >"$T/out" 2>"$T/err" &&
	die "no passphrase and no terminal must fail"
assert_grep "needs a passphrase" "$T/err"
ok
