/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Who may act on whose apps (DESIGN.md "Authorization"). A caller is a uid
 * (SO_PEERCRED of a varlink connection, sd-bus credentials of a D-Bus
 * message); an app belongs to a nap user, the USER of "USER_APP".
 *
 *   - uid 0 may do anything;
 *   - any other uid may act on the apps of the nap user whose name equals
 *     the uid's login name in the user database (getpwuid_r(3)); a uid
 *     without a name, or with a name that is not a valid nap user name,
 *     owns nothing;
 *   - reading another user's apps is refused as well. NapAccess keeps the
 *     two apart so that a later nap.conf option (e.g. "ReadAccess=all") can
 *     open reads without touching the callers.
 *
 * Names are validated first (NAP_ERROR_INVALID_NAME, as lib/model/names.h), so a
 * refusal never depends on the user database for a name that cannot exist.
 * A refusal is NAP_ERROR_PERMISSION_DENIED with -EPERM. Nothing logs. */

#include <stdbool.h>
#include <sys/types.h>

#include "base/error.h"

typedef enum NapAccess {
        NAP_ACCESS_READ,  /* list, show, read logs */
        NAP_ACCESS_WRITE, /* deploy, start, stop, remove */
        NAP_ACCESS_ADMIN, /* the cluster's nodes: root only */
        _NAP_ACCESS_MAX,
        _NAP_ACCESS_INVALID = -EINVAL,
} NapAccess;

const char *nap_access_to_string(NapAccess a) _pure_; /* "read", "write", "admin" */

/* The login name of uid into buf (size bytes). -ENOENT if uid has none,
 * -ENAMETOOLONG if it does not fit. */
int nap_auth_uid_name(uid_t uid, char *buf, size_t size);

/* 0 if uid may act on user's apps with this access. */
int nap_auth_check_user(uid_t uid, const char *user, NapAccess access, NapError *e);
/* The same for the user of a service ("USER_APP") or an instance name. */
int nap_auth_check_service(uid_t uid, const char *service, NapAccess access, NapError *e);
int nap_auth_check_instance(uid_t uid, const char *instance, NapAccess access, NapError *e);
/* ... of a reservation ("USER_REST", lib/model/node.h). */
int nap_auth_check_reservation(uid_t uid, const char *name, NapAccess access, NapError *e);
/* What belongs to nobody: reading it is for every local user, changing it
 * (NAP_ACCESS_ADMIN, or WRITE) for root. */
int nap_auth_check_shared(uid_t uid, NapAccess access, const char *what, NapError *e);
