/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "base/clock.h"
#include "clients/systemd1.h"

#define SYSTEMD_DEST "org.freedesktop.systemd1"
#define SYSTEMD_PATH "/org/freedesktop/systemd1"
#define MANAGER_IFACE "org.freedesktop.systemd1.Manager"
#define UNIT_IFACE "org.freedesktop.systemd1.Unit"

/* A little beyond DefaultTimeoutStartSec=/DefaultTimeoutStopSec= (90 s),
 * so that for units with default timeouts the manager's own timeout fires
 * first and the job ends with a result ("timeout") we can report. */
#define JOB_TIMEOUT_USEC (100 * USEC_PER_SEC)
/* Reload runs all generators and reloads every unit file; with thousands
 * of instances this takes seconds, well past sd-bus's 25 s default on a
 * busy host. systemctl waits about this long too. */
#define RELOAD_TIMEOUT_USEC (180 * USEC_PER_SEC)

void nap_unit_status_clear(NapUnitStatus *u) {
        free(u->name);
        free(u->description);
        free(u->load_state);
        free(u->active_state);
        free(u->sub_state);
        *u = (NapUnitStatus) {};
}

bool nap_unit_state_is_running(const char *s) {
        return s && (streq(s, "active") || streq(s, "activating") || streq(s, "reloading"));
}

void nap_unit_status_array_free(NapUnitStatus *a, size_t n) {
        for (size_t i = 0; a && i < n; i++)
                nap_unit_status_clear(a + i);
        free(a);
}

static const char *scope_flag(sd_bus *bus) {
        const char *scope = NULL;
        return sd_bus_get_scope(bus, &scope) >= 0 && scope && streq(scope, "user") ? " --user" : "";
}

/* The bus itself is missing or went away, as opposed to a refusal. */
static bool errno_is_transport(int err) {
        return err == ECONNREFUSED || err == ECONNRESET || err == ENOTCONN || err == ENOENT ||
               err == ENXIO || err == ENOMEDIUM || err == ETIMEDOUT;
}

/* Which NapError kind a failed bus call is: the bus error name when the
 * peer sent one, else the errno of a transport failure. */
static NapErrorKind bus_error_kind(const sd_bus_error *error, int r, NapErrorKind fallback) {
        if (sd_bus_error_has_names(error, SD_BUS_ERROR_ACCESS_DENIED,
                                   SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED))
                return NAP_ERROR_PERMISSION_DENIED;
        if (sd_bus_error_has_name(error, SD_BUS_ERROR_INVALID_ARGS))
                return NAP_ERROR_INVALID_PARAMETER;
        if (sd_bus_error_has_names(error, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER,
                                   SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_DISCONNECTED, SD_BUS_ERROR_TIMEOUT))
                return NAP_ERROR_NOT_AVAILABLE;
        if (!sd_bus_error_is_set(error) &&
            errno_is_transport(-r))
                return NAP_ERROR_NOT_AVAILABLE;
        return fallback;
}

/* "<what>: <bus error message>", keeping what systemd said verbatim. */
_printf_(5, 6)
static int bus_fail(NapError *e, const sd_bus_error *error, int r, NapErrorKind fallback, const char *fmt, ...) {
        char what[256];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);

        if (r >= 0)
                r = -EIO;
        const char *msg = sd_bus_error_is_set(error) ? (error->message ?: error->name) : strerror(-r);
        return nap_error_set(e, bus_error_kind(error, r, fallback), r, "%s: %s", what, msg);
}

int nap_systemd_open(NapScope scope, sd_bus **ret, NapError *e) {
        _cleanup_(sd_bus_unrefp) sd_bus *bus = NULL;
        int r;

        assert(ret);

        if (scope == NAP_SCOPE_USER)
                r = sd_bus_open_user_with_description(&bus, "nap");
        else if (scope == NAP_SCOPE_SYSTEM)
                r = sd_bus_open_system_with_description(&bus, "nap");
        else
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "Invalid scope %d", (int) scope);
        if (r < 0)
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, r, "Failed to connect to the %s bus: %s",
                                     scope == NAP_SCOPE_USER ? "user" : "system", strerror(-r));

        *ret = TAKE_PTR(bus);
        return 0;
}

int nap_systemd_reload(sd_bus *bus, NapError *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        assert(bus);

        r = sd_bus_message_new_method_call(bus, &m, SYSTEMD_DEST, SYSTEMD_PATH, MANAGER_IFACE, "Reload");
        if (r < 0)
                return nap_error_errno(e, r, "Failed to create Reload call");

        /* The manager answers only once the reload is complete. */
        r = sd_bus_call(bus, m, RELOAD_TIMEOUT_USEC, &error, NULL);
        if (r < 0)
                return bus_fail(e, &error, r, NAP_ERROR_UNIT_FAILED, "Failed to reload the service manager");
        return 0;
}


typedef struct JobWait {
        const char *path; /* our job; NULL until the Start/StopUnit reply is in */
        char *result;     /* the result of its JobRemoved signal, once seen */
        bool oom;
} JobWait;

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        JobWait *w = userdata;
        const char *path, *unit, *result;
        uint32_t id;

        /* Signals that arrive while sd_bus_call() waits for the reply are
         * queued, not dispatched, so w->path is known by the time we run. */
        if (sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) < 0)
                return 0;
        if (!w->path || w->result || !streq(path, w->path))
                return 0;
        w->result = strdup(result);
        w->oom = !w->result;
        return 0;
}

static int wait_for_job(sd_bus *bus, JobWait *w, const char *unit, NapError *e) {
        uint64_t deadline = monotonic_usec() + JOB_TIMEOUT_USEC;

        for (;;) {
                int r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, r,
                                             "Lost the service manager while waiting for the job of unit '%s': %s",
                                             unit, strerror(-r));
                if (w->oom)
                        return nap_error_errno(e, -ENOMEM, "Failed to wait for unit '%s'", unit);
                if (w->result)
                        return 0;
                if (r > 0)
                        continue;

                uint64_t n = monotonic_usec();
                if (n >= deadline)
                        return nap_error_set(e, NAP_ERROR_UNIT_FAILED, -ETIMEDOUT,
                                             "Timed out after %u s waiting for the job of unit '%s'; see 'systemctl%s status %s'",
                                             (unsigned) (JOB_TIMEOUT_USEC / USEC_PER_SEC), unit, scope_flag(bus), unit);
                r = sd_bus_wait(bus, deadline - n);
                if (r < 0 && r != -EINTR)
                        return nap_error_errno(e, r, "Failed to wait for the job of unit '%s'", unit);
        }
}

/* Whether the manager has unit loaded now (GetUnit, which loads nothing). */
static bool unit_is_loaded(sd_bus *bus, const char *unit) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = sd_bus_call_method(bus, SYSTEMD_DEST, SYSTEMD_PATH, MANAGER_IFACE, "GetUnit", &error, NULL, "s", unit);
        return r >= 0 || !sd_bus_error_has_name(&error, "org.freedesktop.systemd1.NoSuchUnit");
}

/* StartUnit/StopUnit(unit, "replace"), then wait for the job's JobRemoved.
 * *ret_result is NULL when there was no job (stop of a unit not loaded). */
static int unit_job(sd_bus *bus, const char *method, const char *unit, char **ret_result, NapError *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        JobWait w = {};
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL; /* dropped before w goes away */
        int r;

        /* A unit that is not loaded is not running: StopUnit would load it
         * first, which on a host with 10,000 units and a changed unit dir
         * means rebuilding the manager's unit-name map (bench/host-scale). */
        if (streq(method, "StopUnit") && !unit_is_loaded(bus, unit)) {
                *ret_result = NULL;
                return 0;
        }

        /* Subscribe before asking, or a quick job could end unseen. */
        r = sd_bus_match_signal(bus, &slot, SYSTEMD_DEST, SYSTEMD_PATH, MANAGER_IFACE, "JobRemoved",
                                on_job_removed, &w);
        if (r < 0)
                return bus_fail(e, NULL, r, NAP_ERROR_INTERNAL, "Failed to watch jobs of the service manager");

        r = sd_bus_call_method(bus, SYSTEMD_DEST, SYSTEMD_PATH, MANAGER_IFACE, method, &error, &reply,
                               "ss", unit, "replace");
        if (r < 0 && streq(method, "StopUnit") && sd_bus_error_has_name(&error, "org.freedesktop.systemd1.NoSuchUnit")) {
                *ret_result = NULL;
                return 0;
        }
        if (r < 0)
                return bus_fail(e, &error, r, NAP_ERROR_UNIT_FAILED, "Failed to %s unit '%s'",
                                streq(method, "StartUnit") ? "start" : "stop", unit);

        r = sd_bus_message_read(reply, "o", &w.path);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to parse the %s reply for unit '%s'", method, unit);

        r = wait_for_job(bus, &w, unit, e);
        if (r < 0) {
                free(w.result);
                return r;
        }
        *ret_result = w.result;
        return 0;
}

static int unit_job_checked(sd_bus *bus, const char *method, const char *unit, NapError *e) {
        _cleanup_free_ char *result = NULL;
        int r;

        if (!bus || isempty(unit))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "No unit given to %s", method);

        r = unit_job(bus, method, unit, &result, e);
        if (r < 0)
                return r;
        if (!result || streq(result, "done"))
                return 0;

        const char *s = scope_flag(bus);
        return nap_error_set(e, NAP_ERROR_UNIT_FAILED, -EIO,
                             "Job to %s unit '%s' finished with result '%s'; see 'systemctl%s status %s' and 'journalctl%s -u %s'",
                             streq(method, "StartUnit") ? "start" : "stop", unit, result, s, unit, s, unit);
}

int nap_systemd_start_unit(sd_bus *bus, const char *unit, NapError *e) {
        return unit_job_checked(bus, "StartUnit", unit, e);
}

int nap_systemd_stop_unit(sd_bus *bus, const char *unit, NapError *e) {
        return unit_job_checked(bus, "StopUnit", unit, e);
}

int nap_systemd_restart_unit(sd_bus *bus, const char *unit, NapError *e) {
        return unit_job_checked(bus, "RestartUnit", unit, e);
}

int nap_systemd_reset_failed_unit(sd_bus *bus, const char *unit) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        if (!bus || isempty(unit))
                return -EINVAL;

        r = sd_bus_call_method(bus, SYSTEMD_DEST, SYSTEMD_PATH, MANAGER_IFACE, "ResetFailedUnit", &error, NULL,
                               "s", unit);
        /* A unit that is not loaded has no failed state to reset. */
        if (r < 0 && sd_bus_error_has_name(&error, "org.freedesktop.systemd1.NoSuchUnit"))
                return 0;
        return r < 0 ? r : 0;
}

/* Moves the strings of one ListUnits record into s. */
static int read_unit_record(sd_bus_message *reply, NapUnitStatus *s) {
        const char *name, *description, *load, *active, *sub, *following, *job_type;
        const char *unit_path, *job_path;
        uint32_t job_id;
        int r;

        r = sd_bus_message_read(reply, "(ssssssouso)", &name, &description, &load, &active, &sub,
                                &following, &unit_path, &job_id, &job_type, &job_path);
        if (r <= 0)
                return r;

        *s = (NapUnitStatus) {
                .name = strdup(name),
                .description = strdup(description),
                .load_state = strdup(load),
                .active_state = strdup(active),
                .sub_state = strdup(sub),
        };
        if (!s->name || !s->description || !s->load_state || !s->active_state || !s->sub_state)
                return -ENOMEM;
        return 1;
}

static int read_unit_list(sd_bus_message *reply, NapUnitStatus **ret, size_t *ret_n) {
        NapUnitStatus *a = NULL;
        size_t n = 0, allocated = 0;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "(ssssssouso)");
        while (r >= 0) {
                if (n == allocated) {
                        size_t k = MAX(allocated * 2, (size_t) 16);
                        NapUnitStatus *b = reallocarray(a, k, sizeof *a);
                        if (!b) {
                                r = -ENOMEM;
                                break;
                        }
                        a = b;
                        allocated = k;
                }
                a[n] = (NapUnitStatus) {};
                r = read_unit_record(reply, &a[n]);
                if (r <= 0)
                        break;
                n++;
        }
        if (r < 0) {
                nap_unit_status_array_free(a, n + (n < allocated)); /* a partly filled record too */
                return r;
        }
        *ret = a;
        *ret_n = n;
        return 0;
}

static int list_units_message(sd_bus *bus, const char *pattern, sd_bus_message **ret, NapError *e) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        if (!bus || isempty(pattern))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "No unit pattern given");
        r = sd_bus_message_new_method_call(bus, &m, SYSTEMD_DEST, SYSTEMD_PATH, MANAGER_IFACE,
                                           "ListUnitsByPatterns");
        if (r >= 0)
                r = sd_bus_message_append(m, "asas", 0, 1, pattern);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to create the ListUnitsByPatterns call");
        *ret = TAKE_PTR(m);
        return 0;
}

int nap_systemd_list_units_reply(sd_bus_message *reply, const char *pattern, NapUnitStatus **ret, size_t *ret_n,
                                 NapError *e) {
        assert(reply);
        assert(pattern);
        assert(ret);
        assert(ret_n);

        const sd_bus_error *error = sd_bus_message_get_error(reply);
        if (error)
                return bus_fail(e, error, -sd_bus_message_get_errno(reply), NAP_ERROR_INTERNAL,
                                "Failed to list units matching '%s'", pattern);
        int r = read_unit_list(reply, ret, ret_n);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to parse the list of units matching '%s'", pattern);
        return 0;
}

int nap_systemd_list_units(sd_bus *bus, const char *pattern, NapUnitStatus **ret, size_t *ret_n, NapError *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;

        assert(ret);
        assert(ret_n);

        int r = list_units_message(bus, pattern, &m, e);
        if (r < 0)
                return r;
        r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r < 0)
                return bus_fail(e, &error, r, NAP_ERROR_INTERNAL, "Failed to list units matching '%s'", pattern);
        return nap_systemd_list_units_reply(reply, pattern, ret, ret_n, e);
}

int nap_systemd_list_units_async(sd_bus *bus, sd_bus_slot **ret_slot, const char *pattern, uint64_t timeout_usec,
                                 sd_bus_message_handler_t callback, void *userdata, NapError *e) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;

        assert(callback);

        int r = list_units_message(bus, pattern, &m, e);
        if (r < 0)
                return r;
        r = sd_bus_call_async(bus, ret_slot, m, callback, userdata, timeout_usec);
        if (r < 0)
                return bus_fail(e, NULL, r, NAP_ERROR_INTERNAL, "Failed to list units matching '%s'", pattern);
        return 0;
}

static int get_unit_property(sd_bus *bus, const char *path, const char *property, char **ret, sd_bus_error *error) {
        return sd_bus_get_property_string(bus, SYSTEMD_DEST, path, UNIT_IFACE, property, error, ret);
}

/* The unit's object path after LoadUnit, which loads a name the manager
 * does not have yet (from disk, as it is now) and returns a loaded one as
 * it is. */
static int load_unit(sd_bus *bus, const char *unit, char **ret_path, NapError *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;

        if (!bus || isempty(unit))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "No unit given");
        int r = sd_bus_call_method(bus, SYSTEMD_DEST, SYSTEMD_PATH, MANAGER_IFACE, "LoadUnit", &error, &reply,
                                   "s", unit);
        if (r < 0)
                return bus_fail(e, &error, r, NAP_ERROR_INTERNAL, "Failed to load unit '%s'", unit);
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to parse the LoadUnit reply for unit '%s'", unit);
        *ret_path = strdup(path);
        return *ret_path ? 0 : nap_error_errno(e, -ENOMEM, "Failed to load unit '%s'", unit);
}

int nap_systemd_load_unit_current(sd_bus *bus, const char *unit, NapError *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL, *load_state = NULL;
        int need_reload = 0;
        int r = load_unit(bus, unit, &path, e);
        if (r < 0)
                return r;
        r = get_unit_property(bus, path, "LoadState", &load_state, &error);
        if (r >= 0)
                r = sd_bus_get_property_trivial(bus, SYSTEMD_DEST, path, UNIT_IFACE, "NeedDaemonReload", &error,
                                                'b', &need_reload);
        if (r < 0)
                return bus_fail(e, &error, r, NAP_ERROR_INTERNAL, "Failed to read the load state of unit '%s'", unit);
        return streq(load_state, "loaded") && !need_reload;
}

int nap_systemd_get_unit_status(sd_bus *bus, const char *unit, NapUnitStatus *ret, NapError *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;

        assert(ret);

        /* LoadUnit rather than GetUnit: a unit that is not loaded right now
         * still has a status ("inactive", or load state "not-found"). */
        int r = load_unit(bus, unit, &path, e);
        if (r < 0)
                return r;

        NapUnitStatus s = {};
        (void) ((r = get_unit_property(bus, path, "Id", &s.name, &error)) < 0 ||
                (r = get_unit_property(bus, path, "Description", &s.description, &error)) < 0 ||
                (r = get_unit_property(bus, path, "LoadState", &s.load_state, &error)) < 0 ||
                (r = get_unit_property(bus, path, "ActiveState", &s.active_state, &error)) < 0 ||
                (r = get_unit_property(bus, path, "SubState", &s.sub_state, &error)) < 0);
        if (r < 0) {
                free(s.name);
                free(s.description);
                free(s.load_state);
                free(s.active_state);
                free(s.sub_state);
                return bus_fail(e, &error, r, NAP_ERROR_INTERNAL, "Failed to read the state of unit '%s'", unit);
        }
        *ret = s;
        return 0;
}
