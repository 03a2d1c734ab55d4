#!/bin/sh
# t9013: check warns about a local repository whose files or directories
# group or others may read or write, naming them (config holds the key);
# a repository closed to others gets no warning.
. "$(dirname "$0")/../lib/test-lib.sh"

R=$T/repo
gen --small --messages 10 --days 1 --out "$T/fx"
assert_ok "$MV" init "$R" >/dev/null
assert_ok "$MV" backup "$R" --name mail --quiet data="$T/fx/day1"

say "closed to others: no warning"
chmod -R go-rwx "$R"
assert_ok "$MV" check "$R" >"$T/ck1" 2>&1
assert_no_grep '^warning: ' "$T/ck1"

say "config readable by others, packs/ writable by the group"
chmod 0644 "$R/config"
chmod 0770 "$R/packs"
assert_ok "$MV" check "$R" >"$T/ck2" 2>&1
cat "$T/ck2"
assert_grep "^warning: 'config' in the repository is readable by group or others \\(mode 0644\\)" \
	"$T/ck2"
assert_grep "^warning: 'packs' in the repository is readable and writable by group or others \\(mode 0770\\)" \
	"$T/ck2"
assert_eq 2 "$(grep -c '^warning: ' "$T/ck2")" "warnings"

say "many: ten named, the rest counted"
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
	: >"$R/extra$i"
done
chmod -R go+r "$R"
n=$(find "$R" -perm /066 | wc -l)
[ "$n" -gt 10 ] || die "only $n paths open: the test needs more than 10"
assert_ok "$MV" check "$R" >"$T/ck3" 2>&1
assert_eq 11 "$(grep -c '^warning: ' "$T/ck3")" "warnings"
# SQLite's -wal and -shm files of the check itself may come on top
m=$(sed -n 's/^warning: \([0-9]*\) more paths in the repository are open to group or others$/\1/p' \
	"$T/ck3")
[ -n "$m" ] && [ "$m" -ge $((n - 10)) ] ||
	die "'$m more paths' for $n open paths"
ok
