/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* SHA-256 (FIPS 180-4), for ssh key fingerprints (lib/model/authkeys.h), and
 * HMAC-SHA-256 (RFC 2104) for nap-web's tokens and session cookies
 * (lib/model/web-auth.h). None of nap's dependencies exports one: libgit2
 * 1.5's hashing is internal, libsystemd 252 has no public hash API,
 * libcurl hides its own. SHA-256 has no data-dependent branches or table
 * lookups, so hashing a secret leaks nothing through timing; the state is
 * not zeroed after use. */

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE 32

typedef struct Sha256 {
        uint32_t h[8];
        uint64_t length;    /* bytes hashed so far */
        uint8_t buf[64];
        size_t buf_len;
} Sha256;

void sha256_init(Sha256 *s);
void sha256_update(Sha256 *s, const void *p, size_t n);
void sha256_final(Sha256 *s, uint8_t out[static SHA256_DIGEST_SIZE]);

/* The three in one. */
void sha256(const void *p, size_t n, uint8_t out[static SHA256_DIGEST_SIZE]);

/* HMAC-SHA-256 (RFC 2104) of p with key (any length: a key longer than the
 * block, 64 bytes, is hashed first). nap-web signs its cookies with it,
 * the queue its callbacks (lib/cluster/callback.h). */
void hmac_sha256(const void *key, size_t key_size, const void *p, size_t n, uint8_t out[static SHA256_DIGEST_SIZE]);
