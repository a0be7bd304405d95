/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The reconciler's thread: reconciler.h. Only this thread touches its etcd
 * client; the lease and whether it leads are shared with nap-node's loop. */

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "../common/log.h"
#include "base/clock.h"
#include "cluster/reconcile.h"
#include "node-etcd.h"
#include "reconciler.h"

#define ROUND_MAX_USEC (500ULL * 1000ULL)
#define ETCD_TIMEOUT_USEC (2ULL * 1000000ULL)

struct Reconciler {
        const NapConfig *config;
        char node[NAP_NODE_NAME_MAX + 1];
        pthread_t thread;
        volatile sig_atomic_t stop;
        int64_t lease;  /* __atomic: written by the loop, read by the thread */
        int leads;      /* __atomic: written by the thread */
        /* the thread's own */
        EtcdClient *etcd;
        int64_t leader_lease;    /* the lease it led on; 0: does not lead */
        int64_t leader_revision; /* the leader key's create_revision */
        char holder[NAP_NODE_NAME_MAX + 1];
};

void reconciler_set_lease(Reconciler *r, int64_t lease) {
        if (r)
                __atomic_store_n(&r->lease, lease, __ATOMIC_RELEASE);
}

bool reconciler_leads(Reconciler *r) {
        return r && __atomic_load_n(&r->leads, __ATOMIC_ACQUIRE);
}

static void set_leads(Reconciler *r, int64_t lease, int64_t revision) {
        if ((lease != 0) != (r->leader_lease != 0))
                log_info(lease != 0 ? "This node leads the reconciler (%s/leader)"
                                    : "This node no longer leads the reconciler (%s/leader)",
                         r->config->cluster_prefix);
        r->leader_lease = lease;
        r->leader_revision = revision;
        __atomic_store_n(&r->leads, lease != 0, __ATOMIC_RELEASE);
}

/* Leads on lease, or not: a new lease (registered again) elects again. */
static void elect(Reconciler *r, int64_t lease) {
        NapError e = NAP_ERROR_NULL;
        char holder[sizeof r->holder] = "";
        int64_t revision = 0;
        if (lease == r->leader_lease)
                return;
        int k = nap_leader_acquire(r->etcd, r->config->cluster_prefix, r->node, lease, &revision, holder, &e);
        if (k < 0)
                return (void) log_debug("Electing the reconciler failed: %s", e.message);
        if (k == 0 && !streq(holder, r->holder))
                log_debug("The reconciler is led by %s", holder[0] ? holder : "nobody");
        snprintf(r->holder, sizeof r->holder, "%s", holder);
        set_leads(r, k > 0 ? lease : 0, revision);
}

static void reconcile(Reconciler *r) {
        NapReconcileStats s = {};
        NapError e = NAP_ERROR_NULL;
        int k = nap_reconcile_round(r->etcd, r->config, r->leader_revision, realtime_usec(), &s, &e);
        if (s.moved > 0 || s.no_room > 0 || s.lost > 0)
                log_info("Reconciled %u dead node(s): %u instance(s) moved, %u without room, %u changed meanwhile, "
                         "%u stale endpoint(s) removed", s.nodes, s.moved, s.no_room, s.lost, s.endpoints);
        if (k < 0)
                log_warning("Reconciling failed: %s", e.message);
        /* a lost move may mean a deposed leader: elect again next round */
        if (s.lost > 0)
                set_leads(r, 0, 0);
}

static uint64_t round_usec(const Reconciler *r) {
        return MIN(ROUND_MAX_USEC, (uint64_t) r->config->node_ttl * 1000000ULL / 4);
}

static void *reconciler_main(void *userdata) {
        Reconciler *r = userdata;
        while (!r->stop) {
                int64_t lease = __atomic_load_n(&r->lease, __ATOMIC_ACQUIRE);
                if (lease == 0)
                        set_leads(r, 0, 0);
                else
                        elect(r, lease);
                if (r->leader_lease != 0)
                        reconcile(r);
                for (uint64_t t = 0; t < round_usec(r) && !r->stop; t += 50000)
                        (void) usleep(50000);
        }
        return NULL;
}

static void reconciler_free(Reconciler *r) {
        if (!r)
                return;
        etcd_client_free(r->etcd);
        free(r);
}

int reconciler_start(const NapConfig *config, const char *node, Reconciler **ret) {
        Reconciler *r = calloc(1, sizeof *r);
        NapError e = NAP_ERROR_NULL;
        if (!r)
                return log_error_errno(-ENOMEM, "Out of memory");
        r->config = config;
        snprintf(r->node, sizeof r->node, "%s", node);
        int k = node_etcd_client(config, ETCD_TIMEOUT_USEC, &r->etcd, &e);
        if (k < 0) {
                reconciler_free(r);
                return log_error_errno(k, "Cannot reconcile: %s", e.message);
        }
        k = -pthread_create(&r->thread, NULL, reconciler_main, r);
        if (k < 0) {
                reconciler_free(r);
                return log_error_errno(k, "Failed to start the reconciling thread: %m");
        }
        *ret = r;
        return 0;
}

Reconciler *reconciler_stop(Reconciler *r) {
        if (!r)
                return NULL;
        r->stop = 1;
        (void) pthread_join(r->thread, NULL);
        reconciler_free(r);
        return NULL;
}
