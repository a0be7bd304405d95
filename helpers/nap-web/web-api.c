/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Sign-in, sessions, and the call of io.nap.Manager's methods: nap-web
 * adds nothing to an operation. A call is authorized by the method
 * registry's own nap_method_authorize() for the signed-in user's uid —
 * what nap-managerd does for a varlink or D-Bus caller's uid — and then
 * forwarded over varlink to nap-managerd, which runs it as for any
 * client (workers, cache, following). docs/ARCHITECTURE.md "nap-web". */

#include <pwd.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "model/auth.h"
#include "ops/methods.h"
#include "protocol/varlink.h"
#include "web.h"

/* ---- the request's body -------------------------------------------------- */

/* The arguments of a POST: a JSON object, sent as application/json. A
 * form of another site can post text/plain or form data but not JSON
 * (that needs a CORS preflight nap-web never answers), so a body of
 * another type is refused before it is read: a second guard beside
 * SameSite=Strict and the CSRF token, and the only one of the sign-in. */
static int request_args(WebRequest *r, json_t **ret, NapError *e) {
        const char *type = MHD_lookup_connection_value(r->connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (r->body_size > 0 && !web_content_type_is_json(type))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "The request's body must be JSON, sent as Content-Type: application/json");
        return web_body_object(r->body, r->body_size, ret, e);
}

/* ---- who is calling ---------------------------------------------------- */

/* The uid of a nap user's account on this host. */
static int user_uid(const char *user, uid_t *ret, NapError *e) {
        struct passwd pw, *result = NULL;
        char buf[4096];
        int r = getpwnam_r(user, &pw, buf, sizeof buf, &result);
        if (r != 0 || !result)
                return nap_error_set(e, NAP_ERROR_PERMISSION_DENIED, -EACCES,
                                     "%s has no account on this host, so owns no apps here", user);
        *ret = pw.pw_uid;
        return 0;
}

int web_authenticate(WebRequest *r, NapError *e) {
        WebContext *c = r->context;
        const char *cookie = MHD_lookup_connection_value(r->connection, MHD_COOKIE_KIND, WEB_SESSION_COOKIE);
        if (!cookie)
                return nap_error_set(e, NAP_ERROR_PERMISSION_DENIED, -EACCES, "Not signed in");
        int k = nap_web_session_check(&c->key, c->config, cookie, web_now_usec() / 1000000, r->user, e);
        if (k < 0)
                return k;
        k = user_uid(r->user, &r->uid, e);
        if (k < 0)
                return k;
        r->session = cookie;
        if (web_route_mutates(r->route) &&
            !nap_web_csrf_valid(&c->key, cookie,
                                MHD_lookup_connection_value(r->connection, MHD_HEADER_KIND, WEB_CSRF_HEADER)))
                return nap_error_set(e, NAP_ERROR_PERMISSION_DENIED, -EACCES,
                                     "The request has no valid " WEB_CSRF_HEADER " header (reload the page)");
        return 0;
}

/* Not signed in, or a forged request: 401, with the error's name. */
enum MHD_Result web_respond_unauthenticated(WebRequest *r, const NapError *e) {
        return web_respond_error_status(r, e->kind == NAP_ERROR_PERMISSION_DENIED ? 401 : web_error_status(e->kind), e);
}

static json_t *session_json(WebRequest *r, const char *session) {
        char csrf[NAP_WEB_CSRF_MAX];
        nap_web_csrf(&r->context->key, session, csrf);
        return json_pack("{s:s, s:b, s:s}", "user", r->user, "admin", r->uid == 0, "csrf", csrf);
}

/* ---- sign-in ----------------------------------------------------------- */

static enum MHD_Result respond_rate_limited(WebRequest *r, unsigned wait_sec) {
        char body[256], retry[16];
        snprintf(retry, sizeof retry, "%u", wait_sec);
        snprintf(body, sizeof body,
                 "{\"error\":\"io.nap.Manager.NotAvailable\",\"message\":\"Too many failed sign-ins: try again in %u "
                 "s\"}",
                 wait_sec);
        struct MHD_Response *response = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
        if (!response)
                return MHD_NO;
        (void) MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        (void) MHD_add_response_header(response, MHD_HTTP_HEADER_RETRY_AFTER, retry);
        (void) MHD_add_response_header(response, "Cache-Control", "no-store");
        enum MHD_Result ret = MHD_queue_response(r->connection, 429, response);
        MHD_destroy_response(response);
        return ret;
}

/* The rate limit, then the token: 0 with r->user set, > 0 the seconds to
 * wait, < 0 refused (e set). */
static int signin_check(WebRequest *r, const char *token, NapError *e) {
        WebContext *c = r->context;
        char user[NAP_USER_MAX + 1];
        uint64_t now = web_now_usec();

        web_token_user(token, user);
        pthread_mutex_lock(&c->limit_lock);
        unsigned wait = web_rate_limit_wait(&c->limit, user, now);
        pthread_mutex_unlock(&c->limit_lock);
        if (wait > 0)
                return (int) wait;
        int k = nap_web_token_check(c->config, token, r->user, e);
        if (k >= 0)
                k = user_uid(r->user, &r->uid, e);
        if (k < 0 && e->kind == NAP_ERROR_PERMISSION_DENIED) {
                pthread_mutex_lock(&c->limit_lock);
                web_rate_limit_failed(&c->limit, user, now);
                pthread_mutex_unlock(&c->limit_lock);
                log_notice("Refused a sign-in%s%s: %s", user[0] ? " as " : "", user, e->message);
        }
        return k;
}

static int session_cookie(WebRequest *r, char session[static NAP_WEB_SESSION_MAX], char **ret_cookie, NapError *e) {
        WebContext *c = r->context;
        uint64_t expires = web_now_usec() / 1000000 + c->session_sec;
        int k = nap_web_session_make(&c->key, c->config, r->user, expires, session, e);
        if (k < 0)
                return k;
        if (asprintf(ret_cookie, WEB_SESSION_COOKIE "=%s; Path=/; Max-Age=%" PRIu64 "; HttpOnly; SameSite=Strict%s",
                     session, c->session_sec, c->secure_cookies ? "; Secure" : "") < 0)
                return nap_error_errno(e, -ENOMEM, "Failed to make the session");
        return 0;
}

enum MHD_Result web_route_signin(WebRequest *r) {
        NapError e = NAP_ERROR_NULL;
        json_auto_t *args = NULL;
        char session[NAP_WEB_SESSION_MAX];
        _cleanup_free_ char *cookie = NULL;

        int k = request_args(r, &args, &e);
        if (k < 0)
                return web_respond_error(r, &e);
        const char *token = json_string_value(json_object_get(args, "token"));
        if (!token) {
                nap_error_set(&e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "Give the token as {\"token\": \"…\"}");
                return web_respond_error(r, &e);
        }
        k = signin_check(r, token, &e);
        if (k > 0)
                return respond_rate_limited(r, (unsigned) k);
        if (k >= 0)
                k = session_cookie(r, session, &cookie, &e);
        if (k < 0)
                return web_respond_unauthenticated(r, &e);
        log_info("%s signed in", r->user);
        return web_respond_json(r, 200, session_json(r, session), cookie);
}

enum MHD_Result web_route_signout(WebRequest *r) {
        NapError e = NAP_ERROR_NULL;
        if (web_authenticate(r, &e) < 0)
                return web_respond_unauthenticated(r, &e);
        return web_respond_json(r, 200, json_object(),
                                WEB_SESSION_COOKIE "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
}

enum MHD_Result web_route_session(WebRequest *r) {
        NapError e = NAP_ERROR_NULL;
        if (web_authenticate(r, &e) < 0)
                return web_respond_unauthenticated(r, &e);
        return web_respond_json(r, 200, session_json(r, r->session), NULL);
}

/* ---- calls ------------------------------------------------------------- */

/* An error reply of nap-managerd as the NapError it was. */
static json_t *reply_error(const char *id, json_t *p, NapError *e) {
        const char *kind = startswith(id, NAP_MANAGER_INTERFACE ".");
        NapErrorKind k = kind ? nap_error_kind_from_string(kind) : _NAP_ERROR_KIND_INVALID;
        const char *message = json_string_value(json_object_get(p, "message"));
        nap_error_set(e, k > NAP_ERROR_NONE ? k : NAP_ERROR_INTERNAL, -EIO, "%s", message ?: id);
        nap_error_parameter(e, 0, json_string_value(json_object_get(p, "parameter")));
        return NULL;
}

static json_t *forward(WebContext *c, const NapMethod *m, json_t *args, NapError *e) {
        _cleanup_(varlink_unrefp) Varlink *link = NULL;
        char qualified[128];
        const char *error_id = NULL;
        json_t *reply = NULL;

        int k = varlink_connect_address(&link, c->manager_address);
        if (k < 0)
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, k, "nap-managerd is not listening on %s: %s",
                                     c->manager_address, strerror(-k)), NULL;
        /* A change runs to its end in nap-managerd whatever happens here:
         * wait for it, as napctl does. */
        (void) varlink_set_relative_timeout(link, m->access == NAP_ACCESS_READ ? VARLINK_DEFAULT_TIMEOUT_USEC
                                                                               : VARLINK_TIMEOUT_INFINITY);
        snprintf(qualified, sizeof qualified, NAP_MANAGER_INTERFACE ".%s", m->name);
        k = varlink_call(link, qualified, args, &reply, &error_id);
        if (k < 0)
                return nap_error_errno(e, k, "Calling %s on nap-managerd failed", m->name), NULL;
        if (error_id)
                return reply_error(error_id, reply, e);
        return json_incref(reply);
}

json_t *web_call(WebRequest *r, const char *method, json_t *args, NapError *e) {
        const NapMethod *m = nap_method_find(method);
        if (!m)
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -EOPNOTSUPP, "io.nap.Manager has no method %s",
                                     method), NULL;
        /* The same check, by the same function, as for a varlink or D-Bus
         * caller with this uid; nap-managerd then sees nap-web's own uid. */
        if (nap_method_authorize(m, r->uid, args, e) < 0)
                return NULL;
        return forward(r->context, m, args, e);
}

enum MHD_Result web_respond_post(WebRequest *r, WebPostFn fn) {
        NapError e = NAP_ERROR_NULL;
        json_auto_t *args = NULL;
        if (web_authenticate(r, &e) < 0)
                return web_respond_unauthenticated(r, &e);
        if (request_args(r, &args, &e) < 0)
                return web_respond_error(r, &e);
        json_t *reply = fn(r, args, &e);
        if (!reply)
                return web_respond_error(r, &e);
        return web_respond_json(r, 200, json_pack("{s:o}", "parameters", reply), NULL);
}

static json_t *call_method(WebRequest *r, json_t *args, NapError *e) {
        return web_call(r, r->method, args, e);
}

enum MHD_Result web_route_call(WebRequest *r) {
        return web_respond_post(r, call_method);
}

static json_t *stats(WebRequest *r, json_t *args, NapError *e) {
        json_t *reply = web_call(r, "ListInstances", args, e);
        if (reply && web_stats_add(r->context, json_object_get(reply, "instances"), e) < 0)
                return json_decref(reply), NULL;
        return reply;
}

enum MHD_Result web_route_stats(WebRequest *r) {
        return web_respond_post(r, stats);
}
