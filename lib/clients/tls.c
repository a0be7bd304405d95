/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* OpenSSL, not nap's own crypto: libcurl in Debian's libcurl4-openssl
 * (the one nap dlopen()s for etcd, https:// Etcd= included) is built on it
 * already, so a host runs one TLS stack and one set of its updates, and
 * the openssl(1) an operator makes certificates with is on every host. */

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/socket-util.h"
#include "clients/tls.h"

#define TLS_BUFFER 16384U

struct NapTls {
        SSL_CTX *ctx;
        bool server;
};

struct NapTlsLink {
        SSL *ssl;
        int fd;
        char in[TLS_BUFFER]; /* read and not taken yet: in[start..end) */
        size_t start, end;
};

/* The reason OpenSSL queued, and the certificate check's when it failed. */
static const char *tls_reason(SSL *ssl, char *buf, size_t size) {
        unsigned long err = ERR_peek_last_error();
        long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;

        if (verify != X509_V_OK)
                snprintf(buf, size, "certificate verification failed: %s", X509_verify_cert_error_string(verify));
        else if (err)
                ERR_error_string_n(err, buf, size);
        else
                snprintf(buf, size, "the connection was closed");
        ERR_clear_error();
        return buf;
}

void nap_tls_preload(void) {
        (void) OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL);
}

static int load_files(NapTls *t, const NapConfig *c, NapError *e) {
        char reason[256];
        const char *what = c->cluster_certificate;
        int ok = SSL_CTX_use_certificate_chain_file(t->ctx, what);
        if (ok == 1) {
                what = c->cluster_key;
                ok = SSL_CTX_use_PrivateKey_file(t->ctx, what, SSL_FILETYPE_PEM);
        }
        if (ok == 1) {
                what = "ClusterKey= against ClusterCertificate=";
                ok = SSL_CTX_check_private_key(t->ctx);
        }
        if (ok == 1) {
                what = c->cluster_ca;
                ok = SSL_CTX_load_verify_locations(t->ctx, what, NULL);
        }
        if (ok != 1)
                return nap_error_set(e, NAP_ERROR_INVALID_CONFIG, -EINVAL, "Cannot use %s: %s", what,
                                     tls_reason(NULL, reason, sizeof reason));
        return 0;
}

int nap_tls_new(const NapConfig *c, bool server, NapTls **ret, NapError *e) {
        assert(c);
        assert(ret);
        if (!c->cluster_certificate || !c->cluster_key || !c->cluster_ca)
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -ENOPKG,
                                     "Forwarding between hosts needs ClusterCertificate=, ClusterKey= and ClusterCA= "
                                     "in nap.conf");
        _cleanup_(nap_tls_freep) NapTls *t = calloc(1, sizeof *t);
        if (!t)
                return nap_error_errno(e, -ENOMEM, "Failed to set up TLS");
        t->server = server;
        t->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
        if (!t->ctx || SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION) != 1)
                return nap_error_errno(e, -ENOMEM, "Failed to set up TLS");
        int r = load_files(t, c, e);
        if (r < 0)
                return r;
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
        /* a certificate's extended key usage must allow its side */
        if (SSL_CTX_set_purpose(t->ctx, server ? X509_PURPOSE_SSL_CLIENT : X509_PURPOSE_SSL_SERVER) != 1)
                return nap_error_errno(e, -EINVAL, "Failed to set up TLS");
        SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
        if (server)
                SSL_CTX_set_num_tickets(t->ctx, 0);
        *ret = TAKE_PTR(t);
        return 0;
}

NapTls *nap_tls_free(NapTls *t) {
        if (!t)
                return NULL;
        SSL_CTX_free(t->ctx);
        free(t);
        return NULL;
}

NapTlsLink *nap_tls_link_free(NapTlsLink *l) {
        if (!l)
                return NULL;
        SSL_free(l->ssl);
        free(l);
        return NULL;
}

static int link_new(NapTls *t, int fd, NapTlsLink **ret, NapError *e) {
        NapTlsLink *l = calloc(1, sizeof *l);
        if (!l || !(l->ssl = SSL_new(t->ctx)) || SSL_set_fd(l->ssl, fd) != 1) {
                nap_tls_link_free(l);
                return nap_error_errno(e, -ENOMEM, "Failed to set up TLS");
        }
        l->fd = fd;
        *ret = l;
        return 0;
}

int nap_tls_connect(NapTls *t, int fd, const char *node, NapTlsLink **ret, NapError *e) {
        _cleanup_(nap_tls_link_freep) NapTlsLink *l = NULL;
        char reason[256];

        assert(t && !t->server);
        assert(node);
        assert(ret);
        int r = link_new(t, fd, &l, e);
        if (r < 0)
                return r;
        /* the gate must be the node's: its certificate names it */
        if (SSL_set1_host(l->ssl, node) != 1)
                return nap_error_errno(e, -ENOMEM, "Failed to set up TLS");
        SSL_set_hostflags(l->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ERR_clear_error();
        if (SSL_connect(l->ssl) != 1)
                return nap_error_set(e, NAP_ERROR_CLUSTER_AUTH_FAILED, -EACCES, "TLS with node %s failed: %s", node,
                                     tls_reason(l->ssl, reason, sizeof reason));
        *ret = TAKE_PTR(l);
        return 0;
}

int nap_tls_accept(NapTls *t, int fd, NapTlsLink **ret, NapError *e) {
        _cleanup_(nap_tls_link_freep) NapTlsLink *l = NULL;
        char reason[256];

        assert(t && t->server);
        assert(ret);
        int r = link_new(t, fd, &l, e);
        if (r < 0)
                return r;
        ERR_clear_error();
        if (SSL_accept(l->ssl) != 1)
                return nap_error_set(e, NAP_ERROR_CLUSTER_AUTH_FAILED, -EACCES, "TLS handshake refused: %s",
                                     tls_reason(l->ssl, reason, sizeof reason));
        *ret = TAKE_PTR(l);
        return 0;
}

int nap_tls_peer_check(NapTlsLink *l, const char *address, char *name, size_t size, NapError *e) {
        assert(l);
        assert(address);
        assert(name && size > 0);
        X509 *cert = SSL_get0_peer_certificate(l->ssl);
        snprintf(name, size, "?");
        if (!cert) /* the handshake asked for one: cannot happen */
                return nap_error_set(e, NAP_ERROR_CLUSTER_AUTH_FAILED, -EACCES, "No client certificate");
        if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, name, (int) size) < 0)
                snprintf(name, size, "?");
        if (X509_check_ip_asc(cert, address, 0) != 1)
                return nap_error_set(e, NAP_ERROR_CLUSTER_AUTH_FAILED, -EACCES,
                                     "The certificate of '%s' does not name %s, the address it connects from: it may "
                                     "not assert callers from there",
                                     name, address);
        return 0;
}

/* ---- bytes ------------------------------------------------------------ */

/* > 0 bytes read into l->in, 0 at the end (clean or not), < 0 failed. */
static int fill(NapTlsLink *l, NapError *e) {
        char reason[256];
        ERR_clear_error();
        int n = SSL_read(l->ssl, l->in, sizeof l->in);
        if (n > 0) {
                l->start = 0;
                l->end = (size_t) n;
                return n;
        }
        int err = SSL_get_error(l->ssl, n);
        if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0))
                return 0;
        if (err == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))
                return nap_error_set(e, NAP_ERROR_NODE_UNREACHABLE, -ETIMEDOUT, "The other host did not answer in time");
        return nap_error_set(e, NAP_ERROR_CLUSTER_AUTH_FAILED, -EPROTO, "TLS failed: %s",
                             tls_reason(l->ssl, reason, sizeof reason));
}

int nap_tls_read_message(NapTlsLink *l, char *buf, size_t max, NapError *e) {
        size_t n = 0;
        assert(l);
        assert(buf && max > 0);
        for (;;) {
                if (l->start == l->end) {
                        errno = 0;
                        int r = fill(l, e);
                        if (r < 0)
                                return r;
                        if (r == 0)
                                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, n == 0 ? -EPIPE : -EBADMSG,
                                                     "The connection ended %s", n == 0 ? "" : "inside a message");
                }
                char *nul = memchr(l->in + l->start, 0, l->end - l->start);
                size_t take = nul ? (size_t) (nul - (l->in + l->start)) : l->end - l->start;
                if (n + take >= max)
                        return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EMSGSIZE,
                                             "A message longer than %zu bytes", max - 1);
                memcpy(buf + n, l->in + l->start, take);
                n += take;
                l->start += take + (nul ? 1 : 0);
                if (nul) {
                        buf[n] = 0;
                        return 0;
                }
        }
}

/* With TLS 1.3 a client learns that the server refused its certificate
 * only after its handshake ended: from the alert, which may wait unread
 * behind a write that failed. */
static int write_failed(NapTlsLink *l, NapError *e) {
        char reason[256], c;
        unsigned long err;
        ERR_clear_error();
        if (SSL_read(l->ssl, &c, 1) <= 0 && (err = ERR_peek_last_error()) != 0 &&
            ERR_GET_REASON(err) >= SSL_AD_REASON_OFFSET)
                return nap_error_set(e, NAP_ERROR_CLUSTER_AUTH_FAILED, -EACCES, "The other host refused TLS: %s",
                                     tls_reason(l->ssl, reason, sizeof reason));
        return nap_error_set(e, NAP_ERROR_NODE_UNREACHABLE, -EPIPE, "Writing to the other host failed: %s",
                             tls_reason(l->ssl, reason, sizeof reason));
}

int nap_tls_write(NapTlsLink *l, const void *data, size_t size, NapError *e) {
        for (const char *p = data; size > 0;) {
                ERR_clear_error();
                int n = SSL_write(l->ssl, p, (int) MIN(size, (size_t) INT_MAX));
                if (n <= 0)
                        return write_failed(l, e);
                p += n;
                size -= (size_t) n;
        }
        return 0;
}

/* TLS → fd: what is buffered, then one read. 0 at the end of TLS. */
static int relay_in(NapTlsLink *l, int fd, size_t *received, NapError *e) {
        if (l->start == l->end) {
                errno = 0;
                int r = fill(l, e);
                if (r <= 0)
                        return r;
        }
        *received += l->end - l->start;
        int r = socket_send_all(fd, l->in + l->start, l->end - l->start);
        l->start = l->end = 0;
        return r < 0 ? nap_error_errno(e, r, "Failed to pass the answer on") : 1;
}

/* fd → TLS: one read. 0 at the end of fd. */
static int relay_out(NapTlsLink *l, int fd, NapError *e) {
        char buf[TLS_BUFFER];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
                return 1;
        if (n < 0)
                return nap_error_errno(e, -errno, "Failed to read the call");
        if (n == 0)
                return 0;
        int r = nap_tls_write(l, buf, (size_t) n, e);
        return r < 0 ? r : 1;
}

/* NAP_TLS_RELAY_FROM_FD: TLS may only end. */
static int relay_in_refused(NapTlsLink *l, NapError *e) {
        errno = 0;
        int r = l->start < l->end ? 1 : fill(l, e);
        if (r > 0)
                return nap_error_set(e, NAP_ERROR_PERMISSION_DENIED, -EPROTO,
                                     "The other host sent more after its call; one call per connection");
        return r;
}

int nap_tls_relay(NapTlsLink *l, int fd, NapTlsRelay how, size_t *ret_received, NapError *e) {
        size_t received = 0;
        int r = 1;

        assert(l);
        /* what came with a message read before */
        if (l->start < l->end)
                r = how == NAP_TLS_RELAY_BOTH ? relay_in(l, fd, &received, e) : relay_in_refused(l, e);
        while (r > 0) {
                struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = l->fd, .events = POLLIN } };
                if (SSL_pending(l->ssl) > 0)
                        p[1].revents = POLLIN;
                else if (poll(p, 2, -1) < 0) {
                        r = errno == EINTR ? 1 : nap_error_errno(e, -errno, "poll() failed");
                        continue;
                }
                if (p[1].revents)
                        r = how == NAP_TLS_RELAY_BOTH ? relay_in(l, fd, &received, e) : relay_in_refused(l, e);
                if (r > 0 && p[0].revents)
                        r = relay_out(l, fd, e);
        }
        if (r == 0) {
                /* one side ended: so does the other */
                (void) SSL_shutdown(l->ssl);
                (void) shutdown(fd, SHUT_WR);
        }
        if (ret_received)
                *ret_received = received;
        return r;
}
