/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* libcurl's connections in a process without a network of its own
 * (base/tcp.h): made by nap-connect(8), in the host's network. */

#include <curl/curl.h>

#include "base/macro.h"

/* What a handle's connections through nap-connect need: the handle, the
 * connect timeout, and why the last one failed. */
typedef struct NapCurlBroker NapCurlBroker;

/* When tcp_broker_socket() names nap-connect, h's connections are asked of
 * it: curl resolves nothing itself (CURLOPT_CONNECT_TO points every host
 * at a numeric address, so no DNS is tried in a namespace without one;
 * no proxy either), and the socket it would open is nap-connect's
 * connection to the URL's own host and port, made within
 * connect_timeout_ms. *b is allocated on first use and must outlive h's
 * transfers (free it after h). Nothing is changed otherwise. 0, -ENOMEM,
 * or -EIO when libcurl refuses an option. */
int nap_curl_connect_through_broker(CURL *h, NapCurlBroker **b, long connect_timeout_ms);

/* Why b's last connection failed ("connecting to 10.0.0.3 port 2379:
 * Connection refused", or that nap-connect cannot be reached), for the
 * error message in place of curl's, which names the numeric address it
 * was pointed at; NULL when it did not fail, or b is NULL. */
const char *nap_curl_broker_failure(const NapCurlBroker *b);

/* Why a transfer failed below HTTP, for its error message: b's reason
 * when the connection was asked of nap-connect and failed there, else
 * curl's (errbuf, or its text for code). */
const char *nap_curl_failure(const NapCurlBroker *b, CURLcode code, const char *errbuf);

NapCurlBroker *nap_curl_broker_free(NapCurlBroker *b);
DEFINE_TRIVIAL_CLEANUP_FUNC(NapCurlBroker *, nap_curl_broker_free);
