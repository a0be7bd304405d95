#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# nap-managerd answers ListInstances and GetInstancesNum from memory
# (helpers/nap-managerd/instance-cache.c), in a real systemd user manager with its
# bus (lib.sh):
#   - warm calls do not ask systemd: a bus monitor sees no
#     ListUnitsByPatterns for them (and does see the one a daemon-reload
#     causes, so the monitor is known to work);
#   - the answer is never behind a change the caller already saw done,
#     with no waiting in between: units stopped and started behind nap's
#     back with systemctl, nap's own stop/start/remove/start-common, a
#     manifest rewritten in Instances= by hand, a daemon-reload, over
#     varlink and over D-Bus.
#
#   NAPCTL=build/cli/napctl NAP_GENERATOR=build/generators/nap-generator \
#           NAP_BUILD_ROOT=build tests/integration/test-instances-cache.sh
# Needs root; exits 77 otherwise.

. "$(dirname "$0")/lib.sh"

nap_napctl_env
SRC=$NAP_SOURCE_ROOT
nap_sandbox_enter "$@"
nap_sandbox_start
nap_need jq git socat busctl
. "$(dirname "$0")/napctl-lib.sh" # installs and enables nap-managerd.socket

SVC=alice_hello
# states: "N:active/sub N:active/sub ..." of the service, over varlink.
states() {
        varlink_call io.nap.Manager.ListInstances "{\"service\":\"$SVC\"}" |
                jq -r '[.parameters.instances[] | "\(.number):\(.active_state)/\(.sub_state)"] | join(" ")'
}
count() {
        varlink_call io.nap.Manager.GetInstancesNum "{\"service\":\"$SVC\"}" | jq -r .parameters.instances
}

HELLO=$NAP_TEST_DIR/repos/hello
make_repo "$HELLO" "$SRC"/tests/apps/hello/. || { echo "Bail out! cannot make the app's repository"; exit 1; }
expect_ok "deploy" deploy-app $SVC "file://$HELLO"
start_instance $SVC greeting=one && N1=$NUM && start_instance $SVC greeting=two && N2=$NUM ||
        { nap_diag start-common; echo "Bail out! cannot start instances"; nap_summary; exit 1; }
U1=${SVC}_common@$N1.service U2=${SVC}_common@$N2.service
assert_eq "two running instances" "$N1:active/running $N2:active/running" "$(states)"

# ============================================== warm calls stay in memory
log "warm calls do not ask systemd"
MON=$NAP_TEST_DIR/monitor
# monitor_sync TAG: a ListUnitsByPatterns call of our own, pattern
# nap-sync-TAG, made until the monitor shows it: then the monitor is
# installed and has written every call the bus routed before it.
monitor_sync() { wait_until 30 monitor__shows_sync "$1"; }
monitor__shows_sync() {
        timeout 10 busctl --user call org.freedesktop.systemd1 /org/freedesktop/systemd1 \
                org.freedesktop.systemd1.Manager ListUnitsByPatterns asas 0 1 "nap-sync-$1" >/dev/null &&
                grep -q "\"nap-sync-$1\"" "$MON"
}
# lists_between A B: the ListUnitsByPatterns calls after the last sync A
# and before sync B, the syncs not counted (a call's Member= line comes
# before its arguments).
lists_between() {
        awk -v a="\"nap-sync-$1\"" -v b="\"nap-sync-$2\"" '
                /Member=ListUnitsByPatterns/ { n++ }
                index($0, a) { n = 0 }
                index($0, b) { print n - 1; exit }' "$MON"
}
timeout 60 busctl --user monitor --match="type='method_call',member='ListUnitsByPatterns'" >"$MON" 2>&1 &
MONPID=$!
check "the bus monitor is installed" monitor_sync 1
for _ in $(seq 20); do states >/dev/null; count >/dev/null; done
monitor_sync 2
assert_eq "40 warm calls: no ListUnitsByPatterns on the bus" 0 "$(lists_between 1 2)"
timeout 30 systemctl --user daemon-reload
assert_eq "after a daemon-reload the answer is still right" "$N1:active/running $N2:active/running" "$(states)"
monitor_sync 3
kill "$MONPID" 2>/dev/null
wait "$MONPID" 2>/dev/null
check "... and the reload made it list again (the monitor works)" test "$(lists_between 2 3)" -ge 1

# ====================================================== behind nap's back
log "changes made with systemctl"
timeout 30 systemctl --user stop "$U1"
assert_eq "systemctl stop: inactive at once" "$N1:inactive/dead $N2:active/running" "$(states)"
timeout 30 systemctl --user start "$U1"
assert_eq "systemctl start: running at once" "$N1:active/running $N2:active/running" "$(states)"
timeout 30 systemctl --user kill --signal=SIGKILL "$U2"
both_running() { test "$(states)" = "$N1:active/running $N2:active/running"; }
wait_until 20 both_running &&
        ok "a killed instance is restarted and listed running again" ||
        { fail "a killed instance is restarted and listed running again"; diag "$(states)"; }

# ============================================================ nap's verbs
log "changes made through nap"
expect_ok "stop-app" stop-app "${SVC}_common@$N2"
assert_eq "stop-app: inactive at once" "$N1:active/running $N2:inactive/dead" "$(states)"
assert_eq "... and no longer enabled" false \
        "$(varlink_call io.nap.Manager.ListInstances "{\"service\":\"$SVC\"}" |
                jq -r ".parameters.instances[] | select(.number == $N2) | .enabled")"
expect_ok "start-app" start-app "${SVC}_common@$N2"
assert_eq "start-app: running at once" "$N1:active/running $N2:active/running" "$(states)"
timeout 60 busctl --user monitor --match="type='method_call',member='ListUnitsByPatterns'" >"$MON" 2>&1 &
MONPID=$!
check "the bus monitor is installed again" monitor_sync 4
start_instance $SVC greeting=three && N3=$NUM || fail "a third start-common"
assert_eq "start-common: listed at once" "$N1:active/running $N2:active/running $N3:active/running" "$(states)"
monitor_sync 5
kill "$MONPID" 2>/dev/null
wait "$MONPID" 2>/dev/null
# After the sync: what was asked between syncs 4 and 5.
asked=$(sed -n '/"nap-sync-4"/,/"nap-sync-5"/p' "$MON")
assert_contains "the new unit was listed by its own name" "$asked" "\"${SVC}_common@$N3.service\""
assert_not_contains "... and not every instance again" "$asked" '"*_common@*.service"'
assert_eq "GetInstancesNum agrees" 3 "$(count)"
expect_ok "remove-instance" remove-instance "${SVC}_common@$N3"
assert_eq "remove-instance: gone at once" "$N1:active/running $N2:active/running" "$(states)"
assert_eq "GetInstancesNum agrees" 2 "$(count)"

# ========================================================= the manifests
log "a manifest rewritten by hand"
M=$NAP_INSTANCES/${SVC}_common@$N1.json
check "the manifest of instance $N1 is in Instances=" test -f "$M"
jq -c '.params.greeting = "edited"' "$M" >"$M.tmp" && mv "$M.tmp" "$M"
assert_eq "the new parameter is listed at once" edited \
        "$(varlink_call io.nap.Manager.ListInstances "{\"service\":\"$SVC\"}" |
                jq -r ".parameters.instances[] | select(.number == $N1) | .params.greeting")"
rm -f "$M"
timeout 30 systemctl --user stop "$U1"
# A unit without a manifest is listed while it runs (nothing that runs is
# hidden); stopped, it is not: systemd may keep it loaded until the next
# reload (a removed instance the generator had enabled), and it is no
# instance any more.
assert_eq "manifest removed, unit stopped: no longer listed" "$N2:active/running" "$(states)"
assert_eq "... not even without parameters" "" \
        "$(varlink_call io.nap.Manager.ListInstances "{\"service\":\"$SVC\"}" |
                jq -c ".parameters.instances[] | select(.number == $N1) | .params")"

# ================================================================= D-Bus
log "the same over D-Bus"
if [ -f "$SRC/dbus/io.nap.Manager1.service" ]; then
        timeout 30 systemctl --user stop "$U2"
        assert_match "D-Bus ListInstances: stopped at once" \
                "$(timeout 30 busctl --user call io.nap.Manager1 /io/nap/Manager1 io.nap.Manager1 ListInstances s $SVC)" \
                '"inactive" "dead"'
fi

nap_summary
