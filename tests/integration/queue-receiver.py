#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A callback receiver for the queue's tests (test-queue*.sh): a real HTTP
server that appends one JSON line per POST it receives to LOG (path,
X-Nap-Delivery, X-Nap-Attempt, X-Nap-Signature, the body) and answers 200,
or 500 to the first FAIL requests of each delivery id. It writes its port
to PORTFILE once listening.

    queue-receiver.py LOG PORTFILE [FAIL [PORT]]
"""
import http.server
import json
import os
import sys

LOG, PORTFILE = sys.argv[1], sys.argv[2]
FAIL = int(sys.argv[3]) if len(sys.argv) > 3 else 0
PORT = int(sys.argv[4]) if len(sys.argv) > 4 else 0
seen = {}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        delivery = self.headers.get("X-Nap-Delivery", "")
        seen[delivery] = seen.get(delivery, 0) + 1
        failing = seen[delivery] <= FAIL
        with open(LOG, "a") as f:
            f.write(json.dumps({
                "path": self.path, "delivery": delivery,
                "attempt": self.headers.get("X-Nap-Attempt", ""),
                "signature": self.headers.get("X-Nap-Signature", ""),
                "answered": 500 if failing else 200,
                "body": body.decode("utf-8", "replace")}) + "\n")
        self.send_response(500 if failing else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
with open(PORTFILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORTFILE + ".tmp", PORTFILE)
server.serve_forever()
