/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* napctl's transport: io.nap.Manager over varlink to nap-managerd, or
 * (--no-helper) in this process through napctl-local.c. */

#include <signal.h>
#include <sys/random.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>

#include "napctl-call.h"
#include "base/hex.h"
#include "model/intent.h"

void caller_done(Caller *c) {
        c->link = varlink_unref(c->link);
        c->context = nap_context_free(c->context);
        free(c->socket);
        c->socket = NULL;
}

int caller_context(Caller *c, NapContext **ret, NapError *e) {
        if (!c->context) {
                int r = nap_context_new(&c->context, c->scope, c->warn, NULL, e);
                if (r < 0)
                        return r;
        }
        *ret = c->context;
        return 0;
}

const char *caller_error_name(const Caller *c, const NapError *e, char buf[static 128]) {
        if (e->kind == NAP_ERROR_INTERNAL && c->error_name[0])
                return c->error_name;
        snprintf(buf, 128, NAP_MANAGER_INTERFACE ".%s", nap_error_kind_to_string(e->kind) ?: "Internal");
        return buf;
}

/* ---- finding and reaching the helper ---------------------------------- */

static bool caller_user_scope(Caller *c) {
        NapContext *ctx;
        NapError ignored = NAP_ERROR_NULL;
        if (c->scope >= 0)
                return c->scope == NAP_SCOPE_USER;
        /* Scope= of nap.conf; a config that does not load is reported by
         * the helper (or by --no-helper): the system socket then. */
        return caller_context(c, &ctx, &ignored) >= 0 && ctx->scope == NAP_SCOPE_USER;
}

static int caller_find_socket(Caller *c, NapError *e) {
        const char *runtime = "/run";
        if (c->address)
                c->socket = strdup(c->address);
        else {
                if (caller_user_scope(c)) {
                        runtime = secure_getenv("XDG_RUNTIME_DIR");
                        if (isempty(runtime) || runtime[0] != '/')
                                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -ENXIO,
                                                     "$XDG_RUNTIME_DIR is not set, so the user's nap-managerd "
                                                     "cannot be found; give its socket with --address=PATH");
                }
                if (asprintf(&c->socket, "%s/" NAP_MANAGER_SOCKET_NAME, runtime) < 0)
                        c->socket = NULL;
        }
        return c->socket ? 0 : nap_error_errno(e, -ENOMEM, "Failed to find nap-managerd's socket");
}

/* A helper that is not there is the usual failure on a new host: say
 * which socket, and how to get it, rather than falling back silently. */
static int caller_connect_error(Caller *c, int r, NapError *e) {
        const char *why = r == -ENOENT ? "no such socket" : "connection refused";
        if (r != -ENOENT && r != -ECONNREFUSED)
                return nap_error_errno(e, r, "Failed to connect to nap-managerd at %s", c->socket);
        if (c->address)
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, r, "nap-managerd is not listening on %s (%s)",
                                     c->socket, why);
        return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, r,
                             "nap-managerd is not listening on %s (%s). Start it with 'systemctl%s start "
                             "nap-managerd.socket', or run the operation in this process with --no-helper",
                             c->socket, why, caller_user_scope(c) ? " --user" : "");
}

static int caller_connect(Caller *c, NapError *e) {
        int r;
        if (c->link && varlink_is_connected(c->link))
                return 0;
        c->link = varlink_unref(c->link);
        if (!c->socket && (r = caller_find_socket(c, e)) < 0)
                return r;
        r = varlink_connect_address(&c->link, c->socket);
        return r < 0 ? caller_connect_error(c, r, e) : 0;
}

/* ---- errors ----------------------------------------------------------- */

/* A failure of the connection rather than an error reply. */
static int caller_transport_error(Caller *c, const char *method, int r, NapError *e) {
        switch (r) {
        case -ECONNRESET:
        case -EPIPE:
        case -ENOTCONN:
                return nap_error_set(e, NAP_ERROR_INTERNAL, r,
                                     "nap-managerd closed the connection before answering %s (see 'journalctl%s -u "
                                     "nap-managerd')",
                                     method, caller_user_scope(c) ? " --user" : "");
        case -ETIMEDOUT:
                return nap_error_set(e, NAP_ERROR_INTERNAL, r, "nap-managerd did not answer %s in time", method);
        case -EPROTO:
        case -EBADMSG:
                return nap_error_set(e, NAP_ERROR_INTERNAL, r, "nap-managerd's answer to %s is not valid varlink",
                                     method);
        default:
                return nap_error_errno(e, r, "Calling %s on nap-managerd failed", method);
        }
}

/* What an org.varlink.service (or other foreign) error says, in words. */
static int caller_foreign_error(Caller *c, const char *method, const char *id, json_t *p, NapError *e) {
        int r = varlink_error_to_errno(id, p);
        const char *dot = strrchr(id, '.'), *name = dot ? dot + 1 : id;

        snprintf(c->error_name, sizeof c->error_name, "%s", id);
        if (streq(id, VARLINK_ERROR_SYSTEM))
                return nap_error_errno(e, r, "nap-managerd failed %s", method);
        if (streq(id, VARLINK_ERROR_INVALID_PARAMETER))
                return nap_error_set(e, NAP_ERROR_INTERNAL, r,
                                     "nap-managerd refused the parameter '%s' of %s (a napctl of another version?)",
                                     strempty(json_string_value(json_object_get(p, "parameter"))), method);
        if (streq(id, VARLINK_ERROR_METHOD_NOT_FOUND) || streq(id, VARLINK_ERROR_INTERFACE_NOT_FOUND) ||
            streq(id, VARLINK_ERROR_METHOD_NOT_IMPLEMENTED))
                return nap_error_set(e, NAP_ERROR_INTERNAL, r,
                                     "nap-managerd does not implement %s (%s: a helper of another version?)", method,
                                     name);
        return nap_error_set(e, NAP_ERROR_INTERNAL, r, "nap-managerd answered %s with the error %s", method, id);
}

static int caller_reply_error(Caller *c, const char *method, const char *id, json_t *p, NapError *e) {
        const char *kind = startswith(id, NAP_MANAGER_INTERFACE ".");
        const char *message = json_string_value(json_object_get(p, "message"));
        NapErrorKind k = kind ? nap_error_kind_from_string(kind) : _NAP_ERROR_KIND_INVALID;

        if (streq(id, VARLINK_ERROR_DISCONNECTED))
                return caller_transport_error(c, method, -ECONNRESET, e);
        if (streq(id, VARLINK_ERROR_TIMEOUT))
                return caller_transport_error(c, method, -ETIMEDOUT, e);
        if (streq(id, VARLINK_ERROR_PROTOCOL))
                return caller_transport_error(c, method, -EPROTO, e);
        if (k <= NAP_ERROR_NONE)
                return caller_foreign_error(c, method, id, p, e);
        return nap_error_set(e, k, -EIO, "%s", message ?: id);
}

/* ---- calls ------------------------------------------------------------ */

int caller_call(Caller *c, const char *method, json_t *params, uint64_t timeout, json_t **ret, NapError *e) {
        json_auto_t *p = params;
        char qualified[128];
        const char *error_id = NULL;
        json_t *reply = NULL;
        int r;

        if (!p)
                return nap_error_errno(e, -ENOMEM, "Failed to build the call of %s", method);
        if (c->local)
                return local_call(c, method, p, ret, e);
        r = caller_connect(c, e);
        if (r < 0)
                return r;
        snprintf(qualified, sizeof qualified, NAP_MANAGER_INTERFACE ".%s", method);
        (void) varlink_set_relative_timeout(c->link, timeout);
        r = varlink_call(c->link, qualified, p, &reply, &error_id);
        if (r < 0)
                return caller_transport_error(c, method, r, e);
        if (error_id)
                return caller_reply_error(c, method, error_id, reply, e);
        *ret = json_incref(reply);
        return 0;
}

static bool connection_lost(int r) {
        return r == -ECONNRESET || r == -EPIPE || r == -ENOTCONN || r == -ECONNREFUSED;
}

int caller_call_retrying(Caller *c, const char *method, json_t *params, uint64_t timeout, json_t **ret, NapError *e) {
        json_auto_t *p = params;
        int r = -ECONNRESET;
        for (unsigned attempt = 0; attempt < 3 && connection_lost(r); attempt++) {
                if (attempt > 0) {
                        /* systemd starts the helper again on the next
                         * connection; give a dying one a moment to go. */
                        (void) usleep(100 * 1000 * attempt);
                        c->link = varlink_unref(c->link);
                        *e = NAP_ERROR_NULL;
                }
                r = caller_call(c, method, json_incref(p), timeout, ret, e);
        }
        return r;
}

int caller_request_id(const char *given, char ret[static CALLER_REQUEST_ID_MAX], NapError *e) {
        uint8_t bytes[8];
        if (given) {
                int r = nap_request_id_check(given, e);
                if (r < 0)
                        return r;
                snprintf(ret, CALLER_REQUEST_ID_MAX, "%s", given);
                return 0;
        }
        if (getrandom(bytes, sizeof bytes, 0) != (ssize_t) sizeof bytes)
                return nap_error_errno(e, -errno, "Failed to make a request id");
        int k = snprintf(ret, CALLER_REQUEST_ID_MAX, "napctl-");
        hex_encode(bytes, sizeof bytes, ret + k);
        return 0;
}

/* ---- following -------------------------------------------------------- */

static int on_stop_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

int follow_event_new(sd_event **ret) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        sigset_t mask;
        int r;

        /* A background job of a shell starts with SIGINT ignored, and an
         * ignored signal never reaches the signalfd: a follow is ended by
         * ^C or kill -INT whoever started it. */
        (void) signal(SIGINT, SIG_DFL);
        (void) signal(SIGTERM, SIG_DFL);
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -errno;
        r = sd_event_new(&event);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, on_stop_signal, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM, on_stop_signal, NULL);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(event);
        return 0;
}

typedef struct Follow {
        Caller *caller;
        const char *method;
        sd_event *event;
        caller_reply_fn fn;
        void *userdata;
        NapError *error;
        int result;
} Follow;

static int on_follow_reply(Varlink *link, json_t *parameters, const char *error_id, VarlinkReplyFlags flags,
                           void *userdata) {
        Follow *f = userdata;
        int r;

        if (error_id)
                r = caller_reply_error(f->caller, f->method, error_id, parameters, f->error);
        else
                r = f->fn(parameters, f->userdata, f->error);
        if (r < 0 || !(flags & VARLINK_REPLY_CONTINUES)) {
                f->result = MIN(r, 0);
                (void) sd_event_exit(f->event, 0);
        }
        return 0;
}

int caller_follow(Caller *c, const char *method, json_t *params, caller_reply_fn fn, void *userdata, NapError *e) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        json_auto_t *p = params;
        char qualified[128];
        int r;

        if (!p)
                return nap_error_errno(e, -ENOMEM, "Failed to build the call of %s", method);
        if (c->local)
                return local_follow(c, method, p, fn, userdata, e);
        r = caller_connect(c, e);
        if (r < 0)
                return r;
        r = follow_event_new(&event);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to set up following %s", method);

        Follow f = { .caller = c, .method = method, .event = event, .fn = fn, .userdata = userdata, .error = e };
        snprintf(qualified, sizeof qualified, NAP_MANAGER_INTERFACE ".%s", method);
        varlink_set_userdata(c->link, &f);
        /* A quiet log sends nothing for as long as it likes. */
        (void) varlink_set_relative_timeout(c->link, VARLINK_TIMEOUT_INFINITY);
        r = varlink_bind_reply(c->link, on_follow_reply);
        if (r >= 0)
                r = varlink_attach_event(c->link, event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = varlink_observe(c->link, qualified, p);
        if (r >= 0)
                r = sd_event_loop(event);
        (void) varlink_detach_event(c->link);
        varlink_set_userdata(c->link, NULL);
        if (r < 0)
                return caller_transport_error(c, method, r, e);
        return f.result;
}
