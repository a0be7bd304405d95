/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pwd.h>

#include "model/auth.h"

/* The tests use the machine's own user database: root (uid 0) and
 * "nobody" exist on every Debian system; a uid without an entry is
 * searched for. Where "nobody" is missing the tests that need it skip. */

static uid_t nobody_uid(void) {
        struct passwd *pw = getpwnam("nobody");
        if (!pw || pw->pw_uid == 0)
                skip();
        return pw->pw_uid;
}

static uid_t unnamed_uid(void) {
        for (uid_t u = 59999; u > 1000; u--)
                if (!getpwuid(u))
                        return u;
        skip();
        return 0;
}

static void test_access_strings(void **state) {
        for (int a = 0; a < _NAP_ACCESS_MAX; a++)
                assert_non_null(nap_access_to_string(a));
        assert_string_equal(nap_access_to_string(NAP_ACCESS_READ), "read");
        assert_string_equal(nap_access_to_string(NAP_ACCESS_WRITE), "write");
        assert_null(nap_access_to_string(_NAP_ACCESS_MAX));
        assert_null(nap_access_to_string(-1));
}

static void test_uid_name(void **state) {
        char buf[64], tiny[3];
        assert_int_equal(nap_auth_uid_name(0, buf, sizeof buf), 0);
        assert_string_equal(buf, "root");
        assert_int_equal(nap_auth_uid_name(0, tiny, sizeof tiny), -ENAMETOOLONG);
        assert_int_equal(nap_auth_uid_name(unnamed_uid(), buf, sizeof buf), -ENOENT);
}

static void test_root_may_do_anything(void **state) {
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_auth_check_user(0, "alice", NAP_ACCESS_WRITE, &e), 0);
        assert_int_equal(nap_auth_check_user(0, "alice", NAP_ACCESS_READ, &e), 0);
        assert_int_equal(nap_auth_check_service(0, "bob_web", NAP_ACCESS_WRITE, &e), 0);
        assert_int_equal(nap_auth_check_instance(0, "bob_web_common@7", NAP_ACCESS_WRITE, &e), 0);
        assert_int_equal(nap_auth_check_instance(0, "bob_web_common@7.service", NAP_ACCESS_READ, &e), 0);
        assert_false(nap_error_is_set(&e));
}

static void test_owner_may_act(void **state) {
        uid_t u = nobody_uid();
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_auth_check_user(u, "nobody", NAP_ACCESS_WRITE, &e), 0);
        assert_int_equal(nap_auth_check_user(u, "nobody", NAP_ACCESS_READ, &e), 0);
        assert_int_equal(nap_auth_check_service(u, "nobody_web", NAP_ACCESS_WRITE, &e), 0);
        assert_int_equal(nap_auth_check_instance(u, "nobody_web_common@12", NAP_ACCESS_WRITE, &e), 0);
        assert_false(nap_error_is_set(&e));
}

static void assert_denied(int r, const NapError *e, const char *needle) {
        assert_int_equal(r, -EPERM);
        assert_int_equal(e->kind, NAP_ERROR_PERMISSION_DENIED);
        assert_non_null(strstr(e->message, needle));
}

static void test_others_are_refused(void **state) {
        uid_t u = nobody_uid();
        NapError e = NAP_ERROR_NULL;
        assert_denied(nap_auth_check_user(u, "alice", NAP_ACCESS_WRITE, &e), &e, "may not change the apps of user alice");
        e = NAP_ERROR_NULL;
        /* Reading is refused too (no option to allow it yet). */
        assert_denied(nap_auth_check_user(u, "alice", NAP_ACCESS_READ, &e), &e, "may not read the apps of user alice");
        assert_non_null(strstr(e.message, "(nobody)"));
        e = NAP_ERROR_NULL;
        assert_denied(nap_auth_check_service(u, "alice_web", NAP_ACCESS_WRITE, &e), &e, "alice");
        e = NAP_ERROR_NULL;
        assert_denied(nap_auth_check_instance(u, "alice_web_common@1", NAP_ACCESS_READ, &e), &e, "alice");
        /* A name that only starts like the caller's is not the caller's. */
        e = NAP_ERROR_NULL;
        assert_denied(nap_auth_check_user(u, "nobody2", NAP_ACCESS_READ, &e), &e, "nobody2");
        e = NAP_ERROR_NULL;
        assert_denied(nap_auth_check_service(u, "nobod_nobody", NAP_ACCESS_READ, &e), &e, "nobod");
}

static void test_uid_without_name_owns_nothing(void **state) {
        uid_t u = unnamed_uid();
        NapError e = NAP_ERROR_NULL;
        char needle[64];
        snprintf(needle, sizeof needle, "uid %u (no user name)", (unsigned) u);
        assert_denied(nap_auth_check_user(u, "alice", NAP_ACCESS_READ, &e), &e, needle);
}

static void test_bad_names_first(void **state) {
        static const char *const bad_users[] = { "", "Alice", "al_ice", "1alice", "alice bob", "root\n",
                                                 "abcdefghijklmnopqrstuvwxyz0123456" };
        for (size_t i = 0; i < ELEMENTSOF(bad_users); i++) {
                NapError e = NAP_ERROR_NULL;
                /* Even root gets InvalidName: the name is checked before the caller. */
                assert_int_equal(nap_auth_check_user(0, bad_users[i], NAP_ACCESS_READ, &e), -EINVAL);
                assert_int_equal(e.kind, NAP_ERROR_INVALID_NAME);
        }
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_auth_check_user(0, NULL, NAP_ACCESS_READ, &e), -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_NAME);
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_auth_check_service(0, "alice", NAP_ACCESS_READ, &e), -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_NAME);
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_auth_check_instance(0, "alice_web", NAP_ACCESS_READ, &e), -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_NAME);
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_auth_check_instance(0, "alice_web_common@0", NAP_ACCESS_READ, &e), -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_NAME);
}

static void test_bad_access_kind(void **state) {
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_auth_check_user(0, "alice", _NAP_ACCESS_MAX, &e), -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INTERNAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_access_strings),
                cmocka_unit_test(test_uid_name),
                cmocka_unit_test(test_root_may_do_anything),
                cmocka_unit_test(test_owner_may_act),
                cmocka_unit_test(test_others_are_refused),
                cmocka_unit_test(test_uid_without_name_owns_nothing),
                cmocka_unit_test(test_bad_names_first),
                cmocka_unit_test(test_bad_access_kind),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
