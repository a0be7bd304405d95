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
 *   varlink-driver dbus N DEST PATH IFACE METHOD ARG  N calls with one string
 *                                               argument on the user bus
 *                                               (after one untimed call)
 *   varlink-driver spawn N CMD ARG...           N runs of CMD (must exit 0)
 *
 * Prints "p50_ns p99_ns mean_ns" of the N round trips. Every call must
 * succeed; a failure ends the run with exit status 1. */

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
        if (argc == 6 && (params = json_loads(argv[5], 0, NULL)) &&
            (streq(mode, "varlink") || streq(mode, "varlink-connect")))
                return run_varlink(v, n, argv[2], argv[4], params, streq(mode, "varlink-connect"));
        fprintf(stderr, "usage: see the head of bench/varlink-driver.c\n");
        return 2;
}

int main(int argc, char **argv) {
        _cleanup_free_ uint64_t *v = NULL;
        size_t n = 1;

        if (argc < 3)
                return 2;
        if (!streq(argv[1], "varlink-once"))
                n = strtoul(streq(argv[1], "varlink") || streq(argv[1], "varlink-connect") ? argv[3] : argv[2],
                            NULL, 10);
        if (n == 0 || n > 1000000 || !(v = calloc(n, sizeof *v)))
                return 2;
        (void) signal(SIGPIPE, SIG_IGN);
        int r = run(v, n, argc, argv);
        if (r == 0)
                report(v, n, 1);
        return r;
}
