#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Issue 5's push deploys, end to end: real git pushing over a real sshd
# (tests/sshd-lib.sh) through nap-git-shell into a bare repository whose
# post-receive hook is nap-receive, which deploys into the sandboxed real
# systemd user manager (lib.sh). Asserts what the pusher sees ("remote: …"
# lines), what answers over HTTP, STATE on disk, systemd's own view
# (MainPID), and the manager's journal ("Reloading." lines).
#
# Without nap-git-shell or tests/sshd-lib.sh it runs the same scenario
# through a local bare repository with the hook installed by the test, and
# says so.
#
#   NAPCTL=build/cli/napctl NAP_GENERATOR=build/generators/nap-generator \
#   NAP_BUILD_ROOT=build tests/integration/test-push.sh
# Needs root; exits 77 otherwise.

. "$(dirname "$0")/lib.sh"

SRC=${NAP_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
if [ -z "${NAP_SANDBOX_INSIDE:-}" ]; then
        NAP_RECEIVE=${NAP_RECEIVE:-${NAP_BUILD_ROOT:-}/helpers/nap-receive}
        NAP_GIT_SHELL=${NAP_GIT_SHELL:-${NAP_BUILD_ROOT:-}/helpers/nap-git-shell}
        for b in "${NAPCTL:-}" "${NAP_GENERATOR:-}" "$NAP_RECEIVE"; do
                [ -x "$b" ] || { echo "Bail out! set NAPCTL, NAP_GENERATOR and NAP_BUILD_ROOT (got '$b')"; exit 1; }
        done
        NAPCTL=$(realpath "$NAPCTL") NAP_GENERATOR=$(realpath "$NAP_GENERATOR") NAP_RECEIVE=$(realpath "$NAP_RECEIVE")
        [ -x "$NAP_GIT_SHELL" ] && NAP_GIT_SHELL=$(realpath "$NAP_GIT_SHELL") || NAP_GIT_SHELL=
        export NAPCTL NAP_GENERATOR NAP_RECEIVE NAP_GIT_SHELL NAP_SOURCE_ROOT=$SRC
fi
nap_sandbox_enter "$@"
nap_sandbox_start
for t in jq git curl; do
        command -v "$t" >/dev/null || { echo "Bail out! $t is needed"; exit 1; }
done
. "$(dirname "$0")/napctl-lib.sh"

SVC=alice_hello
REPOS=$NAP_TEST_DIR/repos
BARE=$NAP_ROOT/git/alice/hello.git
TREE=$NAP_ROOT/services/alice/$SVC
I1=${SVC}_common@1
# Each instance must answer within this; a good one does in well under 1 s.
export NAP_RECEIVE_TIMEOUT=6

# ------------------------------------------------------------- the transport

# ssh: a real sshd, napctl keys (or the same line written here), the
# nap account's forced command. Local: the bare repository and hook made
# here, as nap-git-shell would make them.
setup_ssh() {
        . "$SRC/tests/sshd-lib.sh"
        printf 'AuthorizedKeys=%s\n' "$NAP_TEST_DIR/sshd/home/.ssh/authorized_keys" >>"$NAP_CONFIG"
        sshd_start "$NAP_TEST_DIR/sshd" "NAP_RECEIVE_BINARY=$NAP_RECEIVE" \
                "NAP_RECEIVE_TIMEOUT=$NAP_RECEIVE_TIMEOUT" || return 1
        ssh_keygen_user alice || return 1
        if grep -q '^  keys ' <<<"$("$NAPCTL" --help 2>/dev/null)"; then
                NAP_GIT_SHELL_BINARY=$NAP_GIT_SHELL "$NAPCTL" keys add alice <"$SSHD_DIR/keys/alice.pub" >/dev/null || return 1
        else
                log "napctl has no keys verb yet: writing alice's authorized_keys line here"
                mkdir -p -m 0700 "$SSHD_HOME/.ssh" &&
                        printf 'command="%s alice",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-user-rc %s\n' \
                                "$NAP_GIT_SHELL" "$(cat "$SSHD_DIR/keys/alice.pub")" >"$SSHD_AUTHORIZED_KEYS" &&
                        chmod 0600 "$SSHD_AUTHORIZED_KEYS" || return 1
        fi
        sshd_git_env alice
}

remote_url() {
        if [ "$TRANSPORT" = ssh ]; then sshd_url "$1"; else echo "$NAP_ROOT/git/alice/$1.git"; fi
}

make_local_bare() {
        local bare=$NAP_ROOT/git/alice/$1.git
        git init -q --bare -b main "$bare" &&
                printf '#!/bin/sh\nexec %s alice %s\n' "$NAP_RECEIVE" "$1" >"$bare/hooks/post-receive" &&
                chmod 0755 "$bare/hooks/post-receive"
}

if [ -n "$NAP_GIT_SHELL" ] && [ -f "$SRC/tests/sshd-lib.sh" ]; then
        TRANSPORT=ssh
        setup_ssh || { echo "Bail out! cannot set up sshd"; sshd_log; exit 1; }
else
        TRANSPORT=local
        log "nap-git-shell or tests/sshd-lib.sh missing: pushing to a local bare repository instead of over ssh"
        make_local_bare hello && make_local_bare web || { echo "Bail out! cannot make the bare repositories"; exit 1; }
fi
log "transport: $TRANSPORT"

# ------------------------------------------------------------------ helpers

# push DIR GIT-PUSH-ARGS...: sets POUT (everything git printed), PRC and
# URLS (the bare "remote: http://…" lines, in order).
push() {
        local dir=$1
        shift
        PRC=0
        POUT=$(cd "$dir" && timeout 120 git push "$@" 2>&1) || PRC=$?
        URLS=$(printf '%s\n' "$POUT" | sed -nE 's|^remote: (http://[0-9.]+:[0-9]+)[[:space:]]*$|\1|p')
}

push_diag() {
        diag "git push: rc=$PRC" "$POUT"
}

# commit DIR MESSAGE: everything in DIR; prints the new commit.
commit() {
        git -C "$1" add -A && git -C "$1" commit -q -m "$2" && git -C "$1" rev-parse HEAD
}

set_greeting() { # DIR GREETING [EXTRA ARGS]: the profile's default greeting
        printf 'python3 server.py --port {port} --greeting {greeting=%s}%s\n' "$2" "${3:+ $3}" >"$1/profile"
}

deployed_commit() {
        jq -r .commit "$TREE/.nap/deploy.json" 2>/dev/null
}

main_pid() {
        timeout 30 systemctl --user show -P MainPID "$1.service" 2>/dev/null
}

# The app's one instance: its name, and the URL it answers on.
cur_instance() {
        local l=("$NAP_INSTANCES/${SVC}_common@"*.json)
        [ "${#l[@]}" -eq 1 ] && basename "${l[0]}" .json
}
cur_url() {
        local i
        i=$(cur_instance) && jq -r '"http://127.0.0.1:\(.port)"' "$NAP_INSTANCES/$i.json"
}
instance_count() {
        find "$NAP_INSTANCES" -maxdepth 1 -name "${SVC}_common@*.json" | wc -l
}

# No staging tree or instance tree left beside the live ones.
no_leftovers() {
        [ -z "$(find "$NAP_ROOT/services" "$NAP_ROOT/apps" -maxdepth 2 \( -name '*.deploy-*' -o -name '*.next' -o -name '*.tmp' \) 2>/dev/null)" ]
}

# tree_is COMMIT: the deployed tree is exactly that commit's files.
tree_is() {
        local want=$NAP_TEST_DIR/want.$$
        rm -rf "$want" && mkdir -p "$want" &&
                git -C "$W" archive "$1" | tar -x -C "$want" &&
                diff -r --exclude=.nap "$want" "$TREE" >/dev/null
}

# =================================================================== pushes
W=$REPOS/hello
make_repo "$W" "$SRC"/tests/apps/hello/. >/dev/null || { echo "Bail out! cannot make the app's repository"; exit 1; }
git -C "$W" branch -q -M main
git -C "$W" remote add nap "$(remote_url hello)"
C1=$(git -C "$W" rev-parse HEAD)

log "first push"
push "$W" nap main
if [ "$PRC" -eq 0 ]; then ok "first push succeeds"; else fail "first push succeeds"; push_diag; fi
assert_contains "the push says it deployed the commit" "$POUT" "remote: nap: deployed $SVC at ${C1:0:12}"
assert_contains "the push shows the new instance starting" "$POUT" "remote: nap: $I1: starting on port"
assert_match "the push shows the URL" "$URLS" '^http://127\.0\.0\.1:[0-9]+$'
URL=$(printf '%s\n' "$URLS" | head -n 1)
PORT=${URL##*:}
[ -n "$URL" ] || { push_diag; echo "Bail out! no URL"; nap_summary; exit 1; }
assert_eq "the URL answers at once (nap waited for it)" "hello from ${SVC}_1 on port $PORT" \
        "$(curl -sS --max-time 3 "$URL/" 2>&1)"
assert_eq "systemd: the instance is active" "active" "$(timeout 30 systemctl --user is-active "$I1.service" 2>&1)"
assert_eq "the deployed commit is recorded" "$C1" "$(deployed_commit)"
check "the bare repository exists" test -f "$BARE/HEAD"
PID1=$(main_pid "$I1")

log "second push: a new version"
set_greeting "$W" bonjour
echo v2 >"$W/VERSION"
C2=$(commit "$W" v2)
cursor=$(cursor_now)
push "$W" nap main
if [ "$PRC" -eq 0 ]; then ok "second push succeeds"; else fail "second push succeeds"; push_diag; fi
I2=$(cur_instance)
assert_contains "the push makes a new instance to replace the old one" "$POUT" "remote: nap: $I2: made on port"
assert_contains "... named in the progress" "$POUT" "to replace $I1"
assert_contains "the push waits for its answer" "$POUT" "remote: nap: $I2: answers on port"
assert_contains "then removes the old one" "$POUT" "remote: nap: $I1: removed"
check "the new instance has its own number" test -n "$I2" -a "$I2" != "$I1"
assert_eq "one instance, as before" "1" "$(instance_count)"
OLDURL=$URL
URL=$(cur_url)
PORT=${URL##*:}
assert_eq "the new endpoint is reported" "$URL" "$URLS"
assert_eq "the instance answers with the new version's default greeting" "bonjour" \
        "$(curl -sS --max-time 3 "$URL/greeting" 2>&1)"
check "the old endpoint answers no more (the old instance is gone)" \
        test "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$OLDURL/" 2>/dev/null)" = 000
# Instances start and go without a reload; one at most for the fallback.
check "at most one daemon-reload during the push" test "$(reloads_since "$cursor")" -le 1
assert_eq "the new commit is recorded" "$C2" "$(deployed_commit)"
check "the deployed tree is the new commit's, whole" tree_is "$C2"
assert_eq "the instance's tree is the new version" "v2" "$(cat "$NAP_ROOT/apps/alice/${I2/_common@/_}/VERSION" 2>&1)"
assert_eq "the manifest records the new commit" "$C2" "$(jq -r .commit "$NAP_INSTANCES/$I2.json" 2>&1)"
check "the old instance's tree and manifest are gone" test ! -e "$NAP_ROOT/apps/alice/${SVC}_1" -a \
        ! -e "$NAP_INSTANCES/$I1.json"
check "no scratch tree is left (no staging, no .next)" no_leftovers
PID2=$(main_pid "$I2")
check "the new instance runs" test -n "$PID2" -a "$PID2" != "$PID1" -a "$PID2" != 0
I1=$I2

log "a push with no change"
cursor=$(cursor_now)
push "$W" nap main:master
if [ "$PRC" -eq 0 ]; then ok "pushing the deployed commit again succeeds"; else fail "pushing the deployed commit again succeeds"; push_diag; fi
assert_contains "the push says nothing changed" "$POUT" "remote: nap: $SVC is already at ${C2:0:12}; nothing changed"
assert_eq "the same endpoint is reported" "$URL" "$URLS"
assert_eq "no restart (same MainPID)" "$PID2" "$(main_pid "$I1")"
assert_eq "no daemon-reload" "0" "$(reloads_since "$cursor")"

log "a push to another branch"
push "$W" nap main:feature
assert_contains "other branches are not deployed" "$POUT" "remote: nap: refs/heads/feature is not deployed"
assert_eq "... and nothing changed" "$C2 $PID2" "$(deployed_commit) $(main_pid "$I1")"

log "a push whose profile is broken"
printf 'python3 server.py --port {port} --greeting {greeting\n' >"$W/profile"
C3=$(commit "$W" broken)
push "$W" nap main
assert_contains "the push reports the error" "$POUT" "remote: nap: deploying $SVC failed:"
assert_contains "... and that the previous version keeps running" "$POUT" "the previous version (${C2:0:12}) keeps running"
assert_eq "the previous version still answers" "bonjour" "$(curl -sS --max-time 3 "$URL/greeting" 2>&1)"
assert_eq "... untouched (same MainPID)" "$PID2" "$(main_pid "$I1")"
assert_eq "the previous commit is still the deployed one" "$C2" "$(deployed_commit)"
check "nothing left behind" no_leftovers

log "a push whose instance never answers"
set_greeting "$W" salut "--delay 3600"
C4=$(commit "$W" "never answers")
cursor=$(cursor_now)
push "$W" nap main
assert_match "the push says the new instance did not answer" "$POUT" "nothing answered HTTP on port [0-9]+ within $NAP_RECEIVE_TIMEOUT\.0 s"
assert_contains "... and that the previous version keeps running" "$POUT" "the new instances were removed, the previous version (${C2:0:12}) keeps running"
assert_eq "the previous version answers, at the same endpoint" "bonjour" "$(curl -sS --max-time 3 "$URL/greeting" 2>&1)"
assert_eq "... never restarted (same instance, same MainPID)" "$I1 $PID2" "$(cur_instance) $(main_pid "$I1")"
assert_eq "the previous commit is the deployed one" "$C2" "$(deployed_commit)"
check "the deployed tree is the previous commit's, whole" tree_is "$C2"
assert_eq "the manifest is the previous one" "$C2 false" \
        "$(jq -r '"\(.commit) \(.argv | index("--delay") != null)"' "$NAP_INSTANCES/$I1.json" 2>&1)"
check "one reload at most while the new instance comes and goes" test "$(reloads_since "$cursor")" -le 1
check "nothing left behind" no_leftovers

log "a push whose app crashes at start"
printf 'python3 no-such-file.py --port {port}\n' >"$W/profile"
C4b=$(commit "$W" crashes)
t0=$(date +%s%N)
push "$W" nap main
t1=$(date +%s%N)
assert_match "the push says the new unit is not running" "$POUT" "${SVC}_common@[0-9]+\.service is activating \(auto-restart\) instead of answering"
check "... before the timeout" test $(((t1 - t0) / 1000000)) -lt $((NAP_RECEIVE_TIMEOUT * 1000))
assert_eq "the previous version answers, untouched" "bonjour $I1 $PID2" \
        "$(curl -sS --max-time 3 "$URL/greeting" 2>&1) $(cur_instance) $(main_pid "$I1")"
assert_eq "the previous commit is the deployed one" "$C2" "$(deployed_commit)"

log "a first push that fails leaves nothing"
X=$REPOS/crash
mkdir -p "$X" && printf 'web: python3 no-such-file.py --port $PORT\n' >"$X/Procfile"
make_repo "$X" >/dev/null && git -C "$X" branch -q -M main
[ "$TRANSPORT" = local ] && make_local_bare crash
git -C "$X" remote add nap "$(remote_url crash)"
push "$X" nap main
assert_contains "the push says nothing was deployed" "$POUT" "; nothing was deployed"
check "no tree, no instance tree, no manifest" test ! -e "$NAP_ROOT/services/alice/alice_crash" -a \
        ! -e "$NAP_ROOT/apps/alice/alice_crash_1" -a ! -e "$NAP_INSTANCES/alice_crash_common@1.json"
assert_eq "systemd has nothing of it left" "" \
        "$(timeout 30 systemctl --user list-units --all --plain --no-legend 'alice_crash_*' 2>&1)"

log "a good push after the failures"
set_greeting "$W" hallo
C5=$(commit "$W" v5)
push "$W" nap main
URL=$(cur_url)
assert_eq "the fixed version answers" "0 hallo" "$PRC $(curl -sS --max-time 3 "$URL/greeting" 2>&1)"

log "two pushes at once"
A=$REPOS/a B=$REPOS/b
git clone -q "$W" "$A" && git clone -q "$W" "$B"
for d in "$A" "$B"; do
        git -C "$d" remote add nap "$(remote_url hello)"
done
set_greeting "$A" alpha && CA=$(commit "$A" alpha)
set_greeting "$B" beta && CB=$(commit "$B" beta)
(push "$A" nap main; printf '%s\n%s\n' "$PRC" "$POUT" >"$NAP_TEST_DIR/push-a") &
pa=$!
(push "$B" nap main; printf '%s\n%s\n' "$PRC" "$POUT" >"$NAP_TEST_DIR/push-b") &
pb=$!
wait "$pa" "$pb"
ra=$(head -n 1 "$NAP_TEST_DIR/push-a") rb=$(head -n 1 "$NAP_TEST_DIR/push-b")
now=$(deployed_commit)
git -C "$W" fetch -q "$A" main 2>/dev/null
git -C "$W" fetch -q "$B" main 2>/dev/null
case "$ra $rb" in
0\ 0) ok "both concurrent pushes completed" ;;
0\ * | *\ 0)
        loser=$NAP_TEST_DIR/push-b
        [ "$ra" -ne 0 ] && loser=$NAP_TEST_DIR/push-a
        if grep -qE 'rejected|failed to (update|lock)' "$loser"; then ok "one push completed, git refused the other cleanly"; else fail "one push completed, git refused the other cleanly"; diag "$(cat "$loser")"; fi
        ;;
*)
        fail "at least one concurrent push completes"
        diag "$(cat "$NAP_TEST_DIR/push-a" "$NAP_TEST_DIR/push-b")"
        ;;
esac
check "the deployed commit is one of the two" test "$now" = "$CA" -o "$now" = "$CB"
check "the deployed tree is that commit's, whole" tree_is "$now"
want=alpha
[ "$now" = "$CB" ] && want=beta
URL=$(cur_url)
assert_eq "the instance answers with that version" "$want" "$(curl -sS --max-time 3 "$URL/greeting" 2>&1)"
check "nothing left behind" no_leftovers

log "two hooks at once are serialised by the app's lock"
# A commit the bare repository has (pushed to a branch nap ignores), main
# moved to it without a deploy, then the hook run twice, as by two pushes:
# the second while the first waits for the new version (which takes 3 s
# to listen). The second must wait for the lock and then find the commit
# deployed; without the lock it would see the new tree already swapped in
# and report it deployed before it answers.
git -C "$W" checkout -q "$now" 2>/dev/null
set_greeting "$W" gamma "--delay 3"
CG=$(commit "$W" gamma)
push "$W" nap HEAD:refs/heads/staging
git --git-dir="$BARE" update-ref refs/heads/main "$CG"
run_hook() { # N: the hook as git runs it; its output and exit status in hook-N
        (cd "$BARE" && echo "$now $CG refs/heads/main" | GIT_DIR=. timeout 120 "$NAP_RECEIVE" alice hello \
                >"$NAP_TEST_DIR/hook-$1" 2>&1
        echo "rc=$?" >>"$NAP_TEST_DIR/hook-$1") &
}
run_hook 1
hook1=$!
wait_until 20 grep -q "to replace" "$NAP_TEST_DIR/hook-1"
run_hook 2
hook2=$!
sleep 1
assert_eq "the second waits while the first deploys (the lock): neither has ended" "0 0" \
        "$(grep -c '^rc=' "$NAP_TEST_DIR/hook-1" 2>&1) $(grep -c '^rc=' "$NAP_TEST_DIR/hook-2" 2>&1)"
wait "$hook1" "$hook2"
h1=$(cat "$NAP_TEST_DIR/hook-1") h2=$(cat "$NAP_TEST_DIR/hook-2")
assert_eq "both hooks succeed" "1 1" "$(printf '%s\n' "$h1" | grep -c '^rc=0$') $(printf '%s\n' "$h2" | grep -c '^rc=0$')"
assert_contains "the first deployed the commit" "$h1" "nap: deployed $SVC at ${CG:0:12}"
assert_contains "the second found it deployed" "$h2" "nap: $SVC is already at ${CG:0:12}; nothing changed"
URL=$(cur_url)
assert_eq "gamma answers" "gamma" "$(curl -sS --max-time 3 "$URL/greeting" 2>&1)"
git -C "$W" checkout -q -B main "$CG"

log "rollback"
# (Not piped into grep -q: with pipefail, napctl's help, longer than one
# write, dies of SIGPIPE once grep has matched and left.)
if grep -q '^  rollback ' <<<"$("$NAPCTL" --help 2>/dev/null)"; then
        nap rollback $SVC
        assert_eq "napctl rollback: back to the previous commit" "0 Rolled back $SVC to ${now:0:12} (was ${CG:0:12})" \
                "$RC $(printf '%s\n' "$OUT" | head -n 1)"
        assert_eq "the previous version answers" "$want" "$(curl -sS --max-time 3 "$(cur_url)/greeting" 2>&1)"
        assert_eq "the rolled-back commit is recorded" "$now" "$(deployed_commit)"
        nap rollback $SVC "${C2:0:8}"
        assert_eq "napctl rollback COMMIT: an older one from the history" "0 bonjour" \
                "$RC $(curl -sS --max-time 3 "$(cur_url)/greeting" 2>&1)"
        check "the deployed tree is that commit's, whole" tree_is "$C2"
        nap rollback $SVC 0000000
        assert_eq "a commit not in the history is refused" "2" "$RC"
else
        log "SKIP rollback: napctl has no rollback verb yet (cli/verb-rollback.c is not wired)"
fi

log "a Procfile app"
P=$REPOS/web
make_repo "$P" "$SRC"/tests/apps/procfile-app/. >/dev/null && git -C "$P" branch -q -M main
git -C "$P" remote add nap "$(remote_url web)"
push "$P" nap main
if [ "$PRC" -eq 0 ]; then ok "pushing a Procfile app succeeds"; else fail "pushing a Procfile app succeeds"; push_diag; fi
WURL=$(printf '%s\n' "$URLS" | head -n 1)
WPORT=${WURL##*:}
assert_eq "the Procfile's web process answers, with \$PORT" "$WPORT" \
        "$(curl -sS --max-time 3 "$WURL/params" 2>/dev/null | jq -r .env_port 2>&1)"
assert_eq "systemd runs the Procfile's command" "active" \
        "$(timeout 30 systemctl --user is-active alice_web_common@1.service 2>&1)"

[ "$TRANSPORT" = ssh ] && [ "$NAP_TESTS_FAILED" -gt 0 ] && sshd_log
nap_summary
