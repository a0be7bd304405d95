#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# nap-web over plain HTTP (curl), with the real nap-managerd and systemd
# user manager of lib.sh; two nap users, alice and bob (lib.sh's
# nap_users_setup: accounts with their own uids in the sandbox), whose
# apps root deploys. What a page never sends is sent here:
#   - the page, its script and style, with the security headers;
#   - napctl web token: stored hashed, one per user, only the user's own
#     (or root's), names checked; revoke;
#   - sign-in: the cookie (HttpOnly, SameSite=Strict; Secure with
#     --secure-cookies), bad, malformed and oversized requests, the rate
#     limit (429 with Retry-After);
#   - every API route without a session, with a forged or another user's
#     cookie, without or with a wrong CSRF token: refused, nothing done;
#   - alice's calls authorized for alice's uid by the registry: her app
#     yes, bob's app no (read and write), unknown methods, invalid names
#     and arguments as the named errors of io.nap.Manager;
#   - History and Rollback (another user's app, bad commits and batches
#     refused, changing nothing; a rollback's new instance answers);
#   - start-common through the API: the instance answers; its CPU and
#     memory from systemd; its log followed as server-sent events;
#   - socket activation and idle exit, a session kept across restarts
#     (the cookie is all the state), a new token ending old sessions.
# The browser's view of the same: test-web-browser.sh.
#
#   NAPCTL=build/cli/napctl NAP_GENERATOR=build/generators/nap-generator \
#   NAP_BUILD_ROOT=build tests/integration/test-web.sh
# Needs root; exits 77 otherwise.

. "$(dirname "$0")/lib.sh"

nap_napctl_env
nap_sandbox_enter "$@"
nap_sandbox_start
nap_need jq git curl setpriv sha256sum
nap_users_setup || { echo "Bail out! cannot set up the test users"; exit 1; }
chmod 0711 "$XDG_RUNTIME_DIR"
. "$(dirname "$0")/napctl-lib.sh"
. "$(dirname "$0")/web-lib.sh"

HELLO=$NAP_TEST_DIR/repos/hello
make_repo "$HELLO" "$NAP_SOURCE_ROOT"/tests/apps/hello/. || { echo "Bail out! cannot make the app's repository"; exit 1; }
expect_ok "root deploys alice_hello" deploy-app alice_hello "$HELLO"
expect_ok "root deploys bob_hello" deploy-app bob_hello "$HELLO"
nap_web_install "" --idle-timeout=2 || { echo "Bail out! cannot install nap-web"; exit 1; }

# ------------------------------------------------------------- the page

web GET /
assert_eq "GET / answers" 200 "$STATUS"
assert_contains "the page is the console" "$BODY" '<script src="/app.js"'
assert_contains "the page forbids foreign scripts" "$HEADERS" "content-security-policy: default-src 'none'; script-src 'self'"
assert_contains "the page is never framed" "$HEADERS" "x-frame-options: deny"
web GET /app.js
assert_eq "GET /app.js answers" 200 "$STATUS"
assert_contains "the script is JavaScript" "$HEADERS" "content-type: text/javascript"
web GET /style.css
assert_eq "GET /style.css answers" 200 "$STATUS"
web GET /nothing
assert_eq "an unknown path is 404" 404 "$STATUS"
web GET /api/signin
assert_eq "GET on a POST route is 405" 405 "$STATUS"
web GET /api/call/ListApps
assert_eq "GET of a call is 405" 405 "$STATUS"

# ------------------------------------------------------------- tokens

nap web token alice
TOKEN_A=$OUT
assert_match "napctl web token alice prints alice's token" "$TOKEN_A" '^alice\.[0-9a-f]{64}$'
STORED=$(cat "$NAP_ROOT/web/tokens/alice")
assert_eq "only the token's sha256 is stored" "$(printf '%s' "$TOKEN_A" | sha256sum | cut -d' ' -f1)" "$STORED"
assert_not_contains "the token itself is not stored" "$(cat "$NAP_ROOT"/web/tokens/*)" "${TOKEN_A#alice.}"
assert_eq "the token file is root's alone" 600 "$(stat -c %a "$NAP_ROOT/web/tokens/alice")"
nap web token bob
TOKEN_B=$OUT
nap web token 'Bad_Name'
assert_eq "a bad user name is refused (exit 2)" 2 "$RC"
RC=0
OUT=$(setpriv --reuid=$BOB_UID --regid=$BOB_UID --clear-groups "$NAPCTL" --no-helper web token alice 2>&1) || RC=$?
assert_eq "bob may not make alice's token" 1 "$RC"
assert_contains "... PermissionDenied, said so" "$OUT" "may not change the apps of user alice"
assert_eq "... and alice's token is unchanged" "$STORED" "$(cat "$NAP_ROOT/web/tokens/alice")"

# ------------------------------------------------------------- sign-in

web GET /api/session
assert_eq "no session: 401" 401 "$STATUS"
assert_eq "... io.nap.Manager.PermissionDenied" io.nap.Manager.PermissionDenied "$(jq -r .error <<<"$BODY")"
web POST /api/signin '{"token":"alice.0000000000000000000000000000000000000000000000000000000000000000"}'
assert_eq "a wrong token: 401" 401 "$STATUS"
assert_not_contains "... and no cookie" "$HEADERS" "set-cookie"
web POST /api/signin '{"token":'
assert_eq "malformed JSON: 400" 400 "$STATUS"
assert_eq "... InvalidParameter" io.nap.Manager.InvalidParameter "$(jq -r .error <<<"$BODY")"
web POST /api/signin '{"token":"a","token":"b"}'
assert_eq "duplicate keys: 400" 400 "$STATUS"
web POST /api/signin '["x"]'
assert_eq "not an object: 400" 400 "$STATUS"
head -c 70000 /dev/zero | tr '\0' ' ' >"$NAP_TEST_DIR/big"
web POST /api/signin "" --data-binary @"$NAP_TEST_DIR/big"
assert_eq "a body over 64 KiB: 413" 413 "$STATUS"

web POST /api/signin "" --data-binary "{\"token\":\"$TOKEN_A\"}" -H 'Content-Type: text/plain'
assert_eq "a sign-in that is not application/json (what another site's form can send): 400" 400 "$STATUS"
assert_not_contains "... and no cookie" "$HEADERS" "set-cookie"
web_signin "$TOKEN_A"
COOKIE_A=$COOKIE CSRF_A=$CSRF
assert_eq "alice signs in" 200 "$STATUS"
assert_eq "... as alice" alice "$(jq -r .user <<<"$BODY")"
assert_contains "the cookie is HttpOnly and SameSite=Strict" "$HEADERS" "; httponly; samesite=strict"
assert_not_contains "... not Secure without --secure-cookies" "$(grep set-cookie <<<"$HEADERS")" "secure"
web_signin "$TOKEN_B"
COOKIE_B=$COOKIE CSRF_B=$CSRF
assert_eq "bob signs in" 200 "$STATUS"
web_as "$COOKIE_A" "" GET /api/session
assert_eq "alice's session" alice "$(jq -r .user <<<"$BODY")"
assert_eq "... with the same CSRF token" "$CSRF_A" "$(jq -r .csrf <<<"$BODY")"

# ------------------------------------------------------------- forged requests

started_bob() { napctl_instances bob_hello; }
napctl_instances() { "$NAPCTL" --user --json list-instances "$1" | jq length; }
web POST /api/call/ListApps '{"user":"alice"}'
assert_eq "a call without a session: 401" 401 "$STATUS"
web_as "$COOKIE_A" "" POST /api/call/ListApps '{"user":"alice"}'
assert_eq "a call without the CSRF token: 401" 401 "$STATUS"
assert_contains "... says why" "$(jq -r .message <<<"$BODY")" "X-CSRF-Token"
web_as "$COOKIE_A" "$CSRF_B" POST /api/call/ListApps '{"user":"alice"}'
assert_eq "alice's cookie with bob's CSRF token: 401" 401 "$STATUS"
web_as "$COOKIE_A" "$CSRF_B" POST /api/call/StartCommon '{"service":"bob_hello"}'
assert_eq "... also for a change" 401 "$STATUS"
FORGED="bob.${COOKIE_A#alice.}"
web_as "$FORGED" "$CSRF_A" POST /api/call/ListApps '{"user":"bob"}'
assert_eq "alice's cookie renamed to bob: 401" 401 "$STATUS"
EXP=${COOKIE_A#alice.}
EXP=${EXP%%.*}
web_as "alice.$((EXP + 100000)).${COOKIE_A##*.}" "$CSRF_A" POST /api/call/ListApps '{"user":"alice"}'
assert_eq "alice's cookie with a later expiry: 401" 401 "$STATUS"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/StartCommon '{"service":"bob_hello"}'
assert_eq "alice starting bob's app: 403" 403 "$STATUS"
assert_eq "... PermissionDenied" io.nap.Manager.PermissionDenied "$(jq -r .error <<<"$BODY")"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/ListInstances '{"service":"bob_hello"}'
assert_eq "alice listing bob's instances: 403" 403 "$STATUS"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/ListApps '{"user":"bob"}'
assert_eq "alice listing bob's apps: 403" 403 "$STATUS"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/ListApps "" --data-binary '{"user":"alice"}' -H 'Content-Type: application/x-www-form-urlencoded'
assert_eq "a call sent as form data: 400" 400 "$STATUS"
web_as "$COOKIE_A" "$CSRF_A" POST /api/stats '{"service":"bob_hello"}'
assert_eq "alice's stats of bob's app: 403" 403 "$STATUS"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/StopApp '{"instance":"bob_hello_common@1"}'
assert_eq "alice stopping bob's instance: 403" 403 "$STATUS"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/SetConfig '{"service":"bob_hello","set":{"X":"1"}}'
assert_eq "alice configuring bob's app: 403" 403 "$STATUS"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/DestroyApp '{"service":"bob_hello"}'
assert_eq "alice destroying bob's app: 403" 403 "$STATUS"
check "... bob's app is still deployed" test -d "$NAP_ROOT/services/bob/bob_hello"
web_as "$COOKIE_A" "" GET "/api/follow?instance=bob_hello_common@1"
assert_eq "alice following bob's log: 403" 403 "$STATUS"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/Recover '{}'
assert_eq "alice calling a root-only method: 403" 403 "$STATUS"
assert_eq "bob's app has no instance after all that" 0 "$(napctl_instances bob_hello)"

# ------------------------------------------------------------- alice's own

web_as "$COOKIE_A" "$CSRF_A" POST /api/call/ListApps '{"user":"alice"}'
assert_eq "alice lists her apps" 200 "$STATUS"
assert_eq "... alice_hello, deployed" alice_hello "$(jq -r '.parameters.apps[0].service' <<<"$BODY")"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/GetParameters '{"service":"alice_hello"}'
assert_eq "the parameters of her app" '["greeting"]' "$(jq -c '.parameters.parameters' <<<"$BODY")"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/History '{"service":"alice_hello"}'
assert_eq "her app's deploy history" "200 $(git -C "$HELLO" rev-parse HEAD)" "$STATUS $(jq -r '.parameters.deploys[0].commit' <<<"$BODY")"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/History '{"service":"bob_hello"}'
assert_eq "bob's app's history: 403" 403 "$STATUS"
web_as "$COOKIE_A" "" POST /api/call/History '{"service":"alice_hello"}'
assert_eq "history without the CSRF token: 401" 401 "$STATUS"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/History '{}'
assert_eq "history without an app: 400" 400 "$STATUS"
web_as "$COOKIE_A" "$CSRF_A" POST /api/history '{"service":"alice_hello"}'
assert_eq "the old /api/history is gone (History is a method)" 404 "$STATUS"
# The queue (no nap-queued here: test-web-browser.sh lists, moves and cancels jobs)
web_as "$COOKIE_A" "" POST /api/queue/list '{}'
assert_eq "the queue without the CSRF token: 401" 401 "$STATUS"
web_as "$COOKIE_A" "$CSRF_A" POST /api/queue/list '{}'
assert_eq "the queue without nap-queued: 503 NotAvailable" "503 io.nap.Manager.NotAvailable" "$STATUS $(jq -r .error <<<"$BODY")"
assert_contains "... saying where it looked" "$(jq -r .message <<<"$BODY")" "nap-queued on"
web_as "$COOKIE_A" "$CSRF_A" POST /api/queue/move '{"type":"vm","request_id":"j1","direction":"sideways"}'
assert_eq "a move neither up nor down: 400 on direction" "400 direction" "$STATUS $(jq -r .parameter <<<"$BODY")"
web_as "$COOKIE_A" "$CSRF_A" POST /api/queue/cancel '{"type":"vm"}'
assert_eq "a cancel without request_id: 400 on request_id" "400 request_id" "$STATUS $(jq -r .parameter <<<"$BODY")"
web_as "$COOKIE_A" "$CSRF_A" GET /api/queue/list
assert_eq "GET of a queue route: 405" 405 "$STATUS"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/NoSuchMethod '{}'
assert_eq "an unknown method: 503 NotAvailable" "503 io.nap.Manager.NotAvailable" "$STATUS $(jq -r .error <<<"$BODY")"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/no-such '{}'
assert_eq "a method path that is no name: 404" 404 "$STATUS"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/ListInstances '{"service":"Alice_hello"}'
assert_eq "an invalid name: 400 InvalidName" "400 io.nap.Manager.InvalidName" "$STATUS $(jq -r .error <<<"$BODY")"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/ListInstances '{}'
assert_eq "a missing argument: 400 InvalidParameter" "400 io.nap.Manager.InvalidParameter" "$STATUS $(jq -r .error <<<"$BODY")"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/ListInstances '{"service":"alice_nothing"}'
assert_eq "an app that is not there: 404 NoSuchService" "404 io.nap.Manager.NoSuchService" "$STATUS $(jq -r .error <<<"$BODY")"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/StartCommon '{"service":"alice_hello","params":{"greeting":"from-the-web"},"requestId":"web-test-1"}'
assert_eq "alice starts an instance" 200 "$STATUS"
URL=$(jq -r '.parameters.instance.url' <<<"$BODY")
INSTANCE=$(jq -r '.parameters.instance.instance' <<<"$BODY")
assert_contains "... it answers with the greeting" "$(http_get "$URL" 5)" "from-the-web from alice_hello_1"
web_as "$COOKIE_A" "$CSRF_A" POST /api/stats '{"service":"alice_hello"}'
assert_eq "her instances with systemd's accounting" 200 "$STATUS"
# What systemd says, or null where it keeps no account (the sandbox's
# user manager may have no memory or cpu controller delegated to it).
known() { local v; v=$(systemctl --user show -P "$1" "$2"); case $v in '' | '[not set]' | 18446744073709551615) echo null ;; *) echo number ;; esac; }
UNIT=$(jq -r '.parameters.instances[0].unit' <<<"$BODY")
assert_eq "... memory as systemd has it" "$(known MemoryCurrent "$UNIT")" "$(jq -r '.parameters.instances[0].memory_bytes | if . == null then "null" else type end' <<<"$BODY")"
assert_eq "... CPU time as systemd has it" "$(known CPUUsageNSec "$UNIT")" "$(jq -r '.parameters.instances[0].cpu_nsec | if . == null then "null" else type end' <<<"$BODY")"
NODE=$(sed -n 's/^Node=//p' "$NAP_CONFIG" | tail -n 1)
[ -n "$NODE" ] || NODE=$(hostname | cut -d. -f1 | tr 'A-Z' 'a-z')
assert_eq "... on this host's node (Node=, or the host name)" "$NODE" "$(jq -r '.parameters.instances[0].node' <<<"$BODY")"

# The log, live: a line the app prints after the follow began arrives.
curl -sS -N --max-time 20 "${WEB_CURL[@]}" -H "Cookie: nap_session=$COOKIE_A" \
        "$WEB_URL/api/follow?instance=$INSTANCE&lines=1" >"$NAP_TEST_DIR/sse" 2>&1 &
SSE=$!
wait_until 10 grep -q '^data: ' "$NAP_TEST_DIR/sse"
curl -sS -o /dev/null "$URL/marker-from-the-test" || :
if wait_until 15 grep -q 'marker-from-the-test' "$NAP_TEST_DIR/sse"; then ok "the followed log shows a new line"; else fail "the followed log shows a new line"; diag "$(cat "$NAP_TEST_DIR/sse")"; fi
kill "$SSE" 2>/dev/null
wait "$SSE" 2>/dev/null
web_as "$COOKIE_A" "" GET "/api/follow?instance=$INSTANCE&lines=x"
assert_eq "a follow with bad lines: 400" 400 "$STATUS"
web GET "/api/follow?instance=$INSTANCE"
assert_eq "a follow without a session: 401" 401 "$STATUS"

web_as "$COOKIE_A" "$CSRF_A" POST /api/call/SetConfig '{"service":"alice_hello","set":{"GREETING_STYLE":"loud"}}'
assert_eq "alice sets a variable of her app" "200 true" "$STATUS $(jq -r .parameters.changed <<<"$BODY")"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/GetConfig '{"service":"alice_hello"}'
assert_eq "... and reads it back" loud "$(jq -r .parameters.config.GREETING_STYLE <<<"$BODY")"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/ListInstances '{"service":"alice_hello"}'
NEW_URL=$(jq -r '.parameters.instances[0].url' <<<"$BODY")
assert_contains "... which the restarted instance has" "$(http_get "$NEW_URL/env" 5)" '"GREETING_STYLE": "loud"'
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/StartCommon '{"service":"alice_hello","params":{"no such":"x"}}'
assert_eq "a bad parameter: 400 InvalidParameter" "400 io.nap.Manager.InvalidParameter" "$STATUS $(jq -r .error <<<"$BODY")"
assert_eq "... and no instance made" 1 "$(napctl_instances alice_hello)"

# Rollback: a second deploy, then back to the first through the API.
C1=$(git -C "$HELLO" rev-parse HEAD)
git -C "$HELLO" -c user.name=nap -c user.email=nap@localhost commit -q --allow-empty -m "second" && C2=$(git -C "$HELLO" rev-parse HEAD)
expect_ok "root deploys a second commit of alice_hello" deploy-app alice_hello "$HELLO"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/History '{"service":"alice_hello"}'
assert_eq "the history has both, newest first" "200 $C2 $C1" "$STATUS $(jq -r '[.parameters.deploys[].commit] | join(" ")' <<<"$BODY")"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/Rollback '{"service":"bob_hello"}'
assert_eq "alice rolling back bob's app: 403" "403 io.nap.Manager.PermissionDenied" "$STATUS $(jq -r .error <<<"$BODY")"
web_as "$COOKIE_A" "" POST /api/call/Rollback '{"service":"alice_hello"}'
assert_eq "a rollback without the CSRF token: 401" 401 "$STATUS"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/Rollback '{"service":"alice_hello","commit":"not-hex"}'
assert_eq "a rollback to no commit: 400 InvalidParameter on commit" "400 io.nap.Manager.InvalidParameter commit" \
        "$STATUS $(jq -r '"\(.error) \(.parameter)"' <<<"$BODY")"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/Rollback '{"service":"alice_hello","commit":"0000000"}'
assert_eq "a rollback to a commit not in the history: 400" "400 io.nap.Manager.InvalidParameter" "$STATUS $(jq -r .error <<<"$BODY")"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/Rollback '{"service":"alice_hello","batch":"0%"}'
assert_eq "a rollback with a bad batch: 400 on batch" "400 batch" "$STATUS $(jq -r .parameter <<<"$BODY")"
assert_eq "... nothing changed: the second commit is still deployed" "$C2" "$(jq -r .commit "$NAP_ROOT/services/alice/alice_hello/.nap/deploy.json" 2>&1)"
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/Rollback "{\"service\":\"alice_hello\",\"commit\":\"${C1:0:10}\",\"drainSec\":0}"
assert_eq "alice rolls her app back to the first commit" "200 true $C1 $C2" \
        "$STATUS $(jq -r '.parameters | "\(.changed) \(.commit) \(.previous)"' <<<"$BODY")"
ROLLED_URL=$(jq -r '.parameters.instances[0].url' <<<"$BODY")
assert_contains "... its new instance answers" "$(http_get "$ROLLED_URL" 5)" "from-the-web"
assert_eq "... one instance, as before" 1 "$(napctl_instances alice_hello)"

# ------------------------------------------------------------- root sees all

nap web token root
web_signin "$OUT"
COOKIE_R=$COOKIE CSRF_R=$CSRF
assert_eq "root signs in, as root" "200 true" "$STATUS $(jq -r .admin <<<"$BODY")"
web_as "$COOKIE_R" "$CSRF_R" POST /api/call/ListApps '{"user":"bob"}'
assert_eq "root lists bob's apps" "200 bob_hello" "$STATUS $(jq -r '.parameters.apps[0].service' <<<"$BODY")"
web_as "$COOKIE_R" "$CSRF_R" POST /api/call/History '{"service":"bob_hello"}'
assert_eq "... and reads bob's history" 200 "$STATUS"

# ------------------------------------------------------------- nap-managerd away

timeout 30 systemctl --user stop nap-managerd.socket nap-managerd.service
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/ListApps '{"user":"alice"}'
assert_eq "nap-managerd not listening: 503 NotAvailable" "503 io.nap.Manager.NotAvailable" "$STATUS $(jq -r .error <<<"$BODY")"
assert_contains "... saying where it looked" "$(jq -r .message <<<"$BODY")" "nap/io.nap.Manager"
timeout 30 systemctl --user start nap-managerd.socket
web_as "$COOKIE_A" "$CSRF_A" POST /api/call/ListApps '{"user":"alice"}'
assert_eq "... and back with it" 200 "$STATUS"

# ------------------------------------------------------------- idle exit, sessions kept

if wait_until 20 sh -c '! systemctl --user -q is-active nap-web.service'; then ok "nap-web exits when idle"; else fail "nap-web exits when idle"; fi
web_as "$COOKIE_A" "" GET /api/session
assert_eq "the socket starts it again, and the session still holds" "200 alice" "$STATUS $(jq -r .user <<<"$BODY")"
nap web token alice
web_as "$COOKIE_A" "" GET /api/session
assert_eq "a new token ends the old sessions" 401 "$STATUS"
web_signin "$OUT"
assert_eq "... and the new one signs in" 200 "$STATUS"
nap web revoke alice
web_as "$COOKIE" "" GET /api/session
assert_eq "revoking ends them too" 401 "$STATUS"
web_signin "$OUT"
assert_eq "... and the revoked token signs in no more" 401 "$STATUS"

# ------------------------------------------------------------- the rate limit

for i in 1 2 3 4 5; do
        web POST /api/signin '{"token":"bob.1111111111111111111111111111111111111111111111111111111111111111"}'
done
web_signin "$TOKEN_B"
assert_eq "after 5 failures in a minute, even bob's right token waits: 429" 429 "$STATUS"
assert_match "... with Retry-After" "$HEADERS" 'retry-after: [0-9]+'
web_as "$COOKIE_B" "" GET /api/session
assert_eq "... a session signed in before is not affected" 200 "$STATUS"

# ------------------------------------------------------------- behind TLS

nap_web_install "" --secure-cookies || fail "nap-web reinstalled with --secure-cookies"
nap web token alice
web_signin "$OUT"
assert_contains "--secure-cookies marks the cookie Secure" "$(grep set-cookie <<<"$HEADERS")" "; secure"

nap_summary
