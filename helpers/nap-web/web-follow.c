/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* An instance's log, live: GetJournal called with "more" on nap-managerd
 * (which follows the journal for it, as for napctl get-journal -f) and
 * each reply sent on as a server-sent event ("data: {entries…}"). The
 * connection's thread waits on the varlink socket; a comment line every
 * KEEPALIVE_USEC notices a page that went away, and closing the varlink
 * connection then ends the follow in nap-managerd. */

#include <stdlib.h>
#include <string.h>

#include "ops/methods.h"
#include "protocol/varlink.h"
#include "web.h"

#define KEEPALIVE_USEC (15ULL * 1000000ULL)
#define FOLLOW_LINES_MAX 1000
#define PENDING_MAX (1024 * 1024)

typedef struct Follow {
        Varlink *link;
        char *pending; /* events not yet handed to libmicrohttpd */
        size_t size, sent;
        bool ended;
} Follow;

static void follow_free(void *cls) {
        Follow *f = cls;
        varlink_unref(f->link);
        free(f->pending);
        free(f);
}

static void follow_append(Follow *f, const char *a, const char *b, const char *c) {
        size_t n = strlen(a) + strlen(b) + strlen(c);
        if (f->size - f->sent + n > PENDING_MAX) { /* a reader that does not read */
                f->ended = true;
                return;
        }
        char *p = realloc(f->pending, f->size + n + 1);
        if (!p) {
                f->ended = true;
                return;
        }
        snprintf(p + f->size, n + 1, "%s%s%s", a, b, c);
        f->pending = p;
        f->size += n;
}

static int on_reply(Varlink *link, json_t *parameters, const char *error_id, VarlinkReplyFlags flags,
                    void *userdata) {
        Follow *f = userdata;
        _cleanup_free_ char *text = NULL;
        if (error_id) {
                json_t *j = json_pack("{s:s, s:O?}", "error", error_id, "message", json_object_get(parameters, "message"));
                text = j ? json_dumps(j, JSON_COMPACT) : NULL;
                json_decref(j);
                follow_append(f, "event: error\ndata: ", text ?: "{}", "\n\n");
                f->ended = true;
                return 0;
        }
        text = json_dumps(parameters, JSON_COMPACT); /* one line: newlines in strings are escaped */
        follow_append(f, "data: ", text ?: "{}", "\n\n");
        if (!(flags & VARLINK_REPLY_CONTINUES))
                f->ended = true;
        return 0;
}

/* Hands out what is pending; waits for the next reply when nothing is. */
static ssize_t follow_read(void *cls, uint64_t pos, char *buf, size_t max) {
        Follow *f = cls;
        for (;;) {
                if (f->sent < f->size) {
                        size_t n = MIN(max, f->size - f->sent);
                        memcpy(buf, f->pending + f->sent, n);
                        f->sent += n;
                        if (f->sent == f->size)
                                f->sent = f->size = 0;
                        return (ssize_t) n;
                }
                if (f->ended)
                        return MHD_CONTENT_READER_END_OF_STREAM;
                int r = varlink_process(f->link);
                if (r > 0)
                        continue;
                if (r < 0) {
                        follow_append(f, "event: error\ndata: ",
                                      "{\"error\":\"io.nap.Manager.Internal\",\"message\":\"nap-managerd closed the log\"}",
                                      "\n\n");
                        f->ended = true;
                        continue;
                }
                r = varlink_wait(f->link, KEEPALIVE_USEC);
                if (r < 0)
                        f->ended = true;
                else if (r == 0)
                        follow_append(f, ": still following\n\n", "", "");
        }
}

static int follow_start(WebRequest *r, json_t *args, Follow **ret, NapError *e) {
        const NapMethod *m = nap_method_find("GetJournal");
        _cleanup_free_ Follow *f = calloc(1, sizeof *f);
        if (!f)
                return nap_error_errno(e, -ENOMEM, "Failed to follow the log");
        int k = nap_method_authorize(m, r->uid, args, e);
        if (k < 0)
                return k;
        k = varlink_connect_address(&f->link, r->context->manager_address);
        if (k < 0)
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, k, "nap-managerd is not listening on %s: %s",
                                     r->context->manager_address, strerror(-k));
        varlink_set_userdata(f->link, f);
        (void) varlink_set_relative_timeout(f->link, VARLINK_TIMEOUT_INFINITY);
        k = varlink_bind_reply(f->link, on_reply);
        if (k >= 0)
                k = varlink_observe(f->link, NAP_MANAGER_INTERFACE ".GetJournal", args);
        if (k < 0) {
                varlink_unref(f->link);
                return nap_error_errno(e, k, "Failed to follow the log");
        }
        *ret = TAKE_PTR(f);
        return 0;
}

enum MHD_Result web_route_follow(WebRequest *r) {
        NapError e = NAP_ERROR_NULL;
        unsigned lines;
        Follow *f = NULL;
        if (web_authenticate(r, &e) < 0)
                return web_respond_unauthenticated(r, &e);
        const char *instance = MHD_lookup_connection_value(r->connection, MHD_GET_ARGUMENT_KIND, "instance");
        if (web_query_uint(MHD_lookup_connection_value(r->connection, MHD_GET_ARGUMENT_KIND, "lines"),
                           FOLLOW_LINES_MAX, 10, &lines) < 0) {
                nap_error_set(&e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "lines must be a number from 0 to %u",
                              FOLLOW_LINES_MAX);
                nap_error_parameter(&e, 0, "lines");
                return web_respond_error(r, &e);
        }
        json_auto_t *args = json_pack("{s:s?, s:I}", "instance", instance, "lines", (json_int_t) lines);
        if (!args || follow_start(r, args, &f, &e) < 0)
                return web_respond_error(r, &e);
        struct MHD_Response *response = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, follow_read, f,
                                                                          follow_free);
        if (!response) {
                follow_free(f);
                return MHD_NO;
        }
        (void) MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        (void) MHD_add_response_header(response, "Cache-Control", "no-store");
        (void) MHD_add_response_header(response, "X-Accel-Buffering", "no"); /* nginx: pass each event on */
        enum MHD_Result ret = MHD_queue_response(r->connection, 200, response);
        MHD_destroy_response(response);
        return ret;
}
