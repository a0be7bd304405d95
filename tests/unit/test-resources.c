/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "model/resources.h"

static void test_cpu(void **state) {
        static const struct {
                const char *s;
                uint64_t milli;
        } good[] = {
                { "500m", 500 }, { "1m", 1 }, { "0.5", 500 }, { "2", 2000 }, { "1.25", 1250 }, { "0.001", 1 },
                { "1024", 1024000 }, { "1024000m", 1024000 },
        };
        static const char *const bad[] = {
                "", "m", "0", "0m", "0.0", "-1", "+1", "1.2345", "1e3", " 1", "1 ", "1.", ".5m", "5.5m", "1mm",
                "1025", "99999999999999999999999", "0x10", "1,5",
        };
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                uint64_t v = 0;
                NapError e = NAP_ERROR_NULL;
                print_message("%s\n", good[i].s);
                assert_int_equal(nap_cpu_parse(good[i].s, &v, &e), 0);
                assert_int_equal(v, good[i].milli);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                uint64_t v = 77;
                NapError e = NAP_ERROR_NULL;
                print_message("'%s'\n", bad[i]);
                assert_true(nap_cpu_parse(bad[i], &v, &e) < 0);
                assert_int_equal(v, 77);
                assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        }
}

static void test_bytes(void **state) {
        static const struct {
                const char *s;
                uint64_t bytes;
        } good[] = {
                { "1", 1 },
                { "67108864", 67108864 },
                { "64M", 64 << 20 },
                { "64Mi", 64 << 20 },
                { "64MB", 64 << 20 },
                { "1.5G", UINT64_C(3) << 29 },
                { "1K", 1024 },
                { "2T", UINT64_C(2) << 40 },
                { "1048576T", UINT64_C(1) << 60 },
        };
        static const char *const bad[] = {
                "", "0", "0M", "-1", "1X", "1KK", "1 M", "M", "1.5", "1.0001K", "1048577T", "99999999999999999999999",
                "1P", "1k",
        };
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                uint64_t v = 0;
                print_message("%s\n", good[i].s);
                assert_int_equal(nap_bytes_parse(good[i].s, &v, NULL), 0);
                assert_int_equal(v, good[i].bytes);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                uint64_t v = 77;
                print_message("'%s'\n", bad[i]);
                assert_true(nap_bytes_parse(bad[i], &v, NULL) < 0);
                assert_int_equal(v, 77);
        }
}

static void test_amounts(void **state) {
        uint64_t req, lim;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_cpu_amount_parse("250m:1", &req, &lim, NULL), 0);
        assert_int_equal(req, 250);
        assert_int_equal(lim, 1000);
        assert_int_equal(nap_cpu_amount_parse("500m", &req, &lim, NULL), 0);
        assert_int_equal(req, 500);
        assert_int_equal(lim, 500);
        assert_int_equal(nap_bytes_amount_parse("64M:128M", &req, &lim, NULL), 0);
        assert_int_equal(req, 64 << 20);
        assert_int_equal(lim, 128 << 20);
        assert_true(nap_cpu_amount_parse("1:500m", &req, &lim, &e) < 0);
        assert_non_null(strstr(e.message, "below the request"));
        assert_true(nap_cpu_amount_parse("1:", &req, &lim, NULL) < 0);
        assert_true(nap_cpu_amount_parse(":1", &req, &lim, NULL) < 0);
        assert_true(nap_cpu_amount_parse("1:2:3", &req, &lim, NULL) < 0);
        char longer[200];
        memset(longer, '1', sizeof longer - 1);
        longer[sizeof longer - 1] = 0;
        assert_true(nap_bytes_amount_parse(longer, &req, &lim, NULL) < 0);
}

static void test_checks(void **state) {
        NapCompute c = { .request_cpu_milli = 500 };
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_compute_check(&c, NULL), 0);
        assert_int_equal(c.limit_cpu_milli, 500); /* limit 0: as the request */
        NapCompute none = {};
        assert_true(nap_compute_check(&none, &e) < 0);
        NapCompute limit_only = { .limit_memory = 10 };
        assert_true(nap_compute_check(&limit_only, NULL) < 0);
        NapCompute absurd = { .request_memory = NAP_BYTES_MAX + 1 };
        e = NAP_ERROR_NULL;
        assert_true(nap_compute_check(&absurd, &e) < 0);
        assert_non_null(strstr(e.message, "absurd"));
        NapStorage s = { .request_bytes = 10, .limit_bytes = 5 };
        assert_true(nap_storage_check(&s, NULL) < 0);
}

static void test_format_reads_back(void **state) {
        static const uint64_t cpus[] = { 1, 500, 1000, 1250, 2000, NAP_CPU_MILLI_MAX };
        static const uint64_t sizes[] = { 1, 1000, 1024, 1536, 64 << 20, UINT64_C(3) << 29, NAP_BYTES_MAX };
        char buf[NAP_AMOUNT_STRING_MAX];
        for (size_t i = 0; i < ELEMENTSOF(cpus); i++) {
                uint64_t v;
                assert_int_equal(nap_cpu_parse(nap_cpu_format(cpus[i], buf), &v, NULL), 0);
                assert_int_equal(v, cpus[i]);
        }
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                uint64_t v;
                assert_int_equal(nap_bytes_parse(nap_bytes_format(sizes[i], buf), &v, NULL), 0);
                assert_int_equal(v, sizes[i]);
        }
        assert_string_equal(nap_bytes_format(64 << 20, buf), "64M");
        assert_string_equal(nap_bytes_format_human(64 << 20, buf), "64M");
        assert_string_equal(nap_bytes_format_human(UINT64_C(12341872) << 10, buf), "11.8G");
        assert_string_equal(nap_bytes_format_human(1000, buf), "1000");
        assert_string_equal(nap_cpu_format(500, buf), "500m");
}

static void test_unit_settings(void **state) {
        char buf[NAP_AMOUNT_STRING_MAX];
        assert_string_equal(nap_cpu_quota_format(500, buf), "50%");
        assert_string_equal(nap_cpu_quota_format(125, buf), "12.5%");
        assert_string_equal(nap_cpu_quota_format(2000, buf), "200%");
        /* Kubernetes' conversion: 1 CPU (1024 shares) is weight 39, the
         * cgroup v2 default 100 is about 2.5 CPUs; never 0, never > 10000 */
        assert_int_equal(nap_cpu_weight(1000), 39);
        assert_int_equal(nap_cpu_weight(1), 1);
        assert_int_equal(nap_cpu_weight(NAP_CPU_MILLI_MAX), 10000);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cpu),           cmocka_unit_test(test_bytes),
                cmocka_unit_test(test_amounts),       cmocka_unit_test(test_checks),
                cmocka_unit_test(test_format_reads_back), cmocka_unit_test(test_unit_settings),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
