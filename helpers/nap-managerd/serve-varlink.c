/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Each call goes: validate (the interface, by the server) → the
 * dispatcher (authorize, run) → reply; or, for a streaming method called
 * with "more", authorize → follow. */

#include <systemd/sd-daemon.h>

#include "../common/log.h"
#include "follow.h"
#include "forward.h"
#include "nap-config.h"
#include "serve-varlink.h"

#define INTERFACE NAP_MANAGER_INTERFACE
/* Calls are small (a URL of at most 4 KiB, at most 64 parameters of at
 * most 4 KiB each): anything near this is not a call of ours. */
#define MANAGER_MESSAGE_MAX (1024U * 1024U)

struct VarlinkFront {
        VarlinkServer *server;
        Dispatcher *dispatcher;
        Follows *follows;
        Forwards *forwards;
        unsigned n_connections;
        VarlinkFrontChanged changed;
        void *userdata;
};

/* ---- replies ---------------------------------------------------------- */

/* Our replies are checked against our own interface before they leave. */
static int reply_checked(Varlink *link, const NapMethod *method, json_t *parameters) {
        const char *bad = NULL;
        if (nap_method_check_result(method, parameters, &bad) < 0) {
                log_error("Bug: the reply of %s does not match " INTERFACE " at field '%s'", method->name, bad ?: "?");
                return varlink_errorf(link, INTERFACE ".Internal", "{s:s}", "message",
                                      "The reply did not match the interface (a bug in nap-managerd)");
        }
        return varlink_reply(link, parameters);
}

/* A message for JSON: jansson refuses invalid UTF-8, which a refused name
 * quoted in a message may carry. */
static json_t *json_message(const char *s) {
        json_t *j = json_string(s);
        if (j)
                return j;
        _cleanup_free_ char *copy = strdup(s);
        if (!copy)
                return NULL;
        for (char *p = copy; *p; p++)
                if ((unsigned char) *p >= 0x80)
                        *p = '?';
        return json_string(copy);
}

/* parameter: the argument an InvalidParameter is about, when the method
 * said (NapError.parameter); NULL: the registry's guess. */
static int reply_error(Varlink *link, const NapMethod *method, json_t *args, const char *kind, const char *message,
                       const char *parameter) {
        char id[128];
        json_auto_t *p = NULL;

        if (!kind || !varlink_idl_has_error(nap_manager_idl(), kind))
                kind = "Internal";
        snprintf(id, sizeof id, INTERFACE ".%s", kind);
        if (streq(kind, "InvalidParameter"))
                p = json_pack("{s:s, s:o}", "parameter", nap_method_invalid_parameter(method, args, parameter), "message",
                              json_message(message));
        else
                p = json_pack("{s:o}", "message", json_message(message));
        if (!p)
                return -ENOMEM;
        if (streq(kind, "Internal"))
                log_warning("%s failed: %s", method->name, message);
        return varlink_error(link, id, p);
}

/* envelope: see nap_method_envelope(). */
static int reply_envelope(Varlink *link, const NapMethod *method, json_t *args, json_t *envelope) {
        json_t *parameters = json_object_get(envelope, "parameters");
        if (!envelope)
                return reply_error(link, method, args, "Internal", "The worker process running the call failed", NULL);
        if (json_is_object(parameters))
                return reply_checked(link, method, parameters);
        return reply_error(link, method, args, json_string_value(json_object_get(envelope, "error")),
                           json_string_value(json_object_get(envelope, "message")) ?: "Failed",
                           json_string_value(json_object_get(envelope, "parameter")));
}

/* ---- calls ------------------------------------------------------------ */

/* A call, referenced until the dispatcher answers it. */
typedef struct Call {
        Varlink *link; /* NULL for a oneway call: nobody waits for the reply */
        const NapMethod *method;
        json_t *args;
} Call;

static void call_done(json_t *envelope, void *userdata) {
        Call *c = userdata;
        int r = c->link ? reply_envelope(c->link, c->method, c->args, envelope) : 0;
        /* -ENOTCONN: the client hung up while the call ran; what the
         * method changed stays changed, as if the reply had been lost. */
        if (r < 0 && r != -ENOTCONN)
                log_debug_errno(r, "Failed to reply to %s: %m", c->method->name);
        varlink_unref(c->link);
        json_decref(c->args);
        free(c);
}

static int stream(VarlinkFront *f, Varlink *link, const NapMethod *method, json_t *args, uid_t uid) {
        NapError e = NAP_ERROR_NULL;
        if (nap_method_authorize(method, uid, args, &e) >= 0)
                (void) follows_start(f->follows, link, args, &e);
        if (nap_error_is_set(&e))
                return reply_error(link, method, args, nap_error_kind_to_string(e.kind), e.message, e.parameter);
        return 0; /* the replies come from the follow */
}

/* An instance on another host: authorized here as any call, then relayed
 * to that host, which authorizes the caller's uid again (lib/ops/forward.h). */
static int forward(VarlinkFront *f, Varlink *link, const NapMethod *method, json_t *args, bool more, uid_t uid) {
        NapError e = NAP_ERROR_NULL;
        if (nap_method_authorize(method, uid, args, &e) >= 0)
                (void) forwards_start(f->forwards, link, method, args, more && method->streams, uid, &e);
        if (nap_error_is_set(&e))
                return reply_error(link, method, args, nap_error_kind_to_string(e.kind), e.message, e.parameter);
        return 0; /* the replies come from the other host */
}

static int on_call(Varlink *link, json_t *args, VarlinkMethodFlags flags, void *userdata) {
        VarlinkFront *f = userdata;
        const char *name = varlink_get_current_method(link);
        const NapMethod *method = nap_method_find(name ? name + strlen(INTERFACE ".") : NULL);
        uid_t uid;

        if (!method)
                return -EOPNOTSUPP; /* bound from the registry: cannot happen */
        if (varlink_get_peer_uid(link, &uid) < 0)
                return reply_error(link, method, args, "PermissionDenied", "The caller's credentials are not known",
                                   NULL);
        log_debug("uid %u calls %s", (unsigned) uid, method->name);
        if (!(flags & VARLINK_METHOD_ONEWAY) && forwards_wanted(f->forwards, method, args))
                return forward(f, link, method, args, flags & VARLINK_METHOD_MORE, uid);
        if (method->streams && (flags & VARLINK_METHOD_MORE))
                return stream(f, link, method, args, uid);
        Call *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        /* A oneway call ends when its handler returns (varlink.h). */
        *c = (Call) { .link = flags & VARLINK_METHOD_ONEWAY ? NULL : varlink_ref(link), .method = method,
                      .args = json_incref(args) };
        dispatcher_call(f->dispatcher, method, uid, args, call_done, c);
        return 0; /* answered by call_done(), maybe already */
}

/* ---- connections ------------------------------------------------------ */

static int on_connect(VarlinkServer *s, Varlink *link, void *userdata) {
        VarlinkFront *f = userdata;
        f->n_connections++;
        f->changed(f->userdata);
        return 0;
}

static void on_disconnect(VarlinkServer *s, Varlink *link, void *userdata) {
        VarlinkFront *f = userdata;
        follows_drop(f->follows, link);
        forwards_drop(f->forwards, link);
        if (f->n_connections > 0)
                f->n_connections--;
        f->changed(f->userdata);
}

unsigned varlink_front_connections(const VarlinkFront *f) {
        return f ? f->n_connections : 0;
}

/* A connection over a limit is told which, by name, before it is closed:
 * its client's first call fails with this rather than a reset. The
 * caller's error, not the daemon's: not logged above debug. */
static json_t *on_refuse(VarlinkServer *s, const VarlinkRefusal *refusal, void *userdata) {
        char message[256];

        if (refusal->per_uid)
                snprintf(message, sizeof message,
                         "nap-managerd serves at most %u connections of one user (MaxConnectionsPerUser= in "
                         "nap.conf), and uid %u has that many open: close some, or try again later",
                         refusal->limit, (unsigned) refusal->uid);
        else
                snprintf(message, sizeof message,
                         "nap-managerd serves at most %u connections (MaxConnections= in nap.conf), and that many "
                         "are open: try again later",
                         refusal->limit);
        log_debug("Refused a connection of uid %d: %s", (int) refusal->uid, message);
        return json_pack("{s:s, s:i, s:b}", "message", message, "limit", (int) refusal->limit, "per_user",
                         refusal->per_uid);
}

/* MaxConnections= and MaxConnectionsPerUser= of nap.conf. */
static int set_limits(VarlinkFront *f) {
        const NapConfig *c = dispatcher_context(f->dispatcher)->config;
        int r = varlink_server_set_connections_max(f->server, c->max_connections);
        if (r >= 0)
                r = varlink_server_set_connections_per_uid_max(f->server, c->max_connections_per_user);
        if (r >= 0)
                r = varlink_server_bind_refuse(f->server, INTERFACE ".TooManyConnections", on_refuse);
        return r;
}

/* ---- setup ------------------------------------------------------------ */

/* The sockets of nap-managerd.socket (FileDescriptorName=varlink). */
static int listen_passed_fds(VarlinkFront *f) {
        char **names = NULL;
        int n = sd_listen_fds_with_names(true, &names), r = 0;

        if (n < 0)
                return log_error_errno(n, "Failed to read the sockets passed by systemd: %m");
        if (n == 0)
                return log_error_errno(EBADF, "No socket was passed: start nap-managerd.socket, or give --listen=PATH");
        for (int i = 0; i < n; i++) {
                if (r >= 0) {
                        r = varlink_server_listen_fd(f->server, SD_LISTEN_FDS_START + i);
                        if (r < 0)
                                log_error_errno(r, "Socket %d (%s) passed by systemd is not a listening AF_UNIX stream socket: %m",
                                                SD_LISTEN_FDS_START + i, names ? names[i] : "?");
                }
                if (r < 0)
                        (void) close(SD_LISTEN_FDS_START + i);
        }
        for (int i = 0; names && i < n; i++)
                free(names[i]);
        free(names);
        return r;
}

static int bind_methods(VarlinkServer *s) {
        char name[128];
        int r = 0;
        for (size_t i = 0; r >= 0 && i < nap_methods_size(); i++) {
                snprintf(name, sizeof name, INTERFACE ".%s", nap_method_at(i)->name);
                r = varlink_server_bind_method(s, name, on_call);
        }
        return r;
}

static int server_new(VarlinkFront *f, sd_event *event) {
        int r = varlink_server_new(&f->server, VARLINK_SERVER_ACCOUNT_UID | VARLINK_SERVER_INHERIT_USERDATA);
        if (r < 0)
                return log_error_errno(r, "Failed to create the varlink server: %m");
        varlink_server_set_userdata(f->server, f);
        r = varlink_server_set_info(f->server, "nap", "nap-managerd", NAP_VERSION, "man:io.nap.Manager(7)");
        if (r >= 0)
                r = varlink_server_add_interface(f->server, nap_manager_interface_text());
        if (r >= 0)
                r = bind_methods(f->server);
        if (r >= 0)
                r = varlink_server_bind_connect(f->server, on_connect);
        if (r >= 0)
                r = varlink_server_bind_disconnect(f->server, on_disconnect);
        if (r >= 0)
                r = varlink_server_set_message_max(f->server, MANAGER_MESSAGE_MAX);
        if (r >= 0)
                r = set_limits(f);
        if (r >= 0)
                r = varlink_server_attach_event(f->server, event, SD_EVENT_PRIORITY_NORMAL);
        return r < 0 ? log_error_errno(r, "Failed to set up the varlink server: %m") : 0;
}

int varlink_front_new(sd_event *event, Dispatcher *dispatcher, const char *address, VarlinkFrontChanged changed,
                      void *userdata, VarlinkFront **ret) {
        _cleanup_(varlink_front_freep) VarlinkFront *f = calloc(1, sizeof *f);
        int r;

        assert(ret);
        if (!f)
                return log_error_errno(ENOMEM, "Out of memory");
        *f = (VarlinkFront) { .dispatcher = dispatcher, .changed = changed, .userdata = userdata };
        if (!nap_manager_idl())
                return log_error_errno(EBADMSG, "The built-in " INTERFACE " interface does not parse");
        r = follows_new(event, dispatcher_context(dispatcher), &f->follows);
        if (r >= 0)
                r = forwards_new(event, dispatcher_context(dispatcher), &f->forwards);
        if (r < 0)
                return log_error_errno(ENOMEM, "Out of memory");
        r = server_new(f, event);
        if (r >= 0 && !address)
                r = listen_passed_fds(f);
        /* Anybody may connect; every call is authorized by its uid. */
        else if (r >= 0 && (r = varlink_server_listen_address(f->server, address, 0666)) < 0)
                log_error_errno(r, "Failed to listen on %s: %m", address);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(f);
        return 0;
}

VarlinkFront *varlink_front_free(VarlinkFront *f) {
        if (!f)
                return NULL;
        follows_free(f->follows);
        f->forwards = forwards_free(f->forwards);
        if (f->server)
                (void) varlink_server_shutdown(f->server);
        varlink_server_unref(f->server);
        free(f);
        return NULL;
}
