/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Lower-case hex of bytes: digests in keys and signatures, random ids and
 * secrets. */

#include <stddef.h>

/* Writes the 2 × n digits of the n bytes at p and a NUL to out (which
 * must hold 2 × n + 1), and returns out. */
char *hex_encode(const void *p, size_t n, char *out);
