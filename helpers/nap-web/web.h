/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* nap-web's shared state and the parts of a request every route uses.
 * One WebContext per process, read-only once the server runs, except the
 * sign-in rate limit (under lock) and the activity counters (atomics).
 * libmicrohttpd runs each connection in a thread of its own, so a route
 * may block: a call forwarded to nap-managerd waits for its answer there. */

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#include "model/config.h"
#include "model/web-auth.h"
#include "web-request.h"

typedef struct WebContext {
        NapConfig *config;
        NapWebKey key;
        char *manager_address;   /* nap-managerd's varlink socket */
        char *queue_address;     /* nap-queued's Unix socket (web-queue.c) */
        char **queue_types;      /* --queue-types=: the queues the queue page lists */
        char *node;              /* this host's node name (nap_config_node()), NULL if none */
        bool secure_cookies;     /* --secure-cookies: behind a TLS proxy */
        uint64_t session_sec;    /* a session's lifetime */
        pthread_mutex_t limit_lock;
        WebRateLimit limit;
        atomic_uint connections; /* open HTTP connections */
        atomic_uint_fast64_t last_activity_usec;
} WebContext;

/* A request whose body has been read; user/uid once signed in. */
typedef struct WebRequest {
        WebContext *context;
        struct MHD_Connection *connection;
        WebRoute route;
        char method[WEB_METHOD_NAME_MAX]; /* WEB_ROUTE_CALL */
        char *body;
        size_t body_size;
        bool body_too_big;
        char user[NAP_USER_MAX + 1];
        uid_t uid;
        const char *session; /* the cookie value, borrowed from the connection */
} WebRequest;

#define WEB_SESSION_COOKIE "nap_session"
#define WEB_CSRF_HEADER "X-CSRF-Token"

uint64_t web_now_usec(void);

/* ---- responses (web-server.c) ---- */
enum MHD_Result web_respond(WebRequest *r, unsigned status, const char *type, const char *body, size_t n,
                            const char *set_cookie);
/* A JSON body (taken). */
enum MHD_Result web_respond_json(WebRequest *r, unsigned status, json_t *body, const char *set_cookie);
/* {"error": "io.nap.Manager.<Kind>", "message": …, "parameter"?: …} with
 * the status that kind maps to (web_error_status()). */
enum MHD_Result web_respond_error(WebRequest *r, const NapError *e);
/* The same with another status (404 and 405 of a path, 413). */
enum MHD_Result web_respond_error_status(WebRequest *r, unsigned status, const NapError *e);
unsigned web_error_status(NapErrorKind k);
/* For a failed web_authenticate(): not signed in or a forged request is
 * 401 (PermissionDenied); anything else as web_respond_error(). */
enum MHD_Result web_respond_unauthenticated(WebRequest *r, const NapError *e);

/* ---- sessions and calls (web-api.c) ---- */
/* The signed-in user of the request (r->user, r->uid): 0, or -EACCES
 * with e set. Mutating routes also need the CSRF header. */
int web_authenticate(WebRequest *r, NapError *e);
enum MHD_Result web_route_signin(WebRequest *r);
enum MHD_Result web_route_signout(WebRequest *r);
enum MHD_Result web_route_session(WebRequest *r);
enum MHD_Result web_route_call(WebRequest *r);
enum MHD_Result web_route_stats(WebRequest *r);
/* A POST of the API: signed in (with the CSRF token), the body's object
 * handed to fn, whose reply (a new reference) goes back as
 * {"parameters": …}, or its error as web_respond_error(). */
typedef json_t *(*WebPostFn)(WebRequest *r, json_t *args, NapError *e);
enum MHD_Result web_respond_post(WebRequest *r, WebPostFn fn);

/* ---- the resource queue (web-queue.c) ---- */
enum MHD_Result web_route_queue_list(WebRequest *r);
enum MHD_Result web_route_queue_cancel(WebRequest *r);
enum MHD_Result web_route_queue_move(WebRequest *r);

/* The call of an io.nap.Manager method for r's user: authorized with the
 * registry's own nap_method_authorize() for r->uid, then forwarded to
 * nap-managerd. Returns the reply parameters (new reference) or NULL with
 * e set. args is borrowed. */
json_t *web_call(WebRequest *r, const char *method, json_t *args, NapError *e);

/* ---- the log (web-follow.c) ---- */
enum MHD_Result web_route_follow(WebRequest *r);

/* ---- systemd's accounting (web-stats.c) ---- */
/* CPU time (ns) and memory (bytes) of each instance of the array (of
 * ListInstances' Instance objects), added to them as "cpu_nsec" and
 * "memory_bytes" (null: not known). */
int web_stats_add(WebContext *c, json_t *instances, NapError *e);
