/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* What nap-cluster-gate reads from another host after the TLS handshake
 * (lib/ops/forward.h): the header asserting a uid, and the call. The first
 * byte picks which; the rest is the message, as it arrives (NUL-terminated
 * there: here cut at the first NUL). A call is checked for uids 0 and
 * 65534: the check must never crash, whatever the uid may do. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/config.h"
#include "ops/forward.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static NapConfig *config = NULL;
        char node[NAP_NODE_NAME_MAX + 1];
        const NapMethod *m = NULL;
        uid_t uid;

        if (size < 1)
                return 0;
        if (!config && nap_config_new_default(&config) < 0)
                abort();
        char *text = strndup((const char *) data + 1, size - 1);
        if (!text)
                return 0;
        if (data[0] & 1) {
                if (nap_forward_header_parse(text, &uid, node, NULL) >= 0 &&
                    (uid == (uid_t) -1 || strlen(node) > NAP_NODE_NAME_MAX || nap_node_name_check(node, NULL) < 0))
                        abort();
        } else {
                for (uid_t u = 0; u < 2; u++)
                        if (nap_forward_call_check(config, text, u ? 65534 : 0, &m, NULL) >= 0 &&
                            !nap_method_forwards(m))
                                abort();
        }
        free(text);
        return 0;
}
