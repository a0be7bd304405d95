#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# MPI jobs with per-rank resource requests (issue 13): start-mpi --cpu=
# --memory= against a real etcd and a real nap-node agent (this host is
# node h1: 2 CPUs, 1 GiB), tests/apps/mpi-hello built from source, real
# MPICH, napctl through nap-managerd (lib.sh, napctl-lib.sh).
#
#   a job with resources: each slave's unit has a rank's CPUQuota=,
#     MemoryMax=, MemoryLow=, CPUWeight=; the master none; h1's usage in
#     etcd holds ranks × the request while the job runs, as one
#     reservation named as the master; the job record says what was asked
#     and where; nothing is held once the job's end is recorded
#   a --no-block job nobody looks at: its master's ExecStopPost= records
#     its end and releases its reservation as it ends (no napctl call:
#     h1's usage watched in etcd); a job whose rank fails the same way,
#     recorded as failed
#   etcd down as a job ends: the master's stop does not fail, the end is
#     recorded, and the next mpi-job releases
#   stop-app of the master: released too
#   a job that does not fit: InsufficientResources saying what is free,
#     and nothing changed (no record, no job number, no unit, no key)
#   the Procfile's MpiCpu=/MpiMemory=: the default per rank
#   SIGKILL of nap-managerd while the reservation is held and nothing
#     else of the job exists: recovery releases it

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../etcd-lib.sh"

nap_napctl_env
[ -n "${NAP_SANDBOX_INSIDE:-}" ] || [ -x "$ETCD_BIN" ] || skip_all "no $ETCD_BIN (Debian's etcd-server)"
SRC=$NAP_SOURCE_ROOT
NAP_MPI_BINARY=${NAP_MPI_BINARY:-$NAP_BUILD_ROOT/helpers/nap-mpi}
export NAP_MPI_BINARY
nap_sandbox_enter "$@"
nap_sandbox_start
nap_need jq git mpiexec.mpich mpicc.mpich etcdctl
AGENT=
trap 'nap__rc=$?; [ -n "$AGENT" ] && kill "$AGENT" 2>/dev/null; etcd_stop; (exit $nap__rc); nap_sandbox_stop' EXIT

etcd_start "$NAP_TEST_DIR/etcd" || { echo "Bail out! etcd did not start"; exit 1; }
cat >>"$NAP_CONFIG" <<EOF
Etcd=$ETCD_URL
Node=h1
CPU=2
Memory=1G
Storage=10G
NodeTTL=3
EOF
. "$(dirname "$0")/napctl-lib.sh"

SVC=alice_sim
RT=$XDG_RUNTIME_DIR/systemd/user
JOBS=$NAP_ROOT/services/alice/.$SVC.mpi

etcdctl_() { ETCDCTL_API=3 timeout 10 etcdctl --endpoints="$ETCD_URL" "$@" 2>/dev/null; }
keys() { etcdctl_ get --prefix --keys-only "$1" | grep .; } # PREFIX
# usage: h1's usage as "CPU_MILLI MEMORY" ("0 0" when none was ever written)
usage() {
        local v
        v=$(etcdctl_ get --print-value-only /nap/usage/h1)
        [ -n "$v" ] && jq -r '"\(.cpu_milli) \(.memory)"' <<<"$v" || echo "0 0"
}
usage_is() { [ "$(usage)" = "$1" ]; }
# usage_none_within SECONDS: true once h1's usage is none (0, or no key),
# waiting on etcd's watch of it from the revision read (no change lost
# between the read and the watch), at most SECONDS.
usage_none_within() {
        local rev line watcher found=1
        rev=$(etcdctl_ get -w json /nap/usage/h1 | jq -r .header.revision)
        [ -n "$rev" ] || return 1
        usage_is "0 0" && return 0
        while read -r line; do
                case $line in
                DELETE) found=0 ;;
                '{'*) [ "$(jq -r '"\(.cpu_milli) \(.memory)"' <<<"$line")" = "0 0" ] && found=0 ;;
                esac
                [ "$found" -eq 0 ] && break
        done < <(ETCDCTL_API=3 exec timeout "$1" etcdctl --endpoints="$ETCD_URL" watch --rev=$((rev + 1)) \
                /nap/usage/h1 2>/dev/null)
        watcher=$!
        kill "$watcher" 2>/dev/null
        return $found
}
record() { jq -r "$2" "$JOBS/$1.json" 2>/dev/null; } # JOB FILTER: its record as is (no napctl call)
prop() { timeout 10 systemctl --user show -P "$2" "$1.service" 2>/dev/null; } # UNIT PROPERTY
job_field() { timeout 30 "$NAPCTL" --user --json mpi-job "$1" "$2" 2>/dev/null | jq -r ".job.$3"; } # SVC JOB FIELD
job_ended() { [ "$(job_field "$1" "$2" state)" != running ]; }
slave() { echo "$1_mpi_slave@$(($2 * 1000 + $3))"; } # SVC JOB RANK
start_job() { # SVC PARAMS [OPTIONS...]: start-mpi --no-block; sets JOB
        local svc=$1 params=$2
        shift 2
        JOB=
        nap --json start-mpi --no-block "$@" "$svc" "$params"
        [ "$RC" -eq 0 ] && JOB=$(jq -r .job <<<"$OUT") && [ -n "$JOB" ] && [ "$JOB" != null ]
}

# ------------------------------------------------------------ the node
log "this host's node"
NAP_CONFIG=$NAP_CONFIG "$NAP_BUILD_ROOT/helpers/nap-node" >>"$NAP_TEST_DIR/nap-node.log" 2>&1 &
AGENT=$!
check "nap-node registers h1" wait_until 30 keys /nap/members/h1
REPO=$NAP_TEST_DIR/repos/sim
make_repo "$REPO" "$SRC"/tests/apps/mpi-hello/. || { echo "Bail out! cannot make the app's repository"; exit 1; }
expect_ok "deploy-app of the MPI app" deploy-app $SVC "file://$REPO"

# ------------------------------------------------------ a job with resources
log "np=2 with --cpu=500m --memory=64M"
start_job $SVC 'np=2,sleep=4' --cpu=500m --memory=64M || { fail "start-mpi --cpu --memory"; nap_diag start-mpi; }
J1=$JOB
MASTER=${SVC}_mpi_master@$J1
for r in 0 1; do
        S=$(slave $SVC "$J1" $r)
        assert_eq "rank $r's unit: CPUQuota= 50% (500m)" 500ms "$(prop "$S" CPUQuotaPerSecUSec)"
        assert_eq "rank $r's unit: MemoryMax= 64M" 67108864 "$(prop "$S" MemoryMax)"
        assert_eq "rank $r's unit: MemoryLow= 64M (the request)" 67108864 "$(prop "$S" MemoryLow)"
        assert_eq "rank $r's unit: CPUWeight= from 500m" 20 "$(prop "$S" CPUWeight)"
done
assert_eq "the master has no quota of its own" infinity "$(prop "$MASTER" CPUQuotaPerSecUSec)"
assert_eq "while it runs, h1's usage holds 2 × the request" "1000 134217728" "$(usage)"
assert_eq "... as one reservation named as the master" "/nap/reservations/h1/compute/$MASTER" \
        "$(keys /nap/reservations/)"
assert_eq "the job record: what each rank asked, and where" "500m:500m 64M:64M h1" \
        "$(jq -r '"\(.cpu) \(.memory) \(.node)"' "$JOBS/$J1.json")"
assert_eq "the job is running" running "$(job_field $SVC "$J1" state)"
check "the job ends" wait_until 30 job_ended $SVC "$J1"
assert_eq "it succeeded" succeeded "$(job_field $SVC "$J1" state)"
assert_eq "once its end is recorded, h1's usage is back to 0" "0 0" "$(usage)"
assert_eq "... and no reservation or name is left" "" "$(keys /nap/reservations/)$(keys /nap/names/)"

log "a --no-block job nobody looks at: recorded and released as it ends"
start_job $SVC 'np=2,sleep=2' --cpu=500m --memory=64M || { fail "start-mpi --no-block --cpu --memory"; nap_diag start-mpi; }
JN=$JOB
assert_eq "while it runs, h1's usage holds 2 × the request" "1000 134217728" "$(usage)"
T0=$(now_ms)
check "with no napctl call, h1's usage is none within 10 s of its 2 s run" usage_none_within 12
diag "released $(($(now_ms) - T0)) ms after the check began (the job sleeps 2 s)"
assert_eq "... no reservation is left" "" "$(keys /nap/reservations/)"
assert_eq "its record (as the master's ExecStopPost= wrote it): succeeded, exit status 0, success" \
        "succeeded 0 success" "$(record "$JN" '"\(.state) \(.exit_status) \(.result)"')"
check "... with its end after its start" test "$(record "$JN" .finished)" -gt "$(record "$JN" .started)"
assert_eq "... the master stopped cleanly (its ExecStopPost= did not fail it)" "inactive success" \
        "$(prop "${SVC}_mpi_master@$JN" ActiveState) $(prop "${SVC}_mpi_master@$JN" Result)"
assert_eq "mpi-job later says the same" "succeeded 0" \
        "$(job_field $SVC "$JN" state) $(job_field $SVC "$JN" exitStatus)"
assert_eq "... and releases nothing twice" "0 0" "$(usage)"

log "a --no-block job whose rank fails: recorded as failed and released"
start_job $SVC 'np=2,sleep=30' --cpu=500m || fail "start-mpi --no-block --cpu"
JF=$JOB
assert_eq "it holds 2 × 500m" "1000 0" "$(usage)"
check "its rank 1 runs" wait_until 30 output_is active prop "$(slave $SVC "$JF" 1)" ActiveState
timeout 10 systemctl --user kill -s KILL "$(slave $SVC "$JF" 1).service"
T0=$(now_ms)
check "with no napctl call, h1's usage is none within 10 s of the kill" usage_none_within 10
diag "released $(($(now_ms) - T0)) ms after the kill"
assert_eq "its record: failed" failed "$(record "$JF" .state)"
check "... with an exit status and a result that is not success" \
        test "$(record "$JF" .exit_status)" -gt 0 -a "$(record "$JF" .result)" != success

log "napctl start-mpi --cpu --memory waits, and the job's end releases"
nap start-mpi --cpu=250m:1 --memory=32M $SVC 'np=3'
assert_eq "start-mpi np=3 --cpu=250m:1 succeeds" 0 "$RC" || nap_diag start-mpi
J2=$(sed -n 's/^Job \([0-9]*\) (.*/\1/p' <<<"$OUT")
assert_eq "the record: request 250m, limit 1" "250m:1 32M:32M" "$(jq -r '"\(.cpu) \(.memory)"' "$JOBS/$J2.json")"
assert_eq "released when start-mpi saw the end" "0 0" "$(usage)"

log "stop-app of the master releases"
start_job $SVC 'np=2,sleep=30' --cpu=1 || fail "start-mpi --cpu=1"
J3=$JOB
assert_eq "2 CPUs held" "2000 0" "$(usage)"
expect_ok "stop-app of the master" stop-app "${SVC}_mpi_master@$J3"
assert_eq "the job is stopped" stopped "$(job_field $SVC "$J3" state)"
assert_eq "and h1 is free again" "0 0" "$(usage)"

# ----------------------------------------------------------- does not fit
log "a job that does not fit"
start_job $SVC 'np=2,sleep=30' --cpu=600m --memory=128M || fail "start-mpi --cpu=600m"
J4=$JOB
assert_eq "a job holds 1200m of h1's 2000m" "1200 268435456" "$(usage)"
RECORDS=$(ls "$JOBS" | sort | tr '\n' ' ')
COUNTER=$(cat "$JOBS/last")
UNITS=$(ls "$RT" | sort | tr '\n' ' ')
nap --json start-mpi --cpu=500m $SVC 'np=2'
check "2 ranks of 500m more are refused" test "$RC" -ne 0
assert_contains "with InsufficientResources" "$ERR" "InsufficientResources"
nap start-mpi --cpu=500m $SVC 'np=2'
assert_contains "saying what is asked and what is free" "$ERR" \
        "2 ranks of cpu 500m (cpu 1 in all) do not fit on node h1: it has cpu 800m, memory 768M free of cpu 2, memory 1G"
nap --json start-mpi --memory=512M $SVC 'np=2'
assert_contains "memory too: 2 × 512M > 768M free" "$ERR" "InsufficientResources"
assert_eq "nothing changed: h1's usage" "1200 268435456" "$(usage)"
assert_eq "... its reservations" "/nap/reservations/h1/compute/${SVC}_mpi_master@$J4" "$(keys /nap/reservations/)"
assert_eq "... the job records" "$RECORDS" "$(ls "$JOBS" | sort | tr '\n' ' ')"
assert_eq "... the job counter" "$COUNTER" "$(cat "$JOBS/last")"
assert_eq "... the units" "$UNITS" "$(ls "$RT" | sort | tr '\n' ' ')"
check "... and no intent is left" test ! -e "$NAP_ROOT/intents/$SVC.intent"
nap start-mpi --cpu=lots $SVC 'np=2'
assert_contains "a bad amount is refused by napctl, naming the option" "$ERR" "--cpu"
nap --json start-mpi --cpu=1000 $SVC 'np=2'
assert_contains "an absurd one too" "$ERR" "InvalidParameter"
expect_ok "stop-app of the job that holds h1" stop-app "${SVC}_mpi_master@$J4"
check "released once its end is recorded" test "$(job_field $SVC "$J4" state)" = stopped -a "$(usage)" = "0 0"

# ------------------------------------------------------- profile defaults
log "MpiCpu= and MpiMemory= in the Procfile"
DEF=$NAP_TEST_DIR/apps/sim2
mkdir -p "$DEF" && cp -r "$SRC"/tests/apps/mpi-hello/. "$DEF" && printf 'MpiCpu=250m\nMpiMemory=32M\n' >>"$DEF/Procfile"
make_repo "$NAP_TEST_DIR/repos/sim2" "$DEF"/. || { echo "Bail out! cannot make the second app"; exit 1; }
expect_ok "deploy-app of an MPI app with MpiCpu=250m, MpiMemory=32M" deploy-app alice_sim2 "file://$NAP_TEST_DIR/repos/sim2"
start_job alice_sim2 'np=2,sleep=30' || fail "start-mpi of alice_sim2"
J5=$JOB
assert_eq "a rank's quota from MpiCpu=" 250ms "$(prop "$(slave alice_sim2 "$J5" 1)" CPUQuotaPerSecUSec)"
assert_eq "a rank's MemoryMax= from MpiMemory=" 33554432 "$(prop "$(slave alice_sim2 "$J5" 1)" MemoryMax)"
assert_eq "reserved: 2 × 250m, 2 × 32M" "500 67108864" "$(usage)"
expect_ok "stop-app" stop-app "alice_sim2_mpi_master@$J5"
check "released" test "$(job_field alice_sim2 "$J5" state)" = stopped -a "$(usage)" = "0 0"
start_job alice_sim2 'np=2' --memory=16M || fail "start-mpi --memory=16M of alice_sim2"
assert_eq "--memory= wins over MpiMemory=, MpiCpu= still applies" "250ms 16777216" \
        "$(prop "$(slave alice_sim2 "$JOB" 0)" CPUQuotaPerSecUSec) $(prop "$(slave alice_sim2 "$JOB" 0)" MemoryMax)"
check "that job ends" wait_until 30 job_ended alice_sim2 "$JOB"

# --------------------------------------------------------- crash safety
log "SIGKILL of nap-managerd while the reservation is held"
managerd_down() { ! timeout 10 systemctl --user -q is-active nap-managerd.service; }
timeout 30 systemctl --user stop nap-managerd.service
rm -f "$PAUSED"
timeout 30 systemctl --user set-environment NAP_DEBUG_PAUSE_AT=start-mpi:reserved "NAP_DEBUG_PAUSE_FILE=$PAUSED"
timeout 60 "$NAPCTL" --user start-mpi --cpu=700m $SVC 'np=2' >"$NAP_TEST_DIR/paused.out" 2>&1 &
CLIENT=$!
check "start-mpi reaches start-mpi:reserved in nap-managerd" wait_until 60 paused_at start-mpi:reserved
assert_eq "there, 2 × 700m are held" "1400 0" "$(usage)"
check "and an intent names the node" test "$(jq -r .node "$NAP_ROOT/intents/$SVC.intent" 2>/dev/null)" = h1
KJ=$(jq -r .number "$NAP_ROOT/intents/$SVC.intent")
kill "$CLIENT" 2>/dev/null
wait "$CLIENT" 2>/dev/null
timeout 30 systemctl --user kill -s SIGKILL nap-managerd.service
check "nap-managerd is gone" wait_until 30 managerd_down
timeout 30 systemctl --user unset-environment NAP_DEBUG_PAUSE_AT NAP_DEBUG_PAUSE_FILE
rm -f "$PAUSED"
assert_eq "the reservation outlived it" "1400 0" "$(usage)"
nap start-mpi --cpu=100m $SVC 'np=1'
assert_eq "the app's next start-mpi (recovery first) works" 0 "$RC" || nap_diag start-mpi
check "the intent is gone" test ! -e "$NAP_ROOT/intents/$SVC.intent"
assert_eq "the cut-short job's reservation was released, the new one's too" "0 0" "$(usage)"
assert_eq "no reservation of job $KJ is left" "" "$(keys "/nap/names/compute/${SVC}_mpi_master@$KJ")"
check "no manifest of job $KJ" bash -c "! ls $NAP_INSTANCES | grep -q '${SVC}_mpi_[a-z]*@$KJ\$'"

# ------------------------------------------------------------ etcd down
log "etcd down as a job ends: its stop does not fail, its end is recorded, the release comes later"
start_job $SVC 'np=2,sleep=2' --cpu=500m || fail "start-mpi --no-block --cpu"
JD=$JOB
assert_eq "it holds 2 × 500m" "1000 0" "$(usage)"
CPORT=${ETCD_URL##*:}
etcd_stop
settled() { case $(prop "${SVC}_mpi_master@$JD" ActiveState) in inactive | failed) true ;; *) false ;; esac; }
check "the job ends while etcd is down" wait_until 20 settled
assert_eq "its master stopped cleanly all the same" "inactive success" \
        "$(prop "${SVC}_mpi_master@$JD" ActiveState) $(prop "${SVC}_mpi_master@$JD" Result)"
assert_eq "its end is recorded (ExecStopPost=)" "succeeded 0" "$(record "$JD" '"\(.state) \(.exit_status)"')"
said_why() { timeout 10 journalctl --no-pager -q -o cat | grep -qF "$1"; } # the sandbox's journald
check "the journal says why nothing was released" wait_until 10 said_why \
        "Failed to record the end of job $JD of $SVC or to release its reservation (its next query or collection will): etcd"
etcd_start_on "$NAP_TEST_DIR/etcd" "$CPORT" "$(etcd_free_port)" || { echo "Bail out! etcd did not restart"; exit 1; }
assert_eq "etcd back: the reservation is still held" "1000 0" "$(usage)"
assert_eq "mpi-job of the job" succeeded "$(job_field $SVC "$JD" state)"
check "... releases it" usage_none_within 10

nap_summary
