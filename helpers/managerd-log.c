/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Logging of nap-managerd: one line per event on stderr. Under systemd,
 * stderr is a journal stream ($JOURNAL_STREAM names it): then each line
 * starts with "<N>" so journald records its priority (SyslogLevelPrefix=)
 * and the identifier comes from the journal. On a terminal each line
 * starts with "nap-managerd: ". $SYSTEMD_LOG_LEVEL (a number or
 * emerg…debug, as systemd's tools take it) sets the threshold, default
 * info. Only main code logs; lib/ hands errors up (STYLE.md). */

#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "managerd.h"

static int log_max_level = LOG_INFO;
static bool log_to_journal = false;

static int level_from_string(const char *s) {
        static const char *const names[] = { "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug" };
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (streq(s, names[i]) || (s[0] == (char) ('0' + i) && s[1] == 0))
                        return (int) i;
        return -EINVAL;
}

/* Whether fd 2 is the stream $JOURNAL_STREAM ("DEV:INODE") names. */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;
        char c;

        if (!e || sscanf(e, "%llu:%llu%c", &dev, &ino, &c) != 2)
                return false;
        return fstat(STDERR_FILENO, &st) >= 0 && st.st_dev == dev && st.st_ino == ino;
}

void log_setup(void) {
        const char *e = getenv("SYSTEMD_LOG_LEVEL");
        int l = e ? level_from_string(e) : -EINVAL;
        if (l >= 0)
                log_max_level = l;
        log_to_journal = stderr_is_journal();
}

int log_full_errno(int level, int error, const char *format, ...) {
        int e = error < 0 ? -error : error;
        char line[2048];
        va_list ap;

        if (level <= log_max_level) {
                errno = e;
                va_start(ap, format);
                vsnprintf(line, sizeof line, format, ap);
                va_end(ap);
                if (log_to_journal)
                        fprintf(stderr, "<%d>%s\n", level, line);
                else
                        fprintf(stderr, "nap-managerd: %s\n", line);
        }
        return e > 0 ? -e : -EIO;
}
