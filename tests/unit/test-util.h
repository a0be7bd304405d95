/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Helpers shared by the cmocka tests. Include after <cmocka.h>. */

/* l must hold exactly the strings of expected, in order. */
static inline void assert_strv(char *const *l, const char *const *expected) {
        size_t n = 0;
        for (; expected[n]; n++) {
                assert_non_null(l[n]);
                assert_string_equal(l[n], expected[n]);
        }
        assert_null(l[n]);
}
#define ASSERT_STRV(l, ...) assert_strv((l), (const char *const[]) { __VA_ARGS__, NULL })
