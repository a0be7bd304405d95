#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Issue 4's discovery, end to end: a real etcd (Debian's, on free loopback
# ports, started here), the real systemd user manager, journald and
# nap-generator (lib.sh), the sidecars the generator writes running the
# built nap-discovery, and the sample app (tests/apps/hello, with --delay).
# Every check reads etcd itself (etcdctl) or systemd's own view. The probe
# (issue 12): an app that logs every request it gets (and bare connects)
# shows how often nap-discovery asks it over HTTP while it is healthy, with
# which path, and that closing its port or hanging withdraws its key within
# the bounds of lib/model/discovery.h.
#
#   NAPCTL=build/cli/napctl NAP_GENERATOR=build/generators/nap-generator \
#   NAP_DISCOVERY=build/helpers/nap-discovery tests/integration/test-discovery.sh
# Needs root; exits 77 otherwise.

. "$(dirname "$0")/lib.sh"

NAPCTL=${NAPCTL:-${1:-}}
NAP_GENERATOR=${NAP_GENERATOR:-${2:-}}
NAP_DISCOVERY=${NAP_DISCOVERY:-${3:-}}
SRC=${NAP_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
if [ -z "${NAP_SANDBOX_INSIDE:-}" ]; then
        for b in "$NAPCTL" "$NAP_GENERATOR" "$NAP_DISCOVERY"; do
                [ -x "$b" ] || { echo "Bail out! set NAPCTL, NAP_GENERATOR and NAP_DISCOVERY to the built binaries (got '$b')"; exit 1; }
        done
        [ -x /usr/bin/etcd ] && command -v etcdctl >/dev/null || skip_all "etcd and etcdctl (etcd-server, etcd-client) are needed"
        NAPCTL=$(realpath "$NAPCTL") NAP_GENERATOR=$(realpath "$NAP_GENERATOR") NAP_DISCOVERY=$(realpath "$NAP_DISCOVERY")
        # The manager's environment reaches the generator: sidecars run
        # this build's nap-discovery.
        export NAPCTL NAP_GENERATOR NAP_DISCOVERY NAP_DISCOVERY_BINARY=$NAP_DISCOVERY NAP_SOURCE_ROOT=$SRC
fi
nap_sandbox_enter "$@"
nap_sandbox_start
for t in jq git curl etcdctl; do
        command -v "$t" >/dev/null || { echo "Bail out! $t is needed"; exit 1; }
done
. "$SRC/tests/etcd-lib.sh"
# napctl talks to nap-managerd (napctl(1)): its socket, as a package installs it.
nap_managerd_install && timeout 30 systemctl --user enable --runtime --quiet nap-managerd.socket ||
        { echo "Bail out! cannot install nap-managerd's units"; exit 1; }

TTL=3          # DiscoveryTTL=: keep-alive every 1 s
KA_MS=1000
HCS=10         # HealthCheckSec=: an HTTP check of a healthy app every 10 s
PROBE_TIMEOUT_MS=1000       # nap-discovery's --probe-timeout= default
TCP_MAX_MS=5000             # the longest interval between TCP checks
CONF_PATH=/conf-health      # nap.conf's HealthPath=, for apps whose profile sets none

# ------------------------------------------------------------------ helpers

nap() { # napctl --user ARGS, bounded; sets OUT, ERR, RC
        RC=0
        timeout 60 "$NAPCTL" --user "$@" >"$NAP_TEST_DIR/out" 2>"$NAP_TEST_DIR/err" || RC=$?
        OUT=$(cat "$NAP_TEST_DIR/out")
        ERR=$(cat "$NAP_TEST_DIR/err")
}

nap_diag() {
        diag "napctl $*" "rc=$RC" "stdout: $OUT" "stderr: $ERR"
}

ectl() {
        ETCDCTL_API=3 timeout 5 etcdctl --endpoints="$ETCD_URL" --dial-timeout=1s --command-timeout=2s "$@"
}

# key_value KEY: its value; fails when etcd does not answer.
key_value() {
        ectl get --print-value-only "$1"
}

key_present() {
        local v
        v=$(key_value "$1") && [ -n "$v" ]
}

# Absent means etcd answered without it (an unreachable etcd is not "absent").
key_absent() {
        local v
        v=$(key_value "$1") && [ -z "$v" ]
}

# KEY: the lease (decimal) the key is on, 0 for none. Not through jq: lease
# IDs are 64-bit and jq reads numbers as doubles.
key_lease() {
        local l
        l=$(ectl get -w json "$1" | grep -o '"lease":[0-9]*' | cut -d: -f2)
        echo "${l:-0}"
}

lease_granted_ttl() { # LEASE (decimal)
        ectl lease timetolive "$(printf '%x' "$1")" -w json | grep -o '"granted-ttl":[0-9]*' | cut -d: -f2
}

# wait_ms SECONDS CMD...: polls CMD every 20 ms; prints the milliseconds it
# took, fails (printing nothing) after SECONDS.
wait_ms() {
        local timeout=$1 start deadline
        shift
        start=$(now_ms)
        deadline=$((start + timeout * 1000))
        while :; do
                if "$@"; then
                        echo $(($(now_ms) - start))
                        return 0
                fi
                [ "$(now_ms)" -ge "$deadline" ] && return 1
                sleep 0.02
        done
}

# within DESCRIPTION LIMIT_MS MS: ok when MS (from wait_ms) is set and ≤ LIMIT_MS.
within() {
        if [ -n "$3" ] && [ "$3" -le "$2" ]; then
                ok "$1 (${3} ms, limit $2 ms)"
        else
                fail "$1"
                diag "took: ${3:-more than the wait} ms, limit $2 ms"
        fi
}

unit_prop() {
        timeout 30 systemctl --user show -P "$2" "$1" 2>&1
}

active_state() {
        timeout 30 systemctl --user is-active "$1" 2>/dev/null
}

answers() { # PORT: the app serves HTTP
        curl -sf --max-time 1 -o /dev/null "http://127.0.0.1:$1/health" 2>/dev/null
}

sidecar_log() { # N: the sidecar's journal, messages only
        sidecar_log_of "${SVC}_discovery@$1.service"
}

sidecar_log_of() { # UNIT
        timeout 10 journalctl --no-pager -q -o cat "_SYSTEMD_USER_UNIT=$1" 2>/dev/null
}

# start_instance PARAMS [NAPCTL OPTIONS...]: start-common; sets INST, NUM, PORT, KEY, SIDE.
start_instance() {
        INST= NUM= PORT= KEY= SIDE=
        nap start-common $SVC "$1" "${@:2}"
        if [ "$RC" -eq 0 ] && [[ $OUT =~ ^(${SVC}_common@([0-9]+))\ http://127\.0\.0\.1:([0-9]+)$ ]]; then
                INST=${BASH_REMATCH[1]} NUM=${BASH_REMATCH[2]} PORT=${BASH_REMATCH[3]}
                KEY=/services/$SVC/127.0.0.1:$PORT
                SIDE=${SVC}_discovery@$NUM.service
                return 0
        fi
        return 1
}

# etcd on fixed ports, so it can be stopped and started again where the
# sidecars look for it.
ETCD_DIR=$NAP_TEST_DIR/etcd-run
etcd_up() {
        etcd_start_on "$ETCD_DIR" "$ETCD_CPORT" "$ETCD_PPORT"
}
etcd_first_start() {
        local i
        mkdir -p "$ETCD_DIR"
        for i in 1 2 3; do
                ETCD_CPORT=$(etcd_free_port) ETCD_PPORT=$(etcd_free_port)
                etcd_up && return 0
        done
        return 1
}

# ==================================================================== set-up
etcd_first_start || { echo "Bail out! etcd did not start; $(tail -5 "$ETCD_DIR/etcd.log")"; exit 1; }
cat >>"$NAP_CONFIG" <<EOF
Etcd=$ETCD_URL
DiscoveryTTL=$TTL
HealthCheckSec=$HCS
HealthPath=$CONF_PATH
EOF
timeout 60 systemctl --user daemon-reload

export GIT_AUTHOR_NAME=nap-test GIT_AUTHOR_EMAIL=nap-test@localhost
export GIT_COMMITTER_NAME=nap-test GIT_COMMITTER_EMAIL=nap-test@localhost
export GIT_CONFIG_NOSYSTEM=1 HOME=$NAP_TEST_DIR/home
APP=$NAP_TEST_DIR/repos/slow
mkdir -p "$APP" && cp "$SRC/tests/apps/hello/server.py" "$APP/" &&
        echo 'python3 server.py --port {port} --delay {delay=0}' >"$APP/profile" &&
        git -C "$APP" init -q && git -C "$APP" add -A && git -C "$APP" commit -q -m "slow hello" ||
        { echo "Bail out! cannot make the app's repository"; exit 1; }
SVC=alice_slow
nap deploy-app $SVC "file://$APP"
[ "$RC" -eq 0 ] || { nap_diag deploy-app; echo "Bail out! deploy-app failed"; exit 1; }

# ======================================== no key before the app answers
log "publish only once the app answers (--delay 2)"
# --no-block: start-common returns before the app answers (else it waits
# for the answer, and the key may be there already).
if ! start_instance delay=2 --no-block; then
        nap_diag start-common; echo "Bail out! start-common failed"; nap_summary; exit 1
fi
I1=$INST N1=$NUM P1=$PORT K1=$KEY S1=$SIDE
side=$(timeout 30 systemctl --user cat "$S1" 2>&1)
assert_contains "the instance's sidecar runs this build's nap-discovery" "$side" "$NAP_DISCOVERY"
assert_contains "the sidecar is Type=notify" "$side" "Type=notify"
check "no key right after start-common" key_absent "$K1"
early=0 activating=0 polls=0 t_started=$(now_ms)
# The key is looked at before the app is: a key seen at one moment while
# the app still does not answer at a later one was there too early, however
# slowly a loaded machine runs this loop (an app never stops listening).
while :; do
        key_absent "$K1"
        absent=$?
        answers "$P1" && break
        polls=$((polls + 1))
        [ "$absent" -eq 0 ] || early=$((early + 1))
        [ "$(active_state "$S1")" = activating ] && activating=$((activating + 1))
        [ "$polls" -gt 150 ] && break
        sleep 0.05
done
t_listen=$(now_ms)
check "the app took its time to listen ($((t_listen - t_started)) ms, $polls polls)" \
        test $((t_listen - t_started)) -ge 1000 -a "$polls" -ge 2 -a "$polls" -le 150
assert_eq "no key while the app did not listen" 0 "$early"
check "the sidecar is 'activating' until it publishes (READY=1 after the first publish)" test "$activating" -ge 1
ms=$(wait_ms 5 key_present "$K1")
within "the key appears within 1 s of the app listening" 1000 "$ms"
assert_eq "the value names host, port, instance and unit" \
        "{\"host\":\"127.0.0.1\",\"instance\":\"$I1\",\"port\":$P1,\"unit\":\"$I1.service\"}" \
        "$(key_value "$K1" | jq -cS . 2>&1)"
lease1=$(key_lease "$K1")
check "the key is on a lease" test "${lease1:-0}" != 0
assert_eq "the lease's TTL is DiscoveryTTL=" "$TTL" "$(lease_granted_ttl "$lease1")"
check "the sidecar is active once published" wait_until 5 output_is active active_state "$S1"
assert_match "its status says what it published" "$(unit_prop "$S1" StatusText)" "^Published $K1 "
nap endpoints $SVC
assert_eq "napctl endpoints lists it" "$(printf '127.0.0.1:%s\t%s' "$P1" "$I1")" "$OUT"

log "steady state: keep-alives keep it"
sleep $((TTL + 1))
assert_eq "after more than a TTL the key is still on the same lease" "$lease1" "$(key_lease "$K1")"

# ================================================= SIGSTOP / SIGCONT
log "the app hangs (SIGSTOP: the kernel still accepts) and comes back (SIGCONT)"
timeout 10 systemctl --user kill -s STOP "$I1.service"
# discovery.h: within HealthCheckSec + 2 probe timeouts + 50 ms; 950 ms
# more for the revoke and this loop's etcdctl calls.
HUNG_MS=$((HCS * 1000 + 2 * PROBE_TIMEOUT_MS + 1000))
ms=$(wait_ms $((HUNG_MS / 1000 + 3)) key_absent "$K1")
within "SIGSTOP: the key is withdrawn (the next HTTP check and one more time out)" "$HUNG_MS" "$ms"
assert_eq "the stopped app's unit is still active: only the key went" active "$(active_state "$I1.service")"
assert_match "its status says so" "$(unit_prop "$S1" StatusText)" "stopped answering"
check "logged at warning priority" wait_until 5 eval \
        "timeout 10 journalctl --no-pager -q -o cat -p warning _SYSTEMD_USER_UNIT=$S1 | grep -q 'stopped answering'"
timeout 10 systemctl --user kill -s CONT "$I1.service"
ms=$(wait_ms 5 key_present "$K1")
within "SIGCONT: the key is back" 1500 "$ms"

# ================================================= stop-app / start-app
log "stop-app withdraws at once"
t=$(now_ms)
nap stop-app "$I1"
[ "$RC" -eq 0 ] || nap_diag stop-app "$I1"
ms=$(wait_ms 3 key_absent "$K1")
[ -n "$ms" ] && ms=$(($(now_ms) - t)) # from the start of stop-app
within "stop-app: the key is gone within 1 s" 1000 "$ms"
assert_eq "the sidecar stopped with its app" inactive "$(active_state "$S1")"
assert_contains "it revoked its lease (a clean stop)" "$(sidecar_log "$N1")" "lease"
nap start-app "$I1"
ms=$(wait_ms 5 key_present "$K1")
within "start-app: the key is back" 3000 "$ms"

# ================================================= etcd restarted, data wiped
log "etcd restarted with its data wiped"
lease_before=$(key_lease "$K1")
n_warn=$(sidecar_log "$N1" | grep -c "failed, retrying")
etcd_stop
rm -rf "$ETCD_DIR/etcd"
# The sidecar sees it down (its first warning), then keeps retrying for
# more than a keep-alive interval: retries that must not be logged again.
warned() { [ "$(sidecar_log "$N1" | grep -c "failed, retrying")" -gt "$n_warn" ]; }
wait_until 15 warned
sleep $((KA_MS * 2 / 1000))
etcd_up || { echo "Bail out! etcd did not come back"; nap_summary; exit 1; }
ms=$(wait_ms 5 key_present "$K1")
within "the key is back within 2 keep-alive intervals of etcd" $((2 * KA_MS)) "$ms"
check "on a new lease" test "$(key_lease "$K1")" != "$lease_before"
assert_eq "the seed's port key of the instance is back too (no lease)" "$P1" \
        "$(key_value "/services/port/alice/slow/$N1")"
assert_eq "the outage was logged once, not once per retry" 1 \
        "$(($(sidecar_log "$N1" | grep -c "failed, retrying") - n_warn))"
assert_contains "the lost lease was logged" "$(sidecar_log "$N1")" "is gone"

# ================================================= etcd down when the app starts
log "etcd down when an instance starts"
etcd_stop
if start_instance delay=0; then
        ok "start-common succeeds with etcd down"
else
        fail "start-common succeeds with etcd down"; nap_diag start-common
fi
I2=$INST N2=$NUM P2=$PORT K2=$KEY S2=$SIDE
check "the new instance serves" wait_until 10 answers "$P2"
check "its sidecar waits, saying etcd is unreachable" wait_until 5 eval \
        "unit_prop $S2 StatusText | grep -q 'etcd unreachable, retrying'"
assert_eq "and is not ready yet" activating "$(active_state "$S2")"
sleep 1
etcd_up || { echo "Bail out! etcd did not come back"; nap_summary; exit 1; }
ms=$(wait_ms 5 key_present "$K2")
within "its key appears once etcd is up" 1000 "$ms"
check "its sidecar became active" wait_until 5 output_is active active_state "$S2"
check "the first instance's key is there too" wait_until 3 key_present "$K1"

# ================================================= SIGKILL, no clean stop
log "SIGKILL to sidecar and app: the lease expires"
# No restarts, or a new sidecar would publish the same key again at once.
timeout 30 systemctl --user mask --runtime "$I2.service" "$S2" >/dev/null 2>&1
lease_before=$(key_lease "$K2")
timeout 10 systemctl --user kill -s KILL "$S2" "$I2.service"
t=$(now_ms)
check "right after the kill the key is still there (no revoke)" key_present "$K2"
ms=$(wait_ms $((TTL + 3)) key_absent "$K2")
[ -n "$ms" ] && ms=$(($(now_ms) - t))
within "the key is gone within TTL + 1 s" $(((TTL + 1) * 1000)) "$ms"
check "the app did not come back" test "$(active_state "$I2.service")" != active
timeout 30 systemctl --user unmask --runtime "$I2.service" "$S2" >/dev/null 2>&1
timeout 30 systemctl --user reset-failed "$I2.service" "$S2" >/dev/null 2>&1
nap start-app "$I2"
ms=$(wait_ms 5 key_present "$K2")
within "start-app after the crash: published again" 3000 "$ms"
nap endpoints $SVC
assert_eq "napctl endpoints lists both instances" \
        "$(printf '127.0.0.1:%s\t%s\n127.0.0.1:%s\t%s\n' "$P1" "$I1" "$P2" "$I2" | sort)" "$(printf '%s\n' "$OUT" | sort)"

# ================================================= the probe (issue 12, item 6)
log "the probe: HTTP checks every HealthCheckSec=, TCP between, at the profile's HealthPath="
PAPP=$NAP_TEST_DIR/repos/probe
PROBE_PATH='/probe/health?from=nap'
mkdir -p "$PAPP" && cat >"$PAPP/app.py" <<'PY'
# Logs every request ("request METHOD PATH USER-AGENT") and every connect
# that sends none; SIGUSR1 closes its port and leaves it running.
import signal, socket, sys

closed = False
def log(m):
    print(m, flush=True)
def close_port(*_):
    global closed
    closed = True
signal.signal(signal.SIGUSR1, close_port)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1])))
srv.listen(64)
srv.settimeout(0.05)
log("listening")
while not closed:
    try:
        conn, _ = srv.accept()
    except socket.timeout:
        continue
    with conn:
        conn.settimeout(1)
        data = b""
        try:
            while b"\r\n\r\n" not in data and len(data) < 4096:
                chunk = conn.recv(1024)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        if not data:
            log("connect without a request")
            continue
        lines = data.decode("latin-1").split("\r\n")
        words = lines[0].split(" ") + ["", ""]
        agent = [l.split(":", 1)[1].strip() for l in lines[1:] if l.lower().startswith("user-agent:")]
        log("request %s %s %s" % (words[0], words[1], agent[0] if agent else "-"))
        try:
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n" + (b"" if words[0] == "HEAD" else b"ok\n"))
        except OSError:
            pass
srv.close()
log("closed the port")
while True:
    signal.pause()
PY
printf '%s\n' "# checked with HEAD $PROBE_PATH" "HealthPath=$PROBE_PATH" 'python3 app.py {port}' >"$PAPP/profile" &&
        git -C "$PAPP" init -q && git -C "$PAPP" add -A && git -C "$PAPP" commit -q -m "probe app" ||
        { echo "Bail out! cannot make the probe app's repository"; nap_summary; exit 1; }
SVC_SLOW=$SVC
SVC=alice_probe
nap deploy-app $SVC "file://$PAPP"
[ "$RC" -eq 0 ] || { nap_diag deploy-app; echo "Bail out! deploy-app of the probe app failed"; nap_summary; exit 1; }
app_log() { # INSTANCE: the app's journal, messages only
        timeout 10 journalctl --no-pager -q -o cat "_SYSTEMD_USER_UNIT=$1.service" 2>/dev/null
}
# mark INSTANCE PORT NAME: a request the app logs, seen in the journal.
mark() {
        curl -sf --max-time 2 -o /dev/null "http://127.0.0.1:$2/$3" &&
                wait_until 10 eval "app_log $1 | grep -q ' /$3 '"
}
if ! start_instance ""; then
        nap_diag start-common; echo "Bail out! start-common of the probe app failed"; nap_summary; exit 1
fi
IP=$INST PP=$PORT KP=$KEY SP=$SIDE
check "start-common's wait asked for the profile's HealthPath=" wait_until 5 eval \
        "app_log $IP | grep -qF 'request HEAD $PROBE_PATH nap-receive'"
check "the key appears" wait_until 5 key_present "$KP"
mark "$IP" "$PP" period-start || fail "the app logs a marker request"
MEASURE=20
sleep $MEASURE # the measured period: the app is healthy and left alone
mark "$IP" "$PP" period-end || fail "the app logs a marker request"
period=$(app_log "$IP" | sed -n '\| /period-start |,\| /period-end |p')
http=$(grep -c ' nap-discovery$' <<<"$period")
tcp=$(grep -c '^connect without a request$' <<<"$period")
other_paths=$(grep ' nap-discovery$' <<<"$period" | grep -vcF "request HEAD $PROBE_PATH nap-discovery")
log "measured over ${MEASURE} s of a healthy app: $http HTTP checks ($(awk "BEGIN{printf \"%.2f\", $http / $MEASURE}")/s), $tcp TCP checks (the probe before issue 12: 1 HTTP check/s)"
check "at most one HTTP check per HealthCheckSec= ($http in ${MEASURE} s, at most $((MEASURE / HCS + 1)))" \
        test "$http" -ge 1 -a "$http" -le $((MEASURE / HCS + 1))
check "TCP checks in between ($tcp in ${MEASURE} s)" test "$tcp" -ge 1
assert_eq "every HTTP check asked for the profile's HealthPath=" 0 "$other_paths"
check "the key is still there" key_present "$KP"

log "the probe app hangs (SIGSTOP): its backlog (64) takes every TCP check, only HTTP sees it"
timeout 10 systemctl --user kill -s STOP "$IP.service"
ms=$(wait_ms $((HUNG_MS / 1000 + 3)) key_absent "$KP")
within "SIGSTOP: the key is withdrawn within HealthCheckSec + 2 probe timeouts (+1 s)" "$HUNG_MS" "$ms"
check "two checks in a row got no answer (its log)" wait_until 5 eval \
        "sidecar_log_of $SP | grep -q 'stopped answering on port $PP: no answer within'"
timeout 10 systemctl --user kill -s CONT "$IP.service"
check "SIGCONT: the key is back" wait_until 5 key_present "$KP"

log "the app closes its port (SIGUSR1), its unit still running"
timeout 10 systemctl --user kill -s USR1 "$IP.service"
check "the app closed its port" wait_until 5 eval "app_log $IP | grep -q 'closed the port'"
# The next TCP check is refused: within the longest TCP interval; 1 s
# more for the revoke and this loop's etcdctl calls.
ms=$(wait_ms $((TCP_MAX_MS / 1000 + 4)) key_absent "$KP")
within "a closed port: the key is withdrawn (refused connect)" $((TCP_MAX_MS + 1000)) "$ms"
assert_eq "the app's unit is still active: only the key went" active "$(active_state "$IP.service")"
nap stop-app "$IP"

log "an app without HealthPath= is asked for nap.conf's"
PLAIN=$(grep -c "HEAD $CONF_PATH " <<<"$(app_log "$I1")")
check "nap.conf's HealthPath= reached the app without one in its profile ($PLAIN checks)" test "$PLAIN" -ge 1

log "a bad HealthPath= is refused, naming it"
printf '%s\n' 'HealthPath=probe health' 'python3 app.py {port}' >"$PAPP/profile" &&
        git -C "$PAPP" commit -q -am "bad health path"
nap deploy-app alice_badprobe "file://$PAPP"
check "deploy-app refuses it (exit status $RC)" test "$RC" -ne 0
assert_contains "the error names HealthPath=" "$ERR" "HealthPath= must be an absolute URL path"
SVC=$SVC_SLOW

# ================================================= everything stops
log "teardown"
nap stop-app "$I1"
nap stop-app "$I2"
check "no endpoint of the app is left in etcd" wait_until 3 eval \
        "[ -z \"\$(ectl get --prefix --keys-only /services/$SVC/)\" ] && ectl endpoint health >/dev/null 2>&1"
etcd_stop
nap_summary
