#!/usr/bin/env python3
"""leakscan.py: look for held-back strings in every byte of a directory.

Usage: leakscan.py STRINGS.json DIR... [--report FILE]

STRINGS.json is a list of {"kind": K, "hex": HEX} (the string's bytes in
hex, so binary strings work too).  Every regular file under each DIR is
read whole and searched, as is every "view" decoded from it:

  - the file itself,
  - the whole file through `zstd -dc` (a file that is one zstd stream),
  - the tail from every zstd frame magic (28 b5 2f fd) found in the file,
    through `zstd -dc` (input and output capped), without and with each
    zstd dictionary (magic 37 a4 30 ec) found anywhere in the scanned
    files and each one built into the program (src/store/ptree_dict_*.zdict,
    which directory nodes are compressed with), since a record compressed
    with a dictionary decodes only with it.

In each view each string is searched raw, lower-cased and upper-cased,
and as base64 in its three alignments (the string preceded by 0, 1 and
2 bytes, encoded, with the characters that depend on the neighbouring
bytes trimmed off both ends).

Prints one line per finding:
  FOUND kind=K string=S file=F offset=N view=V as=ENC
and a summary line "leakscan: N findings (kinds: ...)"; with --report,
the kinds found, one a line, go to FILE.  Exits 0 whatever it finds: the
caller decides whether findings are a failure (an encrypted repository)
or required (an unencrypted one, proving the scanner works).
"""
import base64
import json
import os
import subprocess
import sys

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
DICT_MAGIC = b"\x37\xa4\x30\xec"
IN_CAP = 8 << 20  # bytes of a tail handed to zstd
OUT_CAP = 32 << 20  # decoded bytes kept from one frame
DICT_CAP = 256 << 10  # bytes taken from a dictionary magic on


def zstd_decode(data, dict_path=None):
    cmd = ["zstd", "-dcq", "--no-progress"]
    if dict_path:
        cmd += ["-D", dict_path]
    try:
        p = subprocess.run(cmd, input=data[:IN_CAP], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, timeout=20)
    except subprocess.TimeoutExpired:
        return b""
    # a frame followed by other bytes exits non-zero after writing the
    # frame's content: keep what was written
    return p.stdout[:OUT_CAP]


def b64_variants(s):
    out = []
    n = len(s)
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + s).rstrip(b"=")
        lo = (8 * k + 5) // 6  # characters touching the prefix
        hi = (8 * (k + n)) // 6  # characters made of the string's bits only
        if hi - lo >= 8:
            out.append(("base64+%d" % k, enc[lo:hi]))
    return out


def needles(entries):
    res = []
    for e in entries:
        s = bytes.fromhex(e["hex"])
        forms = [("raw", s)]
        if s.lower() != s:
            forms.append(("lower", s.lower()))
        if s.upper() != s:
            forms.append(("upper", s.upper()))
        forms += b64_variants(s)
        res.append((e["kind"], s, forms))
    return res


def files_under(dirs):
    for d in dirs:
        for root, _subdirs, names in os.walk(d):
            for name in sorted(names):
                p = os.path.join(root, name)
                if os.path.isfile(p) and not os.path.islink(p):
                    yield d, p


def main():
    args = sys.argv[1:]
    report = None
    if "--report" in args:
        i = args.index("--report")
        report = args[i + 1]
        del args[i:i + 2]
    if len(args) < 2:
        sys.exit("usage: leakscan.py STRINGS.json DIR... [--report FILE]")
    with open(args[0]) as f:
        ns = needles(json.load(f))
    dirs = args[1:]
    contents = []
    for d, p in files_under(dirs):
        with open(p, "rb") as f:
            contents.append((os.path.relpath(p, os.path.dirname(d)),
                             f.read()))
    # dictionaries anywhere, in the files or in what their frames decode to
    tmpdir = os.environ.get("TMPDIR", "/tmp")
    views = []
    for name, data in contents:
        views.append((name, "file", data))
        whole = zstd_decode(data) if data[:4] == ZSTD_MAGIC else b""
        if whole:
            views.append((name, "zstd(file)", whole))
        at = data.find(ZSTD_MAGIC, 1 if whole else 0)
        while at >= 0:
            dec = zstd_decode(data[at:])
            views.append((name, "zstd@%d" % at, dec if dec else None,
                          data[at:]))
            at = data.find(ZSTD_MAGIC, at + 1)
    dicts = []
    for v in views:
        data = v[2]
        if not data:
            continue
        at = data.find(DICT_MAGIC)
        while at >= 0 and len(dicts) < 64:
            dp = os.path.join(tmpdir, "leakscan-dict-%d-%d" % (os.getpid(),
                                                             len(dicts)))
            with open(dp, "wb") as f:
                f.write(data[at:at + DICT_CAP])
            dicts.append(dp)
            at = data.find(DICT_MAGIC, at + 1)
    builtin = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "..", "..", "src", "store")
    own = [os.path.join(builtin, n) for n in sorted(os.listdir(builtin))
           if n.startswith("ptree_dict_") and n.endswith(".zdict")]
    final = []
    undecoded = 0
    for v in views:
        if v[2] is not None:
            final.append(v[:3])
            continue
        got = b""
        for dp in dicts + own:
            got = zstd_decode(v[3], dp)
            if got:
                final.append((v[0], v[1] + "+dict", got))
                break
        if not got:
            undecoded += 1
    for dp in dicts:
        os.unlink(dp)
    findings = []
    for name, how, data in final:
        for kind, s, forms in ns:
            for enc, pat in forms:
                at = data.find(pat)
                if at >= 0:
                    findings.append((kind, s, name, at, how, enc))
    kinds = sorted({f[0] for f in findings})
    for kind, s, name, at, how, enc in findings:
        print("FOUND kind=%s string=%r file=%s offset=%d view=%s as=%s" %
              (kind, s.decode("latin-1"), name, at, how, enc))
    print("leakscan: %d files, %d views (%d zstd frames undecoded), "
          "%d dictionaries, %d strings: %d findings (kinds: %s)" %
          (len(contents), len(final), undecoded, len(dicts), len(ns),
           len(findings), ",".join(kinds) or "none"))
    if report:
        with open(report, "w") as f:
            for k in kinds:
                f.write(k + "\n")


if __name__ == "__main__":
    main()
