#!/bin/sh
# t3101-remote-repo: a repository at sftp://127.0.0.1:PORT/path works with
# every command (init, backup, snapshots, ls, cat, restore, export-tar,
# stats, check) against a real OpenSSH server; host keys are checked
# (unknown refused with its fingerprint, accepted only when asked, a
# changed key always refused); the index is cached and the lock is remote.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"

require_cmd tar
sshd_start
H=root@127.0.0.1:$SSHD_PORT
R=sftp://$H$T/repo
gen --small --days 2 --tar --out "$T/fx"

say "an unknown host is refused with its fingerprint and the option"
fp=$(ssh-keygen -l -E sha256 -f "$SSHD_HOST_PUB" | cut -d' ' -f2)
assert_fail "$MV" init -i "$SSH_KEY" "$R" 2>"$T/err"
cat "$T/err"
assert_grep "is not known" "$T/err"
grep -qF "$fp" "$T/err" || die "fingerprint $fp not in the message"
grep -qF -- "--accept-new-host-key" "$T/err" || die "option not named"
[ ! -s "$MAILVAULT_KNOWN_HOSTS" ] || die "key recorded without being asked"
[ ! -e "$T/repo" ] || die "repository created on an unverified host"

say "--accept-new-host-key records it where OpenSSH finds it"
assert_ok "$MV" init --accept-new-host-key -i "$SSH_KEY" "$R"
ssh-keygen -F "[127.0.0.1]:$SSHD_PORT" -f "$MAILVAULT_KNOWN_HOSTS" \
	>/dev/null || die "ssh-keygen does not find the recorded key"
[ -f "$T/repo/config" ] && [ -f "$T/repo/index.db" ] ||
	die "no config or index.db on the server"

say "-i, anywhere on the command line, with every command"
assert_fail "$MV" snapshots "$R" 2>"$T/err" </dev/null
assert_ok "$MV" backup "$R" --name vol -i "$SSH_KEY" --quiet \
	vol="$T/fx/day1.tar.gz"
assert_ok "$MV" backup -i "$SSH_KEY" "$R" --name vol --json \
	vol="$T/fx/day2.tar.gz" >"$T/b2.json"
assert_ok "$MV" backup "$R" --name dir d="$T/fx/day2" -i "$SSH_KEY" --quiet
"$MV" snapshots "$R" -i "$SSH_KEY" >"$T/snaps"
assert_eq 3 "$(grep -c -E '^[0-9a-f]{12} ' "$T/snaps")" "snapshots"
assert_eq 2 "$(grep -c ' vol ' "$T/snaps")" "vol snapshots"

say "ls and cat one message"
msg=$(cd "$T/fx/day2" && find . -path '*/cur/*' -type f | sort | head -n 1)
msg=${msg#./}
dir=${msg%/*}
"$MV" ls -i "$SSH_KEY" "$R" "vol/latest:vol/$dir" >"$T/ls"
assert_grep "${msg##*/}" "$T/ls"
"$MV" cat -i "$SSH_KEY" "$R" "vol/latest:vol/$msg" >"$T/msg"
cmp "$T/fx/day2/$msg" "$T/msg" || die "cat gives other bytes"
# the record now sits in the bounded on-disk cache: a second read
# serves it from there and gives the same bytes
n=$(find "$XDG_CACHE_HOME/mailvault" -path '*/chunks/*' \
	-type f | wc -l)
[ "$n" -gt 0 ] || die "no records in the on-disk chunk cache"
"$MV" cat -i "$SSH_KEY" "$R" "vol/latest:vol/$msg" >"$T/msg2"
cmp "$T/fx/day2/$msg" "$T/msg2" || die "cat from the cache gives other bytes"

say "restore and export-tar give the trees back"
mkdir "$T/out"
assert_ok "$MV" restore -i "$SSH_KEY" "$R" vol/latest:vol "$T/out" \
	>/dev/null
# GNU tar keeps whole seconds
assert_same_tree "$T/fx/day2" "$T/out/vol" -x mtime
assert_ok "$MV" restore -i "$SSH_KEY" "$R" dir/latest:d "$T/out" >/dev/null
assert_same_tree "$T/fx/day2" "$T/out/d"
mkdir "$T/x"
"$MV" export-tar -i "$SSH_KEY" "$R" dir/latest:d >"$T/x.tar"
tar --numeric-owner -p -xf "$T/x.tar" -C "$T/x"
assert_same_tree "$T/fx/day2" "$T/x"

say "stats and check"
assert_ok "$MV" stats -i "$SSH_KEY" "$R" >/dev/null
assert_ok "$MV" check -i "$SSH_KEY" "$R"

say "the index is downloaded once and then read from the cache"
cache=$(find "$XDG_CACHE_HOME/mailvault" -name index.db | head -n 1)
[ -f "$cache" ] || die "no cached index under $XDG_CACHE_HOME/mailvault"
ino=$(stat -c %i "$cache")
assert_ok "$MV" snapshots -i "$SSH_KEY" "$R" >/dev/null
assert_eq "$ino" "$(stat -c %i "$cache")" "cached index replaced"
say "another machine's commit (a changed remote index) is fetched"
assert_ok env XDG_CACHE_HOME="$T/other-machine" "$MV" backup -i "$SSH_KEY" "$R" \
	--name other --quiet o="$T/fx/day1"
"$MV" snapshots -i "$SSH_KEY" "$R" >"$T/snaps"
assert_grep " other " "$T/snaps"

say "the lock on the server keeps a second writer out"
printf 'host=nas\npid=1234\ntime=%s\n' "$(date +%s)" >"$T/repo/lock"
assert_fail "$MV" backup -i "$SSH_KEY" "$R" --name vol --quiet \
	vol="$T/fx/day1.tar.gz" 2>"$T/err"
assert_grep "locked by pid 1234 on host 'nas'" "$T/err"
rm "$T/repo/lock"

say "forget + prune over sftp:// reclaim and leave no empty pack directory"
assert_ok "$MV" forget -i "$SSH_KEY" --keep-last 1 "$R" >/dev/null
assert_ok "$MV" prune -i "$SSH_KEY" --max-unused 0 "$R" >"$T/prune"
cat "$T/prune"
assert_grep '^reclaimed ' "$T/prune"
assert_eq 0 "$(find "$T/repo/packs" -mindepth 1 -type d -empty | wc -l)" \
	"empty directories under packs/ on the server"
assert_ok "$MV" check --read-data -i "$SSH_KEY" "$R" >/dev/null

say "a changed host key is refused, even with --accept-new-host-key"
sshd_restart newkey
assert_fail "$MV" snapshots -i "$SSH_KEY" "$R" 2>"$T/err"
cat "$T/err"
assert_grep "has changed" "$T/err"
assert_grep "ssh-keygen -R" "$T/err"
assert_fail "$MV" snapshots --accept-new-host-key -i "$SSH_KEY" "$R" \
	2>"$T/err"
assert_grep "has changed" "$T/err"
ok
