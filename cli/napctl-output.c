/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
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

char *output_with_options(const char *s, const char *opts, bool (*is_command)(const char *word, size_t n)) {
        static const char napctl[] = "napctl ";
        size_t n_opts = strlen(opts), n = strlen(s) + 1;
        const char *p;

        if (n_opts == 0)
                return strdup(s);
        for (p = s; (p = strstr(p, napctl)); p += strlen(napctl))
                n += n_opts + 1;
        char *out = malloc(n), *o = out;
        if (!out)
                return NULL;
        for (p = s; *p;) {
                const char *hit = strstr(p, napctl);
                const char *word = hit ? hit + strlen(napctl) : NULL;
                size_t len = hit ? (size_t) (word - p) : strlen(p);
                memcpy(o, p, len);
                o += len;
                p += len;
                if (word && is_command(word, strcspn(word, " ,;:)\n"))) {
                        memcpy(o, opts, n_opts);
                        o += n_opts;
                        *o++ = ' ';
                }
        }
        *o = '\0';
        return out;
}

/* word as a shell takes it back: as is, or in single quotes (a quote in
 * it as '\''). */
static int shell_word(char *buf, size_t size, const char *word) {
        size_t k = 0;
        if (word[strspn(word, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_@%+=:,./-")] == '\0')
                return snprintf(buf, size, "%s", word) < (int) size ? 0 : -ENOBUFS;
        buf[k++] = '\'';
        for (; *word; word++) {
                if (k + 6 >= size) /* room for '\'' and the closing quote */
                        return -ENOBUFS;
                if (*word == '\'') {
                        memcpy(buf + k, "'\\''", 4);
                        k += 4;
                } else
                        buf[k++] = *word;
        }
        buf[k++] = '\'';
        buf[k] = '\0';
        return 0;
}

const char *output_connection_options(bool user, bool system, bool local, const char *address, char *buf,
                                      size_t size) {
        char quoted[PATH_MAX * 4 + 3] = "";
        if (address && shell_word(quoted, sizeof quoted, address) < 0)
                return NULL;
        int k = snprintf(buf, size, "%s%s%s%s%s", user ? " --user" : "", system ? " --system" : "",
                         local ? " --no-helper" : "", address ? " --address=" : "", quoted);
        if (k < 0 || (size_t) k >= size)
                return NULL;
        return buf[0] == ' ' ? buf + 1 : buf;
}
