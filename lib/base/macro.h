/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Small helpers used all over nap: cleanup attributes and ownership
 * transfer. Destructors accept NULL and return NULL. */

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _sentinel_ __attribute__((sentinel))
#define _unused_ __attribute__((unused))
#define _pure_ __attribute__((pure))
#define _warn_unused_result_ __attribute__((warn_unused_result))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define streq(a, b) (strcmp((a), (b)) == 0)
#define strneq(a, b, n) (strncmp((a), (b), (n)) == 0)
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Hand the value over and leave NULL (or -1) behind, so the cleanup
 * handler of the source variable does nothing. */
#define TAKE_PTR(p)                             \
        ({                                      \
                __typeof__(p) _take_ = (p);     \
                (p) = NULL;                     \
                _take_;                         \
        })
#define TAKE_FD(fd)                             \
        ({                                      \
                int _take_fd_ = (fd);           \
                (fd) = -1;                      \
                _take_fd_;                      \
        })

#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func) \
        static inline void func##p(type *p) {   \
                if (*p)                         \
                        func(*p);               \
        }

/* name_ref()/name_unref() for a type with an n_ref counter, freed by
 * free_func when the last reference goes. */
#define DEFINE_REF_UNREF_FUNC(type, name, free_func)    \
        type *name##_ref(type *p) {                     \
                if (p)                                  \
                        p->n_ref++;                     \
                return p;                               \
        }                                               \
        type *name##_unref(type *p) {                   \
                if (!p || --p->n_ref > 0)               \
                        return NULL;                    \
                return free_func(p);                    \
        }

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                close(fd);
                errno = saved;
        }
        return -1;
}
static inline void closep(int *fd) {
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

static inline void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}
#define _cleanup_closedir_ _cleanup_(closedirp)

/* errno as a negative return value; never 0, so callers can rely on r < 0. */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}

static inline bool isempty(const char *s) {
        return !s || !*s;
}

/* Both set and equal. */
static inline bool streq_ptr(const char *a, const char *b) {
        return a && b && streq(a, b);
}

static inline const char *strempty(const char *s) {
        return s ?: "";
}

static inline const char *startswith(const char *s, const char *prefix) {
        size_t l = strlen(prefix);
        return strncmp(s, prefix, l) == 0 ? s + l : NULL;
}

/* The index of s in a table of names indexed by an enum (NULL entries never
 * match), or -EINVAL, the enums' _INVALID: every *_from_string(). */
static inline int string_table_lookup(const char *const *table, size_t n, const char *s) {
        for (size_t i = 0; s && i < n; i++)
                if (table[i] && streq(table[i], s))
                        return (int) i;
        return -EINVAL;
}

/* Where suffix starts in s, or NULL. */
static inline const char *endswith(const char *s, const char *suffix) {
        size_t l = strlen(s), k = strlen(suffix);
        return l >= k && memcmp(s + l - k, suffix, k) == 0 ? s + l - k : NULL;
}
