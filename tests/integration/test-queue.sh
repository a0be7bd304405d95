#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The resource queue (seed 003) for real: nap-queued socket-activated by a
# real systemd user manager (nap-queued.socket), a real etcd, two real
# nap-node agents as the inventory's capacity, and a real HTTP callback
# receiver (queue-receiver.py) counting what it is sent.
#
#   the seed's README replayed in shape: create, duplicate refused, list,
#     filters, get one, reorder to first / last / between
#   bad input: named errors, HTTP statuses, nothing changed in etcd
#   authorization: an owner (peer uid) sees and changes only its own jobs
#   admission: five jobs, two hosts' worth of capacity: the first four in
#     priority order, when the nodes join (the watch, not a poll); the
#     callbacks signed, one each
#   restart of nap-queued (SIGKILL) and of an etcd member (of a real
#     3-member cluster on loopback) mid-queue and mid-delivery: nothing
#     lost, nothing admitted twice, the delivery resumed
#   release: the next job admitted within a second, its callback once
#   a receiver failing 3 times: 4 attempts, one delivery id
#   idle exit only when nothing waits; the socket starts it again

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../etcd-lib.sh"
. "$(dirname "$0")/queue-lib.sh"

nap_napctl_env
[ -n "${NAP_SANDBOX_INSIDE:-}" ] || [ -x "$ETCD_BIN" ] || skip_all "no $ETCD_BIN (Debian's etcd-server)"
nap_sandbox_enter "$@"
nap_sandbox_start
nap_users_setup || { echo "Bail out! cannot set up the test users"; exit 1; }
chmod 0711 "$XDG_RUNTIME_DIR" # other uids reach the socket
trap 'nap__rc=$?; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; for m in 1 2 3; do member_stop $m; done; (exit $nap__rc); nap_sandbox_stop' EXIT

# A 3-member etcd cluster on loopback ports, kept for restarts.
declare -A CP PP EPID
for m in 1 2 3; do CP[$m]=$(etcd_free_port) PP[$m]=$(etcd_free_port); done
CLUSTER="m1=http://127.0.0.1:${PP[1]},m2=http://127.0.0.1:${PP[2]},m3=http://127.0.0.1:${PP[3]}"
ETCD_URL="http://127.0.0.1:${CP[1]},http://127.0.0.1:${CP[2]},http://127.0.0.1:${CP[3]}"
member_start() {
        local u=http://127.0.0.1:${CP[$1]} p=http://127.0.0.1:${PP[$1]}
        "$ETCD_BIN" --name "m$1" --data-dir "$NAP_TEST_DIR/etcd/m$1" --listen-client-urls "$u" \
                --advertise-client-urls "$u" --listen-peer-urls "$p" --initial-advertise-peer-urls "$p" \
                --initial-cluster "$CLUSTER" --initial-cluster-state new >>"$NAP_TEST_DIR/etcd/m$1.log" 2>&1 &
        EPID[$1]=$!
}
member_stop() { [ -n "${EPID[$1]:-}" ] && kill "${EPID[$1]}" 2>/dev/null && wait "${EPID[$1]}" 2>/dev/null; EPID[$1]=; }
member_healthy() { curl -sf --max-time 1 "http://127.0.0.1:${CP[$1]}/health" | grep -q '"health":"true"'; }
mkdir -p "$NAP_TEST_DIR/etcd"
for m in 1 2 3; do member_start $m; done
wait_until 30 member_healthy 1 && wait_until 10 member_healthy 2 && wait_until 10 member_healthy 3 ||
        { echo "Bail out! the etcd cluster did not start"; exit 1; }
printf 'Etcd=%s\n' "$ETCD_URL" >>"$NAP_CONFIG"
SOCK=$XDG_RUNTIME_DIR/nap/queue
TPORT=$(etcd_free_port)
export NAP_QUEUE_SOCKET=$SOCK
# and TCP, where a bearer token is needed
mkdir -p "$XDG_RUNTIME_DIR/systemd/user/nap-queued.socket.d" &&
        printf '[Socket]\nListenStream=127.0.0.1:%s\n' "$TPORT" >"$XDG_RUNTIME_DIR/systemd/user/nap-queued.socket.d/50-tcp.conf"
queued_state() { timeout 30 systemctl --user show -P ActiveState nap-queued.service 2>&1; }
queued_stopped() { [ "$(queued_state)" != active ]; }
# Attempts 100 ms apart, doubling: 9 take 25 s, so a delivery that must
# outlive a restart of nap-queued (below) is not given up on a loaded machine
# (6 took 3 s and ran out once under stress-ng).
queued_install --callback-backoff-ms=100 --callback-attempts=9 || { echo "Bail out! cannot install nap-queued"; exit 1; }

snapshot() { etcdq get --prefix /nap/queue/ -w json | jq -c '[.kvs[]? | [.key, .mod_revision]]' | sha256sum; }

# ============================================================= the README
log "the seed's README"
R=$(q POST /v1/vm/ "$(job d y http://127.0.0.1:1/d 64)")
assert_eq "create: HTTP 200" 200 "$(code "$R")"
assert_eq "create: the seed's fields, in its order" \
        "ID,CreatedAt,UpdatedAt,DeletedAt,RequestID,Type,OwnerID,Data,Callback,Priority,Status" \
        "$(jqb "$R" '[.data | keys_unsorted[]][0:11] | join(",")')"
assert_eq "create: the values" "true d vm y queued null number string" \
        "$(jqb "$R" '"\(.ok) \(.data.RequestID) \(.data.Type) \(.data.OwnerID) \(.data.Status) \(.data.DeletedAt) \(.data.Priority | type) \(.data.Data | type)"')"
assert_eq "create: Data is the data object as a string, keys sorted" \
        '{"instances":[{"Disk":1,"Memory":1024,"VCPU":64}],"project":"project id"}' "$(jqb "$R" .data.Data)"
assert_match "create: RFC 3339 times" "$(jqb "$R" .data.CreatedAt)" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{9}Z$'
check "socket activation: the first request started nap-queued" test "$(queued_state)" = active
SNAP=$(snapshot)
R=$(q POST /v1/vm/ "$(job d y http://127.0.0.1:1/other 64)")
assert_eq "a duplicate request_id: 409 JobExists" "409 false JobExists" "$(code "$R") $(jqb "$R" '"\(.ok) \(.kind)"')"
R=$(q POST /v1/vm/ "$(job e y http://127.0.0.1:1/d 64)")
assert_eq "a duplicate callback: 409 JobExists" "409 JobExists" "$(code "$R") $(jqb "$R" .kind)"
assert_eq "nothing changed in etcd" "$SNAP" "$(snapshot)"
q POST /v1/vm/ "$(job a x http://127.0.0.1:1/a 64)" >/dev/null
q POST /v1/vm/ "$(job b x http://127.0.0.1:1/b 64)" >/dev/null
assert_eq "list: all jobs of the type, in priority order (FIFO)" "d,a,b" "$(ids)"
assert_eq "filter ?owner_id=x&status=queued" "a,b" "$(ids '?owner_id=x&status=queued')"
assert_eq "filter ?owner_id=y" "d" "$(ids '?owner_id=y')"
assert_eq "filter ?status=queue (the README's spelling)" "d,a,b" "$(ids '?status=queue')"
assert_eq "filter ?status=running" "" "$(ids '?status=running')"
R=$(q GET /v1/vm/d/)
assert_eq "get one: /v1/vm/d/" "200 d y" "$(code "$R") $(jqb "$R" '"\(.data.RequestID) \(.data.OwnerID)"')"
# (not through jq: a priority is a 64-bit integer, jq's numbers are doubles)
prio() { q GET "/v1/vm/$1/" | sed -n 2p | grep -o '"Priority":-\?[0-9]*' | cut -d: -f2; }
MIN=$(prio d) MAX=$(prio b)
R=$(q POST /v1/vm/b "{\"priority\": $((MIN - 1))}")
assert_eq "reorder: answers {\"data\":{},\"ok\":true}" '200 {"data":{},"ok":true}' "$(code "$R") $(body "$R")"
assert_eq "reorder to first (min-1)" "b,d,a" "$(ids)"
R=$(q POST /v1/vm/b "{\"priority\": $((MAX + 1))}")
assert_eq "reorder to last (max+1)" "d,a,b" "$(ids)"
PD=$(prio d) PA=$(prio a)
q POST /v1/vm/b "{\"priority\": $(((PD + PA) / 2))}" >/dev/null
assert_eq "reorder between two (their mean)" "d,b,a" "$(ids)"
R=$(q GET /v1/vm/?limit=2\&offset=1)
assert_eq "pagination: ?limit=2&offset=1, with the total" "b,a 3" "$(jqb "$R" '"\([.data[].RequestID] | join(",")) \(.total)"')"
R=$(q GET /v1/vm/b/history)
assert_eq "history" "queued" "$(jqb "$R" '[.data[].Status] | join(",")')"

# ============================================================== bad input
log "bad input: named errors, nothing changed"
SNAP=$(snapshot)
bad() { # DESCRIPTION EXPECTED(code kind parameter) METHOD PATH [BODY]
        local what=$1 want=$2 R
        shift 2
        R=$(q "$@")
        assert_eq "$what" "$want" "$(code "$R") $(jqb "$R" '"\(.ok) \(.kind) \(.parameter // "-")"')"
}
bad "non-JSON" "400 false InvalidParameter -" POST /v1/vm/ 'not json'
bad "a JSON array" "400 false InvalidParameter -" POST /v1/vm/ '[1]'
bad "callback missing" "400 false InvalidParameter callback" POST /v1/vm/ '{"request_id":"m","owner_id":"y","data":{"instances":[{"VCPU":1,"Memory":1,"Disk":1}]}}'
bad "data missing" "400 false InvalidParameter data" POST /v1/vm/ '{"request_id":"m","owner_id":"y","callback":"http://h/m"}'
bad "no instances" "400 false InvalidParameter data" POST /v1/vm/ '{"request_id":"m","owner_id":"y","data":{"instances":[]},"callback":"http://h/m"}'
bad "VCPU not a number" "400 false InvalidParameter data" POST /v1/vm/ '{"request_id":"m","owner_id":"y","data":{"instances":[{"VCPU":"1","Memory":1,"Disk":1}]},"callback":"http://h/m"}'
HUGE=$(head -c 100000 /dev/zero | tr '\0' a)
bad "a huge body: 413" "413 false InvalidParameter -" POST /v1/vm/ "{\"x\":\"$HUGE\"}"
bad "a request_id with /" "400 false InvalidParameter request_id" POST /v1/vm/ "$(job 'a/b' y http://h/s)"
bad "a callback that is not http(s)" "400 false InvalidParameter callback" POST /v1/vm/ "$(job m y ftp://h/m)"
bad "a callback with a space" "400 false InvalidParameter callback" POST /v1/vm/ "$(job m y 'http://h/a b')"
bad "an unknown type: 404" "404 false InvalidParameter type" GET /v1/nosuch/
bad "a type that is no name" "400 false InvalidName -" GET /v1/No_Such/
bad "priority not a number" "400 false InvalidParameter priority" POST /v1/vm/d '{"priority":"first"}'
bad "priority a real" "400 false InvalidParameter priority" POST /v1/vm/d '{"priority":1.5}'
bad "no such job: 404 NoSuchJob" "404 false NoSuchJob -" GET /v1/vm/zz/
bad "a method a route does not take: 405" "405 false InvalidParameter -" PUT /v1/vm/d
bad "status filter unknown" "400 false InvalidParameter -" GET '/v1/vm/?status=sleeping'
bad "over TCP-less Unix socket, token making by root only" "403 false PermissionDenied -" -u "$ALICE_UID" POST /v1/_tokens/ '{"owner_id":"alice"}'
# another owner's job: alice is not y
bad "alice cannot see y's job" "404 false NoSuchJob -" -u "$ALICE_UID" GET /v1/vm/d/
bad "alice cannot move y's job" "404 false NoSuchJob -" -u "$ALICE_UID" POST /v1/vm/d '{"priority":1}'
bad "alice cannot cancel y's job" "404 false NoSuchJob -" -u "$ALICE_UID" DELETE /v1/vm/d
bad "alice cannot submit for y" "403 false PermissionDenied -" -u "$ALICE_UID" POST /v1/vm/ "$(job m y http://h/m)"
bad "alice cannot list y's jobs" "403 false PermissionDenied -" -u "$ALICE_UID" GET '/v1/vm/?owner_id=y'
assert_eq "nothing changed in etcd" "$SNAP" "$(snapshot)"
R=$(q -u "$ALICE_UID" GET /v1/vm/)
assert_eq "alice's list: only her own (none)" "200 0" "$(code "$R") $(jqb "$R" '.data | length')"
R=$(q -u "$ALICE_UID" POST /v1/vm/ "$(job al alice http://127.0.0.1:1/al 64)")
assert_eq "alice submits her own" "200 alice" "$(code "$R") $(jqb "$R" .data.OwnerID)"
assert_eq "and lists it alone" "al" "$(q -u "$ALICE_UID" GET /v1/vm/ | sed -n 2p | jq -r '[.data[].RequestID] | join(",")')"
for id in d a b al; do q DELETE "/v1/vm/$id" >/dev/null; done
R=$(q DELETE /v1/vm/d)
assert_eq "cancel twice: 409, says so" "409 false" "$(code "$R") $(jqb "$R" .ok)"
assert_eq "cancelled jobs stay, DeletedAt set" "cancelled true" \
        "$(q GET /v1/vm/d/ | sed -n 2p | jq -r '"\(.data.Status) \(.data.DeletedAt != null)"')"

# ============================================================== admission
log "admission: five jobs, two hosts' worth of capacity"
receiver main 0 || { echo "Bail out! the receiver did not start"; exit 1; }
MAIN=$RPORT
for i in 1 2 3 4 5; do q POST /v1/vm/ "$(job "j$i" y "http://127.0.0.1:$MAIN/j$i")" >/dev/null; done
assert_eq "no node yet: all five queued" "j1,j2,j3,j4,j5" "$(ids '?status=queued')"
MIN=$(prio j1)
q POST /v1/vm/j5 "{\"priority\": $((MIN - 1))}" >/dev/null
agent h1
agent h2
wait_until 15 output_at_least 4 running_count
assert_eq "the nodes joined: the first four in priority order running" "j5,j1,j2,j3" "$(ids '?status=running')"
assert_eq "the fifth queued" "j4" "$(ids '?status=queued')"
R=$(q GET /v1/vm/j5/)
assert_eq "a running job carries its placements" "1 1 1024 1" \
        "$(jqb "$R" '"\(.data.Placements | length) \(.data.Placements[0].VCPU) \(.data.Placements[0].Memory) \(.data.Placements[0].Disk)"')"
assert_match "on a node" "$(jqb "$R" '.data.Placements[0].Node')" '^h[12]$'
assert_eq "reserved in the inventory: 4 compute and 4 storage" "4 4" \
        "$(etcdq get --prefix /nap/names/compute/ --keys-only | grep -c . ) $(etcdq get --prefix /nap/names/storage/ --keys-only | grep -c .)"
wait_until 10 output_at_least 4 got main
assert_eq "four callbacks, one per admitted job" "1 1 1 1 0" \
        "$(for j in j5 j1 j2 j3 j4; do got main "/$j\$"; done | tr '\n' ' ' | sed 's/ $//')"
SECRET=$(q GET '/v1/_secret?owner_id=y' | sed -n 2p | jq -r .data.Secret)
sig_ok() { # the receiver's line N: its signature is the body's HMAC
        sed -n "${1}p" "$NAP_TEST_DIR/recv/main.log" | SECRET=$SECRET python3 -c '
import hashlib, hmac, json, os, sys
l = json.loads(sys.stdin.read())
want = "sha256=" + hmac.new(os.environ["SECRET"].encode(), l["body"].encode(), hashlib.sha256).hexdigest()
sys.exit(0 if l["signature"] == want else 1)'
}
check "the callbacks are signed with the owner's secret (HMAC-SHA256)" sig_ok 1
DID=$(q GET /v1/vm/j5/ | sed -n 2p | jq -r .data.DeliveryID)
assert_eq "the callback's X-Nap-Delivery is the job's DeliveryID" "$DID" \
        "$(jq -r 'select(.path == "/j5") | .delivery' "$NAP_TEST_DIR/recv/main.log")"
assert_eq "its body is the job, running, with placements" "j5 running 1" \
        "$(jq -r 'select(.path == "/j5") | .body | fromjson | "\(.RequestID) \(.Status) \(.Placements | length)"' "$NAP_TEST_DIR/recv/main.log")"
assert_eq "CallbackStatus delivered" "delivered 1" "$(q GET /v1/vm/j5/ | sed -n 2p | jq -r '"\(.data.CallbackStatus) \(.data.CallbackAttempts)"')"

# ========================================================= restarts
log "restart nap-queued and an etcd member mid-queue and mid-delivery"
DEAD=$(etcd_free_port)
q POST /v1/vm/ "$(job late y "http://127.0.0.1:$DEAD/late")" >/dev/null # behind j4: queued
q DELETE /v1/vm/j2 >/dev/null                                        # frees one slot: j4 admitted
wait_until 5 output_is late ids '?status=queued'
wait_until 5 output_is 1 got main /j4
q DELETE /v1/vm/j3 >/dev/null                                        # late admitted, its receiver down
wait_until 5 output_is running job_data late Status
wait_until 5 output_at_least 1 job_data late CallbackAttempts
q POST /v1/vm/ "$(job waits y "http://127.0.0.1:$MAIN/waits")" >/dev/null # no room: waits
BEFORE=$(etcdq get --prefix /nap/reservations/ --keys-only | grep -c .)
timeout 30 systemctl --user kill -s SIGKILL nap-queued.service
member_stop 1 # the first endpoint: nap-queued fails over to the others
check "nap-queued is down" wait_until 10 queued_stopped
receiver late 0 "$DEAD" || { echo "Bail out! the late receiver did not start"; exit 1; }
assert_eq "after both restarts: the waiting job still queued" "waits" "$(ids '?status=queued')"
check "the request started it again" test "$(queued_state)" = active
wait_until 30 output_at_least 1 got late
assert_eq "the pending delivery resumed: delivered once" "1 delivered" \
        "$(got late) $(q GET /v1/vm/late/ | sed -n 2p | jq -r .data.CallbackStatus)"
assert_eq "same delivery id as before the restart" "$(q GET /v1/vm/late/ | sed -n 2p | jq -r .data.DeliveryID)" \
        "$(jq -r .delivery "$NAP_TEST_DIR/recv/late.log")"
assert_eq "nothing admitted twice: the reservations as before" "$BEFORE" \
        "$(etcdq get --prefix /nap/reservations/ --keys-only | grep -c .)"
member_start 1
check "the member rejoins" wait_until 15 member_healthy 1
assert_eq "no callback twice" "1 1 1 1 1" "$(for j in j5 j1 j2 j3 j4; do got main "/$j\$"; done | tr '\n' ' ' | sed 's/ $//')"

# ============================================================ release
log "release: the next admitted within a second, its callback once"
T0=$(now_ms)
R=$(q POST /v1/vm/j1/done)
assert_eq "done: the job ends, its reservations freed" "200 done" "$(code "$R") $(jqb "$R" .data.Status)"
wait_until 5 output_at_least 1 got main /waits
T1=$(now_ms)
assert_eq "the waiting job is running" "running" "$(q GET /v1/vm/waits/ | sed -n 2p | jq -r .data.Status)"
check "release → callback received in $((T1 - T0)) ms (≤ 1000)" test $((T1 - T0)) -le 1000
sleep 1
assert_eq "its callback arrived exactly once" 1 "$(got main /waits)"
assert_eq "history: queued, running" "queued,running" \
        "$(q GET /v1/vm/waits/history | sed -n 2p | jq -r '[.data[].Status] | join(",")')"
assert_eq "j1's history: queued, running, done" "queued,running,done" \
        "$(q GET /v1/vm/j1/history | sed -n 2p | jq -r '[.data[].Status] | join(",")')"
R=$(q POST /v1/vm/j1/done)
assert_eq "done twice: 409" 409 "$(code "$R")"

# ============================================================ retries
log "a receiver failing three times"
receiver flaky 3 || { echo "Bail out! the flaky receiver did not start"; exit 1; }
q POST /v1/vm/j5/done >/dev/null
q POST /v1/vm/ "$(job retry y "http://127.0.0.1:$RPORT/retry")" >/dev/null
wait_until 15 output_is delivered job_data retry CallbackStatus
assert_eq "four attempts: 500, 500, 500, 200" "1:500 2:500 3:500 4:200" \
        "$(jq -r '"\(.attempt):\(.answered)"' "$NAP_TEST_DIR/recv/flaky.log" | tr '\n' ' ' | sed 's/ $//')"
assert_eq "one delivery id on all of them" 1 "$(jq -r .delivery "$NAP_TEST_DIR/recv/flaky.log" | sort -u | grep -c .)"
assert_eq "CallbackAttempts 4" 4 "$(q GET /v1/vm/retry/ | sed -n 2p | jq -r .data.CallbackAttempts)"

# ============================================================ napctl
log "napctl queue"
NQ() { timeout 30 "$NAPCTL" "$@" 2>&1; }
OUT=$(NQ queue submit vm n1 "http://127.0.0.1:$MAIN/n1" 1,1024,1 --owner=y --json)
assert_eq "submit: queued (no room left)" "n1 queued y" "$(printf '%s' "$OUT" | jq -r '"\(.RequestID) \(.Status) \(.OwnerID)"')"
NQ queue submit vm n2 "http://127.0.0.1:$MAIN/n2" 1,1024,1 2,512,0 --owner=y >/dev/null
assert_eq "list --status=queued" "n1 n2" "$(NQ queue list vm --status=queued | awk '{print $1}' | tr '\n' ' ' | sed 's/ $//')"
NQ queue move vm n2 first >/dev/null
assert_eq "move first" "n2,n1" "$(ids '?status=queued')"
NQ queue submit vm n3 "http://127.0.0.1:$MAIN/n3" 1,1,0 --owner=y >/dev/null
NQ queue move vm n2 after:n1 >/dev/null
assert_eq "move after:n1 (between: the mean)" "n1,n2,n3" "$(ids '?status=queued')"
NQ queue move vm n1 last >/dev/null
assert_eq "move last" "n2,n3,n1" "$(ids '?status=queued')"
assert_eq "show --json" "n2 2" "$(NQ --json queue show vm n2 | jq -r '"\(.RequestID) \(.Data | fromjson | .instances | length)"')"
NQ queue show vm nope >/dev/null
assert_eq "show of no job: exit 4" 4 "$?"
OUT=$(NQ queue submit vm n4 ftp://x 1,1,1 --owner=y)
assert_eq "submit refused: exit 2, nap-queued's reason" "2" "$?"
assert_contains "the reason" "$OUT" "callback must be an http:// or https:// URL"
OUT=$(NQ queue submit vm n4 http://x/n4 1,x,1 --owner=y)
assert_contains "a bad instance: said, nothing sent" "$OUT" "An instance is VCPU,MEMORY_MIB,DISK_GIB"
for n in n1 n2 n3; do NQ queue cancel vm $n >/dev/null; done
assert_eq "cancel" "" "$(ids '?status=queued')"
assert_eq "history" "queued cancelled" "$(NQ queue history vm n1 | awk '{print $2}' | tr '\n' ' ' | sed 's/ $//')"
assert_eq "secret: the owner's signing secret" "$SECRET" "$(NQ queue secret y)"

# ============================================================ TCP
log "TCP: bearer tokens"
T=http://127.0.0.1:$TPORT
tcp() { curl -s --max-time 20 -w '\n%{http_code}' "$@" 2>/dev/null | tail -n 1; }
assert_eq "no token: 401" 401 "$(tcp "$T/v1/vm/")"
assert_eq "no token, no anonymous write: 401" 401 "$(tcp -X POST --data-binary "$(job t1 y http://h/t1)" "$T/v1/vm/")"
assert_eq "a made-up token: 403" 403 "$(tcp -H 'Authorization: Bearer nope' "$T/v1/vm/")"
TOKEN=$(NQ queue token y)
assert_match "napctl queue token makes one" "$TOKEN" '^[0-9a-f]{64}$'
check "only its hash is kept in etcd" test -z "$(etcdq get --prefix /nap/queue/tokens/ | grep -F "$TOKEN")"
assert_eq "with it: y's jobs" 200 "$(tcp -H "Authorization: Bearer $TOKEN" "$T/v1/vm/?owner_id=y")"
assert_eq "not another owner's" 403 "$(tcp -H "Authorization: Bearer $TOKEN" "$T/v1/vm/?owner_id=x")"
assert_eq "submitting for y" 200 "$(tcp -H "Authorization: Bearer $TOKEN" -X POST --data-binary "$(job t1 y "http://127.0.0.1:$MAIN/t1" 64)" "$T/v1/vm/")"
assert_eq "not for x" 403 "$(tcp -H "Authorization: Bearer $TOKEN" -X POST --data-binary "$(job t2 x http://h/t2 64)" "$T/v1/vm/")"
assert_eq "no token making over TCP" 403 "$(tcp -H "Authorization: Bearer $TOKEN" -X POST --data-binary '{"owner_id":"y"}' "$T/v1/_tokens/")"
q DELETE /v1/vm/t1 >/dev/null

# ============================================================ idle exit
log "idle exit only when nothing waits"
q POST /v1/vm/ "$(job big y "http://127.0.0.1:$MAIN/big" 64)" >/dev/null # never fits: waits
sleep 5
check "with a job waiting it stays past --idle-timeout=3" test "$(queued_state)" = active
q DELETE /v1/vm/big >/dev/null
check "nothing waiting: it exits" wait_until 10 queued_stopped
R=$(q GET /v1/vm/big/)
assert_eq "a request starts it again (the socket)" "200 cancelled" "$(code "$R") $(jqb "$R" .data.Status)"

nap_summary
