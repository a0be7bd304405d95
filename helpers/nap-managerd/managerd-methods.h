/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The methods of io.nap.Manager, independent of the protocol that carries
 * them. Arguments come as a JSON object named as in io.nap.Manager.varlink
 * (already checked against it: types are right, required ones present);
 * results go out as the JSON object of the varlink reply. The D-Bus adapter
 * (managerd-dbus.c) builds the same object from its message and converts
 * the result.
 *
 * Every call goes: authorize (method_authorize: names, then the caller's
 * uid, lib/auth.h) → run (here or in a worker) → reply. */

#include <jansson.h>
#include <sys/types.h>

#include "model/auth.h"
#include "ops/ops.h"

typedef enum MethodTarget {
        TARGET_USER,     /* the "user" argument owns what is touched */
        TARGET_SERVICE,  /* the user of "service" */
        TARGET_INSTANCE, /* the user of "instance" */
} MethodTarget;

/* Where the envelope (see method_run_envelope()) of a call answered later
 * (by a worker, from the cache) goes: borrowed for the call; NULL when the
 * call could not be run (out of memory, the worker failed). */
typedef void (*MethodDone)(json_t *envelope, void *userdata);

typedef struct Method {
        const char *name;          /* "ListServices": io.nap.Manager.<name> */
        MethodTarget target;
        NapAccess access;
        /* Runs in a forked worker: it may wait for systemd, the network or
         * a long log. The others only read small files of STATE. */
        bool worker;
        /* Returns the reply object (new reference), or NULL with e set. */
        json_t *(*run)(NapContext *c, json_t *args, NapError *e);
        /* nap-managerd answers it from its cache of systemd's unit states
         * and the manifests (managerd-instances.c) instead of calling run,
         * which napctl --no-helper keeps calling. */
        bool cached;
} Method;

const Method *method_find(const char *name);
/* The name of the argument a NAP_ERROR_INVALID_PARAMETER is about. */
const char *method_invalid_parameter(const Method *method, json_t *args);
int method_authorize(const Method *method, uid_t uid, json_t *args, NapError *e);

/* Runs the method and wraps the outcome: {"parameters": {…}} or
 * {"error": "<Kind>", "message": "…"} (Kind as nap_error_kind_to_string()).
 * This is also what a worker sends back. NULL only when out of memory. */
json_t *method_run_envelope(NapContext *c, const Method *method, json_t *args);

/* The envelope of a result (new reference; NULL: e says why). */
json_t *method_envelope(const Method *method, json_t *result, NapError *e);

/* ListInstances and GetInstancesNum: the array of Instance objects, and
 * the method's reply from it (instances borrowed). */
json_t *method_instances_array(const NapInstanceInfo *l, size_t n);
json_t *method_instances_result(const Method *method, const char *service, json_t *instances, NapError *e);

/* The "lines" argument of GetJournal: default 10; -EINVAL with e set if
 * negative. */
int method_journal_lines(json_t *args, size_t *ret, NapError *e);
