#!/bin/sh
# t5021-restore-mail: restore-mail puts messages of a snapshot's mail view
# back into a live Dovecot over IMAP: a folder with its subfolders under
# another name (imaps://), one message (STARTTLS, the CA from
# SSL_CERT_FILE), a whole account into another account through a master
# user, the password from the terminal.  Read back over IMAP: every
# message byte-exact (CRLF line ends), flags, keywords and internal date equal to the maildir file's, \Deleted
# only with --deleted; a second run appends nothing; an empty message
# fails alone (named, with the server's words, exit 14); a wrong password
# (exit 12), an unreachable server and an untrusted certificate or host
# name (exit 1) are refused with clear messages; an encrypted repository
# takes its passphrase apart from the IMAP password.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/dovecot-imap.sh"
require_mv
require_cmd python3 openssl setsid

FX="python3 $TOP/tests/lib/imap_fixture.py"
R=$T/repo
dovecot_imap_start "$T/imap"

say "a maildir with flags, keywords and delivery times, backed up"
assert_ok $FX make "$T/src"
M=$T/src/manifest.json
assert_ok "$MV" init "$R" >/dev/null
assert_ok "$MV" backup "$R" --name mail --quiet vmail="$T/src"
V=mail/latest:mail/alice@example.org
"$MV" ls "$R" "$V/Archive" >"$T/ls" || die "no view folder"
cat "$T/ls"

# rm ARGS...: restore-mail with bob's password
rm_bob()
{
	MAILVAULT_IMAP_PASSWORD=bobpw "$MV" restore-mail "$R" "$@"
}
check_bob()
{
	$FX check --port "$IMAPS_PORT" --ca "$IMAP_CERT" \
		--user bob@example.org --password bobpw --manifest "$M" "$@"
}

say "a folder and its subfolders, under another name, over imaps://"
assert_ok rm_bob "$V/Archive" --ca-file "$IMAP_CERT" \
	--to "imaps://bob@example.org@127.0.0.1:$IMAPS_PORT/Restored" \
	>"$T/out1" 2>"$T/err1"
cat "$T/out1" "$T/err1"
assert_grep '4 messages in 2 folders: 4 appended, 0 already there, 0 failed' \
	"$T/out1"
assert_ok check_bob --map Archive=Restored --exact

say "a second run appends nothing"
assert_ok rm_bob "$V/Archive" --ca-file "$IMAP_CERT" --json \
	--to "imaps://bob%40example.org@127.0.0.1:$IMAPS_PORT/Restored" \
	>"$T/out2"
cat "$T/out2"
assert_eq 4 "$(grep -c '"status":"skipped"' "$T/out2")" "skipped"
assert_grep '"summary":\{"messages":4,"appended":0,"skipped":4,"failed":0' \
	"$T/out2"
assert_ok check_bob --map Archive=Restored --exact

say "--dry-run lists what would be appended and appends nothing"
assert_ok rm_bob "$V/Archive" --ca-file "$IMAP_CERT" --dry-run --duplicates \
	--to "imaps://bob@example.org@127.0.0.1:$IMAPS_PORT/Restored" \
	>"$T/out3"
cat "$T/out3"
assert_eq 4 "$(grep -c '^would append' "$T/out3")" "dry-run lines"
assert_ok check_bob --map Archive=Restored --exact

say "one message, STARTTLS, the CA through SSL_CERT_FILE"
base=$(python3 -c 'import json,sys
print([e["base"] for e in json.load(open(sys.argv[1]))
       if "\\Answered" in e["flags"]][0])' "$M")
eml=$("$MV" ls "$R" "$V/INBOX" | grep 'answered and important.*\.eml$' |
	head -n 1)
[ -n "$eml" ] || { "$MV" ls "$R" "$V/INBOX"; die "no view name"; }
SSL_CERT_FILE=$IMAP_CERT assert_ok rm_bob "$V/INBOX/$eml" \
	--to "imap://bob@example.org@127.0.0.1:$IMAP_PORT/Single" >"$T/out4"
cat "$T/out4"
assert_ok check_bob --map INBOX=Single --pick "$base" --exact

say "a whole account into another one, as the master user"
assert_exit 14 env MAILVAULT_IMAP_PASSWORD=masterpw "$MV" restore-mail "$R" \
	"mail/latest:mail/alice@example.org" --ca-file "$IMAP_CERT" \
	--auth-user admin \
	--to "imaps://carol@example.org@127.0.0.1:$IMAPS_PORT/" \
	>"$T/out5" 2>"$T/err5"
cat "$T/out5" "$T/err5"
assert_grep '13 messages in 5 folders: 12 appended, 0 already there, 1 failed' \
	"$T/out5"
# the empty message is named, with Dovecot's answer
assert_grep "mail/alice@example.org/Broken/.*' -> 'Broken': APPEND: server said: " \
	"$T/err5"
check_carol()
{
	$FX check --port "$IMAPS_PORT" --ca "$IMAP_CERT" \
		--user carol@example.org --password carolpw --manifest "$M" "$@"
}
assert_ok check_carol --map = --exact

say "--deleted keeps the trashed flag (one APPEND per message)"
assert_ok env MAILVAULT_IMAP_PASSWORD=carolpw MAILVAULT_IMAP_NO_MULTIAPPEND=1 \
	"$MV" restore-mail "$R" \
	"mail/latest:mail/alice@example.org/INBOX" --ca-file "$IMAP_CERT" \
	--deleted --to "imaps://carol@example.org@127.0.0.1:$IMAPS_PORT/Del" \
	>/dev/null
assert_ok check_carol --map INBOX=Del --deleted --exact

say "a folder without a target FOLDER goes back to its own name"
assert_ok rm_bob "$V/Gelöscht" --ca-file "$IMAP_CERT" \
	--to "imaps://bob@example.org@127.0.0.1:$IMAPS_PORT" >"$T/out12"
cat "$T/out12"
assert_ok check_bob --map Gelöscht=Gelöscht --exact
# Dovecot's own name for it, modified UTF-7
[ -d "$IMAP_DIR/home/example.org/bob/Maildir/.Gel&APY-scht/cur" ] ||
	die "no folder .Gel&APY-scht in bob's maildir"

say "a wrong password is refused with the server's words, exit 12"
assert_exit 12 env MAILVAULT_IMAP_PASSWORD=wrong "$MV" restore-mail "$R" \
	"$V/Archive" --ca-file "$IMAP_CERT" \
	--to "imaps://bob@example.org@127.0.0.1:$IMAPS_PORT/X" 2>"$T/err6"
cat "$T/err6"
assert_grep "IMAP login as 'bob@example.org' on '127.0.0.1' refused: .*[Aa]uthentication failed" \
	"$T/err6"

say "the password asked on the terminal, without echo"
python3 - "$MV_BIN" "$R" "$V/Archive/2024" "$IMAP_CERT" \
	"imaps://bob@example.org@127.0.0.1:$IMAPS_PORT/Tty" >"$T/tty" 2>&1 <<'PY' ||
import os, pty, select, sys, time
mv, repo, path, ca, url = sys.argv[1:]
env = {k: v for k, v in os.environ.items() if k != "MAILVAULT_IMAP_PASSWORD"}
pid, fd = pty.fork()
if pid == 0:
    os.execve(mv, [mv, "restore-mail", repo, path, "--ca-file", ca, "--to", url], env)
out = b""
deadline = time.time() + 120
def more():
    global out
    if not select.select([fd], [], [], max(0, deadline - time.time()))[0]:
        os.kill(pid, 9)
        sys.exit("no answer: %r" % out)
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        return False
    out += chunk
    return bool(chunk)
while b"IMAP password for bob@example.org@127.0.0.1: " not in out:
    if not more():
        sys.exit("no prompt: %r" % out)
os.write(fd, b"bobpw\n")
while more():
    pass
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
if b"bobpw" in out:
    sys.exit("the password was echoed")
sys.exit(os.waitstatus_to_exitcode(status))
PY
	{ cat "$T/tty"; die "restore-mail with a terminal password failed"; }
cat "$T/tty"
assert_grep '2 messages in 1 folders: 2 appended' "$T/tty"
# and a progress line, on a terminal only
assert_grep 'restore-mail: 2/2  appended 2  skipped 0  failed 0' "$T/tty"
assert_no_grep 'restore-mail: [0-9]+/' "$T/out1"
assert_ok check_bob --map Archive/2024=Tty --exact

say "a password file; an unreachable server"
echo bobpw >"$T/pw"
port=$(_dv_free_port)
assert_exit 1 "$MV" restore-mail "$R" "$V/Archive" --password-file "$T/pw" \
	--to "imaps://bob@example.org@127.0.0.1:$port/X" 2>"$T/err7"
cat "$T/err7"
assert_grep "cannot connect to IMAP server '127.0.0.1' port $port: Connection refused" \
	"$T/err7"

say "an untrusted certificate; a server name it was not made for"
assert_exit 1 rm_bob "$V/Archive" \
	--to "imaps://bob@example.org@127.0.0.1:$IMAPS_PORT/X" 2>"$T/err8"
cat "$T/err8"
assert_grep "certificate of IMAP server '127.0.0.1' not trusted: self.signed certificate" \
	"$T/err8"
# 127.1 is 127.0.0.1 to the resolver, but not a name the certificate has
assert_exit 1 rm_bob "$V/Archive" --ca-file "$IMAP_CERT" \
	--to "imaps://bob@example.org@127.1:$IMAPS_PORT/X" 2>"$T/err9"
cat "$T/err9"
assert_grep "certificate of IMAP server '127.1' not trusted: [Hh]ostname mismatch" \
	"$T/err9"
say "--insecure connects without the check"
assert_ok rm_bob "$V/Archive" --insecure --dry-run \
	--to "imaps://bob@example.org@127.0.0.1:$IMAPS_PORT/Restored" \
	>"$T/out10"
assert_grep '4 messages in 2 folders: 0 would be appended, 4 already there' \
	"$T/out10"

say "from an encrypted repository: the passphrase and the IMAP password apart"
RE=$T/repo-enc
assert_ok env MAILVAULT_PASSPHRASE="restore horse battery" "$MV_BIN" init "$RE" \
	>/dev/null
assert_ok env MAILVAULT_PASSPHRASE="restore horse battery" "$MV_BIN" backup \
	"$RE" --name mail --quiet vmail="$T/src"
assert_ok env MAILVAULT_PASSPHRASE="restore horse battery" \
	MAILVAULT_IMAP_PASSWORD=bobpw "$MV_BIN" restore-mail "$RE" \
	"mail/latest:mail/alice@example.org/Archive" --ca-file "$IMAP_CERT" \
	--to "imaps://bob@example.org@127.0.0.1:$IMAPS_PORT/Enc" >"$T/out13"
cat "$T/out13"
assert_ok check_bob --map Archive=Enc --exact
# no passphrase (and no terminal to ask on): exit 12 before any IMAP
assert_exit 12 setsid -w env MAILVAULT_IMAP_PASSWORD=bobpw "$MV_BIN" \
	restore-mail "$RE" \
	"mail/latest:mail/alice@example.org/Archive" --ca-file "$IMAP_CERT" \
	--to "imaps://bob@example.org@127.0.0.1:$IMAPS_PORT/Enc" </dev/null \
	2>"$T/err13"
cat "$T/err13"
assert_grep "no passphrase" "$T/err13"

say "usage errors"
assert_exit 2 "$MV" restore-mail "$R" "$V/Archive"
assert_exit 2 "$MV" restore-mail "$R" "$V/Archive" --to "http://x/y"
assert_exit 1 rm_bob mail/latest:vmail --ca-file "$IMAP_CERT" \
	--to "imaps://bob@example.org@127.0.0.1:$IMAPS_PORT/X" 2>"$T/err11"
assert_grep "is not in the mail view" "$T/err11"

ok
