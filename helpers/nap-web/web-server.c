/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The HTTP side: one handler for every request, which reads the body
 * (bounded), finds the route and hands the request to it; the page's
 * files, compiled in; responses with the headers every answer carries. */

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.js.h"
#include "index.html.h"
#include "../common/log.h"
#include "style.css.h"
#include "web-server.h"

uint64_t web_now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

/* ---- responses --------------------------------------------------------- */

/* The page loads only its own script and style, is never framed, and
 * sends no Referer: a log line or an app name cannot pull anything in. */
static const char *const security_headers[][2] = {
        { "Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                     "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'" },
        { "X-Content-Type-Options", "nosniff" },
        { "X-Frame-Options", "DENY" },
        { "Referrer-Policy", "no-referrer" },
        { "Cache-Control", "no-store" },
};

enum MHD_Result web_respond(WebRequest *r, unsigned status, const char *type, const char *body, size_t n,
                            const char *set_cookie) {
        struct MHD_Response *response = MHD_create_response_from_buffer(n, (void *) body, MHD_RESPMEM_MUST_COPY);
        if (!response)
                return MHD_NO;
        for (size_t i = 0; i < ELEMENTSOF(security_headers); i++)
                (void) MHD_add_response_header(response, security_headers[i][0], security_headers[i][1]);
        (void) MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
        if (set_cookie)
                (void) MHD_add_response_header(response, MHD_HTTP_HEADER_SET_COOKIE, set_cookie);
        enum MHD_Result ret = MHD_queue_response(r->connection, status, response);
        MHD_destroy_response(response);
        return ret;
}

enum MHD_Result web_respond_json(WebRequest *r, unsigned status, json_t *body, const char *set_cookie) {
        _cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
        json_decref(body);
        if (!text)
                return web_respond(r, 500, "text/plain; charset=utf-8", "out of memory\n", 14, NULL);
        return web_respond(r, status, "application/json", text, strlen(text), set_cookie);
}

unsigned web_error_status(NapErrorKind k) {
        switch (k) {
        case NAP_ERROR_INVALID_NAME:
        case NAP_ERROR_INVALID_PARAMETER:
        case NAP_ERROR_INVALID_PROFILE:
                return 400;
        case NAP_ERROR_PERMISSION_DENIED:
                return 403;
        case NAP_ERROR_NO_SUCH_SERVICE:
        case NAP_ERROR_NO_SUCH_INSTANCE:
        case NAP_ERROR_NO_SUCH_NODE:
        case NAP_ERROR_NO_SUCH_RESERVATION:
        case NAP_ERROR_NO_SUCH_JOB:
                return 404;
        case NAP_ERROR_RESERVATION_EXISTS:
        case NAP_ERROR_JOB_EXISTS:
        case NAP_ERROR_NODE_IN_USE:
        case NAP_ERROR_INSUFFICIENT_RESOURCES:
        case NAP_ERROR_NO_FREE_PORT:
                return 409;
        case NAP_ERROR_NOT_AVAILABLE:
        case NAP_ERROR_TOO_MANY_CONNECTIONS:
                return 503;
        case NAP_ERROR_NODE_UNREACHABLE:
        case NAP_ERROR_CLUSTER_AUTH_FAILED:
                return 502;
        case NAP_ERROR_FETCH_FAILED:
        case NAP_ERROR_UNIT_FAILED:
                return 502;
        default:
                return 500;
        }
}

enum MHD_Result web_respond_error_status(WebRequest *r, unsigned status, const NapError *e) {
        char name[128];
        snprintf(name, sizeof name, "io.nap.Manager.%s", nap_error_kind_to_string(e->kind) ?: "Internal");
        return web_respond_json(r, status,
                                json_pack("{s:s, s:s, s:s*}", "error", name, "message", e->message, "parameter",
                                          e->parameter[0] ? e->parameter : NULL),
                                NULL);
}

enum MHD_Result web_respond_error(WebRequest *r, const NapError *e) {
        return web_respond_error_status(r, web_error_status(e->kind), e);
}

/* ---- routing ----------------------------------------------------------- */

static enum MHD_Result respond_asset(WebRequest *r, const char *type, const char *text) {
        return web_respond(r, 200, type, text, strlen(text), NULL);
}

static enum MHD_Result respond_route(WebRequest *r) {
        NapError e = NAP_ERROR_NULL;
        switch (r->route) {
        case WEB_ROUTE_PAGE:
                return respond_asset(r, "text/html; charset=utf-8", web_asset_index_html);
        case WEB_ROUTE_SCRIPT:
                return respond_asset(r, "text/javascript; charset=utf-8", web_asset_app_js);
        case WEB_ROUTE_STYLE:
                return respond_asset(r, "text/css; charset=utf-8", web_asset_style_css);
        case WEB_ROUTE_SIGNIN:
                return web_route_signin(r);
        case WEB_ROUTE_SIGNOUT:
                return web_route_signout(r);
        case WEB_ROUTE_SESSION:
                return web_route_session(r);
        case WEB_ROUTE_CALL:
                return web_route_call(r);
        case WEB_ROUTE_STATS:
                return web_route_stats(r);
        case WEB_ROUTE_FOLLOW:
                return web_route_follow(r);
        case WEB_ROUTE_QUEUE_LIST:
                return web_route_queue_list(r);
        case WEB_ROUTE_QUEUE_CANCEL:
                return web_route_queue_cancel(r);
        case WEB_ROUTE_QUEUE_MOVE:
                return web_route_queue_move(r);
        case WEB_ROUTE_BAD_METHOD:
                nap_error_set(&e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "This path does not take that HTTP method");
                return web_respond_error_status(r, 405, &e);
        default:
                nap_error_set(&e, NAP_ERROR_NOT_AVAILABLE, -ENOENT, "Nothing here");
                return web_respond_error_status(r, 404, &e);
        }
}

static WebRequest *request_new(WebContext *c, struct MHD_Connection *connection, const char *url,
                               const char *http_method) {
        WebRequest *r = calloc(1, sizeof *r);
        if (!r)
                return NULL;
        r->context = c;
        r->connection = connection;
        r->route = web_route_parse(http_method, url, r->method);
        return r;
}

/* Appends a piece of the body; past WEB_BODY_MAX the rest is dropped and
 * the request refused once it has been read. */
static void request_append(WebRequest *r, const char *data, size_t n) {
        if (r->body_too_big || r->body_size + n > WEB_BODY_MAX) {
                r->body_too_big = true;
                return;
        }
        char *b = realloc(r->body, r->body_size + n + 1);
        if (!b) {
                r->body_too_big = true;
                return;
        }
        memcpy(b + r->body_size, data, n);
        r->body_size += n;
        b[r->body_size] = '\0';
        r->body = b;
}

enum MHD_Result web_handle(void *cls, struct MHD_Connection *connection, const char *url, const char *http_method,
                           const char *version, const char *upload_data, size_t *upload_data_size, void **state) {
        WebContext *c = cls;
        WebRequest *r = *state;

        atomic_store(&c->last_activity_usec, web_now_usec());
        if (!r) {
                *state = r = request_new(c, connection, url, http_method);
                return r ? MHD_YES : MHD_NO;
        }
        if (*upload_data_size > 0) {
                request_append(r, upload_data, *upload_data_size);
                *upload_data_size = 0;
                return MHD_YES;
        }
        if (r->body_too_big) {
                NapError e = NAP_ERROR_NULL;
                nap_error_set(&e, NAP_ERROR_INVALID_PARAMETER, -E2BIG, "The request is larger than %u bytes",
                              WEB_BODY_MAX);
                return web_respond_error_status(r, 413, &e);
        }
        return respond_route(r);
}

void web_request_completed(void *cls, struct MHD_Connection *connection, void **state,
                           enum MHD_RequestTerminationCode toe) {
        WebRequest *r = *state;
        if (!r)
                return;
        free(r->body);
        free(r);
        *state = NULL;
}

void web_connection_notify(void *cls, struct MHD_Connection *connection, void **socket_context,
                           enum MHD_ConnectionNotificationCode toe) {
        WebContext *c = cls;
        if (toe == MHD_CONNECTION_NOTIFY_STARTED)
                atomic_fetch_add(&c->connections, 1);
        else
                atomic_fetch_sub(&c->connections, 1);
        atomic_store(&c->last_activity_usec, web_now_usec());
}
