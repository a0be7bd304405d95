/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "base/error.h"

static void test_kind_strings(void **state) {
        for (int k = 0; k < _NAP_ERROR_KIND_MAX; k++) {
                const char *s = nap_error_kind_to_string(k);
                if (!s)
                        fail_msg("error kind %d has no string", k);
                assert_int_equal(nap_error_kind_from_string(s), k);
                for (int j = 0; j < k; j++)
                        assert_string_not_equal(nap_error_kind_to_string(j), s);
        }
        assert_string_equal(nap_error_kind_to_string(NAP_ERROR_INVALID_NAME), "InvalidName");
        assert_string_equal(nap_error_kind_to_string(NAP_ERROR_INVALID_CONFIG), "InvalidConfig");
        assert_string_equal(nap_error_kind_to_string(NAP_ERROR_INTERNAL), "Internal");
        assert_null(nap_error_kind_to_string(_NAP_ERROR_KIND_MAX));
        assert_null(nap_error_kind_to_string(-1));
        assert_int_equal(nap_error_kind_from_string("invalidname"), -EINVAL);
        assert_int_equal(nap_error_kind_from_string(""), -EINVAL);
        assert_int_equal(nap_error_kind_from_string(NULL), -EINVAL);
}

static void test_set(void **state) {
        NapError e = NAP_ERROR_NULL;
        assert_false(nap_error_is_set(&e));
        assert_false(nap_error_is_set(NULL));
        assert_int_equal(nap_error_set(&e, NAP_ERROR_INVALID_NAME, -EINVAL, "bad name '%s' (%d)", "x", 3), -EINVAL);
        assert_true(nap_error_is_set(&e));
        assert_int_equal(e.kind, NAP_ERROR_INVALID_NAME);
        assert_int_equal(e.errnum, EINVAL);
        assert_string_equal(e.message, "bad name 'x' (3)");
}

static void test_innermost_wins(void **state) {
        NapError e = NAP_ERROR_NULL;
        nap_error_set(&e, NAP_ERROR_INVALID_PROFILE, -EINVAL, "inner");
        assert_int_equal(nap_error_set(&e, NAP_ERROR_INTERNAL, -EIO, "outer"), -EIO);
        assert_int_equal(nap_error_errno(&e, -ENOENT, "outermost"), -ENOENT);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PROFILE);
        assert_int_equal(e.errnum, EINVAL);
        assert_string_equal(e.message, "inner");
}

static void test_null_error(void **state) {
        assert_int_equal(nap_error_set(NULL, NAP_ERROR_INTERNAL, -ENOMEM, "x"), -ENOMEM);
        assert_int_equal(nap_error_errno(NULL, -EPERM, "y"), -EPERM);
}

static void test_errno(void **state) {
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_error_errno(&e, -ENOENT, "Failed to open %s", "/x"), -ENOENT);
        assert_int_equal(e.kind, NAP_ERROR_INTERNAL);
        assert_int_equal(e.errnum, ENOENT);
        assert_string_equal(e.message, "Failed to open /x: No such file or directory");
}

static void test_non_negative_r(void **state) {
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_error_set(&e, NAP_ERROR_INTERNAL, 0, "odd"), 0);
        assert_int_equal(e.errnum, EIO);
}

static void test_truncation(void **state) {
        char big[2000];
        memset(big, 'm', sizeof big - 1);
        big[sizeof big - 1] = 0;
        NapError e = NAP_ERROR_NULL;
        nap_error_set(&e, NAP_ERROR_INTERNAL, -EIO, "%s", big);
        assert_int_equal(strlen(e.message), NAP_ERROR_MESSAGE_MAX - 1);
        NapError f = NAP_ERROR_NULL;
        nap_error_errno(&f, -EIO, "%s", big);
        assert_int_equal(strlen(f.message), NAP_ERROR_MESSAGE_MAX - 1);
        assert_int_equal(f.message[0], 'm');

        /* Room for the message but not all of the errno text: cut, still terminated. */
        NapError g = NAP_ERROR_NULL;
        big[NAP_ERROR_MESSAGE_MAX - 5] = 0;
        nap_error_errno(&g, -ENOENT, "%s", big);
        assert_int_equal(strlen(g.message), NAP_ERROR_MESSAGE_MAX - 1);
        assert_memory_equal(g.message + NAP_ERROR_MESSAGE_MAX - 5, ": No", 4);
}

static void test_prefix(void **state) {
        NapError e = NAP_ERROR_NULL;
        nap_error_prefix(&e, "nothing set: %s", "no prefix");
        assert_false(nap_error_is_set(&e));
        nap_error_prefix(NULL, "%s", "no error at all");

        nap_error_set(&e, NAP_ERROR_UNIT_FAILED, -EIO, "it failed");
        nap_error_prefix(&e, "%s: ", "alice_web_common@1");
        assert_string_equal(e.message, "alice_web_common@1: it failed");
        assert_int_equal(e.kind, NAP_ERROR_UNIT_FAILED);

        char longer[NAP_ERROR_MESSAGE_MAX];
        memset(longer, 'x', sizeof longer - 1);
        longer[sizeof longer - 1] = 0;
        /* A prefix is cut to 127 bytes, the whole to the message's size. */
        nap_error_prefix(&e, "%s", longer);
        assert_int_equal(strlen(e.message), 127 + strlen("alice_web_common@1: it failed"));
        assert_string_equal(e.message + 127, "alice_web_common@1: it failed");
        for (int i = 0; i < 4; i++)
                nap_error_prefix(&e, "%s", longer);
        assert_int_equal(strlen(e.message), NAP_ERROR_MESSAGE_MAX - 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_kind_strings),
                cmocka_unit_test(test_set),
                cmocka_unit_test(test_innermost_wins),
                cmocka_unit_test(test_null_error),
                cmocka_unit_test(test_errno),
                cmocka_unit_test(test_non_negative_r),
                cmocka_unit_test(test_truncation),
                cmocka_unit_test(test_prefix),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
