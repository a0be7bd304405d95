/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The D-Bus adapter: io.nap.Manager1 over the protocol-neutral methods of
 * managerd-methods.c. Every call goes
 *   read      the message into the JSON arguments the methods take
 *             (sd-bus has checked the signature against the vtable);
 *   validate  names, by method_authorize(), before anything else;
 *   authorize the sender's euid (sd_bus_query_sender_creds, remembered
 *             per unique name) → lib/auth;
 *   act       in the loop, or in a worker (managerd-worker.c) or from the
 *             cache (managerd-instances.c), with the call referenced and
 *             answered from the callback;
 *   reply     the JSON result converted to the method's out arguments.
 * NapError kinds become io.nap.Manager1.Error.<Kind> here and nowhere
 * else. D-Bus has no null: strings varlink may leave null are "". */

#include "managerd-dbus.h"
#include "managerd-worker.h"

/* How one D-Bus method maps onto the method table: its JSON argument
 * names, in the order of the D-Bus in arguments, and the converter of
 * the result. StartCommon comes twice (the seed's "k=v,k=v" string, and
 * a map), so the D-Bus member is not always the method's name. */
typedef int (*BusReplyFn)(sd_bus_message *reply, json_t *result);

typedef struct BusMethod {
        const char *member;
        const char *method;
        const char *args[2];
        BusReplyFn reply;
} BusMethod;

typedef struct BusCall {
        Manager *manager;
        sd_bus_message *message;
        const BusMethod *bus_method;
} BusCall;

/* ---- reading ---------------------------------------------------------- */

static int read_map(sd_bus_message *message, json_t **ret) {
        json_auto_t *o = json_object();
        const char *k, *v;
        int r;

        if (!o)
                return -ENOMEM;
        r = sd_bus_message_enter_container(message, 'a', "{ss}");
        while (r >= 0 && (r = sd_bus_message_read(message, "{ss}", &k, &v)) > 0) {
                /* A D-Bus dict may repeat a key; a JSON object may not. */
                if (json_object_get(o, k))
                        return -ENOTUNIQ;
                /* D-Bus strings are valid UTF-8: jansson takes them. */
                if (json_object_set_new(o, k, json_string(v)) < 0)
                        return -ENOMEM;
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(message);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

/* The in arguments are s, u or a{ss}: sd-bus checked the signature. */
static int read_arg(sd_bus_message *message, json_t **ret) {
        const char *contents, *s;
        uint32_t u;
        char type;
        int r = sd_bus_message_peek_type(message, &type, &contents);
        if (r <= 0)
                return r < 0 ? r : -EBADMSG;
        switch (type) {
        case 's':
                r = sd_bus_message_read_basic(message, 's', &s);
                *ret = r < 0 ? NULL : json_string(s);
                break;
        case 'u':
                r = sd_bus_message_read_basic(message, 'u', &u);
                *ret = r < 0 ? NULL : json_integer(u);
                break;
        case 'a':
                return read_map(message, ret);
        default:
                return -EBADMSG;
        }
        return r < 0 ? r : *ret ? 0 : -ENOMEM;
}

static int read_args(sd_bus_message *message, const BusMethod *bm, json_t **ret) {
        json_auto_t *args = json_object();
        if (!args)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(bm->args) && bm->args[i]; i++) {
                json_t *v = NULL;
                int r = read_arg(message, &v);
                if (r < 0)
                        return r;
                if (json_object_set_new(args, bm->args[i], v) < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(args);
        return 0;
}

/* ---- replies ---------------------------------------------------------- */

static const char *jstr(json_t *o, const char *key) {
        return json_string_value(json_object_get(o, key)) ?: "";
}

static json_int_t jint(json_t *o, const char *key) {
        return json_integer_value(json_object_get(o, key));
}

static int append_strv(sd_bus_message *reply, json_t *a) {
        json_t *v;
        size_t i;
        int r = sd_bus_message_open_container(reply, 'a', "s");
        json_array_foreach(a, i, v)
                if (r >= 0)
                        r = sd_bus_message_append_basic(reply, 's', json_string_value(v) ?: "");
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

static int append_map(sd_bus_message *reply, json_t *o) {
        const char *k;
        json_t *v;
        int r = sd_bus_message_open_container(reply, 'a', "{ss}");
        json_object_foreach(o, k, v)
                if (r >= 0)
                        r = sd_bus_message_append(reply, "{ss}", k, json_string_value(v) ?: "");
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

#define INSTANCE_FIELDS "ssuusbssasa{ss}"

/* The Instance type of io.nap.Manager.varlink, as a struct. */
static int append_instance(sd_bus_message *reply, json_t *i) {
        int r = sd_bus_message_open_container(reply, 'r', INSTANCE_FIELDS);
        if (r >= 0)
                r = sd_bus_message_append(reply, "ssuusbss", jstr(i, "instance"), jstr(i, "unit"),
                                          (uint32_t) jint(i, "number"), (uint32_t) jint(i, "port"), jstr(i, "url"),
                                          json_is_true(json_object_get(i, "enabled")), jstr(i, "active_state"),
                                          jstr(i, "sub_state"));
        if (r >= 0)
                r = append_strv(reply, json_object_get(i, "argv"));
        if (r >= 0)
                r = append_map(reply, json_object_get(i, "params"));
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

static int reply_nothing(sd_bus_message *reply, json_t *p) {
        return 0;
}

static int reply_deploy(sd_bus_message *reply, json_t *p) {
        return sd_bus_message_append(reply, "sbss", jstr(p, "commit"), json_is_true(json_object_get(p, "changed")),
                                     jstr(p, "etcd"), jstr(p, "etcdError"));
}

static int reply_services(sd_bus_message *reply, json_t *p) {
        json_t *s;
        size_t i;
        int r = sd_bus_message_open_container(reply, 'a', "(sssst)");
        json_array_foreach(json_object_get(p, "services"), i, s)
                if (r >= 0)
                        r = sd_bus_message_append(reply, "(sssst)", jstr(s, "service"), jstr(s, "app"),
                                                  jstr(s, "url"), jstr(s, "commit"), (uint64_t) jint(s, "deployed"));
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

static int reply_url(sd_bus_message *reply, json_t *p) {
        return sd_bus_message_append(reply, "ss", jstr(p, "url"), jstr(p, "source"));
}

static int reply_instances_num(sd_bus_message *reply, json_t *p) {
        return sd_bus_message_append(reply, "u", (uint32_t) jint(p, "instances"));
}

static int reply_instances(sd_bus_message *reply, json_t *p) {
        json_t *i;
        size_t k;
        int r = sd_bus_message_open_container(reply, 'a', "(" INSTANCE_FIELDS ")");
        json_array_foreach(json_object_get(p, "instances"), k, i)
                if (r >= 0)
                        r = append_instance(reply, i);
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

static int reply_instance(sd_bus_message *reply, json_t *p) {
        int r = append_instance(reply, json_object_get(p, "instance"));
        return r < 0 ? r : sd_bus_message_append_basic(reply, 's', jstr(p, "etcd"));
}

static int reply_port(sd_bus_message *reply, json_t *p) {
        return sd_bus_message_append(reply, "us", (uint32_t) jint(p, "port"), jstr(p, "source"));
}

static int reply_journal(sd_bus_message *reply, json_t *p) {
        json_t *j;
        size_t i;
        int r = sd_bus_message_open_container(reply, 'a', "(tsisu)");
        json_array_foreach(json_object_get(p, "entries"), i, j)
                if (r >= 0)
                        r = sd_bus_message_append(reply, "(tsisu)", (uint64_t) jint(j, "time"), jstr(j, "message"),
                                                  (int32_t) jint(j, "priority"), jstr(j, "identifier"),
                                                  (uint32_t) jint(j, "pid"));
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

static int reply_profile(sd_bus_message *reply, json_t *p) {
        return sd_bus_message_append(reply, "s", jstr(p, "profile"));
}

static int reply_parameters(sd_bus_message *reply, json_t *p) {
        return append_strv(reply, json_object_get(p, "parameters"));
}

static int reply_endpoints(sd_bus_message *reply, json_t *p) {
        json_t *ep;
        size_t i;
        int r = sd_bus_message_open_container(reply, 'a', "(suss)");
        json_array_foreach(json_object_get(p, "endpoints"), i, ep)
                if (r >= 0)
                        r = sd_bus_message_append(reply, "(suss)", jstr(ep, "host"), (uint32_t) jint(ep, "port"),
                                                  jstr(ep, "instance"), jstr(ep, "unit"));
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

static const BusMethod bus_methods[] = {
        { "DeployApp", "DeployApp", { "service", "url" }, reply_deploy },
        { "ListServices", "ListServices", { "user" }, reply_services },
        { "GetServiceUrl", "GetServiceUrl", { "service" }, reply_url },
        { "GetInstancesNum", "GetInstancesNum", { "service" }, reply_instances_num },
        { "ListInstances", "ListInstances", { "service" }, reply_instances },
        { "GetPort", "GetPort", { "instance" }, reply_port },
        { "GetJournal", "GetJournal", { "instance", "lines" }, reply_journal },
        { "StopApp", "StopApp", { "instance" }, reply_nothing },
        { "StartApp", "StartApp", { "instance" }, reply_nothing },
        { "CatApp", "CatApp", { "instance" }, reply_profile },
        { "GetParameters", "GetParameters", { "service" }, reply_parameters },
        { "StartCommon", "StartCommon", { "service", "paramsString" }, reply_instance },
        { "StartCommonWithParams", "StartCommon", { "service", "params" }, reply_instance },
        { "StartMpi", "StartMpi", { "service", "paramsString" }, reply_instances },
        { "RemoveInstance", "RemoveInstance", { "instance" }, reply_nothing },
        { "ListEndpoints", "ListEndpoints", { "service" }, reply_endpoints },
};

static const BusMethod *bus_method_find(const char *member) {
        for (size_t i = 0; member && i < ELEMENTSOF(bus_methods); i++)
                if (streq(bus_methods[i].member, member))
                        return bus_methods + i;
        return NULL;
}

/* D-Bus strings must be UTF-8; a NapError message quoting a name cut at
 * its size limit may not be. Such a message loses its non-ASCII bytes. */
static int reply_error(sd_bus_message *message, const char *kind, const char *text) {
        char name[96], safe[NAP_ERROR_MESSAGE_MAX];
        json_auto_t *utf8 = json_string(text);

        if (!kind || nap_error_kind_from_string(kind) <= NAP_ERROR_NONE)
                kind = "Internal";
        snprintf(name, sizeof name, MANAGER_BUS_ERROR_PREFIX "%s", kind);
        snprintf(safe, sizeof safe, "%s", text);
        for (char *p = safe; !utf8 && *p; p++)
                if ((unsigned char) *p >= 0x80)
                        *p = '?';
        if (streq(kind, "Internal"))
                log_warning("%s failed: %s", sd_bus_message_get_member(message), safe);
        return sd_bus_reply_method_errorf(message, name, "%s", safe);
}

/* envelope: see method_run_envelope(). */
static int reply_envelope(sd_bus_message *message, const BusMethod *bm, json_t *envelope) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        json_t *p = json_object_get(envelope, "parameters");
        int r;

        if (!json_is_object(p))
                return reply_error(message, json_string_value(json_object_get(envelope, "error")),
                                   json_string_value(json_object_get(envelope, "message")) ?: "Failed");
        if (!sd_bus_message_get_expect_reply(message))
                return 0;
        r = sd_bus_message_new_method_return(message, &reply);
        if (r >= 0)
                r = bm->reply(reply, p);
        if (r < 0) {
                log_error_errno(r, "Bug: failed to convert the result of %s to D-Bus: %m", bm->member);
                return reply_error(message, "Internal", "The result did not convert to D-Bus (a bug in nap-managerd)");
        }
        return sd_bus_send(NULL, reply, NULL);
}

/* ---- calls run by a worker -------------------------------------------- */

static void bus_call_done(Manager *m, json_t *envelope, void *userdata) {
        BusCall *c = userdata;
        int r = envelope ? reply_envelope(c->message, c->bus_method, envelope)
                         : reply_error(c->message, "Internal", "The worker process running the call failed");
        /* A caller gone meanwhile is the bus daemon's business: the reply
         * is dropped there, what the method changed stays changed. */
        if (r < 0)
                log_debug_errno(r, "Failed to reply to %s: %m", c->bus_method->member);
        sd_bus_message_unref(c->message);
        free(c);
        m->n_bus_calls--; /* worker_finish() calls manager_update() next */
}

static void bus_call_answered(json_t *envelope, void *userdata) {
        BusCall *c = userdata;
        Manager *m = c->manager;
        bus_call_done(m, envelope, c);
        manager_update(m);
}

/* The call, referenced until answered; counted as a bus call meanwhile. */
static BusCall *bus_call_new(Manager *m, sd_bus_message *message, const BusMethod *bm) {
        BusCall *c = calloc(1, sizeof *c);
        if (!c)
                return NULL;
        *c = (BusCall) { .manager = m, .message = sd_bus_message_ref(message), .bus_method = bm };
        m->n_bus_calls++;
        return c;
}

/* A method answered from the cache: answered from bus_call_answered(),
 * maybe before this returns. */
static int bus_call_start(Manager *m, sd_bus_message *message, const BusMethod *bm, const Method *method,
                          json_t *args) {
        BusCall *c = bus_call_new(m, message, bm);
        if (!c)
                return -ENOMEM;
        instances_call(m, method, args, bus_call_answered, c);
        return 1;
}

static int bus_call_submit(Manager *m, sd_bus_message *message, const BusMethod *bm, const Method *method,
                           json_t *args) {
        BusCall *c = bus_call_new(m, message, bm);
        if (!c)
                return -ENOMEM;
        int r = worker_submit(m, method, args, bus_call_done, c);
        if (r >= 0)
                return 1; /* the reply comes from bus_call_done() */
        m->n_bus_calls--;
        sd_bus_message_unref(c->message);
        free(c);
        if (r == -ESHUTDOWN)
                return reply_error(message, "NotAvailable", "nap-managerd is shutting down; call again");
        return r;
}

/* ---- dispatch --------------------------------------------------------- */

/* The bus daemon attaches no credentials to messages: sd-bus asks it, a
 * round trip that blocks the loop. A unique name belongs to one
 * connection and is never given to another by the same bus daemon, and a
 * connection's euid is fixed when it connects, so the answer is kept. */
static int sender_uid(Manager *m, sd_bus_message *message, uid_t *ret) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const char *sender = sd_bus_message_get_sender(message);
        bool keep = sender && sender[0] == ':' && strlen(sender) < sizeof m->bus_senders[0].name;

        for (size_t i = 0; keep && i < MANAGER_BUS_SENDERS; i++)
                if (streq(m->bus_senders[i].name, sender)) {
                        *ret = m->bus_senders[i].uid;
                        return 0;
                }
        int r = sd_bus_query_sender_creds(message, SD_BUS_CREDS_EUID | SD_BUS_CREDS_AUGMENT, &creds);
        if (r >= 0)
                r = sd_bus_creds_get_euid(creds, ret);
        if (r < 0 || !keep)
                return r;
        BusSender *slot = m->bus_senders + m->bus_senders_next++ % MANAGER_BUS_SENDERS;
        snprintf(slot->name, sizeof slot->name, "%s", sender);
        slot->uid = *ret;
        return 0;
}

static int dispatch(Manager *m, sd_bus_message *message, sd_bus_error *error) {
        const BusMethod *bm = bus_method_find(sd_bus_message_get_member(message));
        const Method *method = bm ? method_find(bm->method) : NULL;
        NapError e = NAP_ERROR_NULL;
        json_auto_t *args = NULL;
        uid_t uid;
        int r;

        if (!method) /* the vtable and the table above disagree */
                return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_METHOD, "No method %s",
                                         sd_bus_message_get_member(message));
        r = read_args(message, bm, &args);
        if (r == -ENOTUNIQ)
                return reply_error(message, "InvalidParameter", "A parameter is given twice in params");
        if (r < 0)
                return r;
        r = sender_uid(m, message, &uid);
        if (r < 0) {
                log_debug_errno(r, "Cannot get the credentials of %s: %m", sd_bus_message_get_sender(message));
                return reply_error(message, "PermissionDenied", "The caller's credentials are not known");
        }
        log_debug("uid %u calls %s over D-Bus", (unsigned) uid, bm->member);
        if (method_authorize(method, uid, args, &e) < 0)
                return reply_error(message, nap_error_kind_to_string(e.kind), e.message);
        if (method->worker)
                return bus_call_submit(m, message, bm, method, args);
        if (method->cached)
                return bus_call_start(m, message, bm, method, args);

        json_auto_t *envelope = method_run_envelope(m->context, method, args);
        if (!envelope)
                return -ENOMEM;
        return reply_envelope(message, bm, envelope);
}

/* Every method of the vtable. A call in progress keeps the daemon from
 * going idle; its end starts the idle period afresh. */
static int method_call(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        m->n_bus_calls++;
        manager_update(m);
        int r = dispatch(m, message, error);
        m->n_bus_calls--;
        manager_update(m);
        return r;
}

#define INSTANCE "(" INSTANCE_FIELDS ")"
#define UNPRIVILEGED SD_BUS_VTABLE_UNPRIVILEGED

/* Authorization is per call (lib/auth.h), so every method is
 * UNPRIVILEGED for sd-bus. Keep in step with dbus/io.nap.Manager1.xml. */
static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("DeployApp", SD_BUS_ARGS("s", service, "s", url),
                                SD_BUS_RESULT("s", commit, "b", changed, "s", etcd, "s", etcd_error),
                                method_call, UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListServices", SD_BUS_ARGS("s", user),
                                SD_BUS_RESULT("a(sssst)", services),
                                method_call, UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetServiceUrl", SD_BUS_ARGS("s", service),
                                SD_BUS_RESULT("s", url, "s", source),
                                method_call, UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetInstancesNum", SD_BUS_ARGS("s", service),
                                SD_BUS_RESULT("u", instances),
                                method_call, UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListInstances", SD_BUS_ARGS("s", service),
                                SD_BUS_RESULT("a" INSTANCE, instances),
                                method_call, UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetPort", SD_BUS_ARGS("s", instance),
                                SD_BUS_RESULT("u", port, "s", source),
                                method_call, UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetJournal", SD_BUS_ARGS("s", instance, "u", lines),
                                SD_BUS_RESULT("a(tsisu)", entries),
                                method_call, UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("StopApp", SD_BUS_ARGS("s", instance),
                                SD_BUS_NO_RESULT,
                                method_call, UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("StartApp", SD_BUS_ARGS("s", instance),
                                SD_BUS_NO_RESULT,
                                method_call, UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CatApp", SD_BUS_ARGS("s", instance),
                                SD_BUS_RESULT("s", profile),
                                method_call, UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetParameters", SD_BUS_ARGS("s", service),
                                SD_BUS_RESULT("as", parameters),
                                method_call, UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("StartCommon", SD_BUS_ARGS("s", service, "s", params),
                                SD_BUS_RESULT(INSTANCE, instance, "s", etcd),
                                method_call, UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("StartCommonWithParams", SD_BUS_ARGS("s", service, "a{ss}", params),
                                SD_BUS_RESULT(INSTANCE, instance, "s", etcd),
                                method_call, UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("StartMpi", SD_BUS_ARGS("s", service, "s", params),
                                SD_BUS_RESULT("a" INSTANCE, instances),
                                method_call, UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RemoveInstance", SD_BUS_ARGS("s", instance),
                                SD_BUS_NO_RESULT,
                                method_call, UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListEndpoints", SD_BUS_ARGS("s", service),
                                SD_BUS_RESULT("a(suss)", endpoints),
                                method_call, UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

/* ---- the connection and the name -------------------------------------- */

static int bus_open(Manager *m, int level) {
        int r = m->context->scope == NAP_SCOPE_USER
                        ? sd_bus_open_user_with_description(&m->bus, "nap-managerd")
                        : sd_bus_open_system_with_description(&m->bus, "nap-managerd");
        if (r < 0)
                return log_full_errno(level, r, "Failed to connect to the %s bus: %m",
                                      m->context->scope == NAP_SCOPE_USER ? "user" : "system");
        r = sd_bus_add_object_vtable(m->bus, NULL, MANAGER_BUS_PATH, MANAGER_BUS_INTERFACE, manager_vtable, m);
        if (r >= 0)
                r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        return r < 0 ? log_full_errno(level, r, "Failed to set up the D-Bus object: %m") : 0;
}

/* The answer to RequestName: READY=1 waits for it (nap-managerd.c), so
 * that a started service owns its name; varlink calls are served
 * meanwhile. */
static int on_name_requested(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Manager *m = userdata;
        const sd_bus_error *error = sd_bus_message_get_error(reply);
        uint32_t code = 0;
        int r = error ? -sd_bus_message_get_errno(reply) : sd_bus_message_read(reply, "u", &code);

        /* 1: primary owner, 4: already the owner; 3 (exists) is what a
         * request without queueing gets when another process has it. */
        if (r >= 0 && code != 1 && code != 4)
                r = -EEXIST;
        if (r >= 0)
                m->bus_name_owned = true;
        else if (m->bus_required) {
                log_error_errno(r, "Failed to acquire the D-Bus name " MANAGER_BUS_NAME "%s: %m",
                                r == -EEXIST ? " (another nap-managerd has it)" : "");
                (void) sd_event_exit(m->event, r);
                return 0;
        } else {
                log_warning_errno(r, "Failed to acquire the D-Bus name " MANAGER_BUS_NAME "%s: %m; "
                                  "serving io.nap.Manager over varlink only",
                                  r == -EEXIST ? " (another nap-managerd has it)" : "");
                manager_bus_done(m);
        }
        manager_ready(m);
        return 0;
}

int manager_bus_setup(Manager *m, bool required) {
        int level = required ? LOG_ERR : LOG_WARNING;
        int r = bus_open(m, level);
        if (r < 0)
                return r;
        m->bus_required = required;
        r = sd_bus_request_name_async(m->bus, NULL, MANAGER_BUS_NAME, 0, on_name_requested, m);
        if (r < 0)
                return log_full_errno(level, r, "Failed to request the D-Bus name " MANAGER_BUS_NAME ": %m");
        return 0;
}

/* The bus daemon confirmed the release: calls routed to us before it have
 * been received by now; they are answered, then manager_update() exits. */
static int on_name_released(sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        if (e)
                log_warning("Failed to release the D-Bus name " MANAGER_BUS_NAME ": %s", e->message ?: e->name);
        m->bus_releasing = false;
        m->bus_name_owned = false;
        manager_update(m);
        return 0;
}

int manager_bus_release(Manager *m) {
        if (!m->bus || !m->bus_name_owned)
                return 0;
        int r = sd_bus_release_name_async(m->bus, NULL, MANAGER_BUS_NAME, on_name_released, m);
        if (r < 0) {
                log_warning_errno(r, "Failed to release the D-Bus name " MANAGER_BUS_NAME ": %m");
                return 0;
        }
        m->bus_releasing = true;
        return 1;
}

void manager_bus_done(Manager *m) {
        /* Replies to calls answered last (a worker finishing at SIGTERM)
         * are still queued: sent before the connection closes. */
        m->bus = sd_bus_flush_close_unref(m->bus);
}
