/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The "k=v,k=v" parameter string: never crashes, leaks or reads past
 * size. What it accepts is bounded and clean (valid names, no control
 * characters), and escaping the result again parses back to the same
 * keys and values in the same order. */

#include <stdint.h>

#include "model/profile.h"

static void check(const NapParams *p) {
        size_t n = nap_params_size(p);
        if (n > NAP_PARAMS_MAX || nap_params_key(p, n) || nap_params_value(p, n))
                abort();
        for (size_t i = 0; i < n; i++) {
                const char *k = nap_params_key(p, i), *v = nap_params_value(p, i);
                if (!k || !v || !*k || strlen(k) > NAP_PARAM_NAME_MAX || streq(k, "port"))
                        abort();
                if (strlen(v) > NAP_PARAM_VALUE_MAX || nap_params_get(p, k) != v)
                        abort();
                for (const char *c = v; *c; c++)
                        if ((unsigned char) *c < 0x20 || *c == 0x7f)
                                abort();
        }
}

/* The string form again: "\," and "\\" escaped. */
static char *format(const NapParams *p, size_t *ret_len) {
        size_t n = 1;
        for (size_t i = 0; i < nap_params_size(p); i++)
                n += strlen(nap_params_key(p, i)) + 2 * strlen(nap_params_value(p, i)) + 2;
        char *s = malloc(n), *o = s;
        if (!s)
                return NULL;
        for (size_t i = 0; i < nap_params_size(p); i++) {
                if (i > 0)
                        *o++ = ',';
                o = stpcpy(o, nap_params_key(p, i));
                *o++ = '=';
                for (const char *c = nap_params_value(p, i); *c; c++) {
                        if (*c == ',' || *c == '\\')
                                *o++ = '\\';
                        *o++ = *c;
                }
        }
        *o = 0;
        *ret_len = o - s;
        return s;
}

static void check_round_trip(const NapParams *p) {
        size_t len;
        _cleanup_free_ char *s = format(p, &len);
        if (!s)
                return;
        _cleanup_(nap_params_freep) NapParams *q = NULL;
        NapError e = NAP_ERROR_NULL;
        int r = nap_params_parse(s, len, &q, &e);
        if (r == -ENOMEM)
                return;
        if (r < 0 || nap_params_size(q) != nap_params_size(p))
                abort();
        for (size_t i = 0; i < nap_params_size(p); i++)
                if (!streq(nap_params_key(p, i), nap_params_key(q, i)) ||
                    !streq(nap_params_value(p, i), nap_params_value(q, i)))
                        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(nap_params_freep) NapParams *p = NULL;
        NapError e = NAP_ERROR_NULL;

        int r = nap_params_parse((const char *) data, size, &p, &e);
        if (r < 0) {
                if (r != -ENOMEM && (e.kind != NAP_ERROR_INVALID_PARAMETER || !e.message[0] || p))
                        abort();
                return 0;
        }
        check(p);
        check_round_trip(p);
        return 0;
}
