#!/bin/sh
# t0061-backup-sources: --exclude and --exclude-from on directory and tar
# sources (restic's matching on the path inside the source; an excluded
# directory takes its subtree), a single file as a source (file:PATH, a
# plain file that is not an archive, a stream on stdin with --stdin-name)
# kept with its metadata, the error that names --stdin-name for a stream
# that is not tar, and --dry-run, which reads, reports and leaves the
# repository byte for byte as it was.
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv
require_cmd python3

R=$T/repo
S=$T/src
mkdir -p "$S/vmail/a/cur" "$S/vmail/a/tmp" "$S/cache/x" "$S/etc"
printf 'm1\n' >"$S/vmail/a/cur/1.eml"
printf 't\n' >"$S/vmail/a/tmp/half"
printf 'c\n' >"$S/cache/x/blob"
printf 'k\n' >"$S/etc/keep.conf"
printf 's\n' >"$S/etc/swap.tmp"
printf 's\n' >"$S/top.tmp"
tar -czf "$T/src.tgz" -C "$S" .
assert_ok "$MV" init "$R"

say "--exclude on a directory and on a tar source"
printf '# caches\n/cache\n\n**/tmp\n' >"$T/excl"
assert_ok "$MV" backup "$R" --name ex --exclude '*.tmp' \
	--exclude-from "$T/excl" d="$S" t="$T/src.tgz" >/dev/null
for l in d t; do
	"$MV" ls "$R" "ex/latest:$l" >"$T/ls.$l"
	assert_grep '^vmail/$' "$T/ls.$l"
	assert_grep '^etc/$' "$T/ls.$l"
	assert_no_grep 'cache|top.tmp' "$T/ls.$l"
	"$MV" ls "$R" "ex/latest:$l/etc" >"$T/etc.$l"
	assert_grep '^keep.conf$' "$T/etc.$l"
	assert_no_grep 'swap' "$T/etc.$l"
	"$MV" ls "$R" "ex/latest:$l/vmail/a" >"$T/a.$l"
	assert_grep '^cur/$' "$T/a.$l"
	assert_no_grep '^tmp' "$T/a.$l"
done
say "an empty pattern and a missing exclude file are usage errors"
assert_exit 2 "$MV" backup "$R" --name ex --exclude / d="$S"
assert_exit 2 "$MV" backup "$R" --name ex --exclude-from "$T/nope" d="$S"

say "a plain file as a source is stored as LABEL/NAME with its metadata"
seq 1 20000 >"$T/mail.sql"
chmod 0640 "$T/mail.sql"
touch -d '2024-05-01 12:00:00 UTC' "$T/mail.sql"
assert_ok "$MV" backup "$R" --name db dump="$T/mail.sql" >/dev/null
"$MV" ls --json "$R" db/latest:dump >"$T/dump.json"
python3 - "$T/dump.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
assert len(e) == 1, e
e = e[0]
assert e["name"] == "mail.sql" and e["type"] == "file", e
assert e["mode"] == 0o640, e
assert e["mtime"].startswith("2024-05-01T12:00:00"), e
PY
"$MV" cat "$R" db/latest:dump/mail.sql | cmp - "$T/mail.sql"
say "a gzip of a dump (not a tar) is a file too; file: stores a tar as a file"
gzip -c "$T/mail.sql" >"$T/mail.sql.gz"
assert_ok "$MV" backup "$R" --name db z="$T/mail.sql.gz" \
	tf="file:$T/src.tgz" >/dev/null
"$MV" cat "$R" db/latest:z/mail.sql.gz | cmp - "$T/mail.sql.gz"
"$MV" cat "$R" db/latest:tf/src.tgz | cmp - "$T/src.tgz"
say "a symbolic link given as file: is followed"
ln -s mail.sql "$T/latest.sql"
assert_ok "$MV" backup "$R" --name db l="file:$T/latest.sql" >/dev/null
"$MV" cat "$R" db/latest:l/latest.sql | cmp - "$T/mail.sql"
assert_exit 1 "$MV" backup "$R" --name db x="file:$S" 2>"$T/err"
assert_grep 'is not a regular file' "$T/err"

say "stdin with --stdin-name is one file, 0600, time now"
before=$(date +%s)
seq 1 5000 | "$MV" backup "$R" --name st --stdin-name all.sql \
	dump=- >/dev/null
"$MV" cat "$R" st/latest:dump/all.sql >"$T/all.sql"
seq 1 5000 | cmp - "$T/all.sql"
"$MV" ls --json "$R" st/latest:dump >"$T/st.json"
python3 - "$T/st.json" "$before" <<'PY'
import calendar, json, sys, time
e = json.load(open(sys.argv[1]))[0]
assert e["name"] == "all.sql" and e["mode"] == 0o600, e
assert e["size"] == len("".join("%d\n" % i for i in range(1, 5001))), e
t = calendar.timegm(time.strptime(e["mtime"][:19], "%Y-%m-%dT%H:%M:%S"))
assert t >= int(sys.argv[2]) - 1, (t, sys.argv[2])
PY
say "a stream that is not tar, without --stdin-name, says what to do"
set +e
seq 1 100 | "$MV" backup "$R" --name st dump=- 2>"$T/err"
rc=$?
set -e
assert_eq 1 "$rc" "exit of a non-tar stream"
assert_grep 'not a tar archive.*--stdin-name' "$T/err"
assert_exit 2 "$MV" backup "$R" --name st --stdin-name a/b dump=- </dev/null
assert_exit 2 "$MV" backup "$R" --name st --stdin-name x d="$S"

say "--dry-run reads and reports, and writes nothing"
(cd "$R" && find . -exec ls -ld --time-style=full-iso {} + | sort) \
	>"$T/before"
"$MV" snapshots "$R" >"$T/snaps.before"
printf 'new\n' >"$S/etc/new.conf"
assert_ok "$MV" backup "$R" --name ex --dry-run --json --exclude '*.tmp' \
	d="$S" >"$T/dry.json"
python3 - "$T/dry.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["dry_run"] is True and d["name"] == "ex", d
assert d["files_unchanged"] >= 1, d
assert d["bytes_new"] >= 4 and d["chunks_new"] >= 1, d
PY
assert_ok "$MV" backup "$R" --name ex --dry-run d="$S" >"$T/dry.txt"
assert_grep '^dry run of ex: nothing was written' "$T/dry.txt"
(cd "$R" && find . -exec ls -ld --time-style=full-iso {} + | sort) \
	>"$T/after"
"$MV" snapshots "$R" >"$T/snaps.after"
cmp "$T/snaps.before" "$T/snaps.after"
diff "$T/before" "$T/after" | grep -v '^[<>] d' | grep '^[<>]' &&
	die "the dry run changed files of the repository"
[ ! -e "$R/lock" ] || die "a lock file was left"

say "an encrypted repository: a dry run and a stream as one file"
E=$T/enc
MAILVAULT_PASSPHRASE="dry run horse" assert_ok "$MV" init \
	--encryption xchacha20-poly1305 "$E" >/dev/null
export MAILVAULT_PASSPHRASE="dry run horse"
assert_ok "$MV" backup "$E" --name ex --exclude '*.tmp' d="$S" >/dev/null
(cd "$E" && find . -type f -exec ls -l --time-style=full-iso {} + | sort) \
	>"$T/ebefore"
printf 'newer\n' >"$S/etc/newer.conf"
assert_ok "$MV" backup "$E" --name ex --dry-run --json --exclude '*.tmp' \
	d="$S" >"$T/edry.json"
python3 - "$T/edry.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["chunks_new"] == 1 and d["bytes_new"] == 6, d
PY
(cd "$E" && find . -type f -exec ls -l --time-style=full-iso {} + | sort) \
	>"$T/eafter"
cmp "$T/ebefore" "$T/eafter" || die "a dry run changed the encrypted repository"
printf 'secret dump\n' | "$MV" backup "$E" --name db --stdin-name d.sql \
	dump=- >/dev/null
[ "$("$MV" cat "$E" db/latest:dump/d.sql)" = "secret dump" ] ||
	die "the stream read back differs"
unset MAILVAULT_PASSPHRASE
ok
