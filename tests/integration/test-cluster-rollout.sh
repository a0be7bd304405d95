#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A rollout across hosts survives its deploying host's death
# (docs/ARCHITECTURE.md "Rollouts across hosts"), on three real hosts
# (cluster-lib.sh), each running the built nap-node under its own systemd,
# NodeTTL=3 and ReconcileGraceSec=5. An app with an instance on h2 and
# one on h3, deployed from h1 (one instance a batch, h2's first):
#
#   killed after the first batch: h1's deploy stopped at the named point
#   cluster-rollout:batch-active (h2's new instance answers, its old one
#   and h3's still run), the rollout's record in etcd, then h1 killed
#   hard (its cgroup, etcd member included). The reconciler's leader
#   finishes it (the app's record says the new commit, which passed its
#   health check on h1): within the grace and a few seconds, h2 and h3 run
#   the new version only, each answering as it does, the record gone, the
#   app's record at the new commit; the deploy repeated (from h2) then
#   changes nothing, twice
#
#   killed rolling back: h1 back, a version failing on h3 deployed from h1,
#   stopped at cluster-rollout:rolling-back (h2 already runs the failing
#   version, h3 its old one beside the failed one), h1 killed hard. The
#   leader rolls it back: h2 and h3 run the previous version only,
#   answering as it does, the record gone, the app's record back at the
#   previous commit
#
#   NAPCTL=build/cli/napctl NAP_GENERATOR=build/generators/nap-generator \
#   NAP_BUILD_ROOT=build tests/integration/test-cluster-rollout.sh

. "$(dirname "$0")/cluster-lib.sh"

[ -n "${NAP_CLUSTER_INSIDE:-}" ] || nap_napctl_env
nap_cluster_enter "$@"
nap_cluster_up 3
log "3 hosts up in $NAP_CLUSTER_UP_MS ms"
TTL=3
GRACE=5
nap_cluster_agents "$(printf 'CPU=2\nMemory=1G\nStorage=10G\nNodeTTL=%s\nReconcileGraceSec=%s\nRolloutBatch=1' \
        "$TTL" "$GRACE")" || { echo "Bail out! cannot copy nap-node and napctl"; exit 1; }

quiet() { "$@" >/dev/null 2>&1; }
etcd_value() { # KEY
        nap_cluster_etcdctl get --print-value-only "$1"
}
ready() { # NAME: the node is Ready (a membership)
        [ -n "$(etcd_value "/nap/members/$1")" ]
}
REPO=$(nap_cluster_hello_repo roll r1) || { echo "Bail out! cannot make the app's repository"; exit 1; }
commit_of() { git -C "$REPO" rev-parse HEAD; }
new_commit() { # GREETING: a new commit of the app answering GREETING
        sed -i "s/{greeting=[a-z0-9]*}/{greeting=$1}/" "$REPO/profile" &&
                git -C "$REPO" commit -qam "greeting $1"
}
assignments() { nap_cluster_assignments alice_roll; }
nodes_at() { nap_cluster_nodes_at alice_roll "$1"; } # COMMIT
# all_answer COMMIT GREETING: each assignment reported active at COMMIT on
# its node, answering GREETING (asked from h2)
all_answer() {
        local node number report port
        while read -r node number _; do
                report=$(etcd_value "/nap/observed/$node/alice_roll_common@$number")
                [ "$(jq -r '"\(.state) \(.commit)"' <<<"$report")" = "active $1" ] || return 1
                port=$(jq -r .port <<<"$report")
                [ "$(nap_cluster_exec 2 curl -sf --max-time 3 "http://$(nap_cluster_ip "${node#h}"):$port/")" = \
                        "$2 from alice_roll_$number on port $port" ] || return 1
        done < <(assignments)
}
running() { # N: alice_roll's instances host N runs, sorted, one line (list-instances lists every node's)
        nap_cluster_napctl "$1" --json list-instances alice_roll 2>/dev/null |
                jq -r --arg node "h$1" '.[] | select(.node == $node and .active_state != "failed") | .instance' |
                sort | tr '\n' ' '
}
# assigned_only: h2 and h3 run exactly the instances assigned to them
assigned_only() {
        local n want
        for n in 2 3; do
                want=$(assignments | awk -v h="h$n" '$1 == h { print "alice_roll_common@" $2 }' | sort | tr '\n' ' ')
                [ "$(running "$n")" = "$want" ] || return 1
        done
}
rollout_gone() { [ -z "$(etcd_value /nap/rollouts/alice_roll)" ]; }
paused_at() { # POINT: h1's deploy stopped there
        grep -q "^$1 " "$PAUSE" 2>/dev/null
}
# deploy_killed_at POINT: the deploy from h1, part of h1, stopped at POINT;
# then h1 killed hard (its etcd member not leading, so the cluster keeps
# its quorum without an election)
deploy_killed_at() {
        : >"$PAUSE"
        nap_cluster_exec_in_cgroup 1 env NAP_DEBUG_PAUSE_AT="$1" NAP_DEBUG_PAUSE_FILE="$PAUSE" \
                "$NAP_CLUSTER_NAPCTL" --user --no-helper deploy-app alice_roll "$REPO" >"$NAP_CLUSTER_DIR/deploy.out" 2>&1 &
        disown
        if ! check "h1's deploy reaches $1" wait_until 120 paused_at "$1"; then
                diag "$(cat "$NAP_CLUSTER_DIR/deploy.out")" "$(assignments)"
                return 1
        fi
        RECORD=$(etcd_value /nap/rollouts/alice_roll)
        check "h1's etcd member does not lead" nap_cluster_etcd_leader_off 1
        check "h1 killed" nap_cluster_host_kill 1
        KILLED=$(now_ms)
}
PAUSE=$NAP_CLUSTER_DIR/pause
# done_in_time HOW: the leader has finished h1's rollout (its record gone),
# HOW (finished, rolled back), within the grace and a few seconds of the kill
done_in_time() {
        local elapsed
        if ! check "the rollout is $1 (its record gone)" wait_until 60 rollout_gone; then
                diag "$(etcd_value /nap/rollouts/alice_roll)" "$(assignments)"
        fi
        elapsed=$(($(now_ms) - KILLED))
        log "h1 killed → the reconciler's leader $1 its rollout: $elapsed ms (NodeTTL $TTL s, grace $GRACE s)"
        check "within the grace and a few seconds ($elapsed ms ≤ $(((GRACE + 15) * 1000)))" \
                test "$elapsed" -le $(((GRACE + 15) * 1000))
}

for n in 1 2 3; do
        check "nap-node runs on h$n" nap_cluster_unit_install "$n" nap-node.service "$NAP_CLUSTER_NODE_UNIT"
        check "h$n is Ready" wait_until 60 ready "h$n"
done
R1=$(commit_of)
check "alice_roll deployed on h1" quiet nap_cluster_napctl 1 deploy-app alice_roll "$REPO"
for n in 2 3; do
        check "an instance of it on h$n" nap_cluster_napctl 1 start-common --node=h$n alice_roll
done
assert_eq "one on h2, one on h3, at the first commit" "h2 h3 " "$(nodes_at "$R1")"
check "each answers" wait_until 30 all_answer "$R1" r1

# ================================================= killed after the first batch
log "h1 killed after the first batch of a rollout"
new_commit r2
R2=$(commit_of)
OLD=$(assignments | awk '{ print $2 }' | tr '\n' ' ')
deploy_killed_at cluster-rollout:batch-active
assert_eq "the rollout's record: rolling from h1, R1 to R2, the two old instances" \
        "rolling h1 $R1 $R2 false $OLD" \
        "$(jq -r '"\(.phase) \(.node) \(.from) \(.to) \(.takenOver) \([.old[].number | tostring] | join(" ")) "' \
                <<<"$RECORD")"
assert_eq "when h1 died, h2 ran both versions, h3 the old one" "2 1" \
        "$(assignments | awk '$1 == "h2" { h2++ } $1 == "h3" { h3++ } END { print h2, h3 }')"
done_in_time finished
assert_eq "every assignment at the new commit, on h2 and h3" "h2 h3 " "$(nodes_at "$R2")"
check "each answers as the new commit does" wait_until 30 all_answer "$R2" r2
if ! check "h2 and h3 run exactly their assignments (the old instances gone)" wait_until 30 assigned_only; then
        diag "h2: $(running 2)" "h3: $(running 3)" "$(assignments)"
fi
assert_eq "the app's record at the new commit" "$R2" "$(etcd_value /nap/apps/alice_roll | jq -r .commit)"
AFTER=$(assignments)
for i in 1 2; do
        check "the deploy repeated from h2 ($i) succeeds" quiet nap_cluster_napctl 2 deploy-app alice_roll "$REPO"
        assert_eq "and changes nothing ($i)" "$AFTER" "$(assignments)"
        check "no rollout record ($i)" rollout_gone
done

# ======================================================== killed rolling back
log "h1 back; killed while rolling back a version failing on h3"
check "h1 boots" nap_cluster_host_start 1
check "its nap-node starts" nap_cluster_unit_wait_active 1 nap-node.service 60
check "h1 is Ready" wait_until 60 ready h1
sed -i 's/^import time$/import time\nif os.uname().nodename == "h3":\n    sys.exit("this version fails on h3")/' \
        "$REPO/server.py"
new_commit r3
R3=$(commit_of)
BEFORE=$(assignments)
deploy_killed_at cluster-rollout:rolling-back
assert_eq "the rollout's record: rolling back from h1, R2 to R3" "rolling-back h1 $R2 $R3" \
        "$(jq -r '"\(.phase) \(.node) \(.from) \(.to)"' <<<"$RECORD")"
assert_eq "when h1 died, h2 ran R3 only (its R2 instance withdrawn), h3 R2 and R3" \
        "$(printf 'h2 %s\nh3 %s\nh3 %s\n' "$R3" "$R2" "$R3" | sort | tr '\n' ' ')" \
        "$(assignments | awk '{ print $1, $3 }' | sort | tr '\n' ' ')"
done_in_time "rolled back"
assert_eq "every assignment back at the previous commit, on h2 and h3" "h2 h3 " "$(nodes_at "$R2")"
assert_eq "h3's instance was never replaced" "$(awk '$1 == "h3" { print $2 }' <<<"$BEFORE")" \
        "$(assignments | awk '$1 == "h3" { print $2 }')"
check "each answers as the previous commit does" wait_until 30 all_answer "$R2" r2
if ! check "h2 and h3 run exactly their assignments (R3's gone)" wait_until 30 assigned_only; then
        diag "h2: $(running 2)" "h3: $(running 3)" "$(assignments)"
fi
assert_eq "the app's record back at the previous commit" "$R2" "$(etcd_value /nap/apps/alice_roll | jq -r .commit)"

nap_summary
