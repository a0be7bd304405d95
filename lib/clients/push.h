/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What a post-receive hook reads on stdin: one "OLD NEW REF" line per
 * updated ref (githooks(5)). nap deploys only refs/heads/main and
 * refs/heads/master; of both pushed at once, the one HEAD names wins. */

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

#define NAP_PUSH_INPUT_MAX (64 * 1024)
#define NAP_PUSH_REF_MAX 255

typedef struct NapPush {
        char ref[NAP_PUSH_REF_MAX + 1]; /* the pushed branch nap deploys, "" when none */
        char commit[41];                /* its new commit */
        bool deleted;                   /* that branch was deleted */
        char **ignored;                 /* other refs pushed (strv), to name them */
} NapPush;

void nap_push_done(NapPush *p);

/* Parses size bytes of hook input; head is the ref HEAD names ("" if
 * unknown). -EBADMSG for a line that is not "OLD NEW REF" with 40-hex ids
 * and a ref without control characters. */
int nap_push_parse(const char *text, size_t size, const char *head, NapPush *ret, NapError *e);
