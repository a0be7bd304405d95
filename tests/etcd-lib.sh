# SPDX-License-Identifier: LGPL-2.1-or-later
# Sourced (bash) by integration tests and benchmarks: a throwaway etcd
# (Debian's /usr/bin/etcd) on free loopback ports with its own data dir.
#
#   etcd_start DIR   start one member under DIR (data in DIR/etcd, log in
#                    DIR/etcd.log); sets ETCD_PID and ETCD_URL; waits up to
#                    15 s for /health. Retries with new ports if etcd dies
#                    (a port taken between choosing and binding it).
#   etcd_stop        SIGTERM and wait; the data dir stays (restart with the
#                    same DIR and ports keeps the data; rm it to wipe).
#   etcd_free_port   print a port nothing listens on right now.

ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
ETCD_PID=
ETCD_URL=

etcd_free_port() {
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

etcd_healthy() {
        curl -sf --max-time 1 "$ETCD_URL/health" 2>/dev/null | grep -q '"health":"true"'
}

# etcd_start_on DIR CLIENT_PORT PEER_PORT: one attempt; 0 once healthy.
etcd_start_on() {
        local dir=$1 cport=$2 pport=$3 i
        ETCD_URL=http://127.0.0.1:$cport
        "$ETCD_BIN" --name default --data-dir "$dir/etcd" \
                --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
                --listen-peer-urls "http://127.0.0.1:$pport" \
                --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
                --initial-cluster "default=http://127.0.0.1:$pport" \
                >>"$dir/etcd.log" 2>&1 &
        ETCD_PID=$!
        for i in $(seq 300); do
                etcd_healthy && return 0
                kill -0 "$ETCD_PID" 2>/dev/null || break
                sleep 0.05
        done
        etcd_stop
        return 1
}

etcd_start() {
        local dir=$1 attempt
        mkdir -p "$dir"
        for attempt in 1 2 3; do
                etcd_start_on "$dir" "$(etcd_free_port)" "$(etcd_free_port)" && return 0
        done
        echo "etcd did not become healthy; see $dir/etcd.log" >&2
        return 1
}

etcd_stop() {
        if [ -n "$ETCD_PID" ]; then
                kill "$ETCD_PID" 2>/dev/null || true
                wait "$ETCD_PID" 2>/dev/null || true
                ETCD_PID=
        fi
}
