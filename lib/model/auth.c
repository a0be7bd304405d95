/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <pwd.h>
#include <stdio.h>

#include "model/auth.h"
#include "model/node.h"
#include "model/names.h"

/* getpwuid_r() wants a buffer for the strings of the entry; NSS modules
 * (LDAP, sssd) may need more than a few KiB, so grow on ERANGE, bounded. */
#define PASSWD_BUFFER_START 1024
#define PASSWD_BUFFER_MAX (1024 * 1024)

static const char *const access_table[_NAP_ACCESS_MAX] = {
        [NAP_ACCESS_READ] = "read",
        [NAP_ACCESS_WRITE] = "write",
        [NAP_ACCESS_ADMIN] = "admin",
};

const char *nap_access_to_string(NapAccess a) {
        return a >= 0 && a < _NAP_ACCESS_MAX ? access_table[a] : NULL;
}

int nap_auth_uid_name(uid_t uid, char *buf, size_t size) {
        assert(buf);

        for (size_t n = PASSWD_BUFFER_START; n <= PASSWD_BUFFER_MAX; n *= 2) {
                _cleanup_free_ char *b = malloc(n);
                struct passwd pw, *result = NULL;
                if (!b)
                        return -ENOMEM;
                int r = getpwuid_r(uid, &pw, b, n, &result);
                if (r == ERANGE)
                        continue;
                /* "Not found" is 0 with no result; some NSS modules say so
                 * with ENOENT/ESRCH/EBADF/EPERM instead (getpwuid_r(3)). */
                if (r == 0 && !result)
                        return -ENOENT;
                if (r == ENOENT || r == ESRCH || r == EBADF || r == EPERM)
                        return -ENOENT;
                if (r != 0)
                        return -r;
                if (strlen(pw.pw_name) >= size)
                        return -ENAMETOOLONG;
                snprintf(buf, size, "%s", pw.pw_name);
                return 0;
        }
        return -ERANGE;
}

static int deny(uid_t uid, const char *user, NapAccess access, const char *why, NapError *e) {
        return nap_error_set(e, NAP_ERROR_PERMISSION_DENIED, -EPERM,
                             "Permission denied: uid %u (%s) may not %s the apps of user %s", (unsigned) uid, why,
                             access == NAP_ACCESS_READ ? "read" : "change", user);
}

int nap_auth_check_user(uid_t uid, const char *user, NapAccess access, NapError *e) {
        char name[256];

        if (!nap_user_is_valid(user))
                return nap_service_from_parts(user, "x", &(NapService) {}, e); /* the one message for bad users */
        if (access < 0 || access >= _NAP_ACCESS_MAX)
                return nap_error_set(e, NAP_ERROR_INTERNAL, -EINVAL, "Invalid access kind %d", (int) access);
        if (uid == 0)
                return 0;

        int r = nap_auth_uid_name(uid, name, sizeof name);
        if (r == -ENOENT || r == -ENAMETOOLONG)
                return deny(uid, user, access, "no user name", e);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to look up the name of uid %u", (unsigned) uid);
        /* Reads are refused like writes for now; see auth.h. */
        if (!streq(name, user))
                return deny(uid, user, access, name, e);
        return 0;
}

int nap_auth_check_service(uid_t uid, const char *service, NapAccess access, NapError *e) {
        NapService s;
        int r = nap_service_parse(service, &s, e);
        return r < 0 ? r : nap_auth_check_user(uid, s.user, access, e);
}

int nap_auth_check_instance(uid_t uid, const char *instance, NapAccess access, NapError *e) {
        NapInstance i;
        int r = nap_instance_parse(instance, &i, e);
        return r < 0 ? r : nap_auth_check_user(uid, i.service.user, access, e);
}

int nap_auth_check_reservation(uid_t uid, const char *name, NapAccess access, NapError *e) {
        char user[NAP_USER_MAX + 1];
        int r = nap_reservation_name_check(name, user, e);
        return r < 0 ? r : nap_auth_check_user(uid, user, access, e);
}

int nap_auth_check_shared(uid_t uid, NapAccess access, const char *what, NapError *e) {
        if (access == NAP_ACCESS_READ || uid == 0)
                return 0;
        return nap_error_set(e, NAP_ERROR_PERMISSION_DENIED, -EPERM, "Permission denied: only root may change %s",
                             what);
}
