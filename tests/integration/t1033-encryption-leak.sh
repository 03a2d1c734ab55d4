#!/bin/sh
# t1033-encryption-leak: issue 16's leak test.  A Maildir++ mailbox made
# here of strings drawn at random for this run (subjects, names and
# addresses, Message-IDs, maildir file names, folder names, body words),
# with a mailcow private key file (its base64 lines and the bytes they
# encode) and a config file holding a secret line, is backed up with the
# mail view into an encrypted local and an encrypted sftp:// repository;
# after find and a cat through the mount, not one of the strings is in
# any byte of either repository's files, raw, lower or upper case, as
# base64 in any alignment, or inside any zstd frame.  The same scan of an
# --encryption none repository of the same mailbox finds every kind of
# string, so the scanner can fail.  The private cache is 0700/0600.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"

require_mv
require_cmd openssl zstd
export MAILVAULT_PASSPHRASE="leak test passphrase"
SCAN="python3 $TOP/tests/lib/leakscan.py"

say "a mailbox of held-back strings"
M=$T/mc
mkdir -p "$M/crypt" "$M/conf"
# the mailcow crypt volume's key pair, made as mailcow's entrypoint does
openssl ecparam -name prime256v1 -genkey 2>/dev/null |
	openssl pkey -out "$M/crypt/ecprivkey.pem"
openssl pkey -in "$M/crypt/ecprivkey.pem" -pubout -out "$M/crypt/ecpubkey.pem"
python3 - "$M" "$T/strings.json" <<'EOF'
import base64, json, os, sys
top, out = sys.argv[1], sys.argv[2]
held = []

def h(kind, n=8):
    s = os.urandom(n).hex()
    held.append({"kind": kind, "hex": s.encode().hex()})
    return s

def hold(kind, s):
    b = s if isinstance(s, bytes) else s.encode()
    held.append({"kind": kind, "hex": b.hex()})

# the private key: every base64 line and the DER bytes it stands for
for line in open(os.path.join(top, "crypt/ecprivkey.pem")):
    line = line.strip()
    if line and not line.startswith("-----"):
        hold("pem-line", line)
        der = base64.b64decode(line)
        if len(der) >= 12:
            hold("pem-der", der)
secret = "DBPASS=" + h("config-secret", 12)
with open(os.path.join(top, "conf/mailcow.conf"), "w") as f:
    f.write("MAILCOW_HOSTNAME=mail.example.org\n%s\nSKIP_CLAMD=n\n" % secret)
hold("config-line", secret)

filler = ("Please find the figures below; let me know what you think "
          "about the plan for next quarter and the meeting on Friday.\n")
t = 1717200000
for a in range(2):
    dom = "d" + h("domain", 7) + ".example"
    user = "u" + h("account", 7)
    root = os.path.join(top, "vmail", dom, user, "Maildir")
    proj = "Proj" + h("folder", 7)
    sub = "Sub" + h("folder", 7)
    for folder in ["", "." + proj, "." + proj + "." + sub]:
        fd = os.path.join(root, folder)
        for d in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(fd, d), exist_ok=True)
        if folder:
            open(os.path.join(fd, "maildirfolder"), "w").close()
        for i in range(4):
            t += 3607
            name = "N" + h("sender-name", 6)
            frm = "%s@%s.example" % (h("from-local", 7), h("from-domain", 7))
            to = "%s@%s" % (user, dom)
            subj = "Report %s figures" % h("subject", 8)
            mid = "%s@%s" % (h("message-id", 8), h("message-id-host", 7))
            words = " ".join(h("body-word", 7) for _ in range(5))
            body = filler * 3 + words + "\n" + filler * 2
            msg = ("Return-Path: <%s>\nFrom: %s <%s>\nTo: %s\nSubject: %s\n"
                   "Message-ID: <%s>\nDate: Sat, 01 Jun 2024 %02d:%02d:00 "
                   "+0000\nMIME-Version: 1.0\nContent-Type: text/plain; "
                   "charset=utf-8\n\n%s" % (frm, name, frm, to, subj, mid,
                                            i + a * 4, 7 * i, body))
            data = msg.encode()
            uniq = h("maildir-name", 8)
            host = "h" + h("maildir-host", 7)
            fn = "%d.M%sP%d.%s,S=%d,W=%d:2,S" % (t, uniq, 4242 + i, host,
                                                  len(data), len(data))
            sd = "cur" if i % 2 == 0 else "new"
            if sd == "new":
                fn = fn.split(":")[0]
            p = os.path.join(fd, sd, fn)
            with open(p, "wb") as f:
                f.write(data)
            os.utime(p, (t, t))
json.dump(held, open(out, "w"))
EOF
nheld=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' \
	"$T/strings.json")
say "$nheld held-back strings"

# scan NAME DIR...: the scanner's findings in $T/NAME.scan, kinds in
# $T/NAME.kinds
scan()
{
	_n=$1
	shift
	$SCAN "$T/strings.json" "$@" --report "$T/$_n.kinds" >"$T/$_n.scan" ||
		die "the scanner failed on $*"
	tail -n 1 "$T/$_n.scan"
}

# use R DIR [ssh options]: backup, find, a mount with one cat
use()
{
	_r=$1
	shift
	assert_ok "$MV" backup "$_r" "$@" --name mail --quiet --index-body \
		--time 2024-06-02T00:00:00Z mc="$M"
	"$MV" find "$_r" "$@" --limit 1000 >"$T/find" ||
		die "find on $_r failed"
	[ "$(wc -l <"$T/find")" -ge 24 ] ||
		die "find on $_r lists $(wc -l <"$T/find") messages, not 24"
	_acct=$("$MV" ls "$_r" "$@" "mail/latest:mail" | head -n 1)
	_f=$("$MV" ls "$_r" "$@" "mail/latest:mail/${_acct}INBOX" | head -n 1)
	[ -n "$_f" ] || die "no message in the mail view of $_r"
	mount_mv "$_r" "$T/mnt" "$@"
	cat "$T/mnt/mail/latest/mail/${_acct}INBOX/$_f" >"$T/viewed.eml" ||
		die "cat through the mount of $_r failed"
	unmount_mv "$T/mnt"
	grep -q '^Subject: Report ' "$T/viewed.eml" ||
		die "the mount served no message"
}

say "the scanner finds the strings in an unencrypted repository"
assert_ok "$MV" init --encryption none "$T/plain" 2>/dev/null >/dev/null
use "$T/plain"
scan plain "$T/plain"
for k in subject sender-name from-local from-domain message-id \
	message-id-host maildir-name maildir-host folder body-word domain \
	account pem-line pem-der config-secret config-line; do
	grep -qx "$k" "$T/plain.kinds" ||
		die "no '$k' string found in the unencrypted repository: the scanner misses it"
done
# each way of decoding is exercised: message bodies are in zstd frames,
# the key's DER bytes only as base64 (its PEM lines)
grep -q 'kind=body-word .* view=zstd@' "$T/plain.scan" ||
	die "no body word found inside a zstd frame of the unencrypted repository"
grep -q 'kind=pem-der .* as=base64' "$T/plain.scan" ||
	die "the key's bytes not found as base64 in the unencrypted repository"
rm -rf "$XDG_CACHE_HOME"

say "encrypted local repository"
assert_ok "$MV" init --encryption xchacha20-poly1305 "$T/repo" >/dev/null
use "$T/repo"

say "encrypted sftp:// repository"
require_cmd ssh-keygen
sshd_start
sshd_trust
assert_ok "$MV" init --encryption xchacha20-poly1305 -i "$SSH_KEY" \
	"sftp://root@127.0.0.1:$SSHD_PORT$T/srepo" >/dev/null
use "sftp://root@127.0.0.1:$SSHD_PORT$T/srepo" -i "$SSH_KEY"

say "no held-back string in any byte of either repository"
scan enc "$T/repo" "$T/srepo"
if grep '^FOUND' "$T/enc.scan" >&2; then
	die "held-back strings found in an encrypted repository (above)"
fi
[ ! -s "$T/enc.kinds" ] || die "kinds found: $(cat "$T/enc.kinds")"

say "the private cache is 0700, its files 0600"
[ -d "$XDG_CACHE_HOME/mailvault" ] || die "no cache at $XDG_CACHE_HOME"
find "$XDG_CACHE_HOME/mailvault" -type d ! -perm 0700 >"$T/bad-dirs"
find "$XDG_CACHE_HOME/mailvault" ! -type d ! -perm 0600 >"$T/bad-files"
if [ -s "$T/bad-dirs" ] || [ -s "$T/bad-files" ]; then
	cat "$T/bad-dirs" "$T/bad-files" >&2
	die "cache entries others could read (above)"
fi
[ "$(find "$XDG_CACHE_HOME/mailvault" -type f | wc -l)" -gt 0 ] ||
	die "the cache holds no file: nothing was checked"
ok
