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


/* The jobs of one set of units asked for at once: paths[i] is the job of
 * units[i] (NULL: its call failed, or there was nothing to do), results[i]
 * the result of that job's JobRemoved signal once seen. */
typedef struct JobSet {
        char *const *units;
        size_t n;
        char **paths;
        char **results;
        size_t waiting; /* jobs whose JobRemoved has not been seen */
        bool oom;
} JobSet;

static void job_set_done(JobSet *j) {
        for (size_t i = 0; i < j->n; i++) {
                free(j->paths[i]);
                free(j->results[i]);
        }
        free(j->paths);
        free(j->results);
}

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        JobSet *j = userdata;
        const char *path, *unit, *result;
        uint32_t id;

        /* Signals that arrive while sd_bus_call() waits for a reply are
         * queued, not dispatched: every path is known by the time we run. */
        if (sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) < 0)
                return 0;
        for (size_t i = 0; i < j->n; i++)
                if (j->paths[i] && !j->results[i] && streq(path, j->paths[i])) {
                        j->results[i] = strdup(result);
                        j->oom = j->oom || !j->results[i];
                        j->waiting--;
                        break;
                }
        return 0;
}

static int wait_for_jobs(sd_bus *bus, JobSet *j, NapError *e) {
        uint64_t deadline = monotonic_usec() + JOB_TIMEOUT_USEC;

        while (j->waiting > 0 && !j->oom) {
                int r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, r,
                                             "Lost the service manager while waiting for the job of unit '%s': %s",
                                             j->units[0], strerror(-r));
                if (r > 0)
                        continue;

                uint64_t n = monotonic_usec();
                if (n >= deadline) {
                        size_t i = 0;
                        while (i + 1 < j->n && (!j->paths[i] || j->results[i]))
                                i++;
                        return nap_error_set(e, NAP_ERROR_UNIT_FAILED, -ETIMEDOUT,
                                             "Timed out after %u s waiting for the job of unit '%s'; see 'systemctl%s status %s'",
                                             (unsigned) (JOB_TIMEOUT_USEC / USEC_PER_SEC), j->units[i], scope_flag(bus),
                                             j->units[i]);
                }
                r = sd_bus_wait(bus, deadline - n);
                if (r < 0 && r != -EINTR)
                        return nap_error_errno(e, r, "Failed to wait for the job of unit '%s'", j->units[0]);
        }
        return j->oom ? nap_error_errno(e, -ENOMEM, "Failed to wait for unit '%s'", j->units[0]) : 0;
}

/* Whether the manager has unit loaded now (GetUnit, which loads nothing). */
static bool unit_is_loaded(sd_bus *bus, const char *unit) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = sd_bus_call_method(bus, SYSTEMD_DEST, SYSTEMD_PATH, MANAGER_IFACE, "GetUnit", &error, NULL, "s", unit);
        return r >= 0 || !sd_bus_error_has_name(&error, "org.freedesktop.systemd1.NoSuchUnit");
}

static const char *job_verb(const char *method) {
        return streq(method, "StartUnit") ? "start" : streq(method, "StopUnit") ? "stop" : "restart";
}

/* method(units[i], "replace"); j->paths[i] is its job, left NULL when
 * there is none: a stop of a unit that is not loaded. */
static int ask_job(sd_bus *bus, const char *method, JobSet *j, size_t i, NapError *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *unit = j->units[i], *path;
        bool stop = streq(method, "StopUnit");

        if (isempty(unit))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "No unit given to %s", method);
        /* A unit that is not loaded is not running: StopUnit would load it
         * first, which on a host with 10,000 units and a changed unit dir
         * means rebuilding the manager's unit-name map (bench/host-scale). */
        if (stop && !unit_is_loaded(bus, unit))
                return 0;
        int r = sd_bus_call_method(bus, SYSTEMD_DEST, SYSTEMD_PATH, MANAGER_IFACE, method, &error, &reply, "ss",
                                   unit, "replace");
        if (r < 0 && stop && sd_bus_error_has_name(&error, "org.freedesktop.systemd1.NoSuchUnit"))
                return 0;
        if (r < 0)
                return bus_fail(e, &error, r, NAP_ERROR_UNIT_FAILED, "Failed to %s unit '%s'", job_verb(method), unit);
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to parse the %s reply for unit '%s'", method, unit);
        j->paths[i] = strdup(path);
        if (!j->paths[i])
                return nap_error_errno(e, -ENOMEM, "Failed to %s unit '%s'", job_verb(method), unit);
        j->waiting++;
        return 0;
}

/* The first job of j that did not end "done", as an error. */
static int job_results_checked(sd_bus *bus, const char *method, const JobSet *j, NapError *e) {
        const char *s = scope_flag(bus);
        for (size_t i = 0; i < j->n; i++)
                if (j->results[i] && !streq(j->results[i], "done"))
                        return nap_error_set(e, NAP_ERROR_UNIT_FAILED, -EIO,
                                             "Job to %s unit '%s' finished with result '%s'; see 'systemctl%s status %s' and 'journalctl%s -u %s'",
                                             job_verb(method), j->units[i], j->results[i], s, j->units[i], s,
                                             j->units[i]);
        return 0;
}

/* method(unit, "replace") for every unit, all asked before any is waited
 * for, so that the manager runs the jobs side by side; then wait until
 * every job asked for is done, also when a later call failed. */
static int units_jobs(sd_bus *bus, const char *method, char *const *units, size_t n, NapError *e) {
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL; /* dropped before j goes away */
        JobSet j = { .units = units, .n = n, .paths = calloc(n, sizeof(char *)), .results = calloc(n, sizeof(char *)) };
        NapError wait_error = NAP_ERROR_NULL;
        int r = 0;

        if (!bus)
                r = nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "No bus given to %s", method);
        else if (n > 0 && (!j.paths || !j.results))
                r = nap_error_errno(e, -ENOMEM, "Failed to %s units", job_verb(method));
        /* Subscribe before asking, or a quick job could end unseen. */
        else if ((r = sd_bus_match_signal(bus, &slot, SYSTEMD_DEST, SYSTEMD_PATH, MANAGER_IFACE, "JobRemoved",
                                          on_job_removed, &j)) < 0)
                r = bus_fail(e, NULL, r, NAP_ERROR_INTERNAL, "Failed to watch jobs of the service manager");
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = ask_job(bus, method, &j, i, e);
        int w = j.waiting > 0 ? wait_for_jobs(bus, &j, r < 0 ? &wait_error : e) : 0;
        if (r >= 0)
                r = w < 0 ? w : job_results_checked(bus, method, &j, e);
        slot = sd_bus_slot_unref(slot);
        job_set_done(&j);
        return r;
}

int nap_systemd_start_units(sd_bus *bus, char *const *units, size_t n, NapError *e) {
        return units_jobs(bus, "StartUnit", units, n, e);
}

int nap_systemd_stop_units(sd_bus *bus, char *const *units, size_t n, NapError *e) {
        return units_jobs(bus, "StopUnit", units, n, e);
}

int nap_systemd_start_unit(sd_bus *bus, const char *unit, NapError *e) {
        return units_jobs(bus, "StartUnit", (char *const[]) { (char *) unit }, 1, e);
}

int nap_systemd_stop_unit(sd_bus *bus, const char *unit, NapError *e) {
        return units_jobs(bus, "StopUnit", (char *const[]) { (char *) unit }, 1, e);
}

int nap_systemd_restart_unit(sd_bus *bus, const char *unit, NapError *e) {
        return units_jobs(bus, "RestartUnit", (char *const[]) { (char *) unit }, 1, e);
}

int nap_systemd_kill_unit(sd_bus *bus, const char *unit, int signo) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        if (!bus || isempty(unit))
                return -EINVAL;
        int r = sd_bus_call_method(bus, SYSTEMD_DEST, SYSTEMD_PATH, MANAGER_IFACE, "KillUnit", &error, NULL, "ssi",
                                   unit, "all", signo);
        /* not loaded or not running: nothing to kill */
        if (r < 0 && (sd_bus_error_has_name(&error, "org.freedesktop.systemd1.NoSuchUnit") ||
                      sd_bus_error_has_name(&error, "org.freedesktop.systemd1.UnitInactive")))
                return 0;
        return r < 0 ? r : 0;
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

void nap_unit_exit_clear(NapUnitExit *x) {
        if (!x)
                return;
        free(x->active_state);
        free(x->result);
        *x = (NapUnitExit) {};
}

int nap_systemd_get_unit_exit(sd_bus *bus, const char *unit, NapUnitExit *ret, NapError *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        assert(ret);
        int r = load_unit(bus, unit, &path, e);
        if (r < 0)
                return r;
        NapUnitExit x = {};
        int32_t code = 0, status = 0;
        (void) ((r = get_unit_property(bus, path, "ActiveState", &x.active_state, &error)) < 0 ||
                (r = sd_bus_get_property_string(bus, SYSTEMD_DEST, path, "org.freedesktop.systemd1.Service",
                                                "Result", &error, &x.result)) < 0 ||
                (r = sd_bus_get_property_trivial(bus, SYSTEMD_DEST, path, "org.freedesktop.systemd1.Service",
                                                 "ExecMainCode", &error, 'i', &code)) < 0 ||
                (r = sd_bus_get_property_trivial(bus, SYSTEMD_DEST, path, "org.freedesktop.systemd1.Service",
                                                 "ExecMainStatus", &error, 'i', &status)) < 0 ||
                (r = sd_bus_get_property_trivial(bus, SYSTEMD_DEST, path, "org.freedesktop.systemd1.Service",
                                                 "ExecMainStartTimestamp", &error, 't', &x.start_usec)) < 0 ||
                (r = sd_bus_get_property_trivial(bus, SYSTEMD_DEST, path, "org.freedesktop.systemd1.Service",
                                                 "ExecMainExitTimestamp", &error, 't', &x.exit_usec)) < 0);
        if (r < 0) {
                nap_unit_exit_clear(&x);
                return bus_fail(e, &error, r, NAP_ERROR_INTERNAL, "Failed to read how unit '%s' ended", unit);
        }
        x.code = code;
        x.status = status;
        *ret = x;
        return 0;
}

/* systemd's "not known" for an accounting property. */
static uint64_t accounting_value(sd_bus *bus, const char *path, const char *property) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t v = UINT64_MAX;
        if (sd_bus_get_property_trivial(bus, SYSTEMD_DEST, path, "org.freedesktop.systemd1.Service", property, &error,
                                        't', &v) < 0)
                return UINT64_MAX;
        return v;
}

int nap_systemd_get_unit_accounting(sd_bus *bus, const char *unit, uint64_t *ret_cpu_nsec, uint64_t *ret_memory,
                                    NapError *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;

        *ret_cpu_nsec = *ret_memory = UINT64_MAX;
        if (!bus || isempty(unit))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "No unit given");
        /* GetUnit, not LoadUnit: a unit the manager does not hold has used
         * nothing, and asking must not load it. */
        int r = sd_bus_call_method(bus, SYSTEMD_DEST, SYSTEMD_PATH, MANAGER_IFACE, "GetUnit", &error, &reply, "s",
                                   unit);
        if (r < 0 && sd_bus_error_has_name(&error, "org.freedesktop.systemd1.NoSuchUnit"))
                return 0;
        if (r < 0)
                return bus_fail(e, &error, r, NAP_ERROR_INTERNAL, "Failed to find unit '%s'", unit);
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to parse the GetUnit reply for unit '%s'", unit);
        *ret_cpu_nsec = accounting_value(bus, path, "CPUUsageNSec");
        *ret_memory = accounting_value(bus, path, "MemoryCurrent");
        return 0;
}
