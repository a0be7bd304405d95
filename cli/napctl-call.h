/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* How napctl reaches an operation (napctl(1) "TRANSPORT").
 *
 * By default every verb of the seed interface is a call of
 * io.nap.Manager.<Method> to nap-managerd over varlink: on --address=, or
 * on the socket of the scope (/run/nap/io.nap.Manager, or
 * $XDG_RUNTIME_DIR/nap/io.nap.Manager with --user), which systemd
 * socket-activates. With --no-helper the same method runs in this process:
 * the method registry of lib/ops/methods.h on a NapContext of our own,
 * with the same authorization by our uid. Either way a call gives the
 * reply object that lib/ops/io.nap.Manager.varlink describes, so a verb prints one way whatever the transport.
 *
 * Errors: io.nap.Manager.<Kind> become that NapError kind (lib/base/error.h),
 * so exit statuses do not depend on the transport. Anything else (an
 * org.varlink.service error, a dropped connection, a missing socket) is
 * NAP_ERROR_INTERNAL with a message that says what happened; its varlink
 * name, if it had one, is kept for --json (caller_error_name()). */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ops/methods.h"
#include "protocol/varlink.h"

/* Calls that change something run to their end in the helper whatever
 * napctl does: wait for them (a deploy may fetch for minutes). */
#define WRITE_TIMEOUT VARLINK_TIMEOUT_INFINITY
#define READ_TIMEOUT VARLINK_DEFAULT_TIMEOUT_USEC

typedef struct Caller {
        bool local;           /* --no-helper */
        int scope;            /* --user/--system; -1: Scope= of nap.conf */
        const char *address;  /* --address=; NULL: the scope's socket */
        nap_warn_fn warn;     /* for nap.conf's warnings */

        char *socket;         /* the address connected to */
        Varlink *link;        /* connected on the first call */
        NapContext *context;  /* loaded on first use */
        char error_name[128]; /* varlink name of the last non-nap error, "" if none */
} Caller;

void caller_done(Caller *c);

/* The NapContext (nap.conf loaded), for the verbs that always run in this
 * process and for --no-helper. Owned by c. */
int caller_context(Caller *c, NapContext **ret, NapError *e);

/* Calls method ("DeployApp") with params (taken, even on failure; NULL
 * from a failed json_pack() is -ENOMEM). *ret: the reply parameters, a
 * new reference. timeout: per call, VARLINK_TIMEOUT_INFINITY for calls
 * that change something (the helper finishes them anyway). */
int caller_call(Caller *c, const char *method, json_t *params, uint64_t timeout, json_t **ret, NapError *e);

/* As caller_call(), for a call that is safe to repeat (it carries a
 * request id): when the connection drops before the answer (nap-managerd
 * killed or restarted), connects again and repeats it, up to 3 times. */
int caller_call_retrying(Caller *c, const char *method, json_t *params, uint64_t timeout, json_t **ret, NapError *e);

/* The request id of a call that creates something: given (checked), or
 * made up ("napctl-" and 16 random hex digits). */
#define CALLER_REQUEST_ID_MAX 65
int caller_request_id(const char *given, char ret[static CALLER_REQUEST_ID_MAX], NapError *e);

/* Calls method with "more" and hands every reply to fn (parameters
 * borrowed), until the helper ends the call (returns 0), an error
 * (< 0, e set) or SIGINT/SIGTERM (returns 0). fn returning < 0 ends it
 * with that error (e left to fn). */
typedef int (*caller_reply_fn)(json_t *parameters, void *userdata, NapError *e);
int caller_follow(Caller *c, const char *method, json_t *params, caller_reply_fn fn, void *userdata, NapError *e);

/* The error name --json shows for e: "io.nap.Manager.<Kind>", or the
 * varlink error the helper answered when it was not one of ours. */
const char *caller_error_name(const Caller *c, const NapError *e, char buf[static 128]);

/* ---- napctl-local.c: --no-helper ---- */
int local_call(Caller *c, const char *method, json_t *params, json_t **ret, NapError *e);
int local_follow(Caller *c, const char *method, json_t *params, caller_reply_fn fn, void *userdata, NapError *e);
/* For both followers: the loop of a follow ends on SIGINT and SIGTERM. */
int follow_event_new(sd_event **ret);
