/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "base/error.h"

static const char *const error_kind_table[_NAP_ERROR_KIND_MAX] = {
        [NAP_ERROR_NONE] = "None",
        [NAP_ERROR_INVALID_NAME] = "InvalidName",
        [NAP_ERROR_INVALID_PARAMETER] = "InvalidParameter",
        [NAP_ERROR_INVALID_PROFILE] = "InvalidProfile",
        [NAP_ERROR_INVALID_CONFIG] = "InvalidConfig",
        [NAP_ERROR_INVALID_MANIFEST] = "InvalidManifest",
        [NAP_ERROR_NO_SUCH_SERVICE] = "NoSuchService",
        [NAP_ERROR_NO_SUCH_INSTANCE] = "NoSuchInstance",
        [NAP_ERROR_FETCH_FAILED] = "FetchFailed",
        [NAP_ERROR_NO_FREE_PORT] = "NoFreePort",
        [NAP_ERROR_UNIT_FAILED] = "UnitFailed",
        [NAP_ERROR_PERMISSION_DENIED] = "PermissionDenied",
        [NAP_ERROR_NOT_AVAILABLE] = "NotAvailable",
        [NAP_ERROR_INTERNAL] = "Internal",
        [NAP_ERROR_NO_SUCH_NODE] = "NoSuchNode",
        [NAP_ERROR_NO_SUCH_RESERVATION] = "NoSuchReservation",
        [NAP_ERROR_RESERVATION_EXISTS] = "ReservationExists",
        [NAP_ERROR_INSUFFICIENT_RESOURCES] = "InsufficientResources",
        [NAP_ERROR_NODE_IN_USE] = "NodeInUse",
        [NAP_ERROR_TOO_MANY_CONNECTIONS] = "TooManyConnections",
        [NAP_ERROR_NO_SUCH_JOB] = "NoSuchJob",
        [NAP_ERROR_JOB_EXISTS] = "JobExists",
        [NAP_ERROR_QUEUE_NOT_CONFIGURED] = "QueueNotConfigured",
        [NAP_ERROR_REQUEST_TOO_LARGE] = "RequestTooLarge",
        [NAP_ERROR_NODE_UNREACHABLE] = "NodeUnreachable",
        [NAP_ERROR_CLUSTER_AUTH_FAILED] = "ClusterAuthFailed",
};

const char *nap_error_kind_to_string(NapErrorKind k) {
        if (k < 0 || k >= _NAP_ERROR_KIND_MAX)
                return NULL;
        return error_kind_table[k];
}

NapErrorKind nap_error_kind_from_string(const char *s) {
        return string_table_lookup(error_kind_table, ELEMENTSOF(error_kind_table), s);
}

_printf_(4, 0)
static int error_setv(NapError *e, NapErrorKind kind, int r, const char *fmt, va_list ap, bool with_errno) {
        if (!e || e->kind != NAP_ERROR_NONE)
                return r;

        e->kind = kind;
        e->errnum = r < 0 ? -r : EIO;
        int n = vsnprintf(e->message, sizeof e->message, fmt, ap);
        if (with_errno && n >= 0 && (size_t) n < sizeof e->message)
                snprintf(e->message + n, sizeof e->message - n, ": %s", strerror(e->errnum));
        return r;
}

int nap_error_set(NapError *e, NapErrorKind kind, int r, const char *fmt, ...) {
        va_list ap;

        assert(fmt);

        va_start(ap, fmt);
        error_setv(e, kind, r, fmt, ap, false);
        va_end(ap);
        return r;
}

int nap_error_errno(NapError *e, int r, const char *fmt, ...) {
        va_list ap;

        assert(fmt);

        va_start(ap, fmt);
        error_setv(e, NAP_ERROR_INTERNAL, r, fmt, ap, true);
        va_end(ap);
        return r;
}

void nap_error_prefix(NapError *e, const char *fmt, ...) {
        char prefix[128], msg[sizeof prefix + NAP_ERROR_MESSAGE_MAX];
        va_list ap;

        if (!nap_error_is_set(e))
                return;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        snprintf(msg, sizeof msg, "%s%s", prefix, e->message);
        memcpy(e->message, msg, sizeof e->message - 1);
        e->message[sizeof e->message - 1] = 0;
}

int nap_error_parameter(NapError *e, int r, const char *name) {
        if (e && name && !e->parameter[0])
                snprintf(e->parameter, sizeof e->parameter, "%s", name);
        return r;
}
