#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The seed's keys in a real etcd (Debian's etcd-server on free loopback
# ports): deploy-app writes PREFIX/url/USER/APP, start-common the ports,
# remove-instance drops its port; get-service-url and get-port read etcd
# (and fall back to this host's state); etcd down never fails deploy or
# start — they say the write is pending — and the next deploy catches up.
# Live endpoints (nap-discovery) are tests/integration/test-discovery.sh's.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../etcd-lib.sh"

SRC=${NAP_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
if [ -z "${NAP_SANDBOX_INSIDE:-}" ]; then
        [ -x "${NAPCTL:-}" ] && [ -x "${NAP_GENERATOR:-}" ] || { echo "Bail out! set NAPCTL and NAP_GENERATOR"; exit 1; }
        [ -x "$ETCD_BIN" ] || skip_all "no $ETCD_BIN (Debian's etcd-server)"
        export NAPCTL NAP_GENERATOR NAP_SOURCE_ROOT=$SRC
fi
nap_sandbox_enter "$@"
nap_sandbox_start
. "$(dirname "$0")/napctl-lib.sh"
trap 'nap__rc=$?; etcd_stop; (exit $nap__rc); nap_sandbox_stop' EXIT

etcd_start "$NAP_TEST_DIR/etcd" || { echo "Bail out! etcd did not start"; exit 1; }
echo "Etcd=$ETCD_URL" >>"$NAP_CONFIG"

etcd_value() { # KEY: its value, or nothing
        ETCDCTL_API=3 timeout 10 etcdctl --endpoints="$ETCD_URL" get "$1" --print-value-only 2>/dev/null
}

HELLO=$NAP_TEST_DIR/repos/hello
make_repo "$HELLO" "$SRC"/tests/apps/hello/. || { echo "Bail out! cannot make the app's repository"; exit 1; }
SVC=alice_hello

log "deploy-app and start-common publish"
expect_ok "deploy-app with etcd up" deploy-app $SVC "file://$HELLO"
assert_eq "nothing is pending" "" "$ERR"
assert_eq "PREFIX/url/USER/APP holds the URL" "file://$HELLO" "$(etcd_value /services/url/alice/hello)"
nap --json get-service-url alice hello
assert_eq "get-service-url reads etcd" "0 file://$HELLO etcd" "$RC $(jq -r '.url + " " + .source' <<<"$OUT")"

start_instance $SVC "greeting=e1" || { fail "start-common"; nap_diag start-common; }
assert_eq "PREFIX/port/USER/APP/N holds the port" "$PORT" "$(etcd_value "/services/port/alice/hello/$NUM")"
assert_eq "PREFIX/port/USER/APP holds the newest port (seed)" "$PORT" "$(etcd_value /services/port/alice/hello)"
nap --json get-port "$INST"
assert_eq "get-port reads etcd" "0 $PORT etcd" "$RC $(jq -r '(.port|tostring) + " " + .source' <<<"$OUT")"

# get-port answers what etcd says, not a copy of the local manifest.
ETCDCTL_API=3 etcdctl --endpoints="$ETCD_URL" put "/services/port/alice/hello/$NUM" 1234 >/dev/null
nap get-port "$INST"
assert_eq "get-port follows etcd" "0 1234" "$RC $OUT"
ETCDCTL_API=3 etcdctl --endpoints="$ETCD_URL" put "/services/port/alice/hello/$NUM" "$PORT" >/dev/null
FIRST=$INST

nap --json endpoints $SVC
assert_eq "endpoints: none live without nap-discovery" "0 []" "$RC $OUT"

log "etcd down: operations succeed and say the write is pending"
etcd_stop
echo "v2" >"$HELLO/NEWS" && git -C "$HELLO" add NEWS && git -C "$HELLO" commit -q -m v2
nap deploy-app $SVC "$HELLO"
assert_eq "deploy-app with etcd down succeeds" 0 "$RC"
assert_contains "deploy-app says the URL is pending" "$ERR" "publishing the app's URL to etcd is pending"
nap --json deploy-app $SVC "$HELLO"
assert_eq "--json says pending" "pending" "$(jq -r .etcd <<<"$OUT")"
start_instance $SVC "greeting=e2" || { fail "start-common with etcd down"; nap_diag start-common; }
assert_contains "start-common says the port is pending" "$ERR" "publishing the instance's port to etcd is pending"
assert_eq "the instance answers anyway" "e2 from ${SVC}_$NUM on port $PORT" "$(http_get "$URL/")"
nap --json get-port "$INST"
assert_eq "get-port falls back to this host's manifest" "0 $PORT local" \
        "$RC $(jq -r '(.port|tostring) + " " + .source' <<<"$OUT")"
nap get-service-url alice hello
assert_eq "get-service-url falls back to this host's deploy" "0 $HELLO" "$RC $OUT"
nap get-service-url alice_hello
assert_eq "get-service-url takes USER_APP like every verb" "0 $HELLO" "$RC $OUT"
nap get-service-url alice_hello extra
assert_eq "get-service-url USER_APP EXTRA: a bad app name, exit 2" 2 "$RC"
nap endpoints $SVC
assert_eq "endpoints needs etcd: NotAvailable, exit 1" 1 "$RC"

log "etcd back: the next deploy catches up"
etcd_start_on "$NAP_TEST_DIR/etcd" "${ETCD_URL##*:}" "$(etcd_free_port)" || { echo "Bail out! etcd did not restart"; exit 1; }
assert_eq "the URL key still has the old URL" "file://$HELLO" "$(etcd_value /services/url/alice/hello)"
nap deploy-app $SVC "$HELLO"
assert_eq "deploy-app (unchanged) publishes what was pending" "0 " "$RC $ERR"
assert_eq "PREFIX/url/USER/APP is caught up" "$HELLO" "$(etcd_value /services/url/alice/hello)"

log "remove-instance drops its port"
expect_ok "remove-instance" remove-instance "$FIRST"
assert_eq "PREFIX/port/USER/APP/N is gone" "" "$(etcd_value "/services/port/alice/hello/${FIRST#*@}")"

log "nap-managerd has no network of its own: nap-connect connects for it"
# True once a call has started nap-managerd and its network namespace is
# not this one (asked at every try: it exits when idle).
managerd_has_own_network() {
        local pid
        "$NAPCTL" --user get-service-url alice hello >/dev/null 2>&1
        pid=$(timeout 10 systemctl --user show -P MainPID nap-managerd.service)
        [ -n "$pid" ] && [ "$pid" != 0 ] &&
                [ "$(readlink "/proc/$pid/ns/net")" != "$(readlink /proc/self/ns/net)" ]
}
check "nap-managerd runs in a network namespace of its own" wait_until 20 managerd_has_own_network
expect_ok "yet its etcd calls work: recover checks the keys" --json recover
assert_eq "... all three" "3" "$(jq -r .keysChecked <<<"$OUT")"
assert_contains "nap-connect.service, socket-activated, made its connections" \
        "$(timeout 30 journalctl -q --no-pager -o cat --user-unit nap-connect.service 2>&1)" "Started nap-connect.service"
timeout 30 systemctl --user stop nap-connect.socket nap-connect.service
nap --json recover
assert_contains "nap-connect gone: recover names it as why etcd was not checked" \
        "$(jq -r '.etcdError // empty' <<<"$OUT" 2>&1)" "nap-connect cannot be reached"
nap start-common $SVC
assert_contains "... and start-common cannot probe a port, saying so" "$RC $ERR" "nap-connect.socket"
timeout 30 systemctl --user start nap-connect.socket
expect_ok "nap-connect back: recover checks the keys again" --json recover
assert_eq "... all three" "3" "$(jq -r .keysChecked <<<"$OUT")"

log "etcd wiped and started empty: recover writes the seed's keys again"
etcd_stop
rm -rf "$NAP_TEST_DIR/etcd/etcd" # the data only
etcd_start_on "$NAP_TEST_DIR/etcd" "${ETCD_URL##*:}" "$(etcd_free_port)" || { echo "Bail out! etcd did not restart"; exit 1; }
assert_eq "the wiped etcd has no URL key" "" "$(etcd_value /services/url/alice/hello)"
expect_ok "napctl recover" recover
assert_contains "recover says what it wrote" "$OUT" "etcd: 3 of 3 keys written again."
assert_eq "PREFIX/url/USER/APP is back" "$HELLO" "$(etcd_value /services/url/alice/hello)"
assert_eq "PREFIX/port/USER/APP/N is back" "$PORT" "$(etcd_value "/services/port/alice/hello/$NUM")"
assert_eq "PREFIX/port/USER/APP is back" "$PORT" "$(etcd_value /services/port/alice/hello)"
ETCDCTL_API=3 etcdctl --endpoints="$ETCD_URL" put "/services/port/alice/hello/$NUM" 1 >/dev/null
nap --json recover
assert_eq "a second recover rewrites only the key that differs" "0 3 1" \
        "$RC $(jq -r '"\(.keysChecked) \(.keysWritten)"' <<<"$OUT")"
assert_eq "... back to the instance's port" "$PORT" "$(etcd_value "/services/port/alice/hello/$NUM")"
etcd_stop
nap --json recover
assert_eq "etcd down: recover succeeds and says why the keys were not checked" "0 true" \
        "$RC $(jq -r '.etcdError != null' <<<"$OUT")"

nap_summary
