# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Helpers for integration tests that drive the real napctl inside the
# sandbox of lib.sh (source both; call after nap_sandbox_start, with
# NAPCTL set to the binary).
#
# napctl talks varlink to nap-managerd (napctl(1)), so sourcing this
# installs the built nap-managerd.socket/.service in the sandbox's user
# manager and starts the socket (lib.sh's nap_managerd_install): every
# verb then goes the real way, the first call socket-activating the
# helper. The socket is enabled too, as a package would have it, so it is
# back after nap_manager_restart. NAP_BUILD_ROOT defaults to the build
# tree NAPCTL is in.

if [ -z "${NAP_VARLINK_SOCKET:-}" ]; then
        NAP_BUILD_ROOT=${NAP_BUILD_ROOT:-$(cd "$(dirname "$NAPCTL")/.." && pwd)}
        nap_managerd_install && timeout 30 systemctl --user enable --runtime --quiet nap-managerd.socket nap-fetch.socket nap-connect.socket ||
                { echo "Bail out! cannot install nap-managerd's units"; exit 1; }
fi

# nap ARGS...: napctl --user ARGS, bounded; sets OUT, ERR, RC.
nap() {
        RC=0
        timeout 60 "$NAPCTL" --user "$@" >"$NAP_TEST_DIR/out" 2>"$NAP_TEST_DIR/err" || RC=$?
        OUT=$(cat "$NAP_TEST_DIR/out")
        ERR=$(cat "$NAP_TEST_DIR/err")
}

nap_diag() {
        diag "napctl $*" "rc=$RC" "stdout: $OUT" "stderr: $ERR"
}

# expect_ok DESCRIPTION ARGS...: napctl succeeds.
expect_ok() {
        local what=$1
        shift
        nap "$@"
        if [ "$RC" -eq 0 ]; then ok "$what"; else fail "$what"; nap_diag "$@"; fi
}

MAXNUM=0 # the largest instance number handed out so far (any app)

# start_instance SERVICE PARAMS: start-common; sets INST, NUM, PORT, URL.
start_instance() {
        INST= NUM= PORT= URL=
        nap start-common "$1" "$2"
        if [ "$RC" -eq 0 ] && [[ $OUT =~ ^($1_common@([0-9]+))\ (http://127\.0\.0\.1:([0-9]+))$ ]]; then
                INST=${BASH_REMATCH[1]} NUM=${BASH_REMATCH[2]} URL=${BASH_REMATCH[3]} PORT=${BASH_REMATCH[4]}
                [ "$NUM" -gt "$MAXNUM" ] && MAXNUM=$NUM
                return 0
        fi
        return 1
}

export GIT_AUTHOR_NAME=nap-test GIT_AUTHOR_EMAIL=nap-test@localhost
export GIT_COMMITTER_NAME=nap-test GIT_COMMITTER_EMAIL=nap-test@localhost
export GIT_CONFIG_NOSYSTEM=1 HOME=$NAP_TEST_DIR/home

