/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdarg.h>
#include <time.h>
#include <unistd.h>

#include "base/macro.h"
#include "napctl-output.h"

static int output_dump(json_t *j, size_t flags) {
        if (!j)
                return -ENOMEM;
        int r = json_dumpf(j, stdout, flags | JSON_ENSURE_ASCII);
        json_decref(j);
        fputc('\n', stdout);
        return r < 0 ? -EIO : 0;
}

int output_json(json_t *j) {
        return output_dump(j, isatty(STDOUT_FILENO) ? JSON_INDENT(2) : JSON_COMPACT);
}

int output_json_line(json_t *j) {
        int r = output_dump(j, JSON_COMPACT);
        return fflush(stdout) == EOF ? -errno : r;
}

json_t *json_ordered(json_t *o, ...) {
        json_t *copy = json_object(), *value;
        const char *key;
        va_list ap;

        if (!copy || !json_is_object(o))
                return copy;
        va_start(ap, o);
        while ((key = va_arg(ap, const char *)))
                if ((value = json_object_get(o, key)) && json_object_set(copy, key, value) < 0)
                        copy = (json_decref(copy), NULL);
        va_end(ap);
        /* json_object_update_missing() would do, were it not for the order. */
        json_object_foreach(o, key, value)
                if (copy && !json_object_get(copy, key) && json_object_set(copy, key, value) < 0)
                        copy = (json_decref(copy), NULL);
        return copy;
}

const char *json_str(json_t *o, const char *key) {
        return strempty(json_string_value(json_object_get(o, key)));
}

json_int_t json_int(json_t *o, const char *key) {
        return json_integer_value(json_object_get(o, key));
}

const char *short_commit(const char *commit, char buf[static 13]) {
        snprintf(buf, 13, "%.12s", strempty(commit));
        return buf;
}

const char *output_time(uint64_t usec, char buf[static 32]) {
        time_t t = (time_t) (usec / 1000000);
        struct tm tm;
        if (usec == 0 || !localtime_r(&t, &tm) || strftime(buf, 32, "%Y-%m-%d %H:%M:%S", &tm) == 0)
                return "-";
        return buf;
}

/* RFC 3339 local time: the offset as +HH:MM, which %z writes as +HHMM. */
static const char *format_rfc3339(json_int_t usec, char when[static 64]) {
        time_t t = (time_t) (usec / 1000000);
        struct tm tm;
        snprintf(when, 64, "-");
        if (!localtime_r(&t, &tm))
                return when;
        size_t n = strftime(when, 64, "%Y-%m-%dT%H:%M:%S%z", &tm);
        if (n >= 5 && n + 2 <= 64) {
                memmove(when + n - 1, when + n - 2, 3);
                when[n - 2] = ':';
        }
        return when;
}

void output_journal_entry(json_t *entry) {
        const char *ident = json_string_value(json_object_get(entry, "identifier"));
        json_int_t pid = json_int(entry, "pid");
        char when[64];

        format_rfc3339(json_int(entry, "time"), when);
        if (pid > 0)
                printf("%s %s[%lld]: %s\n", when, ident ?: "-", (long long) pid, json_str(entry, "message"));
        else
                printf("%s %s: %s\n", when, ident ?: "-", json_str(entry, "message"));
}

/* etcd down never fails an operation; say what is not published yet. */
void output_warn_pending(json_t *reply, const char *what) {
        const char *why = json_string_value(json_object_get(reply, "etcdError"));
        if (streq(json_str(reply, "etcd"), "pending"))
                fprintf(stderr, "napctl: publishing %s to etcd is pending (%s); the next deploy-app or "
                        "start-common writes it\n", what, why ?: "etcd unreachable");
}
