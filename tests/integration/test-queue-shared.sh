#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# One queue, two hosts: two nap-queued (plain processes, each on its own
# Unix socket) over one real etcd, two real nap-node agents as the
# capacity, and a real callback receiver (queue-receiver.py) counting what
# it is sent. Both daemons watch the same prefix and race to admit and to
# call back:
#   a job created through one is seen, refused as a duplicate and moved
#     through the other
#   when the nodes join: the first four in priority order running, each
#     reserved once, each callback received exactly once
#   releases through either host admit the next ones, callbacks once
#   one host killed (SIGKILL): the other admits and calls back alone

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../etcd-lib.sh"
. "$(dirname "$0")/queue-lib.sh"

nap_napctl_env
[ -n "${NAP_SANDBOX_INSIDE:-}" ] || [ -x "$ETCD_BIN" ] || skip_all "no $ETCD_BIN (Debian's etcd-server)"
nap_sandbox_enter "$@"
nap_sandbox_start
trap 'nap__rc=$?; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; etcd_stop; (exit $nap__rc); nap_sandbox_stop' EXIT

etcd_start "$NAP_TEST_DIR" || { echo "Bail out! etcd did not start"; exit 1; }
printf 'Etcd=%s\n' "$ETCD_URL" >>"$NAP_CONFIG"
etcdq() { ETCDCTL_API=3 timeout 10 etcdctl --endpoints="$ETCD_URL" "$@" 2>/dev/null; }

declare -A QPID
queued() { # NAME: a nap-queued on $NAP_TEST_DIR/NAME.sock
        "$NAP_BUILD_ROOT/helpers/nap-queued" --listen="$NAP_TEST_DIR/$1.sock" --idle-timeout=0 \
                >>"$NAP_TEST_DIR/queued-$1.log" 2>&1 &
        QPID[$1]=$!
        PIDS+=($!)
        wait_until 10 test -S "$NAP_TEST_DIR/$1.sock"
}
on() { SOCK=$NAP_TEST_DIR/$1.sock; } # the host the next requests go to
queued a && queued b || { echo "Bail out! nap-queued did not start"; exit 1; }
receiver main 0 || { echo "Bail out! the receiver did not start"; exit 1; }
MAIN=$RPORT

# ================================================================= shared
log "one queue through either host"
for i in 1 2 3 4 5 6 7 8; do
        on $([ $((i % 2)) = 1 ] && echo a || echo b)
        q POST /v1/vm/ "$(job "j$i" y "http://127.0.0.1:$MAIN/j$i")" >/dev/null
done
on a
A=$(ids) && on b
assert_eq "both hosts list the same jobs in the same order" "j1,j2,j3,j4,j5,j6,j7,j8 j1,j2,j3,j4,j5,j6,j7,j8" "$A $(ids)"
on b
R=$(q POST /v1/vm/ "$(job j1 y "http://127.0.0.1:$MAIN/other")")
assert_eq "a request_id created through a refused through b: 409 JobExists" "409 JobExists" \
        "$(code "$R") $(jqb "$R" .kind)"
P1=$(q GET /v1/vm/j1/ | sed -n 2p | grep -o '"Priority":-\?[0-9]*' | cut -d: -f2)
q POST /v1/vm/j8 "{\"priority\": $((P1 - 1))}" >/dev/null
on a
assert_eq "moved through b, seen through a" "j8,j1,j2" "$(ids | cut -d, -f1-3)"

# ============================================================== admission
log "admission: both hosts race, each job admitted and called back once"
agent h1
agent h2
on a
wait_until 15 output_at_least 4 running_count
assert_eq "the first four in priority order running" "j8,j1,j2,j3" "$(ids '?status=running')"
assert_eq "the rest queued" "j4,j5,j6,j7" "$(ids '?status=queued')"
assert_eq "four compute reservations, no more" 4 "$(etcdq get --prefix /nap/names/compute/ --keys-only | grep -c .)"
wait_until 10 output_at_least 4 got main
sleep 1 # a second delivery would come now
once() { for j in "$@"; do got main "/$j\$"; done | tr '\n' ' ' | sed 's/ $//'; }
assert_eq "one callback each, none twice" "1 1 1 1 0" "$(once j8 j1 j2 j3 j4)"
assert_eq "each job's history: queued, running (admitted once)" "queued,running" \
        "$(for j in j8 j1 j2 j3; do q GET /v1/vm/$j/history | sed -n 2p | jq -r '[.data[].Status] | join(",")'; done | sort -u)"

log "releases through either host"
on a && q POST /v1/vm/j8/done >/dev/null
on b && q POST /v1/vm/j1/done >/dev/null
wait_until 10 output_at_least 1 got main /j5
sleep 1
assert_eq "the next two admitted" "j2,j3,j4,j5" "$(ids '?status=running')"
assert_eq "their callbacks once" "1 1 0" "$(once j4 j5 j6)"
assert_eq "still four compute reservations" 4 "$(etcdq get --prefix /nap/names/compute/ --keys-only | grep -c .)"

log "one host killed: the other goes on alone"
kill -KILL "${QPID[a]}"
wait "${QPID[a]}" 2>/dev/null
on b && q POST /v1/vm/j2/done >/dev/null
wait_until 10 output_at_least 1 got main /j6
sleep 1
assert_eq "b admitted the next" "j3,j4,j5,j6" "$(ids '?status=running')"
assert_eq "callbacks: every admitted job once" "1 1 1 1 1 1 1 0" "$(once j8 j1 j2 j3 j4 j5 j6 j7)"

nap_summary
