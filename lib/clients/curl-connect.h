/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* libcurl's connections in a process without a network of its own
 * (base/tcp.h): made by nap-connect(8), in the host's network. */

#include <curl/curl.h>

/* When tcp_broker_socket() names nap-connect, h's connections are asked of
 * it: curl resolves nothing itself (CURLOPT_CONNECT_TO points every host
 * at a numeric address, so no DNS is tried in a namespace without one),
 * and the socket it would open is nap-connect's connection to the URL's
 * own host and port, made within connect_timeout_ms. Uses CURLOPT_PRIVATE
 * for the timeout. Nothing is changed otherwise. 0, or -EIO when libcurl
 * refuses an option. */
int nap_curl_connect_through_broker(CURL *h, long connect_timeout_ms);

/* Why the last connection through nap-connect in this thread failed
 * ("connecting to 10.0.0.3 port 2379: Connection refused", or that
 * nap-connect cannot be reached), for the error message in place of
 * curl's, which names the numeric address it was pointed at; NULL when
 * the last one did not fail. */
const char *nap_curl_connect_failure(void);
