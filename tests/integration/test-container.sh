#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Issue 17: Dockerfile apps for real. A Dockerfile app (tests/apps/
# container-app: FROM scratch with the host's static busybox serving
# www/ on $PORT) is pushed with real git into a bare repository whose
# post-receive hook is nap-receive, built by its build unit with the real
# podman and runc, and run by its run unit in the sandboxed systemd user
# manager (lib.sh), with the instance's port published. Asserts what the
# pusher sees, what answers over HTTP, the journal of both units, the
# images in podman's store, the manager's "Reloading." lines, and the
# run unit's systemd-analyze exposure (printed). A second app of the same
# tree, deployed with napctl deploy-app and started with start-common,
# gets its image built by the start; its images survive the pruning of the
# first app's, whose name begins its own.
#
# Why the user manager of the sandbox and not a system one: podman runs
# there as root (the sandbox's manager is root's), which is what nap's
# system scope gives it too; rootless podman (subuids, slirp4netns) is not
# what nap runs. podman's storage is a tmpfs mounted over
# /var/lib/containers (and its CNI state over /var/lib/cni) inside the
# sandbox's mount namespace, and the whole test runs in a network
# namespace of its own (tests/podman-lib.sh): nothing is left on the host. podman reads
# nap's own containers.conf (conf/containers.conf, installed as a
# containers.conf.d drop-in) through CONTAINERS_CONF in the manager's
# environment, which its units inherit.
#
#   NAPCTL=build/cli/napctl NAP_GENERATOR=build/generators/nap-generator \
#   NAP_BUILD_ROOT=build tests/integration/test-container.sh
# Needs root, podman, runc and busybox-static (scripts/install-deps).

. "$(dirname "$0")/lib.sh"

SRC=${NAP_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/podman-lib.sh"
# The whole test in a network namespace of its own: podman's bridge and
# port forwarding go with it (tests/podman-lib.sh).
podman_netns_enter "$@"
BUSYBOX=/bin/busybox
if [ -z "${NAP_SANDBOX_INSIDE:-}" ]; then
        nap_napctl_env
        NAP_RECEIVE=${NAP_RECEIVE:-$NAP_BUILD_ROOT/helpers/nap-receive}
        [ -x "$NAP_RECEIVE" ] || { echo "Bail out! $NAP_RECEIVE is not built"; exit 1; }
        for t in podman runc git jq curl systemd-analyze; do
                command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] || skip_all "$t is not installed (scripts/install-deps)"
        done
        { LC_ALL=C ldd "$BUSYBOX" 2>&1 || :; } | grep -q 'not a dynamic executable' ||
                skip_all "$BUSYBOX is not a static busybox (Debian's busybox-static)"
        [ -x /usr/bin/etcd ] && command -v etcdctl >/dev/null || skip_all "etcd and etcdctl (etcd-server, etcd-client) are needed"
        NAP_DISCOVERY=$(realpath "${NAP_DISCOVERY:-$NAP_BUILD_ROOT/helpers/nap-discovery}") ||
                { echo "Bail out! set NAP_DISCOVERY"; exit 1; }
        # The manager's environment reaches the generator and the units:
        # sidecars run this build's nap-discovery, podman reads nap's
        # containers.conf.
        NAP_RECEIVE=$(realpath "$NAP_RECEIVE")
        export NAP_RECEIVE CONTAINERS_CONF=$SRC/conf/containers.conf
        export NAP_DISCOVERY NAP_DISCOVERY_BINARY=$NAP_DISCOVERY
fi
nap_sandbox_enter "$@"
podman_store_mount || { echo "Bail out! cannot mount podman's store"; exit 1; }
nap_sandbox_start
. "$(dirname "$0")/napctl-lib.sh"
. "$NAP_SOURCE_ROOT/tests/etcd-lib.sh"
# With Etcd=, each instance's discovery sidecar publishes it once it
# answers, and a push waits for that before the old instance goes.
etcd_start "$NAP_TEST_DIR/etcd-run" || { echo "Bail out! etcd did not start"; exit 1; }
printf 'Etcd=%s\nDiscoveryTTL=3\n' "$ETCD_URL" >>"$NAP_CONFIG"
timeout 60 systemctl --user daemon-reload

SVC=alice_box
APP=$NAP_TEST_DIR/app
BARE=$NAP_ROOT/git/alice/box.git
export NAP_RECEIVE_TIMEOUT=20

# ------------------------------------------------------------------ helpers

# push: git push of APP's main; sets POUT, PRC, URL (the first bare
# "remote: http://…" line) and MS (wall time).
push() {
        local t0
        t0=$(now_ms)
        PRC=0
        POUT=$(cd "$APP" && timeout 180 git push -q origin main 2>&1) || PRC=$?
        MS=$(($(now_ms) - t0))
        URL=$(printf '%s\n' "$POUT" | sed -nE 's|^remote: (http://[0-9.]+:[0-9]+)[[:space:]]*$|\1|p' | head -n 1)
}
push_diag() { diag "git push: rc=$PRC" "$POUT"; }

# commit MESSAGE: everything in APP; prints the new commit.
commit() {
        git -C "$APP" add -A && git -C "$APP" commit -q -m "$1" && git -C "$APP" rev-parse HEAD
}

page() { curl -sS --max-time 3 "$1/" 2>/dev/null; }
images() { # [SERVICE]: its images in podman's store (default: SVC's), by name
        podman images --noheading --format '{{.Repository}}:{{.Tag}}' | sed -n "\|^localhost/nap/${1:-$SVC}:|p" | sort
}
tag_of() { echo "localhost/nap/${2:-$SVC}:${1:0:12}"; } # COMMIT [SERVICE]
instance_unit() { # the app's only running instance's unit
        systemctl --user list-units --no-legend --plain --state=running "${SVC}_common@*.service" | awk '{ print $1 }'
}
unit_log() { journalctl --no-pager -q -o cat --user-unit "$1" 2>/dev/null; }

# ------------------------------------------------------ the app, first push

git init -q --bare -b main "$BARE" &&
        printf '#!/bin/sh\nexec %s alice box\n' "$NAP_RECEIVE" >"$BARE/hooks/post-receive" &&
        chmod 0755 "$BARE/hooks/post-receive" || { echo "Bail out! cannot make the bare repository"; exit 1; }
# The static busybox is copied in here, never committed to nap's tree.
cp -r "$SRC/tests/apps/container-app" "$APP" && cp "$BUSYBOX" "$APP/busybox" &&
        echo "box v1" >"$APP/www/index.html" && make_repo "$APP" >/dev/null &&
        git -C "$APP" branch -q -M main && git -C "$APP" remote add origin "$BARE" ||
        { echo "Bail out! cannot make the app's repository"; exit 1; }
V1=$(git -C "$APP" rev-parse HEAD)

push
log "first push: ${MS} ms; it printed:"
printf '%s\n' "$POUT" | sed 's/^/#   /'
# (A post-receive hook cannot refuse a push: git push succeeds either
# way, and what nap did is in its "remote: nap: " lines.)
deployed() { [ "$PRC" -eq 0 ] && [ -n "$URL" ] && ! grep -q "remote: nap: deploying $SVC failed" <<<"$POUT"; }
# push_version PAGE WHAT: APP's page made PAGE, committed and pushed (V:
# the commit); checks that WHAT (the push) deploys.
push_version() {
        echo "$1" >"$APP/www/index.html"
        V=$(commit "$1")
        push
        log "$2: ${MS} ms"
        if deployed; then ok "$2 deploys"; else fail "$2 deploys"; push_diag; fi
}
if deployed; then ok "the first push of a Dockerfile app deploys it"; else fail "the first push of a Dockerfile app deploys it"; push_diag; fi
assert_contains "the push shows the build's steps" "$POUT" "build: STEP 2/5: COPY busybox /bin/busybox"
assert_contains "the push names the image it built" "$POUT" "image $(tag_of "$V1") built in"
assert_eq "the instance answers with the pushed page" "box v1" "$(page "$URL")"
UNIT1=$(instance_unit)
I1=${UNIT1%.service}
BUILD1=${SVC}_build@${I1##*@}.service
assert_match "the instance runs as a podman container (conmon is its main process)" \
        "$(ps -o comm= -p "$(systemctl --user show -P MainPID "$UNIT1")" 2>/dev/null)" '^conmon$'
assert_eq "podman's store holds the image, tagged by app and commit" "$(tag_of "$V1")" "$(images)"
assert_contains "the build unit's journal has the build's output" "$(unit_log "$BUILD1")" \
        "Successfully tagged $(tag_of "$V1")"
assert_contains "the instance's journal has the container's output (with \$PORT passed in)" \
        "$(unit_log "$UNIT1")" "container app: serving /www on port ${URL##*:}"
endpoints() { ETCDCTL_API=3 timeout 5 etcdctl --endpoints="$ETCD_URL" get --prefix "/services/$SVC/" 2>/dev/null; }
assert_contains "the discovery sidecar published the container's endpoint" "$(endpoints)" ":${URL##*:}"
nap get-journal "$I1"
assert_contains "napctl get-journal shows the container's output" "$OUT" "container app: serving /www"

# The run unit as systemd-analyze scores it (the generator's file).
EXPOSURE=$(systemd-analyze --user security --offline=yes \
        "$XDG_RUNTIME_DIR/systemd/user/$UNIT1" 2>/dev/null | sed -n 's/^→ Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
log "exposure of the container run unit (systemd-analyze security): $EXPOSURE"
check "the run unit's exposure is at most 7.0 (got $EXPOSURE; 10.0 unhardened)" \
        python3 -c 'import sys; sys.exit(not (sys.argv[1] and float(sys.argv[1]) <= 7.0))' "$EXPOSURE"

# -------------------------------------------------------- a second push

cursor=$(cursor_now)
PORT1=${URL##*:}
push_version "box v2" "a second push"
V2=$V
assert_eq "the new version answers" "box v2" "$(page "$URL")"
assert_contains "etcd lists the new container's endpoint" "$(endpoints)" ":${URL##*:}"
assert_not_contains "... and no longer the old one's" "$(endpoints)" ":$PORT1"
V2_URL=$URL
assert_eq "podman's store holds both images" "$(printf '%s\n' "$(tag_of "$V1")" "$(tag_of "$V2")" | sort)" "$(images)"
check "the second push reloaded the manager at most once ($(reloads_since "$cursor"))" \
        test "$(reloads_since "$cursor")" -le 1
UNIT2=$(instance_unit)
check "the old container is gone (only one runs)" test "$(podman ps -q | wc -l)" -eq 1

# ------------------------------------ deploy-app, then start-common

# The other way to deploy: the app's tree fetched by deploy-app, its
# image built by the start, before the run unit starts. (Its name begins
# with SVC's: pruning SVC's images must leave its own alone.)
DEP=${SVC}dep
expect_ok "deploy-app of a Dockerfile app" deploy-app "$DEP" "file://$APP"
if start_instance "$DEP" ""; then ok "start-common builds its image and starts it"; else fail "start-common builds its image and starts it"; nap_diag start-common "$DEP"; fi
assert_eq "... the image tagged by app and commit" "$(tag_of "$V2" "$DEP")" "$(images "$DEP")"
assert_eq "... and it answers with the deployed page" "box v2" "$(page "$URL")"
expect_ok "its instance removed" remove-instance "$INST"

# ------------------------------------------------ a build that fails

cp "$APP/Dockerfile" "$NAP_TEST_DIR/Dockerfile.good"
echo 'COPY no-such-file /nowhere' >>"$APP/Dockerfile"
commit "broken" >/dev/null
push
log "failing push: ${MS} ms; it printed:"
printf '%s\n' "$POUT" | sed 's/^/#   /'
assert_contains "a push whose image does not build says the deploy failed" "$POUT" "remote: nap: deploying $SVC failed"
assert_contains "the push says the build failed" "$POUT" "the image build failed"
assert_contains "the push shows the build log's last lines" "$POUT" "no-such-file"
assert_contains "the push says the previous version keeps running" "$POUT" "the previous version (${V2:0:12}) keeps running"
assert_eq "the previous version keeps serving" "box v2" "$(page "$V2_URL")"
assert_eq "its instance is the same unit" "$UNIT2" "$(instance_unit)"

# ---------------------------------------- a third push: old images pruned

cp "$NAP_TEST_DIR/Dockerfile.good" "$APP/Dockerfile"
push_version "box v3" "a push after the failed one"
V3=$V
assert_eq "v3 answers" "box v3" "$(page "$URL")"
assert_eq "the oldest image is pruned: the deployed one and the previous one are kept" \
        "$(printf '%s\n' "$(tag_of "$V2")" "$(tag_of "$V3")" | sort)" "$(images)"
assert_contains "the push says it pruned" "$POUT" "1 old image of $SVC pruned"
assert_eq "... and no image of $DEP, whose name begins with $SVC" "$(tag_of "$V2" "$DEP")" "$(images "$DEP")"

# ------------------------------------------------ rollback, stop, start, remove

nap rollback "$SVC"
if [ "$RC" -eq 0 ]; then ok "rollback"; else fail "rollback"; nap_diag rollback; fi
I=$(instance_unit)
I=${I%.service}
PORT=$(jq -r .port "$NAP_INSTANCES/$I.json")
assert_eq "rollback: the previous version answers (its image was kept)" "box v2" "$(page "http://127.0.0.1:$PORT")"

expect_ok "stop-app" stop-app "$I"
check "stop-app: the container is gone" test -z "$(podman ps -q)"
check "stop-app: nothing answers" http_refused "http://127.0.0.1:$PORT/"
expect_ok "start-app" start-app "$I"
assert_eq "start-app: it answers again" "box v2" "$(page "http://127.0.0.1:$PORT")"
expect_ok "restart-app" restart-app "$I"
assert_eq "restart-app: it answers again" "box v2" "$(page "http://127.0.0.1:$PORT")"
expect_ok "scale to 2" scale "$SVC" 2
check "scale: two containers run" test "$(podman ps -q | wc -l)" -eq 2
expect_ok "remove-instance" remove-instance "$I"
check "remove-instance: one container is left" test "$(podman ps -q | wc -l)" -eq 1
check "remove-instance: nothing answers on its port" http_refused "http://127.0.0.1:$PORT/"

# ------------------------------------------------ what the host lacks

# A runtime that refuses to create the container: limits above what the
# kernel allows anyone (fs.nr_open), as podman's default limits are on a
# host without CAP_SYS_RESOURCE (these machines, outside a unit).
# start-common says so by name, with what the runtime said.
printf '[engine]\nruntime = "runc"\n[containers]\ndefault_ulimits = ["nofile=99999999:99999999"]\n' \
        >"$NAP_TEST_DIR/podman-refused.conf"
systemctl --user set-environment CONTAINERS_CONF="$NAP_TEST_DIR/podman-refused.conf"
nap start-common "$SVC"
systemctl --user set-environment CONTAINERS_CONF="$CONTAINERS_CONF"
check "when the runtime refuses the container start-common fails" test "$RC" -ne 0
assert_contains "... naming the runtime's refusal" "$ERR" "the container runtime cannot run here: "
assert_contains "... with what it said" "$ERR" "rlimit"
failed=$(ls "$NAP_INSTANCES" | sed -n 's/\.json$//p' | sort -t@ -k2 -n | tail -n 1)
expect_ok "the failed instance is removed" remove-instance "$failed"

# podman made unusable inside this mount namespace only: a start says so
# by name and makes nothing.
before=$(ls "$NAP_INSTANCES" | wc -l)
touch "$NAP_TEST_DIR/no-podman" && chmod 0644 "$NAP_TEST_DIR/no-podman" &&
        mount --bind "$NAP_TEST_DIR/no-podman" /usr/bin/podman
nap --no-helper start-common "$SVC" # in this process: this mount namespace's view
umount /usr/bin/podman
check "without podman start-common fails" test "$RC" -ne 0
assert_contains "... saying podman is not installed" "$ERR" "podman is not installed"
assert_eq "... and making no instance" "$before" "$(ls "$NAP_INSTANCES" | wc -l)"

nap_summary
