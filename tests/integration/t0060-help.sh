#!/bin/sh
# t0060-help: every command of main.c's table answers --help (exit 0) with
# a usage line, an example and every option its getopt tables parse, taken
# from the command's source file so that a new option without help fails
# here; "mailvault help CMD" prints the same text.
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv
require_cmd python3

# "NAME FILE" per command of the table in src/cli/main.c
python3 - "$TOP/src/cli/main.c" >"$T/commands" <<'PY'
import re, sys
src = open(sys.argv[1]).read()
table = src[src.index("commands[] = {"):]
table = table[:table.index("};")]
for name, fn in re.findall(r'\{"([a-z][a-z0-9-]*)",\s*(cmd_[a-z0-9_]+)', table):
	print(name, fn + ".c")
PY
n=$(wc -l <"$T/commands")
[ "$n" -ge 19 ] || die "only $n commands found in main.c's table"

while read -r name file; do
	say "$name --help"
	[ -f "$TOP/src/cli/$file" ] || die "no src/cli/$file for '$name'"
	assert_exit 0 "$MV" "$name" --help >"$T/help.$name" 2>"$T/err"
	assert_grep "usage: mailvault $name" "$T/help.$name"
	assert_grep '^Example' "$T/help.$name"
	assert_exit 0 "$MV" help "$name" >"$T/help2.$name"
	cmp "$T/help.$name" "$T/help2.$name" ||
		die "'help $name' differs from '$name --help'"
	# the options the command's code parses: long option tables and
	# getopt strings
	python3 - "$TOP/src/cli/$file" >"$T/opts.$name" <<'PY'
import re, sys
src = open(sys.argv[1]).read()
opts = set()
for o in re.findall(r'\{"([a-z][a-z0-9-]*)",\s*(?:no|required|optional)_argument', src):
	opts.add("--" + o)
for s in re.findall(r'getopt(?:_long)?\(\s*argc\s*,\s*argv\s*,\s*"([^"]*)"', src):
	for ch in s:
		if ch.isalnum():
			opts.add("-" + ch)
# options compared by hand: !strcmp(argv[i], "--paper")
for o in re.findall(r'strcmp\(\s*argv\[[^]]+\],\s*"(--?[a-z][a-z0-9-]*)"\)', src):
	opts.add(o)
for o in sorted(opts):
	print(o)
PY
	grep -Eq -- '^(--help|-h)$' "$T/opts.$name" ||
		die "no options found in $file (not even -h)"
	# the text being shown is what --help and -h do
	sed -i '/^--help$/d; /^-h$/d' "$T/opts.$name"
	while read -r opt; do
		grep -Eq -- "(^|[^a-z-])$opt([^a-z0-9-]|\$)" "$T/help.$name" ||
			die "'$name --help' does not describe $opt"
	done <"$T/opts.$name"
done <"$T/commands"

say "run's text is in src/cli/cli_help.c with the others'"
grep -q '^	{"run",$' "$TOP/src/cli/cli_help.c" || die "no cli_help.c entry for run"

say "export-tar --mailcow and mount say what they do with their directory"
assert_grep 'OUTDIR/mailcow-YYYY-MM-DD-HH-MM-SS' "$T/help.export-tar"
assert_grep 'OUTDIR is created' "$T/help.export-tar"
assert_grep 'latest is the newest snapshot by time' "$T/help.mount"
assert_grep 'busy MOUNTPOINT .* is refused' "$T/help.mount"

say "help without a command lists the commands; an unknown one is an error"
assert_exit 0 "$MV" help >"$T/list"
assert_grep '^  backup ' "$T/list"
assert_grep "mailvault help COMMAND" "$T/list"
assert_exit 2 "$MV" help frobnicate 2>"$T/err"
assert_grep "unknown command 'frobnicate'" "$T/err"

say "--help wins over a missing repository, also after other options"
assert_exit 0 "$MV" backup --name x --help >"$T/o"
assert_grep '--exclude PATTERN' "$T/o"
assert_exit 0 "$MV" mount -h >"$T/o"
assert_grep 'usage: mailvault mount' "$T/o"
ok
