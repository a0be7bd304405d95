/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Timing driver for bench/cluster-move (built by that script, not by
 * meson), against the etcd cluster at URL, under its own prefixes:
 *
 *   move-driver URL N
 *
 * A simulated node "sim" (a record, no agent: dead) holding N
 * assignments of one app, each with its reservation there, and a Ready
 * node "live" with room for all; then, timed: (a) the baseline, N plain
 * etcd puts one after another (one client); (b) one reconciler round
 * (nap_reconcile_round(), as the leader) moving all N to "live". Checks
 * that all N moved. Prints "put_ms reconcile_ms moved". */

#include "bench-timing.h"
#include "base/clock.h"
#include "cluster/reconcile.h"

#define PREFIX "/bench-move"
#define GIB (UINT64_C(1) << 30)

static int fail(const char *what, const NapError *e) {
        fprintf(stderr, "%s: %s\n", what, e->message);
        return 1;
}

static NapNode node(const char *name, uint64_t cpu_milli) {
        NapNode n = { .capacity = { cpu_milli, 1024 * GIB, 1024 * GIB }, .registered_usec = realtime_usec() };
        snprintf(n.name, sizeof n.name, "%s", name);
        memset(n.machine_id, 'a', 32);
        memset(n.boot_id, 'b', 32);
        n.address = strdup("10.0.0.250");
        n.version = strdup("bench");
        return n;
}

/* sim's N assignments (10 milli-cores each, reserved there). */
static int populate(EtcdClient *c, unsigned n, NapError *e) {
        for (unsigned i = 0; i < n; i++) {
                NapAssignment a = { .enabled = true, .resources = { .request_cpu_milli = 10 } };
                NapReservation r = { .kind = NAP_RESERVATION_COMPUTE, .compute = a.resources };
                int k = nap_service_parse("bench_web", &a.instance.service, e);
                snprintf(a.node, sizeof a.node, "sim");
                if (k >= 0)
                        k = nap_params_new(&a.params) < 0 ? nap_error_errno(e, -ENOMEM, "Out of memory") : 0;
                if (k >= 0)
                        k = nap_assignment_create(c, PREFIX, &a, e);
                snprintf(r.node, sizeof r.node, "sim");
                nap_instance_name(&a.instance, r.name);
                if (k >= 0)
                        k = nap_reserve(c, PREFIX, &r, e);
                nap_assignment_done(&a);
                if (k < 0)
                        return k;
        }
        return 0;
}

static int setup(EtcdClient *c, unsigned n, int64_t *ret_lease, NapError *e) {
        NapNode sim = node("sim", 1000000), live = node("live", 1000000);
        int64_t ttl = 0;
        int k = etcd_delete(c, PREFIX "/", true, NULL, e);
        if (k >= 0)
                k = etcd_lease_grant(c, 600, ret_lease, &ttl, e);
        if (k >= 0)
                k = nap_node_register(c, PREFIX, &live, *ret_lease, e);
        if (k >= 0)
                k = nap_node_apply(c, PREFIX, &sim, e);
        if (k >= 0)
                k = populate(c, n, e);
        nap_node_done(&sim);
        nap_node_done(&live);
        return k;
}

static int puts_ms(EtcdClient *c, unsigned n, double *ret, NapError *e) {
        char key[64];
        uint64_t t0 = now_nsec();
        for (unsigned i = 0; i < n; i++) {
                snprintf(key, sizeof key, PREFIX "/raw/%u", i);
                int k = etcd_put(c, key, "{\"app\":\"bench_web\"}", 19, 0, NULL, e);
                if (k < 0)
                        return k;
        }
        *ret = (double) (now_nsec() - t0) / 1e6;
        return 0;
}

int main(int argc, char **argv) {
        char *endpoints[] = { argc > 1 ? argv[1] : NULL, NULL };
        _cleanup_(etcd_client_freep) EtcdClient *c = NULL;
        _cleanup_(nap_config_freep) NapConfig *config = NULL;
        static const char conf[] = "[Nap]\nClusterPrefix=" PREFIX "\nEtcdPrefix=" PREFIX "-services\nNodeTTL=3\n";
        NapError e = NAP_ERROR_NULL;
        NapReconcileStats s = {};
        int64_t lease = 0, leader = 0;
        double put = 0;
        unsigned n = argc > 2 ? (unsigned) strtoul(argv[2], NULL, 10) : 0;
        if (argc != 3 || n == 0 || n > 100000) {
                fprintf(stderr, "usage: %s URL N\n", argv[0]);
                return 2;
        }
        if (nap_config_new_default(&config) < 0 || nap_config_parse(config, conf, strlen(conf), "bench", NULL, NULL, &e) < 0)
                return fail("config", &e);
        if (etcd_client_new(endpoints, &c, &e) < 0)
                return fail("etcd", &e);
        if (setup(c, n, &lease, &e) < 0)
                return fail("setting up", &e);
        if (puts_ms(c, n, &put, &e) < 0)
                return fail("the put loop", &e);
        if (nap_leader_acquire(c, PREFIX, "live", lease, &leader, NULL, &e) <= 0)
                return fail("leading", &e);
        /* noted NotReady now; the timed round is an hour later: due */
        uint64_t now = realtime_usec();
        if (nap_reconcile_round(c, config, leader, now, &s, &e) < 0 || s.moved != 0)
                return fail("noting sim NotReady", &e);
        uint64_t t0 = now_nsec();
        if (nap_reconcile_round(c, config, leader, now + 3600ULL * 1000000ULL, &s, &e) < 0)
                return fail("reconciling", &e);
        double reconcile = (double) (now_nsec() - t0) / 1e6;
        if (s.moved != n) {
                fprintf(stderr, "moved %u of %u (%u without room, %u lost)\n", s.moved, n, s.no_room, s.lost);
                return 1;
        }
        printf("%.1f %.1f %u\n", put, reconcile, s.moved);
        (void) etcd_delete(c, PREFIX "/", true, NULL, NULL);
        (void) etcd_lease_revoke(c, lease, NULL);
        return 0;
}
