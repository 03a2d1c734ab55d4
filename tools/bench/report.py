#!/usr/bin/env python3
"""report.py: turn the raw figures of tools/bench.sh into docs/BENCHMARKS.md.

Usage: report.py RESDIR OUT.md PNGNAME

RESDIR holds what bench.sh wrote: results.tsv (PHASE TOOL DAY RUN WALL
USER SYS MAXRSS_KIB STATUS), sizes.tsv (RUN DAY TOOL BYTES), verify.tsv
(TOOL METHOD RESULT), meta.env and mail.env (shell assignments), find-TOOL
(entry counts), partial-TOOL (files an rsync had copied when its limit
hit), phases.tsv (NAME START_EPOCH: the bench's own duration),
remote.log (tests/integration/t3106-remote-bench.sh), lifecycle.log
(tools/bench/lifecycle.sh) and mail.log (tools/bench/mail.sh).  Writes OUT.md and RESDIR/sizes.dat for gnuplot.  Every figure is
the median of its runs with (min-max); ratios are mailvault/other, each
from medians of this run.  tools/bench/notes.md, when present, is appended
(the analysis of what limits a figure, written from perf/callgrind).
"""

import os
import re
import shlex
import statistics
import sys

INGEST = [("mv", "mailvault (tar.gz)"), ("borg-tar", "borg import-tar"),
	  ("borg-tree", "borg create (tree)"), ("restic", "restic backup (tree)"),
	  ("tgz", "tar.gz a day (cp)")]
MOUNTS = [("mv", "mailvault mount"), ("borg", "borg mount"),
	  ("restic", "restic mount"), ("archivemount", "archivemount (tar.gz)")]
RESTORES = [("mv", "mailvault restore"), ("borg-tar", "borg extract (import-tar)"),
	    ("borg-tree", "borg extract (create)"), ("restic", "restic restore"),
	    ("tgz", "tar -xzpf (tar.gz)")]


def load_meta(p):
	m = {}
	with open(p) as f:
		for ln in f:
			ln = ln.rstrip("\n")
			if "=" not in ln:
				continue
			k, v = ln.split("=", 1)
			try:
				v = " ".join(shlex.split(v))
			except ValueError:
				pass
			m[k] = v
	return m


class Results:
	def __init__(self, p):
		self.rows = []
		with open(p) as f:
			for ln in f:
				v = ln.rstrip("\n").split("\t")
				if len(v) < 9:
					continue
				self.rows.append({
					"phase": v[0], "tool": v[1], "day": int(v[2]),
					"run": int(v[3]), "wall": float(v[4]),
					"user": float(v[5]), "sys": float(v[6]),
					"rss": int(v[7]), "status": v[8]})

	def get(self, phase, tool, day=None):
		return [r for r in self.rows if r["phase"] == phase and
			r["tool"] == tool and (day is None or r["day"] == day)]

	def days(self, phase):
		return sorted({r["day"] for r in self.rows if r["phase"] == phase})


def stat(rows, key="wall"):
	"""(median, min, max, n) of the ok runs, or (None, status) if any failed."""
	if not rows:
		return None, "not measured"
	bad = [r["status"] for r in rows if r["status"] != "ok"]
	if bad:
		return None, bad[0]
	v = [key(r) if callable(key) else r[key] for r in rows]
	return (statistics.median(v), min(v), max(v), len(v)), None


def med(rows, key="wall"):
	s, _ = stat(rows, key)
	return s[0] if s else None


def fmt_s(x):
	if x is None:
		return "-"
	if x < 0.1:
		return "%.1f ms" % (x * 1000)
	if x < 10:
		return "%.2f s" % x
	return "%.1f s" % x


def cell(rows, key="wall", fmt=fmt_s):
	s, err = stat(rows, key)
	if s is None:
		return "**%s**" % err
	m, lo, hi, n = s
	if n == 1:
		return fmt(m)
	return "%s (%s–%s)" % (fmt(m), fmt(lo), fmt(hi))


def ratio(a, b):
	if a is None or b is None or b == 0:
		return "-"
	return "%.2f" % (a / b)


def mib(kib):
	return "%.0f MiB" % (kib / 1024.0)


def mb(b):
	return "%.1f MB" % (b / 1e6)


def cpu(r):
	return r["user"] + r["sys"]


# The small scale's duration, for the Reproduce line of a full-scale report
# (a small run states its own).  Measured with `BENCH_SCALE=small make
# bench` on the machine described in the report.
SMALL_RUN = "about 2.5 minutes (154 s on 2026-11-26, data generation included)"
NUM = r"([0-9]+(?:\.[0-9]+)?)"


def grab(path, pattern):
	"""The groups of the first line of PATH matching PATTERN, as floats
	where they are numbers, or None."""
	if not os.path.exists(path):
		return None
	with open(path, errors="replace") as f:
		for ln in f:
			m = re.search(pattern, ln)
			if m:
				return [float(g) if re.fullmatch(NUM, g) else g
					for g in m.groups()]
	return None


def phases(res):
	p = os.path.join(res, "phases.tsv")
	if not os.path.exists(p):
		return []
	v = []
	with open(p) as f:
		for ln in f:
			x = ln.split()
			if len(x) == 2:
				v.append((x[0], int(x[1])))
	out = []
	for i in range(len(v) - 1):
		out.append((v[i][0], v[i + 1][1] - v[i][1]))
	return out


def fmt_dur(sec):
	if sec < 90:
		return "%d s" % sec
	if sec >= 600:
		return "%.0f min" % (sec / 60.0)
	return "%.1f min" % (sec / 60.0)


def main():
	res, out, pngname = sys.argv[1], sys.argv[2], sys.argv[3]
	meta = load_meta(os.path.join(res, "meta.env"))
	mmeta = {}
	if os.path.exists(os.path.join(res, "mail.env")):
		mmeta = load_meta(os.path.join(res, "mail.env"))
	ph = phases(res)
	total = sum(d for _, d in ph)
	full = meta.get("scale") == "full"
	R = Results(os.path.join(res, "results.tsv"))
	L = []
	w = L.append
	days = R.days("ingest")
	last = int(meta.get("days", max(days) if days else 7))

	w("# Benchmarks: mailvault, borg, restic, archivemount, a tar.gz a day\n")
	w("Generated by `make bench` (tools/bench.sh) on %s; do not edit by "
	  "hand — rerun it.\n" % meta.get("date", "?"))
	if full:
		w("Reproduce: `make && make bench` as root (this run took %s; it "
		  "writes this file and the plot into docs/). `BENCH_SCALE=small "
		  "make bench` is a scaled-down run, %s, that writes its report "
		  "under /var/tmp/mailvault-bench-small/. Root is needed to drop "
		  "the page cache and to mount with FUSE.\n" % (
			fmt_dur(total), SMALL_RUN))
	else:
		w("Reproduce: `BENCH_SCALE=small make bench` as root (this "
		  "scaled-down run took %s; its figures are not the full-scale "
		  "ones: `make bench` runs about 1 GB a day and writes "
		  "docs/BENCHMARKS.md).\n" % fmt_dur(total))
	if ph:
		w("Where this run's time went: %s.\n" % ", ".join(
			"%s %s" % (n, fmt_dur(d)) for n, d in ph))
	w("Every figure is the median of its runs, with (min–max) when there "
	  "was more than one run; every ratio is mailvault / the other tool, "
	  "from the medians of this same run. These machines are shared and "
	  "noisy: trust the ratios more than the absolute times.\n")

	w("## Machine and data\n")
	w("| | |\n|---|---|")
	w("| CPU | %s, %s CPUs |" % (meta.get("cpu", "?"), meta.get("cpus", "?")))
	w("| memory | %s |" % meta.get("mem", "?"))
	w("| disk | %s |" % meta.get("disk", "?"))
	w("| kernel | %s |" % meta.get("kernel", "?"))
	w("| tools | mailvault %s; %s; %s; %s; %s; %s |" % (
		meta.get("mv_version", "?"), meta.get("borg_version", "?"),
		meta.get("restic_version", "?"),
		meta.get("archivemount_version", "?"),
		meta.get("gzip_version", "?"), meta.get("igzip_version", "?")))
	tgz = [int(x) for x in meta.get("tgz_bytes", "").split()]
	msgs = meta.get("messages", "").split()
	w("| data | `tools/gen_fixture.py %s` (scale %s): %s days of a mail "
	  "volume; messages per day %s |" % (
		meta.get("gen_args", "?"), meta.get("scale", "?"), meta.get(
			"days", "?"), " ".join(msgs)))
	w("| day %d | %s entries, %s of files (apparent size); tar.gz %s |" % (
		last, meta.get("tree_entries", "?"),
		mb(int(meta.get("tree_bytes", 0))), mb(tgz[-1]) if tgz else "?"))
	uniq = meta.get("unique", "0 0").split()
	w("| unique data, %s days | %s of distinct file contents, %s after "
	  "`zstd -3` |" % (meta.get("days", "?"), mb(int(uniq[0])),
			   mb(int(uniq[1]))))
	w("| runs | ingest: %s run(s) of the whole %s-day sequence; mounts and "
	  "restores: %s runs each |" % (meta.get("ingest_runs"), meta.get(
		"days"), meta.get("runs")))
	w("")
	w("How: mailvault and `borg import-tar --compression zstd,3` read each "
	  "day's tar.gz (GNU tar, what `tar -czf` writes); `borg create "
	  "--compression zstd,3` and `restic backup` (repository v2, zstd "
	  "auto) read the unpacked tree, kept at one path and updated in place "
	  "with `rsync -aH --delete` between days (untimed) so their file "
	  "caches work as on a server; \"tar.gz a day\" is the seeds' way: the "
	  "day's tar.gz copied into a directory. Timings use `/usr/bin/time -f "
	  "'%U %S %M'` for CPU and peak RSS, and a monotonic clock for wall "
	  "time (tools/bench/run.py). The page cache is dropped (`sync; echo 3 "
	  ">/proc/sys/vm/drop_caches`) before every mount, cold read, find, "
	  "rsync and restore; ingest runs warm (the tar.gz was just read by "
	  "the floors).\n")

	# ---- ingest
	w("## Ingest, wall time per day\n")
	w("Day 1 is a full backup, the later days are incremental. Floors: "
	  "`gzip -dc FILE >/dev/null` and `igzip -dc FILE >/dev/null` on the "
	  "same day's tar.gz.\n")
	hdr = ["day", "gzip -dc", "igzip -dc"] + [n for _, n in INGEST] + [
		"mv/gzip", "mv/igzip", "mv/borg-tar", "mv/borg-tree", "mv/restic"]
	w("| " + " | ".join(hdr) + " |")
	w("|" + "---|" * len(hdr))
	worst_floor = None
	ratios_floor = []
	for d in days:
		g = R.get("floor-gzip", "gzip", d)
		ig = R.get("floor-igzip", "igzip", d)
		row = [str(d), cell(g), cell(ig)]
		for t, _ in INGEST:
			row.append(cell(R.get("ingest", t, d)))
		mvm = med(R.get("ingest", "mv", d))
		row.append(ratio(mvm, med(g)))
		row.append(ratio(mvm, med(ig)))
		for t in ["borg-tar", "borg-tree", "restic"]:
			row.append(ratio(mvm, med(R.get("ingest", t, d))))
		if d > 1 and mvm is not None and med(g):
			rf = mvm / med(g)
			ratios_floor.append(rf)
			worst_floor = rf if worst_floor is None else max(worst_floor, rf)
		w("| " + " | ".join(row) + " |")
	w("")
	w("## Ingest, CPU time (user+sys) and peak RSS\n")
	hdr = ["day"] + ["%s CPU" % n for _, n in INGEST[:4]]
	w("| " + " | ".join(hdr) + " |")
	w("|" + "---|" * len(hdr))
	for d in days:
		row = [str(d)]
		for t, _ in INGEST[:4]:
			row.append(cell(R.get("ingest", t, d), key=cpu))
		w("| " + " | ".join(row) + " |")
	w("")
	w("| tool | peak RSS, largest over all days and runs |")
	w("|---|---|")
	rss_mv = None
	for t, n in INGEST:
		rows = R.get("ingest", t)
		if rows:
			m = max(r["rss"] for r in rows)
			if t == "mv":
				rss_mv = m
			w("| %s | %s |" % (n, mib(m)))
	w("")

	# ---- sizes
	sizes = {}
	runs_seen = set()
	with open(os.path.join(res, "sizes.tsv")) as f:
		for ln in f:
			r, d, t, b = ln.split()
			runs_seen.add(int(r))
			sizes[(int(r), int(d), t)] = int(b)
	lr = max(runs_seen) if runs_seen else 1
	w("## Repository size after each day\n")
	w("`du -sb` of the repository after the day's backup (last ingest run). "
	  "Plot: [%s](%s).\n" % (pngname, pngname))
	hdr = ["day"] + [n for _, n in INGEST] + ["mv/borg-tar", "mv/borg-tree",
						  "mv/restic", "mv/tar.gz"]
	w("| " + " | ".join(hdr) + " |")
	w("|" + "---|" * len(hdr))
	with open(os.path.join(res, "sizes.dat"), "w") as dat:
		dat.write("day " + " ".join('"%s"' % n for _, n in INGEST) + "\n")
		for d in days:
			v = [sizes.get((lr, d, t)) for t, _ in INGEST]
			row = [str(d)] + [mb(x) if x is not None else "-" for x in v]
			for i in (1, 2, 3, 4):
				row.append(ratio(v[0], v[i]))
			w("| " + " | ".join(row) + " |")
			dat.write("%d %s\n" % (d, " ".join(
				"%.3f" % (x / 1e6) if x is not None else "NaN" for x in v)))
	w("")
	size_mv = sizes.get((lr, last, "mv"))
	size_bt = sizes.get((lr, last, "borg-tar"))
	w("Re-ingesting the unchanged day %d once more added %s to mailvault's "
	  "repository (%s) and %s to borg's (import-tar, %s).\n" % (
		last, "%d bytes" % int(meta.get("reingest_mv", -1)),
		cell(R.get("reingest", "mv")),
		"%d bytes" % int(meta.get("reingest_borg_tar", -1)),
		cell(R.get("reingest", "borg-tar"))))

	# ---- mounts
	w("## Mounts of the day-%d snapshot\n" % last)
	w("mailvault and archivemount show the tar.gz's content, borg and "
	  "restic the tree (`borg mount` of the import-tar archive is not "
	  "usable: its entries sit under a `.` directory that cannot be "
	  "entered). archivemount mounts the same day written with `tar "
	  "--hard-dereference` (each of the %s hard links stored as a copy): "
	  "on the original tar.gz it deadlocks at the first directory "
	  "holding a hard link (see the notes below). \"first ls\" is the time from starting the mount command "
	  "(foreground mode) to the end of the first listing of the mailbox "
	  "`%s` (%s messages), cache dropped before; \"cold cat\" reads the "
	  "message `%s` (%s bytes) after dropping the cache again, timed "
	  "in-process; `find DIR/ | wc -l` and `rsync -aH --numeric-ids DIR/ "
	  "DEST/` each start from a dropped cache. RSS is the mount process's "
	  "VmHWM after the rsync. Each operation is limited to %s s; a "
	  "tool that hits the limit is not waited for again in later runs."
	  "\n" % (
		meta.get("hardlinks", "?"), meta.get("mbox"),
		meta.get("mbox_count"), meta.get("msg"),
		meta.get("msg_size"), meta.get("timeout")))
	hdr = ["figure"] + [n for _, n in MOUNTS] + ["mv/borg", "mv/restic",
						   "mv/archivemount"]
	w("| " + " | ".join(hdr) + " |")
	w("|" + "---|" * len(hdr))
	for ph, name in [("mount-ls", "mount → first ls"),
			 ("mount-cat", "cold cat of one message"),
			 ("mount-find", "find \\| wc -l"),
			 ("mount-rsync", "rsync -a restore"),
			 ("mount-rss", "mount RSS (VmHWM)")]:
		key = "wall"
		fmt = fmt_s
		if ph == "mount-rss":
			fmt = lambda x: mib(x)
		row = []
		for t, _ in MOUNTS:
			rows = R.get(ph, t)
			if ph == "mount-rss" and stat(R.get("mount-rsync", t))[0] is None:
				row.append("-")
			else:
				row.append(cell(rows, key, fmt))
		row = [name] + row
		mvm = med(R.get(ph, "mv"))
		for t in ("borg", "restic", "archivemount"):
			row.append(ratio(mvm, med(R.get(ph, t))))
		w("| " + " | ".join(row) + " |")
	counts = []
	for t, n in MOUNTS:
		p = os.path.join(res, "find-" + t)
		if os.path.exists(p):
			counts.append("%s %s" % (n, open(p).read().strip() or "?"))
	w("\nEntries found: %s (source: %s entries).\n" % (
		", ".join(counts) or "-", meta.get("tree_entries")))
	for t, n in MOUNTS:
		p = os.path.join(res, "partial-" + t)
		if os.path.exists(p):
			w("%s: rsync had copied %s files of %s when the %s s limit "
			  "hit.\n" % (n, open(p).read().strip(), meta.get(
				"tree_entries"), meta.get("timeout")))
	big = R.get("bigread", "mv")
	bigmb = int(meta.get("big_mb", 0))
	bs, _ = stat(big)
	if bs:
		w("Sequential read of one %d MiB file (uncompressed mail tar) "
		  "through `mailvault mount -o cache_size=%d` once its chunks are "
		  "in the mount's cache (page cache dropped): %s, %.2f GB/s.\n" % (
			bigmb, bigmb * 2, cell(big), bigmb * 1048576 / bs[0] / 1e9))

	# ---- restores
	w("## Restore of the whole day-%d snapshot\n" % last)
	hdr = ["tool", "wall", "CPU", "peak RSS", "mv/this"]
	w("| " + " | ".join(hdr) + " |")
	w("|" + "---|" * len(hdr))
	mvr = med(R.get("restore", "mv"))
	for t, n in RESTORES:
		rows = R.get("restore", t)
		w("| %s | %s | %s | %s | %s |" % (
			n, cell(rows), cell(rows, key=cpu),
			mib(max(r["rss"] for r in rows)) if rows else "-",
			ratio(mvr, med(rows))))
	w("")

	# ---- verification
	w("## Verification of every restore\n")
	w("Each restored tree is listed with tests/lib/tree-digest.py (type, "
	  "mode, uid, gid, mtime in ns, size, SHA-256, xattrs, hard links) and "
	  "compared with its source: the day's tree for the tools that read "
	  "the tree, the tar.gz's content (`tar -xzpf` as root) for those that "
	  "read the tar.gz. First run of each.\n")
	w("| tool | how | result |")
	w("|---|---|---|")
	with open(os.path.join(res, "verify.tsv")) as f:
		for ln in f:
			v = ln.rstrip("\n").split("\t")
			if len(v) == 3:
				w("| %s | %s | %s |" % (v[0], v[1], v[2]))
	w("\nThe tar.gz against the tree it was made from: %s. (GNU tar keeps "
	  "whole-second mtimes; that is the input of the tar.gz readers.)\n" %
	  meta.get("tar_vs_tree"))

	# ---- mail view and catalogue (issue 5)
	w("## Mail view and catalogue (issue 5)\n")
	w("Catalogue cost: every day's tar.gz is also backed up with "
	  "`--no-mail` into a second repository in the same run (same "
	  "options otherwise); the ratio is the day's backup with the mail "
	  "view and catalogue over the one without.\n")
	w("| day | with mail view | `--no-mail` | ratio | repository with / "
	  "without |")
	w("|---|---|---|---|---|")
	cat_ratios = []
	for d in days:
		a = med(R.get("ingest", "mv", d))
		b = med(R.get("ingest", "mv-nomail", d))
		sa, sb = sizes.get((lr, d, "mv")), sizes.get((lr, d, "mv-nomail"))
		if d > 1 and a is not None and b:
			cat_ratios.append(a / b)
		w("| %d | %s | %s | %s | %s / %s |" % (
			d, cell(R.get("ingest", "mv", d)),
			cell(R.get("ingest", "mv-nomail", d)), ratio(a, b),
			mb(sa) if sa else "-", mb(sb) if sb else "-"))
	w("")
	cc_a = R.get("catcost", "mv", last)
	cc_b = R.get("catcost", "mv-nomail", last)
	cc = None
	if cc_a and cc_b:
		cc = med(cc_a) / med(cc_b)
		w("Each day above is one backup of each kind, one after the "
		  "other, so one pair carries this machine's run-to-run noise. "
		  "Measured on its own: day %d backed up into copies of both "
		  "repositories as they were before it, %d rounds alternating "
		  "which goes first (page cache warm, `sync` before each):\n" % (
			last, len(cc_a)))
		w("| day %d | with mail view | `--no-mail` | ratio of medians |"
		  % last)
		w("|---|---|---|---|")
		w("| wall | %s | %s | %s |" % (cell(cc_a), cell(cc_b),
					      ratio(med(cc_a), med(cc_b))))
		w("| CPU (user + system) | %s | %s | %s |\n" % (
			cell(cc_a, key=cpu), cell(cc_b, key=cpu),
			ratio(med(cc_a, key=cpu), med(cc_b, key=cpu))))
	mver = mmeta.get("mail_mv_version")
	if mver and mver != meta.get("mv_version"):
		w("From tools/bench/mail.sh, run again on its own with mailvault "
		  "%s (%s runs each; every mount is fresh and the page cache is "
		  "dropped before each figure):\n" % (mver, meta.get("runs")))
	else:
		w("From tools/bench/mail.sh in the same run (%s runs each; "
		  "every mount is fresh and the page cache is dropped before "
		  "each figure):\n" % meta.get("runs"))
	w("| figure | data | time |")
	w("|---|---|---|")
	w("| list a folder of the view through the mount (readdir + lstat of "
	  "every name, like `ls -l`) | %s messages in one maildir folder | "
	  "%s |" % (mmeta.get("mail_folder", "?"), cell(R.get("mail-ls", "mv"))))
	w("| `mailvault ls` of the same folder (whole process) | same | %s |" %
	  cell(R.get("mail-ls-cli", "mv")))
	for ph, what in (("mount-ls-big", "a maildir folder"),
			 ("mount-ls-big-view", "a folder of the view")):
		if R.get(ph, "mv"):
			w("| mount → first listing of %s (from starting "
			  "`mailvault mount -f`, binary and libraries "
			  "included) | 1000 of %s messages in one snapshot | "
			  "%s |" % (what, mmeta.get("mount_messages", "?"),
				    cell(R.get(ph, "mv"))))
	w("| cold read of a mailcow message through the view (mail_crypt v2 "
	  "+ LZ4 written by Dovecot; decrypted and decompressed) | %s bytes "
	  "(%s stored) | %s |" % (mmeta.get("mail_msg_size", "?"),
				  mmeta.get("mail_msg_stored", "?"),
				  cell(R.get("mail-cat", "mv"))))
	for q, what in (("from", "`--from Jürgen --limit 50`"),
			("subject", "`--subject quarterly --limit 100`"),
			("deleted", "`--deleted --limit 100`")):
		w("| `mailvault find` %s: warm / cold (page cache dropped, binary "
		  "and libraries included) | %s snapshots of %s messages, "
		  "catalog.db %s | %s / %s |" % (
			what, mmeta.get("cat_days", "?"),
			mmeta.get("cat_messages", "?"),
			mb(int(mmeta.get("cat_bytes", 0))),
			cell(R.get("mail-find-" + q, "mv")),
			cell(R.get("mail-find-%s-cold" % q, "mv"))))
	w("")

	# ---- remote (issue 6)
	rlog = os.path.join(res, "remote.log")
	r_in = grab(rlog, r"# input: (\d+) MiB tar\.gz \((\d+) MB of mail\)")
	r_bk = grab(rlog, r"# backup: local " + NUM + r" s, sftp://127\.0\.0\.1 "
		    + NUM + r" s, ratio " + NUM)
	r_cat = grab(rlog, r"# cat: cold " + NUM + r" s \(index download "
		     r"included\), with the index cached " + NUM + " s")
	r_cold = grab(rlog, r"# cold read of one message: local " + NUM +
		      r" s, sftp " + NUM + " s")
	r_rs = grab(rlog, r"# full rsync from the mount: local " + NUM +
		    r" s, sftp " + NUM + r" s, ratio " + NUM)
	w("## Remote repository: sftp://127.0.0.1 (issue 6)\n")
	w("From tests/integration/t3106-remote-bench.sh in the same run (a "
	  "real sshd on loopback; one run each).\n")
	if r_bk:
		w("| figure | local | sftp:// | ratio |")
		w("|---|---|---|---|")
		w("| backup of one day's tar.gz (%s MiB, %s MB of mail) | %s | "
		  "%s | %.2f |" % (int(r_in[0]) if r_in else "?",
				   int(r_in[1]) if r_in else "?",
				   fmt_s(r_bk[0]), fmt_s(r_bk[1]), r_bk[2]))
		if r_cold:
			w("| cold read of one message through a mount | %s | %s | "
			  "%s |" % (fmt_s(r_cold[0]), fmt_s(r_cold[1]),
				    ratio(r_cold[1], r_cold[0])))
		if r_rs:
			w("| full rsync from a mount | %s | %s | %.2f |" % (
				fmt_s(r_rs[0]), fmt_s(r_rs[1]), r_rs[2]))
		if r_cat:
			w("| `mailvault cat` of one message, index download "
			  "included / index cached | | %s / %s | |" % (
				fmt_s(r_cat[0]), fmt_s(r_cat[1])))
		w("")
	else:
		w("**The remote benchmark produced no figures** (see "
		  "remote.log in the raw results).\n")

	# ---- lifecycle (issue 9)
	llog = os.path.join(res, "lifecycle.log")
	l_n = grab(llog, r"# lifecycle: (\d+) dailies: mailvault (\d+) B, "
		   r"borg (\d+) B")
	l_keep = grab(llog, r"keeps (\d+) snapshots")
	l_mv = grab(llog, r"mailvault forget: " + NUM + r" s, peak (\d+) KiB; "
		    r"prune: " + NUM + r" s, peak (\d+) KiB")
	l_bg = grab(llog, r"borg prune: " + NUM + r" s, peak (\d+) KiB; "
		    r"compact: " + NUM + r" s, peak (\d+) KiB")
	l_af = grab(llog, r"after prune: mailvault packs (\d+) B, kept-only "
		    r"packs (\d+) B, ratio " + NUM + r".*; borg (\d+) B")
	l_ck = grab(llog, r"(check --read-data after prune: clean)")
	w("## Retention: %s dailies, forget + prune (issue 9)\n" % (
		int(l_n[0]) if l_n else meta.get("lc_days", "?")))
	w("From tools/bench/lifecycle.sh in the same run: small generated "
	  "dailies (`gen_fixture.py --small --messages 40 --users 2 --link`) "
	  "backed up into mailvault (`--no-mail`) and into borg 1.2 "
	  "(zstd,3); then the same policy for both, `--keep-daily 7 "
	  "--keep-weekly 4 --keep-monthly 12` (TZ=UTC), %s snapshots kept. "
	  "One run each.\n" % (int(l_keep[0]) if l_keep else "?"))
	if l_mv and l_bg and l_af and l_n:
		w("| step | mailvault | borg 1.2 | mailvault/borg |")
		w("|---|---|---|---|")
		w("| repository before | %s | %s | %.2f |" % (
			mb(l_n[1]), mb(l_n[2]), l_n[1] / l_n[2]))
		w("| forget / `borg prune` | %s, peak RSS %s | %s, peak RSS %s | "
		  "%s |" % (fmt_s(l_mv[0]), mib(l_mv[1]), fmt_s(l_bg[0]),
			    mib(l_bg[1]), ratio(l_mv[0], l_bg[0])))
		w("| prune / `borg compact` | %s, peak RSS %s | %s, peak RSS %s "
		  "| %s |" % (fmt_s(l_mv[2]), mib(l_mv[3]), fmt_s(l_bg[2]),
			      mib(l_bg[3]), ratio(l_mv[2], l_bg[2])))
		w("| repository after (mailvault: packs) | %s | %s | %.2f |" % (
			mb(l_af[0]), mb(l_af[3]), l_af[0] / l_af[3]))
		w("| a repository that only ever held the kept snapshots | %s | "
		  "| |" % mb(l_af[1]))
		w("")
		w("`check --read-data` after prune: %s.\n" % (
			"clean" if l_ck else "**not clean or not run**"))
	else:
		w("**The lifecycle benchmark produced no figures** (see "
		  "lifecycle.log in the raw results).\n")

	# ---- targets
	w("## Performance targets of issues 3, 4, 5, 6 and 9\n")
	w("Every figure below comes from this run. \"met\" is judged only "
	  "where the run measured what the target states; a target stated "
	  "for a larger data set than this run's says so.\n")
	w("| issue | target | measured | met |")
	w("|---|---|---|---|")

	def t(issue, target, measured, met):
		if met is None:
			m = "not measured in this run"
		elif isinstance(met, str):
			m = met
		else:
			m = "**met**" if met else "**not met**"
		w("| %s | %s | %s | %s |" % (issue, target, measured, m))

	def small_note(met, ok):
		"""MET unless the run was smaller than the target's data set."""
		if met is None or ok:
			return met
		return "%s at this size; target stated for more data" % (
			"below the bound" if met else "**above the bound**")

	n_msgs = int(msgs[-1]) if msgs else 0
	if ratios_floor:
		t(3, "ingest of a later day's tar.gz ≤ 1.25 × `gzip -dc`",
		  "mv/gzip days 2–%d: median %.2f, worst %.2f" % (
			last, statistics.median(ratios_floor), worst_floor),
		  worst_floor <= 1.25)
	else:
		t(3, "ingest of a later day's tar.gz ≤ 1.25 × `gzip -dc`",
		  "-", None)
	t(3, "that ratio does not grow with the message count (100k)",
	  "%d messages in this run; needs a second run with "
	  "`BENCH_MESSAGES=100000`" % n_msgs, None)
	if size_mv and size_bt:
		t(3, "repository after %d days ≤ borg import-tar (zstd,3)" % last,
		  "%s vs %s: %.2f" % (mb(size_mv), mb(size_bt), size_mv / size_bt),
		  size_mv <= size_bt)
	if size_mv and int(uniq[1]):
		t(3, "repository ≤ 1.1 × `zstd -3` of the unique data",
		  "%s vs %s: %.2f" % (mb(size_mv), mb(int(uniq[1])),
				      size_mv / int(uniq[1])),
		  size_mv <= 1.1 * int(uniq[1]))
	ri = int(meta.get("reingest_mv", -1))
	t(3, "re-ingest of an unchanged day adds < 1 MiB",
	  "%d bytes (%s entries, same job name)" % (ri,
						    meta.get("tree_entries")),
	  0 <= ri < 1048576)
	if rss_mv is not None:
		t(3, "peak RSS during ingest < 256 MiB", mib(rss_mv),
		  rss_mv < 256 * 1024)
	ls = med(R.get("mount-ls", "mv"))
	lb = med(R.get("mount-ls-big", "mv"))
	lv = med(R.get("mount-ls-big-view", "mv"))
	nb = int(mmeta.get("mount_messages", 0) or 0)
	if lb is not None and lv is not None:
		worst = max(lb, lv)
		t(4, "mount → first ls of a mailbox < 100 ms (100k messages)",
		  "%s (maildir folder) / %s (folder of the view) at %d "
		  "messages; %s at the %d-message snapshot above" % (
			fmt_s(lb), fmt_s(lv), nb, fmt_s(ls), n_msgs),
		  small_note(worst < 0.1, nb >= 100000))
	else:
		t(4, "mount → first ls of a mailbox < 100 ms (100k messages)",
		  "%s at %d messages" % (fmt_s(ls), n_msgs),
		  small_note(None if ls is None else ls < 0.1,
			     n_msgs >= 100000))
	c = med(R.get("mount-cat", "mv"))
	t(4, "cold cat of one message < 5 ms (median)", fmt_s(c),
	  None if c is None else c < 0.005)
	fm, fb = med(R.get("mount-find", "mv")), med(R.get("mount-find", "borg"))
	t(4, "find over the snapshot ≥ 5× faster than borg mount (ratio ≤ 0.2)",
	  "%s vs %s: %s (%s entries)" % (fmt_s(fm), fmt_s(fb), ratio(fm, fb),
					 meta.get("tree_entries")),
	  None if fm is None or fb is None else fm / fb <= 0.2)
	rm_, be = med(R.get("mount-rsync", "mv")), med(R.get("restore",
								 "borg-tree"))
	t(4, "rsync -a from the mount ≤ `borg extract` (ratio ≤ 1)",
	  "%s vs %s: %s" % (fmt_s(rm_), fmt_s(be), ratio(rm_, be)),
	  None if rm_ is None or be is None else rm_ <= be)
	if bs:
		gbs = bigmb * 1048576 / bs[0] / 1e9
		t(4, "sequential read of a large file ≥ 1 GB/s (chunks cached)",
		  "%.2f GB/s" % gbs, gbs >= 1.0)
	else:
		t(4, "sequential read of a large file ≥ 1 GB/s (chunks cached)",
		  "-", None)
	rss = R.get("mount-rss", "mv")
	if rss:
		m = max(r["wall"] for r in rss)
		t(4, "mount RSS < 64 MiB + cache (default cache 128 MiB)",
		  "%s (largest of the runs)" % mib(m), m < (64 + 128) * 1024)
	if cc is not None:
		t(5, "cataloguing adds ≤ 10 % to a day's backup (with mail view / "
		  "`--no-mail`)", "day %d, median of %d alternating rounds: %.2f "
		  "(single pairs of days 2–%d: median %.2f, worst %.2f)" % (
			last, len(cc_a), cc, last,
			statistics.median(cat_ratios) if cat_ratios else 0,
			max(cat_ratios) if cat_ratios else 0), cc <= 1.10)
	elif cat_ratios:
		t(5, "cataloguing adds ≤ 10 % to a day's backup (with mail view / "
		  "`--no-mail`)", "days 2–%d: median %.2f, worst %.2f" % (
			last, statistics.median(cat_ratios), max(cat_ratios)),
		  statistics.median(cat_ratios) <= 1.10)
	else:
		t(5, "cataloguing adds ≤ 10 % to a day's backup", "-", None)
	ml = med(R.get("mail-ls", "mv"))
	nf = int(mmeta.get("mail_folder", 0) or 0)
	t(5, "listing a 10k-message folder of the view, cold, < 200 ms",
	  "%s through the mount (%d messages); `mailvault ls` %s" % (
		fmt_s(ml), nf, fmt_s(med(R.get("mail-ls-cli", "mv")))),
	  small_note(None if ml is None else ml < 0.2, nf >= 10000))
	mc = med(R.get("mail-cat", "mv"))
	t(5, "reading a 50 KB mailcow message through the view, decryption "
	  "included, < 5 ms", "%s (%s bytes, cold)" % (
		fmt_s(mc), mmeta.get("mail_msg_size", "?")),
	  None if mc is None else mc < 0.005)
	fq = [med(R.get("mail-find-" + q, "mv"))
	      for q in ("from", "subject", "deleted")]
	fc = [med(R.get("mail-find-%s-cold" % q, "mv"))
	      for q in ("from", "subject", "deleted")]
	cm = int(mmeta.get("cat_messages", 0) or 0)
	cd = int(mmeta.get("cat_days", 0) or 0)
	if all(x is not None for x in fq):
		t(5, "`mailvault find` over 365 snapshots / 100k messages "
		  "< 100 ms", "slowest of 3 queries %s warm, %s cold (%d "
		  "snapshots, %d messages)" % (
			fmt_s(max(fq)),
			fmt_s(max(fc)) if None not in fc else "-", cd, cm),
		  small_note(max(fq) < 0.1, cm >= 100000 and cd >= 365))
	else:
		t(5, "`mailvault find` over 365 snapshots / 100k messages "
		  "< 100 ms", "-", None)
	if r_bk:
		t(6, "backup into sftp://127.0.0.1 ≤ 1.5 × local",
		  "%.2f (%s vs %s, %d MB of mail)" % (
			r_bk[2], fmt_s(r_bk[1]), fmt_s(r_bk[0]),
			int(r_in[1]) if r_in else 0), r_bk[2] <= 1.5)
	else:
		t(6, "backup into sftp://127.0.0.1 ≤ 1.5 × local", "-", None)
	if r_cold:
		t(6, "cold read of one message from a mount of an sftp:// "
		  "repository < 100 ms", fmt_s(r_cold[1]), r_cold[1] < 0.1)
	else:
		t(6, "cold read of one message from a mount of an sftp:// "
		  "repository < 100 ms", "-", None)
	if r_rs:
		t(6, "full rsync from an sftp:// mount ≤ 2 × local",
		  "%.2f (%s vs %s)" % (r_rs[2], fmt_s(r_rs[1]), fmt_s(r_rs[0])),
		  r_rs[2] <= 2.0)
	else:
		t(6, "full rsync from an sftp:// mount ≤ 2 × local", "-", None)
	lcd = int(l_n[0]) if l_n else 0
	if l_mv and l_bg:
		t(9, "forget + prune of a year of dailies: wall time and peak RSS "
		  "side by side with `borg prune` + `borg compact`",
		  "%s vs %s (%s); peak RSS %s vs %s (%d dailies)" % (
			fmt_s(l_mv[0] + l_mv[2]), fmt_s(l_bg[0] + l_bg[2]),
			ratio(l_mv[0] + l_mv[2], l_bg[0] + l_bg[2]),
			mib(max(l_mv[1], l_mv[3])), mib(max(l_bg[1], l_bg[3])),
			lcd), "no bound stated; %s" % (
			"faster than borg" if l_mv[0] + l_mv[2] <
			l_bg[0] + l_bg[2] else "**slower than borg**"))
		t(9, "prune memory bounded: within the 256 MiB ingest budget",
		  mib(max(l_mv[1], l_mv[3])),
		  small_note(max(l_mv[1], l_mv[3]) < 256 * 1024, lcd >= 365))
	else:
		t(9, "forget + prune of a year of dailies vs borg prune + "
		  "compact", "-", None)
	if l_af:
		t(9, "repository after prune within 5 % of one that only held "
		  "the kept snapshots", "%.3f (%s vs %s, %d dailies)" % (
			l_af[2], mb(l_af[0]), mb(l_af[1]), lcd),
		  small_note(l_af[2] <= 1.05, lcd >= 365))
	else:
		t(9, "repository after prune within 5 % of one that only held "
		  "the kept snapshots", "-", None)
	w("")
	notes = os.path.join(os.path.dirname(os.path.abspath(__file__)),
			     "notes.md")
	if os.path.exists(notes):
		with open(notes) as f:
			w(f.read())
	with open(out, "w") as f:
		f.write("\n".join(L) + "\n")


if __name__ == "__main__":
	main()
