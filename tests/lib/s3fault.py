#!/usr/bin/env python3
"""s3fault.py: an HTTP proxy in front of radosgw that injects S3 faults.

    s3fault.py PORTFILE UPSTREAM_PORT MODE COUNT LOG

Listens on 127.0.0.1 and a free port (written to PORTFILE), forwards every
request to 127.0.0.1:UPSTREAM_PORT with its headers unchanged (the SigV4
signature covers Host, which stays the proxy's), and spoils the first COUNT
requests that MODE picks:

  slowdown   any request: answer 503 SlowDown without forwarding
  reset-put  a PUT of a pack: read half the body, then reset the connection
             (the upload never reaches the server whole)
  lost-reply a PUT of a pack: forward it whole, then reset the connection
             instead of answering (the object exists, the client does not
             know)

Each request is logged to LOG as "METHOD PATH -> what".
"""
import http.client
import http.server
import os
import socket
import struct
import sys
import threading

portfile, upstream, mode, count, logpath = sys.argv[1:6]
upstream = int(upstream)
left = int(count)
lock = threading.Lock()
log = open(logpath, "a", buffering=1)


def take(method, path):
    global left
    with lock:
        if left <= 0:
            return False
        if mode == "slowdown" or (method == "PUT" and "/packs/" in path):
            left -= 1
            return True
        return False


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reset(self):
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                   struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        spoil = take(self.command, self.path)
        if spoil and mode == "slowdown":
            self.rfile.read(n)
            body = (b'<?xml version="1.0" encoding="UTF-8"?><Error>'
                    b"<Code>SlowDown</Code><Message>Please reduce your "
                    b"request rate.</Message></Error>")
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            log.write("%s %s -> 503\n" % (self.command, self.path))
            return
        if spoil and mode == "reset-put":
            self.rfile.read(n // 2)
            log.write("%s %s -> reset mid-body\n" % (self.command, self.path))
            self.reset()
            return
        body = self.rfile.read(n) if n else None
        c = http.client.HTTPConnection("127.0.0.1", upstream, timeout=60)
        hdrs = {k: v for k, v in self.headers.items()
                if k.lower() not in ("expect", "connection")}
        c.request(self.command, self.path, body=body, headers=hdrs)
        r = c.getresponse()
        data = r.read()
        c.close()
        if spoil and mode == "lost-reply":
            log.write("%s %s -> %d, reply lost\n" %
                      (self.command, self.path, r.status))
            self.reset()
            return
        log.write("%s %s -> %d\n" % (self.command, self.path, r.status))
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("transfer-encoding", "connection",
                                 "content-length"):
                self.send_header(k, v)
        if self.command == "HEAD":
            self.send_header("Content-Length",
                             r.getheader("Content-Length") or "0")
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
with open(portfile + ".tmp", "w") as f:
    f.write("%d\n" % srv.server_address[1])
os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
