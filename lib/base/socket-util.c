/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
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

int fd_wait_until(int fd, short events, uint64_t deadline) {
        for (;;) {
                uint64_t now = monotonic_usec();
                if (now >= deadline)
                        return 0;
                struct pollfd p = { .fd = fd, .events = events };
                int r = poll(&p, 1, (int) ((deadline - now + 999) / 1000));
                if (r > 0)
                        return 1;
                if (r < 0 && errno != EINTR)
                        return -errno;
        }
}

int socket_send_with_fd(int fd, const void *data, size_t size, int fd_to_pass) {
        union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } control = {};
        struct iovec io = { .iov_base = (void *) data, .iov_len = size };
        struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1 };
        if (fd_to_pass >= 0) {
                m.msg_control = &control;
                m.msg_controllen = sizeof control;
                struct cmsghdr *c = CMSG_FIRSTHDR(&m);
                *c = (struct cmsghdr) { .cmsg_level = SOL_SOCKET, .cmsg_type = SCM_RIGHTS,
                                        .cmsg_len = CMSG_LEN(sizeof(int)) };
                memcpy(CMSG_DATA(c), &fd_to_pass, sizeof(int));
        }
        ssize_t n = sendmsg(fd, &m, MSG_NOSIGNAL);
        return n == (ssize_t) size ? 0 : n < 0 ? -errno : -EIO;
}

/* The fds that came with a message: the first kept in *ret_fd, others closed. */
static void take_fds(struct msghdr *m, int *ret_fd) {
        for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < n; i++) {
                        int passed;
                        memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                        if (*ret_fd < 0)
                                *ret_fd = passed;
                        else
                                (void) close(passed);
                }
        }
}

int socket_receive_line(int fd, char *buf, size_t size, uint64_t deadline, int *ret_fd) {
        size_t have = 0;
        *ret_fd = -1;
        buf[0] = 0;
        while (!memchr(buf, '\n', have)) {
                union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int) * 4)]; } control;
                struct iovec io = { .iov_base = buf + have, .iov_len = size - 1 - have };
                struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = &control,
                                    .msg_controllen = sizeof control };
                if (have == size - 1)
                        return -EMSGSIZE;
                int r = fd_wait_until(fd, POLLIN, deadline);
                if (r <= 0)
                        return r < 0 ? r : -ETIMEDOUT;
                ssize_t n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -ECONNRESET;
                take_fds(&m, ret_fd);
                have += (size_t) n;
                buf[have] = 0;
        }
        char *end = memchr(buf, '\n', have);
        if (memchr(buf, 0, (size_t) (end - buf)))
                return -EBADMSG; /* a NUL inside: not a line of text */
        *end = 0;
        return (int) (end - buf);
}

int socket_connect_unix(const char *address, uint64_t timeout_usec) {
        const struct timeval tv = { .tv_sec = (time_t) (timeout_usec / USEC_PER_SEC),
                                    .tv_usec = (suseconds_t) (timeout_usec % USEC_PER_SEC) };
        struct sockaddr_un sa;
        socklen_t len;
        int r = socket_address_unix(address, &sa, &len);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, (const struct sockaddr *) &sa, len) < 0)
                return -errno;
        return TAKE_FD(fd);
}
