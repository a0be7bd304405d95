/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* lib/json-parse against jansson: for any input, nap_json_parse() and
 * json_loadb(JSON_REJECT_DUPLICATES) must agree on accepting it, and what
 * they accept must be the same tree, node by node: the same type (json_equal()
 * already tells an integer from a real, but not -0.0 from 0.0), integers
 * equal, reals bit for bit, strings byte for byte, keys in the same order.
 * Out of memory aside, our refusals are -EBADMSG. */

#include <stdint.h>

#include "json-parse.h"
#include "macro.h"

static bool same(json_t *a, json_t *b) {
        double x, y;

        if (json_typeof(a) != json_typeof(b))
                return false;
        switch (json_typeof(a)) {
        case JSON_OBJECT: {
                void *i = json_object_iter(a), *k = json_object_iter(b);
                if (json_object_size(a) != json_object_size(b))
                        return false;
                for (; i && k; i = json_object_iter_next(a, i), k = json_object_iter_next(b, k))
                        if (json_object_iter_key_len(i) != json_object_iter_key_len(k) ||
                            memcmp(json_object_iter_key(i), json_object_iter_key(k), json_object_iter_key_len(i)) != 0 ||
                            !same(json_object_iter_value(i), json_object_iter_value(k)))
                                return false;
                return !i && !k;
        }
        case JSON_ARRAY:
                if (json_array_size(a) != json_array_size(b))
                        return false;
                for (size_t i = 0; i < json_array_size(a); i++)
                        if (!same(json_array_get(a, i), json_array_get(b, i)))
                                return false;
                return true;
        case JSON_STRING:
                return json_string_length(a) == json_string_length(b) &&
                        memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
        case JSON_INTEGER:
                return json_integer_value(a) == json_integer_value(b);
        case JSON_REAL:
                x = json_real_value(a);
                y = json_real_value(b);
                return memcmp(&x, &y, sizeof x) == 0;
        default:
                return true;
        }
}

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
        if (!want != (r < 0) || (r < 0 && r != -EBADMSG) || (want && (!json_equal(want, got) || !same(want, got))))
                abort();
        json_decref(want);
        json_decref(got);
        free(buf);
        return 0;
}
