#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The multi-host harness itself (cluster-lib.sh), without nap's cluster
# features: three hosts come up, each with its own hostname, machine-id,
# address, user manager (with nap-generator and its nap.conf) and etcd
# member; the members form one healthy cluster; a unit installed on h2
# runs on h2; a hard kill of h2 leaves no process of it and the cluster
# writes on; h2 comes back with its data and rejoins; an isolated h3
# cannot write while the others can, and writes again once healed; the
# leader's etcd member alone dies, another leads, it comes back; napctl
# (with NAPCTL set) works on h1 with h1's nap.conf; the teardown leaves
# nothing.
# Prints, as diagnostics, how long bring-up, teardown and a hard kill take.
# When this fails, the cluster tests cannot run on this machine; when it
# passes and they fail, nap is at fault.
#
#   NAP_GENERATOR=build/generators/nap-generator tests/integration/test-cluster-harness.sh
# Needs root; exits 77 otherwise.

. "$(dirname "$0")/cluster-lib.sh"

SRC=${NAP_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
if [ -z "${NAP_CLUSTER_INSIDE:-}" ]; then
        [ -x "${NAP_GENERATOR:-}" ] || { echo "Bail out! set NAP_GENERATOR to the built nap-generator (got '${NAP_GENERATOR:-}')"; exit 1; }
        # Optional: with NAPCTL (and NAP_BUILD_ROOT), napctl runs on h1.
        if [ -n "${NAPCTL:-}" ]; then
                NAPCTL=$(realpath "$NAPCTL")
                NAP_BUILD_ROOT=$(realpath "${NAP_BUILD_ROOT:-$(dirname "$NAPCTL")/..}")
                export NAPCTL NAP_BUILD_ROOT
        fi
        export NAP_SOURCE_ROOT=$SRC
fi
nap_cluster_enter "$@"
nap_cluster_up 3
log "bring-up of 3 hosts: $NAP_CLUSTER_UP_MS ms"

# ------------------------------------------------------------ the hosts

machine_ids=
for n in 1 2 3; do
        assert_eq "h$n has its own hostname" "h$n" "$(nap_cluster_exec "$n" hostname)"
        mid=$(nap_cluster_exec "$n" cat /etc/machine-id)
        assert_match "h$n has a machine-id" "$mid" '^[0-9a-f]{32}$'
        machine_ids="$machine_ids$mid"$'\n'
        assert_contains "h$n has its address on eth0" "$(nap_cluster_exec "$n" ip -4 -o addr show dev eth0)" \
                " $(nap_cluster_ip "$n")/24 "
        check "h$n's user manager runs" nap_cluster_manager_running "$n"
        mgr=$(cat "$(nap_cluster_cgroup "$n")/user@0.service/init.scope/cgroup.procs" 2>/dev/null | head -n 1)
        assert_eq "h$n's manager is systemd in h$n's network namespace" "systemd $n" \
                "$(cat "/proc/$mgr/comm" 2>/dev/null) $(nap_cluster_host_of_pid "$mgr")"
        check "h$n's manager has nap-generator" nap_cluster_exec "$n" test -x /run/systemd/user-generators/nap-generator
        assert_contains "h$n's manager (and so its generator) has h$n's nap.conf" \
                "$(nap_cluster_systemctl "$n" show-environment)" "NAP_CONFIG=$(nap_cluster_config "$n")"
        assert_contains "h$n's nap.conf names the node" "$(cat "$(nap_cluster_config "$n")")" "Node=h$n"
done
assert_eq "three different machine-ids" 3 "$(printf '%s' "$machine_ids" | sort -u | grep -c .)"
assert_not_contains "none is the machine's" "$machine_ids" "$(cat /etc/machine-id 2>/dev/null || echo none)"
quiet() { # CMD...: CMD, its output dropped
        "$@" >/dev/null 2>&1
}
fails() { # CMD...: CMD fails (its output is dropped)
        ! "$@" >/dev/null 2>&1
}

# reaches N M: host N connects to host M's etcd client port.
reaches() {
        nap_cluster_exec "$1" timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/2379"' _ "$(nap_cluster_ip "$2")" 2>/dev/null
}
hosts_seen=$(for n in 1 2 3; do reaches "$n" $((n % 3 + 1)) && echo "h$n"; done)
assert_eq "each host reaches the next one" "h1 h2 h3" "$(echo $hosts_seen)"

# ----------------------------------------------------------------- etcd

members=$(nap_cluster_etcdctl member list 2>&1)
assert_eq "the etcd cluster has 3 started members" 3 "$(grep -c ', started, h[123], ' <<<"$members")"
check "every member is healthy" nap_cluster_etcd_all_healthy
leader=$(nap_cluster_etcd_leader)
assert_match "a leader is known" "$leader" '^[123]$'
log "etcd leader: h$leader; endpoints $(nap_cluster_etcd_endpoints)"
check "a write through h1's member" quiet nap_cluster_etcdctl_on 1 put /nap-test/a from-h1
assert_eq "is read through h3's member" from-h1 "$(nap_cluster_etcdctl_on 3 get --print-value-only /nap-test/a)"

# ------------------------------------------------------ a unit on h2

# Answers every TCP connection with the hostname; Type=notify.
cat >"$NAP_CLUSTER_DIR/whoami.py" <<'EOF'
import os, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(16)
n = os.environ.get("NOTIFY_SOCKET", "")
if n:
    u = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    u.connect("\0" + n[1:] if n[0] == "@" else n)
    u.send(b"READY=1")
print("listening on", sys.argv[1], flush=True)
while True:
    c, _ = s.accept()
    c.sendall((socket.gethostname() + "\n").encode())
    c.close()
EOF
whoami_unit="[Unit]
Description=answers with the hostname

[Service]
Type=notify
ExecStart=/usr/bin/python3 $NAP_CLUSTER_DIR/whoami.py 7000

[Install]
WantedBy=default.target"

# whoami N: what the unit on host N answers, from the run's namespace.
whoami() {
        timeout 5 bash -c 'exec 3<>"/dev/tcp/$1/7000" && cat <&3' _ "$(nap_cluster_ip "$1")" 2>/dev/null
}
whoami_refused() {
        ! whoami "$1" >/dev/null
}

check "a Type=notify unit installed on h2 becomes active" nap_cluster_unit_install 2 whoami.service "$whoami_unit"
pid=$(nap_cluster_unit_main_pid 2 whoami.service)
assert_eq "its MainPID is in h2's network namespace" 2 "$(nap_cluster_host_of_pid "$pid")"
check "its MainPID is in h2's user manager's cgroup" \
        grep -q "/$NAP_CLUSTER_ID-h2.slice/user@0.service/app.slice/whoami.service" "/proc/$pid/cgroup"
assert_eq "it answers on h2's address with h2's hostname" h2 "$(whoami 2)"
check "it is not on h1" whoami_refused 1
unit_logged() {
        nap_cluster_exec 2 timeout 10 journalctl --no-pager -q --user-unit whoami.service -o cat | grep -q 'listening on 7000'
}
check "h2's journal has its output under the user unit" wait_until 10 unit_logged

# ------------------------------------------------ napctl on one host

# nap on h1 with h1's nap.conf: its own Root=, Host= and PortRange=, the
# cluster's etcd.
if [ -n "${NAPCTL:-}" ]; then
        export GIT_AUTHOR_NAME=nap-test GIT_AUTHOR_EMAIL=nap-test@localhost
        export GIT_COMMITTER_NAME=nap-test GIT_COMMITTER_EMAIL=nap-test@localhost GIT_CONFIG_NOSYSTEM=1
        # The sample app, listening on every address rather than loopback.
        mkdir -p "$NAP_CLUSTER_DIR/hello" && cp "$SRC"/tests/apps/hello/* "$NAP_CLUSTER_DIR/hello/" &&
                sed -i 's/^python3 server.py .*/& --bind 0.0.0.0/' "$NAP_CLUSTER_DIR/hello/profile" &&
                make_repo "$NAP_CLUSTER_DIR/repos/hello" "$NAP_CLUSTER_DIR/hello/." >/dev/null ||
                { echo "Bail out! cannot make the app's repository"; exit 1; }
        check "nap-managerd installed on h1" nap_cluster_managerd_install 1
        check "napctl deploy-app on h1" quiet nap_cluster_exec 1 "$NAPCTL" --user deploy-app alice_hello "$NAP_CLUSTER_DIR/repos/hello"
        assert_contains "h1 lists it" "$(nap_cluster_exec 1 "$NAPCTL" --user list-services alice)" alice_hello
        assert_contains "h1's Root= has it" "$(find "$(nap_cluster_dir 1)/root" -name alice_hello)" alice_hello
        assert_eq "h2's Root= has not" "" "$(find "$(nap_cluster_dir 2)/root" -name alice_hello)"
        assert_eq "its URL in etcd is read through h3's member" "$NAP_CLUSTER_DIR/repos/hello" \
                "$(nap_cluster_etcdctl_on 3 get --print-value-only /services/url/alice/hello)"
        out=$(nap_cluster_exec 1 "$NAPCTL" --user start-common alice_hello greeting=cluster)
        assert_match "start-common on h1 gives h1's address and a port of its PortRange=" "$out" \
                "^alice_hello_common@1 http://$(nap_cluster_ip 1 | sed 's/\./\\./g'):201[0-9][0-9]\$"
        url=${out#* }
        check "the instance listens on h1's address" wait_until 30 curl -sf --max-time 3 -o /dev/null "$url/"
        assert_eq "and answers" "cluster from alice_hello_1 on port ${url##*:}" "$(curl -sf --max-time 3 "$url/")"
fi

# ------------------------------------------------------- hard kill of h2
# The waits for a write after a failure try with a 1 s limit, not
# etcdctl's 5 s, so the times they print are etcd's, not the client's.

nap_cluster_exec_in_cgroup 2 sleep 600 &
disown
in_exec_scope() {
        [ -n "$(cat "$(nap_cluster_cgroup 2)/host-exec.scope/cgroup.procs" 2>/dev/null)" ]
}
check "a command run in h2's cgroup is there" wait_until 10 in_exec_scope
h2_pids=$(nap_cluster_host_pids 2)
etcd2=$(nap_cluster_unit_main_pid 2 "$NAP_CLUSTER_ETCD_UNIT")
log "h2 has $(grep -c . <<<"$h2_pids") processes; etcd member pid $etcd2, whoami pid $pid"
pid_gone() { # PID: no such process, or only its zombie
        local s
        s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
        s=${s##*) }
        [ "${s%% *}" = Z ]
}
all_gone() {
        local p
        for p in "$@"; do pid_gone "$p" || return 1; done
}

leader=$(nap_cluster_etcd_leader)
check "hard kill of h2" nap_cluster_host_kill 2
kill_ms=$NAP_CLUSTER_KILL_MS
t0=$(nap_cluster__ms)
log "hard kill of h2 (leader was h$leader): its processes gone in $kill_ms ms"
check "h2's processes are gone within 1 s of the kill" test "$kill_ms" -lt 1000
# shellcheck disable=SC2086
check "none of h2's $(grep -c . <<<"$h2_pids") processes exists" all_gone $h2_pids
check "h2's cgroups are removed" test ! -e "$(nap_cluster_cgroup 2)"
check "h2's address no longer answers" whoami_refused 2
check "the cluster writes with 2 of 3 members" wait_until 60 quiet nap_cluster_etcdctl --command-timeout=1s put /nap-test/b while-h2-down
log "first write after the kill: $(($(nap_cluster__ms) - t0)) ms after it"
check "h1's member is healthy" nap_cluster_etcd_healthy 1
check "h3's member is healthy" nap_cluster_etcd_healthy 3

# ----------------------------------------------------------- h2 restarts

t0=$(nap_cluster__ms)
check "h2 boots again" nap_cluster_host_start 2
log "restart of h2 (manager running, etcd member healthy): $(($(nap_cluster__ms) - t0)) ms"
check "h2's manager runs" nap_cluster_manager_running 2
assert_eq "h2 keeps its machine-id" "$(sed -n 2p <<<"$machine_ids")" "$(nap_cluster_exec 2 cat /etc/machine-id)"
check "h2's etcd member is healthy" nap_cluster_etcd_healthy 2
members=$(nap_cluster_etcdctl member list 2>&1)
assert_eq "still 3 started members" 3 "$(grep -c ', started, h[123], ' <<<"$members")"
caught_up() {
        [ "$(nap_cluster_etcdctl_on 2 get --consistency=s --print-value-only /nap-test/b)" = while-h2-down ]
}
check "h2's member has the write made while it was down (it rejoined)" wait_until 30 caught_up
check "h2's enabled unit is back" nap_cluster_unit_wait_active 2 whoami.service
assert_eq "and answers again" h2 "$(whoami 2)"

# ------------------------------------------------------ isolating h3

nap_cluster_host_isolate 3
t0=$(nap_cluster__ms)
check "h3 isolated: a write through h1's member succeeds" wait_until 60 quiet nap_cluster_etcdctl_on 1 --command-timeout=1s put /nap-test/c isolated
log "first write through h1 after isolating h3: $(($(nap_cluster__ms) - t0)) ms"
check "h1 does not reach h3" fails reaches 1 3
check "h3's member cannot write (no quorum)" fails nap_cluster_etcdctl_on 3 put /nap-test/d from-isolated-h3
nap_cluster_host_heal 3
t0=$(nap_cluster__ms)
check "healed: h3's member is healthy again" wait_until 60 nap_cluster_etcd_healthy 3
log "h3's member healthy after healing: $(($(nap_cluster__ms) - t0)) ms"
check "healed: h3's member writes again" wait_until 60 quiet nap_cluster_etcdctl_on 3 --command-timeout=1s put /nap-test/d from-h3
log "first write through h3 after healing: $(($(nap_cluster__ms) - t0)) ms"
assert_eq "and reads what was written while it was cut off" isolated \
        "$(nap_cluster_etcdctl_on 3 get --print-value-only /nap-test/c)"
check "every member is healthy" wait_until 30 nap_cluster_etcd_all_healthy

# ---------------------------------------- the leader's etcd member alone

leader=$(nap_cluster_etcd_leader)
assert_match "a leader is known" "$leader" '^[123]$'
other=$((leader % 3 + 1))
check "the leader's member (h$leader) killed alone" nap_cluster_etcd_kill "$leader"
t0=$(nap_cluster__ms)
check "h$leader itself stays up" nap_cluster_manager_running "$leader"
check "the cluster writes without it" wait_until 60 quiet nap_cluster_etcdctl_on "$other" --command-timeout=1s put /nap-test/e without-leader
log "first write after killing the leader's member: $(($(nap_cluster__ms) - t0)) ms after it"
another_leader() {
        local l
        l=$(nap_cluster_etcd_leader) && [ "$l" != "$leader" ]
}
check "another member leads" wait_until 30 another_leader
check "h$leader's member starts again and is healthy" nap_cluster_etcd_start "$leader"
assert_eq "and has what was written meanwhile" without-leader \
        "$(nap_cluster_etcdctl_on "$leader" get --print-value-only /nap-test/e)"

# -------------------------------------------------------------- teardown

id=$NAP_CLUSTER_ID
nap_cluster_down
log "teardown of 3 hosts: $NAP_CLUSTER_DOWN_MS ms"
assert_eq "teardown leaves no network namespace, link, cgroup, process or directory" "" "$(nap_cluster_leftovers)"
assert_eq "ip netns list has none of the run" "" "$(ip netns list | grep -F "$id")"
assert_eq "ip link has none of the run" "" "$(ip -o link show | grep -F "$id")"
nap_summary
