/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* SHA-256 (FIPS 180-4), for ssh key fingerprints (lib/model/authkeys.h). None of
 * nap's dependencies exports one: libgit2 1.5's hashing is internal,
 * libsystemd 252 has no public hash API, libcurl hides its own. Not for
 * secrets: no constant-time concerns, no zeroing of state. */

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

/* HMAC-SHA256 (RFC 2104): the queue signs the callbacks it delivers with
 * a per-owner secret (lib/cluster/callback.h). A key longer than the
 * block (64 bytes) is hashed first, as RFC 2104 says. */
void hmac_sha256(const void *key, size_t key_size, const void *p, size_t n, uint8_t out[static SHA256_DIGEST_SIZE]);
