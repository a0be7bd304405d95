/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* lib/json-dump against jansson: whatever json_loadb() accepts (any value,
 * NUL in strings allowed) must serialize to exactly the bytes of
 * json_dumps(JSON_COMPACT | JSON_ENCODE_ANY). The append variant must
 * write the same bytes after a prefix, with a NUL after them, refuse a cap
 * one byte short with -ENOBUFS and leave the prefix alone. */

#include <stdint.h>

#include "base/json-dump.h"
#include "base/macro.h"

static void check_append(const json_t *j, const char *want, size_t len) {
        size_t size = 1, alloc = 1;
        char *data = malloc(1);

        if (!data)
                abort();
        data[0] = 'x';
        if (nap_json_dump_append(j, &data, &size, &alloc, len) != -ENOBUFS || size != 1 || data[0] != 'x')
                abort();
        if (nap_json_dump_append(j, &data, &size, &alloc, len + 1) < 0 || size != len + 1 || alloc <= size ||
            data[0] != 'x' || memcmp(data + 1, want, len + 1) != 0)
                abort();
        free(data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        json_t *j = json_loadb((const char *) data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        char *want, *got = NULL;
        size_t len = 0;

        if (!j)
                return 0;
        want = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!want || nap_json_dump(j, &got, &len) < 0 || len != strlen(want) || memcmp(got, want, len + 1) != 0)
                abort();
        check_append(j, want, len);
        free(got);
        free(want);
        json_decref(j);
        return 0;
}
