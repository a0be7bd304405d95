#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Instances start, stop and go without a daemon-reload (issue 12, item 1;
# docs/ARCHITECTURE.md, "Starting without a reload"): nap-managerd writes
# an instance's units into the manager's runtime unit dir and has the
# manager load the new name from disk. Real napctl, nap-managerd, user
# manager and generator (lib.sh). What counts the manager's reloads is its
# own UnitsLoadStartTimestampMonotonic, stamped at every (re)load of the
# units: unchanged means no reload happened (checked to move on a real
# daemon-reload at the end, so the checks can fail).
#
#   NAPCTL=build/cli/napctl NAP_GENERATOR=build/generators/nap-generator \
#           tests/integration/test-noreload.sh
# Needs root; exits 77 otherwise.

. "$(dirname "$0")/lib.sh"

NAPCTL=${NAPCTL:-${1:-}}
NAP_GENERATOR=${NAP_GENERATOR:-${2:-}}
SRC=${NAP_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
if [ -z "${NAP_SANDBOX_INSIDE:-}" ]; then
        for b in "$NAPCTL" "$NAP_GENERATOR"; do
                [ -x "$b" ] || { echo "Bail out! set NAPCTL and NAP_GENERATOR to the built binaries (got '$b')"; exit 1; }
        done
        NAPCTL=$(realpath "$NAPCTL") NAP_GENERATOR=$(realpath "$NAP_GENERATOR")
        export NAPCTL NAP_GENERATOR NAP_SOURCE_ROOT=$SRC
fi
nap_sandbox_enter "$@"
nap_sandbox_start
for t in jq git curl; do
        command -v "$t" >/dev/null || { echo "Bail out! $t is needed"; exit 1; }
done
. "$(dirname "$0")/napctl-lib.sh"

RT=$XDG_RUNTIME_DIR/systemd/user  # the manager's runtime unit dir
GEN=$XDG_RUNTIME_DIR/systemd/generator
SVC=alice_hello
TEMPLATE=${SVC}_common@.service

reload_stamp() {
        timeout 30 systemctl --user show -P UnitsLoadStartTimestampMonotonic 2>&1
}

unit_prop() { # UNIT PROPERTY
        timeout 30 systemctl --user show -P "$2" "$1" 2>&1
}

# started_without_reload WHAT SERVICE PARAMS GREETING: start-common, then
# the same reload stamp, the instance answering with its own greeting, and
# systemd running template + the runtime drop-in.
started_without_reload() {
        local what=$1 stamp
        stamp=$(reload_stamp)
        if ! start_instance "$2" "$3"; then
                fail "$what: start-common"
                nap_diag start-common "$2" "$3"
                return 1
        fi
        ok "$what: start-common $3 -> $INST"
        assert_eq "$what: no daemon-reload happened" "$stamp" "$(reload_stamp)"
        assert_eq "$what: it answers with its own command" "$4 from ${SVC}_$NUM on port $PORT" "$(http_get "$URL/")"
        local cat
        cat=$(timeout 30 systemctl --user cat "$INST.service" 2>&1)
        assert_contains "$what: systemctl cat shows the template" "$cat" "# $RT/$TEMPLATE"
        assert_contains "$what: systemctl cat shows the runtime drop-in" "$cat" \
                "# $RT/$INST.service.d/50-nap-instance.conf"
        assert_contains "$what: ... with the real command line" "$cat" "ExecStart=\"python3\" \"server.py\""
        assert_eq "$what: the manager has the current files" "no" "$(unit_prop "$INST.service" NeedDaemonReload)"
        check "$what: the generator's output has no drop-in for it" test ! -e "$GEN/$INST.service.d"
}

REPOS=$NAP_TEST_DIR/repos
HELLO=$REPOS/hello
make_repo "$HELLO" "$SRC"/tests/apps/hello/. || { echo "Bail out! cannot make the app's repository"; exit 1; }
expect_ok "deploy-app" deploy-app $SVC "file://$HELLO"
STAMP0=$(reload_stamp)
[ -n "$STAMP0" ] && [ "$STAMP0" -gt 0 ] 2>/dev/null || { echo "Bail out! no reload stamp: '$STAMP0'"; exit 1; }

# ------------------------------------------------------- start, no reload
log "start without a reload"
started_without_reload "first instance" $SVC greeting=one one || { nap_summary; exit 1; }
I1=$INST
check "its app's template is in the runtime dir" test -f "$RT/$TEMPLATE"
check "no .wants link in the runtime dir (boot is the generator's)" \
        test -z "$(find "$RT" -path '*.wants*' -name "${SVC}_*" 2>/dev/null)"
check "no temporary file left in the runtime dir" test -z "$(find "$RT" -name ".${SVC}*" 2>/dev/null)"
started_without_reload "second instance" $SVC greeting=two two
I2=$INST

# ---------------------------------------------------- stop and remove, no reload
log "stop and remove without a reload"
stamp=$(reload_stamp)
expect_ok "stop-app $I2" stop-app "$I2"
assert_eq "stop-app: inactive" "inactive" "$(unit_prop "$I2.service" ActiveState)"
expect_ok "remove-instance $I2" remove-instance "$I2"
assert_eq "stop-app and remove-instance: no daemon-reload happened" "$stamp" "$(reload_stamp)"
check "its runtime drop-in is gone" test ! -e "$RT/$I2.service.d"
check "its app's template stays (an instance is left)" test -f "$RT/$TEMPLATE"
nap list-instances $SVC
assert_not_contains "list-instances does not show it" "$OUT" "$I2"
assert_contains "list-instances shows the other one" "$OUT" "$I1"
nap --json list-instances $SVC
assert_eq "list-instances --json: one instance" "$I1" "$(echo "$OUT" | jq -r '.[].name' 2>&1)"

# ----------------------------------------------------------- the fallback
log "a name the manager loaded before the instance existed"
# Numbers are never handed out twice: the next two are 3 and 4.
N3=${SVC}_common@3 N4=${SVC}_common@4
assert_eq "$N3 is loaded as not-found first" "not-found" "$(unit_prop "$N3.service" LoadState)"
if start_instance $SVC greeting=three && [ "$INST" = "$N3" ]; then
        ok "start-common after a not-found load: $INST"
        assert_eq "... it answers with its own command" "three from ${SVC}_3 on port $PORT" "$(http_get "$URL/")"
        assert_contains "... systemctl cat shows the runtime drop-in" \
                "$(timeout 30 systemctl --user cat "$INST.service" 2>&1)" "# $RT/$INST.service.d/50-nap-instance.conf"
else
        fail "start-common after a not-found load (wanted $N3)"
        nap_diag start-common $SVC greeting=three
fi

# An old drop-in for the same name, loaded: only a reload replaces it.
mkdir -p "$RT/$N4.service.d"
printf '[Service]\nExecStart=/bin/false stale\nEnvironment=PORT=1\n' >"$RT/$N4.service.d/50-nap-instance.conf"
assert_eq "$N4 is loaded from a stale drop-in first" "loaded" "$(unit_prop "$N4.service" LoadState)"
stamp=$(reload_stamp)
if start_instance $SVC greeting=four && [ "$INST" = "$N4" ]; then
        ok "start-common over a stale loaded drop-in: $INST"
        check "... the fallback did one daemon-reload" test "$stamp" != "$(reload_stamp)"
        assert_eq "... it answers with its own command" "four from ${SVC}_4 on port $PORT" "$(http_get "$URL/")"
        assert_not_contains "... the stale command is gone" "$(timeout 30 systemctl --user cat "$INST.service" 2>&1)" \
                "/bin/false"
else
        fail "start-common over a stale loaded drop-in (wanted $N4)"
        nap_diag start-common $SVC greeting=four
fi

# ------------------------------------------ the last instance takes the templates
log "remove every instance"
stamp=$(reload_stamp)
for i in "$I1" "$N3" "$N4"; do
        expect_ok "remove-instance $i" remove-instance "$i"
done
assert_eq "three removals: no daemon-reload happened" "$stamp" "$(reload_stamp)"
check "no runtime file of the app is left" test -z "$(find "$RT" -name "${SVC}_*" 2>/dev/null)"
# $N4 was in the generator's output at that reload, enabled: the target
# still wants it, so it stays loaded, stopped, until the next reload.
assert_eq "$N4 (enabled at the last reload) is stopped" "inactive" "$(unit_prop "$N4.service" ActiveState)"
nap --json list-instances $SVC
assert_eq "list-instances: none, though the manager still has $N4 loaded" "0" "$(echo "$OUT" | jq -r length 2>&1)"
http_refused "http://127.0.0.1:$PORT/" && ok "the removed instance no longer answers" ||
        fail "the removed instance no longer answers"

# ------------------------------------------------------ reboot equivalent
log "a reboot brings the same units back from the generator"
started_without_reload "instance before the reboot" $SVC greeting=five five
I5=$INST P5=$PORT
started_without_reload "disabled instance before the reboot" $SVC greeting=six six
I6=$INST
expect_ok "stop-app $I6 (disabled: not back at boot)" stop-app "$I6"
# The runtime dir is a tmpfs, empty at boot: nap's files go with the manager.
nap__stop_manager
find "$RT" -maxdepth 1 -name "${SVC}_*" -exec rm -rf {} +
nap__start_manager || { echo "Bail out! the manager did not come back"; nap_summary; exit 1; }
check "the runtime dir has none of the app's files" test -z "$(find "$RT" -name "${SVC}_*" 2>/dev/null)"
five_answers() { [ "$(http_get "http://127.0.0.1:$P5/")" = "five from ${SVC}_5 on port $P5" ]; }
wait_until 30 five_answers
assert_eq "$I5 is back, with its own command" "five from ${SVC}_5 on port $P5" "$(http_get "http://127.0.0.1:$P5/")"
assert_contains "... from the generator's drop-in" "$(timeout 30 systemctl --user cat "$I5.service" 2>&1)" \
        "# $GEN/$I5.service.d/50-nap-instance.conf"
assert_eq "$I6 (stopped) stays stopped" "inactive" "$(unit_prop "$I6.service" ActiveState)"
started_without_reload "instance after the reboot" $SVC greeting=seven seven
check "its app's template is in the runtime dir again" test -f "$RT/$TEMPLATE"
expect_ok "start-app $I6 after the reboot" start-app "$I6"
assert_eq "$I6 runs" "active" "$(unit_prop "$I6.service" ActiveState)"

# --------------------------------------------- the stamp counts reloads
stamp=$(reload_stamp)
timeout 60 systemctl --user daemon-reload
check "a daemon-reload moves the reload stamp (the checks above can fail)" test "$stamp" != "$(reload_stamp)"

nap_summary
