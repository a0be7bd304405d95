/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/socket-util.h"
#include "base/tcp.h"
#include "clients/tls.h"
#include "forward-out.h"
#include "ops/forward.h"

/* A node that does not answer is reported within these. */
#define FORWARD_CONNECT_TIMEOUT_SEC 5
#define FORWARD_HANDSHAKE_TIMEOUT_SEC 10

static void socket_timeouts(int fd, unsigned sec) {
        struct timeval tv = { .tv_sec = sec };
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* At most FORWARD_CONNECT_TIMEOUT_SEC; through nap-connect(8) when
 * nap-managerd, whose child this is, has no network of its own. */
static int connect_gate(const NapConfig *c, const NapForwardTarget *t, NapError *e) {
        int fd = tcp_connect(t->address, c->cluster_gate_port, FORWARD_CONNECT_TIMEOUT_SEC * 1000ULL * 1000ULL);
        if (fd == -ENXIO)
                return nap_error_set(e, NAP_ERROR_NODE_UNREACHABLE, -EHOSTUNREACH,
                                     "Node %s cannot be reached: its address %s does not resolve", t->node, t->address);
        if (tcp_error_is_broker(fd))
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, fd, "Node %s cannot be reached from here: %s", t->node,
                                     tcp_strerror(fd));
        /* a Ready node that refuses: its agent runs, its gate does not */
        if (fd < 0)
                return nap_error_set(e, NAP_ERROR_NODE_UNREACHABLE, fd, "Node %s (%s, port %u) cannot be reached%s: %s",
                                     t->node, t->address, c->cluster_gate_port,
                                     !t->ready              ? ", and it is NotReady" :
                                     fd == -ECONNREFUSED    ? " (nothing listens there: is the host up, its nap-cluster-gate.socket enabled?)" :
                                                              "",
                                     tcp_strerror(fd));
        socket_tcp_interactive(fd, NAP_FORWARD_KEEPALIVE_IDLE_SEC, NAP_FORWARD_KEEPALIVE_INTERVAL_SEC,
                               NAP_FORWARD_KEEPALIVE_COUNT);
        return fd;
}

static int send_header(NapTlsLink *l, const NapConfig *c, uid_t uid, NapError *e) {
        _cleanup_free_ char *node = NULL;
        (void) nap_config_node(c, &node, NULL);
        json_auto_t *h = json_pack("{s:I, s:s}", "uid", (json_int_t) uid, "node", node ?: "");
        _cleanup_free_ char *text = h ? json_dumps(h, JSON_COMPACT) : NULL;
        if (!text)
                return nap_error_errno(e, -ENOMEM, "Failed to forward the call");
        return nap_tls_write(l, text, strlen(text) + 1, e);
}

/* The call from fd, up to its NUL, read and dropped: the reply that
 * follows is then read by a client that has written its call. */
static void drain_call(int fd) {
        char buf[4096];
        size_t total = 0;
        socket_timeouts(fd, FORWARD_HANDSHAKE_TIMEOUT_SEC);
        for (ssize_t n; total < NAP_FORWARD_CALL_MAX && (n = read(fd, buf, sizeof buf)) > 0; total += (size_t) n)
                if (memchr(buf, 0, (size_t) n))
                        return;
}

static void reply_error(int fd, const NapError *e) {
        size_t size;
        _cleanup_free_ char *m = nap_forward_error_message(e, &size);
        drain_call(fd);
        if (m)
                (void) socket_send_all(fd, m, size);
}

static int forward_over_tls(const NapConfig *c, const NapForwardTarget *t, uid_t uid, int sock, int fd,
                            size_t *received, NapError *e) {
        _cleanup_(nap_tls_freep) NapTls *tls = NULL;
        _cleanup_(nap_tls_link_freep) NapTlsLink *link = NULL;
        socket_timeouts(sock, FORWARD_HANDSHAKE_TIMEOUT_SEC);
        int r = nap_tls_new(c, false, &tls, e);
        if (r >= 0)
                r = nap_tls_connect(tls, sock, t->node, &link, e);
        if (r >= 0)
                r = send_header(link, c, uid, e);
        if (r < 0)
                return r;
        socket_timeouts(sock, 0); /* a follow waits as long as its log is quiet */
        return nap_tls_relay(link, fd, NAP_TLS_RELAY_BOTH, received, e);
}

int forward_out(const NapConfig *c, uid_t uid, const char *instance, int fd, NapError *e) {
        _cleanup_(nap_forward_target_done) NapForwardTarget t = {};
        size_t received = 0;
        int sock = -1;

        assert(c);
        assert(instance);
        _cleanup_free_ char *self = NULL;
        int r = nap_forward_find(c, instance, &t, e);
        if (r >= 0 && nap_config_node(c, &self, NULL) >= 0 && streq(self, t.node))
                r = nap_error_set(e, NAP_ERROR_NO_SUCH_INSTANCE, -ENOENT,
                                  "%s is assigned to this node (%s), and not made here yet", instance, t.node);
        if (r >= 0 && !nap_config_forwards(c))
                r = nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -ENOPKG, "%s runs on node %s", instance, t.node);
        if (r >= 0)
                r = sock = connect_gate(c, &t, e);
        if (r >= 0)
                r = forward_over_tls(c, &t, uid, sock, fd, &received, e);
        if (sock >= 0)
                (void) close(sock);
        if (r < 0 && received == 0)
                reply_error(fd, e);
        return r;
}

