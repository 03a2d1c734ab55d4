#!/bin/sh
# t3001-sftp-backend: the SFTP backend, host key checks, ssh-exec and the
# remote walker against a real OpenSSH server on loopback.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"

P=$MV_BUILD_DIR/tools/sftp_probe
[ -x "$P" ] || die "no $P (run make)"
sshd_start
# the default key location, as a user would have it
cp "$SSH_KEY" "$HOME/.ssh/id_ed25519"
export MAILVAULT_SSH_RETRY_MS=200
H=root@127.0.0.1:$SSHD_PORT
U=sftp://$H$T/repo

say "an unknown host is refused with its fingerprint and the option"
assert_fail "$P" "$U" init 2>"$T/err"
fp=$(ssh-keygen -l -E sha256 -f "$SSHD_HOST_PUB" | cut -d' ' -f2)
grep -qF "is not known: its ED25519 key fingerprint is $fp;" "$T/err" ||
	die "no fingerprint $fp in: $(cat "$T/err")"
assert_grep "run again with --accept-new-host-key" "$T/err"
[ ! -e "$T/repo" ] || die "an unknown host was written to"
[ ! -s "$MAILVAULT_KNOWN_HOSTS" ] || die "key recorded without consent"

say "--accept-new-host-key records the key, later runs need no flag"
assert_ok "$P" --accept-new-host-key "$U" init
assert_grep "^\\[127.0.0.1\\]:$SSHD_PORT ssh-ed25519 " "$MAILVAULT_KNOWN_HOSTS"
assert_ok "$P" "$U" check
# OpenSSH understands what was recorded
ssh-keygen -F "[127.0.0.1]:$SSHD_PORT" -f "$MAILVAULT_KNOWN_HOSTS" \
	>"$T/found" || die "ssh-keygen cannot find the recorded key"

say "a hashed entry is honoured"
cp "$MAILVAULT_KNOWN_HOSTS" "$T/kh.plain"
ssh-keygen -q -H -f "$MAILVAULT_KNOWN_HOSTS" 2>/dev/null
assert_no_grep "127.0.0.1" "$MAILVAULT_KNOWN_HOSTS"
assert_ok "$P" "$U" check

say "write, commit, read ranges, list, stat"
head -c 3000000 /dev/urandom >"$T/blob"
"$P" "$U" put packs/p1 <"$T/blob" 2>"$T/err" && die "put into a missing dir"
assert_ok "$P" "$U" mkdir packs
assert_ok "$P" "$U" mkdir packs
"$P" "$U" put packs/p1 <"$T/blob"
cmp "$T/blob" "$T/repo/packs/p1" || die "uploaded bytes differ"
"$P" "$U" cat packs/p1 >"$T/back"
cmp "$T/blob" "$T/back" || die "downloaded bytes differ"
"$P" "$U" cat packs/p1 1000001 65536 >"$T/range"
tail -c +1000002 "$T/blob" | head -c 65536 | cmp - "$T/range" ||
	die "range read differs"
"$P" "$U" cat packs/p1 2999990 100 >"$T/tail"
assert_eq 10 "$(wc -c <"$T/tail")" "short read at the end"
"$P" "$U" ls packs >"$T/ls"
assert_eq "p1 f 3000000" "$(cat "$T/ls")" "listing"
"$P" "$U" ls . >"$T/ls"
assert_grep "^packs d " "$T/ls"
assert_eq 3000000 "$("$P" "$U" stat packs/p1 | cut -d' ' -f1)" "stat size"
ls "$T/repo/packs" | grep -q tmp && die "temporary file left behind"
rc=0
"$P" "$U" stat nothing 2>/dev/null || rc=$?
assert_eq 4 "$rc" "stat of a missing file is ENOENT"

say "many threads read one file at once"
assert_ok "$P" "$U" preads packs/p1 8

say "commit replaces an existing file; rename replaces; remove"
echo one | "$P" "$U" put index.db
echo two | "$P" "$U" put index.db
assert_eq two "$("$P" "$U" cat index.db)" "replaced index"
echo three | "$P" "$U" put index.db.new
assert_ok "$P" "$U" mv index.db.new index.db
assert_eq three "$("$P" "$U" cat index.db)" "renamed over"
ls "$T/repo" | grep -q -e '\.old-' -e '\.tmp-' && die "leftovers: $(ls "$T/repo")"
assert_ok "$P" "$U" rm index.db
rc=0
"$P" "$U" rm index.db 2>/dev/null || rc=$?
assert_eq 4 "$rc" "removing a missing file is ENOENT"

say "create_excl is exclusive"
assert_ok "$P" "$U" excl lock "host-a 123"
rc=0
"$P" "$U" excl lock "host-b 456" 2>/dev/null || rc=$?
assert_eq 3 "$rc" "second lock is EEXIST"
assert_eq "host-a 123" "$(cat "$T/repo/lock")" "lock content"

say "ssh-exec streams a tar and reports failures"
mkdir -p "$T/vol/a/b"
echo mail1 >"$T/vol/a/m1"
head -c 200000 /dev/urandom >"$T/vol/a/b/big"
E=ssh-exec://$H
"$P" "$E" exec "tar -czf - -C $T/vol ." >"$T/vol.tgz" 2>"$T/err"
assert_grep "exit status 0" "$T/err"
mkdir "$T/out"
tar -xzf "$T/vol.tgz" -C "$T/out"
assert_same_tree "$T/vol" "$T/out" -x mtime
assert_fail "$P" "$E" exec "echo partial; echo 'no such volume' >&2; exit 7" \
	>"$T/out.txt" 2>"$T/err"
assert_grep "exited with status 7: no such volume" "$T/err"
assert_eq partial "$(cat "$T/out.txt")" "stdout before the failure"
# a lot of stderr must not stall the stream
"$P" "$E" exec "head -c 3000000 /dev/zero | tr '\\0' e >&2; echo done" \
	>"$T/out.txt" 2>/dev/null
assert_eq done "$(cat "$T/out.txt")" "stdout after much stderr"

say "the walker reports metadata and content"
ln -s m1 "$T/vol/a/link"
"$P" "ssh://$H$T/vol" walk >"$T/walk"
assert_grep "^120777 0 0 [0-9]+ [0-9]+ - a/link -> m1$" "$T/walk"
sum=$(sha256sum "$T/vol/a/b/big" | cut -d' ' -f1)
assert_grep "^100644 0 0 200000 [0-9]+ $sum a/b/big$" "$T/walk"
assert_eq ". a a/b a/b/big a/link a/m1" \
	"$(awk '{print $7}' "$T/walk" | tr '\n' ' ' | sed 's/ $//')" "order"

say "a connection killed mid-upload is retried and the upload completes"
head -c 400000000 /dev/zero | tr '\0' x >"$T/huge"
# libssh2 leaks the handle of a dead connection (see the suppression file)
LSAN_OPTIONS=suppressions=$TOP/tests/lib/lsan-libssh2.supp \
	"$P" "$U" put packs/huge <"$T/huge" 2>"$T/err" &
put=$!
n=0
until ls "$T/repo/packs" | grep -q 'huge.tmp-'; do
	n=$((n + 1))
	[ $n -lt 500 ] || die "the upload never started"
	sleep 0.01
done
sshd_kill_sessions
wait $put || die "upload failed after a dropped connection: $(cat "$T/err")"
cmp "$T/huge" "$T/repo/packs/huge" || die "retried upload differs"
ls "$T/repo/packs" | grep -q tmp && die "temporary file left: $(ls "$T/repo/packs")"

say "a server that stays away fails cleanly within the retry budget"
sshd_stop
start=$(date +%s)
assert_fail "$P" "$U" put packs/p2 <"$T/blob" 2>"$T/err"
took=$(($(date +%s) - start))
[ $took -lt 30 ] || die "gave up only after $took s"
assert_grep "cannot connect" "$T/err"
[ ! -e "$T/repo/packs/p2" ] || die "file published by a failed upload"
sshd_restart
"$P" "$U" put packs/p2 <"$T/blob"
cmp "$T/blob" "$T/repo/packs/p2" || die "upload after the restart differs"

say "a changed host key is refused, even with --accept-new-host-key"
sshd_restart newkey
assert_fail "$P" "$U" check 2>"$T/err"
newfp=$(ssh-keygen -l -E sha256 -f "$SSHD_HOST_PUB" | cut -d' ' -f2)
grep -qF "has changed: it is now ED25519 key $newfp" "$T/err" ||
	die "no fingerprint $newfp in: $(cat "$T/err")"
assert_fail "$P" --accept-new-host-key "$U" check 2>"$T/err"
assert_grep "has changed" "$T/err"
ok
