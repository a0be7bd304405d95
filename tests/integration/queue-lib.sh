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
