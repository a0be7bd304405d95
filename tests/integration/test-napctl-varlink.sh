#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Issue 3, napctl's side: napctl talks varlink to the real, socket-activated
# nap-managerd in a real systemd user manager (lib.sh, napctl-lib.sh). The
# first call starts the helper; what napctl prints and its exit status are
# the same over varlink and in-process (--no-helper) for a set of verbs and
# errors; a missing helper, a helper that is not nap-managerd and a
# connection dropped mid-call each give a clear error and exit 1; and
# get-journal -f receives a line the app prints after the call started,
# and ends cleanly on SIGINT.
#
#   NAPCTL=build/cli/napctl NAP_GENERATOR=build/generators/nap-generator \
#           NAP_BUILD_ROOT=build tests/integration/test-napctl-varlink.sh
# Needs root; exits 77 otherwise.

. "$(dirname "$0")/lib.sh"

nap_napctl_env
SRC=$NAP_SOURCE_ROOT
nap_sandbox_enter "$@"
nap_sandbox_start
nap_need jq git curl socat
. "$(dirname "$0")/napctl-lib.sh" # installs and enables nap-managerd.socket

helper_state() {
        timeout 30 systemctl --user is-active nap-managerd.service 2>/dev/null
}

helper_pid() {
        timeout 30 systemctl --user show -P MainPID nap-managerd.service 2>/dev/null
}

# same DESCRIPTION ARGS...: napctl ARGS over varlink and with --no-helper
# give the same exit status, stdout and stderr (but for the --no-helper
# that the commands an error suggests repeat); sets OUT, ERR, RC (varlink).
same() {
        local what=$1 v l
        shift
        nap --no-helper "$@"
        l="rc=$RC"$'\n'"out=$OUT"$'\n'"err=${ERR// --no-helper/}"
        nap "$@"
        v="rc=$RC"$'\n'"out=$OUT"$'\n'"err=$ERR"
        assert_eq "$what: varlink and in-process agree" "$l" "$v"
}

# ===================================================== socket activation
log "socket activation"
assert_eq "the socket listens, the helper is not running" "active inactive" \
        "$(timeout 30 systemctl --user is-active nap-managerd.socket) $(helper_state)"
check "the socket is where napctl looks by default" test -S "$XDG_RUNTIME_DIR/nap/io.nap.Manager"
nap list-services alice
assert_eq "the first napctl call answers (no apps yet)" "0|" "$RC|$OUT$ERR"
# READY=1 reaches the manager on its notify socket, which it reads in its
# own time: the call can be answered before the unit shows active.
helper_active() { [ "$(helper_state)" = active ]; }
check "... and it started nap-managerd (active within 10 s)" wait_until 10 helper_active
PID1=$(helper_pid)
check "nap-managerd has a main process" test "${PID1:-0}" -gt 0
nap list-services alice
assert_eq "a second call is served by the same helper" "$PID1" "$(helper_pid)"

# ================================================= the same result both ways
HELLO=$NAP_TEST_DIR/repos/hello
make_repo "$HELLO" "$SRC"/tests/apps/hello/. || { echo "Bail out! cannot make the app's repository"; exit 1; }
COMMIT=$(git -C "$HELLO" rev-parse HEAD)
SVC=alice_hello

log "deploy and start over varlink"
nap deploy-app $SVC "file://$HELLO"
assert_eq "deploy-app over varlink" "0 Deployed $SVC at ${COMMIT:0:12} from file://$HELLO" "$RC $OUT"
start_instance $SVC greeting=vl || { fail "start-common over varlink"; nap_diag start-common $SVC greeting=vl; }
[ -n "$INST" ] || { echo "Bail out! no instance"; nap_summary; exit 1; }
assert_eq "the instance answers" "vl from ${SVC}_$NUM on port $PORT" "$(http_get "$URL/")"
# The relative path of a local repository is the caller's, not the helper's.
(cd "$NAP_TEST_DIR/repos" && timeout 60 "$NAPCTL" --user deploy-app alice_rel hello) >"$NAP_TEST_DIR/rel" 2>&1
assert_eq "deploy-app of a relative path: made absolute for the helper" \
        "Deployed alice_rel at ${COMMIT:0:12} from $HELLO" "$(cat "$NAP_TEST_DIR/rel")"

log "verbs: varlink vs --no-helper"
same "deploy-app again (unchanged)" deploy-app $SVC "file://$HELLO"
same "deploy-app --json" --json deploy-app $SVC "file://$HELLO"
same "list-services" list-services alice
same "list-services --json" --json list-services alice
assert_eq "list-services --json: the contract's fields" "$SVC hello $COMMIT file://$HELLO" \
        "$(jq -r '.[] | select(.service == "alice_hello") | "\(.service) \(.app) \(.commit) \(.url)"' <<<"$OUT" 2>&1)"
same "get-parameters" get-parameters $SVC
assert_eq "get-parameters prints the parameters" greeting "$OUT"
same "get-parameters --json" --json get-parameters $SVC
same "list-instances" list-instances $SVC
assert_match "list-instances: the row" "$OUT" "^$INST +$PORT +yes +active +running"
same "list-instances --json" --json list-instances $SVC
same "get-instances-num" get-instances-num $SVC
assert_eq "get-instances-num" 1 "$OUT"
same "get-instances-num --json" --json get-instances-num $SVC
same "cat-app" cat-app "$INST"
assert_contains "cat-app: the profile, substituted" "$OUT" "--greeting vl"
same "cat-app --json" --json cat-app "$INST"
same "get-journal -n 3" get-journal -n 3 "$INST"
check "get-journal -n 3: three lines" test "$(printf '%s\n' "$OUT" | grep -c .)" -eq 3
same "get-journal --json" --json get-journal -n 5 "$INST"
same "get-service-url" get-service-url alice hello
same "get-port --json" --json get-port "$INST"
assert_eq "get-port --json" "$INST $PORT local" "$(jq -r '"\(.instance) \(.port) \(.source)"' <<<"$OUT" 2>&1)"

log "errors: varlink vs --no-helper"
same "no such service: exit 4" get-parameters alice_nothere
assert_eq "no such service: exit 4, one 'napctl:' line" "4 1" "$RC $(grep -c '^napctl: ' <<<"$ERR")"
same "no such service --json: the named error" --json list-instances alice_nothere
assert_eq "--json error name" io.nap.Manager.NoSuchService "$(jq -r .error <<<"$ERR" 2>&1)"
same "no such instance: exit 4" cat-app "${SVC}_common@99"
assert_eq "no such instance: exit 4" 4 "$RC"
same "invalid name: exit 2" list-instances Alice_hello
assert_eq "invalid name: exit 2" 2 "$RC"

log "the commands an error suggests repeat the connection options"
nap get-parameters alice_nothere
assert_contains "no such service: the hint has --user" "$ERR" \
        "(deploy it with: napctl --user deploy-app alice_nothere URL)"
ADDR=$XDG_RUNTIME_DIR/nap/io.nap.Manager
nap --address="$ADDR" cat-app "${SVC}_common@99"
assert_contains "no such instance: the hint has --user and --address=" "$ERR" \
        "(see: napctl --user --address=$ADDR list-instances $SVC)"
nap --no-helper get-parameters alice_nothere
assert_contains "in-process: the hint has --no-helper" "$ERR" "napctl --user --no-helper deploy-app alice_nothere"
nap --json get-parameters alice_nothere
assert_contains "--json: the message's hint too" "$(jq -r .message <<<"$ERR" 2>&1)" "napctl --user deploy-app"
same "invalid instance: exit 2" stop-app "${SVC}_common@0"
same "get-journal -f of no such instance: exit 4" get-journal -f "${SVC}_common@99"
assert_eq "get-journal -f of no such instance: exit 4 at once" 4 "$RC"
same "get-journal -f of an invalid instance: exit 2" get-journal -f "${SVC}_common@x"
same "unknown app parameter: exit 2" start-common $SVC colour=red
assert_eq "unknown app parameter: exit 2, named" "2 1" "$RC $(grep -c colour <<<"$ERR")"
same "a bad get-service-url user: exit 2" get-service-url Alice hello
same "endpoints without Etcd=: NotAvailable, exit 1" endpoints $SVC
assert_eq "endpoints without Etcd=: exit 1" 1 "$RC"

# ================================================================ failures
log "no helper there"
nap --address="$NAP_TEST_DIR/nonexistent" list-services alice
assert_eq "--address to a missing socket: exit 1" 1 "$RC"
assert_contains "... names the socket" "$ERR" "$NAP_TEST_DIR/nonexistent"
assert_eq "... on one 'napctl:' line" 1 "$(grep -c '^napctl: ' <<<"$ERR")"
nap --address="$XDG_RUNTIME_DIR/nap/io.nap.Manager" get-instances-num $SVC
assert_eq "--address to the real socket works" "0 1" "$RC $OUT"
timeout 30 systemctl --user stop nap-managerd.socket nap-managerd.service
nap list-services alice
assert_eq "socket stopped: exit 1, no fallback" "1|" "$RC|$OUT"
assert_contains "... says how to start it" "$ERR" "systemctl --user start nap-managerd.socket"
assert_contains "... names the socket" "$ERR" "$XDG_RUNTIME_DIR/nap/io.nap.Manager"
nap --no-helper get-instances-num $SVC
assert_eq "--no-helper still works without the helper" "0 1" "$RC $OUT"
timeout 30 systemctl --user start nap-managerd.socket
nap get-instances-num $SVC
assert_eq "socket started again: the next call activates the helper" "0 1 active" "$RC $OUT $(helper_state)"

log "a helper that is not nap-managerd"
# fake_server NAME [REPLY]: a socket that answers every call with REPLY
# (a NUL-terminated message), or hangs up without a word.
fake_server() {
        local sock=$NAP_TEST_DIR/$1.sock
        : >"$NAP_TEST_DIR/$1.reply"
        [ $# -lt 2 ] || printf '%s\0' "$2" >"$NAP_TEST_DIR/$1.reply"
        socat "UNIX-LISTEN:$sock,fork" "SYSTEM:cat $NAP_TEST_DIR/$1.reply" &
        wait_until 5 test -S "$sock"
}
fake_server notfound '{"error":"org.varlink.service.MethodNotFound","parameters":{"method":"io.nap.Manager.ListServices"}}'
nap --address="$NAP_TEST_DIR/notfound.sock" list-services alice
assert_eq "org.varlink.service.MethodNotFound: exit 1" 1 "$RC"
assert_contains "... says the helper does not implement it" "$ERR" "does not implement ListServices"
nap --json --address="$NAP_TEST_DIR/notfound.sock" list-services alice
assert_eq "... --json keeps the varlink error's name" org.varlink.service.MethodNotFound \
        "$(jq -r .error <<<"$ERR" 2>&1)"
fake_server hangup
nap --address="$NAP_TEST_DIR/hangup.sock" list-services alice
assert_eq "a connection closed before the reply: exit 1" 1 "$RC"
assert_contains "... says so" "$ERR" "closed the connection before answering ListServices"

# ================================================================ following
log "get-journal -f"
# follow_start FILE ARGS...: napctl ARGS get-journal -f -n 1 INST in the
# background (SIGINT after 20 s at the latest); FPID, and waits for the
# first reply (the last line) to be printed.
follow_start() {
        local file=$1
        shift
        timeout -k 5 --preserve-status -s INT 20 "$NAPCTL" --user "$@" get-journal -f -n 1 "$INST" \
                >"$file" 2>"$file.err" &
        FPID=$!
        wait_until 10 test -s "$file"
}
# follow_check WHAT FILE: a request made now shows up in FILE; SIGINT ends
# napctl with status 0 at once.
follow_check() {
        local what=$1 file=$2 marker rc=0 t0
        marker=marker-$RANDOM$RANDOM
        http_get "$URL/$marker" >/dev/null
        if wait_until 10 grep -q "$marker" "$file"; then ok "$what: a line printed after the call started arrives"
        else fail "$what: a line printed after the call started arrives"; diag "got: $(cat "$file" "$file.err")"; fi
        assert_match "$what: in napctl's journal format" "$(grep "$marker" "$file")" \
                "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}[+-][0-9]{2}:[0-9]{2} python3\[[0-9]+\]: request .*GET /$marker "
        t0=$(date +%s%N)
        kill -INT "$FPID" 2>/dev/null
        wait "$FPID" || rc=$?
        assert_eq "$what: SIGINT ends it, exit 0, nothing on stderr" "0|" "$rc|$(cat "$file.err")"
        check "$what: ... at once" test $(($(date +%s%N) - t0)) -lt 2000000000
}
follow_start "$NAP_TEST_DIR/follow"
follow_check "varlink" "$NAP_TEST_DIR/follow"
follow_start "$NAP_TEST_DIR/follow-local" --no-helper
follow_check "--no-helper" "$NAP_TEST_DIR/follow-local"

follow_start "$NAP_TEST_DIR/follow-json" --json
http_get "$URL/json-marker" >/dev/null
wait_until 10 grep -q json-marker "$NAP_TEST_DIR/follow-json"
kill -INT "$FPID" 2>/dev/null
wait "$FPID"
assert_eq "get-journal -f --json: one JSON object per line" \
        "$(grep -c . "$NAP_TEST_DIR/follow-json")" \
        "$(jq -c 'select(.message and .time > 0)' "$NAP_TEST_DIR/follow-json" 2>/dev/null | grep -c .)"

log "the helper goes away during a follow"
follow_start "$NAP_TEST_DIR/follow-drop"
timeout 30 systemctl --user kill -s KILL nap-managerd.service
rc=0
wait "$FPID" || rc=$?
assert_eq "a dropped connection ends the follow with exit 1" 1 "$rc"
assert_contains "... and says the helper closed the connection" "$(cat "$NAP_TEST_DIR/follow-drop.err")" \
        "closed the connection"
nap get-instances-num $SVC
assert_eq "the next call starts a new helper" "0 1" "$RC $OUT"

nap_summary
