#!/bin/sh
# mail.sh: issue 5's figures for tools/bench.sh, appended to its results
# file (PHASE TOOL DAY RUN WALL USER SYS MAXRSS_KIB STATUS):
#   mail-ls       listing (readdir + lstat of every name) of a folder of
#                 the mail view holding MAIL_FOLDER messages, through a
#                 fresh mount, page cache dropped
#   mail-ls-cli   `mailvault ls` of the same folder (whole process, cold)
#   mail-cat      cold read of a ~50 KB mailcow message (written by real
#                 Dovecot with mail_crypt v2 + LZ4, as mailcow configures
#                 it) through the view of a fresh mount: decryption and
#                 decompression included
#   mount-ls-big  issue 4's "mount -> first ls" at MOUNT_MESSAGES
#                 messages: from starting `mailvault mount -f` (page cache
#                 dropped, binary and libraries included) to the end of
#                 the first listing of a 1000-message maildir folder;
#                 mount-ls-big-view the same for a folder of the view
#   mail-find-Q   `mailvault find` (whole process; -cold: page cache
#                 dropped before, binary and libraries included) over a catalogue
#                 of CAT_DAYS daily snapshots of CAT_MESSAGES distinct
#                 messages, filled by tools/gen_catalog exactly as that
#                 many backups would fill it
# and KEY=VALUE lines describing the data to MAIL_META.
#
# usage: tools/bench/mail.sh RESULTS MAIL_META
# env:   MV_BUILD (directory of the mailvault binary and tools/),
#        MAIL_RUNS (3), MAIL_FOLDER (10000), CAT_MESSAGES (100000),
#        CAT_DAYS (365), CAT_CACHE (directory keeping generated catalogues),
#        MOUNT_MESSAGES (100000; in folders of 1000)
# Needs root (drops the page cache, mounts with FUSE) and dovecot-core.
. "$(dirname "$0")/../../tests/lib/test-lib.sh"

RES=$1
META=$2
B=$TOP/tools/bench
RUNS=${MAIL_RUNS:-3}
NFOLDER=${MAIL_FOLDER:-10000}
CMSG=${CAT_MESSAGES:-100000}
CDAYS=${CAT_DAYS:-365}
CACHE=${CAT_CACHE:-$T}
MMSG=${MOUNT_MESSAGES:-100000}
GENCAT=$MV_BUILD_DIR/tools/gen_catalog

require_root
require_fuse
require_cmd doveadm openssl
[ -x "$GENCAT" ] || die "no $GENCAT (run make)"

drop_caches()
{
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# rec PHASE RUN "WALL..." : one in-process figure
rec()
{
	case $3 in
	[0-9]*) printf '%s\tmv\t0\t%s\t%s\t0\t0\t0\tok\n' "$1" "$2" \
		"${3%%	*}" >>"$RES" ;;
	*) printf '%s\tmv\t0\t%s\t0\t0\t0\t0\t%s\n' "$1" "$2" \
		"${3:-failed}" >>"$RES" ;;
	esac
}

# --- a folder of NFOLDER messages ---------------------------------------
say "a maildir folder of $NFOLDER messages"
python3 - "$T/vol/example.org/bench/Maildir" "$NFOLDER" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(5)
words = ("report invoice meeting lunch project budget review draft "
	 "holiday server backup quarterly").split()
for d in ("cur", "new", "tmp"):
	os.makedirs(os.path.join(root, d), exist_ok=True)
t0 = 1650000000
for i in range(n):
	t = t0 + i * 3607
	subj = "%s %s #%d" % (rnd.choice(words), rnd.choice(words), i)
	body = " ".join(rnd.choice(words) for _ in range(rnd.randint(50, 600)))
	msg = ("Return-Path: <sender%d@example.net>\n"
	       "From: Sender %d <sender%d@example.net>\n"
	       "To: bench@example.org\n"
	       "Subject: %s\n"
	       "Date: %s\n"
	       "Message-ID: <%d.bench@example.net>\n"
	       "MIME-Version: 1.0\n"
	       "Content-Type: text/plain; charset=utf-8\n\n%s\n") % (
		i % 97, i % 97, i % 97, subj,
		__import__("email.utils").utils.formatdate(t), i, body)
	b = msg.encode()
	name = "%d.M%dP%d.bench,S=%d,W=%d:2,S" % (t, i, 4000 + i % 900,
						    len(b), len(b) + b.count(b"\n"))
	p = os.path.join(root, "cur", name)
	with open(p, "wb") as f:
		f.write(b)
	os.utime(p, (t, t))
EOF
R=$T/repo-folder
"$MV" init --encryption none "$R" >/dev/null
"$MV" backup "$R" --name mail --quiet --time 2024-06-01T03:00:00Z \
	"volume=$T/vol"
V=mail/2024-06-01T030000Z/mail/bench@example.org/INBOX
n=$("$MV" ls "$R" "mail/latest:mail/bench@example.org/INBOX" | wc -l)
[ "$n" = "$NFOLDER" ] || die "the view lists $n of $NFOLDER messages"
echo "mail_folder=$n" >>"$META"
echo "mail_mv_version=$(git -C "$TOP" describe --always --dirty 2>/dev/null ||
	echo ?)" >>"$META"
r=1
while [ "$r" -le "$RUNS" ]; do
	mount_mv "$R" "$T/m"
	drop_caches
	o=$(python3 "$B/fsprobe.py" list -t 60 "$T/m/$V") || o=failed
	rec mail-ls "$r" "$o"
	unmount_mv "$T/m"
	drop_caches
	python3 "$B/run.py" -t 60 -a "$RES" \
		-k "$(printf 'mail-ls-cli\tmv\t0\t%s' "$r")" "$MV" ls "$R" \
		"mail/latest:mail/bench@example.org/INBOX" >/dev/null
	r=$((r + 1))
done

# --- mount -> first ls in a snapshot of MMSG messages ---------------------
say "mount and list a folder in a snapshot of $MMSG messages"
python3 - "$T/big" "$MMSG" <<'EOF'
import os, sys
root, total = sys.argv[1], int(sys.argv[2])
folders = ("cur", ".Sent/cur", ".Archive.2024/cur", ".Archive.2023/cur",
	   ".Lists/cur")
n = 0
u = 0
while n < total:
	for f in folders:
		d = os.path.join(root, "example.org", "u%03d" % u, "Maildir", f)
		os.makedirs(d, exist_ok=True)
		for k in ("new", "tmp"):
			os.makedirs(os.path.join(os.path.dirname(d), k),
				    exist_ok=True)
		for j in range(1000):
			body = ("line %d of a message body\r\n" % j) * (5 + j % 35)
			m = ("From: Sender %d <s%d@example.net>\r\n"
			     "To: u%03d@example.org\r\nSubject: message %d about "
			     "topic %d\r\nDate: Tue, 1 Oct 2024 10:00:00 +0000\r\n"
			     "Message-ID: <m%d@example.net>\r\n\r\n%s") % (
				j, j, u, n, j % 97, n, body)
			name = "%d.M%dP%d.host,S=%d:2,S" % (1600000000 + n * 37,
							    n, j, len(m))
			with open(os.path.join(d, name), "w", newline="") as o:
				o.write(m)
			n += 1
	u += 1
print(n)
EOF
RB=$T/repo-big
"$MV" init --encryption none "$RB" >/dev/null
"$MV" backup "$RB" --name mail --quiet --time 2024-10-02T03:00:00Z \
	"vol=$T/big"
rm -rf "$T/big"
echo "mount_messages=$MMSG" >>"$META"
big_dir=mail/latest/vol/example.org/u001/Maildir/.Archive.2024/cur
big_view=mail/latest/mail/u001@example.org/Archive/2024
r=1
while [ "$r" -le "$RUNS" ]; do
	for what in big big-view; do
		case $what in
		big) d=$big_dir ;;
		big-view) d=$big_view ;;
		esac
		mkdir -p "$T/m"
		drop_caches
		o=$(python3 "$B/fsprobe.py" mount-ls -t 60 "$T/.bigpid" \
			"$T/big-mount.log" "$T/m/$d" -- \
			"$MV" mount -f "$RB" "$T/m") || o=failed
		rec "mount-ls-$what" "$r" "$o"
		case $o in
		*"	1000") ;;
		*) die "mount-ls-$what listed '$o', want 1000 names" ;;
		esac
		unmount_mv "$T/m"
		pid=$(cat "$T/.bigpid")
		while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	done
	r=$((r + 1))
done

# --- a ~50 KB mailcow message: mail_crypt v2 + LZ4 by real Dovecot -------
say "a 50 KB mailcow message (Dovecot mail_crypt + LZ4)"
. "$TOP/tests/lib/dovecot.sh"
mailcow_vmail_fixture
python3 - "$dir/msg/50k.eml" <<'EOF'
import base64, random, sys
rnd = random.Random(50)
att = base64.encodebytes(bytes(rnd.getrandbits(8) for _ in range(33000)))
text = " ".join(rnd.choice(["quarterly", "figures", "attached", "see",
			    "the", "report", "for", "details"])
		for _ in range(700))
m = ("From: Carol Finance <carol@example.org>\n"
     "To: bob@example.org\n"
     "Subject: quarterly figures, 50 KB\n"
     "Message-ID: <fifty@example.org>\n"
     "Date: Sat, 04 May 2024 10:00:00 +0000\n"
     "MIME-Version: 1.0\n"
     "Content-Type: multipart/mixed; boundary=\"b1\"\n\n"
     "--b1\nContent-Type: text/plain; charset=utf-8\n\n%s\n"
     "--b1\nContent-Type: application/pdf; name=\"q2.pdf\"\n"
     "Content-Disposition: attachment; filename=\"q2.pdf\"\n"
     "Content-Transfer-Encoding: base64\n\n%s--b1--\n") % (
	text, att.decode())
open(sys.argv[1], "w").write(m)
EOF
dv save -u bob@example.org -m INBOX <"$dir/msg/50k.eml" || die "save 50k"
rm -rf "$dir/mc/vmail"
cp -a "$dir/home" "$dir/mc/vmail"
tar -C "$dir/mc" -cf "$T/mc50.tar" crypt vmail
f=$(grep -l 'fifty@example.org' "$dir"/home/example.org/bob/Maildir/*/* \
	2>/dev/null || true)
[ -z "$f" ] || die "the 50 KB message is stored in clear"
"$MV" backup "$R" --name mc --quiet --time 2024-06-01T03:00:00Z \
	"mc=$T/mc50.tar"
name=$("$MV" ls "$R" "mc/latest:mail/bob@example.org/INBOX" |
	grep 'quarterly figures')
P=mc/2024-06-01T030000Z/mail/bob@example.org/INBOX/$name
echo "mail_msg_size=$(stat -c %s "$dir/msg/50k.eml")" >>"$META"
sz=$(stat -c %s "$dir/msg/50k.eml")
st=$(find "$dir/mc/vmail" -type f -name "*,S=$sz[,:]*" -exec stat -c %s {} + |
	head -n 1)
echo "mail_msg_stored=${st:-?}" >>"$META"
r=1
while [ "$r" -le "$RUNS" ]; do
	mount_mv "$R" "$T/m"
	[ "$r" = 1 ] && { cmp "$T/m/$P" "$dir/msg/50k.eml" ||
		die "the view does not show the decrypted message"; }
	[ "$r" = 1 ] && { unmount_mv "$T/m"; mount_mv "$R" "$T/m"; }
	drop_caches
	o=$(python3 "$B/fsprobe.py" read -t 60 "$T/m/$P") || o=failed
	rec mail-cat "$r" "$o"
	unmount_mv "$T/m"
	r=$((r + 1))
done
kill "$(cat "$dir/run/master.pid")" 2>/dev/null || true

# --- find over CDAYS snapshots of CMSG messages ---------------------------
say "find over $CDAYS snapshots of $CMSG messages"
mkdir -p "$CACHE"
# v2: open-ended place ranges (2026-11-27)
db=$CACHE/catalog-v2-$CMSG-$CDAYS.db
if [ ! -s "$db" ]; then
	t0=$(date +%s)
	"$GENCAT" -q -m "$CMSG" -d "$CDAYS" "$db.tmp" >"$T/gencat.out" ||
		die "gen_catalog failed"
	mv "$db.tmp" "$db"
	rm -f "$db.tmp-wal" "$db.tmp-shm"
	echo "catalog_fill_s=$(($(date +%s) - t0))" >"$db.env"
fi
[ -f "$db.env" ] && cat "$db.env" >>"$META"
echo "cat_messages=$CMSG" >>"$META"
echo "cat_days=$CDAYS" >>"$META"
echo "cat_bytes=$(stat -c %s "$db")" >>"$META"
RC=$T/repo-catalog
"$MV" init --encryption none "$RC" >/dev/null
cp "$db" "$RC/catalog.db"
r=1
while [ "$r" -le "$RUNS" ]; do
	for q in from subject deleted; do
		case $q in
		from) set -- --from Jürgen --limit 50 ;;
		subject) set -- --subject quarterly --limit 100 ;;
		deleted) set -- --deleted --limit 100 ;;
		esac
		drop_caches
		python3 "$B/run.py" -t 60 -a "$RES" \
			-k "$(printf 'mail-find-%s-cold\tmv\t0\t%s' "$q" "$r")" \
			"$MV" find "$RC" "$@" >/dev/null
		python3 "$B/run.py" -t 60 -a "$RES" \
			-k "$(printf 'mail-find-%s\tmv\t0\t%s' "$q" "$r")" \
			"$MV" find "$RC" "$@" >/dev/null
	done
	r=$((r + 1))
done
ok
