/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Named points inside multi-step operations where a crash test stops the
 * process, to kill it there for real (tests/integration/test-crash.sh):
 * with $NAP_DEBUG_PAUSE_AT set to a point's name, the process that
 * reaches it appends "NAME PID\n" to $NAP_DEBUG_PAUSE_FILE (if set) and
 * waits there until it is killed, or until SIGUSR1 makes it go on (a
 * fault test acting on something else at a known step: an etcd member
 * killed while a start is between two writes). Unset (always, outside such tests): one
 * getenv() per process, nothing else. The names are in nap-managerd(8),
 * CRASH SAFETY. */

void nap_debug_point(const char *name);
