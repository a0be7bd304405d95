#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""What a client of a nap app sees, for test-zero-downtime.sh.

client  ETCD PREFIX STOP OUT: until the file STOP exists, reads the app's
        published endpoints from etcd (its v3 JSON gateway, every time, as a
        client that finds instances through nap's keys does), picks one and
        requests /health from it. A request that fails, or finds no endpoint
        at all, is a failure. OUT gets "OK FAILED" and one line per failure.
fixed   URL STOP OUT: the same against one URL, without etcd.
sample  INSTANCES SERVICE STOP OUT: until STOP exists, counts how many of
        the app's instances (their manifests in INSTANCES) answer /health;
        OUT gets "SAMPLES MIN MAX".
Standard library only.
"""

import base64
import glob
import json
import os
import random
import sys
import time
import urllib.request

TIMEOUT = 2.0


def b64(s):
    return base64.b64encode(s.encode()).decode()


def prefix_end(prefix):
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def endpoints(etcd, prefix):
    body = json.dumps({"key": b64(prefix), "range_end": b64(prefix_end(prefix))}).encode()
    req = urllib.request.Request(etcd + "/v3/kv/range", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
        kvs = json.load(r).get("kvs", [])
    out = []
    for kv in kvs:
        v = json.loads(base64.b64decode(kv["value"]))
        host = v["host"]
        out.append("http://%s:%d" % ("[%s]" % host if ":" in host else host, v["port"]))
    return out


def answers(url):
    with urllib.request.urlopen(url + "/health", timeout=TIMEOUT) as r:
        return r.status == 200 and r.read() == b"ok\n"


def loop(stop, out, pick):
    ok, failed, why = 0, 0, []
    while not os.path.exists(stop):
        try:
            url = pick()
            if answers(url):
                ok += 1
            else:
                failed += 1
                why.append("%s: bad answer" % url)
        except Exception as e:  # anything a client would see as an error
            failed += 1
            why.append("%.3f %s" % (time.time(), e))
        if ok + failed == 1:
            open(out + ".started", "w").close()
        time.sleep(0.005)
    with open(out, "w") as f:
        f.write("%d %d\n" % (ok, failed))
        f.write("".join(w + "\n" for w in why[:20]))


def pick_from_etcd(etcd, prefix):
    def pick():
        l = endpoints(etcd, prefix)
        if not l:
            raise RuntimeError("no endpoint published")
        return random.choice(l)
    return pick


def count_answering(instances, service):
    n = 0
    for path in glob.glob(os.path.join(instances, service + "_common@*.json")):
        try:
            with open(path) as f:
                port = json.load(f)["port"]
            n += answers("http://127.0.0.1:%d" % port)
        except Exception:
            pass
    return n


def sample(instances, service, stop, out):
    counts = []
    while not os.path.exists(stop):
        counts.append(count_answering(instances, service))
        time.sleep(0.02)
    with open(out, "w") as f:
        f.write("%d %d %d\n" % (len(counts), min(counts, default=0), max(counts, default=0)))


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "client":
        etcd, prefix, stop, out = args
        loop(stop, out, pick_from_etcd(etcd, prefix))
    elif mode == "fixed":
        url, stop, out = args
        loop(stop, out, lambda: url)
    elif mode == "sample":
        sample(*args)
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
