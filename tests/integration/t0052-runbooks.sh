#!/bin/sh
# t0052-runbooks: every command of the restore runbooks in
# contrib/runbooks/ runs, as written, against real encrypted repositories:
# the ```sh runbook blocks of each file are cut out and run in order by
# bash -euo pipefail, the ```sh runbook-settings block replaced by this
# test's values (it must set every variable that block names).  A fake
# docker (tests/lib/fake-docker) stands in for the container runtime and
# a fake backup_and_restore.sh for mailcow's restore; the data they move
# is checked: one email and one mailbox reach the import, the volume,
# config, certificates and ~/apps come back byte for byte, and mailcow's
# restore menu lists the folder that export-tar --mailcow wrote
# (mailcow-YYYY-MM-DD-HH-MM-SS, OUTDIR created) and restores the mail.
. "$(dirname "$0")/../lib/test-lib.sh"

require_fuse
require_cmd python3 zstd bash
export FAKE_DOCKER=$T/docker
mkdir -p "$T/bin" "$FAKE_DOCKER"
cp "$TOP/tests/lib/fake-docker" "$T/bin/docker"
ln -s "$MV_BIN" "$T/bin/mailvault"
export PATH="$T/bin:$PATH"
printf 'runbook horse battery\n' >"$T/pass"
chmod 600 "$T/pass"
export MAILVAULT_PASSPHRASE_FILE=$T/pass
gen --small --days 1 --out "$T/fx"
FX=$T/fx/day1

# blocks DOC KIND: the fenced blocks of DOC whose info string is KIND,
# in order, each dedented by its fence's indentation
blocks()
{
	python3 - "$1" "$2" <<'EOF'
import re, sys
doc, kind = sys.argv[1], sys.argv[2]
out, cur, ind = [], None, ""
for line in open(doc, encoding="utf-8"):
    m = re.match(r"^(\s*)```(.*)$", line.rstrip("\n"))
    if cur is None and m and m.group(2).strip() == kind:
        cur, ind = [], m.group(1)
    elif cur is not None and m and m.group(2).strip() == "":
        out.append("".join(cur))
        cur = None
    elif cur is not None:
        cur.append(line[len(ind):] if line.startswith(ind) else line)
sys.stdout.write("\n".join(out))
print("# %d blocks" % len(out))
EOF
}

# run_runbook DOC: the settings block's variables must all be set here;
# then every runbook block runs, in one shell, from an empty directory
run_runbook()
{
	doc=$TOP/contrib/runbooks/$1
	[ -f "$doc" ] || die "no runbook $doc"
	blocks "$doc" "sh runbook-settings" >"$T/settings"
	vars=$(sed -n 's/^\(export \)\{0,1\}\([A-Z_][A-Z0-9_]*\)=.*/\2/p' \
		"$T/settings")
	[ -n "$vars" ] || die "$1: no settings block"
	for v in $vars; do
		eval "[ -n \"\${$v+set}\" ]" ||
			die "$1: the settings name $v, which this test does not set"
		eval "export $v"
	done
	{
		echo "set -x"
		blocks "$doc" "sh runbook"
	} >"$T/$1.sh"
	nb=$(sed -n 's/^# \([0-9]*\) blocks$/\1/p' "$T/$1.sh")
	[ "$nb" -ge 5 ] || die "$1: only $nb runbook blocks"
	say "$1: $nb blocks"
	mkdir -p "$T/cwd-$1"
	echo "$MNT" >>"$T/.tl-mounts"
	set +e
	(cd "$T/cwd-$1" && bash -euo pipefail "$T/$1.sh") </dev/null \
		>"$T/$1.log" 2>&1
	rc=$?
	set -e
	cat "$T/$1.log"
	[ "$rc" = 0 ] || die "$1: a command failed (exit $rc), see above"
}

same_dir()
{
	diff -r "$1" "$2" >"$T/diff.out" 2>&1 ||
		die "$3: $1 and $2 differ: $(head -5 "$T/diff.out")"
}

# ----------------------------------------------------------------------
say "Stalwart: docker volume, config, certs, and the v0.16 export and dump"
S=$T/sw
mkdir -p "$S/config" "$S/db" "$T/live-sw/config" "$T/live-sw/certs"
cp -a "$FX" "$S/volume"
cp -a "$T/fx/config/stalwart/." "$S/config/"
cp -a "$T/fx/config/certs" "$S/certs"
python3 "$TOP/tools/gen_stalwart.py" --out "$S/export" --account john \
	--variant acl --messages 12 --manifest "$T/john.json" >/dev/null
head -c 300000 /dev/urandom >"$S/db/stalwart.dump"
echo "an older setting" >"$T/live-sw/config/config.toml"
assert_ok "$MV" init --encryption xchacha20-poly1305 "$T/repo-sw" >/dev/null
assert_ok "$MV" backup "$T/repo-sw" --name stalwart volume="$S/volume" \
	config="$S/config" certs="$S/certs" export="$S/export" db="$S/db" \
	>/dev/null

REPO=$T/repo-sw JOB=stalwart MNT=$T/mnt RESTORE=$T/restore-sw
CONTAINER=stalwart-mail COMPOSE=$T/compose-sw.yaml
VOLUME=stack_stalwart-data CONFIG_DIR=$T/live-sw/config
CERTS_DIR=$T/live-sw/certs ADMIN=admin:test ACCOUNT=john FOLDER=Archive
SUBJECT=$(python3 -c 'import json,sys
m = json.load(open(sys.argv[1]))
print([e for e in m["emails"] if e["listed"] and e["blob"]][0]["subject"])' \
	"$T/john.json")
run_runbook RESTORE-STALWART.md

C=$FAKE_DOCKER/containers/stalwart-mail
ls "$C/tmp/restore-one/cur/"*.eml >/dev/null 2>&1 ||
	die "no message reached the import"
ls "$C/tmp/restore-one/cur/" | grep -qF "$SUBJECT" ||
	die "the message imported is not the one asked for"
assert_grep "^docker exec stalwart-mail stalwart-cli .* import messages --format maildir john /tmp/restore-one$" \
	"$FAKE_DOCKER/log"
n=$(ls "$C/tmp/restore-mailbox/cur" | wc -l)
[ "$n" -gt 0 ] || die "the mailbox reached the import empty"
assert_eq "$n" "$(ls "$T/restore-sw/mailbox/.Archive/cur" | wc -l)" \
	"messages of the restored mailbox"
same_dir "$S/volume" "$FAKE_DOCKER/volumes/stack_stalwart-data-restored/_data" \
	"volume into a new docker volume"
same_dir "$S/volume" "$FAKE_DOCKER/volumes/stack_stalwart-data/_data" \
	"volume on a new host"
same_dir "$S/config" "$T/live-sw/config" "config"
same_dir "$S/certs" "$T/live-sw/certs" "certs"
same_dir "$S/export" "$C/var/lib/stalwart/import" "the v0.16 export"
dump=$(ls "$FAKE_DOCKER/stdin" |
	while read -r f; do cmp -s "$FAKE_DOCKER/stdin/$f" \
		"$S/db/stalwart.dump" && echo "$f"; done)
[ -n "$dump" ] || die "pg_restore did not get the dump"
assert_grep "^docker compose -f $COMPOSE up -d$" "$FAKE_DOCKER/log"

# ----------------------------------------------------------------------
say "mailcow: backup_and_restore.sh's folder, its restore menu"
rm -rf "$FAKE_DOCKER"
mkdir -p "$FAKE_DOCKER"
F=$T/mc/mailcow-latest
mkdir -p "$F" "$T/mailcow/helper-scripts"
cp "$T/fx/config/mailcow/mailcow.conf" "$F/"
: >"$F/.x86_64"
tar -P --transform 's,^\./,/vmail/,;s,^\.$,/vmail,' -C "$FX" \
	--use-compress-program="zstd --rsyncable -q" \
	-cpf "$F/backup_vmail.tar.zst" .
tar -P --transform 's,^\./,/crypt/,;s,^\.$,/crypt,' -C "$T/fx/config/crypt" \
	--use-compress-program="zstd --rsyncable -q" \
	-cpf "$F/backup_crypt.tar.zst" .
cp "$TOP/tests/lib/fake-mailcow-restore" \
	"$T/mailcow/helper-scripts/backup_and_restore.sh"
assert_ok "$MV" init --encryption xchacha20-poly1305 "$T/repo-mc" >/dev/null
# the job's label: the newest folder under a fixed name
assert_ok "$MV" backup "$T/repo-mc" --name mailcow mailcow="$F" >/dev/null

REPO=$T/repo-mc JOB=mailcow MAILCOW_DIR=$T/mailcow RESTORE=$T/restore-mc
BACKUP_LOCATION=$T/nonexistent/mailcow-restore MAILBOX=alice@example.org
FOLDER=INBOX
m=$(ls "$FX/example.org/alice/Maildir/cur" | head -1)
SUBJECT=$(sed -n 's/^Subject: //p' "$FX/example.org/alice/Maildir/cur/$m" |
	head -1 | tr -d '\r' | cut -d' ' -f1-2)
[ -n "$SUBJECT" ] || die "no subject in the fixture's message"
run_runbook RESTORE-MAILCOW.md

ls -d "$BACKUP_LOCATION"/mailcow-* >"$T/folders"
assert_eq 1 "$(wc -l <"$T/folders")" "folders export-tar --mailcow wrote"
assert_all_match '/mailcow-[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]{2}-[0-9]{2}-[0-9]{2}$' \
	"$T/folders"
assert_grep '^\[ 1 \] - .*/mailcow-[0-9-]*/$' "$T/RESTORE-MAILCOW.md.log"
cmp "$F/mailcow.conf" "$(cat "$T/folders")/mailcow.conf" ||
	die "mailcow.conf differs"
same_dir "$FX" "$FAKE_DOCKER/volumes/mailcowdockerized_vmail-vol-1/_data" \
	"vmail through mailcow's restore"
same_dir "$T/fx/config/crypt" \
	"$FAKE_DOCKER/volumes/mailcowdockerized_crypt-vol-1/_data" \
	"crypt through mailcow's restore"
# doveadm save got the one message first (a raw file of the mailbox, as
# mail_crypt is not in use here), then the mailbox's
assert_grep "^Subject: $SUBJECT" "$FAKE_DOCKER/stdin/0"
for f in "$FX/example.org/alice/Maildir/cur/"* \
	"$FX/example.org/alice/Maildir/new/"* ""; do
	[ -n "$f" ] || die "the message saved is none of alice's"
	cmp -s "$f" "$FAKE_DOCKER/stdin/0" && break
done
nsaved=$(find "$FAKE_DOCKER/stdin" -type f -size +0 | wc -l)
ninbox=$(ls "$FX/example.org/alice/Maildir/cur" \
	"$FX/example.org/alice/Maildir/new" | grep -c ,)
assert_eq "$((ninbox + 1))" "$nsaved" "messages given to doveadm save"
assert_grep "doveadm mailbox create -u alice@example.org Restored INBOX$" \
	"$FAKE_DOCKER/log"
assert_grep "doveadm force-resync -A \*$" "$FAKE_DOCKER/log"

# ----------------------------------------------------------------------
say "home server: ~/apps with Stalwart's RocksDB and its export"
rm -rf "$FAKE_DOCKER"
mkdir -p "$FAKE_DOCKER"
H=$T/home/apps
mkdir -p "$H/stalwart/data"
cp -a "$FX/example.net" "$H/stalwart/data/rocksdb"
echo "services: {stalwart: {image: stalwartlabs/stalwart}}" \
	>"$H/stalwart/compose.yaml"
python3 "$TOP/tools/gen_stalwart.py" --out "$H/stalwart/data/export" \
	--account alex --variant acl --messages 8 --manifest "$T/alex.json" \
	>/dev/null
cp -a "$H" "$T/apps.orig"
assert_ok "$MV" init --encryption xchacha20-poly1305 "$T/repo-home" >/dev/null
assert_ok "$MV" backup "$T/repo-home" --name home apps="$H" >/dev/null
echo "a broken database" >"$H/stalwart/data/rocksdb/CURRENT"

REPO=$T/repo-home JOB=home APPS=$H COMPOSE=$H/stalwart/compose.yaml
CONTAINER=stalwart RESTORE=$T/restore-home ACCOUNT=alex FOLDER=Archive
SUBJECT=$(python3 -c 'import json,sys
m = json.load(open(sys.argv[1]))
print([e for e in m["emails"] if e["listed"] and e["blob"]][0]["subject"])' \
	"$T/alex.json")
run_runbook RESTORE-HOME.md

C=$FAKE_DOCKER/containers/stalwart
ls "$C/tmp/restore-one/cur/" | grep -qF "$SUBJECT" ||
	die "the message imported is not the one asked for"
[ "$(ls "$C/tmp/restore-mailbox/cur" | wc -l)" -gt 0 ] ||
	die "the mailbox reached the import empty"
same_dir "$T/apps.orig" "$H" "~/apps"
ls -d "$H".broken-* >/dev/null 2>&1 || die "the broken tree was not kept"
assert_grep "^a broken database$" "$H".broken-*/stalwart/data/rocksdb/CURRENT
assert_grep "^docker compose -f $H/stalwart/compose.yaml stop stalwart$" \
	"$FAKE_DOCKER/log"
assert_grep "^docker compose -f $H/stalwart/compose.yaml start stalwart$" \
	"$FAKE_DOCKER/log"
mountpoint -q "$MNT" && die "the runbook left $MNT mounted"

ok
