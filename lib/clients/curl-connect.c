/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dlopen.h"
#include "base/tcp.h"
#include "clients/curl-connect.h"

/* libcurl's own when none is set (CURLOPT_CONNECTTIMEOUT_MS 0). */
#define CURL_CONNECT_TIMEOUT_MS_DEFAULT 300000L

struct NapCurlBroker {
        CURL *handle;
        uint64_t timeout_usec;
        char failure[TCP_HOST_MAX + 256];
};

/* Any host, any port: to 127.0.0.1, the port kept. The address is never
 * used (open_through_broker() ignores it); it only spares a DNS lookup. */
static struct curl_slist connect_to_numeric = { .data = (char *) "::127.0.0.1:" };

DEFINE_TRIVIAL_CLEANUP_FUNC(CURLU *, sym_curl_url_cleanup);

const char *nap_curl_broker_failure(const NapCurlBroker *b) {
        return b && b->failure[0] ? b->failure : NULL;
}

const char *nap_curl_failure(const NapCurlBroker *b, CURLcode code, const char *errbuf) {
        if (code == CURLE_COULDNT_CONNECT && nap_curl_broker_failure(b))
                return nap_curl_broker_failure(b);
        return *errbuf ? errbuf : sym_curl_easy_strerror(code);
}

NapCurlBroker *nap_curl_broker_free(NapCurlBroker *b) {
        free(b);
        return NULL;
}

/* host (without the brackets of an IPv6 address, with its zone) and port
 * into host/ret_port; -EINVAL for what nap-connect cannot be asked. */
static int host_port_of(const char *name, const char *zone, const char *port, char host[static TCP_HOST_MAX + 1],
                        unsigned *ret_port) {
        size_t n = strlen(name);
        const char *start = name;
        char *end = NULL;
        if (n >= 2 && name[0] == '[' && name[n - 1] == ']')
                start++, n -= 2;
        unsigned long p = strtoul(port, &end, 10);
        if (n == 0 || !end || *end || p == 0 || p > 65535 ||
            snprintf(host, TCP_HOST_MAX + 1, "%.*s%s%s", (int) n, start, zone ? "%" : "", zone ?: "") > (int) TCP_HOST_MAX)
                return -EINVAL;
        *ret_port = (unsigned) p;
        return 0;
}

/* The host and port of the URL h is fetching. */
static int url_host_port(CURL *h, char host[static TCP_HOST_MAX + 1], unsigned *ret_port) {
        _cleanup_(sym_curl_url_cleanupp) CURLU *u = sym_curl_url();
        char *url = NULL, *name = NULL, *zone = NULL, *port = NULL;
        int r = -EINVAL;
        if (u && sym_curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK && url &&
            sym_curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
            sym_curl_url_get(u, CURLUPART_HOST, &name, 0) == CURLUE_OK &&
            sym_curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
                (void) sym_curl_url_get(u, CURLUPART_ZONEID, &zone, 0);
                r = host_port_of(name, zone, port, host, ret_port);
        }
        sym_curl_free(name);
        sym_curl_free(zone);
        sym_curl_free(port);
        return r;
}

static curl_socket_t open_through_broker(void *clientp, curlsocktype purpose, struct curl_sockaddr *address) {
        NapCurlBroker *b = clientp;
        char host[TCP_HOST_MAX + 1];
        unsigned port;
        b->failure[0] = 0;
        if (purpose != CURLSOCKTYPE_IPCXN || url_host_port(b->handle, host, &port) < 0) {
                snprintf(b->failure, sizeof b->failure, "nap-connect cannot be asked for this URL's host");
                return CURL_SOCKET_BAD;
        }
        int fd = tcp_connect(host, port, b->timeout_usec);
        if (fd < 0) {
                snprintf(b->failure, sizeof b->failure, "connecting to %s port %u: %s", host, port, tcp_strerror(fd));
                errno = -fd;
                return CURL_SOCKET_BAD;
        }
        return fd;
}

static int already_connected(void *clientp, curl_socket_t fd, curlsocktype purpose) {
        return CURL_SOCKOPT_ALREADY_CONNECTED;
}

int nap_curl_connect_through_broker(CURL *h, NapCurlBroker **b, long connect_timeout_ms) {
        if (!tcp_broker_socket())
                return 0;
        if (!*b && !(*b = calloc(1, sizeof **b)))
                return -ENOMEM;
        **b = (NapCurlBroker) { .handle = h, .timeout_usec = (uint64_t) (connect_timeout_ms > 0 ? connect_timeout_ms : CURL_CONNECT_TIMEOUT_MS_DEFAULT) * 1000ULL };
        if (sym_curl_easy_setopt(h, CURLOPT_CONNECT_TO, &connect_to_numeric) != CURLE_OK ||
            sym_curl_easy_setopt(h, CURLOPT_PROXY, "") != CURLE_OK ||
            sym_curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_through_broker) != CURLE_OK ||
            sym_curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, *b) != CURLE_OK ||
            sym_curl_easy_setopt(h, CURLOPT_SOCKOPTFUNCTION, already_connected) != CURLE_OK)
                return -EIO;
        return 0;
}
