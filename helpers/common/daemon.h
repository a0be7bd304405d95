/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What nap's long-running helpers do before their event loop. */

#include <stdbool.h>

/* SIGTERM and SIGINT (and SIGCHLD when children) are blocked, to arrive
 * through sd-event's signal sources; SIGPIPE is ignored, so that a peer
 * hanging up is an EPIPE and not the end. Logs and returns < 0 on failure. */
int daemon_signals_setup(bool children);
