#!/bin/sh
# t0040-encryption-keys: init encrypts by default and its readable config
# holds no secret; every passphrase source opens the repository and
# restores byte-exact; a wrong, empty or missing passphrase exits 12 and
# changes no file; key export/import (file and paper form) brings back a
# repository whose slots were lost; key add, remove (never the last),
# change-passphrase; a keyfile repository opens only with its file.
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv
require_cmd setsid

R=$T/repo
mkdir -p "$T/src/d"
printf 'Subject: held back\n\nsecret words of a message\n' >"$T/src/d/msg"
head -c 200000 /dev/urandom >"$T/src/bin"

# $NT ARGS...: the real binary with no controlling terminal, so that a
# missing passphrase is an error and never a question (a script, so that
# env can run it)
NT=$T/mv-no-tty
printf '#!/bin/sh\nexec setsid -w "%s" "$@" </dev/null\n' "$MV_BIN" >"$NT"
chmod +x "$NT"

# files DIR: the repository's files with size and modification time
files()
{
	find "$1" -printf '%P %s %T@\n' | sort
}

# bad_key RC PATTERN CMD...: CMD exits RC, says PATTERN, writes nothing
bad_key()
{
	_rc_want=$1
	_pat=$2
	shift 2
	files "$R" >"$T/before"
	set +e
	"$@" >"$T/o" 2>"$T/e"
	_rc=$?
	set -e
	cat "$T/e"
	assert_eq "$_rc_want" "$_rc" "exit code of: $*"
	assert_grep "$_pat" "$T/e"
	files "$R" >"$T/after"
	diff "$T/before" "$T/after" || die "$* changed the repository"
}

say "init encrypts by default; the readable config holds no secret"
MAILVAULT_PASSPHRASE=pass-one "$NT" init "$R" >"$T/init.out"
assert_grep 'encryption = xchacha20-poly1305, key = repokey' "$T/init.out"
assert_grep '^encryption = xchacha20-poly1305$' "$R/config"
assert_grep '^key = repokey$' "$R/config"
assert_grep '^packs = 2$' "$R/config"
assert_no_grep '^secret' "$R/config"
assert_no_grep '[0-9a-f]{64}' "$R/config"
assert_eq 1 "$(ls "$R/keys" | wc -l)" "key slots after init"

say "backup and restore with MAILVAULT_PASSPHRASE"
MAILVAULT_PASSPHRASE=pass-one "$NT" backup "$R" --name t d="$T/src" >/dev/null
MAILVAULT_PASSPHRASE=pass-one "$NT" restore "$R" t/latest:d "$T/r1" >/dev/null
assert_same_tree "$T/src" "$T/r1/d"

say "config shows the encryption and key mode, never the secret"
MAILVAULT_PASSPHRASE=pass-one "$NT" config "$R" >"$T/cfg"
assert_grep '^encryption = xchacha20-poly1305$' "$T/cfg"
assert_grep '^key = repokey$' "$T/cfg"
assert_no_grep 'secret|[0-9a-f]{64}' "$T/cfg"

say "the other passphrase sources"
MAILVAULT_PASSCOMMAND='printf "pass-one\n"' "$NT" restore "$R" t/latest:d \
	"$T/r2" >/dev/null
assert_same_tree "$T/src" "$T/r2/d"
printf 'pass-one\n' >"$T/passfile"
MAILVAULT_PASSPHRASE_FILE=$T/passfile "$NT" restore "$R" t/latest:d \
	"$T/r3" >/dev/null
assert_same_tree "$T/src" "$T/r3/d"
mkdir "$T/creds"
printf 'pass-one' >"$T/creds/mailvault-passphrase"
CREDENTIALS_DIRECTORY=$T/creds "$NT" restore "$R" t/latest:d \
	"$T/r4" >/dev/null
assert_same_tree "$T/src" "$T/r4/d"

say "wrong, empty and missing passphrases exit 12 and write nothing"
bad_key 12 "wrong passphrase: no key slot of .* opens with it \(1 tried\)" \
	env MAILVAULT_PASSPHRASE=pass-two "$NT" backup "$R" --name t \
	d="$T/src"
bad_key 12 "wrong passphrase" env MAILVAULT_PASSPHRASE=pass-two \
	"$NT" snapshots "$R"
bad_key 12 "wrong passphrase" env MAILVAULT_PASSPHRASE=pass-two \
	"$NT" check "$R"
bad_key 12 "MAILVAULT_PASSPHRASE" env MAILVAULT_PASSPHRASE= \
	"$NT" backup "$R" --name t d="$T/src"
bad_key 12 "MAILVAULT_PASSCOMMAND" "$NT" snapshots "$R"
bad_key 12 "MAILVAULT_PASSPHRASE_FILE" "$NT" prune "$R"

say "key add: either passphrase opens"
MAILVAULT_PASSPHRASE=pass-one MAILVAULT_NEW_PASSPHRASE=pass-two \
	"$NT" key add "$R" >"$T/add.out"
assert_grep '^added key slot [0-9a-f]{32}$' "$T/add.out"
assert_eq 2 "$(ls "$R/keys" | wc -l)" "key slots after key add"
MAILVAULT_PASSPHRASE=pass-one "$NT" snapshots "$R" >/dev/null
MAILVAULT_PASSPHRASE=pass-two "$NT" snapshots "$R" >/dev/null
MAILVAULT_PASSPHRASE=pass-two "$NT" key list "$R" >"$T/list"
assert_eq 1 "$(grep -c '(opened)' "$T/list")" "opened slot in key list"
# the slot that opened is tried first next time (one Argon2id, not two)
id=$(sed -n 's/^id = //p' "$R/config")
assert_eq "$(awk '/\(opened\)/ { print $1 }' "$T/list")" \
	"$(cat "$XDG_CACHE_HOME/mailvault/$id/key-slot")" "remembered slot"

say "key export, then import into a copy whose keys/ were removed"
MAILVAULT_PASSPHRASE=pass-one "$NT" key export "$R" "$T/key.bin" >/dev/null
MAILVAULT_PASSPHRASE=pass-one "$NT" key export --paper "$R" \
	"$T/key.txt" >/dev/null
[ "$(stat -c %a "$T/key.bin")" = 600 ] || die "exported key not 0600"
assert_grep '^total: ' "$T/key.txt"
cp -a "$R" "$T/copy"
rm -f "$T/copy"/keys/*
set +e
MAILVAULT_PASSPHRASE=pass-one "$NT" snapshots "$T/copy" 2>"$T/e"
rc=$?
set -e
assert_eq 12 "$rc" "exit of a repository with no key slot"
MAILVAULT_PASSPHRASE=pass-one "$NT" key import "$T/copy" "$T/key.bin" \
	>/dev/null
MAILVAULT_PASSPHRASE=pass-one "$NT" restore "$T/copy" t/latest:d \
	"$T/r5" >/dev/null
assert_same_tree "$T/src" "$T/r5/d"

say "the paper form round trip, with a typo caught"
cp -a "$R" "$T/copy2"
rm -f "$T/copy2"/keys/*
# the last digit of line 1's own check changed
awk '/^ *1:/ { sub(/[0-9a-f]$/, ($NF ~ /0$/) ? "1" : "0") } { print }' \
	"$T/key.txt" >"$T/key-typo.txt"
assert_fail env MAILVAULT_PASSPHRASE=pass-one "$NT" key import \
	"$T/copy2" "$T/key-typo.txt" 2>"$T/e"
assert_grep 'line 1' "$T/e"
MAILVAULT_PASSPHRASE=pass-one "$NT" key import --paper "$T/copy2" \
	"$T/key.txt" >/dev/null
MAILVAULT_PASSPHRASE=pass-one "$NT" restore "$T/copy2" t/latest:d \
	"$T/r6" >/dev/null
assert_same_tree "$T/src" "$T/r6/d"

say "a key of another repository is refused"
MAILVAULT_PASSPHRASE=pass-one "$NT" init "$T/other" >/dev/null
MAILVAULT_PASSPHRASE=pass-one "$NT" key export "$T/other" \
	"$T/other.bin" >/dev/null
set +e
MAILVAULT_PASSPHRASE=pass-one "$NT" key import "$T/copy2" "$T/other.bin" \
	2>"$T/e"
rc=$?
set -e
assert_eq 12 "$rc" "exit of importing another repository's key"
assert_eq 1 "$(ls "$T/copy2/keys" | wc -l)" "slots after a refused import"

say "key remove: one of two, never the last"
slot=$(ls "$T/copy2/keys")
set +e
MAILVAULT_PASSPHRASE=pass-one "$NT" key remove "$T/copy2" "$slot" 2>"$T/e"
rc=$?
set -e
assert_eq 1 "$rc" "exit of removing the last slot"
assert_grep 'last' "$T/e"
[ -f "$T/copy2/keys/$slot" ] || die "the last slot was removed"
two=$(MAILVAULT_PASSPHRASE=pass-two "$NT" key list "$R" |
	awk '/\(opened\)/ { print $1 }')
MAILVAULT_PASSPHRASE=pass-one "$NT" key remove "$R" "$two" >/dev/null
bad_key 12 "wrong passphrase" env MAILVAULT_PASSPHRASE=pass-two \
	"$NT" snapshots "$R"

say "change-passphrase: the old one fails, the new one opens"
MAILVAULT_PASSPHRASE=pass-one MAILVAULT_NEW_PASSPHRASE=pass-three \
	"$NT" key change-passphrase "$R" >/dev/null
assert_eq 1 "$(ls "$R/keys" | wc -l)" "slots after change-passphrase"
bad_key 12 "wrong passphrase" env MAILVAULT_PASSPHRASE=pass-one \
	"$NT" snapshots "$R"
MAILVAULT_PASSPHRASE=pass-three "$NT" restore "$R" t/latest:d \
	"$T/r7" >/dev/null
assert_same_tree "$T/src" "$T/r7/d"

say "keyfile: the slot is in the file, not in the repository"
K=$T/kf-repo
MAILVAULT_PASSPHRASE=pass-k "$NT" init --keyfile "$T/repo.key" "$K" \
	>/dev/null
assert_grep '^key = keyfile$' "$K/config"
[ ! -d "$K/keys" ] || [ -z "$(ls "$K/keys")" ] || die "keyfile repo has slots"
[ "$(stat -c %a "$T/repo.key")" = 600 ] || die "key file not 0600"
MAILVAULT_PASSPHRASE=pass-k MAILVAULT_KEYFILE=$T/repo.key \
	"$NT" backup "$K" --name t d="$T/src" >/dev/null
MAILVAULT_PASSPHRASE=pass-k MAILVAULT_KEYFILE=$T/repo.key \
	"$NT" restore "$K" t/latest:d "$T/r8" >/dev/null
assert_same_tree "$T/src" "$T/r8/d"
set +e
MAILVAULT_PASSPHRASE=pass-k "$NT" snapshots "$K" 2>"$T/e"
rc=$?
set -e
assert_eq 12 "$rc" "exit without MAILVAULT_KEYFILE"
assert_grep 'MAILVAULT_KEYFILE' "$T/e"
set +e
MAILVAULT_PASSPHRASE=nope MAILVAULT_KEYFILE=$T/repo.key \
	"$NT" snapshots "$K" 2>"$T/e"
rc=$?
set -e
assert_eq 12 "$rc" "exit of a wrong passphrase for a key file"

if [ "$(id -u)" = 0 ] && [ -c /dev/fuse ] && command -v fusermount3 >/dev/null
then
	say "mount asks once, before it detaches, and serves decrypted files"
	mkdir "$T/mnt"
	MAILVAULT_PASSCOMMAND="echo asked >>'$T/asked'; echo pass-three" \
		"$NT" mount "$R" "$T/mnt" 2>"$T/e" || {
		cat "$T/e"
		die "mount of the encrypted repository failed"
	}
	echo "$T/mnt" >>"$T/.tl-mounts"
	wait_mounted "$T/mnt"
	cmp "$T/src/d/msg" "$T/mnt/t/latest/d/d/msg" ||
		die "the mount serves other bytes"
	unmount_mv "$T/mnt"
	assert_eq 1 "$(wc -l <"$T/asked")" "passphrase requests of one mount"
	set +e
	MAILVAULT_PASSPHRASE=pass-one "$NT" mount "$R" "$T/mnt" 2>"$T/e"
	rc=$?
	set -e
	assert_eq 12 "$rc" "exit of a mount with a wrong passphrase"
	! mountpoint -q "$T/mnt" || die "mounted with a wrong passphrase"
elif [ -n "${CI:-}${MV_NO_SKIP:-}" ]; then
	die "the mount case needs root, /dev/fuse and fusermount3"
fi

say "--encryption none says so"
"$NT" init --encryption none "$T/plain" >/dev/null 2>"$T/e"
assert_grep 'not encrypted: for a disk you trust' "$T/e"
assert_grep '^secret = [0-9a-f]{64}$' "$T/plain/config"
ok
