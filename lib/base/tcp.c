/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/macro.h"
#include "base/socket-util.h"
#include "base/tcp.h"

/* ---- the protocol -------------------------------------------------------- */

bool tcp_host_is_valid(const char *host) {
        size_t n = strlen(host);
        return n > 0 && n <= TCP_HOST_MAX && host[0] != '-' &&
               strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:%") == n;
}

/* A decimal number from 1 to max, digits only; what follows in *end. */
static int parse_number(const char *s, unsigned max, unsigned *ret, const char **end) {
        unsigned long v = 0;
        size_t n = strspn(s, "0123456789");
        if (n == 0 || n > 10 || s[0] == '0') /* one way to write each: no leading zero */
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                v = v * 10 + (unsigned long) (s[i] - '0');
        if (v < 1 || v > max)
                return -EINVAL;
        *ret = (unsigned) v;
        *end = s + n;
        return 0;
}

static int parse_connect(const char *args, TcpBrokerRequest *ret) {
        size_t n = strcspn(args, " ");
        const char *p;
        if (n == 0 || n > TCP_HOST_MAX || args[n] != ' ')
                return -EINVAL;
        memcpy(ret->host, args, n);
        ret->host[n] = 0;
        if (!tcp_host_is_valid(ret->host) || parse_number(args + n + 1, 65535, &ret->port, &p) < 0 || *p != ' ' ||
            parse_number(p + 1, TCP_BROKER_TIMEOUT_MS_MAX, &ret->timeout_ms, &p) < 0 || *p)
                return -EINVAL;
        ret->op = TCP_BROKER_CONNECT;
        return 0;
}

int tcp_broker_request_parse(const char *line, TcpBrokerRequest *ret) {
        const char *args, *end;
        *ret = (TcpBrokerRequest) {};
        if (strlen(line) >= TCP_BROKER_LINE_MAX)
                return -EINVAL;
        if ((args = startswith(line, "connect ")))
                return parse_connect(args, ret);
        if ((args = startswith(line, "port-free ")) && parse_number(args, 65535, &ret->port, &end) >= 0 && !*end) {
                ret->op = TCP_BROKER_PORT_FREE;
                return 0;
        }
        return -EINVAL;
}

int tcp_broker_reply_parse(const char *line) {
        const char *p;
        unsigned err;
        if (streq(line, "ok") || streq(line, "free"))
                return 1;
        if (streq(line, "taken"))
                return 0;
        if ((p = startswith(line, "error ")) && parse_number(p, 4095, &err, &p) >= 0 && !*p)
                return -(int) err;
        return -EBADMSG;
}

/* ---- here ---------------------------------------------------------------- */

/* A non-blocking connect, waited for until deadline; the socket in
 * blocking mode, or -errno. Non-blocking also for libcurl before 8.0: it
 * calls connect() on a socket it was told is connected
 * (CURL_SOCKOPT_ALREADY_CONNECTED, curl issue 10626), which Linux answers
 * with 0 only for a socket whose connect was non-blocking. */
static int connect_until(const struct addrinfo *ai, uint64_t deadline) {
        _cleanup_close_ int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        int err = 0;
        socklen_t n = sizeof err;
        if (fd < 0)
                return -errno;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)
                return -errno;
        int r = fd_wait_until(fd, POLLOUT, deadline);
        if (r <= 0)
                return r < 0 ? r : -ETIMEDOUT;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &n) < 0)
                return -errno;
        if (err != 0)
                return -err;
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
                return -errno;
        return TAKE_FD(fd);
}

/* Each address in turn, each given its share of what is left (at least
 * ADDRESS_MIN_USEC): a name whose first address does not answer (IPv6
 * that goes nowhere) still reaches the next in time. */
#define ADDRESS_MIN_USEC (250ULL * 1000ULL)

static int connect_addresses(const struct addrinfo *ai, uint64_t deadline) {
        size_t left = 0;
        int fd = -EHOSTUNREACH;
        for (const struct addrinfo *a = ai; a; a = a->ai_next)
                left++;
        for (const struct addrinfo *a = ai; a && fd < 0; a = a->ai_next, left--) {
                uint64_t now = monotonic_usec();
                if (now >= deadline)
                        return -ETIMEDOUT;
                uint64_t share = MIN(deadline - now, MAX((deadline - now) / left, ADDRESS_MIN_USEC));
                fd = connect_until(a, now + share);
        }
        return fd;
}

int tcp_connect_here(const char *host, unsigned port, uint64_t timeout_usec) {
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV }, *ai = NULL;
        uint64_t deadline = monotonic_usec() + timeout_usec;
        char service[8];

        if (!tcp_host_is_valid(host) || port == 0 || port > 65535)
                return -EINVAL;
        snprintf(service, sizeof service, "%u", port);
        int r = getaddrinfo(host, service, &hints, &ai);
        if (r != 0)
                return r == EAI_SYSTEM ? -errno : r == EAI_MEMORY ? -ENOMEM : -ENXIO;
        int fd = connect_addresses(ai, deadline);
        freeaddrinfo(ai);
        return fd;
}

/* 1 bound (free), 0 in use, or -errno (EACCES below 1024 without the
 * capability, EMFILE…): not an answer about the port. */
static int bind_wildcard(int family, unsigned port) {
        _cleanup_close_ int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in6 sa6 = { .sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = in6addr_any };
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY) };
        int one = 1, r;
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
                return -errno;
        if (family == AF_INET6)
                r = bind(fd, (struct sockaddr *) &sa6, sizeof sa6);
        else
                r = bind(fd, (struct sockaddr *) &sa, sizeof sa);
        return r >= 0 ? 1 : errno == EADDRINUSE ? 0 : -errno;
}

/* Binding the IPv6 wildcard address fails when any address, of either
 * family, has the port; without IPv6, the IPv4 one. */
int tcp_port_free_here(unsigned port) {
        _cleanup_close_ int probe = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (port == 0 || port > 65535)
                return -EINVAL;
        return bind_wildcard(probe >= 0 ? AF_INET6 : AF_INET, port);
}

/* ---- through nap-connect ------------------------------------------------- */

const char *tcp_broker_socket(void) {
        const char *path = secure_getenv("NAP_CONNECT_SOCKET");
        return path && *path ? path : NULL;
}

bool tcp_error_is_broker(int error) {
        return tcp_broker_socket() && (error == -ENOTCONN || error == -EPROTO);
}

const char *tcp_strerror(int error) {
        static __thread char text[256];
        if (tcp_error_is_broker(error) && error == -ENOTCONN)
                snprintf(text, sizeof text, "nap-connect cannot be reached at %s (is nap-connect.socket listening?)",
                         tcp_broker_socket());
        else if (tcp_error_is_broker(error))
                snprintf(text, sizeof text, "nap-connect ended without an answer (see its journal)");
        else if (error == -ENXIO)
                snprintf(text, sizeof text, "the name does not resolve");
        else
                snprintf(text, sizeof text, "%s", strerror(-error));
        return text;
}

/* One request, one reply: the reply's value (as tcp_broker_reply_parse())
 * and the socket that came with an "ok". -ENOTCONN: nap-connect could not
 * be reached; -EPROTO: it did not answer as it should. */
static int broker_call(const char *request, uint64_t timeout_usec, int *ret_fd) {
        char reply[64];
        *ret_fd = -1;
        _cleanup_close_ int fd = socket_connect_unix(tcp_broker_socket(), TCP_BROKER_SLACK_USEC);
        if (fd < 0)
                return -ENOTCONN;
        if (socket_send_all(fd, request, strlen(request)) < 0)
                return -EPROTO;
        _cleanup_close_ int passed = -1;
        int r = socket_receive_line(fd, reply, sizeof reply, monotonic_usec() + timeout_usec + TCP_BROKER_SLACK_USEC,
                                    &passed);
        if (r < 0)
                return r == -ETIMEDOUT ? r : -EPROTO;
        r = tcp_broker_reply_parse(reply);
        if (r == -EBADMSG)
                return -EPROTO;
        if (r > 0)
                *ret_fd = TAKE_FD(passed);
        return r;
}

int tcp_connect(const char *host, unsigned port, uint64_t timeout_usec) {
        char request[TCP_BROKER_LINE_MAX];
        uint64_t ms = (timeout_usec + 999) / 1000;
        int fd;
        if (!tcp_broker_socket())
                return tcp_connect_here(host, port, timeout_usec);
        if (!tcp_host_is_valid(host) || port == 0 || port > 65535)
                return -EINVAL;
        snprintf(request, sizeof request, "connect %s %u %u\n", host, port,
                 (unsigned) MIN(MAX(ms, (uint64_t) 1), (uint64_t) TCP_BROKER_TIMEOUT_MS_MAX));
        int r = broker_call(request, timeout_usec, &fd);
        if (r < 0)
                return r;
        if (r != 1 || fd < 0) { /* "taken", or "ok" without the socket */
                safe_close(fd);
                return -EPROTO;
        }
        return fd;
}

int tcp_port_free(unsigned port) {
        char request[32];
        int fd;
        if (!tcp_broker_socket())
                return tcp_port_free_here(port);
        if (port == 0 || port > 65535)
                return -EINVAL;
        snprintf(request, sizeof request, "port-free %u\n", port);
        int r = broker_call(request, 0, &fd);
        safe_close(fd);
        return r;
}
