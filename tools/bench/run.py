#!/usr/bin/env python3
"""run.py: time one command the way `/usr/bin/time -f '%e %U %S %M'` does.

Usage: run.py [-C DIR] [-o OUT] [-e ERR] [-t SECONDS] [-a RESULTS -k KEY] CMD...

Runs CMD under /usr/bin/time -f '%U %S %M' (so the peak RSS is CMD's own,
measured like GNU time does) with stdin /dev/null, stdout to OUT or /dev/null, stderr to ERR or
/dev/null, in DIR), waits for it with wait4() and prints one line:
  WALL USER SYS MAXRSS_KIB STATUS
WALL in seconds with microseconds (GNU time only has 10 ms), USER/SYS the
CPU seconds of CMD and every descendant it waited for, MAXRSS the largest
resident set among them (KiB), STATUS "ok", "exit=N", or "timeout" when
CMD ran longer than SECONDS (its whole process group is then killed).
With -a RESULTS the line is appended to RESULTS prefixed by KEY (fields
separated by tabs).  The exit status is 0 whatever CMD did.
"""

import os
import signal
import sys
import time


def main():
	args = sys.argv[1:]
	cwd = None
	out = err = os.devnull
	limit = None
	results = key = None
	while args and args[0].startswith("-") and len(args) > 1:
		opt = args.pop(0)
		if opt == "--":
			break
		val = args.pop(0)
		if opt == "-C":
			cwd = val
		elif opt == "-o":
			out = val
		elif opt == "-e":
			err = val
		elif opt == "-t":
			limit = float(val)
		elif opt == "-a":
			results = val
		elif opt == "-k":
			key = val
		else:
			sys.exit("run.py: unknown option " + opt)
	if not args:
		sys.exit(__doc__)
	t0 = time.monotonic()
	# posix_spawn (vfork): the child's peak RSS is CMD's, not a copy of ours
	if cwd:
		args = ["sh", "-c", 'cd "$0" && exec "$@"', cwd] + args
	actions = [
		(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
		(os.POSIX_SPAWN_OPEN, 1, out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
		 0o644),
		(os.POSIX_SPAWN_OPEN, 2, err, os.O_WRONLY | os.O_CREAT | os.O_APPEND,
		 0o644),
	]
	tfile = "%s/.run-py-%d" % (os.environ.get("TMPDIR", "/tmp"), os.getpid())
	args = ["/usr/bin/time", "-f", "%U %S %M", "-o", tfile] + args
	try:
		pid = os.posix_spawnp(args[0], args, os.environ, file_actions=actions,
				      setpgroup=0)
	except OSError as e:
		line = "0\t0\t0\t0\tcannot-run"
		sys.stderr.write("run.py: %s: %s\n" % (args[0], e))
		if results:
			with open(results, "a") as f:
				f.write((key + "\t" if key else "") + line + "\n")
		print(line)
		return
	status = "ok"
	while True:
		wpid, wst, ru = os.wait4(pid, os.WNOHANG)
		if wpid == pid:
			break
		if limit is not None and time.monotonic() - t0 > limit:
			status = "timeout"
			try:
				os.killpg(pid, signal.SIGKILL)
			except OSError:
				pass
			wpid, wst, ru = os.wait4(pid, 0)
			break
		time.sleep(0.0005 if time.monotonic() - t0 < 0.1 else 0.01)
	wall = time.monotonic() - t0
	if status == "ok":
		if os.WIFSIGNALED(wst):
			status = "signal=%d" % os.WTERMSIG(wst)
		elif os.WEXITSTATUS(wst) != 0:
			status = "exit=%d" % os.WEXITSTATUS(wst)
	utime, stime, rss = ru.ru_utime, ru.ru_stime, 0
	try:
		with open(tfile) as f:
			last = f.read().split("\n")
		os.unlink(tfile)
		for ln in last:
			v = ln.split()
			if len(v) == 3 and not ln.startswith("Command"):
				utime, stime, rss = float(v[0]), float(v[1]), int(v[2])
	except (OSError, ValueError):
		pass
	line = "%.6f\t%.2f\t%.2f\t%d\t%s" % (wall, utime, stime, rss, status)
	if results:
		with open(results, "a") as f:
			f.write((key + "\t" if key else "") + line + "\n")
	print(line)


if __name__ == "__main__":
	main()
