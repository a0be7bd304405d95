#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# MPI jobs on one host (issue 13): tests/apps/mpi-hello, a C MPI program
# deployed from source (its Procfile's build process compiles it), run by
# start-mpi as USER_APP_mpi_master@J.service (MPICH's mpiexec, Hydra's
# manual launcher) and one USER_APP_mpi_slave@N.service per rank. Real
# MPICH, napctl, nap-managerd, user manager and generator (lib.sh).
#
#   NAPCTL=build/cli/napctl NAP_GENERATOR=build/generators/nap-generator \
#           tests/integration/test-mpi.sh
# Needs root and Debian's mpich; exits 77 without root.

. "$(dirname "$0")/lib.sh"

NAPCTL=${NAPCTL:-${1:-}}
NAP_GENERATOR=${NAP_GENERATOR:-${2:-}}
nap_napctl_env
SRC=$NAP_SOURCE_ROOT
# what the job's units run: this build's nap-mpi (the manager passes its
# environment on to nap-managerd, which writes it into the manifests)
NAP_MPI_BINARY=${NAP_MPI_BINARY:-$NAP_BUILD_ROOT/helpers/nap-mpi}
export NAP_MPI_BINARY
nap_sandbox_enter "$@"
nap_sandbox_start
nap_need jq git mpiexec.mpich mpicc.mpich
. "$(dirname "$0")/napctl-lib.sh"

SVC=alice_sim
RT=$XDG_RUNTIME_DIR/systemd/user

unit_state() { # UNIT: ActiveState
        timeout 10 systemctl --user show -P ActiveState "$1" 2>/dev/null
}

# active_units: the app's MPI units whose processes run (the filter on
# sub-state exited is for a unit that RemainAfterExit=, as masters did).
active_units() {
        timeout 10 systemctl --user list-units --no-legend --plain --state=active,activating,deactivating \
                "${SVC}_mpi_*" 2>/dev/null | awk '$4 != "exited" {print $1}' | grep -v '^$'
}

no_unit_active() { [ -z "$(active_units)" ]; }

# job_field JOB FIELD: from napctl mpi-job --json.
job_field() {
        timeout 30 "$NAPCTL" --user --json mpi-job $SVC "$1" 2>/dev/null | jq -r ".job.$2"
}

job_ended() { [ "$(job_field "$1" state)" != running ]; }

# start_job PARAMS: start-mpi --no-block; sets JOB (its number).
start_job() {
        JOB=
        nap --json start-mpi --no-block $SVC "$1"
        [ "$RC" -eq 0 ] && JOB=$(jq -r .job <<<"$OUT") && [ -n "$JOB" ] && [ "$JOB" != null ]
}

slave() { echo "${SVC}_mpi_slave@$((${1:-0} * 1000 + $2))"; } # JOB RANK

REPO=$NAP_TEST_DIR/repos/sim
make_repo "$REPO" "$SRC"/tests/apps/mpi-hello/. || { echo "Bail out! cannot make the app's repository"; exit 1; }
expect_ok "deploy-app of the MPI app (sources only)" deploy-app $SVC "file://$REPO"

# ----------------------------------------------------------- a whole job
log "np=4: built from source, 4 ranks in 4 slave units, result recorded"
T0=$(now_ms)
nap start-mpi $SVC 'np=4,greeting=salut'
T1=$(now_ms)
assert_eq "start-mpi np=4 waits for the job and succeeds" 0 "$RC" || nap_diag start-mpi
diag "first job (with the build): $((T1 - T0)) ms"
assert_match "it prints the job's result" "$OUT" "State: succeeded \(exit status 0, success\)"
J1=$(sed -n 's/^Job \([0-9]*\) (.*/\1/p' <<<"$OUT")
assert_eq "the first job is job 1" 1 "$J1"
check "the build ran in its own unit, output in its journal" \
        journalctl --user -q -u "${SVC}_mpi_build.service" --no-pager
assert_eq "the build unit succeeded" "inactive" "$(unit_state ${SVC}_mpi_build.service)"
nap --json get-journal "${SVC}_mpi_master@$J1"
JOURNAL=$OUT
for r in 0 1 2 3; do
        assert_contains "rank $r's output is in the master's journal, from its own slave unit" "$JOURNAL" \
                "rank $r of 4: sum 6, salut from $(slave "$J1" $r).service"
done
assert_eq "4 ranks, no more" 4 "$(grep -o 'rank [0-9] of 4' <<<"$JOURNAL" | sort -u | wc -l)"
assert_eq "the record: succeeded" succeeded "$(job_field "$J1" state)"
assert_eq "the record: exit status 0" 0 "$(job_field "$J1" exitStatus)"
assert_eq "the record: 4 ranks" 4 "$(job_field "$J1" ranks)"
assert_eq "the record: params reached the program" salut "$(job_field "$J1" params.greeting)"
check "the record: start and end times" test "$(job_field "$J1" finished)" -ge "$(job_field "$J1" started)"
nap --json list-instances $SVC
assert_eq "list-instances shows the master and its 4 slaves" 5 "$(jq '[.[] | select(.instance | test("_mpi_"))] | length' <<<"$OUT")"
assert_eq "... the master inactive (its end recorded by its ExecStopPost=)" "inactive dead" \
        "$(jq -r ".[] | select(.instance == \"${SVC}_mpi_master@$J1\") | .active_state + \" \" + .sub_state" <<<"$OUT")"
check "the slave template BindsTo= the master (systemctl cat)" \
        bash -c "timeout 10 systemctl --user cat $(slave "$J1" 0).service | grep -qx 'BindsTo=${SVC}_mpi_master@$J1.service'"

# ------------------------------------------------------------ params, np
log "params and np"
nap start-mpi $SVC 'greeting=bonjour'
assert_eq "default np (MpiRanks=2)" 0 "$RC" || nap_diag start-mpi
J2=$(sed -n 's/^Job \([0-9]*\) (.*/\1/p' <<<"$OUT")
assert_eq "job numbers go on" 2 "$J2"
assert_eq "... 2 ranks" 2 "$(job_field "$J2" ranks)"
check "the finished job 1 was collected: its units are gone" test ! -e "$RT/${SVC}_mpi_master@$J1.service.d"
check "... its manifests too" bash -c "! ls $NAP_INSTANCES | grep -q '${SVC}_mpi_master@$J1'"
assert_eq "... and its result is still there" succeeded "$(job_field "$J1" state)"

JOBS_BEFORE=$(ls "$NAP_ROOT/services/alice/.${SVC}.mpi" | sort | tr '\n' ' ')
bad_input() { # WHAT KIND PARAMS [SERVICE]
        nap --json start-mpi "${4:-$SVC}" "$3"
        assert_eq "$1: refused" 1 "$((RC != 0))"
        assert_contains "$1: named error $2" "$ERR" "$2"
}
bad_input "np=0" "InvalidParameter" 'np=0'
assert_contains "np=0: says the range" "$ERR" "from 1 to 8"
bad_input "np=10000" "InvalidParameter" 'np=10000'
bad_input "np=9 (above MpiRanksMax=8)" "InvalidParameter" 'np=9'
bad_input "np=abc" "InvalidParameter" 'np=abc'
bad_input "a parameter with a newline" "InvalidParameter" $'greeting=a\nb'
bad_input "an unknown parameter" "InvalidParameter" 'colour=red'
make_repo "$NAP_TEST_DIR/repos/web" "$SRC"/tests/apps/hello/. && expect_ok "deploy a common app" deploy-app alice_web "file://$NAP_TEST_DIR/repos/web"
bad_input "start-mpi of an app that is not MPI" "InvalidProfile" 'np=2' alice_web
nap --json mpi-job $SVC 99
assert_contains "mpi-job of a job that never was: NoSuchInstance" "$ERR" "NoSuchInstance"
assert_eq "bad input changed nothing (job records)" "$JOBS_BEFORE" \
        "$(ls "$NAP_ROOT/services/alice/.${SVC}.mpi" | sort | tr '\n' ' ')"
check "... and left no unit running" no_unit_active

# --------------------------------------------------- a dead rank, a stop
log "SIGKILL of one slave mid-job"
start_job 'np=3,sleep=30' || { fail "start-mpi --no-block"; nap_diag start-mpi; }
J3=$JOB
wait_until 20 output_is active unit_state "$(slave "$J3" 2).service"
sleep 1 # the ranks are in MPI_Init/sleep
T0=$(now_ms)
timeout 10 systemctl --user kill -s KILL "$(slave "$J3" 1).service"
wait_until 10 job_ended "$J3"
T1=$(now_ms)
assert_eq "the job failed" failed "$(job_field "$J3" state)"
check "... within 2 s of the kill ($((T1 - T0)) ms)" test $((T1 - T0)) -le 2000
check "no unit of the app is left active" wait_until 5 no_unit_active
nap mpi-job $SVC "$J3"
check "mpi-job of a failed job exits non-zero" test "$RC" -ne 0

log "stop-app on the master stops the whole job"
start_job 'np=2,sleep=30' || fail "start-mpi --no-block"
J4=$JOB
wait_until 20 output_is active unit_state "$(slave "$J4" 1).service"
expect_ok "stop-app of the master" stop-app "${SVC}_mpi_master@$J4"
check "every slave stopped with it" wait_until 5 no_unit_active
assert_eq "the job is recorded as stopped" stopped "$(job_field "$J4" state)" ||
        diag "$(timeout 30 "$NAPCTL" --user --json mpi-job $SVC "$J4" 2>&1)" "$(journalctl --user -q --no-pager -u "${SVC}_mpi_master@$J4" 2>&1 | tail -n 15)"

log "a proxy that never starts: the watchdog fails the job"
J5=$((J4 + 1)) # job numbers go on by one
# sabotage: rank 1's slave unit runs something else than nap-mpi
mkdir -p "$RT/$(slave $J5 1).service.d"
printf '[Service]\nExecStart=\nExecStart=/bin/sleep 600\n' >"$RT/$(slave $J5 1).service.d/90-sabotage.conf"
T0=$(now_ms)
nap start-mpi $SVC 'np=2'
T1=$(now_ms)
check "start-mpi fails" test "$RC" -ne 0
assert_eq "it was job $J5" failed "$(job_field "$J5" state)"
assert_eq "exit status 124: the watchdog" 124 "$(job_field "$J5" exitStatus)"
check "within the watchdog's 10 s and a little ($((T1 - T0)) ms)" test $((T1 - T0)) -le 14000
check "no unit left active" wait_until 5 no_unit_active
nap get-journal "${SVC}_mpi_master@$J5"
assert_contains "the master says why" "$OUT" "did not start within 10 s"
rm -rf "$RT/$(slave $J5 1).service.d"

# --------------------------------------------------------- side by side
log "two jobs of one app at once, and a common instance of another app"
start_instance alice_web greeting=hi || { fail "start-common"; nap_diag start-common; }
start_job 'np=2,sleep=2,greeting=one' && JA=$JOB
start_job 'np=2,sleep=2,greeting=two' && JB=$JOB
check "two job numbers" test -n "$JA" -a -n "$JB" -a "$JA" != "$JB"
check "both masters run at once" test "$(unit_state "${SVC}_mpi_master@$JA.service")" = active \
        -a "$(unit_state "${SVC}_mpi_master@$JB.service")" = active
wait_until 30 job_ended "$JA"
wait_until 30 job_ended "$JB"
assert_eq "job $JA succeeded" succeeded "$(job_field "$JA" state)"
assert_eq "job $JB succeeded" succeeded "$(job_field "$JB" state)"
nap get-journal "${SVC}_mpi_master@$JB"
assert_contains "each job has its own output" "$OUT" "rank 1 of 2: sum 1, two from $(slave "$JB" 1).service"
assert_not_contains "... not the other's" "$OUT" "one from"
assert_eq "the common instance still answers" "hi from alice_web_$NUM on port $PORT" "$(http_get "$URL/")"

# ------------------------------------------------------------ crash safety
log "SIGKILL of start-mpi between its units and their start"
JK=$((JB + 1))
kill_at start-mpi:units "start-mpi" "$NAPCTL" --user --no-helper start-mpi $SVC np=2
check "it left an intent" test -e "$NAP_ROOT/intents/$SVC.intent"
nap mpi-job $SVC 1 # any operation on the app recovers it first
nap start-mpi $SVC 'np=2'
assert_eq "the next start-mpi works" 0 "$RC" || nap_diag start-mpi
check "the intent is gone" test ! -e "$NAP_ROOT/intents/$SVC.intent"
assert_eq "the cut-short job is recorded as stopped" stopped "$(job_field "$JK" state)"
check "its units are gone" test ! -e "$RT/${SVC}_mpi_master@$JK.service.d"
check "... its manifests too" bash -c "! ls $NAP_INSTANCES | grep -q '_mpi_[a-z]*@$JK'"
check "... and its tree" test ! -e "$NAP_ROOT/apps/alice/${SVC}_mpi_$JK"

nap_summary
