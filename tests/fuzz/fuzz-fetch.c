/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* nap-fetch's protocol lines (lib/clients/fetch-worker.h): the request
 * nap-fetch reads and the reply nap-managerd reads from the less
 * privileged worker. Never crashes, leaks or reads past size; a request
 * accepted has a URL and a valid op, a refusal says why; a reply gives a
 * valid commit or an error with a message. */

#include <stdint.h>
#include <stdlib.h>

#include "clients/fetch-worker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        NapFetchRequest q;
        NapError e = NAP_ERROR_NULL;
        char commit[NAP_COMMIT_HEX_LEN + 1] = "";

        if (nap_fetch_request_parse((const char *) data, size, &q, &e) >= 0) {
                if (!q.url || q.op < 0 || q.op >= _NAP_FETCH_OP_MAX || (q.commit[0] && !nap_commit_is_valid(q.commit)))
                        abort();
        } else if (q.url || !*e.message)
                abort();
        nap_fetch_request_done(&q);

        e = NAP_ERROR_NULL;
        if (nap_fetch_reply_parse((const char *) data, size, commit, &e) >= 0) {
                if (!nap_commit_is_valid(commit))
                        abort();
        } else if (e.kind <= NAP_ERROR_NONE || strchr(e.message, '\n'))
                abort();
        return 0;
}
