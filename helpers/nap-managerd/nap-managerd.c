/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* nap-managerd: serves io.nap.Manager over varlink on the socket of
 * nap-managerd.socket (or --listen=PATH) and io.nap.Manager1 on D-Bus,
 * one sd-event loop, one NapContext; exits when idle, systemd starts it
 * again on the next call, through the socket or the bus name.
 * See nap-managerd(8). */

#include <getopt.h>
#include <signal.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>

#include "../common/daemon.h"
#include "../common/log.h"
#include "base/clock.h"
#include "dispatch.h"
#include "nap-config.h"
#include "serve-dbus.h"
#include "serve-varlink.h"

#define IDLE_TIMEOUT_DEFAULT_SEC 30U
#define IDLE_TIMEOUT_MAX_SEC (7U * 24U * 3600U)
/* Files the daemon holds besides its clients' connections: listeners, two
 * bus connections, the journal, inotify, the pipes of 32 workers. */
#define FILES_RESERVED 256U

static const char *arg_listen = NULL;
static int arg_scope = -1;
static long long arg_idle_sec = -1; /* -1: default (30 s; never with --listen) */
static int arg_bus = -1;            /* -1: D-Bus unless --listen */

/* ---- the manager ------------------------------------------------------ */

/* The loop and what it serves. The parts know nothing of it: they report
 * through callbacks, and it asks them for their counts. */
typedef struct Manager {
        sd_event *event;
        NapContext *context;
        Dispatcher *dispatcher;
        VarlinkFront *varlink;
        BusFront *bus;          /* NULL: no D-Bus (--no-bus, or --listen) */

        uint64_t idle_usec;     /* 0: never exit when idle */
        sd_event_source *idle_source;
        bool idle_armed;
        bool ready;             /* READY=1 sent */
        bool exiting;           /* SIGTERM: finish running workers, then exit */
        bool stopping;          /* idle with a bus name: exit once released and not busy */
        char status[64];        /* last STATUS= sent, */
        unsigned status_connections, status_calls; /* ... made from these */
} Manager;

static void manager_set_status(Manager *m) {
        unsigned connections = varlink_front_connections(m->varlink), calls = dispatcher_calls(m->dispatcher);
        char s[sizeof m->status];

        /* Called around every call: nothing to format when nothing moved. */
        if (m->status[0] && m->status_connections == connections && m->status_calls == calls)
                return;
        m->status_connections = connections;
        m->status_calls = calls;
        if (connections > 0)
                snprintf(s, sizeof s, "Serving %u connection%s", connections, connections == 1 ? "" : "s");
        else if (calls > 0)
                snprintf(s, sizeof s, "Finishing %u call%s", calls, calls == 1 ? "" : "s");
        else
                snprintf(s, sizeof s, "Idle");
        if (streq(s, m->status))
                return;
        snprintf(m->status, sizeof m->status, "%s", s);
        (void) sd_notifyf(false, "STATUS=%s", s);
}

static void manager_ready(void *userdata) {
        Manager *m = userdata;
        if (m->ready)
                return;
        m->ready = true;
        (void) sd_notify(false, "READY=1");
}

/* Whether anything is going on: a varlink connection, a bus call, a worker. */
static bool manager_busy(Manager *m) {
        return varlink_front_connections(m->varlink) > 0 || bus_front_calls(m->bus) > 0 ||
               dispatcher_calls(m->dispatcher) > 0;
}

/* The idle timer runs only while nothing at all is going on: no
 * connection (a follow is one), no bus call, no worker. Exiting then is
 * safe with socket activation: a client connecting meanwhile waits in the
 * listening socket, which systemd keeps, and systemd starts us again for
 * it; for the bus, see serve-dbus.h. */
static void manager_update(void *userdata) {
        Manager *m = userdata;
        bool busy = manager_busy(m);
        uint64_t now;

        manager_set_status(m);
        if ((m->exiting && dispatcher_calls(m->dispatcher) == 0) ||
            (m->stopping && !bus_front_releasing(m->bus) && !busy)) {
                (void) sd_event_exit(m->event, 0);
                return;
        }
        if (!m->idle_source || m->stopping || busy == !m->idle_armed)
                return;
        if (busy) {
                (void) sd_event_source_set_enabled(m->idle_source, SD_EVENT_OFF);
                m->idle_armed = false;
                return;
        }
        if (sd_event_now(m->event, CLOCK_MONOTONIC, &now) < 0 ||
            sd_event_source_set_time(m->idle_source, now + m->idle_usec) < 0 ||
            sd_event_source_set_enabled(m->idle_source, SD_EVENT_ONESHOT) < 0)
                return;
        m->idle_armed = true;
}

/* With a bus name, exiting takes a round trip to the bus daemon (see
 * serve-dbus.h); STOPPING=1 first, so that systemd queues a start
 * asked for meanwhile instead of taking us for running. */
static int on_idle(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        log_debug("Idle for %llu s, exiting", (unsigned long long) (m->idle_usec / USEC_PER_SEC));
        m->idle_armed = false; /* a oneshot: off now */
        if (bus_front_name_owned(m->bus)) {
                (void) sd_notify(false, "STOPPING=1");
                m->stopping = true;
                if (bus_front_release(m->bus) > 0)
                        return 0; /* manager_update() exits once it is released */
        }
        return sd_event_exit(m->event, 0);
}

/* SIGTERM/SIGINT: calls already running in workers finish and are
 * answered (they may be half-way through a deploy); new ones are refused;
 * then exit. KillMode=mixed in the unit lets the workers finish. */
static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;
        log_debug("Got signal %u, exiting", si->ssi_signo);
        m->exiting = true;
        dispatcher_shut_down(m->dispatcher);
        (void) sd_notify(false, "STOPPING=1");
        manager_update(m);
        return 0;
}

/* A required bus name that cannot be had ends the daemon. */
static void on_bus_failed(int r, void *userdata) {
        Manager *m = userdata;
        (void) sd_event_exit(m->event, r);
}

static void manager_done(Manager *m) {
        /* Calls still waiting (for a worker, for systemd) are answered,
         * with an error, while the adapters are still there to send the
         * answer; the counts read 0 meanwhile. */
        Dispatcher *d = TAKE_PTR(m->dispatcher);
        dispatcher_free(d);
        if (m->context)
                m->context->bus = sd_bus_flush_close_unref(m->context->bus);
        m->bus = bus_front_free(m->bus);
        m->varlink = varlink_front_free(m->varlink);
        m->idle_source = sd_event_source_disable_unref(m->idle_source);
        m->context = nap_context_free(m->context);
        m->event = sd_event_unref(m->event);
}

static void warn_config(void *userdata, const char *message) {
        log_warning("%s", message);
}

static int manager_context(Manager *m) {
        NapError e = NAP_ERROR_NULL;
        int scope = arg_scope;
        const char *env = secure_getenv("SYSTEMD_SCOPE");

        if (scope < 0 && env) {
                scope = nap_scope_from_string(env);
                if (scope < 0)
                        return log_error_errno(EINVAL, "Invalid $SYSTEMD_SCOPE=%s (system or user)", env);
        }
        int r = nap_context_new(&m->context, scope, warn_config, NULL, &e);
        if (r < 0)
                return log_error_errno(r, "%s", e.message);
        /* git parses untrusted repositories: in nap-fetch, not here. */
        r = nap_context_use_fetch_worker(m->context);
        if (r < 0)
                log_notice("Fetching apps in this process: nap-fetch.socket is not listening (%s)", strerror(-r));
        r = dispatcher_new(m->event, m->context, manager_update, m, &m->dispatcher);
        return r < 0 ? log_error_errno(r, "Failed to set up: %m") : 0;
}

/* Room for MaxConnections= clients: systemd starts a service with a soft
 * limit of 1024 open files (for select()'s sake; nothing here uses it)
 * and a hard one far above; the soft one is raised as far as needed. */
static void manager_raise_file_limit(const NapConfig *c) {
        rlim_t want = (rlim_t) c->max_connections + FILES_RESERVED;
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
                return;
        rl.rlim_cur = MIN(want, rl.rlim_max);
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < want)
                log_warning("At most %llu files may be open (LimitNOFILE=): fewer than MaxConnections=%u clients "
                            "can be served at once",
                            (unsigned long long) rl.rlim_max, c->max_connections);
}

static int manager_event(Manager *m) {
        int r = sd_event_default(&m->event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        r = sd_event_add_signal(m->event, NULL, SIGTERM, on_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGINT, on_signal, m);
        if (r >= 0 && m->idle_usec > 0)
                r = sd_event_add_time(m->event, &m->idle_source, CLOCK_MONOTONIC, UINT64_MAX, 0, on_idle, m);
        if (r >= 0 && m->idle_source)
                r = sd_event_source_set_enabled(m->idle_source, SD_EVENT_OFF);
        return r < 0 ? log_error_errno(r, "Failed to set up the event loop: %m") : 0;
}

/* D-Bus is served by default when systemd starts us; a daemon started by
 * hand with --listen leaves the bus name to the real one unless --bus. A
 * bus that cannot be used only costs the D-Bus side, unless asked for. */
static int manager_bus(Manager *m) {
        const BusFrontEvents events = { .changed = manager_update, .ready = manager_ready,
                                        .failed = on_bus_failed, .userdata = m };
        if (arg_bus == 0 || (arg_bus < 0 && arg_listen))
                return 0;
        int r = bus_front_new(m->event, m->dispatcher, m->context->scope, arg_bus > 0, &events, &m->bus);
        if (r >= 0 || arg_bus > 0)
                return r;
        log_warning("Serving io.nap.Manager over varlink only");
        return 0;
}

static void on_recovered(json_t *envelope, void *userdata) {
        json_t *reply = json_object_get(envelope, "parameters");
        if (!reply) {
                log_warning("Recovering operations cut short failed: %s",
                            envelope ? strempty(json_string_value(json_object_get(envelope, "message"))) : "the worker died");
                return;
        }
        log_info("Recovered %lld app(s) from operations cut short, %lld failed%s%s",
                 (long long) json_integer_value(json_object_get(reply, "recovered")),
                 (long long) json_integer_value(json_object_get(reply, "failed")),
                 json_object_get(reply, "lastError") ? ": " : "",
                 strempty(json_string_value(json_object_get(reply, "lastError"))));
}

/* A process of ours killed half-way through an operation (the whole unit,
 * SIGKILL) left an intent record: its app is put right in a worker now, not
 * on the first call's path (every operation on that app would do it first
 * anyway, under the app's lock). One readdir of ROOT/intents when there is none. */
static void manager_recover(Manager *m) {
        if (!nap_recover_pending(m->context->config))
                return;
        json_t *args = json_object();
        if (args)
                dispatcher_call(m->dispatcher, nap_method_find("Recover"), 0, args, on_recovered, m);
        json_decref(args);
}

/* The bus side: the unit cache starts listing, the D-Bus front connects
 * and asks for its name; then operations cut short are recovered. */
static int on_bus_start(sd_event_source *s, void *userdata) {
        Manager *m = userdata;
        dispatcher_prepare(m->dispatcher);
        int r = manager_bus(m);
        if (r < 0)
                return sd_event_exit(m->event, r);
        log_debug("Serving io.nap.Manager (%s scope)%s, idle timeout %llu s", nap_scope_to_string(m->context->scope),
                  m->bus ? " and " MANAGER_BUS_NAME : "", (unsigned long long) (m->idle_usec / USEC_PER_SEC));
        if (!m->bus)
                manager_ready(m); /* else once the name is ours */
        manager_recover(m);
        return 0;
}

/* Started by the socket, we have the call that started us waiting in it:
 * it is answered first, in the loop's first turns, and the bus side is
 * set up after it (it took 1-2 ms of that first call, bench/varlink). A
 * call that needs the unit cache starts it itself. */
static int manager_defer_bus(Manager *m) {
        _cleanup_(sd_event_source_unrefp) sd_event_source *s = NULL;
        int r = sd_event_add_defer(m->event, &s, on_bus_start, m);
        if (r >= 0)
                r = sd_event_source_set_priority(s, SD_EVENT_PRIORITY_NORMAL + 1);
        if (r >= 0)
                r = sd_event_source_set_floating(s, true);
        return r < 0 ? log_error_errno(r, "Failed to set up the event loop: %m") : 0;
}

static int run(void) {
        _cleanup_(manager_done) Manager m = {};
        int r;

        m.idle_usec = (arg_idle_sec >= 0 ? (uint64_t) arg_idle_sec : arg_listen ? 0 : IDLE_TIMEOUT_DEFAULT_SEC) *
                      USEC_PER_SEC;
        r = manager_event(&m);
        if (r >= 0)
                r = manager_context(&m);
        if (r >= 0)
                manager_raise_file_limit(m.context->config);
        if (r >= 0)
                r = varlink_front_new(m.event, m.dispatcher, arg_listen, manager_update, &m, &m.varlink);
        if (r >= 0)
                r = manager_defer_bus(&m);
        if (r < 0)
                return r;

        manager_update(&m); /* arms the idle timer */
        r = sd_event_loop(m.event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        return 0;
}

/* ---- command line ----------------------------------------------------- */

static void help(void) {
        printf("nap-managerd [OPTIONS...]\n\n"
               "Serve io.nap.Manager over varlink and io.nap.Manager1 over D-Bus: deploy apps\n"
               "and control their instances. Normally started by nap-managerd.socket or by\n"
               "the bus (dbus-1/services/io.nap.Manager1.service).\n\n"
               "  -h --help              Show this help\n"
               "     --version           Show the version\n"
               "     --listen=PATH       Bind the socket PATH instead of taking it from systemd\n"
               "     --idle-timeout=SEC  Exit after SEC seconds without connections or calls;\n"
               "                         0: never (default %u; with --listen, never)\n"
               "     --bus, --no-bus     Serve io.nap.Manager1 on D-Bus, or not (default: yes,\n"
               "                         unless --listen)\n"
               "     --user              Control the user service manager's apps\n"
               "     --system            Control the system service manager's apps\n"
               "                         (default: $SYSTEMD_SCOPE, else Scope= in nap.conf)\n"
               "\nConfiguration: %s, or the file in $NAP_CONFIG.\n"
               "See nap-managerd(8) and io.nap.Manager(7).\n",
               IDLE_TIMEOUT_DEFAULT_SEC, NAP_CONFIG_DEFAULT_PATH);
}

enum { ARG_VERSION = 0x100, ARG_LISTEN, ARG_IDLE_TIMEOUT, ARG_USER, ARG_SYSTEM, ARG_BUS, ARG_NO_BUS };

/* 1: exit 0 now (help, version); 0: go on; < 0: usage error. */
static int parse_argv(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "listen", required_argument, NULL, ARG_LISTEN },
                { "idle-timeout", required_argument, NULL, ARG_IDLE_TIMEOUT },
                { "user", no_argument, NULL, ARG_USER },
                { "system", no_argument, NULL, ARG_SYSTEM },
                { "bus", no_argument, NULL, ARG_BUS },
                { "no-bus", no_argument, NULL, ARG_NO_BUS },
                {},
        };
        for (int c; (c = getopt_long(argc, argv, "h", options, NULL)) >= 0;)
                switch (c) {
                case 'h':
                        help();
                        return 1;
                case ARG_VERSION:
                        printf("nap-managerd %s\n", NAP_VERSION);
                        return 1;
                case ARG_LISTEN:
                        if (optarg[0] != '/' && optarg[0] != '@')
                                return log_error_errno(EINVAL, "--listen= takes an absolute path or @abstract name");
                        arg_listen = optarg;
                        break;
                case ARG_IDLE_TIMEOUT:
                        if (daemon_parse_seconds(optarg, 0, IDLE_TIMEOUT_MAX_SEC, &arg_idle_sec) < 0)
                                return log_error_errno(EINVAL, "--idle-timeout= takes seconds from 0 to %u, not '%s'",
                                                       IDLE_TIMEOUT_MAX_SEC, optarg);
                        break;
                case ARG_USER:
                        arg_scope = NAP_SCOPE_USER;
                        break;
                case ARG_SYSTEM:
                        arg_scope = NAP_SCOPE_SYSTEM;
                        break;
                case ARG_BUS:
                case ARG_NO_BUS:
                        arg_bus = c == ARG_BUS;
                        break;
                default:
                        return -EINVAL;
                }
        if (optind < argc)
                return log_error_errno(EINVAL, "No arguments are taken, only options (see --help)");
        return 0;
}

int main(int argc, char *argv[]) {
        log_setup();
        int r = parse_argv(argc, argv);
        if (r != 0)
                return r > 0 ? EXIT_SUCCESS : 2;

        /* SIGCHLD too, for the workers. A client hanging up must not kill
         * us: writes use MSG_NOSIGNAL, and SIGPIPE is ignored otherwise. */
        if (daemon_signals_setup(true) < 0)
                return EXIT_FAILURE;

        r = run();
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
