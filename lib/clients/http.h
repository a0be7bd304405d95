/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One HTTP request with libcurl (dlopen()ed, lib/base/dlopen.h): the
 * queue's callbacks (lib/cluster/callback.c) and napctl's queue verbs
 * (over nap-queued's Unix socket) both go through it. http:// and
 * https:// only, no redirects followed, bounded in time and in the size of
 * the answer kept. Never logs. */

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct NapHttpRequest {
        const char *method;       /* NULL: GET, or POST with a body */
        const char *url;
        const char *unix_socket;  /* NULL: TCP to the URL's host */
        const char *body;         /* NULL: none */
        size_t body_size;
        char *const *headers;     /* "Name: value", NULL-terminated; NULL: none */
        uint64_t timeout_usec;    /* the whole request and its connect; 0: 10 s */
        size_t max_answer;        /* bytes of the answer kept; 0: 1 MiB; beyond: -EMSGSIZE */
} NapHttpRequest;

typedef struct NapHttpAnswer {
        long status;
        char *body;               /* NUL-terminated; "" when none */
        size_t size;
} NapHttpAnswer;

void nap_http_answer_done(NapHttpAnswer *a);

/* 0 and *ret filled when an answer came (whatever its status); else
 * NotAvailable with libcurl's reason (-EIO), or -ENOMEM, -EMSGSIZE. */
int nap_http_request(const NapHttpRequest *q, NapHttpAnswer *ret, NapError *e);
