/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/debug-point.h"
#include "base/macro.h"

static void announce(const char *file, const char *name) {
        char line[128];
        int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        int n = snprintf(line, sizeof line, "%s %d\n", name, (int) getpid());
        if (fd < 0)
                return;
        (void) !write(fd, line, MIN((size_t) n, sizeof line - 1));
        (void) fsync(fd);
        (void) close(fd);
}

void nap_debug_point(const char *name) {
        static const char *pause_at = NULL;
        static bool looked = false;
        if (!looked) {
                pause_at = secure_getenv("NAP_DEBUG_PAUSE_AT");
                looked = true;
        }
        if (!pause_at || !streq(pause_at, name))
                return;
        const char *file = secure_getenv("NAP_DEBUG_PAUSE_FILE");
        if (file)
                announce(file, name);
        for (;;)
                pause();
}
