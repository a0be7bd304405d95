#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Issue 12: rollouts without downtime. A real etcd (tests/etcd-lib.sh) with
# Etcd= set, so each instance's discovery sidecar publishes its endpoint;
# pushes through nap-receive (the post-receive hook of a local bare
# repository, as in test-crash.sh); napctl refresh-instances in napctl's
# own process. A client (endpoint-client.py, in the background) reads the
# app's endpoints from etcd before every request, as a client of a nap app
# does, and requests one of them:
#   - a push and a refresh-instances of an app with ONE instance: 0 failed
#     requests, and enough of them to mean something;
#   - the control: the same client fails when the instance stops, so the
#     zeros above are not the client's blindness;
#   - six instances, RolloutBatch=2: all replaced, never fewer than six
#     answering (sampled), the reloads counted;
#   - a new version that never answers: the six old instances keep their
#     numbers, ports and processes, the new ones are gone.
#
#   NAPCTL=build/cli/napctl NAP_GENERATOR=build/generators/nap-generator \
#   NAP_DISCOVERY=build/helpers/nap-discovery NAP_BUILD_ROOT=build \
#   tests/integration/test-zero-downtime.sh
# Needs root; exits 77 otherwise.

. "$(dirname "$0")/lib.sh"

if [ -z "${NAP_SANDBOX_INSIDE:-}" ]; then
        [ -x /usr/bin/etcd ] && command -v etcdctl >/dev/null || skip_all "etcd and etcdctl (etcd-server, etcd-client) are needed"
        NAP_RECEIVE=$(realpath "${NAP_RECEIVE:-${NAP_BUILD_ROOT:-}/helpers/nap-receive}") ||
                { echo "Bail out! set NAP_BUILD_ROOT"; exit 1; }
        NAP_DISCOVERY=$(realpath "${NAP_DISCOVERY:-${NAP_BUILD_ROOT:-}/helpers/nap-discovery}") ||
                { echo "Bail out! set NAP_DISCOVERY"; exit 1; }
        # The manager's environment reaches the generator: sidecars run
        # this build's nap-discovery.
        export NAP_RECEIVE NAP_DISCOVERY NAP_DISCOVERY_BINARY=$NAP_DISCOVERY
fi
nap_napctl_env
nap_sandbox_enter "$@"
nap_sandbox_start
nap_need jq git curl python3
. "$(dirname "$0")/napctl-lib.sh"
. "$NAP_SOURCE_ROOT/tests/etcd-lib.sh"

CLIENT=$NAP_SOURCE_ROOT/tests/integration/endpoint-client.py
export NAP_RECEIVE_TIMEOUT=10
MIN_REQUESTS=20

etcd_start "$NAP_TEST_DIR/etcd-run" || { echo "Bail out! etcd did not start"; exit 1; }
printf 'Etcd=%s\nDiscoveryTTL=3\n' "$ETCD_URL" >>"$NAP_CONFIG"
timeout 60 systemctl --user daemon-reload

# ------------------------------------------------------------------ helpers

# client_start NAME MODE ARGS...: endpoint-client.py MODE ARGS... STOP OUT
# in the background, returning once a client made its first request;
# client_stop NAME: stops it, sets COUNTS ("OK FAILED" or "SAMPLES MIN
# MAX") and WHY (the failures it saw).
client_start() {
        local name=$1 mode=$2
        shift
        rm -f "$NAP_TEST_DIR/$name.stop" "$NAP_TEST_DIR/$name.out" "$NAP_TEST_DIR/$name.out.started"
        python3 "$CLIENT" "$@" "$NAP_TEST_DIR/$name.stop" "$NAP_TEST_DIR/$name.out" &
        eval "PID_$name=$!"
        [ "$mode" = sample ] || wait_until 30 test -e "$NAP_TEST_DIR/$name.out.started" ||
                fail "the client $name made a request"
}

client_stop() {
        local name=$1 pid
        eval "pid=\$PID_$name"
        touch "$NAP_TEST_DIR/$name.stop"
        timeout 30 tail --pid="$pid" -f /dev/null
        wait "$pid" 2>/dev/null
        COUNTS=$(head -n 1 "$NAP_TEST_DIR/$name.out" 2>/dev/null)
        WHY=$(tail -n +2 "$NAP_TEST_DIR/$name.out" 2>/dev/null)
}

# zero_failures WHAT: the client's counts after WHAT: no failure, and at
# least MIN_REQUESTS requests.
zero_failures() {
        local good=${COUNTS% *} bad=${COUNTS#* }
        log "$1: the client made $good good and ${bad:-?} failed requests"
        assert_eq "$1: the client saw no failed request" "0" "$bad"
        [ "$bad" = 0 ] || diag "$WHY"
        check "$1: ... in at least $MIN_REQUESTS requests" test "${good:-0}" -ge "$MIN_REQUESTS"
}

push() { PRC=0; POUT=$(cd "$P" && timeout 300 git push "$@" 2>&1) || PRC=$?; }
set_greeting() { # GREETING [EXTRA ARGS]: a new commit; prints it
        printf 'python3 server.py --port {port} --greeting {greeting=%s}%s\n' "$1" "${2:+ $2}" >"$P/profile" &&
                git -C "$P" commit -q -am "$1" && git -C "$P" rev-parse HEAD
}

instances() { # SVC: "NUMBER:PORT" of each instance, by number
        local f
        for f in "$NAP_INSTANCES/$1_common@"*.json; do
                [ -e "$f" ] && printf '%s:%s\n' "$(basename "$f" .json | sed 's/.*@//')" "$(jq -r .port "$f")"
        done | sort -n
}

main_pids() { # SVC: MainPID of each instance, by number
        local i
        for i in $(instances "$1"); do
                timeout 30 systemctl --user show -P MainPID "$1_common@${i%%:*}.service"
        done
}

greetings() { # SVC: what each instance answers on /greeting, sorted and counted
        local i
        for i in $(instances "$1"); do
                curl -s --max-time 3 "http://127.0.0.1:${i#*:}/greeting"
                echo
        done | sort | uniq -c | sed 's/^ *//'
}

# make_app NAME: a bare repository with nap-receive as its hook, and the
# work tree P pushing to it (the hello sample app).
make_app() {
        local bare=$NAP_ROOT/git/alice/$1.git
        P=$NAP_TEST_DIR/repos/$1
        git init -q --bare -b main "$bare" &&
                printf '#!/bin/sh\nexec %s alice %s\n' "$NAP_RECEIVE" "$1" >"$bare/hooks/post-receive" &&
                chmod 0755 "$bare/hooks/post-receive" &&
                make_repo "$P" "$NAP_SOURCE_ROOT"/tests/apps/hello/. >/dev/null && git -C "$P" branch -q -M main &&
                git -C "$P" remote add nap "$bare"
}

# ======================================================= one instance
SVC=alice_web
make_app web || { echo "Bail out! cannot make the app's repository"; exit 1; }
push nap main
if [ "$PRC" -eq 0 ]; then ok "the first push deploys one instance"; else fail "the first push deploys one instance"; diag "$POUT"; fi
endpoint_published() { # asked again at every try (a "$(…)" argument would be expanded once)
        [ -n "$(ETCDCTL_API=3 timeout 5 etcdctl --endpoints="$ETCD_URL" get --prefix --keys-only "/services/$SVC/")" ]
}
check "its endpoint is published in etcd" wait_until 20 endpoint_published

log "a push of a new commit while a client loops"
C2=$(set_greeting bonjour)
before=$(instances $SVC)
client_start web client "$ETCD_URL" "/services/$SVC/"
push nap main
client_stop web
if [ "$PRC" -eq 0 ]; then ok "push: succeeds"; else fail "push: succeeds"; diag "$POUT"; fi
zero_failures push
after=$(instances $SVC)
check "push: the instance was replaced (another number and port)" test -n "$after" -a "$after" != "$before"
assert_eq "push: one instance, answering with the new version" "1 bonjour" "$(greetings $SVC)"

log "napctl refresh-instances while a client loops"
before=$(instances $SVC)
client_start web client "$ETCD_URL" "/services/$SVC/"
nap refresh-instances $SVC
client_stop web
if [ "$RC" -eq 0 ]; then ok "refresh-instances: succeeds"; else fail "refresh-instances: succeeds"; nap_diag refresh-instances; fi
zero_failures refresh-instances
after=$(instances $SVC)
check "refresh-instances: the instance was replaced" test -n "$after" -a "$after" != "$before"
assert_eq "refresh-instances: one instance, same version" "1 bonjour" "$(greetings $SVC)"
assert_contains "refresh-instances: it says what it did" "$ERR" "endpoint withdrawn"

# The control: the same client, against the same app, fails when the
# instance stops (what an in-place restart does): its zeros are real.
log "control: the client sees an instance that stops"
only=$(instances $SVC)
client_start control fixed "http://127.0.0.1:${only#*:}"
nap stop-app "${SVC}_common@${only%%:*}"
sleep 1
client_stop control
bad=${COUNTS#* }
log "control: the client made ${COUNTS% *} good and $bad failed requests"
check "control: a stopped instance is a failure to the client" test "${bad:-0}" -gt 0
client_start control2 client "$ETCD_URL" "/services/$SVC/"
sleep 1
client_stop control2
check "control: and so is an app without a published endpoint" test "${COUNTS#* }" -gt 0
nap start-app "${SVC}_common@${only%%:*}"

# ======================================================= six instances
log "six instances, replaced two at a time"
printf 'RolloutBatch=2\n' >>"$NAP_CONFIG"
SVC=alice_six
make_app six || { echo "Bail out! cannot make the second app's repository"; exit 1; }
push nap main
# The last two with a greeting of their own, which a later version
# refuses (it exits at start): it fails in the last batch only.
for g in "" "" "" greeting=boom greeting=boom; do
        start_instance $SVC "$g" || { nap_diag start-common; echo "Bail out! start-common failed"; nap_summary; exit 1; }
done
assert_eq "six instances answer" "$(printf '2 boom\n4 hello')" "$(greetings $SVC)"
before=$(instances $SVC)
C6=$(set_greeting hej)
cursor=$(cursor_now)
client_start six client "$ETCD_URL" "/services/$SVC/"
client_start count sample "$NAP_INSTANCES" $SVC
t0=$(now_ms)
push nap main
t1=$(now_ms)
client_stop count
samples=$COUNTS
client_stop six
if [ "$PRC" -eq 0 ]; then ok "batch: the push succeeds"; else fail "batch: the push succeeds"; diag "$POUT"; fi
log "batch: the push took $((t1 - t0)) ms; answering instances sampled (count, min, max): $samples"
assert_contains "batch: it replaces 6 instances, 2 at a time" "$POUT" "replacing 6 instances, 2 at a time"
assert_eq "batch: six instances, all the new version (greetings chosen kept)" "$(printf '2 boom\n4 hej')" "$(greetings $SVC)"
check "batch: none of the old numbers or ports is left" test -z "$(comm -12 <(echo "$before") <(instances $SVC))"
set -- $samples
check "batch: sampled more than a few times" test "${1:-0}" -ge 5
check "batch: never fewer than six answering" test "${2:-0}" -ge 6
zero_failures batch
reloads=$(reloads_since "$cursor")
# Instances start and go without a reload (ops_units_install/load); one
# is allowed for the fallback (a name the manager still holds loaded).
log "batch: $reloads daemon-reloads during the push"
check "batch: at most one daemon-reload during the push" test "$reloads" -le 1

log "a new version that never answers"
before=$(instances $SVC)
pids=$(main_pids $SVC)
set_greeting never "--delay 3600" >/dev/null
export NAP_RECEIVE_TIMEOUT=3
client_start fail client "$ETCD_URL" "/services/$SVC/"
push nap main
client_stop fail
assert_contains "failure: the push says the new instances were removed" "$POUT" \
        "the new instances were removed, the previous version (${C6:0:12}) keeps running"
assert_eq "failure: the same instances, numbers and ports" "$before" "$(instances $SVC)"
assert_eq "failure: never restarted (the same processes)" "$pids" "$(main_pids $SVC)"
assert_eq "failure: all answer with the previous version" "$(printf '2 boom\n4 hej')" "$(greetings $SVC)"
check "failure: no instance tree of the new ones is left" test "$(find "$NAP_ROOT/apps/alice" -maxdepth 1 -name 'alice_six_*' | wc -l)" -eq 6
zero_failures failure

# A version that fails only in the last batch: the two batches before were
# replaced (the first one's old instances removed already), so the undo
# replaces them back from the previous tree.
log "a new version that fails in the last batch"
before=$(instances $SVC)
git -C "$P" checkout -q "$C6" -- profile
python3 - "$P/server.py" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
text = text.replace("    args = p.parse_args()\n",
                    "    args = p.parse_args()\n    if args.greeting == 'boom':\n        sys.exit('boom refused')\n", 1)
open(path, "w").write(text)
PY
git -C "$P" commit -q -am "refuses boom" && CB=$(git -C "$P" rev-parse HEAD)
client_start late client "$ETCD_URL" "/services/$SVC/"
push nap main
client_stop late
assert_contains "late failure: the push says the new instances were removed" "$POUT" \
        "the new instances were removed, the previous version (${C6:0:12}) keeps running"
assert_contains "late failure: and replaced back what it had replaced" "$POUT" "with the previous version"
assert_eq "late failure: six instances, all the previous version" "$(printf '2 boom\n4 hej')" "$(greetings $SVC)"
# The first batch's old ones were removed, and are replaced back (new
# numbers); the second batch's were withdrawn only, the third's untouched.
assert_eq "late failure: the old instances of the last two batches are kept" "$(echo "$before" | tail -n 4 | sort)" \
        "$(comm -12 <(echo "$before" | sort) <(instances $SVC | sort))"
assert_eq "late failure: six instances" "6" "$(instances $SVC | wc -l)"
assert_eq "late failure: the previous commit is deployed" "$C6" \
        "$(jq -r .commit "$NAP_ROOT/services/alice/$SVC/.nap/deploy.json")"
assert_eq "late failure: every instance was made from it" "$C6" \
        "$(jq -r .commit "$NAP_INSTANCES/${SVC}_common@"*.json | sort -u)"
zero_failures "late failure"
check "no intent record is left" test -z "$(ls "$NAP_ROOT/intents" 2>/dev/null)"

etcd_stop
nap_summary
