/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* An error that the library hands to its callers: a kind that names it at
 * the protocol boundary (varlink io.nap.Manager.<Kind>, D-Bus
 * io.nap.Manager1.Error.<Kind>, napctl's message) and one human sentence.
 * Functions return negative errno and, when given a NapError, fill it.
 * The library never logs above debug; programs print e->message once. */

#include <errno.h>
#include <stdarg.h>

#include "base/macro.h"

typedef enum NapErrorKind {
        NAP_ERROR_NONE,
        NAP_ERROR_INVALID_NAME,       /* user, app, service or instance name refused */
        NAP_ERROR_INVALID_PARAMETER,  /* a method/CLI argument or app parameter is wrong */
        NAP_ERROR_INVALID_PROFILE,    /* the app's profile/Procfile cannot be used */
        NAP_ERROR_INVALID_CONFIG,     /* nap.conf has a bad value */
        NAP_ERROR_INVALID_MANIFEST,   /* an instance manifest is damaged */
        NAP_ERROR_NO_SUCH_SERVICE,    /* no app deployed under that name */
        NAP_ERROR_NO_SUCH_INSTANCE,   /* no instance under that name */
        NAP_ERROR_FETCH_FAILED,       /* the app's URL could not be fetched */
        NAP_ERROR_NO_FREE_PORT,       /* PortRange= exhausted */
        NAP_ERROR_UNIT_FAILED,        /* systemd refused or failed a unit job */
        NAP_ERROR_PERMISSION_DENIED,  /* caller may not touch that app */
        NAP_ERROR_NOT_AVAILABLE,      /* the operation needs something not set up */
        NAP_ERROR_INTERNAL,           /* anything else: an errno with context */
        NAP_ERROR_NO_SUCH_NODE,       /* no node record under that name */
        NAP_ERROR_NO_SUCH_RESERVATION, /* nothing reserved under that name */
        NAP_ERROR_RESERVATION_EXISTS, /* the name holds another reservation */
        NAP_ERROR_INSUFFICIENT_RESOURCES, /* the request fits no node (or not the one asked for) */
        NAP_ERROR_NODE_IN_USE,        /* a node with reservations cannot go */
        NAP_ERROR_TOO_MANY_CONNECTIONS, /* nap-managerd's connection limit: a refused connection is told so */
        NAP_ERROR_NO_SUCH_JOB,        /* the resource queue has no such job (for this owner) */
        NAP_ERROR_JOB_EXISTS,         /* the queue holds that request_id or callback already */
        NAP_ERROR_QUEUE_NOT_CONFIGURED, /* a queued start without Etcd= (no queue) */
        NAP_ERROR_REQUEST_TOO_LARGE,  /* a request larger than the node it must run on: it would wait forever */
        NAP_ERROR_NODE_UNREACHABLE,   /* a call forwarded to another host: that host cannot be reached */
        NAP_ERROR_CLUSTER_AUTH_FAILED, /* ... its gate refused this host's certificate, or the other way round */
        _NAP_ERROR_KIND_MAX,
        _NAP_ERROR_KIND_INVALID = -EINVAL,
} NapErrorKind;

#define NAP_ERROR_MESSAGE_MAX 512

typedef struct NapError {
        NapErrorKind kind;
        int errnum; /* positive errno */
        char message[NAP_ERROR_MESSAGE_MAX];
        char parameter[32]; /* an InvalidParameter's argument, when the code that found it knows; "" else */
} NapError;

#define NAP_ERROR_NULL ((NapError) { .kind = NAP_ERROR_NONE })

const char *nap_error_kind_to_string(NapErrorKind k) _pure_;
NapErrorKind nap_error_kind_from_string(const char *s) _pure_;

/* Fills e (if not NULL) unless it already holds an error, so the innermost,
 * most specific message wins. r is a negative errno; returns r. */
int nap_error_set(NapError *e, NapErrorKind kind, int r, const char *fmt, ...) _printf_(4, 5);

/* For a bare negative errno from below: "<what>: <strerror>", kind INTERNAL
 * (or the kind already set). Returns r. */
int nap_error_errno(NapError *e, int r, const char *fmt, ...) _printf_(3, 4);

/* Adds context in front of an error already set ("alice_web_common@1: …"),
 * cut to fit as nap_error_set() does; nothing when e holds no error. */
void nap_error_prefix(NapError *e, const char *fmt, ...) _printf_(2, 3);

/* Names the argument an error is about (varlink's InvalidParameter
 * "parameter"); returns r. */
int nap_error_parameter(NapError *e, int r, const char *name);

static inline bool nap_error_is_set(const NapError *e) {
        return e && e->kind != NAP_ERROR_NONE;
}
