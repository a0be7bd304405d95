#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Forwarding to the owning host (docs/ARCHITECTURE.md "Cluster apps",
# Forwarding; nap-cluster-gate(8)) on three real hosts (cluster-lib.sh):
# each runs nap-node, nap-managerd and nap-cluster-gate.socket under its
# own systemd, with certificates of a CA made here by openssl(1).
#
#   an instance started on h2 from h1 (start-common --node=h2)
#   napctl get-journal, cat-app and get-port of it on h1 (through h1's
#   nap-managerd, forwarded to h2's gate) answer exactly what h2 answers
#   locally; get-journal --follow on h1 sees a line the app writes after it
#   started, and when it is stopped h2's gate connection ends too
#   a stranger uid (65534) is refused on h1, and h2's gate refuses it
#   when a host asserts it, with the very message h2 gives locally
#   refused by h2's gate, named: no client certificate; a certificate of
#   another CA (h3 configured with one: get-journal from h3 fails with
#   ClusterAuthFailed); a certificate of the CA without TLS client use; a
#   valid certificate used from another host's address; a method that is
#   not forwarded
#   the forwarded get-journal's latency against a local one, as a ratio
#   h2 killed: get-journal from h1 fails at once with NodeUnreachable,
#   naming h2
#
#   NAPCTL=build/cli/napctl NAP_GENERATOR=build/generators/nap-generator \
#   NAP_BUILD_ROOT=build tests/integration/test-cluster-forward.sh

. "$(dirname "$0")/cluster-lib.sh"

[ -z "${NAP_CLUSTER_INSIDE:-}" ] && nap_napctl_env
nap_cluster_enter "$@"
nap_need openssl jq setpriv curl
T_START=$(now_ms)
nap_cluster_up 3
log "3 hosts up in $NAP_CLUSTER_UP_MS ms"

PKI=$NAP_CLUSTER_DIR/pki
I=alice_hello_common@1
NODE=$(nap_cluster_copy_bin "$NAP_BUILD_ROOT/helpers/nap-node") || { echo "Bail out! cannot copy nap-node"; exit 1; }
GATE=$(nap_cluster_copy_bin "$NAP_BUILD_ROOT/helpers/nap-cluster-gate") || { echo "Bail out! cannot copy the gate"; exit 1; }
NAPCTL_COPY=$(nap_cluster_copy_bin "$NAPCTL") || { echo "Bail out! cannot copy napctl"; exit 1; }
NODE_UNIT=$(sed "s|^ExecStart=.*|ExecStart=$NODE|" "$NAP_BUILD_ROOT/units/nap-node.service")
GATE_UNIT=$(sed "s|^ExecStart=.*|ExecStart=$GATE|" "$NAP_BUILD_ROOT/units/nap-cluster-gate.service")
GATE_SOCKET=$(cat "$NAP_BUILD_ROOT/units/nap-cluster-gate.socket")

quiet() { "$@" >/dev/null 2>&1; }
napctl_local() { # N ARGS...: napctl in host N, in process
        nap_cluster_exec "$1" "$NAPCTL_COPY" --user --no-helper "${@:2}"
}
napctl_on() { # N ARGS...: napctl in host N, through its nap-managerd
        nap_cluster_exec "$1" timeout 60 "$NAPCTL_COPY" --user "${@:2}"
}

# ------------------------------------------------------ the certificates
# make_cert NAME CN IP EKU CA: NAME.crt and NAME.key, signed by CA.crt.
make_cert() {
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$PKI/$1.key" \
                -out "$PKI/$1.csr" -subj "/CN=$2" &&
                printf 'subjectAltName=DNS:%s,IP:%s\nextendedKeyUsage=%s\n' "$2" "$3" "$4" >"$PKI/$1.ext" &&
                openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/$5.crt" -CAkey "$PKI/$5.key" -CAcreateserial \
                        -days 2 -out "$PKI/$1.crt" -extfile "$PKI/$1.ext"
}
make_ca() { # NAME
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$PKI/$1.key" \
                -out "$PKI/$1.crt" -subj "/CN=$1" -days 2
}
mkdir -p "$PKI"
{
        make_ca ca && make_ca rogue-ca &&
                for n in 1 2 3; do make_cert "h$n" "h$n" "$(nap_cluster_ip "$n")" serverAuth,clientAuth ca || exit 1; done &&
                make_cert rogue-h3 h3 "$(nap_cluster_ip 3)" serverAuth,clientAuth rogue-ca &&
                make_cert server-only-h1 h1 "$(nap_cluster_ip 1)" serverAuth ca
} >"$PKI/openssl.log" 2>&1 || { cat "$PKI/openssl.log"; echo "Bail out! openssl cannot make the certificates"; exit 1; }
chmod 0644 "$PKI"/*.crt

# ------------------------------------------------------------- the hosts
nap_cluster_hello_repo >/dev/null || { echo "Bail out! cannot make the app's repository"; exit 1; }
for n in 1 2 3; do
        printf 'CPU=2\nMemory=1G\nStorage=10G\nNodeTTL=3\nClusterCertificate=%s\nClusterKey=%s\nClusterCA=%s\n' \
                "$PKI/h$n.crt" "$PKI/h$n.key" "$PKI/ca.crt" >>"$(nap_cluster_config "$n")"
        check "alice_hello deployed on h$n" quiet napctl_local "$n" deploy-app alice_hello "$NAP_CLUSTER_DIR/repos/hello"
        check "nap-node runs on h$n" nap_cluster_unit_install "$n" nap-node.service "$NODE_UNIT"
        check "nap-managerd installed on h$n" nap_cluster_managerd_install "$n"
        mkdir -p "$(nap_cluster_dir "$n")/home/.config/systemd/user" &&
                printf '%s\n' "$GATE_UNIT" >"$(nap_cluster_dir "$n")/home/.config/systemd/user/nap-cluster-gate.service"
        check "nap-cluster-gate.socket listens on h$n" nap_cluster_unit_install "$n" nap-cluster-gate.socket "$GATE_SOCKET"
done

# ================================================= an instance on h2, from h1
out=$(napctl_local 1 start-common --node=h2 alice_hello greeting=forwarded 2>&1)
assert_match "start-common --node=h2 on h1: the instance on h2" "$out" \
        "^$I http://$(nap_cluster_ip 2 | sed 's/\./\\./g'):202[0-9][0-9]\$"
URL=${out#* }
check "h1 has no such instance itself" test ! -e "$(nap_cluster_dir 1)/instances/$I.json"

# ============================================== forwarded = what h2 answers
journal_has() { # N PATTERN: get-journal on host N shows PATTERN
        napctl_on "$1" get-journal -n 50 "$I" 2>&1 | grep -q -- "$2"
}
check "get-journal on h1 shows the instance's lines (from h2)" wait_until 30 journal_has 1 "listening on"
log_local=$(napctl_on 2 --json get-journal -n 20 "$I" 2>&1)
log_forwarded=$(napctl_on 1 --json get-journal -n 20 "$I" 2>&1)
assert_eq "h1's get-journal (JSON) is h2's, entry for entry" "$log_local" "$log_forwarded"
assert_eq "cat-app from h1 is h2's" "$(napctl_on 2 cat-app "$I" 2>&1)" "$(napctl_on 1 cat-app "$I" 2>&1)"
assert_eq "get-port from h1 is h2's" "$(napctl_on 2 get-port "$I" 2>&1)" "$(napctl_on 1 get-port "$I" 2>&1)"
gate_log() { # N: host N's gate log
        nap_cluster_exec "$1" journalctl --no-pager -q --user-unit nap-cluster-gate.service -o cat 2>&1
}
assert_match "h2's gate logged the caller, its node and certificate" "$(gate_log 2)" \
        "uid 0 on h1 \\(certificate 'h1', $(nap_cluster_ip 1 | sed 's/\./\\./g')\\) calls GetJournal"

# ================================================================ --follow
FOLLOW_OUT=$NAP_CLUSTER_DIR/follow.out
# exec'd, so that $! is napctl itself (nsenter and env exec too)
nap_cluster__argv 1
(exec "${NAP_CLUSTER__ARGV[@]}" "$NAPCTL_COPY" --user get-journal --follow -n 1 "$I" \
        >"$FOLLOW_OUT" 2>&1) &
FOLLOW_PID=$!
followed() { grep -q -- "$1" "$FOLLOW_OUT"; }
check "get-journal --follow on h1 starts with the last line" wait_until 30 test -s "$FOLLOW_OUT"
MARK=forward-$RANDOM$RANDOM
assert_eq "the app on h2 answers a request for /$MARK (404)" 404 \
        "$(nap_cluster_exec 1 curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$URL/$MARK")"
if ! check "--follow on h1 sees the line it wrote after the follow began" wait_until 30 followed "$MARK"; then
        diag "$(cat "$FOLLOW_OUT")"
fi
gate_connections() { # N: the gate's connections on host N (a process each)
        local pid
        pid=$(nap_cluster_unit_main_pid "$1" nap-cluster-gate.service)
        [ "${pid:-0}" -gt 0 ] || { echo 0; return; }
        pgrep -P "$pid" | wc -l
}
assert_eq "while it follows, h2's gate serves one connection" 1 "$(gate_connections 2)"
kill "$FOLLOW_PID" 2>/dev/null
wait "$FOLLOW_PID" 2>/dev/null
no_gate() { [ "$(gate_connections 2)" = 0 ]; }
if ! check "the follow stopped on h1: h2's gate connection ends" wait_until 30 no_gate; then
        diag "$(gate_connections 2) connection(s)" "$(gate_log 2 | tail -5)"
fi

# ============================================================== strangers
# The user manager's runtime directory is private; the system's socket
# (/run/nap) is anybody's: open it as that for a uid that is not root.
nap_cluster_exec 1 chmod 0755 /run/user/0 /run/user/0/nap
out=$(nap_cluster_exec 1 setpriv --reuid=65534 --regid=65534 --clear-groups \
        env XDG_RUNTIME_DIR=/run/user/0 timeout 30 "$NAPCTL_COPY" --user get-journal "$I" 2>&1)
rc=$?
assert_match "uid 65534 on h1: refused (PermissionDenied)" "$rc $out" "^1 .*(uid 65534|not .*alice)"
# gate_call FROM CERT: the header (uid 65534, unless HEADER is set), CALL
# (default GetJournal of I) and AFTER if set, to h2's gate from host FROM
# with CERT, through openssl s_client; prints what came back.
gate_call() {
        local from=$1 cert=$2 header=${HEADER:-'{"uid":65534,"node":"h1"}'}
        local call=${CALL:-"{\"method\":\"io.nap.Manager.GetJournal\",\"parameters\":{\"instance\":\"$I\"}}"}
        local auth=()
        [ -n "$cert" ] && auth=(-cert "$PKI/$cert.crt" -key "$PKI/$cert.key")
        { printf '%s\0%s\0' "$header" "$call"; [ -z "${AFTER:-}" ] || printf '%s\0' "$AFTER"; } |
                nap_cluster_exec "$from" timeout 20 openssl s_client -quiet -verify_return_error \
                        -connect "$(nap_cluster_ip 2):7475" -CAfile "$PKI/ca.crt" "${auth[@]}" 2>&1 | tr '\0' '\n'
}
local_refusal=$(nap_cluster_exec 2 setpriv --reuid=65534 --regid=65534 --clear-groups \
        "$NAPCTL_COPY" --user --no-helper get-journal "$I" 2>&1)
out=$(gate_call 1 h1)
assert_match "h1 asserting uid 65534 to h2's gate: PermissionDenied" "$out" '"error":"io.nap.Manager.PermissionDenied"'
log "h2's refusal of uid 65534 in process: $local_refusal"
assert_eq "with the message h2 gives that uid locally" \
        "$(sed -n 's/^napctl: //p' <<<"$local_refusal" | head -1)" \
        "$(grep -o '"message":"[^"]*"' <<<"$out" | head -1 | sed 's/^"message":"//; s/"$//')"

# ============================================== certificates h2 refuses
refused_since() { # MARK-LINES PATTERN: h2's gate logged PATTERN after line MARK-LINES
        gate_log 2 | tail -n +"$(($1 + 1))" | grep -q -- "$2"
}
lines=$(gate_log 2 | wc -l)
out=$(gate_call 1 "")
check "no client certificate: refused by h2's gate, named in its log" \
        wait_until 10 refused_since "$lines" "Refused $(nap_cluster_ip 1).*ClusterAuthFailed.*certificate"
assert_not_contains "and it answered nothing" "$out" '"parameters"'
lines=$(gate_log 2 | wc -l)
out=$(gate_call 1 server-only-h1)
check "a certificate of the CA without TLS client use: refused, named" \
        wait_until 10 refused_since "$lines" "Refused $(nap_cluster_ip 1).*unsuitable certificate purpose"
out=$(HEADER='{"uid":0,"node":"h3"}' gate_call 1 h3)
assert_match "h3's valid certificate used from h1's address: ClusterAuthFailed" "$out" \
        "ClusterAuthFailed.*does not name $(nap_cluster_ip 1 | sed 's/\./\\./g')"
out=$(HEADER='{"uid":0,"node":"h1"}' CALL='{"method":"io.nap.Manager.StopApp","parameters":{"instance":"'"$I"'"}}' gate_call 1 h1)
assert_match "a method that is not forwarded (StopApp, even for root): refused" "$out" \
        'PermissionDenied.*Only GetJournal, CatApp and GetPort'
check "and the instance still runs on h2" test "$(nap_cluster_systemctl 2 is-active "$I.service")" = active
lines=$(gate_log 2 | wc -l)
out=$(HEADER='{"uid":0,"node":"h1"}' AFTER='{"method":"io.nap.Manager.StopApp","parameters":{"instance":"'"$I"'"}}' \
        gate_call 1 h1)
check "a second call after a GetJournal (StopApp) is refused: one call per connection" \
        wait_until 10 refused_since "$lines" "Refused $(nap_cluster_ip 1).*one call per connection"
check "and the instance still runs" test "$(nap_cluster_systemctl 2 is-active "$I.service")" = active

# h3 with a certificate of another CA
sed -i "s|^ClusterCertificate=.*|ClusterCertificate=$PKI/rogue-h3.crt|; s|^ClusterKey=.*|ClusterKey=$PKI/rogue-h3.key|" \
        "$(nap_cluster_config 3)"
out=$(napctl_on 3 get-journal "$I" 2>&1)
rc=$?
assert_match "h3 with a certificate of another CA: get-journal refused (ClusterAuthFailed)" "$rc $out" \
        "^1 napctl: TLS .*(unknown ca|certificate|alert)"
check "h2's gate logged why" wait_until 10 refused_since 0 "Refused $(nap_cluster_ip 3).*certificate verif"

# ================================================================ latency
# median_ms N CMD...: the median of N runs of CMD, in ms
median_ms() {
        local n=$1 t0 i
        shift
        for i in $(seq "$n"); do
                t0=$EPOCHREALTIME
                "$@" >/dev/null 2>&1
                echo "$EPOCHREALTIME - $t0" | bc -l
        done | sort -n | awk '{ a[NR] = $1 } END { printf "%.1f", a[int((NR + 1) / 2)] * 1000 }'
}
RUNS=9
local_ms=$(median_ms $RUNS napctl_on 2 get-journal -n 20 "$I")
forwarded_ms=$(median_ms $RUNS napctl_on 1 get-journal -n 20 "$I")
log "get-journal -n 20, median of $RUNS: local on h2 $local_ms ms, forwarded from h1 $forwarded_ms ms," \
        "ratio $(echo "$forwarded_ms / $local_ms" | bc -l | xargs printf %.2f) (load $(cut -d' ' -f1-3 /proc/loadavg))"

# ================================================================= h2 down
nap_cluster_host_kill 2
T0=$(now_ms)
out=$(napctl_on 1 get-journal "$I" 2>&1)
rc=$?
T=$(($(now_ms) - T0))
assert_match "h2 down: get-journal from h1 fails, NodeUnreachable naming h2" "$rc $out" \
        "^1 napctl: Node h2 \\($(nap_cluster_ip 2 | sed 's/\./\\./g'), port 7475\\) cannot be reached"
check "within 10 s (took $T ms)" test "$T" -lt 10000

log "wall time: $(($(now_ms) - T_START)) ms"
nap_summary
