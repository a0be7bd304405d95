#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Issue 5, items 1 and 2: `napctl keys` and nap-git-shell behind a real
# sshd (tests/sshd-lib.sh), with real git over ssh. Keys are added for
# alice and bob; every refusal of the forced command is tried over ssh
# (one line on stderr, non-zero exit, nothing created under Root=/git); a
# push creates the bare repository with nap's hook, which runs (a stub
# records what nap-receive would get, until the real one is tested by
# test-push.sh); clone works; users cannot reach each other's apps;
# `keys list` agrees with ssh-keygen -lf; `keys remove` locks the key out;
# the authorized_keys lines nap did not write survive every edit.
#
#   NAPCTL=build/cli/napctl NAP_BUILD_ROOT=build tests/integration/test-git-shell.sh
# Needs root; exits 77 otherwise.

. "$(dirname "$0")/lib.sh"

SRC=${NAP_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
if [ -z "${NAP_SANDBOX_INSIDE:-}" ]; then
        NAP_GIT_SHELL=${NAP_GIT_SHELL:-${NAP_BUILD_ROOT:-}/helpers/nap-git-shell}
        for b in "${NAPCTL:-}" "$NAP_GIT_SHELL"; do
                [ -x "$b" ] || { echo "Bail out! set NAPCTL and NAP_BUILD_ROOT (or NAP_GIT_SHELL) (got '$b')"; exit 1; }
        done
        NAPCTL=$(realpath "$NAPCTL") NAP_GIT_SHELL=$(realpath "$NAP_GIT_SHELL")
        export NAPCTL NAP_GIT_SHELL NAP_SOURCE_ROOT=$SRC
fi
nap_sandbox_enter "$@"
[ -x /usr/sbin/sshd ] || skip_all "/usr/sbin/sshd not found (openssh-server)"
for t in git ssh ssh-keygen; do
        command -v "$t" >/dev/null || skip_all "$t not found"
done
grep -q '^  keys ' <<<"$("$NAPCTL" --help)" || skip_all "napctl has no 'keys' verb (cli/verb-keys.c is not wired in)"
nap_sandbox_start

. "$(dirname "$0")/napctl-lib.sh"
. "$(dirname "$0")/../sshd-lib.sh"

# ------------------------------------------------------------------- set-up

NAP_HOME=$NAP_TEST_DIR/nap-home
AUTHKEYS=$NAP_HOME/.ssh/authorized_keys
RECEIVE_LOG=$NAP_TEST_DIR/receive.log
STUB=$NAP_TEST_DIR/receive-stub
export NAP_GIT_SHELL_BINARY=$NAP_GIT_SHELL
echo "AuthorizedKeys=$AUTHKEYS" >>"$NAP_CONFIG"

# The hook's program until nap-receive exists: records its arguments and
# stdin (git's "OLD NEW REF" lines).
printf '#!/bin/sh\necho "args: $*" >>%s\ncat >>%s\n' "$RECEIVE_LOG" "$RECEIVE_LOG" >"$STUB"
chmod 0755 "$STUB"

SSHD_HOME=$NAP_HOME SSHD_AUTHORIZED_KEYS=$AUTHKEYS sshd_start "$NAP_TEST_DIR/sshd" NAP_RECEIVE_BINARY="$STUB" ||
        { echo "Bail out! sshd did not start"; exit 1; }
for u in alice bob carol admin; do
        ssh_keygen_user "$u" || { echo "Bail out! ssh-keygen failed"; exit 1; }
done

# Lines nap did not write: they must come out of every edit unchanged and
# in order. The admin's key has no command= and so cannot log in
# (PermitRootLogin forced-commands-only), but nap must keep it.
mkdir -p "$NAP_HOME/.ssh" && chmod 0700 "$NAP_HOME/.ssh"
{
        echo "# keys of the nap account; napctl keys adds its own lines below"
        echo
        cat "$SSHD_DIR/keys/admin.pub"
        echo "restrict,command=\"/bin/false\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINotARealKeyButParsesAsBase64AAAAAAAAAAAA x"
} >"$AUTHKEYS"
chmod 0600 "$AUTHKEYS"
FOREIGN=$(cat "$AUTHKEYS")

foreign_lines() {
        grep -v '^command="[^"]*/nap-git-shell [a-z][a-z0-9-]*",no-pty,' "$AUTHKEYS"
}

check_foreign() {
        assert_eq "$1: the lines nap did not write are unchanged, in order" "$FOREIGN" "$(foreign_lines)"
}

fingerprint_of() {
        ssh-keygen -lf "$SSHD_DIR/keys/$1.pub" | cut -d' ' -f2
}

git_tree() {
        find "$NAP_ROOT/git" 2>/dev/null | sort
}

# ------------------------------------------------------------------- keys

expect_ok "keys add alice" keys add alice <"$SSHD_DIR/keys/alice.pub"
assert_contains "keys add names the fingerprint" "$OUT" "$(fingerprint_of alice)"
check_foreign "after add"
expect_ok "keys add bob" keys add bob <"$SSHD_DIR/keys/bob.pub"
before=$(cat "$AUTHKEYS")
expect_ok "keys add alice again" keys add alice <"$SSHD_DIR/keys/alice.pub"
assert_contains "adding the same key again says so" "$OUT" "unchanged"
assert_eq "adding the same key again changes nothing" "$before" "$(cat "$AUTHKEYS")"
nap keys add carol <"$SSHD_DIR/keys/bob.pub"
assert_eq "bob's key cannot be added for carol (exit 1)" 1 "$RC"
assert_contains "… and the refusal names the owner" "$ERR" "already registered for user bob"
nap keys add carol <"$SSHD_DIR/keys/admin.pub"
assert_eq "a key on a line nap did not write is refused (exit 2)" 2 "$RC"
assert_contains "… naming its line" "$ERR" "line 3, which nap did not write"
nap keys add carol < <(printf 'no-pty %s' "$(cat "$SSHD_DIR/keys/carol.pub")")
assert_eq "a key line with options is refused (exit 2)" 2 "$RC"
nap keys add Carol <"$SSHD_DIR/keys/carol.pub"
assert_eq "a bad user name is refused (exit 2)" 2 "$RC"
assert_eq "refusals changed nothing" "$before" "$(cat "$AUTHKEYS")"
assert_eq "the file keeps its mode" 600 "$(stat -c %a "$AUTHKEYS")"

nap keys list
expected=$(printf 'alice\t%s\tssh-ed25519\talice@nap-test\nbob\t%s\tssh-ed25519\tbob@nap-test' \
        "$(fingerprint_of alice)" "$(fingerprint_of bob)")
assert_eq "keys list shows both keys with ssh-keygen -lf's fingerprints" "$expected" "$OUT"
nap --json keys list bob
assert_eq "keys list bob --json" \
        "[{\"user\":\"bob\",\"type\":\"ssh-ed25519\",\"fingerprint\":\"$(fingerprint_of bob)\",\"comment\":\"bob@nap-test\"}]" \
        "$OUT"

# ------------------------------------------------------- refused over ssh

# refused DESCRIPTION NEEDLE ssh ARGS...: exits non-zero with one line on
# stderr containing NEEDLE, and nothing appears under Root=/git.
refused() {
        local what=$1 needle=$2 rc=0 err before
        shift 2
        before=$(git_tree)
        err=$(sshd_ssh "$@" </dev/null 2>&1 >/dev/null) || rc=$?
        if [ "$rc" -ne 0 ] && [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] && [[ $err == *"$needle"* ]] &&
                [ "$before" = "$(git_tree)" ]; then
                ok "$what"
        else
                fail "$what"
                diag "rc=$rc" "stderr: $err" "git tree before: $before" "after: $(git_tree)"
        fi
}

refused "ssh … ls is refused" "'ls' is not allowed" alice ls
refused "an interactive login is refused" "interactive login is not allowed" alice
refused "git-upload-pack '../x' is refused" "not a path" alice "git-upload-pack '../x'"
refused "git-receive-pack '../x' is refused" "not a path" alice "git-receive-pack '../x'"
refused "another user's path 'bob/app' is refused" "not a path" alice "git-receive-pack 'bob/app'"
refused "a bad app name is refused" "app names are" alice "git-receive-pack 'Bad_App'"
refused "an extra argument is refused" "one argument" alice "git-receive-pack 'app' 'x'"
refused "git-upload-archive is refused" "not allowed" alice "git-upload-archive 'app'"
refused "a shell trick is refused" "not an app" alice "git-receive-pack 'app';id"
refused "clone of an app never pushed is refused" "no app 'nothing' here" alice "git-upload-pack 'nothing'"
rc=0
sshd_ssh carol "git-upload-pack 'app'" </dev/null >/dev/null 2>&1 || rc=$?
assert_eq "a key nobody added cannot log in (ssh exits 255)" 255 "$rc"
assert_eq "no refusal created anything under Root=/git" "" "$(git_tree)"

# ------------------------------------------------------------- push, clone

sshd_git_env alice
W=$NAP_TEST_DIR/work
make_repo "$W/hello" "$SRC/tests/apps/hello"/* || { echo "Bail out! cannot make the app repository"; exit 1; }
commit=$(git -C "$W/hello" rev-parse HEAD)
check "alice pushes hello (a new app)" timeout 60 git -C "$W/hello" push -q "$(sshd_url hello)" HEAD:main
repo=$NAP_ROOT/git/alice/hello.git
assert_eq "the push created a bare repository" true "$(git --git-dir="$repo" config core.bare 2>&1)"
assert_eq "its HEAD is main" "ref: refs/heads/main" "$(cat "$repo/HEAD" 2>&1)"
assert_eq "main is the pushed commit" "$commit" "$(git --git-dir="$repo" rev-parse refs/heads/main 2>&1)"
assert_eq "the post-receive hook is nap's" "$(printf '#!/bin/sh\nexec %s alice hello' "$STUB")" \
        "$(cat "$repo/hooks/post-receive" 2>&1)"
assert_eq "the hook is executable (0755)" 755 "$(stat -c %a "$repo/hooks/post-receive" 2>&1)"
assert_eq "the hook ran with USER APP and git's ref line" \
        "$(printf 'args: alice hello\n%s %s refs/heads/main' "$(printf '0%.0s' {1..40})" "$commit")" \
        "$(cat "$RECEIVE_LOG" 2>&1)"
assert_eq "nothing but the repository is left under git/alice" "hello.git" "$(ls -A "$NAP_ROOT/git/alice")"

check "git clone of the app works" timeout 60 git clone -q "$(sshd_url hello)" "$W/clone"
assert_eq "the clone has the pushed commit" "$commit" "$(git -C "$W/clone" rev-parse HEAD 2>&1)"
for url in "$(sshd_url hello.git)" "$(sshd_url /hello)" "ssh://$SSHD_USER@127.0.0.1:$SSHD_PORT/~/hello.git" \
        "ssh://$SSHD_USER@127.0.0.1:$SSHD_PORT/hello"; do
        out=$(timeout 60 git ls-remote "$url" refs/heads/main 2>&1)
        assert_eq "git ls-remote $url" "$commit	refs/heads/main" "$out"
done

# Two first pushes of one new app at once (to two branches, so git itself
# has no reason to refuse either): both succeed, in one repository.
git -C "$W/hello" push -q "$(sshd_url race)" HEAD:main &
p1=$!
git -C "$W/clone" push -q "$(sshd_url race)" HEAD:refs/heads/other &
p2=$!
rc1=0 rc2=0
wait $p1 || rc1=$?
wait $p2 || rc2=$?
assert_eq "two first pushes at once both succeed" "0 0" "$rc1 $rc2"
assert_eq "… into one repository" "$commit $commit" \
        "$(git --git-dir="$NAP_ROOT/git/alice/race.git" rev-parse main other 2>&1 | tr '\n' ' ' | sed 's/ $//')"
assert_eq "… and no temporary one is left" "hello.git race.git" \
        "$(ls -A "$NAP_ROOT/git/alice" | sort | tr '\n' ' ' | sed 's/ $//')"

# ------------------------------------------------- users are kept apart

sshd_git_env bob
make_repo "$W/bob-hello" "$SRC/tests/apps/hello"/* && echo "bob's" >"$W/bob-hello/README" &&
        git -C "$W/bob-hello" add README && git -C "$W/bob-hello" commit -q -m bob
bob_commit=$(git -C "$W/bob-hello" rev-parse HEAD)
check "bob pushes his own hello" timeout 60 git -C "$W/bob-hello" push -q "$(sshd_url hello)" HEAD:main
assert_eq "bob's push went to git/bob/hello.git" "$bob_commit" \
        "$(git --git-dir="$NAP_ROOT/git/bob/hello.git" rev-parse refs/heads/main 2>&1)"
assert_eq "alice's hello is untouched" "$commit" "$(git --git-dir="$repo" rev-parse refs/heads/main 2>&1)"
check "bob pushes secret" timeout 60 git -C "$W/bob-hello" push -q "$(sshd_url secret)" HEAD:main
sshd_git_env alice
out=$(timeout 60 git ls-remote "$(sshd_url secret)" 2>&1) && rc=0 || rc=$?
assert_contains "alice cannot read bob's secret (it is not hers)" "$out" "no app 'secret' here"
refused "alice cannot name bob's repository by path" "not a path" alice "git-upload-pack '~/../bob/secret.git'"
refused "… nor by an absolute path" "not a path" alice "git-upload-pack '/git/bob/secret.git'"
assert_eq "alice's clone of hello is hers, not bob's" "$commit" \
        "$(timeout 60 git ls-remote "$(sshd_url hello)" refs/heads/main 2>&1 | cut -f1)"

# ----------------------------------------------------------------- remove

chmod 0644 "$AUTHKEYS" # sshd accepts it (not writable by others); it must stay so
expect_ok "keys remove alice FINGERPRINT" keys remove alice "$(fingerprint_of alice)"
check_foreign "after remove"
assert_eq "the file keeps a mode it was given" 644 "$(stat -c %a "$AUTHKEYS")"
nap keys list
assert_not_contains "alice's key is no longer listed" "$OUT" "alice"
out=$(timeout 60 git -C "$W/hello" push "$(sshd_url hello)" HEAD:main 2>&1) && rc=0 || rc=$?
check "alice can no longer push" test "$rc" -ne 0
assert_contains "… sshd refuses her key" "$out" "Permission denied (publickey)"
sshd_git_env bob
check "bob still can" timeout 60 git ls-remote -q "$(sshd_url hello)"
nap keys remove alice "$(fingerprint_of alice)"
assert_eq "removing it again fails (exit 2)" 2 "$RC"
assert_contains "… saying there is no such key" "$ERR" "has no key"
expect_ok "keys add alice again" keys add alice <"$SSHD_DIR/keys/alice.pub"
sshd_git_env alice
check "alice can push again" timeout 60 git -C "$W/hello" push -q "$(sshd_url hello)" HEAD:main
check_foreign "at the end"

[ "$NAP_TESTS_FAILED" -gt 0 ] && sshd_log 40
sshd_stop
nap_summary
