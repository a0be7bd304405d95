#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The harness itself, without nap: the sandbox boots a real user manager
# and journald, runs the sample app from a hand-written unit, serves HTTP,
# logs to the journal, survives a manager restart, and leaves nothing behind.
# When this fails, the machine cannot run the integration tests at all;
# when it passes and test-core.sh fails, nap is at fault.

. "$(dirname "$0")/lib.sh"
nap_sandbox_enter "$@"

SRC=${NAP_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
NAP_GENERATOR=${NAP_GENERATOR-} # optional here
nap_sandbox_start

check "user manager is running" nap__manager_running
check "the manager runs in the sandbox's cgroup" \
        grep -q "/$NAP_SANDBOX_ID.slice/user@0.service/init.scope" "/proc/$NAP_MANAGER_PID/cgroup"
bus_ping() {
        timeout 10 busctl --user call org.freedesktop.systemd1 /org/freedesktop/systemd1 \
                org.freedesktop.DBus.Peer Ping >/dev/null
}
check "the manager answers on the user bus" bus_ping

port=$NAP_PORT_MIN
unitdir=$XDG_RUNTIME_DIR/systemd/user
mkdir -p "$unitdir/default.target.wants" "$NAP_TEST_DIR/app"
cp "$SRC/tests/apps/hello/server.py" "$NAP_TEST_DIR/app/"
cat >"$unitdir/sandbox-hello.service" <<EOF
[Service]
WorkingDirectory=$NAP_TEST_DIR/app
ExecStart=python3 server.py --port \${PORT} --greeting "hand written"
Environment=PORT=$port
PrivateTmp=yes
ProtectHome=yes
[Install]
WantedBy=default.target
EOF
ln -s ../sandbox-hello.service "$unitdir/default.target.wants/sandbox-hello.service"
timeout 30 systemctl --user daemon-reload
check "a unit starts" timeout 30 systemctl --user start sandbox-hello.service
body=$(http_get "http://127.0.0.1:$port/")
assert_eq "the unit serves HTTP" "hand written from app on port $port" "$body"
# journald stores the line on its own time: wait for it (j is the last look).
unit_logged() {
        j=$(timeout 10 journalctl --no-pager -q --user-unit sandbox-hello.service -o cat)
        [[ $j == *"$1"* ]]
}
wait_until 10 unit_logged "listening on $port"
assert_contains "journald files the app's output under its user unit" "$j" "listening on $port"

nap_manager_restart
check "manager is back after restart" nap__manager_running
body=$(http_get "http://127.0.0.1:$port/")
assert_eq "the enabled unit came back after the restart" "hand written from app on port $port" "$body"

timeout 30 systemctl --user stop sandbox-hello.service
check "a stopped unit stops serving" wait_until 10 http_refused "http://127.0.0.1:$port/"

if [ -n "$NAP_GENERATOR" ]; then
        check "the generator is installed for the manager" test -x /run/systemd/user-generators/nap-generator
fi

nap_summary
