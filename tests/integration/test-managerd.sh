#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Issue 3, varlink half: nap-managerd behind nap-managerd.socket in a real
# systemd user manager (lib.sh). Socket activation and idle exit; the raw
# protocol with socat (NUL-terminated JSON), including broken clients; the
# seed's methods end to end against real units, HTTP and the journal; a
# GetJournal follow that sees a line written after it started; and
# authorization from other uids (throwaway users in a private /etc/passwd).
#
#   NAP_BUILD_ROOT=build NAP_GENERATOR=build/generators/nap-generator \
#           tests/integration/test-managerd.sh
# Needs root; exits 77 otherwise.

. "$(dirname "$0")/lib.sh"

SRC=${NAP_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
if [ -z "${NAP_SANDBOX_INSIDE:-}" ]; then
        NAP_BUILD_ROOT=$(realpath "${NAP_BUILD_ROOT:?set NAP_BUILD_ROOT to the build directory}")
        for b in "$NAP_BUILD_ROOT/helpers/nap-managerd" "${NAP_GENERATOR:-}"; do
                [ -x "$b" ] || { echo "Bail out! $b is not built"; exit 1; }
        done
        NAP_GENERATOR=$(realpath "$NAP_GENERATOR")
        export NAP_BUILD_ROOT NAP_GENERATOR NAP_SOURCE_ROOT=$SRC
fi
nap_sandbox_enter "$@"
for t in jq git curl socat setpriv; do
        command -v "$t" >/dev/null || { echo "Bail out! $t is needed"; exit 1; }
done

nap_sandbox_start
nap_users_setup || { echo "Bail out! cannot set up the test users"; exit 1; }
# The socket lives in $XDG_RUNTIME_DIR (0700, root's): let other uids reach
# it, as /run/nap is reachable in the system manager.
chmod 0711 "$XDG_RUNTIME_DIR"

T=$NAP_TEST_DIR
IDLE=2
nap_managerd_install --idle-timeout=$IDLE || { echo "Bail out! cannot install nap-managerd's units"; exit 1; }
# Debug logging, to check below that its log reaches the journal.
printf '[Service]\nEnvironment=SYSTEMD_LOG_LEVEL=debug\n' >"$XDG_RUNTIME_DIR/systemd/user/nap-managerd.service.d/60-debug.conf"
timeout 30 systemctl --user daemon-reload
SOCK=$NAP_VARLINK_SOCKET
M=io.nap.Manager

# ------------------------------------------------------------------ helpers

svc_prop() { timeout 30 systemctl --user show -P "$1" nap-managerd.service 2>&1; }
svc_active() { [ "$(timeout 30 systemctl --user is-active nap-managerd.service 2>/dev/null)" = active ]; }
svc_inactive() { [ "$(timeout 30 systemctl --user is-active nap-managerd.service 2>/dev/null)" = inactive ]; }
status_is() { [ "$(svc_prop StatusText)" = "$1" ]; }

keeper_open() { conn_open keeper; }
keeper_call() { conn_call keeper "$1"; }

export GIT_AUTHOR_NAME=nap-test GIT_AUTHOR_EMAIL=nap-test@localhost
export GIT_COMMITTER_NAME=nap-test GIT_COMMITTER_EMAIL=nap-test@localhost
export GIT_CONFIG_NOSYSTEM=1 HOME=$T/home
HELLO=$T/repos/hello
make_repo "$HELLO" "$SRC"/tests/apps/hello/. || { echo "Bail out! cannot make the app's repository"; exit 1; }
COMMIT=$(git -C "$HELLO" rev-parse HEAD)
SVC=alice_hello

# ================================================= socket activation, idle
log "socket activation"
check "the socket unit is listening" test -S "$SOCK"
assert_eq "the socket is 0666 (authorization is per call)" "666" "$(stat -c %a "$SOCK")"
check "the service is not running before the first call" svc_inactive
varlink_call_out org.varlink.service.GetInfo '{}'
varlink_assert_reply "the first call starts the service and is answered (GetInfo)" \
        '"\(.parameters.product) \(.parameters.interfaces | join(","))"' "nap-managerd org.varlink.service,$M"
# READY=1 is read by the manager in its own time: the answer can come first
check "the service is active after the first call" wait_until 10 svc_active
PID1=$(svc_prop MainPID)
check "it has a main process" test "$PID1" -gt 0
assert_eq "Type=notify: it said READY=1 (the start job is done)" "running" "$(svc_prop SubState)"
if wait_until 10 status_is Idle; then ok "STATUS= says Idle without connections"; else fail "STATUS= says Idle without connections"; diag "StatusText=$(svc_prop StatusText)"; fi
check "after the idle timeout ($IDLE s) the service is gone" wait_until $((IDLE + 10)) svc_inactive
check "and so is its process" wait_until 5 nap__pid_gone "$PID1"
assert_eq "it exited cleanly on idle" "success 0" "$(svc_prop Result) $(svc_prop ExecMainStatus)"
check "the socket is still listening" test -S "$SOCK"
varlink_call_out $M.ListServices '{"user":"alice"}'
varlink_assert_reply "the next call starts it again and is answered" '.parameters.services | length' "0"
PID2=$(svc_prop MainPID)
check "with a new process" test "$PID2" -gt 0 -a "$PID2" != "$PID1"

# ========================================================== the raw protocol
log "raw varlink"
keeper_open
REPLY=$(keeper_call '{"method":"org.varlink.service.GetInfo"}')
assert_eq "a long-lived connection is answered" "nap-managerd" "$(jq -r .parameters.product <<<"$REPLY" 2>&1)"
if wait_until 5 status_is "Serving 1 connection"; then ok "STATUS= counts connections"; else fail "STATUS= counts connections"; diag "StatusText=$(svc_prop StatusText)"; fi
PID=$(svc_prop MainPID)

varlink_raw "{\"method\":\"org.varlink.service.GetInterfaceDescription\",\"parameters\":{\"interface\":\"$M\"}}" |
        jq -j .parameters.description >"$T/description" 2>&1
check "GetInterfaceDescription returns io.nap.Manager.varlink byte for byte" \
        cmp -s "$T/description" "$SRC/lib/ops/io.nap.Manager.varlink"
varlink_call_out org.varlink.service.GetInterfaceDescription '{"interface":"org.varlink.service"}'
varlink_assert_reply "GetInterfaceDescription of org.varlink.service" '.parameters.description | contains("\ninterface org.varlink.service\n")' true
varlink_call_out org.varlink.service.GetInterfaceDescription '{"interface":"com.example.Nope"}'
varlink_assert_error "GetInterfaceDescription of an unknown interface" org.varlink.service.InterfaceNotFound
varlink_call_out $M.Nope '{}'
varlink_assert_reply "an unknown method: MethodNotFound naming it" '"\(.error) \(.parameters.method)"' \
        "org.varlink.service.MethodNotFound $M.Nope"
varlink_call_out com.example.Nope.Call '{}'
varlink_assert_reply "an unknown interface: InterfaceNotFound naming it" '"\(.error) \(.parameters.interface)"' \
        "org.varlink.service.InterfaceNotFound com.example.Nope"
varlink_call_out $M.ListServices '{"user":5}'
varlink_assert_reply "a parameter of the wrong type: InvalidParameter naming it" '"\(.error) \(.parameters.parameter)"' \
        "org.varlink.service.InvalidParameter user"
varlink_call_out $M.ListServices '{}'
varlink_assert_reply "a missing parameter: InvalidParameter naming it" '"\(.error) \(.parameters.parameter)"' \
        "org.varlink.service.InvalidParameter user"
varlink_call_out $M.ListServices '{"user":"alice","extra":1}'
varlink_assert_reply "an undeclared parameter: InvalidParameter naming it" '"\(.error) \(.parameters.parameter)"' \
        "org.varlink.service.InvalidParameter extra"
varlink_call_out $M.StartCommon '{"service":"alice_hello","params":{"greeting":1}}'
varlink_assert_reply "a map value of the wrong type: InvalidParameter params" '"\(.error) \(.parameters.parameter)"' \
        "org.varlink.service.InvalidParameter params"
varlink_call_out $M.GetJournal '{"instance":"alice_hello_common@1","lines":"ten"}'
varlink_assert_reply "an optional parameter of the wrong type: InvalidParameter lines" '"\(.error) \(.parameters.parameter)"' \
        "org.varlink.service.InvalidParameter lines"
OUT=$(varlink_raw '{"method":"io.nap.Manager.ListServices","parameters":{"user":"alice"},"oneway":true}' \
        '{"method":"org.varlink.service.GetInfo"}')
assert_eq "a oneway call gets no reply; the next call on the connection does" "nap-managerd" \
        "$(printf '%s\n' "$OUT" | jq -rs 'if length == 1 then .[0].parameters.product else "\(length) replies" end' 2>&1)"
OUT=$(varlink_raw '{"method":"org.varlink.service.GetInfo"}' '{"method":"io.nap.Manager.ListServices","parameters":{"user":"bob"}}')
assert_eq "two calls on one connection: two replies, in order" "nap-managerd 0" \
        "$(printf '%s\n' "$OUT" | jq -rs '"\(.[0].parameters.product) \(.[1].parameters.services | length)"' 2>&1)"

# Broken clients: varlink has no error for a broken message, the
# connection is dropped (lib/protocol/varlink.h). Each must end within seconds
# without a reply, and leave the service serving.
dropped() { # DESCRIPTION BYTES-FILE
        local start end out
        start=$(date +%s)
        out=$(timeout 20 socat -t 15 - "UNIX-CONNECT:$SOCK" <"$2" | tr '\0' '\n')
        end=$(date +%s)
        if [ -z "$out" ] && [ $((end - start)) -lt 10 ]; then ok "$1"; else fail "$1"; diag "got: ${out:0:200}" "after $((end - start)) s"; fi
}
printf 'hello, this is not JSON\0' >"$T/msg"
dropped "a non-JSON message: dropped without a reply" "$T/msg"
printf '[1,2,3]\0' >"$T/msg"
dropped "a JSON message that is not an object: dropped" "$T/msg"
printf '{"method":5}\0' >"$T/msg"
dropped "a call whose method is not a string: dropped" "$T/msg"
{ printf '{"method":"io.nap.Manager.ListServices","parameters":{"user":"'; head -c $((2 * 1024 * 1024)) /dev/zero | tr '\0' a; printf '"}}\0'; } >"$T/msg"
dropped "an oversized message (2 MiB > the 1 MiB cap): dropped" "$T/msg"
printf '{"method":"io.nap.Manager.ListServi' >"$T/msg"
dropped "a connection closed in the middle of a message: dropped" "$T/msg"
REPLY=$(keeper_call '{"method":"io.nap.Manager.ListServices","parameters":{"user":"alice"}}')
assert_eq "the long-lived connection is still served after all that" "0" \
        "$(jq -r '.parameters.services | length' <<<"$REPLY" 2>&1)"
assert_eq "by the same process (nothing crashed or restarted)" "$PID" "$(svc_prop MainPID)"

# ===================================================== the methods, as root
log "methods end to end"
varlink_call_out $M.DeployApp "{\"service\":\"$SVC\",\"url\":\"file://$HELLO\"}"
varlink_assert_reply "DeployApp fetches the app" '"\(.parameters.service) \(.parameters.commit) \(.parameters.changed)"' \
        "$SVC $COMMIT true"
check "the app's tree is in STATE" test -f "$NAP_ROOT/services/alice/$SVC/server.py"
varlink_call_out $M.DeployApp "{\"service\":\"$SVC\",\"url\":\"file://$HELLO\"}"
varlink_assert_reply "DeployApp again: unchanged" '.parameters.changed' false
varlink_call_out $M.ListServices '{"user":"alice"}'
varlink_assert_reply "ListServices lists it with its commit and URL" \
        '.parameters.services | map("\(.service) \(.app) \(.commit) \(.url)") | join(";")' "$SVC hello $COMMIT file://$HELLO"
varlink_call_out $M.GetParameters "{\"service\":\"$SVC\"}"
varlink_assert_reply "GetParameters: the profile's placeholders" '.parameters.parameters | join(",")' greeting

varlink_call_out $M.StartCommon "{\"service\":\"$SVC\",\"params\":{\"greeting\":\"hi there\"}}"
I1=$(printf '%s\n' "$OUT" | tail -n 1 | jq -r '.parameters.instance.instance' 2>/dev/null)
U1=$(printf '%s\n' "$OUT" | tail -n 1 | jq -r '.parameters.instance.url' 2>/dev/null)
assert_match "StartCommon (params as a map) starts an instance" "$I1 $U1" "^${SVC}_common@[0-9]+ http://127\.0\.0\.1:[0-9]+$"
varlink_assert_reply "StartCommon reports it running" '"\(.parameters.instance.active_state) \(.parameters.instance.params.greeting)"' \
        "active hi there"
N1=${I1##*@}
assert_eq "instance 1 answers over HTTP with the greeting given" "hi there from ${SVC}_$N1 on port ${U1##*:}" \
        "$(http_get "$U1/")"
varlink_call_out $M.StartCommon "{\"service\":\"$SVC\",\"paramsString\":\"greeting=yo\\\\,man\"}"
I2=$(printf '%s\n' "$OUT" | tail -n 1 | jq -r '.parameters.instance.instance' 2>/dev/null)
U2=$(printf '%s\n' "$OUT" | tail -n 1 | jq -r '.parameters.instance.url' 2>/dev/null)
assert_match "StartCommon (the seed's paramsString) starts another" "$I2" "^${SVC}_common@[0-9]+$"
assert_eq "its greeting came through the string form, escaped comma and all" "yo,man" "$(http_get "$U2/greeting")"
varlink_call_out $M.StartCommon "{\"service\":\"$SVC\",\"params\":{\"greeting\":\"a\"},\"paramsString\":\"greeting=b\"}"
varlink_assert_reply "StartCommon with both forms: InvalidParameter" '"\(.error) \(.parameters.parameter)"' \
        "$M.InvalidParameter paramsString"
varlink_call_out $M.StartCommon "{\"service\":\"$SVC\",\"params\":{\"nope\":\"x\"}}"
varlink_assert_reply "StartCommon with an unknown parameter: InvalidParameter params" '"\(.error) \(.parameters.parameter)"' \
        "$M.InvalidParameter params"
varlink_call_out $M.ListInstances "{\"service\":\"$SVC\"}"
varlink_assert_reply "ListInstances: both, active, with systemd's view" \
        '.parameters.instances | map("\(.instance) \(.active_state)/\(.sub_state) \(.enabled)") | join(";")' \
        "$I1 active/running true;$I2 active/running true"
varlink_call_out $M.GetInstancesNum "{\"service\":\"$SVC\"}"
varlink_assert_reply "GetInstancesNum" '.parameters.instances' 2
varlink_call_out $M.CatApp "{\"instance\":\"$I1\"}"
varlink_assert_reply "CatApp: the instance's profile, substituted" \
        '.parameters.profile | test("server.py --port [0-9]+ --greeting .hi there.")' true
varlink_call_out $M.GetJournal "{\"instance\":\"$I1\",\"lines\":50}"
varlink_assert_reply "GetJournal: the app's own output" \
        ".parameters.entries | map(.message) | any(. == \"listening on ${U1##*:}\")" true
varlink_call_out $M.GetJournal "{\"instance\":\"$I1\",\"lines\":1}"
varlink_assert_reply "GetJournal lines=1: one entry" '.parameters.entries | length' 1
varlink_call_out $M.StopApp "{\"instance\":\"$I2\"}"
varlink_assert_reply "StopApp" '. | keys | join(",")' parameters
check "the unit is stopped" test "$(timeout 30 systemctl --user is-active "$I2.service")" = inactive
check "and does not answer" http_refused "$U2/"
varlink_call_out $M.StartApp "{\"instance\":\"$I2\"}"
varlink_assert_reply "StartApp" '. | keys | join(",")' parameters
assert_eq "it answers again" "yo,man" "$(http_get "$U2/greeting")"
varlink_call_out $M.RestartApp "{\"instance\":\"$I2\"}"
varlink_assert_reply "RestartApp" '. | keys | join(",")' parameters
assert_eq "it answers after RestartApp" "yo,man" "$(http_get "$U2/greeting")"

log "named errors"
varlink_call_out $M.ListServices '{"user":"Alice"}'
varlink_assert_error "a bad user name: InvalidName" "$M.InvalidName"
varlink_call_out $M.ListInstances '{"service":"alice_nope"}'
varlink_assert_reply "an app that is not deployed: NoSuchService with a message" \
        '"\(.error) \(.parameters.message | length > 0)"' "$M.NoSuchService true"
varlink_call_out $M.CatApp "{\"instance\":\"${SVC}_common@999\"}"
varlink_assert_error "an instance that does not exist: NoSuchInstance" "$M.NoSuchInstance"
varlink_call_out $M.GetJournal "{\"instance\":\"${SVC}_common@999\"}" '"more":true'
varlink_assert_error "following the log of an instance that does not exist: NoSuchInstance" "$M.NoSuchInstance"
varlink_call_out $M.GetJournal "{\"instance\":\"$I1\",\"lines\":-1}"
varlink_assert_reply "a negative line count: InvalidParameter lines" '"\(.error) \(.parameters.parameter)"' "$M.InvalidParameter lines"
varlink_call_out $M.DeployApp "{\"service\":\"alice_other\",\"url\":\"file://$T/nothing-here\"}"
varlink_assert_error "a URL that cannot be fetched: FetchFailed" "$M.FetchFailed"
varlink_call_out $M.StartMpi "{\"service\":\"$SVC\"}"
varlink_assert_error "StartMpi of an app that is not MPI: InvalidProfile (test-mpi.sh runs jobs)" "$M.InvalidProfile"
varlink_call_out $M.ListEndpoints "{\"service\":\"$SVC\"}"
varlink_assert_error "ListEndpoints without Etcd=: NotAvailable" "$M.NotAvailable"

# Without Etcd= the seed's lookups answer from this host's state (the
# etcd side is test-dbus.sh's, with a real etcd).
varlink_call_out $M.GetServiceUrl "{\"service\":\"$SVC\"}"
varlink_assert_reply "GetServiceUrl: the URL deployed from, source local" '"\(.parameters.url) \(.parameters.source)"' \
        "file://$HELLO local"
varlink_call_out $M.GetPort "{\"instance\":\"$I1\"}"
varlink_assert_reply "GetPort: the instance's port, source local" '"\(.parameters.port) \(.parameters.source)"' "${U1##*:} local"
varlink_call_out $M.GetServiceUrl '{"service":"alice_nope"}'
varlink_assert_error "GetServiceUrl of an app not deployed: NoSuchService" "$M.NoSuchService"
varlink_call_out $M.GetPort "{\"instance\":\"${SVC}_common@999\"}"
varlink_assert_error "GetPort of an instance that does not exist: NoSuchInstance" "$M.NoSuchInstance"

# ================================================== following the journal
log "GetJournal with more"
conn_open follow
conn_send follow "{\"method\":\"$M.GetJournal\",\"parameters\":{\"instance\":\"$I1\",\"lines\":3},\"more\":true}"
follow_replies() { conn_replies follow; }
check "the follow's first reply arrives" wait_until 10 conn_has follow 1
assert_eq "it holds the last 3 lines and continues" "3 true" \
        "$(follow_replies | head -n 1 | jq -r '"\(.parameters.entries | length) \(.continues)"' 2>&1)"
REPLY=$(keeper_call '{"method":"io.nap.Manager.ListServices","parameters":{"user":"alice"}}')
assert_eq "other clients are served while a log is followed" "1" "$(jq -r '.parameters.services | length' <<<"$REPLY" 2>&1)"
MARK=marker-$RANDOM$RANDOM
curl -s -o /dev/null --max-time 5 "$U1/$MARK"
has_marker() { follow_replies | grep -q "$MARK"; }
check "a line the app logs after the call started arrives" wait_until 10 has_marker
assert_eq "in a reply of its own, with continues: true" "1 true" \
        "$(follow_replies | grep "$MARK" | head -n 1 | jq -r '"\(.parameters.entries | length) \(.continues)"' 2>&1)"
check "not from the other instance" test "$(follow_replies | grep -c "listening on ${U2##*:}")" -eq 0
if wait_until 5 status_is "Serving 2 connections"; then ok "STATUS= counts the follower"; else fail "STATUS= counts the follower"; diag "StatusText=$(svc_prop StatusText)"; fi
conn_hangup follow
if wait_until 5 status_is "Serving 1 connection"; then ok "the follower hanging up ends its follow"; else fail "the follower hanging up ends its follow"; diag "StatusText=$(svc_prop StatusText)"; fi
assert_eq "the service is still the same process" "$PID" "$(svc_prop MainPID)"

# ============================================ a slow call blocks nobody
log "a slow call"
SLOW_PORT=$NAP_PORT_MAX
check "the slow server listens" slow_server_start "$SLOW_PORT"
conn_open slow
conn_send slow "{\"method\":\"$M.DeployApp\",\"parameters\":{\"service\":\"alice_slow\",\"url\":\"http://127.0.0.1:$SLOW_PORT/slow.git\"}}"
check "the DeployApp's worker is fetching from it" wait_until 30 slow_server_accepted
T0=$(date +%s%N)
REPLY=$(keeper_call '{"method":"io.nap.Manager.ListInstances","parameters":{"service":"alice_hello"}}')
T1=$(date +%s%N)
assert_eq "while a DeployApp hangs, another client's ListInstances is answered" "2" \
        "$(jq -r '.parameters.instances | length' <<<"$REPLY" 2>&1)"
check "within a second ($(((T1 - T0) / 1000000)) ms)" test $(((T1 - T0) / 1000000)) -lt 1000
check "the DeployApp is still waiting then" test ! -s "$T/conn-slow.out"
slow_server_release
check "the DeployApp is answered once its server gives up" wait_until 20 conn_has slow 1
assert_eq "with FetchFailed" "$M.FetchFailed" "$(conn_replies slow | head -n 1 | jq -r .error 2>&1)"
conn_hangup slow

# ============================================================ authorization
log "authorization"
VARLINK_UID=65534 varlink_call_out $M.ListServices '{"user":"alice"}'
varlink_assert_reply "nobody may not list alice's apps: PermissionDenied" \
        '"\(.error) \(.parameters.message | test("uid 65534"))"' "$M.PermissionDenied true"
VARLINK_UID=$BOB_UID varlink_call_out $M.StopApp "{\"instance\":\"$I1\"}"
varlink_assert_error "bob may not stop alice's instance" "$M.PermissionDenied"
VARLINK_UID=$BOB_UID varlink_call_out $M.RestartApp "{\"instance\":\"$I1\"}"
varlink_assert_error "nor restart it" "$M.PermissionDenied"
check "it still runs" test "$(timeout 30 systemctl --user is-active "$I1.service")" = active
VARLINK_UID=$BOB_UID varlink_call_out $M.GetJournal "{\"instance\":\"$I1\"}"
varlink_assert_error "bob may not read alice's log" "$M.PermissionDenied"
VARLINK_UID=$BOB_UID varlink_call_out $M.GetJournal "{\"instance\":\"$I1\"}" '"more":true'
varlink_assert_error "nor follow it" "$M.PermissionDenied"
VARLINK_UID=$BOB_UID varlink_call_out $M.DeployApp "{\"service\":\"alice_evil\",\"url\":\"file://$HELLO\"}"
varlink_assert_error "nor deploy as alice" "$M.PermissionDenied"
check "nothing was deployed" test ! -e "$NAP_ROOT/services/alice/alice_evil"
VARLINK_UID=$BOB_UID varlink_call_out $M.ListServices '{"user":"bob"}'
varlink_assert_reply "bob may list his own (no) apps" '.parameters.services | length' 0
VARLINK_UID=$BOB_UID varlink_call_out $M.ListServices '{"user":"Bob"}'
varlink_assert_error "a bad name is InvalidName for anybody" "$M.InvalidName"
VARLINK_UID=$ALICE_UID varlink_call_out $M.ListInstances "{\"service\":\"$SVC\"}"
varlink_assert_reply "alice may list her instances" '.parameters.instances | length' 2
VARLINK_UID=$ALICE_UID varlink_call_out $M.StopApp "{\"instance\":\"$I1\"}"
varlink_assert_reply "alice may stop her instance" '. | keys | join(",")' parameters
check "it is stopped" test "$(timeout 30 systemctl --user is-active "$I1.service")" = inactive
VARLINK_UID=$ALICE_UID varlink_call_out $M.StartApp "{\"instance\":\"$I1\"}"
varlink_assert_reply "and start it" '. | keys | join(",")' parameters
assert_eq "it answers again" "hi there from ${SVC}_$N1 on port ${U1##*:}" "$(http_get "$U1/")"
VARLINK_UID=$ALICE_UID varlink_call_out $M.RemoveInstance "{\"instance\":\"$I2\"}"
varlink_assert_reply "alice may remove her instance" '. | keys | join(",")' parameters
varlink_call_out $M.ListInstances "{\"service\":\"$SVC\"}"
varlink_assert_reply "it is gone" '.parameters.instances | map(.instance) | join(";")' "$I1"
check "its tree is gone" test ! -e "$NAP_ROOT/apps/alice/${SVC}_${I2##*@}"

# ================================================================ shutdown
log "shutdown"
conn_hangup keeper
check "idle again, the service exits by itself" wait_until $((IDLE + 10)) svc_inactive
varlink_call_out $M.ListServices '{"user":"alice"}'
varlink_assert_reply "and is started again by the next call" '.parameters.services | length' 1
timeout 30 systemctl --user stop nap-managerd.service
assert_eq "SIGTERM: a clean exit" "success 0" "$(svc_prop Result) $(svc_prop ExecMainStatus)"
assert_contains "its log reaches the journal (debug: each call and its uid)" \
        "$(timeout 30 journalctl -q --user-unit nap-managerd.service -o cat 2>&1)" "uid $BOB_UID calls StopApp"
if timeout 30 journalctl -q --user-unit nap-managerd.service -p warning 2>/dev/null | grep -q .; then
        fail "nap-managerd logged no warnings or errors"
        diag "$(timeout 30 journalctl -q --user-unit nap-managerd.service -p warning 2>&1 | tail -n 10)"
else
        ok "nap-managerd logged no warnings or errors"
fi

nap_summary
