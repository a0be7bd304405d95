/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Standard base64 (RFC 4648 §4, the alphabet with '+' and '/'), as Go's
 * encoding/json uses for []byte fields, which is how etcd's JSON gateway
 * carries keys and values. */

#include <stddef.h>

/* Encodes size bytes of p with '=' padding. *ret is malloc'ed and
 * NUL-terminated. Returns 0 or -ENOMEM. */
int base64_encode(const void *p, size_t size, char **ret);

/* Decodes len characters of text; padding is optional, whitespace and any
 * other character are refused (-EINVAL), as are non-zero bits after the
 * last full byte. *ret is malloc'ed, NUL-terminated (so text values can be
 * used as C strings) and *ret_size excludes that NUL. */
int base64_decode(const char *text, size_t len, char **ret, size_t *ret_size);
