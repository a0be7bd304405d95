/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Timing driver for bench/queue (built by that script, not by meson).
 *
 *   queue-driver raw URL N                  baseline: N etcd puts, then N
 *                                           gets of one key: "put_p50_us
 *                                           get_p50_us"
 *   queue-driver fill URL PREFIX TYPE N     N jobs queued in TYPE (1 job
 *                                           of 64 VCPUs each: none fits)
 *   queue-driver http SOCK TYPE N           over nap-queued's socket, N
 *                                           times each: list (all), list
 *                                           ?limit=50, get, reorder:
 *                                           "list_us page_us get_us move_us"
 *                                           (p50 each)
 *   queue-driver release URL PREFIX SOCK N  one node that fits one job, N+1
 *                                           jobs queued; N times: done on
 *                                           the running one → the next
 *                                           one's callback received here:
 *                                           "p50_us p99_us"
 *   queue-driver admit URL PREFIX TYPE N    N jobs queued in TYPE, then
 *                                           nap_queue_admit() until none
 *                                           waits (nodes: schedule-driver
 *                                           setup): "jobs elapsed_us"
 * Errors: a message, exit 1. */

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "bench-timing.h"
#include "base/clock.h"
#include "clients/http.h"
#include "cluster/admission.h"

static int fail(const NapError *e, int r) {
        fprintf(stderr, "queue-driver: %s\n", e && e->message[0] ? e->message : strerror(-r));
        return 1;
}

static uint64_t p50_us(uint64_t *v, size_t n) {
        return summarize(v, n, 1000).p50;
}

/* ---- baseline --------------------------------------------------------- */

static int raw(EtcdClient *c, size_t n) {
        uint64_t *put = calloc(n, sizeof *put), *get = calloc(n, sizeof *get);
        NapError e = NAP_ERROR_NULL;
        int r = 0;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                uint64_t t = now_nsec();
                r = etcd_put(c, "/bench-raw/key", "{\"priority\":1}", 14, 0, NULL, &e);
                put[i] = now_nsec() - t;
        }
        for (size_t i = 0; r >= 0 && i < n; i++) {
                EtcdKeyValue kv = {};
                uint64_t t = now_nsec();
                r = etcd_get(c, "/bench-raw/key", &kv, &e);
                get[i] = now_nsec() - t;
                etcd_key_value_done(&kv);
        }
        if (r < 0)
                return fail(&e, r);
        printf("%" PRIu64 " %" PRIu64 "\n", p50_us(put, n), p50_us(get, n));
        return 0;
}

/* ---- filling ---------------------------------------------------------- */

static int fill(EtcdClient *c, const char *prefix, const char *type, size_t n, unsigned vcpu, const char *callback_fmt) {
        NapError e = NAP_ERROR_NULL;
        for (size_t i = 0; i < n; i++) {
                char body[512], rid[32], cb[128];
                NapJob j = {};
                snprintf(rid, sizeof rid, "job%06zu", i);
                snprintf(cb, sizeof cb, callback_fmt, rid);
                snprintf(body, sizeof body,
                         "{\"request_id\":\"%s\",\"owner_id\":\"bench\",\"data\":{\"instances\":[{\"VCPU\":%u,"
                         "\"Memory\":64,\"Disk\":0}],\"project\":\"bench\"},\"callback\":\"%s\"}",
                         rid, vcpu, cb);
                int r = nap_job_request_parse(body, strlen(body), &j, &e);
                snprintf(j.type, sizeof j.type, "%s", type);
                if (r >= 0)
                        r = nap_queue_create(c, prefix, &j, &e);
                nap_job_done(&j);
                if (r < 0)
                        return fail(&e, r);
        }
        return 0;
}

/* ---- over HTTP -------------------------------------------------------- */

static int call(const char *sock, const char *method, const char *path, const char *body, NapError *e) {
        char url[256];
        NapHttpAnswer a = {};
        snprintf(url, sizeof url, "http://localhost%s", path);
        NapHttpRequest q = { .method = method, .url = url, .unix_socket = sock, .body = body,
                             .body_size = body ? strlen(body) : 0, .timeout_usec = 60 * USEC_PER_SEC,
                             .max_answer = 512 * 1024 * 1024 };
        int r = nap_http_request(&q, &a, e);
        if (r >= 0 && a.status != 200)
                r = nap_error_set(e, NAP_ERROR_INTERNAL, -EIO, "%s %s: HTTP %ld %.200s", method, path, a.status,
                                  a.body);
        nap_http_answer_done(&a);
        return r;
}

/* n timings of one request; p50 in µs into *ret. */
static int time_call(const char *sock, const char *method, const char *path, const char *body, size_t n,
                     uint64_t *ret, NapError *e) {
        uint64_t *v = calloc(n, sizeof *v);
        int r = 0;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                uint64_t t = now_nsec();
                r = call(sock, method, path, body, e);
                v[i] = now_nsec() - t;
        }
        if (r >= 0)
                *ret = p50_us(v, n);
        free(v);
        return r;
}

static int http(const char *sock, const char *type, size_t n) {
        char list[64], page[96], get[96], move[96];
        uint64_t t[4] = {};
        NapError e = NAP_ERROR_NULL;
        snprintf(list, sizeof list, "/v1/%s/", type);
        snprintf(page, sizeof page, "/v1/%s/?limit=50", type);
        snprintf(get, sizeof get, "/v1/%s/job000000/", type);
        snprintf(move, sizeof move, "/v1/%s/job000001", type);
        int r = time_call(sock, "GET", list, NULL, n, t + 0, &e);
        if (r >= 0)
                r = time_call(sock, "GET", page, NULL, n, t + 1, &e);
        if (r >= 0)
                r = time_call(sock, "GET", get, NULL, n, t + 2, &e);
        if (r >= 0)
                r = time_call(sock, "POST", move, "{\"priority\": -1}", n, t + 3, &e);
        if (r < 0)
                return fail(&e, r);
        printf("%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", t[0], t[1], t[2], t[3]);
        return 0;
}

/* ---- release → callback ----------------------------------------------- */

/* A callback receiver: each request's arrival (CLOCK_MONOTONIC ns) and path. */
typedef struct Receiver {
        int fd;
        atomic_uint_fast64_t arrived;
        char last[64];
        pthread_mutex_t lock;
} Receiver;

static void receive_one(Receiver *rc, int conn) {
        char buf[65536];
        size_t have = 0;
        for (ssize_t k; have < sizeof buf - 1 && (k = read(conn, buf + have, sizeof buf - 1 - have)) > 0;) {
                have += (size_t) k;
                buf[have] = 0;
                char *end = strstr(buf, "\r\n\r\n"), *cl = strcasestr(buf, "Content-Length:");
                if (end && (!cl || have >= (size_t) (end + 4 - buf) + strtoul(cl + 15, NULL, 10)))
                        break;
        }
        buf[have] = 0;
        pthread_mutex_lock(&rc->lock);
        sscanf(buf, "POST /%63s", rc->last);
        atomic_store(&rc->arrived, now_nsec());
        pthread_mutex_unlock(&rc->lock);
        const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        (void) !write(conn, ok, sizeof ok - 1);
        close(conn);
}

static void *receiver_thread(void *userdata) {
        Receiver *rc = userdata;
        for (int conn; (conn = accept(rc->fd, NULL, NULL)) >= 0;)
                receive_one(rc, conn);
        return NULL;
}

static int receiver_start(Receiver *rc, int *ret_port) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t n = sizeof sa;
        pthread_t t;
        rc->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (rc->fd < 0 || bind(rc->fd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(rc->fd, 64) < 0 ||
            getsockname(rc->fd, (struct sockaddr *) &sa, &n) < 0 || pthread_create(&t, NULL, receiver_thread, rc) != 0)
                return -errno;
        *ret_port = ntohs(sa.sin_port);
        return 0;
}

/* Waits (≤ 10 s) for the callback of rid; its arrival time. */
static int wait_callback(Receiver *rc, const char *rid, uint64_t *ret) {
        for (uint64_t deadline = now_nsec() + 10000000000ULL; now_nsec() < deadline; usleep(200)) {
                pthread_mutex_lock(&rc->lock);
                bool got = streq(rc->last, rid);
                pthread_mutex_unlock(&rc->lock);
                if (got) {
                        *ret = atomic_load(&rc->arrived);
                        return 0;
                }
        }
        return -ETIMEDOUT;
}

/* One node that fits one job of 1 VCPU at a time. */
static int one_node(EtcdClient *c, const char *prefix, NapError *e) {
        int64_t lease = 0;
        NapNode node = { .name = "solo", .address = (char *) "127.0.0.1", .version = (char *) "bench",
                         .machine_id = "00000000000000000000000000000001", .boot_id = "00000000000000000000000000000001",
                         .capacity = { 1000, UINT64_C(1) << 30, UINT64_C(1) << 30 }, .registered_usec = realtime_usec() };
        int r = etcd_lease_grant(c, 3600, &lease, NULL, e);
        return r < 0 ? r : nap_node_register(c, prefix, &node, lease, e);
}

static int release(EtcdClient *c, const char *prefix, const char *sock, size_t n) {
        Receiver rc = { .lock = PTHREAD_MUTEX_INITIALIZER };
        NapError e = NAP_ERROR_NULL;
        char fmt[64], path[64];
        uint64_t *v = calloc(n, sizeof *v), arrived = 0;
        int port = 0, r = receiver_start(&rc, &port);
        if (r < 0)
                return fail(NULL, r);
        snprintf(fmt, sizeof fmt, "http://127.0.0.1:%d/%%s", port);
        r = fill(c, prefix, "kube", n + 1, 1, fmt); /* queued: no node yet */
        if (r == 0 && (r = one_node(c, prefix, &e)) >= 0)
                r = wait_callback(&rc, "job000000", &arrived);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                char rid[32];
                snprintf(path, sizeof path, "/v1/kube/job%06zu/done", i);
                snprintf(rid, sizeof rid, "job%06zu", i + 1);
                uint64_t t = now_nsec();
                r = call(sock, "POST", path, NULL, &e);
                if (r >= 0)
                        r = wait_callback(&rc, rid, &arrived);
                v[i] = arrived - t;
        }
        if (r < 0)
                return fail(&e, r);
        Summary s = summarize(v, n, 1000);
        printf("%" PRIu64 " %" PRIu64 "\n", s.p50, s.p99);
        return 0;
}

/* ---- admission throughput --------------------------------------------- */

static int admit(EtcdClient *c, const char *prefix, const char *type, size_t n) {
        NapAdmitOptions o = { .policy = NAP_POLICY_SPREAD };
        NapError e = NAP_ERROR_NULL;
        unsigned total = 0, admitted = 0, waiting = 1;
        int r = fill(c, prefix, type, n, 1, "http://127.0.0.1:9/%s");
        if (r != 0)
                return r;
        uint64_t t = now_nsec();
        while (r >= 0 && waiting > 0) {
                r = nap_queue_admit(c, prefix, type, &o, &admitted, &waiting, &e);
                total += admitted;
                if (r >= 0 && admitted == 0 && waiting > 0)
                        r = nap_error_set(&e, NAP_ERROR_INTERNAL, -ENOSPC, "%u jobs do not fit", waiting);
        }
        if (r < 0)
                return fail(&e, r);
        printf("%u %" PRIu64 "\n", total, (now_nsec() - t) / 1000);
        return 0;
}

static size_t number(const char *s) {
        return (size_t) strtoull(s, NULL, 10);
}

int main(int argc, char **argv) {
        _cleanup_(etcd_client_freep) EtcdClient *c = NULL;
        NapError e = NAP_ERROR_NULL;
        if (argc < 3) {
                fprintf(stderr, "queue-driver: see bench/queue-driver.c for the usage\n");
                return 2;
        }
        const char *mode = argv[1];
        if (streq(mode, "http") && argc == 5)
                return http(argv[2], argv[3], number(argv[4]));
        char *endpoints[] = { argv[2], NULL };
        int r = etcd_client_new(endpoints, &c, &e);
        if (r < 0)
                return fail(&e, r);
        c->max_response_size = 512 * 1024 * 1024;
        if (streq(mode, "raw") && argc == 4)
                return raw(c, number(argv[3]));
        if (streq(mode, "fill") && argc == 6)
                return fill(c, argv[3], argv[4], number(argv[5]), 64, "http://127.0.0.1:9/%s");
        if (streq(mode, "release") && argc == 6)
                return release(c, argv[3], argv[4], number(argv[5]));
        if (streq(mode, "admit") && argc == 6)
                return admit(c, argv[3], argv[4], number(argv[5]));
        fprintf(stderr, "queue-driver: bad arguments for %s\n", mode);
        return 2;
}
