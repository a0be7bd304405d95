/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <stdio.h>

#include "model/names.h"

static const char *const kind_table[_NAP_KIND_MAX] = {
        [NAP_KIND_COMMON] = "common",
        [NAP_KIND_MPI_MASTER] = "mpi_master",
        [NAP_KIND_MPI_SLAVE] = "mpi_slave",
};

const char *nap_kind_to_string(NapKind k) {
        return k >= 0 && k < _NAP_KIND_MAX ? kind_table[k] : NULL;
}

NapKind nap_kind_from_string(const char *s) {
        return string_table_lookup(kind_table, ELEMENTSOF(kind_table), s);
}

/* Every kind: an MPI master carries its job's number (several jobs of one
 * app may run at once), a slave job * 1000 + rank (model/mpi.h). */
bool nap_kind_has_number(NapKind k) {
        return k >= 0 && k < _NAP_KIND_MAX;
}

/* [a-z][a-z0-9-]{0,max-1} */
static bool name_is_valid(const char *s, size_t max) {
        if (!s || !(*s >= 'a' && *s <= 'z'))
                return false;
        size_t n = 0;
        for (const char *p = s; *p; p++, n++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
                        return false;
        return n <= max;
}

bool nap_user_is_valid(const char *s) {
        return name_is_valid(s, NAP_USER_MAX);
}

bool nap_app_is_valid(const char *s) {
        return name_is_valid(s, NAP_APP_MAX);
}

/* Quote a refused name for a message without echoing control characters
 * or a kilobyte of garbage back. */
static const char *shown(const char *s, char buf[static 72]) {
        size_t i = 0;
        for (; s && s[i] && i < 64; i++)
                buf[i] = (unsigned char) s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
        snprintf(buf + i, 72 - i, "%s", s && s[i] ? "…" : "");
        return buf;
}

int nap_service_from_parts(const char *user, const char *app, NapService *ret, NapError *e) {
        char b[72];

        assert(ret);

        if (!nap_user_is_valid(user))
                return nap_error_set(e, NAP_ERROR_INVALID_NAME, -EINVAL,
                                     "Invalid user name '%s': must match [a-z][a-z0-9-]{0,31}", shown(user, b));
        if (!nap_app_is_valid(app))
                return nap_error_set(e, NAP_ERROR_INVALID_NAME, -EINVAL,
                                     "Invalid app name '%s': must match [a-z][a-z0-9-]{0,47}", shown(app, b));
        NapService s = {};
        snprintf(s.user, sizeof s.user, "%s", user);
        snprintf(s.app, sizeof s.app, "%s", app);
        *ret = s;
        return 0;
}

/* Splits "USER_REST" at the first '_' into user and rest. */
static int split_user(const char *s, char user[static NAP_USER_MAX + 1], const char **ret_rest) {
        const char *sep = s ? strchr(s, '_') : NULL;
        if (!sep || (size_t) (sep - s) > NAP_USER_MAX)
                return -EINVAL;
        memcpy(user, s, sep - s);
        user[sep - s] = 0;
        *ret_rest = sep + 1;
        return 0;
}

int nap_service_parse(const char *s, NapService *ret, NapError *e) {
        char user[NAP_USER_MAX + 1], b[72];
        const char *app;

        assert(ret);

        if (split_user(s, user, &app) < 0 || !nap_user_is_valid(user) || !nap_app_is_valid(app))
                return nap_error_set(e, NAP_ERROR_INVALID_NAME, -EINVAL,
                                     "Invalid service name '%s': expected USER_APP, user [a-z][a-z0-9-]{0,31}, app [a-z][a-z0-9-]{0,47}",
                                     shown(s, b));
        return nap_service_from_parts(user, app, ret, e);
}

const char *nap_service_name(const NapService *s, char *buf) {
        assert(s);
        assert(buf);

        snprintf(buf, NAP_SERVICE_NAME_MAX, "%s_%s", s->user, s->app);
        return buf;
}

bool nap_commit_is_valid(const char *commit) {
        if (!commit || strlen(commit) != NAP_COMMIT_HEX_LEN)
                return false;
        for (const char *p = commit; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

int nap_instance_number_parse(const char *s, unsigned *ret) {
        assert(ret);

        if (!s || !(*s >= '1' && *s <= '9'))
                return -EINVAL;
        unsigned long v = 0;
        for (const char *p = s; *p; p++) {
                if (!(*p >= '0' && *p <= '9'))
                        return -EINVAL;
                v = v * 10 + (*p - '0');
                if (v > NAP_INSTANCE_NUMBER_MAX)
                        return -ERANGE;
        }
        *ret = v;
        return 0;
}

/* "APP_KIND[@N]" → app, kind, number. The app cannot contain '_', so the
 * kind starts after its first '_'. */
static int parse_app_kind(const char *rest, NapInstance *i) {
        const char *sep = strchr(rest, '_');
        if (!sep || (size_t) (sep - rest) > NAP_APP_MAX)
                return -EINVAL;
        char app[NAP_APP_MAX + 1];
        memcpy(app, rest, sep - rest);
        app[sep - rest] = 0;
        if (!nap_app_is_valid(app))
                return -EINVAL;
        snprintf(i->service.app, sizeof i->service.app, "%s", app);

        char kind[16];
        const char *at = strchr(sep + 1, '@');
        size_t kl = at ? (size_t) (at - sep - 1) : strlen(sep + 1);
        if (kl >= sizeof kind)
                return -EINVAL;
        memcpy(kind, sep + 1, kl);
        kind[kl] = 0;
        i->kind = nap_kind_from_string(kind);
        if (i->kind < 0 || nap_kind_has_number(i->kind) != !!at)
                return -EINVAL;
        i->number = 0;
        return at ? nap_instance_number_parse(at + 1, &i->number) : 0;
}

int nap_instance_parse(const char *s, NapInstance *ret, NapError *e) {
        char buf[NAP_UNIT_NAME_MAX], b[72];
        NapInstance i = {};
        const char *rest;

        assert(ret);

        size_t n = s ? strlen(s) : 0;
        if (n >= 8 && streq(s + n - 8, ".service"))
                n -= 8;
        if (n == 0 || n >= sizeof buf)
                goto invalid;
        memcpy(buf, s, n);
        buf[n] = 0;
        if (split_user(buf, i.service.user, &rest) < 0 || !nap_user_is_valid(i.service.user) ||
            parse_app_kind(rest, &i) < 0)
                goto invalid;
        *ret = i;
        return 0;
invalid:
        return nap_error_set(e, NAP_ERROR_INVALID_NAME, -EINVAL,
                             "Invalid instance name '%s': expected USER_APP_common@N, USER_APP_mpi_master@N or USER_APP_mpi_slave@N",
                             shown(s, b));
}

const char *nap_instance_name(const NapInstance *i, char *buf) {
        assert(i);
        assert(buf);

        if (nap_kind_has_number(i->kind))
                snprintf(buf, NAP_UNIT_NAME_MAX, "%s_%s_%s@%u", i->service.user, i->service.app,
                         nap_kind_to_string(i->kind), i->number);
        else
                snprintf(buf, NAP_UNIT_NAME_MAX, "%s_%s_%s", i->service.user, i->service.app,
                         nap_kind_to_string(i->kind));
        return buf;
}

const char *nap_instance_unit_name(const NapInstance *i, char *buf) {
        assert(i);
        assert(buf);

        size_t n = strlen(nap_instance_name(i, buf));
        snprintf(buf + n, NAP_UNIT_NAME_MAX - n, ".service");
        return buf;
}

const char *nap_instance_template_name(const NapInstance *i, char *buf) {
        assert(i);
        assert(buf);

        snprintf(buf, NAP_UNIT_NAME_MAX, "%s_%s_%s%s.service", i->service.user, i->service.app,
                 nap_kind_to_string(i->kind), nap_kind_has_number(i->kind) ? "@" : "");
        return buf;
}

/* What nap (PORT; PODMAN_SYSTEMD_UNIT for containers) and systemd
 * (systemd.exec(5), "Environment Variables in Spawned Processes") set for
 * the instance's process: an app's configuration may not shadow them. */
static const char *const env_reserved[] = {
        "PORT", "PODMAN_SYSTEMD_UNIT", "NAP_CONFIG",
        "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "MAINPID", "MANAGERPID",
        "SYSTEMD_EXEC_PID", "INVOCATION_ID", "JOURNAL_STREAM", "WATCHDOG_USEC", "WATCHDOG_PID",
        "RUNTIME_DIRECTORY", "STATE_DIRECTORY", "CACHE_DIRECTORY", "LOGS_DIRECTORY",
        "CONFIGURATION_DIRECTORY", "CREDENTIALS_DIRECTORY", "TRIGGER_UNIT", "TRIGGER_PATH",
        "MONITOR_SERVICE_RESULT", "MONITOR_EXIT_CODE", "MONITOR_EXIT_STATUS", "MONITOR_INVOCATION_ID",
        "MONITOR_UNIT",
};

bool nap_env_name_is_reserved(const char *name) {
        for (size_t i = 0; name && i < ELEMENTSOF(env_reserved); i++)
                if (streq(env_reserved[i], name))
                        return true;
        return false;
}

static bool env_name_is_identifier(const char *s) {
        size_t n = 0;
        if (!s || !((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
                return false;
        for (const char *p = s; *p; p++, n++)
                if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
                        return false;
        return n <= NAP_ENV_NAME_MAX;
}

int nap_env_name_check(const char *name, NapError *e) {
        char b[72];
        if (!env_name_is_identifier(name))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "Invalid configuration key '%s': must match [A-Za-z_][A-Za-z0-9_]{0,63}",
                                     shown(name, b));
        if (nap_env_name_is_reserved(name) || streq(name, "port"))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "Configuration key '%s' is set by nap or systemd for every instance and "
                                     "cannot be configured", name);
        return 0;
}
