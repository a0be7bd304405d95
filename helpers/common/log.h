/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Logging of nap's helper programs (log.c): one line per event on stderr,
 * with a "<N>" priority prefix when stderr is the journal. Only programs
 * log; lib/ hands errors up (STYLE.md). */

#include <stdbool.h>
#include <syslog.h>

#include "base/macro.h"

void log_setup(void);
bool log_level_enabled(int level);
/* Logs at level; error (±errno, 0 for none) is errno during formatting,
 * for %m. Returns -|error| (or -EIO when 0), for "return log_…_errno()". */
int log_full_errno(int level, int error, const char *format, ...) _printf_(3, 4);

#define log_full(level, ...) ((void) log_full_errno((level), 0, __VA_ARGS__))
#define log_error_errno(r, ...) log_full_errno(LOG_ERR, (r), __VA_ARGS__)
#define log_warning_errno(r, ...) log_full_errno(LOG_WARNING, (r), __VA_ARGS__)
#define log_debug_errno(r, ...) log_full_errno(LOG_DEBUG, (r), __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
