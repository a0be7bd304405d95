#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# nap-web in a real browser (tests/browser/web.test.mjs: Debian's
# chromium, headless, driven by puppeteer-core from tests/browser's
# package-lock.json; scripts/test runs npm ci there). The sandbox of lib.sh
# with nap-managerd and nap-web on TCP; alice and bob (nap_users_setup)
# each with an app root deployed and a token:
#   alice signs in, sees her deploy, starts an instance through the form
#   GetParameters made and it answers, watches a line the app prints
#   arrive in the live log (and the filter), stops it, scales to 3;
#   bob sees only his app, is refused alice's app page in words, and
#   his forged calls (his CSRF token on alice's instance; no CSRF token)
#   are refused; alice's instances are as she left them. Before all that
#   alice rolls her app back to its first deploy with the Rollback button
#   (a confirmation, then the result), and sees the node of each instance.
# With etcd (when installed): the instance's endpoint, published by its
# sidecar, on the app's page; a node root applied on the nodes page; the
# queue page: alice's two queued jobs (not to bob), moved down and
# cancelled there, as nap-queued then lists them.
# Screenshots of each main page: BUILD/tests/browser-artifacts/*.png.
#
#   NAPCTL=build/cli/napctl NAP_GENERATOR=build/generators/nap-generator \
#   NAP_BUILD_ROOT=build tests/integration/test-web-browser.sh
# Needs root, node, chromium and npm ci in tests/browser; exits 77 otherwise.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../etcd-lib.sh"

nap_napctl_env
# The sidecars run this build's nap-discovery.
[ -n "${NAP_SANDBOX_INSIDE:-}" ] || [ ! -x "${NAP_DISCOVERY:-}" ] ||
        export NAP_DISCOVERY_BINARY=$(realpath "$NAP_DISCOVERY")
BROWSER_DIR=$NAP_SOURCE_ROOT/tests/browser
[ -x /usr/bin/chromium ] || skip_all "/usr/bin/chromium not found (scripts/install-deps installs it)"
command -v node >/dev/null || skip_all "node not found"
[ -d "$BROWSER_DIR/node_modules/puppeteer-core" ] || skip_all "run 'npm ci' in tests/browser (scripts/test does)"
nap_sandbox_enter "$@"
nap_sandbox_start
nap_need jq git curl
nap_users_setup || { echo "Bail out! cannot set up the test users"; exit 1; }
chmod 0711 "$XDG_RUNTIME_DIR"
HAVE_ETCD=
if [ -x "$ETCD_BIN" ]; then
        trap 'nap__rc=$?; etcd_stop; (exit $nap__rc); nap_sandbox_stop' EXIT
        etcd_start "$NAP_TEST_DIR/etcd" && echo "Etcd=$ETCD_URL" >>"$NAP_CONFIG" && HAVE_ETCD=1
fi
[ -n "$HAVE_ETCD" ] || log "no etcd ($ETCD_BIN): endpoints and nodes are not shown"
. "$(dirname "$0")/napctl-lib.sh"
. "$(dirname "$0")/web-lib.sh"

# nap-web on a TCP port the kernel hands out as free (etcd_free_port); a
# port taken between choosing and binding it (an ephemeral port some
# connection picked) fails the socket unit: choose again, three times.
web_install_on_free_port() {
        local attempt
        for attempt in 1 2 3; do
                nap_web_install "127.0.0.1:$(etcd_free_port)" && return 0
                log "nap-web.socket did not listen (attempt $attempt); choosing another port"
                timeout 30 systemctl --user reset-failed nap-web.socket 2>/dev/null
        done
        return 1
}

HELLO=$NAP_TEST_DIR/repos/hello
make_repo "$HELLO" "$NAP_SOURCE_ROOT"/tests/apps/hello/. || { echo "Bail out! cannot make the app's repository"; exit 1; }
expect_ok "root deploys alice_hello" deploy-app alice_hello "$HELLO"
# a second deploy, for the page's Rollback
COMMIT_FIRST=$(git -C "$HELLO" rev-parse HEAD)
git -C "$HELLO" -c user.name=nap -c user.email=nap@localhost commit -q --allow-empty -m "second" ||
        { echo "Bail out! cannot commit"; exit 1; }
expect_ok "root deploys a second commit of alice_hello" deploy-app alice_hello "$HELLO"
expect_ok "root deploys bob_hello" deploy-app bob_hello "$HELLO"
web_install_on_free_port || { echo "Bail out! cannot install nap-web"; exit 1; }
[ -z "$HAVE_ETCD" ] || expect_ok "root applies a node" node apply h1 127.0.0.1 --cpu=2 --memory=1G --storage=10G

# The queue: nap-queued socket-activated, two jobs alice submits on its
# Unix socket (her uid is the owner). h1 has no nap-node, so it is never
# Ready: they stay queued.
QUEUE_SOCK=$XDG_RUNTIME_DIR/nap/queue
queued_install() {
        local dir=$XDG_RUNTIME_DIR/systemd/user
        mkdir -p "$NAP_TEST_DIR/bin" && cp "$NAP_BUILD_ROOT/helpers/nap-queued" "$NAP_TEST_DIR/bin/" &&
                cp "$NAP_BUILD_ROOT/units/nap-queued.service" "$NAP_BUILD_ROOT/units/nap-queued.socket" "$dir/" &&
                mkdir -p "$dir/nap-queued.service.d" || return 1
        printf '[Service]\nExecStart=\nExecStart=%s\nEnvironment=NAP_CONFIG=%s\nRestart=no\n' \
                "$NAP_TEST_DIR/bin/nap-queued" "$NAP_CONFIG" >"$dir/nap-queued.service.d/50-test.conf"
        timeout 30 systemctl --user daemon-reload && timeout 30 systemctl --user start nap-queued.socket
}
submit_as_alice() { # REQUEST_ID: the HTTP status
        setpriv --reuid=$ALICE_UID --regid=$ALICE_UID --clear-groups curl -s -o /dev/null -w '%{http_code}' \
                --max-time 20 --unix-socket "$QUEUE_SOCK" -H 'Content-Type: application/json' --data-binary \
                "{\"request_id\":\"$1\",\"owner_id\":\"alice\",\"data\":{\"instances\":[{\"VCPU\":1,\"Memory\":512,\"Disk\":1}]},\"callback\":\"http://127.0.0.1:9/$1\"}" \
                http://queue/v1/vm/
}
if [ -n "$HAVE_ETCD" ]; then
        queued_install || { echo "Bail out! cannot install nap-queued"; exit 1; }
        for id in web-job-1 web-job-2; do
                assert_eq "alice submits $id to the vm queue" 200 "$(submit_as_alice $id)"
        done
fi
NODE=$(sed -n 's/^Node=//p' "$NAP_CONFIG" | tail -n 1)
[ -n "$NODE" ] || NODE=$(hostname | cut -d. -f1 | tr 'A-Z' 'a-z')
nap web token alice
TOKEN_ALICE=$OUT
nap web token bob
TOKEN_BOB=$OUT

ARTIFACTS=$NAP_BUILD_ROOT/tests/browser-artifacts
rm -rf "$ARTIFACTS"
START=$(now_ms)
COMMIT_FIRST=$COMMIT_FIRST NODE=$NODE HAVE_ETCD=$HAVE_ETCD HOME=$NAP_TEST_DIR/home WEB_URL=$WEB_URL TOKEN_ALICE=$TOKEN_ALICE TOKEN_BOB=$TOKEN_BOB ARTIFACTS=$ARTIFACTS \
        timeout 240 node "$BROWSER_DIR/web.test.mjs" >"$NAP_TEST_DIR/browser.out" 2>&1
log "the browser's part took $(($(now_ms) - START)) ms"
while IFS= read -r line; do
        case $line in
        "ok - "*) ok "${line#ok - }" ;;
        "not ok - "*) fail "${line#not ok - }" ;;
        *) echo "$line" ;;
        esac
done <"$NAP_TEST_DIR/browser.out"
grep -q '^\(not \)\?ok - ' "$NAP_TEST_DIR/browser.out" || fail "the browser test ran"

# What the browser did, seen from napctl.
COUNT=$("$NAPCTL" --user get-instances-num alice_hello)
assert_eq "alice_hello has the 3 instances the page scaled it to" 3 "$COUNT"
assert_eq "bob_hello has none: nothing bob's page sent reached it" 0 "$("$NAPCTL" --user get-instances-num bob_hello)"
ACTIVE=$("$NAPCTL" --user --json list-instances alice_hello | jq '[.[] | select(.active_state == "active")] | length')
assert_eq "bob's forged StopApp left alice's running instances running" 2 "$ACTIVE"
assert_eq "the page's rollback deployed the first commit" "$COMMIT_FIRST" \
        "$(jq -r .commit "$NAP_ROOT/services/alice/alice_hello/.nap/deploy.json" 2>&1)"
if [ -n "$HAVE_ETCD" ]; then
        JOBS=$(curl -s --max-time 20 --unix-socket "$QUEUE_SOCK" "http://queue/v1/vm/?owner_id=alice")
        assert_eq "what the queue page did, seen by nap-queued: job 2 first, job 1 cancelled" \
                "web-job-2:queued web-job-1:cancelled" "$(jq -r '[.data[] | "\(.RequestID):\(.Status)"] | join(" ")' <<<"$JOBS")"
fi
PAGES="apps app log app-scaled nodes denied"
[ -z "$HAVE_ETCD" ] || PAGES+=" queue"
for page in $PAGES; do
        check "screenshot $page.png saved" test -s "$ARTIFACTS/$page.png"
done

nap_summary
