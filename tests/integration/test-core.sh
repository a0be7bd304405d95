#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Issue 2's integration test: the real napctl against a real systemd user
# manager, journald and nap-generator (lib.sh). Deploys the sample app
# (tests/apps/hello) from a local git repository, starts two instances with
# different parameters, checks them over HTTP, stops one, reads its
# journal, restarts the manager, removes an instance, and tries the bad
# input of the issue. Every check asserts observable behaviour: HTTP
# answers, systemd's own view (systemctl show/cat), files in STATE.
#
#   NAPCTL=build/cli/napctl NAP_GENERATOR=build/generators/nap-generator \
#           tests/integration/test-core.sh
# (or: test-core.sh NAPCTL NAP_GENERATOR). Needs root; exits 77 otherwise.

. "$(dirname "$0")/lib.sh"

NAPCTL=${NAPCTL:-${1:-}}
NAP_GENERATOR=${NAP_GENERATOR:-${2:-}}
nap_napctl_env
SRC=$NAP_SOURCE_ROOT
nap_sandbox_enter "$@"
nap_sandbox_start
nap_need jq git curl

# ------------------------------------------------------------------ helpers
. "$(dirname "$0")/napctl-lib.sh"

# What a refused operation must leave alone: every file (by content) and
# directory in STATE and the generator's output, and what systemd has
# loaded of alice's apps. Lock files may appear: taking a lock is not a change.
state_snapshot() {
        find "$NAP_ROOT" "$NAP_INSTANCES" "$XDG_RUNTIME_DIR"/systemd/generator* \
                \( -type f ! -name '*.lock' -exec md5sum {} + \) -o \( ! -type f ! -name '*.lock' -print \) \
                2>/dev/null | sort
        timeout 30 systemctl --user list-units --all --plain --no-legend 'alice_*' 2>&1
}

# expect_refused RC DESCRIPTION ARGS...: napctl exits RC with one line
# "napctl: …" on stderr, and nothing changed.
expect_refused() {
        local want=$1 what=$2 before after why=""
        shift 2
        before=$(state_snapshot)
        nap "$@"
        after=$(state_snapshot)
        [ "$RC" -eq "$want" ] || why="exit status $RC, not $want;"
        [ "$(printf '%s\n' "$ERR" | wc -l)" -eq 1 ] && [ "${ERR#napctl: }" != "$ERR" ] ||
                why="$why stderr is not one 'napctl: ' line;"
        [ "$before" = "$after" ] || why="$why state changed;"
        if [ -z "$why" ]; then
                ok "$what"
        else
                fail "$what"
                diag "$why"
                nap_diag "$@"
                [ "$before" = "$after" ] || diag "state diff:" "$(diff <(echo "$before") <(echo "$after"))"
        fi
}

unit_prop() { # UNIT PROPERTY: its value in systemd
        timeout 30 systemctl --user show -P "$2" "$1" 2>&1
}

is_active() {
        [ "$(timeout 30 systemctl --user is-active "$1" 2>/dev/null)" = active ]
}

REPOS=$NAP_TEST_DIR/repos
HELLO=$REPOS/hello
make_repo "$HELLO" "$SRC"/tests/apps/hello/. || { echo "Bail out! cannot make the app's repository"; exit 1; }
COMMIT=$(git -C "$HELLO" rev-parse HEAD)
SVC=alice_hello

# ======================================================== the core scenario
log "deploy"
expect_ok "deploy-app from a local git repository (file://)" deploy-app $SVC "file://$HELLO"
assert_eq "deploy-app says what it deployed" "Deployed $SVC at ${COMMIT:0:12} from file://$HELLO" "$OUT"
check "the app's tree is in services/" test -f "$NAP_ROOT/services/alice/$SVC/server.py"
check "the deployed profile is the app's" cmp -s "$HELLO/profile" "$NAP_ROOT/services/alice/$SVC/profile"
# git ran in nap-fetch (nap-fetch(8)): a unit of its own per fetch, not
# nap-managerd; the deployed tree is a copy owned by nap-managerd's user.
assert_contains "the fetch ran in a nap-fetch@ unit" \
        "$(timeout 30 journalctl -q --no-pager -o cat --user-unit 'nap-fetch@*' 2>&1)" "Fetching file://$HELLO"
assert_eq "the deployed tree is nap-managerd's, not the fetch worker's" "root" \
        "$(stat -c %U "$NAP_ROOT/services/alice/$SVC/server.py")"
nap deploy-app $SVC "file://$HELLO"
assert_eq "deploy-app again: unchanged, exit 0" "0 $SVC is already at ${COMMIT:0:12} from file://$HELLO (unchanged)" "$RC $OUT"
nap --json deploy-app $SVC "file://$HELLO"
assert_eq "deploy-app --json" "$SVC $COMMIT file://$HELLO false" \
        "$(echo "$OUT" | jq -r '"\(.service) \(.commit) \(.url) \(.changed)"' 2>&1)"
nap list-services alice
assert_eq "list-services shows the app, commit and URL" "$(printf '%s\t%s\t%s' $SVC "${COMMIT:0:12}" "file://$HELLO")" "$OUT"
nap --json list-services alice
assert_eq "list-services --json" "$SVC hello $COMMIT file://$HELLO" \
        "$(echo "$OUT" | jq -r '.[] | "\(.service) \(.app) \(.commit) \(.url)"' 2>&1)"

log "parameters"
nap get-parameters $SVC
assert_eq "get-parameters lists the profile's placeholders (not port)" "0 greeting" "$RC $OUT"
nap --json get-parameters $SVC
assert_eq "get-parameters --json" '["greeting"]' "$(echo "$OUT" | jq -c . 2>&1)"

log "two instances"
P1= P2= N1= N2=
if start_instance $SVC greeting=hi; then
        ok "start-common greeting=hi: '$OUT'"
        I1=$INST N1=$NUM P1=$PORT U1=$URL
else
        fail "start-common greeting=hi"; nap_diag start-common $SVC greeting=hi
fi
if start_instance $SVC greeting=ho; then
        ok "start-common greeting=ho: '$OUT'"
        I2=$INST N2=$NUM P2=$PORT U2=$URL
else
        fail "start-common greeting=ho"; nap_diag start-common $SVC greeting=ho
fi
[ -n "$P1" ] && [ -n "$P2" ] || { echo "Bail out! no instances to test"; nap_summary; exit 1; }
assert_eq "instance numbers are 1 and 2" "1 2" "$N1 $N2"
check "the two instances have different ports" test "$P1" != "$P2"
check "ports are in PortRange=" test "$P1" -ge "$NAP_PORT_MIN" -a "$P1" -le "$NAP_PORT_MAX" -a \
        "$P2" -ge "$NAP_PORT_MIN" -a "$P2" -le "$NAP_PORT_MAX"
assert_eq "instance 1 answers over HTTP with its own params" \
        "hi from ${SVC}_1 on port $P1" "$(http_get "$U1/")"
assert_eq "instance 2 answers over HTTP with its own params" \
        "ho from ${SVC}_2 on port $P2" "$(http_get "$U2/")"
assert_eq "the app sees \$PORT from Environment=" "$P1" "$(http_get "$U1/params" | jq -r .env_port 2>&1)"
check "each instance has its own tree under apps/" test -d "$NAP_ROOT/apps/alice/${SVC}_1" -a -d "$NAP_ROOT/apps/alice/${SVC}_2"
check "each instance has a manifest" test -f "$NAP_INSTANCES/$I1.json" -a -f "$NAP_INSTANCES/$I2.json"

log "systemd's view of the units"
cat1=$(timeout 30 systemctl --user cat "$I1.service" 2>&1)
assert_match "systemctl cat: ExecStart= has the real command line" "$cat1" \
        "ExecStart=.*python3\"? \"?server\.py\"? \"?--port\"? \"?$P1\"? \"?--greeting\"? \"?hi\"?"
assert_match "systemctl cat: Environment=PORT=" "$cat1" "Environment=\"?PORT=$P1\"?"
assert_match "systemctl cat: restart policy" "$cat1" "Restart=on-failure"
assert_contains "systemctl cat: WorkingDirectory= is the instance's tree" "$cat1" \
        "WorkingDirectory=$NAP_ROOT/apps/alice/${SVC}_1"
assert_contains "systemd runs exactly that argv" "$(unit_prop "$I1.service" ExecStart)" \
        "argv[]=python3 server.py --port $P1 --greeting hi ;"
assert_eq "systemd's working directory" "$NAP_ROOT/apps/alice/${SVC}_1" "$(unit_prop "$I1.service" WorkingDirectory)"
# Started without a reload: default.target wants them from the next boot
# or reload on (the generator's .wants links; checked after the restart).
assert_eq "instances 1 and 2 are enabled (their manifests)" "true true" \
        "$(jq -r .enabled "$NAP_INSTANCES/$I1.json" "$NAP_INSTANCES/$I2.json" 2>&1 | paste -sd ' ')"

log "list-instances, get-instances-num, cat-app"
nap list-instances $SVC
assert_match "list-instances: a header" "$OUT" "^INSTANCE +PORT +ENABLED +ACTIVE +SUB"
assert_match "list-instances: instance 1 row" "$OUT" "^$I1 +$P1 +yes +active +running"
assert_match "list-instances: instance 2 row" "$OUT" "^$I2 +$P2 +yes +active +running"
nap --json list-instances $SVC
assert_eq "list-instances --json" "$I1 $I1.service $N1 $P1 true active running hi|$I2 $I2.service $N2 $P2 true active running ho" \
        "$(echo "$OUT" | jq -r '[.[] | "\(.instance) \(.unit) \(.number) \(.port) \(.enabled) \(.active_state) \(.sub_state) \(.params.greeting)"] | join("|")' 2>&1)"
nap get-instances-num $SVC
assert_eq "get-instances-num" "0 2" "$RC $OUT"
nap --json get-instances-num $SVC
assert_eq "get-instances-num --json" '{"instances":2,"service":"alice_hello"}' "$(echo "$OUT" | jq -cS . 2>&1)"
nap cat-app "$I1"
assert_contains "cat-app shows the profile with params substituted" "$OUT" \
        "python3 server.py --port $P1 --greeting hi"
assert_not_contains "cat-app: no placeholder left" "$OUT" "{greeting"
nap cat-app "$I2.service"
assert_contains "cat-app accepts the .service suffix" "$OUT" "--greeting ho"

log "stop one"
expect_ok "stop-app instance 2" stop-app "$I2"
assert_eq "stop-app is silent" "" "$OUT$ERR"
check "instance 2 stops answering" wait_until 10 http_refused "$U2/"
assert_eq "systemd: instance 2 is inactive" "inactive" "$(timeout 30 systemctl --user is-active "$I2.service" 2>&1)"
assert_eq "instance 1 still answers" "hi from ${SVC}_1 on port $P1" "$(http_get "$U1/")"
nap --json list-instances $SVC
assert_eq "list-instances: instance 2 disabled and inactive, 1 enabled and active" "true active|false inactive" \
        "$(echo "$OUT" | jq -r '[.[] | "\(.enabled) \(.active_state)"] | join("|")' 2>&1)"

log "journal"
nap get-journal "$I2" -n 50
assert_contains "get-journal: the app's own output" "$OUT" "listening on $P2"
assert_contains "get-journal: the request the app logged" "$OUT" '"GET / HTTP/1.1" 200'
assert_contains "get-journal: what the app printed on SIGTERM" "$OUT" "stopped"
assert_not_contains "get-journal: not the other instance's lines" "$OUT" "listening on $P1"
assert_match "get-journal: lines are 'TIME IDENT[PID]: MESSAGE' (napctl(1))" \
        "$(printf '%s\n' "$OUT" | grep "listening on $P2")" \
        "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{2}:[0-9]{2} python3\[[0-9]+\]: listening on $P2$"
nap get-journal "$I2" -n 1
assert_eq "get-journal -n 1: one line" "0 1" "$RC $(printf '%s\n' "$OUT" | grep -c .)"
nap get-journal "$I2"
check "get-journal: 10 lines by default" test "$(printf '%s\n' "$OUT" | grep -c .)" -le 10 -a -n "$OUT"
nap --json get-journal "$I2" -n 50
assert_eq "get-journal --json: messages as data" "1" \
        "$(echo "$OUT" | jq --arg m "listening on $P2" '[.[] | select(.message == $m and .identifier == "python3" and .pid > 0 and .time > 0)] | length' 2>&1)"

log "restart the manager"
nap_manager_restart
check "the user manager is back" nap__manager_running
assert_eq "enabled instance 1 came back after the restart" "hi from ${SVC}_1 on port $P1" "$(http_get "$U1/" 30)"
check "stopped instance 2 stayed stopped" http_refused "$U2/"
assert_eq "systemd: instance 2 inactive after restart" "inactive" "$(timeout 30 systemctl --user is-active "$I2.service" 2>&1)"
wants=$(unit_prop default.target Wants)
assert_contains "after restart: instance 1 wanted by default.target" "$wants" "$I1.service"
assert_not_contains "after restart: instance 2 not wanted by default.target" "$wants" "$I2.service"

log "start it again"
expect_ok "start-app instance 2" start-app "$I2"
assert_eq "instance 2 answers again" "ho from ${SVC}_2 on port $P2" "$(http_get "$U2/")"
nap --json list-instances $SVC
assert_eq "list-instances: instance 2 enabled again" "true active|true active" \
        "$(echo "$OUT" | jq -r '[.[] | "\(.enabled) \(.active_state)"] | join("|")' 2>&1)"

log "restart-app"
PID_BEFORE=$(unit_prop "$I1.service" MainPID)
expect_ok "restart-app instance 1" restart-app "$I1"
assert_eq "restart-app is silent" "" "$OUT$ERR"
PID_AFTER=$(unit_prop "$I1.service" MainPID)
check "restart-app: a new process ($PID_BEFORE → $PID_AFTER)" test "$PID_AFTER" != "$PID_BEFORE" -a "$PID_AFTER" != 0
assert_eq "restart-app: it answers with its own port and params" "hi from ${SVC}_1 on port $P1" "$(http_get "$U1/")"
expect_ok "stop-app instance 2 before restarting it" stop-app "$I2"
expect_ok "restart-app of a stopped instance starts it" restart-app "$I2"
assert_eq "restart-app: instance 2 answers" "ho from ${SVC}_2 on port $P2" "$(http_get "$U2/")"
nap --json list-instances $SVC
assert_eq "restart-app: instance 2 enabled again, as start-app does" "true active|true active" \
        "$(echo "$OUT" | jq -r '[.[] | "\(.enabled) \(.active_state)"] | join("|")' 2>&1)"

log "remove one"
expect_ok "remove-instance instance 2" remove-instance "$I2"
check "instance 2 stops answering after remove" wait_until 10 http_refused "$U2/"
nap --json list-instances $SVC
assert_eq "removed instance gone from list-instances" "$I1" "$(echo "$OUT" | jq -r '[.[].instance] | join(" ")' 2>&1)"
nap get-instances-num $SVC
assert_eq "get-instances-num after remove" "1" "$OUT"
check "removed instance's tree is gone" test ! -e "$NAP_ROOT/apps/alice/${SVC}_2"
check "removed instance's manifest is gone" test ! -e "$NAP_INSTANCES/$I2.json"
# No reload: the generator's output for it stays until the next one
# (harmless: stopped, no manifest); its runtime units go now.
check "the removed instance's runtime units are gone" \
        test -z "$(find "$XDG_RUNTIME_DIR"/systemd/user -name "$I2.service*" 2>/dev/null)"
assert_eq "systemd: removed unit inactive" "inactive" "$(unit_prop "$I2.service" ActiveState)"
assert_not_contains "removed instance not wanted by default.target" "$(unit_prop default.target Wants)" "$I2.service"
expect_refused 4 "cat-app on the removed instance: no such instance" cat-app "$I2"
expect_refused 4 "stop-app on the removed instance: no such instance" stop-app "$I2"
assert_eq "instance 1 unaffected" "hi from ${SVC}_1 on port $P1" "$(http_get "$U1/")"

# ============================================= parameters reach the app literally
log "literal parameter values"
# start_literal DESCRIPTION PARAMS EXPECTED: the app must get EXPECTED as
# its greeting, byte for byte; then the instance is removed again.
start_literal() {
        local what=$1 params=$2 want=$3 got
        if ! start_instance $SVC "$params"; then
                fail "$what: start-common"; nap_diag start-common $SVC "$params"
                return
        fi
        got=$(http_get "$URL/greeting")
        assert_eq "$what: the app got it literally" "$want" "$got"
        check "$what: nothing was run" test ! -e "$NAP_ROOT/apps/alice/${SVC}_$NUM/pwned" -a ! -e /pwned
        nap remove-instance "$INST"
}
lit='say "hi" '"'"'there'"'"' $(touch pwned) `touch pwned`; touch pwned && echo | cat > pwned * ?'
start_literal "quotes, \$(…), backticks, ;&|><*?" "greeting=$lit" "$lit"
lit='$HOME ${PORT} $$ %n %h %% %i {greeting} {{x}} ~ #x'
start_literal "systemd specials: \$VAR %spec {placeholder}" "greeting=$lit" "$lit"
start_literal "escaped comma and backslash (\\, \\\\)" 'greeting=a\,b\\c' 'a,b\c'
start_literal "UTF-8 and inner spaces" 'greeting=héllo  wörld ✓' 'héllo  wörld ✓'

# ================================================================ bad input
log "bad input: parameters"
n_before=$(ls "$NAP_ROOT/apps/alice" | wc -l)
expect_refused 2 "newline in a value refused" start-common $SVC $'greeting=a\nb'
expect_refused 2 "tab in a value refused" start-common $SVC $'greeting=a\tb'
expect_refused 2 "control character in a value refused" start-common $SVC $'greeting=a\x01b'
expect_refused 2 "unknown parameter refused" start-common $SVC colour=red
assert_contains "the error names the unknown parameter" "$ERR" colour
expect_refused 2 "'port' is not a parameter" start-common $SVC port=80
expect_refused 2 "a key given twice refused" start-common $SVC greeting=a,greeting=b
expect_refused 2 "a pair without '=' refused" start-common $SVC greeting
expect_refused 2 "an empty key refused" start-common $SVC =x
expect_refused 2 "a value over 4096 bytes refused" start-common $SVC "greeting=$(printf 'x%.0s' $(seq 5000))"
NEEDS=$REPOS/needs
mkdir -p "$NEEDS" && cp "$SRC/tests/apps/hello/server.py" "$NEEDS"/ &&
        echo 'python3 server.py --port {port} --greeting {greeting}' >"$NEEDS/profile" &&
        make_repo "$NEEDS"
expect_ok "deploy an app whose parameter has no default" deploy-app alice_needs "file://$NEEDS"
expect_refused 2 "a missing parameter refused" start-common alice_needs
assert_contains "the error names the missing parameter" "$ERR" greeting
if start_instance alice_needs greeting=given; then
        assert_eq "with the parameter given it runs" "given from alice_needs_1 on port $PORT" "$(http_get "$URL/")"
        nap remove-instance "$INST"
else
        fail "start-common alice_needs greeting=given"; nap_diag start-common alice_needs greeting=given
fi
assert_eq "no instance left behind by the refused start-commons" "$n_before" "$(ls "$NAP_ROOT/apps/alice" | grep -c "^${SVC}_")"

log "bad input: names"
long=$(printf 'a%.0s' $(seq 200))
for name in "Alice_hello" "alice_Hello" "al/ice_hello" "alice_hel/lo" "../x_hello" "alice_.." \
        "alice_hel_lo" "" "alice_" "_hello" "alice" "${long}_hello" "alice_$long" "alice_hello " \
        "alice_hello\$(id)"; do
        for verb in get-parameters start-common list-instances get-instances-num; do
                expect_refused 2 "$verb '$name': invalid name" $verb "$name"
        done
        expect_refused 2 "deploy-app '$name': invalid name" deploy-app "$name" "file://$HELLO"
done
for name in "Alice" "al/ice" "" "a_b" "../x" "$long"; do
        expect_refused 2 "list-services '$name': invalid user" list-services "$name"
done
for inst in "${SVC}_common@0" "${SVC}_common@-1" "${SVC}_common@abc" "${SVC}_common@" "${SVC}_common@1/.." \
        "${SVC}_common@1.socket" "$SVC" "${SVC}_Common@1" "Alice_hello_common@1" "${SVC}_common@1 " \
        "../${SVC}_common@1" "${SVC}_common@99999999999999999999"; do
        for verb in start-app stop-app restart-app cat-app get-journal remove-instance; do
                expect_refused 2 "$verb '$inst': invalid instance" $verb "$inst"
        done
done

log "bad input: things that do not exist"
expect_refused 1 "deploy-app from a URL that does not exist" deploy-app alice_nope "file://$REPOS/does-not-exist"
expect_refused 1 "deploy-app from a path that does not exist" deploy-app alice_nope "$REPOS/does-not-exist"
check "nothing deployed for the bad URL" test ! -e "$NAP_ROOT/services/alice/alice_nope"
mkdir -p "$REPOS/notgit" && echo x >"$REPOS/notgit/profile"
expect_refused 1 "deploy-app from a directory that is not a git repository" deploy-app alice_nope "file://$REPOS/notgit"
make_repo "$REPOS/noprofile" "$SRC/tests/apps/hello/server.py"
expect_refused 2 "deploy-app of a tree with neither profile nor Procfile" deploy-app alice_nope "file://$REPOS/noprofile"
for inst in "${SVC}_common@99" "alice_nothere_common@1"; do
        for verb in start-app stop-app restart-app cat-app get-journal remove-instance; do
                expect_refused 4 "$verb $inst: no such instance" $verb "$inst"
        done
done
for verb in get-parameters start-common list-instances get-instances-num; do
        expect_refused 4 "$verb alice_nothere: no such service" $verb alice_nothere
done
nap --json get-parameters alice_nothere
assert_eq "--json errors: a named error on stderr" "4 io.nap.Manager.NoSuchService" \
        "$RC $(echo "$ERR" | jq -r .error 2>&1)"

TMPREPO=$(mktemp -d /tmp/nap-test-repo.XXXXXX)
make_repo "$TMPREPO" "$SRC"/tests/apps/hello/. >/dev/null
expect_refused 2 "a repository under /tmp is refused" deploy-app alice_tmp "$TMPREPO"
assert_contains "... naming the reason and the way out" "$ERR" "PrivateTmp=yes"
rm -rf "$TMPREPO"

log "bad input: a profile with unbalanced braces"
BRACES=$REPOS/braces
mkdir -p "$BRACES" && cp "$SRC/tests/apps/hello/server.py" "$BRACES"/ &&
        echo 'python3 server.py --port {port} --greeting {greeting' >"$BRACES/profile" &&
        make_repo "$BRACES"
before=$(state_snapshot)
nap deploy-app alice_braces "file://$BRACES"
if [ "$RC" -ne 0 ]; then
        # refused at deploy: must be a profile error and leave nothing behind
        assert_eq "unbalanced braces refused at deploy (exit 2)" 2 "$RC"
        assert_eq "refused deploy changed nothing" "$before" "$(state_snapshot)"
else
        expect_refused 2 "unbalanced braces: get-parameters refuses" get-parameters alice_braces
        expect_refused 2 "unbalanced braces: start-common refuses" start-common alice_braces
fi

log "concurrency: two start-commons at once"
# (wait for these two only: journald and the manager are jobs of this shell too)
timeout 60 "$NAPCTL" --user start-common $SVC greeting=c1 >"$NAP_TEST_DIR/c1" 2>&1 &
pid1=$!
timeout 60 "$NAPCTL" --user start-common $SVC greeting=c2 >"$NAP_TEST_DIR/c2" 2>&1 &
pid2=$!
wait $pid1; echo $? >"$NAP_TEST_DIR/c1.rc"
wait $pid2; echo $? >"$NAP_TEST_DIR/c2.rc"
assert_eq "both concurrent start-commons succeed" "0 0" "$(cat "$NAP_TEST_DIR/c1.rc") $(cat "$NAP_TEST_DIR/c2.rc")"
c1=$(cat "$NAP_TEST_DIR/c1") c2=$(cat "$NAP_TEST_DIR/c2")
re="^${SVC}_common@([0-9]+) http://127\.0\.0\.1:([0-9]+)$"
if [[ $c1 =~ $re ]] && ca=("${BASH_REMATCH[@]}") && [[ $c2 =~ $re ]] && cb=("${BASH_REMATCH[@]}"); then
        check "different instance numbers (${ca[1]}, ${cb[1]})" test "${ca[1]}" != "${cb[1]}"
        check "different ports (${ca[2]}, ${cb[2]})" test "${ca[2]}" != "${cb[2]}"
        check "numbers are new, never reused (> $MAXNUM, the largest so far)" \
                test "${ca[1]}" -gt "$MAXNUM" -a "${cb[1]}" -gt "$MAXNUM"
        assert_eq "concurrent instance 1 serves its params" "c1 from ${SVC}_${ca[1]} on port ${ca[2]}" \
                "$(http_get "http://127.0.0.1:${ca[2]}/")"
        assert_eq "concurrent instance 2 serves its params" "c2 from ${SVC}_${cb[1]} on port ${cb[2]}" \
                "$(http_get "http://127.0.0.1:${cb[2]}/")"
else
        fail "concurrent start-commons print 'INSTANCE URL'"
        diag "first: $c1" "second: $c2"
fi

log "Dockerfile app: a build unit and a podman run unit (no container engine here)"
DOCKER=$REPOS/docker
mkdir -p "$DOCKER" && printf 'FROM scratch\nCOPY . /app\n' >"$DOCKER/Dockerfile" &&
        git -C "$DOCKER" init -q && git -C "$DOCKER" add -A && git -C "$DOCKER" commit -q -m docker
DCOMMIT=$(git -C "$DOCKER" rev-parse HEAD)
expect_ok "deploy-app of a Dockerfile app" deploy-app alice_docker "file://$DOCKER"
nap get-parameters alice_docker
assert_eq "a Dockerfile app has no parameters" "0 " "$RC $OUT"
nap --json start-common alice_docker
DINST=$(jq -r '.instance // empty' <<<"$OUT" 2>/dev/null)
DMAN=$(ls "$NAP_INSTANCES"/alice_docker_common@*.json 2>/dev/null | head -1)
check "start-common wrote the instance's manifest" test -f "$DMAN"
assert_eq "the manifest names the image to build and run" "localhost/nap/alice_docker:${DCOMMIT:0:12}" \
        "$(jq -r '.image.tag' "$DMAN" 2>/dev/null)"
DUNIT=$(basename "$DMAN" .json)
assert_contains "the instance runs the image with podman" \
        "$(timeout 30 systemctl --user cat "$DUNIT.service" 2>&1)" "podman\" \"run\""
assert_contains "after its build unit" "$(unit_prop "$DUNIT.service" After)" "alice_docker_build@${DUNIT#*@}.service"
assert_contains "the build unit builds the deployed tree" \
        "$(timeout 30 systemctl --user cat "alice_docker_build@${DUNIT#*@}.service" 2>&1)" "\"build\""
expect_ok "remove-instance of the Dockerfile instance" remove-instance "$DUNIT"

log "Procfile app, deployed from a plain path"
make_repo "$REPOS/procfile" "$SRC"/tests/apps/procfile-app/.
expect_ok "deploy-app of a Procfile app from a local path" deploy-app alice_proc "$REPOS/procfile"
nap get-parameters alice_proc
assert_eq "Procfile app: no parameters" "0 " "$RC $OUT"
if start_instance alice_proc ""; then
        assert_eq "Procfile app answers on \$PORT" "hello from alice_proc_1 on port $PORT" "$(http_get "$URL/")"
else
        fail "start-common alice_proc"; nap_diag start-common alice_proc
fi

log "start-common waits until the instance answers, and says why when it does not"
SLOW=$REPOS/slow
mkdir -p "$SLOW" && cp "$SRC/tests/apps/hello/server.py" "$SLOW"/ &&
        echo 'python3 server.py --port {port} --delay {delay=1}' >"$SLOW/profile" && make_repo "$SLOW" >/dev/null
expect_ok "deploy an app that listens only after a second" deploy-app alice_slow "file://$SLOW"
if start_instance alice_slow ""; then
        # no wait here: start-common returned only once the app answered
        assert_eq "it answers the moment start-common returns" "hello from alice_slow_$NUM on port $PORT" \
                "$(curl -sS --max-time 2 "$URL/" 2>&1)"
        nap restart-app "$INST"
        assert_eq "restart-app too returns once it answers" "0 hello from alice_slow_$NUM on port $PORT" \
                "$RC $(curl -sS --max-time 2 "$URL/" 2>&1)"
        nap remove-instance "$INST"
else
        fail "start-common alice_slow"; nap_diag start-common alice_slow
fi
CRASH=$REPOS/crash
mkdir -p "$CRASH" && echo 'python3 no-such-file.py --port {port}' >"$CRASH/profile" && make_repo "$CRASH" >/dev/null
expect_ok "deploy an app that cannot start" deploy-app alice_crash "file://$CRASH"
nap start-common alice_crash
assert_eq "start-common of an app that exits fails (UnitFailed, exit 1)" 1 "$RC"
assert_contains "it says the unit did not answer" "$ERR" "instead of answering"
assert_contains "with the app's own last words from the journal" "$ERR" "no-such-file.py"
nap start-common --no-block alice_crash
assert_eq "--no-block: start-common returns once systemd started it" 0 "$RC"
nap --json list-instances alice_crash
assert_eq "both instances exist, as a failed systemctl start leaves its unit" 2 "$(jq length <<<"$OUT" 2>&1)"

log "redeploy a new commit"
echo "second" >"$HELLO/NEWS" && git -C "$HELLO" add NEWS && git -C "$HELLO" commit -q -m second
COMMIT2=$(git -C "$HELLO" rev-parse HEAD)
nap deploy-app $SVC "file://$HELLO"
assert_eq "deploy-app of a new commit" "0 Deployed $SVC at ${COMMIT2:0:12} from file://$HELLO" "$RC $OUT"
check "the new commit's files are deployed" test -f "$NAP_ROOT/services/alice/$SVC/NEWS"
assert_eq "running instances are untouched by a redeploy" "hi from ${SVC}_1 on port $P1" "$(http_get "$U1/")"

nap_summary
