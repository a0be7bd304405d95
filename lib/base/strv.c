/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>

#include "base/strv.h"

char **strv_free(char **l) {
        STRV_FOREACH(s, l)
                free(*s);
        free(l);
        return NULL;
}

size_t strv_length(char *const *l) {
        size_t n = 0;
        STRV_FOREACH(s, l)
                n++;
        return n;
}

bool strv_contains(char *const *l, const char *s) {
        assert(s);

        STRV_FOREACH(i, l)
                if (streq(*i, s))
                        return true;
        return false;
}

int strv_consume(char ***l, char *v) {
        assert(l);

        if (!v)
                return -ENOMEM;
        size_t n = strv_length(*l);
        char **c = realloc(*l, sizeof(char *) * (n + 2));
        if (!c) {
                free(v);
                return -ENOMEM;
        }
        c[n] = v;
        c[n + 1] = NULL;
        *l = c;
        return 0;
}

int strv_extend(char ***l, const char *v) {
        assert(l);
        assert(v);

        return strv_consume(l, strdup(v));
}

char **strv_copy(char *const *l) {
        char **c = calloc(strv_length(l) + 1, sizeof(char *));
        if (!c)
                return NULL;
        size_t i = 0;
        STRV_FOREACH(s, l) {
                c[i] = strdup(*s);
                if (!c[i])
                        return strv_free(c);
                i++;
        }
        return c;
}

bool strv_equal(char *const *a, char *const *b) {
        for (;; a++, b++) {
                if (!a || !*a || !b || !*b)
                        return (!a || !*a) && (!b || !*b);
                if (!streq(*a, *b))
                        return false;
        }
}

char **strv_split(const char *s, char sep) {
        assert(s);

        _cleanup_strv_free_ char **l = calloc(1, sizeof(char *));
        if (!l)
                return NULL;
        for (const char *p = s;;) {
                const char *end = strchr(p, sep);
                size_t n = end ? (size_t) (end - p) : strlen(p);
                if (strv_consume(&l, strndup(p, n)) < 0)
                        return NULL;
                if (!end)
                        break;
                p = end + 1;
        }
        return TAKE_PTR(l);
}

char *strv_join(char *const *l, const char *sep) {
        assert(sep);

        size_t n = 1, k = strlen(sep);
        STRV_FOREACH(s, l)
                n += strlen(*s) + k;
        char *r = malloc(n), *p = r;
        if (!r)
                return NULL;
        *p = 0;
        STRV_FOREACH(s, l) {
                if (s != l)
                        p = stpcpy(p, sep);
                p = stpcpy(p, *s);
        }
        return r;
}

static int cmp_string(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

void strv_sort(char **l) {
        size_t n = strv_length(l);
        if (n > 1)
                qsort(l, n, sizeof *l, cmp_string);
}
