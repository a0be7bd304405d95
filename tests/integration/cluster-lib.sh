# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# The multi-host sandbox: N "hosts" (default 3) on one machine, for the
# cluster tests (node inventory, cluster apps, MPI across hosts). Each host
# has its own network namespace and address, mount and UTS namespaces
# (hostname hN, its own /etc/machine-id, /run/systemd, /run/user, /run/log,
# /var/log/journal), its own cgroup subtree, journald, `systemd --user`
# with nap-generator, an etcd member (the members form one cluster) and
# its own nap state: nap.conf (Node=hN), Root=, Instances=, HOME.
# Sourced by tests/integration/test-cluster*.sh; builds on lib.sh (its
# ok/fail/check/assert_*/wait_until/nap_summary are available).
#
#   . "$(dirname "$0")/cluster-lib.sh"
#   nap_cluster_enter "$@"          # re-runs the script inside the run's namespaces
#   nap_cluster_up 3                # three hosts, etcd healthy
#   nap_cluster_exec 2 "$NAPCTL" --user …     # napctl on h2, with h2's nap.conf
#   nap_cluster_host_kill 2; nap_cluster_host_start 2
#   nap_summary
#
# The run: the script runs as PID 1 of new PID, mount and network
# namespaces (nap_cluster_enter). In them:
#   /run                      tmpfs: nothing of the run is written to disk
#   /run/netns/napc-R-hN      host N's network namespace (R: the run id)
#   napc-R-br                 the bridge, 10.233.X.1/24, in the run's netns
#   napc-R-hN                 host N's veth on the bridge; "eth0" in the host,
#                             10.233.X.(10+N)/24; no default route anywhere
#   /run/napc-R/hN/           host N's state: nap.conf, root/, instances/,
#                             home/ (HOME), etcd/ (member data), machine-id,
#                             init.pid, init.log, journald.log, manager.log
#   /run/napc-R/bin/          binaries copied for units (nap_cluster_copy_bin)
# and on the machine, the only thing outside those namespaces, each host's
# cgroups, in cgroup v1 name=systemd and in the unified hierarchy:
#   napc-R-hN.slice/host-init.scope    the host's init and journald
#   napc-R-hN.slice/user@0.service     its user manager and every unit
#   napc-R-hN.slice/host-exec.scope    nap_cluster_exec_in_cgroup's commands
# Killing a host is cgroup.kill on its slice: manager, units, journald and
# etcd member die at once, as at a power cut; its network namespace, veth,
# address and state directory stay for nap_cluster_host_start.
#
# R is the PID of the process that ran nap_cluster_enter, X a subnet that
# R picks and the machine has no address or route in: two runs at once
# never share a name (nor a network: each run has its own namespace).
#
# In host N, systemctl --user, journalctl --user-unit (not --user: root's
# messages are in the system journal), etcdctl and napctl --user (after
# nap_cluster_managerd_install N) work as on a real machine
# (nap_cluster_exec). Host N's etcd member is the user unit
# etcd-member.service (enabled: back after a restart), listening on
# 10.233.X.(10+N):2379 (peers :2380) and 127.0.0.1:2379. Units installed
# with nap_cluster_unit_install live in the host's ~/.config/systemd/user:
# like units on a disk, they survive its restart. The hosts share the
# run's PID namespace: a host sees the others' processes in ps (never
# pkill by name in a host).
#
# Cleanup: the EXIT trap (nap_cluster_up registers it) tears everything
# down, however the script ends. If PID 1 of the run dies anyway (SIGKILL),
# the kernel kills every process of the run and drops its namespaces and
# tmpfs with it; only the empty cgroups remain, and nap_cluster_enter
# removes them after the run, and those of any earlier run whose owner
# process is gone, before the next (all names begin with "napc-").
#
# Inputs (environment): NAP_GENERATOR (the built nap-generator, installed
# for every host's manager), NAP_DISCOVERY (the built nap-discovery, which
# the generated sidecars then run), NAP_SANDBOX_TIMEOUT (seconds for the whole
# run, default 900), NAP_TEST_VERBOSE=1 (show each host's journal at the
# end even on success), NAP_TEST_REQUIRE_SANDBOX=1 (fail instead of
# skipping when the sandbox cannot be built).
# Sets (exported): NAP_CLUSTER_ID (napc-R), NAP_CLUSTER_DIR, NAP_CLUSTER_NET
# (10.233.X), NAP_CLUSTER_HOSTS (after nap_cluster_up).

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAP_CLUSTER_PREFIX=napc-
NAP_CLUSTER__LAUNCHED=() # by host number: the PID of its init
NAP_CLUSTER_ETCD_UNIT=etcd-member.service

# ----------------------------------------------------------------- naming

nap_cluster__ms() { # milliseconds since the epoch, without a fork
        local t=${EPOCHREALTIME//[.,]/}
        echo $((t / 1000))
}

# nap_cluster_ip N: host N's address.
nap_cluster_ip() {
        echo "$NAP_CLUSTER_NET.$((10 + $1))"
}

# nap_cluster_netns N: the name of host N's network namespace (also the
# name of its veth on the bridge).
nap_cluster_netns() {
        echo "$NAP_CLUSTER_ID-h$1"
}

# nap_cluster_dir N: host N's state directory.
nap_cluster_dir() {
        echo "$NAP_CLUSTER_DIR/h$1"
}

# nap_cluster_config N: host N's nap.conf (its NAP_CONFIG).
nap_cluster_config() {
        echo "$NAP_CLUSTER_DIR/h$1/nap.conf"
}

# nap_cluster_etcd_endpoints: every member's client URL, comma-separated
# (what Etcd= of each host's nap.conf says).
nap_cluster_etcd_endpoints() {
        local n s=
        for n in $(seq 1 "$NAP_CLUSTER_HOSTS"); do
                s="$s${s:+,}http://$(nap_cluster_ip "$n"):2379"
        done
        echo "$s"
}

nap_cluster__initial_cluster() {
        local n s=
        for n in $(seq 1 "$NAP_CLUSTER_HOSTS"); do
                s="$s${s:+,}h$n=http://$(nap_cluster_ip "$n"):2380"
        done
        echo "$s"
}

# The unified hierarchy: /sys/fs/cgroup (v2 only) or /sys/fs/cgroup/unified
# (hybrid, as on the CI machines); cgroup.kill lives there.
nap_cluster__v2_root() {
        if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
                echo /sys/fs/cgroup
        else
                echo /sys/fs/cgroup/unified
        fi
}

# nap_cluster_cgroup N: host N's slice in the unified hierarchy (its
# cgroup.procs files list every process of the host).
nap_cluster_cgroup() {
        echo "$(nap_cluster__v2_root)/$NAP_CLUSTER_ID-h$1.slice"
}

# ------------------------------------------------------- running in a host

nap_cluster__init_pid() {
        local p
        p=$(cat "$NAP_CLUSTER_DIR/h$1/init.pid" 2>/dev/null) && [ -n "$p" ] && [ -d "/proc/$p" ] || return 1
        echo "$p"
}

# Sets NAP_CLUSTER__ARGV to the command line that runs a command in host
# N (nap_cluster_exec); non-zero if the host is down.
nap_cluster__argv() {
        local n=$1 pid
        pid=$(nap_cluster__init_pid "$n") || return 1
        NAP_CLUSTER__ARGV=(nsenter -t "$pid" -n -m -u -- env -u NOTIFY_SOCKET -u INVOCATION_ID
                -u LISTEN_FDS -u LISTEN_PID
                HOME="$NAP_CLUSTER_DIR/h$n/home" XDG_RUNTIME_DIR=/run/user/0
                DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/0/bus
                NAP_CONFIG="$NAP_CLUSTER_DIR/h$n/nap.conf" NAP_CLUSTER_HOST="$n" ETCDCTL_API=3
                SYSTEMD_PAGER='' SYSTEMD_COLORS=0)
}

# nap_cluster_exec N CMD...: runs CMD in host N's network, mount and UTS
# namespaces (nsenter; `ip netns exec` would hide /sys/fs/cgroup), in /,
# with its environment: HOME, XDG_RUNTIME_DIR, the user bus, NAP_CONFIG
# (its nap.conf), ETCDCTL_API=3, NAP_CLUSTER_HOST=N. Returns CMD's status;
# 255 if the host is down. CMD stays in the caller's cgroup: it survives
# nap_cluster_host_kill (see nap_cluster_exec_in_cgroup).
nap_cluster_exec() {
        local n=$1
        shift
        nap_cluster__argv "$n" || { echo "nap_cluster_exec: host h$n is down" >&2; return 255; }
        "${NAP_CLUSTER__ARGV[@]}" "$@"
}

# nap_cluster_exec_in_cgroup N CMD...: nap_cluster_exec, and CMD (with
# whatever it forks) is part of host N: it dies with nap_cluster_host_kill.
# In the background: `nap_cluster_exec_in_cgroup N CMD & disown` (without
# disown, bash reports the job as "Killed" when the host dies).
nap_cluster_exec_in_cgroup() {
        local n=$1 root
        shift
        nap_cluster__argv "$n" || { echo "nap_cluster_exec_in_cgroup: host h$n is down" >&2; return 255; }
        for root in $(nap__cgroup_roots); do
                mkdir -p "$root/$NAP_CLUSTER_ID-h$n.slice/host-exec.scope" || return 255
        done
        # Only the process that becomes CMD moves: a subshell of its own,
        # unless this already is one (CMD & or $(…)), which then is CMD.
        if [ "$BASHPID" = "$$" ]; then
                (nap_cluster__exec_moved "$n" "$@")
        else
                nap_cluster__exec_moved "$n" "$@"
        fi
}

nap_cluster__exec_moved() {
        local n=$1 root
        shift
        for root in $(nap__cgroup_roots); do
                echo "$BASHPID" >"$root/$NAP_CLUSTER_ID-h$n.slice/host-exec.scope/cgroup.procs" || exit 255
        done
        exec "${NAP_CLUSTER__ARGV[@]}" "$@"
}

# nap_cluster_systemctl N ARGS...: systemctl --user ARGS in host N, bounded.
nap_cluster_systemctl() {
        local n=$1
        shift
        nap_cluster_exec "$n" timeout 60 systemctl --user "$@"
}

# nap_cluster_manager_running N: host N's user manager is up (running or
# degraded).
nap_cluster_manager_running() {
        local s
        s=$(nap_cluster_exec "$1" timeout 10 systemctl --user is-system-running 2>/dev/null)
        [ "$s" = running ] || [ "$s" = degraded ]
}

# nap_cluster_host_up N: host N's init is alive (it may still be booting).
nap_cluster_host_up() {
        nap_cluster__init_pid "$1" >/dev/null
}

# nap_cluster_host_pids N: the PIDs of every process of host N, one a line.
nap_cluster_host_pids() {
        local cg
        cg=$(nap_cluster_cgroup "$1")
        [ -d "$cg" ] || return 0
        find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null
}

# nap_cluster_host_of_pid PID: the number of the host whose network
# namespace PID is in; non-zero if none.
nap_cluster_host_of_pid() {
        local pid=$1 n ns
        ns=$(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null) || return 1
        for n in $(seq 1 "$NAP_CLUSTER_HOSTS"); do
                if [ "$(stat -L -c %i "/run/netns/$(nap_cluster_netns "$n")" 2>/dev/null)" = "$ns" ]; then
                        echo "$n"
                        return 0
                fi
        done
        return 1
}

# nap_cluster_copy_bin PATH: copies an executable (a built helper) to
# $NAP_CLUSTER_DIR/bin, seen by every host, and prints the copy's path.
# Units with PrivateTmp= cannot see a build tree under /tmp or /var/tmp.
nap_cluster_copy_bin() {
        mkdir -p "$NAP_CLUSTER_DIR/bin" && cp "$1" "$NAP_CLUSTER_DIR/bin/" || return 1
        echo "$NAP_CLUSTER_DIR/bin/${1##*/}"
}

# ------------------------------------------------------------------- units

# nap_cluster_unit_wait_active N UNIT [SECONDS]: waits (default 60 s) until
# UNIT is active in host N; non-zero, with its status as diagnostics, if it
# failed or the time ran out.
nap_cluster_unit_wait_active() {
        local n=$1 unit=$2 timeout=${3:-60} deadline s
        deadline=$(($(nap_cluster__ms) + timeout * 1000))
        while :; do
                s=$(nap_cluster_exec "$n" timeout 10 systemctl --user is-active "$unit" 2>/dev/null)
                [ "$s" = active ] && return 0
                if [ "$s" = failed ] || [ "$(nap_cluster__ms)" -ge "$deadline" ]; then
                        diag "h$n: $unit is $s" "$(nap_cluster_exec "$n" timeout 10 systemctl --user status --no-pager -n 20 "$unit" 2>&1)"
                        return 1
                fi
                sleep 0.1
        done
}

# nap_cluster_unit_install N NAME TEXT [SECONDS]: writes TEXT as user unit
# NAME in host N's ~/.config/systemd/user, daemon-reloads, enables it if
# it has an [Install] section (so it is back after nap_cluster_host_start),
# starts it and waits (default 60 s) until it is active (for Type=notify,
# until READY=1). Non-zero, with the unit's status, if it did not.
nap_cluster_unit_install() {
        local n=$1 name=$2 text=$3 timeout=${4:-60} dir
        dir=$NAP_CLUSTER_DIR/h$n/home/.config/systemd/user
        mkdir -p "$dir" && printf '%s\n' "$text" >"$dir/$name" || return 1
        nap_cluster_systemctl "$n" daemon-reload || return 1
        if grep -q '^\[Install\]' "$dir/$name"; then
                nap_cluster_systemctl "$n" enable --quiet "$name" || return 1
        fi
        nap_cluster_systemctl "$n" start --no-block "$name" || return 1
        nap_cluster_unit_wait_active "$n" "$name" "$timeout"
}

# nap_cluster_unit_main_pid N UNIT: UNIT's MainPID in host N (0 if none).
nap_cluster_unit_main_pid() {
        nap_cluster_systemctl "$1" show -P MainPID "$2"
}

# nap_cluster_agents CONF: CONF (nap.conf lines) appended to every host's
# nap.conf; the built nap-node and napctl copied where hosts see them.
# Sets NAP_CLUSTER_NODE_UNIT (nap-node.service running the copy: install
# it with nap_cluster_unit_install) and NAP_CLUSTER_NAPCTL (the copy, for
# nap_cluster_napctl). Non-zero if a copy failed.
nap_cluster_agents() {
        local n node
        for n in $(seq "$NAP_CLUSTER_HOSTS"); do
                printf '%s\n' "$1" >>"$(nap_cluster_config "$n")" || return 1
        done
        node=$(nap_cluster_copy_bin "$NAP_BUILD_ROOT/helpers/nap-node") &&
                NAP_CLUSTER_NAPCTL=$(nap_cluster_copy_bin "$NAPCTL") || return 1
        NAP_CLUSTER_NODE_UNIT=$(sed "s|^ExecStart=.*|ExecStart=$node|" "$NAP_BUILD_ROOT/units/nap-node.service")
}

# nap_cluster_napctl N ARGS...: napctl (nap_cluster_agents' copy) in host
# N, in process (--user --no-helper), with its nap.conf.
nap_cluster_napctl() {
        nap_cluster_exec "$1" "$NAP_CLUSTER_NAPCTL" --user --no-helper "${@:2}"
}

# nap_cluster_assignments APP: "NODE NUMBER COMMIT" of each of APP's
# assignments (ClusterPrefix=/nap), in key order.
nap_cluster_assignments() {
        nap_cluster_etcdctl get --prefix --print-value-only /nap/assignments/ |
                jq -r --arg app "$1" 'select(.app == $app) | "\(.node) \(.number) \(.commit)"'
}

# nap_cluster_nodes_at APP COMMIT: the nodes of APP's assignments, one
# each, space-separated, if all are at COMMIT; else says which are not.
nap_cluster_nodes_at() {
        local l
        l=$(nap_cluster_assignments "$1")
        if awk -v c="$2" '$3 != c { bad = 1 } END { exit bad }' <<<"$l"; then
                awk '{ print $1 }' <<<"$l" | tr '\n' ' '
        else
                echo "not all at $2: $l"
        fi
}

# nap_cluster_managerd_install N: installs the built nap-managerd.socket
# and .service (from $NAP_BUILD_ROOT/units, running the built
# $NAP_MANAGERD, default $NAP_BUILD_ROOT/helpers/nap-managerd) and
# nap-connect.socket and .service, which connect for it (nap-connect(8)),
# in host N and enables and starts the sockets: napctl --user then works in that host
# (nap_cluster_exec N "$NAPCTL" --user VERB…), with its nap.conf.
nap_cluster_managerd_install() {
        local n=$1 bin=${NAP_MANAGERD:-${NAP_BUILD_ROOT:-}/helpers/nap-managerd} dir connect
        [ -x "$bin" ] || { echo "nap_cluster_managerd_install: $bin is not an executable" >&2; return 1; }
        bin=$(nap_cluster_copy_bin "$bin") || return 1
        dir=$NAP_CLUSTER_DIR/h$n/home/.config/systemd/user
        connect=$(nap_cluster_copy_bin "$NAP_BUILD_ROOT/helpers/nap-connect") || return 1
        mkdir -p "$dir/nap-managerd.service.d" "$dir/nap-connect.service.d" || return 1
        cp "$NAP_BUILD_ROOT/units/nap-managerd.socket" "$NAP_BUILD_ROOT/units/nap-managerd.service" \
                "$NAP_BUILD_ROOT/units/nap-connect.socket" "$NAP_BUILD_ROOT/units/nap-connect.service" "$dir/" || return 1
        printf '[Service]\nExecStart=\nExecStart=%s\n' "$bin" >"$dir/nap-managerd.service.d/50-test.conf"
        printf '[Service]\nExecStart=\nExecStart=%s\n' "$connect" >"$dir/nap-connect.service.d/50-test.conf"
        nap_cluster_systemctl "$n" daemon-reload &&
                nap_cluster_systemctl "$n" enable --now --quiet nap-connect.socket nap-managerd.socket
}

# nap_cluster_apps_up N TTL: what the cluster-apps tests and benchmarks
# share: nap_cluster_up N (logged); every host's nap.conf given CPU=2,
# Memory=1G, Storage=10G and NodeTTL=TTL; the built nap-node and napctl
# copied for the hosts (NAP_CLUSTER_NAPCTL: napctl's copy;
# NAP_CLUSTER_NODE_UNIT: nap-node.service running the copy, for
# nap_cluster_unit_install); the sample app in $NAP_CLUSTER_DIR/repos/hello
# (nap_cluster_hello_repo). Non-zero, saying what, if any of it failed.
nap_cluster_apps_up() {
        local n node
        nap_cluster_up "$1"
        log "$1 hosts up in $NAP_CLUSTER_UP_MS ms"
        for n in $(seq 1 "$NAP_CLUSTER_HOSTS"); do
                printf 'CPU=2\nMemory=1G\nStorage=10G\nNodeTTL=%s\n' "$2" >>"$(nap_cluster_config "$n")" || return 1
        done
        node=$(nap_cluster_copy_bin "$NAP_BUILD_ROOT/helpers/nap-node") || { echo "cannot copy nap-node" >&2; return 1; }
        NAP_CLUSTER_NAPCTL=$(nap_cluster_copy_bin "$NAPCTL") || { echo "cannot copy napctl" >&2; return 1; }
        NAP_CLUSTER_NODE_UNIT=$(sed "s|^ExecStart=.*|ExecStart=$node|" "$NAP_BUILD_ROOT/units/nap-node.service")
        nap_cluster_hello_repo >/dev/null || { echo "cannot make the app's repository" >&2; return 1; }
}

# -------------------------------------------------------------------- etcd

# nap_cluster_etcdctl ARGS...: etcdctl (v3 API) from the run's own network
# namespace, against every member; bounded (dial 2 s, command 5 s).
nap_cluster_etcdctl() {
        ETCDCTL_API=3 timeout 30 etcdctl --endpoints="$(nap_cluster_etcd_endpoints)" \
                --dial-timeout=2s --command-timeout=5s "$@"
}

# nap_cluster_etcdctl_on N ARGS...: etcdctl inside host N against its own
# member alone (127.0.0.1:2379): what a process on that host sees, also
# when the host is isolated.
nap_cluster_etcdctl_on() {
        local n=$1
        shift
        nap_cluster_exec "$n" timeout 30 etcdctl --endpoints=http://127.0.0.1:2379 \
                --dial-timeout=2s --command-timeout=5s "$@"
}

# nap_cluster_etcd_healthy N: host N's member answers /health with true
# (it has a leader and can serve), asked inside host N.
nap_cluster_etcd_healthy() {
        nap_cluster_exec "$1" curl -sf --max-time 3 http://127.0.0.1:2379/health 2>/dev/null |
                grep -q '"health":"true"'
}

# nap_cluster_etcd_all_healthy: every host's member is healthy.
nap_cluster_etcd_all_healthy() {
        local n
        for n in $(seq 1 "$NAP_CLUSTER_HOSTS"); do
                nap_cluster_etcd_healthy "$n" || return 1
        done
}

# nap_cluster_etcd_leader: the number of the host whose member is the
# leader, as the members reachable from the run's namespace say
# (etcdctl endpoint status); non-zero if none says so.
nap_cluster_etcd_leader() {
        local ep
        ep=$(nap_cluster_etcdctl endpoint status 2>/dev/null | awk -F', ' '$5 == "true" { print $1; exit }')
        [ -n "$ep" ] || return 1
        ep=${ep#http://"$NAP_CLUSTER_NET".}
        echo $((${ep%%:*} - 10))
}

# nap_cluster_etcd_leader_off N: host N's member no longer leads the etcd
# cluster (leadership moved to another member, etcdctl move-leader): a
# test that kills host N then measures its own work, not also etcd's
# election and the renewal of every lease that comes with it.
nap_cluster_etcd_leader_off() {
        local n=$1 leader to id
        leader=$(nap_cluster_etcd_leader) || return 1
        [ "$leader" = "$n" ] || return 0
        to=$((n % NAP_CLUSTER_HOSTS + 1))
        id=$(nap_cluster_etcdctl member list | awk -F', ' -v h="h$to" '$3 == h { print $1 }')
        [ -n "$id" ] && nap_cluster_etcdctl move-leader "$id" >/dev/null &&
                [ "$(nap_cluster_etcd_leader)" != "$n" ]
}

# nap_cluster_etcd_kill N: SIGKILL to host N's etcd member alone; returns
# once its unit is no longer active. The host stays up.
nap_cluster_etcd_kill() {
        local n=$1
        nap_cluster_systemctl "$n" kill --signal=KILL "$NAP_CLUSTER_ETCD_UNIT" || return 1
        wait_until 30 nap_cluster__etcd_unit_down "$n"
}

nap_cluster__etcd_unit_down() {
        ! nap_cluster_exec "$1" timeout 10 systemctl --user --quiet is-active "$NAP_CLUSTER_ETCD_UNIT"
}

# nap_cluster_etcd_start N [SECONDS]: starts host N's member again (same
# data) and waits (default 60 s) until it is healthy (it needs a quorum).
nap_cluster_etcd_start() {
        local n=$1 timeout=${2:-60}
        nap_cluster_systemctl "$n" reset-failed "$NAP_CLUSTER_ETCD_UNIT" 2>/dev/null
        nap_cluster_systemctl "$n" start "$NAP_CLUSTER_ETCD_UNIT" || return 1
        wait_until "$timeout" nap_cluster_etcd_healthy "$n"
}

# ------------------------------------------------------- hosts: the boot

# Runs as the host's init: in host N's network namespace and cgroup, in
# new mount and UTS namespaces (nap_cluster__launch). Ends when killed.
nap_cluster__host_init() {
        local n=$1 d=$NAP_CLUSTER_DIR/h$1 root
        hostname "h$n" || return 1
        mkdir -p /run/systemd /run/user /run/log || return 1
        # -n: no /run/mount/utab shared by every host.
        mount -n -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run/systemd &&
                mkdir -p /run/systemd/system /run/systemd/user-generators /run/systemd/journal &&
                nap__inaccessible_nodes || return 1
        mount -n -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run/user && mkdir -m 0700 /run/user/0 || return 1
        mount -n -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run/log || return 1
        if [ -d /var/log/journal ]; then
                mount -n -t tmpfs -o mode=0755 tmpfs /var/log/journal || return 1
        fi
        # journald would import the machine's kernel log.
        if [ -c /dev/kmsg ]; then
                mount -n --bind /dev/null /dev/kmsg || return 1
        fi
        mount -n --bind "$d/machine-id" /etc/machine-id || return 1
        if [ -n "${NAP_GENERATOR:-}" ]; then
                cp "$NAP_GENERATOR" /run/systemd/user-generators/nap-generator || return 1
        fi
        /lib/systemd/systemd-journald </dev/null >>"$d/journald.log" 2>&1 &
        wait_until 30 test -S /run/systemd/journal/stdout || { echo "h$n: journald did not start" >&2; return 1; }
        (
                for root in $(nap__cgroup_roots); do
                        echo "$BASHPID" >"$root/$NAP_CLUSTER_ID-h$n.slice/user@0.service/cgroup.procs" || exit 1
                done
                cd / && exec env -u NAP_CLUSTER_ID -u NAP_CLUSTER_DIR -u NAP_CLUSTER_NET -u NAP_CLUSTER_HOSTS \
                        -u NAP_CLUSTER_INSIDE -u NAP_CLUSTER_LIB -u NOTIFY_SOCKET -u DBUS_SESSION_BUS_ADDRESS \
                        HOME="$d/home" XDG_RUNTIME_DIR=/run/user/0 NAP_CONFIG="$d/nap.conf" \
                        SYSTEMD_LOG_TARGET=journal /lib/systemd/systemd --user </dev/null
        ) >>"$d/manager.log" 2>&1 &
        # nap_cluster_exec enters the namespaces of this process: only
        # now are they complete.
        echo "$$" >"$d/init.pid"
        wait
}

# First boot of host N: its state directory, nap.conf, machine-id and the
# etcd member's unit (enabled, so every boot starts it).
nap_cluster__host_prepare() {
        local n=$1 d=$NAP_CLUSTER_DIR/h$1 ip units
        ip=$(nap_cluster_ip "$n")
        units=$d/home/.config/systemd/user
        mkdir -p "$d/root" "$d/instances" "$d/etcd" "$units/default.target.wants" || return 1
        chmod 0700 "$d/etcd"
        tr -d - </proc/sys/kernel/random/uuid >"$d/machine-id" || return 1
        cat >"$d/nap.conf" <<EOF || return 1
# host h$n of cluster $NAP_CLUSTER_ID, written by tests/integration/cluster-lib.sh
[Nap]
Node=h$n
Root=$d/root
Instances=$d/instances
Scope=user
Host=$ip
PortRange=$((20000 + 100 * n))-$((20099 + 100 * n))
Etcd=$(nap_cluster_etcd_endpoints)
EOF
        # Type=exec, not notify: etcd says READY=1 only once the cluster
        # has a quorum, which the manager's start-up must not wait for.
        # No Restart=: a killed member stays down until told otherwise.
        cat >"$units/$NAP_CLUSTER_ETCD_UNIT" <<EOF || return 1
[Unit]
Description=etcd member h$n of the test cluster $NAP_CLUSTER_ID

[Service]
Type=exec
ExecStart=/usr/bin/etcd --name h$n --data-dir $d/etcd \\
        --listen-peer-urls http://$ip:2380 --initial-advertise-peer-urls http://$ip:2380 \\
        --listen-client-urls http://$ip:2379,http://127.0.0.1:2379 --advertise-client-urls http://$ip:2379 \\
        --initial-cluster $(nap_cluster__initial_cluster) \\
        --initial-cluster-state new --initial-cluster-token $NAP_CLUSTER_ID \\
        --pre-vote --logger zap --log-outputs stderr
TimeoutStopSec=10

[Install]
WantedBy=default.target
EOF
        ln -sf "../$NAP_CLUSTER_ETCD_UNIT" "$units/default.target.wants/$NAP_CLUSTER_ETCD_UNIT"
}

# Starts host N's init (asynchronously) in fresh cgroups.
nap_cluster__launch() {
        local n=$1 d=$NAP_CLUSTER_DIR/h$1 root
        for root in $(nap__cgroup_roots); do
                mkdir -p "$root/$NAP_CLUSTER_ID-h$n.slice/host-init.scope" \
                        "$root/$NAP_CLUSTER_ID-h$n.slice/user@0.service" || return 1
        done
        rm -f "$d/init.pid"
        (
                for root in $(nap__cgroup_roots); do
                        echo "$BASHPID" >"$root/$NAP_CLUSTER_ID-h$n.slice/host-init.scope/cgroup.procs" || exit 1
                done
                exec {NAP_CLUSTER__STDOUT}>&- {NAP_CLUSTER__STDERR}>&-
                exec nsenter --net="/run/netns/$(nap_cluster_netns "$n")" \
                        unshare --mount --uts --propagation private -- \
                        bash -c '. "$1" && nap_cluster__host_init "$2"' nap-host-init \
                        "$NAP_CLUSTER_LIB" "$n"
        ) </dev/null >>"$d/init.log" 2>&1 &
        # The same process execs nsenter, unshare and then is the init.
        NAP_CLUSTER__LAUNCHED[n]=$!
        # Not a job of this shell: no "Killed" report when the host dies.
        disown "$!"
}

# Host N's manager runs (0), or its init died while booting (2).
nap_cluster__booted() {
        nap_cluster_manager_running "$1" && return 0
        kill -0 "${NAP_CLUSTER__LAUNCHED[$1]}" 2>/dev/null || return 2
        return 1
}

# Waits until host N's manager runs; its logs as diagnostics otherwise.
nap_cluster__await() {
        local n=$1 timeout=${2:-90} d=$NAP_CLUSTER_DIR/h$1 deadline rc
        deadline=$(($(nap_cluster__ms) + timeout * 1000))
        while :; do
                nap_cluster__booted "$n"
                rc=$?
                [ "$rc" = 1 ] && [ "$(nap_cluster__ms)" -lt "$deadline" ] || break
                sleep 0.1
        done
        if [ "$rc" != 0 ]; then
                [ "$rc" = 2 ] && echo "# h$n: its init died while booting" >&2
                [ "$rc" = 1 ] && echo "# h$n: the user manager did not come up in ${timeout} s" >&2
                tail -n 30 "$d/init.log" "$d/manager.log" 2>/dev/null | sed 's/^/#   /' >&2
                return 1
        fi
}

# nap_cluster_host_start N [SECONDS]: boots host N (again, after
# nap_cluster_host_kill: same address, state, machine-id, units and etcd
# data) and waits (default 90 s) until its manager runs and its etcd
# member is healthy (which needs a quorum of the cluster).
nap_cluster_host_start() {
        local n=$1 timeout=${2:-90}
        if nap_cluster_host_up "$n"; then
                echo "nap_cluster_host_start: h$n is up" >&2
                return 1
        fi
        nap_cluster__cgroups_remove "$n"
        nap_cluster__launch "$n" || return 1
        nap_cluster__await "$n" "$timeout" || return 1
        wait_until "$timeout" nap_cluster_etcd_healthy "$n"
}

# ----------------------------------------------- hosts: failures, network

nap_cluster__cgroups_remove() {
        local n=$1 root dir i
        for i in $(seq 100); do # v1 dirs may hold exiting tasks a moment longer
                for root in $(nap__cgroup_roots); do
                        dir=$root/$NAP_CLUSTER_ID-h$n.slice
                        [ -d "$dir" ] && find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null
                done
                nap_cluster__cgroups_exist "$n" || return 0
                sleep 0.05
        done
        return 1
}

nap_cluster__cgroups_exist() {
        local root
        for root in $(nap__cgroup_roots); do
                [ -d "$root/$NAP_CLUSTER_ID-h$1.slice" ] && return 0
        done
        return 1
}

nap_cluster__populated() {
        local line
        while read -r line; do
                [ "$line" = "populated 0" ] && return 1
        done <"$1/cgroup.events"
        return 0
}

# nap_cluster_host_kill N: hard power-off of host N: SIGKILL to every
# process in its cgroup at once (cgroup.kill: manager, units, journald,
# etcd member, nap_cluster_exec_in_cgroup's commands); returns once none
# is left (NAP_CLUSTER_KILL_MS: milliseconds that took) and its cgroups
# are removed. Its network namespace, link and state stay.
nap_cluster_host_kill() {
        local n=$1 cg t0
        cg=$(nap_cluster_cgroup "$n")
        NAP_CLUSTER_KILL_MS=
        if [ -d "$cg" ]; then
                t0=$(nap_cluster__ms)
                echo 1 >"$cg/cgroup.kill" || return 1
                while nap_cluster__populated "$cg"; do
                        [ $(($(nap_cluster__ms) - t0)) -gt 30000 ] && { echo "nap_cluster_host_kill: h$n still populated after 30 s" >&2; return 1; }
                        sleep 0.01
                done
                NAP_CLUSTER_KILL_MS=$(($(nap_cluster__ms) - t0))
        fi
        rm -f "$NAP_CLUSTER_DIR/h$n/init.pid"
        nap_cluster__cgroups_remove "$n"
}

# nap_cluster_host_isolate N: cuts host N off the network (its link to the
# bridge goes down: packets are dropped silently, as with a pulled cable).
nap_cluster_host_isolate() {
        ip link set "$(nap_cluster_netns "$1")" down
}

# nap_cluster_host_heal N: reconnects host N.
nap_cluster_host_heal() {
        ip link set "$(nap_cluster_netns "$1")" up
}

# nap_cluster_hello_repo [NAME [GREETING]]: the sample app (tests/apps/hello,
# answering on every address, so that other hosts reach it; its greeting's
# default GREETING, else hello) as a git repository at
# $NAP_CLUSTER_DIR/repos/NAME (default hello), committed as nap-test; its
# path on stdout.
nap_cluster_hello_repo() {
        local name=${1:-hello} greeting=${2:-hello}
        local app=$NAP_CLUSTER_DIR/$name repo=$NAP_CLUSTER_DIR/repos/$name
        export GIT_AUTHOR_NAME=nap-test GIT_AUTHOR_EMAIL=nap-test@localhost GIT_CONFIG_NOSYSTEM=1
        export GIT_COMMITTER_NAME=nap-test GIT_COMMITTER_EMAIL=nap-test@localhost
        mkdir -p "$app" && cp "$NAP_SOURCE_ROOT"/tests/apps/hello/* "$app/" &&
                sed -i -e 's/^python3 server.py .*/& --bind 0.0.0.0/' -e "s/{greeting=hello}/{greeting=$greeting}/" \
                        "$app/profile" &&
                make_repo "$repo" "$app/." >/dev/null && echo "$repo"
}

# ----------------------------------------------------------- up and down

# nap_cluster_up [N]: brings up N hosts (default 3, at most 9): the bridge, each
# host's network namespace, veth and address, state and nap.conf, then
# boots them all at once and waits until every manager runs and the etcd
# cluster is healthy. Registers the teardown (nap_cluster_down) on EXIT.
# Sets NAP_CLUSTER_HOSTS and NAP_CLUSTER_UP_MS (the time it took).
nap_cluster_up() {
        [ -n "${NAP_CLUSTER_INSIDE:-}" ] || { echo "nap_cluster_up: call nap_cluster_enter first" >&2; exit 1; }
        local hosts=${1:-3} n t0 br=$NAP_CLUSTER_ID-br
        t0=$(nap_cluster__ms)
        # Interface names have at most 15 characters: napc-PID-hN.
        [ "$hosts" -ge 1 ] && [ "$hosts" -le 9 ] || { echo "nap_cluster_up: 1 to 9 hosts, not $hosts" >&2; exit 1; }
        export NAP_CLUSTER_HOSTS=$hosts
        export SYSTEMD_PAGER='' SYSTEMD_COLORS=0 SYSTEMD_LOG_COLOR=0
        # The EXIT trap may run inside a command whose output goes
        # elsewhere (a signal during `check … cmd >/dev/null`): it writes
        # to copies of the script's own stdout and stderr.
        exec {NAP_CLUSTER__STDOUT}>&1 {NAP_CLUSTER__STDERR}>&2
        trap nap_cluster__on_exit EXIT
        trap 'exit 130' INT
        trap 'exit 143' TERM
        NAP_CLUSTER_ACTIVE=1

        mkdir -p "$NAP_CLUSTER_DIR" || exit 1
        # As in lib.sh's sandbox, the managers' environment reaches the
        # generator: sidecars run this build's nap-discovery (a copy: they
        # have PrivateTmp=).
        if [ -n "${NAP_DISCOVERY:-}" ] && [ -z "${NAP_DISCOVERY_BINARY:-}" ]; then
                NAP_DISCOVERY_BINARY=$(nap_cluster_copy_bin "$NAP_DISCOVERY") || exit 1
                export NAP_DISCOVERY_BINARY
        fi
        ip link set lo up &&
                ip link add "$br" type bridge &&
                ip addr add "$NAP_CLUSTER_NET.1/24" dev "$br" &&
                ip link set "$br" up || { echo "Bail out! cannot make the bridge $br"; exit 1; }
        for n in $(seq 1 "$hosts"); do
                local ns
                ns=$(nap_cluster_netns "$n")
                ip netns add "$ns" &&
                        ip link add "$ns" type veth peer name eth0 netns "$ns" &&
                        ip link set "$ns" master "$br" up &&
                        ip -n "$ns" addr add "$(nap_cluster_ip "$n")/24" dev eth0 &&
                        ip -n "$ns" link set lo up &&
                        ip -n "$ns" link set eth0 up || { echo "Bail out! cannot make the network of h$n"; exit 1; }
                nap_cluster__host_prepare "$n" || { echo "Bail out! cannot write the state of h$n"; exit 1; }
        done
        for n in $(seq 1 "$hosts"); do
                nap_cluster__launch "$n" || { echo "Bail out! cannot start h$n"; exit 1; }
        done
        for n in $(seq 1 "$hosts"); do
                nap_cluster__await "$n" || { echo "Bail out! h$n did not boot"; exit 1; }
        done
        if ! wait_until 90 nap_cluster_etcd_all_healthy; then
                for n in $(seq 1 "$hosts"); do
                        echo "# h$n: etcd member's log (last 15 lines)"
                        nap_cluster_exec "$n" timeout 10 journalctl --no-pager -q -n 15 -o cat \
                                --user-unit "$NAP_CLUSTER_ETCD_UNIT" 2>&1 | sed 's/^/#   /'
                done
                echo "Bail out! the etcd cluster did not become healthy in 90 s"
                exit 1
        fi
        NAP_CLUSTER_UP_MS=$(($(nap_cluster__ms) - t0))
        log "cluster $NAP_CLUSTER_ID up: $hosts hosts on $NAP_CLUSTER_NET.0/24 in $NAP_CLUSTER_UP_MS ms"
}

# nap_cluster_diag: each host's manager log and journal (last lines), as
# TAP comments.
nap_cluster_diag() {
        local n
        for n in $(seq 1 "${NAP_CLUSTER_HOSTS:-0}"); do
                nap_cluster_host_up "$n" || { echo "# --- h$n: down ---"; continue; }
                if [ -s "$NAP_CLUSTER_DIR/h$n/manager.log" ]; then
                        echo "# --- h$n: user manager stderr (last 20 lines) ---"
                        tail -n 20 "$NAP_CLUSTER_DIR/h$n/manager.log" | sed 's/^/#   /'
                fi
                echo "# --- h$n: journal but the etcd member (last 40 lines) ---"
                nap_cluster_exec "$n" timeout 10 journalctl --no-pager -q -o short-precise 2>&1 |
                        grep -v '^[^ ]* [^ ]* [^ ]* [^ ]* etcd\[' | tail -n 40 | sed 's/^/#   /'
                echo "# --- h$n: the etcd member (last 10 lines) ---"
                nap_cluster_exec "$n" timeout 10 journalctl --no-pager -q -n 10 -o cat \
                        --user-unit "$NAP_CLUSTER_ETCD_UNIT" 2>&1 | sed 's/^/#   /'
        done
}

# nap_cluster_down: tears the whole cluster down: every host killed, its
# cgroups removed, veths, network namespaces and the bridge deleted, every
# other process of the run killed, the state directory removed. Safe to
# call twice (the EXIT trap calls it again). Shows nap_cluster_diag first
# when a test failed or NAP_TEST_VERBOSE=1. Sets NAP_CLUSTER_DOWN_MS.
nap_cluster_down() {
        [ "${NAP_CLUSTER_ACTIVE:-0}" = 1 ] || return 0
        local n cg t0
        if [ "${NAP_TEST_VERBOSE:-0}" = 1 ] || [ "$NAP_TESTS_FAILED" -gt 0 ] || [ "${1:-}" = --diag ]; then
                nap_cluster_diag
        fi
        t0=$(nap_cluster__ms)
        for n in $(seq 1 "${NAP_CLUSTER_HOSTS:-0}"); do # all at once
                cg=$(nap_cluster_cgroup "$n")
                [ -d "$cg" ] && echo 1 >"$cg/cgroup.kill"
        done
        for n in $(seq 1 "${NAP_CLUSTER_HOSTS:-0}"); do
                nap_cluster_host_kill "$n"
        done
        # Deleting a veth is synchronous; a network namespace goes when its
        # last reference does, later.
        for n in $(seq 1 "${NAP_CLUSTER_HOSTS:-0}"); do
                ip link del "$(nap_cluster_netns "$n")" 2>/dev/null
                ip netns del "$(nap_cluster_netns "$n")" 2>/dev/null
        done
        ip link del "$NAP_CLUSTER_ID-br" 2>/dev/null
        # Whatever else runs in the run's PID namespace (a command of
        # nap_cluster_exec left in the background) ends now; PID 1 is this
        # script and is spared.
        if [ "$$" -eq 1 ]; then
                kill -KILL -1 2>/dev/null
                wait 2>/dev/null
                wait_until 10 nap_cluster__alone
        fi
        rm -rf "$NAP_CLUSTER_DIR"
        NAP_CLUSTER_ACTIVE=0
        NAP_CLUSTER_DOWN_MS=$(($(nap_cluster__ms) - t0))
}

# nap_cluster__alone: no process but this one (PID 1) in the run.
nap_cluster__alone() {
        local p
        for p in /proc/[0-9]*; do
                [ "${p#/proc/}" = 1 ] || [ "${p#/proc/}" = "$BASHPID" ] && continue
                [ -d "$p" ] && return 1
        done
        return 0
}

# nap_cluster_leftovers: prints what of this run still exists (network
# namespaces, links, cgroups, processes other than PID 1, the state
# directory), one a line; nothing once nap_cluster_down is done.
nap_cluster_leftovers() {
        local root p comm
        ip netns list 2>/dev/null | awk -v id="$NAP_CLUSTER_ID-" 'index($1, id) == 1 { print "netns " $1 }'
        ip -o link show 2>/dev/null | awk -F': ' -v id="$NAP_CLUSTER_ID-" 'index($2, id) == 1 { sub(/@.*/, "", $2); print "link " $2 }'
        for root in $(nap__cgroup_roots); do
                for p in "$root/$NAP_CLUSTER_ID"-*; do
                        [ -e "$p" ] && echo "cgroup $p"
                done
        done
        for p in /proc/[0-9]*; do
                [ "${p#/proc/}" = 1 ] || [ "${p#/proc/}" = "$BASHPID" ] && continue
                comm=$(cat "$p/comm" 2>/dev/null) || continue
                echo "process ${p#/proc/} $comm"
        done
        [ -e "$NAP_CLUSTER_DIR" ] && echo "directory $NAP_CLUSTER_DIR"
        return 0
}

nap_cluster__on_exit() {
        local rc=$?
        trap - EXIT INT TERM
        exec 1>&"$NAP_CLUSTER__STDOUT" 2>&"$NAP_CLUSTER__STDERR"
        if [ "$rc" -ne 0 ]; then nap_cluster_down --diag; else nap_cluster_down; fi
        if [ "$NAP_TESTS_FAILED" -gt 0 ]; then
                echo "# --- failed ---"
                printf '# not ok %s\n' "${NAP_TESTS_FAILED_NAMES[@]}"
        fi
        [ "$NAP_TESTS_N" -gt 0 ] && nap__summary_line
        exit "$rc"
}

# -------------------------------------------------- entering the run's ns

# Removes the cgroups (and any process left in them), network namespaces
# and links of runs of this harness whose owner process is gone, as named
# napc-OWNER-…; with an argument, those of that run id too (its own, after
# it ended). Prints what it removed.
nap_cluster__sweep() {
        local mine=${1:-} root dir name
        nap_cluster__stale() { # NAME: true if its run is over
                local o=${1#"$NAP_CLUSTER_PREFIX"}
                o=${o%%-*}
                [ -n "$mine" ] && [ "${1#"$mine"-}" != "$1" ] && return 0
                case $o in '' | *[!0-9]*) return 1 ;; esac
                ! kill -0 "$o" 2>/dev/null
        }
        for root in $(nap__cgroup_roots); do
                for dir in "$root/$NAP_CLUSTER_PREFIX"*; do
                        [ -d "$dir" ] || continue
                        nap_cluster__stale "${dir##*/}" || continue
                        [ -e "$dir/cgroup.kill" ] && echo 1 >"$dir/cgroup.kill" 2>/dev/null
                        nap__cgroup_remove "$dir" || :
                        echo "cgroup $dir"
                done
        done
        for name in $(ip -o link show 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'); do
                case $name in "$NAP_CLUSTER_PREFIX"*) nap_cluster__stale "$name" && ip link del "$name" 2>/dev/null && echo "link $name" ;; esac
        done
        for name in $(ip netns list 2>/dev/null | awk '{ print $1 }'); do
                case $name in "$NAP_CLUSTER_PREFIX"*) nap_cluster__stale "$name" && ip netns del "$name" 2>/dev/null && echo "netns $name" ;; esac
        done
        return 0
}

# 10.233.X.0/24 with X from the run id, skipping any subnet the machine
# has an address or a route in (the run has its own network namespace, so
# this is for whoever reads addresses in logs and traces).
nap_cluster__pick_net() {
        local x=$(($1 % 250 + 1)) i used
        used=$( (ip -4 -o addr show; ip -4 route show table all) 2>/dev/null)
        for i in $(seq 250); do
                if ! printf '%s\n' "$used" | grep -q "10\.233\.$x\."; then
                        echo "10.233.$x"
                        return 0
                fi
                x=$((x % 250 + 1))
        done
        echo "10.233.$x"
}

# Can this machine make what a run needs? Prints the reason when not.
nap_cluster__can_run() {
        local root probe ok=0
        # What a host's init does too: tmpfs mounts and device nodes.
        unshare --mount --pid --net --uts --fork --mount-proc --propagation private \
                sh -c 'ip link add b0 type bridge && ip link add v0 type veth peer name v1 &&
                        mount -t tmpfs tmpfs /mnt && mknod -m 0000 /mnt/b b 0 0 && hostname probe' >/dev/null 2>&1 ||
                { echo "cannot create network, mount, PID and UTS namespaces, a bridge, veths and device nodes here"; return 1; }
        probe=$NAP_CLUSTER_PREFIX$$-probe
        for root in $(nap__cgroup_roots); do
                mkdir "$root/$probe" 2>/dev/null || { echo "cannot create cgroups in $root"; ok=1; break; }
        done
        [ "$ok" = 0 ] && [ ! -e "$(nap_cluster__v2_root)/$probe/cgroup.kill" ] &&
                { echo "no cgroup.kill in the unified hierarchy (Linux >= 5.14 needed)"; ok=1; }
        for root in $(nap__cgroup_roots); do
                rmdir "$root/$probe" 2>/dev/null
        done
        [ -n "$(nap__cgroup_roots)" ] || { echo "no cgroup hierarchy found"; return 1; }
        return "$ok"
}

# nap_cluster_enter "$@": outside the run, checks what is needed (skips
# with 77 if this machine cannot run it, fails instead with
# NAP_TEST_REQUIRE_SANDBOX=1), removes what crashed runs left, picks the
# run id and subnet, re-runs "$0" "$@" as PID 1 of new PID, mount and
# network namespaces with a tmpfs on /run, removes the run's cgroups
# after it (if it could not), and exits with its status. Inside, returns.
nap_cluster_enter() {
        if [ -n "${NAP_CLUSTER_INSIDE:-}" ]; then
                [ "$$" -eq 1 ] || { echo "nap_cluster_enter: not PID 1 of the run" >&2; exit 1; }
                # -n: libmount would otherwise create /run/mount on the machine's /run.
                mount -n -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run || { echo "Bail out! cannot mount /run"; exit 1; }
                return 0
        fi
        local t why rc=0 timeout=${NAP_SANDBOX_TIMEOUT:-900} swept
        [ "$(id -u)" -eq 0 ] || skip_all "must run as root (namespaces, cgroups, a bridge)"
        for t in unshare nsenter ip etcd etcdctl curl python3 /lib/systemd/systemd /lib/systemd/systemd-journald; do
                command -v "$t" >/dev/null || skip_all "$t not found"
        done
        if [ -n "${NAP_GENERATOR:-}" ]; then
                [ -x "$NAP_GENERATOR" ] || { echo "Bail out! NAP_GENERATOR=$NAP_GENERATOR is not an executable"; exit 1; }
                NAP_GENERATOR=$(realpath "$NAP_GENERATOR")
                export NAP_GENERATOR
        fi
        why=$(nap_cluster__can_run) || skip_all "$why"

        swept=$(nap_cluster__sweep)
        [ -n "$swept" ] && printf '%s\n' "$swept" | sed 's/^/# removed what an earlier run left: /'
        NAP_CLUSTER_ID=$NAP_CLUSTER_PREFIX$$
        NAP_CLUSTER_DIR=/run/$NAP_CLUSTER_ID
        NAP_CLUSTER_NET=$(nap_cluster__pick_net $$)
        NAP_CLUSTER_LIB=$(realpath "${BASH_SOURCE[0]}")
        export NAP_CLUSTER_ID NAP_CLUSTER_DIR NAP_CLUSTER_NET NAP_CLUSTER_LIB NAP_CLUSTER_INSIDE=1

        # As lib.sh's nap_sandbox_enter: --kill-child, so that if unshare
        # dies the kernel kills the whole run; timeout(1) sends SIGTERM
        # (PID 1 tears down) and SIGKILL 10 s later.
        local fg=()
        [ -t 0 ] && fg=(--foreground)
        timeout "${fg[@]}" --kill-after=10 "$timeout" \
                unshare --mount --pid --net --fork --kill-child --mount-proc --propagation private \
                -- bash "$0" "$@" || rc=$?
        case $rc in 124 | 137) echo "# cluster: timed out after ${timeout}s (or was killed)" >&2 ;; esac
        swept=$(nap_cluster__sweep "$NAP_CLUSTER_ID")
        [ -n "$swept" ] && printf '%s\n' "$swept" | sed 's/^/# cluster: removed after the run: /'
        exit "$rc"
}
