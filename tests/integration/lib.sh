# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# The integration sandbox: a real systemd user manager, a real journald and
# nap's generator, booted inside private mount and PID namespaces so the
# machine itself is left untouched (and need not run systemd as PID 1).
# Sourced by tests/integration/test-*.sh and scripts/demo.
#
#   . tests/integration/lib.sh
#   nap_sandbox_enter "$@"    # re-runs the script as PID 1 of the sandbox
#   nap_sandbox_start         # journald, generator, systemd --user
#   ... napctl --user …, systemctl --user …, http_get URL …
#   nap_summary               # "N passed, N failed", exit status
#
# What it builds, all on tmpfs inside the namespace:
#   /run                      tmpfs (hides the host's /run: no dirs left there)
#   /run/systemd/system       makes sd_booted() true for the user manager
#   /run/systemd/user-generators/nap-generator   the built generator
#   /run/user/0               XDG_RUNTIME_DIR (bus, systemd/, generator output)
#   /run/nap-test-ID          $NAP_TEST_DIR: nap.conf, root/, instances/, home/
#   /var/log/journal          tmpfs, so journald never writes to the host's disk
# and a cgroup NAME.slice/user@0.service for the manager, so journald files
# the apps' output under _SYSTEMD_USER_UNIT= as on a real machine, and two
# sandboxes running at once never share a cgroup.
#
# Inputs (environment): NAP_GENERATOR (path of the built nap-generator),
# NAPCTL (path of napctl, for the tests), NAP_SANDBOX_TIMEOUT (seconds for
# the whole run, default 900), NAP_TEST_VERBOSE=1 (show the manager's log
# and the journal at the end even on success), NAP_TEST_REQUIRE_SANDBOX=1
# (fail instead of skipping when the sandbox cannot be built).
# Everything is bounded in time; when the script ends, however it ends, the
# PID namespace dies and the kernel kills whatever is left in it.

set -u
set -o pipefail

NAP_TESTS_PASSED=0
NAP_TESTS_FAILED=0
NAP_TESTS_N=0
NAP_TESTS_FAILED_NAMES=()

# ---------------------------------------------------------------- reporting

ok() {
        NAP_TESTS_N=$((NAP_TESTS_N + 1))
        NAP_TESTS_PASSED=$((NAP_TESTS_PASSED + 1))
        echo "ok $NAP_TESTS_N - $*"
}

fail() {
        NAP_TESTS_N=$((NAP_TESTS_N + 1))
        NAP_TESTS_FAILED=$((NAP_TESTS_FAILED + 1))
        NAP_TESTS_FAILED_NAMES+=("$NAP_TESTS_N - $*")
        echo "not ok $NAP_TESTS_N - $*"
}

# Extra detail for the last result, indented so it reads as a TAP comment.
diag() {
        printf '%s\n' "$@" | sed 's/^/#   /'
}

# Skips (exit 77) when this machine cannot run the test; with
# NAP_TEST_REQUIRE_SANDBOX=1 (scripts/test as root, CI) that is a failure
# instead, so a CI run cannot pass by skipping its integration tests.
skip_all() {
        if [ "${NAP_TEST_REQUIRE_SANDBOX:-0}" = 1 ]; then
                echo "Bail out! $* (NAP_TEST_REQUIRE_SANDBOX=1)"
                exit 1
        fi
        echo "1..0 # SKIP $*"
        exit 77
}

# The checks below return 1 when they fail, so that a caller can add its
# own diagnostics (check ... || diag ...); a failure is counted either way.

# check DESCRIPTION CMD...: ok when CMD succeeds.
check() {
        local what=$1
        shift
        if "$@"; then ok "$what"; else fail "$what"; return 1; fi
}

# assert_eq DESCRIPTION EXPECTED GOT
assert_eq() {
        if [ "$2" = "$3" ]; then
                ok "$1"
        else
                fail "$1"
                diag "expected: $(printf '%q' "$2")" "got:      $(printf '%q' "$3")"
                return 1
        fi
}

# assert_contains DESCRIPTION HAYSTACK NEEDLE (fixed string)
assert_contains() {
        case $2 in
        *"$3"*) ok "$1" ;;
        *)
                fail "$1"
                diag "expected to contain: $(printf '%q' "$3")" "in: $2"
                return 1
                ;;
        esac
}

assert_not_contains() {
        case $2 in
        *"$3"*)
                fail "$1"
                diag "expected not to contain: $(printf '%q' "$3")" "in: $2"
                return 1
                ;;
        *) ok "$1" ;;
        esac
}

# assert_match DESCRIPTION STRING ERE
assert_match() {
        if printf '%s' "$2" | grep -Eq -- "$3"; then
                ok "$1"
        else
                fail "$1"
                diag "expected to match: $3" "got: $(printf '%q' "$2")"
                return 1
        fi
}

nap_summary() {
        echo "1..$NAP_TESTS_N"
        nap__summary_line
        [ "$NAP_TESTS_FAILED" -eq 0 ] && [ "$NAP_TESTS_N" -gt 0 ]
}

nap__summary_line() {
        echo "# $NAP_TESTS_PASSED passed, $NAP_TESTS_FAILED failed"
}

log() {
        echo "# $*"
}

# ------------------------------------------------------------------ waiting

# wait_until SECONDS CMD...: polls CMD every 0.1 s until it succeeds.
wait_until() {
        local timeout=$1 deadline
        shift
        deadline=$(($(date +%s%N) / 1000000 + timeout * 1000))
        while :; do
                "$@" && return 0
                [ $(($(date +%s%N) / 1000000)) -ge "$deadline" ] && return 1
                sleep 0.1
        done
}

# What wait_until waits on is asked at every try: `wait_until 5 test
# "$(CMD)" = x` would expand "$(CMD)" once, before the first try, and never
# see a change. These run CMD themselves:
#   wait_until 5 output_is active active_state "$UNIT"
#   wait_until 10 output_at_least 4 got main
# output_is TEXT CMD...: CMD prints TEXT (a trailing newline aside).
output_is() {
        [ "$("${@:2}")" = "$1" ]
}

# output_at_least N CMD...: CMD prints an integer ≥ N.
output_at_least() {
        [ "$("${@:2}")" -ge "$1" ] 2>/dev/null
}

# tcp_listening PORT: something listens on 127.0.0.1:PORT (or any
# address) in this network namespace; asked of /proc, never by connecting,
# so a server that accepts once is left its one connection.
tcp_listening() {
        local hex
        hex=$(printf '%04X' "$1")
        awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
                /proc/net/tcp
}

# now_ms: milliseconds of the wall clock, for timing what a test waited on.
now_ms() {
        echo $(($(date +%s%N) / 1000000))
}

# http_get URL [SECONDS]: prints the body of the first answer (any HTTP
# status) within SECONDS (default 15); non-zero if nothing answered.
http_get() {
        local url=$1 timeout=${2:-15} out
        out=$(mktemp "$NAP_TEST_DIR/http.XXXXXX") || return 1
        if wait_until "$timeout" curl -sS --max-time 3 -o "$out" "$url" 2>/dev/null; then
                cat "$out"
                rm -f "$out"
                return 0
        fi
        rm -f "$out"
        return 1
}

# Crash tests (nap_debug_point(), $NAP_DEBUG_PAUSE_AT): the file a paused
# process writes "POINT PID" to (PAUSED, set by nap_sandbox_start), and
# whether (which process) stopped there.
paused_at() { grep -q "^$1 " "$PAUSED" 2>/dev/null; }
paused_pid() { sed -n "s/^$1 \([0-9]*\)$/\1/p" "$PAUSED" | head -n 1; }

# kill_at POINT WHAT CMD...: CMD in the background with $NAP_DEBUG_PAUSE_AT
# set (the process it starts that reaches POINT stops there: nap-receive,
# napctl); once stopped, that process is SIGKILLed and CMD waited for.
# Fails (with CMD's output) when nothing reaches POINT.
kill_at() {
        local point=$1 what=$2 bg out=$NAP_TEST_DIR/paused-cmd.out
        shift 2
        rm -f "$PAUSED"
        NAP_DEBUG_PAUSE_AT=$point NAP_DEBUG_PAUSE_FILE=$PAUSED "$@" >"$out" 2>&1 &
        bg=$!
        if ! wait_until 60 paused_at "$point"; then
                fail "$what reached the point"
                kill "$bg" 2>/dev/null
                wait "$bg" 2>/dev/null
                diag "$(cat "$out")"
                return 1
        fi
        ok "$what reached the point"
        kill -9 "$(paused_pid "$point")"
        wait "$bg" 2>/dev/null
        return 0 # reached and killed (CMD's own status is whatever the kill made it)
}

# http_refused URL: true when nothing listens there (connection refused or
# no answer within 2 s).
http_refused() {
        ! curl -sS --max-time 2 -o /dev/null "$1" 2>/dev/null
}

# ---------------------------------------------------------- entering the ns

nap__can_unshare() {
        unshare --mount --pid --fork --mount-proc --propagation private true 2>/dev/null
}

# cgroup hierarchies the manager is tracked in: the unified one alone, or
# (hybrid, as on the CI machines) name=systemd plus the unified one.
nap__cgroup_roots() {
        if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
                echo /sys/fs/cgroup
                return
        fi
        [ -d /sys/fs/cgroup/systemd ] && echo /sys/fs/cgroup/systemd
        [ -e /sys/fs/cgroup/unified/cgroup.controllers ] && echo /sys/fs/cgroup/unified
        return 0
}

# nap__cgroup_remove DIR: kills the processes left in cgroup DIR (seen from
# the host's PID namespace) and removes it, deepest first. Killed processes
# leave their cgroups a moment later: it tries for 5 s, then fails.
nap__cgroup_remove() {
        local dir=$1 pid i
        for i in $(seq 100); do
                for pid in $(find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null); do
                        kill -KILL "$pid" 2>/dev/null
                done
                find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null
                [ -d "$dir" ] || return 0
                sleep 0.05
        done
        return 1
}

# Kills what is left in the sandbox's cgroups (seen from the host's PID
# namespace) and removes them, deepest first. Run outside the namespace,
# after it ended; also sweeps cgroups of earlier sandboxes whose owner died.
nap__cgroup_cleanup() {
        local root dir owner
        for root in $(nap__cgroup_roots); do
                for dir in "$root"/nap-test-*.slice; do
                        [ -d "$dir" ] || continue
                        owner=${dir##*/nap-test-}
                        owner=${owner%%-*}
                        if [ "$dir" != "$root/$NAP_SANDBOX_ID.slice" ] && kill -0 "$owner" 2>/dev/null; then
                                continue # another live sandbox
                        fi
                        nap__cgroup_remove "$dir" || :
                done
        done
        return 0
}

# nap_napctl_env: outside the sandbox, checks that NAPCTL and NAP_GENERATOR
# are the built binaries and exports them with NAP_BUILD_ROOT (default: the
# build tree NAPCTL is in) and NAP_SOURCE_ROOT; inside, nothing to do.
nap_napctl_env() {
        [ -n "${NAP_SANDBOX_INSIDE:-}" ] && return 0
        local b
        for b in "${NAPCTL:-}" "${NAP_GENERATOR:-}"; do
                [ -x "$b" ] || { echo "Bail out! set NAPCTL and NAP_GENERATOR to the built binaries (got '$b')"; exit 1; }
        done
        NAPCTL=$(realpath "$NAPCTL") NAP_GENERATOR=$(realpath "$NAP_GENERATOR")
        NAP_BUILD_ROOT=$(realpath "${NAP_BUILD_ROOT:-$(dirname "$NAPCTL")/..}")
        NAP_SOURCE_ROOT=${NAP_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
        export NAPCTL NAP_GENERATOR NAP_BUILD_ROOT NAP_SOURCE_ROOT
}

# make_repo DIR [FILES...]: a git repository in DIR with FILES copied in
# (links followed), committed (set GIT_AUTHOR_*/GIT_COMMITTER_* first).
make_repo() {
        local dir=$1
        shift
        mkdir -p "$dir" || return 1
        if [ $# -gt 0 ]; then cp -rL "$@" "$dir"/ || return 1; fi
        git -C "$dir" init -q && git -C "$dir" add -A && git -C "$dir" commit -q -m "nap test app"
}

# cursor_now: the journal's cursor now; reloads_since CURSOR: the
# manager's "Reloading." messages after it.
cursor_now() {
        journalctl --no-pager -q -n 0 --show-cursor 2>/dev/null | sed -n 's/^-- cursor: //p'
}

# (No _PID= match with --after-cursor: journalctl 252 then skips the first
# matching entry, taking it for the cursor's own.)
reloads_since() {
        journalctl --no-pager -q -o short --after-cursor "$1" 2>/dev/null |
                grep -c " systemd\[$NAP_MANAGER_PID\]: Reloading\.$"
}

# nap_need TOOL...: bails out unless every TOOL is in $PATH.
nap_need() {
        local t
        for t in "$@"; do
                command -v "$t" >/dev/null || { echo "Bail out! $t is needed"; exit 1; }
        done
}

# nap_sandbox_enter "$@": outside the sandbox, checks what is needed (skips
# with 77 if it cannot run here), re-runs "$0" "$@" as PID 1 of new mount
# and PID namespaces, cleans up after it and exits with its status. Inside,
# returns.
nap_sandbox_enter() {
        if [ -n "${NAP_SANDBOX_INSIDE:-}" ]; then
                [ "$$" -eq 1 ] || { echo "nap_sandbox_enter: not PID 1 of the sandbox" >&2; exit 1; }
                return 0
        fi
        [ "$(id -u)" -eq 0 ] || skip_all "must run as root (boots a systemd user manager in namespaces)"
        command -v unshare >/dev/null || skip_all "unshare(1) not found"
        nap__can_unshare || skip_all "cannot create mount and PID namespaces here"
        [ -x /lib/systemd/systemd ] || skip_all "/lib/systemd/systemd not found"
        [ -x /lib/systemd/systemd-journald ] || skip_all "/lib/systemd/systemd-journald not found"

        local rc=0 timeout=${NAP_SANDBOX_TIMEOUT:-900}
        NAP_SANDBOX_ID="nap-test-$$-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
        export NAP_SANDBOX_ID NAP_SANDBOX_INSIDE=1
        # --kill-child: if unshare dies (timeout, ^C), PID 1 of the namespace
        # gets SIGKILL and the kernel kills everything in it.
        # At the limit timeout(1) sends SIGTERM to its process group: PID 1
        # of the sandbox traps it and tears down, showing its logs; SIGKILL
        # 10 s later if it did not. On a terminal (scripts/demo --shell)
        # --foreground keeps the terminal usable; there only unshare gets
        # the signals, it ignores SIGTERM, so the SIGKILL ends the sandbox.
        local fg=()
        [ -t 0 ] && fg=(--foreground)
        timeout "${fg[@]}" --kill-after=10 "$timeout" \
                unshare --mount --pid --fork --kill-child --mount-proc --propagation private \
                -- bash "$0" "$@" || rc=$?
        case $rc in 124 | 137) echo "# sandbox: timed out after ${timeout}s (or was killed)" >&2 ;; esac
        nap__cgroup_cleanup
        exit "$rc"
}

# ----------------------------------------------------------------- the boot

# PortRange=: a random 100-port block in 20000-59999 with nothing listening
# in it, so sandboxes running at once rarely meet. Not a reservation: nap
# itself checks that a port binds before handing it out.
nap__pick_port_range() {
        local i low listening
        listening=$(ss -Htln 2>/dev/null | awk '{ n = split($4, a, ":"); print a[n] }')
        for i in $(seq 50); do
                low=$((20000 + ($(od -An -N2 -tu2 /dev/urandom) % 400) * 100))
                if ! printf '%s\n' "$listening" | awk -v l="$low" '$1 >= l && $1 < l + 100 { f = 1 } END { exit !f }'; then
                        echo "$low-$((low + 99))"
                        return 0
                fi
        done
        echo "$low-$((low + 99))"
}

# PID 1 makes these at boot (mount-setup.c); unit sandboxing (ProtectHome=,
# InaccessiblePaths=, ProtectKernelTunables=…) bind-mounts them over what it
# hides and fails with 226/NAMESPACE without them.
nap__inaccessible_nodes() {
        local d=/run/systemd/inaccessible
        mkdir -p "$d" && mkdir -m 0000 "$d/dir" &&
                install -m 0000 /dev/null "$d/reg" &&
                mkfifo -m 0000 "$d/fifo" &&
                mknod -m 0000 "$d/chr" c 0 0 &&
                mknod -m 0000 "$d/blk" b 0 0 &&
                python3 -c 'import os, stat, sys; os.mknod(sys.argv[1], stat.S_IFSOCK)' "$d/sock" &&
                chmod 0000 "$d/sock"
}

nap__mounts() {
        # -n: libmount would otherwise create /run/mount/ for its utab on
        # the host's /run, before this mount hides it.
        mount -n -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run || return 1
        mkdir -p /run/systemd/system /run/systemd/user-generators /run/systemd/journal /run/log \
                /run/user/0 "$NAP_TEST_DIR" || return 1
        chmod 0700 /run/user/0
        nap__inaccessible_nodes || return 1
        # journald would import the host's kernel log and write its own
        # messages into it; the sandbox's journal is the sandbox's alone.
        [ -c /dev/kmsg ] && { mount --bind /dev/null /dev/kmsg || return 1; }
        # journald stores persistently when /var/log/journal exists.
        if [ -d /var/log/journal ]; then
                mount -t tmpfs -o mode=0755 tmpfs /var/log/journal || return 1
        fi
        mkdir -p "$NAP_TEST_DIR/root" "$NAP_TEST_DIR/instances" "$NAP_TEST_DIR/home"
}

nap__write_config() {
        NAP_PORT_RANGE=$(nap__pick_port_range)
        NAP_PORT_MIN=${NAP_PORT_RANGE%-*}
        NAP_PORT_MAX=${NAP_PORT_RANGE#*-}
        cat >"$NAP_TEST_DIR/nap.conf" <<EOF
# written by tests/integration/lib.sh for sandbox $NAP_SANDBOX_ID
[Nap]
Root=$NAP_ROOT
Instances=$NAP_INSTANCES
Scope=user
Host=127.0.0.1
PortRange=$NAP_PORT_RANGE
EOF
}

nap__start_journald() {
        /lib/systemd/systemd-journald </dev/null >>"$NAP_TEST_DIR/journald.log" 2>&1 &
        NAP_JOURNALD_PID=$!
        wait_until 10 test -S /run/systemd/journal/stdout
}

nap__manager_running() {
        local s
        s=$(systemctl --user is-system-running 2>/dev/null)
        [ "$s" = running ] || [ "$s" = degraded ]
}

# Starts `systemd --user` in the cgroup NAME.slice/user@0.service and
# waits until it says it is up.
nap__start_manager() {
        local root
        for root in $(nap__cgroup_roots); do
                mkdir -p "$root/$NAP_SANDBOX_ID.slice/user@0.service"
        done
        (
                for root in $(nap__cgroup_roots); do
                        echo "$BASHPID" >"$root/$NAP_SANDBOX_ID.slice/user@0.service/cgroup.procs" || exit 1
                done
                cd / && exec env HOME="$NAP_TEST_DIR/home" NAP_CONFIG="$NAP_CONFIG" SYSTEMD_LOG_TARGET=journal \
                        /lib/systemd/systemd --user </dev/null
        ) >>"$NAP_TEST_DIR/manager.log" 2>&1 &
        NAP_MANAGER_PID=$!
        if ! wait_until 30 nap__manager_running; then
                echo "# sandbox: the user manager did not come up in 30 s; its log:" >&2
                sed 's/^/#   /' "$NAP_TEST_DIR/manager.log" >&2
                return 1
        fi
}

# nap_sandbox_start: everything up. Sets NAP_TEST_DIR, NAP_ROOT,
# NAP_INSTANCES, NAP_CONFIG, NAP_PORT_MIN/MAX, XDG_RUNTIME_DIR,
# DBUS_SESSION_BUS_ADDRESS; registers nap_sandbox_stop on exit.
nap_sandbox_start() {
        [ -n "${NAP_SANDBOX_INSIDE:-}" ] || { echo "nap_sandbox_start: call nap_sandbox_enter first" >&2; exit 1; }
        local gen=${NAP_GENERATOR-}
        if [ -n "$gen" ] && [ ! -x "$gen" ]; then
                echo "nap_sandbox_start: NAP_GENERATOR=$gen is not an executable" >&2
                exit 1
        fi

        NAP_TEST_DIR=/run/$NAP_SANDBOX_ID
        NAP_ROOT=$NAP_TEST_DIR/root
        NAP_INSTANCES=$NAP_TEST_DIR/instances
        NAP_CONFIG=$NAP_TEST_DIR/nap.conf
        PAUSED=$NAP_TEST_DIR/paused
        export NAP_TEST_DIR NAP_ROOT NAP_INSTANCES NAP_CONFIG
        export XDG_RUNTIME_DIR=/run/user/0
        export DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/0/bus
        export SYSTEMD_PAGER= SYSTEMD_COLORS=0 SYSTEMD_LOG_COLOR=0
        unset DBUS_SYSTEM_BUS_ADDRESS NOTIFY_SOCKET

        trap nap_sandbox_stop EXIT
        trap 'exit 130' INT
        trap 'exit 143' TERM

        nap__mounts || { echo "nap_sandbox_start: mounts failed" >&2; exit 1; }
        nap__write_config
        if [ -n "$gen" ]; then
                cp "$gen" /run/systemd/user-generators/nap-generator || exit 1
        fi
        nap__start_journald || { echo "nap_sandbox_start: journald did not start" >&2; exit 1; }
        nap__start_manager || exit 1
        log "sandbox $NAP_SANDBOX_ID up: manager pid $NAP_MANAGER_PID, ports $NAP_PORT_RANGE"
}

# Stops the manager with SIGTERM (a user manager then starts exit.target,
# stopping every unit) and waits for it; SIGKILL after 30 s.
nap__stop_manager() {
        [ -n "${NAP_MANAGER_PID:-}" ] || return 0
        kill -TERM "$NAP_MANAGER_PID" 2>/dev/null
        if ! wait_until 30 nap__pid_gone "$NAP_MANAGER_PID"; then
                echo "# sandbox: manager ignored SIGTERM for 30 s, killing it" >&2
                kill -KILL "$NAP_MANAGER_PID" 2>/dev/null
        fi
        wait "$NAP_MANAGER_PID" 2>/dev/null
        NAP_MANAGER_PID=
}

nap__pid_gone() {
        ! kill -0 "$1" 2>/dev/null
}

# nap_manager_restart: the manager goes away cleanly and comes back, as at
# a reboot: the generator runs again and enabled instances start.
nap_manager_restart() {
        nap__stop_manager
        nap__start_manager
}

# Registered on EXIT by nap_sandbox_start. Whatever else is left is killed
# by the kernel when this PID 1 exits.
nap_sandbox_stop() {
        local rc=$?
        trap - EXIT INT TERM
        if [ "${NAP_TEST_VERBOSE:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
                if [ -s "$NAP_TEST_DIR/manager.log" ]; then
                        echo "# --- user manager stderr (last 40 lines) ---"
                        tail -n 40 "$NAP_TEST_DIR/manager.log" | sed 's/^/#   /'
                fi
                echo "# --- journal (last 60 lines) ---"
                timeout 10 journalctl --no-pager -q -n 60 -o short-precise 2>&1 | sed 's/^/#   /'
        fi
        # Again at the very end, where a truncated log (meson) still shows it.
        if [ "$NAP_TESTS_FAILED" -gt 0 ]; then
                echo "# --- failed ---"
                printf '# not ok %s\n' "${NAP_TESTS_FAILED_NAMES[@]}"
        fi
        [ "$NAP_TESTS_N" -gt 0 ] && nap__summary_line
        nap__stop_manager
        if [ -n "${NAP_JOURNALD_PID:-}" ]; then
                kill -TERM "$NAP_JOURNALD_PID" 2>/dev/null
                wait_until 10 nap__pid_gone "$NAP_JOURNALD_PID" || kill -KILL "$NAP_JOURNALD_PID" 2>/dev/null
        fi
        # Anything else still running in this namespace (a stray curl, an
        # app that escaped its unit) ends now.
        kill -KILL -1 2>/dev/null
        exit "$rc"
}

# ------------------------------------------------------- nap-managerd (varlink)

# nap_managerd_install [ARGS...]: installs the built nap-managerd.socket and
# .service, nap-fetch.socket and @.service and nap-connect.socket and
# .service (from $NAP_BUILD_ROOT/units, as
# `meson install` would) into the
# sandbox's $XDG_RUNTIME_DIR/systemd/user, with a drop-in running the built
# $NAP_MANAGERD (default $NAP_BUILD_ROOT/helpers/nap-managerd) with ARGS,
# and starts the socket. Sets NAP_VARLINK_SOCKET.
nap_managerd_install() {
        local dir=$XDG_RUNTIME_DIR/systemd/user bin=${NAP_MANAGERD:-$NAP_BUILD_ROOT/helpers/nap-managerd}
        [ -x "$bin" ] || { echo "nap_managerd_install: $bin is not an executable" >&2; return 1; }
        # The unit has PrivateTmp=yes: a build tree under /tmp (a CI clone)
        # would be hidden from it, so the binary runs from the sandbox.
        mkdir -p "$NAP_TEST_DIR/bin" && cp "$bin" "$NAP_TEST_DIR/bin/nap-managerd" || return 1
        bin=$NAP_TEST_DIR/bin/nap-managerd
        mkdir -p "$dir/nap-managerd.service.d" "$dir/nap-fetch@.service.d" "$dir/nap-connect.service.d" || return 1
        cp "$NAP_BUILD_ROOT/units/nap-managerd.socket" "$NAP_BUILD_ROOT/units/nap-managerd.service" \
                "$NAP_BUILD_ROOT/units/nap-fetch.socket" "$NAP_BUILD_ROOT/units/nap-fetch@.service" \
                "$NAP_BUILD_ROOT/units/nap-connect.socket" "$NAP_BUILD_ROOT/units/nap-connect.service" "$dir/" || return 1
        # No start rate limit: with the tests' idle timeouts of seconds it
        # exits and is activated again far more often than a daemon idling
        # 30 s ever is, and on a loaded machine the slow steps between two
        # calls make more of them activations (5 in 10 s: start-limit-hit).
        printf '[Unit]\nStartLimitIntervalSec=0\n[Service]\nExecStart=\nExecStart=%s %s\n' "$bin" "$*" \
                >"$dir/nap-managerd.service.d/50-test.conf"
        # nap-fetch, which fetches for it (nap-fetch(8)), the same way.
        cp "$NAP_BUILD_ROOT/helpers/nap-fetch" "$NAP_TEST_DIR/bin/nap-fetch" || return 1
        printf '[Service]\nExecStart=\nExecStart=%s\n' "$NAP_TEST_DIR/bin/nap-fetch" >"$dir/nap-fetch@.service.d/50-test.conf"
        # nap-connect, which connects for it (nap-connect(8)), the same way.
        cp "$NAP_BUILD_ROOT/helpers/nap-connect" "$NAP_TEST_DIR/bin/nap-connect" || return 1
        printf '[Unit]\nStartLimitIntervalSec=0\n[Service]\nExecStart=\nExecStart=%s\n' "$NAP_TEST_DIR/bin/nap-connect" \
                >"$dir/nap-connect.service.d/50-test.conf"
        NAP_VARLINK_SOCKET=$XDG_RUNTIME_DIR/nap/io.nap.Manager
        export NAP_VARLINK_SOCKET
        timeout 30 systemctl --user daemon-reload &&
                timeout 30 systemctl --user start nap-fetch.socket nap-connect.socket nap-managerd.socket
}

# Throwaway users alice (4242) and bob (4243) for authorization checks:
# a copy of /etc/passwd bind-mounted over it, inside the sandbox's mount
# namespace only (useradd would rewrite the host's file). Call it before
# the manager starts, so that the services it starts see it.
ALICE_UID=4242 BOB_UID=4243
nap_users_setup() {
        local t=/run/nap-users.$$
        mkdir -p "$t" && cp /etc/passwd /etc/group "$t"/ || return 1
        printf 'alice:x:%s:%s::/nonexistent:/usr/sbin/nologin\nbob:x:%s:%s::/nonexistent:/usr/sbin/nologin\n' \
                $ALICE_UID $ALICE_UID $BOB_UID $BOB_UID >>"$t/passwd"
        printf 'alice:x:%s:\nbob:x:%s:\n' $ALICE_UID $BOB_UID >>"$t/group"
        mount --bind "$t/passwd" /etc/passwd && mount --bind "$t/group" /etc/group &&
                [ "$(id -un $ALICE_UID 2>/dev/null)" = alice ]
}

# varlink_raw MESSAGE...: sends each MESSAGE (JSON text, NUL added) on one
# connection to $NAP_VARLINK_SOCKET, half-closes, and prints every reply on
# a line of its own until the server closes (at most 30 s). As another uid
# with VARLINK_UID=N (setpriv, no groups).
varlink_raw() {
        local as=()
        [ -n "${VARLINK_UID:-}" ] && as=(setpriv --reuid="$VARLINK_UID" --regid="$VARLINK_UID" --clear-groups)
        printf '%s\0' "$@" | timeout 35 "${as[@]}" socat -t 30 - "UNIX-CONNECT:$NAP_VARLINK_SOCKET" | tr '\0' '\n'
}

# varlink_call METHOD PARAMETERS-JSON: one call, its reply(ies) printed.
varlink_call() {
        varlink_raw "{\"method\":\"$1\",\"parameters\":${2:-{\}}}"
}

# varlink_call_out METHOD PARAMS-JSON [EXTRA-FIELDS]: one call, as $VARLINK_UID if set;
# sets OUT (the replies, one per line).
varlink_call_out() {
        OUT=$(varlink_raw "{\"method\":\"$1\",\"parameters\":$2${3:+,$3}}")
}

# varlink_assert_reply DESCRIPTION JQ-FILTER EXPECTED: the filter on the last reply.
varlink_assert_reply() {
        local got
        got=$(printf '%s\n' "$OUT" | tail -n 1 | jq -r "$2" 2>&1)
        assert_eq "$1" "$3" "$got"
        [ "$got" = "$3" ] || diag "reply: $OUT"
}

# varlink_assert_error DESCRIPTION ERROR-ID: the last reply is that error.
varlink_assert_error() {
        varlink_assert_reply "$1" '.error' "$2"
}

# Long-lived connections to $NAP_VARLINK_SOCKET (a keeper, a follower, a
# slow caller): socat with its input from a FIFO this script holds open
# and its output in $NAP_TEST_DIR/conn-NAME.out. (Not bash coprocesses:
# bash tracks only one at a time.) As another uid with VARLINK_UID=N.
conn_open() { # NAME
        local fifo=$NAP_TEST_DIR/conn-$1.in fd as=()
        [ -n "${VARLINK_UID:-}" ] && as=(setpriv --reuid="$VARLINK_UID" --regid="$VARLINK_UID" --clear-groups)
        rm -f "$fifo" "$NAP_TEST_DIR/conn-$1.out"
        mkfifo "$fifo" || return 1
        "${as[@]}" socat - "UNIX-CONNECT:$NAP_VARLINK_SOCKET" <"$fifo" >"$NAP_TEST_DIR/conn-$1.out" 2>/dev/null &
        printf -v "CONN_PID_$1" %s "$!"
        exec {fd}>"$fifo"
        printf -v "CONN_FD_$1" %s "$fd"
}
conn_send() { # NAME JSON
        local fd=CONN_FD_$1
        printf '%s\0' "$2" >&"${!fd}"
}
conn_replies() { tr '\0' '\n' <"$NAP_TEST_DIR/conn-$1.out"; }
conn_has() { [ "$(tr -cd '\0' <"$NAP_TEST_DIR/conn-$1.out" | wc -c)" -ge "$2" ]; }
# conn_call NAME JSON: sends a call, prints its reply (within 10 s).
conn_call() {
        local n
        n=$(tr -cd '\0' <"$NAP_TEST_DIR/conn-$1.out" | wc -c)
        conn_send "$1" "$2" || return 1
        wait_until 10 conn_has "$1" $((n + 1)) || return 1
        conn_replies "$1" | sed -n "$((n + 1))p"
}
conn_hangup() { # NAME: the client goes away
        local pid=CONN_PID_$1 fd=CONN_FD_$1
        kill "${!pid}" 2>/dev/null
        wait "${!pid}" 2>/dev/null
        eval "exec ${!fd}>&-"
}

# slow_server_start PORT: an HTTP "server" on 127.0.0.1:PORT that accepts
# one connection and says nothing until slow_server_release: a fetch from
# it waits in its worker meanwhile, as long as the test needs, however
# loaded the machine. Returns once it listens (python3 may take most of a
# second to start on a loaded machine). slow_server_accepted: the fetch
# has begun.
slow_server_start() {
        rm -f "$NAP_TEST_DIR/slow.accepted" "$NAP_TEST_DIR/slow.release"
        python3 -c 'import os, socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
c, _ = s.accept(); open(sys.argv[2] + "/slow.accepted", "w").close()
while not os.path.exists(sys.argv[2] + "/slow.release"): time.sleep(0.05)
c.close()' "$1" "$NAP_TEST_DIR" &
        SLOW_SERVER=$!
        wait_until 10 tcp_listening "$1"
}
slow_server_accepted() { [ -e "$NAP_TEST_DIR/slow.accepted" ]; }
# The fetch gets its connection closed without an answer: FetchFailed.
slow_server_release() {
        touch "$NAP_TEST_DIR/slow.release"
        wait "$SLOW_SERVER" 2>/dev/null
}
