/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Sockets. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

/* A TCP connect to a loopback port nothing listens on can still succeed:
 * when the kernel picks that same port as the connection's ephemeral
 * source port, the socket connects to itself (TCP simultaneous open) and
 * reads back what it sends. A port inside ip_local_port_range (32768-60999
 * by default) is exposed, once in some tens of thousands of attempts, and
 * a probe that retries every 50 ms gets there. True for such a socket: a
 * probe must count it as refused. */
bool socket_is_connected_to_itself(int fd);

/* size bytes to a stream socket, all of them (MSG_NOSIGNAL: a peer gone is
 * -EPIPE, not a signal). */
int socket_send_all(int fd, const void *data, size_t size);

/* A TCP connection of requests and answers: small writes sent at once
 * (TCP_NODELAY: Nagle's algorithm would hold a message back until the
 * peer's delayed ACK, 40 ms), and keepalive: probes after idle_sec without
 * traffic, every interval_sec, the connection given up after count
 * unanswered (a peer that died without a word, as a host losing power,
 * ends a quiet connection within idle_sec + interval_sec * count). Best
 * effort. */
void socket_tcp_interactive(int fd, unsigned idle_sec, unsigned interval_sec, unsigned count);

/* A Unix socket address: "/path", "unix:/path" or "@abstract". -EINVAL
 * for anything else, -ENAMETOOLONG when it does not fit. */
int socket_address_unix(const char *address, struct sockaddr_un *ret, socklen_t *ret_len);

/* A listening stream socket on address (as above), flags added to
 * socket()'s type (SOCK_CLOEXEC always): a socket left at a path by an
 * earlier run is replaced (anything else there is not), the path's mode
 * set to mode. The fd, or -errno. */
int socket_listen_unix(const char *address, mode_t mode, int flags);

/* poll() on one fd until events or the deadline (CLOCK_MONOTONIC, µs),
 * EINTR retried: 1 ready, 0 timed out, or -errno. */
int fd_wait_until(int fd, short events, uint64_t deadline);

/* size bytes to a stream socket in one message, with fd_to_pass attached
 * (SCM_RIGHTS) unless it is negative. 0, or -errno (a short send too). */
int socket_send_with_fd(int fd, const void *data, size_t size, int fd_to_pass);

/* One line from a stream socket, up to its '\n', into buf (the '\n'
 * replaced by NUL), and the first fd that came with it (SCM_RIGHTS; more
 * are closed) in *ret_fd, or -1. Waits until deadline (CLOCK_MONOTONIC,
 * µs). The line's length, or -ETIMEDOUT, -ECONNRESET (the peer hung up
 * before a whole line), -EMSGSIZE (no '\n' within size - 1 bytes),
 * -EBADMSG (a NUL in the line), -errno.
 * Bytes after the '\n' are not expected (a reply, then the end). */
int socket_receive_line(int fd, char *buf, size_t size, uint64_t deadline, int *ret_fd);

/* A stream connection to a Unix socket address (as socket_address_unix()),
 * whose connect() gives up after timeout_usec: on a full backlog it would
 * block. The fd (its send timeout left at timeout_usec), or -errno. */
int socket_connect_unix(const char *address, uint64_t timeout_usec);
