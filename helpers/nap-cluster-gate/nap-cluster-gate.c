/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* nap-cluster-gate: connections from other hosts' nap-managerd, on the
 * listening socket of nap-cluster-gate.socket (a process forked for each,
 * from one that has OpenSSL loaded and its sandbox set up already: a
 * service started per connection cost ~50 ms), or one on standard input
 * (inetd style, Accept=yes). Mutual TLS with the cluster's CA
 * (lib/clients/tls.h); the peer's certificate must name the address it
 * connects from; then a header asserting the caller's uid, and one call of
 * io.nap.Manager (GetJournal, CatApp or GetPort of an instance on this
 * host), authorized for that uid as nap-managerd would authorize it
 * locally (lib/ops/forward.h). The call then goes to this host's
 * nap-managerd, and its replies back over TLS, unchanged, until either
 * side hangs up. A refusal is one varlink error, logged with its reason.
 *
 * With --forward=INSTANCE --uid=UID it is the other end: nap-managerd
 * runs it for a call about an instance on another host, with the call on
 * fd 3 (forward-out.h). Both ends live here so that OpenSSL is loaded by
 * this program only, never by nap-managerd. See nap-cluster-gate(8). */

#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/log.h"
#include "base/socket-util.h"
#include "clients/tls.h"
#include "forward-out.h"
#include "nap-config.h"
#include "ops/forward.h"

#define GATE_TIMEOUT_SEC 10
#define GATE_CONNECTIONS_MAX 64U /* each a process: a bound on what other hosts can start */

typedef struct Gate {
        NapConfig *config;
        char peer[INET6_ADDRSTRLEN]; /* the connecting address */
        char peer_name[256];         /* its certificate's common name */
        char node[NAP_NODE_NAME_MAX + 1]; /* the node it says it is */
        uid_t uid;
        NapTlsLink *link;
} Gate;

static void gate_done(Gate *g) {
        nap_tls_link_free(g->link);
        nap_config_free(g->config);
}

static void warn_config(void *userdata, const char *message) {
        log_warning("%s", message);
}

/* The peer's address as text; an IPv4 address mapped into IPv6 as IPv4,
 * as certificates name it. */
static int peer_address(int fd, char *buf, size_t size) {
        struct sockaddr_storage sa;
        socklen_t n = sizeof sa;
        if (getpeername(fd, (struct sockaddr *) &sa, &n) < 0)
                return -errno;
        if (sa.ss_family == AF_INET)
                return inet_ntop(AF_INET, &((struct sockaddr_in *) &sa)->sin_addr, buf, size) ? 0 : -errno;
        if (sa.ss_family != AF_INET6)
                return -EAFNOSUPPORT;
        const struct in6_addr *a = &((struct sockaddr_in6 *) &sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a))
                return inet_ntop(AF_INET, a->s6_addr + 12, buf, size) ? 0 : -errno;
        return inet_ntop(AF_INET6, a, buf, size) ? 0 : -errno;
}

/* This host's nap-managerd, as napctl finds it. */
static int connect_managerd(const NapConfig *c, NapError *e) {
        const char *runtime = c->scope == NAP_SCOPE_USER ? secure_getenv("XDG_RUNTIME_DIR") : NULL;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s", isempty(runtime) ? "/run" : runtime,
                 NAP_MANAGER_SOCKET_NAME);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                int r = -errno;
                safe_close(fd);
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, r, "nap-managerd is not listening on %s: %s",
                                     sa.sun_path, strerror(-r));
        }
        return fd;
}

/* TLS, the certificate's address, the header. */
static int gate_admit(Gate *g, NapError *e) {
        _cleanup_(nap_tls_freep) NapTls *tls = NULL;
        char header[NAP_FORWARD_HEADER_MAX];
        int r = nap_tls_new(g->config, true, &tls, e);
        if (r >= 0)
                r = nap_tls_accept(tls, STDIN_FILENO, &g->link, e);
        if (r >= 0)
                r = nap_tls_peer_check(g->link, g->peer, g->peer_name, sizeof g->peer_name, e);
        if (r >= 0)
                r = nap_tls_read_message(g->link, header, sizeof header, e);
        if (r >= 0)
                r = nap_forward_header_parse(header, &g->uid, g->node, e);
        return r;
}

/* The call: checked, then to nap-managerd, and the replies back. */
static int gate_relay(Gate *g, NapError *e) {
        _cleanup_free_ char *call = malloc(NAP_FORWARD_CALL_MAX);
        const NapMethod *m = NULL;
        _cleanup_close_ int fd = -EBADF;
        if (!call)
                return nap_error_errno(e, -ENOMEM, "Out of memory");
        int r = nap_tls_read_message(g->link, call, NAP_FORWARD_CALL_MAX, e);
        if (r >= 0)
                r = nap_forward_call_check(g->config, call, g->uid, &m, e);
        if (r >= 0)
                r = fd = connect_managerd(g->config, e);
        if (r >= 0 && (r = socket_send_all(fd, call, strlen(call) + 1)) < 0)
                nap_error_errno(e, r, "Failed to pass the call to nap-managerd");
        if (r < 0)
                return r;
        log_info("uid %u on %s (certificate '%s', %s) calls %s", (unsigned) g->uid, g->node, g->peer_name, g->peer,
                 m->name);
        struct timeval none = {};
        (void) setsockopt(STDIN_FILENO, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
        /* nothing after the call: it was the one checked */
        return nap_tls_relay(g->link, fd, NAP_TLS_RELAY_FROM_FD, NULL, e);
}

/* A refused handshake: the alert is out; what the peer sent meanwhile is
 * read, so that closing does not reset the connection and lose the alert
 * before the peer read it. */
static void drain_peer(void) {
        char buf[4096];
        struct timeval tv = { .tv_sec = 2 };
        (void) shutdown(STDIN_FILENO, SHUT_WR);
        (void) setsockopt(STDIN_FILENO, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        for (size_t total = 0; total < 65536;) {
                ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
                if (n <= 0)
                        return;
                total += (size_t) n;
        }
}

static void gate_refuse(Gate *g, const NapError *e) {
        size_t size;
        _cleanup_free_ char *m = NULL;
        log_notice("Refused %s (certificate '%s', uid %d): %s: %s", g->peer, g->peer_name[0] ? g->peer_name : "none",
                   g->node[0] ? (int) g->uid : -1, nap_error_kind_to_string(e->kind), e->message);
        if (g->link && (m = nap_forward_error_message(e, &size)))
                (void) nap_tls_write(g->link, m, size, NULL);
        if (!g->link)
                drain_peer();
}

static const char *arg_forward = NULL;
static uid_t arg_uid = (uid_t) -1;

static int run_forward(void) {
        _cleanup_(nap_config_freep) NapConfig *c = NULL;
        NapError e = NAP_ERROR_NULL;
        int r = nap_config_load(&c, warn_config, NULL, &e);
        if (r >= 0)
                r = forward_out(c, arg_uid, arg_forward, 3, &e);
        if (r < 0)
                log_debug("Forwarding a call about %s failed: %s", arg_forward, e.message);
        return r;
}

static int run(void) {
        _cleanup_(gate_done) Gate g = {};
        NapError e = NAP_ERROR_NULL;
        struct timeval tv = { .tv_sec = GATE_TIMEOUT_SEC };

        int r = peer_address(STDIN_FILENO, g.peer, sizeof g.peer);
        if (r < 0)
                return log_error_errno(r, "Standard input is no TCP connection (start me from nap-cluster-gate.socket): %m");
        (void) setsockopt(STDIN_FILENO, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        (void) setsockopt(STDIN_FILENO, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        socket_tcp_interactive(STDIN_FILENO, NAP_FORWARD_KEEPALIVE_IDLE_SEC, NAP_FORWARD_KEEPALIVE_INTERVAL_SEC,
                         NAP_FORWARD_KEEPALIVE_COUNT);
        r = nap_config_load(&g.config, warn_config, NULL, &e);
        if (r >= 0)
                r = gate_admit(&g, &e);
        if (r >= 0)
                r = gate_relay(&g, &e);
        if (r < 0 && nap_error_is_set(&e))
                gate_refuse(&g, &e);
        return r;
}

/* Children that ended, taken off n. */
static unsigned reap(unsigned n) {
        while (n > 0 && waitpid(-1, NULL, WNOHANG) > 0)
                n--;
        return n;
}

static void serve_connection(int listen_fd, int fd) {
        pid_t pid = fork();
        if (pid == 0) {
                safe_close(listen_fd);
                if (dup2(fd, STDIN_FILENO) < 0)
                        _exit(EXIT_FAILURE);
                safe_close(fd);
                _exit(run() < 0 ? EXIT_FAILURE : EXIT_SUCCESS);
        }
        if (pid < 0)
                log_warning_errno(errno, "Failed to fork for a connection, closing it: %m");
        safe_close(fd);
}

/* Accepts until stopped; children are reaped at least once a second. */
static int serve(int listen_fd) {
        unsigned children = 0;
        nap_tls_preload();
        (void) sd_notify(false, "READY=1");
        for (;;) {
                struct pollfd p = { .fd = listen_fd, .events = POLLIN };
                children = reap(children);
                int r = poll(&p, children < GATE_CONNECTIONS_MAX ? 1 : 0, children < GATE_CONNECTIONS_MAX ? 1000 : 100);
                if (r < 0 && errno != EINTR)
                        return log_error_errno(errno, "poll() failed: %m");
                if (r <= 0)
                        continue;
                int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0 && (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED || errno == EMFILE ||
                               errno == ENFILE || errno == ENOBUFS || errno == ENOMEM))
                        continue;
                if (fd < 0)
                        return log_error_errno(errno, "accept() failed: %m");
                serve_connection(listen_fd, fd);
                children++;
        }
}

/* nap-cluster-gate.socket's listening socket, if that is what we got. */
static int listening_fd(void) {
        int n = sd_listen_fds(true);
        if (n == 1 && sd_is_socket(SD_LISTEN_FDS_START, AF_UNSPEC, SOCK_STREAM, 1) > 0)
                return SD_LISTEN_FDS_START;
        return -EBADF;
}

static void help(void) {
        printf("nap-cluster-gate [OPTIONS...]\n\n"
               "Serve other hosts' nap-managerd on the socket of nap-cluster-gate.socket, or one\n"
               "connection on standard input: mutual TLS with the cluster's CA, then\n"
               "GetJournal, CatApp or GetPort of an instance on this host for the uid it\n"
               "asserts.\n\n"
               "  -h --help              Show this help\n"
               "     --version           Show the version\n"
               "     --forward=INSTANCE  The other end: relay the call on fd 3 about INSTANCE\n"
               "                         to the gate of its node (run by nap-managerd)\n"
               "     --uid=UID           ... asserting the caller UID\n"
               "\nConfiguration: %s, or the file in $NAP_CONFIG (ClusterCertificate=,\n"
               "ClusterKey=, ClusterCA=). See nap-cluster-gate(8).\n",
               NAP_CONFIG_DEFAULT_PATH);
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                { "forward", required_argument, NULL, 'F' },
                { "uid", required_argument, NULL, 'U' },
                {},
        };
        log_setup();
        /* a peer gone is an error of the write (EPIPE), not the end of us */
        (void) signal(SIGPIPE, SIG_IGN);
        for (int c; (c = getopt_long(argc, argv, "h", options, NULL)) >= 0;)
                switch (c) {
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case 'V':
                        printf("nap-cluster-gate %s\n", NAP_VERSION);
                        return EXIT_SUCCESS;
                case 'F':
                        arg_forward = optarg;
                        break;
                case 'U': {
                        char *end;
                        errno = 0;
                        unsigned long u = strtoul(optarg, &end, 10);
                        if (errno || end == optarg || *end || u >= UINT32_MAX) {
                                log_error("--uid= takes a uid, not '%s'", optarg);
                                return 2;
                        }
                        arg_uid = (uid_t) u;
                        break;
                }
                default:
                        return 2;
                }
        if (optind < argc || !arg_forward != (arg_uid == (uid_t) -1)) {
                log_error("No arguments are taken, and --forward= goes with --uid= (see --help)");
                return 2;
        }
        int fd = arg_forward ? -EBADF : listening_fd();
        return (arg_forward ? run_forward() : fd >= 0 ? serve(fd) : run()) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
