/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/debug-point.h"
#include "base/macro.h"

static volatile sig_atomic_t resumed;

static void on_resume(int sig) {
        (void) sig;
        resumed = 1;
}

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

/* Until SIGUSR1 (blocked from before the announcement, so that one sent
 * at once is not lost); then as before it. */
static void wait_resumed(const char *file, const char *name) {
        struct sigaction resume = { .sa_handler = on_resume }, old_action;
        sigset_t usr1, old_mask;
        sigemptyset(&usr1);
        sigaddset(&usr1, SIGUSR1);
        resumed = 0;
        (void) sigprocmask(SIG_BLOCK, &usr1, &old_mask);
        (void) sigaction(SIGUSR1, &resume, &old_action);
        if (file)
                announce(file, name);
        sigset_t waiting = old_mask;
        sigdelset(&waiting, SIGUSR1);
        while (!resumed)
                (void) sigsuspend(&waiting);
        (void) sigaction(SIGUSR1, &old_action, NULL);
        (void) sigprocmask(SIG_SETMASK, &old_mask, NULL);
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
        wait_resumed(secure_getenv("NAP_DEBUG_PAUSE_FILE"), name);
}
