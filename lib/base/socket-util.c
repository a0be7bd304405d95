/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include "base/socket-util.h"

bool socket_is_connected_to_itself(int fd) {
        struct sockaddr_storage local, peer;
        socklen_t ll = sizeof local, pl = sizeof peer;

        if (getsockname(fd, (struct sockaddr *) &local, &ll) < 0 ||
            getpeername(fd, (struct sockaddr *) &peer, &pl) < 0)
                return false;
        return ll == pl && memcmp(&local, &peer, ll) == 0;
}

int socket_send_all(int fd, const void *data, size_t size) {
        for (const char *p = data; size > 0;) {
                ssize_t n = send(fd, p, size, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                p += n;
                size -= (size_t) n;
        }
        return 0;
}

void socket_tcp_interactive(int fd, unsigned idle_sec, unsigned interval_sec, unsigned count) {
        int on = 1, idle = (int) idle_sec, interval = (int) interval_sec, n = (int) count;
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        (void) setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
        (void) setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
        (void) setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
        (void) setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &n, sizeof n);
}
