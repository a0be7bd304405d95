/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What nap's long-running helpers do before their event loop. */

#include <stdbool.h>

/* SIGTERM and SIGINT (and SIGCHLD when children) are blocked, to arrive
 * through sd-event's signal sources; SIGPIPE is ignored, so that a peer
 * hanging up is an EPIPE and not the end. Logs and returns < 0 on failure. */
int daemon_signals_setup(bool children);

/* An option's whole seconds: decimal digits only, from min to max.
 * -EINVAL otherwise (the caller names the option in its error). */
int daemon_parse_seconds(const char *s, long long min, long long max, long long *ret);

/* getopt's 'h' (--help) and 'V' (--version), as every helper answers
 * them: help() printed, or "PROGRAM VERSION". */
void daemon_answer_help_or_version(int c, const char *program, void (*help)(void));
