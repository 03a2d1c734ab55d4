#!/bin/sh
# t0053-run-dump: a job's `command` source - a pg_dump-style dump that is
# no tar stream - is stored as one file straight from the dump's output
# (backup LABEL=- --stdin-name NAME, no spool copy), its `file` source as
# LABEL=file:PATH; a dump that fails, even after it wrote most of its
# output, fails the job and leaves no snapshot; a second command source
# still works (spooled, the backup having one stdin).
. "$(dirname "$0")/../lib/test-lib.sh"

require_mv
R=$T/repo
J=$T/jobs
export MAILVAULT_JOB_DIR=$J MAILVAULT_STATE_DIR=$T/state
mkdir -p "$J" "$T/bin" "$T/etc"
assert_ok "$MV" init "$R" >/dev/null
printf '{"server": {"hostname": "mx.example.org"}}\n' >"$T/etc/config.json"

# pg_dump -Fc: a binary custom-format dump (no tar), larger than a pipe's
# buffer; with $T/fail it writes most of it and then fails, as a dump
# does when the database goes away half-way
head -c 3000000 /dev/urandom >"$T/dump.bin"
cat >"$T/bin/pg_dump" <<SCRIPT
#!/bin/sh
[ "\$1 \$2" = "-Fc stalwart" ] || { echo "pg_dump: bad arguments" >&2; exit 2; }
printf 'PGDMP'
if [ -f "$T/fail" ]; then
	head -c 2000000 "$T/dump.bin"
	sleep 1
	echo "pg_dump: error: connection to server lost" >&2
	exit 1
fi
cat "$T/dump.bin"
SCRIPT
chmod +x "$T/bin/pg_dump"
export PATH="$T/bin:$PATH"
{
	printf 'PGDMP'
	cat "$T/dump.bin"
} >"$T/want.dump"

cat >"$J/pg.conf" <<CONF
[job]
repository = $R

[source db]
command = pg_dump -Fc stalwart
file-name = stalwart.dump

[source config]
file = $T/etc/config.json

[source schema]
command = echo 'CREATE TABLE t (x int);'
file-name = schema.sql
CONF

say "the plan: the dump on the backup's stdin, the file as file:PATH"
assert_ok "$MV" run --dry-run pg >"$T/plan"
cat "$T/plan"
assert_grep "backup: .* --stdin-name stalwart.dump .*db=-( |\$)" "$T/plan"
assert_grep "backup: .* config=file:$T/etc/config.json" "$T/plan"
assert_grep "command db: pg_dump -Fc stalwart" "$T/plan"

say "the dump and the file stored as one file each"
set +e
"$MV" run pg >"$T/run1.out" 2>&1
rc=$?
set -e
cat "$T/run1.out"
assert_eq 0 "$rc" "exit of a good run"
"$MV" cat "$R" pg/latest:db/stalwart.dump >"$T/got.dump"
cmp "$T/want.dump" "$T/got.dump" || die "the stored dump differs"
"$MV" cat "$R" pg/latest:config/config.json >"$T/got.json"
cmp "$T/etc/config.json" "$T/got.json" || die "the stored file differs"
assert_eq "CREATE TABLE t (x int);" \
	"$("$MV" cat "$R" pg/latest:schema/schema.sql)" "the second command"
"$MV" ls "$R" pg/latest:db >"$T/ls.db"
assert_eq 1 "$(wc -l <"$T/ls.db")" "entries under db/"
[ ! -e "$T/state/pg.spool/db" ] || die "the dump was spooled"
[ ! -e "$T/state/pg.spool/config" ] || die "the file was copied"

say "a dump that fails half-way: the job fails, no snapshot"
sleep 1 # a new second for a new snapshot
"$MV" snapshots --json "$R" >"$T/before.json"
touch "$T/fail"
assert_exit 1 "$MV" run pg >"$T/run2.out" 2>&1
cat "$T/run2.out"
assert_grep 'command db failed \(exit 1\); no snapshot' "$T/run2.out"
assert_grep 'pg_dump: error: connection to server lost' "$T/run2.out"
"$MV" snapshots --json "$R" >"$T/after.json"
cmp "$T/before.json" "$T/after.json" ||
	die "a snapshot was made of a failed dump"
rm "$T/fail"

say "and the next good run stores the whole dump again"
sleep 1
assert_exit 0 "$MV" run pg >"$T/run3.out" 2>&1
"$MV" cat "$R" pg/latest:db/stalwart.dump >"$T/got3.dump"
cmp "$T/want.dump" "$T/got3.dump" || die "the stored dump differs"
ok
