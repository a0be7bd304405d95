/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "daemon.h"
#include "nap-config.h"
#include "log.h"

int daemon_signals_setup(bool children) {
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (children)
                sigaddset(&mask, SIGCHLD);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Failed to block signals: %m");
        (void) signal(SIGPIPE, SIG_IGN);
        return 0;
}

int daemon_parse_seconds(const char *s, long long min, long long max, long long *ret) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno != 0 || end == s || *end || *s < '0' || *s > '9' || v < min || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

void daemon_answer_help_or_version(int c, const char *program, void (*help)(void)) {
        if (c == 'h')
                help();
        else
                printf("%s %s\n", program, NAP_VERSION);
}
