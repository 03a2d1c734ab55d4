#!/usr/bin/env python3
"""growth_account.py: where every byte of a backup day goes (issue 15).

Reads a local, unencrypted format 2 repository (`init --encryption none`,
packs = 2) that the growth series wrote, one backup a day, and splits each
day's added bytes:

  content   new data records, by the files that name them: new mail
            (Maildir message names), each Dovecot index file kind, other
  nodes     new REC_TREE records by what they are: leaves of Maildir
            folders, leaves of mail view folders, index nodes, folder
            directories (cur/new/tmp and the Dovecot files), the path above
  framing   per record: the seal (nonce, tag), the plaintext header
            (comp, dict id, length), Padme padding; per pack: table and
            trailer
  index.db  its size spread over the records of the days (one file: a
            day's share, not a measurement); catalog.db is not split (most
            of it is day 1's; a day adds what du shows, ~16 kB here)

usage: growth_account.py REPO [FIRST_DAY [LAST_DAY]]
       growth_account.py --dump-nodes DIR REPO...
Prints one line per day (TSV) and the medians of the days given as a
Markdown table.  Needs libzstd (ctypes) and sqlite3; reads only.  With
--dump-nodes, writes every directory node of the repositories, raw, into
DIR (one file per node, named by its id): the samples tools/ptree_dict.sh
trains the built-in node dictionary on.
"""
import ctypes
import ctypes.util
import os
import re
import sqlite3
import statistics
import sys

NONCE, TAG = 24, 16
REC_DATA, REC_TREE, REC_SNAPSHOT, REC_DICT = 1, 2, 3, 4
EF = dict(RDEV=1, TARGET=2, LINK=4, XATTRS=8, ACL_A=16, ACL_D=32, CHUNKS=64,
          EXTENTS=128, SUBTREE=256, CACHE=512, XFORM=1024)
MAILDIR = re.compile(rb'^[0-9]+\.[A-Za-z0-9_]+\.')

zl = ctypes.CDLL(ctypes.util.find_library('zstd') or 'libzstd.so.1')
zl.ZSTD_createDCtx.restype = ctypes.c_void_p
zl.ZSTD_decompress_usingDict.restype = ctypes.c_size_t
zl.ZSTD_decompress_usingDict.argtypes = [
    ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
    ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
zl.ZSTD_isError.argtypes = [ctypes.c_size_t]
DCTX = zl.ZSTD_createDCtx()
# the built-in dictionaries of directory nodes (include/ptree.h), by id
BUILTIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                       'src', 'store')


def builtin_dicts():
    out = {}
    for name in os.listdir(BUILTIN):
        m = re.match(r'ptree_dict_([0-9]+)\.zdict$', name)
        if m:
            with open(os.path.join(BUILTIN, name), 'rb') as f:
                out[int(m.group(1))] = f.read()
    return out


def varint(b, i):
    v = s = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7f) << s
        s += 7
        if c < 0x80:
            return v, i


def bytes_(b, i):
    n, i = varint(b, i)
    return b[i:i + n], i + n


def unseal(rec):
    """(comp, dict_id, payload, header bytes, padding bytes) of a record"""
    plain = rec[NONCE:len(rec) - TAG]
    comp = plain[0]
    dict_id, i = varint(plain, 1)
    n, i = varint(plain, i)
    return comp, dict_id, plain[i:i + n], i, len(plain) - i - n


def decompress(payload, comp, dict_id, raw, dicts):
    if comp == 0:
        return payload
    d = dicts.get(dict_id, b'') if comp == 2 else b''
    out = ctypes.create_string_buffer(raw)
    n = zl.ZSTD_decompress_usingDict(DCTX, out, raw, payload, len(payload),
                                     d, len(d))
    if zl.ZSTD_isError(n) or n != raw:
        raise SystemExit('zstd: cannot decompress a record')
    return out.raw[:n]


def entries(body, n):
    """(name, type, chunk ids) of the n format 1 entries of a leaf"""
    i = 0
    for _ in range(n):
        name, i = bytes_(body, i)
        typ = body[i]
        i += 1
        for _ in range(3):
            _, i = varint(body, i)
        _, i = bytes_(body, i)
        _, i = bytes_(body, i)
        for _ in range(3):
            _, i = varint(body, i)
        fl, i = varint(body, i)
        ids = []
        if fl & EF['RDEV']:
            _, i = varint(body, i)
            _, i = varint(body, i)
        if fl & EF['TARGET']:
            _, i = bytes_(body, i)
        if fl & EF['LINK']:
            _, i = varint(body, i)
            _, i = varint(body, i)
        if fl & EF['XATTRS']:
            k, i = varint(body, i)
            for _ in range(k):
                _, i = bytes_(body, i)
                _, i = bytes_(body, i)
        if fl & EF['ACL_A']:
            _, i = bytes_(body, i)
        if fl & EF['ACL_D']:
            _, i = bytes_(body, i)
        if fl & EF['CHUNKS']:
            k, i = varint(body, i)
            for _ in range(k):
                ids.append(body[i:i + 32])
                i += 32
                _, i = varint(body, i)
        if fl & EF['EXTENTS']:
            k, i = varint(body, i)
            for _ in range(2 * k):
                _, i = varint(body, i)
        if fl & EF['SUBTREE']:
            k, i = varint(body, i)
            for _ in range(k):
                i += 32
                _, i = varint(body, i)
            _, i = varint(body, i)
            _, i = varint(body, i)
        if fl & EF['CACHE']:
            for _ in range(4):
                _, i = varint(body, i)
        if fl & EF['XFORM']:
            i += 1
        yield name, typ, ids


def parse_node(raw):
    """(kind, level, n, body) of a ptree node, None for another object"""
    if raw[:4] != b'MVN1':
        return None
    n, i = varint(raw, 6)
    return raw[4], raw[5], n, raw[i:]


def file_kind(name):
    if MAILDIR.match(name):
        return 'new mail'
    if name.endswith(b'.eml'):
        return 'new mail'
    if name.startswith(b'dovecot.index.cache'):
        return 'dovecot.index.cache'
    if name.startswith(b'dovecot.index.log'):
        return 'dovecot.index.log'
    if name == b'dovecot.index':
        return 'dovecot.index'
    if name.startswith(b'dovecot-uidlist'):
        return 'dovecot-uidlist'
    return 'other files'


def node_kind(kind, names):
    if kind == 2:
        return 'index nodes'
    if any(MAILDIR.match(x) for x in names):
        return 'leaves of Maildir folders'
    if any(x.endswith(b'.eml') for x in names):
        return 'leaves of view folders'
    if b'cur' in names or any(x.startswith(b'dovecot') for x in names):
        return 'folder directories'
    return 'the path above'


def open_repo(repo):
    db = sqlite3.connect('file:%s/index.db?mode=ro' % repo, uri=True)
    packs = {pid: (name, size) for pid, name, size in
             db.execute('select id, name, size from packs')}
    recs = db.execute('select id, pack, offset, stored_size, raw_size, type '
                      'from chunks order by pack, offset').fetchall()

    def read(pack, off, n):
        name = packs[pack][0]
        with open(os.path.join(repo, 'packs', name[:2], name), 'rb') as f:
            f.seek(off)
            return f.read(n)
    dicts = builtin_dicts()
    for cid, pack, off, st, raw, typ in recs:
        if typ == REC_DICT:
            comp, did, pl, _, _ = unseal(read(pack, off, st))
            dicts[int.from_bytes(pl[4:8], 'little')] = bytes(pl)
    return recs, read, dicts


def dump_nodes(out, repos):
    os.makedirs(out, exist_ok=True)
    n = 0
    for repo in repos:
        recs, read, dicts = open_repo(repo)
        for cid, pack, off, st, raw, typ in recs:
            if typ != REC_TREE:
                continue
            comp, did, pl, _, _ = unseal(read(pack, off, st))
            node = decompress(pl, comp, did, raw, dicts)
            if parse_node(node) is None:
                continue
            with open(os.path.join(out, bytes(cid).hex()), 'wb') as f:
                f.write(node)
            n += 1
    print('%d nodes written to %s' % (n, out))


def main():
    if sys.argv[1] == '--dump-nodes':
        return dump_nodes(sys.argv[2], sys.argv[3:])
    repo = sys.argv[1]
    db = sqlite3.connect('file:%s/index.db?mode=ro' % repo, uri=True)
    packs = {pid: (name, size) for pid, name, size in
             db.execute('select id, name, size from packs')}
    recs = db.execute('select id, pack, offset, stored_size, raw_size, type '
                      'from chunks order by pack, offset').fetchall()
    fds = {}

    def read(pack, off, n):
        name = packs[pack][0]
        if pack not in fds:
            fds[pack] = open(os.path.join(repo, 'packs', name[:2], name),
                             'rb')
        fds[pack].seek(off)
        return fds[pack].read(n)

    dicts = builtin_dicts()
    for cid, pack, off, st, raw, typ in recs:
        if typ == REC_DICT:
            comp, did, pl, _, _ = unseal(read(pack, off, st))
            dicts[int.from_bytes(pl[4:8], 'little')] = bytes(pl)
    # the days: a snapshot record closes each backup's packs
    snap_packs = sorted({p for _, p, _, _, _, t in recs if t == REC_SNAPSHOT})
    day_of = {}
    d = 0
    for p in sorted(packs):
        while d < len(snap_packs) and p > snap_packs[d]:
            d += 1
        day_of[p] = d + 1
    ndays = len(snap_packs)
    total_recs = len(recs)
    ix_size = os.path.getsize(os.path.join(repo, 'index.db'))
    cat = os.path.join(repo, 'catalog.db')
    cat_size = os.path.getsize(cat) if os.path.exists(cat) else 0

    owner = {}      # chunk id -> file kind
    nodes = []      # (day, class, stored, header, pad, payload, raw)
    data = []       # (day, chunk id, stored, header, pad, payload)
    recs_per_day = [0] * (ndays + 2)
    for cid, pack, off, st, raw, typ in recs:
        day = day_of[pack]
        recs_per_day[day] += 1
        if typ not in (REC_TREE, REC_DATA):
            continue
        rec = read(pack, off, st)
        comp, did, pl, hdr, pad = unseal(rec)
        if typ == REC_DATA:
            data.append((day, bytes(cid), st, hdr, pad, len(pl)))
            continue
        nd = parse_node(decompress(pl, comp, did, raw, dicts))
        if nd is None:
            nodes.append((day, 'format 1 objects', st, hdr, pad, len(pl), raw))
            continue
        kind, level, n, body = nd
        names = []
        if kind == 1:
            for name, typ2, ids in entries(body, n):
                names.append(name)
                k = file_kind(name)
                for x in ids:
                    if owner.get(x) in (None, 'other files'):
                        owner[x] = k
        nodes.append((day, node_kind(kind, names), st, hdr, pad, len(pl),
                      raw))
    table = {}
    for p, (name, size) in packs.items():
        table[day_of[p]] = table.get(day_of[p], 0) + size
    for cid, pack, off, st, raw, typ in recs:
        table[day_of[pack]] -= st

    first = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    last = int(sys.argv[3]) if len(sys.argv) > 3 else ndays
    rows = {}

    def add(day, key, v):
        rows.setdefault(key, {}).setdefault(day, 0)
        rows[key][day] += v

    for day, cid, st, hdr, pad, pl in data:
        add(day, 'content: ' + owner.get(cid, 'other files'), pl)
        add(day, 'framing: content records (seal, header, padding)',
            st - pl)
        add(day, 'records: content', 1)
    for day, cls, st, hdr, pad, pl, raw in nodes:
        add(day, 'nodes: ' + cls, pl)
        add(day, 'nodes raw: ' + cls, raw)
        add(day, 'records: ' + cls, 1)
        add(day, 'framing: node seal (nonce, tag)', NONCE + TAG)
        add(day, 'framing: node plaintext header', hdr)
        add(day, 'framing: node Padme padding', pad)
    for day in range(1, ndays + 1):
        add(day, 'framing: pack tables and trailers', table.get(day, 0))
        add(day, 'index.db (share by records)',
            ix_size * recs_per_day[day] // total_recs)
    keys = sorted(rows)
    print('key\t' + '\t'.join('day%d' % d for d in range(1, ndays + 1)))
    for k in keys:
        print(k + '\t' + '\t'.join(str(rows[k].get(d, 0))
                                  for d in range(1, ndays + 1)))
    days = range(first, last + 1)
    print()
    print('| bytes of a day, median of days %d-%d | bytes |' % (first, last))
    print('|---|---|')
    for k in keys:
        print('| %s | %d |' % (k, statistics.median(
            rows[k].get(d, 0) for d in days)))
    tot = [sum(rows[k].get(d, 0) for k in keys
               if not k.startswith(('records', 'nodes raw')))
           for d in days]
    print('| total (the sum of the rows above without counts and raw) '
          '| %d |' % statistics.median(tot))
    print('| catalog.db after the last day (not in the total) | %d |'
          % cat_size)


if __name__ == '__main__':
    main()
