#!/bin/sh
# t0006-deps: every command the tests and tools/demo.sh run comes from a
# Debian package that tools/install-deps.sh installs - named in its build
# or test list, pulled in by one of those, or essential - so a test that
# passes on a lived-in machine, where someone installed a tool by hand,
# also passes on a fresh one.  (Data such as tzdata has no command; the
# policy unit tests fail with a clear message without it.)
. "$(dirname "$0")/../lib/test-lib.sh"

require_cmd dpkg-query dpkg apt-cache

# build and test lists, as install-deps.sh has them
eval "$(sed -n '/^build=/,/^bench=/p' "$TOP/tools/install-deps.sh" |
	grep -v '^bench=')"
[ -n "${build:-}" ] && [ -n "${test:-}" ] ||
	die "no build= or test= list in tools/install-deps.sh"
# shellcheck disable=SC2086
for p in $build $test; do
	echo "$p"
done | sort -u >"$T/listed"
# What a fresh machine has (the essential packages and apt) and what
# install-deps.sh adds, with everything they depend on.
essential=$(dpkg-query -W -f='${Package} ${Essential}\n' |
	sed -n 's/ yes$//p' | sed 's/:.*//')
# shellcheck disable=SC2086
apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
	--no-breaks --no-replaces --no-enhances $essential apt $build $test \
	2>/dev/null | grep -v '^ ' | sed 's/:.*//' | sort -u >"$T/closure"
[ "$(wc -l <"$T/closure")" -gt 100 ] ||
	die "apt-cache gave no dependencies (run apt-get update)"

# The words at command position in the scripts (heredocs left out),
# less the shell functions they define.
python3 - "$TOP"/tests/integration/*.sh "$TOP"/tests/lib/*.sh \
	"$TOP"/tests/fault/*.sh "$TOP/tools/demo.sh" >"$T/words" <<'PY'
import re, shlex, sys
SKIP = {"!", "if", "then", "do", "else", "elif", "while", "until", "exec",
	"time", "command", "assert_ok", "assert_fail", "bg", "nice", "env",
	"timeout", "{", "}"}
SEP = {"|", "||", "&&", ";", ";;", "(", ")", "&", "\n"}
words, funcs = set(), set()
for path in sys.argv[1:]:
	keep, end, strip = [], None, False
	for ln in open(path, errors="replace").read().split("\n"):
		if end is not None:
			if (ln.lstrip("\t") if strip else ln) == end:
				end = None
			continue
		m = re.search(r"<<(-?)\s*['\"]?(\w+)['\"]?", ln)
		if m:
			end, strip = m.group(2), m.group(1) == "-"
		m = re.match(r"\s*([A-Za-z_][\w]*)\s*\(\)", ln)
		if m:
			funcs.add(m.group(1))
		keep.append("" if ln.lstrip().startswith("#") else ln)
	src = "\n".join(keep).replace("\\\n", " ").replace("$(", " ( ")
	lex = shlex.shlex(src, posix=True, punctuation_chars=";&|()")
	lex.whitespace = " \t"
	lex.wordchars += "$/.-+:=@%,[]{}*?~^!"
	start, req = True, False
	for t in lex:
		if t in SEP:
			start, req = True, False
		elif req:
			words.add(t)
		elif start and not (t in SKIP or re.match(r"\w+=", t) or
				    re.match(r"-?\d+[smh]?$", t) or
				    t.startswith("-")):
			start = False
			if t == "require_cmd":
				req = True
			elif re.match(r"[A-Za-z][\w.+-]*$", t):
				words.add(t)
for w in sorted(words - funcs):
	print(w)
PY
[ "$(wc -l <"$T/words")" -gt 50 ] || die "too few commands found"

# Resolve each in the system's directories, as a fresh machine would, and
# ask dpkg for all the files at once (usr-merged: /bin/x is /usr/bin/x).
: >"$T/bad"
: >"$T/paths"
while IFS= read -r w; do
	p=$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$w" 2>/dev/null) ||
		p=
	case $p in
	/*)
		f=$(readlink -f "$p")
		printf '%s %s\n' "$w" "$f" >>"$T/paths"
		;;
	*)
		# a function, a builtin or no command at all; or a tool
		# installed outside Debian's packages
		o=$(command -v "$w" 2>/dev/null) || o=
		case $o in
		/*) echo "$w: $o is not from a Debian package" >>"$T/bad" ;;
		esac
		;;
	esac
done <"$T/words"
# shellcheck disable=SC2046
dpkg -S $(awk '{ f = $2; print f; sub(/^\/usr/, "", f); print f }' \
	"$T/paths") 2>/dev/null >"$T/owners" || true
while read -r w f; do
	pkg=$(awk -v f="$f" -v g="${f#/usr}" '
		{ p = $0; sub(/: .*/, "", p); q = $0; sub(/^[^:]*: /, "", q) }
		q == f || q == g { sub(/[:,].*/, "", p); print p; exit }' \
		"$T/owners")
	if [ -z "$pkg" ]; then
		echo "$w: $f belongs to no package" >>"$T/bad"
	elif grep -qx "$pkg" "$T/closure"; then
		say "$w: $pkg"
	else
		echo "$w: package $pkg is not installed by tools/install-deps.sh" \
			>>"$T/bad"
	fi
done <"$T/paths"
if [ -s "$T/bad" ]; then
	cat "$T/bad" >&2
	die "$(wc -l <"$T/bad") commands a fresh machine would lack"
fi
ok
