#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# start-mpi --queue (issue 14, item 7): an MPI job that does not fit now
# waits in nap's own resource queue and runs when admitted. A real etcd, a
# real nap-node agent (node h1: 2 CPUs, 1 GiB), a real nap-queued
# (socket-activated) admitting, real nap-managerd and systemd, real MPICH
# ranks of tests/apps/mpi-hello in their slave units.
#
#   bad input, named, nothing queued: no cpu/memory to wait for, a job
#     larger than the node (RequestTooLarge), a request id that cannot
#     name a job, np out of range, no Etcd= (QueueNotConfigured)
#   a job that does not fit waits (queued, its position shown); the
#     job that fills the node stopped, it is admitted, its reservation
#     handed over to its master, and it runs to completion (succeeded);
#     the same request id again answers with that job, none is started
#   --no-block: returns the queue's job at once; once admitted nap-queued
#     starts it (StartMpi through nap-managerd), each slave with a rank's
#     limits; the same call again answers with the job
#   the waiting napctl SIGKILLed: the job is admitted all the same, and
#     the same call again starts it; it runs to completion
#   Ctrl-C while waiting cancels the job
#   one line per node: an instance (start-common --queue) that would fit
#     waits behind an MPI job queued before it, and starts after it
#   SIGKILL of the starter after the hand-over: recovery undoes the job
#     and releases its reservation, nothing leaks

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../etcd-lib.sh"

nap_napctl_env
[ -n "${NAP_SANDBOX_INSIDE:-}" ] || [ -x "$ETCD_BIN" ] || skip_all "no $ETCD_BIN (Debian's etcd-server)"
SRC=$NAP_SOURCE_ROOT
NAP_MPI_BINARY=${NAP_MPI_BINARY:-$NAP_BUILD_ROOT/helpers/nap-mpi}
export NAP_MPI_BINARY
nap_sandbox_enter "$@"
nap_sandbox_start
nap_need jq git mpiexec.mpich mpicc.mpich etcdctl curl
PIDS=()
trap 'nap__rc=$?; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; etcd_stop; (exit $nap__rc); nap_sandbox_stop' EXIT

. "$(dirname "$0")/queue-lib.sh"
queue_host_up 2
. "$(dirname "$0")/napctl-lib.sh"

SVC=alice_sim
JOBS=$NAP_ROOT/services/alice/.$SVC.mpi
make_repo "$NAP_TEST_DIR/repos/sim" "$SRC"/tests/apps/mpi-hello/. || { echo "Bail out! cannot make the app's repository"; exit 1; }
expect_ok "deploy-app of the MPI app" deploy-app $SVC "file://$NAP_TEST_DIR/repos/sim"

job_is() { [ "$(job_status "$1")" = "$2" ]; } # JOB STATUS
usage_is() { [ "$(usage_cpu)" = "$1" ]; }
last_job() { cat "$JOBS/last" 2>/dev/null || echo 0; }
prop() { timeout 10 systemctl --user show -P "$2" "$1.service" 2>/dev/null; } # UNIT PROPERTY
slave() { echo "${SVC}_mpi_slave@$(($1 * 1000 + $2))"; }                     # JOB RANK
master() { echo "${SVC}_mpi_master@$1"; }
job_state() { jq -r .state "$JOBS/$1.json" 2>/dev/null; } # its record as is (no napctl call)
job_state_is() { [ "$(job_state "$1")" = "$2" ]; }
unit_is() { [ "$(prop "$1" ActiveState)" = "$2" ]; } # UNIT STATE
# queued_mpi NAME ARGS...: napctl start-mpi --queue --request-id=NAME ARGS
# in the background, its output in NAME.out, napctl's pid in BG (the
# sandbox's time limit bounds it); once it said it is queued, the queue's
# job in QJOB (1 when it did not say so within 60 s)
queued_mpi() {
        local name=$1
        shift
        "$NAPCTL" --user start-mpi --queue --request-id="$name" "$@" >"$NAP_TEST_DIR/$name.out" 2>&1 &
        BG=$!
        PIDS+=($BG)
        QJOB=
        wait_until 60 queued_in "$name" || { diag "$(cat "$NAP_TEST_DIR/$name.out")"; return 1; }
        QJOB=$(job_of "$NAP_TEST_DIR/$name.out")
}
# killed_waiting NAME ARGS...: queued_mpi, then its napctl SIGKILLed
killed_waiting() {
        queued_mpi "$@"
        local r=$?
        kill -9 "$BG"
        wait "$BG" 2>/dev/null
        return $r
}
# fill: a job of 2 ranks of 1 CPU that holds all of h1 until stopped; FILL
fill() {
        FILL=
        nap --json start-mpi --no-block --cpu=1 $SVC 'np=2,sleep=120'
        FILL=$(jq -r .job <<<"$OUT" 2>/dev/null)
        [ "$RC" -eq 0 ] && [ -n "$FILL" ] && [ "$FILL" != null ] && usage_is 2000
}
unfill() { nap stop-app "$(master "$FILL")"; }
SMALL=(--cpu=500m --memory=64M)

# =============================================================== refused
log "a job that fits starts at once"
nap --json start-mpi --queue --no-block "${SMALL[@]}" --request-id=fits1 $SVC 'np=2,sleep=1'
F1=$(jq -r .job <<<"$OUT" 2>/dev/null)
if [ "$RC" -eq 0 ] && [ "$F1" -ge 1 ] 2>/dev/null; then ok "start-mpi --queue: fits, job $F1 started"; else fail "start-mpi --queue: fits, started"; nap_diag; fi
check "and it ends" wait_until 30 job_state_is "$F1" succeeded
assert_eq "nothing was queued" "" "$(etcdq get --prefix --keys-only /nap/queue/jobs/)"

log "bad input is refused at once, named, nothing queued"
fill || { fail "a job fills h1"; nap_diag; }
COUNTER=$(last_job)
nap --json start-mpi --queue $SVC 'np=2'
assert_contains "no cpu or memory: nothing to wait for" "$ERR" 'queue needs cpu or memory'
nap --json start-mpi --queue --cpu=1500m $SVC 'np=2'
assert_contains "2 ranks of 1500m on a 2-CPU node: RequestTooLarge" "$ERR" '"error":"io.nap.Manager.RequestTooLarge"'
nap --json start-mpi --queue --cpu=500m --request-id='a/b' $SVC 'np=2'
assert_contains "a request id with '/': InvalidParameter" "$ERR" 'InvalidParameter'
assert_contains "... saying what an id is" "$ERR" 'A request id is 1 to 64 characters'
nap --json start-mpi --queue --cpu=500m $SVC 'np=99'
assert_contains "np out of range: named" "$ERR" 'np must be a number of ranks from 1 to 8'
nap start-mpi --queue --cpu=lots $SVC 'np=2'
assert_contains "a bad amount: napctl names the option" "$ERR" "--cpu"
RC=0
NAP_CONFIG=$NAP_TEST_DIR/no-etcd.conf timeout 60 "$NAPCTL" --user --no-helper --json start-mpi --queue --cpu=500m \
        $SVC 'np=2' >"$NAP_TEST_DIR/out" 2>"$NAP_TEST_DIR/err" || RC=$?
assert_contains "no Etcd=: QueueNotConfigured" "$(cat "$NAP_TEST_DIR/err")" 'QueueNotConfigured'
assert_eq "nothing queued" "" "$(etcdq get --prefix --keys-only /nap/queue/jobs/)"
assert_eq "no job started" "$COUNTER" "$(last_job)"
assert_eq "only the filler holds h1" "$(master "$FILL") " "$(reservations)"

# ================================================================= waits
log "a job that does not fit waits; the filler stopped, it runs to completion"
check "queued, said so" queued_mpi w1 "${SMALL[@]}" $SVC 'np=2,sleep=3'
W=$BG
WJOB=$QJOB
assert_match "its position is shown" "$(cat "$NAP_TEST_DIR/w1.out")" "position 1"
assert_eq "the queue's job waits" "queued" "$(job_status "$WJOB")"
assert_eq "its data says what starts it" "StartMpi 1000 134217728" \
        "$(etcdq get --print-value-only "/nap/queue/jobs/nap-start/$WJOB" | jq -r '.data | fromjson | .nap |
                "\(.method) \(.reservation.request_cpu_milli) \(.reservation.request_memory)"' 2>&1)"
assert_eq "no job was started for it" "$COUNTER" "$(last_job)"
check "napctl still waits" kill -0 "$W"
nap start-mpi "${SMALL[@]}" --queue --no-block --request-id=w1 $SVC 'np=2,sleep=3'
assert_match "asked again meanwhile: the same queue job" "$OUT" "^Queued: job $WJOB "
unfill
T0=$(now_ms)
WAITED=$((COUNTER + 1))
master_holds() { [ "$(reservations)" = "$(master "$WAITED") " ]; }
check "admitted: its master holds the reservation (handed over)" wait_until 30 master_holds
T1=$(now_ms)
diag "filler stopped -> the queued job's master holds its reservation: $((T1 - T0)) ms"
assert_eq "the queue's job is done" "done" "$(job_status "$WJOB")"
assert_eq "h1 holds 2 × 500m" "1000" "$(usage_cpu)"
WRC=0
wait "$W" || WRC=$?
assert_eq "the waiting start-mpi succeeds" 0 "$WRC"
assert_match "it ran to completion" "$(cat "$NAP_TEST_DIR/w1.out")" "State: succeeded \(exit status 0, success\)"
assert_match "... as job $WAITED" "$(cat "$NAP_TEST_DIR/w1.out")" "^Job $WAITED \("
assert_eq "released at its end" "0" "$(usage_cpu)"
nap --json start-mpi "${SMALL[@]}" --queue --request-id=w1 $SVC 'np=2,sleep=3'
assert_eq "the same request id again: that job, not another" "$WAITED succeeded" \
        "$(jq -r '"\(.job.number) \(.job.state)"' <<<"$OUT" 2>&1)"
assert_eq "no job was started" "$WAITED" "$(last_job)"

# ============================================================== no-block
log "--no-block returns the queue's job; nap-queued starts it when admitted"
fill || { fail "a job fills h1"; nap_diag; }
T0=$(now_ms)
nap start-mpi --cpu=500m:1 --memory=64M --queue --no-block --request-id=nb1 $SVC 'np=2,sleep=5'
T1=$(now_ms)
assert_eq "--no-block: exit 0" 0 "$RC"
assert_match "--no-block: the job is shown" "$OUT" "^Queued: job alice\.[0-9a-f]+ \(id [0-9]+\), position 1"
check "--no-block: at once ($((T1 - T0)) ms)" test $((T1 - T0)) -lt 10000
NBJOB=$(job_of "$NAP_TEST_DIR/out")
NB=$(($(last_job) + 1))
unfill
check "nb1 is admitted and started by nap-queued" wait_until 30 job_is "$NBJOB" done
check "its job $NB runs: rank 1's unit is active" wait_until 30 unit_is "$(slave "$NB" 1)" active
assert_eq "a rank's limits reached its slave: CPUQuota= 1 CPU, MemoryLow= 64M" "1s 67108864" \
        "$(prop "$(slave "$NB" 1)" CPUQuotaPerSecUSec) $(prop "$(slave "$NB" 1)" MemoryLow)"
assert_eq "its master holds the reservation" "$(master "$NB") " "$(reservations)"
nap --json start-mpi --cpu=500m:1 --memory=64M --queue --no-block --request-id=nb1 $SVC 'np=2,sleep=5'
assert_eq "the same call again answers with job $NB" "$NB" "$(jq -r .job <<<"$OUT" 2>&1)"
check "it ends" wait_until 30 job_state_is "$NB" succeeded
check "and releases" wait_until 10 usage_is 0

# ==================================================== SIGKILL of the waiter
log "SIGKILL of the waiting napctl: the same call again starts the job"
fill || { fail "a job fills h1"; nap_diag; }
check "k1 queued, its napctl SIGKILLed" killed_waiting k1 "${SMALL[@]}" $SVC 'np=2,sleep=1'
KJOB=$QJOB
COUNTER=$(last_job)
unfill
check "k1 is admitted all the same" wait_until 30 job_is "$KJOB" running
sleep 1 # nap-queued's pass after the admission: it must not start a waiter's job
assert_eq "nothing started it (its client waits for it)" "running $COUNTER" "$(job_status "$KJOB") $(last_job)"
assert_eq "its reservation is held under the queue's job" "1000" "$(usage_cpu)"
nap start-mpi "${SMALL[@]}" --queue --request-id=k1 $SVC 'np=2,sleep=1'
assert_eq "the same call again: exit 0" 0 "$RC" || nap_diag
assert_match "... the job ran to completion" "$OUT" "State: succeeded"
assert_eq "... one job" "$((COUNTER + 1))" "$(last_job)"
assert_eq "the queue's job is done" "done" "$(job_status "$KJOB")"
assert_eq "nothing is held" "0" "$(usage_cpu)"

# ================================================================= cancel
log "Ctrl-C while waiting cancels the job"
fill || { fail "a job fills h1"; nap_diag; }
check "c1 queued" queued_mpi c1 "${SMALL[@]}" $SVC 'np=2'
CJOB=$QJOB
kill -INT "$BG"
CRC=0
wait "$BG" || CRC=$?
check "napctl exits non-zero ($CRC)" test "$CRC" -ne 0
assert_eq "the job is cancelled" "cancelled" "$(job_status "$CJOB")"

# ====================================================== one line per node
log "an instance and an MPI job that wait for h1 wait in one line"
unfill
make_repo "$NAP_TEST_DIR/repos/hello" "$SRC"/tests/apps/hello/. || fail "the web app's repository"
expect_ok "deploy-app of a web app" deploy-app alice_hello "file://$NAP_TEST_DIR/repos/hello"
nap --json start-mpi --no-block --cpu=500m $SVC 'np=2,sleep=120'
HALF=$(jq -r .job <<<"$OUT" 2>/dev/null)
assert_eq "a job holds half of h1" "1000" "$(usage_cpu)"
check "a job of 2 × 1 CPU waits" queued_mpi big --cpu=1 $SVC 'np=2,sleep=2'
B=$BG
BJOB=$QJOB
BIG=$(($(last_job) + 1))
nap start-common alice_hello --cpu=100m --queue --no-block --request-id=small1
assert_match "an instance of 100m, which would fit, waits behind it" "$OUT" "^Queued: job alice\.[0-9a-f]+ .*position 2"
SJOB=$(job_of "$NAP_TEST_DIR/out")
nap stop-app "$(master "$HALF")"
big_holds() { [ "$(reservations)" = "$(master "$BIG") " ]; }
check "the half job stopped, the big one is admitted and holds h1" wait_until 30 big_holds
assert_eq "the instance still waits (it does not fit now)" "queued" "$(job_status "$SJOB")"
BRC=0
wait "$B" || BRC=$?
assert_eq "the big job ran to completion" "0 succeeded" "$BRC $(job_state "$BIG")"
check "then the instance is admitted and started by nap-queued" wait_until 30 job_is "$SJOB" done
assert_match "its reservation is its instance's" "$(reservations)" "^alice_hello_common@[0-9]+ $"

# =================================================== SIGKILL of the starter
log "SIGKILL of the starter after the hand-over: recovery releases"
expect_ok "remove the instance" remove-instance "$(reservations | tr -d ' ')"
fill || { fail "a job fills h1"; nap_diag; }
check "s1 queued, its napctl SIGKILLed" killed_waiting s1 "${SMALL[@]}" $SVC 'np=2'
SJOB=$QJOB
unfill
check "s1 admitted" wait_until 30 job_is "$SJOB" running
SN=$(($(last_job) + 1))
if kill_at start-mpi:handed-over "starter after the hand-over" \
        timeout 60 "$NAPCTL" --user --no-helper start-mpi "${SMALL[@]}" --queue --request-id=s1 $SVC 'np=2'; then
        assert_eq "the queue's job is done (handed over)" "done" "$(job_status "$SJOB")"
        assert_eq "its master's reservation is held" "$(master "$SN") " "$(reservations)"
        expect_ok "recover" recover
        assert_eq "recovery released it: nothing leaks" "" "$(reservations)"
        assert_eq "h1's usage is 0" "0" "$(usage_cpu)"
        nap --json start-mpi "${SMALL[@]}" --queue --request-id=s1 $SVC 'np=2'
        assert_contains "asked again: the start was undone, and said so" "$ERR" "without an instance"
fi

nap_summary
