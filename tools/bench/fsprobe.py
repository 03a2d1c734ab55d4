#!/usr/bin/env python3
"""fsprobe.py: in-process timings for mounts, where spawning a timer costs
more than the thing measured.

  fsprobe.py mount-ls [-t SECS] PIDFILE LOG DIR -- MOUNTCMD...
      Start MOUNTCMD in the background (own process group, output to LOG,
      its pid written to PIDFILE) and list DIR until that succeeds.
      Prints the seconds from the start of MOUNTCMD to the end of the
      first successful listing and the number of names listed.
  fsprobe.py list [-t SECS] DIR
      List DIR and lstat every name in it (what `ls -l` does).  Prints
      the seconds and the number of names.
  fsprobe.py read [-t SECS] FILE...
      Open and read each FILE to its end (1 MiB reads).  Prints the
      seconds and the bytes read.

A result of "timeout" means SECS passed first (a hung mount: the caller
kills the mount).  Exit status 0 when measured, 1 otherwise.
"""

import os
import signal
import sys
import time


def die_timeout(signum, frame):
	print("timeout")
	sys.stdout.flush()
	os._exit(1)


def mount_ls(limit, pidfile, log, d, cmd):
	fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
	nul = os.open(os.devnull, os.O_RDONLY)
	t0 = time.monotonic()
	pid = os.posix_spawnp(cmd[0], cmd, os.environ,
			      file_actions=[(os.POSIX_SPAWN_DUP2, nul, 0),
					    (os.POSIX_SPAWN_DUP2, fd, 1),
					    (os.POSIX_SPAWN_DUP2, fd, 2)],
			      setpgroup=0)
	with open(pidfile, "w") as f:
		f.write("%d\n" % pid)
	while True:
		try:
			names = os.listdir(d)
			break
		except OSError:
			pass
		time.sleep(0.001)
	print("%.6f\t%d" % (time.monotonic() - t0, len(names)))
	return 0


def list_dir(d):
	t0 = time.monotonic()
	names = os.listdir(d)
	for n in names:
		os.lstat(os.path.join(d, n))
	print("%.6f\t%d" % (time.monotonic() - t0, len(names)))
	return 0


def read(files):
	t0 = time.monotonic()
	n = 0
	for p in files:
		with open(p, "rb", buffering=0) as f:
			while True:
				b = f.read(1 << 20)
				if not b:
					break
				n += len(b)
	print("%.6f\t%d" % (time.monotonic() - t0, n))
	return 0


def main():
	args = sys.argv[1:]
	if not args:
		sys.exit(__doc__)
	what = args.pop(0)
	limit = 300.0
	if args[:1] == ["-t"]:
		limit = float(args[1])
		args = args[2:]
	signal.signal(signal.SIGALRM, die_timeout)
	signal.alarm(int(limit) + 1)
	if what == "mount-ls":
		if len(args) < 5 or args[3] != "--":
			sys.exit(__doc__)
		return mount_ls(limit, args[0], args[1], args[2], args[4:])
	if what == "list" and len(args) == 1:
		return list_dir(args[0])
	if what == "read":
		return read(args)
	sys.exit(__doc__)


if __name__ == "__main__":
	sys.exit(main())
