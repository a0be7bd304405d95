#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# nap_systemd_start_units() and nap_systemd_stop_units() (lib/clients/
# systemd1.h), which a rollout uses for a batch of instances: every job is
# asked for before any is waited for, so the manager runs them side by
# side; a failing unit is named and does not keep the others from
# starting; a stop never loads a unit the manager does not have. Real user
# manager (lib.sh), units in its runtime unit dir, driven through
# tests/integration/unit-jobs.c.
#
# Needs root; exits 77 otherwise.

. "$(dirname "$0")/lib.sh"

NAP_UNIT_JOBS=${NAP_UNIT_JOBS:-$NAP_BUILD_ROOT/tests/integration/unit-jobs}
[ -x "$NAP_UNIT_JOBS" ] || skip_all "no unit-jobs driver (build first)"
nap_sandbox_enter "$@"
nap_sandbox_start
nap_need busctl

RT=$XDG_RUNTIME_DIR/systemd/user
mkdir -p "$RT"
SLOW=4 SLOW_SEC=2
unit() { # NAME TYPE EXEC...
        local name=$1 type=$2
        shift 2
        printf '[Service]\nType=%s\nExecStart=%s\n' "$type" "$*" >"$RT/$name.service"
}
unit jobs-a exec /bin/sleep 1000
unit jobs-b exec /bin/sleep 1000
unit jobs-bad exec /nonexistent/nap-test-binary
unit jobs-ghost exec /bin/sleep 1000
for i in $(seq $SLOW); do unit "jobs-slow$i" oneshot /bin/sleep $SLOW_SEC; done

state() { systemctl --user show -p ActiveState --value "$1"; }
not_loaded() { # GetUnit loads nothing
        ! busctl --user call org.freedesktop.systemd1 /org/freedesktop/systemd1 \
                org.freedesktop.systemd1.Manager GetUnit s "$1" >/dev/null 2>&1
}

log "jobs run side by side"
t0=$(now_ms)
out=$("$NAP_UNIT_JOBS" start $(for i in $(seq $SLOW); do echo "jobs-slow$i.service"; done))
ms=$(($(now_ms) - t0))
assert_eq "$SLOW oneshots of $SLOW_SEC s started" "ok" "$out"
check "... in ${ms} ms: less than $((SLOW - 1)) of them one after the other" \
        test "$ms" -lt $(((SLOW - 1) * SLOW_SEC * 1000))
check "... each ran to its end before the call returned" \
        test "$(for i in $(seq $SLOW); do state "jobs-slow$i.service"; done | sort -u)" = inactive

log "a failing unit is named; the others start"
out=$("$NAP_UNIT_JOBS" start jobs-a.service jobs-bad.service jobs-b.service)
assert_eq "the call fails" "1" "$?"
assert_contains "... with the failing unit's name" "$out" "UnitFailed: Job to start unit 'jobs-bad.service' finished with result"
assert_eq "jobs-a (before it) runs" "active" "$(state jobs-a.service)"
assert_eq "jobs-b (after it) runs" "active" "$(state jobs-b.service)"

log "a stop does not load what is not loaded"
check "jobs-ghost is not loaded" not_loaded jobs-ghost.service
out=$("$NAP_UNIT_JOBS" stop jobs-a.service jobs-ghost.service jobs-b.service)
assert_eq "stop of two running and one not loaded" "ok" "$out"
assert_eq "jobs-a stopped" "inactive" "$(state jobs-a.service)"
assert_eq "jobs-b stopped" "inactive" "$(state jobs-b.service)"
check "jobs-ghost still not loaded" not_loaded jobs-ghost.service

log "a unit that cannot be loaded"
out=$("$NAP_UNIT_JOBS" start jobs-a.service jobs-missing.service)
assert_eq "the call fails" "1" "$?"
assert_contains "... naming it" "$out" "jobs-missing.service"
assert_eq "jobs-a (asked before it) runs" "active" "$(state jobs-a.service)"

nap_summary
