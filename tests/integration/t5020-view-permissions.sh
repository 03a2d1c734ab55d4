#!/bin/sh
# t5020-view-permissions: the mail view keeps who may read a message.  A
# view .eml has the mode, owner and group of the message file it shows (a
# Stalwart export message: those of the export's files), a view folder
# those of the maildir folder or account directory it comes from; through
# an allow_other mount another local user cannot read them (EACCES), the
# owner can; restore of the view writes the same modes and owners.
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv
require_root
require_fuse
require_cmd setpriv python3 setfacl getfacl

R=$T/repo
S=$T/src
G=$TOP/tools/gen_stalwart.py
# other users reach the mount point through $T
chmod 0711 "$T"

gen --small --messages 30 --users 2 --days 1 --out "$T/fx"
mkdir -p "$S"
mv "$T/fx/day1/example.org" "$S/"
# alice as Dovecot's vmail does it: 0600 files, 0700 folders, uid 1000;
# a folder of hers 0750 with group 1001
chown -R 1000:1000 "$S/example.org"
find "$S/example.org" -type f -exec chmod 0600 {} +
find "$S/example.org" -type d -exec chmod 0700 {} +
chmod 0750 "$S/example.org/alice/Maildir/.Sent"
chgrp 1001 "$S/example.org/alice/Maildir/.Sent"
# one Sent message shared with uid 2000 by an ACL (and the way to it)
shared=$(find "$S/example.org/alice/Maildir/.Sent/cur" -type f | head -n 1)
[ -n "$shared" ] || die "fixture: no Sent message"
setfacl -m u:2000:r "$shared"
setfacl -m u:2000:x "$S/example.org/alice/Maildir" \
	"$S/example.org/alice/Maildir/.Sent"
# a Stalwart export owned by 5000:5000, 0640 files in 0750 directories
python3 "$G" --out "$S/export" --account john --variant acl --messages 4
chown -R 5000:5000 "$S/export"
find "$S/export" -type f -exec chmod 0640 {} +
find "$S/export" -type d -exec chmod 0750 {} +

assert_ok "$MV" init "$R" >/dev/null
assert_ok "$MV" backup "$R" --name mail --quiet vmail="$S"

# stat_all DIR: "mode uid gid" of every entry below DIR, one per line
stat_all()
{
	find "$1" -mindepth 1 "$2" "$3" -printf '%m %U %G\n' | sort | uniq -c
}

mnt=$T/mnt
mount_mv "$R" "$mnt" -o allow_other
V=$mnt/mail/latest/mail
[ -d "$V/alice@example.org" ] || { ls -R "$mnt/mail/latest" | head; die "no view"; }

say "view messages and folders carry the source's modes and owners"
stat_all "$V/alice@example.org" -type f >"$T/files"
cat "$T/files"
assert_all_match '^ *[0-9]+ 6[04]0 1000 1000$' "$T/files"
stat_all "$V/alice@example.org" -type d >"$T/dirs"
cat "$T/dirs"
# (group x: the ACL's mask)
assert_eq "710 1000 1000" "$(stat -c '%a %u %g' "$V/alice@example.org")" \
	"account folder"
assert_eq "710 1000 1000" "$(stat -c '%a %u %g' "$V/alice@example.org/INBOX")" \
	"INBOX folder"
assert_eq "750 1000 1001" "$(stat -c '%a %u %g' "$V/alice@example.org/Sent")" \
	"Sent folder"
stat_all "$V/john" -type f >"$T/xfiles"
cat "$T/xfiles"
[ -s "$T/xfiles" ] || die "no export messages in the view"
assert_all_match '^ *[0-9]+ 640 5000 5000$' "$T/xfiles"
assert_eq "750 5000 5000" "$(stat -c '%a %u %g' "$V/john")" "export account"
stat_all "$mnt/mail/latest/maildir/john" -type f >"$T/mfiles"
assert_all_match '^ *[0-9]+ 640 5000 5000$' "$T/mfiles"

say "another user cannot read them through allow_other; the owner can"
msg=$(find "$V/alice@example.org/INBOX" -type f -name '*.eml' | head -n 1)
[ -n "$msg" ] || die "no INBOX message"
assert_fail setpriv --reuid=65534 --regid=65534 --clear-groups \
	cat "$msg" >/dev/null 2>"$T/err"
cat "$T/err"
assert_grep 'Permission denied' "$T/err"
assert_fail setpriv --reuid=65534 --regid=65534 --clear-groups \
	ls "$V/alice@example.org" >/dev/null 2>"$T/err"
assert_grep 'Permission denied' "$T/err"
setpriv --reuid=1000 --regid=1000 --clear-groups cat "$msg" >"$T/asowner" ||
	die "the owner cannot read the message"
cmp "$T/asowner" "$msg" || die "the owner reads other bytes"

say "an ACL on a message and its folders carries over to the view"
assert_eq 1 "$(grep -c '^ *1 640 1000 1000$' "$T/files")" "the ACL'd message"
sh_msg=$(find "$V/alice@example.org/Sent" -type f -perm 0640 | head -n 1)
getfacl -c "$sh_msg" 2>/dev/null | grep -q '^user:2000:r--' ||
	die "no ACL entry for uid 2000 on the view message"
setpriv --reuid=2000 --regid=2000 --clear-groups cat "$sh_msg" >/dev/null ||
	die "uid 2000 cannot read the message its ACL lets it read"
other=$(find "$V/alice@example.org/Sent" -type f -perm 0600 | head -n 1)
assert_fail setpriv --reuid=2000 --regid=2000 --clear-groups \
	cat "$other" >/dev/null 2>&1
unmount_mv "$mnt"

say "restore of the view writes the same modes and owners"
assert_ok "$MV" restore "$R" mail/latest:mail "$T/out" >/dev/null
stat_all "$T/out/mail/alice@example.org" -type f >"$T/rfiles"
assert_all_match '^ *[0-9]+ 6[04]0 1000 1000$' "$T/rfiles"
assert_eq "750 1000 1001" \
	"$(stat -c '%a %u %g' "$T/out/mail/alice@example.org/Sent")" \
	"restored Sent folder"
stat_all "$T/out/mail/john" -type f >"$T/rxfiles"
assert_all_match '^ *[0-9]+ 640 5000 5000$' "$T/rxfiles"
ok
