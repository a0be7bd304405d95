/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dlopen.h"
#include "base/macro.h"
#include "base/tcp.h"
#include "clients/curl-connect.h"

/* Any host, any port: to 127.0.0.1, the port kept. The address is never
 * used (open_through_broker() ignores it); it only spares a DNS lookup. */
static struct curl_slist connect_to_numeric = { .data = (char *) "::127.0.0.1:" };

static __thread char last_failure[TCP_HOST_MAX + 128];

DEFINE_TRIVIAL_CLEANUP_FUNC(CURLU *, sym_curl_url_cleanup);

const char *nap_curl_connect_failure(void) {
        return last_failure[0] ? last_failure : NULL;
}

static void failure(const char *host, unsigned port, int error) {
        if (error == -ENOTCONN)
                snprintf(last_failure, sizeof last_failure,
                         "nap-connect is not reachable at %s (is nap-connect.socket listening?)", tcp_broker_socket());
        else
                snprintf(last_failure, sizeof last_failure, "connecting to %s port %u: %s", host, port,
                         error == -ENXIO ? "the name does not resolve" : strerror(-error));
}

/* The host and port of the URL h is fetching; the host without the
 * brackets of an IPv6 address. */
static int url_host_port(CURL *h, char host[static TCP_HOST_MAX + 1], unsigned *ret_port) {
        _cleanup_(sym_curl_url_cleanupp) CURLU *u = sym_curl_url();
        char *url = NULL, *name = NULL, *port = NULL;
        int r = -EINVAL;
        if (!u || sym_curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &url) != CURLE_OK || !url ||
            sym_curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
            sym_curl_url_get(u, CURLUPART_HOST, &name, 0) != CURLUE_OK ||
            sym_curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
                goto done;
        size_t n = strlen(name);
        const char *start = name;
        if (n >= 2 && name[0] == '[' && name[n - 1] == ']')
                start++, n -= 2;
        char *end = NULL;
        unsigned long p = strtoul(port, &end, 10);
        if (n == 0 || n > TCP_HOST_MAX || !end || *end || p == 0 || p > 65535)
                goto done;
        memcpy(host, start, n);
        host[n] = 0;
        *ret_port = (unsigned) p;
        r = 0;
done:
        sym_curl_free(name);
        sym_curl_free(port);
        return r;
}

static curl_socket_t open_through_broker(void *clientp, curlsocktype purpose, struct curl_sockaddr *address) {
        CURL *h = clientp;
        char host[TCP_HOST_MAX + 1];
        unsigned port;
        void *timeout_ms = NULL;
        last_failure[0] = 0;
        if (purpose != CURLSOCKTYPE_IPCXN || url_host_port(h, host, &port) < 0) {
                snprintf(last_failure, sizeof last_failure, "a URL nap-connect cannot be asked for");
                return CURL_SOCKET_BAD;
        }
        (void) sym_curl_easy_getinfo(h, CURLINFO_PRIVATE, &timeout_ms);
        int fd = tcp_connect(host, port, (uint64_t) (uintptr_t) timeout_ms * 1000ULL);
        if (fd < 0) {
                failure(host, port, fd);
                errno = -fd;
                return CURL_SOCKET_BAD;
        }
        return fd;
}

static int already_connected(void *clientp, curl_socket_t fd, curlsocktype purpose) {
        return CURL_SOCKOPT_ALREADY_CONNECTED;
}

int nap_curl_connect_through_broker(CURL *h, long connect_timeout_ms) {
        if (!tcp_broker_socket())
                return 0;
        if (sym_curl_easy_setopt(h, CURLOPT_CONNECT_TO, &connect_to_numeric) != CURLE_OK ||
            sym_curl_easy_setopt(h, CURLOPT_PRIVATE, (void *) (uintptr_t) MAX(connect_timeout_ms, 1L)) != CURLE_OK ||
            sym_curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_through_broker) != CURLE_OK ||
            sym_curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, h) != CURLE_OK ||
            sym_curl_easy_setopt(h, CURLOPT_SOCKOPTFUNCTION, already_connected) != CURLE_OK)
                return -EIO;
        return 0;
}
