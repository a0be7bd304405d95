#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Operations from any host on cluster apps (docs/ARCHITECTURE.md "Cluster
# apps"), on three real hosts (cluster-lib.sh), each running the built
# nap-node and nap-managerd under its own systemd, the sample app deployed
# on each:
#
#   six start-common --cluster from h1 (through its nap-managerd): placed
#   two on each host (equal loads: the node holding the fewest instances),
#   each answering at the URL returned
#   list-instances --json identical from h1, h2 and h3 (NODE included),
#   through each host's nap-managerd and in process; get-instances-num and
#   get-port the same from every host
#   stop-app / start-app from h3 of instances on h1 and h2: their owners
#   stop them (kept: manifest and tree stay) and start them again
#   remove-instance from h3 of an instance on h1: the assignment goes and h1
#   removes it; list-instances says so everywhere
#   refused by name, nothing written: an unknown node, --node with
#   --cluster, an app not deployed, bad params
#   ClusterApps=yes on a host: a plain start-common there is placed
#   h3 killed hard: its instances listed from h1 and h2 as unknown/lost,
#   not dropped
#
#   NAPCTL=build/cli/napctl NAP_GENERATOR=build/generators/nap-generator \
#   NAP_BUILD_ROOT=build tests/integration/test-cluster-ops.sh

. "$(dirname "$0")/cluster-lib.sh"

[ -n "${NAP_CLUSTER_INSIDE:-}" ] || nap_napctl_env
nap_cluster_enter "$@"
T_START=$(now_ms)
TTL=3
nap_cluster_apps_up 3 "$TTL" || { echo "Bail out! cannot prepare the hosts"; exit 1; }
NAPCTL_COPY=$NAP_CLUSTER_NAPCTL UNIT=$NAP_CLUSTER_NODE_UNIT

quiet() { # CMD...: CMD, its output dropped
        "$@" >/dev/null 2>&1
}
napctl_on() { # N ARGS...: napctl in host N through its nap-managerd (varlink)
        nap_cluster_exec "$1" "$NAPCTL_COPY" --user "${@:2}"
}
napctl_local() { # N ARGS...: napctl in host N, in process, with its nap.conf
        nap_cluster_exec "$1" "$NAPCTL_COPY" --user --no-helper "${@:2}"
}

# ------------------------------------------------------------- the app
for n in 1 2 3; do
        check "alice_hello deployed on h$n" quiet napctl_local "$n" deploy-app alice_hello "$NAP_CLUSTER_DIR/repos/hello"
        check "nap-node runs on h$n" nap_cluster_unit_install "$n" nap-node.service "$UNIT"
        check "nap-managerd installed on h$n" nap_cluster_managerd_install "$n"
done

# ---------------------------------------------------------- helpers
ip_re() { # N: host N's address as a regular expression
        nap_cluster_ip "$1" | sed 's/\./\\./g'
}
host_of_url() { # URL: the host number whose address the URL has ("" if none)
        local n
        for n in 1 2 3; do
                case $1 in "http://$(nap_cluster_ip "$n"):"*) echo "$n" ;; esac
        done
}
answer_from() { # N URL: the body host N's namespace gets from URL
        nap_cluster_exec "$1" curl -sf --max-time 3 "$2"
}
not_answering() { ! answer_from "$@"; }
list_json() { # N: list-instances --json of alice_hello through host N's nap-managerd
        napctl_on "$1" --json list-instances alice_hello 2>&1
}
field_of() { # N INSTANCE FIELD: FIELD of INSTANCE as host N lists it
        list_json "$1" | jq -r --arg i "$2" --arg f "$3" '.[] | select(.instance == $i) | .[$f]'
}
state_is() { # N INSTANCE STATE: host N lists INSTANCE with ActiveState STATE
        [ "$(field_of "$1" "$2" active_state)" = "$3" ]
}
listed_everywhere_as() { # INSTANCE STATE: every host lists it so
        local n
        for n in 1 2 3; do state_is "$n" "$1" "$2" || return 1; done
}
unit_state() { # N INSTANCE
        nap_cluster_systemctl "$1" is-active "$2.service" 2>/dev/null
}
has_manifest() { # N INSTANCE
        [ -e "$(nap_cluster_dir "$1")/instances/$2.json" ]
}
no_instance() { # N INSTANCE: host N has neither the unit running nor its manifest
        [ "$(unit_state "$1" "$2")" != active ] && ! has_manifest "$1" "$2"
}
assignments() { # the number of assignments in etcd
        nap_cluster_etcdctl get --prefix --keys-only /nap/assignments/ | grep -c .
}
counter() {
        nap_cluster_etcdctl get --print-value-only /nap/counters/alice_hello
}

# =========================================== six starts placed from h1
log "six start-common --cluster from h1"
declare -A ON URL
for k in 1 2 3 4 5 6; do
        T0=$(now_ms)
        out=$(napctl_on 1 start-common --cluster alice_hello "greeting=g$k" 2>&1)
        log "start-common --cluster #$k from h1 → answered: $(($(now_ms) - T0)) ms ($out)"
        assert_match "start #$k: the instance and its URL" "$out" \
                "^alice_hello_common@$k http://10\.[0-9.]*:20[123][0-9][0-9]\$"
        URL[$k]=${out#* }
        ON[$k]=$(host_of_url "${URL[$k]}")
done
# equal loads (nothing requested): the node holding the fewest
# instances, ties by name: h1, h2, h3, h1, h2, h3
assert_eq "spread over the three hosts, two each, in turn" "1 2 3 1 2 3" \
        "${ON[1]} ${ON[2]} ${ON[3]} ${ON[4]} ${ON[5]} ${ON[6]}"
for k in 1 2 3 4 5 6; do
        assert_eq "alice_hello_common@$k answers at its URL (from h2)" \
                "g$k from alice_hello_$k on port ${URL[$k]##*:}" "$(answer_from 2 "${URL[$k]}/")"
        assert_eq "and runs on h${ON[$k]}" active "$(unit_state "${ON[$k]}" "alice_hello_common@$k")"
done

# ============================================= the same list everywhere
log "list-instances from every host"
L1=$(list_json 1)
assert_eq "h1 lists the six" "1 2 3 4 5 6" "$(jq -r '[.[].number] | map(tostring) | join(" ")' <<<"$L1")"
assert_eq "with their nodes" "h1 h2 h3 h1 h2 h3" "$(jq -r '[.[].node] | join(" ")' <<<"$L1")"
assert_eq "all active" "active active active active active active" \
        "$(jq -r '[.[].active_state] | join(" ")' <<<"$L1")"
assert_eq "with the URLs start-common returned" "${URL[1]} ${URL[2]} ${URL[3]} ${URL[4]} ${URL[5]} ${URL[6]}" \
        "$(jq -r '[.[].url] | join(" ")' <<<"$L1")"
assert_eq "h2's --json is h1's" "$L1" "$(list_json 2)"
assert_eq "h3's --json is h1's" "$L1" "$(list_json 3)"
assert_eq "in process on h3 too" "$L1" "$(napctl_local 3 --json list-instances alice_hello 2>&1)"
text=$(napctl_on 2 list-instances alice_hello 2>&1)
assert_match "the text has a NODE column, before VERSION" "$(head -n 1 <<<"$text")" ' NODE +VERSION$'
assert_match "naming h3 for alice_hello_common@3" "$(grep 'alice_hello_common@3 ' <<<"$text")" ' h3 +[0-9a-f]{12}$'
for n in 1 2 3; do
        assert_eq "get-instances-num on h$n: 6" 6 "$(napctl_on "$n" get-instances-num alice_hello 2>&1)"
done
assert_eq "get-port on h1 of h2's alice_hello_common@2: its port" "${URL[2]##*:}" \
        "$(napctl_on 1 get-port alice_hello_common@2 2>&1)"
assert_eq "the seed's port key of alice_hello_common@2 holds it" "${URL[2]##*:}" \
        "$(nap_cluster_etcdctl get --print-value-only /services/port/alice/hello/2)"
check "that key deleted" quiet nap_cluster_etcdctl del /services/port/alice/hello/2
assert_eq "get-port on h3 without it: the port h2 reports" "${URL[2]##*:}" \
        "$(napctl_on 3 get-port alice_hello_common@2 2>&1)"

# =================================== stop-app / start-app from h3
log "stop-app and start-app from h3 of h1's and h2's instances"
for k in 1 2; do
        i=alice_hello_common@$k
        check "stop-app $i (on h${ON[$k]}) from h3" quiet napctl_on 3 stop-app "$i"
        check "its assignment is disabled" test "$(nap_cluster_etcdctl get --print-value-only \
                "/nap/assignments/h${ON[$k]}/$i" | jq -r .enabled)" = false
        # stop-app returns once the owner reports it stopped: no waiting here
        check "h${ON[$k]} stopped it by then: listed inactive everywhere" listed_everywhere_as "$i" inactive
        assert_eq "its unit on h${ON[$k]} is inactive" inactive "$(unit_state "${ON[$k]}" "$i")"
        check "kept: its manifest stays on h${ON[$k]}" has_manifest "${ON[$k]}" "$i"
        check "it no longer answers" not_answering 3 "${URL[$k]}/"
        assert_eq "listed not enabled" false "$(field_of 2 "$i" enabled)"
done
check "stop-app again: idempotent" quiet napctl_on 3 stop-app alice_hello_common@1
for k in 1 2; do
        i=alice_hello_common@$k
        check "start-app $i from h3" quiet napctl_on 3 start-app "$i"
        check "h${ON[$k]} started it again by then: listed active everywhere" listed_everywhere_as "$i" active
        assert_eq "answering at its URL again" "g$k from alice_hello_$k on port ${URL[$k]##*:}" \
                "$(answer_from 3 "${URL[$k]}/")"
done

# ======================================= remove-instance from h3
log "remove-instance from h3 of h1's alice_hello_common@4"
check "remove-instance alice_hello_common@4 from h3" quiet napctl_on 3 remove-instance alice_hello_common@4
check "its assignment is gone" test -z "$(nap_cluster_etcdctl get --print-value-only /nap/assignments/h1/alice_hello_common@4)"
check "h1 removed the instance by the time remove-instance returned" no_instance 1 alice_hello_common@4
gone_everywhere() {
        local n
        for n in 1 2 3; do
                [ "$(list_json "$n" | jq -r '[.[].number] | map(tostring) | join(" ")')" = "1 2 3 5 6" ] || return 1
        done
}
check "every host lists the five left" wait_until 30 gone_everywhere
out=$(napctl_on 3 remove-instance alice_hello_common@4 2>&1)
assert_contains "removing it again: NoSuchInstance, named" "$out" "alice_hello_common@4"

# ========================================================== over D-Bus
log "D-Bus on h2: StartCommonInCluster, ListInstancesWithNodes"
bus_on() { # N ARGS...: busctl --user in host N, JSON output
        nap_cluster_exec "$1" timeout 60 busctl --user --json=short --timeout=50 "${@:2}"
}
bus_call() { # N MEMBER SIGNATURE ARGS...: a call of io.nap.Manager1 in host N
        bus_on "$1" call io.nap.Manager1 /io/nap/Manager1 io.nap.Manager1 "${@:2}"
}
bus_activation() { # N: io.nap.Manager1's activation file in host N, as a package installs it
        nap_cluster_exec "$1" mkdir -p /run/user/0/dbus-1/services &&
                cp "$NAP_SOURCE_ROOT/dbus/io.nap.Manager1.service" "$NAP_CLUSTER_DIR/io.nap.Manager1.service" &&
                nap_cluster_exec "$1" cp "$NAP_CLUSTER_DIR/io.nap.Manager1.service" /run/user/0/dbus-1/services/ &&
                bus_on "$1" call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig >/dev/null
}
check "io.nap.Manager1 activatable on h2" bus_activation 2
out=$(bus_call 2 StartCommonInCluster 'sa{ss}ssssb' alice_hello 1 greeting bus "" "" "" "" true 2>&1)
BUS_URL=$(jq -r '.data[0][4]' <<<"$out" 2>/dev/null)
BUS_NAME=$(jq -r '.data[0][0]' <<<"$out" 2>/dev/null)
assert_eq "StartCommonInCluster: alice_hello_common@7, placed on h1 (it holds the fewest)" \
        "alice_hello_common@7 $(nap_cluster_ip 1)" "$BUS_NAME $(sed 's|^http://||; s|:.*||' <<<"$BUS_URL")"
assert_eq "which answers at its URL" "bus from alice_hello_7 on port ${BUS_URL##*:}" "$(answer_from 3 "$BUS_URL/")"
out=$(bus_call 2 StartCommonInCluster 'sa{ss}ssssb' alice_hello 0 "" "" "" h2 true 2>&1)
assert_contains "node and cluster over D-Bus: InvalidParameter" "$out" "exclude each other"
bus_nodes() { # the nodes ListInstancesWithNodes names on host N, by instance number
        bus_call "$1" ListInstancesWithNodes s alice_hello | jq -r '.data[2] | to_entries | sort_by(.key) | map(.value) | join(" ")'
}
check "io.nap.Manager1 activatable on h3" bus_activation 3
assert_eq "ListInstancesWithNodes on h3: every instance's node" "h1 h2 h3 h2 h3 h1" "$(bus_nodes 3)"
check "remove-instance alice_hello_common@7 from h2" quiet napctl_on 2 remove-instance alice_hello_common@7
check "h1 removed it by then" no_instance 1 alice_hello_common@7

# ================================================== refused, by name
log "bad input"
before_n=$(assignments) before_c=$(counter)
out=$(napctl_on 1 start-common --node=h9 alice_hello 2>&1)
assert_eq "an unknown node: NoSuchNode (exit 4)" "4 napctl: No node h9" "$? $out"
out=$(napctl_on 1 start-common --node=h2 --cluster alice_hello 2>&1)
rc=$?
assert_contains "--node with --cluster: refused, named" "$out" "exclude each other"
assert_eq "with InvalidParameter's exit status (2)" 2 "$rc"
out=$(napctl_on 1 start-common --cluster alice_nothing 2>&1)
rc=$?
assert_contains "an app not deployed: refused, named" "$out" "alice_nothing"
assert_eq "with NoSuchService's exit status (4)" 4 "$rc"
out=$(napctl_on 1 start-common --cluster alice_hello no_such_param=1 2>&1)
assert_contains "a parameter the profile lacks: refused, named" "$out" "no_such_param"
out=$(napctl_on 1 start-common --cluster --cpu=64 alice_hello 2>&1)
assert_contains "more cpu than any node has: InsufficientResources" "$out" "No Ready node has room"
assert_eq "nothing written: the assignments as before" "$before_n" "$(assignments)"
assert_eq "and the counter unmoved" "$before_c" "$(counter)"

# ============================================== ClusterApps=yes
log "ClusterApps=yes on h2"
echo 'ClusterApps=yes' >>"$(nap_cluster_config 2)"
out=$(napctl_local 2 start-common alice_hello greeting=default 2>&1)
assert_match "a plain start-common on h2 is placed (h1 holds fewest: 1)" "$out" \
        "^alice_hello_common@8 http://$(ip_re 1):201[0-9][0-9]\$"
check "h1 reports it active" test "$(nap_cluster_etcdctl get --print-value-only /nap/observed/h1/alice_hello_common@8 | jq -r .state)" = active

# ====================================== a retried request is not a new one
log "start-common --cluster retried with its request id"
first=$(napctl_on 1 start-common --cluster --request-id=retry-1 alice_hello 2>&1)
assert_match "placed on h1 (all hold two: the first name)" "$first" "^alice_hello_common@9 http://$(ip_re 1):"
n_before=$(assignments)
again=$(napctl_on 1 start-common --cluster --request-id=retry-1 alice_hello 2>&1)
assert_eq "the same request again (placement would pick h2 now): the same instance, on h1" "$first" "$again"
assert_eq "and no new assignment" "$n_before" "$(assignments)"

# ================================================== a node dies
log "h3 killed hard"
check "h3 killed" nap_cluster_host_kill 3
lost_on() { # N: host N lists h3's instances unknown/lost
        local l
        l=$(list_json "$1")
        [ "$(jq -r '[.[] | select(.node == "h3") | .active_state + "/" + .sub_state] | join(" ")' <<<"$l")" = \
                "unknown/lost unknown/lost" ]
}
check "h1 lists h3's two instances as unknown/lost" wait_until 60 lost_on 1
check "h2 too" lost_on 2
assert_eq "none dropped: h1 and h2 list the same seven" "$(list_json 1)" "$(list_json 2)"
assert_eq "seven" 7 "$(list_json 1 | jq length)"

log "wall time: $(($(now_ms) - T_START)) ms"
nap_summary
