#!/usr/bin/env python3
"""gen_fixture.py: generate a mail server's data volume and days of churn.

Used by the tests, the benchmarks and the demo.  Python 3 standard library
only.  Everything is a function of --seed: the same options give the same
trees, byte for byte, with the same names, modes and mtimes (nanoseconds).

Usage:
  gen_fixture.py --out DIR [--seed S] [--messages N | --size-mb MB]
                 [--users U] [--days N | --day K] [--tar] [--tar-only]
                 [--link] [--owner UID:GID] [--xattrs] [--small]
                 [--profile realmail] [--quiet]

  --out DIR        output directory (created; existing day trees are replaced)
  --seed S         any string or number (default 1)
  --messages N     messages on day 1 (default 2000; --small: 300)
  --size-mb MB     approximate size of day 1; sets --messages from the
                   measured average message size (about 57 KiB)
  --users U        mailboxes (default 8; --small: 3), spread over 3 domains
  --days N         write DIR/day1 .. DIR/dayN, each the full state of that day
  --day K          write only DIR/dayK, the state of day K (same bytes as
                   --days K would give for that day)
  --tar            also write DIR/dayK.tar.gz = `tar -czf - -C dayK .`
                   (GNU tar, members named ./..., sorted by name)
  --tar-format F   gnu (default: what `tar -czf` writes on Debian; mtimes
                   in whole seconds) or pax (nanosecond mtimes, xattrs)
  --tar-only       like --tar, and remove each day tree once the next one
                   is written (the last one too)
  --link           days after the first hard-link unchanged message files
                   to the previous day instead of copying them (much less
                   disk; do not modify the trees in place then)
  --owner U:G      chown everything to numeric U:G (needs root)
  --xattrs         set a few user.* extended attributes (needs a filesystem
                   with user xattrs)
  --small          preset for tests: 300 messages, 3 users, attachments
                   at most 128 KiB, about 6 MB of mail a day
  --profile P      default, or realmail: a vmail volume like a real one
                   that is mostly small text messages (5500 messages,
                   6 users, about 5.5 KiB each, 2% with an attachment of
                   at most 48 KiB, about 30 MB), Dovecot's index files
                   (dovecot.index, .index.cache, .index.log and .log.2)
                   in every folder, no database; its churn: about 1% new
                   mail (most in new/), nearly all of the previous day's
                   new/ mail read (moved to cur/), flag changes on 2% of
                   the messages, 0.3% deleted, 0.1% refiled (the default
                   profile and its churn are unchanged by this option)
  --quiet          no progress on stderr

Layout (DIR/dayK is the data volume; it is what gets tar'ed):
  dayK/<domain>/<user>/Maildir/{cur,new,tmp}      INBOX
  dayK/<domain>/<user>/Maildir/.<Folder>/{cur,new,tmp,maildirfolder}
        folders: .Sent .Drafts .Trash .Junk .Archive .Archive.2024 and, for
        some users, .Entw&APw-rfe and ".Gel&APY-schte Objekte" (modified
        UTF-7); control files dovecot-uidlist (v3), dovecot-keywords,
        subscriptions, maildirsize, dovecot-uidvalidity(.<hex>)
  dayK/sieve/<user>@<domain>.sieve (+ .svbin)
  dayK/mariadb/ibdata1        16 KiB pages, a few rewritten every day
  dayK/mariadb/ib_logfile0    sparse
  DIR/config/                 stalwart config.toml + config.json, mailcow.conf,
                              certs/ (PEM-shaped, random), a symlink
  DIR/manifest.json           per-day counts (new, moved, flagged, ...)

Message files are named the Dovecot way:
  cur/<secs>.M<usecs>P<pid>.<host>,S=<size>,W=<vsize>:2,<flags>
  new/<secs>.M<usecs>P<pid>.<host>,S=<size>,W=<vsize>
Some messages are hard-link copies of others (Dovecot copies by linking).

Time: the backup of day K is taken at 2024-06-0K 03:00:00 UTC, i.e.
  epoch 1717210800 + (K-1)*86400;  day 1 holds two years of mail before it.
Churn from day K-1 to day K: about 1% new messages (most in INBOX/new), most
earlier unseen messages moved new/ -> cur/ with ":2,S", a few flag changes
(":2,S" -> ":2,RS"), a few moves between folders, a few deletions, and a few
scattered page rewrites in mariadb/ibdata1.
"""

import argparse
import base64
import binascii
import email.header
import email.utils
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import time

BASE = 1717210800  # 2024-06-01 03:00:00 UTC, the backup of day 1
DAY = 86400
PAGE = 16384
AVG_MSG = 57 * 1024  # measured average message size (default profile)
AVG_SMALL = 20 * 1024  # the same with --small
AVG_REAL = 5600  # the same with --profile realmail

DOMAINS = ["example.org", "example.net", "mail.example.com"]
NAMES = ["alice", "bob", "carol", "dave", "erika", "frank", "grete", "heidi",
	 "ivan", "judith", "klaus", "lena", "mallory", "nils", "oscar",
	 "petra", "quentin", "ruth", "sybil", "trent", "ursula", "victor",
	 "walter", "xenia", "yvonne", "zoe"]
# (directory, weight of day-1 messages, keywords used)
FOLDERS = [("", 45), (".Sent", 14), (".Drafts", 1), (".Trash", 3),
	   (".Junk", 4), (".Archive", 8), (".Archive.2024", 19)]
GERMAN = [(".Entw&APw-rfe", 2), (".Gel&APY-schte Objekte", 4)]
KEYWORDS = ["$Forwarded", "$MDNSent", "NonJunk"]

WORDS_EN = ("the of and to in is you that it he was for on are as with his "
	    "they at be this have from or one had by word but not what all "
	    "were we when your can said there use an each which she do how "
	    "their if will up other about out many then them these so some "
	    "her would make like him into time has look two more write go see "
	    "number no way could people my than first water been call who "
	    "meeting invoice project report quarter budget server backup "
	    "mailbox review please attached regards thanks schedule customer "
	    "contract delivery update release deadline agenda minutes draft "
	    "proposal migration certificate password account support ticket "
	    "weekend tomorrow monday friday office travel hotel flight").split()
WORDS_DE = ("und der die das nicht mit für über Grüße Änderung bitte "
	    "Besprechung Rechnung Größe schön Straße müssen können Übersicht "
	    "nächste Woche Anhang Frühstück Büro Gebühr Prüfung").split()


def rng(*parts):
	"""A PRNG seeded from a tuple; stable across runs and Python versions."""
	return random.Random(":".join(str(p) for p in parts))


class Text:
	"""Pools of sentences from which message bodies are drawn."""

	def __init__(self, seed):
		r = rng(seed, "text")
		syl = ["ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "an", "el",
		       "is", "or", "un", "ber", "dor", "fen", "gar", "hil", "str"]
		vocab = WORDS_EN * 3 + [
			"".join(r.choices(syl, k=r.randint(2, 4)))
			for _ in range(2500)]
		self.en = [self._sentence(r, vocab) for _ in range(6000)]
		self.de = [self._sentence(r, WORDS_DE + vocab[:400])
			   for _ in range(1500)]

	@staticmethod
	def _sentence(r, vocab):
		w = r.choices(vocab, k=r.randint(6, 13))
		s = " ".join(w)
		return s[0].upper() + s[1:] + r.choice(".....?!:")

	def body(self, r, nbytes, german):
		pool = self.de if german and r.random() < 0.7 else self.en
		k = max(2, nbytes // 72)
		lines = r.choices(pool, k=k)
		for i in range(r.randint(3, 6), k, r.randint(3, 7)):
			lines[i] += "\n"
		if r.random() < 0.4:
			q = r.choices(self.en, k=max(1, k // 3))
			lines.append("\nOn a previous day someone wrote:")
			lines.extend("> " + x for x in q)
		return "\n".join(lines) + "\n"


class Msg:
	__slots__ = ("id", "cid", "mb", "sub", "base", "flags", "t_ns")

	def __init__(self, mid, cid, mb, sub, base, flags, t_ns):
		self.id, self.cid, self.mb, self.sub = mid, cid, mb, sub
		self.base, self.flags, self.t_ns = base, flags, t_ns


class Mailbox:
	def __init__(self, user, folder, uidvalidity, guid):
		self.user = user  # index into State.users
		self.folder = folder  # "" for INBOX
		self.uidvalidity = uidvalidity
		self.guid = guid
		self.next_uid = 1
		self.uids = {}  # msg id -> uid
		self.changed = 0  # last change time (s)
		self.keywords = False


class State:
	"""The simulated server: mailboxes and the messages in them."""

	def __init__(self, args):
		self.seed = args.seed
		self.args = args
		r = rng(self.seed, "setup")
		self.host = "%012x" % r.getrandbits(48)
		self.users = []  # (domain, name, german)
		for i in range(args.users):
			name = NAMES[i % len(NAMES)]
			if i >= len(NAMES):
				name += str(i // len(NAMES))
			self.users.append((DOMAINS[i % len(DOMAINS)], name,
					   i % 2 == 1))
		self.mbs = []
		self.user_mbs = []
		created = BASE - 800 * DAY
		for u, (_, _, german) in enumerate(self.users):
			folders = FOLDERS + (GERMAN if german else [])
			ids = []
			for f, w in folders:
				mb = Mailbox(u, f, created + r.randrange(DAY),
					     "%032x" % r.getrandbits(128))
				mb.changed = mb.uidvalidity
				mb.weight = w
				ids.append(len(self.mbs))
				self.mbs.append(mb)
			self.user_mbs.append(ids)
		self.user_weight = [1.0 / (1 + i) ** 0.7
				    for i in range(args.users)]
		self.msgs = {}  # id -> Msg, present messages
		self.origin = {}  # content id -> (user, folder, time)
		self.next_id = 1
		self.dirtime = {}  # relative dir -> last change (s)
		self.page_ver = {}  # ibdata1 page -> day of last rewrite
		self.pages = 0
		self.log_day = 1
		self.counts = {}

	# -- paths --------------------------------------------------------
	def mbdir(self, mb):
		m = self.mbs[mb]
		d, n, _ = self.users[m.user]
		p = "%s/%s/Maildir" % (d, n)
		return p + "/" + m.folder if m.folder else p

	def touch(self, mb, sub, t):
		m = self.mbs[mb]
		m.changed = max(m.changed, t)
		k = self.mbdir(mb) + "/" + sub
		self.dirtime[k] = max(self.dirtime.get(k, 0), t)

	# -- events -------------------------------------------------------
	def new_base(self, r, t):
		return "%d.M%dP%d.%s" % (t, r.randrange(1000000),
					 r.randrange(1000, 65000), self.host)

	def add(self, r, mb, sub, flags, t, cid=None, t_ns=None):
		mid = self.next_id
		self.next_id += 1
		m = self.mbs[mb]
		if t_ns is None:
			t_ns = t * 10**9 + r.randrange(10**9)
		msg = Msg(mid, cid or mid, mb, sub, self.new_base(r, t),
			  flags, t_ns)
		self.msgs[mid] = msg
		if cid is None:
			self.origin[mid] = (m.user, m.folder, t)
		m.uids[mid] = m.next_uid
		m.next_uid += 1
		if any(c.islower() for c in flags):
			m.keywords = True
		self.touch(mb, sub, t)
		return msg

	def delete(self, msg, t):
		self.touch(msg.mb, msg.sub, t)
		del self.mbs[msg.mb].uids[msg.id]
		del self.msgs[msg.id]

	def pick_mb(self, r, user=None, folder=None):
		if user is None:
			user = r.choices(range(len(self.users)),
					 self.user_weight)[0]
		ids = self.user_mbs[user]
		if folder is not None:
			for i in ids:
				if self.mbs[i].folder == folder:
					return i
		return r.choices(ids, [self.mbs[i].weight for i in ids])[0]

	@staticmethod
	def initial_flags(r, folder):
		if folder == ".Drafts" or folder.startswith(".Entw"):
			return "DS"
		if folder in (".Sent", ".Trash", ".Junk") or \
		   folder.startswith(".Gel"):
			return "S"
		x = r.random()
		if x < 0.70:
			return "S"
		if x < 0.85:
			return "RS"
		if x < 0.92:
			return "FS"
		if x < 0.96:
			return "RSa"
		return ""

	def day1(self):
		r = rng(self.seed, "day", 1)
		n = self.args.messages
		times = sorted(BASE - r.randrange(730 * DAY) for _ in range(n))
		for i, t in enumerate(times):
			if self.msgs and (r.random() < 0.008 or
					  (i == n // 2 and n >= 20)):
				# a copy made by hard link into another folder
				src = self.msgs[r.choice(list(self.msgs))]
				mb = self.pick_mb(r, self.mbs[src.mb].user)
				if mb != src.mb:
					self.add(r, mb, "cur", "S", t, src.cid,
						 src.t_ns)
					continue
			mb = self.pick_mb(r)
			f = self.mbs[mb].folder
			unseen = f == "" and (t > BASE - 3 * DAY or
					      r.random() < 0.01)
			if unseen:
				self.add(r, mb, "new", "", t)
			else:
				self.add(r, mb, "cur", self.initial_flags(r, f),
					 t)
		self.pages = max(64, (n * AVG_MSG // 20) // PAGE)
		if self.args.small:
			self.pages = 64
		self.counts[1] = {"messages": len(self.msgs), "new": n}

	def churn(self, k):
		"""Apply the events between the backups of day k-1 and day k."""
		r = rng(self.seed, "day", k)
		t0 = BASE + (k - 2) * DAY
		c = {"new": 0, "moved_new_cur": 0, "flags": 0, "refiled": 0,
		     "deleted": 0}

		def when():
			return t0 + r.randrange(60, DAY - 60)

		# earlier unseen mail gets read: new/ -> cur/ with :2,S
		for msg in sorted(self.msgs.values(), key=lambda m: m.id):
			if msg.sub == "new" and r.random() < 0.8:
				t = when()
				self.touch(msg.mb, "new", t)
				msg.sub = "cur"
				msg.flags = r.choice(["S", "S", "S", "RS", "FS"])
				self.touch(msg.mb, "cur", t)
				c["moved_new_cur"] += 1
		ids = sorted(self.msgs)
		total = len(ids)
		# flag changes on read mail: :2,S -> :2,RS and the like
		for mid in r.sample(ids, min(total, max(1, total // 300))):
			msg = self.msgs[mid]
			if msg.sub != "cur":
				continue
			add = r.choice("RFa")
			if add in msg.flags:
				add = "T" if "T" not in msg.flags else "R"
			msg.flags = "".join(sorted(set(msg.flags + add)))
			if add == "a":
				self.mbs[msg.mb].keywords = True
			self.touch(msg.mb, "cur", when())
			c["flags"] += 1
		# refiling: INBOX -> Archive/Trash (a link plus an unlink in
		# Dovecot: new name, same inode, same mtime)
		for mid in r.sample(ids, min(total, max(1, total // 400))):
			msg = self.msgs.get(mid)
			if msg is None or self.mbs[msg.mb].folder != "":
				continue
			user = self.mbs[msg.mb].user
			dst = self.pick_mb(r, user, r.choice(
				[".Archive.2024", ".Archive", ".Trash"]))
			t = when()
			self.add(r, dst, "cur", msg.flags or "S", t, msg.cid,
				 msg.t_ns)
			self.delete(msg, t)
			c["refiled"] += 1
		# deletions, mostly from Trash and Junk
		ids = sorted(self.msgs)
		for mid in r.sample(ids, min(len(ids), max(1, total // 350))):
			msg = self.msgs[mid]
			f = self.mbs[msg.mb].folder
			if f in (".Trash", ".Junk") or r.random() < 0.3:
				self.delete(msg, when())
				c["deleted"] += 1
		# new mail, about 1% of the mailbox
		n = max(1, round(total * 0.01 * r.uniform(0.85, 1.15)))
		for t in sorted(when() for _ in range(n)):
			x = r.random()
			if x < 0.75:
				mb = self.pick_mb(r, folder="")
				self.add(r, mb, "new", "", t)
			elif x < 0.90:
				mb = self.pick_mb(r, folder=".Sent")
				self.add(r, mb, "cur", "S", t)
			elif x < 0.95:
				mb = self.pick_mb(r, folder=".Junk")
				self.add(r, mb, "new", "", t)
			else:
				mb = self.pick_mb(r, folder="")
				self.add(r, mb, "cur", "S", t)
			c["new"] += 1
		# database: a few scattered page rewrites, sometimes growth
		for p in r.sample(range(self.pages),
				  max(3, self.pages // 200)):
			self.page_ver[p] = k
		if r.random() < 0.5:
			grow = r.randint(1, 4)
			for p in range(self.pages, self.pages + grow):
				self.page_ver[p] = k
			self.pages += grow
		self.log_day = k
		c["messages"] = len(self.msgs)
		self.counts[k] = c

	def churn_real(self, k):
		"""--profile realmail: the events between the backups of day
		k-1 and day k on a server of mostly small text mail."""
		r = rng(self.seed, "real", k)
		t0 = BASE + (k - 2) * DAY
		c = {"new": 0, "moved_new_cur": 0, "flags": 0, "refiled": 0,
		     "deleted": 0}

		def when():
			return t0 + r.randrange(60, DAY - 60)

		# the previous day's unseen mail is read: new/ -> cur/
		for msg in sorted(self.msgs.values(), key=lambda m: m.id):
			if msg.sub == "new" and r.random() < 0.92:
				t = when()
				self.touch(msg.mb, "new", t)
				msg.sub = "cur"
				msg.flags = r.choice(["S"] * 6 + ["RS", "FS"])
				self.touch(msg.mb, "cur", t)
				c["moved_new_cur"] += 1
		ids = sorted(self.msgs)
		total = len(ids)
		# flag changes on 2% of the messages, most of them recent:
		# answered, flagged, unflagged, forwarded ($Forwarded = a)
		recent = ids[-max(1, total // 5):]
		n = max(1, round(total * 0.02))
		for mid in sorted(set(r.sample(recent, min(len(recent),
							  n * 2 // 3)) +
				     r.sample(ids, min(total, n // 3)))):
			msg = self.msgs[mid]
			if msg.sub != "cur":
				continue
			x = r.random()
			if "F" in msg.flags and x < 0.3:
				msg.flags = msg.flags.replace("F", "")
			else:
				add = r.choice("RRRFa")
				if add in msg.flags:
					add = "T" if "T" not in msg.flags \
						else "R"
				msg.flags = "".join(sorted(set(msg.flags + add)))
				if add == "a":
					self.mbs[msg.mb].keywords = True
			self.touch(msg.mb, "cur", when())
			c["flags"] += 1
		# refiling, 0.1%: INBOX -> Archive (or Trash), a new name
		for mid in r.sample(ids, min(total, max(1, total // 1000))):
			msg = self.msgs.get(mid)
			if msg is None or self.mbs[msg.mb].folder != "" or \
			   msg.sub != "cur":
				continue
			user = self.mbs[msg.mb].user
			dst = self.pick_mb(r, user, r.choice(
				[".Archive", ".Archive", ".Archive.2024",
				 ".Trash"]))
			t = when()
			self.add(r, dst, "cur", msg.flags or "S", t, msg.cid,
				 msg.t_ns)
			self.delete(msg, t)
			c["refiled"] += 1
		# deletions, 0.3%: half from Trash and Junk, half anywhere
		ids = sorted(self.msgs)
		want = max(1, round(total * 0.003))
		junk = [m for m in ids if self.mbs[self.msgs[m].mb].folder in
			(".Trash", ".Junk")]
		gone = r.sample(junk, min(len(junk), want // 2))
		rest = sorted(set(ids) - set(gone))
		gone += r.sample(rest, min(len(rest), want - len(gone)))
		for mid in sorted(gone):
			self.delete(self.msgs[mid], when())
			c["deleted"] += 1
		# new mail, about 1% of the mailbox
		n = max(1, round(total * 0.01 * r.uniform(0.8, 1.2)))
		for t in sorted(when() for _ in range(n)):
			x = r.random()
			if x < 0.78:
				mb = self.pick_mb(r, folder="")
				self.add(r, mb, "new", "", t)
			elif x < 0.92:
				mb = self.pick_mb(r, folder=".Sent")
				self.add(r, mb, "cur", "S", t)
			elif x < 0.97:
				mb = self.pick_mb(r, folder=".Junk")
				self.add(r, mb, "new", "", t)
			else:
				mb = self.pick_mb(r, folder=".Drafts")
				self.add(r, mb, "cur", "DS", t)
			c["new"] += 1
		self.log_day = k
		c["messages"] = len(self.msgs)
		self.counts[k] = c


# -- content ---------------------------------------------------------------

def dkim(r, domain, t):
	b = base64.b64encode(r.randbytes(256)).decode()
	bh = base64.b64encode(r.randbytes(32)).decode()
	lines = [b[i:i + 70] for i in range(0, len(b), 70)]
	return ("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=%s;\n"
		"\ts=dkim; t=%d; h=from:to:subject:date:message-id;\n"
		"\tbh=%s;\n\tb=%s\n" % (domain, t, bh, "\n\t  ".join(lines)))


def encode_word(r, s):
	if r.random() < 0.5 or not all(ord(c) < 256 for c in s):
		return "=?UTF-8?B?%s?=" % base64.b64encode(s.encode()).decode()
	return email.header.Header(s, "iso-8859-1").encode()


def make_message(st, text, cid, user, folder, t):
	"""The RFC 5322 bytes of message cid (LF line ends, as Dovecot
	stores them)."""
	a = st.args
	r = rng(st.seed, "msg", cid)
	domain, name, german = st.users[user]
	me = "%s@%s" % (name, domain)
	other_dom = r.choice(["partner.example", "lists.example.net",
			      "shop.example", "gmail.example", "web.example"])
	other = "%s.%s@%s" % (r.choice(NAMES), r.choice(NAMES), other_dom)
	sent = folder in (".Sent", ".Drafts") or folder.startswith(".Entw")
	frm, to = (me, other) if sent else (other, me)
	subj = " ".join(r.choices(WORDS_EN[60:], k=r.randint(2, 7)))
	x = r.random()
	if x < 0.08:
		subj = encode_word(r, "Grüße zur Änderung: " + subj)
	elif x < 0.12:
		subj = encode_word(r, "Réunion – " + subj + " ✓")
	fname = frm.split("@")[0].replace(".", " ").title()
	if r.random() < 0.1:
		fname = encode_word(r, fname.replace("U", "Ü").replace("o",
								     "ö"))
	date = email.utils.formatdate(t, usegmt=True)
	h = []
	if not sent:
		h.append("Return-Path: <%s>\nDelivered-To: %s\n" % (frm, me))
		for hop in range(r.randint(1, 3)):
			h.append("Received: from mx%d.%s (mx%d.%s [198.51.100.%d])"
				 "\n\tby mail.%s (Postfix) with ESMTPS id "
				 "%X\n\tfor <%s>; %s\n" % (
					 hop, other_dom, hop, other_dom,
					 r.randrange(1, 255), domain,
					 r.getrandbits(40), me, date))
		h.append(dkim(r, other_dom, t))
		h.append("X-Spam-Status: No, score=%.1f\n" %
			 r.uniform(-3, 4))
	h.append("Date: %s\nFrom: %s <%s>\nTo: %s\nSubject: %s\n"
		 "Message-ID: <%x.%d@%s>\nMIME-Version: 1.0\n" % (
			 date, fname, frm, to, subj, r.getrandbits(64), t,
			 frm.split("@")[1]))
	# sizes: most 2-20 KB; some with attachments; a few large
	k = r.random()
	atts = []
	if a.profile == "realmail":
		# mostly short text: bodies of 0.4-8 KB, 2% with one small
		# attachment
		target = int(500 * 20 ** r.random() ** 1.4)
		if k < 0.02:
			atts = [int(4096 * 12 ** r.random())]
	else:
		target = int(2048 * 10 ** r.uniform(0, 1))
		maxatt = 128 * 1024 if a.small else 2 * 1024 * 1024
		if k < (0.03 if a.small else 0.05):
			tot = int(100 * 1024 * (maxatt / 102400) ** r.random())
			nat = r.randint(1, 3)
			atts = [max(4096, tot // nat) for _ in range(nat)]
		elif k < 0.18:
			atts = [int(4096 * (10 if a.small else 20) **
				    r.random())]
	charset = "utf-8"
	if german and r.random() < 0.3:
		charset = "iso-8859-1"
	body = text.body(r, target, german)
	sig = "\n-- \n%s\n%s | +49 30 %07d\n" % (fname, domain, user * 7919)
	body += sig
	alt = r.random() < 0.3
	boundary = "=_%x" % r.getrandbits(64)

	def textpart(s, subtype):
		raw = s.encode(charset, "replace")
		if raw.isascii():
			cte, enc = "7bit", raw
		elif r.random() < 0.5:
			cte, enc = "8bit", raw
		else:
			cte = "quoted-printable"
			enc = binascii.b2a_qp(raw).replace(b"\r\n", b"\n")
		return ("Content-Type: text/%s; charset=%s\n"
			"Content-Transfer-Encoding: %s\n\n" % (
				subtype, charset, cte)).encode() + enc

	def alternative():
		b2 = "=_alt%x" % r.getrandbits(48)
		html = "<html><body>\n<p>" + body.replace(
			"\n\n", "</p>\n<p>") + "</p>\n</body></html>\n"
		return (("Content-Type: multipart/alternative; boundary=\"%s\""
			 "\n\n--%s\n" % (b2, b2)).encode() +
			textpart(body, "plain") +
			("\n--%s\n" % b2).encode() + textpart(html, "html") +
			("\n--%s--\n" % b2).encode())

	if not atts:
		if alt:
			out = "".join(h).encode() + alternative()
		else:
			out = "".join(h).encode() + textpart(body, "plain")
		return out
	parts = [("Content-Type: multipart/mixed; boundary=\"%s\"\n\n"
		  "This is a multi-part message in MIME format.\n" %
		  boundary).encode()]
	parts.append(("--%s\n" % boundary).encode())
	parts.append(alternative() if alt else textpart(body, "plain"))
	for i, n in enumerate(atts):
		ext, ctype = r.choice([("pdf", "application/pdf"),
				       ("jpg", "image/jpeg"),
				       ("zip", "application/zip"),
				       ("png", "image/png")])
		fn = "%s-%d.%s" % (r.choice(WORDS_EN[60:]), i + 1, ext)
		parts.append(("\n--%s\nContent-Type: %s; name=\"%s\"\n"
			      "Content-Disposition: attachment; "
			      "filename=\"%s\"\n"
			      "Content-Transfer-Encoding: base64\n\n" % (
				      boundary, ctype, fn, fn)).encode())
		parts.append(base64.encodebytes(r.randbytes(n)))
	parts.append(("\n--%s--\n" % boundary).encode())
	return "".join(h).encode() + b"".join(parts)


def page_bytes(seed, p, ver):
	"""Page p of ibdata1 as rewritten on day ver: an InnoDB-like header
	and trailer around rows of text and free space."""
	r = rng(seed, "page", p, ver)
	lsn = ver * 10**9 + p * 1000 + r.randrange(1000)
	head = (r.randbytes(4) + p.to_bytes(4, "big") +
		max(0, p - 1).to_bytes(4, "big") + (p + 1).to_bytes(4, "big") +
		lsn.to_bytes(8, "big") + (17855).to_bytes(2, "big") +
		bytes(8) + (0).to_bytes(4, "big"))
	rows = []
	size = len(head)
	fill = r.randint(PAGE // 2, PAGE - 1024)
	rp = rng(seed, "rows", p)  # rows mostly stable, a few changed
	while size < fill:
		n = rp.randrange(10**6)
		row = "%d|%s@%s|%d|%s|%08x;" % (
			n, rp.choice(NAMES), rp.choice(DOMAINS),
			BASE - rp.randrange(10**7), rp.choice(WORDS_EN),
			r.getrandbits(32) if rp.random() < 0.1 else n)
		rows.append(row)
		size += len(row)
	body = "".join(rows).encode()[:fill - len(head)]
	out = head + body
	out += bytes(PAGE - 8 - len(out)) + r.randbytes(4) + \
		(lsn & 0xffffffff).to_bytes(4, "big")
	return out


def pem(r, label, nbytes):
	b = base64.b64encode(r.randbytes(nbytes)).decode()
	return ("-----BEGIN %s-----\n%s\n-----END %s-----\n" % (
		label, "\n".join(b[i:i + 64] for i in range(0, len(b), 64)),
		label)).encode()


# -- writing ---------------------------------------------------------------

def put(path, data, mode, t_ns):
	with open(path, "wb") as f:
		f.write(data)
	os.chmod(path, mode)
	os.utime(path, ns=(t_ns, t_ns))


def write_config(st, out):
	"""DIR/config: what sits next to the volume (static across days)."""
	r = rng(st.seed, "config")
	cfg = os.path.join(out, "config")
	shutil.rmtree(cfg, ignore_errors=True)
	t = (BASE - 200 * DAY) * 10**9
	dom = DOMAINS[0]
	files = {
		"stalwart/config.toml": ((
			"[server]\nhostname = \"mail.%s\"\n\n"
			"[server.listener.smtp]\nbind = [\"[::]:25\"]\n"
			"protocol = \"smtp\"\n\n[server.listener.imaptls]\n"
			"bind = [\"[::]:993\"]\nprotocol = \"imap\"\n"
			"tls.implicit = true\n\n[storage]\ndata = \"rocksdb\"\n"
			"fts = \"rocksdb\"\nblob = \"rocksdb\"\n"
			"lookup = \"rocksdb\"\ndirectory = \"internal\"\n\n"
			"[store.rocksdb]\ntype = \"rocksdb\"\n"
			"path = \"/opt/stalwart/data\"\ncompression = \"lz4\"\n"
			"\n[certificate.default]\n"
			"cert = \"%%{file:/opt/stalwart/etc/certs/fullchain.pem}%%\"\n"
			"private-key = \"%%{file:/opt/stalwart/etc/certs/privkey.pem}%%\"\n"
			"\n[authentication.fallback-admin]\nuser = \"admin\"\n"
			"secret = \"$6$%s\"\n" % (dom, binascii.hexlify(
				r.randbytes(24)).decode())).encode(), 0o644),
		"stalwart/config.json": (json.dumps({
			"@type": "RocksDb", "path": "/var/lib/stalwart/",
			"blobSize": 16834, "bufferSize": 134217728,
			"poolWorkers": None, "cacheSize": 134217728},
			separators=(",", ":")).encode(), 0o644),
		"mailcow/mailcow.conf": ((
			"# ------------------------------\n"
			"# mailcow web ui configuration\n"
			"# ------------------------------\n"
			"MAILCOW_HOSTNAME=mail.%s\nDBNAME=mailcow\n"
			"DBUSER=mailcow\nDBPASS=%s\nDBROOT=%s\nREDISPASS=%s\n"
			"HTTP_PORT=80\nHTTPS_PORT=443\nTZ=Europe/Berlin\n"
			"COMPOSE_PROJECT_NAME=mailcowdockerized\n"
			"MAILDIR_SUB=Maildir\nSKIP_CLAMD=n\n" % tuple(
				[dom] + [binascii.hexlify(r.randbytes(14)).decode()
					 for _ in range(3)])).encode(), 0o600),
		"certs/live/mail.%s/cert.pem" % dom: (
			pem(r, "CERTIFICATE", 900), 0o644),
		"certs/live/mail.%s/chain.pem" % dom: (
			pem(r, "CERTIFICATE", 1100), 0o644),
		"certs/live/mail.%s/privkey.pem" % dom: (
			pem(r, "PRIVATE KEY", 1190), 0o600),
		"certs/dhparams.pem": (pem(r, "DH PARAMETERS", 264), 0o644),
		"crypt/ecprivkey.pem": (pem(r, "PRIVATE KEY", 138), 0o600),
		"crypt/ecpubkey.pem": (pem(r, "PUBLIC KEY", 91), 0o644),
	}
	for rel in sorted(files):
		data, mode = files[rel]
		p = os.path.join(cfg, rel)
		os.makedirs(os.path.dirname(p), exist_ok=True)
		put(p, data, mode, t)
	live = os.path.join(cfg, "certs/live/mail.%s" % dom)
	with open(os.path.join(live, "fullchain.pem"), "wb") as f:
		for n in ("cert.pem", "chain.pem"):
			with open(os.path.join(live, n), "rb") as g:
				f.write(g.read())
	os.utime(os.path.join(live, "fullchain.pem"), ns=(t, t))
	link = os.path.join(cfg, "certs/current")
	os.symlink("live/mail.%s" % dom, link)
	os.utime(link, ns=(t, t), follow_symlinks=False)
	for d, _, _ in sorted(os.walk(cfg), reverse=True):
		os.utime(d, ns=(t, t))
	os.chmod(os.path.join(cfg, "crypt"), 0o700)
	return cfg


class Writer:
	def __init__(self, st, text, out):
		self.st, self.text, self.out = st, text, out
		self.sizes = {}  # cid -> (size, vsize)
		self.prev = None  # (dir, {msg id: relpath})
		self.bytes = 0
		self.ix = {}  # mailbox -> Dovecot index state (realmail)

	def name(self, msg):
		s, w = self.sizes[msg.cid]
		n = "%s,S=%d,W=%d" % (msg.base, s, w)
		return n + ":2," + msg.flags if msg.sub == "cur" else n

	def write_day(self, k):
		st, a = self.st, self.st.args
		day = os.path.join(self.out, "day%d" % k)
		shutil.rmtree(day, ignore_errors=True)
		os.makedirs(day)
		snap = BASE + (k - 1) * DAY
		old = (BASE - 800 * DAY) * 10**9
		paths = {}
		written = {}  # cid -> path in this day
		prev_dir, prev_paths = self.prev or (None, {})
		for mb in range(len(st.mbs)):
			for sub in ("cur", "new", "tmp"):
				os.makedirs(os.path.join(day, st.mbdir(mb), sub))
		for msg in sorted(st.msgs.values(), key=lambda m: m.id):
			src = None
			if msg.cid in written:
				src = ("link", written[msg.cid])
			elif msg.id in prev_paths:
				src = ("prev", os.path.join(
					prev_dir, prev_paths[msg.id]))
			data = None
			if src is None:
				u, f, t = st.origin[msg.cid]
				data = make_message(st, self.text, msg.cid, u, f,
						    t)
				self.sizes[msg.cid] = (len(data), len(data) +
						       data.count(b"\n"))
			elif msg.cid not in self.sizes:
				raise RuntimeError("no size for %d" % msg.cid)
			rel = "%s/%s/%s" % (st.mbdir(msg.mb), msg.sub,
					    self.name(msg))
			p = os.path.join(day, rel)
			paths[msg.id] = rel
			if data is not None:
				put(p, data, 0o600, msg.t_ns)
				self.bytes += len(data)
			elif src[0] == "link" or a.link:
				os.link(src[1], p)
			else:
				shutil.copyfile(src[1], p)
				os.chmod(p, 0o600)
				os.utime(p, ns=(msg.t_ns, msg.t_ns))
			written.setdefault(msg.cid, p)
		self.control_files(day, k)
		self.sieve(day)
		if a.profile == "realmail":
			self.index_files(day, k)
		else:
			self.database(day, k, prev_dir)
		self.set_dir_times(day, snap, old)
		if a.xattrs:
			self.xattrs(day)
		if a.owner:
			uid, gid = (int(x) for x in a.owner.split(":"))
			for d, dirs, files in os.walk(day):
				os.lchown(d, uid, gid)
				for n in files:
					os.lchown(os.path.join(d, n), uid, gid)
		self.prev = (day, paths)
		return day

	def control_files(self, day, k):
		st = self.st
		byuser = {}
		for mb, m in enumerate(st.mbs):
			d = os.path.join(day, st.mbdir(mb))
			t = m.changed * 10**9
			lines = ["3 V%d N%d G%s" % (m.uidvalidity, m.next_uid,
						    m.guid)]
			for mid, uid in sorted(m.uids.items(),
					       key=lambda x: x[1]):
				msg = st.msgs[mid]
				s, w = self.sizes[msg.cid]
				lines.append("%d :%s,S=%d,W=%d" % (
					uid, msg.base, s, w))
				tot = byuser.setdefault(m.user, [0, 0, 0])
				tot[0] += s
				tot[1] += 1
				tot[2] = max(tot[2], t)
			put(os.path.join(d, "dovecot-uidlist"),
			    ("\n".join(lines) + "\n").encode(), 0o600, t)
			if m.keywords:
				put(os.path.join(d, "dovecot-keywords"), "".join(
					"%d %s\n" % (i, kw) for i, kw in
					enumerate(KEYWORDS)).encode(), 0o600, t)
			if m.folder:
				put(os.path.join(d, "maildirfolder"), b"", 0o600,
				    m.uidvalidity * 10**9)
				continue
			# INBOX = Maildir root: per-user files
			names = sorted(st.mbs[i].folder[1:].replace(".", "\t")
				       for i in st.user_mbs[m.user]
				       if st.mbs[i].folder)
			put(os.path.join(d, "subscriptions"),
			    ("V\t2\n\n" + "\n".join(names) + "\n").encode(),
			    0o600, m.uidvalidity * 10**9)
			put(os.path.join(d, "dovecot-uidvalidity"),
			    b"%08x" % m.uidvalidity, 0o600,
			    m.uidvalidity * 10**9)
			put(os.path.join(d, "dovecot-uidvalidity.%08x" %
					 m.uidvalidity), b"", 0o444,
			    m.uidvalidity * 10**9)
		for mb, m in enumerate(st.mbs):
			if m.folder:
				continue
			b, n, t = byuser.get(m.user, [0, 0, 0])
			# maildirsize: the quota line, day 1's recount, then
			# one delta line a day (as Dovecot appends them)
			r = rng(st.seed, "quota", m.user)
			lines = ["10737418240S,100000C",
				 "%d %d" % (b - r.randrange(1, 10**6) * (k - 1),
					    n - 3 * (k - 1))]
			lines += ["%d 3" % r.randrange(1, 10**6)
				  for _ in range(k - 1)]
			d = os.path.join(day, st.mbdir(mb))
			put(os.path.join(d, "maildirsize"),
			    ("\n".join(lines) + "\n").encode(), 0o600,
			    max(t, m.changed * 10**9))

	def index_files(self, day, k):
		"""Dovecot's index files of every folder, as they change from
		day to day: dovecot.index (a header and one record per message,
		rewritten when the folder changed), dovecot.index.cache (cached
		header fields appended per new message; expunged records stay
		until the file is compressed) and dovecot.index.log (one record
		per change, appended; rotated to .log.2 above 32 KiB)."""
		st = self.st
		for mb, m in enumerate(st.mbs):
			d = os.path.join(day, st.mbdir(mb))
			t = m.changed * 10**9
			cur = {}
			for mid, uid in m.uids.items():
				msg = st.msgs[mid]
				fl = 0
				for i, ch in enumerate("DFRST"):
					if ch in msg.flags:
						fl |= 1 << i
				if msg.sub == "new":
					fl |= 1 << 5  # \Recent
				cur[uid] = (fl, msg.cid)
			x = self.ix.get(mb)
			if x is None:
				x = {"flags": {}, "log": bytearray(), "seq": 1,
				     "log2": None, "cache": [], "dead": 0,
				     "mod": 0, "ltime": t, "cgen": 0,
				     "ctime": t, "ms": {}}
				self.ix[mb] = x
			prev = x["flags"]
			recs = []
			for uid in sorted(set(prev) - set(cur)):
				recs.append(struct.pack("<IIII", 2, uid, 0, k))
			for uid in sorted(cur):
				fl, cid = cur[uid]
				if uid not in prev:
					recs.append(struct.pack(
						"<IIII", 1, uid, fl, k) +
						hashlib.sha256(b"%s:%d" % (
							str(st.seed).encode(),
							cid)).digest()[:16])
					x["cache"].append((uid, cid))
					x["ms"][uid] = x["mod"] + 1
				elif prev[uid][0] != fl:
					recs.append(struct.pack(
						"<IIII", 4, uid, fl, k))
					x["ms"][uid] = x["mod"] + 1
			x["dead"] += len(set(prev) - set(cur))
			if recs:
				x["mod"] += 1
				x["ltime"] = t
			if len(x["log"]) > 32768:
				x["log2"] = bytes(x["log"])
				x["log"] = bytearray()
				x["seq"] += 1
			if not x["log"]:
				x["log"] += struct.pack("<IIII", 0x10003,
							m.uidvalidity,
							x["seq"], 0)
			x["log"] += b"".join(recs)
			ncache = len(x["cache"])
			if x["dead"] * 4 > max(8, len(cur)):
				# Dovecot compresses the cache: records of
				# expunged mail are dropped, offsets change
				x["cache"] = [(u, c) for u, c in x["cache"]
					      if u in cur]
				x["dead"] = 0
				ncache = -1
			if ncache != x.get("clen"):
				# flag changes leave the cache alone; new
				# mail and compression change it
				x["cgen"] += 1
				x["ctime"] = t
				x["clen"] = len(x["cache"])
			cache = [struct.pack("<IIII", 0x20001, m.uidvalidity,
					     len(x["cache"]), x["cgen"])]
			offs = {}
			pos = 16
			for uid, cid in x["cache"]:
				rc = rng(st.seed, "cache", cid)
				txt = ("date %d from %s@%s subject %s" % (
					BASE - rc.randrange(10**8),
					rc.choice(NAMES), rc.choice(DOMAINS),
					" ".join(rc.choices(WORDS_EN,
							    k=rc.randint(3, 30)))
				)).encode()
				rec = struct.pack("<II", uid, len(txt)) + txt
				offs[uid] = pos
				cache.append(rec)
				pos += len(rec)
			hdr = struct.pack("<IIIIII", 0x30007, m.uidvalidity,
					  m.next_uid, len(cur), x["seq"],
					  len(x["log"]))
			idx = [hdr + bytes(128 - len(hdr))]
			for uid in sorted(cur):
				# the modseq extension: each message's own
				# modseq, raised only when it changes (as
				# Dovecot keeps it), not the folder's
				idx.append(struct.pack("<IIIQI", uid, cur[uid][0],
						       offs.get(uid, 0),
						       x["ms"].get(uid, 0), 0))
			put(os.path.join(d, "dovecot.index"), b"".join(idx),
			    0o600, x["ltime"])
			put(os.path.join(d, "dovecot.index.cache"),
			    b"".join(cache), 0o600, x["ctime"])
			put(os.path.join(d, "dovecot.index.log"),
			    bytes(x["log"]), 0o600, x["ltime"])
			if x["log2"] is not None:
				put(os.path.join(d, "dovecot.index.log.2"),
				    x["log2"], 0o600, x["ltime"])
			x["flags"] = cur

	def sieve(self, day):
		st = self.st
		d = os.path.join(day, "sieve")
		os.makedirs(d)
		t = (BASE - 300 * DAY) * 10**9
		for u, (dom, name, _) in enumerate(st.users):
			if u % 2:
				continue
			r = rng(st.seed, "sieve", u)
			base = os.path.join(d, "%s@%s" % (name, dom))
			put(base + ".sieve", (
				"require [\"fileinto\", \"vacation\"];\n"
				"if header :contains \"X-Spam-Flag\" \"YES\" {\n"
				"  fileinto \"Junk\";\n}\n"
				"if address :is \"from\" \"boss@partner.example\" {"
				"\n  fileinto \"Archive\";\n}\n").encode(),
			    0o644, t)
			put(base + ".svbin", r.randbytes(700), 0o644, t)

	def database(self, day, k, prev_dir):
		st = self.st
		d = os.path.join(day, "mariadb")
		os.makedirs(d)
		p = os.path.join(d, "ibdata1")
		t = (BASE + (k - 1) * DAY - 60) * 10**9
		prev = os.path.join(prev_dir, "mariadb/ibdata1") \
			if prev_dir else None
		if prev and os.path.exists(prev):
			shutil.copyfile(prev, p)
			with open(p, "r+b") as f:
				for pg, ver in sorted(st.page_ver.items()):
					if ver == k:
						f.seek(pg * PAGE)
						f.write(page_bytes(st.seed, pg,
								   ver))
		else:
			with open(p, "wb") as f:
				for pg in range(st.pages):
					f.write(page_bytes(st.seed, pg,
							   st.page_ver.get(pg,
									   1)))
		os.chmod(p, 0o660)
		os.utime(p, ns=(t, t))
		# a sparse redo log: written blocks at a rotating offset
		lp = os.path.join(d, "ib_logfile0")
		size = (1 if st.args.small else 48) << 20
		r = rng(st.seed, "redo", k)
		with open(lp, "wb") as f:
			f.truncate(size)
			f.write(b"IB_LOG" + r.randbytes(2042))
			off = (k * 7 * 65536) % (size - 65536)
			f.seek(off - off % 4096)
			f.write(r.randbytes(3 * 4096))
		os.chmod(lp, 0o660)
		os.utime(lp, ns=(t, t))

	def xattrs(self, day):
		st = self.st
		for i, msg in enumerate(sorted(st.msgs.values(),
					       key=lambda m: m.id)[:5]):
			p = os.path.join(day, st.mbdir(msg.mb), msg.sub,
					 self.name(msg))
			os.setxattr(p, "user.mailvault.test", b"message %d" % i)
		os.setxattr(os.path.join(day, "sieve"), "user.comment",
			    "sieve scripts \xfc".encode())

	def set_dir_times(self, day, snap, old):
		st = self.st
		roots = {st.mbdir(mb): m.changed for mb, m in enumerate(st.mbs)}
		for dirpath, _, _ in sorted(os.walk(day), reverse=True):
			rel = os.path.relpath(dirpath, day)
			t = st.dirtime.get(rel)
			if t is None:
				t = roots.get(rel, old // 10**9)
			if rel in ("mariadb", "."):
				t = snap - 60
			os.chmod(dirpath, 0o700 if "/" in rel else 0o755)
			os.utime(dirpath, ns=(t * 10**9, t * 10**9))


class Tar:
	"""`tar -czf - -C dayK .` into dayK.tar.gz, in the background while
	the next days are generated: gzip is the slow part (about 90 s for a
	1 GB day), so as many run at once as there are cores."""

	def __init__(self, out, fmt, done):
		self.out, self.fmt, self.done = out, fmt, done
		self.jobs = []
		self.max = max(1, os.cpu_count() or 1)

	def start(self, k):
		while len(self.jobs) >= self.max:
			self._finish(self.jobs[0])
		day = os.path.join(self.out, "day%d" % k)
		dst = os.path.join(self.out, "day%d.tar.gz" % k)
		extra = ["--xattrs"] if self.fmt in ("pax", "posix") else []
		f = open(dst + ".tmp", "wb")
		# gzip writes no name and a zero time for a pipe: reproducible
		p = subprocess.Popen(["tar", "--format=" + self.fmt,
				      "--sort=name"] + extra +
				     ["-czf", "-", "-C", day, "."], stdout=f)
		self.jobs.append((p, f, dst, k))

	def _finish(self, job):
		p, f, dst, k = job
		self.jobs.remove(job)
		rc = p.wait()
		f.close()
		if rc != 0:
			raise RuntimeError("tar failed for %s (exit %d)" % (dst, rc))
		os.replace(dst + ".tmp", dst)
		self.done(k, dst)

	def wait(self, k=None):
		"""Finish the archive of day k (or all of them)."""
		for job in list(self.jobs):
			if k is None or job[3] == k:
				self._finish(job)


def main(argv=None):
	ap = argparse.ArgumentParser(
		usage=argparse.SUPPRESS, description=__doc__,
		formatter_class=argparse.RawDescriptionHelpFormatter)
	ap.add_argument("--out", required=True)
	ap.add_argument("--seed", default="1")
	ap.add_argument("--messages", type=int)
	ap.add_argument("--size-mb", type=float)
	ap.add_argument("--users", type=int)
	g = ap.add_mutually_exclusive_group()
	g.add_argument("--days", type=int, default=1)
	g.add_argument("--day", type=int)
	ap.add_argument("--tar", action="store_true")
	ap.add_argument("--tar-only", action="store_true")
	ap.add_argument("--tar-format", default="gnu",
			choices=["gnu", "pax", "ustar", "posix"])
	ap.add_argument("--link", action="store_true")
	ap.add_argument("--owner")
	ap.add_argument("--xattrs", action="store_true")
	ap.add_argument("--small", action="store_true")
	ap.add_argument("--profile", default="default",
			choices=["default", "realmail"])
	ap.add_argument("--quiet", action="store_true")
	a = ap.parse_args(argv)
	real = a.profile == "realmail"
	if a.users is None:
		a.users = 6 if real else 3 if a.small else 8
	if a.messages is None:
		if a.size_mb and real:
			# no database: messages and their indexes are the volume
			a.messages = max(10, int(a.size_mb * 2**20 / AVG_REAL))
		elif a.size_mb:
			# messages make about 90% of a day, the database the rest
			avg = AVG_SMALL if a.small else AVG_MSG
			a.messages = max(10, int(a.size_mb * 0.9 * 2**20 / avg))
		else:
			a.messages = 5500 if real else 300 if a.small else 2000
	if a.users < 1 or a.messages < 1:
		ap.error("--users and --messages must be positive")
	last = a.day if a.day else a.days
	if last < 1:
		ap.error("days start at 1")
	if a.owner and (":" not in a.owner):
		ap.error("--owner wants UID:GID")
	want = {a.day} if a.day else set(range(1, a.days + 1))
	if a.tar_only:
		a.tar = True
	os.makedirs(a.out, exist_ok=True)

	def log(msg):
		if not a.quiet:
			print("gen_fixture: " + msg, file=sys.stderr)

	t0 = time.monotonic()
	st = State(a)
	text = Text(a.seed)
	w = Writer(st, text, a.out)
	write_config(st, a.out)
	manifest = {"seed": a.seed, "messages": a.messages,
		    "users": a.users, "days": {}}
	def tar_done(k, path):
		manifest["days"][str(k)]["tar_bytes"] = os.path.getsize(path)

	tar = Tar(a.out, a.tar_format, tar_done)
	done = []  # days written, oldest first
	for k in range(1, last + 1):
		if k == 1:
			st.day1()
		elif a.profile == "realmail":
			st.churn_real(k)
		else:
			st.churn(k)
		if k not in want:
			continue
		w.write_day(k)
		info = dict(st.counts[k])
		info["time"] = BASE + (k - 1) * DAY
		info["time_iso"] = time.strftime("%Y-%m-%dT%H:%M:%SZ",
						 time.gmtime(info["time"]))
		manifest["days"][str(k)] = info
		if a.tar:
			tar.start(k)
			if a.link:
				# linking into the next day changes the ctime
				# of these files, and tar would see it
				tar.wait()
			if a.tar_only and done:
				# day k is written: its predecessor may go
				tar.wait(done[-1])
				shutil.rmtree(os.path.join(a.out,
							   "day%d" % done[-1]))
		done.append(k)
		log("day %d: %s (%.1fs, %d MB generated)" % (
			k, " ".join("%s=%s" % x for x in sorted(info.items())
				    if x[0] != "time_iso"),
			time.monotonic() - t0, w.bytes >> 20))
	if a.tar:
		tar.wait()
		if a.tar_only and done:
			shutil.rmtree(os.path.join(a.out, "day%d" % done[-1]))
		log("archives written (%.1fs)" % (time.monotonic() - t0))
	with open(os.path.join(a.out, "manifest.json"), "w") as f:
		json.dump(manifest, f, indent=1, sort_keys=True)
		f.write("\n")
	return 0


if __name__ == "__main__":
	sys.exit(main())
