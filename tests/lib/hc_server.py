"""hc_server.py OUT: a healthchecks.io stand-in for the job tests.

Listens on 127.0.0.1 (a free port, written to OUT/port once it listens)
and answers every GET and POST with 200 "OK", recording the request as
"METHOD PATH" in OUT/requests and its body in OUT/body.K, K being the
number of requests recorded before it (a test that empties OUT/requests
starts K at 0 again).  Python 3 standard library only.
"""
import http.server
import os
import sys

out = sys.argv[1]


class Handler(http.server.BaseHTTPRequestHandler):
    def record(self, method):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        with open(out + "/requests") as f:
            k = sum(1 for _ in f)
        with open(out + "/requests", "a") as f:
            f.write("%s %s\n" % (method, self.path))
        with open(out + "/body.%d" % k, "wb") as f:
            f.write(body)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def do_GET(self):
        self.record("GET")

    def do_POST(self):
        self.record("POST")

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
with open(out + "/port.tmp", "w") as f:
    f.write(str(server.server_port))
os.rename(out + "/port.tmp", out + "/port")
server.serve_forever()
