#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Issue 11: a SIGKILL at any moment leaves a consistent host. Each
# operation is stopped at a named point inside it ($NAP_DEBUG_PAUSE_AT,
# lib/base/debug-point.h: the process waits there) and killed for real:
# the whole nap-managerd unit with `systemctl kill -s SIGKILL`, nap-receive
# with kill -9. Then the state is checked (systemd's view, STATE on disk,
# what answers over HTTP), recovery runs (napctl recover, or the next
# operation on the app), and the call is made again: it succeeds exactly
# once. The pause only picks the instant; the kill and everything after it
# are real.
#
#   NAPCTL=build/cli/napctl NAP_GENERATOR=build/generators/nap-generator \
#   NAP_BUILD_ROOT=build tests/integration/test-crash.sh
# Needs root; exits 77 otherwise.

. "$(dirname "$0")/lib.sh"

if [ -z "${NAP_SANDBOX_INSIDE:-}" ]; then
        NAP_RECEIVE=$(realpath "${NAP_RECEIVE:-${NAP_BUILD_ROOT:-}/helpers/nap-receive}") ||
                { echo "Bail out! set NAP_BUILD_ROOT"; exit 1; }
        export NAP_RECEIVE
fi
nap_napctl_env
nap_sandbox_enter "$@"
nap_sandbox_start
nap_need jq git curl
. "$(dirname "$0")/napctl-lib.sh"

SVC=alice_hello
TREE=$NAP_ROOT/services/alice/$SVC
INTENT=$NAP_ROOT/intents/$SVC.intent
export NAP_RECEIVE_TIMEOUT=10

# ------------------------------------------------------------------ helpers

managerd_state() { timeout 30 systemctl --user is-active nap-managerd.service 2>/dev/null; }
managerd_down() { [ "$(managerd_state)" != active ] && [ "$(managerd_state)" != deactivating ]; }

# pause_managerd_at POINT: the next nap-managerd (and its workers) stops
# there. The user manager's environment reaches the services it starts.
pause_managerd_at() {
        timeout 30 systemctl --user stop nap-managerd.service
        rm -f "$PAUSED"
        timeout 30 systemctl --user set-environment "NAP_DEBUG_PAUSE_AT=$1" "NAP_DEBUG_PAUSE_FILE=$PAUSED"
}

no_pause() {
        timeout 30 systemctl --user unset-environment NAP_DEBUG_PAUSE_AT NAP_DEBUG_PAUSE_FILE
        rm -f "$PAUSED"
}


kill_managerd() {
        timeout 30 systemctl --user kill -s SIGKILL nap-managerd.service
        wait_until 30 managerd_down
}

# kill_both PID: the client (PID) gives up first (else its own retry, into
# a helper that stops at the same point again, would wait for ever), then
# nap-managerd is killed, and the next one starts without the pause.
kill_both() {
        kill "$1" 2>/dev/null
        wait "$1" 2>/dev/null
        kill_managerd
        no_pause
}

# No staging tree or instance scratch tree anywhere.
leftovers() {
        find "$NAP_ROOT/services" "$NAP_ROOT/apps" -maxdepth 2 \
                \( -name '*.deploy-*' -o -name '*.next' -o -name '*.tmp' \) 2>/dev/null
}

manifests() { ls "$NAP_INSTANCES" 2>/dev/null | grep -c "^${SVC}_common@.*\.json$"; }
unit_state() { timeout 30 systemctl --user is-active "$1.service" 2>/dev/null; }
deployed_commit() { jq -r .commit "$TREE/.nap/deploy.json" 2>/dev/null; }

# The app's repository, v1 committed.
W=$NAP_TEST_DIR/repos/hello
make_repo "$W" "$NAP_SOURCE_ROOT"/tests/apps/hello/. >/dev/null || { echo "Bail out! cannot make the repository"; exit 1; }
git -C "$W" branch -q -M main
expect_ok "deploy-app of the sample app" deploy-app $SVC "$W"

# =========================================================== StartCommon
# Killed after the number and the intent (before the tree), after the
# manifest (before the start), after the start (before the answer). The
# client's retry carries the same request id: one instance in the end,
# running, whatever the instant.
for point in start-common:reserved start-common:manifest start-common:started; do
        log "start-common killed at $point"
        before=$(manifests)
        pause_managerd_at "$point"
        timeout 60 "$NAPCTL" --user start-common --request-id="req-$point" $SVC >"$NAP_TEST_DIR/bg.out" 2>&1 &
        client=$!
        if ! wait_until 30 paused_at "$point"; then
                fail "$point: nap-managerd reached the point"
                kill "$client" 2>/dev/null
                no_pause
                continue
        fi
        kill_both "$client"
        check "$point: the intent record is there after the kill" test -f "$INTENT"
        number=$(jq -r .number "$INTENT" 2>/dev/null)

        nap start-common --request-id="req-$point" $SVC
        if [ "$RC" -eq 0 ]; then ok "$point: the retried start-common succeeds"; else fail "$point: the retried start-common succeeds"; nap_diag; fi
        got=$(sed -nE "s|^${SVC}_common@([0-9]+) http://.*|\1|p" <<<"$OUT")
        if [ "$point" = start-common:reserved ]; then
                check "$point: the half-made instance was undone, a new one made" test -n "$got" -a "$got" != "$number"
                check "$point: nothing of the undone instance is left" test ! -e "$NAP_ROOT/apps/alice/${SVC}_$number"
        else
                assert_eq "$point: the retry answers with the instance the first call made" "$number" "$got"
        fi
        assert_eq "$point: exactly one instance more" "$((before + 1))" "$(manifests)"
        assert_eq "$point: it runs" active "$(unit_state "${SVC}_common@$got")"
        check "$point: it answers" wait_until 10 curl -sf --max-time 2 -o /dev/null "$(sed -n 's/^[^ ]* //p' <<<"$OUT")/"
        check "$point: no intent record is left" test ! -e "$INTENT"
        assert_eq "$point: no scratch tree is left" "" "$(leftovers)"

        nap start-common --request-id="req-$point" $SVC
        assert_eq "$point: a third call with the id changes nothing" "$((before + 1))" "$(manifests)"
done

# napctl's own retry: the helper killed after the manifest was written,
# napctl (no --request-id: it made one up) sends the call again to the
# helper systemd starts anew, which finishes that instance and answers
# with it (the pause point is not reached again: the retry is answered
# from the request record).
log "start-common: napctl retries by itself when the helper is killed"
before=$(manifests)
pause_managerd_at start-common:manifest
timeout 60 "$NAPCTL" --user start-common $SVC >"$NAP_TEST_DIR/bg.out" 2>"$NAP_TEST_DIR/bg.err" &
client=$!
check "napctl retry: nap-managerd reached the point" wait_until 30 paused_at start-common:manifest
kill_managerd
crc=0
wait "$client" || crc=$?
no_pause
assert_eq "napctl retry: start-common succeeds in the end" 0 "$crc"
assert_match "napctl retry: it prints the instance" "$(cat "$NAP_TEST_DIR/bg.out")" "^${SVC}_common@[0-9]+ http://"
assert_eq "napctl retry: exactly one instance more" "$((before + 1))" "$(manifests)"
assert_eq "napctl retry: it runs" active \
        "$(unit_state "$(sed -n 's/^\([^ ]*\) .*/\1/p' "$NAP_TEST_DIR/bg.out")")"

# ========================================================= RemoveInstance
log "remove-instance killed after the manifest went, before the reload"
victim=$(ls "$NAP_INSTANCES" | sed -n "s/^\(${SVC}_common@[0-9]*\)\.json$/\1/p" | head -n 1)
vnum=${victim##*@}
pause_managerd_at remove-instance:forgotten
timeout 60 "$NAPCTL" --user remove-instance "$victim" >"$NAP_TEST_DIR/bg.out" 2>&1 &
client=$!
check "remove-instance: nap-managerd reached the point" wait_until 30 paused_at remove-instance:forgotten
kill_both "$client"
check "remove-instance: its tree is still there before recovery" test -d "$NAP_ROOT/apps/alice/${SVC}_$vnum"
# (nap-managerd, started by this call, may have recovered the app before
# the call ran: its journal says so. Either way, nothing failed.)
expect_ok "napctl recover" recover
assert_contains "recover reports no failure" "$OUT" " 0 failed"
check "remove-instance: the tree is gone" test ! -e "$NAP_ROOT/apps/alice/${SVC}_$vnum"
check "remove-instance: the manifest is gone" test ! -e "$NAP_INSTANCES/$victim.json"
check "remove-instance: systemd no longer runs it" test "$(unit_state "$victim")" != active
nap list-instances $SVC
assert_not_contains "remove-instance: list-instances no longer shows it" "$OUT" "$victim"
check "remove-instance: no intent record is left" test ! -e "$INTENT"

# ============================================================== DeployApp
log "deploy-app killed with the new tree staged"
echo v2 >"$W/VERSION"
git -C "$W" add -A && git -C "$W" commit -q -m v2
C1=$(deployed_commit)
pause_managerd_at deploy:staged
timeout 60 "$NAPCTL" --user deploy-app $SVC "$W" >"$NAP_TEST_DIR/bg.out" 2>&1 &
client=$!
check "deploy-app: nap-managerd reached the point" wait_until 30 paused_at deploy:staged
kill_both "$client"
check "deploy-app: a staging tree was left by the kill" test -n "$(leftovers)"
assert_eq "deploy-app: the deployed commit is the old one" "$C1" "$(deployed_commit)"
expect_ok "deploy-app again after the kill" deploy-app $SVC "$W"
assert_eq "deploy-app: the staging tree is gone (swept first)" "" "$(leftovers)"
assert_eq "deploy-app: the new commit is deployed" "$(git -C "$W" rev-parse HEAD)" "$(deployed_commit)"

# =================================================================== push
# nap-receive, the post-receive hook of a local bare repository, as
# nap-git-shell would make it (test-push.sh does the same over ssh).
BARE=$NAP_ROOT/git/alice/web.git
WEB=web
WSVC=alice_web
WTREE=$NAP_ROOT/services/alice/$WSVC
git init -q --bare -b main "$BARE" &&
        printf '#!/bin/sh\nexec %s alice web\n' "$NAP_RECEIVE" >"$BARE/hooks/post-receive" &&
        chmod 0755 "$BARE/hooks/post-receive" || { echo "Bail out! cannot make the bare repository"; exit 1; }
P=$NAP_TEST_DIR/repos/$WEB
make_repo "$P" "$NAP_SOURCE_ROOT"/tests/apps/hello/. >/dev/null && git -C "$P" branch -q -M main &&
        git -C "$P" remote add nap "$BARE" || { echo "Bail out! cannot make the app's repository"; exit 1; }

push() { PRC=0; POUT=$(cd "$P" && timeout 120 git push "$@" 2>&1) || PRC=$?; }
web_ports() { jq -r .port "$NAP_INSTANCES/${WSVC}_common@"*.json 2>/dev/null; }
web_count() { ls "$NAP_INSTANCES" 2>/dev/null | grep -c "^${WSVC}_common@.*\.json$"; }
# Every instance of the app answers with GREETING (and there is one).
greeting_is() {
        local port n=0
        for port in $(web_ports); do
                [ "$(curl -s --max-time 2 "http://127.0.0.1:$port/greeting")" = "$1" ] || return 1
                n=$((n + 1))
        done
        [ "$n" -gt 0 ]
}
web_units_active() {
        local f
        for f in "$NAP_INSTANCES/${WSVC}_common@"*.json; do
                [ "$(unit_state "$(basename "$f" .json)")" = active ] || return 1
        done
}
set_greeting() {
        printf 'python3 server.py --port {port} --greeting {greeting=%s}\n' "$1" >"$P/profile" &&
                git -C "$P" commit -q -am "$1" && git -C "$P" rev-parse HEAD
}

push nap main
if [ "$PRC" -eq 0 ]; then ok "push: the first push deploys"; else fail "push: the first push deploys"; diag "$POUT"; fi
CW1=$(git -C "$P" rev-parse HEAD)
check "push: v1 answers" greeting_is hello

# A rollout replaces instances (napctl(1), ROLLOUTS): killed before any
# old instance is removed, recovery goes back: the new instance goes, the
# old one (never stopped) runs, the previous commit is deployed.
for point in rollout:swapped rollout:started rollout:withdrawn; do
        log "push killed at $point"
        before=$(web_ports)
        CW=$(set_greeting "bonjour-${point#rollout:}")
        kill_at "$point" "$point: nap-receive" timeout 120 git -C "$P" push nap main || continue
        check "$point: the intent record is there after the kill" test -f "$NAP_ROOT/intents/$WSVC.intent"

        expect_ok "$point: napctl recover" recover
        assert_contains "$point: recover reports no failure" "$OUT" " 0 failed"
        assert_eq "$point: the recorded version is the one before the push" "$CW1" \
                "$(jq -r .commit "$WTREE/.nap/deploy.json" 2>&1)"
        assert_eq "$point: the instance's manifest records it too" "$CW1" \
                "$(jq -r .commit "$NAP_INSTANCES/${WSVC}_common@"*.json 2>&1 | sort -u)"
        assert_eq "$point: the old instance is the only one, on its port" "$before" "$(web_ports)"
        check "$point: it runs" web_units_active
        check "$point: the version before the push answers" wait_until 10 greeting_is hello
        assert_eq "$point: no scratch tree is left" "" "$(leftovers)"
        check "$point: no intent record is left" test ! -e "$NAP_ROOT/intents/$WSVC.intent"
done

# Killed once an old instance was removed (its replacement answered):
# recovery finishes the rollout. Two instances, one at a time, so that
# the recovery has one to replace, and is killed there itself: the intent
# stays until the recovery is done, so the next one goes on.
log "push killed after an old instance was removed, then its recovery killed too"
expect_ok "a second instance" start-common $WSVC
printf 'RolloutBatch=1\n' >>"$NAP_CONFIG"
before=$(web_ports)
CWX=$(set_greeting hola)
if kill_at rollout:retired "forward: nap-receive" timeout 120 git -C "$P" push nap main; then
        assert_eq "forward: one old instance is gone, two new ones are there" "2" \
                "$(comm -13 <(echo "$before" | sort) <(web_ports | sort) | wc -l)"
        pause_managerd_at rollout:started # the recovery's own replacement of the other one
        timeout 60 "$NAPCTL" --user recover >"$NAP_TEST_DIR/bg.out" 2>&1 &
        client=$!
        check "forward: nap-managerd's recovery reached the point" wait_until 30 paused_at rollout:started
        kill_both "$client"
        check "forward: recovery killed: the intent record is still there" test -f "$NAP_ROOT/intents/$WSVC.intent"
        expect_ok "forward: napctl recover" recover
        assert_contains "forward: recover reports no failure" "$OUT" " 0 failed"
        assert_eq "forward: the new version is recorded" "$CWX" "$(jq -r .commit "$WTREE/.nap/deploy.json" 2>&1)"
        assert_eq "forward: two instances, none of the old ones" "2 " \
                "$(web_count) $(comm -12 <(echo "$before" | sort) <(web_ports | sort))"
        check "forward: they run" web_units_active
        check "forward: and answer with the new version" wait_until 10 greeting_is hola
        assert_eq "forward: no scratch tree is left" "" "$(leftovers)"
        check "forward: no intent record is left" test ! -e "$NAP_ROOT/intents/$WSVC.intent"
fi

log "the push after the kills"
CW=$(set_greeting salut)
push nap main
if [ "$PRC" -eq 0 ]; then ok "push: pushing again succeeds"; else fail "push: pushing again succeeds"; diag "$POUT"; fi
check "push: the new version answers" greeting_is salut
assert_eq "push: it is recorded" "$CW" "$(jq -r .commit "$WTREE/.nap/deploy.json" 2>&1)"

# ================================================================ rollback
# napctl --no-helper rollback runs the Rollback method in its own process: killed there.
log "rollback killed with the old commit swapped in"
if kill_at rollout:swapped "rollback: napctl" timeout 120 "$NAPCTL" --user --no-helper rollback $WSVC "$CW1"; then
        expect_ok "rollback: napctl recover" recover
        assert_eq "rollback: the version deployed before the rollback is recorded" "$CW" \
                "$(jq -r .commit "$WTREE/.nap/deploy.json" 2>&1)"
        check "rollback: and answers" wait_until 10 greeting_is salut
        assert_eq "rollback: no scratch tree is left" "" "$(leftovers)"
        assert_eq "rollback: two instances still" "2" "$(web_count)"
        expect_ok "rollback: the rollback again succeeds" rollback $WSVC "$CW1"
        assert_eq "rollback: now the old commit is recorded" "$CW1" "$(jq -r .commit "$WTREE/.nap/deploy.json" 2>&1)"
        check "rollback: and answers" wait_until 10 greeting_is hello
fi

nap_summary
