#!/usr/bin/env python3
"""gen_stalwart.py: write a Stalwart account export as `stalwart-cli export
account` (v0.3-v0.15) leaves it, for the tests.

Follows ../shared/formats.md section 1: the five JSON files are compact
(serde_json::to_string, one line, no trailing newline), key order is the
jmap-client struct order, blob files are the raw messages under
blobs/<blobId>, blob ids are base32 (alphabet abcdefghijklmnopqrstuvwxyz792013,
no padding) of 0x10 | BLAKE3(content) | LEB128 account | collection |
LEB128 document, object ids are the same base32 of (prefix << 32) | document
with leading zero groups dropped.  BLAKE3 comes from b3sum (Debian b3sum).

Usage:
  gen_stalwart.py --out DIR [--account NAME] [--variant acl|sharewith]
                  [--messages N] [--seed S] [--cut-emails] [--missing-blob]
                  [--manifest FILE]

  --out DIR         the export path: DIR/<account>/ is written (DIR created)
  --account NAME    account name (default john)
  --variant V       acl: sharing as "acl" (<= v0.13.3); sharewith: as
                    "shareWith" (v0.13.4+)  (default sharewith)
  --messages N      emails (default 12, at least 4)
  --cut-emails      cut emails.json in the middle of an element, as an export
                    interrupted while writing it
  --missing-blob    delete the blob file of one email (the last one)
  --dump            write a server dump (`stalwart --export DIR`, v0.15+)
                    into DIR instead: subspace_t (the messages, key =
                    BLAKE3, value = raw message), subspace_p and subspace_i
                    (opaque), each one LZ4 frame (the lz4 tool) of 0x7B,
                    the letter, u32 LE schema version 5, then LEB128
                    key/value records
  --corrupt-dump    with --dump: damage subspace_t's frame in its second half
  --manifest FILE   write what the export holds as JSON (per email: id,
                    blobId, mailboxes (paths), keywords, receivedAt, subject,
                    messageId, listed (false when cut off), blob (false when
                    missing)); the tests compare the backup's view with it

Mailboxes: Inbox (role inbox), Sent, Drafts, Trash "Gelöschte Objekte" (a
non-ASCII name), Archive, Archive/2024 (shared: acl or shareWith), Projects,
Projects/a.b (a dot in the name).  Email 0 sits in Inbox and Archive/2024;
keywords cycle through $seen, $flagged, $answered, $draft and a custom
keyword.  One sieve script (a blob too), one identity, a vacation response
with null dates.
"""
import argparse
import json
import os
import random
import subprocess
import sys

ALPHABET = "abcdefghijklmnopqrstuvwxyz792013"


def b32_bytes(data):
    """Base32 of a byte string, MSB first, no padding."""
    bits = 0
    nbits = 0
    out = []
    for byte in data:
        bits = (bits << 8) | byte
        nbits += 8
        while nbits >= 5:
            nbits -= 5
            out.append(ALPHABET[(bits >> nbits) & 31])
    if nbits:
        out.append(ALPHABET[(bits << (5 - nbits)) & 31])
    return "".join(out)


def b32_id(value):
    """An object id: base32 of a u64, leading zero groups dropped."""
    if value == 0:
        return "a"
    out = []
    while value:
        out.append(ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def leb128(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def blake3(data):
    r = subprocess.run(["b3sum", "--no-names", "--raw"], input=data,
                       stdout=subprocess.PIPE, check=True)
    return r.stdout[:32]


def blob_id(content, account_id, collection, document_id):
    raw = (bytes([0x10]) + blake3(content) + leb128(account_id) +
           bytes([collection]) + leb128(document_id))
    return b32_bytes(raw)


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def message(i, rnd, account):
    names = ["Alice Example", "Bob Builder", "Jürgen Müller", "Zoë Quinn",
             "Carol Danvers"]
    subjects = ["Quarterly report", "Lunch on Friday?", "Übersicht Projekt",
                "Invoice 2024-%03d" % i, "Re: meeting notes"]
    sender = names[i % len(names)]
    subject = subjects[i % len(subjects)] + " #%d" % i
    addr = sender.split()[0].lower().replace("ü", "u").replace("ë", "e")
    day = 1 + i % 28
    mid = "msg%d.%08x@example.org" % (i, rnd.getrandbits(32))
    body = "\r\n".join("line %d of message %d: %s" %
                       (k, i, "x" * rnd.randint(10, 60))
                       for k in range(rnd.randint(3, 30)))
    hdr = [
        "Return-Path: <%s@example.org>" % addr,
        "From: =?UTF-8?B?%s?= <%s@example.org>" %
        (__import__("base64").b64encode(sender.encode()).decode(), addr),
        "To: %s <%s@example.com>" % (account, account),
        "Subject: =?UTF-8?Q?%s?=" % q_subject(subject),
        "Date: Wed, %02d May 2024 %02d:%02d:00 +0000" % (day, i % 24, i % 60),
        "Message-ID: <%s>" % mid,
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ]
    raw = ("\r\n".join(hdr) + "\r\n\r\n" + body + "\r\n").encode()
    received = "2024-05-%02dT%02d:%02d:05Z" % (day, i % 24, i % 60)
    return raw, subject, mid, received


def q_subject(subject):
    """RFC 2047 Q encoding of a subject (UTF-8)."""
    out = []
    for b in subject.encode():
        c = chr(b)
        if c.isascii() and c.isalnum():
            out.append(c)
        elif c == " ":
            out.append("_")
        else:
            out.append("=%02X" % b)
    return "".join(out)


def write_subspace(path, letter, records, corrupt=False):
    raw = bytearray(b"\x7b" + letter.encode() + (5).to_bytes(4, "little"))
    for k, v in records:
        raw += leb128(len(k)) + k + leb128(len(v)) + v
    r = subprocess.run(["lz4", "-q", "-c", "-9"], input=bytes(raw),
                       stdout=subprocess.PIPE, check=True)
    data = bytearray(r.stdout)
    if corrupt:
        for i in range(len(data) * 2 // 3, len(data) * 2 // 3 + 64):
            data[i] ^= 0x5A
    with open(path, "wb") as f:
        f.write(data)


def write_dump(a):
    rnd = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    recs = []
    manifest = []
    for i in range(max(a.messages, 1)):
        raw, subject, mid, received = message(i, rnd, a.account)
        key = blake3(raw)
        recs.append((key, raw))
        manifest.append({"key": key.hex(), "subject": subject,
                         "messageId": mid, "size": len(raw)})
    recs.sort()
    write_subspace(os.path.join(a.out, "subspace_t"), "t", recs,
                   a.corrupt_dump)
    write_subspace(os.path.join(a.out, "subspace_p"), "p",
                   [(bytes([0, 0, 0, 2, 0, 1, 0, 0, 0, i]),
                     bytes([0x80 | 0x10, i, i])) for i in range(20)])
    write_subspace(os.path.join(a.out, "subspace_i"), "i",
                   [(bytes([0, 0, 0, 2, 0, 3]) + b"key%d" % i, b"")
                    for i in range(20)])
    if a.manifest:
        with open(a.manifest, "w", encoding="utf-8") as f:
            json.dump({"messages": manifest}, f, ensure_ascii=False,
                      indent=1)
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--account", default="john")
    ap.add_argument("--variant", choices=["acl", "sharewith"],
                    default="sharewith")
    ap.add_argument("--messages", type=int, default=12)
    ap.add_argument("--seed", default="1")
    ap.add_argument("--cut-emails", action="store_true")
    ap.add_argument("--missing-blob", action="store_true")
    ap.add_argument("--manifest")
    ap.add_argument("--dump", action="store_true")
    ap.add_argument("--corrupt-dump", action="store_true")
    a = ap.parse_args()
    if a.dump:
        return write_dump(a)
    rnd = random.Random(a.seed)
    n = max(a.messages, 4)
    top = os.path.join(a.out, a.account)
    os.makedirs(os.path.join(top, "blobs"), exist_ok=True)
    account_id = 2

    # mailboxes: (doc id, name, parent doc id, role, shared)
    boxes = [(0, "Inbox", None, "inbox", False),
             (1, "Sent", None, "sent", False),
             (2, "Drafts", None, "drafts", False),
             (3, "Gelöschte Objekte", None, "trash", False),
             (4, "Archive", None, "archive", False),
             (5, "2024", 4, None, True),
             (6, "Projects", None, None, False),
             (7, "a.b", 6, None, False)]
    paths = {}
    for doc, name, parent, _, _ in boxes:
        paths[doc] = (paths[parent] + "/" if parent is not None else "") + name
    mb_json = []
    for doc, name, parent, role, shared in boxes:
        o = {"id": b32_id(doc), "name": name,
             "parentId": b32_id(parent) if parent is not None else None,
             "role": role, "sortOrder": doc, "isSubscribed": False}
        if shared and a.variant == "acl":
            o["acl"] = {"jane": ["read", "readItems", "lookup"]}
        elif shared:
            rights = ["mayReadItems", "mayAddItems", "mayRemoveItems",
                      "maySetSeen", "maySetKeywords", "mayCreateChild",
                      "mayRename", "maySubmit", "mayDelete", "mayShare"]
            o["shareWith"] = {"c": {r: r == "mayReadItems" for r in rights}}
        mb_json.append(o)

    keyword_sets = [{"$seen": True}, {"$seen": True, "$flagged": True},
                    {"$seen": True, "$answered": True}, {"$draft": True},
                    {}, {"$seen": True, "work": True}]
    emails = []
    manifest = []
    for i in range(n):
        raw, subject, mid, received = message(i, rnd, a.account)
        doc = i
        thread = i // 2
        eid = b32_id((thread << 32) | doc)
        bid = blob_id(raw, account_id, 0, doc)
        if i == 0:
            boxes_of = [0, 5]
        else:
            boxes_of = [[0, 1, 2, 3, 4, 5, 6, 7][i % 8]]
        kw = keyword_sets[i % len(keyword_sets)]
        o = {"id": eid, "blobId": bid,
             "mailboxIds": {b32_id(b): True for b in boxes_of},
             "keywords": kw, "receivedAt": received, "messageId": [mid]}
        emails.append(o)
        with open(os.path.join(top, "blobs", bid), "wb") as f:
            f.write(raw)
        manifest.append({"id": eid, "blobId": bid,
                         "mailboxes": [paths[b] for b in boxes_of],
                         "keywords": sorted(kw), "receivedAt": received,
                         "subject": subject, "messageId": mid,
                         "listed": True, "blob": True, "size": len(raw)})

    sieve_src = b'require ["fileinto"];\r\nif header :contains "subject" ' \
                b'"report" { fileinto "Archive"; }\r\n'
    sieve_bid = blob_id(sieve_src, account_id, 5, 0)
    with open(os.path.join(top, "blobs", sieve_bid), "wb") as f:
        f.write(sieve_src)
    files = {
        "mailboxes.json": dumps(mb_json),
        "emails.json": dumps(emails),
        "sieve.json": dumps([{"id": "a", "name": "filters",
                              "blobId": sieve_bid, "isActive": True}]),
        "identities.json": dumps([{"id": "a", "name": a.account.title(),
                                   "email": a.account + "@example.com",
                                   "replyTo": None, "bcc": None,
                                   "textSignature": "",
                                   "htmlSignature": ""}]),
        "vacation.json": dumps([{"id": "singleton", "fromDate": None,
                                 "toDate": None, "subject": "Away",
                                 "textBody": "Back soon", "isEnabled":
                                 False}]),
    }
    if a.cut_emails:
        s = files["emails.json"]
        # cut inside the element of the email 2/3 through
        k = 2 * n // 3
        start = s.index('{"id":"%s"' % emails[k]["id"])
        files["emails.json"] = s[:start + 40]
        for m in manifest[k:]:
            m["listed"] = False
    for name, text in files.items():
        with open(os.path.join(top, name), "w", encoding="utf-8") as f:
            f.write(text)
    if a.missing_blob:
        m = manifest[-1] if not a.cut_emails else manifest[1]
        os.unlink(os.path.join(top, "blobs", m["blobId"]))
        m["blob"] = False
    if a.manifest:
        with open(a.manifest, "w", encoding="utf-8") as f:
            json.dump({"account": a.account, "variant": a.variant,
                       "mailboxes": [paths[b[0]] for b in boxes],
                       "emails": manifest}, f, ensure_ascii=False, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
