#!/bin/sh
# t0051-contrib-units: every systemd unit in contrib/ passes
# `systemd-analyze verify` together with the boot targets (an ordering
# cycle such as a mount after local-fs.target is found, and a unit that
# has one fails this test); the job units are wired to the alert unit; the
# alert unit's own shell command, run as systemd would run it, reports a
# failure through the job's healthcheck and mail and falls back to
# sendmail when the job file does not load; `run --report-failure` stays
# quiet for a failure the run reported itself; `run --read-data` reads the
# whole repository and reports damage with exit 13.
. "$(dirname "$0")/../lib/test-lib.sh"

require_cmd systemd-analyze python3
C=$TOP/contrib

# systemd-analyze verify works offline on unit files and needs no systemd
# as PID 1.  --root keeps it off this machine's own units and makes it
# look for each unit's executables inside the root: the installed layout
# (make install: /usr/local/bin/mailvault, /sbin/mount.fuse.mailvault).
ROOT=$T/root
U=$ROOT/etc/systemd/system
mkdir -p "$U" "$ROOT/usr/local/bin" "$ROOT/bin" "$ROOT/sbin" \
	"$ROOT/usr/lib/systemd/system"
cp "$MV_BIN" "$ROOT/usr/local/bin/mailvault"
cp "$(command -v sh)" "$ROOT/bin/sh"
cp "$C/mount.fuse.mailvault" "$ROOT/sbin/"
for d in /usr/lib/systemd/system /lib/systemd/system; do
	[ -d "$d" ] || continue
	cp "$d"/*.target "$d"/*.slice "$ROOT/usr/lib/systemd/system/" \
		2>/dev/null || true
done
[ -f "$ROOT/usr/lib/systemd/system/local-fs.target" ] ||
	die "no local-fs.target to verify the units against"

# verify UNIT...: no output at all and exit 0; anything systemd says -
# an unknown key, a cycle, a missing executable - fails
verify()
{
	set +e
	(cd "$U" && systemd-analyze verify --root="$ROOT" --man=no "$@" \
		local-fs.target remote-fs.target multi-user.target \
		timers.target) >"$T/verify.out" 2>&1
	rc=$?
	set -e
	cat "$T/verify.out"
	[ "$rc" = 0 ] && [ ! -s "$T/verify.out" ]
}

say "a mount ordered after local-fs.target is a cycle that verify finds"
cat >"$U/mnt-cycle.mount" <<'EOF'
[Unit]
After=local-fs.target
[Mount]
What=/srv/backup/mailvault
Where=/mnt/cycle
Type=fuse.mailvault
Options=ro
[Install]
WantedBy=multi-user.target
EOF
verify mnt-cycle.mount && die "verify did not find the ordering cycle"
assert_grep 'ordering cycle' "$T/verify.out"
rm "$U/mnt-cycle.mount"

say "every unit in contrib/ verifies"
n=0
for f in "$C"/*.service "$C"/*.timer "$C"/*.mount "$C"/*.path \
	"$C"/*.socket "$C"/*.target; do
	[ -e "$f" ] || continue
	cp "$f" "$U/"
done
for f in "$U"/*; do
	u=${f##*/}
	case $u in
	mailvault-alert@.service) inst=mailvault-alert@mailvault@stalwart.service.service ;;
	*@.*) inst=${u%@.*}@stalwart.${u##*.} ;;
	*) inst=$u ;;
	esac
	say "verify $inst"
	verify "$inst" || die "systemd-analyze verify $inst: $(cat "$T/verify.out")"
	n=$((n + 1))
done
[ "$n" -ge 6 ] || die "only $n units in contrib/"

say "the job units start the alert unit on failure; the timers name them"
for u in mailvault@.service mailvault-check@.service; do
	assert_grep '^OnFailure=mailvault-alert@%n\.service$' "$C/$u"
done
assert_grep '^ExecStart=mailvault run %i$' "$C/mailvault@.service"
assert_grep '^ExecStart=mailvault run --read-data %i$' \
	"$C/mailvault-check@.service"
assert_grep '^OnCalendar=Sun ' "$C/mailvault-check@.timer"
assert_grep '^Options=.*_netdev' "$C/mnt-mailvault.mount"
assert_no_grep '^After=.*local-fs\.target' "$C/mnt-mailvault.mount"

# a healthcheck endpoint recording every request, and a sendmail
. "$TOP/tests/lib/fake-notify.sh"
mkdir -p "$T/jobs" "$T/src"
hc_start
fake_sendmail

# the commands the alert unit calls, standing in for systemd's
cat >"$T/bin/journalctl" <<'EOF'
#!/bin/sh
echo "journalctl $*"
echo "mailvault run stalwart: backup: cannot read stream 'volume'"
EOF
cat >"$T/bin/systemctl" <<'EOF'
#!/bin/sh
echo "systemctl $*: Active: failed (Result: timeout)"
EOF
ln -s "$MV_BIN" "$T/bin/mailvault"
chmod +x "$T/bin/journalctl" "$T/bin/systemctl"
export PATH="$T/bin:$PATH" MAILVAULT_JOB_DIR=$T/jobs \
	MAILVAULT_STATE_DIR=$T/state

R=$T/repo
assert_ok "$MV" init "$R" >/dev/null
"$TOP/tools/gen_fixture.py" --small --days 1 --out "$T/src" >/dev/null
assert_ok "$MV" backup "$R" --name stalwart data="$T/src" >/dev/null
cat >"$T/jobs/stalwart.conf" <<EOF
[job]
repository = $R

[source data]
path = $T/src

[notify]
healthcheck = $URL/ping/stalwart
mail-to = admin@example.org
EOF

# The alert unit's ExecStart= as systemd runs it: continuation lines
# joined, %% and %i replaced, $$ turned into $, then split into words.
alert_unit()
{
	python3 - "$C/mailvault-alert@.service" "$1" >"$T/alert.argv" <<'EOF'
import shlex, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
line = [l for l in text.splitlines() if l.startswith("ExecStart=")][0]
cmd = line[len("ExecStart="):]
cmd = cmd.replace("%%", "\0").replace("%i", sys.argv[2]).replace("\0", "%")
assert "%" not in cmd.replace("${job%.service}", "")
cmd = cmd.replace("$$", "$")
for w in shlex.split(cmd):
    sys.stdout.buffer.write(w.encode() + b"\0")
EOF
	xargs -0 env <"$T/alert.argv"
}

say "the alert unit: a run that timed out is reported through the job"
MONITOR_SERVICE_RESULT=timeout MONITOR_EXIT_STATUS=TERM \
	alert_unit mailvault@stalwart.service >"$T/alert1" 2>&1 ||
	die "the alert unit failed: $(cat "$T/alert1")"
cat "$T/alert1"
assert_grep '^POST /ping/stalwart/fail$' "$T/hc/requests"
k=$(grep -n 'POST /ping/stalwart/fail' "$T/hc/requests" | cut -d: -f1)
assert_grep "cannot read stream 'volume'" "$T/hc/body.$((k - 1))"
assert_grep 'journalctl .*-u mailvault@stalwart.service' \
	"$T/hc/body.$((k - 1))"
assert_grep '^Subject: mailvault job stalwart on .*: mailvault@stalwart.service FAILED \(timeout, TERM\)' \
	"$T/mail"
assert_grep '^To: admin@example.org' "$T/mail"

say "a failure the run reported itself (exit 1) is not reported twice"
: >"$T/mail"
nreq=$(wc -l <"$T/hc/requests")
MONITOR_SERVICE_RESULT=exit-code MONITOR_EXIT_STATUS=1 \
	alert_unit mailvault@stalwart.service >"$T/alert2" 2>&1 ||
	die "the alert unit failed: $(cat "$T/alert2")"
assert_grep 'reported itself' "$T/alert2"
assert_eq "$nreq" "$(wc -l <"$T/hc/requests")" "requests after exit 1"
[ ! -s "$T/mail" ] || die "mail sent for a failure already reported"

say "a job file that does not load (exit 2): mail to root via sendmail"
echo "keep-daly = 3" >>"$T/jobs/stalwart.conf"
MONITOR_SERVICE_RESULT=exit-code MONITOR_EXIT_STATUS=2 \
	alert_unit mailvault-check@stalwart.service >"$T/alert3" 2>&1 ||
	die "the alert unit failed: $(cat "$T/alert3")"
assert_grep '^sendmail -i root$' "$T/mail"
assert_grep '^Subject: mailvault-check@stalwart.service failed on ' "$T/mail"
assert_grep 'keep-daly' "$T/mail"
assert_grep 'Result: timeout' "$T/mail"
assert_eq "$nreq" "$(wc -l <"$T/hc/requests")" "requests after exit 2"

say "run --report-failure: no channel to report with is a failure"
cat >"$T/jobs/quiet.conf" <<EOF
[job]
repository = $R
[source data]
path = $T/src
EOF
assert_exit 1 "$MV" run --report-failure quiet </dev/null
assert_exit 2 "$MV" run --report-failure quiet stalwart </dev/null

say "run --read-data: the whole repository read; damage is exit 13 and /fail"
sed -i '/keep-daly/d' "$T/jobs/stalwart.conf"
nreq=$(wc -l <"$T/hc/requests")
assert_ok "$MV" run --read-data stalwart >"$T/rd1"
assert_grep 'check: .* check --read-data ' "$T/rd1"
assert_grep '^no damage found' "$T/rd1"
assert_eq "$nreq" "$(wc -l <"$T/hc/requests")" "a good check pings nothing"
assert_ok "$MV" run --dry-run --read-data stalwart >"$T/rd0"
assert_grep 'plan of full check' "$T/rd0"
victim=$(find "$R/packs" -type f -size +100k | sort | head -1)
[ -n "$victim" ] || die "no data pack over 100 KiB"
printf '\377\377\377\377' |
	dd of="$victim" bs=1 seek=40000 conv=notrunc status=none
set +e
"$MV" run --read-data stalwart >"$T/rd2" 2>&1
rc=$?
set -e
cat "$T/rd2"
assert_eq 13 "$rc" "exit of run --read-data on a damaged pack"
assert_grep 'full check FAILED \(exit 13\)' "$T/rd2"
assert_grep '^POST /ping/stalwart/fail$' "$T/hc/requests"
assert_grep 'full check FAILED' "$T/mail"

ok
