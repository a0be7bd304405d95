/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* ListInstances and GetInstancesNum from memory.
 *
 * Asking systemd (ListUnitsByPatterns) and reading the manifests on every
 * call costs a bus round trip and a directory scan: ~200 µs a call. The
 * daemon keeps instead
 *   - the states of the instances' units (common@, mpi_master@, mpi_slave@), listed once and then kept
 *     fresh from the manager's signals (Subscribe; PropertiesChanged of
 *     org.freedesktop.systemd1.Unit; UnitRemoved; UnitNew has that one
 *     unit listed; Reloading makes it list all again), on a connection of
 *     its own;
 *   - per service, the reply array built from them and the manifests,
 *     dropped when a unit of the service changes or when inotify reports a
 *     change of one of its manifests in Instances=.
 *
 * Why this is never behind what a client already knows: the signal and
 * the inotify event of a change are queued to this process before whoever
 * made the change hears that it is done (systemd sends a unit's
 * PropertiesChanged before the JobRemoved that ends a start or stop job,
 * and the bus daemon forwards one sender's messages in order; inotify
 * queues the event within the rename), and both sources run at a higher
 * priority than the clients' connections, so they are handled before a
 * call that comes after. (A client of systemd's private socket, systemctl
 * as root or --user, hears of its job's end on another path: there the
 * bus daemon's microseconds are a race it loses only in theory.) Calls
 * that come while the units are being listed wait for the list. */

#include <sys/inotify.h>

#include "../common/log.h"
#include "instance-cache.h"
#include "model/manifest.h"
#include "model/names.h"
#include "clients/systemd1.h"

#define SYSTEMD_DEST "org.freedesktop.systemd1"
#define SYSTEMD_PATH "/org/freedesktop/systemd1"
#define SYSTEMD_MANAGER "org.freedesktop.systemd1.Manager"
#define UNIT_PATH_PREFIX "/org/freedesktop/systemd1/unit"
#define UNITS_PATTERN "*_[cm][op][mi]*@*.service" /* common@, mpi_master@, mpi_slave@ */
/* What listing may take before the waiting calls fail: sd-bus's default;
 * a manager that busy is reported, not waited for. */
#define LIST_TIMEOUT_USEC (25 * UINT64_C(1000000))
/* Signals and inotify events are handled before the clients' calls (see
 * above). */
#define CACHE_PRIORITY (SD_EVENT_PRIORITY_NORMAL - 10)

typedef struct Waiter Waiter;
struct Waiter {
        Waiter *next;
        const NapMethod *method;
        char *service;
        InstanceCacheDone done;
        void *userdata;
};

typedef enum CacheState {
        CACHE_OFF,     /* nothing known: the next call sets it up */
        CACHE_LOADING, /* listing the units; calls wait */
        CACHE_READY,
} CacheState;

struct InstanceCache {
        sd_event *event;
        NapContext *context;
        CacheState state;
        sd_bus *bus;
        sd_bus_slot *list_slot;   /* the list of all units on its way */
        unsigned lookups;         /* lists of one new unit on their way */
        json_t *units;   /* service → { unit → [active_state, sub_state] } */
        json_t *results; /* service → array of Instance: what ListInstances answers */
        sd_event_source *watch; /* Instances=; NULL: results are not kept */
        Waiter *waiters, **waiters_tail;
};

/* ---- answering -------------------------------------------------------- */

/* The service's units as lib/ops takes them: pointers into the cache. */
static int service_units(InstanceCache *cache, const char *service, NapUnitStatus **ret, size_t *ret_n) {
        json_t *units = json_object_get(cache->units, service), *states;
        const char *unit;
        size_t n = 0;
        NapUnitStatus *l = calloc(json_object_size(units) ?: 1, sizeof *l);
        if (!l)
                return -ENOMEM;
        json_object_foreach(units, unit, states)
                l[n++] = (NapUnitStatus) { .name = (char *) unit,
                                           .active_state = (char *) json_string_value(json_array_get(states, 0)),
                                           .sub_state = (char *) json_string_value(json_array_get(states, 1)) };
        *ret = l;
        *ret_n = n;
        return 0;
}

/* The array of Instance objects of the service (new reference). */
static json_t *service_instances(InstanceCache *cache, const char *service, NapError *e) {
        json_t *a = json_object_get(cache->results, service);
        if (a)
                return json_incref(a);

        _cleanup_free_ NapUnitStatus *units = NULL;
        NapInstanceInfo *list = NULL;
        size_t k = 0, n = 0;
        if (service_units(cache, service, &units, &k) < 0) {
                nap_error_errno(e, -ENOMEM, "Failed to list instances");
                return NULL;
        }
        if (nap_list_instances_merge(cache->context, service, units, k, &list, &n, e) < 0)
                return NULL;
        a = nap_instances_json(list, n);
        nap_instance_info_array_free(list, n);
        if (!a)
                nap_error_errno(e, -ENOMEM, "Failed to list instances");
        /* Empty is not kept: whether the app exists at all is read again. */
        else if (n > 0 && cache->watch)
                (void) json_object_set(cache->results, service, a);
        return a;
}

static void answer(InstanceCache *cache, const NapMethod *method, const char *service, InstanceCacheDone done,
                   void *userdata) {
        NapError e = NAP_ERROR_NULL;
        json_auto_t *instances = service_instances(cache, service, &e);
        json_t *result = instances ? method->from_instances(service, instances, &e) : NULL;
        json_auto_t *envelope = nap_method_envelope(method, result, &e);
        done(envelope, userdata);
}

static void answer_error(const NapMethod *method, const NapError *error, InstanceCacheDone done, void *userdata) {
        NapError e = *error;
        json_auto_t *envelope = nap_method_envelope(method, NULL, &e);
        done(envelope, userdata);
}

static Waiter *waiter_free(Waiter *w) {
        Waiter *next = w->next;
        free(w->service);
        free(w);
        return next;
}

/* The list came (error NULL) or failed: every waiting call is answered. */
static void answer_waiters(InstanceCache *cache, const NapError *error) {
        Waiter *w = cache->waiters;
        cache->waiters = NULL;
        cache->waiters_tail = &cache->waiters;
        while (w) {
                if (error)
                        answer_error(w->method, error, w->done, w->userdata);
                else
                        answer(cache, w->method, w->service, w->done, w->userdata);
                w = waiter_free(w);
        }
}

/* ---- the units -------------------------------------------------------- */

static bool unit_is_ours(const char *unit, char service[static NAP_UNIT_NAME_MAX]) {
        NapInstance i;
        if (!endswith(unit, ".service") || nap_instance_parse(unit, &i, NULL) < 0) /* instances of every kind */
                return false;
        nap_service_name(&i.service, service);
        return true;
}

static void forget_results(InstanceCache *cache, const char *service) {
        (void) json_object_del(cache->results, service);
}

static int unit_set(InstanceCache *cache, const char *unit, const char *active, const char *sub) {
        char service[NAP_UNIT_NAME_MAX];
        if (!unit_is_ours(unit, service))
                return 0;
        json_t *units = json_object_get(cache->units, service);
        if (!units && json_object_set_new(cache->units, service, units = json_object()) < 0)
                return -ENOMEM;
        forget_results(cache, service);
        return json_object_set_new(units, unit, json_pack("[s,s]", active, sub));
}

static void unit_remove(InstanceCache *cache, const char *unit) {
        char service[NAP_UNIT_NAME_MAX];
        if (!unit_is_ours(unit, service))
                return;
        forget_results(cache, service);
        (void) json_object_del(json_object_get(cache->units, service), unit);
}

static void cache_reset(InstanceCache *cache, const NapError *error);
static int cache_list(InstanceCache *cache, NapError *e);

/* Nothing on its way: the waiting calls are answered. */
static void cache_ready_if_done(InstanceCache *cache) {
        if (cache->list_slot || cache->lookups > 0)
                return;
        cache->state = CACHE_READY;
        answer_waiters(cache, NULL);
}

static int on_list(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        InstanceCache *cache = userdata;
        NapError e = NAP_ERROR_NULL;
        NapUnitStatus *l = NULL;
        size_t n = 0;
        int r = nap_systemd_list_units_reply(reply, UNITS_PATTERN, &l, &n, &e);

        cache->list_slot = sd_bus_slot_unref(cache->list_slot);
        json_object_clear(cache->units);
        json_object_clear(cache->results);
        for (size_t i = 0; r >= 0 && i < n; i++)
                if (unit_set(cache, l[i].name, l[i].active_state, l[i].sub_state) < 0)
                        r = nap_error_errno(&e, -ENOMEM, "Failed to list instances");
        nap_unit_status_array_free(l, n);
        if (r < 0) {
                cache_reset(cache, &e);
                return 0;
        }
        cache_ready_if_done(cache);
        return 0;
}

/* Lists the units again; calls wait until it is done. A list still on its
 * way is dropped: the newer one answers. */
static int cache_list(InstanceCache *cache, NapError *e) {
        cache->list_slot = sd_bus_slot_unref(cache->list_slot);
        cache->state = CACHE_LOADING;
        return nap_systemd_list_units_async(cache->bus, &cache->list_slot, UNITS_PATTERN, LIST_TIMEOUT_USEC, on_list,
                                            cache, e);
}

static void cache_relist(InstanceCache *cache) {
        NapError e = NAP_ERROR_NULL;
        if (cache_list(cache, &e) < 0)
                cache_reset(cache, &e);
}

/* ---- signals ---------------------------------------------------------- */

/* PropertiesChanged("org.freedesktop.systemd1.Unit", {…}, […]) of a unit. */
static int on_properties_changed(sd_bus_message *message, void *userdata, sd_bus_error *ret_error) {
        InstanceCache *cache = userdata;
        _cleanup_free_ char *unit = NULL;
        const char *active = NULL, *sub = NULL, *key;
        char service[NAP_UNIT_NAME_MAX];

        if (sd_bus_path_decode(sd_bus_message_get_path(message), UNIT_PATH_PREFIX, &unit) <= 0 ||
            !unit_is_ours(unit, service) || sd_bus_message_skip(message, "s") < 0 ||
            sd_bus_message_enter_container(message, 'a', "{sv}") < 0)
                return 0;
        while (sd_bus_message_enter_container(message, 'e', "sv") > 0) {
                const char **slot = NULL;
                if (sd_bus_message_read(message, "s", &key) < 0)
                        return 0;
                if (streq(key, "ActiveState"))
                        slot = &active;
                else if (streq(key, "SubState"))
                        slot = &sub;
                if (slot ? sd_bus_message_read(message, "v", "s", slot) < 0 : sd_bus_message_skip(message, "v") < 0)
                        return 0;
                if (sd_bus_message_exit_container(message) < 0)
                        return 0;
        }
        json_t *known = json_object_get(json_object_get(cache->units, service), unit);
        active = active ?: json_string_value(json_array_get(known, 0));
        sub = sub ?: json_string_value(json_array_get(known, 1));
        if (active && sub && unit_set(cache, unit, active, sub) < 0)
                cache_relist(cache); /* out of memory: start over */
        return 0;
}

/* The list of one unit, after its UnitNew. A reply on a connection that
 * was dropped since is not counted. */
static int on_lookup(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        InstanceCache *cache = userdata;
        NapError e = NAP_ERROR_NULL;
        NapUnitStatus *l = NULL;
        size_t n = 0;

        if (sd_bus_message_get_bus(reply) != cache->bus || cache->lookups == 0)
                return 0;
        cache->lookups--;
        int r = nap_systemd_list_units_reply(reply, UNITS_PATTERN, &l, &n, &e);
        for (size_t i = 0; r >= 0 && i < n; i++)
                if (unit_set(cache, l[i].name, l[i].active_state, l[i].sub_state) < 0)
                        r = -ENOMEM;
        nap_unit_status_array_free(l, n);
        if (r < 0)
                cache_relist(cache); /* start over */
        else
                cache_ready_if_done(cache);
        return 0;
}

/* A unit loaded: its state is listed, not guessed (its first signal is
 * UnitNew, which carries none, and a state change in the same turn of the
 * manager's loop sends no PropertiesChanged). Just that unit: its name as
 * the pattern of ListUnitsByPatterns, which loads nothing (a unit gone
 * again meanwhile is not brought back) and answers one record instead of
 * every instance on the host; calls wait for it as for a full list. */
static int on_unit_new(sd_bus_message *message, void *userdata, sd_bus_error *ret_error) {
        InstanceCache *cache = userdata;
        NapError e = NAP_ERROR_NULL;
        const char *unit;
        char service[NAP_UNIT_NAME_MAX];
        if (sd_bus_message_read(message, "s", &unit) < 0 || !unit_is_ours(unit, service))
                return 0;
        if (nap_systemd_list_units_async(cache->bus, NULL, unit, LIST_TIMEOUT_USEC, on_lookup, cache, &e) < 0) {
                cache_relist(cache);
                return 0;
        }
        cache->lookups++;
        cache->state = CACHE_LOADING;
        return 0;
}

static int on_unit_removed(sd_bus_message *message, void *userdata, sd_bus_error *ret_error) {
        InstanceCache *cache = userdata;
        const char *unit;
        if (sd_bus_message_read(message, "s", &unit) >= 0)
                unit_remove(cache, unit);
        return 0;
}

/* A daemon-reload or re-exec, starting or done: list again. */
static int on_reloading(sd_bus_message *message, void *userdata, sd_bus_error *ret_error) {
        cache_relist(userdata);
        return 0;
}

static int on_subscribed(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        InstanceCache *cache = userdata;
        const sd_bus_error *error = sd_bus_message_get_error(reply);
        if (!error)
                return 0;
        NapError e = NAP_ERROR_NULL;
        nap_error_set(&e, NAP_ERROR_NOT_AVAILABLE, -sd_bus_message_get_errno(reply),
                      "Failed to subscribe to the service manager's signals: %s", error->message ?: error->name);
        cache_reset(cache, &e);
        return 0;
}

static int subscribe(InstanceCache *cache) {
        static const struct {
                const char *member;
                sd_bus_message_handler_t handler;
        } manager_signals[] = {
                { "UnitNew", on_unit_new },
                { "UnitRemoved", on_unit_removed },
                { "Reloading", on_reloading },
        };
        /* Matches first: the bus daemon installs them before it passes
         * Subscribe and the list on to systemd. Floating: they go with the
         * connection. */
        int r = sd_bus_add_match_async(cache->bus, NULL,
                                       "type='signal',sender='" SYSTEMD_DEST "',"
                                       "interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',"
                                       "path_namespace='" UNIT_PATH_PREFIX "',arg0='org.freedesktop.systemd1.Unit'",
                                       on_properties_changed, NULL, cache);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(manager_signals); i++)
                r = sd_bus_match_signal_async(cache->bus, NULL, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER,
                                              manager_signals[i].member, manager_signals[i].handler, NULL, cache);
        if (r >= 0)
                r = sd_bus_call_method_async(cache->bus, NULL, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER,
                                             "Subscribe", on_subscribed, cache, "");
        return r;
}

/* ---- the manifests ---------------------------------------------------- */

/* A manifest in Instances= was written, renamed or removed: its service's
 * reply is built again. Temporary files of atomic writes do not parse as
 * instances and are passed over; their rename is the event that counts. */
static int on_instances_dir(sd_event_source *s, const struct inotify_event *event, void *userdata) {
        InstanceCache *cache = userdata;
        char name[NAP_UNIT_NAME_MAX], service[NAP_UNIT_NAME_MAX];
        NapInstance i;

        if (event->mask & (IN_Q_OVERFLOW | IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) {
                json_object_clear(cache->results);
                if (!(event->mask & IN_Q_OVERFLOW)) /* the directory itself is gone */
                        cache->watch = sd_event_source_disable_unref(cache->watch);
                return 0;
        }
        const char *suffix = event->len > 0 ? endswith(event->name, NAP_MANIFEST_SUFFIX) : NULL;
        if (!suffix || (size_t) (suffix - event->name) >= sizeof name)
                return 0;
        snprintf(name, sizeof name, "%.*s", (int) (suffix - event->name), event->name);
        if (nap_instance_parse(name, &i, NULL) < 0)
                return 0;
        forget_results(cache, nap_service_name(&i.service, service));
        return 0;
}

/* Without a watch (no Instances= directory yet), replies are built for
 * every call; tried again on each call until it exists. */
static void watch_instances_dir(InstanceCache *cache) {
        if (cache->watch)
                return;
        int r = sd_event_add_inotify(cache->event, &cache->watch, cache->context->config->instances_dir,
                                     IN_ONLYDIR | IN_CREATE | IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM |
                                             IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF,
                                     on_instances_dir, cache);
        if (r >= 0)
                r = sd_event_source_set_priority(cache->watch, CACHE_PRIORITY);
        if (r < 0) {
                cache->watch = sd_event_source_disable_unref(cache->watch);
                log_debug_errno(r, "Not watching %s, replies are not kept: %m", cache->context->config->instances_dir);
        }
        json_object_clear(cache->results); /* anything kept before the watch is suspect */
}

/* ---- set-up and tear-down --------------------------------------------- */

static int close_bus(sd_event_source *s, void *userdata) {
        sd_bus_flush_close_unref(userdata);
        return 0;
}

/* Closed from the event loop, not here: cache_reset() runs inside the
 * connection's own callbacks (a list that failed or timed out, as one
 * does during a daemon-reload of ~10,000 units), and sd-bus goes on using
 * the connection after the callback returns (closing it there aborts in
 * sd-bus's dispatch_wqueue()). */
static void close_bus_later(InstanceCache *cache) {
        sd_bus *bus = TAKE_PTR(cache->bus);
        if (bus && sd_event_add_defer(cache->event, NULL, close_bus, bus) < 0)
                sd_bus_unref(bus); /* leaves it open until its last reference goes */
}

/* Everything known is dropped; waiting calls get error. The next call
 * starts over, on a new connection. */
static void cache_reset(InstanceCache *cache, const NapError *error) {
        log_debug("Instance cache reset: %s", error->message);
        cache->list_slot = sd_bus_slot_unref(cache->list_slot);
        cache->lookups = 0; /* their replies come on the dropped connection */
        close_bus_later(cache);
        json_object_clear(cache->units);
        json_object_clear(cache->results);
        cache->state = CACHE_OFF;
        answer_waiters(cache, error);
}

static int cache_start(InstanceCache *cache, NapError *e) {
        int r = nap_systemd_open(cache->context->scope, &cache->bus, e);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(cache->bus, cache->event, CACHE_PRIORITY);
        if (r >= 0)
                r = subscribe(cache);
        if (r < 0)
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, r,
                                     "Failed to follow the service manager's units: %s", strerror(-r));
        return cache_list(cache, e);
}

int instance_cache_new(sd_event *event, NapContext *context, InstanceCache **ret) {
        assert(event);
        assert(context);
        assert(ret);
        InstanceCache *cache = calloc(1, sizeof *cache);
        if (!cache)
                return -ENOMEM;
        *cache = (InstanceCache) { .event = event, .context = context, .units = json_object(),
                                   .results = json_object() };
        cache->waiters_tail = &cache->waiters;
        if (!cache->units || !cache->results)
                return instance_cache_free(cache), -ENOMEM;
        *ret = cache;
        return 0;
}

static int wait_for_list(InstanceCache *cache, const NapMethod *method, const char *service, InstanceCacheDone done,
                         void *userdata) {
        Waiter *w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        *w = (Waiter) { .method = method, .service = strdup(service), .done = done, .userdata = userdata };
        if (!w->service)
                return waiter_free(w), -ENOMEM;
        *cache->waiters_tail = w;
        cache->waiters_tail = &w->next;
        return 0;
}

void instance_cache_prepare(InstanceCache *cache) {
        NapError e = NAP_ERROR_NULL;
        if (cache->state != CACHE_OFF)
                return;
        watch_instances_dir(cache);
        if (cache_start(cache, &e) < 0)
                cache_reset(cache, &e);
}

void instance_cache_call(InstanceCache *cache, const NapMethod *method, json_t *args, InstanceCacheDone done,
                         void *userdata) {
        NapError e = NAP_ERROR_NULL;
        const char *service = json_string_value(json_object_get(args, "service"));
        NapService s;

        assert(cache);
        assert(method->from_instances);
        if (!service || nap_service_parse(service, &s, &e) < 0) {
                answer_error(method, &e, done, userdata);
                return;
        }
        if (cache->bus && sd_bus_is_open(cache->bus) <= 0) {
                /* systemd or the bus went away: start over */
                nap_error_set(&e, NAP_ERROR_NOT_AVAILABLE, -ENOTCONN, "The connection to the service manager was lost");
                cache_reset(cache, &e);
                e = NAP_ERROR_NULL;
        }
        watch_instances_dir(cache);
        if (cache->state == CACHE_OFF && cache_start(cache, &e) < 0) {
                cache_reset(cache, &e);
                answer_error(method, &e, done, userdata);
        } else if (cache->state == CACHE_READY)
                answer(cache, method, service, done, userdata);
        else if (wait_for_list(cache, method, service, done, userdata) < 0)
                done(NULL, userdata);
}

InstanceCache *instance_cache_free(InstanceCache *cache) {
        if (!cache)
                return NULL;
        NapError e = NAP_ERROR_NULL;
        nap_error_set(&e, NAP_ERROR_NOT_AVAILABLE, -ESHUTDOWN, "nap-managerd is shutting down; call again");
        cache_reset(cache, &e);
        cache->watch = sd_event_source_disable_unref(cache->watch);
        json_decref(cache->units);
        json_decref(cache->results);
        free(cache);
        return NULL;
}
