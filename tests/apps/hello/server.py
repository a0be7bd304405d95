#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""nap's sample app: a tiny HTTP server that shows the parameters it got.

GET /          "GREETING from INSTANCE on port PORT\n"
GET /greeting  the greeting exactly as received in argv, nothing added
GET /params    JSON: greeting, port, instance, argv, PORT from the environment
GET /health    "ok\n"
GET /env       JSON: the process's environment (napctl config set reaches it)

INSTANCE is the basename of the working directory (nap runs each instance
in its own copy, e.g. alice_hello_1). Standard library only.
"""

import argparse
import http.server
import json
import os
import signal
import sys
import time


def log(message):
    # stdout goes to the journal; flush so each line arrives at once.
    print(message, flush=True)


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "nap-hello/1"

    def reply(self, status, body, content_type="text/plain; charset=utf-8"):
        data = body.encode("utf-8", "surrogateescape")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):
        s = self.server
        if self.path == "/":
            self.reply(200, "%s from %s on port %d\n" % (s.greeting, s.instance, s.port))
        elif self.path == "/greeting":
            self.reply(200, s.greeting)
        elif self.path == "/params":
            body = {"greeting": s.greeting, "port": s.port, "instance": s.instance,
                    "argv": sys.argv[1:], "env_port": os.environ.get("PORT")}
            self.reply(200, json.dumps(body) + "\n", "application/json")
        elif self.path == "/env":
            self.reply(200, json.dumps(dict(os.environ)) + "\n", "application/json")
        elif self.path == "/health":
            self.reply(200, "ok\n")
        else:
            self.reply(404, "not found\n")

    do_HEAD = do_GET

    def log_message(self, fmt, *args):
        log("request %s %s" % (self.address_string(), fmt % args))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--greeting", default="hello")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    p.add_argument("--delay", type=float, default=0.0,
                   help="seconds to wait before listening (to test slow starts)")
    args = p.parse_args()

    # SIGTERM (systemctl stop) ends serve_forever() through SystemExit, so
    # the socket is closed and the exit status is 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))

    if args.delay > 0:
        log("waiting %.1f s before listening" % args.delay)
        time.sleep(args.delay)

    http.server.ThreadingHTTPServer.allow_reuse_address = True
    server = http.server.ThreadingHTTPServer((args.bind, args.port), Handler)
    server.greeting = args.greeting
    server.port = args.port
    server.instance = os.path.basename(os.getcwd())
    log("listening on %d" % args.port)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        log("stopped")


if __name__ == "__main__":
    main()
