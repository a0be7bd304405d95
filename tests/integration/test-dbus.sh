#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Issue 3, D-Bus half: io.nap.Manager1 served by nap-managerd in a real
# systemd user manager and its real bus (dbus-daemon --session
# --systemd-activation, started by the manager; lib.sh). The activation
# file goes to $XDG_RUNTIME_DIR/dbus-1/services, which that bus reads, the
# units to $XDG_RUNTIME_DIR/systemd/user (nap_managerd_install).
#   - bus activation starts the service; idle exit releases the name and
#     the next call starts it again; started by its varlink socket it
#     takes the name too;
#   - the introspection the daemon answers equals dbus/io.nap.Manager1.xml;
#   - the methods end to end (busctl), named errors (dbus-send prints the
#     error name), a slow call answered asynchronously while others are
#     served;
#   - authorization from other uids (throwaway users in a private
#     /etc/passwd; the user bus opened to them in this namespace only);
#   - the system bus policy dbus/io.nap.Manager1.conf on a private bus
#     daemon configured like Debian's system bus;
#   - issue 4: with a real etcd, get_service_url / get_port through
#     napctl, varlink and D-Bus agree with etcdctl; ListEndpoints too.
#
#   NAP_BUILD_ROOT=build NAP_GENERATOR=build/generators/nap-generator NAPCTL=build/cli/napctl \
#           NAP_DISCOVERY=build/helpers/nap-discovery tests/integration/test-dbus.sh
# Needs root; exits 77 otherwise.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../etcd-lib.sh"

SRC=${NAP_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
if [ -z "${NAP_SANDBOX_INSIDE:-}" ]; then
        NAP_BUILD_ROOT=$(realpath "${NAP_BUILD_ROOT:?set NAP_BUILD_ROOT to the build directory}")
        for b in "$NAP_BUILD_ROOT/helpers/nap-managerd" "${NAP_GENERATOR:-}" "${NAPCTL:-}" "${NAP_DISCOVERY:-}"; do
                [ -x "$b" ] || { echo "Bail out! $b is not built (set NAP_GENERATOR, NAPCTL, NAP_DISCOVERY)"; exit 1; }
        done
        NAP_BUS_CALLS=${NAP_BUS_CALLS:-$NAP_BUILD_ROOT/tests/integration/bus-calls}
        [ -x "$NAP_BUS_CALLS" ] || { echo "Bail out! $NAP_BUS_CALLS is not built"; exit 1; }
        NAP_GENERATOR=$(realpath "$NAP_GENERATOR") NAPCTL=$(realpath "$NAPCTL") NAP_DISCOVERY=$(realpath "$NAP_DISCOVERY")
        NAP_BUS_CALLS=$(realpath "$NAP_BUS_CALLS")
        # The manager's environment reaches the generator: the sidecars of
        # the etcd part run this build's nap-discovery.
        export NAP_BUILD_ROOT NAP_GENERATOR NAPCTL NAP_DISCOVERY NAP_DISCOVERY_BINARY=$NAP_DISCOVERY \
                NAP_SOURCE_ROOT=$SRC NAP_BUS_CALLS
fi
nap_sandbox_enter "$@"
for t in jq git curl socat setpriv busctl dbus-send dbus-daemon python3; do
        command -v "$t" >/dev/null || { echo "Bail out! $t is needed"; exit 1; }
done


# A user bus admits its own uid only. For the authorization checks, other
# uids may connect here (as they reach the system bus): a policy in
# /etc/dbus-1/session.d, bind-mounted in this namespace only.
bus_open_to_all() {
        local d=$NAP_TEST_DIR/session.d
        mkdir -p "$d" || return 1
        cat >"$d/nap-test.conf" <<'EOF'
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><policy context="default"><allow user="*"/></policy></busconfig>
EOF
        mount --bind "$d" /etc/dbus-1/session.d &&
                timeout 30 busctl --user call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig
}

nap_sandbox_start
# nap_sandbox_stop exits with the status it finds in $?: keep the script's.
trap 'nap__rc=$?; etcd_stop; (exit $nap__rc); nap_sandbox_stop' EXIT
nap_users_setup || { echo "Bail out! cannot set up the test users"; exit 1; }
chmod 0711 "$XDG_RUNTIME_DIR" # the bus socket and the varlink socket live there
bus_open_to_all || { echo "Bail out! cannot open the user bus to other uids"; exit 1; }

T=$NAP_TEST_DIR
IDLE=2
nap_managerd_install --idle-timeout=$IDLE || { echo "Bail out! cannot install nap-managerd's units"; exit 1; }
printf '[Service]\nEnvironment=SYSTEMD_LOG_LEVEL=debug\n' >"$XDG_RUNTIME_DIR/systemd/user/nap-managerd.service.d/60-debug.conf"
timeout 30 systemctl --user daemon-reload
# As a package install would: the file, then the bus daemon reloads (it
# cannot watch a directory that did not exist when it started).
mkdir -p "$XDG_RUNTIME_DIR/dbus-1/services" &&
        cp "$SRC/dbus/io.nap.Manager1.service" "$XDG_RUNTIME_DIR/dbus-1/services/" &&
        timeout 30 busctl --user call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig ||
        { echo "Bail out! cannot install the activation file"; exit 1; }

NAME=io.nap.Manager1
OBJ=/io/nap/Manager1
IFACE=io.nap.Manager1
ERR_PREFIX=io.nap.Manager1.Error

# ------------------------------------------------------------------ helpers

svc_prop() { timeout 30 systemctl --user show -P "$1" nap-managerd.service 2>&1; }
svc_active() { [ "$(timeout 30 systemctl --user is-active nap-managerd.service 2>/dev/null)" = active ]; }
svc_inactive() { [ "$(timeout 30 systemctl --user is-active nap-managerd.service 2>/dev/null)" = inactive ]; }
# The PID owning the name, nothing if none.
name_owner_pid() {
        timeout 10 busctl --user call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
                GetConnectionUnixProcessID s $NAME 2>/dev/null | awk '{ print $2 }'
}
name_unowned() { [ -z "$(name_owner_pid)" ]; }

# as_uid: the command prefix for $BUS_UID, if set.
as_uid() {
        AS=()
        [ -n "${BUS_UID:-}" ] && AS=(setpriv --reuid="$BUS_UID" --regid="$BUS_UID" --clear-groups)
        return 0
}

# bcall METHOD SIGNATURE ARGS...: busctl call as $BUS_UID; sets OUT (the
# out arguments as JSON: {"type","data"}), ERR and RC.
bcall() {
        as_uid
        RC=0
        OUT=$(timeout 60 "${AS[@]}" busctl --user --json=short --timeout=50 call $NAME $OBJ $IFACE "$@" 2>"$T/bus.err") ||
                RC=$?
        ERR=$(cat "$T/bus.err")
}

# assert_bus DESCRIPTION JQ-FILTER EXPECTED: the filter on OUT.
assert_bus() {
        local got
        got=$(jq -r "$2" <<<"$OUT" 2>&1)
        assert_eq "$1" "$3" "$got"
        [ "$got" = "$3" ] || diag "rc=$RC out=$OUT" "err=$ERR"
}

# berror METHOD ARGS...: calls with dbus-send (typed arguments, as
# $BUS_UID); sets BERR to the D-Bus error name of the reply ("ok" for a
# method return) and BERR_OUT to what dbus-send printed. busctl shows only
# an error's message; dbus-send prints "Error NAME: message".
berror() {
        as_uid
        BERR_OUT=$(timeout 60 "${AS[@]}" dbus-send --session --print-reply --reply-timeout=50000 --dest=$NAME $OBJ \
                "$IFACE.$1" "${@:2}" 2>&1)
        if [[ $BERR_OUT =~ ^Error\ ([^:]+): ]]; then BERR=${BASH_REMATCH[1]}; else BERR=ok; fi
}

# assert_error DESCRIPTION EXPECTED-NAME METHOD ARGS...
assert_error() {
        berror "${@:3}"
        assert_eq "$1" "$2" "$BERR"
        [ "$BERR" = "$2" ] || diag "dbus-send: $BERR_OUT"
}

export GIT_AUTHOR_NAME=nap-test GIT_AUTHOR_EMAIL=nap-test@localhost
export GIT_COMMITTER_NAME=nap-test GIT_COMMITTER_EMAIL=nap-test@localhost
export GIT_CONFIG_NOSYSTEM=1 HOME=$T/home
HELLO=$T/repos/hello
make_repo "$HELLO" "$SRC"/tests/apps/hello/. || { echo "Bail out! cannot make the app's repository"; exit 1; }
COMMIT=$(git -C "$HELLO" rev-parse HEAD)
SVC=alice_hello

# ============================================ bus activation and idle exit
log "bus activation"
check "the service is not running before the first call" svc_inactive
check "nobody owns $NAME yet" name_unowned
assert_contains "$NAME is activatable on the user bus" \
        "$(timeout 10 busctl --user list --activatable --no-legend 2>&1)" "$NAME "
T0=$(now_ms)
bcall ListServices s alice
T1=$(now_ms)
assert_bus "the first busctl call starts the service and is answered" '"\(.type) \(.data[0] | length)"' "a(sssst) 0"
log "cold bus activation: first call answered in $((T1 - T0)) ms"
check "the service is active after the first call" svc_active
PID1=$(svc_prop MainPID)
assert_eq "the name's owner is the service's main process" "$PID1" "$(name_owner_pid)"
assert_eq "Type=notify: it said READY=1" running "$(svc_prop SubState)"
assert_eq "systemd knows the service's bus name" "$NAME" "$(svc_prop BusName)"
check "after the idle timeout ($IDLE s) the service is gone" wait_until $((IDLE + 10)) svc_inactive
check "its process too" wait_until 5 nap__pid_gone "$PID1"
check "and the name is free" name_unowned
assert_eq "it exited cleanly on idle" "success 0" "$(svc_prop Result) $(svc_prop ExecMainStatus)"
T0=$(now_ms)
bcall ListServices s alice
T1=$(now_ms)
assert_bus "the next call activates it again" '.data[0] | length' 0
log "bus re-activation after idle exit: call answered in $((T1 - T0)) ms"
PID2=$(svc_prop MainPID)
check "with a new process" test "$PID2" -gt 0 -a "$PID2" != "$PID1"

log "socket activation takes the bus name too"
timeout 30 systemctl --user stop nap-managerd.service
check "stopped, the name is free" name_unowned
OUT=$(varlink_call org.varlink.service.GetInfo '{}')
assert_eq "a varlink call starts the service through its socket" nap-managerd \
        "$(jq -r .parameters.product <<<"$OUT" 2>&1)"
PID3=$(svc_prop MainPID)
assert_eq "the socket-started process owns $NAME" "$PID3" "$(name_owner_pid)"
bcall ListServices s alice
assert_bus "and answers on the bus" '.data[0] | length' 0
assert_eq "the same process" "$PID3" "$(svc_prop MainPID)"

log "a call while the daemon releases its name at idle exit"
# The bus daemon is frozen just before the idle exit: nap-managerd's
# STOPPING=1 reaches systemd, its ReleaseName waits in the bus daemon, and
# a call is sent meanwhile. However the bus daemon then orders the two,
# the call must be answered: by this process, or (name released) by the
# next one, whose start systemd queued behind the stop.
DBUS_PID=$(timeout 10 systemctl --user show -P MainPID dbus.service)
svc_deactivating() { [ "$(timeout 10 systemctl --user is-active nap-managerd.service 2>/dev/null)" = deactivating ]; }
bcall ListServices s alice # the idle period starts now
PID4=$(svc_prop MainPID)
kill -STOP "$DBUS_PID"
check "idle, it tells systemd it is stopping (STOPPING=1)" wait_until $((IDLE + 5)) svc_deactivating
T0=$(now_ms)
timeout 40 busctl --user --timeout=30 call $NAME $OBJ $IFACE ListServices s alice >"$T/race.out" 2>&1 &
RACE=$!
sleep 0.3
kill -CONT "$DBUS_PID"
wait "$RACE"
T1=$(now_ms)
assert_eq "a call sent meanwhile is answered" "a(sssst) 0" "$(cat "$T/race.out")"
log "the call sent during the idle exit was answered in $((T1 - T0)) ms (300 ms of it with the bus frozen)"
check "the old process is gone" wait_until 5 nap__pid_gone "$PID4"

# ============================================================ introspection
log "introspection"
INTRO=$(timeout 30 busctl --user introspect $NAME $OBJ $IFACE 2>&1)
XML_METHODS=$(python3 -c 'import sys, xml.etree.ElementTree as E
i = [i for i in E.parse(sys.argv[1]).getroot().iter("interface") if i.get("name") == "io.nap.Manager1"][0]
print(" ".join(m.get("name") for m in i.findall("method")))' "$SRC/dbus/io.nap.Manager1.xml")
missing=
for m in $XML_METHODS; do
        grep -q "^\.$m  *method " <<<"$INTRO" || missing+=" $m"
done
assert_eq "busctl introspect shows every method of the XML ($(wc -w <<<"$XML_METHODS"))" "" "$missing"
for m in DeployApp ListServices GetServiceUrl GetInstancesNum ListInstances GetPort GetJournal StopApp StartApp \
        RestartApp CatApp GetParameters StartCommon StartCommonWithParams StartMpi RemoveInstance ListEndpoints; do
        grep -qw "$m" <<<"$XML_METHODS" || missing+=" $m"
done
assert_eq "the XML has the seed's 13, RemoveInstance, StartCommonWithParams, ListEndpoints and RestartApp" "" "$missing"
# Every method, argument name, type and direction, and nothing else. A
# live.xml that is no XML (the introspection failed) makes a traceback:
# a difference too (2>&1), not an empty one.
timeout 30 busctl --user --xml-interface introspect $NAME $OBJ >"$T/live.xml" 2>&1
DIFF=$(python3 - "$T/live.xml" "$SRC/dbus/io.nap.Manager1.xml" 2>&1 <<'EOF'
import sys, xml.etree.ElementTree as E
def members(path):
    root = E.parse(path).getroot()
    out = []
    for i in root.iter("interface"):
        if i.get("name") != "io.nap.Manager1":
            continue
        for m in i:
            args = [(a.get("name"), a.get("type"), a.get("direction", "in")) for a in m.findall("arg")]
            out.append((m.tag, m.get("name"), args))
    return sorted(out)
live, doc = members(sys.argv[1]), members(sys.argv[2])
for x in live:
    if x not in doc: print("only in the daemon:", x)
for x in doc:
    if x not in live: print("only in the XML:", x)
if not live: print("the daemon has no io.nap.Manager1")
EOF
)
assert_eq "the daemon's introspection equals dbus/io.nap.Manager1.xml (names, types, directions)" "" "$DIFF"

# ===================================================== the methods, as root
log "methods end to end"
bcall DeployApp ss $SVC "file://$HELLO"
assert_bus "DeployApp fetches the app (no Etcd=: nothing to publish)" \
        '"\(.type) \(.data[0]) \(.data[1]) \(.data[2])"' "sbss $COMMIT true none"
check "the app's tree is in STATE" test -f "$NAP_ROOT/services/alice/$SVC/server.py"
bcall DeployApp ss $SVC "file://$HELLO"
assert_bus "DeployApp again: unchanged" '.data[1]' false
bcall ListServices s alice
assert_bus "ListServices lists it with URL and commit" '.data[0] | map("\(.[0]) \(.[1]) \(.[2]) \(.[3]) \(.[4] > 0)") | join(";")' \
        "$SVC hello file://$HELLO $COMMIT true"
bcall GetParameters s $SVC
assert_bus "GetParameters" '"\(.type) \(.data[0] | join(","))"' "as greeting"

bcall StartCommon ss $SVC 'greeting=hi\, there'
I1=$(jq -r '.data[0][0]' <<<"$OUT" 2>/dev/null)
P1=$(jq -r '.data[0][3]' <<<"$OUT" 2>/dev/null)
U1=$(jq -r '.data[0][4]' <<<"$OUT" 2>/dev/null)
assert_match "StartCommon (the seed's k=v string) starts an instance" "$I1 $U1" \
        "^${SVC}_common@[0-9]+ http://127\.0\.0\.1:$P1$"
assert_bus "it is running, with its parameters" '"\(.data[0][6])/\(.data[0][7]) \(.data[0][9].greeting) \(.data[1])"' \
        "active/running hi, there none"
assert_eq "instance 1 answers over HTTP with the greeting given" "hi, there" "$(http_get "$U1/greeting")"
bcall StartCommonWithParams 'sa{ss}' $SVC 1 greeting yo
I2=$(jq -r '.data[0][0]' <<<"$OUT" 2>/dev/null)
U2=$(jq -r '.data[0][4]' <<<"$OUT" 2>/dev/null)
assert_match "StartCommonWithParams (a map) starts another" "$I2" "^${SVC}_common@[0-9]+$"
assert_eq "its greeting came through the map" yo "$(http_get "$U2/greeting")"
bcall ListInstances s $SVC
assert_bus "ListInstances (D-Bus + StartCommon end to end): both, active, enabled" \
        '.data[0] | map("\(.[0]) \(.[6])/\(.[7]) \(.[5])") | join(";")' \
        "$I1 active/running true;$I2 active/running true"
assert_bus "with their argv" '.data[0][0][8] | any(. == "hi, there")' true
bcall GetInstancesNum s $SVC
assert_bus "GetInstancesNum" '"\(.type) \(.data[0])"' "u 2"
bcall CatApp s "$I1"
assert_bus "CatApp: the instance's profile, substituted" '.data[0] | test("--greeting .hi, there.")' true
bcall GetJournal su "$I1" 50
assert_bus "GetJournal: the app's own output" ".data[0] | map(.[1]) | any(. == \"listening on $P1\")" true
bcall GetJournal su "$I1" 1
assert_bus "GetJournal lines=1: the last line only" '"\(.type) \(.data[0] | length)"' "a(tsisu) 1"
bcall GetServiceUrl s $SVC
assert_bus "GetServiceUrl without etcd: this host's deploy" '"\(.data[0]) \(.data[1])"' "file://$HELLO local"
bcall GetPort s "$I1"
assert_bus "GetPort without etcd: the instance's manifest" '"\(.data[0]) \(.data[1])"' "$P1 local"
bcall StopApp s "$I2"
assert_eq "StopApp (no out arguments)" "0 " "$RC $OUT"
check "the unit is stopped" test "$(timeout 30 systemctl --user is-active "$I2.service")" = inactive
check "and does not answer" http_refused "$U2/"
bcall StartApp s "$I2"
assert_eq "StartApp" "0 " "$RC $OUT"
assert_eq "it answers again" yo "$(http_get "$U2/greeting")"
PID_BEFORE=$(timeout 30 systemctl --user show -P MainPID "$I2.service")
bcall RestartApp s "$I2"
assert_eq "RestartApp" "0 " "$RC $OUT"
check "a new process" test "$(timeout 30 systemctl --user show -P MainPID "$I2.service")" != "$PID_BEFORE"
assert_eq "it answers after the restart" yo "$(http_get "$U2/greeting")"

log "an app's lifecycle"
bcall ListInstancesWithCommits s $SVC
assert_bus "ListInstancesWithCommits: the instances and each one's commit" \
        '"\(.type) \(.data[0] | length) \(.data[1]["'"$I1"'"])"' "a(ssuusbssasa{ss})a{ss} 2 $COMMIT"
# A second app, without instances, so that nothing above is restarted
# (config reaching running instances is test-lifecycle.sh's).
bcall DeployApp ss alice_cfg "file://$HELLO"
bcall SetConfig 'sa{ss}as' alice_cfg 1 GREETING_X 'a "b" 50% $c' 0
assert_bus "SetConfig stores it (no instances to restart)" '"\(.data[0]) \(.data[1]) \(.data[2] | length)"' "true false 0"
bcall GetConfig s alice_cfg
assert_bus "GetConfig gives it exactly" '.data[0].GREETING_X' 'a "b" 50% $c'
bcall ListApps s alice
assert_bus "ListApps: both apps, instances and running" '.data[0] | map("\(.[0]) \(.[3]) \(.[4])") | join(";")' \
        "alice_cfg 0 0;$SVC 2 2"
bcall History s alice_cfg
assert_bus "History: one deploy, its commit" '"\(.type) \(.data[0] | length) \(.data[0][0][0])"' "a(sst) 1 $COMMIT"
assert_error "Rollback with no earlier deploy: InvalidParameter" $ERR_PREFIX.InvalidParameter \
        Rollback string:alice_cfg string:
bcall Scale 'sua{ss}u' alice_cfg 0 0 0
assert_bus "Scale to what it has: nothing started or removed" '"\(.data[0]) \(.data[1]) \(.data[2] | length)"' "0 0 0"
assert_error "SetConfig of PORT: InvalidParameter" $ERR_PREFIX.InvalidParameter \
        SetConfig string:alice_cfg dict:string:string:PORT,1 array:string:
bcall DestroyApp s alice_cfg
assert_eq "DestroyApp" "0 " "$RC $OUT"
check "its tree is gone" test ! -e "$NAP_ROOT/services/alice/alice_cfg"
assert_error "DestroyApp again: NoSuchService" $ERR_PREFIX.NoSuchService DestroyApp string:alice_cfg

log "named errors"
assert_error "an app that is not deployed: NoSuchService" $ERR_PREFIX.NoSuchService ListInstances string:alice_nope
assert_error "a bad user name: InvalidName" $ERR_PREFIX.InvalidName ListServices string:Alice
assert_error "a bad instance name: InvalidName" $ERR_PREFIX.InvalidName StopApp "string:${SVC}_common@0"
assert_error "an instance that does not exist: NoSuchInstance" $ERR_PREFIX.NoSuchInstance CatApp "string:${SVC}_common@999"
assert_error "an unknown app parameter: InvalidParameter" $ERR_PREFIX.InvalidParameter \
        StartCommonWithParams string:$SVC dict:string:string:nope,x
assert_error "a map with a key twice: InvalidParameter" $ERR_PREFIX.InvalidParameter \
        StartCommonWithParams string:$SVC dict:string:string:greeting,a,greeting,b
assert_error "a malformed k=v string: InvalidParameter" $ERR_PREFIX.InvalidParameter StartCommon string:$SVC string:greeting
assert_error "too many journal lines: InvalidParameter" $ERR_PREFIX.InvalidParameter GetJournal "string:$I1" uint32:4000000000
assert_error "a URL that cannot be fetched: FetchFailed" $ERR_PREFIX.FetchFailed DeployApp string:alice_other \
        "string:file://$T/nothing-here"
assert_error "StartMpi of an app that is not MPI: InvalidProfile (test-mpi.sh runs jobs)" $ERR_PREFIX.InvalidProfile StartMpi string:$SVC string:
assert_error "StartMpiWithResources of it too (test-mpi-resources.sh runs jobs)" $ERR_PREFIX.InvalidProfile \
        StartMpiWithResources string:$SVC dict:string:string:np,2 string:500m string:64M
assert_error "StartMpiWithResources with a bad cpu: InvalidParameter" $ERR_PREFIX.InvalidParameter \
        StartMpiWithResources string:$SVC dict:string:string:np,2 string:lots string:
assert_error "StartMpiQueued of it: InvalidProfile (test-mpi-queue.sh queues jobs)" $ERR_PREFIX.InvalidProfile \
        StartMpiQueued string:$SVC dict:string:string:np,2 string:500m string: string:q1 boolean:false boolean:true
assert_error "StartMpiQueued with a request id that is none: InvalidParameter" $ERR_PREFIX.InvalidParameter \
        StartMpiQueued string:$SVC dict:string:string:np,2 string:500m string: string:a/b boolean:false boolean:true
assert_error "ListEndpoints without Etcd=: NotAvailable" $ERR_PREFIX.NotAvailable ListEndpoints string:$SVC
assert_error "wrong argument types are refused by sd-bus: InvalidArgs" org.freedesktop.DBus.Error.InvalidArgs \
        ListServices uint32:5
assert_error "an unknown method: UnknownMethod" org.freedesktop.DBus.Error.UnknownMethod Nope string:x

# ============================================== a slow call blocks nobody
log "a slow call"
# The DeployApp waits in its worker until the slow server lets go; only
# then is the daemon's PID read: a daemon that went idle just before is
# not the one running the call.
SLOW_PORT=$NAP_PORT_MAX
check "the slow server listens" slow_server_start "$SLOW_PORT"
(berror DeployApp string:alice_slow "string:http://127.0.0.1:$SLOW_PORT/slow.git" && echo "$BERR") >"$T/slow.out" &
SLOW_CLIENT=$!
check "the DeployApp's worker is fetching from it" wait_until 30 slow_server_accepted
PID=$(svc_prop MainPID)
T0=$(now_ms)
bcall ListInstances s $SVC
T1=$(now_ms)
assert_bus "while a DeployApp waits in its worker, ListInstances is answered" '.data[0] | length' 2
check "within a second ($((T1 - T0)) ms)" test $((T1 - T0)) -lt 1000
sleep $((IDLE + 1)) # what must not happen in IDLE s: nothing to wait for
check "the pending call keeps the daemon from going idle ($IDLE s)" test ! -s "$T/slow.out"
slow_server_release
wait "$SLOW_CLIENT"
assert_eq "the DeployApp is answered asynchronously, once its server gives up: FetchFailed" \
        "$ERR_PREFIX.FetchFailed" "$(cat "$T/slow.out")"
assert_eq "by the same process" "$PID" "$(svc_prop MainPID)"

# ============================================================ authorization
log "authorization"
BUS_UID=$BOB_UID assert_error "bob may not list alice's apps: PermissionDenied" $ERR_PREFIX.PermissionDenied \
        ListServices string:alice
assert_contains "the refusal names bob's uid" "$BERR_OUT" "uid $BOB_UID"
BUS_UID=$BOB_UID assert_error "bob may not stop alice's instance" $ERR_PREFIX.PermissionDenied StopApp "string:$I1"
BUS_UID=$BOB_UID assert_error "nor restart it" $ERR_PREFIX.PermissionDenied RestartApp "string:$I1"
check "it still runs" test "$(timeout 30 systemctl --user is-active "$I1.service")" = active
BUS_UID=$BOB_UID assert_error "nor read her log" $ERR_PREFIX.PermissionDenied GetJournal "string:$I1" uint32:5
BUS_UID=$BOB_UID assert_error "nor start an instance of her app" $ERR_PREFIX.PermissionDenied \
        StartCommonWithParams string:$SVC dict:string:string:greeting,evil
BUS_UID=65534 assert_error "nor may nobody (a uid without a nap user)" $ERR_PREFIX.PermissionDenied \
        GetInstancesNum string:$SVC
BUS_UID=$BOB_UID assert_error "a bad name is InvalidName for anybody" $ERR_PREFIX.InvalidName ListServices string:Bob
BUS_UID=$BOB_UID bcall ListServices s bob
assert_bus "bob may list his own (no) apps" '.data[0] | length' 0
BUS_UID=$ALICE_UID bcall ListInstances s $SVC
assert_bus "alice may list her instances" '.data[0] | length' 2
BUS_UID=$ALICE_UID bcall StopApp s "$I2"
assert_eq "alice may stop her instance" "0 " "$RC $ERR"
check "it is stopped" test "$(timeout 30 systemctl --user is-active "$I2.service")" = inactive
BUS_UID=$ALICE_UID bcall RemoveInstance s "$I2"
assert_eq "and remove it" "0 " "$RC $ERR"
bcall ListInstances s $SVC
assert_bus "it is gone" '.data[0] | map(.[0]) | join(";")' "$I1"

# ============================== one uid lookup per connection, not per call
log "the caller's uid is asked of the bus daemon once per connection"
# The monitor shows a marker (a call of ours to the bus daemon) once it
# is installed; the bus daemon passes messages to it in the order it
# handles them, so the marker sent after the command comes after every
# lookup made for it.
monitor_marked() { # FILE MARKER: sends the marker, true once the monitor printed it
        timeout 10 busctl --user call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
                NameHasOwner s "$2" >/dev/null 2>&1
        grep -q "$2" "$1"
}
lookups() { # COMMAND...: runs it under a bus monitor; prints how many times
        # nap-managerd asked the bus daemon for a caller's credentials
        local mon=$T/monitor pid
        timeout 60 busctl --user monitor --match="type='method_call',destination='org.freedesktop.DBus'" \
                >"$mon" 2>&1 &
        pid=$!
        wait_until 30 monitor_marked "$mon" io.nap.Test.Before$pid || echo "the monitor never started" >&2
        "$@" >"$T/lookups.out" 2>&1
        wait_until 30 monitor_marked "$mon" io.nap.Test.After$pid || echo "the monitor stopped" >&2
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        grep -cE 'Member=(GetConnectionCredentials|GetConnectionUnixUser)$' "$mon"
}
three_busctl() { for _ in 1 2 3; do bcall ListInstances s $SVC; done; }
assert_eq "three calls with busctl, three connections: three lookups" 3 "$(lookups three_busctl)"
assert_eq "ten calls on one connection: one lookup" 1 \
        "$(lookups "$NAP_BUS_CALLS" 10 $NAME $OBJ $IFACE ListInstances $SVC)"
assert_eq "... and all ten answered" "$(printf 'ok\n%.0s' $(seq 10))" "$(cat "$T/lookups.out")"

# ======================================= the system bus policy, privately
log "system bus policy (dbus/io.nap.Manager1.conf)"
# A bus daemon configured as Debian's system bus (default deny for method
# calls and names), with only our policy file included, on a socket here;
# a nap-managerd (--bus) connected to it as root, serving the same apps.
SYSBUS=$T/system_bus_socket
mkdir -p "$T/system.d" && cp "$SRC/dbus/io.nap.Manager1.conf" "$T/system.d/"
sed -e '/<user>/d' -e '/<fork\/>/d' -e '/<pidfile>/d' -e '/<syslog\/>/d' -e '/<servicehelper>/d' \
        -e '/standard_system_servicedirs/d' -e "s|<listen>.*</listen>|<listen>unix:path=$SYSBUS</listen>|" \
        -e '/<include /d' -e "s|<includedir>system.d</includedir>|<includedir>$T/system.d</includedir>|" \
        -e '/<includedir>\/etc/d' /usr/share/dbus-1/system.conf >"$T/system.conf"
dbus-daemon --config-file="$T/system.conf" --nofork --nopidfile >"$T/sysbus.log" 2>&1 &
SYSBUS_PID=$!
wait_until 10 test -S "$SYSBUS"
chmod 0755 "$T" # other uids reach the socket
DBUS_SESSION_BUS_ADDRESS=unix:path=$SYSBUS "$NAP_TEST_DIR/bin/nap-managerd" --user --listen="$T/private.sock" --bus \
        >"$T/private-managerd.log" 2>&1 &
PRIVATE_PID=$!
sysbus_owned() {
        timeout 5 busctl --address="unix:path=$SYSBUS" call org.freedesktop.DBus /org/freedesktop/DBus \
                org.freedesktop.DBus NameHasOwner s $NAME 2>/dev/null | grep -q true
}
if wait_until 10 sysbus_owned; then
        ok "root may own $NAME on a bus with the policy (nap-managerd --bus took it)"
else
        fail "root may own $NAME on a bus with the policy (nap-managerd --bus took it)"
        diag "bus: $(cat "$T/sysbus.log")" "nap-managerd: $(cat "$T/private-managerd.log")"
fi
sysbus_send() { # UID ARGS...: dbus-send on that bus; prints the error name or ok
        local out
        out=$(timeout 30 setpriv --reuid="$1" --regid="$1" --clear-groups dbus-send --bus="unix:path=$SYSBUS" \
                --print-reply "${@:2}" 2>&1)
        if [[ $out =~ ^Error\ ([^:]+): ]]; then echo "${BASH_REMATCH[1]}"; else echo ok; fi
}
assert_eq "bob may call io.nap.Manager1 methods (ListServices bob)" ok \
        "$(sysbus_send $BOB_UID --dest=$NAME $OBJ $IFACE.ListServices string:bob)"
assert_eq "where nap refuses what is not his: PermissionDenied" $ERR_PREFIX.PermissionDenied \
        "$(sysbus_send $BOB_UID --dest=$NAME $OBJ $IFACE.ListServices string:alice)"
assert_eq "bob may introspect it" ok \
        "$(sysbus_send $BOB_UID --dest=$NAME $OBJ org.freedesktop.DBus.Introspectable.Introspect)"
assert_eq "other interfaces are closed to bob by the policy" org.freedesktop.DBus.Error.AccessDenied \
        "$(sysbus_send $BOB_UID --dest=$NAME $OBJ org.freedesktop.DBus.Properties.GetAll string:$IFACE)"
assert_eq "bob may not own $NAME" org.freedesktop.DBus.Error.AccessDenied \
        "$(sysbus_send $BOB_UID --dest=org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus.RequestName \
                string:$NAME uint32:4)"
kill "$PRIVATE_PID" "$SYSBUS_PID" 2>/dev/null
wait "$PRIVATE_PID" "$SYSBUS_PID" 2>/dev/null
chmod 0700 "$T"

# ================================================= issue 4: etcd agrees
log "get_service_url and get_port through napctl, varlink and D-Bus, against etcd"
if [ -x "$ETCD_BIN" ] && command -v etcdctl >/dev/null && etcd_start "$T/etcd"; then
        echo "Etcd=$ETCD_URL" >>"$NAP_CONFIG"
        ectl() { ETCDCTL_API=3 timeout 10 etcdctl --endpoints="$ETCD_URL" --dial-timeout=2s "$@"; }
        # nap.conf is read at start: the next call starts a daemon that knows etcd.
        timeout 30 systemctl --user stop nap-managerd.service
        bcall DeployApp ss $SVC "file://$HELLO"
        assert_bus "DeployApp over D-Bus with Etcd= (unchanged): the URL is published" \
                '"\(.data[1]) \(.data[2]) [\(.data[3])]"' "false done []"
        assert_eq "it published the URL to etcd" "file://$HELLO" "$(ectl get --print-value-only /services/url/alice/hello)"
        bcall StartCommon ss $SVC ""
        assert_bus "StartCommon with \"\" (no parameters): the profile's default, port published" \
                '"\(.data[0][9].greeting) \(.data[1])"' "hello done"
        I3=$(jq -r '.data[0][0]' <<<"$OUT" 2>/dev/null)
        P3=$(jq -r '.data[0][3]' <<<"$OUT" 2>/dev/null)
        N3=${I3##*@}
        assert_eq "StartCommon over D-Bus published the instance's port" "$P3" \
                "$(ectl get --print-value-only "/services/port/alice/hello/$N3")"

        agree() { # DESCRIPTION ETCD-VALUE: napctl (helper and in-process), varlink and D-Bus say it, from etcd
                local want="$2 etcd" got
                got=$(timeout 60 "$NAPCTL" --user --json "${NAPCTL_ARGS[@]}" 2>&1 | jq -r "\"\\(.$FIELD) \\(.source)\"" 2>&1)
                assert_eq "$1: napctl" "$want" "$got"
                got=$(timeout 60 "$NAPCTL" --user --no-helper --json "${NAPCTL_ARGS[@]}" 2>&1 | jq -r "\"\\(.$FIELD) \\(.source)\"" 2>&1)
                assert_eq "$1: napctl --no-helper" "$want" "$got"
                got=$(varlink_call "io.nap.Manager.$METHOD" "$VARLINK_ARGS" | jq -r "\"\\(.parameters.$FIELD) \\(.parameters.source)\"" 2>&1)
                assert_eq "$1: varlink" "$want" "$got"
                bcall "$METHOD" s "$BUS_ARG"
                got=$(jq -r '"\(.data[0]) \(.data[1])"' <<<"$OUT" 2>&1)
                assert_eq "$1: D-Bus" "$want" "$got"
                [ "$got" = "$want" ] || diag "$ERR"
        }
        METHOD=GetServiceUrl FIELD=url NAPCTL_ARGS=(get-service-url alice hello) \
                VARLINK_ARGS="{\"service\":\"$SVC\"}" BUS_ARG=$SVC
        agree "the URL" "$(ectl get --print-value-only /services/url/alice/hello)"
        METHOD=GetPort FIELD=port NAPCTL_ARGS=(get-port "$I3") VARLINK_ARGS="{\"instance\":\"$I3\"}" BUS_ARG=$I3
        agree "the port" "$(ectl get --print-value-only "/services/port/alice/hello/$N3")"
        # What etcd says, not a copy of this host's state:
        ectl put "/services/port/alice/hello/$N3" 1234 >/dev/null
        ectl put /services/url/alice/hello https://example.com/moved.git >/dev/null
        agree "a port changed in etcd" 1234
        METHOD=GetServiceUrl FIELD=url NAPCTL_ARGS=(get-service-url alice hello) \
                VARLINK_ARGS="{\"service\":\"$SVC\"}" BUS_ARG=$SVC
        agree "a URL changed in etcd" https://example.com/moved.git

        # The live endpoint of the new instance, published by its sidecar
        # (nap-discovery) once the app answers.
        ep_key() { ectl get --prefix --keys-only "/services/$SVC/" | grep . ; }
        if wait_until 20 ep_key >/dev/null; then ok "the sidecar published an endpoint"; else fail "the sidecar published an endpoint"; fi
        WANT=$(ectl get --prefix --print-value-only "/services/$SVC/" | jq -rs 'map("\(.host):\(.port) \(.instance)") | sort | join(";")' 2>&1)
        bcall ListEndpoints s $SVC
        assert_eq "ListEndpoints over D-Bus agrees with etcdctl" "$WANT" \
                "$(jq -r '.data[0] | map("\(.[0]):\(.[1]) \(.[2])") | sort | join(";")' <<<"$OUT" 2>&1)"
        assert_eq "ListEndpoints over varlink agrees with etcdctl" "$WANT" \
                "$(varlink_call io.nap.Manager.ListEndpoints "{\"service\":\"$SVC\"}" |
                        jq -r '.parameters.endpoints | map("\(.host):\(.port) \(.instance)") | sort | join(";")' 2>&1)"
        assert_eq "it is the new instance on its port" "127.0.0.1:$P3 $I3" "$WANT"
        etcd_stop
else
        ok "# SKIP no etcd (Debian's etcd-server and etcd-client) to check against"
fi

# ================================================================ shutdown
log "shutdown"
timeout 30 systemctl --user stop nap-managerd.service
assert_eq "SIGTERM: a clean exit" "success 0" "$(svc_prop Result) $(svc_prop ExecMainStatus)"
assert_contains "D-Bus calls are logged with the caller's uid (debug)" \
        "$(timeout 30 journalctl -q --user-unit nap-managerd.service -o cat 2>&1)" "uid $BOB_UID calls StopApp over D-Bus"
if timeout 30 journalctl -q --user-unit nap-managerd.service -p warning 2>/dev/null | grep -q .; then
        fail "nap-managerd logged no warnings or errors"
        diag "$(timeout 30 journalctl -q --user-unit nap-managerd.service -p warning 2>&1 | tail -n 10)"
else
        ok "nap-managerd logged no warnings or errors"
fi

nap_summary
