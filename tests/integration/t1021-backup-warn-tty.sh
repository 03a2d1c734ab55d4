#!/bin/sh
# t1021-backup-warn-tty: on a terminal, the warnings, the summary and the
# "completed with warnings" line each start a line of their own instead of
# being glued onto the progress line.
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv
require_cmd script python3

R=$T/repo
python3 - "$T/a.tar" <<'EOF'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.GNU_FORMAT) as t:
	for n in ["/etc/passwd", "ok.txt"]:
		i = tarfile.TarInfo(n)
		i.size = 3
		t.addfile(i, io.BytesIO(b"ab\n"))
EOF
assert_ok "$MV" init "$R"
# script(1) runs the backup on a pseudo-terminal: the progress line is
# drawn, and stdout and stderr are interleaved as a user sees them
set +e
script -qec "'$MV' backup '$R' --name t v='$T/a.tar'" /dev/null \
	>"$T/tty.raw" </dev/null
rc=$?
set -e
od -c "$T/tty.raw" | head -40
assert_eq 3 "$rc" "exit code on a terminal"
# what the terminal shows: after a carriage return a line is drawn anew,
# and ESC [ K clears the rest of it
python3 - "$T/tty.raw" >"$T/tty.lines" <<'EOF'
import re, sys
raw = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
for line in raw.split("\n"):
	line = line.rstrip("\r")
	line = line.split("\r")[-1]
	print(re.sub(r"\x1b\[K", "", line))
EOF
cat "$T/tty.lines"
assert_grep 'read, .* stored \(.*x\), .* MiB/s' "$T/tty.lines"
assert_grep "^mailvault: warning: v: 1 member name had leading '/' removed \\('/etc/passwd'\\)$" "$T/tty.lines"
assert_grep '^snapshot t/' "$T/tty.lines"
assert_grep '^mailvault: backup completed with warnings; the snapshot was written$' "$T/tty.lines"
# nothing else is drawn on the line of a message
assert_no_grep '.mailvault: ' "$T/tty.lines"
assert_no_grep '.snapshot t/' "$T/tty.lines"
ok
