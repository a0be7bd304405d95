/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/macro.h"
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

int socket_address_unix(const char *address, struct sockaddr_un *ret, socklen_t *ret_len) {
        const char *p = strncmp(address, "unix:", 5) == 0 ? address + 5 : address;
        size_t n = strlen(p);

        *ret = (struct sockaddr_un) { .sun_family = AF_UNIX };
        if (p[0] == '@') {
                if (n < 2 || n > sizeof ret->sun_path)
                        return -EINVAL;
                memcpy(ret->sun_path + 1, p + 1, n - 1);
                *ret_len = offsetof(struct sockaddr_un, sun_path) + n;
                return 0;
        }
        if (p[0] != '/')
                return -EINVAL;
        if (n >= sizeof ret->sun_path)
                return -ENAMETOOLONG;
        memcpy(ret->sun_path, p, n + 1);
        *ret_len = offsetof(struct sockaddr_un, sun_path) + n + 1;
        return 0;
}

static void unlink_stale_socket(const char *path) {
        struct stat st;

        if (lstat(path, &st) >= 0 && S_ISSOCK(st.st_mode))
                (void) unlink(path);
}

int socket_listen_unix(const char *address, mode_t mode, int flags) {
        struct sockaddr_un sa;
        socklen_t len;
        int r = socket_address_unix(address, &sa, &len);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
        if (fd < 0)
                return -errno;
        if (sa.sun_path[0])
                unlink_stale_socket(sa.sun_path);
        if (bind(fd, (const struct sockaddr *) &sa, len) < 0 ||
            (sa.sun_path[0] && chmod(sa.sun_path, mode & 07777) < 0) || listen(fd, SOMAXCONN) < 0)
                return -errno;
        return TAKE_FD(fd);
}
