#!/bin/sh
# t0062-json: --json of ls, diff, check, restore, prune, config (and
# snapshots, stats, forget, backup) is one JSON document on stdout with the keys
# mailvault(1) documents, and says what the text output says.
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv
require_cmd python3

R=$T/repo
S=$T/src
mkdir -p "$S/d"
printf 'one\n' >"$S/d/one"
printf 'two\n' >"$S/two"
ln -s two "$S/link"
assert_ok "$MV" init "$R"
assert_ok "$MV" backup "$R" --name j --time 2026-01-01T00:00:00Z \
	--json s="$S" >"$T/b1.json"
rm "$S/two"
printf 'three\n' >"$S/three"
printf 'ONE\n' >"$S/d/one"
assert_ok "$MV" backup "$R" --name j --time 2026-01-02T00:00:00Z \
	s="$S" >/dev/null

# js FILE PYTHON: FILE parses as JSON into d, and PYTHON holds
js()
{
	python3 -c "import json, sys
d = json.load(open(sys.argv[1]))
$2" "$1" || die "$1: $2"
}

say "ls --json"
assert_ok "$MV" ls --json "$R" j/latest:s >"$T/ls.json"
js "$T/ls.json" '
names = {e["name"]: e for e in d}
assert set(names) == {"d", "link", "three"}, names
assert names["d"]["type"] == "dir" and names["three"]["type"] == "file"
assert names["link"]["type"] == "symlink" and names["link"]["target"] == "two"
assert names["three"]["size"] == 6 and names["three"]["target"] is None
for e in d:
	assert set(e) == {"name", "type", "mode", "uid", "gid", "user",
			  "group", "size", "mtime", "target"}, e'

say "diff --json"
assert_ok "$MV" diff --json "$R" j/2026-01-01T000000Z j/latest >"$T/diff.json"
js "$T/diff.json" '
ch = {(c["change"], c["path"]) for c in d["changes"]}
assert ("removed", "s/two") in ch and ("added", "s/three") in ch, ch
assert ("modified", "s/d/one") in ch, ch
assert d["added"] == 1 and d["removed"] == 1 and d["modified"] == 1, d
assert len(d["from_id"]) == 64 and d["to"] == "j/latest"'
assert_ok "$MV" diff --json --quiet "$R" j/2026-01-01T000000Z j/latest \
	>"$T/diffq.json"
js "$T/diffq.json" 'assert d["changes"] == [] and d["modified"] == 1, d'

say "check --json"
assert_ok "$MV" check --json --read-data "$R" >"$T/check.json"
js "$T/check.json" '
assert d["status"] == "ok" and d["read_data"] == "all", d
assert d["snapshots"] == 2 and d["packs_read"] == d["packs"], d
assert d["errors"] == [] and d["repair"] is None, d'

say "restore --json"
assert_ok "$MV" restore --json "$R" j/latest:s "$T/out" >"$T/restore.json"
js "$T/restore.json" '
assert d["complete"] is True and d["errors"] == 0, d
assert d["files"] == 2 and d["dirs"] == 2 and d["others"] == 1, d
assert d["bytes"] == 10, d'

say "forget, prune --dry-run --json list and count what would go"
assert_ok "$MV" forget --json --keep-last 1 --dry-run "$R" >"$T/forget.json"
js "$T/forget.json" 'assert d is not None'
assert_ok "$MV" forget --keep-last 1 "$R" >/dev/null
assert_ok "$MV" prune --dry-run --json --max-unused 0 "$R" >"$T/prune.json"
js "$T/prune.json" '
assert d["dry_run"] is True and d["snapshots"] == 1, d
assert d["reclaimed_bytes"] > 0, d
assert d["reclaimed_bytes"] == d["pack_bytes"] + d["orphan_bytes"] - d["after_bytes"]'
assert_ok "$MV" prune --dry-run -v --max-unused 0 "$R" >"$T/prune.txt" \
	2>"$T/prune.err"
assert_grep "^info: would (delete|repack) pack '[0-9a-f]+' \([0-9]+ bytes, [0-9]+ of [0-9]+ records live\)" "$T/prune.err"
assert_grep '^would reclaim' "$T/prune.txt"
assert_ok "$MV" prune --json --max-unused 0 "$R" >"$T/prune2.json"
js "$T/prune2.json" 'assert d["dry_run"] is False and d["reclaimed_bytes"] > 0, d'
assert_ok "$MV" check --json --read-data "$R" >"$T/check2.json"
js "$T/check2.json" 'assert d["status"] == "ok" and d["snapshots"] == 1, d'

say "snapshots, stats and backup --json parse"
assert_ok "$MV" snapshots --json "$R" >"$T/snaps.json"
js "$T/snaps.json" 'assert len(d) == 1, d'
assert_ok "$MV" stats --json "$R" >"$T/stats.json"
js "$T/stats.json" 'assert d'
assert_ok "$MV" config --json "$R" >"$T/config.json"
js "$T/config.json" '
assert d["encryption"] == "none" and d["key"] is None, d
assert d["append_only"] is False and d["chunk_avg"] > 0, d'
js "$T/b1.json" 'assert d["snapshot"].startswith("j/") and d["files"] == 2 and d["others"] == 1, d'
say "key list --json: the slots the text shows, the opened one marked"
E=$T/enc
export MAILVAULT_KDF_TEST=1
MAILVAULT_PASSPHRASE=pass-one "$MV_BIN" init "$E" >/dev/null </dev/null ||
	die "init of an encrypted repository"
MAILVAULT_PASSPHRASE=pass-one MAILVAULT_NEW_PASSPHRASE=pass-two \
	"$MV_BIN" key add "$E" >/dev/null </dev/null || die "key add"
MAILVAULT_PASSPHRASE=pass-two "$MV_BIN" key list "$E" >"$T/keys.txt" \
	</dev/null || die "key list"
MAILVAULT_PASSPHRASE=pass-two "$MV_BIN" key list --json "$E" \
	>"$T/keys.json" </dev/null || die "key list --json"
cat "$T/keys.json"
opened=$(sed -n 's/^\([0-9a-f]*\) .*(opened)$/\1/p' "$T/keys.txt")
python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
assert d["encryption"] == "xchacha20-poly1305" and d["key"] == "repokey", d
assert len(d["slots"]) == 2 and d["slot_in_keyfile"] is False, d
assert [s["name"] for s in d["slots"] if s["opened"]] == [sys.argv[2]], d
for s in d["slots"]:
    assert s["kdf"] == "argon2id" and s["opslimit"] > 0, s
    assert s["memlimit"] >= 1048576, s
text = open(sys.argv[3]).read()
for s in d["slots"]:
    line = "%s argon2id t=%d m=%d MiB" % (s["name"], s["opslimit"],
                                         s["memlimit"] // 1048576)
    assert line in text, (line, text)' "$T/keys.json" "$opened" \
	"$T/keys.txt" || die "key list --json differs from key list"
assert_exit 2 "$MV_BIN" key add --json "$E" 2>/dev/null </dev/null
ok
