#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Issue 11: nap-managerd's connection limits, behind nap-managerd.socket in
# a real systemd user manager (lib.sh).
#   - with the defaults, 200 connections of one uid open at once are all
#     served (the old per-uid cap of 128 reset the rest);
#   - MaxConnectionsPerUser= and MaxConnections= of nap.conf: a connection
#     over either is sent io.nap.Manager.TooManyConnections, naming the
#     limit, then closed; napctl prints its message; other uids are not
#     counted against one uid's limit; a place freed is served again;
#   - the limits follow the configuration; a bad value names the key.
#
#   NAP_BUILD_ROOT=build NAP_GENERATOR=build/generators/nap-generator NAPCTL=build/cli/napctl \
#           tests/integration/test-limits.sh
# Needs root; exits 77 otherwise.

. "$(dirname "$0")/lib.sh"

SRC=${NAP_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
if [ -z "${NAP_SANDBOX_INSIDE:-}" ]; then
        NAP_BUILD_ROOT=$(realpath "${NAP_BUILD_ROOT:?set NAP_BUILD_ROOT to the build directory}")
        nap_napctl_env
        [ -x "$NAP_BUILD_ROOT/helpers/nap-managerd" ] || { echo "Bail out! nap-managerd is not built"; exit 1; }
fi
nap_sandbox_enter "$@"
nap_need jq socat setpriv python3

nap_sandbox_start
nap_users_setup || { echo "Bail out! cannot set up the test users"; exit 1; }
chmod 0711 "$XDG_RUNTIME_DIR" # other uids reach the socket, as /run/nap
T=$NAP_TEST_DIR
nap_managerd_install --idle-timeout=60 || { echo "Bail out! cannot install nap-managerd's units"; exit 1; }
M=io.nap.Manager
TOO_MANY=$M.TooManyConnections

svc_prop() { timeout 30 systemctl --user show -P "$1" nap-managerd.service 2>&1; }
status_is() { [ "$(svc_prop StatusText)" = "$1" ]; }

# many N: N connections open at once, then a GetInfo on each; prints one
# line per connection, in the order they connected: its reply, or
# "closed" when none came.
cat >"$T/many.py" <<'EOF'
import socket, sys
conns = []
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(sys.argv[1])
    conns.append(s)
for s in conns:
    try:
        s.sendall(b'{"method":"org.varlink.service.GetInfo"}\0')
    except OSError:
        pass  # refused and closed already: its answer is there to read
for s in conns:
    buf = b""
    try:
        while not buf.endswith(b"\0"):
            d = s.recv(65536)
            if not d:
                break
            buf += d
    except OSError:
        pass
    print(buf.rstrip(b"\0").decode() if buf.endswith(b"\0") else "closed")
EOF
many() { timeout 60 python3 "$T/many.py" "$NAP_VARLINK_SOCKET" "$1"; }
# what each connection got: "ok", or the error's name
outcomes() { jq -r 'if .error then .error else "ok" end' 2>&1 | sort | uniq -c | awk '{ printf "%s %s;", $1, $2 }'; }
# The limits are read at start: the next connection starts the daemon anew.
set_limits() { # MaxConnections= MaxConnectionsPerUser=
        sed -i '/^MaxConnections/d' "$NAP_CONFIG"
        printf 'MaxConnections=%s\nMaxConnectionsPerUser=%s\n' "$1" "$2" >>"$NAP_CONFIG"
        timeout 30 systemctl --user stop nap-managerd.service
}
# Every connection of the last round is gone, as the daemon sees it.
idle() { wait_until 10 status_is Idle; }

# ======================================================== the defaults
log "defaults: 200 connections of one uid"
many 200 >"$T/many.out"
assert_eq "200 connections of root open at once: every one answered" "200 ok;" "$(outcomes <"$T/many.out")"

# ===================================================== per user, in all
log "MaxConnectionsPerUser=2, MaxConnections=3"
set_limits 3 2
many 4 >"$T/many.out"
assert_eq "4 connections of root: 2 answered, 2 refused by name" "2 $TOO_MANY;2 ok;" "$(outcomes <"$T/many.out")"
REFUSAL=$(sed -n 3p "$T/many.out")
assert_eq "the refusal names the limit, per user" "2 true" "$(jq -r '"\(.parameters.limit) \(.parameters.per_user)"' <<<"$REFUSAL" 2>&1)"
assert_contains "and says which key sets it" "$(jq -r .parameters.message <<<"$REFUSAL" 2>&1)" "MaxConnectionsPerUser="
check "the daemon saw them go" idle

conn_open a && conn_open b
assert_eq "two root connections held open are served" "nap-managerd nap-managerd" \
        "$(conn_call a '{"method":"org.varlink.service.GetInfo"}' | jq -r .parameters.product) $(conn_call b \
                '{"method":"org.varlink.service.GetInfo"}' | jq -r .parameters.product)"
OUT=$(timeout 60 "$NAPCTL" --user list-services alice 2>&1)
RC=$?
assert_eq "a third, napctl's, fails (exit 1)" 1 "$RC"
assert_contains "napctl prints the refusal's message" "$OUT" \
        "at most 2 connections of one user (MaxConnectionsPerUser= in nap.conf)"
assert_eq "napctl --json names the error" "$TOO_MANY" \
        "$(timeout 60 "$NAPCTL" --user --json list-services alice 2>&1 | jq -r .error 2>&1)"
VARLINK_UID=$BOB_UID conn_open bob
assert_eq "another uid is not counted against root's limit" nap-managerd \
        "$(conn_call bob '{"method":"org.varlink.service.GetInfo"}' | jq -r .parameters.product 2>&1)"
VARLINK_UID=$ALICE_UID varlink_call_out $M.ListServices '{"user":"alice"}'
varlink_assert_reply "with 3 open, alice's first is refused by MaxConnections=" \
        '"\(.error) \(.parameters.limit) \(.parameters.per_user)"' "$TOO_MANY 3 false"
conn_hangup a
root_served() { varlink_call org.varlink.service.GetInfo | grep -q '"product":"nap-managerd"'; }
check "once root closes one, root is served again" wait_until 10 root_served
assert_eq "the connections held all along are still served" "nap-managerd nap-managerd" \
        "$(conn_call b '{"method":"org.varlink.service.GetInfo"}' | jq -r .parameters.product) $(conn_call bob \
                '{"method":"org.varlink.service.GetInfo"}' | jq -r .parameters.product)"
conn_hangup b
conn_hangup bob

# ================================================== other values, bad ones
log "the limits follow nap.conf"
set_limits 10 5
many 6 >"$T/many.out"
assert_eq "MaxConnectionsPerUser=5: 6 connections, 5 answered" "1 $TOO_MANY;5 ok;" "$(outcomes <"$T/many.out")"
assert_eq "the refusal names 5" 5 "$(sed -n 6p "$T/many.out" | jq -r .parameters.limit 2>&1)"
check "the daemon saw them go" idle
set_limits 4 8
many 6 >"$T/many.out"
assert_eq "MaxConnections=4 below MaxConnectionsPerUser=8: 4 answered" "2 $TOO_MANY;4 ok;" "$(outcomes <"$T/many.out")"
assert_eq "the refusal names 4, in all" "4 false" \
        "$(sed -n 5p "$T/many.out" | jq -r '"\(.parameters.limit) \(.parameters.per_user)"' 2>&1)"

if timeout 30 journalctl -q --user-unit nap-managerd.service -p warning 2>/dev/null | grep -q .; then
        fail "nap-managerd logged no warnings or errors (refusals are the caller's)"
        diag "$(timeout 30 journalctl -q --user-unit nap-managerd.service -p warning 2>&1 | tail -n 10)"
else
        ok "nap-managerd logged no warnings or errors (refusals are the caller's)"
fi

set_limits 0 8
OUT=$(timeout 60 "$NAPCTL" --user --no-helper list-services alice 2>&1)
RC=$?
assert_eq "MaxConnections=0 is refused: napctl exits 2" 2 "$RC"
assert_contains "naming the key and the range" "$OUT" "MaxConnections=: 0 connections is out of range 1..65536"
varlink_call org.varlink.service.GetInfo >/dev/null
logged_bad_value() {
        timeout 30 journalctl -q --user-unit nap-managerd.service -o cat 2>/dev/null |
                grep -q "MaxConnections=: 0 connections is out of range"
}
check "nap-managerd refuses to start with it, and logs why" wait_until 10 logged_bad_value

nap_summary
