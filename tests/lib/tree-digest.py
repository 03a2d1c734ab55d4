#!/usr/bin/env python3
"""tree-digest.py: a full, comparable listing of a directory tree.

Usage: tree-digest.py [-x FIELD,...] [--no-root] DIR

One line per entry, sorted by path (bytes), fields separated by a space:
  path type mode uid gid mtime size content xattrs link
    path    relative to DIR ("." for DIR itself), byte-escaped: bytes
            outside 0x21-0x7e and the backslash become \\xHH
    type    f d l p c b s
    mode    permission bits in octal (with setuid/setgid/sticky)
    mtime   seconds.nanoseconds
    size    bytes for files and symlinks, "-" for directories,
            major,minor for devices
    content sha256 of a file, the escaped target of a symlink, else "-"
    xattrs  name=hexvalue joined by ",", sorted (every namespace the
            caller can see, POSIX ACLs included), or "-"
    link    for a hard-linked file with more than one name in the tree,
            the first of those names in path order, else "-"
Two trees that print the same are the same in bytes and metadata.
-x drops fields from the listing (e.g. -x uid,gid or -x dirmtime, which
blanks the mtime of directories only); fields: type mode uid gid mtime
dirmtime size content xattrs link.
"""

import hashlib
import os
import stat
import sys

FIELDS = ["type", "mode", "uid", "gid", "mtime", "size", "content", "xattrs",
	  "link"]


def esc(b):
	out = []
	for c in b:
		if 0x21 <= c <= 0x7E and c != 0x5C:
			out.append(chr(c))
		else:
			out.append("\\x%02x" % c)
	return "".join(out) or "\\x"


def sha256(path):
	h = hashlib.sha256()
	with open(path, "rb") as f:
		while True:
			b = f.read(1 << 20)
			if not b:
				break
			h.update(b)
	return h.hexdigest()


def xattrs(path):
	try:
		names = os.listxattr(path, follow_symlinks=False)
	except OSError:
		return "-"
	out = []
	for n in sorted(names):
		try:
			v = os.getxattr(path, n, follow_symlinks=False)
		except OSError as e:
			v = ("<error %d>" % e.errno).encode()
		out.append("%s=%s" % (esc(n.encode()), v.hex()))
	return ",".join(out) or "-"


def walk(top):
	"""Yield (relative bytes path, full path) for every entry."""
	yield b".", top
	stack = [b""]
	while stack:
		rel = stack.pop()
		d = os.path.join(top, rel) if rel else top
		with os.scandir(d) as it:
			for e in it:
				r = os.path.join(rel, e.name) if rel else e.name
				yield r, os.path.join(top, r)
				if e.is_dir(follow_symlinks=False):
					stack.append(r)


def main(argv):
	drop = set()
	root = True
	args = []
	i = 0
	while i < len(argv):
		a = argv[i]
		if a == "-x":
			i += 1
			drop.update(argv[i].split(","))
		elif a.startswith("-x"):
			drop.update(a[2:].split(","))
		elif a == "--no-root":
			root = False
		else:
			args.append(a)
		i += 1
	if len(args) != 1:
		print(__doc__, file=sys.stderr)
		return 2
	top = os.fsencode(args[0])
	entries = []
	inodes = {}
	for rel, full in walk(top):
		if rel == b"." and not root:
			continue
		st = os.lstat(full)
		entries.append((rel, full, st))
		if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
			inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
	entries.sort(key=lambda e: e[0])
	for k in inodes:
		inodes[k].sort()
	out = sys.stdout
	for rel, full, st in entries:
		m = st.st_mode
		f = {}
		if stat.S_ISREG(m):
			f["type"] = "f"
			f["size"] = str(st.st_size)
			f["content"] = sha256(full)
		elif stat.S_ISDIR(m):
			f["type"] = "d"
			f["size"] = "-"
			f["content"] = "-"
		elif stat.S_ISLNK(m):
			f["type"] = "l"
			f["size"] = str(st.st_size)
			f["content"] = esc(os.readlink(full))
		else:
			f["type"] = ("p" if stat.S_ISFIFO(m) else
				     "c" if stat.S_ISCHR(m) else
				     "b" if stat.S_ISBLK(m) else
				     "s" if stat.S_ISSOCK(m) else "?")
			f["size"] = "%d,%d" % (os.major(st.st_rdev),
					       os.minor(st.st_rdev)) \
				if stat.S_ISCHR(m) or stat.S_ISBLK(m) else "-"
			f["content"] = "-"
		f["mode"] = "%04o" % stat.S_IMODE(m)
		f["uid"] = str(st.st_uid)
		f["gid"] = str(st.st_gid)
		f["mtime"] = "%d.%09d" % (st.st_mtime_ns // 10**9,
					  st.st_mtime_ns % 10**9)
		if "dirmtime" in drop and f["type"] == "d":
			f["mtime"] = "-"
		f["xattrs"] = xattrs(full)
		grp = inodes.get((st.st_dev, st.st_ino))
		f["link"] = esc(grp[0]) if grp and len(grp) > 1 and \
			f["type"] == "f" else "-"
		line = [esc(rel) if rel != b"." else "."]
		line += [f[k] for k in FIELDS if k not in drop]
		out.write(" ".join(line) + "\n")
	return 0


if __name__ == "__main__":
	sys.exit(main(sys.argv[1:]))
