/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "model/endpoint.h"

static NapConfig *config(void) {
        NapConfig *c;
        assert_int_equal(nap_config_new_default(&c), 0);
        return c;
}

static void test_keys(void **state) {
        _cleanup_(nap_config_freep) NapConfig *c = config();
        NapInstance i;
        assert_int_equal(nap_instance_parse("alice_web_common@7", &i, NULL), 0);
        _cleanup_free_ char *url = nap_key_url(c, &i.service), *port = nap_key_port(c, &i.service);
        _cleanup_free_ char *iport = nap_key_instance_port(c, &i), *eps = nap_key_endpoints(c, &i.service);
        _cleanup_free_ char *ep4 = nap_key_endpoint(c, &i.service, "10.0.0.1", 20001);
        _cleanup_free_ char *ep6 = nap_key_endpoint(c, &i.service, "fe80::1", 20001);
        assert_string_equal(url, "/services/url/alice/web");
        assert_string_equal(port, "/services/port/alice/web");
        assert_string_equal(iport, "/services/port/alice/web/7");
        assert_string_equal(eps, "/services/alice_web/");
        assert_string_equal(ep4, "/services/alice_web/10.0.0.1:20001");
        assert_string_equal(ep6, "/services/alice_web/[fe80::1]:20001");

        free(c->etcd_prefix);
        c->etcd_prefix = strdup("/nap/prod");
        _cleanup_free_ char *url2 = nap_key_url(c, &i.service);
        assert_string_equal(url2, "/nap/prod/url/alice/web");
}

static void test_round_trip(void **state) {
        NapEndpoint ep = { .host = (char *) "h1", .port = 20001, .instance = (char *) "alice_web_common@7",
                           .unit = (char *) "alice_web_common@7.service" };
        _cleanup_free_ char *text = nap_endpoint_format(&ep);
        assert_string_equal(text, "{\"host\":\"h1\",\"instance\":\"alice_web_common@7\",\"port\":20001,"
                                  "\"unit\":\"alice_web_common@7.service\"}");
        NapEndpoint back;
        assert_int_equal(nap_endpoint_parse(text, strlen(text), &back, NULL), 0);
        assert_string_equal(back.host, "h1");
        assert_int_equal(back.port, 20001);
        assert_string_equal(back.instance, "alice_web_common@7");
        assert_string_equal(back.unit, "alice_web_common@7.service");
        nap_endpoint_clear(&back);
}

static void refused(const char *text) {
        NapEndpoint ep = {};
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_endpoint_parse(text, strlen(text), &ep, &e), -EBADMSG);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        assert_null(ep.host);
}

static void test_bad_values(void **state) {
        refused("");
        refused("{");
        refused("[]");
        refused("{\"host\":\"h\",\"port\":1,\"instance\":\"alice_web_common@1\"}");
        refused("{\"host\":\"h\",\"port\":\"1\",\"instance\":\"alice_web_common@1\",\"unit\":\"alice_web_common@1.service\"}");
        refused("{\"host\":\"h\",\"port\":0,\"instance\":\"alice_web_common@1\",\"unit\":\"alice_web_common@1.service\"}");
        refused("{\"host\":\"h\",\"port\":65536,\"instance\":\"alice_web_common@1\",\"unit\":\"alice_web_common@1.service\"}");
        refused("{\"host\":\"h\",\"port\":1,\"instance\":\"alice_web_common@1\",\"unit\":\"alice_web_common@2.service\"}");
        refused("{\"host\":\"h\",\"port\":1,\"instance\":\"Alice_web_common@1\",\"unit\":\"Alice_web_common@1.service\"}");
        refused("{\"host\":\"a b\",\"port\":1,\"instance\":\"alice_web_common@1\",\"unit\":\"alice_web_common@1.service\"}");
        refused("{\"host\":\"\",\"port\":1,\"instance\":\"alice_web_common@1\",\"unit\":\"alice_web_common@1.service\"}");
        refused("{\"host\":\"h\",\"port\":1,\"instance\":\"alice_web_common@1\",\"unit\":\"alice_web_common@1.service\",\"x\":1}");
        refused("{\"host\":\"h\",\"host\":\"i\",\"port\":1,\"instance\":\"alice_web_common@1\",\"unit\":\"alice_web_common@1.service\"}");

        char big[NAP_ENDPOINT_VALUE_MAX + 2];
        memset(big, ' ', sizeof big);
        NapEndpoint ep;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_endpoint_parse(big, sizeof big, &ep, &e), -EMSGSIZE);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_keys),
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_bad_values),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
