/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* nap-connect: the TCP connections nap-managerd may not make. The daemon
 * runs with PrivateNetwork=yes; this program, started by nap-connect.socket
 * in the host's network, connects for it (to etcd, to another host's
 * nap-cluster-gate, to an instance's port for a health probe) and passes
 * the connected socket back, or says whether a port is free on the host.
 * The protocol: lib/base/tcp.h; nap-connect(8).
 *
 * One listening socket (Accept=no); each connection is one request,
 * served by a child of its own so that a slow connect never holds up
 * another; exits after --idle-timeout without a connection (the socket
 * stays with systemd, which starts it again for the next). */

#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "../common/daemon.h"
#include "../common/log.h"
#include "base/clock.h"
#include "base/socket-util.h"
#include "base/tcp.h"
#include "nap-config.h"

/* A request line arrives at once: the caller writes it whole. */
#define REQUEST_TIMEOUT_USEC (5ULL * 1000ULL * 1000ULL)

static long long arg_idle_timeout_sec = 30;

static int reply(int conn, int value, int fd) {
        char line[32];
        if (value < 0)
                snprintf(line, sizeof line, "error %d\n", -value);
        else
                snprintf(line, sizeof line, "%s\n", fd >= 0 ? "ok" : value > 0 ? "free" : "taken");
        return socket_send_with_fd(conn, line, strlen(line), fd);
}

static int serve(int conn) {
        char line[TCP_BROKER_LINE_MAX + 1];
        TcpBrokerRequest q;
        _cleanup_close_ int stray = -1, fd = -1;
        int r = socket_receive_line(conn, line, sizeof line, monotonic_usec() + REQUEST_TIMEOUT_USEC, &stray);
        if (r == -EMSGSIZE || r == -EBADMSG) { /* too long, or not text */
                log_warning_errno(r, "Refused a request that is not a line of text: %m");
                return reply(conn, -EINVAL, -1);
        }
        if (r < 0)
                return log_warning_errno(r, "Failed to read a request: %m");
        if (tcp_broker_request_parse(line, &q) < 0) {
                char shown[65];
                snprintf(shown, sizeof shown, "%.64s", line);
                for (char *c = shown; *c; c++)
                        if ((unsigned char) *c < ' ' || (unsigned char) *c >= 0x7f)
                                *c = '?';
                log_warning("Refused a request that is not one (%s)", shown);
                return reply(conn, -EINVAL, -1);
        }
        if (q.op == TCP_BROKER_PORT_FREE)
                return reply(conn, tcp_port_free_here(q.port), -1);
        fd = tcp_connect_here(q.host, q.port, (uint64_t) q.timeout_ms * 1000ULL);
        log_debug("connect %s %u: %s", q.host, q.port, fd < 0 ? strerror(-fd) : "connected");
        return reply(conn, fd < 0 ? fd : 1, fd);
}

/* Out of files or memory: said once a second at most, and a pause, not a
 * loop spinning on a connection it cannot take. */
static void accept_failed(int error) {
        static uint64_t said;
        uint64_t now = monotonic_usec();
        if (now - said >= 1000ULL * 1000ULL) {
                log_warning_errno(error, "Failed to accept a connection: %m");
                said = now;
        }
        (void) poll(NULL, 0, 100);
}

static int loop(int listen_fd) {
        for (;;) {
                struct pollfd p = { .fd = listen_fd, .events = POLLIN };
                int r = poll(&p, 1, arg_idle_timeout_sec > 0 ? (int) (arg_idle_timeout_sec * 1000) : -1);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return log_error_errno(errno, "Failed to wait for connections: %m");
                /* Idle: systemd starts us again for the next. Not while a
                 * child still connects: the service's end would kill it.
                 * (Children reap themselves, so waitpid() only says
                 * whether one runs: 0, or ECHILD.) */
                if (r == 0 && waitpid(-1, NULL, WNOHANG) < 0)
                        return 0;
                if (r == 0)
                        continue;
                _cleanup_close_ int conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
                if (conn < 0) {
                        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                accept_failed(errno);
                        continue;
                }
                pid_t pid = fork();
                if (pid < 0) {
                        log_warning_errno(errno, "Failed to serve a connection: %m");
                        (void) reply(conn, -EAGAIN, -1);
                }
                if (pid == 0) {
                        safe_close(listen_fd);
                        _exit(serve(conn) < 0 ? EXIT_FAILURE : EXIT_SUCCESS);
                }
        }
}

static void help(void) {
        printf("nap-connect [OPTIONS...]\n\n"
               "Make TCP connections for nap-managerd, which has no network of its own, and\n"
               "pass them back: started by systemd on nap-connect.socket. See nap-connect(8).\n\n"
               "  -h --help              Show this help\n"
               "     --version           Show the version\n"
               "     --idle-timeout=SEC  Exit after SEC seconds without a connection\n"
               "                         (default 30; 0: never)\n");
}

static int parse_argv(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                { "idle-timeout", required_argument, NULL, 'i' },
                {},
        };
        for (int c; (c = getopt_long(argc, argv, "h", options, NULL)) >= 0;)
                switch (c) {
                case 'h':
                case 'V':
                        daemon_answer_help_or_version(c, "nap-connect", help);
                        return 0;
                case 'i':
                        if (daemon_parse_seconds(optarg, 0, 24 * 3600, &arg_idle_timeout_sec) < 0) {
                                log_error("Invalid --idle-timeout=%s (whole seconds, 0 to 86400)", optarg);
                                return -EINVAL;
                        }
                        break;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                log_error("No arguments are taken (see --help)");
                return -EINVAL;
        }
        return 1;
}

int main(int argc, char *argv[]) {
        /* Children reap themselves: nothing waits for their status. */
        struct sigaction ignore = { .sa_handler = SIG_IGN, .sa_flags = SA_NOCLDWAIT };
        log_setup();
        int r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        if (sd_listen_fds(true) != 1) {
                log_error("nap-connect is started by nap-connect.socket, with its one listening socket");
                return EXIT_FAILURE;
        }
        if (sigaction(SIGCHLD, &ignore, NULL) < 0 || signal(SIGPIPE, SIG_IGN) == SIG_ERR)
                return log_error_errno(errno, "Failed to set up signals: %m"), EXIT_FAILURE;
        (void) sd_notify(false, "READY=1");
        return loop(SD_LISTEN_FDS_START) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
