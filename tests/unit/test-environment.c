/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* An app's stored environment (lib/model/environment.h): what napctl config
 * set stores, read back exactly, and everything else refused. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "model/environment.h"

static int parse(const char *text, NapParams **ret, NapError *e) {
        return nap_environment_parse(text, strlen(text), ret, e);
}

static void test_round_trip(void **state) {
        _cleanup_(nap_params_freep) NapParams *p = NULL, *back = NULL;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_params_new(&p), 0);
        assert_int_equal(nap_environment_set(p, "ZED", "50% $HOME \"q\" \\ 'x' ✓", &e), 0);
        assert_int_equal(nap_environment_set(p, "ALPHA", "", &e), 0);
        _cleanup_free_ char *text = nap_environment_format(p);
        /* sorted, whatever the order they were set in */
        assert_string_equal(text, "{\n  \"ALPHA\": \"\",\n  \"ZED\": \"50% $HOME \\\"q\\\" \\\\ 'x' ✓\"\n}\n");
        assert_int_equal(parse(text, &back, &e), 0);
        assert_true(nap_environment_equal(p, back));
        assert_string_equal(nap_params_get(back, "ZED"), "50% $HOME \"q\" \\ 'x' ✓");
}

static void test_equal(void **state) {
        _cleanup_(nap_params_freep) NapParams *a = NULL, *b = NULL;
        assert_int_equal(parse("{\"A\":\"1\",\"B\":\"2\"}", &a, NULL), 0);
        assert_int_equal(parse("{\"B\":\"2\",\"A\":\"1\"}", &b, NULL), 0);
        assert_true(nap_environment_equal(a, b));
        assert_true(nap_environment_equal(NULL, NULL));
        assert_false(nap_environment_equal(a, NULL));
        assert_int_equal(nap_params_set(b, "C", "3", NULL), 0);
        assert_false(nap_environment_equal(a, b));
        nap_params_free(b);
        assert_int_equal(parse("{\"B\":\"2\",\"A\":\"x\"}", &b, NULL), 0);
        assert_false(nap_environment_equal(a, b));
}

static void assert_refused(const char *text, const char *what) {
        _cleanup_(nap_params_freep) NapParams *p = NULL;
        NapError e = NAP_ERROR_NULL;
        int r = parse(text, &p, &e);
        if (r >= 0 || !strstr(e.message, what))
                print_error("input %s gave r=%d '%s', expected '%s'\n", text, r, e.message, what);
        assert_true(r < 0);
        assert_null(p);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        assert_non_null(strstr(e.message, what));
}

static void test_refuse(void **state) {
        assert_refused("", "JSON");
        assert_refused("[]", "object");
        assert_refused("{\"A\":\"1\",\"A\":\"2\"}", "JSON");
        assert_refused("{\"A\":1}", "not a string");
        assert_refused("{\"A\":null}", "not a string");
        assert_refused("{\"PORT\":\"1\"}", "PORT");
        assert_refused("{\"1A\":\"x\"}", "1A");
        assert_refused("{\"A\":\"x\\ny\"}", "control character");
        assert_refused("{\"A\":\"x\\u0000y\"}", "JSON");
}

static void test_refuse_too_big(void **state) {
        size_t n = NAP_ENVIRONMENT_MAX_SIZE + 1;
        _cleanup_free_ char *big = malloc(n + 1);
        _cleanup_(nap_params_freep) NapParams *p = NULL;
        NapError e = NAP_ERROR_NULL;
        memset(big, ' ', n);
        big[n] = 0;
        assert_int_equal(nap_environment_parse(big, n, &p, &e), -EFBIG);
        /* a value longer than a parameter's */
        _cleanup_free_ char *long_value = malloc(NAP_PARAM_VALUE_MAX + 16);
        snprintf(long_value, NAP_PARAM_VALUE_MAX + 16, "{\"A\":\"%0*d\"}", NAP_PARAM_VALUE_MAX + 1, 0);
        assert_refused(long_value, "longer than");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_equal),
                cmocka_unit_test(test_refuse),
                cmocka_unit_test(test_refuse_too_big),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
