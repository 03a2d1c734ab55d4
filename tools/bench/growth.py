#!/usr/bin/env python3
"""growth.py: the report of tools/bench/growth.sh (issue 15's growth series).

Usage:
  growth.py report RESDIR MANIFEST PNGNAME   the section's text for one run
                                             on stdout; writes
                                             RESDIR/growth-sizes.dat for
                                             tools/bench/growth.gp
  growth.py splice FRAGMENT OUT.md [OLD.md]  put FRAGMENT into the section
                                             "Growth series: real-like mail"
                                             of OUT.md (made if missing),
                                             replacing the run of the same
                                             commit; the runs of the two
                                             latest commits are kept (the
                                             earlier one from OLD.md's
                                             section when given)

RESDIR holds growth.tsv (DAY TOOL WALL USER SYS MAXRSS STATUS DU_BYTES
FILE_BYTES [CACHE_BYTES]; day 0 is the empty repository; CACHE_BYTES,
mailvault's local cache directory, is absent in runs before 2026-12-07,
whose DU_BYTES included it), rebackup.tsv (RUN TOOL FILES
BEFORE AFTER FILE_BYTES TGZ_BYTES WALL USER SYS MAXRSS STATUS) and
meta.env.
"""

import json
import os
import re
import shlex
import statistics
import sys

HEAD = "## Growth series: real-like mail"
TOOLS = [("mv", "mailvault (mail view on)"),
	 ("mv-nomail", "mailvault --no-mail"),
	 ("mv-enc", "mailvault, encrypted (mail view on)"),
	 ("borg", "borg import-tar, --encryption none"),
	 ("borg-enc", "borg import-tar, repokey-blake2"),
	 ("restic", "restic backup (extracted tree)")]
PLOT = [("mv", "mailvault"), ("mv-nomail", "mailvault --no-mail"),
	("mv-enc", "mailvault (encrypted)"),
	("borg", "borg import-tar"), ("borg-enc", "borg (repokey-blake2)"),
	("restic", "restic")]
INTRO = """\
Issue 15's series: what a repository costs on mail like a real server's
(mostly small text messages), day after day, beside the generated 1 GB/day
data above.  Run by `make bench` (phase `growth`) or alone by `make
bench-growth` (`tools/bench/growth.sh`; `GROWTH_SCALE=small` for a short
run).

Data: `tools/gen_fixture.py --profile realmail`: a Dovecot vmail volume of
6 users in Maildir++ folders (INBOX cur/new, Sent, Drafts, Trash, Junk,
Archive, Archive.2024 and two folders with modified UTF-7 names),
Dovecot-style file names, dovecot-uidlist, dovecot.index, .index.cache
and .index.log in every folder, all changing daily; then each day about
1% new mail (most in new/), the previous day's new/ mail read (moved to
cur/ with `:2,S`), flag changes on 2% of the messages (`:2,S` ->
`:2,RS` and the like), 0.3% deleted, 0.1% refiled to Archive or Trash.
Each day is one `tar -czf` of the volume (GNU tar).

How: every tool gets the same day's tar.gz.  mailvault (`backup
volume=DAY.tar.gz`, with and without `--no-mail`; from format 2 on these
two repositories are made with `--encryption none` and a third, with the
view on, with the default encryption) and `borg import-tar
--compression zstd,3` (borg 1.2, one repository `--encryption none`, one
`--encryption repokey-blake2`) read it directly; restic (repository v2,
compression auto, always encrypted) backs up the tar's contents
extracted into one directory that is kept and synced with `rsync -aH
--delete` from day to day (untimed), so its file cache works as on a
server.  Size = `du -sb --apparent-size` of the repository directory (its
files and directories), the same rule for every tool: what the storage
side holds.  For mailvault that is `config`, `packs/`, `catalog/` (the
catalogue segments) and either `index.db` and `catalog.db` (a local
unencrypted repository keeps its SQLite index and catalogue inside) or
`index/` and `keys/` (an encrypted one: its commit segments and key
slots).  An encrypted repository keeps `catalog.db` and a decrypted copy
of its index in its local cache directory, rebuilt from `index/` and
`catalog/` when lost; that cache is shown in a column of its own and in
a second ratio with it counted.  borg's and restic's
caches (`~/.cache/borg`, restic's cache), which they rebuild when lost,
are not measured.  Until 2026-12-07 the encrypted repository's figures
included its cache directory.  Added = the size after the day minus the size before
it.  Wall = the backup command alone.
"""


def load_meta(p):
	m = {}
	with open(p) as f:
		for ln in f:
			ln = ln.rstrip("\n")
			if "=" in ln:
				k, v = ln.split("=", 1)
				try:
					v = " ".join(shlex.split(v))
				except ValueError:
					pass
				m[k] = v
	return m


def mb(b):
	return "%.2f MB" % (b / 1e6)


def kb(b):
	return "%.0f kB" % (b / 1e3) if abs(b) < 1e6 else mb(b)


def secs(s):
	return "%.2f s" % s


def spread(vals, fmt):
	if not vals:
		return "–"
	if len(vals) == 1:
		return fmt(vals[0])
	return "%s (%s–%s)" % (fmt(statistics.median(vals)), fmt(min(vals)),
			       fmt(max(vals)))


def report(res, manifest, png):
	meta = load_meta(os.path.join(res, "meta.env"))
	rows = {}
	status = {}
	with open(os.path.join(res, "growth.tsv")) as f:
		for ln in f:
			v = ln.rstrip("\n").split("\t")
			if len(v) < 9:
				continue
			d, t = int(v[0]), v[1]
			rows.setdefault(t, {})[d] = (float(v[2]), int(v[7]),
						     int(v[8]),
						     int(v[9]) if len(v) > 9
						     else 0)
			if v[6] != "ok":
				status.setdefault(t, []).append(
					"day %d: %s" % (d, v[6]))
	with open(manifest) as f:
		man = json.load(f)["days"]
	days = max(max(r) for r in rows.values())
	size = {t: [rows[t][d][1] for d in range(0, days + 1)]
		for t, _ in TOOLS if t in rows}
	added = {t: [s[d] - s[d - 1] for d in range(1, days + 1)]
		 for t, s in size.items()}
	# mailvault's local cache directory, and repository + cache
	cache = {t: [rows[t][d][3] for d in range(0, days + 1)]
		 for t in size}
	added_rc = {t: [size[t][d] + cache[t][d] - size[t][d - 1] -
			cache[t][d - 1] for d in range(1, days + 1)]
		    for t in size}
	wall = {t: [rows[t][d][0] for d in range(1, days + 1)]
		for t in size}
	out = []
	o = out.append
	o("### Measured at %s (%s)\n" % (meta.get("mv_version", "?"),
					  meta.get("date", "?")))
	o("Commit: %s.  Scale %s: `gen_fixture.py %s`; day 1: %s files, "
	  "%s in the tar (%s of tar.gz); %d days; messages on day 1 / "
	  "day %d: %s / %s; new messages a day %s, read (new/ -> cur/) %s, "
	  "re-flagged %s, deleted %s, refiled %s (medians of days 2-%d).  "
	  "%s; %s; %s.  This run took %s s (series) + %s s (re-backup).\n" % (
		  meta.get("mv_commit", "?"), meta.get("scale"),
		  meta.get("gen_args"), meta.get("day1_files"),
		  mb(int(meta.get("day1_bytes", 0))),
		  mb(man["1"].get("tar_bytes", 0)), days, days,
		  man["1"]["messages"], man[str(days)]["messages"],
		  *[int(statistics.median(man[str(d)][k]
					 for d in range(2, days + 1)))
		    if days > 1 else 0
		    for k in ("new", "moved_new_cur", "flags", "deleted",
			      "refiled")],
		  days, meta.get("borg_version"), meta.get("restic_version"),
		  meta.get("cpu"), meta.get("series_s"),
		  meta.get("rebackup_s")))
	o("| | day 1 (added) | added per day, days 2–%d: median "
	  "(min–max) | after %d days | files only | local cache after %d "
	  "days | ingest wall, day 1 | ingest wall, days 2–%d |" %
	  (days, days, days, days))
	o("|---|---|---|---|---|---|---|---|")
	for t, name in TOOLS:
		if t not in size:
			continue
		c = cache[t][-1]
		o("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
			name, mb(added[t][0]), spread(added[t][1:], kb),
			mb(size[t][-1]), mb(rows[t][days][2]),
			mb(c) if t.startswith("mv") else "not measured",
			secs(wall[t][0]), spread(wall[t][1:], secs)))
	o("")
	if "restic" in size:
		o("\"files only\" leaves out the directories' own sizes, which "
		  "du counts: restic's empty repository is already %s, most "
		  "of it its 256 directories `data/00`…`data/ff`." %
		  mb(size["restic"][0]))
	o("")
	if status:
		o("Failed ingests: %s.\n" % "; ".join(
			"%s %s" % (t, ", ".join(v)) for t, v in status.items()))

	def ratio(a, b):
		return a / b if b else float("nan")

	def verdict(x, goal):
		return "**met**" if x <= goal else "**missed**"

	if "mv" in size and "borg" in size and days > 1:
		o("| mailvault / borg import-tar | mail view on | --no-mail | "
		  "target |")
		o("|---|---|---|---|")
		for base, bname in (("borg", "unencrypted"),
				    ("borg-enc", "repokey-blake2")):
			if base not in size:
				continue
			a = [ratio(statistics.median(added[t][1:]),
				   statistics.median(added[base][1:]))
			     for t in ("mv", "mv-nomail")]
			s = [ratio(size[t][-1], size[base][-1])
			     for t in ("mv", "mv-nomail")]
			o("| added per day, median of days 2–%d (borg %s) | "
			  "%.2f %s | %.2f | ≤ 0.5 |" % (
				  days, bname, a[0], verdict(a[0], 0.5), a[1]))
			o("| repository after %d days (borg %s) | %.2f %s | "
			  "%.2f | ≤ 0.8 |" % (days, bname, s[0],
					      verdict(s[0], 0.8), s[1]))
		if "mv-enc" in size and "borg-enc" in size:
			a = ratio(statistics.median(added["mv-enc"][1:]),
				  statistics.median(added["borg-enc"][1:]))
			s = ratio(size["mv-enc"][-1], size["borg-enc"][-1])
			o("| both encrypted (mailvault's default against "
			  "repokey-blake2): added per day | %.2f %s | | ≤ 0.5 |" %
			  (a, verdict(a, 0.5)))
			o("| both encrypted: repository after %d days | %.2f %s "
			  "| | ≤ 0.8 |" % (days, s, verdict(s, 0.8)))
			a = ratio(statistics.median(added_rc["mv-enc"][1:]),
				  statistics.median(added["borg-enc"][1:]))
			s = ratio(size["mv-enc"][-1] + cache["mv-enc"][-1],
				  size["borg-enc"][-1])
			o("| both encrypted, mailvault's local cache counted "
			  "too: added per day | %.2f | | |" % a)
			o("| both encrypted, mailvault's local cache counted "
			  "too: after %d days | %.2f | | |" % (days, s))
		o("")
	# the unchanged re-backup
	rb = {}
	p = os.path.join(res, "rebackup.tsv")
	if os.path.exists(p):
		with open(p) as f:
			for ln in f:
				v = ln.rstrip("\n").split("\t")
				if len(v) >= 12:
					rb[(int(v[0]), v[1])] = v
	if rb:
		nfiles = next(iter(rb.values()))[2]
		o("Unchanged re-backup: one tar.gz of a %s-file tree (`gen_fixture.py "
		  "%s`, %s of tar.gz) backed up twice under the same name, "
		  "the second an hour later; target: the second adds "
		  "< 64 KiB.\n" % (nfiles, meta.get("tree_args"),
				   mb(int(next(iter(rb.values()))[6]))))
		o("| | first backup: size, wall | second backup adds | wall | "
		  "< 64 KiB |")
		o("|---|---|---|---|---|")
		for t, name in (("mv", "mailvault (mail view on)"),
				("mv-nomail", "mailvault --no-mail"),
				("borg", "borg import-tar (for reference)")):
			a, b = rb.get((1, t)), rb.get((2, t))
			if not a or not b:
				continue
			add = int(b[4]) - int(b[3])
			ok = "" if t == "borg" else (
				"**met**" if add < 65536 else "**missed**")
			st = "" if a[11] == "ok" and b[11] == "ok" else \
				" (%s, %s)" % (a[11], b[11])
			o("| %s | %s, %s | %s B (%.1f KiB) | %s | %s%s |" % (
				name, mb(int(a[4])), secs(float(a[7])), add,
				add / 1024, secs(float(b[7])), ok, st))
		o("")
	o("![repository size over the days](%s)\n" % png)
	with open(os.path.join(res, "growth-sizes.dat"), "w") as f:
		f.write("day %s\n" % " ".join(
			'"%s"' % n for t, n in PLOT if t in size))
		for d in range(1, days + 1):
			f.write("%d %s\n" % (d, " ".join(
				"%.3f" % (size[t][d] / 1e6)
				for t, _ in PLOT if t in size)))
	return "\n".join(out)


MARK = re.compile(r"<!-- growth:(\S+) -->\n(.*?)<!-- /growth -->\n", re.S)


def section(text):
	"""(start, end) of the section in text, or (-1, -1)."""
	start = text.find("\n" + HEAD + "\n")
	if start < 0:
		return -1, -1
	start += 1
	nxt = text.find("\n## ", start + len(HEAD))
	return start, len(text) if nxt < 0 else nxt + 1


def splice(frag_path, out_path, old_path=None):
	"""The runs kept are those of OUT's section, or of OLD's when OUT
	was just rewritten without it (tools/bench.sh's report)."""
	with open(frag_path) as f:
		frag = f.read().rstrip("\n") + "\n"
	key = re.match(r"### Measured at (\S+)", frag)
	key = key.group(1).replace("-dirty", "") if key else "run"
	text = ""
	if os.path.exists(out_path):
		with open(out_path) as f:
			text = f.read()
	old = text
	if old_path and os.path.exists(old_path):
		with open(old_path) as f:
			old = f.read()
	runs = []
	s, e = section(old)
	if s >= 0:
		runs = [(k, body) for k, body in MARK.findall(old[s:e])
			if k != key]
	start, end = section(text)
	if start < 0:
		# before the closing analysis, if the report has one
		nxt = text.find("\n## What limits the figures")
		start = end = len(text) if nxt < 0 else nxt + 1
		if start and not text[:start].endswith("\n\n"):
			text = text[:start] + "\n" + text[start:]
			start += 1
			end += 1
	runs = runs[-1:] + [(key, frag)]
	sec = HEAD + "\n\n" + INTRO + "\n" + "".join(
		"<!-- growth:%s -->\n%s<!-- /growth -->\n" % (k, b)
		for k, b in runs)
	text = text[:start] + sec + ("\n" if end < len(text) else "") + \
		text[end:]
	with open(out_path, "w") as f:
		f.write(text)


def main():
	a = sys.argv[1:]
	if len(a) == 4 and a[0] == "report":
		print(report(a[1], a[2], a[3]))
	elif len(a) in (3, 4) and a[0] == "splice":
		splice(*a[1:])
	else:
		sys.exit(__doc__)
	return 0


if __name__ == "__main__":
	sys.exit(main())
