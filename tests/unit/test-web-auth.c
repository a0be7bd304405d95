/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* nap-web's tokens and sessions (lib/model/web-auth.h) on a real STATE
 * tree under /tmp. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "base/fileio.h"
#include "base/sha256.h"
#include "model/state.h"
#include "model/web-auth.h"
#include "test-util.h"

typedef TestState Fixture;

#define NOW 1800000000u

static void test_token_stored_hashed(void **state) {
        Fixture *f = *state;
        char token[NAP_WEB_TOKEN_MAX], user[NAP_USER_MAX + 1], want[65];
        uint8_t d[SHA256_DIGEST_SIZE];
        _cleanup_free_ char *path = nap_state_web_token_file(f->config, "alice"), *text = NULL;
        struct stat st;

        assert_int_equal(nap_web_token_create(f->config, "alice", token, NULL), 0);
        assert_int_equal(strlen(token), strlen("alice.") + 64);
        assert_true(strncmp(token, "alice.", 6) == 0);
        assert_int_equal(read_full_file(path, 4096, &text, NULL), 0);
        sha256(token, strlen(token), d);
        for (size_t i = 0; i < sizeof d; i++)
                snprintf(want + 2 * i, 3, "%02x", d[i]);
        assert_true(strncmp(text, want, 64) == 0);
        assert_null(strstr(text, token + 6)); /* the secret itself is nowhere */
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(nap_web_token_check(f->config, token, user, NULL), 0);
        assert_string_equal(user, "alice");
}

static void assert_refused(const NapConfig *c, const char *token) {
        char user[NAP_USER_MAX + 1];
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_web_token_check(c, token, user, &e), -EACCES);
        assert_int_equal(e.kind, NAP_ERROR_PERMISSION_DENIED);
}

static void test_token_refused(void **state) {
        Fixture *f = *state;
        char a[NAP_WEB_TOKEN_MAX], b[NAP_WEB_TOKEN_MAX], other[NAP_WEB_TOKEN_MAX];
        assert_int_equal(nap_web_token_create(f->config, "alice", a, NULL), 0);
        assert_int_equal(nap_web_token_create(f->config, "bob", b, NULL), 0);

        snprintf(other, sizeof other, "bob.%s", a + 6); /* alice's secret as bob's */
        assert_refused(f->config, other);
        snprintf(other, sizeof other, "%s", a);
        other[10] = other[10] == '0' ? '1' : '0';
        assert_refused(f->config, other);
        assert_refused(f->config, "");
        assert_refused(f->config, "alice");
        assert_refused(f->config, "alice.");
        assert_refused(f->config, "carol.0000000000000000000000000000000000000000000000000000000000000000");
        assert_refused(f->config, "../etc.0000000000000000000000000000000000000000000000000000000000000000");
        snprintf(other, sizeof other, "ALICE.%s", a + 6);
        assert_refused(f->config, other);

        /* A new token replaces the old one; revoking removes it. */
        char a2[NAP_WEB_TOKEN_MAX], user[NAP_USER_MAX + 1];
        assert_int_equal(nap_web_token_create(f->config, "alice", a2, NULL), 0);
        assert_refused(f->config, a);
        assert_int_equal(nap_web_token_check(f->config, a2, user, NULL), 0);
        assert_int_equal(nap_web_token_revoke(f->config, "alice", NULL), 0);
        assert_refused(f->config, a2);
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_web_token_revoke(f->config, "alice", &e), -ENOENT);
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_web_token_create(f->config, "Bad_Name", a, &e), -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_NAME);
}

static void test_key_kept(void **state) {
        Fixture *f = *state;
        NapWebKey k1, k2;
        assert_int_equal(nap_web_key_load(f->config, &k1, NULL), 0);
        assert_int_equal(nap_web_key_load(f->config, &k2, NULL), 0);
        assert_memory_equal(k1.bytes, k2.bytes, sizeof k1.bytes);
}

static void assert_session_refused(const NapWebKey *k, const NapConfig *c, const char *value, uint64_t now) {
        char user[NAP_USER_MAX + 1];
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_web_session_check(k, c, value, now, user, &e), -EACCES);
        assert_int_equal(e.kind, NAP_ERROR_PERMISSION_DENIED);
}

static void test_session(void **state) {
        Fixture *f = *state;
        NapWebKey k, other_key;
        char token[NAP_WEB_TOKEN_MAX], s[NAP_WEB_SESSION_MAX], forged[NAP_WEB_SESSION_MAX + 8], user[NAP_USER_MAX + 1];
        assert_int_equal(nap_web_key_load(f->config, &k, NULL), 0);
        memset(other_key.bytes, 7, sizeof other_key.bytes);
        assert_int_equal(nap_web_token_create(f->config, "alice", token, NULL), 0);
        assert_int_equal(nap_web_token_create(f->config, "bob", token, NULL), 0);
        assert_int_equal(nap_web_session_make(&k, f->config, "alice", NOW + 60, s, NULL), 0);

        assert_int_equal(nap_web_session_check(&k, f->config, s, NOW, user, NULL), 0);
        assert_string_equal(user, "alice");
        assert_session_refused(&k, f->config, s, NOW + 60); /* expired */
        assert_session_refused(&other_key, f->config, s, NOW);
        snprintf(forged, sizeof forged, "bob%s", s + 5); /* alice's MAC on bob's name */
        assert_session_refused(&k, f->config, forged, NOW);
        snprintf(forged, sizeof forged, "alice.%u%s", NOW + 6000, strrchr(s, '.')); /* a later expiry */
        assert_session_refused(&k, f->config, forged, NOW);
        assert_session_refused(&k, f->config, "", NOW);
        assert_session_refused(&k, f->config, "alice.1.", NOW);

        /* A new token ends the sessions of the old one. */
        assert_int_equal(nap_web_token_create(f->config, "alice", token, NULL), 0);
        assert_session_refused(&k, f->config, s, NOW);
}

static void test_session_parse(void **state) {
        NapWebSession s;
        const char *mac = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        char v[256];
        snprintf(v, sizeof v, "alice.1800000000.%s", mac);
        assert_int_equal(nap_web_session_parse(v, &s), 0);
        assert_string_equal(s.user, "alice");
        assert_int_equal(s.expires, 1800000000u);
        assert_string_equal(s.mac, mac);
        const char *bad[] = { "", ".", "alice..", "alice.0001.", "alice.x1.", "Alice.1.", "alice.1.ABCDEF",
                              "alice.99999999999999999999999." };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                snprintf(v, sizeof v, "%s%s", bad[i], strchr(bad[i], '.') && bad[i][strlen(bad[i]) - 1] == '.' ? mac : "");
                assert_int_equal(nap_web_session_parse(v, &s), -EINVAL);
        }
        snprintf(v, sizeof v, "alice.1.%sff", mac);
        assert_int_equal(nap_web_session_parse(v, &s), -EINVAL);
}

static void test_csrf(void **state) {
        NapWebKey k;
        char a[NAP_WEB_CSRF_MAX], b[NAP_WEB_CSRF_MAX];
        memset(k.bytes, 1, sizeof k.bytes);
        nap_web_csrf(&k, "alice.1.x", a);
        nap_web_csrf(&k, "bob.1.x", b);
        assert_int_equal(strlen(a), 64);
        assert_string_not_equal(a, b);
        assert_true(nap_web_csrf_valid(&k, "alice.1.x", a));
        assert_false(nap_web_csrf_valid(&k, "alice.1.x", b));
        assert_false(nap_web_csrf_valid(&k, "alice.1.x", NULL));
        assert_false(nap_web_csrf_valid(&k, "alice.1.x", ""));
        a[63] = a[63] == '0' ? '1' : '0';
        assert_false(nap_web_csrf_valid(&k, "alice.1.x", a));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_token_stored_hashed, test_state_setup, test_state_teardown),
                cmocka_unit_test_setup_teardown(test_token_refused, test_state_setup, test_state_teardown),
                cmocka_unit_test_setup_teardown(test_key_kept, test_state_setup, test_state_teardown),
                cmocka_unit_test_setup_teardown(test_session, test_state_setup, test_state_teardown),
                cmocka_unit_test(test_session_parse),
                cmocka_unit_test(test_csrf),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
