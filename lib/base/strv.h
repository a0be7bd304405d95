/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* NULL-terminated arrays of malloc'ed strings. */

#include <stdbool.h>
#include <stddef.h>

#include "base/macro.h"

char **strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);
#define _cleanup_strv_free_ _cleanup_(strv_freep)

size_t strv_length(char *const *l) _pure_;
bool strv_contains(char *const *l, const char *s) _pure_;
/* Takes ownership of v (frees it on failure). */
int strv_consume(char ***l, char *v);
/* Copies v. */
int strv_extend(char ***l, const char *v);
char **strv_copy(char *const *l);
bool strv_equal(char *const *a, char *const *b) _pure_;
/* Splits on sep (no escaping, empty fields kept); NULL on OOM. */
char **strv_split(const char *s, char sep);
/* In strcmp() order, in place; NULL is fine. */
void strv_sort(char **l);
/* Joins with sep; NULL on OOM. */
char *strv_join(char *const *l, const char *sep);

#define STRV_FOREACH(s, l) for (char *const *s = (l); s && *s; s++)
