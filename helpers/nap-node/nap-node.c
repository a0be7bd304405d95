/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* nap-node: this host in the cluster's inventory (nap-node(8)).
 *
 * At start it registers the node (lib/cluster/inventory.h): its record,
 * durable, and its membership on a lease of NodeTTL= seconds; then it
 * tells systemd READY=1. It keeps the lease alive every third of the TTL,
 * so that the node is NotReady within the TTL of this process dying or the
 * host losing the network, and registers again when the lease was lost
 * (etcd unreachable longer than the TTL, or wiped). It also notes, for the
 * nodes that left without saying goodbye, why and since when (any live
 * agent may; the write is guarded): about twice a second in the whole
 * cluster, whatever its size (agent_turn_to_look()). SIGTERM: the clean
 * stop, in seed 004's order: the record goes, then the membership.
 *
 * It also makes the node's assignments (cluster apps) real on this host:
 * realize.h, in a thread of its own that gets the membership lease for its
 * reports; and runs for election as the cluster's reconciler, which moves
 * a dead node's instances: reconciler.h, in another thread.
 *
 * Fencing: it registers only once the realizer has stopped and removed
 * every cluster instance no longer assigned here (at start, and after a
 * lost lease). A membership not renewed within NodeTTL= of the last
 * renewal sent (etcd out of reach: a partition) counts as lost at once,
 * without waiting to hear it from etcd: the node's cluster instances stop
 * then, before the reconciler may move them (ReconcileGraceSec=).
 *
 * Type=notify with a watchdog: WATCHDOG=1 on every round of the loop, so
 * a hung agent (not an unreachable etcd: that is reported in STATUS=) is
 * restarted by systemd. */

#include <getopt.h>
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "../common/daemon.h"
#include "../common/log.h"
#include "base/clock.h"
#include "cluster/host.h"
#include "cluster/inventory.h"
#include "nap-config.h"
#include "node-etcd.h"
#include "realize.h"
#include "reconciler.h"

#define ROUND_USEC (1 * USEC_PER_SEC)
#define ETCD_TIMEOUT_USEC (2 * USEC_PER_SEC)
#define NOT_READY_REASON "membership lease expired (the node's agent stopped renewing it)"

typedef struct Agent {
        sd_event *event;
        sd_event_source *round;
        NapConfig *config;
        EtcdClient *etcd;
        NapNode node;
        int64_t lease;          /* 0: not registered */
        Realizer *realizer;     /* this node's assignments, made real */
        Reconciler *reconciler; /* the cluster's, if elected */
        uint64_t keepalive_due; /* CLOCK_MONOTONIC */
        uint64_t renew_sent;    /* CLOCK_MONOTONIC: when the last renewal that worked was sent */
        unsigned members;       /* Ready nodes at the last look for departures */
        char status[160];
} Agent;

static void agent_status(Agent *a, const char *fmt, ...) _printf_(2, 3);
static void agent_status(Agent *a, const char *fmt, ...) {
        char s[sizeof a->status];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s, sizeof s, fmt, ap);
        va_end(ap);
        if (streq(s, a->status))
                return;
        snprintf(a->status, sizeof a->status, "%s", s);
        log_info("%s", s);
        (void) sd_notifyf(false, "STATUS=%s", s);
}

static uint64_t ttl_usec(const Agent *a) {
        return (uint64_t) a->config->node_ttl * USEC_PER_SEC;
}

/* The membership is good for another TTL from sent on: renewed at a
 * third of it. */
static void agent_renewed(Agent *a, uint64_t sent) {
        a->renew_sent = sent;
        realizer_renewed(a->realizer, sent + ttl_usec(a));
        a->keepalive_due = monotonic_usec() + ttl_usec(a) / 3;
        agent_status(a, "Registered node %s (%s), Ready%s", a->node.name, a->node.address,
                     reconciler_leads(a->reconciler) ? ", leads the reconciler" : "");
}

/* The realizer's reports and the reconciler's leadership go on the
 * membership lease. */
static void agent_set_lease(Agent *a, int64_t lease) {
        a->lease = lease;
        if (lease == 0)
                realizer_renewed(a->realizer, 0);
        realizer_set_lease(a->realizer, lease);
        reconciler_set_lease(a->reconciler, lease);
}

static int agent_register(Agent *a) {
        NapError e = NAP_ERROR_NULL;
        int64_t lease = 0, granted = 0;
        uint64_t sent = monotonic_usec();
        if (!realizer_fenced(a->realizer)) {
                agent_status(a, "Not registered yet: stopping the cluster instances no longer assigned here first");
                return -EAGAIN;
        }
        int r = etcd_lease_grant(a->etcd, a->config->node_ttl, &lease, &granted, &e);
        if (r >= 0)
                r = nap_node_register(a->etcd, a->config->cluster_prefix, &a->node, lease, &e);
        if (r < 0) {
                agent_status(a, "Not registered: %s", e.message);
                return r;
        }
        agent_set_lease(a, lease);
        agent_renewed(a, sent);
        (void) sd_notify(false, "READY=1");
        return 0;
}

static void agent_keepalive(Agent *a) {
        NapError e = NAP_ERROR_NULL;
        int64_t ttl = 0;
        uint64_t sent = monotonic_usec();
        if (sent < a->keepalive_due)
                return;
        int r = etcd_lease_keepalive(a->etcd, a->lease, &ttl, &e);
        if (r < 0 && r != -ENOENT && monotonic_usec() >= a->renew_sent + ttl_usec(a)) {
                /* etcd may have let it expire by now: as good as lost */
                agent_status(a, "Membership not renewed within NodeTTL=%u s (%s): stopping this node's cluster "
                             "instances; registering again once etcd answers", a->config->node_ttl, e.message);
                agent_set_lease(a, 0);
                return;
        }
        if (r == -ENOENT) {
                /* expired while etcd was out of reach, or wiped: again */
                agent_status(a, "Membership lease lost; registering again");
                agent_set_lease(a, 0);
                (void) agent_register(a);
                return;
        }
        if (r < 0) {
                agent_status(a, "Keeping the membership alive failed: %s", e.message);
                return; /* again next round, while the TTL lasts */
        }
        agent_renewed(a, sent);
}

/* Looking for departed nodes costs three reads of the inventory: every
 * agent looks with a chance of 2 in the number of Ready nodes each round,
 * so the cluster as a whole looks about twice a second, whatever its size. */
static bool agent_turn_to_look(Agent *a) {
        return a->members <= 2 || (unsigned) random() % a->members < 2;
}

static void agent_note_departures(Agent *a) {
        NapError e = NAP_ERROR_NULL;
        if (!agent_turn_to_look(a))
                return;
        int n = nap_nodes_mark_not_ready(a->etcd, a->config->cluster_prefix, NOT_READY_REASON, realtime_usec(),
                                         &a->members, &e);
        if (n > 0)
                log_info("Noted %d node(s) as NotReady", n);
        else if (n < 0)
                log_debug("Could not note departed nodes: %s", e.message);
}

static int on_round(sd_event_source *s, uint64_t usec, void *userdata) {
        Agent *a = userdata;
        if (a->lease == 0)
                (void) agent_register(a);
        else
                agent_keepalive(a);
        if (a->lease != 0)
                agent_note_departures(a);
        (void) sd_notify(false, "WATCHDOG=1");
        /* a round at least four times per TTL: a short NodeTTL= (2 s) still
         * gets its keep-alive at a third of it */
        (void) sd_event_source_set_time(s, monotonic_usec() + MIN(ROUND_USEC, ttl_usec(a) / 4));
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Agent *a = userdata;
        NapError e = NAP_ERROR_NULL;
        (void) sd_notify(false, "STOPPING=1");
        a->reconciler = reconciler_stop(a->reconciler);
        a->realizer = realizer_stop(a->realizer); /* a start under way first answers or fails */
        if (a->lease != 0 && nap_node_deregister(a->etcd, a->config->cluster_prefix, a->node.name, a->lease, &e) < 0)
                log_warning("Leaving the cluster failed (the membership lapses within %u s): %s",
                            a->config->node_ttl, e.message);
        else if (a->lease != 0)
                log_info("Node %s left the cluster", a->node.name);
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static void agent_done(Agent *a) {
        a->reconciler = reconciler_stop(a->reconciler);
        a->realizer = realizer_stop(a->realizer);
        a->round = sd_event_source_disable_unref(a->round);
        a->event = sd_event_unref(a->event);
        a->etcd = etcd_client_free(a->etcd);
        nap_node_done(&a->node);
        a->config = nap_config_free(a->config);
}

static void warn_config(void *userdata, const char *message) {
        log_warning("%s", message);
}

static int agent_setup(Agent *a) {
        NapError e = NAP_ERROR_NULL;
        srandom((unsigned) (monotonic_usec() ^ (uint64_t) getpid()));
        int r = nap_config_load(&a->config, warn_config, NULL, &e);
        if (r >= 0 && !a->config->etcd)
                r = nap_error_set(&e, NAP_ERROR_INVALID_CONFIG, -EINVAL,
                                  "nap-node needs the cluster's etcd: set Etcd= in nap.conf");
        if (r >= 0)
                r = nap_host_node(a->config, &a->node, &e);
        if (r >= 0)
                r = node_etcd_client(a->config, ETCD_TIMEOUT_USEC, &a->etcd, &e);
        if (r < 0)
                return log_error_errno(r, "%s", e.message);
        r = realizer_start(a->config, a->node.name, &a->realizer);
        return r < 0 ? r : reconciler_start(a->config, a->node.name, &a->reconciler);
}

static int agent_event(Agent *a) {
        int r = sd_event_default(&a->event);
        if (r >= 0)
                r = sd_event_add_signal(a->event, NULL, SIGTERM, on_signal, a);
        if (r >= 0)
                r = sd_event_add_signal(a->event, NULL, SIGINT, on_signal, a);
        if (r >= 0)
                r = sd_event_add_time(a->event, &a->round, CLOCK_MONOTONIC, 0, 0, on_round, a);
        if (r >= 0)
                r = sd_event_source_set_enabled(a->round, SD_EVENT_ON);
        return r < 0 ? log_error_errno(r, "Failed to set up the event loop: %m") : 0;
}

static int run(void) {
        _cleanup_(agent_done) Agent a = {};
        int r = agent_setup(&a);
        if (r >= 0)
                r = agent_event(&a);
        if (r < 0)
                return r;
        log_debug("Node %s: %" PRIu64 " milli-cores, %" PRIu64 " bytes of memory, %" PRIu64
                  " bytes of storage, membership TTL %u s",
                  a.node.name, a.node.capacity.cpu_milli, a.node.capacity.memory, a.node.capacity.storage,
                  a.config->node_ttl);
        r = sd_event_loop(a.event);
        return r < 0 ? log_error_errno(r, "Event loop failed: %m") : 0;
}

static void help(void) {
        printf("nap-node [OPTIONS...]\n\n"
               "Register this host as a node of nap's cluster in etcd and keep it Ready\n"
               "while running; run the instances assigned to this node in etcd and\n"
               "report their state; leave the cluster on SIGTERM. Normally started by\n"
               "nap-node.service.\n\n"
               "  -h --help     Show this help\n"
               "     --version  Show the version\n"
               "\nConfiguration: %s, or the file in $NAP_CONFIG (Etcd=, Node=, Labels=,\n"
               "CPU=, Memory=, Storage=, NodeTTL=, ReconcileGraceSec=, ClusterPrefix=).\nSee nap-node(8).\n",
               NAP_CONFIG_DEFAULT_PATH);
}

static int parse_argv(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100 };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        for (int c; (c = getopt_long(argc, argv, "h", options, NULL)) >= 0;)
                switch (c) {
                case 'h':
                        help();
                        return 1;
                case ARG_VERSION:
                        printf("nap-node %s\n", NAP_VERSION);
                        return 1;
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
        if (daemon_signals_setup(false) < 0)
                return EXIT_FAILURE;
        return run() < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
