/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "base/macro.h"
#include "base/hex.h"
#include "base/sha256.h"

static const char *hex(const uint8_t d[static SHA256_DIGEST_SIZE], char buf[static 2 * SHA256_DIGEST_SIZE + 1]) {
        return hex_encode(d, SHA256_DIGEST_SIZE, buf);
}

static void assert_digest(const void *p, size_t n, const char *expected) {
        uint8_t d[SHA256_DIGEST_SIZE];
        char b[2 * SHA256_DIGEST_SIZE + 1];
        sha256(p, n, d);
        assert_string_equal(hex(d, b), expected);
}

/* FIPS 180-4 examples (NIST CSRC "SHA256.pdf", "SHA2_Additional.pdf"). */
static void test_nist_vectors(void **state) {
        assert_digest("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_digest("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_digest(two, strlen(two), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

        static char million[1000000];
        memset(million, 'a', sizeof million);
        assert_digest(million, sizeof million, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Lengths around the padding boundaries (55/56 bytes: the length fits in
 * the last block or needs another one), checked against Python's hashlib. */
static void test_padding_boundaries(void **state) {
        static const struct {
                size_t n;
                const char *digest;
        } t[] = {
                { 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318" },
                { 56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a" },
                { 63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34" },
                { 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb" },
                { 65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0" },
                { 119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb" },
                { 120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c" },
                { 128, "6836cf13bac400e9105071cd6af47084dfacad4e5e302c94bfed24e013afb73e" },
        };
        char a[128];
        memset(a, 'a', sizeof a);
        for (size_t i = 0; i < ELEMENTSOF(t); i++)
                assert_digest(a, t[i].n, t[i].digest);
}

/* Any split of the input into updates gives the one-shot digest. */
static void test_incremental(void **state) {
        uint8_t msg[1024], whole[SHA256_DIGEST_SIZE], parts[SHA256_DIGEST_SIZE];
        char b[2 * SHA256_DIGEST_SIZE + 1];
        for (size_t i = 0; i < sizeof msg; i++)
                msg[i] = (uint8_t) i;
        sha256(msg, sizeof msg, whole);
        assert_string_equal(hex(whole, b), "785b0751fc2c53dc14a4ce3d800e69ef9ce1009eb327ccf458afe09c242c26c9");

        for (size_t step = 1; step <= 130; step++) {
                Sha256 s;
                sha256_init(&s);
                for (size_t off = 0; off < sizeof msg; off += step)
                        sha256_update(&s, msg + off, MIN(step, sizeof msg - off));
                sha256_final(&s, parts);
                assert_memory_equal(whole, parts, SHA256_DIGEST_SIZE);
        }
        /* Empty updates change nothing. */
        Sha256 s;
        sha256_init(&s);
        sha256_update(&s, msg, 0);
        sha256_update(&s, msg, sizeof msg);
        sha256_update(&s, NULL, 0);
        sha256_final(&s, parts);
        assert_memory_equal(whole, parts, SHA256_DIGEST_SIZE);
}

/* RFC 4231 test cases 1, 2, 3, 4, 6 and 7 (case 5 truncates the output). */
static void assert_hmac(const char *key_hex, const void *data, size_t n, const char *expected) {
        uint8_t key[256], d[SHA256_DIGEST_SIZE];
        char b[2 * SHA256_DIGEST_SIZE + 1];
        size_t k = strlen(key_hex) / 2;
        for (size_t i = 0; i < k; i++)
                assert_int_equal(sscanf(key_hex + 2 * i, "%2hhx", key + i), 1);
        hmac_sha256(key, k, data, n, d);
        assert_string_equal(hex(d, b), expected);
}

static void test_hmac_rfc4231(void **state) {
        uint8_t dd[50], cd[50];
        char aa[131 * 2 + 1] = "";
        memset(dd, 0xdd, sizeof dd);
        memset(cd, 0xcd, sizeof cd);
        for (size_t i = 0; i < 131; i++)
                memcpy(aa + 2 * i, "aa", 3);
        assert_hmac("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "Hi There", 8,
                    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
        assert_hmac("4a656665", "what do ya want for nothing?", 28,
                    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert_hmac("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", dd, sizeof dd,
                    "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
        assert_hmac("0102030405060708090a0b0c0d0e0f10111213141516171819", cd, sizeof cd,
                    "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
        assert_hmac(aa, "Test Using Larger Than Block-Size Key - Hash Key First", 54,
                    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
        const char *m7 = "This is a test using a larger than block-size key and a larger than block-size data. "
                         "The key needs to be hashed before being used by the HMAC algorithm.";
        assert_hmac(aa, m7, strlen(m7), "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_nist_vectors),
                cmocka_unit_test(test_padding_boundaries),
                cmocka_unit_test(test_incremental),
                cmocka_unit_test(test_hmac_rfc4231),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
