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
#   rolling deploys: an app with an instance on each host, a new commit
#   deployed on h1: every host's instance is replaced by one at the new
#   commit (start new, then the old one withdrawn), at most one reload per
#   host; a version that fails on h3 only: the deploy fails naming h3, the
#   instances already rolled on h1 and h2 are replaced back, h3's old one
#   never stopped, the record and h1's tree back at the previous commit
#
#   pushed apps: sshd on every host; a git push to h1 deploys there and
#   copies the repository to h2 and h3 (nap-git-shell --replica, not
#   deployed there); start-common --node=h2 runs it from h2's copy; a
#   second push reaches h2's copy and rolls h2's instance
#
#   NAPCTL=build/cli/napctl NAP_GENERATOR=build/generators/nap-generator \
#   NAP_BUILD_ROOT=build tests/integration/test-cluster-trees.sh

. "$(dirname "$0")/cluster-lib.sh"

[ -n "${NAP_CLUSTER_INSIDE:-}" ] || nap_napctl_env
nap_cluster_enter "$@"
nap_cluster_up 3
T_START=$(now_ms)
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
services_on() { # N: alice's apps deployed on host N and their commits ("APP COMMIT" lines), from its
        # state (list-services lists the cluster's apps from every host)
        local d
        for d in "$(nap_cluster_dir "$1")"/root/services/alice/alice_*/; do
                [ -f "$d.nap/deploy.json" ] && echo "$(basename "$d") $(jq -r .commit "$d.nap/deploy.json")"
        done
}
instances_on() { # N APP: the instances host N runs (list-instances lists every node's)
        napctl_on "$1" --json list-instances "$2" 2>/dev/null |
                jq -r --arg node "h$1" '.[] | select(.node == $node and .active_state != "failed") | .instance' 2>&1
}

# --------------------------------------------------------------- the apps
export GIT_AUTHOR_NAME=nap-test GIT_AUTHOR_EMAIL=nap-test@localhost
export GIT_COMMITTER_NAME=nap-test GIT_COMMITTER_EMAIL=nap-test@localhost GIT_CONFIG_NOSYSTEM=1
# app_repo NAME GREETING: the sample app's repository (greeting GREETING
# by default); prints its commit
app_repo() {
        local repo
        repo=$(nap_cluster_hello_repo "$1" "$2") && git -C "$repo" rev-parse HEAD
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
assert_eq "list-services on h3 lists it all the same, at the deployed commit" "alice_trees $C1" \
        "$(napctl_on 3 --json list-services alice | jq -r '.[] | select(.service == "alice_trees") | "\(.service) \(.commit)"')"

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

# ======================================== rolling deploys across hosts
# reload_mark N / reloads_since N MARK: host N's user manager's reloads
# ("Reloading." in its journal) after the mark
reload_mark() {
        nap_cluster_exec "$1" journalctl --no-pager -q -n 0 --show-cursor 2>/dev/null | sed -n 's/^-- cursor: //p'
}
reloads_since() {
        nap_cluster_exec "$1" journalctl --no-pager -q -o short --after-cursor "$2" 2>/dev/null |
                grep -cE ' systemd\[[0-9]+\]: Reloading\.$'
}
roll_assignments() { # "NODE NUMBER COMMIT" of each of alice_roll's assignments, in key order
        nap_cluster_assignments alice_roll
}
roll_nodes_at() { # COMMIT: the nodes of alice_roll's assignments, if all are at COMMIT (else all of them)
        nap_cluster_nodes_at alice_roll "$1"
}
# every_roll_instance_answers COMMIT GREETING: each of alice_roll's
# assignments reported active at COMMIT on its node, answering GREETING
every_roll_instance_answers() {
        local node number commit report port
        while read -r node number commit; do
                report=$(observed "$node" "alice_roll_common@$number")
                [ "$(jq -r '"\(.state) \(.commit)"' <<<"$report")" = "active $1" ] || return 1
                port=$(jq -r .port <<<"$report")
                [ "$(answer_from 1 "http://$(nap_cluster_ip "${node#h}"):$port/")" = \
                        "$2 from alice_roll_$number on port $port" ] || return 1
        done < <(roll_assignments)
}
old_instances_gone() { # NUMBER...: no host runs alice_roll_common@NUMBER
        local n i
        for n in 1 2 3; do
                for i in "$@"; do
                        [ -z "$(instances_on "$n" alice_roll | grep -x "alice_roll_common@$i")" ] || return 1
                done
        done
}

log "rolling deploys: alice_roll on every host, then a new commit deployed on h1"
R1=$(app_repo roll r1)
check "alice_roll deployed on h1" quiet napctl_on 1 deploy-app alice_roll "$NAP_CLUSTER_DIR/repos/roll"
for n in 1 2 3; do
        check "an instance of it on h$n" quiet napctl_on 1 start-common --node=h$n alice_roll
done
assert_eq "one on each host, at the first commit" "h1 h2 h3 " "$(roll_nodes_at "$R1")"
check "each answers as the first commit does" every_roll_instance_answers "$R1" r1
OLD=$(roll_assignments | awk '{ print $2 }' | tr '\n' ' ')
R2=$(app_commit roll r2)
for n in 1 2 3; do MARK[$n]=$(reload_mark "$n"); done
T0=$(now_ms)
out=$(napctl_on 1 deploy-app alice_roll "$NAP_CLUSTER_DIR/repos/roll" 2>&1)
rc=$?
log "deploy-app of r2 rolling 3 instances on 3 hosts: $(($(now_ms) - T0)) ms"
assert_eq "the deploy succeeds" "0" "$rc" || diag "$out"
assert_eq "every assignment moved to the new commit, on the same hosts" "h1 h2 h3 " "$(roll_nodes_at "$R2")"
check "each host runs and reports the new commit, answering as it does" every_roll_instance_answers "$R2" r2
# shellcheck disable=SC2086
check "the old instances are gone from every host" wait_until 30 old_instances_gone $OLD
for n in 1 2 3; do
        r=$(reloads_since "$n" "${MARK[$n]}")
        check "h$n's manager reloaded at most once ($r)" test "$r" -le 1
done
assert_eq "the source record at the new commit" "$R2" "$(etcd_value /nap/apps/alice_roll | jq -r .commit)"

log "a version that fails on h3 only"
sed -i 's/^import time$/import time\nif os.uname().nodename == "h3":\n    sys.exit("this version fails on h3")/' \
        "$NAP_CLUSTER_DIR/repos/roll/server.py"
R3=$(app_commit roll r3)
BEFORE=$(roll_assignments | awk '{ print $2 }' | tr '\n' ' ')
T0=$(now_ms)
out=$(napctl_on 1 deploy-app alice_roll "$NAP_CLUSTER_DIR/repos/roll" 2>&1)
rc=$?
log "deploy-app of a version failing on h3, rolled back: $(($(now_ms) - T0)) ms"
check "the deploy fails" test "$rc" -ne 0
assert_contains "naming the host and why" "$out" "Node h3 could not run alice_roll_common@"
assert_contains "and that the previous commit is back" "$out" "${R2:0:12} is deployed again, here and on every node"
assert_eq "every assignment is back at the previous commit, on the same hosts" "h1 h2 h3 " "$(roll_nodes_at "$R2")"
check "each answers as the previous commit does" wait_until 30 every_roll_instance_answers "$R2" r2 ||
        diag "R3=$R3" "$(roll_assignments)" "$(nap_cluster_etcdctl get --prefix --print-value-only /nap/observed/)"
assert_eq "h3's instance was never replaced" "$(awk '{ print $3 }' <<<"$BEFORE")" \
        "$(roll_assignments | awk '$1 == "h3" { print $2 }')"
assert_eq "the source record back at the previous commit" "$R2" "$(etcd_value /nap/apps/alice_roll | jq -r .commit)"
assert_eq "h1's tree back at it" "$R2" "$(services_on 1 | awk '$1 == "alice_roll" { print $2 }')"
assert_eq "no assignment at the failed commit is left" "" "$(roll_assignments | grep -F " $R3")"

log "the reload count can fail"
mark=$(reload_mark 1)
nap_cluster_systemctl 1 daemon-reload
assert_eq "a daemon-reload on h1 is counted" 1 "$(reloads_since 1 "$mark")"

# ============================================================ pushed apps
# Each host runs a real sshd on its address, port 22, for root (nap's
# account here: the hosts' managers are root's) with forced commands only:
# alice's key runs nap-git-shell alice, the other hosts' replica keys
# nap-git-shell --replica. The test pushes to h1 as alice.
SSHD_BIN=/usr/sbin/sshd
sshd_listening() { # N
        nap_cluster_exec "$1" ss -Htln 2>/dev/null | grep -q "$(nap_cluster_ip "$1"):22 "
}
# setup_ssh: keys, authorized_keys, known_hosts, nap.conf's Replica*= and
# sshd on every host
setup_ssh() {
        local n m d
        GIT_SHELL=$(nap_cluster_copy_bin "$NAP_BUILD_ROOT/helpers/nap-git-shell") &&
                RECEIVE=$(nap_cluster_copy_bin "$NAP_BUILD_ROOT/helpers/nap-receive") &&
                mkdir -p /run/sshd "$NAP_CLUSTER_DIR/ssh" &&
                ssh-keygen -q -t ed25519 -N '' -C alice -f "$NAP_CLUSTER_DIR/ssh/alice" || return 1
        for n in 1 2 3; do
                d=$(nap_cluster_dir "$n")/ssh
                mkdir -p "$d" && ssh-keygen -q -t ed25519 -N '' -C "h$n" -f "$d/host" &&
                        ssh-keygen -q -t ed25519 -N '' -C "nap@h$n" -f "$d/replica" || return 1
                echo "$(nap_cluster_ip "$n") $(cut -d' ' -f1,2 "$d/host.pub")" >>"$NAP_CLUSTER_DIR/ssh/known_hosts"
        done
        for n in 1 2 3; do
                d=$(nap_cluster_dir "$n")/ssh
                echo "command=\"$GIT_SHELL alice\",restrict $(cat "$NAP_CLUSTER_DIR/ssh/alice.pub")" >"$d/authorized_keys"
                for m in 1 2 3; do
                        [ "$m" = "$n" ] || echo "command=\"$GIT_SHELL --replica\",restrict $(cat "$(nap_cluster_dir "$m")/ssh/replica.pub")"
                done >>"$d/authorized_keys"
                printf 'ReplicaKey=%s\nReplicaKnownHosts=%s\nReplicaUser=root\n' "$d/replica" \
                        "$NAP_CLUSTER_DIR/ssh/known_hosts" >>"$(nap_cluster_config "$n")"
                cat >"$d/sshd_config" <<EOF_SSHD
ListenAddress $(nap_cluster_ip "$n"):22
HostKey $d/host
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin forced-commands-only
AllowUsers root
StrictModes no
PermitUserEnvironment no
UseDNS no
LogLevel VERBOSE
SetEnv "NAP_CONFIG=$(nap_cluster_config "$n")" "NAP_RECEIVE_BINARY=$RECEIVE" "XDG_RUNTIME_DIR=/run/user/0" "HOME=$d" "NAP_DISCOVERY_BINARY=${NAP_DISCOVERY_BINARY:-}"
EOF_SSHD
                "$SSHD_BIN" -t -f "$d/sshd_config" || return 1
                nap_cluster_exec_in_cgroup "$n" "$SSHD_BIN" -D -E "$d/sshd.log" -f "$d/sshd_config" </dev/null &
                wait_until 20 sshd_listening "$n" || return 1
        done
}
push_to_h1() { # REPO: its main pushed to h1 as alice; git's output
        GIT_SSH_COMMAND="ssh -i $NAP_CLUSTER_DIR/ssh/alice -o BatchMode=yes -o IdentitiesOnly=yes -o UserKnownHostsFile=$NAP_CLUSTER_DIR/ssh/known_hosts -o StrictHostKeyChecking=yes" \
                git -C "$1" push "ssh://root@$(nap_cluster_ip 1)/pushed" main 2>&1
}
replica_tip() { # N: host N's alice/pushed.git main
        git -C "$(nap_cluster_dir "$1")/root/git/alice/pushed.git" rev-parse main 2>/dev/null
}

log "pushed apps: the repository reaches every host"
if ! check "sshd on every host, keys and known hosts" setup_ssh; then
        for n in 1 2 3; do diag "$(tail -n 20 "$(nap_cluster_dir "$n")/ssh/sshd.log" 2>/dev/null)"; done
fi
P1=$(app_repo pushed p1) && git -C "$NAP_CLUSTER_DIR/repos/pushed" branch -M main
out=$(push_to_h1 "$NAP_CLUSTER_DIR/repos/pushed")
check "git push to h1 deploys there" grep -q "nap: deployed alice_pushed at ${P1:0:12}" <<<"$out" || diag "$out"
check "and says it copied the repository to the two other hosts" \
        grep -q "nap: copied alice_pushed's repository to 2 other node(s)" <<<"$out"
assert_eq "the source record: pushed to h1" "$P1 h1 true" \
        "$(etcd_value /nap/apps/alice_pushed | jq -r '"\(.commit) \(.node) \(.pushed)"')"
assert_eq "h2 has a copy of the repository at the pushed commit" "$P1" "$(replica_tip 2)"
assert_eq "h3 too" "$P1" "$(replica_tip 3)"
assert_eq "the copy did not deploy on h2" "" "$(services_on 2 | grep alice_pushed)"
out=$(napctl_on 1 start-common --node=h2 alice_pushed 2>&1)
if ! assert_match "start-common --node=h2: h2 deploys from its copy and runs it" "$out" \
        "^alice_pushed_common@[0-9]* http://$(nap_cluster_ip 2 | sed 's/\./\\./g'):202[0-9][0-9]\$"; then
        diag "$(nap_cluster_exec 2 journalctl --no-pager -q --user-unit nap-node.service -n 20 -o cat)"
fi
num=${out%% *}
assert_eq "it answers as the pushed commit does" "p1 from alice_pushed_${num##*@} on port ${out##*:}" \
        "$(answer_from 1 "${out#* }/")"
P2=$(app_commit pushed p2)
out=$(push_to_h1 "$NAP_CLUSTER_DIR/repos/pushed")
check "a second push deploys" grep -q "nap: deployed alice_pushed at ${P2:0:12}" <<<"$out" || diag "$out"
assert_eq "and reaches h2's copy" "$P2" "$(replica_tip 2)"
pushed_on_h2() { # the "COMMIT GREETING" h2's instance of alice_pushed reports and answers
        local a report
        a=$(nap_cluster_etcdctl get --prefix --print-value-only /nap/assignments/h2/alice_pushed_ | jq -r .number)
        report=$(observed h2 "alice_pushed_common@$a")
        echo "$(jq -r .commit <<<"$report") $(answer_from 1 "http://$(nap_cluster_ip 2):$(jq -r .port <<<"$report")/" | cut -d' ' -f1)"
}
assert_eq "h2's instance rolled to it" "$P2 p2" "$(pushed_on_h2)"

# ============================================== a damaged source record
log "a damaged source record"
check "alice_trees's record damaged in etcd" \
        quiet nap_cluster_etcdctl put /nap/apps/alice_trees '{"app":"alice_trees","url":"","commit":"x"}'
out=$(nap_cluster_exec 1 "$NAPCTL_COPY" --user --no-helper start-common --node=h2 alice_trees 2>&1)
check "start-common refuses" test $? -ne 0
assert_contains "naming the field" "$out" "field 'url'"
assert_eq "and assigns nothing" "" "$(nap_cluster_etcdctl get --prefix --keys-only /nap/assignments/h2/alice_trees)"

log "wall time: $(($(now_ms) - T_START)) ms"
nap_summary
