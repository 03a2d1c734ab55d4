#!/bin/sh
# demo.sh: the main job on the embedded default (a local repository).
#
# Generates a small mail server volume with a few days of churn, creates a
# repository next to it, backs up every day the way the seeds' users do it
# (the volume as a tar.gz stream on stdin, the config directory as a
# directory), then lists, sizes and verifies what was stored.
#
# Usage: tools/demo.sh            (run by `make demo` after the build)
#   MV_DEMO_DIR    work directory (default /tmp/mailvault-demo); the demo
#                  replaces its fixture/ and repo/ subdirectories only
#   MV_DEMO_DAYS   days of mail to back up (default 3)
#   MV_DEMO_MB     size of the mail volume in MB (default 20)
#   MV             the mailvault binary (default build/mailvault)
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
MV=${MV:-$top/build/mailvault}
dir=${MV_DEMO_DIR:-/tmp/mailvault-demo}
days=${MV_DEMO_DAYS:-3}
mb=${MV_DEMO_MB:-20}
fx=$dir/fixture
repo=$dir/repo

# run MAILVAULT-ARGS...: show the command as a user would type it, run it
run()
{
	printf '\n$ mailvault %s\n' "$*"
	"$MV" "$@"
}

[ -x "$MV" ] || {
	echo "demo: no mailvault binary at $MV (run make first)" >&2
	exit 1
}

mkdir -p "$dir"
rm -rf "$fx" "$repo"
echo "== generating a mail volume of about $mb MB with $days days of churn"
python3 "$top/tools/gen_fixture.py" --out "$fx" --size-mb "$mb" \
	--days "$days" --tar
echo "   $fx/day1 .. day$days: Dovecot maildirs, sieve, a database file"
echo "   $fx/config: Stalwart and mailcow configuration, certificates"

# a local demo on a disk you trust: no passphrase to type (mailvault(1),
# "Encryption", for the default)
run init --encryption none "$repo"

k=1
while [ "$k" -le "$days" ]; do
	# the time of that day's backup, as recorded by the generator
	when=$(date -u -d @$((1717210800 + (k - 1) * 86400)) \
		+%Y-%m-%dT%H:%M:%SZ)
	printf '\n$ tar -czf - -C %s . | mailvault backup %s --name mail \\\n' \
		"$fx/day$k" "$repo"
	printf '    --time %s --tag day=%s volume=- config=%s\n' "$when" "$k" \
		"$fx/config"
	tar -czf - -C "$fx/day$k" . |
		"$MV" backup "$repo" --name mail --time "$when" \
			--tag "day=$k" volume=- "config=$fx/config"
	k=$((k + 1))
done

# the same last day again, this time read from the unpacked directory:
# everything is already stored, so it costs almost nothing
run backup "$repo" --name mail-dir "volume=$fx/day$days" \
	"config=$fx/config"

run snapshots "$repo"
run stats "$repo"
run ls "$repo" mail/latest
user=$(cd "$fx/day$days" && ls -d ./*/*/Maildir | head -n 1 | sed 's|^\./||')
run ls "$repo" "mail/latest:volume/$user"
msg=$(cd "$fx/day$days/$user/cur" && ls | head -n 1)
printf '\n$ mailvault cat %s mail/latest:volume/%s/cur/%s | head -n 12\n' \
	"$repo" "$user" "$msg"
"$MV" cat "$repo" "mail/latest:volume/$user/cur/$msg" | head -n 12 || true
run check "$repo" --read-data

tgz=$(du -cb "$fx"/day*.tar.gz | tail -n 1 | cut -f 1)
rsz=$(du -sb "$repo" | cut -f 1)
cat <<EOF

== done
   $days daily tar.gz files:  $((tgz / 1024)) KiB
   the repository:          $((rsz / 1024)) KiB  ($repo)

Browse every snapshot read-only:
   mkdir -p /mnt/mailvault
   mailvault mount $repo /mnt/mailvault
   ls /mnt/mailvault/mail/latest/volume/$user/cur
   fusermount3 -u /mnt/mailvault
Restore a snapshot:
   mailvault restore $repo mail/latest /tmp/restored
EOF
