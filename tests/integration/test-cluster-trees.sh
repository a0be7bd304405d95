#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Cluster apps, trees reach hosts (docs/ARCHITECTURE.md "Trees reach
# hosts"), on three real hosts (cluster-lib.sh), each running the built
# nap-node under its own systemd; apps are deployed on h1 only:
#
#   a deploy on a host that is not yet a node of the cluster records
#   nothing; one on a node records the app's URL and commit in etcd
#   (PREFIX/apps/USER_APP)
#   start-common --node=h3 on h1, after the app's repository moved on to
#   a newer commit: the assignment carries the deployed commit, h3 fetches
#   that exact commit (not the branch's tip), deploys it, and runs it; h2
#   is left alone
#   a source h3 cannot reach: start-common fails with the fetch's reason,
#   h3 reports it failed, and nothing is half-made on h3 (no tree, no
#   staging directory, no intent, no instance, no mark); the source back,
#   h3 realizes the same assignment on its next pass
#   a damaged source record: failed, the field named
#
#   NAPCTL=build/cli/napctl NAP_GENERATOR=build/generators/nap-generator \
#   NAP_BUILD_ROOT=build tests/integration/test-cluster-trees.sh

. "$(dirname "$0")/cluster-lib.sh"

[ -n "${NAP_CLUSTER_INSIDE:-}" ] || nap_napctl_env
nap_cluster_enter "$@"
T_START=$(now_ms)
nap_cluster_up 3
log "3 hosts up in $NAP_CLUSTER_UP_MS ms"

for n in 1 2 3; do
        printf 'CPU=2\nMemory=1G\nStorage=10G\nNodeTTL=3\n' >>"$(nap_cluster_config "$n")"
done
NODE=$(nap_cluster_copy_bin "$NAP_BUILD_ROOT/helpers/nap-node") || { echo "Bail out! cannot copy nap-node"; exit 1; }
NAPCTL_COPY=$(nap_cluster_copy_bin "$NAPCTL") || { echo "Bail out! cannot copy napctl"; exit 1; }
UNIT=$(sed "s|^ExecStart=.*|ExecStart=$NODE|" "$NAP_BUILD_ROOT/units/nap-node.service")

quiet() { # CMD...: CMD, its output dropped
        "$@" >/dev/null 2>&1
}
napctl_on() { # N ARGS...: napctl in host N, in process, with its nap.conf
        nap_cluster_exec "$1" "$NAPCTL_COPY" --user --no-helper "${@:2}"
}
etcd_value() { # KEY
        nap_cluster_etcdctl get --print-value-only "$1"
}
node_registered() { # NAME
        [ -n "$(etcd_value "/nap/nodes/$1")" ]
}
observed() { # NODE INSTANCE
        etcd_value "/nap/observed/$1/$2"
}
observed_is() { # NODE INSTANCE STATE
        [ "$(observed "$1" "$2" | jq -r .state 2>/dev/null)" = "$3" ]
}
answer_from() { # N URL
        nap_cluster_exec "$1" curl -sf --max-time 3 "$2"
}
services_on() { # N: alice's apps deployed on host N and their commits ("APP COMMIT" lines)
        napctl_on "$1" --json list-services alice 2>/dev/null | jq -r '.[] | "\(.service) \(.commit)"' 2>&1
}
instances_on() { # N APP
        napctl_on "$1" --json list-instances "$2" 2>/dev/null | jq -r '.[].instance' 2>&1
}

# --------------------------------------------------------------- the apps
export GIT_AUTHOR_NAME=nap-test GIT_AUTHOR_EMAIL=nap-test@localhost
export GIT_COMMITTER_NAME=nap-test GIT_COMMITTER_EMAIL=nap-test@localhost GIT_CONFIG_NOSYSTEM=1
# app_repo NAME GREETING: a repository of the sample app listening on every
# address, greeting GREETING by default; prints its commit
app_repo() {
        local src=$NAP_CLUSTER_DIR/src-$1 repo=$NAP_CLUSTER_DIR/repos/$1
        mkdir -p "$src" && cp "$NAP_SOURCE_ROOT"/tests/apps/hello/* "$src/" &&
                sed -i "s/^python3 server.py .*/python3 server.py --port {port} --greeting {greeting=$2} --bind 0.0.0.0/" \
                        "$src/profile" &&
                make_repo "$repo" "$src/." >/dev/null && git -C "$repo" rev-parse HEAD
}
# app_commit NAME GREETING: a new commit in NAME's repository; prints it
app_commit() {
        local repo=$NAP_CLUSTER_DIR/repos/$1
        sed -i "s/{greeting=[a-z0-9]*}/{greeting=$2}/" "$repo/profile" &&
                git -C "$repo" commit -qam "greeting $2" && git -C "$repo" rev-parse HEAD
}

EARLY=$(app_repo early v0) && C1=$(app_repo trees v1) && GONE=$(app_repo gone g1) ||
        { echo "Bail out! cannot make the apps' repositories"; exit 1; }

log "a deploy on a host that is not a node of the cluster yet"
check "alice_early deployed on h1" quiet napctl_on 1 deploy-app alice_early "$NAP_CLUSTER_DIR/repos/early"
assert_eq "records nothing in etcd" "" "$(etcd_value /nap/apps/alice_early)"

for n in 1 2 3; do
        check "nap-node runs on h$n" nap_cluster_unit_install "$n" nap-node.service "$UNIT"
        check "h$n is a node of the cluster" wait_until 60 node_registered "h$n"
done

# ===================================================== the exact commit
log "deployed on h1 only; the repository then moves on"
check "alice_trees deployed on h1" quiet napctl_on 1 deploy-app alice_trees "$NAP_CLUSTER_DIR/repos/trees"
source=$(etcd_value /nap/apps/alice_trees)
assert_eq "the deploy records the app's source in etcd" \
        "$NAP_CLUSTER_DIR/repos/trees $C1 h1 false" "$(jq -r '"\(.url) \(.commit) \(.node) \(.pushed)"' <<<"$source")"
C2=$(app_commit trees v2)
check "the repository's tip is a newer commit" test -n "$C2" -a "$C2" != "$C1"
assert_eq "h3 has no app deployed" "" "$(services_on 3)"

T0=$(now_ms)
out=$(napctl_on 1 start-common --node=h3 alice_trees 2>&1)
log "start-common --node=h3 (h3 fetching the tree) → answered: $(($(now_ms) - T0)) ms"
if ! assert_match "h1 gets the instance on h3" "$out" \
        "^alice_trees_common@1 http://$(nap_cluster_ip 3 | sed 's/\./\\./g'):203[0-9][0-9]\$"; then
        diag "$(nap_cluster_exec 3 journalctl --no-pager -q --user-unit nap-node.service -n 30 -o cat)"
fi
assert_eq "the assignment carries the deployed commit" "$C1" \
        "$(etcd_value /nap/assignments/h3/alice_trees_common@1 | jq -r .commit)"
assert_eq "h3 deployed exactly that commit" "alice_trees $C1" "$(services_on 3)"
assert_eq "h3 reports it running at that commit" "active $C1" \
        "$(observed h3 alice_trees_common@1 | jq -r '"\(.state) \(.commit)"')"
assert_eq "and it answers as that commit does (not the tip's v2)" "v1 from alice_trees_1 on port ${out##*:}" \
        "$(answer_from 1 "${out#* }/")"
assert_eq "h3 runs it" alice_trees_common@1 "$(instances_on 3 alice_trees)"
assert_eq "h2 fetched nothing" "" "$(services_on 2)"

# ================================================== a source out of reach
log "a source h3 cannot reach"
check "alice_gone deployed on h1" quiet napctl_on 1 deploy-app alice_gone "$NAP_CLUSTER_DIR/repos/gone"
check "its repository moved away" mv "$NAP_CLUSTER_DIR/repos/gone" "$NAP_CLUSTER_DIR/repos/gone.away"
out=$(napctl_on 1 start-common --node=h3 alice_gone 2>&1)
rc=$?
check "start-common fails" test "$rc" -ne 0
assert_contains "naming the fetch that failed" "$out" "Cannot get alice_gone at $GONE from $NAP_CLUSTER_DIR/repos/gone"
check "h3 reports it failed" observed_is h3 alice_gone_common@1 failed
assert_contains "with why" "$(observed h3 alice_gone_common@1 | jq -r .reason)" "Cannot get alice_gone at $GONE"
H3=$(nap_cluster_dir 3)
assert_eq "h3 has no tree of it" "alice_trees $C1" "$(services_on 3)"
assert_eq "no staging directory" "" "$(find "$H3/root" -name '*.deploy-*' 2>/dev/null)"
assert_eq "no intent" "" "$(find "$H3/root" -name 'alice_gone*.intent' 2>/dev/null)"
assert_eq "no instance" "" "$(instances_on 3 alice_gone)"
check "no mark" test ! -e "$H3/root/cluster/realized/alice_gone_common@1"

log "the source back"
check "its repository back" mv "$NAP_CLUSTER_DIR/repos/gone.away" "$NAP_CLUSTER_DIR/repos/gone"
T0=$(now_ms)
if ! check "h3 realizes the same assignment on a later pass" wait_until 60 observed_is h3 alice_gone_common@1 active; then
        diag "$(observed h3 alice_gone_common@1)"
fi
log "source back → active: $(($(now_ms) - T0)) ms (passes every 10 s)"
assert_eq "at the deployed commit" "$GONE" "$(observed h3 alice_gone_common@1 | jq -r .commit)"

# ============================================== a damaged source record
log "a damaged source record"
check "alice_trees's record damaged in etcd" \
        quiet nap_cluster_etcdctl put /nap/apps/alice_trees '{"app":"alice_trees","url":"","commit":"x"}'
out=$(nap_cluster_exec 1 "$NAPCTL_COPY" --user --no-helper start-common --node=h2 alice_trees 2>&1)
check "start-common refuses" test $? -ne 0
assert_contains "naming the field" "$out" "field 'url'"
assert_eq "and assigns nothing" "" "$(nap_cluster_etcdctl get --prefix --keys-only /nap/assignments/h2/)"

log "wall time: $(($(now_ms) - T_START)) ms"
nap_summary
