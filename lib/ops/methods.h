/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The method registry: every method of io.nap.Manager, once. An entry
 * says which argument names the owner (for authorization), the access it
 * needs, how it runs, the function that implements it, and how it looks on
 * D-Bus. The interface description (io.nap.Manager.varlink, compiled in)
 * types the arguments and results; the D-Bus signatures are derived from
 * it (lib/protocol/bus-json.h). nap-managerd's varlink and D-Bus adapters,
 * and napctl --no-helper, look methods up here and nowhere else.
 *
 * A call goes: validate (the interface) → authorize (nap_method_authorize:
 * names, then the caller's uid, lib/model/auth.h) → run (inline, in a
 * worker, from the cache, or streamed) → reply. Arguments come as the JSON
 * object of the varlink call; results go out as the JSON object of the
 * varlink reply, wrapped in an envelope (nap_method_envelope()) so that
 * they can cross a pipe from a worker. */

#include <jansson.h>
#include <sys/types.h>

#include "model/auth.h"
#include "ops/ops.h"
#include "protocol/bus-json.h"
#include "protocol/varlink-idl.h"

#define NAP_MANAGER_INTERFACE "io.nap.Manager"
/* nap-managerd's varlink socket, below /run or $XDG_RUNTIME_DIR (nap-managerd.socket). */
#define NAP_MANAGER_SOCKET_NAME "nap/io.nap.Manager"

typedef enum NapMethodRun {
        /* In the caller's loop: reads small files of STATE only. */
        NAP_METHOD_INLINE,
        /* May wait (systemd jobs, git, etcd, a long log): nap-managerd
         * runs it in a forked worker. */
        NAP_METHOD_WORKER,
        /* As INLINE on a host of its own; with Etcd= (the cluster's view
         * comes from etcd, which the loop must not wait for) as WORKER. */
        NAP_METHOD_INLINE_OR_CLUSTER,
        /* nap-managerd answers it from its cache of systemd's unit states
         * and the manifests, through from_instances; napctl --no-helper
         * runs call. */
        NAP_METHOD_CACHED,
} NapMethodRun;

/* Returns the reply object (new reference), or NULL with e set. */
typedef json_t *(*NapMethodFn)(NapContext *c, json_t *args, NapError *e);
/* A cached method's reply from the array of Instance objects of service
 * (borrowed). */
typedef json_t *(*NapInstancesReplyFn)(const char *service, json_t *instances, NapError *e);

/* One D-Bus member of a method: the varlink fields it carries, in D-Bus
 * order, each "field" or "field:dbus_name". NULL: every field of the
 * interface, in its order, under its own name. */
typedef struct NapBusMember {
        const char *member; /* NULL: the method's name */
        const char *const *in;
        const char *const *out;
} NapBusMember;

#define NAP_BUS_MEMBERS_MAX 6

/* What the owner argument names, and so whose it is (lib/model/auth.h). */
typedef enum NapOwner {
        NAP_OWNER_NONE,        /* nobody's: the cluster's inventory (nap_auth_check_shared) */
        NAP_OWNER_USER,        /* a nap user */
        NAP_OWNER_SERVICE,     /* USER_APP */
        NAP_OWNER_INSTANCE,    /* USER_APP_common@N */
        NAP_OWNER_RESERVATION, /* USER_REST */
} NapOwner;

typedef struct NapMethod {
        const char *name;      /* "ListServices": io.nap.Manager.ListServices */
        NapOwner owns;
        const char *owner;     /* the argument that names it; NULL for NAP_OWNER_NONE */
        NapAccess access;
        NapMethodRun run;
        bool streams;          /* called with "more", follows (GetJournal) */
        const char *parameter; /* what an InvalidParameter is about; NULL: owner */
        NapMethodFn call;
        NapInstancesReplyFn from_instances; /* NAP_METHOD_CACHED */
        NapBusMember bus[NAP_BUS_MEMBERS_MAX]; /* none given: one, all fields */
} NapMethod;

/* The registry, in the order of the interface description. */
size_t nap_methods_size(void) _pure_;
const NapMethod *nap_method_at(size_t i) _pure_;
const NapMethod *nap_method_find(const char *name) _pure_;

/* The interface description: its text, and parsed (once, kept). */
const char *nap_manager_interface_text(void) _pure_;
const VarlinkIdl *nap_manager_idl(void);

/* The D-Bus type of the interface's int fields (bus-json.h). */
extern const BusJsonInt nap_bus_ints[];

/* The k-th D-Bus member of m, from 0: its entry's bus[k], or for a method
 * whose entry gives none, one member with its name and every field. NULL
 * past the last. */
const NapBusMember *nap_method_bus_member(const NapMethod *m, size_t k);

/* One field of a D-Bus member: its varlink name and type, its D-Bus name. */
typedef struct NapBusField {
        const char *field;
        char name[64];
        const VarlinkIdlType *type;
} NapBusField;

#define NAP_BUS_FIELDS_MAX 8

typedef struct NapBusFields {
        NapBusField fields[NAP_BUS_FIELDS_MAX];
        size_t n;
        char signature[BUS_JSON_SIGNATURE_MAX + 1];
} NapBusFields;

/* The in (or out) fields of member b of m, in D-Bus order, and their
 * signature: -ENOENT for a field the interface does not have, -E2BIG for
 * too many or too long. */
int nap_bus_member_fields(const NapMethod *m, const NapBusMember *b, bool in, NapBusFields *ret);

/* The name of the argument an InvalidParameter error is about: named
 * (NapError.parameter) when it is one of the method's, else the entry's
 * guess. Lives as long as args and the interface. */
const char *nap_method_invalid_parameter(const NapMethod *m, json_t *args, const char *named);
/* The caller's uid may act on the owner argument's apps (validated). */
int nap_method_authorize(const NapMethod *m, uid_t uid, json_t *args, NapError *e);

/* {"parameters": {…}} or {"error": "<Kind>", "message": "…"} (Kind as
 * nap_error_kind_to_string()). NULL only when out of memory. */
json_t *nap_method_envelope(const NapMethod *m, json_t *result, NapError *e);
/* Runs m->call (arguments authorized already) and wraps the outcome: this
 * is also what a worker sends back. */
json_t *nap_method_run(NapContext *c, const NapMethod *m, json_t *args);
/* The whole call in this process: authorize, then run. */
json_t *nap_method_call(NapContext *c, const NapMethod *m, uid_t uid, json_t *args);
/* A reply object matches the method's output in the interface: 0, or
 * -EINVAL with *ret_bad_field naming the first field that does not. A
 * mismatch is a bug of ours, better loud at the server than a surprise
 * in a client. */
int nap_method_check_result(const NapMethod *m, json_t *result, const char **ret_bad_field);
/* An envelope as a result (new reference) or NULL with e set. */
json_t *nap_method_unwrap(json_t *envelope, NapError *e);

/* The array of Instance objects (cached methods). */
json_t *nap_instances_json(const NapInstanceInfo *l, size_t n);
/* The "lines" argument of GetJournal: default 10; -EINVAL with e set if
 * negative. */
int nap_method_journal_lines(json_t *args, size_t *ret, NapError *e);
