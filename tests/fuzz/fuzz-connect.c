/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* nap-connect's protocol lines (lib/base/tcp.h): the request nap-connect
 * reads from its socket and the reply nap-managerd reads back. Never
 * crashes, leaks or reads past size; an accepted request has a valid host
 * and port in range and, written out as the caller writes it, is the same
 * line; a reply is 1, 0 or a negative errno within range. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/tcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char line[TCP_BROKER_LINE_MAX + 16], again[TCP_BROKER_LINE_MAX + 16];
        TcpBrokerRequest q;

        if (size >= sizeof line)
                return 0;
        memcpy(line, data, size);
        line[size] = 0;
        if (tcp_broker_request_parse(line, &q) >= 0) {
                if (q.port < 1 || q.port > 65535)
                        abort();
                if (q.op == TCP_BROKER_CONNECT) {
                        if (!tcp_host_is_valid(q.host) || q.timeout_ms < 1 || q.timeout_ms > TCP_BROKER_TIMEOUT_MS_MAX)
                                abort();
                        snprintf(again, sizeof again, "connect %s %u %u", q.host, q.port, q.timeout_ms);
                } else
                        snprintf(again, sizeof again, "port-free %u", q.port);
                if (strcmp(again, line) != 0)
                        abort();
        }
        int r = tcp_broker_reply_parse(line);
        if (r > 1 || (r < 0 && r < -4095))
                abort();
        return 0;
}
