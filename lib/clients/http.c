/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdlib.h>
#include <string.h>

#include "base/dlopen.h"
#include "clients/curl-connect.h"
#include "clients/http.h"

#define USEC_PER_MSEC 1000ULL

void nap_http_answer_done(NapHttpAnswer *a) {
        if (!a)
                return;
        free(a->body);
        a->body = NULL;
        a->size = 0;
}

typedef struct Sink {
        char *data;
        size_t size, max;
        bool too_big;
} Sink;

static size_t sink_write(char *p, size_t size, size_t n, void *userdata) {
        Sink *s = userdata;
        size_t k = size * n;
        if (s->size + k > s->max) {
                s->too_big = true;
                return 0; /* stops the transfer */
        }
        char *d = realloc(s->data, s->size + k + 1);
        if (!d)
                return 0;
        memcpy(d + s->size, p, k);
        s->size += k;
        d[s->size] = 0;
        s->data = d;
        return k;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(CURL *, sym_curl_easy_cleanup);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct curl_slist *, sym_curl_slist_free_all);

static int headers_build(char *const *headers, struct curl_slist **ret) {
        struct curl_slist *l = sym_curl_slist_append(NULL, "Expect:");
        for (char *const *h = headers; l && h && *h; h++) {
                struct curl_slist *n = sym_curl_slist_append(l, *h);
                if (!n)
                        sym_curl_slist_free_all(l);
                l = n;
        }
        *ret = l;
        return l ? 0 : -ENOMEM;
}

static int setup(CURL *h, const NapHttpRequest *q, NapCurlBroker **broker, struct curl_slist *headers, Sink *sink,
                 char *errbuf) {
        long ms = (long) ((q->timeout_usec ?: 10000 * USEC_PER_MSEC) / USEC_PER_MSEC);
        bool ok = sym_curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
                  sym_curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
                  sym_curl_easy_setopt(h, CURLOPT_URL, q->url) == CURLE_OK &&
                  sym_curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers) == CURLE_OK &&
                  sym_curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) == CURLE_OK &&
                  sym_curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_write) == CURLE_OK &&
                  sym_curl_easy_setopt(h, CURLOPT_WRITEDATA, sink) == CURLE_OK &&
                  sym_curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ms) == CURLE_OK &&
                  sym_curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ms) == CURLE_OK;
        if (ok && q->unix_socket)
                ok = sym_curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, q->unix_socket) == CURLE_OK;
        else if (ok)
                ok = nap_curl_connect_through_broker(h, broker, ms) >= 0;
        if (ok && q->body)
                ok = sym_curl_easy_setopt(h, CURLOPT_POSTFIELDS, q->body) == CURLE_OK &&
                     sym_curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) q->body_size) == CURLE_OK;
        if (ok && q->method)
                ok = sym_curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method) == CURLE_OK;
        return ok ? 0 : -EIO;
}

int nap_http_request(const NapHttpRequest *q, NapHttpAnswer *ret, NapError *e) {
        char errbuf[CURL_ERROR_SIZE] = "";
        Sink sink = { .max = q->max_answer ?: 1024 * 1024 };
        _cleanup_(sym_curl_slist_free_allp) struct curl_slist *headers = NULL;
        int r = nap_dlopen_libcurl(e);
        if (r < 0)
                return r;
        _cleanup_(nap_curl_broker_freep) NapCurlBroker *broker = NULL; /* freed after h */
        _cleanup_(sym_curl_easy_cleanupp) CURL *h = sym_curl_easy_init();
        if (!h || headers_build(q->headers, &headers) < 0)
                return nap_error_errno(e, -ENOMEM, "Out of memory");
        if (setup(h, q, &broker, headers, &sink, errbuf) < 0)
                return nap_error_set(e, NAP_ERROR_INTERNAL, -EIO, "Cannot set up libcurl");
        CURLcode code = sym_curl_easy_perform(h);
        if (sink.too_big) {
                free(sink.data);
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -EMSGSIZE, "The answer of %s is larger than %zu bytes",
                                     q->url, sink.max);
        }
        if (code != CURLE_OK) {
                free(sink.data);
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -EIO, "%s", nap_curl_failure(broker, code, errbuf));
        }
        *ret = (NapHttpAnswer) { .body = sink.data ?: strdup(""), .size = sink.size };
        (void) sym_curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &ret->status);
        return ret->body ? 0 : nap_error_errno(e, -ENOMEM, "Out of memory");
}
