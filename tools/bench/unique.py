#!/usr/bin/env python3
"""unique.py: the size of the unique data of all days, raw and zstd -3.

Usage: unique.py FIXTURE_DIR DAYS
Walks FIXTURE_DIR/day1 .. dayDAYS, keeps each distinct file content once
(by SHA-256, first seen in day and path order) and pipes those contents,
one after another, through `zstd -3`.  Prints "RAW ZSTD" in bytes: the
floor a deduplicating store with zstd level 3 can be judged against.
"""

import hashlib
import os
import subprocess
import sys


def main():
	top, days = sys.argv[1], int(sys.argv[2])
	z = subprocess.Popen(["sh", "-c", "zstd -3 -q -c | wc -c"],
			     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
	seen = set()
	raw = 0
	for d in range(1, days + 1):
		root = os.path.join(top, "day%d" % d)
		for dp, dirs, files in os.walk(root):
			dirs.sort()
			for n in sorted(files):
				p = os.path.join(dp, n)
				if os.path.islink(p) or not os.path.isfile(p):
					continue
				with open(p, "rb") as f:
					b = f.read()
				h = hashlib.sha256(b).digest()
				if h in seen:
					continue
				seen.add(h)
				raw += len(b)
				z.stdin.write(b)
	z.stdin.close()
	out = z.stdout.read().decode().strip()
	z.wait()
	print("%d %s" % (raw, out))


if __name__ == "__main__":
	main()
