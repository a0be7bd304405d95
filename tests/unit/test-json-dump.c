/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* lib/json-dump: the same bytes as jansson's json_dumps(JSON_COMPACT) for
 * a table of tricky values, the same refusals, the depth limit, and the
 * append variant's cap and NUL. jansson itself is the oracle; a few
 * literal expectations pin down what both are expected to write. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <locale.h>
#include <math.h>

#include "../json-test-util.h"
#include "base/json-dump.h"
#include "base/macro.h"

static void assert_same(json_t *j) {
        _cleanup_free_ char *want = NULL, *got = NULL;
        size_t len = SIZE_MAX;

        assert_non_null(j);
        /* Containers as varlink sends them; scalars need JSON_ENCODE_ANY. */
        want = json_dumps(j, JSON_COMPACT | (json_is_object(j) || json_is_array(j) ? 0 : JSON_ENCODE_ANY));
        assert_non_null(want);
        assert_int_equal(nap_json_dump(j, &got, &len), 0);
        assert_string_equal(got, want);
        assert_int_equal(len, strlen(want));
}

static void assert_dump(json_t *j, const char *expected) {
        _cleanup_free_ char *got = NULL;

        assert_same(j);
        assert_int_equal(nap_json_dump(j, &got, NULL), 0);
        assert_string_equal(got, expected);
        json_decref(j);
}

static void test_empty_and_nested(void **state) {
        assert_dump(json_object(), "{}");
        assert_dump(json_array(), "[]");
        assert_dump(json_loads("[[],{},[{}],{\"a\":[]}]", 0, NULL), "[[],{},[{}],{\"a\":[]}]");
        assert_dump(json_pack("{s:[i,{s:[]},{}],s:{s:n}}", "a", 1, "b", "c", "d"),
                    "{\"a\":[1,{\"b\":[]},{}],\"c\":{\"d\":null}}");
        assert_dump(json_pack("[b,b,n]", 1, 0), "[true,false,null]");
}

static void test_key_order(void **state) {
        json_t *o = json_pack("{s:i,s:i,s:i}", "z", 1, "a", 2, "m", 3);

        assert_non_null(o);
        assert_int_equal(json_object_set_new(o, "a", json_integer(4)), 0); /* replaced in place */
        assert_int_equal(json_object_del(o, "z"), 0);
        assert_int_equal(json_object_set_new(o, "z", json_integer(5)), 0); /* now last */
        assert_dump(o, "{\"a\":4,\"m\":3,\"z\":5}");
}

static void test_control_chars(void **state) {
        char all[32];

        for (unsigned c = 0; c < 32; c++) {
                char s[3] = { 'x', (char) c, 'y' };
                json_t *j = json_pack("[s%]", s, sizeof s);
                assert_same(j);
                json_decref(j);
                all[c] = (char) c;
        }
        assert_dump(json_pack("[s%]", all, sizeof all),
                    "[\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000B\\f\\r"
                    "\\u000E\\u000F\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018"
                    "\\u0019\\u001A\\u001B\\u001C\\u001D\\u001E\\u001F\"]");
        assert_dump(json_pack("[s]", "\x7f"), "[\"\x7f\"]"); /* DEL is not a control char to JSON */
}

static void test_quotes_slash_utf8(void **state) {
        assert_dump(json_pack("[s]", "say \"hi\" \\o/ a/b"), "[\"say \\\"hi\\\" \\\\o/ a/b\"]");
        assert_dump(json_pack("[s]", "\"\"\\\\"), "[\"\\\"\\\"\\\\\\\\\"]");
        assert_dump(json_pack("{s:s}", "é€", "𝄞\n\xc2\x80\xdf\xbf\xef\xbf\xbf\xf4\x8f\xbf\xbf"),
                    "{\"é€\":\"𝄞\\n\xc2\x80\xdf\xbf\xef\xbf\xbf\xf4\x8f\xbf\xbf\"}");
        assert_dump(json_pack("[s,s,s]", "", "a", "\xed\x9f\xbf\xee\x80\x80"), "[\"\",\"a\",\"\xed\x9f\xbf\xee\x80\x80\"]");
}

/* Every kind of byte that is more than a copy, at every position of
 * strings that are scanned eight bytes at a time and then one by one. */
static void test_positions(void **state) {
        static const char *const specials[] = { "\x01", "\x1f", "\"", "\\", "\n", "\0", "\xc3\xa9", "\xe2\x82\xac",
                                                "\xf0\x9d\x84\x9e", "\x7f", "/" };
        static const char *const bad[] = { "\xff", "\xc3", "\xe2\x82", "\xed\xa0\x80" };

        for (size_t len = 1; len <= 24; len++)
                for (size_t at = 0; at < len; at++) {
                        char s[32];
                        for (size_t i = 0; i < ELEMENTSOF(specials); i++) {
                                size_t k = MAX(strlen(specials[i]), (size_t) 1);
                                memset(s, 'a', sizeof s);
                                memcpy(s + at, specials[i], k);
                                json_t *j = json_pack("[s%]", s, MAX(len, at + k));
                                assert_same(j);
                                json_decref(j);
                        }
                        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                                char *got = NULL;
                                memset(s, 'a', sizeof s);
                                memcpy(s + at, bad[i], strlen(bad[i]));
                                json_t *j = json_pack("[o]", json_stringn_nocheck(s, MAX(len, at + strlen(bad[i]))));
                                assert_int_equal(nap_json_dump(j, &got, NULL), -EINVAL);
                                assert_null(json_dumps(j, JSON_COMPACT));
                                json_decref(j);
                        }
                }
}

static void test_embedded_nul(void **state) {
        json_t *o = json_object();

        assert_non_null(o);
        assert_int_equal(json_object_setn_new(o, "k\0ey", 4, json_stringn("a\0b\0", 4)), 0);
        assert_int_equal(json_object_set_new(o, "\t", json_stringn("\0", 1)), 0);
        assert_dump(o, "{\"k\\u0000ey\":\"a\\u0000b\\u0000\",\"\\t\":\"\\u0000\"}");
}

static void test_long_string(void **state) {
        _cleanup_free_ char *s = malloc(100000);

        assert_non_null(s);
        for (size_t i = 0; i < 100000; i++)
                s[i] = i % 997 == 0 ? '\n' : i % 1009 == 0 ? '"' : (char) ('a' + i % 26);
        json_t *j = json_pack("{s:s%,s:[s%,s%]}", "long", s, (size_t) 100000, "short", s, (size_t) 700, s + 1, (size_t) 3);
        assert_same(j);
        json_decref(j);
}

static void test_integers(void **state) {
        static const json_int_t t[] = { 0, 1, -1, 9, 10, -10, 99, 100, 1234567890123LL, -987654321098LL,
                                        INT32_MAX, INT32_MIN, (json_int_t) INT32_MAX + 1, INT64_MAX, INT64_MIN,
                                        INT64_MIN + 1, INT64_MAX - 1 };
        json_t *a = json_array();

        assert_non_null(a);
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                json_t *j = json_integer(t[i]);
                assert_same(j);
                assert_int_equal(json_array_append_new(a, j), 0);
        }
        assert_same(a);
        json_decref(a);
        assert_dump(json_pack("[I,I]", (json_int_t) INT64_MIN, (json_int_t) INT64_MAX),
                    "[-9223372036854775808,9223372036854775807]");
}

static const double reals[] = {
        0.0, 1.5, 0.1, 1e-7, 3.0, 1e300, -1e300, 1e16, 1e17, 1e22, 123456789012345680.0, 5e-324,
        DBL_MAX, DBL_MIN, -DBL_MIN, 1e-5, 1e-4, 0.001, 2.5e-308, 1.0 / 3, 100.0, -2.0, 4.35, 1e21,
        9007199254740993.0, 1e-100, 12345.678e10,
};

static void test_reals(void **state) {
        json_t *a = json_array();

        assert_non_null(a);
        for (size_t i = 0; i < ELEMENTSOF(reals); i++) {
                json_t *j = json_real(reals[i]);
                assert_same(j);
                assert_int_equal(json_array_append_new(a, j), 0);
        }
        assert_same(a);
        json_decref(a);
        assert_dump(json_pack("[f,f,f,f,f,f,f]", 0.0, -0.0, 1e300, 1.5, 3.0, 1e-7, 0.1),
                    "[0.0,-0.0,1.0000000000000001e300,1.5,3.0,9.9999999999999995e-8,0.10000000000000001]");
}

/* Reals under a locale whose decimal point is ',', as jansson corrects it;
 * only where such a locale is installed. */
static void test_reals_locale(void **state) {
        if (!json_test_comma_locale())
                skip();
        json_t *j = json_pack("[f,f,f]", 1.5, 3.0, 1e-7);
        assert_same(j);
        json_decref(j);
        setlocale(LC_NUMERIC, "C");
}

static json_t *nest(unsigned depth) {
        json_t *j = json_integer(7);

        for (unsigned i = 0; i < depth && j; i++) {
                json_t *c = i % 3 == 0 ? json_pack("{s:o}", "k", j) : json_pack("[o]", j);
                j = c;
        }
        return j;
}

static void test_depth(void **state) {
        json_t *j = nest(NAP_JSON_DUMP_DEPTH_MAX), *deeper = nest(NAP_JSON_DUMP_DEPTH_MAX + 1);
        _cleanup_free_ char *got = NULL, *jansson = NULL;

        assert_same(j);
        assert_int_equal(nap_json_dump(deeper, &got, NULL), -EINVAL);
        assert_null(got);
        jansson = json_dumps(deeper, JSON_COMPACT); /* jansson knows no limit: a deliberate difference */
        assert_non_null(jansson);
        json_decref(j);
        json_decref(deeper);
}

/* Both refuse a cycle: jansson by its loop check, we by the depth limit. */
static void test_cycle(void **state) {
        json_t *a = json_array(), *b = json_array();
        char *got = NULL;

        assert_int_equal(json_array_append(a, b), 0);
        assert_int_equal(json_array_append(b, a), 0);
        assert_null(json_dumps(a, JSON_COMPACT));
        assert_int_equal(nap_json_dump(a, &got, NULL), -EINVAL);
        assert_null(got);
        json_array_clear(b);
        json_decref(a);
        json_decref(b);
}

/* Only the _nocheck constructors make invalid UTF-8; jansson refuses to
 * dump such a string, and so do we. */
static void test_invalid_utf8(void **state) {
        static const char *const bad[] = {
                "\xff", "\x80", "a\xbf", "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xe0\x9f\xbf", "\xf0\x8f\xbf\xbf",
                "\xed\xa0\x80", "\xed\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xe2\x82", "\xf0\x9d\x84",
                "\xc3", "\xc3(", "ok\n\xe2\x28\xa1", "\xf8\x88\x80\x80\x80",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                json_t *j = json_pack("[s,o]", "fine", json_string_nocheck(bad[i]));
                char *got = NULL;
                assert_non_null(j);
                assert_null(json_dumps(j, JSON_COMPACT));
                assert_int_equal(nap_json_dump(j, &got, NULL), -EINVAL);
                assert_null(got);
                json_decref(j);
        }
        /* A bad key: jansson writes a truncated key (invalid JSON), we refuse. */
        json_t *o = json_object();
        char *got = NULL;
        assert_int_equal(json_object_set_new_nocheck(o, "\xff", json_true()), 0);
        assert_int_equal(nap_json_dump(o, &got, NULL), -EINVAL);
        json_decref(o);
        /* Valid sequences at the edges pass through _nocheck alike. */
        assert_dump(json_pack("[o]", json_string_nocheck("\xf4\x8f\xbf\xbf\xed\x9f\xbf\xee\x80\x80\xf0\x90\x80\x80")),
                    "[\"\xf4\x8f\xbf\xbf\xed\x9f\xbf\xee\x80\x80\xf0\x90\x80\x80\"]");
}

static void test_null(void **state) {
        char *got = NULL;
        size_t size = 0, alloc = 0;

        assert_int_equal(nap_json_dump(NULL, &got, NULL), -EINVAL);
        assert_null(got);
        assert_int_equal(nap_json_dump_append(NULL, &got, &size, &alloc, SIZE_MAX), -EINVAL);
        assert_null(got);
}

/* A varlink reply as io.nap.Manager.ListInstances sends it. */
static json_t *list_instances_reply(void) {
        return json_pack("{s:{s:[{s:s,s:s,s:s,s:i,s:s,s:b},{s:s,s:s,s:s,s:i,s:s,s:b}]}}",
                         "parameters", "instances",
                         "app", "hello", "process", "web", "name", "hello-web@1", "port", 20001,
                         "state", "active", "enabled", 1,
                         "app", "hello", "process", "worker", "name", "hello-worker@1", "port", 20002,
                         "state", "activating", "enabled", 0);
}

static void test_list_instances(void **state) {
        json_t *j = list_instances_reply();
        assert_same(j);
        json_decref(j);
}

/* Appends after the caller's bytes, leaves a NUL after the text, and
 * respects max exactly; a failure leaves *size alone. */
static void test_append(void **state) {
        json_t *j = json_pack("{s:[i,s]}", "a", 12, "x\ny");
        const char *text = "{\"a\":[12,\"x\\ny\"]}";
        size_t len = strlen(text), size = 3, alloc = 3;
        char *data = malloc(3);

        assert_non_null(j);
        assert_non_null(data);
        memcpy(data, "ab", 3); /* the NUL is a message terminator already */
        assert_int_equal(nap_json_dump_append(j, &data, &size, &alloc, 3 + len - 1), -ENOBUFS);
        assert_int_equal(size, 3);
        assert_memory_equal(data, "ab", 3);
        assert_int_equal(nap_json_dump_append(j, &data, &size, &alloc, 3 + len), 0);
        assert_int_equal(size, 3 + len);
        assert_true(alloc > size);
        assert_memory_equal(data, "ab", 3);
        assert_memory_equal(data + 3, text, len + 1);
        /* Already over the cap: nothing fits. */
        assert_int_equal(nap_json_dump_append(j, &data, &size, &alloc, size), -ENOBUFS);
        assert_int_equal(size, 3 + len);
        free(data);

        /* From nothing, with a tiny cap, then with room that must not be overrun. */
        data = NULL, size = alloc = 0;
        assert_int_equal(nap_json_dump_append(j, &data, &size, &alloc, 1), -ENOBUFS);
        assert_int_equal(size, 0);
        free(data);
        data = malloc(len + 1), size = 0, alloc = len + 1;
        assert_int_equal(nap_json_dump_append(j, &data, &size, &alloc, SIZE_MAX), 0);
        assert_string_equal(data, text);
        free(data);
        json_decref(j);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_empty_and_nested),
                cmocka_unit_test(test_key_order),
                cmocka_unit_test(test_control_chars),
                cmocka_unit_test(test_quotes_slash_utf8),
                cmocka_unit_test(test_positions),
                cmocka_unit_test(test_embedded_nul),
                cmocka_unit_test(test_long_string),
                cmocka_unit_test(test_integers),
                cmocka_unit_test(test_reals),
                cmocka_unit_test(test_reals_locale),
                cmocka_unit_test(test_depth),
                cmocka_unit_test(test_cycle),
                cmocka_unit_test(test_invalid_utf8),
                cmocka_unit_test(test_null),
                cmocka_unit_test(test_list_instances),
                cmocka_unit_test(test_append),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
