#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Instances start, stop and go without a daemon-reload (issue 12, item 1;
# docs/ARCHITECTURE.md, "Starting without a reload"): nap-managerd writes
# an instance's units into the manager's runtime unit dir and has the
# manager load the new name from disk. Real napctl, nap-managerd, user
# manager and generator (lib.sh). What counts the manager's reloads: a
# second generator beside nap's, which the manager runs at its start and
# at every daemon-reload, before the reload is answered, and which adds a
# line to a file each time (checked to count a real daemon-reload at the
# end, so the checks can fail).
#
#   NAPCTL=build/cli/napctl NAP_GENERATOR=build/generators/nap-generator \
#           tests/integration/test-noreload.sh
# Needs root; exits 77 otherwise.

. "$(dirname "$0")/lib.sh"

NAPCTL=${NAPCTL:-${1:-}}
NAP_GENERATOR=${NAP_GENERATOR:-${2:-}}
nap_napctl_env
SRC=$NAP_SOURCE_ROOT
nap_sandbox_enter "$@"
nap_sandbox_start
nap_need jq git curl
. "$(dirname "$0")/napctl-lib.sh"

RT=$XDG_RUNTIME_DIR/systemd/user  # the manager's runtime unit dir
GEN=$XDG_RUNTIME_DIR/systemd/generator
SVC=alice_hello
TEMPLATE=${SVC}_common@.service

RELOADS=$NAP_TEST_DIR/generator-runs
printf '#!/bin/sh\necho run >>%s\n' "$RELOADS" >/run/systemd/user-generators/zz-count-runs
chmod +x /run/systemd/user-generators/zz-count-runs
timeout 60 systemctl --user daemon-reload
reload_stamp() {
        wc -l <"$RELOADS" 2>/dev/null || echo 0
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
[ "$(reload_stamp)" -gt 0 ] || { echo "Bail out! the counting generator did not run"; exit 1; }

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
assert_eq "list-instances --json: one instance" "$I1" "$(echo "$OUT" | jq -r '[.[].instance] | join(" ")' 2>&1)"

# ----------------------------------------------------------- the fallback
log "a name the manager loaded before the instance existed"
# Another app (the same repository), no template anywhere yet: its first
# instance's name is loaded as not-found before start-common.
OTHER=alice_other
expect_ok "deploy-app $OTHER" deploy-app $OTHER "file://$HELLO"
NO=${OTHER}_common@1
assert_eq "$NO is loaded as not-found first" "not-found" "$(unit_prop "$NO.service" LoadState)"
stamp=$(reload_stamp)
if start_instance $OTHER greeting=three && [ "$INST" = "$NO" ]; then
        ok "start-common after a not-found load: $INST"
        diag "daemon-reloads it took: $(($(reload_stamp) - stamp)) (0: the manager loaded the name again by itself)"
        assert_eq "... it answers with its own command" "three from ${OTHER}_1 on port $PORT" "$(http_get "$URL/")"
        assert_contains "... systemctl cat shows the runtime drop-in" \
                "$(timeout 30 systemctl --user cat "$INST.service" 2>&1)" "# $RT/$INST.service.d/50-nap-instance.conf"
        expect_ok "remove-instance $INST" remove-instance "$INST"
        check "no runtime file of $OTHER is left" test -z "$(find "$RT" -name "${OTHER}_*" 2>/dev/null)"
else
        fail "start-common after a not-found load (wanted $NO)"
        nap_diag start-common $OTHER greeting=three
fi
# Numbers are never handed out twice: the next one is 3.
N3=${SVC}_common@3

# An old drop-in for the same name, loaded and kept loaded (a target wants
# it, as one the generator enabled at the last reload): only a reload
# replaces what the manager read. A unit nothing refers to would be
# garbage-collected, and read from disk afresh on the next reference.
mkdir -p "$RT/$N3.service.d" "$RT/default.target.wants"
printf '[Service]\nExecStart=/bin/false stale\nEnvironment=PORT=1\n' >"$RT/$N3.service.d/50-nap-instance.conf"
ln -s "../$TEMPLATE" "$RT/default.target.wants/$N3.service"
timeout 60 systemctl --user daemon-reload
rm "$RT/default.target.wants/$N3.service"
assert_contains "$N3 is loaded from a stale drop-in first" \
        "$(timeout 30 systemctl --user list-units --all --plain --no-legend "$N3.service" 2>&1)" "$N3.service loaded"
stamp=$(reload_stamp)
if start_instance $SVC greeting=four && [ "$INST" = "$N3" ]; then
        ok "start-common over a stale loaded drop-in: $INST"
        assert_eq "... the fallback did one daemon-reload" "1" "$(($(reload_stamp) - stamp))"
        assert_eq "... it answers with its own command" "four from ${SVC}_3 on port $PORT" "$(http_get "$URL/")"
        assert_not_contains "... the stale command is gone" "$(timeout 30 systemctl --user cat "$INST.service" 2>&1)" \
                "/bin/false"
else
        fail "start-common over a stale loaded drop-in (wanted $N3)"
        nap_diag start-common $SVC greeting=four
fi

# ------------------------------------------ the last instance takes the templates
log "remove every instance"
stamp=$(reload_stamp)
for i in "$I1" "$N3"; do
        expect_ok "remove-instance $i" remove-instance "$i"
done
assert_eq "two removals: no daemon-reload happened" "$stamp" "$(reload_stamp)"
check "no runtime file of the app is left" test -z "$(find "$RT" -name "${SVC}_*" 2>/dev/null)"
# $N3 was in the generator's output at that reload, enabled: the target
# still wants it, so it stays loaded, stopped, until the next reload.
assert_contains "$N3 (enabled at the last reload) is still loaded" \
        "$(timeout 30 systemctl --user list-units --all --plain --no-legend "$N3.service" 2>&1)" "$N3.service"
assert_eq "$N3 (enabled at the last reload) is stopped" "inactive" "$(unit_prop "$N3.service" ActiveState)"
nap --json list-instances $SVC
assert_eq "list-instances: none, though the manager still has $N3 loaded" "0" "$(echo "$OUT" | jq -r length 2>&1)"
http_refused "http://127.0.0.1:$PORT/" && ok "the removed instance no longer answers" ||
        fail "the removed instance no longer answers"

# ------------------------------------------------------ reboot equivalent
log "a reboot brings the same units back from the generator"
started_without_reload "instance before the reboot" $SVC greeting=five five
I5=$INST P5=$PORT N5=$NUM
started_without_reload "disabled instance before the reboot" $SVC greeting=six six
I6=$INST
expect_ok "stop-app $I6 (disabled: not back at boot)" stop-app "$I6"
# The runtime dir is a tmpfs, empty at boot: nap's files go with the manager.
nap__stop_manager
find "$RT" -maxdepth 1 -name "${SVC}_*" -exec rm -rf {} +
nap__start_manager || { echo "Bail out! the manager did not come back"; nap_summary; exit 1; }
check "the runtime dir has none of the app's files" test -z "$(find "$RT" -name "${SVC}_*" 2>/dev/null)"
five_answers() { [ "$(http_get "http://127.0.0.1:$P5/")" = "five from ${SVC}_$N5 on port $P5" ]; }
wait_until 30 five_answers
assert_eq "$I5 is back, with its own command" "five from ${SVC}_$N5 on port $P5" "$(http_get "http://127.0.0.1:$P5/")"
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
assert_eq "a daemon-reload is counted (the checks above can fail)" "1" "$(($(reload_stamp) - stamp))"

nap_summary
