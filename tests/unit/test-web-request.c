/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* What nap-web parses itself (helpers/nap-web/web-request.h): routes,
 * call bodies, query numbers and the sign-in rate limit. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../../helpers/nap-web/web-request.h"
#include "base/macro.h"

static void test_routes(void **state) {
        char name[WEB_METHOD_NAME_MAX];
        assert_int_equal(web_route_parse("GET", "/", name), WEB_ROUTE_PAGE);
        assert_int_equal(web_route_parse("GET", "/app.js", name), WEB_ROUTE_SCRIPT);
        assert_int_equal(web_route_parse("POST", "/api/signin", name), WEB_ROUTE_SIGNIN);
        assert_int_equal(web_route_parse("GET", "/api/signin", name), WEB_ROUTE_BAD_METHOD);
        assert_int_equal(web_route_parse("GET", "/api/follow", name), WEB_ROUTE_FOLLOW);
        assert_int_equal(web_route_parse("POST", "/api/call/ListApps", name), WEB_ROUTE_CALL);
        assert_string_equal(name, "ListApps");
        assert_int_equal(web_route_parse("GET", "/api/call/ListApps", name), WEB_ROUTE_BAD_METHOD);
        assert_int_equal(web_route_parse("POST", "/api/call/listApps", name), WEB_ROUTE_NOT_FOUND);
        assert_int_equal(web_route_parse("POST", "/api/call/", name), WEB_ROUTE_NOT_FOUND);
        assert_int_equal(web_route_parse("POST", "/api/call/List/Apps", name), WEB_ROUTE_NOT_FOUND);
        assert_int_equal(web_route_parse("POST", "/api/call/List%41pps", name), WEB_ROUTE_NOT_FOUND);
        assert_int_equal(web_route_parse("GET", "/../etc/passwd", name), WEB_ROUTE_NOT_FOUND);
        assert_int_equal(web_route_parse(NULL, "/", name), WEB_ROUTE_NOT_FOUND);
        assert_true(web_route_mutates(WEB_ROUTE_CALL));
        assert_true(web_route_mutates(WEB_ROUTE_SIGNOUT));
        assert_false(web_route_mutates(WEB_ROUTE_FOLLOW));
        /* the queue page's routes: POSTs, all with the CSRF token */
        assert_int_equal(web_route_parse("POST", "/api/queue/list", name), WEB_ROUTE_QUEUE_LIST);
        assert_int_equal(web_route_parse("POST", "/api/queue/cancel", name), WEB_ROUTE_QUEUE_CANCEL);
        assert_int_equal(web_route_parse("POST", "/api/queue/move", name), WEB_ROUTE_QUEUE_MOVE);
        assert_int_equal(web_route_parse("GET", "/api/queue/list", name), WEB_ROUTE_BAD_METHOD);
        assert_int_equal(web_route_parse("POST", "/api/queue/", name), WEB_ROUTE_NOT_FOUND);
        assert_true(web_route_mutates(WEB_ROUTE_QUEUE_LIST));
        assert_true(web_route_mutates(WEB_ROUTE_QUEUE_CANCEL));
        assert_true(web_route_mutates(WEB_ROUTE_QUEUE_MOVE));
        /* History is a method now */
        assert_int_equal(web_route_parse("POST", "/api/history", name), WEB_ROUTE_NOT_FOUND);
}

static void test_body(void **state) {
        json_t *j = NULL;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(web_body_object("", 0, &j, NULL), 0);
        assert_true(json_is_object(j) && json_object_size(j) == 0);
        json_decref(j);
        assert_int_equal(web_body_object("{\"a\":1}", 7, &j, NULL), 0);
        json_decref(j);
        assert_int_equal(web_body_object("{\"a\":1,\"a\":2}", 13, &j, &e), -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        assert_int_equal(web_body_object("[1]", 3, &j, NULL), -EINVAL);
        assert_int_equal(web_body_object("{", 1, &j, NULL), -EINVAL);
        assert_int_equal(web_body_object("{}", WEB_BODY_MAX + 1, &j, NULL), -E2BIG);
}

static void test_query_uint(void **state) {
        unsigned v;
        assert_int_equal(web_query_uint(NULL, 100, 10, &v), 0);
        assert_int_equal(v, 10);
        assert_int_equal(web_query_uint("0", 100, 10, &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(web_query_uint("100", 100, 10, &v), 0);
        assert_int_equal(v, 100);
        const char *bad[] = { "101", "-1", "01", "1x", " 1", "99999999999999999999" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(web_query_uint(bad[i], 100, 10, &v), -EINVAL);
}

static void test_content_type(void **state) {
        assert_true(web_content_type_is_json("application/json"));
        assert_true(web_content_type_is_json("Application/JSON; charset=utf-8"));
        assert_true(web_content_type_is_json("application/json ;charset=utf-8"));
        assert_false(web_content_type_is_json("application/jsonx"));
        assert_false(web_content_type_is_json("text/plain"));
        assert_false(web_content_type_is_json("application/x-www-form-urlencoded"));
        assert_false(web_content_type_is_json(""));
        assert_false(web_content_type_is_json(NULL));
}

static void test_token_user(void **state) {
        char u[NAP_USER_MAX + 1];
        web_token_user("alice.abc", u);
        assert_string_equal(u, "alice");
        web_token_user("Alice.abc", u);
        assert_string_equal(u, "");
        web_token_user("nodot", u);
        assert_string_equal(u, "");
        web_token_user(NULL, u);
        assert_string_equal(u, "");
}

static void test_rate_limit(void **state) {
        static WebRateLimit l;
        uint64_t t = 1000 * WEB_SIGNIN_WINDOW_USEC + 5;
        for (unsigned i = 0; i < WEB_SIGNIN_FAILURES_PER_USER; i++) {
                assert_int_equal(web_rate_limit_wait(&l, "bob", t), 0);
                web_rate_limit_failed(&l, "bob", t);
        }
        assert_int_equal(web_rate_limit_wait(&l, "bob", t), 60);
        assert_int_equal(web_rate_limit_wait(&l, "alice", t), 0); /* per user */
        assert_int_equal(web_rate_limit_wait(&l, "bob", t + WEB_SIGNIN_WINDOW_USEC), 0); /* next minute */
        /* In all: past the total, nobody. */
        for (unsigned i = 0; i < WEB_SIGNIN_FAILURES_TOTAL; i++)
                web_rate_limit_failed(&l, "", t + 2 * WEB_SIGNIN_WINDOW_USEC);
        assert_true(web_rate_limit_wait(&l, "carol", t + 2 * WEB_SIGNIN_WINDOW_USEC) > 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_routes),     cmocka_unit_test(test_body),
                cmocka_unit_test(test_query_uint), cmocka_unit_test(test_token_user),
                cmocka_unit_test(test_rate_limit), cmocka_unit_test(test_content_type),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
