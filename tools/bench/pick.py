#!/usr/bin/env python3
"""pick.py: choose what the mount benchmarks open in a day's tree.

Usage: pick.py DIR
Prints two lines: the mailbox directory (relative to DIR) with the most
messages, and in it the message whose size is closest to 4 KiB (a typical
short mail; the first by name among equals).
"""

import os
import sys


def main():
	top = sys.argv[1]
	best = None
	for d, dirs, files in os.walk(top):
		dirs.sort()
		if os.path.basename(d) == "cur":
			if best is None or len(files) > best[0]:
				best = (len(files), d, sorted(files))
	if best is None:
		sys.exit("pick.py: no Maildir cur/ under " + top)
	_, d, files = best
	msg = min(files, key=lambda n: (abs(os.path.getsize(
		os.path.join(d, n)) - 4096), n))
	print(os.path.relpath(d, top))
	print(msg)


if __name__ == "__main__":
	main()
