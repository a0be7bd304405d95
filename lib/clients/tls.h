/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Mutual TLS between the hosts of a cluster (OpenSSL), for calls one
 * host's nap-managerd forwards to another's nap-cluster-gate(8). Both ends
 * present a certificate of the cluster's CA (ClusterCertificate=,
 * ClusterKey=, ClusterCA= in nap.conf):
 *
 *   - the caller checks that the gate's certificate names the node it
 *     meant to reach (a DNS subjectAltName, or the common name);
 *   - the gate refuses a connection without a certificate, with one that
 *     is not from the CA, or whose extended key usage leaves out TLS
 *     client authentication; then (nap_tls_peer_check()) one that does not
 *     name, as an IP subjectAltName, the address it connects from: the
 *     certificate says which host may assert a caller's uid.
 *
 * TLS 1.2 at least. Blocking sockets; every step bounded by the timeouts
 * set on the socket. Nothing logs. */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "base/error.h"
#include "model/config.h"

typedef struct NapTls NapTls;         /* certificates and settings, one per process side */
typedef struct NapTlsLink NapTlsLink; /* one connection */

/* Initializes OpenSSL (its configuration, providers: milliseconds): once,
 * before forking a process per connection, so that each does not. */
void nap_tls_preload(void);

/* server: the gate's side. NAP_ERROR_NOT_AVAILABLE when nap.conf does
 * not set the three files, NAP_ERROR_INVALID_CONFIG when they do not load
 * (unreadable, not PEM, key and certificate do not match). */
int nap_tls_new(const NapConfig *c, bool server, NapTls **ret, NapError *e);
NapTls *nap_tls_free(NapTls *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(NapTls *, nap_tls_free);

/* The handshakes, on a connected TCP socket that stays the caller's to
 * close. Failures are NAP_ERROR_CLUSTER_AUTH_FAILED with OpenSSL's reason
 * (a connection that drops mid-way too: a gate refusing a certificate
 * closes it). what: who is on the other end, for messages ("node h2"). */
int nap_tls_connect(NapTls *t, int fd, const char *node, NapTlsLink **ret, NapError *e);
int nap_tls_accept(NapTls *t, int fd, NapTlsLink **ret, NapError *e);
NapTlsLink *nap_tls_link_free(NapTlsLink *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(NapTlsLink *, nap_tls_link_free);

/* The gate's check after the handshake: the peer's certificate names
 * address (its IP subjectAltName). Its common name into name (for
 * messages). NAP_ERROR_CLUSTER_AUTH_FAILED when it does not. */
int nap_tls_peer_check(NapTlsLink *l, const char *address, char *name, size_t size, NapError *e);

/* One message: bytes up to a NUL (dropped), at most max - 1 of them, into
 * buf, NUL-terminated. Bytes after it stay for the next read or the relay.
 * -EPIPE at a clean end before any byte, -EMSGSIZE over max. */
int nap_tls_read_message(NapTlsLink *l, char *buf, size_t max, NapError *e);
/* size bytes, all of them. */
int nap_tls_write(NapTlsLink *l, const void *data, size_t size, NapError *e);

typedef enum NapTlsRelay {
        NAP_TLS_RELAY_BOTH,     /* bytes both ways */
        NAP_TLS_RELAY_FROM_FD,  /* fd → TLS only: a byte over TLS ends it, as an error */
} NapTlsRelay;

/* Copies bytes between the TLS link and fd (a stream socket) until either
 * side ends; what one side ends, the other sees as an end of its input
 * (shutdown). *ret_received: bytes that came over TLS, so a caller knows
 * whether an error is still its to report. 0 at a clean end. */
int nap_tls_relay(NapTlsLink *l, int fd, NapTlsRelay how, size_t *ret_received, NapError *e);
