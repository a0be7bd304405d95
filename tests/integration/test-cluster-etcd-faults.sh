#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# etcd's leader killed during a cluster start-common (docs/ARCHITECTURE.md
# "Cluster apps"), on three real hosts (cluster-lib.sh) running the built
# nap-node, the sample app deployed on each. For each case the leader is
# first moved to h1's member (the first of every host's Etcd= endpoints,
# so the member the caller talks to), a start-common from h2 (napctl in
# process) is stopped at a named point (NAP_DEBUG_PAUSE_AT), h1's etcd
# member alone is SIGKILLed (the host stays up), and the start goes on
# during the election:
#
#   cluster-start:placed    the node picked, the assignment's txn not sent
#   cluster-start:assigned  the txn done, the node's report not yet
#                           waited for; and once more, the kill during
#                           that wait, while it watches on h1's member
#                           (the node's nap-node held with SIGSTOP until
#                           then): the wait must go on on another member,
#                           and the call answer
#
# with --cluster and with --node. Then: the call answered with an
# instance that serves, or failed with a named error; the same call again
# with the same --request-id (h1's member still down: two of three hold
# the quorum) answers with one instance that serves, the first call's if
# it answered; exactly one instance more in the cluster (assignments,
# reports and active units on every host all count one more, and the
# request's key names it); the app's counter moved by exactly one and the
# number is the new one (never reused); nothing half-made (every
# assignment reported active at its generation, every reservation of an
# instance held by the node it is assigned to). h1's member started again:
# every member healthy, three started, one leader.
#
# Then restart-app of an instance on h3, from h1 in process and from h2
# through its nap-managerd (the method RestartApp): each time the
# assignment's generation + 1 with the restart asked at it, h3's report
# active at that generation by the time restart-app returns, a new main
# PID, the instance answering; h3's nap-node restarted does not restart it
# again; an unknown instance is NoSuchInstance.
#
#   NAPCTL=build/cli/napctl NAP_GENERATOR=build/generators/nap-generator \
#   NAP_BUILD_ROOT=build tests/integration/test-cluster-etcd-faults.sh

. "$(dirname "$0")/cluster-lib.sh"

[ -n "${NAP_CLUSTER_INSIDE:-}" ] || nap_napctl_env
nap_cluster_enter "$@"
T_START=$(now_ms)
# long enough that the election (1 s timeout, longer on a loaded machine)
# never lets a membership lapse: the instances stay up throughout
TTL=10
nap_cluster_apps_up 3 "$TTL" || { echo "Bail out! cannot prepare the hosts"; exit 1; }
UNIT=$NAP_CLUSTER_NODE_UNIT
PAUSED=$NAP_CLUSTER_DIR/paused
OUT=$NAP_CLUSTER_DIR/start.out ERR=$NAP_CLUSTER_DIR/start.err

deploy_on() { # N: the sample app deployed on host N (napctl in process)
        nap_cluster_napctl "$1" deploy-app alice_hello "$NAP_CLUSTER_DIR/repos/hello" >/dev/null 2>&1
}
for n in 1 2 3; do
        check "alice_hello deployed on h$n" deploy_on "$n"
        check "nap-node runs on h$n" nap_cluster_unit_install "$n" nap-node.service "$UNIT"
done

# ---------------------------------------------------------- helpers
etcd_get() { # KEY: its value ("" if none)
        nap_cluster_etcdctl get --print-value-only "$1"
}
counter() { # the app's last number (0: none yet)
        local c
        c=$(etcd_get /nap/counters/alice_hello)
        echo "${c:-0}"
}
assignments_json() { # every assignment of alice_hello, one JSON value a line
        nap_cluster_etcdctl get --prefix --print-value-only /nap/assignments/ | jq -c 'select(.app == "alice_hello")'
}
assignments_n() {
        assignments_json | grep -c .
}
assigned_for() { # REQUEST: "NODE NUMBER" of each assignment the request made
        assignments_json | jq -r --arg r "$1" 'select(.request == $r) | "\(.node) \(.number)"'
}
reports_active_n() { # the reports of alice_hello's instances that say active at their assignment's generation
        local a n=0 node name gen
        while read -r a; do
                node=$(jq -r .node <<<"$a") name=alice_hello_common@$(jq -r .number <<<"$a") gen=$(jq -r .generation <<<"$a")
                etcd_get "/nap/observed/$node/$name" |
                        jq -e --argjson g "$gen" '.state == "active" and .generation >= $g' >/dev/null && n=$((n + 1))
        done < <(assignments_json)
        echo "$n"
}
units_active_n() { # alice_hello's instances whose unit is active, on all hosts together
        local n total=0 k
        for n in 1 2 3; do
                k=$(nap_cluster_systemctl "$n" list-units --plain --no-legend --state=active 'alice_hello_common@*.service' |
                        grep -c .)
                total=$((total + k))
        done
        echo "$total"
}
# every reservation of an instance of alice_hello held by the node it is
# assigned to; the ones that are not, as "NODE NAME", on stdout
orphan_reservations() {
        local key node name
        while read -r key; do
                [ -n "$key" ] || continue
                node=$(cut -d/ -f4 <<<"$key") name=${key##*/}
                [ -n "$(etcd_get "/nap/assignments/$node/$name")" ] || echo "$node $name"
        done < <(nap_cluster_etcdctl get --prefix --keys-only /nap/reservations/ | grep '/alice_hello_common@')
}
reservations_n() { # the reservations of alice_hello's instances, on every node
        nap_cluster_etcdctl get --prefix --keys-only /nap/reservations/ | grep -c '/alice_hello_common@'
}
settled() { # N: N assignments, each reported active, N units active
        [ "$(assignments_n)" = "$1" ] && [ "$(reports_active_n)" = "$1" ] && [ "$(units_active_n)" = "$1" ]
}
leader_to() { # N: host N's member leads (moved there if not)
        local id
        [ "$(nap_cluster_etcd_leader)" = "$1" ] && return 0
        id=$(nap_cluster_etcdctl member list | awk -F', ' -v h="h$1" '$3 == h { print $1 }')
        [ -n "$id" ] && nap_cluster_etcdctl move-leader "$id" >/dev/null 2>&1
        [ "$(nap_cluster_etcd_leader)" = "$1" ]
}
started_members() {
        nap_cluster_etcdctl member list | awk -F', ' '$2 == "started"' | grep -c .
}
answers() { # N URL: host N gets the instance's page from URL
        nap_cluster_exec "$1" curl -sf --max-time 3 "$2/" | grep -q '^hello from alice_hello_'
}
named_error() { # FILE: napctl --json's error object, with its name
        jq -e -r 'select(.error | test("^io\\.nap\\.[A-Za-z.]+$")) | .error' "$1" 2>/dev/null | head -n 1
}

# ================================================= the leader killed
watching_on_h1() { # PID: the process holds two connections to h1's member: its requests' and a watch's
        [ "$(nap_cluster_exec 2 ss -Htnp state established dst "$(nap_cluster_ip 1):2379" |
                grep -c "pid=$1,")" -ge 2 ]
}
nap_node_signal() { # N SIGNAL: SIGNAL to host N's nap-node
        nap_cluster_systemctl "$1" kill --signal="$2" nap-node.service
}

# start_with_leader_killed POINT REQUEST ARGS...: start-common ARGS from h2,
# stopped at POINT, h1's member (the leader) killed, and the start resumed.
# With HELD=N (host N the start's node), the kill lands during the wait
# for the report instead: N's nap-node stopped (SIGSTOP) before the start,
# the start resumed, h1's member killed once the start watches on it, and
# N's nap-node let go on (SIGCONT).
start_with_leader_killed() {
        local point=$1 request=$2 pid t0
        : >"$PAUSED"
        [ -z "${HELD:-}" ] || check "h$HELD's nap-node held (SIGSTOP)" nap_node_signal "$HELD" STOP
        nap_cluster_exec 2 env NAP_DEBUG_PAUSE_AT="$point" NAP_DEBUG_PAUSE_FILE="$PAUSED" \
                "$NAP_CLUSTER_NAPCTL" --user --no-helper --json start-common --request-id="$request" "${@:3}" \
                alice_hello >"$OUT" 2>"$ERR" &
        START_PID=$!
        if ! check "h2's start ($*) reaches $point" wait_until 120 paused_at "$point"; then
                diag "$(cat "$OUT" "$ERR")"
                return 1
        fi
        pid=$(paused_pid "$point")
        if [ -n "${HELD:-}" ]; then
                check "the start resumed" kill -USR1 "$pid"
                t0=$(now_ms)
                check "it waits for h$HELD's report on a watch on h1's member" wait_until 60 watching_on_h1 "$pid"
                check "h1's member killed (the leader, the one the start watches)" nap_cluster_etcd_kill 1
                check "h$HELD's nap-node let go on (SIGCONT)" nap_node_signal "$HELD" CONT
        else
                check "h1's member killed (the leader, h2's start's member)" nap_cluster_etcd_kill 1
                check "the start resumed" kill -USR1 "$pid"
                t0=$(now_ms)
        fi
        START_RC=0
        wait "$START_PID" || START_RC=$?
        START_MS=$(($(now_ms) - t0))
}

# leader_killed_case POINT REQUEST ARGS...: one case, checked
leader_killed_case() {
        local point=$1 request=$2 before_n before_c first="" again url name number k
        log "the etcd leader killed at $point${HELD:+ (during the wait)}: start-common ${*:3} from h2"
        check "h1's member leads" wait_until 60 leader_to 1
        before_n=$(assignments_n) before_c=$(counter)
        start_with_leader_killed "$@" || return 1
        # after the txn only the wait for the node's report is left, and
        # it goes on on another member: the call must answer
        [ "$point" != cluster-start:assigned ] ||
                assert_eq "the assignment was written before the kill: the call answered ($(cat "$ERR"))" 0 "$START_RC"
        log "from the resume to the call's end: $START_MS ms (exit $START_RC; undisturbed start from h2:" \
                "$BASE_MS ms, ratio $(awk -v a="$START_MS" -v b="$BASE_MS" 'BEGIN { printf "%.1f", a / b }'))"
        if [ "$START_RC" = 0 ]; then
                first=$(jq -r '"\(.instance) \(.url)"' "$OUT")
                ok "the call answered: $first"
                check "which serves (from h3)" wait_until 30 answers 3 "${first#* }"
        else
                k=$(named_error "$ERR")
                assert_match "the call failed with a named error (exit $START_RC: $(cat "$ERR"))" "$k" '^io\.nap\.'
        fi
        again=$(nap_cluster_napctl 2 --json start-common --request-id="$request" "${@:3}" alice_hello 2>&1 |
                jq -r '"\(.instance) \(.url)"')
        assert_match "the same call again (h1's member down): an instance and its URL" "$again" \
                '^alice_hello_common@[0-9]+ http://'
        [ -z "$first" ] || assert_eq "the first call's instance" "$first" "$again"
        name=${again%% *} url=${again#* } number=${name##*@}
        check "it serves (from h1)" wait_until 30 answers 1 "$url"
        assert_eq "one assignment made by the request" 1 "$(assigned_for "$request" | grep -c .)"
        assert_eq "the request's key names it" "$name" "$(etcd_get "/nap/requests/alice_hello/$request")"
        assert_eq "its number is the counter's next: never reused" "$((before_c + 1))" "$number"
        assert_eq "the counter moved by one" "$((before_c + 1))" "$(counter)"
        if ! check "one instance more: assignments, active reports and active units all $((before_n + 1))" \
                wait_until 60 settled $((before_n + 1)); then
                diag "assignments $(assignments_n), reports $(reports_active_n), units $(units_active_n)"
        fi
        assert_eq "one reservation per instance" "$((before_n + 1))" "$(reservations_n)"
        assert_eq "no reservation without its assignment" "" "$(orphan_reservations)"
        check "h1's member started again, healthy" nap_cluster_etcd_start 1 120
        check "every member healthy" wait_until 60 nap_cluster_etcd_all_healthy
        assert_eq "three members started" 3 "$(started_members)"
        check "one leader" nap_cluster_etcd_leader
}

# the baseline of the timings: a start from h2 with every member up
T0=$(now_ms)
out=$(nap_cluster_napctl 2 start-common --cluster --cpu=100m --memory=32M --request-id=baseline alice_hello 2>&1)
BASE_MS=$(($(now_ms) - T0))
assert_match "an undisturbed start-common --cluster from h2 ($BASE_MS ms)" "$out" '^alice_hello_common@1 http://'

# each start requests resources: its node reserves them when it realizes it
leader_killed_case cluster-start:placed placed-cluster --cluster --cpu=100m --memory=32M
leader_killed_case cluster-start:assigned assigned-node --node=h3 --cpu=100m --memory=32M
leader_killed_case cluster-start:assigned assigned-cluster --cluster --cpu=100m --memory=32M
leader_killed_case cluster-start:placed placed-node --node=h1 --cpu=100m --memory=32M
HELD=3 leader_killed_case cluster-start:assigned in-wait-node --node=h3 --cpu=100m --memory=32M

# ======================================= restart-app from any host
log "restart-app of an instance on h3 from h1 and h2"
I=$(assignments_json | jq -r 'select(.node == "h3") | "alice_hello_common@\(.number)"' | head -n 1)
main_pid() { # the main PID of $I's unit on h3
        nap_cluster_unit_main_pid 3 "$I.service"
}
assignment_of_i() { # FIELD of $I's assignment
        etcd_get "/nap/assignments/h3/$I" | jq -r ".$1"
}
report_of_i() { # "STATE GENERATION" of h3's report of $I
        etcd_get "/nap/observed/h3/$I" | jq -r '"\(.state) \(.generation)"'
}
started_on_h3() {
        nap_cluster_napctl 1 start-common --node=h3 --request-id=after-restart alice_hello >/dev/null 2>&1
}
through_managerd() { # N ARGS...: napctl in host N through its nap-managerd (varlink)
        nap_cluster_exec "$1" "$NAP_CLUSTER_NAPCTL" --user "${@:2}"
}
# restarted_once BEFORE_PID GENERATION HOW N: restart-app of $I from host
# N (HOW: nap_cluster_napctl, in process, or through_managerd), checked
restarted_once() {
        local out pid
        out=$("$3" "$4" restart-app "$I" 2>&1)
        assert_eq "restart-app $I (on h3) from h$4 by $3 ($out)" 0 $?
        assert_eq "its assignment's generation is $2" "$2" "$(assignment_of_i generation)"
        assert_eq "and the restart asked at it" "$2" "$(assignment_of_i restart)"
        assert_eq "h3 reported it active at that generation by the time restart-app returned" "active $2" \
                "$(report_of_i)"
        pid=$(main_pid)
        check "h3 restarted its unit (main PID $1 -> $pid)" test -n "$pid" -a "$pid" != 0 -a "$pid" != "$1"
        URL_I=$(nap_cluster_napctl 1 --json list-instances alice_hello |
                jq -r --arg i "$I" '.[] | select(.instance == $i) | .url')
        check "it answers at its URL" wait_until 30 answers 1 "$URL_I"
}
if [ -n "$I" ]; then
        GEN=$(assignment_of_i generation) PID0=$(main_pid)
        restarted_once "$PID0" $((GEN + 1)) nap_cluster_napctl 1
        PID1=$(main_pid)
        check "nap-managerd installed on h2" nap_cluster_managerd_install 2
        restarted_once "$PID1" $((GEN + 2)) through_managerd 2
        PID2=$(main_pid)
        check "h3's nap-node restarted" nap_cluster_systemctl 3 restart nap-node.service
        # a start on h3 realized: h3's first pass, over $I too, is done by then
        check "then a start-common --node=h3 from h1 (h3's realizer passed over $I)" started_on_h3
        assert_eq "a restart done once is not done again: the same main PID" "$PID2" "$(main_pid)"
        out=$(nap_cluster_napctl 1 restart-app alice_hello_common@999 2>&1)
        assert_eq "restart-app of an instance nowhere: NoSuchInstance (exit 4)" 4 $?
        assert_eq "nothing else changed: h3's report" "active $((GEN + 2))" "$(report_of_i)"
else
        fail "an instance on h3 to restart"
fi

log "wall time: $(($(now_ms) - T_START)) ms"
nap_summary
