/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* io.nap.Manager1 on D-Bus, derived from the registry and the varlink
 * interface: each method (and each extra member its entry names) becomes
 * a vtable entry whose signatures lib/protocol/bus-json.h computes from
 * the interface's types. Every call goes
 *   read      the message into the JSON arguments of the varlink call,
 *             under their varlink names (sd-bus checked the signature);
 *   authorize the sender's euid (sd_bus_query_sender_creds, remembered
 *             per unique name), then run: the dispatcher;
 *   reply     the fields of the JSON result the member carries, in order.
 * NapError kinds become io.nap.Manager1.Error.<Kind> here and nowhere
 * else. D-Bus has no null: strings varlink may leave null are "". */

#include "../common/log.h"
#include "serve-dbus.h"

/* A D-Bus member, as the vtable was built from it. */
typedef struct BusMember {
        const NapMethod *method;
        const char *member;
        NapBusFields in, out;
        char names[512]; /* "in\0…\0out\0…\0\0", as sd-bus takes them */
} BusMember;

/* A D-Bus caller's euid, by its unique name. */
typedef struct BusSender {
        char name[32];
        uid_t uid;
} BusSender;
#define BUS_SENDERS 16

struct BusFront {
        sd_bus *bus;
        NapScope scope;
        Dispatcher *dispatcher;
        BusFrontEvents events;
        BusMember *members;
        size_t n_members;
        sd_bus_vtable *vtable;
        unsigned n_calls;   /* being handled or waiting for a worker */
        bool bus_name_owned;
        bool bus_required;  /* no name, no daemon */
        bool bus_releasing; /* ReleaseName sent, no reply yet */
        BusSender bus_senders[BUS_SENDERS]; /* recent callers, oldest overwritten */
        unsigned bus_senders_next;
};

/* ---- the members, from the registry ----------------------------------- */

/* The fields' D-Bus names, each NUL-terminated, appended at *at. */
static int names_append(const NapBusFields *f, char *names, size_t *at, size_t size) {
        for (size_t i = 0; i < f->n; i++) {
                size_t len = strlen(f->fields[i].name) + 1;
                if (*at + len + 1 > size)
                        return -E2BIG;
                memcpy(names + *at, f->fields[i].name, len);
                *at += len;
        }
        return 0;
}

static int member_build(const NapMethod *method, const NapBusMember *binding, BusMember *b) {
        size_t at = 0;
        *b = (BusMember) { .method = method, .member = binding->member ?: method->name };
        int r = nap_bus_member_fields(method, binding, true, &b->in);
        if (r >= 0)
                r = nap_bus_member_fields(method, binding, false, &b->out);
        if (r >= 0)
                r = names_append(&b->in, b->names, &at, sizeof b->names);
        if (r >= 0)
                r = names_append(&b->out, b->names, &at, sizeof b->names);
        if (r < 0)
                return r;
        b->names[at] = 0; /* the end of the out names */
        return 0;
}

/* Every member of the registry. */
static int members_build(BusFront *m) {
        m->members = calloc(nap_methods_size() * NAP_BUS_MEMBERS_MAX, sizeof *m->members);
        if (!m->members)
                return -ENOMEM;
        for (size_t i = 0; i < nap_methods_size(); i++) {
                const NapMethod *method = nap_method_at(i);
                const NapBusMember *binding;
                for (size_t k = 0; (binding = nap_method_bus_member(method, k)); k++) {
                        int r = member_build(method, binding, m->members + m->n_members);
                        if (r < 0)
                                return log_error_errno(r, "Bug: %s cannot be put on D-Bus: %m", method->name);
                        m->n_members++;
                }
        }
        return 0;
}

static int method_call(sd_bus_message *message, void *userdata, sd_bus_error *error);

/* Authorization is per call, so every method is UNPRIVILEGED for sd-bus. */
static int vtable_build(BusFront *m) {
        m->vtable = calloc(m->n_members + 2, sizeof *m->vtable);
        if (!m->vtable)
                return -ENOMEM;
        m->vtable[0] = (sd_bus_vtable) SD_BUS_VTABLE_START(0);
        for (size_t i = 0; i < m->n_members; i++) {
                const BusMember *b = m->members + i;
                /* SD_BUS_METHOD_WITH_NAMES() spelled out: its names are
                 * literals pasted together, ours are built. */
                m->vtable[i + 1] = (sd_bus_vtable) {
                        .type = _SD_BUS_VTABLE_METHOD,
                        .flags = SD_BUS_VTABLE_UNPRIVILEGED,
                        .x.method = { .member = b->member, .signature = b->in.signature,
                                      .result = b->out.signature, .handler = method_call, .names = b->names },
                };
        }
        m->vtable[m->n_members + 1] = (sd_bus_vtable) SD_BUS_VTABLE_END;
        return 0;
}

static const BusMember *member_find(BusFront *m, const char *member) {
        for (size_t i = 0; member && i < m->n_members; i++)
                if (streq(m->members[i].member, member))
                        return m->members + i;
        return NULL;
}

/* ---- reading and replying --------------------------------------------- */

static int read_args(sd_bus_message *message, const BusMember *b, json_t **ret) {
        json_auto_t *args = json_object();
        if (!args)
                return -ENOMEM;
        for (size_t i = 0; i < b->in.n; i++) {
                const NapBusField *f = b->in.fields + i;
                json_t *v = NULL;
                int r = bus_json_read(message, nap_bus_ints, f->type, f->field, &v);
                if (r < 0)
                        return r;
                if (json_object_set_new(args, f->field, v) < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(args);
        return 0;
}

static int append_result(sd_bus_message *reply, const BusMember *b, json_t *result) {
        int r = 0;
        for (size_t i = 0; r >= 0 && i < b->out.n; i++) {
                const NapBusField *f = b->out.fields + i;
                r = bus_json_append(reply, nap_bus_ints, f->type, f->field, json_object_get(result, f->field));
        }
        return r;
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

/* envelope: see nap_method_envelope(); NULL: the call could not be run. */
static int reply_envelope(sd_bus_message *message, const BusMember *b, json_t *envelope) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        json_t *p = json_object_get(envelope, "parameters");
        int r;

        if (!envelope)
                return reply_error(message, "Internal", "The worker process running the call failed");
        if (!json_is_object(p))
                return reply_error(message, json_string_value(json_object_get(envelope, "error")),
                                   json_string_value(json_object_get(envelope, "message")) ?: "Failed");
        if (!sd_bus_message_get_expect_reply(message))
                return 0;
        r = sd_bus_message_new_method_return(message, &reply);
        if (r >= 0)
                r = append_result(reply, b, p);
        if (r < 0) {
                log_error_errno(r, "Bug: failed to convert the result of %s to D-Bus: %m", b->member);
                return reply_error(message, "Internal", "The result did not convert to D-Bus (a bug in nap-managerd)");
        }
        return sd_bus_send(NULL, reply, NULL);
}

/* ---- calls ------------------------------------------------------------ */

/* A call, referenced until the dispatcher answers it; counted meanwhile. */
typedef struct BusCall {
        BusFront *front;
        sd_bus_message *message;
        const BusMember *member;
} BusCall;

static void bus_call_done(json_t *envelope, void *userdata) {
        BusCall *c = userdata;
        BusFront *m = c->front;
        int r = reply_envelope(c->message, c->member, envelope);
        /* A caller gone meanwhile is the bus daemon's business: the reply
         * is dropped there, what the method changed stays changed. */
        if (r < 0)
                log_debug_errno(r, "Failed to reply to %s: %m", c->member->member);
        sd_bus_message_unref(c->message);
        free(c);
        m->n_calls--;
        m->events.changed(m->events.userdata);
}

static int sender_uid(BusFront *m, sd_bus_message *message, uid_t *ret) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const char *sender = sd_bus_message_get_sender(message);
        bool keep = sender && sender[0] == ':' && strlen(sender) < sizeof m->bus_senders[0].name;

        for (size_t i = 0; keep && i < BUS_SENDERS; i++)
                if (streq(m->bus_senders[i].name, sender)) {
                        *ret = m->bus_senders[i].uid;
                        return 0;
                }
        int r = sd_bus_query_sender_creds(message, SD_BUS_CREDS_EUID | SD_BUS_CREDS_AUGMENT, &creds);
        if (r >= 0)
                r = sd_bus_creds_get_euid(creds, ret);
        if (r < 0 || !keep)
                return r;
        BusSender *slot = m->bus_senders + m->bus_senders_next++ % BUS_SENDERS;
        snprintf(slot->name, sizeof slot->name, "%s", sender);
        slot->uid = *ret;
        return 0;
}

static int dispatch(BusFront *m, sd_bus_message *message, sd_bus_error *error) {
        const BusMember *b = member_find(m, sd_bus_message_get_member(message));
        json_auto_t *args = NULL;
        uid_t uid;
        int r;

        if (!b) /* the vtable is built from the same table */
                return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_METHOD, "No method %s",
                                         sd_bus_message_get_member(message));
        r = read_args(message, b, &args);
        if (r == -ENOTUNIQ)
                return reply_error(message, "InvalidParameter", "A parameter is given twice in params");
        if (r < 0)
                return r;
        r = sender_uid(m, message, &uid);
        if (r < 0) {
                log_debug_errno(r, "Cannot get the credentials of %s: %m", sd_bus_message_get_sender(message));
                return reply_error(message, "PermissionDenied", "The caller's credentials are not known");
        }
        log_debug("uid %u calls %s over D-Bus", (unsigned) uid, b->member);
        BusCall *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        *c = (BusCall) { .front = m, .message = sd_bus_message_ref(message), .member = b };
        m->n_calls++;
        dispatcher_call(m->dispatcher, b->method, uid, args, bus_call_done, c);
        return 1; /* answered by bus_call_done(), maybe already */
}

/* Every method of the vtable. A call in progress keeps the daemon from
 * going idle; its end starts the idle period afresh. */
static int method_call(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        BusFront *m = userdata;
        m->n_calls++;
        m->events.changed(m->events.userdata);
        int r = dispatch(m, message, error);
        m->n_calls--;
        m->events.changed(m->events.userdata);
        return r;
}

/* ---- the connection and the name -------------------------------------- */

static int bus_open(BusFront *m, sd_event *event, int level) {
        int r = m->scope == NAP_SCOPE_USER
                        ? sd_bus_open_user_with_description(&m->bus, "nap-managerd")
                        : sd_bus_open_system_with_description(&m->bus, "nap-managerd");
        if (r < 0)
                return log_full_errno(level, r, "Failed to connect to the %s bus: %m",
                                      m->scope == NAP_SCOPE_USER ? "user" : "system");
        r = sd_bus_add_object_vtable(m->bus, NULL, MANAGER_BUS_PATH, MANAGER_BUS_INTERFACE, m->vtable, m);
        if (r >= 0)
                r = sd_bus_attach_event(m->bus, event, SD_EVENT_PRIORITY_NORMAL);
        return r < 0 ? log_full_errno(level, r, "Failed to set up the D-Bus object: %m") : 0;
}

/* The answer to RequestName: READY=1 waits for it (nap-managerd.c), so
 * that a started service owns its name; varlink calls are served
 * meanwhile. */
static int on_name_requested(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        BusFront *m = userdata;
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
                m->events.failed(r, m->events.userdata);
                return 0;
        } else {
                log_warning_errno(r, "Failed to acquire the D-Bus name " MANAGER_BUS_NAME "%s: %m; "
                                  "serving io.nap.Manager over varlink only",
                                  r == -EEXIST ? " (another nap-managerd has it)" : "");
                m->bus = sd_bus_flush_close_unref(m->bus);
        }
        m->events.ready(m->events.userdata);
        return 0;
}

static int bus_setup(BusFront *m, sd_event *event, bool required) {
        int level = required ? LOG_ERR : LOG_WARNING;
        int r = bus_open(m, event, level);
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
        BusFront *m = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        if (e)
                log_warning("Failed to release the D-Bus name " MANAGER_BUS_NAME ": %s", e->message ?: e->name);
        m->bus_releasing = false;
        m->bus_name_owned = false;
        m->events.changed(m->events.userdata);
        return 0;
}

int bus_front_release(BusFront *m) {
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

int bus_front_new(sd_event *event, Dispatcher *dispatcher, NapScope scope, bool required,
                  const BusFrontEvents *events, BusFront **ret) {
        _cleanup_(bus_front_freep) BusFront *m = calloc(1, sizeof *m);
        int r;

        assert(events);
        assert(ret);
        if (!m)
                return log_error_errno(ENOMEM, "Out of memory");
        *m = (BusFront) { .dispatcher = dispatcher, .scope = scope, .events = *events };
        r = members_build(m);
        if (r >= 0)
                r = vtable_build(m);
        if (r >= 0)
                r = bus_setup(m, event, required);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

unsigned bus_front_calls(const BusFront *m) {
        return m ? m->n_calls : 0;
}

bool bus_front_name_owned(const BusFront *m) {
        return m && m->bus_name_owned;
}

bool bus_front_releasing(const BusFront *m) {
        return m && m->bus_releasing;
}

bool bus_front_connected(const BusFront *m) {
        return m && m->bus;
}

BusFront *bus_front_free(BusFront *m) {
        if (!m)
                return NULL;
        /* Replies to calls answered last (a worker finishing at SIGTERM)
         * are still queued: sent before the connection closes. */
        sd_bus_flush_close_unref(m->bus);
        free(m->vtable);
        free(m->members);
        free(m);
        return NULL;
}
