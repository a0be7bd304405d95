/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* lib/json-parse against jansson: for any input, nap_json_parse() and
 * json_loadb(JSON_REJECT_DUPLICATES) must agree on accepting it, and what
 * they accept must be the same tree, node by node: the same type (json_equal()
 * already tells an integer from a real, but not -0.0 from 0.0), integers
 * equal, reals bit for bit, strings byte for byte, keys in the same order.
 * Out of memory aside, our refusals are -EBADMSG. */

#include <stdint.h>

#include "../json-test-util.h"
#include "base/json-parse.h"
#include "base/macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        /* A copy of exactly size bytes, so that ASan sees any read past it. */
        char *buf = malloc(MAX(size, (size_t) 1));
        json_t *want, *got = NULL;
        int r;

        if (!buf)
                abort();
        if (size > 0)
                memcpy(buf, data, size);
        want = json_loadb(buf, size, JSON_REJECT_DUPLICATES, NULL);
        r = nap_json_parse(buf, size, &got);
        if (!want != (r < 0) || (r < 0 && r != -EBADMSG) || (want && (!json_equal(want, got) || !json_same(want, got))))
                abort();
        json_decref(want);
        json_decref(got);
        free(buf);
        return 0;
}
