/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/base64.h"
#include "base/macro.h"

static const char alphabet[64] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_encode(const void *p, size_t size, char **ret) {
        const uint8_t *in = p;
        char *out, *o;

        assert(p || size == 0);
        assert(ret);

        if (size > SIZE_MAX / 4 * 3 - 3)
                return -ENOMEM;
        out = o = malloc((size + 2) / 3 * 4 + 1);
        if (!out)
                return -ENOMEM;

        for (size_t i = 0; i < size; i += 3) {
                uint32_t v = (uint32_t) in[i] << 16;
                size_t n = MIN(size - i, (size_t) 3);

                if (n > 1)
                        v |= (uint32_t) in[i + 1] << 8;
                if (n > 2)
                        v |= in[i + 2];
                *o++ = alphabet[(v >> 18) & 63];
                *o++ = alphabet[(v >> 12) & 63];
                *o++ = n > 1 ? alphabet[(v >> 6) & 63] : '=';
                *o++ = n > 2 ? alphabet[v & 63] : '=';
        }
        *o = 0;
        *ret = out;
        return 0;
}

static int unbase64_char(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -EINVAL;
}

/* Strips up to two '=' and checks what is left can be a base64 body. */
static int base64_body_length(const char *text, size_t len, size_t *ret) {
        size_t pad = 0;

        while (len > 0 && text[len - 1] == '=' && pad < 2) {
                len--;
                pad++;
        }
        if (len % 4 == 1)
                return -EINVAL;
        if (pad > 0 && (len + pad) % 4 != 0)
                return -EINVAL;
        *ret = len;
        return 0;
}

int base64_decode(const char *text, size_t len, char **ret, size_t *ret_size) {
        uint32_t acc = 0;
        unsigned bits = 0;
        size_t n = 0;
        char *out;
        int r;

        assert(text || len == 0);
        assert(ret);
        assert(ret_size);

        r = base64_body_length(text, len, &len);
        if (r < 0)
                return r;
        out = malloc(len / 4 * 3 + 3);
        if (!out)
                return -ENOMEM;

        for (size_t i = 0; i < len; i++) {
                int v = unbase64_char(text[i]);
                if (v < 0) {
                        free(out);
                        return v;
                }
                acc = (acc << 6) | (uint32_t) v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[n++] = (char) ((acc >> bits) & 0xff);
                }
        }
        /* Leftover bits must be zero, so each byte string has one encoding. */
        if ((acc & ((1u << bits) - 1)) != 0) {
                free(out);
                return -EINVAL;
        }
        out[n] = 0;
        *ret = out;
        *ret_size = n;
        return 0;
}
