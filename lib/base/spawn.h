/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Running a program without a shell and reading what it says. */

#include <stddef.h>
#include <stdint.h>

/* path (NULL: argv[0], looked up in PATH) with argv and envp
 * (NULL: this process's environment), stdin from /dev/null; what it writes
 * to the stream which (STDOUT_FILENO or STDERR_FILENO) read into *ret (may
 * be NULL; NUL-terminated, at most max bytes: -EFBIG beyond), the other
 * stream discarded; killed after timeout_usec (-ETIMEDOUT). -EIO when it
 * exits other than 0, *ret filled all the same. */
int nap_spawn_capture(const char *path, char *const *argv, char *const *envp, int which, size_t max, uint64_t timeout_usec,
                      char **ret);
