/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Timing driver for bench/varlink (built by that script, not by meson).
 *
 *   varlink-driver echo N MESSAGE [cross]       a Unix-socket echo server (a
 *                                               child), N round trips of
 *                                               MESSAGE plus its NUL; cross:
 *                                               client on CPU 0, server on 1
 *   varlink-driver varlink SOCKET N METHOD PARAMS     N calls on one connection
 *                                               (after one untimed call)
 *   varlink-driver varlink-connect SOCKET N METHOD PARAMS   a new connection
 *                                               per call
 *   varlink-driver varlink-once SOCKET METHOD PARAMS  one connection, one call
 *   varlink-driver varlink-after SOCKET N METHOD PARAMS CMD ARG...
 *                                               N calls on one connection,
 *                                               each right after a run of
 *                                               CMD (untimed, must exit 0):
 *                                               the call after a change
 *   varlink-driver dbus N DEST PATH IFACE METHOD ARG  N calls with one string
 *                                               argument on the user bus
 *                                               (after one untimed call)
 *   varlink-driver spawn N CMD ARG...           N runs of CMD (must exit 0)
 *
 * Prints "p50_ns p99_ns mean_ns p90_ns" of the N round trips. Every call
 * must succeed; a failure ends the run with exit status 1.
 *
 *   varlink-driver varlink-closed SOCKET CLIENTS CALLS METHOD PARAMS
 *       CLIENTS connections at once, each making CALLS calls back to back
 *   varlink-driver varlink-open SOCKET CLIENTS RATE CALLS METHOD PARAMS
 *       CALLS calls in all, one every 1/RATE s whatever the answers (open
 *       loop), each on the connection idle longest; a call's time counts
 *       from when it was due, so a late start is not hidden
 *
 * Print "p50_ns p99_ns max_ns errors calls_per_s": errors are calls
 * answered with an error or lost with their connection; the load runs to
 * the end either way. One sd-event loop drives every connection. */

#include <fcntl.h>
#include <sched.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include "bench-timing.h"
#include "protocol/varlink.h"

/* ---- raw echo ---------------------------------------------------------- */

static bool io_full(int fd, char *buf, size_t n, bool writing) {
        for (size_t done = 0; done < n;) {
                ssize_t k = writing ? write(fd, buf + done, n - done) : read(fd, buf + done, n - done);
                if (k <= 0)
                        return false;
                done += (size_t) k;
        }
        return true;
}

/* Reads until a NUL, as a varlink peer frames messages: like the varlink
 * client, in chunks of what is there, not byte by byte. */
static bool read_message(int fd, char *buf, size_t size, size_t *ret) {
        size_t n = 0;
        while (n == 0 || buf[n - 1] != '\0') {
                ssize_t k = read(fd, buf + n, size - n);
                if (k <= 0)
                        return false;
                n += (size_t) k;
        }
        *ret = n;
        return true;
}

static void echo_serve(int listener) {
        char buf[65536];
        size_t n;
        int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        while (fd >= 0 && read_message(fd, buf, sizeof buf, &n) && io_full(fd, buf, n, true))
                ;
        _exit(0);
}

static void pin_to(int cpu) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        (void) sched_setaffinity(0, sizeof set, &set);
}

static int run_echo(uint64_t *v, size_t n, const char *message, bool cross) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len = strlen(message) + 1, got;
        char buf[65536];
        int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), fd;
        pid_t pid;

        snprintf(sa.sun_path, sizeof sa.sun_path, "/tmp/nap-bench-echo.%d", (int) getpid());
        if (l < 0 || len > sizeof buf || bind(l, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(l, 1) < 0)
                return 1;
        if (cross)
                pin_to(0);
        if ((pid = fork()) == 0) {
                if (cross)
                        pin_to(1);
                echo_serve(l);
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (pid < 0 || fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                return 1;
        (void) unlink(sa.sun_path);
        for (size_t i = 0; i < n; i++) {
                uint64_t t0 = now_nsec();
                if (!io_full(fd, (char *) message, len, true) || !read_message(fd, buf, sizeof buf, &got) ||
                    got != len)
                        return 1;
                v[i] = now_nsec() - t0;
        }
        close(fd);
        waitpid(pid, NULL, 0);
        return 0;
}

/* ---- varlink ----------------------------------------------------------- */

static int connect_to(Varlink **ret, const char *socket_path) {
        int r = varlink_connect_address(ret, socket_path);
        if (r < 0)
                fprintf(stderr, "connect %s: %s\n", socket_path, strerror(-r));
        return r;
}

static int varlink_once(Varlink *link, const char *method, json_t *params) {
        const char *error_id = NULL;
        json_t *reply;
        int r = varlink_call(link, method, params, &reply, &error_id);
        if (r < 0 || error_id) {
                fprintf(stderr, "%s: %s\n", method, error_id ?: strerror(-r));
                return -EIO;
        }
        return 0;
}

/* connect_each: a new connection per call, as napctl makes one. */
static int run_varlink(uint64_t *v, size_t n, const char *socket_path, const char *method, json_t *params,
                       bool connect_each) {
        _cleanup_(varlink_unrefp) Varlink *link = NULL;
        if (connect_to(&link, socket_path) < 0 || varlink_once(link, method, params) < 0)
                return 1;
        for (size_t i = 0; i < n; i++) {
                uint64_t t0 = now_nsec();
                if (connect_each) {
                        link = varlink_unref(link);
                        if (connect_to(&link, socket_path) < 0)
                                return 1;
                }
                if (varlink_once(link, method, params) < 0)
                        return 1;
                v[i] = now_nsec() - t0;
        }
        return 0;
}

/* Each call right after CMD ran: what a client asks after it changed
 * something (nap-managerd's cache of the answer dropped). */
static int run_varlink_after(uint64_t *v, size_t n, const char *socket_path, const char *method, json_t *params,
                             char **cmd) {
        _cleanup_(varlink_unrefp) Varlink *link = NULL;
        uint64_t ignored;
        if (connect_to(&link, socket_path) < 0 || varlink_once(link, method, params) < 0)
                return 1;
        for (size_t i = 0; i < n; i++) {
                if (run_spawn(&ignored, 1, cmd) != 0)
                        return 1;
                uint64_t t0 = now_nsec();
                if (varlink_once(link, method, params) < 0)
                        return 1;
                v[i] = now_nsec() - t0;
        }
        return 0;
}

/* The first call of a new connection, from before connect(): the cold
 * start when nothing runs behind the socket. */
static int run_varlink_once(uint64_t *v, const char *socket_path, const char *method, json_t *params) {
        _cleanup_(varlink_unrefp) Varlink *link = NULL;
        uint64_t t0 = now_nsec();
        if (connect_to(&link, socket_path) < 0 || varlink_once(link, method, params) < 0)
                return 1;
        v[0] = now_nsec() - t0;
        return 0;
}

/* ---- many connections ----------------------------------------------- */

typedef struct Load Load;

typedef struct Client {
        Load *load;
        Varlink *link;
        size_t done;      /* closed loop: its calls answered or lost */
        uint64_t due;     /* when the call in flight was due */
        bool dead;        /* its connection is gone */
} Client;

struct Load {
        sd_event *event;
        Client *clients;
        size_t n_clients, n_dead;
        size_t calls_per_client;            /* closed loop */
        const char *method;
        json_t *params;
        uint64_t *latency;                  /* one per call answered without error */
        size_t n_calls, n_ok, errors;
        /* open loop: call k is due at start + k * interval */
        uint64_t start, interval;
        size_t n_sent;
        size_t *idle, idle_head, n_idle;    /* a ring of clients, idle longest first */
        sd_event_source *timer;
};

static void load_lost(Load *l, size_t calls) {
        l->errors += calls;
        if (l->n_ok + l->errors >= l->n_calls)
                (void) sd_event_exit(l->event, 0);
}

static void client_dies(Client *c) {
        c->dead = true;
        c->load->n_dead++;
}

/* The connection's next call, until it has made its share. */
static void closed_loop_next(Client *c) {
        Load *l = c->load;
        if (c->done >= l->calls_per_client)
                return;
        c->due = now_nsec();
        if (c->dead || varlink_invoke(c->link, l->method, l->params) < 0) {
                load_lost(l, l->calls_per_client - c->done);
                c->done = l->calls_per_client;
        }
}

/* Every call due by now goes out on the connection idle longest; the
 * timer waits for the next one due. Once every connection is gone, the
 * calls left are lost. */
static void open_loop_send(Load *l) {
        uint64_t now = now_nsec();
        if (l->n_dead == l->n_clients && l->n_sent < l->n_calls) {
                load_lost(l, l->n_calls - l->n_sent);
                l->n_sent = l->n_calls;
        }
        while (l->n_sent < l->n_calls && l->start + l->n_sent * l->interval <= now && l->n_idle > 0) {
                Client *c = l->clients + l->idle[l->idle_head];
                l->idle_head = (l->idle_head + 1) % l->n_clients;
                l->n_idle--;
                c->due = l->start + l->n_sent++ * l->interval;
                if (varlink_invoke(c->link, l->method, l->params) < 0) {
                        client_dies(c);
                        load_lost(l, 1);
                }
        }
        if (l->n_sent < l->n_calls)
                (void) sd_event_source_set_time(l->timer, (l->start + l->n_sent * l->interval) / 1000 + 1);
        (void) sd_event_source_set_enabled(l->timer, l->n_sent < l->n_calls ? SD_EVENT_ONESHOT : SD_EVENT_OFF);
}

static int on_load_reply(Varlink *link, json_t *parameters, const char *error_id, VarlinkReplyFlags flags,
                         void *userdata) {
        Client *c = userdata;
        Load *l = c->load;

        if (error_id && (streq(error_id, VARLINK_ERROR_DISCONNECTED) || streq(error_id, VARLINK_ERROR_TIMEOUT) ||
                         streq(error_id, VARLINK_ERROR_PROTOCOL)))
                client_dies(c); /* nothing more comes on this connection */
        if (!error_id)
                l->latency[l->n_ok++] = now_nsec() - c->due;
        else if (l->errors == 0)
                fprintf(stderr, "first error: %s\n", error_id);
        if (l->interval == 0) {
                c->done++;
                closed_loop_next(c);
        } else {
                if (!c->dead)
                        l->idle[(l->idle_head + l->n_idle++) % l->n_clients] = c - l->clients;
                open_loop_send(l);
        }
        load_lost(l, error_id ? 1 : 0);
        return 0;
}

static int on_open_loop_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        open_loop_send(userdata);
        return 0;
}

static int load_connect(Load *l, const char *socket_path) {
        for (size_t i = 0; i < l->n_clients; i++) {
                Client *c = l->clients + i;
                *c = (Client) { .load = l };
                if (connect_to(&c->link, socket_path) < 0 || varlink_attach_event(c->link, l->event, 0) < 0 ||
                    varlink_bind_reply(c->link, on_load_reply) < 0)
                        return -EIO;
                varlink_set_userdata(c->link, c);
                l->idle[i] = i;
        }
        l->n_idle = l->n_clients;
        return 0;
}

static void load_report(Load *l, uint64_t elapsed) {
        size_t n = l->n_ok;
        qsort(l->latency, n, sizeof *l->latency, cmp_u64);
        printf("%" PRIu64 " %" PRIu64 " %" PRIu64 " %zu %.0f\n", n ? percentile(l->latency, n, 50) : 0,
               n ? percentile(l->latency, n, 99) : 0, n ? l->latency[n - 1] : 0, l->errors,
               (double) (l->n_ok + l->errors) * 1e9 / (double) (elapsed ?: 1));
}

/* rate 0: closed loop, calls calls per client; else open loop, calls in all. */
static int run_load(const char *socket_path, size_t clients, unsigned rate, size_t calls, const char *method,
                    json_t *params) {
        Load l = { .n_clients = clients, .method = method, .params = params };
        int r = -ENOMEM;

        l.n_calls = rate > 0 ? calls : clients * calls;
        l.calls_per_client = calls;
        l.interval = rate > 0 ? 1000000000ULL / rate : 0;
        l.clients = calloc(clients, sizeof *l.clients);
        l.idle = calloc(clients, sizeof *l.idle);
        l.latency = calloc(l.n_calls, sizeof *l.latency);
        if (l.clients && l.idle && l.latency && sd_event_new(&l.event) >= 0)
                r = load_connect(&l, socket_path);
        /* accuracy 1 µs: sd-event's default (0) is a quarter of a second */
        if (r >= 0 && rate > 0)
                r = sd_event_add_time(l.event, &l.timer, CLOCK_MONOTONIC, 0, 1, on_open_loop_timer, &l);
        uint64_t t0 = now_nsec();
        l.start = t0;
        for (size_t i = 0; r >= 0 && rate == 0 && i < clients; i++)
                closed_loop_next(l.clients + i);
        if (r >= 0 && rate > 0)
                open_loop_send(&l);
        if (r >= 0)
                r = sd_event_loop(l.event);
        if (r >= 0)
                load_report(&l, now_nsec() - t0);
        for (size_t i = 0; l.clients && i < clients; i++)
                varlink_unref(l.clients[i].link);
        sd_event_source_disable_unref(l.timer);
        sd_event_unref(l.event);
        free(l.clients);
        free(l.idle);
        free(l.latency);
        return r < 0;
}

/* ---- D-Bus ------------------------------------------------------------- */

static int dbus_once(sd_bus *bus, char **a) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r = sd_bus_call_method(bus, a[0], a[1], a[2], a[3], &error, &reply, "s", a[4]);
        if (r < 0)
                fprintf(stderr, "%s: %s\n", a[3], error.message ?: strerror(-r));
        return r;
}

/* a: DEST PATH IFACE METHOD ARG */
static int run_dbus(uint64_t *v, size_t n, char **a) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        if (sd_bus_open_user(&bus) < 0 || dbus_once(bus, a) < 0)
                return 1;
        for (size_t i = 0; i < n; i++) {
                uint64_t t0 = now_nsec();
                if (dbus_once(bus, a) < 0)
                        return 1;
                v[i] = now_nsec() - t0;
        }
        return 0;
}

/* ---- processes --------------------------------------------------------- */

/* ---- main -------------------------------------------------------------- */

static int run(uint64_t *v, size_t n, int argc, char **argv) {
        const char *mode = argv[1];
        json_auto_t *params = NULL;

        if (streq(mode, "echo") && (argc == 4 || (argc == 5 && streq(argv[4], "cross"))))
                return run_echo(v, n, argv[3], argc == 5);
        if (streq(mode, "spawn") && argc >= 4)
                return run_spawn(v, n, argv + 3);
        if (streq(mode, "dbus") && argc == 8)
                return run_dbus(v, n, argv + 3);
        if (streq(mode, "varlink-once") && argc == 5 && (params = json_loads(argv[4], 0, NULL)))
                return run_varlink_once(v, argv[2], argv[3], params);
        if (streq(mode, "varlink-after") && argc >= 7 && (params = json_loads(argv[5], 0, NULL)))
                return run_varlink_after(v, n, argv[2], argv[4], params, argv + 6);
        if (argc == 6 && (params = json_loads(argv[5], 0, NULL)) &&
            (streq(mode, "varlink") || streq(mode, "varlink-connect")))
                return run_varlink(v, n, argv[2], argv[4], params, streq(mode, "varlink-connect"));
        fprintf(stderr, "usage: see the head of bench/varlink-driver.c\n");
        return 2;
}

/* The load modes print their own line. */
static int run_load_mode(int argc, char **argv) {
        bool open_loop = streq(argv[1], "varlink-open");
        size_t clients = argc > 3 ? strtoul(argv[3], NULL, 10) : 0, calls;
        unsigned long rate = 0;
        json_auto_t *params = NULL;

        if (argc != (open_loop ? 8 : 7) || clients == 0 || clients > 65536 ||
            !(params = json_loads(argv[argc - 1], 0, NULL))) {
                fprintf(stderr, "usage: see the head of bench/varlink-driver.c\n");
                return 2;
        }
        if (open_loop)
                rate = strtoul(argv[4], NULL, 10);
        calls = strtoul(argv[argc - 3], NULL, 10);
        if (calls == 0 || calls > 10000000 / clients || (open_loop && (rate == 0 || rate > 1000000)))
                return 2;
        return run_load(argv[2], clients, rate, calls, argv[argc - 2], params);
}

int main(int argc, char **argv) {
        _cleanup_free_ uint64_t *v = NULL;
        size_t n = 1;

        if (argc < 3)
                return 2;
        (void) signal(SIGPIPE, SIG_IGN);
        if (streq(argv[1], "varlink-closed") || streq(argv[1], "varlink-open"))
                return run_load_mode(argc, argv);
        if (!streq(argv[1], "varlink-once"))
                n = strtoul(startswith(argv[1], "varlink") ? argv[3] : argv[2], NULL, 10);
        if (n == 0 || n > 1000000 || !(v = calloc(n, sizeof *v)))
                return 2;
        int r = run(v, n, argc, argv);
        if (r == 0) {
                Summary s = summarize(v, n, 1);
                printf("%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", s.p50, s.p99, s.mean, s.p90);
        }
        return r;
}
