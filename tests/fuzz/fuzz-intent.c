/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Intent record parser (what crash recovery reads back): never crashes,
 * leaks or reads past size; a refusal has a message and leaves nothing
 * allocated; an accepted record formats to text that parses back and
 * formats to the same bytes. */

#include <stdint.h>
#include <stdlib.h>

#include "model/intent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        NapIntent in, back;
        NapError e = NAP_ERROR_NULL;

        if (nap_intent_parse((const char *) data, size, &in, &e) < 0) {
                if (in.previous_url || in.instances || in.running || !*e.message)
                        abort();
                return 0;
        }
        if (in.operation < 0 || in.operation >= _NAP_INTENT_OPERATION_MAX ||
            (in.request[0] && !nap_request_id_is_valid(in.request)))
                abort();
        _cleanup_free_ char *text = nap_intent_format(&in), *again = NULL;
        nap_intent_done(&in);
        if (!text)
                return 0; /* OOM */
        if (nap_intent_parse(text, strlen(text), &back, &e) < 0)
                abort();
        again = nap_intent_format(&back);
        nap_intent_done(&back);
        if (again && strcmp(text, again) != 0)
                abort();
        return 0;
}
