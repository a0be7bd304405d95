/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Timing driver for bench/connect (built by that script, not by meson).
 *
 *   connect-driver connect HOST PORT N   N tcp_connect() + close
 *   connect-driver etcd URL N            N times: a new etcd client (a new
 *                                        connection), one put, freed
 *
 * Through nap-connect when $NAP_CONNECT_SOCKET is set (lib/base/tcp.h).
 * Prints "p50_us p99_us mean_us" of the N rounds. */

#include "base/tcp.h"
#include "bench-timing.h"
#include "clients/etcd.h"

static int run_connect(uint64_t *v, size_t n, const char *host, unsigned port) {
        for (size_t i = 0; i < n; i++) {
                uint64_t t0 = now_nsec();
                int fd = tcp_connect(host, port, 5ULL * 1000ULL * 1000ULL);
                v[i] = now_nsec() - t0;
                if (fd < 0)
                        return bench_failed("connect", strerror(-fd));
                close(fd);
        }
        return 0;
}

static int run_etcd(uint64_t *v, size_t n, const char *url) {
        char *endpoints[] = { (char *) url, NULL };
        for (size_t i = 0; i < n; i++) {
                NapError e = NAP_ERROR_NULL;
                uint64_t t0 = now_nsec();
                EtcdClient *c = NULL;
                int r = etcd_client_new(endpoints, &c, &e);
                if (r >= 0)
                        r = etcd_put(c, "/bench/connect", "{\"port\":20000}", 14, 0, NULL, &e);
                etcd_client_free(c);
                v[i] = now_nsec() - t0;
                if (r < 0)
                        return bench_failed("etcd", e.message);
        }
        return 0;
}

int main(int argc, char **argv) {
        _cleanup_free_ uint64_t *v = NULL;
        bool connect = argc == 5 && streq(argv[1], "connect");
        if (!connect && !(argc == 4 && streq(argv[1], "etcd"))) {
                fprintf(stderr, "usage: %s connect HOST PORT N | etcd URL N\n", argv[0]);
                return 2;
        }
        size_t n = strtoul(argv[argc - 1], NULL, 10);
        if (n == 0 || n > 1000000 || !(v = calloc(n, sizeof *v)))
                return 2;
        int r = connect ? run_connect(v, n, argv[2], (unsigned) strtoul(argv[3], NULL, 10)) : run_etcd(v, n, argv[2]);
        if (r == 0)
                report(v, n, 1000);
        return r;
}
