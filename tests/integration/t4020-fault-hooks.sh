#!/bin/sh
# t4020-fault-hooks: the installed binary has no fault hooks (no
# MAILVAULT_TEST_* names in it, MAILVAULT_TEST_CRASH_AT has no effect on
# it, `make install` installs only it), while the test binary
# mailvault-faults still dies at the step it is asked to.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/fault/fault-lib.sh"
require_mv
require_faults

say "no hook names in the binary users install"
if grep -a -o 'MAILVAULT_TEST[A-Z_]*' "$MV_BIN" >"$T/names"; then
	sort -u "$T/names"
	die "$MV_BIN carries test hooks"
fi
grep -a -q 'MAILVAULT_TEST_CRASH_AT' "$MVF" ||
	die "the test binary lost its crash hook"

say "make install installs mailvault, not mailvault-faults"
make -s -n -C "$TOP" BUILD="$MV_BUILD" DESTDIR="$T/dest" install \
	>"$T/install.n" 2>&1 || { cat "$T/install.n"; die "make -n install"; }
assert_grep "install .*$MV_BUILD/mailvault .*bin/mailvault" "$T/install.n"
assert_no_grep 'mailvault-faults|faultshim' "$T/install.n"

R=$T/repo
gen --small --messages 40 --days 2 --out "$T/fx"
assert_ok "$MV" init "$R" >/dev/null
for d in 1 2; do
	assert_ok "$MV" backup "$R" --name mail --quiet \
		--time "2024-05-0${d}T01:00:00Z" data="$T/fx/day$d"
done
assert_ok "$MV" forget --keep-last 1 "$R" >/dev/null
cp -a "$R" "$T/base"

say "MAILVAULT_TEST_CRASH_AT does nothing to the installed binary"
run_rc rc env MAILVAULT_TEST_CRASH_AT=1 MAILVAULT_TEST_STEPS=1 \
	"$MV" prune --max-unused 0 "$R" >"$T/p.out" 2>"$T/p.err"
cat "$T/p.err"
assert_eq 0 "$rc" "exit of the installed binary's prune with the hook set"
assert_no_grep 'test hook' "$T/p.err"
rm -rf "$T/out"
assert_ok "$MV" restore "$R" mail/latest:data "$T/out" >/dev/null
assert_same_tree "$T/fx/day2" "$T/out/data"

say "the test binary dies where asked"
rm -rf "$R"
cp -a "$T/base" "$R"
run_rc rc env MAILVAULT_TEST_CRASH_AT=1 "$MVF" prune --max-unused 0 "$R" \
	>/dev/null 2>"$T/f.err"
assert_eq 137 "$rc" "exit of mailvault-faults killed at step 1"
assert_grep '^test hook: killed at step 1 ' "$T/f.err"
rm -f "$R/lock"
assert_ok "$MV" check --read-data "$R" >/dev/null
ok
