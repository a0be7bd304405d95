/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The TCP connections and port probes nap makes: made here, or — in a
 * process without a network of its own (nap-managerd runs with
 * PrivateNetwork=yes) — by nap-connect(8), which makes them in the host's
 * network and passes the connected socket back (SCM_RIGHTS). A socket
 * keeps the network namespace it was made in, so the process then talks
 * over it as if it had connected itself, and cannot make one of its own.
 *
 * $NAP_CONNECT_SOCKET names nap-connect's socket; unset or empty, the
 * process connects itself. The unit that takes a service's network away
 * sets it (nap-managerd.service), and the processes the service starts
 * (nap-cluster-gate --forward) inherit both.
 *
 * The protocol: one request per connection, one line each way, ASCII:
 *   connect HOST PORT TIMEOUT_MS  ->  "ok" with the connected socket
 *   port-free PORT                ->  "free" or "taken"
 * and "error ERRNO" (a positive errno) when it could not be done. */

#include <stdbool.h>
#include <stdint.h>

#define TCP_BROKER_LINE_MAX 512U
#define TCP_HOST_MAX 253U
#define TCP_BROKER_TIMEOUT_MS_MAX 600000U
/* How long nap-connect may take beyond a connect's own timeout. */
#define TCP_BROKER_SLACK_USEC (5ULL * 1000ULL * 1000ULL)

typedef enum TcpBrokerOp {
        TCP_BROKER_CONNECT,
        TCP_BROKER_PORT_FREE,
} TcpBrokerOp;

typedef struct TcpBrokerRequest {
        TcpBrokerOp op;
        char host[TCP_HOST_MAX + 1]; /* a name, or an address without brackets */
        unsigned port;
        unsigned timeout_ms;
} TcpBrokerRequest;

/* A host as a request may carry it: a DNS name or an IPv4/IPv6 address
 * (letters, digits, '.', '-', '_', ':', '%'; not beginning with '-'). */
bool tcp_host_is_valid(const char *host);

/* A request line (without its '\n'): 0, or -EINVAL. */
int tcp_broker_request_parse(const char *line, TcpBrokerRequest *ret);
/* A reply line: 1 for "ok" and "free", 0 for "taken", -ERRNO for
 * "error ERRNO"; -EBADMSG for anything else. */
int tcp_broker_reply_parse(const char *line);

/* The path of nap-connect's socket, or NULL: this process connects itself. */
const char *tcp_broker_socket(void);

/* A connected TCP socket to host:port (each of its addresses in turn,
 * within timeout_usec in all), in blocking mode; or -errno: -ENXIO when the
 * name does not resolve, -ETIMEDOUT, -ECONNREFUSED…. Through nap-connect
 * when tcp_broker_socket() says so: -ENOTCONN when it cannot be reached,
 * -EPROTO when it did not answer as it should. */
int tcp_connect(const char *host, unsigned port, uint64_t timeout_usec);
/* Whether nothing on this host listens on port, on any address: 1 free,
 * 0 taken, or -errno (it could not be told). Binds the wildcard address with SO_REUSEADDR, as
 * servers do: a port whose last connections linger in TIME_WAIT is free,
 * a listening socket on any address makes it taken. */
int tcp_port_free(unsigned port);

/* Whether an error of tcp_connect() or tcp_port_free() is nap-connect's
 * own (it could not be reached, or did not answer), not the network's. */
bool tcp_error_is_broker(int error);

/* What an error of tcp_connect() or tcp_port_free() means, in words for
 * a message: nap-connect's own failures named as such (with its socket's
 * path), -ENXIO as a name that does not resolve, others strerror(). In a
 * buffer of this thread's, valid until the next call. */
const char *tcp_strerror(int error);

/* The same, always in this process (nap-connect's side). */
int tcp_connect_here(const char *host, unsigned port, uint64_t timeout_usec);
int tcp_port_free_here(unsigned port);
