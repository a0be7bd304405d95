/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/macro.h"
#include "clients/http.h"
#include "cluster/queue-client.h"

/* The answer's "data" (a new reference), or its error into e. */
static int answer_data(const NapHttpAnswer *a, json_t **ret, NapError *e) {
        json_t *o = json_loadb(a->body, a->size, 0, NULL);
        int r = 0;
        if (!json_is_object(o))
                r = nap_error_set(e, NAP_ERROR_INTERNAL, -EBADMSG, "nap-queued answered HTTP %ld without JSON",
                                  a->status);
        else if (!json_is_true(json_object_get(o, "ok"))) {
                NapErrorKind k = nap_error_kind_from_string(json_string_value(json_object_get(o, "kind")));
                const char *why = json_string_value(json_object_get(o, "error"));
                r = nap_error_set(e, k < 0 ? NAP_ERROR_INTERNAL : k, -EIO, "%s", why ?: "nap-queued failed");
        } else
                *ret = json_incref(json_object_get(o, "data"));
        json_decref(o);
        return r;
}

int nap_queue_client_call(const char *socket, const char *method, const char *path, json_t *body, json_t **ret,
                          NapError *e) {
        _cleanup_free_ char *url = NULL, *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
        char *headers[] = { (char *) "Content-Type: application/json", NULL };
        NapHttpAnswer a = {};
        json_decref(body);
        if ((body && !text) || asprintf(&url, "http://localhost/v1/%s", path) < 0)
                return nap_error_errno(e, -ENOMEM, "Out of memory");
        NapHttpRequest q = { .method = method, .url = url, .unix_socket = socket, .body = text,
                             .body_size = text ? strlen(text) : 0, .headers = headers, .timeout_usec = 60000000,
                             .max_answer = 256 * 1024 * 1024 };
        int r = nap_http_request(&q, &a, e);
        if (r < 0) {
                nap_error_prefix(e, "nap-queued on %s", socket);
                return r;
        }
        r = answer_data(&a, ret, e);
        nap_http_answer_done(&a);
        return r;
}
