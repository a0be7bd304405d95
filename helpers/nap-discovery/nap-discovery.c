/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* nap-discovery USER_APP_common@N: the sidecar of one instance
 * (USER_APP_discovery@N.service). Publishes the instance's endpoint in etcd
 * on a lease, only while the app answers on its port, and withdraws it the
 * moment it stops answering or the sidecar stops. nap-discovery(8).
 *
 * One sd-event loop: a probe timer (discovery-probe.c), an etcd timer for
 * keep-alives and retries, SIGTERM/SIGINT, the watchdog. What to do next is
 * decided by lib/model/discovery.c; this file does the I/O and says what
 * happened, once per change (journal, STATUS=). etcd requests block, each
 * bounded by short client timeouts, so one dead endpoint stalls the loop
 * for at most ETCD_TIMEOUT_USEC per request. */

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "model/config.h"
#include "../common/log.h"
#include "discovery-probe.h"
#include "model/discovery.h"
#include "model/endpoint.h"
#include "clients/etcd.h"
#include "base/fileio.h"
#include "model/manifest.h"
#include "nap-config.h"
#include "model/names.h"
#include "model/profile.h"

/* A request that takes longer than this is as good as failed: the loop
 * must keep probing and keeping the lease alive. */
#define ETCD_CONNECT_TIMEOUT_USEC (500ULL * 1000ULL)
#define ETCD_TIMEOUT_USEC (1000ULL * 1000ULL)
#define PROBE_TIMEOUT_USEC_DEFAULT (1000ULL * 1000ULL)
#define STEPS_PER_WAKEUP 5

static DiscoveryCheck arg_probe = DISCOVERY_CHECK_HTTP;
static uint64_t arg_probe_timeout_usec = PROBE_TIMEOUT_USEC_DEFAULT;
static const char *arg_instance = NULL;
static unsigned arg_port = 0;              /* --port=: no manifest is read */
static const char *arg_health_path = NULL; /* --health-path= */

typedef struct Context {
        NapConfig *config;
        NapInstance instance;
        char name[NAP_UNIT_NAME_MAX];  /* USER_APP_common@N */
        unsigned port;
        char *health_path;             /* the manifest's, else nap.conf's HealthPath= */
        char *key;
        char *value;
        EtcdClient *etcd;

        sd_event *event;
        sd_event_source *probe_timer;
        sd_event_source *etcd_timer;
        Probe probe;
        Discovery d;

        char etcd_error[NAP_ERROR_MESSAGE_MAX]; /* of the failing request */
        char *status;                  /* the STATUS= last sent */
        bool ready;
} Context;

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * DISCOVERY_USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static void context_done(Context *c) {
        probe_cancel(&c->probe);
        sd_event_source_disable_unref(c->probe_timer);
        sd_event_source_disable_unref(c->etcd_timer);
        sd_event_unref(c->event);
        etcd_client_free(c->etcd);
        nap_config_free(c->config);
        free(c->health_path);
        free(c->key);
        free(c->value);
        free(c->status);
}

/* ---- what the outside sees ------------------------------------------- */

static char *status_text(const Context *c) {
        const Discovery *d = &c->d;
        const char *etcd = discovery_etcd_failing(d) ? "; etcd unreachable, retrying" : "";

        switch (discovery_state(d)) {
        case DISCOVERY_STATE_WAITING:
                if (d->app_answered_once)
                        return strdup_printf("%s stopped answering on port %u; not published", c->name, c->port);
                return strdup_printf("Waiting for %s to answer on port %u", c->name, c->port);
        case DISCOVERY_STATE_PUBLISHING:
                if (discovery_etcd_failing(d))
                        return strdup_printf("etcd unreachable, retrying: %s", c->etcd_error);
                return strdup_printf("Publishing %s", c->key);
        case DISCOVERY_STATE_PUBLISHED:
                return strdup_printf("Published %s (lease %" PRIx64 ")%s", c->key, d->lease, etcd);
        case DISCOVERY_STATE_WITHDRAWING:
                return strdup_printf("%s stopped answering; withdrawing %s%s", c->name, c->key, etcd);
        default:
                return NULL;
        }
}

/* A unit whose sandbox hides $NOTIFY_SOCKET never becomes ready: say so,
 * once, rather than hang in "activating" without a word. */
static void notify(const char *text) {
        static bool warned = false;
        int r = sd_notify(false, text);

        if (r < 0 && !warned) {
                warned = true;
                log_warning_errno(r, "Cannot notify the service manager at %s: %m",
                                  strempty(getenv("NOTIFY_SOCKET")));
        }
}

/* STATUS= when it changed; READY=1 after the first publish. */
static void notify_state(Context *c) {
        _cleanup_free_ char *s = status_text(c), *msg = NULL;
        bool ready = !c->ready && discovery_state(&c->d) == DISCOVERY_STATE_PUBLISHED;

        if (!s || (c->status && streq(s, c->status)))
                return;
        msg = strdup_printf("%sSTATUS=%s", ready ? "READY=1\n" : "", s);
        if (!msg)
                return;
        c->ready = c->ready || ready;
        notify(msg);
        free(c->status);
        c->status = TAKE_PTR(s);
}

/* ---- etcd ------------------------------------------------------------ */

/* The seed's PREFIX/port/USER/APP/N (no lease: it outlives the instance's
 * runs), put again with every publication: a sidecar publishes again
 * whenever its lease was lost, so an etcd restored empty gets it back as
 * soon as it answers (nap-managerd(8), CRASH SAFETY). */
static int put_seed_port(Context *c, NapError *e) {
        _cleanup_free_ char *key = nap_key_instance_port(c->config, &c->instance);
        char port[16];
        if (!key)
                return nap_error_errno(e, -ENOMEM, "Out of memory");
        snprintf(port, sizeof port, "%u", c->port);
        return etcd_put(c->etcd, key, port, strlen(port), 0, NULL, e);
}

static int step_request(Context *c, DiscoveryStep step, uint64_t started, NapError *e) {
        Discovery *d = &c->d;
        int64_t id = 0, ttl = 0;
        int r;

        switch (step) {
        case DISCOVERY_STEP_GRANT:
                r = etcd_lease_grant(c->etcd, (int64_t) d->ttl_sec, &id, &ttl, e);
                if (r >= 0)
                        discovery_granted(d, id, ttl, started);
                return r;
        case DISCOVERY_STEP_PUT:
                r = etcd_put(c->etcd, c->key, c->value, strlen(c->value), d->lease, NULL, e);
                if (r >= 0)
                        r = put_seed_port(c, e);
                if (r >= 0) {
                        log_info("Published %s on lease %" PRIx64 ".", c->key, d->lease);
                        discovery_put_done(d);
                }
                return r;
        case DISCOVERY_STEP_KEEPALIVE:
                r = etcd_lease_keepalive(c->etcd, d->lease, &ttl, e);
                if (r >= 0)
                        discovery_kept_alive(d, ttl, started);
                return r;
        case DISCOVERY_STEP_REVOKE:
                r = etcd_lease_revoke(c->etcd, d->lease, e);
                if (r < 0 && r != -ENOENT)
                        return r;
                log_info("Withdrew %s (lease %" PRIx64 " %s).", c->key, d->lease, r >= 0 ? "revoked" : "already gone");
                discovery_revoked(d);
                return 0;
        default:
                return -EINVAL;
        }
}

static void step_failed(Context *c, DiscoveryStep step, int r, const NapError *e) {
        const char *msg = nap_error_is_set(e) ? e->message : strerror(-r);

        if (r == -ENOENT && (step == DISCOVERY_STEP_KEEPALIVE || step == DISCOVERY_STEP_PUT))
                log_notice("Lease %" PRIx64 " is gone (expired, or etcd lost its data); publishing again.",
                           c->d.lease);
        else if (r != -ENOENT && !discovery_etcd_failing(&c->d))
                /* Once per outage; the retries are quiet. */
                log_warning("etcd %s failed, retrying: %s", discovery_step_to_string(step), msg);
        else
                log_debug("etcd %s failed again: %s", discovery_step_to_string(step), msg);
        if (r != -ENOENT)
                snprintf(c->etcd_error, sizeof c->etcd_error, "%s", msg);
        discovery_failed(&c->d, step, r, now_usec());
}

static void run_step(Context *c, DiscoveryStep step) {
        NapError e = NAP_ERROR_NULL;
        bool was_failing = discovery_etcd_failing(&c->d);
        uint64_t started = now_usec();
        int r;

        r = step_request(c, step, started, &e);
        log_debug("etcd %s: %s in %.1f ms", discovery_step_to_string(step), r >= 0 ? "ok" : strerror(-r),
                  (double) (now_usec() - started) / 1000.0);
        if (r < 0)
                step_failed(c, step, r, &e);
        if (was_failing && (r >= 0 || r == -ENOENT))
                log_info("etcd answers again (%s).", etcd_client_endpoint(c->etcd));
}

static void arm(sd_event_source *s, uint64_t usec) {
        if (usec == DISCOVERY_USEC_INFINITY) {
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(s, usec);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

/* Makes every request that is due, then sleeps until the next one is. */
static void reconcile(Context *c) {
        for (unsigned i = 0; i < STEPS_PER_WAKEUP; i++) {
                DiscoveryStep step = discovery_next_step(&c->d, now_usec());
                if (step == DISCOVERY_STEP_NONE)
                        break;
                run_step(c, step);
        }
        arm(c->etcd_timer, discovery_next_wakeup(&c->d));
        notify_state(c);
}

static int on_etcd_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        reconcile(userdata);
        return 0;
}

/* ---- the app --------------------------------------------------------- */

static void on_probe_done(Probe *p, DiscoveryCheck check, DiscoveryProbeResult r, const char *why,
                          void *userdata) {
        Context *c = userdata;
        uint64_t now = now_usec();

        if (discovery_probe_done(&c->d, check, r, now)) {
                if (c->d.app_up)
                        log_info("%s answers on port %u.", c->name, c->port);
                else
                        log_warning("%s stopped answering on port %u: %s.", c->name, c->port, why);
        } else
                log_debug("%s check: %s (%s)", discovery_check_to_string(check),
                          discovery_probe_result_to_string(r), why);
        reconcile(c);
        arm(c->probe_timer, now_usec() + discovery_probe_interval(&c->d, now));
}

static int on_probe_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Context *c = userdata;
        DiscoveryCheck check = discovery_next_check(&c->d, now_usec());
        int r = probe_start(&c->probe, check);

        if (r < 0) {
                /* Out of fds or memory: count it as no answer, try again later. */
                log_warning_errno(r, "Failed to start a probe: %m");
                on_probe_done(&c->probe, check, DISCOVERY_PROBE_TIMEOUT, "probe could not start", c);
        }
        return 0;
}

/* ---- set-up ---------------------------------------------------------- */

static void config_warn(void *userdata, const char *message) {
        log_warning("%s", message);
}

/* An exported sidecar (napctl export-units) runs where no manifest is:
 * its unit gives the port, and the health path unless nap.conf's is
 * meant. */
static int load_instance_from_options(Context *c) {
        c->port = arg_port;
        c->health_path = strdup(arg_health_path ?: c->config->health_path);
        return c->health_path ? 0 : log_error_errno(-ENOMEM, "Out of memory.");
}

static int load_instance(Context *c) {
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        _cleanup_free_ char *path = NULL;
        NapError e = NAP_ERROR_NULL;
        int r;

        r = nap_instance_parse(arg_instance, &c->instance, &e);
        if (r < 0)
                return log_error_errno(r, "%s", e.message);
        if (c->instance.kind != NAP_KIND_COMMON)
                return log_error_errno(-EINVAL, "%s is not a common instance (USER_APP_common@N).", arg_instance);
        nap_instance_name(&c->instance, c->name);

        r = nap_config_load(&c->config, config_warn, NULL, &e);
        if (r < 0)
                return log_error_errno(r, "%s", e.message);
        if (!c->config->etcd)
                return log_error_errno(-EINVAL, "Etcd= is not set in %s: nowhere to publish %s.",
                                       c->config->path ?: "nap.conf", c->name);
        if (arg_port > 0)
                return load_instance_from_options(c);

        path = nap_manifest_path(c->config->instances_dir, &c->instance);
        if (!path)
                return log_error_errno(-ENOMEM, "Out of memory.");
        r = nap_manifest_load(path, &m, &e);
        if (r < 0)
                return log_error_errno(r, "Cannot read the manifest of %s: %s", c->name, e.message);
        c->port = m->port;
        c->health_path = strdup(nap_manifest_health_path(m, c->config->health_path));
        if (!c->health_path)
                return log_error_errno(-ENOMEM, "Out of memory.");
        return 0;
}

static int make_endpoint(Context *c) {
        _cleanup_free_ char *host = NULL;
        char unit[NAP_UNIT_NAME_MAX];
        int r;

        r = nap_config_host(c->config, &host);
        if (r < 0)
                return log_error_errno(r, "Cannot tell the host name to publish (set Host=): %m");
        NapEndpoint ep = {
                .host = host,
                .port = c->port,
                .instance = c->name,
                .unit = (char *) nap_instance_unit_name(&c->instance, unit),
        };
        c->key = nap_key_endpoint(c->config, &c->instance.service, host, c->port);
        c->value = nap_endpoint_format(&ep);
        if (!c->key || !c->value)
                return log_error_errno(-ENOMEM, "Out of memory.");
        return 0;
}

static int make_etcd_client(Context *c) {
        NapError e = NAP_ERROR_NULL;
        int r = etcd_client_new(c->config->etcd, &c->etcd, &e);

        if (r < 0)
                return log_error_errno(r, "%s", e.message);
        c->etcd->connect_timeout_usec = ETCD_CONNECT_TIMEOUT_USEC;
        c->etcd->timeout_usec = ETCD_TIMEOUT_USEC;
        /* Answers to lease and put requests are a few hundred bytes. */
        c->etcd->max_response_size = 64 * 1024;
        return 0;
}

static int setup_event(Context *c) {
        int r;

        r = sd_event_default(&c->event);
        if (r >= 0)
                r = sd_event_add_signal(c->event, NULL, SIGTERM, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(c->event, NULL, SIGINT, NULL, NULL);
        /* WatchdogSec=: WATCHDOG=1 from the loop itself, so a stuck loop
         * is what the watchdog sees. */
        if (r >= 0)
                r = sd_event_set_watchdog(c->event, true);
        if (r >= 0)
                r = sd_event_add_time(c->event, &c->probe_timer, CLOCK_MONOTONIC, 0, 1000, on_probe_timer, c);
        if (r >= 0)
                r = sd_event_add_time(c->event, &c->etcd_timer, CLOCK_MONOTONIC, 0, 1000, on_etcd_timer, c);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->etcd_timer, SD_EVENT_OFF);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the event loop: %m");
        probe_init(&c->probe, c->event, c->port, c->health_path, arg_probe_timeout_usec, on_probe_done, c);
        return 0;
}

/* On the way out: the key goes now, not when its lease runs out. */
static void withdraw(Context *c) {
        NapError e = NAP_ERROR_NULL;
        int r;

        if (c->d.lease == 0)
                return;
        r = etcd_lease_revoke(c->etcd, c->d.lease, &e);
        if (r >= 0 || r == -ENOENT)
                log_info("Withdrew %s (lease %" PRIx64 " %s).", c->key, c->d.lease,
                         r >= 0 ? "revoked" : "already gone");
        else
                log_warning("Could not revoke lease %" PRIx64 "; %s goes when it expires (%" PRIu64 " s): %s",
                            c->d.lease, c->key, c->d.ttl_sec, e.message);
}

/* ---- command line ---------------------------------------------------- */

static void help(void) {
        printf("nap-discovery [OPTIONS...] USER_APP_common@N\n\n"
               "Publish an instance's endpoint in etcd while it answers (nap-discovery(8)).\n\n"
               "  -h --help                 Show this help\n"
               "     --version              Show the version\n"
               "     --probe=http|tcp       http: HEAD HealthPath= every HealthCheckSec=, TCP\n"
               "                            connects between (default); tcp: TCP connects only\n"
               "     --probe-timeout=SEC    How long an answer may take (default: 1)\n"
               "     --port=PORT            The instance's port: read no manifest (exported units)\n"
               "     --health-path=PATH     With --port=: the path HTTP checks ask for\n"
               "                            (default: HealthPath= of nap.conf)\n");
}

static int parse_seconds(const char *s, uint64_t *ret) {
        char *end;
        double v;

        errno = 0;
        v = strtod(s, &end);
        if (errno != 0 || end == s || *end != 0 || !isfinite(v) || v < 0.01 || v > 3600)
                return -EINVAL;
        *ret = (uint64_t) (v * 1e6);
        return 0;
}

static int parse_argv(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_PROBE, ARG_PROBE_TIMEOUT, ARG_PORT, ARG_HEALTH_PATH };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "probe", required_argument, NULL, ARG_PROBE },
                { "probe-timeout", required_argument, NULL, ARG_PROBE_TIMEOUT },
                { "port", required_argument, NULL, ARG_PORT },
                { "health-path", required_argument, NULL, ARG_HEALTH_PATH },
                {}
        };
        int o;

        while ((o = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (o) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        puts("nap-discovery " NAP_VERSION);
                        return 0;
                case ARG_PROBE:
                        arg_probe = discovery_check_from_string(optarg);
                        if (arg_probe < 0)
                                return log_error_errno(-EINVAL, "--probe= takes http or tcp, not '%s'.", optarg);
                        break;
                case ARG_PROBE_TIMEOUT:
                        if (parse_seconds(optarg, &arg_probe_timeout_usec) < 0)
                                return log_error_errno(-EINVAL, "--probe-timeout= takes seconds (0.01…3600), not '%s'.",
                                                       optarg);
                        break;
                case ARG_PORT:
                        /* decimal as nap writes numbers, 1…65535 */
                        if (nap_instance_number_parse(optarg, &arg_port) < 0 || arg_port > 65535)
                                return log_error_errno(-EINVAL, "--port= takes a port (1…65535), not '%s'.", optarg);
                        break;
                case ARG_HEALTH_PATH:
                        if (!nap_health_path_is_valid(optarg))
                                return log_error_errno(-EINVAL, "--health-path= takes an absolute URL path, not '%s'.",
                                                       optarg);
                        arg_health_path = optarg;
                        break;
                default: /* '?': getopt said what */
                        return -EINVAL;
                }
        if (arg_health_path && arg_port == 0)
                return log_error_errno(-EINVAL, "--health-path= needs --port=.");
        if (argc - optind != 1)
                return log_error_errno(-EINVAL, "Expected one argument, the instance (USER_APP_common@N); see --help.");
        arg_instance = argv[optind];
        return 1;
}

static int run(int argc, char *argv[]) {
        _cleanup_(context_done) Context c = {};
        sigset_t mask;
        int r;

        log_setup();
        r = parse_argv(argc, argv);
        if (r <= 0)
                return r;
        if (load_instance(&c) < 0 || make_endpoint(&c) < 0 || make_etcd_client(&c) < 0)
                return -EINVAL;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Failed to block signals: %m");
        (void) signal(SIGPIPE, SIG_IGN);
        r = setup_event(&c);
        if (r < 0)
                return r;
        discovery_init(&c.d, c.config->discovery_ttl, arg_probe == DISCOVERY_CHECK_TCP ? 0 : c.config->health_check_sec,
                       now_usec());
        if (arg_probe == DISCOVERY_CHECK_TCP)
                log_info("Waiting for %s to accept TCP connections on port %u, then publishing %s (TTL %u s).",
                         c.name, c.port, c.key, c.config->discovery_ttl);
        else
                log_info("Waiting for %s to answer HEAD %s on port %u, then publishing %s (TTL %u s); "
                         "then HEAD every %u s, TCP connects between.", c.name, c.health_path, c.port, c.key,
                         c.config->discovery_ttl, c.config->health_check_sec);
        notify_state(&c);

        r = sd_event_loop(c.event);
        notify("STOPPING=1\nSTATUS=Withdrawing");
        probe_cancel(&c.probe);
        withdraw(&c);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        return 0;
}

int main(int argc, char *argv[]) {
        return run(argc, argv) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
