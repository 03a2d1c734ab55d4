#!/bin/sh
# t5008: Stalwart inputs larger than one chunk in sources that are read
# once, as a stream: a tar.gz file, stdin, and ssh:// (SFTP).  An account
# export whose emails.json spans several chunks (2500 emails) and a server
# dump whose subspace_t spans several chunks (3000 messages) are shown
# whole: every email in each of its mailboxes and every dump message, with
# their exact bytes.  A second ssh:// backup reuses the unchanged files
# without reading them and still shows everything.
. "$(dirname "$0")/../lib/test-lib.sh"

require_cmd lz4 b3sum tar
G=$TOP/tools/gen_stalwart.py
R=$T/repo
X=$T/src
python3 "$G" --out "$X/export" --account john --variant sharewith \
	--messages 2500 --manifest "$T/john.json"
python3 "$G" --dump --out "$X/dump" --messages 3000 --seed 3 \
	--manifest "$T/dump.json"
# several chunks each (chunks are at most 256 KiB)
[ "$(stat -c %s "$X/export/john/emails.json")" -gt 524288 ] ||
	die "fixture: emails.json too small"
[ "$(stat -c %s "$X/dump/subspace_t")" -gt 393216 ] ||
	die "fixture: subspace_t too small"
tar -C "$X" -czf "$T/sw.tar.gz" export dump

# the expected files: <mailbox>/#<n> -> blob, dump #<n> -> record value
mkdir "$T/want"
python3 - "$T/john.json" "$X/export/john/blobs" "$T/dump.json" \
	"$X/dump/subspace_t" "$T/want" <<'PY'
import json, os, shutil, subprocess, sys
john, blobs, dumpm, sub, out = sys.argv[1:6]
m = json.load(open(john))
with open(os.path.join(out, "export.list"), "w") as f:
    for e in m["emails"]:
        if not (e["listed"] and e["blob"]):
            continue
        num = e["subject"].rsplit("#", 1)[1]
        for mb in e["mailboxes"]:
            f.write("%s\t%s\t%s\n" % (mb, num, e["blobId"]))
raw = subprocess.run(["lz4", "-dc", sub], stdout=subprocess.PIPE,
                     check=True).stdout
d = json.load(open(dumpm))
subj = {x["key"]: x["subject"] for x in d["messages"]}
os.makedirs(os.path.join(out, "dump"))
pos = 6
def leb(p):
    v = s = 0
    while True:
        b = raw[p]; p += 1
        v |= (b & 0x7F) << s; s += 7
        if not b & 0x80:
            return v, p
while pos < len(raw):
    kl, pos = leb(pos); key = raw[pos:pos + kl]; pos += kl
    vl, pos = leb(pos); val = raw[pos:pos + vl]; pos += vl
    num = subj[key.hex()].rsplit("#", 1)[1]
    open(os.path.join(out, "dump", num), "wb").write(val)
PY
nexp=$(wc -l <"$T/want/export.list" | tr -d ' ')
[ "$nexp" -ge 2500 ] || die "fixture: $nexp placed emails"

# check_view SNAP LABEL: the backup summary counts, every export email in
# each of its mailboxes and every dump message, byte for byte
check_view()
{
	s=$1
	js=$2
	assert_grep '"exports":1,' "$js"
	assert_grep "\"stalwart\":$nexp," "$js"
	assert_grep '"bad_exports":0,' "$js"
	assert_grep '"missing_blobs":0,' "$js"
	assert_grep '"dumps":1,"dump_messages":3000,"dump_errors":0' "$js"
	rm -rf "$T/got"
	mkdir "$T/got"
	"$MV" restore "$R" "$s:mail" "$T/got" >/dev/null ||
		die "$s: restore of the view failed"
	python3 - "$T/want" "$T/got/mail" "$X/export/john/blobs" <<'PY' ||
import os, re, sys
want, got, blobs = sys.argv[1:4]
bad = 0
names = {}
for root, dirs, files in os.walk(got):
    for f in files:
        m = re.search(r" #(\d+) \[[0-9a-f]{8}\]\.eml$", f)
        if not m:
            print("odd name:", os.path.join(root, f)); bad += 1
            continue
        rel = os.path.relpath(root, got)
        names.setdefault((rel, m.group(1)), []).append(os.path.join(root, f))
n = 0
for line in open(os.path.join(want, "export.list")):
    mb, num, blob = line.rstrip("\n").split("\t")
    p = names.pop(("john/" + mb, num), None)
    if not p or len(p) != 1:
        print("missing or twice:", mb, num); bad += 1; continue
    if open(p[0], "rb").read() != open(os.path.join(blobs, blob), "rb").read():
        print("differs:", p[0]); bad += 1
    n += 1
for num in os.listdir(os.path.join(want, "dump")):
    p = names.pop(("stalwart-dump", num), None)
    if not p or len(p) != 1:
        print("dump message missing or twice:", num); bad += 1; continue
    if open(p[0], "rb").read() != open(os.path.join(want, "dump", num), "rb").read():
        print("differs:", p[0]); bad += 1
    n += 1
for k in names:
    print("unexpected:", k); bad += 1
print(n, "messages compared")
sys.exit(1 if bad else 0)
PY
		die "$s: the view differs"
	"$MV" ls "$R" "$s:mail/john/Inbox" >"$T/inbox"
	assert_eq "$(grep -c '^Inbox	' "$T/want/export.list")" \
		"$(wc -l <"$T/inbox" | tr -d ' ')" "$s: Inbox listed"
	"$MV" ls "$R" "$s:mail/stalwart-dump" >"$T/dl"
	assert_eq 3000 "$(wc -l <"$T/dl" | tr -d ' ')" "$s: dump listed"
}

"$MV" init "$R" >/dev/null

say "a tar.gz file"
"$MV" backup "$R" --name tgz --time 2024-06-01T00:00:00Z --json \
	s="$T/sw.tar.gz" >"$T/b1.json" || die "backup of the tar.gz failed"
check_view tgz/2024-06-01T000000Z "$T/b1.json"

say "stdin"
"$MV" backup "$R" --name pipe --time 2024-06-01T00:00:00Z --json \
	s=- <"$T/sw.tar.gz" >"$T/b2.json" || die "backup of stdin failed"
check_view pipe/2024-06-01T000000Z "$T/b2.json"
# known messages are named from the catalogue, not parsed again
assert_grep '"parsed":0,' "$T/b2.json"

if [ "$(id -u)" = 0 ] && [ -x /usr/sbin/sshd ]; then
	. "$TOP/tests/lib/sshd.sh"
	sshd_start
	sshd_trust
	H=root@127.0.0.1:$SSHD_PORT
	say "ssh://, then again with every file unchanged (not read)"
	# older than the snapshots, so that unchanged files are trusted
	find "$X" -exec touch -h -d '2024-02-03 04:05:06' {} +
	"$MV" backup -i "$SSH_KEY" "$R" --name ssh \
		--time 2024-06-01T00:00:00Z --json s="ssh://$H$X" \
		>"$T/b3.json" || die "ssh:// backup failed"
	check_view ssh/2024-06-01T000000Z "$T/b3.json"
	"$MV" backup -i "$SSH_KEY" "$R" --name ssh \
		--time 2024-06-02T00:00:00Z --json s="ssh://$H$X" \
		>"$T/b4.json" || die "second ssh:// backup failed"
	assert_grep '"bytes_read":0,' "$T/b4.json"
	check_view ssh/2024-06-02T000000Z "$T/b4.json"
else
	say "ssh:// part skipped (needs root and sshd)"
fi
"$MV" check "$R" >/dev/null || die "check failed"
ok
