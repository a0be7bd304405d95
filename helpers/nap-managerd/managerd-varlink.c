/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The varlink adapter: io.nap.Manager on lib/varlink.h. Each call goes
 * validate (the interface, by the server) → authorize (the peer's uid) →
 * run (here, in a worker, as a journal follow, or started here and answered
 * when systemd is) → reply. NapError kinds
 * become io.nap.Manager.<Kind> errors here and nowhere else. */

#include <systemd/sd-daemon.h>

#include "io.nap.Manager.varlink.h"
#include "managerd-worker.h"
#include "managerd.h"
#include "nap-config.h"

#define INTERFACE "io.nap.Manager"
/* Calls are small (a URL of at most 4 KiB, at most 64 parameters of at
 * most 4 KiB each): anything near this is not a call of ours. */
#define MANAGER_MESSAGE_MAX (1024U * 1024U)

/* ---- replies ---------------------------------------------------------- */

/* Our replies are checked against our own interface before they leave, so
 * a mismatch is a loud bug here and never a surprise in a client. */
int manager_varlink_reply(Manager *m, Varlink *link, const char *method, json_t *parameters, bool continues) {
        const char *bad = NULL;
        if (varlink_idl_validate_method_output(m->idl, method, parameters, &bad) < 0) {
                log_error("Bug: the reply of %s does not match " INTERFACE " at field '%s'", method, bad ?: "?");
                return varlink_errorf(link, INTERFACE ".Internal", "{s:s}", "message",
                                      "The reply did not match the interface (a bug in nap-managerd)");
        }
        return continues ? varlink_notify(link, parameters) : varlink_reply(link, parameters);
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

int manager_varlink_error(Manager *m, Varlink *link, const Method *method, json_t *args, const char *kind,
                          const char *message) {
        char id[128];
        json_auto_t *p = NULL;

        if (!kind || !varlink_idl_has_error(m->idl, kind))
                kind = "Internal";
        snprintf(id, sizeof id, INTERFACE ".%s", kind);
        if (streq(kind, "InvalidParameter"))
                p = json_pack("{s:s, s:o}", "parameter", method_invalid_parameter(method, args), "message",
                              json_message(message));
        else
                p = json_pack("{s:o}", "message", json_message(message));
        if (!p)
                return -ENOMEM;
        if (streq(kind, "Internal"))
                log_warning("%s failed: %s", method->name, message);
        return varlink_error(link, id, p);
}

static int reply_nap_error(Manager *m, Varlink *link, const Method *method, json_t *args, const NapError *e) {
        return manager_varlink_error(m, link, method, args, nap_error_kind_to_string(e->kind),
                                     nap_error_is_set(e) ? e->message : "Failed");
}

/* envelope: see method_run_envelope(). */
static int reply_envelope(Manager *m, Varlink *link, const Method *method, json_t *args, json_t *envelope) {
        json_t *parameters = json_object_get(envelope, "parameters");
        if (!envelope)
                return -ENOMEM;
        if (json_is_object(parameters))
                return manager_varlink_reply(m, link, method->name, parameters, false);
        return manager_varlink_error(m, link, method, args, json_string_value(json_object_get(envelope, "error")),
                                     json_string_value(json_object_get(envelope, "message")) ?: "Failed");
}

/* ---- calls run by a worker -------------------------------------------- */

typedef struct Call {
        Manager *manager;
        Varlink *link; /* NULL for a oneway call: nobody waits for the reply */
        const Method *method;
        json_t *args;
} Call;

static void call_free(Call *c) {
        varlink_unref(c->link);
        json_decref(c->args);
        free(c);
}

static void call_done(Manager *m, json_t *envelope, void *userdata) {
        Call *c = userdata;
        int r = 0;

        if (c->link && envelope)
                r = reply_envelope(m, c->link, c->method, c->args, envelope);
        else if (c->link)
                r = manager_varlink_error(m, c->link, c->method, c->args, "Internal",
                                          "The worker process running the call failed");
        /* -ENOTCONN: the client hung up while the worker ran; what the
         * method changed stays changed, as if the reply had been lost. */
        if (r < 0 && r != -ENOTCONN)
                log_debug_errno(r, "Failed to reply to %s: %m", c->method->name);
        call_free(c);
}

static Call *call_new(Manager *m, Varlink *link, const Method *method, json_t *args, VarlinkMethodFlags flags) {
        Call *c = calloc(1, sizeof *c);
        if (!c)
                return NULL;
        c->manager = m;
        /* A oneway call ends when its handler returns (varlink.h). */
        c->link = flags & VARLINK_METHOD_ONEWAY ? NULL : varlink_ref(link);
        c->method = method;
        c->args = json_incref(args);
        return c;
}

static void call_answered(json_t *envelope, void *userdata) {
        Call *c = userdata;
        call_done(c->manager, envelope, c);
}

/* A method answered from the cache: the reply comes from call_answered(),
 * maybe before this returns. */
static int call_start(Manager *m, Varlink *link, const Method *method, json_t *args, VarlinkMethodFlags flags) {
        Call *c = call_new(m, link, method, args, flags);
        if (!c)
                return -ENOMEM;
        instances_call(m, method, args, call_answered, c);
        return 0;
}

static int call_submit(Manager *m, Varlink *link, const Method *method, json_t *args, VarlinkMethodFlags flags) {
        Call *c = call_new(m, link, method, args, flags);
        if (!c)
                return -ENOMEM;
        int r = worker_submit(m, method, args, call_done, c);
        if (r >= 0)
                return 0; /* the reply comes from call_done() */
        call_free(c);
        if (r == -ESHUTDOWN)
                return manager_varlink_error(m, link, method, args, "NotAvailable",
                                             "nap-managerd is shutting down; call again");
        return r;
}

/* ---- dispatch --------------------------------------------------------- */

static int dispatch(Varlink *link, json_t *args, VarlinkMethodFlags flags, Manager *m, const char *name) {
        const Method *method = method_find(name);
        NapError e = NAP_ERROR_NULL;
        uid_t uid;

        if (!method)
                return -EOPNOTSUPP; /* bound below from the same table: cannot happen */
        if (varlink_get_peer_uid(link, &uid) < 0)
                return manager_varlink_error(m, link, method, args, "PermissionDenied",
                                             "The caller's credentials are not known");
        log_debug("uid %u calls %s", (unsigned) uid, name);
        if (method_authorize(method, uid, args, &e) < 0)
                return reply_nap_error(m, link, method, args, &e);
        if (streq(name, "GetJournal") && (flags & VARLINK_METHOD_MORE))
                return journal_follow_start(m, link, args);
        if (method->worker)
                return call_submit(m, link, method, args, flags);
        if (method->cached)
                return call_start(m, link, method, args, flags);

        json_auto_t *envelope = method_run_envelope(m->context, method, args);
        return reply_envelope(m, link, method, args, envelope);
}

/* lib/varlink.h hands a handler no method name: one thunk per method. */
#define VL_METHOD(name)                                                                         \
        static int vl_##name(Varlink *link, json_t *args, VarlinkMethodFlags flags, void *u) { \
                return dispatch(link, args, flags, u, #name);                                   \
        }
VL_METHOD(DeployApp)
VL_METHOD(ListServices)
VL_METHOD(GetServiceUrl)
VL_METHOD(GetInstancesNum)
VL_METHOD(ListInstances)
VL_METHOD(GetPort)
VL_METHOD(GetJournal)
VL_METHOD(StopApp)
VL_METHOD(StartApp)
VL_METHOD(CatApp)
VL_METHOD(GetParameters)
VL_METHOD(StartCommon)
VL_METHOD(StartMpi)
VL_METHOD(RemoveInstance)
VL_METHOD(ListEndpoints)

static const struct {
        const char *name;
        VarlinkMethod callback;
} bindings[] = {
        { INTERFACE ".DeployApp", vl_DeployApp },
        { INTERFACE ".ListServices", vl_ListServices },
        { INTERFACE ".GetServiceUrl", vl_GetServiceUrl },
        { INTERFACE ".GetInstancesNum", vl_GetInstancesNum },
        { INTERFACE ".ListInstances", vl_ListInstances },
        { INTERFACE ".GetPort", vl_GetPort },
        { INTERFACE ".GetJournal", vl_GetJournal },
        { INTERFACE ".StopApp", vl_StopApp },
        { INTERFACE ".StartApp", vl_StartApp },
        { INTERFACE ".CatApp", vl_CatApp },
        { INTERFACE ".GetParameters", vl_GetParameters },
        { INTERFACE ".StartCommon", vl_StartCommon },
        { INTERFACE ".StartMpi", vl_StartMpi },
        { INTERFACE ".RemoveInstance", vl_RemoveInstance },
        { INTERFACE ".ListEndpoints", vl_ListEndpoints },
};

/* ---- connections ------------------------------------------------------ */

static int on_connect(VarlinkServer *s, Varlink *link, void *userdata) {
        Manager *m = userdata;
        m->n_connections++;
        manager_update(m);
        return 0;
}

static void on_disconnect(VarlinkServer *s, Varlink *link, void *userdata) {
        Manager *m = userdata;
        journal_follow_drop(m, link);
        if (m->n_connections > 0)
                m->n_connections--;
        manager_update(m);
}

/* ---- setup ------------------------------------------------------------ */

/* The sockets of nap-managerd.socket (FileDescriptorName=varlink). */
static int listen_passed_fds(Manager *m) {
        char **names = NULL;
        int n = sd_listen_fds_with_names(true, &names), r = 0;

        if (n < 0)
                return log_error_errno(n, "Failed to read the sockets passed by systemd: %m");
        if (n == 0)
                return log_error_errno(EBADF, "No socket was passed: start nap-managerd.socket, or give --listen=PATH");
        for (int i = 0; i < n; i++) {
                if (r >= 0) {
                        r = varlink_server_listen_fd(m->varlink, SD_LISTEN_FDS_START + i);
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

static int server_new(Manager *m) {
        int r = varlink_server_new(&m->varlink, VARLINK_SERVER_ACCOUNT_UID | VARLINK_SERVER_INHERIT_USERDATA);
        if (r < 0)
                return log_error_errno(r, "Failed to create the varlink server: %m");
        varlink_server_set_userdata(m->varlink, m);
        r = varlink_server_set_info(m->varlink, "nap", "nap-managerd", NAP_VERSION, "man:io.nap.Manager(7)");
        if (r >= 0)
                r = varlink_server_add_interface(m->varlink, nap_manager_interface);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(bindings); i++)
                r = varlink_server_bind_method(m->varlink, bindings[i].name, bindings[i].callback);
        if (r >= 0)
                r = varlink_server_bind_connect(m->varlink, on_connect);
        if (r >= 0)
                r = varlink_server_bind_disconnect(m->varlink, on_disconnect);
        if (r >= 0)
                r = varlink_server_set_message_max(m->varlink, MANAGER_MESSAGE_MAX);
        if (r >= 0)
                r = varlink_server_attach_event(m->varlink, m->event, SD_EVENT_PRIORITY_NORMAL);
        return r < 0 ? log_error_errno(r, "Failed to set up the varlink server: %m") : 0;
}

int manager_varlink_setup(Manager *m, const char *address) {
        unsigned line = 0, column = 0;
        int r = varlink_idl_parse(nap_manager_interface, &m->idl, &line, &column);
        if (r < 0)
                return log_error_errno(r, "The built-in " INTERFACE " interface does not parse at %u:%u: %m", line,
                                       column);
        r = server_new(m);
        if (r < 0)
                return r;
        if (!address)
                return listen_passed_fds(m);
        /* Anybody may connect; every call is authorized by its uid. */
        r = varlink_server_listen_address(m->varlink, address, 0666);
        return r < 0 ? log_error_errno(r, "Failed to listen on %s: %m", address) : 0;
}

void manager_varlink_done(Manager *m) {
        if (m->varlink)
                (void) varlink_server_shutdown(m->varlink);
        m->varlink = varlink_server_unref(m->varlink);
        m->idl = varlink_idl_free(m->idl);
}
