#!/usr/bin/env python3
"""imap_fixture: a small Dovecot maildir with known flags, keywords and
delivery times, and a reader that checks what an IMAP server holds against
it (tests t5021, t5022; tools/bench/imap.sh).

  imap_fixture.py make DIR [--bulk N]
      DIR/example.org/alice/Maildir/... and DIR/manifest.json: one entry per
      message: mailbox (view path), base, file, flags (IMAP names),
      keywords, mtime.  --bulk N: only N plain messages in INBOX.
  imap_fixture.py check --port P --ca CERT --user U --password PW
          --manifest M --map SRC=DST [--map ...] [--pick BASE] [--deleted]
          [--exact] [--no-keywords]
      Every message of the manifest whose mailbox is SRC or below it (and,
      with --pick, whose base is BASE) must be in DST (the rest of its
      mailbox path kept) exactly once: bytes (CRLF line ends), flags,
      keywords (unless --no-keywords) and INTERNALDATE equal.  With --exact
      the DST folders hold nothing else but empty messages.  Prints what differs; exit 1 when anything does.
  imap_fixture.py fetch --port P --ca CERT --user U --password PW FOLDER N
      Message N of FOLDER to stdout (for the browse test).
"""
import argparse
import base64
import collections
import datetime
import hashlib
import imaplib
import json
import os
import re
import ssl
import sys

BASE_TIME = 1714564800  # 2024-05-01 12:00:00 UTC


def mutf7(s):
    out, buf = [], ""

    def flush():
        nonlocal buf
        if buf:
            b = base64.b64encode(buf.encode("utf-16-be")).decode()
            out.append("&" + b.rstrip("=").replace("/", ",") + "-")
            buf = ""

    for ch in s:
        if 0x20 <= ord(ch) < 0x7F:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf += ch
    flush()
    return "".join(out)


def message(i, subject, msgid=True, crlf=False, body=None):
    lines = [
        "From: Alice Example <alice@example.org>",
        "To: Bob <bob@example.org>",
        "Subject: %s" % subject,
        "Date: Wed, 01 May 2024 %02d:%02d:00 +0000" % (8 + i // 60, i % 60),
    ]
    if msgid:
        lines.append("Message-ID: <fixture-%d@example.org>" % i)
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
              "", body or ("Message %d, about %s.\nSecond line.\n" % (i, subject))]
    text = "\n".join(lines)
    if crlf:
        text = text.replace("\n", "\r\n")
    return text.encode()


# (mailbox, maildir dir, name suffix, flags, keywords, message args)
FOLDERS = {"INBOX": "", "Archive": ".Archive", "Archive/2024": ".Archive.2024",
           "Gelöscht": "." + "Gel&APY-scht", "Broken": ".Broken"}
KEYWORDS = {"INBOX": ["Important", "$Junk"], "Archive": ["Project-X"]}


def make(args):
    root = os.path.join(args.dir, "example.org", "alice", "Maildir")
    manifest = []
    n = [0]

    def put(mailbox, info, data, new=False, flags=(), keywords=(), t=None):
        n[0] += 1
        folder = os.path.join(root, FOLDERS[mailbox]) if FOLDERS[mailbox] else root
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(folder, sub), exist_ok=True)
        base = "%d.M%dP1.fixture" % (BASE_TIME + n[0] * 3600, n[0])
        name = base + ",S=%d" % len(data) + ("" if new else ":2," + info)
        path = os.path.join(folder, "new" if new else "cur", name)
        with open(path, "wb") as f:
            f.write(data)
        when = t if t is not None else BASE_TIME + n[0] * 3600
        os.utime(path, (when, when))
        manifest.append({"mailbox": mailbox, "base": base,
                         "file": os.path.relpath(path, args.dir),
                         "flags": sorted(flags), "keywords": sorted(keywords),
                         "mtime": when})

    if args.bulk:
        for i in range(args.bulk):
            put("INBOX", "S", message(i, "bulk message %d" % i),
                flags=["\\Seen"], t=BASE_TIME + i)
    else:
        for mb, kws in KEYWORDS.items():
            d = os.path.join(root, FOLDERS[mb]) if FOLDERS[mb] else root
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "dovecot-keywords"), "w") as f:
                for k, kw in enumerate(kws):
                    f.write("%d %s\n" % (k, kw))
        put("INBOX", "S", message(1, "seen"), flags=["\\Seen"])
        put("INBOX", "RSa", message(2, "answered and important"),
            flags=["\\Answered", "\\Seen"], keywords=["Important"])
        put("INBOX", "", message(3, "still new"), new=True)
        put("INBOX", "FPS", message(4, "flagged, forwarded, CRLF", crlf=True),
            flags=["\\Flagged", "\\Seen"], keywords=["$Forwarded"])
        put("INBOX", "ST", message(5, "trashed"),
            flags=["\\Seen", "\\Deleted"])
        put("INBOX", "Db", message(6, "draft without id", msgid=False),
            flags=["\\Draft"], keywords=["$Junk"])
        put("Archive", "Sa", message(7, "archived project"),
            flags=["\\Seen"], keywords=["Project-X"])
        put("Archive", "", message(8, "archived, no flags"))
        put("Archive/2024", "S", message(9, "deep in the archive"),
            flags=["\\Seen"])
        # the same bytes as INBOX's first message, in another folder
        put("Archive/2024", "F", message(1, "seen"), flags=["\\Flagged"])
        put("Gelöscht", "S", message(10, "umlaut folder"), flags=["\\Seen"])
        put("Broken", "S", b"", flags=["\\Seen"])
        put("Broken", "S", message(11, "beside a broken one"),
            flags=["\\Seen"])
    with open(os.path.join(args.dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)


def connect(a):
    ctx = ssl.create_default_context(cafile=a.ca)
    m = imaplib.IMAP4_SSL("127.0.0.1", a.port, ssl_context=ctx)
    m.login(a.user, a.password)
    return m


def parse_date(s):
    return int(datetime.datetime.strptime(s, "%d-%b-%Y %H:%M:%S %z").timestamp())


def folder_messages(m, folder):
    typ, _ = m.select('"%s"' % mutf7(folder), readonly=True)
    if typ != "OK":
        return None
    typ, data = m.fetch("1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
    if typ != "OK" or data == [None]:
        return []
    out = []
    for item in data:
        if not isinstance(item, tuple):
            continue
        head, body = item
        head = head.decode()
        flags = re.search(r"FLAGS \(([^)]*)\)", head).group(1).split()
        date = re.search(r'INTERNALDATE "([^"]+)"', head).group(1)
        out.append((tuple(sorted(f for f in flags if f != "\\Recent")),
                    parse_date(date), hashlib.sha256(body).hexdigest(), len(body)))
    return out


def check(a):
    with open(a.manifest) as f:
        manifest = json.load(f)
    maps = [x.split("=", 1) for x in a.map]
    want = collections.defaultdict(collections.Counter)
    for e in manifest:
        if a.pick and e["base"] != a.pick:
            continue
        for src, dst in maps:
            mb = e["mailbox"]
            if src and mb != src and not mb.startswith(src + "/"):
                continue
            rest = mb[len(src):].lstrip("/") if src else mb
            target = "/".join(x for x in (dst, rest) if x) or "INBOX"
            with open(os.path.join(os.path.dirname(a.manifest), e["file"]), "rb") as f:
                data = f.read()
            if not data:
                continue  # the server refuses an empty message
            data = re.sub(rb"(?<!\r)\n", b"\r\n", data)
            flags = [x for x in e["flags"] if x != "\\Deleted" or a.deleted]
            if not a.no_keywords:
                flags += e["keywords"]
            want[target][(tuple(sorted(flags)), e["mtime"],
                          hashlib.sha256(data).hexdigest(), len(data))] += 1
            break
    m = connect(a)
    bad = 0
    total = 0
    for folder, exp in sorted(want.items()):
        got = folder_messages(m, folder)
        if got is not None:
            # an empty message is never restored; the browse recipe shows it
            got = [g for g in got if g[3]]
            if a.no_keywords:
                got = [(tuple(f for f in g[0] if f.startswith("\\")),) + g[1:]
                       for g in got]
        if got is None:
            print("folder %s: missing" % folder)
            bad += 1
            continue
        gotc = collections.Counter(got)
        for k in exp:
            if gotc[k] != exp[k]:
                print("folder %s: %d x %s expected, %d there" % (folder, exp[k], k, gotc[k]))
                bad += 1
        if a.exact:
            for k in gotc:
                if k not in exp:
                    print("folder %s: unexpected %d x %s" % (folder, gotc[k], k))
                    bad += 1
        total += sum(exp.values())
    m.logout()
    print("checked %d messages in %d folders, %d differences" % (total, len(want), bad))
    return 1 if bad or not total else 0


def fetch(a):
    m = connect(a)
    typ, _ = m.select('"%s"' % mutf7(a.folder), readonly=True)
    if typ != "OK":
        print("cannot select %s" % a.folder, file=sys.stderr)
        return 1
    typ, data = m.fetch(str(a.n), "(BODY.PEEK[])")
    if typ != "OK" or not data or not isinstance(data[0], tuple):
        print("cannot fetch %s %d" % (a.folder, a.n), file=sys.stderr)
        return 1
    sys.stdout.buffer.write(data[0][1])
    m.logout()
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make")
    mk.add_argument("dir")
    mk.add_argument("--bulk", type=int, default=0)
    for name in ("check", "fetch"):
        c = sub.add_parser(name)
        c.add_argument("--port", type=int, required=True)
        c.add_argument("--ca", required=True)
        c.add_argument("--user", required=True)
        c.add_argument("--password", required=True)
        if name == "check":
            c.add_argument("--manifest", required=True)
            c.add_argument("--map", action="append", required=True)
            c.add_argument("--pick")
            c.add_argument("--deleted", action="store_true")
            c.add_argument("--exact", action="store_true")
            c.add_argument("--no-keywords", action="store_true")
        else:
            c.add_argument("folder")
            c.add_argument("n", type=int)
    a = p.parse_args()
    if a.cmd == "make":
        make(a)
        return 0
    return check(a) if a.cmd == "check" else fetch(a)


if __name__ == "__main__":
    sys.exit(main())
