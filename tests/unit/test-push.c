/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "clients/push.h"
#include "base/strv.h"

#define A "1111111111111111111111111111111111111111"
#define B "2222222222222222222222222222222222222222"
#define Z "0000000000000000000000000000000000000000"

static int parse(const char *text, const char *head, NapPush *p) {
        return nap_push_parse(text, strlen(text), head, p, NULL);
}

static void test_main_is_deployed(void **state) {
        NapPush p;
        assert_int_equal(parse(A " " B " refs/heads/main\n", "refs/heads/main", &p), 0);
        assert_string_equal(p.ref, "refs/heads/main");
        assert_string_equal(p.commit, B);
        assert_false(p.deleted);
        assert_null(p.ignored);
        nap_push_done(&p);
}

static void test_other_refs_are_named_not_deployed(void **state) {
        NapPush p;
        assert_int_equal(parse(Z " " A " refs/heads/feature\n" A " " B " refs/tags/v1", "refs/heads/main", &p), 0);
        assert_string_equal(p.ref, "");
        assert_int_equal(strv_length(p.ignored), 2);
        assert_string_equal(p.ignored[0], "refs/heads/feature");
        assert_string_equal(p.ignored[1], "refs/tags/v1");
        nap_push_done(&p);
}

static void test_head_wins_when_both_pushed(void **state) {
        NapPush p;
        assert_int_equal(parse(Z " " A " refs/heads/main\n" Z " " B " refs/heads/master\n", "refs/heads/master", &p), 0);
        assert_string_equal(p.ref, "refs/heads/master");
        assert_string_equal(p.commit, B);
        nap_push_done(&p);
        assert_int_equal(parse(Z " " A " refs/heads/main\n" Z " " B " refs/heads/master\n", "refs/heads/main", &p), 0);
        assert_string_equal(p.commit, A);
        nap_push_done(&p);
}

static void test_deleted_branch(void **state) {
        NapPush p;
        assert_int_equal(parse(A " " Z " refs/heads/main\n", "refs/heads/main", &p), 0);
        assert_true(p.deleted);
        nap_push_done(&p);
}

static void test_garbage_is_refused(void **state) {
        static const char *const bad[] = {
                "x",
                A " " B,
                A "  " B " refs/heads/main",
                A " " B " refs/heads/ma in",
                A " " B " refs/heads/main\t",
                A " " B " ",
                "111111111111111111111111111111111111111g " B " refs/heads/main",
                A " " B "0 refs/heads/main",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                NapPush p;
                NapError e = NAP_ERROR_NULL;
                assert_int_equal(nap_push_parse(bad[i], strlen(bad[i]), "", &p, &e), -EBADMSG);
                assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        }
        const char nul[] = A " " B " refs/heads/m\0ain";
        NapPush p;
        assert_int_equal(nap_push_parse(nul, sizeof nul - 1, "", &p, NULL), -EBADMSG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_main_is_deployed),
                cmocka_unit_test(test_other_refs_are_named_not_deployed),
                cmocka_unit_test(test_head_wins_when_both_pushed),
                cmocka_unit_test(test_deleted_branch),
                cmocka_unit_test(test_garbage_is_refused),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
