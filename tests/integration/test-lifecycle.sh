#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# An app as a whole (issue 12, item 4), with the real napctl, nap-managerd
# and systemd user manager of lib.sh, and a real etcd when there is one:
#   - scale up (waiting for each to answer) and down (stopped ones first,
#     then the highest-numbered), idempotent, bad N refused;
#   - config set reaching the app's environment after a rolling restart,
#     hostile values ('%', '$', '"', '\', quotes, spaces) arriving exactly,
#     set of the same values restarting nothing, unset, bad keys refused
#     and changing nothing, new instances getting the configuration;
#   - restart of an app (every instance a new process) and of an instance;
#   - status and status --json, list-instances' VERSION;
#   - destroy-app: refused without --yes; with it nothing of the app is
#     left (tree, repository, manifests, units, generator files, etcd
#     keys); again: NoSuchService; killed half-way (SIGKILL at a
#     nap_debug_point) and finished by recover;
#   - the methods over varlink (D-Bus: tests/integration/test-dbus.sh).
#
#   NAPCTL=build/cli/napctl NAP_GENERATOR=build/generators/nap-generator \
#   NAP_BUILD_ROOT=build tests/integration/test-lifecycle.sh
# Needs root; exits 77 otherwise.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../etcd-lib.sh"

nap_napctl_env
# The sidecars run this build's nap-discovery: endpoints in etcd to remove.
[ -n "${NAP_SANDBOX_INSIDE:-}" ] || [ ! -x "${NAP_DISCOVERY:-}" ] ||
        export NAP_DISCOVERY_BINARY=$(realpath "$NAP_DISCOVERY")
nap_sandbox_enter "$@"
nap_sandbox_start
nap_need jq git curl setpriv socat
nap_users_setup || { echo "Bail out! cannot set up the test users"; exit 1; }
# The socket lives in $XDG_RUNTIME_DIR (0700, root's): let alice and bob
# reach it, as /run/nap is reachable in the system manager.
chmod 0711 "$XDG_RUNTIME_DIR"
. "$(dirname "$0")/napctl-lib.sh"

SVC=alice_hello
TREE=$NAP_ROOT/services/alice/$SVC
REPO=$NAP_ROOT/git/alice/hello.git
ETCD=
if [ -x "$ETCD_BIN" ]; then
        trap 'nap__rc=$?; etcd_stop; (exit $nap__rc); nap_sandbox_stop' EXIT
        etcd_start "$NAP_TEST_DIR/etcd" && echo "Etcd=$ETCD_URL" >>"$NAP_CONFIG" && ETCD=1
fi
[ -n "$ETCD" ] || log "no etcd ($ETCD_BIN): the etcd keys are not checked"

etcd_keys() { # PREFIX: the keys etcd has under it, one per line
        ETCDCTL_API=3 timeout 10 etcdctl --endpoints="$ETCD_URL" get "$1" --prefix --keys-only 2>/dev/null | grep .
}

HELLO=$NAP_TEST_DIR/repos/hello
make_repo "$HELLO" "$NAP_SOURCE_ROOT"/tests/apps/hello/. || { echo "Bail out! cannot make the app's repository"; exit 1; }
COMMIT=$(git -C "$HELLO" rev-parse HEAD)

# ------------------------------------------------------------------ helpers

# The app's instances over varlink: "N:active" by number.
states() {
        varlink_call io.nap.Manager.ListInstances "{\"service\":\"$SVC\"}" |
                jq -r '[.parameters.instances[] | "\(.number):\(.active_state)"] | join(" ")'
}
numbers() { states | sed 's/:[a-z]*//g'; }
count() { ls "$NAP_INSTANCES" 2>/dev/null | grep -c "^${SVC}_common@.*\.json$"; }
main_pid() { timeout 30 systemctl --user show -P MainPID "$1.service"; }
port_of() { jq -r .port "$NAP_INSTANCES/$1.json"; }
# env_of INSTANCE NAME: the variable as the app's process has it.
env_of() { http_get "http://127.0.0.1:$(port_of "$1")/env" | jq -r --arg k "$2" '.[$k] // "<unset>"'; }
instances() { numbers | tr ' ' '\n' | sed "s/^/${SVC}_common@/" | grep -v '@$'; }
# "INSTANCE PID" of every instance: a rolling restart changes every line
# (a process restarted in place, or an instance replaced by a new one).
snapshot() { for i in $(instances); do echo "$i $(main_pid "$i")"; done; }
first() { instances | sed -n 1p; }
second() { instances | sed -n 2p; }
# every_env NAME: the variable in every instance, space-separated.
every_env() { local i; for i in $(instances); do env_of "$i" "$1"; done | tr '\n' ' ' | sed 's/ $//'; }

# expect_fail DESCRIPTION RC ARGS...: napctl fails with that exit status.
expect_fail() {
        local what=$1 want=$2
        shift 2
        nap "$@"
        if [ "$RC" = "$want" ]; then ok "$what"; else fail "$what"; nap_diag "$@"; fi
}

expect_ok "deploy-app" deploy-app $SVC "file://$HELLO"

# ================================================================== scale
log "scale"
T0=$(now_ms)
expect_ok "scale to 2" scale $SVC 2
log "scale 0 -> 2 (each waited for until it answers): $(($(now_ms) - T0)) ms"
assert_eq "a progress line per instance, then the change" \
        "${SVC}_common@1: started, answering|${SVC}_common@2: started, answering|$SVC: 0 -> 2 instance(s)" \
        "$(tr '\n' '|' <<<"$OUT" | sed 's/|$//')"
assert_eq "two instances, running" "1:active 2:active" "$(states)"
assert_eq "both answer" "hello hello" "$(http_get "http://127.0.0.1:$(port_of ${SVC}_common@1)/greeting") $(http_get "http://127.0.0.1:$(port_of ${SVC}_common@2)/greeting")"
PID1=$(main_pid ${SVC}_common@1)
expect_ok "scale to 2 again" scale $SVC 2
assert_eq "changes nothing and says so" "$SVC has 2 instance(s) already (unchanged)" "$OUT"
assert_eq "the instance was not restarted" "$PID1" "$(main_pid ${SVC}_common@1)"
expect_ok "scale to 4 with a parameter" scale $SVC 4 greeting=scaled
assert_eq "the new ones take it" "scaled scaled" \
        "$(http_get "http://127.0.0.1:$(port_of ${SVC}_common@3)/greeting") $(http_get "http://127.0.0.1:$(port_of ${SVC}_common@4)/greeting")"
expect_ok "stop instance 2" stop-app ${SVC}_common@2
expect_ok "scale to 2" scale $SVC 2
assert_eq "the stopped one went first, then the highest-numbered" \
        "${SVC}_common@2: removed|${SVC}_common@4: removed|$SVC: 4 -> 2 instance(s)" "$(tr '\n' '|' <<<"$OUT" | sed 's/|$//')"
assert_eq "1 and 3 are left, running" "1:active 3:active" "$(states)"
expect_ok "scale --json" --json scale $SVC 2
assert_eq "--json: before, after, started, removed" "2 2 0 0" \
        "$(jq -r '"\(.before) \(.after) \(.started | length) \(.removed | length)"' <<<"$OUT")"

for bad in -1 abc 1001 2x ''; do
        expect_fail "scale to '$bad' is refused (usage: 2)" 2 scale $SVC "$bad"
done
expect_fail "scale up with a parameter the profile lacks: 2" 2 scale $SVC 3 nope=1
expect_fail "scale with a word that is not K=V: 2" 2 scale $SVC 3 greeting
expect_fail "scale of an app that is not deployed: 4" 4 scale alice_nope 1
assert_contains "named" "$ERR" "alice_nope"
assert_eq "none of that changed anything" "1:active 3:active" "$(states)"

# A profile with a parameter that has no default: scaling down needs none.
NEEDS=$NAP_TEST_DIR/repos/needs
mkdir -p "$NEEDS" && cp "$NAP_SOURCE_ROOT/tests/apps/hello/server.py" "$NEEDS/" &&
        echo 'python3 server.py --port {port} --greeting {greeting}' >"$NEEDS/profile" &&
        make_repo "$NEEDS" || fail "the needs app's repository"
expect_ok "deploy an app whose profile needs a parameter" deploy-app alice_needs "file://$NEEDS"
expect_fail "scale up without it: 2" 2 scale alice_needs 1
expect_ok "scale up with it" scale alice_needs 2 greeting=given
expect_ok "scale down to 0 without it" scale alice_needs 0
assert_contains "both gone" "$OUT" "alice_needs: 2 -> 0 instance(s)"
expect_ok "destroy an app without instances" destroy-app alice_needs --yes
check "its tree is gone" test ! -e "$NAP_ROOT/services/alice/alice_needs"

# ================================================================= config
log "config"
# What a shell, systemd's specifiers and its unquoting would each change.
HOSTILE='50% off $HOME ${PORT} "q" \n \\ '"'it'"' %n %% $$ end '
UNICODE='grüße ✓'
T0=$(now_ms)
expect_ok "config set with hostile values" config set $SVC "GREETING_X=$HOSTILE" "UNI=$UNICODE" EMPTY=
log "config set, a rolling restart of 2 instances: $(($(now_ms) - T0)) ms"
assert_contains "applied by a restart" "$OUT" "configuration applied"
for i in $(instances); do
        assert_eq "$i: the hostile value arrived exactly" "$HOSTILE" "$(env_of $i GREETING_X)"
        assert_eq "$i: the UTF-8 one too" "$UNICODE" "$(env_of $i UNI)"
        assert_eq "$i: an empty one is set, empty" "" "$(env_of $i EMPTY)"
        assert_eq "$i: PORT is still nap's" "$(port_of $i)" "$(env_of $i PORT)"
done
check "the manifest carries it" test "$(jq -r .environment.GREETING_X "$NAP_INSTANCES/$(first).json")" = "$HOSTILE"
DROPIN=$(find /run/user/0/systemd -path "*$(first).service.d/*" -name '*.conf' 2>/dev/null | head -n 1)
assert_contains "the drop-in has it as one quoted Environment= line" "$(cat "$DROPIN" 2>/dev/null)" \
        'Environment="GREETING_X=50%% off $HOME ${PORT} \"q\" \\n \\\\ '
nap config get $SVC
assert_eq "config get: KEY=VALUE lines, sorted" "EMPTY=|GREETING_X=$HOSTILE|UNI=$UNICODE" "$(tr '\n' '|' <<<"$OUT" | sed 's/|$//')"
nap config get $SVC GREETING_X
assert_eq "config get KEY: the value exactly" "$HOSTILE" "$OUT"
nap --json config get $SVC
assert_eq "config get --json" "$HOSTILE" "$(jq -r .GREETING_X <<<"$OUT")"

SNAP=$(snapshot)
T0=$(now_ms)
expect_ok "config set of the same values" config set $SVC "GREETING_X=$HOSTILE"
log "config set of the same values (no restart): $(($(now_ms) - T0)) ms"
assert_eq "is a no-op" "$SVC: configuration unchanged" "$OUT"
assert_eq "nothing restarted" "$SNAP" "$(snapshot)"

STORED=$(cat "$NAP_ROOT/services/alice/.$SVC.env")
expect_fail "a reserved key (PORT): 2" 2 config set $SVC PORT=1
assert_contains "named" "$ERR" "PORT"
expect_fail "NOTIFY_SOCKET: 2" 2 config set $SVC NOTIFY_SOCKET=/x
expect_fail "a key that is no C identifier: 2" 2 config set $SVC 1BAD=x
expect_fail "a key with a dash: 2" 2 config set $SVC A-B=x
expect_fail "a value with a control character: 2" 2 config set $SVC "OK=a$(printf '\t')b"
expect_fail "a key twice: 2" 2 config set $SVC A=1 A=2
expect_fail "no '=': 2" 2 config set $SVC JUSTAKEY
expect_fail "unset of a bad key: 2" 2 config unset $SVC 'bad key'
expect_fail "config of an app that is not deployed: 4" 4 config set alice_nope A=1
assert_eq "none of them changed the stored configuration" "$STORED" "$(cat "$NAP_ROOT/services/alice/.$SVC.env")"
assert_eq "nor restarted anything" "$SNAP" "$(snapshot)"

expect_ok "a new instance" scale $SVC 3
NEW=$(numbers | awk '{print $NF}')
assert_eq "has the configuration" "$HOSTILE" "$(env_of ${SVC}_common@$NEW GREETING_X)"
expect_ok "config unset" config unset $SVC UNI EMPTY NEVER_SET
assert_eq "gone from the app's environment" "<unset> <unset>" "$(env_of "$(first)" UNI) $(env_of "$(first)" EMPTY)"
assert_eq "the rest is kept" "$HOSTILE" "$(env_of "$(second)" GREETING_X)"
expect_ok "deploy-app keeps the configuration" deploy-app $SVC "file://$HELLO"
nap config get $SVC GREETING_X
assert_eq "still there" "$HOSTILE" "$OUT"

log "config set killed between storing and applying"
kill_at config:stored "config set" timeout 60 "$NAPCTL" --user --no-helper config set $SVC CUT=1
assert_eq "the configuration is stored" 1 "$(jq -r .CUT "$NAP_ROOT/services/alice/.$SVC.env")"
assert_eq "the instances do not have it yet" "<unset> <unset> <unset>" "$(every_env CUT)"
expect_ok "config set again" config set $SVC CUT=1
assert_contains "applies it, though the stored configuration is unchanged" "$OUT" "configuration applied"
assert_eq "the instances have it" "1 1 1" "$(every_env CUT)"

# ================================================================ restart
log "restart"
SNAP=$(snapshot)
expect_ok "restart the app" restart $SVC
AFTER=$(snapshot)
assert_eq "as many instances" "$(wc -l <<<"$SNAP")" "$(wc -l <<<"$AFTER")"
assert_eq "every one a new process" "" "$(comm -12 <(sort <<<"$SNAP") <(sort <<<"$AFTER"))"
for i in $(instances); do
        check "$i: answering" http_get "http://127.0.0.1:$(port_of "$i")/health" 5
done
I=$(first) J=$(second)
P=$(main_pid "$I") PJ=$(main_pid "$J")
expect_ok "restart one instance" restart "$I"
check "that one is a new process" test "$(main_pid "$I")" != "$P"
assert_eq "the other is not" "$PJ" "$(main_pid "$J")"
expect_fail "restart of an app that is not deployed: 4" 4 restart alice_nope
expect_fail "restart of an instance that does not exist: 4" 4 restart ${SVC}_common@99

# ========================================================= status, VERSION
log "status"
STOPPED=$(second)
expect_ok "stop one" stop-app "$STOPPED"
T0=$(now_ms)
expect_ok "status alice" status alice
log "status of 1 app, 3 instances (one stopped): $(($(now_ms) - T0)) ms"
assert_match "one line for the app: running/total, version, health, ports" \
        "$(grep "^$SVC " <<<"$OUT")" "^$SVC +2/3 +${COMMIT:0:12} +ok 2/2 +[0-9]+,[0-9]+,[0-9]+$"
expect_ok "status --json" --json status alice
assert_eq "--json" "$SVC $COMMIT 3 2 2 3" \
        "$(jq -r '.[] | "\(.service) \(.commit) \(.instances) \(.running) \(.answering) \(.ports | length)"' <<<"$OUT")"
expect_ok "status (root: every user)" status
assert_contains "lists alice's app" "$OUT" "$SVC "
expect_fail "status of a bad user name: 2" 2 status Alice
expect_ok "start it again" start-app "$STOPPED"

expect_ok "list-instances" list-instances $SVC
assert_eq "a VERSION column with the short commit" "${COMMIT:0:12}" "$(awk 'NR == 2 {print $NF}' <<<"$OUT")"
expect_ok "list-instances --json" --json list-instances $SVC
assert_eq "--json: each instance's commit" "$COMMIT" "$(jq -r '[.[].commit] | unique | join(",")' <<<"$OUT")"
CACHED=$OUT
expect_ok "list-instances --json --no-helper (no cache: systemd and the manifests)" --no-helper --json list-instances $SVC
assert_eq "the same fields and values as nap-managerd's cached answer" "$(jq -S . <<<"$CACHED")" "$(jq -S . <<<"$OUT")"

# =============================================================== varlink
log "over varlink"
varlink_call_out io.nap.Manager.ListApps '{"user":"alice"}'
varlink_assert_reply "ListApps" '.parameters.apps[0] | "\(.service) \(.instances)"' "$SVC 3"
varlink_call_out io.nap.Manager.GetConfig "{\"service\":\"$SVC\"}"
varlink_assert_reply "GetConfig" '.parameters.config.GREETING_X' "$HOSTILE"
varlink_call_out io.nap.Manager.SetConfig "{\"service\":\"$SVC\",\"set\":{\"PORT\":\"1\"}}"
varlink_assert_error "SetConfig of PORT: InvalidParameter" io.nap.Manager.InvalidParameter
varlink_call_out io.nap.Manager.ListInstances "{\"service\":\"$SVC\"}"
varlink_assert_reply "ListInstances has the commits" ".parameters.commits[\"$(first)\"]" "$COMMIT"
varlink_call_out io.nap.Manager.Scale '{"service":"alice_nope","instances":1}'
varlink_assert_error "Scale of an unknown app: NoSuchService" io.nap.Manager.NoSuchService
STORED=$(cat "$NAP_ROOT/services/alice/.$SVC.env")
VARLINK_UID=$BOB_UID varlink_call_out io.nap.Manager.DestroyApp "{\"service\":\"$SVC\"}"
varlink_assert_error "bob may not destroy alice's app: PermissionDenied" io.nap.Manager.PermissionDenied
VARLINK_UID=$BOB_UID varlink_call_out io.nap.Manager.SetConfig "{\"service\":\"$SVC\",\"set\":{\"A\":\"1\"}}"
varlink_assert_error "nor change its configuration" io.nap.Manager.PermissionDenied
VARLINK_UID=$BOB_UID varlink_call_out io.nap.Manager.ListApps '{"user":"alice"}'
varlink_assert_error "nor see its status" io.nap.Manager.PermissionDenied
VARLINK_UID=$ALICE_UID varlink_call_out io.nap.Manager.ListApps '{"user":"alice"}'
varlink_assert_reply "alice sees hers" '.parameters.apps | length' 1
VARLINK_UID=$ALICE_UID varlink_call_out io.nap.Manager.GetConfig "{\"service\":\"$SVC\"}"
varlink_assert_reply "and its configuration" '.parameters.config.GREETING_X' "$HOSTILE"
assert_eq "none of that changed the stored configuration" "$STORED" "$(cat "$NAP_ROOT/services/alice/.$SVC.env")"

# =========================================================== destroy-app
# What of the app there is: paths, units, generator files, etcd keys.
leftovers() {
        find "$NAP_ROOT" "$NAP_INSTANCES" /run/user/0/systemd -name "*${SVC}*" 2>/dev/null
        grep -rl "^${SVC}_" "$NAP_ROOT/requests" 2>/dev/null # start-common's request ids
        ls -d "$REPO" 2>/dev/null
        timeout 30 systemctl --user list-units --all --no-legend --plain "${SVC}_*" 2>/dev/null | grep -v not-found
        [ -z "$ETCD" ] || etcd_keys /services/url/alice/hello
        [ -z "$ETCD" ] || etcd_keys /services/port/alice/hello
        [ -z "$ETCD" ] || etcd_keys /services/${SVC}/
}
# The lock file stays (see ops-lifecycle.c): it is not the app's.
leftovers_but_lock() { leftovers | grep -v "/\.$SVC\.lock$"; }

log "destroy-app"
git init -q --bare "$REPO" || fail "a bare repository for the app"
expect_ok "start-common (it records its request id)" start-common $SVC
check "the request is recorded" test -n "$(grep -rl "^${SVC}_" "$NAP_ROOT/requests")"
RUNNING_BEFORE=$(states)
if [ -n "$ETCD" ]; then
        check "etcd has the app's URL" etcd_keys /services/url/alice/hello
        check "and its ports" etcd_keys /services/port/alice/hello/
        [ -z "${NAP_DISCOVERY_BINARY:-}" ] || check "and its live endpoints" wait_until 20 etcd_keys /services/${SVC}/
fi
BEFORE_ALL=$(leftovers | sort)
expect_fail "destroy-app without --yes: refused (2)" 2 destroy-app $SVC
assert_contains "saying why" "$ERR" "--yes"
assert_eq "and nothing changed" "$BEFORE_ALL" "$(leftovers | sort)"
assert_eq "the instances still run" "$RUNNING_BEFORE" "$(states)"
PORTS=$(for i in $(instances); do port_of "$i"; done)
T0=$(now_ms)
expect_ok "destroy-app --yes" destroy-app $SVC --yes
log "destroy-app of an app with $(wc -w <<<"$PORTS") instances: $(($(now_ms) - T0)) ms"
assert_eq "says so" "Destroyed $SVC" "$OUT"
assert_eq "nothing of the app is left" "" "$(leftovers_but_lock)"
for p in $PORTS; do
        check "nothing answers on port $p" http_refused "http://127.0.0.1:$p/"
done
expect_fail "destroy-app again: NoSuchService (4)" 4 destroy-app $SVC --yes
expect_fail "list-instances: NoSuchService (4)" 4 list-instances $SVC
expect_fail "destroy-app of a bad name: 2" 2 destroy-app 'alice_Bad' --yes

log "destroy-app killed half-way, finished by recover"
expect_ok "deploy again" deploy-app $SVC "file://$HELLO"
expect_ok "two instances" scale $SVC 2
expect_ok "a configuration" config set $SVC A=1
git init -q --bare "$REPO" || fail "a bare repository for the app"
for point in destroy-app:instances destroy-app:tree; do
        kill_at $point "$point: napctl --no-helper destroy-app" \
                timeout 60 "$NAPCTL" --user --no-helper destroy-app $SVC --yes || continue
        check "$point: the intent is there after the kill" test -f "$NAP_ROOT/intents/$SVC.intent"
        check "$point: something of the app is left" test -n "$(leftovers_but_lock)"
        expect_ok "$point: napctl recover" recover
        assert_contains "$point: recover reports no failure" "$OUT" " 0 failed"
        assert_eq "$point: nothing of the app is left" "" "$(leftovers_but_lock)"
        check "$point: no intent is left" test ! -e "$NAP_ROOT/intents/$SVC.intent"
        expect_ok "$point: deploy again" deploy-app $SVC "file://$HELLO"
        expect_ok "$point: an instance" scale $SVC 1
        git init -q --bare "$REPO" || fail "a bare repository for the app"
done
kill_at destroy-app:instances "destroy-app killed, then run again" \
        timeout 60 "$NAPCTL" --user --no-helper destroy-app $SVC --yes
expect_ok "destroy-app again finishes it" destroy-app $SVC --yes
assert_eq "nothing of the app is left" "" "$(leftovers_but_lock)"

nap_summary
