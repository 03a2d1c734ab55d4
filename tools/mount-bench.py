#!/usr/bin/env python3
"""mount-bench.py: measure `mailvault mount` against issue 4's targets.

Usage (root, FUSE): mount-bench.py REPO NAME FOLDER [--mv BIN] [--big PATH]
                    [--samples N] [--skip rsync,find,...]

  REPO     repository (path or sftp:// URL)
  NAME     snapshot name (MOUNT/NAME/latest is read)
  FOLDER   a mailbox folder inside the snapshot, e.g.
           volume/example.org/dave/Maildir/cur
  --big    a large file inside the snapshot for the sequential read

Every measurement starts from a fresh mount and dropped kernel caches
(sync; echo 3 > /proc/sys/vm/drop_caches) unless said otherwise:
  mount+ls    mount, then the first `ls` of FOLDER (and the ls alone)
  cat         first cat of one message of FOLDER, median of N mounts
  find        find MOUNT/NAME/latest/ | wc -l
  rsync       rsync -a of the whole snapshot vs `mailvault restore`
  seqread     read of --big twice: cold, then with its chunks in the
              mount's cache (kernel page cache dropped in between)
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def drop():
    subprocess.run(["sync"])
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def now():
    return time.perf_counter()


class Mount:
    def __init__(self, mv, repo, opts):
        self.mv, self.repo, self.opts = mv, repo, opts
        self.dir = tempfile.mkdtemp(prefix="mvbench-mnt.")

    def up(self):
        t = now()
        subprocess.run([self.mv, "mount"] + self.opts + [self.repo, self.dir],
                       check=True)
        return now() - t

    def down(self):
        subprocess.run(["fusermount3", "-u", self.dir], check=False)
        for _ in range(100):
            if not os.path.ismount(self.dir):
                break
            time.sleep(0.05)

    def pid(self):
        out = subprocess.run(["pgrep", "-f", "mailvault mount.* " + self.dir],
                             capture_output=True, text=True).stdout.split()
        return int(out[0]) if out else None


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return 0


def main():
    args = sys.argv[1:]
    opt = {"--mv": "build/mailvault", "--big": None, "--samples": "15",
           "--skip": "", "--opts": ""}
    pos = []
    i = 0
    while i < len(args):
        if args[i] in opt:
            opt[args[i]] = args[i + 1]
            i += 2
        else:
            pos.append(args[i])
            i += 1
    repo, name, folder = pos
    mv = os.path.abspath(opt["--mv"])
    skip = opt["--skip"].split(",")
    m = Mount(mv, repo, opt["--opts"].split() if opt["--opts"] else [])
    top = os.path.join(m.dir, name, "latest")
    res = {}
    try:
        # mount and first ls of a folder
        if "ls" not in skip:
            drop()
            t0 = now()
            m.up()
            t1 = now()
            names = os.listdir(os.path.join(top, folder))
            t2 = now()
            res["mount+ls ms"] = (t2 - t0) * 1000
            res["ls ms"] = (t2 - t1) * 1000
            m.down()
        else:
            m.up()
            names = os.listdir(os.path.join(top, folder))
            m.down()
        names = sorted(n for n in names)
        # cold cat of one message, each on a fresh mount
        if "cat" not in skip:
            n = int(opt["--samples"])
            step = max(1, len(names) // n)
            for when in ("before", "after"):
                times = []
                for k in range(n):
                    path = os.path.join(top, folder,
                                        names[(k * step) % len(names)])
                    if when == "before":
                        drop()
                    m.up()
                    if when == "after":
                        drop()
                    t = now()
                    with open(path, "rb") as f:
                        while f.read(1 << 20):
                            pass
                    times.append((now() - t) * 1000)
                    m.down()
                key = "cold cat, caches dropped %s mount, ms" % when
                res[key + " median"] = statistics.median(times)
                res[key + " min/max"] = "%.1f/%.1f" % (min(times), max(times))
            # warm index and trees, cold message: the same mount
            m.up()
            with open(os.path.join(top, folder, names[0]), "rb") as f:
                f.read()
            times = []
            for k in range(1, n + 1):
                path = os.path.join(top, folder, names[(k * step) % len(names)])
                t = now()
                with open(path, "rb") as f:
                    while f.read(1 << 20):
                        pass
                times.append((now() - t) * 1000)
            res["first cat in a listed folder ms median"] = \
                statistics.median(times)
            m.down()
        if "find" not in skip:
            m.up()
            drop()
            t = now()
            out = subprocess.run("find %s/ | wc -l" % top, shell=True,
                                 capture_output=True, text=True).stdout
            res["find s"] = now() - t
            res["find entries"] = int(out)
            m.down()
        if "rsync" not in skip:
            dest = tempfile.mkdtemp(prefix="mvbench-dst.")
            m.up()
            drop()
            t = now()
            subprocess.run(["rsync", "-a", top + "/", dest + "/r/"],
                           check=True)
            res["rsync -a s"] = now() - t
            res["mount RSS after rsync MiB"] = rss_mib(m.pid())
            m.down()
            drop()
            t = now()
            subprocess.run([mv, "restore", repo, name + "/latest:",
                            dest + "/x"], check=True,
                           stdout=subprocess.DEVNULL)
            res["restore s"] = now() - t
            shutil.rmtree(dest)
        if opt["--big"] and "seqread" not in skip:
            big = os.path.join(top, opt["--big"])
            m.up()
            drop()
            size = os.stat(big).st_size
            for what in ("cold", "cached"):
                if what == "cached":
                    with open("/proc/sys/vm/drop_caches", "w") as f:
                        f.write("1\n")
                t = now()
                with open(big, "rb", buffering=0) as f:
                    while f.read(1 << 20):
                        pass
                res["seq read %s MB/s" % what] = size / (now() - t) / 1e6
            m.down()
    finally:
        m.down()
        os.rmdir(m.dir)
    for k, v in res.items():
        print("%-42s %s" % (k, "%.3f" % v if isinstance(v, float) else v))


main()
