#!/usr/bin/env python3
"""cmpdigest.py: compare two listings of tests/lib/tree-digest.py.

Usage: cmpdigest.py WANT GOT
Prints "exact" when they are the same, else a one-line summary: how many
entries are missing, extra, or differ, by field, with a first example.
Exit status 0 when exact, 1 otherwise.
"""

import sys

FIELDS = ["type", "mode", "uid", "gid", "mtime", "size", "content", "xattrs",
	  "link"]


def load(p):
	d = {}
	with open(p, "rb") as f:
		for ln in f:
			v = ln.rstrip(b"\n").split(b" ")
			d[v[0]] = v[1:]
	return d


def main():
	want, got = load(sys.argv[1]), load(sys.argv[2])
	missing = [p for p in want if p not in got]
	extra = [p for p in got if p not in want]
	fields = {}
	example = {}
	for p, w in want.items():
		g = got.get(p)
		if g is None:
			continue
		for i, name in enumerate(FIELDS):
			if i < len(w) and (i >= len(g) or w[i] != g[i]):
				fields[name] = fields.get(name, 0) + 1
				example.setdefault(name, p.decode("ascii", "replace"))
	if not missing and not extra and not fields:
		print("exact (%d entries)" % len(want))
		return 0
	parts = []
	if missing:
		parts.append("%d missing (e.g. %s)" %
			     (len(missing), missing[0].decode("ascii", "replace")))
	if extra:
		parts.append("%d extra (e.g. %s)" %
			     (len(extra), extra[0].decode("ascii", "replace")))
	for name in FIELDS:
		if name in fields:
			parts.append("%s differs in %d (e.g. %s)" %
				     (name, fields[name], example[name]))
	print("DIFFERS: " + "; ".join(parts) + " of %d entries" % len(want))
	return 1


if __name__ == "__main__":
	sys.exit(main())
