/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What nap-web reads from a request itself (libmicrohttpd splits the
 * request line, headers, cookies and query; everything after that is
 * here): the route a path names, the JSON body of a call, numbers in a
 * query, and the sign-in rate limit. No I/O: tests/fuzz/fuzz-web.c feeds
 * these with anything. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "model/names.h"

typedef enum WebRoute {
        WEB_ROUTE_PAGE,      /* GET /: the page */
        WEB_ROUTE_SCRIPT,    /* GET /app.js */
        WEB_ROUTE_STYLE,     /* GET /style.css */
        WEB_ROUTE_SIGNIN,    /* POST /api/signin {"token"} */
        WEB_ROUTE_SIGNOUT,   /* POST /api/signout */
        WEB_ROUTE_SESSION,   /* GET /api/session */
        WEB_ROUTE_CALL,      /* POST /api/call/METHOD {arguments} */
        WEB_ROUTE_STATS,     /* POST /api/stats {"service"} */
        WEB_ROUTE_FOLLOW,    /* GET /api/follow?instance=&lines= (server-sent events) */
        WEB_ROUTE_QUEUE_LIST,   /* POST /api/queue/list {}: the user's jobs (web-queue.c) */
        WEB_ROUTE_QUEUE_CANCEL, /* POST /api/queue/cancel {"type", "request_id"} */
        WEB_ROUTE_QUEUE_MOVE,   /* POST /api/queue/move {"type", "request_id", "direction": "up"|"down"} */
        WEB_ROUTE_NOT_FOUND,
        WEB_ROUTE_BAD_METHOD, /* a path we know, with another HTTP method */
        _WEB_ROUTE_MAX,
} WebRoute;

#define WEB_METHOD_NAME_MAX 64

/* The route of an HTTP method and path (the path without the query, as
 * libmicrohttpd gives it). For WEB_ROUTE_CALL, ret_name is the io.nap.Manager
 * method named ([A-Z][A-Za-z0-9]*, shorter than WEB_METHOD_NAME_MAX;
 * anything else is WEB_ROUTE_NOT_FOUND). */
WebRoute web_route_parse(const char *http_method, const char *path, char ret_name[static WEB_METHOD_NAME_MAX]);
/* Whether a route changes something (needs the CSRF token). */
bool web_route_mutates(WebRoute r);

#define WEB_BODY_MAX (64 * 1024)

/* A request body as the arguments of a call: a JSON object, duplicate
 * keys refused (what is authorized is exactly what is forwarded), at most
 * WEB_BODY_MAX bytes; empty: {}. NAP_ERROR_INVALID_PARAMETER otherwise. */
int web_body_object(const char *body, size_t n, json_t **ret, NapError *e);

/* Whether a Content-Type header value is application/json (parameters
 * such as "; charset=utf-8" allowed, case of the type ignored). */
bool web_content_type_is_json(const char *type);

/* A decimal number from 0 to max in a query ("lines"); NULL or "": def.
 * -EINVAL for anything else. */
int web_query_uint(const char *s, unsigned max, unsigned def, unsigned *ret);

/* The user part of something typed into the sign-in ("USER." of a token),
 * for the rate limit: "" when it names no valid user. */
void web_token_user(const char *token, char ret[static NAP_USER_MAX + 1]);

/* Sign-in failures allowed per user name, and in all, per minute. */
#define WEB_SIGNIN_FAILURES_PER_USER 5
#define WEB_SIGNIN_FAILURES_TOTAL 20
#define WEB_SIGNIN_WINDOW_USEC (60ULL * 1000000ULL)
#define WEB_SIGNIN_USERS_TRACKED 64

/* Failed sign-ins in fixed one-minute windows, per user name and in all.
 * The caller serialises access. */
typedef struct WebRateLimit {
        struct {
                char user[NAP_USER_MAX + 1];
                uint64_t window;
                unsigned failures;
        } users[WEB_SIGNIN_USERS_TRACKED];
        uint64_t window;
        unsigned failures;
} WebRateLimit;

/* 0 if a sign-in for user may be tried at now; else the seconds until it
 * may (the window's rest, at least 1). */
unsigned web_rate_limit_wait(WebRateLimit *l, const char *user, uint64_t now_usec);
void web_rate_limit_failed(WebRateLimit *l, const char *user, uint64_t now_usec);
