/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#include "base/socket-util.h"
#include "discovery-probe.h"
#include "model/profile.h"

/* The loopback addresses, in the order tried. */
enum { ADDRESS_V4, ADDRESS_V6, _ADDRESS_MAX };

void probe_init(Probe *p, sd_event *event, unsigned port, const char *path, uint64_t timeout_usec,
                probe_done_fn done, void *userdata) {
        *p = (Probe) {
                .event = event,
                .port = port,
                .path = path,
                .timeout_usec = timeout_usec,
                .done = done,
                .userdata = userdata,
                .fd = -1,
        };
}

bool probe_running(const Probe *p) {
        return p->timer != NULL;
}

static void probe_close_socket(Probe *p) {
        p->io = sd_event_source_disable_unref(p->io);
        p->fd = safe_close(p->fd);
        p->sent = false;
}

void probe_cancel(Probe *p) {
        probe_close_socket(p);
        p->timer = sd_event_source_disable_unref(p->timer);
}

static void probe_finish(Probe *p, DiscoveryProbeResult r, const char *why) {
        probe_cancel(p);
        p->done(p, p->check, r, why, p->userdata);
}

static int io_handler(sd_event_source *s, int fd, uint32_t revents, void *userdata);

static int probe_connect(Probe *p) {
        union {
                struct sockaddr sa;
                struct sockaddr_in in;
                struct sockaddr_in6 in6;
        } a = {};
        socklen_t l;
        int r;

        if (p->address == ADDRESS_V4) {
                a.in = (struct sockaddr_in) { .sin_family = AF_INET, .sin_port = htons(p->port),
                                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                l = sizeof a.in;
        } else {
                a.in6 = (struct sockaddr_in6) { .sin6_family = AF_INET6, .sin6_port = htons(p->port),
                                                .sin6_addr = IN6ADDR_LOOPBACK_INIT };
                l = sizeof a.in6;
        }
        p->fd = socket(a.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (p->fd < 0)
                return negative_errno();
        if (connect(p->fd, &a.sa, l) < 0 && errno != EINPROGRESS)
                return negative_errno();
        /* Connected or in progress: writable once it is done either way. */
        r = sd_event_add_io(p->event, &p->io, p->fd, EPOLLOUT, io_handler, p);
        return r < 0 ? r : 0;
}

/* The connect failed at once or later: the next address, or REFUSED. */
static void probe_next_address(Probe *p, int error) {
        char why[96];

        for (;;) {
                probe_close_socket(p);
                if (++p->address >= _ADDRESS_MAX) {
                        snprintf(why, sizeof why, "%s on 127.0.0.1 and [::1]", strerror(-error));
                        probe_finish(p, DISCOVERY_PROBE_REFUSED, why);
                        return;
                }
                error = probe_connect(p);
                if (error >= 0)
                        return;
        }
}

static void probe_send(Probe *p) {
        char req[NAP_HEALTH_PATH_MAX + 128];
        int n;

        if (p->check == DISCOVERY_CHECK_TCP) {
                probe_finish(p, DISCOVERY_PROBE_ANSWERED, "connected");
                return;
        }
        n = snprintf(req, sizeof req,
                     "HEAD %s HTTP/1.0\r\nHost: %s:%u\r\nUser-Agent: nap-discovery\r\n\r\n",
                     p->path, p->address == ADDRESS_V4 ? "127.0.0.1" : "[::1]", p->port);
        /* A fresh socket's buffer takes a few dozen bytes whole. */
        if (send(p->fd, req, (size_t) n, MSG_NOSIGNAL | MSG_DONTWAIT) != n) {
                probe_finish(p, DISCOVERY_PROBE_REFUSED, "connection reset before the request was sent");
                return;
        }
        p->sent = true;
        if (sd_event_source_set_io_events(p->io, EPOLLIN) < 0)
                probe_finish(p, DISCOVERY_PROBE_REFUSED, "cannot wait for the answer");
}

static void probe_receive(Probe *p) {
        char buf[512];
        ssize_t n = recv(p->fd, buf, sizeof buf, MSG_DONTWAIT);

        if (n > 0)
                probe_finish(p, DISCOVERY_PROBE_ANSWERED, "answered");
        else if (n == 0)
                probe_finish(p, DISCOVERY_PROBE_REFUSED, "connection closed without an answer");
        else if (errno != EAGAIN && errno != EINTR)
                probe_finish(p, DISCOVERY_PROBE_REFUSED, strerror(errno));
}

static int io_handler(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Probe *p = userdata;
        int error = 0;
        socklen_t l = sizeof error;

        if (p->sent) {
                probe_receive(p);
                return 0;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &l) < 0)
                error = errno;
        if (error == 0 && socket_is_connected_to_itself(fd)) /* nothing listens: see socket-util.h */
                error = ECONNREFUSED;
        if (error != 0)
                probe_next_address(p, -error);
        else
                probe_send(p);
        return 0;
}

static int timer_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        Probe *p = userdata;
        char why[64];

        snprintf(why, sizeof why, "no answer within %llu ms", (unsigned long long) (p->timeout_usec / 1000));
        probe_finish(p, DISCOVERY_PROBE_TIMEOUT, why);
        return 0;
}

int probe_start(Probe *p, DiscoveryCheck check) {
        int r;

        probe_cancel(p);
        p->check = check;
        r = sd_event_add_time_relative(p->event, &p->timer, CLOCK_MONOTONIC, p->timeout_usec, 1000,
                                       timer_handler, p);
        if (r < 0)
                return r;
        p->address = ADDRESS_V4;
        r = probe_connect(p);
        if (r < 0)
                probe_next_address(p, r);
        return 0;
}
