#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# nap-node and the inventory on one host: the real agent under a real
# systemd user manager (Type=notify, watchdog), a real etcd, and the
# inventory's methods through nap-managerd over varlink. Two agents play
# two nodes (h1, h2) of one cluster. What three real hosts add (a host
# killed whole, a partition, etcd as a 3-member cluster) is
# test-cluster-node.sh's.
#
#   registration: Ready with its capacity; the membership on a lease
#   SIGKILL of an agent: NotReady within NodeTTL + 1 s, the other agent
#     notes why and since when; a restart: Ready again, one record
#   clean stop: the record goes, then the membership
#   authorization: reading for anyone, nodes root's, a reservation its user's
#   start-common with cpu/memory: systemd's resource control, a reservation
#     on the node named as the instance, released by remove-instance; a
#     request that does not fit changes nothing

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../etcd-lib.sh"

nap_napctl_env
[ -n "${NAP_SANDBOX_INSIDE:-}" ] || [ -x "$ETCD_BIN" ] || skip_all "no $ETCD_BIN (Debian's etcd-server)"
SRC=$NAP_SOURCE_ROOT
nap_sandbox_enter "$@"
nap_sandbox_start
nap_users_setup || { echo "Bail out! cannot set up the test users"; exit 1; }
chmod 0711 "$XDG_RUNTIME_DIR" # other uids reach the socket, as /run/nap
. "$(dirname "$0")/napctl-lib.sh"
trap 'nap__rc=$?; etcd_stop; (exit $nap__rc); nap_sandbox_stop' EXIT

TTL=3
M=io.nap.Manager
etcd_start "$NAP_TEST_DIR/etcd" || { echo "Bail out! etcd did not start"; exit 1; }
cat >>"$NAP_CONFIG" <<EOF
Etcd=$ETCD_URL
Node=h1
CPU=2
Memory=1G
Storage=10G
NodeTTL=$TTL
EOF
# h2: the same cluster, another node name
sed 's/^Node=h1$/Node=h2/; s/^CPU=2$/CPU=1/' "$NAP_CONFIG" >"$NAP_TEST_DIR/nap-h2.conf"
nap_managerd_install || { echo "Bail out! cannot install nap-managerd"; exit 1; }

etcd_keys() { # PREFIX: the keys under it
        ETCDCTL_API=3 timeout 10 etcdctl --endpoints="$ETCD_URL" get --prefix --keys-only "$1" 2>/dev/null | grep .
}

# agent_install NAME CONFIG: nap-node.service as the user unit NAME, this
# build's binary, restarted by nobody (the test kills and starts it).
agent_install() {
        local dir=$XDG_RUNTIME_DIR/systemd/user bin=$NAP_TEST_DIR/bin/nap-node
        mkdir -p "$NAP_TEST_DIR/bin" "$dir/$1.service.d" && cp "$NAP_BUILD_ROOT/helpers/nap-node" "$bin" &&
                cp "$NAP_BUILD_ROOT/units/nap-node.service" "$dir/$1.service" || return 1
        printf '[Service]\nExecStart=\nExecStart=%s\nEnvironment=NAP_CONFIG=%s\nRestart=no\n' "$bin" "$2" \
                >"$dir/$1.service.d/50-test.conf"
        timeout 30 systemctl --user daemon-reload
}
agent_prop() { timeout 30 systemctl --user show -P "$2" "$1.service" 2>&1; }

# node_field NODE JQ: from ListNodes as root
node_field() {
        varlink_call_out $M.ListNodes '{}'
        printf '%s\n' "$OUT" | tail -n 1 | jq -r ".parameters.nodes[] | select(.name == \"$1\") | $2" 2>&1
}
node_ready() { [ "$(node_field "$1" .ready)" = "$2" ]; }

# ================================================================ register
log "registration"
agent_install nap-node "$NAP_CONFIG" && agent_install nap-node-h2 "$NAP_TEST_DIR/nap-h2.conf" ||
        { echo "Bail out! cannot install the agents"; exit 1; }
T0=$(now_ms)
check "systemctl start returns once registered (Type=notify)" timeout 30 systemctl --user start nap-node.service
check "the agent is active" test "$(agent_prop nap-node ActiveState)" = active
check "its status says so" test "$(agent_prop nap-node StatusText)" = "Registered node h1 (127.0.0.1), Ready"
check "it has a watchdog" test "$(agent_prop nap-node WatchdogUSec)" = 30s
check "h2's agent starts too" timeout 30 systemctl --user start nap-node-h2.service
assert_eq "ListNodes: h1 Ready with its capacity" "true 2000 1073741824 10737418240 127.0.0.1" \
        "$(node_field h1 '"\(.ready) \(.cpu_milli_core) \(.memory_bytes) \(.storage_bytes) \(.address)"')"
assert_eq "h2 Ready too" "true 1000" "$(node_field h2 '"\(.ready) \(.cpu_milli_core)"')"
assert_match "the machine id is the host's" "$(node_field h1 .machine_id)" '^[0-9a-f]{32}$'
# (-w fields: a lease id does not fit a double, as jq would read it)
lease=$(ETCDCTL_API=3 timeout 10 etcdctl --endpoints="$ETCD_URL" get /nap/members/h1 -w fields 2>/dev/null |
        sed -n 's/^"Lease" : //p')
check "the membership is on a lease ($lease)" test "${lease:-0}" != 0
ttl=$(ETCDCTL_API=3 timeout 10 etcdctl --endpoints="$ETCD_URL" lease timetolive "$(printf '%x' "$lease")" 2>&1 |
        grep -o 'granted with TTL([0-9]*s)')
assert_eq "of NodeTTL= seconds" "granted with TTL(${TTL}s)" "$ttl"

# ========================================================== kill and return
log "SIGKILL of an agent"
timeout 30 systemctl --user kill -s SIGKILL nap-node.service
T0=$(now_ms)
# T1: when the poll that saw it NotReady began (a poll is a varlink call
# and jq, ~0.5 s on a loaded machine: its own length is not the lease's).
h1_not_ready() { T1=$(now_ms) && node_ready h1 false; }
wait_until $((TTL + 5)) h1_not_ready
check "h1 NotReady $((T1 - T0)) ms after the kill (NodeTTL=$TTL s, limit $(((TTL + 1) * 1000)) ms)" \
        test $((T1 - T0)) -le $(((TTL + 1) * 1000))
check "the record stays" test "$(node_field h1 .name)" = h1
has_reason() { [ "$(node_field h1 .reason)" != null ]; }
check "h2's agent notes why" wait_until 5 has_reason
assert_contains "the reason" "$(node_field h1 .reason)" "membership lease expired"
check "and since when" test "$(node_field h1 .since)" -ge $((T0 * 1000 - 5000000))
check "h2 stays Ready" node_ready h2 true
check "systemctl start: h1 registers again" timeout 30 systemctl --user start nap-node.service
check "Ready" node_ready h1 true
assert_eq "no reason while Ready" null "$(node_field h1 .reason)"
assert_eq "one record per node" "/nap/nodes/h1 /nap/nodes/h2" "$(etcd_keys /nap/nodes/ | tr '\n' ' ' | sed 's/ $//')"

# ============================================================ clean stop
log "clean stop"
check "systemctl stop h2" timeout 30 systemctl --user stop nap-node-h2.service
assert_eq "its record is gone" "" "$(node_field h2 .name)"
assert_eq "and its membership" "" "$(etcd_keys /nap/members/h2)"
assert_eq "it exited cleanly" "success" "$(agent_prop nap-node-h2 Result)"

# ======================================================== authorization
log "authorization"
VARLINK_UID=65534 varlink_call_out $M.ListNodes '{}'
varlink_assert_reply "any local user may read the inventory" '.parameters.nodes | length' 1
VARLINK_UID=65534 varlink_call_out $M.DeleteNode '{"name":"h1"}'
varlink_assert_error "but not delete a node" "$M.PermissionDenied"
VARLINK_UID=65534 varlink_call_out $M.ApplyNode \
        '{"name":"h3","address":"x","cpu_milli_core":1,"memory_bytes":1,"storage_bytes":1}'
varlink_assert_error "nor apply one" "$M.PermissionDenied"
VARLINK_UID=$BOB_UID varlink_call_out $M.ReserveCompute \
        '{"name":"h1","compute_name":"alice_x","request_cpu_milli_core":100,"request_memory_bytes":0}'
varlink_assert_error "bob may not reserve in alice's name" "$M.PermissionDenied"
VARLINK_UID=$ALICE_UID varlink_call_out $M.ReserveCompute \
        '{"name":"h1","compute_name":"alice_x","request_cpu_milli_core":100,"request_memory_bytes":0}'
varlink_assert_reply "alice may, in her own" '"\(.parameters.created) \(.parameters.reservation.node)"' "true h1"
VARLINK_UID=$ALICE_UID varlink_call_out $M.ReleaseCompute '{"name":"h1","compute_name":"alice_x"}'
varlink_assert_reply "and release it" '.parameters | keys | length' 0
varlink_call_out $M.ReleaseCompute '{"name":"h1","compute_name":"alice_x"}'
varlink_assert_error "a second release: NoSuchReservation" "$M.NoSuchReservation"

log "bad input"
varlink_call_out $M.ReserveCompute \
        '{"name":"h/1","compute_name":"alice_x","request_cpu_milli_core":100,"request_memory_bytes":0}'
varlink_assert_error "a node name with '/'" "$M.InvalidName"
varlink_call_out $M.ReserveCompute \
        '{"name":"h9","compute_name":"alice_x","request_cpu_milli_core":100,"request_memory_bytes":0}'
varlink_assert_error "an unknown node" "$M.NoSuchNode"
varlink_call_out $M.ReserveCompute \
        '{"name":"h1","compute_name":"alice_x","request_cpu_milli_core":-5,"request_memory_bytes":0}'
varlink_assert_reply "a negative size names the argument" '"\(.error) \(.parameters.parameter)"' \
        "$M.InvalidParameter request_cpu_milli_core"
varlink_call_out $M.ReserveCompute \
        '{"name":"h1","compute_name":"alice_x","request_cpu_milli_core":1,"request_memory_bytes":4611686018427387904}'
varlink_assert_error "an absurd one" "$M.InvalidParameter"
varlink_call_out $M.ScheduleCompute '{"compute_name":"alice_big","request_cpu_milli_core":3000,"request_memory_bytes":0}'
varlink_assert_reply "a schedule that fits nowhere says why" '"\(.error) \(.parameters.message)"' \
        "$M.InsufficientResources Node h1 has not enough cpu_milli: total=2000, used=0, requested=3000"
assert_eq "nothing was reserved" "" "$(etcd_keys /nap/reservations/)$(etcd_keys /nap/names/)"

# ===================================================== start-common limits
log "start-common with cpu and memory"
HELLO=$NAP_TEST_DIR/repos/hello
make_repo "$HELLO" "$SRC"/tests/apps/hello/. || { echo "Bail out! cannot make the app's repository"; exit 1; }
SVC=alice_hello
expect_ok "deploy-app" deploy-app $SVC "file://$HELLO"
varlink_call_out $M.StartCommon "{\"service\":\"$SVC\",\"cpu\":\"500m\",\"memory\":\"64M\"}"
INST=$(printf '%s\n' "$OUT" | tail -n 1 | jq -r '.parameters.instance.instance' 2>&1)
assert_match "StartCommon with cpu=500m memory=64M" "$INST" "^${SVC}_common@[0-9]+$"
assert_eq "systemd's CPU quota: half a CPU" "500ms" "$(timeout 30 systemctl --user show -P CPUQuotaPerSecUSec "$INST.service")"
assert_eq "MemoryMax= 64M" "67108864" "$(timeout 30 systemctl --user show -P MemoryMax "$INST.service")"
assert_eq "MemoryLow= the request" "67108864" "$(timeout 30 systemctl --user show -P MemoryLow "$INST.service")"
assert_eq "the reservation on h1, named as the instance" "/nap/reservations/h1/compute/$INST" \
        "$(etcd_keys /nap/reservations/)"
assert_eq "h1's usage" "500 67108864" "$(node_field h1 '"\(.used_cpu_milli_core) \(.used_memory_bytes)"')"
varlink_call_out $M.StartCommon "{\"service\":\"$SVC\",\"cpu\":\"2\"}"
varlink_assert_error "another 2 CPUs do not fit: InsufficientResources" "$M.InsufficientResources"
assert_eq "and leave no instance behind" "1" "$(ls "$NAP_INSTANCES" | grep -c "^${SVC}_common@")"
varlink_call_out $M.StartCommon "{\"service\":\"$SVC\",\"cpu\":\"lots\"}"
varlink_assert_reply "a bad amount names its argument" '"\(.error) \(.parameters.parameter)"' "$M.InvalidParameter cpu"
expect_ok "remove-instance" remove-instance "$INST"
assert_eq "releases the reservation" "" "$(etcd_keys /nap/reservations/)$(etcd_keys /nap/names/)"
assert_eq "h1's usage is back to 0" "0 0" "$(node_field h1 '"\(.used_cpu_milli_core) \(.used_memory_bytes)"')"

nap_summary
