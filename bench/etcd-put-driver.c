/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Timing driver for bench/etcd-put (built by that script, not by meson).
 *
 *   etcd-put-driver nap URL N            N puts with lib/etcd, one client
 *   etcd-put-driver keepalive URL N      a lease, then N keep-alives
 *   etcd-put-driver spawn N CMD ARG...   N runs of CMD (must exit 0)
 *
 * Prints "p50_us p99_us mean_us" of the N round trips. */

#include "bench-timing.h"
#include "clients/etcd.h"

static int run_nap(uint64_t *v, size_t n, const char *url, bool keepalive) {
        char *endpoints[] = { (char *) url, NULL };
        _cleanup_(etcd_client_freep) EtcdClient *c = NULL;
        NapError e = NAP_ERROR_NULL;
        int64_t lease = 0;
        char key[64];
        int r;

        r = etcd_client_new(endpoints, &c, &e);
        if (r >= 0 && keepalive)
                r = etcd_lease_grant(c, 60, &lease, NULL, &e);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                uint64_t t0 = now_nsec();

                snprintf(key, sizeof key, "/bench/nap/%zu", i % 100);
                r = keepalive ? etcd_lease_keepalive(c, lease, NULL, &e) :
                                etcd_put(c, key, "{\"host\":\"h\",\"port\":20000}", 26, 0, NULL, &e);
                v[i] = now_nsec() - t0;
        }
        return r < 0 ? bench_failed("etcd", e.message) : 0;
}

int main(int argc, char **argv) {
        _cleanup_free_ uint64_t *v = NULL;
        size_t n;
        int r;

        if (argc < 4) {
                fprintf(stderr, "usage: %s nap|keepalive URL N | spawn N CMD...\n", argv[0]);
                return 2;
        }
        n = strtoul(streq(argv[1], "spawn") ? argv[2] : argv[3], NULL, 10);
        if (n == 0 || n > 1000000 || !(v = calloc(n, sizeof *v)))
                return 2;
        if (streq(argv[1], "spawn"))
                r = run_spawn(v, n, argv + 3);
        else
                r = run_nap(v, n, argv[2], streq(argv[1], "keepalive"));
        if (r == 0)
                report(v, n, 1000);
        return r;
}
