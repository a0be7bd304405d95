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
#   are refused; alice's instances are as she left them.
# With etcd (when installed): the instance's endpoint, published by its
# sidecar, on the app's page; a node root applied on the nodes page.
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

free_port() {
        local p
        for _ in $(seq 50); do
                p=$((40000 + $(od -An -N2 -tu2 /dev/urandom) % 20000))
                tcp_listening "$p" || { echo "$p"; return 0; }
        done
        return 1
}

HELLO=$NAP_TEST_DIR/repos/hello
make_repo "$HELLO" "$NAP_SOURCE_ROOT"/tests/apps/hello/. || { echo "Bail out! cannot make the app's repository"; exit 1; }
expect_ok "root deploys alice_hello" deploy-app alice_hello "$HELLO"
expect_ok "root deploys bob_hello" deploy-app bob_hello "$HELLO"
PORT=$(free_port) || { echo "Bail out! no free port"; exit 1; }
nap_web_install "127.0.0.1:$PORT" || { echo "Bail out! cannot install nap-web"; exit 1; }
[ -z "$HAVE_ETCD" ] || expect_ok "root applies a node" node apply h1 127.0.0.1 --cpu=2 --memory=1G --storage=10G
nap web token alice
TOKEN_ALICE=$OUT
nap web token bob
TOKEN_BOB=$OUT

ARTIFACTS=$NAP_BUILD_ROOT/tests/browser-artifacts
rm -rf "$ARTIFACTS"
START=$(now_ms)
HAVE_ETCD=$HAVE_ETCD HOME=$NAP_TEST_DIR/home WEB_URL=$WEB_URL TOKEN_ALICE=$TOKEN_ALICE TOKEN_BOB=$TOKEN_BOB ARTIFACTS=$ARTIFACTS \
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
for page in apps app log app-scaled nodes denied; do
        check "screenshot $page.png saved" test -s "$ARTIFACTS/$page.png"
done

nap_summary
