#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Cluster apps, the foundation (docs/ARCHITECTURE.md "Cluster apps"), on
# three real hosts (cluster-lib.sh), each running the built nap-node under
# its own systemd and the sample app deployed (trees do not travel yet):
#
#   an assignment written for h2: h2's manager runs the instance, h2
#   reports it active with its port, and it answers over HTTP from h1's
#   network namespace; h1 and h3 run nothing
#   the assignment deleted: h2 stops and removes the instance, and its
#   observed record goes
#   nap-node SIGKILLed in the middle of realizing an assignment (stopped at
#   a named point: after the instance's manifest, and before its tree):
#   restarted, it finishes, and exactly one instance of that number runs
#   an assignment at a commit not deployed there is reported failed, with
#   why, and touches nothing; one for a node that does not exist is refused
#   by name and writes nothing
#   napctl start-common --node=h1 on h3 (in process, and through h3's
#   nap-managerd): the instance on that node, its URL, and a node that does
#   not exist refused; remove-instance on the node takes the assignment
#   with it (else nap-node would make the instance again)
#   (assignments are made through lib/cluster: the per-app counter gives
#   1, 2, 3, … across hosts)
#
#   NAPCTL=build/cli/napctl NAP_GENERATOR=build/generators/nap-generator \
#   NAP_BUILD_ROOT=build tests/integration/test-cluster-apps.sh

. "$(dirname "$0")/cluster-lib.sh"

if [ -z "${NAP_CLUSTER_INSIDE:-}" ]; then
        nap_napctl_env
        NAP_ASSIGN=$(realpath "${NAP_ASSIGN:-$NAP_BUILD_ROOT/tests/integration/assign}")
        export NAP_ASSIGN
fi
nap_cluster_enter "$@"
T_START=$(now_ms)
TTL=3
nap_cluster_apps_up 3 "$TTL" || { echo "Bail out! cannot prepare the hosts"; exit 1; }
NAPCTL_COPY=$NAP_CLUSTER_NAPCTL UNIT=$NAP_CLUSTER_NODE_UNIT
PAUSED=$NAP_CLUSTER_DIR/paused

quiet() { # CMD...: CMD, its output dropped
        "$@" >/dev/null 2>&1
}
napctl_on() { # N ARGS...: napctl in host N, in process, with its nap.conf
        nap_cluster_exec "$1" "$NAPCTL_COPY" --user --no-helper "${@:2}"
}

# ------------------------------------------------------------- the app
COMMIT=$(git -C "$NAP_CLUSTER_DIR/repos/hello" rev-parse HEAD)
for n in 1 2 3; do
        check "alice_hello deployed on h$n" quiet napctl_on "$n" deploy-app alice_hello "$NAP_CLUSTER_DIR/repos/hello"
        check "nap-node runs on h$n" nap_cluster_unit_install "$n" nap-node.service "$UNIT"
done

# ---------------------------------------------------------- helpers
# assign NODE EXPECTED [COMMIT]: an assignment of alice_hello to NODE
# (greeting=cluster), made on h1 through lib/cluster (tests/integration/
# assign.c: napctl has no verb for it yet); it must get instance number
# EXPECTED from the app's counter.
assign() {
        local out
        out=$(nap_cluster_exec 1 "$NAP_ASSIGN" create "$1" alice_hello greeting=cluster "${3:-$COMMIT}" 2>&1)
        [ "$out" = "alice_hello_common@$2" ] || { echo "assign: $out" >&2; return 1; }
}
unassign() { # NODE NUMBER
        nap_cluster_exec 3 "$NAP_ASSIGN" delete "$1" "alice_hello_common@$2" >/dev/null
}
observed() { # NODE NUMBER: the observed record's JSON ("" if none)
        nap_cluster_etcdctl get --print-value-only "/nap/observed/$1/alice_hello_common@$2"
}
observed_is() { # NODE NUMBER STATE
        [ "$(observed "$1" "$2" | jq -r .state 2>/dev/null)" = "$3" ]
}
observed_gone() { # NODE NUMBER
        [ -z "$(observed "$1" "$2")" ]
}
unit_state() { # N NUMBER
        nap_cluster_systemctl "$1" is-active "alice_hello_common@$2.service" 2>/dev/null
}
instances_on() { # N: the instances host N runs (its own list, not the cluster's), one a line (or why not)
        local out
        out=$(napctl_on "$1" --json list-instances alice_hello 2>&1) || { echo "napctl failed: $out"; return; }
        jq -r --arg node "h$1" '.[] | select(.node == $node and .active_state != "failed") | .instance' <<<"$out" 2>&1
}
answer_from() { # N URL: the body host N's namespace gets from URL
        nap_cluster_exec "$1" curl -sf --max-time 3 "$2"
}
assignment_gone() { # NODE NUMBER: the assignment is gone
        [ -z "$(nap_cluster_etcdctl get --print-value-only "/nap/assignments/$1/alice_hello_common@$2")" ]
}
no_instance() { # N NUMBER: host N has neither the unit running nor its manifest
        [ "$(unit_state "$1" "$2")" != active ] &&
                [ ! -e "$(nap_cluster_dir "$1")/instances/alice_hello_common@$2.json" ]
}

# ====================================================== assigned to h2
log "an assignment for h2"
# made on h1 and waited for there, as start-common --node will
T0=$(now_ms)
out=$(nap_cluster_exec 1 "$NAP_ASSIGN" start h2 alice_hello greeting=cluster "$COMMIT" 2>&1)
log "assignment made on h1 → h2's report of it active, seen on h1: $(($(now_ms) - T0)) ms"
assert_match "h1 gets the instance and its URL on h2" "$out" \
        "^alice_hello_common@1 http://$(nap_cluster_ip 2 | sed 's/\./\\./g'):202[0-9][0-9]\$"
if ! check "h2 reports alice_hello_common@1 active" observed_is h2 1 active; then
        diag "$(observed h2 1)" "$(nap_cluster_exec 2 journalctl --no-pager -q --user-unit nap-node.service -n 30 -o cat)"
fi
report=$(observed h2 1)
PORT=$(jq -r .port <<<"$report")
assert_match "with a port of h2's PortRange=" "$PORT" '^202[0-9][0-9]$'
assert_eq "and the commit assigned" "$COMMIT" "$(jq -r .commit <<<"$report")"
assert_eq "h2's manager runs the unit" active "$(unit_state 2 1)"
check "the observed record is on h2's membership lease" \
        test "$(nap_cluster_etcdctl get -w json /nap/observed/h2/alice_hello_common@1 | jq -r '.kvs[0].lease')" != null
URL=http://$(nap_cluster_ip 2):$PORT/
assert_eq "the URL h1 got is the one reported" "$URL" "${out#* }/"
assert_eq "it answers over HTTP from h1's namespace" "cluster from alice_hello_1 on port $PORT" "$(answer_from 1 "$URL")"
assert_eq "h2 lists just it" alice_hello_common@1 "$(instances_on 2)"
assert_eq "h1 runs nothing" "" "$(instances_on 1)"
assert_eq "h3 runs nothing" "" "$(instances_on 3)"

# ==================================================== the assignment goes
log "the assignment deleted"
T0=$(now_ms)
check "assignment deleted" unassign h2 1
check "h2's observed record goes" wait_until 30 observed_gone h2 1
log "assignment deleted → report gone: $(($(now_ms) - T0)) ms"
check "h2 stopped and removed the instance" wait_until 10 no_instance 2 1
assert_eq "h2 lists no instance" "" "$(instances_on 2)"
not_answering() { ! answer_from "$@"; }
check "it no longer answers" not_answering 1 "$URL"

# ================================================ nap-node killed midway
# kill_at POINT NUMBER: nap-node on h2 stopped at POINT while realizing
# alice_hello_common@NUMBER, SIGKILLed there ("": right after the
# assignment is written, wherever it is), restarted (Restart=) without the
# pause: it finishes, exactly one instance of that number runs.
paused_at() {
        grep -q "^$1 " "$PAUSED" 2>/dev/null
}
pause_at() { # POINT: nap-node on h2 restarted to stop there
        rm -f "$PAUSED"
        nap_cluster_systemctl 2 set-environment "NAP_DEBUG_PAUSE_AT=$1" "NAP_DEBUG_PAUSE_FILE=$PAUSED"
        check "nap-node restarted with the pause at $1" nap_cluster_systemctl 2 restart nap-node.service
        nap_cluster_systemctl 2 unset-environment NAP_DEBUG_PAUSE_AT NAP_DEBUG_PAUSE_FILE
}
kill_at() {
        local point=$1 number=$2
        [ -z "$point" ] || pause_at "$point"
        check "assignment alice_hello_common@$number written" assign h2 "$number"
        if [ -n "$point" ] && ! check "nap-node reached $point" wait_until 60 paused_at "$point"; then
                diag "$(nap_cluster_exec 2 journalctl --no-pager -q --user-unit nap-node.service -n 20 -o cat)"
                return 1
        fi
        # the restarts of this test come faster than systemd's start limit
        nap_cluster_systemctl 2 reset-failed nap-node.service
        check "SIGKILL nap-node at ${point:-once the assignment is written}" \
                nap_cluster_systemctl 2 kill -s SIGKILL nap-node.service
        T0=$(now_ms)
        check "systemd restarts it" nap_cluster_unit_wait_active 2 nap-node.service 30
        check "alice_hello_common@$number reported active after the restart" wait_until 60 observed_is h2 "$number" active
        log "killed at ${point:-the write} → active after the restart: $(($(now_ms) - T0)) ms"
        local port
        port=$(observed h2 "$number" | jq -r .port)
        assert_eq "exactly one instance on h2, that one" "alice_hello_common@$number" "$(instances_on 2)"
        assert_eq "one manifest of it" 1 "$(find "$(nap_cluster_dir 2)/instances" -name "alice_hello_common@$number.json" | wc -l)"
        assert_eq "one tree of it, no leftovers" "alice_hello_$number" \
                "$(ls "$(nap_cluster_dir 2)/root/apps/alice" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')"
        assert_eq "it answers from h1" "cluster from alice_hello_$number on port $port" \
                "$(answer_from 1 "http://$(nap_cluster_ip 2):$port/")"
        check "unassigned: removed again" unassign h2 "$number"
        check "and its report gone" wait_until 30 observed_gone h2 "$number"
        check "and its instance" wait_until 10 no_instance 2 "$number"
}
log "nap-node SIGKILLed after the instance's manifest"
kill_at start-common:manifest 2
log "nap-node SIGKILLed before the instance's tree"
kill_at start-common:reserved 3
log "nap-node SIGKILLed right after an assignment is written"
kill_at "" 4

# ======================================================= refused, named
log "an assignment h3 cannot realize"
check "assignment at a commit h3 has not deployed" assign h3 5 0000000000000000000000000000000000000000
check "h3 reports it failed" wait_until 30 observed_is h3 5 failed
assert_contains "and why" "$(observed h3 5 | jq -r .reason)" "is deployed here at $COMMIT"
assert_eq "h3 made nothing" "" "$(instances_on 3)"
check "unassigned" unassign h3 5
check "its report goes" wait_until 30 observed_gone h3 5
refused=$(nap_cluster_exec 1 "$NAP_ASSIGN" create h9 alice_hello 2>&1)
assert_eq "an assignment to a node that does not exist: refused, named" "NoSuchNode: No node h9" "$refused"
assert_eq "and nothing written: the counter unmoved" 5 "$(nap_cluster_etcdctl get --print-value-only /nap/counters/alice_hello)"

# ================================================ napctl start-common --node
log "napctl start-common --node=h1 on h3"
T0=$(now_ms)
out=$(napctl_on 3 start-common --node=h1 alice_hello greeting=node 2>&1)
log "start-common --node=h1 on h3 → answered: $(($(now_ms) - T0)) ms"
assert_match "it answers with the instance and its URL on h1" "$out" \
        "^alice_hello_common@6 http://$(nap_cluster_ip 1 | sed 's/\./\\./g'):201[0-9][0-9]\$"
assert_eq "which answers from h3" "node from alice_hello_6 on port ${out##*:}" "$(answer_from 3 "${out#* }/")"
check "h1 reports it active" observed_is h1 6 active
assert_eq "h1 runs it" alice_hello_common@6 "$(instances_on 1)"
assert_eq "h3 does not" "" "$(instances_on 3)"
out=$(napctl_on 3 start-common --node=h9 alice_hello 2>&1)
rc=$?
assert_eq "--node of a node that does not exist: refused (NoSuchNode: exit 4)" "4 napctl: No node h9" "$rc $out"
check "remove-instance on h1" quiet napctl_on 1 remove-instance alice_hello_common@6
check "takes its assignment with it" assignment_gone h1 6
check "and it is not made again" no_instance 1 6
check "its report goes" wait_until 30 observed_gone h1 6
check "still not made again" no_instance 1 6
check "nap-managerd installed on h3" nap_cluster_managerd_install 3
out=$(nap_cluster_exec 3 "$NAPCTL_COPY" --user start-common --node=h2 alice_hello 2>&1)
assert_match "through h3's nap-managerd (varlink): on h2" "$out" \
        "^alice_hello_common@7 http://$(nap_cluster_ip 2 | sed 's/\./\\./g'):202[0-9][0-9]\$"
assert_eq "which answers from h1" "hello from alice_hello_7 on port ${out##*:}" "$(answer_from 1 "${out#* }/")"
check "unassigned" unassign h2 7
check "h2 removes it" wait_until 30 no_instance 2 7

log "wall time: $(($(now_ms) - T_START)) ms"
nap_summary
