#!/bin/sh
# imap.sh: issue 19's benchmark.  A maildir folder of IMAP_MESSAGES (10 000)
# small messages is backed up, then `mailvault restore-mail` appends the
# folder to a throwaway Dovecot on 127.0.0.1 over imaps:// (target: under a
# minute), runs again over the now full folder (everything skipped), and a
# reader checks that every message arrived once with its flags and date.
#
# usage: tools/bench/imap.sh WORKDIR   (MV, IMAP_MESSAGES in the env; root)
# Prints "# imap: ..." lines; run by tools/bench.sh.
set -eu
W=$1
TOP=$(cd "$(dirname "$0")/../.." && pwd)
MV=${MV:-$TOP/build/mailvault}
N=${IMAP_MESSAGES:-10000}
export TZ=UTC

say() { echo "# imap: $*"; }
die() { say "error: $*"; exit 1; }
skip() { say "skipped: $*"; exit 0; }
bg() { "$@" & echo $! >>"$W/pids"; }
# run CMD...: "SECONDS PEAK_KiB" of one command
run() {
	/usr/bin/time -f '%e %M %U %S' -o "$W/time.out" "$@" >"$W/run.out" \
		2>"$W/run.err" || { cat "$W/run.err" >&2; die "failed: $*"; }
	cat "$W/time.out"
}

rm -rf "$W" && mkdir -p "$W"
T=$W
trap 'while read -r p; do kill "$p" 2>/dev/null; done <"$W/pids"' EXIT
: >"$W/pids"
# shellcheck source=../../tests/lib/dovecot-imap.sh
. "$TOP/tests/lib/dovecot-imap.sh"
dovecot_imap_start "$W/imap"

python3 "$TOP/tests/lib/imap_fixture.py" make --bulk "$N" "$W/src"
"$MV" init --encryption none "$W/repo" >/dev/null
"$MV" backup "$W/repo" --name mail --quiet vmail="$W/src"
export MAILVAULT_IMAP_PASSWORD=bobpw
view=mail/latest:mail/alice@example.org/INBOX

# bench WHAT: restore twice into the Dovecot started last, then check
bench() {
	url="imaps://bob@example.org@127.0.0.1:$IMAPS_PORT/Bench"
	set -- "$1" $(run "$MV" restore-mail "$W/repo" "$view" \
		--ca-file "$IMAP_CERT" --to "$url")
	say "restore-mail of $N messages to Dovecot ($1; imaps://," \
		"loopback): $2 s, peak RSS $3 KiB, CPU $4 s user $5 s sys;" \
		"load average $(cut -d' ' -f1 /proc/loadavg)"
	grep -q "$N appended, 0 already there, 0 failed" "$W/run.out" ||
		die "not all appended: $(cat "$W/run.out")"
	set -- $(run "$MV" restore-mail "$W/repo" "$view" \
		--ca-file "$IMAP_CERT" --to "$url")
	say "the same again, all $N already there: $1 s, peak RSS $2 KiB," \
		"CPU $3 s user $4 s sys"
	grep -q "0 appended, $N already there" "$W/run.out" ||
		die "second run appended: $(cat "$W/run.out")"
	python3 "$TOP/tests/lib/imap_fixture.py" check --port "$IMAPS_PORT" \
		--ca "$IMAP_CERT" --user bob@example.org --password bobpw \
		--manifest "$W/src/manifest.json" --map INBOX=Bench --exact |
		sed 's/^/# imap: /'
}

bench "Dovecot's defaults: it fsyncs every message"
export DOVECOT_EXTRA="mail_fsync = never"
dovecot_imap_start "$W/imap-nofsync"
bench "mail_fsync = never"
dovecot_imap_start "$W/imap-single"
export MAILVAULT_IMAP_NO_MULTIAPPEND=1
bench "mail_fsync = never, one APPEND per message, no MULTIAPPEND"
