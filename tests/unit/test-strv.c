/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test-util.h"

#include "base/strv.h"


static void test_free_null(void **state) {
        assert_null(strv_free(NULL));
        _unused_ _cleanup_strv_free_ char **l = NULL; /* cleanup of NULL is a no-op */
}

static void test_extend_length_contains(void **state) {
        _cleanup_strv_free_ char **l = NULL;
        assert_int_equal(strv_length(l), 0);
        assert_false(strv_contains(l, "a"));
        assert_int_equal(strv_extend(&l, "a"), 0);
        assert_int_equal(strv_extend(&l, ""), 0);
        assert_int_equal(strv_consume(&l, strdup("c")), 0);
        assert_int_equal(strv_length(l), 3);
        ASSERT_STRV(l, "a", "", "c");
        assert_true(strv_contains(l, "a"));
        assert_true(strv_contains(l, ""));
        assert_true(strv_contains(l, "c"));
        assert_false(strv_contains(l, "b"));
        assert_false(strv_contains(l, "ab"));
}

static void test_consume_null(void **state) {
        _cleanup_strv_free_ char **l = NULL;
        assert_int_equal(strv_extend(&l, "x"), 0);
        assert_int_equal(strv_consume(&l, NULL), -ENOMEM);
        ASSERT_STRV(l, "x");
}

static void test_copy(void **state) {
        char *src[] = { "one", "two", "", NULL };
        _cleanup_strv_free_ char **c = strv_copy(src);
        assert_non_null(c);
        ASSERT_STRV(c, "one", "two", "");
        assert_ptr_not_equal(c[0], src[0]);

        _cleanup_strv_free_ char **empty = strv_copy(NULL);
        assert_non_null(empty);
        assert_null(empty[0]);
}

static void test_equal(void **state) {
        char *a[] = { "x", "y", NULL }, *b[] = { "x", "y", NULL }, *c[] = { "x", NULL }, *d[] = { "x", "z", NULL },
             *e[] = { NULL };
        assert_true(strv_equal(a, b));
        assert_false(strv_equal(a, c));
        assert_false(strv_equal(c, a));
        assert_false(strv_equal(a, d));
        assert_true(strv_equal(NULL, NULL));
        assert_true(strv_equal(NULL, e));
        assert_true(strv_equal(e, NULL));
        assert_false(strv_equal(NULL, c));
}

static void test_split(void **state) {
        _cleanup_strv_free_ char **a = strv_split("a,b,c", ',');
        ASSERT_STRV(a, "a", "b", "c");
        _cleanup_strv_free_ char **b = strv_split("a,,b,", ',');
        ASSERT_STRV(b, "a", "", "b", "");
        _cleanup_strv_free_ char **c = strv_split("", ',');
        ASSERT_STRV(c, "");
        _cleanup_strv_free_ char **d = strv_split("no separator", ',');
        ASSERT_STRV(d, "no separator");
        _cleanup_strv_free_ char **e = strv_split(":", ':');
        ASSERT_STRV(e, "", "");
}

static void test_join(void **state) {
        char *l[] = { "a", "", "b", NULL };
        _cleanup_free_ char *j = strv_join(l, ", ");
        assert_string_equal(j, "a, , b");
        _cleanup_free_ char *k = strv_join(l, "");
        assert_string_equal(k, "ab");
        _cleanup_free_ char *n = strv_join(NULL, ",");
        assert_string_equal(n, "");
        char *one[] = { "only", NULL };
        _cleanup_free_ char *o = strv_join(one, "--");
        assert_string_equal(o, "only");
}

static void test_split_join_round_trip(void **state) {
        static const char *const inputs[] = { "a,b", ",", "", "x,,y,z,", ",,," };
        for (size_t i = 0; i < ELEMENTSOF(inputs); i++) {
                _cleanup_strv_free_ char **l = strv_split(inputs[i], ',');
                _cleanup_free_ char *j = strv_join(l, ",");
                assert_string_equal(j, inputs[i]);
        }
}

static void test_foreach(void **state) {
        char *l[] = { "a", "b", "c", NULL };
        char seen[8] = "";
        STRV_FOREACH(s, l)
                strcat(seen, *s);
        assert_string_equal(seen, "abc");
        size_t n = 0;
        STRV_FOREACH(s, (char **) NULL)
                n++;
        assert_int_equal(n, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_free_null),
                cmocka_unit_test(test_extend_length_contains),
                cmocka_unit_test(test_consume_null),
                cmocka_unit_test(test_copy),
                cmocka_unit_test(test_equal),
                cmocka_unit_test(test_split),
                cmocka_unit_test(test_join),
                cmocka_unit_test(test_split_join_round_trip),
                cmocka_unit_test(test_foreach),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
