/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* lib/json-parse against jansson: for a table of inputs, nap_json_parse()
 * must accept exactly what json_loadb(JSON_REJECT_DUPLICATES) accepts and
 * build the same tree, type for type. Each entry also says what both are
 * expected to do, so a jansson that changed its mind would show here, and
 * every prefix of every entry is tried too (truncations are refused by
 * both, and nothing past the end may be read). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <locale.h>

#include "../json-test-util.h"
#include "base/json-parse.h"
#include "base/macro.h"

/* Both parse the len bytes of text, copied to a buffer of exactly that
 * size; returns whether they accepted it, after checking they agree. */
static bool check_len(const char *text, size_t len) {
        _cleanup_free_ char *buf = malloc(MAX(len, (size_t) 1));
        json_t *want, *got = NULL;
        int r;

        assert_non_null(buf);
        memcpy(buf, text, len);
        want = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
        r = nap_json_parse(buf, len, &got);
        if (!want != (r < 0))
                fail_msg("jansson %s, nap_json_parse() %d: '%.*s'", want ? "accepts" : "refuses", r, (int) len, text);
        if (r < 0)
                assert_int_equal(r, -EBADMSG);
        else {
                assert_true(json_equal(want, got));
                assert_true(json_same(want, got));
        }
        json_decref(want);
        json_decref(got);
        return r >= 0;
}

static void check(const char *text, size_t len, bool accept) {
        if (check_len(text, len) != accept)
                fail_msg("both %s '%.*s'", accept ? "refuse" : "accept", (int) len, text);
        for (size_t n = 0; n < len; n++)
                check_len(text, n);
}

#define ACCEPT(s) check(s, sizeof(s) - 1, true)
#define REFUSE(s) check(s, sizeof(s) - 1, false)
#define CHECK(s, accept) check(s, sizeof(s) - 1, accept)

static void test_top_level(void **state) {
        ACCEPT("{}");
        ACCEPT("[]");
        ACCEPT(" \t\r\n{ } \n");
        ACCEPT("[ ]");
        REFUSE("");
        REFUSE(" ");
        REFUSE("1"); /* no JSON_DECODE_ANY: a container at the top */
        REFUSE("\"a\"");
        REFUSE("true");
        REFUSE("null");
        REFUSE("{}x");
        REFUSE("{}{}");
        REFUSE("{} []");
        REFUSE("[]\f"); /* only space, \t, \n, \r */
        REFUSE("\v[]");
        REFUSE("\xef\xbb\xbf{}"); /* no BOM */
        REFUSE("]");
        REFUSE("}");
}

static void test_containers(void **state) {
        ACCEPT("[1,2,[3,[]],{\"a\":{}}]");
        ACCEPT("{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"}}");
        ACCEPT("{ \"a\" : 1 , \"b\" : 2 }");
        REFUSE("[1,]");
        REFUSE("[,1]");
        REFUSE("[1 2]");
        REFUSE("{\"a\":1,}");
        REFUSE("{,}");
        REFUSE("{\"a\"}");
        REFUSE("{\"a\":}");
        REFUSE("{\"a\" 1}");
        REFUSE("{1:1}");
        REFUSE("{a:1}");
        REFUSE("[1}");
        REFUSE("{\"a\":1]");
        REFUSE("[truex]");
        REFUSE("[True]");
        REFUSE("[nul]");
        REFUSE("[nulll]");
}

static void test_duplicates(void **state) {
        REFUSE("{\"a\":1,\"a\":1}");
        REFUSE("{\"a\":1,\"b\":2,\"a\":3}");
        REFUSE("{\"a\":1,\"\\u0061\":2}"); /* the same key once decoded */
        REFUSE("{\"\":1,\"\":2}");
        ACCEPT("{\"a\":{\"a\":1},\"b\":{\"a\":1}}");
        ACCEPT("{\"a\":1,\"A\":2,\"a \":3,\"\":4}");
}

static void test_integers(void **state) {
        ACCEPT("[0,-0,1,-1,42,1234567890]");
        ACCEPT("[9223372036854775807]");
        ACCEPT("[-9223372036854775808]");
        REFUSE("[9223372036854775808]");
        REFUSE("[-9223372036854775809]");
        REFUSE("[18446744073709551616]");
        REFUSE("[99999999999999999999999999]");
        REFUSE("[01]");
        REFUSE("[-01]");
        REFUSE("[00]");
        REFUSE("[+1]");
        REFUSE("[-]");
        REFUSE("[--1]");
        REFUSE("[0x10]");
        REFUSE("[1a]");
}

static void test_reals(void **state) {
        ACCEPT("[1.5,-1.5,0.0,-0.0,1E5,1e5,1e+5,1e-5,1.5E-3,0e0,-0e-0]");
        ACCEPT("[1e-400,-1e-400,5e-324,2.2250738585072014e-308]"); /* underflow is 0 or subnormal */
        ACCEPT("[1.7976931348623157e308,-1.7976931348623157e308]");
        ACCEPT("[0.1,0.30000000000000004,3.141592653589793238462643383279]");
        ACCEPT("[123456789012345678901234567890.5]");
        ACCEPT("[1e0000000000000000000000000000000000000000000000000000000000000000000000001]");
        REFUSE("[1e400]");
        REFUSE("[-1e400]");
        REFUSE("[1.8e308]");
        REFUSE("[.5]");
        REFUSE("[5.]");
        REFUSE("[5.e3]");
        REFUSE("[1e]");
        REFUSE("[1e+]");
        REFUSE("[1E-]");
        REFUSE("[1.5.5]");
        REFUSE("[1e5e5]");
        REFUSE("[NaN]");
        REFUSE("[Infinity]");
        REFUSE("[-Infinity]");
        REFUSE("[01.5]");
}

/* Reals under a locale whose decimal point is ',', which jansson works
 * around; only where such a locale is installed. */
static void test_reals_locale(void **state) {
        if (!json_test_comma_locale())
                skip();
        ACCEPT("[1.5,-0.25,1e3,2.5E-3]");
        setlocale(LC_NUMERIC, "C");
}

static void test_strings(void **state) {
        ACCEPT("[\"\",\"a\",\"hello world\",\"\x7f\"]");
        ACCEPT("[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]");
        ACCEPT("[\"\\u0041\\u00e9\\u00E9\\u20ac\\uFFFF\\u0001\\u001f\"]");
        ACCEPT("[\"\\ud800\\udc00\\uD834\\uDD1E\\udbff\\udfff\"]");
        ACCEPT("[\"a\\nb\",\"plain after escaped\",\"\\t\"]");
        ACCEPT("{\"k\\u0065y\":\"v\",\"key2\":\"\\u0076\"}");
        REFUSE("[\"\\u0000\"]"); /* no JSON_ALLOW_NUL */
        REFUSE("{\"\\u0000\":1}");
        REFUSE("[\"a\\u0000b\"]");
        REFUSE("[\"\\ud800\"]");
        REFUSE("[\"\\ud800x\"]");
        REFUSE("[\"\\ud800\\n\"]");
        REFUSE("[\"\\ud800\\u0041\"]");
        REFUSE("[\"\\ud800\\ud800\"]");
        REFUSE("[\"\\udc00\"]");
        REFUSE("[\"\\udc00\\ud800\"]");
        REFUSE("[\"\\u12\"]");
        REFUSE("[\"\\u12g4\"]");
        REFUSE("[\"\\U0041\"]");
        REFUSE("[\"\\x41\"]");
        REFUSE("[\"\\a\"]");
        REFUSE("[\"\\'\"]");
        REFUSE("[\"\\\"]");
        REFUSE("[\"abc]");
        REFUSE("[\"a\tb\"]"); /* raw control characters */
        REFUSE("[\"a\nb\"]");
        REFUSE("[\"\x01\"]");
        REFUSE("[\"\x1f\"]");
        REFUSE("['a']");
}

static void test_utf8(void **state) {
        ACCEPT("[\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e \xf4\x8f\xbf\xbf \xef\xbf\xbf \xc2\x80\"]");
        ACCEPT("{\"\xc3\xa9\":\"\xe2\x82\xac\\n\xf0\x9f\x98\x80\"}");
        REFUSE("[\"\xc0\xaf\"]"); /* overlong */
        REFUSE("[\"\xc1\xbf\"]");
        REFUSE("[\"\xe0\x80\xaf\"]");
        REFUSE("[\"\xe0\x9f\xbf\"]");
        REFUSE("[\"\xf0\x80\x80\xaf\"]");
        REFUSE("[\"\xf0\x8f\xbf\xbf\"]");
        REFUSE("[\"\xed\xa0\x80\"]"); /* surrogates encoded in UTF-8 */
        REFUSE("[\"\xed\xbf\xbf\"]");
        REFUSE("[\"\xf4\x90\x80\x80\"]"); /* > U+10FFFF */
        REFUSE("[\"\xf5\x80\x80\x80\"]");
        REFUSE("[\"\xff\"]");
        REFUSE("[\"\x80\"]"); /* lone continuation byte */
        REFUSE("[\"\xc3\"]"); /* truncated */
        REFUSE("[\"\xe2\x82\"]");
        REFUSE("[\"\xc3\x28\"]");
        REFUSE("[\"\\n\xc3\"]"); /* after an escape too */
        REFUSE("[\"\\n\xed\xa0\x80\"]");
        REFUSE("[\xc3\xa9]"); /* outside strings */
}

static void test_nul(void **state) {
        CHECK("[\"a\0\"]", false);
        CHECK("{\"a\0\":1}", false);
        CHECK("[]\0", false);
        CHECK("\0[]", false);
        CHECK("[\0]", false);
        CHECK("[1,\0 2]", false);
        CHECK("{\"a\":1}\0", false);
        /* jansson skips one NUL right after a number or keyword */
        CHECK("[1\0]", true);
        CHECK("[true\0,null\0,-1.5e3\0]", true);
        CHECK("{\"a\":false\0}", true);
        CHECK("[1\0\0]", false);
        CHECK("[1\0x]", false);
        CHECK("[\"a\"\0]", false);
}

static void nested(size_t n, const char *inner, bool accept) {
        size_t k = strlen(inner), len = 2 * n + k;
        _cleanup_free_ char *b = malloc(len + 1);

        assert_non_null(b);
        memset(b, '[', n);
        memcpy(b + n, inner, k);
        memset(b + n + k, ']', n);
        assert_int_equal(check_len(b, len), accept);
}

/* jansson counts every value, scalars too, up to 2048. */
static void test_depth(void **state) {
        nested(2048, "", true);
        nested(2049, "", false);
        nested(2047, "1", true);
        nested(2048, "1", false);
        nested(2047, "{}", true);
        nested(2046, "{\"a\":1}", true);
        nested(2047, "{\"a\":1}", false);
        nested(2047, "{\"a\":[]}", false);
        nested(100000, "", false);
}

/* Plain runs of every length around the 8-byte scan, with something to
 * stop at in every position. */
static void test_string_runs(void **state) {
        static const char *const stops[] = { "\"", "\\n", "\\u00e9", "\xc3\xa9", "\x01", "\xc0", "\\", "\xe2\x82" };
        char b[64];

        for (size_t n = 0; n < 20; n++)
                for (size_t s = 0; s < ELEMENTSOF(stops); s++) {
                        int l = snprintf(b, sizeof b, "[\"%.*s%sxyz\"]", (int) n, "abcdefghijklmnopqrstuvw", stops[s]);
                        assert_true(l > 0 && (size_t) l < sizeof b);
                        check_len(b, l);
                }
}

static void test_long(void **state) {
        size_t n = 100000;
        _cleanup_free_ char *b = malloc(n + 16);

        assert_non_null(b);
        b[0] = '[', b[1] = '"';
        for (size_t i = 2; i < n; i++)
                b[i] = (i % 1000 == 0) ? '\\' : (i % 1000 == 1) ? 'n' : 'a' + i % 26;
        memcpy(b + n, "\",2.5]", 6);
        assert_true(check_len(b, n + 6));
        memset(b + 1, '1', n); /* a real of 100000 digits */
        memcpy(b + 1, "0.", 2);
        b[n + 1] = ']';
        assert_true(check_len(b, n + 2));
}

static void test_list_instances(void **state) {
        ACCEPT("{\"parameters\":{\"instances\":[{\"instance\":\"alice_hello_common@1\",\"unit\":"
               "\"alice_hello_common@1.service\",\"number\":1,\"port\":35000,\"url\":\"http://127.0.0.1:35000\","
               "\"enabled\":true,\"active_state\":\"active\",\"sub_state\":\"running\",\"argv\":[\"python3\","
               "\"server.py\",\"--port\",\"35000\"],\"params\":{\"greeting\":\"bench\"}}]}}");
        ACCEPT("{\"method\":\"io.nap.Manager.ListInstances\",\"parameters\":{\"app\":\"hello\"}}");
        ACCEPT("{\"parameters\":{\"index\":0},\"continues\":true}");
}

static void test_null_buffer(void **state) {
        json_t *j = NULL;

        assert_int_equal(nap_json_parse(NULL, 0, &j), -EBADMSG);
        assert_null(j);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_top_level),
                cmocka_unit_test(test_containers),
                cmocka_unit_test(test_duplicates),
                cmocka_unit_test(test_integers),
                cmocka_unit_test(test_reals),
                cmocka_unit_test(test_reals_locale),
                cmocka_unit_test(test_strings),
                cmocka_unit_test(test_utf8),
                cmocka_unit_test(test_nul),
                cmocka_unit_test(test_depth),
                cmocka_unit_test(test_string_runs),
                cmocka_unit_test(test_long),
                cmocka_unit_test(test_list_instances),
                cmocka_unit_test(test_null_buffer),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
