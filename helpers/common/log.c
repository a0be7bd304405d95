/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Logging of nap's helpers: one line per event on stderr. Under systemd,
 * stderr is a journal stream ($JOURNAL_STREAM names it): each line then
 * starts with "<N>" so journald records its priority (SyslogLevelPrefix=
 * is on by default) and the unit names the source. Elsewhere each line
 * starts with the program's name. $SYSTEMD_LOG_LEVEL (a number or
 * emerg…debug, as systemd's tools take it) sets the threshold, default
 * info. */

#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include <errno.h>

#include "../common/log.h"

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

bool log_level_enabled(int level) {
        return level <= log_max_level;
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
                        fprintf(stderr, "%s: %s\n", program_invocation_short_name, line);
        }
        return e > 0 ? -e : -EIO;
}
