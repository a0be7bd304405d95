#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# nap uses its own queue (issue 14, item 7): start-common --queue for real,
# with a real etcd, a real nap-node agent (node h1: room for one instance
# of one CPU), a real nap-queued admitting, real nap-managerd and systemd.
#
#   a request larger than the node: RequestTooLarge at once, nothing queued
#   a second instance waits (queued, its position shown); the first
#     removed, it starts within seconds and answers; the reservation is
#     the instance's (named as it), released by remove-instance
#   Ctrl-C while waiting cancels the job
#   --no-block returns the job at once; once admitted nap-queued starts
#     it (through nap-managerd); the same call again answers with it
#   SIGKILL of the waiting napctl: the job is admitted all the same, and
#     the next start with its request id starts the instance
#   SIGKILL of the starter at admission (before the hand-over): the job
#     stays admitted and the next start finishes it; after the hand-over:
#     recovery releases the reservation, nothing leaks
#   no Etcd=: QueueNotConfigured

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../etcd-lib.sh"

nap_napctl_env
[ -n "${NAP_SANDBOX_INSIDE:-}" ] || [ -x "$ETCD_BIN" ] || skip_all "no $ETCD_BIN (Debian's etcd-server)"
SRC=$NAP_SOURCE_ROOT
nap_sandbox_enter "$@"
nap_sandbox_start
PIDS=()
trap 'nap__rc=$?; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; etcd_stop; (exit $nap__rc); nap_sandbox_stop' EXIT

. "$(dirname "$0")/queue-lib.sh"
queue_host_up 1 # room for one instance of one CPU
. "$(dirname "$0")/napctl-lib.sh"

HELLO=$NAP_TEST_DIR/repos/hello
make_repo "$HELLO" "$SRC"/tests/apps/hello/. || { echo "Bail out! cannot make the app's repository"; exit 1; }
SVC=alice_hello
expect_ok "deploy-app" deploy-app $SVC "file://$HELLO"

job_running() { [ "$(job_status "$1")" = running ]; }
instances() { ls "$NAP_INSTANCES" 2>/dev/null | grep -c "^${SVC}_common@"; }
# bg_start NAME ARGS...: napctl start-common in the background, its output
# in NAME.out, its pid (napctl's own: the test signals it) in BG; the
# sandbox's time limit bounds it
bg_start() {
        local name=$1
        shift
        "$NAPCTL" --user start-common $SVC "$@" >"$NAP_TEST_DIR/$name.out" 2>&1 &
        BG=$!
        PIDS+=($BG)
}
started() { [[ $OUT =~ ^(${SVC}_common@[0-9]+)\ http ]]; }

# ============================================================== fits now
log "a first instance fits"
nap start-common $SVC --cpu=1 --queue
if started; then ok "start-common --queue: fits, started at once"; else fail "start-common --queue: fits, started at once"; nap_diag start-common; fi
INST1=${OUT%% *}
assert_eq "the node is full" "1000" "$(usage_cpu)"

# ================================================================ refused
log "bad requests are refused at once"
nap --json start-common $SVC --cpu=4 --queue
assert_contains "larger than the node: RequestTooLarge" "$ERR" '"error":"io.nap.Manager.RequestTooLarge"'
assert_eq "nothing queued" "" "$(etcdq get --prefix --keys-only /nap/queue/jobs/)"
nap --json start-common $SVC --queue
assert_contains "nothing to wait for: InvalidParameter" "$ERR" 'queue needs cpu or memory'
R=$(curl -s --max-time 20 --unix-socket "$SOCK" -w '\n%{http_code}' -H 'Content-Type: application/json' --data-binary \
        '{"request_id":"x","owner_id":"alice","data":{"instances":[{"VCPU":1,"Memory":1,"Disk":0}]},"callback":"http://127.0.0.1:1/x"}' \
        http://queue/v1/nap-start/ 2>&1)
assert_eq "a job in nap's own queue over HTTP: 403" "403" "${R##*$'\n'}"
assert_contains "PermissionDenied, said why" "$R" "nap's own"
assert_eq "nothing queued" "" "$(etcdq get --prefix --keys-only /nap/queue/jobs/)"
RC=0
NAP_CONFIG=$NAP_TEST_DIR/no-etcd.conf timeout 60 "$NAPCTL" --user --no-helper --json start-common $SVC --cpu=1 --queue \
        >"$NAP_TEST_DIR/out" 2>"$NAP_TEST_DIR/err" || RC=$?
assert_contains "no Etcd=: QueueNotConfigured" "$(cat "$NAP_TEST_DIR/err")" 'QueueNotConfigured'

# ================================================================= waits
log "a second instance waits in the queue, starts when the first goes"
bg_start wait --cpu=1 --queue --request-id=wait1
W=$BG
if wait_until 30 queued_in wait; then ok "queued, said so"; else fail "queued, said so"; diag "$(cat "$NAP_TEST_DIR/wait.out")"; fi
assert_match "its position is shown" "$(cat "$NAP_TEST_DIR/wait.out")" "position 1"
JOB=$(job_of "$NAP_TEST_DIR/wait.out")
assert_eq "the job waits" "queued" "$(job_status "$JOB")"
sleep 1
check "napctl still waits" kill -0 "$W"
TR=$(now_ms)
expect_ok "remove the first instance" remove-instance "$INST1"
T0=$(now_ms) # released: remove-instance frees the reservation before it returns
WRC=0
wait "$W" || WRC=$?
T1=$(now_ms)
diag "remove-instance itself: $((T0 - TR)) ms"
assert_eq "the waiting start-common succeeds" 0 "$WRC"
INST2=$(sed -n "s/^\(${SVC}_common@[0-9]*\) http.*/\1/p" "$NAP_TEST_DIR/wait.out")
URL2=$(sed -n "s/^${SVC}_common@[0-9]* \(http.*\)/\1/p" "$NAP_TEST_DIR/wait.out")
diag "released -> admitted, started and answering: $((T1 - T0)) ms"
check "started and answering within 5 s of the release ($((T1 - T0)) ms)" test $((T1 - T0)) -lt 5000
assert_contains "and it answers" "$(curl -s --max-time 5 "$URL2/")" "hello"
assert_eq "the job is done (its reservation handed over)" "done" "$(job_status "$JOB")"
assert_eq "the reservation is the instance's" "$INST2 " "$(reservations)"
assert_eq "the node is full again" "1000" "$(usage_cpu)"

# ================================================================ cancel
log "Ctrl-C cancels the job"
bg_start cancel --cpu=1 --queue --request-id=cancel1
C=$BG
wait_until 30 queued_in cancel || diag "$(cat "$NAP_TEST_DIR/cancel.out")"
CJOB=$(job_of "$NAP_TEST_DIR/cancel.out")
kill -INT "$C"
CRC=0
wait "$C" || CRC=$?
check "napctl exits non-zero ($CRC)" test "$CRC" -ne 0
assert_eq "the job is cancelled" "cancelled" "$(job_status "$CJOB")"
assert_eq "nothing else is reserved" "$INST2 " "$(reservations)"

# ============================================================== no-block
log "--no-block returns the job at once"
T0=$(now_ms)
nap start-common $SVC --cpu=1 --queue --no-block --request-id=nb1
T1=$(now_ms)
assert_eq "--no-block: exit 0" 0 "$RC"
assert_match "--no-block: the job is shown" "$OUT" "^Queued: job alice\.[0-9a-f]+ \(id [0-9]+\), position 1"
check "--no-block: at once ($((T1 - T0)) ms)" test $((T1 - T0)) -lt 5000
NBJOB=$(printf '%s\n' "$OUT" | sed -n 's/^Queued: job \([^ ]*\) .*/\1/p')
nap start-common $SVC --cpu=1 --queue --no-block --request-id=nb1
assert_match "asked again: still queued, the same job" "$OUT" "^Queued: job $NBJOB "

# ==================================================== SIGKILL of the waiter
log "SIGKILL of the waiting napctl; nap-queued starts the --no-block one"
bg_start killed --cpu=1 --queue --request-id=kill1
K=$BG
wait_until 30 queued_in killed || diag "$(cat "$NAP_TEST_DIR/killed.out")"
KJOB=$(job_of "$NAP_TEST_DIR/killed.out")
assert_match "queued behind nb1" "$(cat "$NAP_TEST_DIR/killed.out")" "position 2"
kill -9 "$K"
wait "$K" 2>/dev/null
job_done() { [ "$(job_status "$1")" = done ]; }
T0=$(now_ms)
expect_ok "remove the running instance" remove-instance "$INST2"
check "nb1 (--no-block) is admitted and started by nap-queued" wait_until 20 job_done "$NBJOB"
T1=$(now_ms)
diag "remove-instance until nap-queued started the --no-block instance: $((T1 - T0)) ms"
assert_eq "kill1 still waits" "queued" "$(job_status "$KJOB")"
nap start-common $SVC --cpu=1 --queue --request-id=nb1
if started; then ok "nb1: the same call again answers with its instance"; else fail "nb1: the same call again answers with its instance"; nap_diag; fi
INST3=${OUT%% *}
assert_eq "nb1's reservation is its instance's" "$INST3 " "$(reservations)"
check "and it answers" wait_until 20 curl -sf --max-time 2 -o /dev/null "${OUT#* }/"
expect_ok "remove it" remove-instance "$INST3"
check "kill1 (its waiter killed) is admitted all the same" wait_until 10 job_running "$KJOB"
sleep 1
assert_eq "kill1 is not started by anyone else (its client waits for it)" "running" "$(job_status "$KJOB")"
nap start-common $SVC --cpu=1 --queue --request-id=kill1
if started; then ok "kill1: the next start finishes it"; else fail "kill1: the next start finishes it"; nap_diag; fi
INST4=${OUT%% *}
assert_eq "kill1's reservation is its instance's" "$INST4 " "$(reservations)"

# =================================================== SIGKILL of the starter
# queued_killed NAME: a blocking start-common queued, its napctl killed (so
# that nothing starts it once admitted); sets SJOB
queued_killed() {
        bg_start "$1" --cpu=1 --queue --request-id="$1"
        local pid=$BG
        wait_until 30 queued_in "$1" || diag "$(cat "$NAP_TEST_DIR/$1.out")"
        kill -9 "$pid"
        wait "$pid" 2>/dev/null
        SJOB=$(job_of "$NAP_TEST_DIR/$1.out")
}
log "SIGKILL of the starter at admission"
queued_killed s1
expect_ok "remove kill1's instance" remove-instance "$INST4"
check "s1 admitted" wait_until 10 job_running "$SJOB"
N0=$(instances)
if kill_at start-common:admitted "starter before the hand-over" \
        timeout 60 "$NAPCTL" --user --no-helper start-common $SVC --cpu=1 --queue --request-id=s1; then
        assert_eq "the job is still admitted" "running" "$(job_status "$SJOB")"
        assert_eq "no instance was made" "$N0" "$(instances)"
        nap start-common $SVC --cpu=1 --queue --request-id=s1
        if started; then ok "the next start finishes it"; else fail "the next start finishes it"; nap_diag; fi
        INST5=${OUT%% *}
        assert_eq "its reservation is the instance's" "$INST5 " "$(reservations)"
        expect_ok "remove it" remove-instance "$INST5"
fi
nap start-common $SVC --cpu=1 --request-id=s2fill
INST6=${OUT%% *}
queued_killed s2
expect_ok "remove the filler" remove-instance "$INST6"
check "s2 admitted" wait_until 10 job_running "$SJOB"
if kill_at start-common:handed-over "starter after the hand-over" \
        timeout 60 "$NAPCTL" --user --no-helper start-common $SVC --cpu=1 --queue --request-id=s2; then
        assert_eq "the job is done (handed over)" "done" "$(job_status "$SJOB")"
        expect_ok "recover" recover
        assert_eq "recovery released the instance's reservation: nothing leaks" "" "$(reservations)"
        assert_eq "the node's usage is 0" "0" "$(usage_cpu)"
        assert_eq "no instance was left" "$N0" "$(instances)"
        nap --json start-common $SVC --cpu=1 --queue --request-id=s2
        assert_contains "asked again: the start was undone, and said so" "$ERR" "without an instance"
fi

nap_summary
