# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# Helpers of the queue's tests (test-queue*.sh), sourced after lib.sh:
# HTTP to a nap-queued's Unix socket ($SOCK), jobs, and real callback
# receivers (queue-receiver.py) and what they were sent. PIDS collects
# the receivers' pids for the caller's cleanup.

# q [-u UID] METHOD PATH [BODY]: the HTTP status on the first line (000:
# no answer), the body on the second
q() {
        local as=() out
        if [ "$1" = -u ]; then as=(setpriv --reuid="$2" --regid="$2" --clear-groups); shift 2; fi
        local m=$1 path=$2 body=${3-}
        local args=(-s --max-time 20 --unix-socket "$SOCK" -X "$m" -w '\n%{http_code}')
        [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
        out=$("${as[@]}" curl "${args[@]}" "http://queue$path" 2>/dev/null)
        printf '%s\n%s\n' "${out##*$'\n'}" "${out%$'\n'*}"
}
code() { printf '%s\n' "$1" | head -n 1; }
body() { printf '%s\n' "$1" | sed -n 2p; }
jqb() { body "$1" | jq -r "$2" 2>&1; }
ids() { q GET "/v1/vm/${1-}" | sed -n 2p | jq -r '[.data[].RequestID] | join(",")'; }
running_count() { ids '?status=running' | tr ',' '\n' | grep -c .; } # how many jobs run
job_data() { q GET "/v1/vm/$1/" | sed -n 2p | jq -r ".data.$2"; }    # ID FIELD: the job's FIELD
# job JSON for request_id $1 owner $2 callback $3 and VCPU $4
job() { printf '{"request_id":"%s","owner_id":"%s","data":{"instances":[{"VCPU":%s,"Memory":1024,"Disk":1}],"project":"project id"},"callback":"%s"}' "$1" "$2" "${4:-1}" "$3"; }

PIDS=()
receiver() { # NAME FAIL [PORT]: starts one, sets RPORT
        mkdir -p "$NAP_TEST_DIR/recv"
        rm -f "$NAP_TEST_DIR/recv/$1.port"
        python3 "$NAP_SOURCE_ROOT/tests/integration/queue-receiver.py" "$NAP_TEST_DIR/recv/$1.log" \
                "$NAP_TEST_DIR/recv/$1.port" "$2" ${3:-} &
        PIDS+=($!)
        wait_until 10 test -s "$NAP_TEST_DIR/recv/$1.port" || return 1
        RPORT=$(cat "$NAP_TEST_DIR/recv/$1.port")
}
got() { # RECEIVER [PATH]: how many POSTs it received (for PATH)
        [ -e "$NAP_TEST_DIR/recv/$1.log" ] || { echo 0; return; }
        jq -r .path "$NAP_TEST_DIR/recv/$1.log" | grep -c "${2:-.}"
}
agent() { # NAME: a real nap-node agent, 2 CPUs and 2 GiB
        sed "/^Etcd=/a Node=$1\nCPU=2\nMemory=2G\nStorage=100G\nNodeTTL=3" "$NAP_CONFIG" >"$NAP_TEST_DIR/$1.conf"
        NAP_CONFIG=$NAP_TEST_DIR/$1.conf "$NAP_BUILD_ROOT/helpers/nap-node" >>"$NAP_TEST_DIR/$1.log" 2>&1 &
        PIDS+=($!)
}

# ---- nap's own starts in the queue (test-queue-start.sh, test-mpi-queue.sh):
# a real etcd, this host as node h1 of a real nap-node agent, nap-queued
# socket-activated by the sandbox's user manager (after etcd-lib.sh)

etcdq() { ETCDCTL_API=3 timeout 10 etcdctl --endpoints="$ETCD_URL" "$@" 2>/dev/null; }

# queued_install [OPTION...]: nap-queued as a user service of the
# sandbox's manager, from this build, with OPTIONs, exiting after 3 s idle
# (so that its socket activation is used); its socket started. Drop-ins
# of nap-queued.socket written before it apply.
queued_install() {
        local dir=$XDG_RUNTIME_DIR/systemd/user bin=$NAP_TEST_DIR/bin/nap-queued
        mkdir -p "$NAP_TEST_DIR/bin" "$dir/nap-queued.service.d" && cp "$NAP_BUILD_ROOT/helpers/nap-queued" "$bin" &&
                cp "$NAP_BUILD_ROOT/units/nap-queued.service" "$NAP_BUILD_ROOT/units/nap-queued.socket" "$dir/" || return 1
        printf '[Service]\nExecStart=\nExecStart=%s --idle-timeout=3%s\nEnvironment=NAP_CONFIG=%s\nRestart=no\n' \
                "$bin" "${*:+ $*}" "$NAP_CONFIG" >"$dir/nap-queued.service.d/50-test.conf"
        timeout 30 systemctl --user daemon-reload && timeout 30 systemctl --user start nap-queued.socket
}

h1_ready() { etcdq get --keys-only /nap/members/h1 | grep -q h1; }

# queue_host_up CPUS: etcd started; nap.conf kept as it is in
# $NAP_TEST_DIR/no-etcd.conf, then given Etcd= and node h1 (CPUS CPUs,
# 1 GiB); nap-node running (its pid in PIDS); nap-queued's socket
# listening (SOCK, $NAP_QUEUE_SOCKET); h1 Ready. Bails out otherwise.
queue_host_up() {
        etcd_start "$NAP_TEST_DIR/etcd" || { echo "Bail out! etcd did not start"; exit 1; }
        cp "$NAP_CONFIG" "$NAP_TEST_DIR/no-etcd.conf"
        printf 'Etcd=%s\nNode=h1\nCPU=%s\nMemory=1G\nStorage=10G\nNodeTTL=3\n' "$ETCD_URL" "$1" >>"$NAP_CONFIG"
        "$NAP_BUILD_ROOT/helpers/nap-node" >>"$NAP_TEST_DIR/nap-node.log" 2>&1 &
        PIDS+=($!)
        SOCK=$XDG_RUNTIME_DIR/nap/queue
        export NAP_QUEUE_SOCKET=$SOCK
        queued_install || { echo "Bail out! cannot install nap-queued"; exit 1; }
        wait_until 30 h1_ready || { echo "Bail out! node h1 is not Ready"; exit 1; }
}

# The queue's view of nap's own starts.
job_of() { sed -n 's/^Queued: job \([^ ]*\) .*/\1/p' "$1" | head -n 1; } # FILE: the job napctl said
job_status() { etcdq get --print-value-only "/nap/queue/jobs/nap-start/$1" | jq -r .status 2>&1; }
usage_cpu() { etcdq get --print-value-only /nap/usage/h1 | jq -r .cpu_milli 2>&1; }
reservations() { etcdq get --prefix --keys-only /nap/reservations/h1/ | grep . | sed 's|.*/||' | sort | tr '\n' ' '; }
queued_in() { grep -q '^Queued: job ' "$NAP_TEST_DIR/$1.out"; } # NAME: NAME.out says it was queued
