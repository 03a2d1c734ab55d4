#!/bin/sh
# t3112-remote-check-reads-server: check --read-data of an sftp://
# repository reads the packs the server holds, never the records this
# machine's cache fetched before.  A restore fills the record cache; then
# a byte of a pack rots on the server; check --read-data must find it,
# name the pack and exit 13.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"

require_cmd tar python3
sshd_start
H=root@127.0.0.1:$SSHD_PORT
R=sftp://$H$T/repo
gen --small --days 1 --tar --out "$T/fx"

assert_ok "$MV" init --accept-new-host-key -i "$SSH_KEY" "$R"
assert_ok "$MV" backup "$R" --name vol -i "$SSH_KEY" --quiet \
	vol="$T/fx/day1.tar.gz"

say "a restore fetches every record into the cache; check is clean"
assert_ok "$MV" restore -i "$SSH_KEY" "$R" vol/latest:vol "$T/back" >/dev/null
assert_ok "$MV" check --read-data -i "$SSH_KEY" "$R" >/dev/null

say "a byte of the largest pack rots on the server"
pack=$(find "$T/repo/packs" -type f -printf '%s %p\n' | sort -n | tail -1 |
	cut -d' ' -f2)
[ -n "$pack" ] || die "no pack on the server"
python3 - "$pack" <<'PY'
import sys
p = sys.argv[1]
with open(p, 'r+b') as f:
    f.seek(0, 2)
    n = f.tell()
    f.seek(n // 2)
    b = f.read(1)
    f.seek(n // 2)
    f.write(bytes([b[0] ^ 0x5a]))
PY

say "check --read-data reads the server's bytes and names the pack"
rc=0
"$MV" check --read-data -i "$SSH_KEY" "$R" >"$T/check" 2>&1 || rc=$?
cat "$T/check"
[ "$rc" -ne 0 ] || die "check --read-data passed over a damaged pack"
assert_eq 13 "$rc" "check --read-data exit status"
assert_grep "$(basename "$pack" | cut -c1-12)" "$T/check"
ok
