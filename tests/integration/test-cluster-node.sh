#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The node inventory on three real hosts (cluster-lib.sh: network
# namespaces, a user manager and an etcd member each, one 3-member etcd
# cluster), each running the built nap-node under its own systemd:
#
#   all three register and are Ready with their capacity; every host sees
#   the same inventory
#   a host killed hard: NotReady within NodeTTL + 1 s, a live agent notes
#   why; the host back: its agent registers again, one record (and the
#   same for the host leading etcd, within NodeTTL + 5 s: see below)
#   nap-node alone SIGKILLed: the same
#   a clean stop: the record is gone
#   a reservation storm from all three hosts against room for exactly 50,
#   the etcd leader killed in the middle: every client retries until it
#   has an answer; exactly 50 granted, each granted one in etcd once, the
#   node's usage their sum
#
#   NAPCTL=build/cli/napctl NAP_GENERATOR=build/generators/nap-generator \
#   NAP_BUILD_ROOT=build tests/integration/test-cluster-node.sh

. "$(dirname "$0")/cluster-lib.sh"

[ -n "${NAP_CLUSTER_INSIDE:-}" ] || nap_napctl_env
nap_cluster_enter "$@"
nap_cluster_up 3
log "3 hosts up in $NAP_CLUSTER_UP_MS ms"

TTL=3
for n in 1 2 3; do
        printf 'CPU=2\nMemory=1G\nStorage=10G\nNodeTTL=%s\nLabels=zone=z%s\n' "$TTL" "$n" >>"$(nap_cluster_config "$n")"
done
NODE=$(nap_cluster_copy_bin "$NAP_BUILD_ROOT/helpers/nap-node") || { echo "Bail out! cannot copy nap-node"; exit 1; }
NAPCTL_COPY=$(nap_cluster_copy_bin "$NAPCTL") || { echo "Bail out! cannot copy napctl"; exit 1; }
# The unit as installed, running this build's agent.
UNIT=$(sed "s|^ExecStart=.*|ExecStart=$NODE|" "$NAP_BUILD_ROOT/units/nap-node.service")

napctl_on() { # N ARGS...: napctl in host N, in process, with its nap.conf
        nap_cluster_exec "$1" "$NAPCTL_COPY" --user --no-helper "${@:2}"
}
# inventory N: every node as host N sees it, one line each
inventory() {
        napctl_on "$1" --json nodes 2>&1 |
                jq -r '.[] | "\(.name) \(.ready) \(.cpu_milli_core) \(.memory_bytes) \(.labels.zone)"' 2>&1
}
ready_as_seen_by() { # N NODE true|false
        [ "$(napctl_on "$1" --json nodes 2>/dev/null | jq -r ".[] | select(.name == \"$2\") | .ready")" = "$3" ]
}

# ================================================================ register
log "registration"
for n in 1 2 3; do
        check "nap-node runs on h$n (Type=notify: Ready once registered)" \
                nap_cluster_unit_install "$n" nap-node.service "$UNIT"
done
expected="h1 true 2000 1073741824 z1
h2 true 2000 1073741824 z2
h3 true 2000 1073741824 z3"
for n in 1 2 3; do
        assert_eq "h$n sees all three Ready with their capacity and labels" "$expected" "$(inventory "$n")"
done

# =========================================================== a host dies
# A host that is not etcd's leader first: its membership lapses on the
# lease's own clock. (When the dying host also led etcd, etcd extends every
# lease on the leader change; that case is measured below.)
LEADER=$(nap_cluster_etcd_leader)
K=2
[ "$LEADER" = 2 ] && K=3
W=$((K == 2 ? 3 : 2)) # a witness that stays up
log "h$K killed hard (etcd's leader is h$LEADER)"
nap_cluster_host_kill "$K"
T0=$(now_ms)
wait_until $((TTL + 5)) ready_as_seen_by 1 "h$K" false
T1=$(now_ms)
check "h$K NotReady $((T1 - T0)) ms after the kill (NodeTTL=$TTL s: limit $(((TTL + 1) * 1000)) ms)" \
        test $((T1 - T0)) -le $(((TTL + 1) * 1000))
log "host killed → NotReady: $((T1 - T0)) ms"
noted() { [ "$(napctl_on "$W" --json nodes | jq -r ".[] | select(.name == \"h$K\") | .reason")" != null ]; }
check "a live agent noted why" wait_until 5 noted
assert_contains "the reason, from h$W's view" "$(napctl_on "$W" node show "h$K")" "membership lease expired"
check "h1 and h$W stay Ready" ready_as_seen_by "$W" h1 true
nap_cluster_host_start "$K"
check "h$K's agent comes back with the host (enabled)" nap_cluster_unit_wait_active "$K" nap-node.service 60
check "h$K Ready again" wait_until 10 ready_as_seen_by 1 "h$K" true
assert_eq "one record per node" "$expected" "$(inventory "$K")"

# The host leading etcd: a new leader is elected first, and etcd's new
# leader gives every lease its full TTL again (lessor promotion), so the
# node lapses about an election later. Measured, bounded loosely.
LEADER=$(nap_cluster_etcd_leader)
W=$((LEADER == 1 ? 2 : 1))
log "h$LEADER killed hard, etcd's leader"
nap_cluster_host_kill "$LEADER"
T0=$(now_ms)
wait_until $((TTL + 10)) ready_as_seen_by "$W" "h$LEADER" false
T1=$(now_ms)
check "h$LEADER NotReady $((T1 - T0)) ms after the kill (limit $(((TTL + 5) * 1000)) ms)" \
        test $((T1 - T0)) -le $(((TTL + 5) * 1000))
log "etcd leader's host killed → NotReady: $((T1 - T0)) ms"
nap_cluster_host_start "$LEADER"
check "h$LEADER's agent comes back" nap_cluster_unit_wait_active "$LEADER" nap-node.service 60
check "Ready again" wait_until 10 ready_as_seen_by "$W" "h$LEADER" true

# ====================================================== the agent alone
log "nap-node SIGKILLed on h3 (not restarted)"
nap_cluster_exec 3 mkdir -p "$(nap_cluster_dir 3)/home/.config/systemd/user/nap-node.service.d"
printf '[Service]\nRestart=no\n' >"$(nap_cluster_dir 3)/home/.config/systemd/user/nap-node.service.d/norestart.conf"
nap_cluster_systemctl 3 daemon-reload
nap_cluster_systemctl 3 kill -s SIGKILL nap-node.service
T0=$(now_ms)
wait_until $((TTL + 5)) ready_as_seen_by 2 h3 false
T1=$(now_ms)
check "h3 NotReady $((T1 - T0)) ms after its agent's SIGKILL (limit $(((TTL + 1) * 1000)) ms)" \
        test $((T1 - T0)) -le $(((TTL + 1) * 1000))
log "agent killed → NotReady: $((T1 - T0)) ms"
check "restarted: Ready again" nap_cluster_systemctl 3 start nap-node.service
check "seen by h1" wait_until 10 ready_as_seen_by 1 h3 true

# ============================================================= leaving
log "clean stop of h3's agent"
check "systemctl stop" nap_cluster_systemctl 3 stop nap-node.service
assert_eq "h3 is gone from the inventory" "" "$(inventory 1 | grep '^h3 ')"
check "and comes back on start" nap_cluster_systemctl 3 start nap-node.service
check "Ready" wait_until 10 ready_as_seen_by 1 h3 true

# ============================================ reservations and a leader kill
log "100 reservations from three hosts for room for 50, the etcd leader killed meanwhile"
RESULTS=$NAP_CLUSTER_DIR/storm
mkdir -p "$RESULTS"
# reserve N I: alice_rI on h1 from host N, retried while the answer is
# not definitive (etcd changing leaders): exit 0 granted, 1 with
# InsufficientResources refused; anything else is tried again.
reserve() {
        local out
        for _ in $(seq 60); do
                out=$(napctl_on "$1" reserve compute h1 "root_r$2" --cpu=40m 2>&1) && { echo granted >"$RESULTS/$2"; return; }
                case $out in *"has not enough cpu_milli"*) echo refused >"$RESULTS/$2"; return ;; esac
                echo "$out" >>"$RESULTS/$2.retries"
                sleep 0.2
        done
        echo "gave up: $out" >"$RESULTS/$2"
}
pids=()
for i in $(seq 0 99); do
        reserve $((i % 3 + 1)) "$i" &
        pids+=($!)
        if [ "$i" -eq 30 ]; then
                LEADER=$(nap_cluster_etcd_leader)
                nap_cluster_etcd_kill "$LEADER"
                log "killed etcd's leader (h$LEADER) after 30 clients started"
        fi
done
wait "${pids[@]}"
nap_cluster_etcd_start "$LEADER"
granted=$(grep -lx granted "$RESULTS"/* 2>/dev/null | wc -l)
refused=$(grep -lx refused "$RESULTS"/* 2>/dev/null | wc -l)
retried=$(ls "$RESULTS"/*.retries 2>/dev/null | wc -l)
log "granted $granted, refused $refused, $retried clients had to retry"
assert_eq "every client got a definitive answer" 100 $((granted + refused))
assert_eq "exactly 50 granted" 50 "$granted"
held=$(nap_cluster_etcdctl get --prefix --keys-only /nap/reservations/h1/compute/ | grep . | sort)
assert_eq "etcd holds exactly the 50 granted" 50 "$(grep -c . <<<"$held")"
wanted=$(for f in $(grep -lx granted "$RESULTS"/*); do echo "/nap/reservations/h1/compute/root_r$(basename "$f")"; done | sort)
assert_eq "the very ones granted: none lost, none extra" "" "$(comm -3 <(echo "$wanted") <(echo "$held"))"
assert_eq "h1's usage is their sum (none counted twice)" "2000" \
        "$(napctl_on 2 --json node show h1 | jq -r '.node.used_cpu_milli_core')"

nap_summary
