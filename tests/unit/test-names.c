/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "model/names.h"

static char *repeat(char c, size_t n) {
        char *s = malloc(n + 1);
        assert_non_null(s);
        memset(s, c, n);
        s[n] = 0;
        return s;
}

static void test_kind_strings(void **state) {
        for (int k = 0; k < _NAP_KIND_MAX; k++) {
                assert_non_null(nap_kind_to_string(k));
                assert_int_equal(nap_kind_from_string(nap_kind_to_string(k)), k);
        }
        assert_string_equal(nap_kind_to_string(NAP_KIND_COMMON), "common");
        assert_string_equal(nap_kind_to_string(NAP_KIND_MPI_MASTER), "mpi_master");
        assert_string_equal(nap_kind_to_string(NAP_KIND_MPI_SLAVE), "mpi_slave");
        assert_null(nap_kind_to_string(_NAP_KIND_MAX));
        assert_null(nap_kind_to_string(-1));
        assert_int_equal(nap_kind_from_string("Common"), -EINVAL);
        assert_int_equal(nap_kind_from_string("mpi"), -EINVAL);
        assert_int_equal(nap_kind_from_string(""), -EINVAL);
        assert_int_equal(nap_kind_from_string(NULL), -EINVAL);
        assert_true(nap_kind_has_number(NAP_KIND_COMMON));
        assert_true(nap_kind_has_number(NAP_KIND_MPI_MASTER)); /* its job */
        assert_true(nap_kind_has_number(NAP_KIND_MPI_SLAVE));
}

static void test_user_names(void **state) {
        _cleanup_free_ char *max = repeat('a', NAP_USER_MAX), *over = repeat('a', NAP_USER_MAX + 1),
                            *huge = repeat('a', 200);
        static const char *const good[] = { "a", "alice", "a-1", "z9", "a--", "bob-smith" };
        static const char *const bad[] = { "", "A", "Alice", "a_b", "a/b", "..", ".", "a.b", "1a", "-a", "a b",
                                           "é", "a\n", "a:b", "a@b", "../x", "~a" };
        for (size_t i = 0; i < ELEMENTSOF(good); i++)
                assert_true(nap_user_is_valid(good[i]));
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (nap_user_is_valid(bad[i]))
                        fail_msg("user name '%s' accepted", bad[i]);
        assert_true(nap_user_is_valid(max));
        assert_false(nap_user_is_valid(over));
        assert_false(nap_user_is_valid(huge));
        assert_false(nap_user_is_valid(NULL));
}

static void test_app_names(void **state) {
        _cleanup_free_ char *max = repeat('b', NAP_APP_MAX), *over = repeat('b', NAP_APP_MAX + 1),
                            *huge = repeat('b', 200);
        assert_true(nap_app_is_valid("web"));
        assert_true(nap_app_is_valid("my-app-2"));
        assert_true(nap_app_is_valid(max));
        assert_false(nap_app_is_valid(over));
        assert_false(nap_app_is_valid(huge));
        assert_false(nap_app_is_valid("my_app"));
        assert_false(nap_app_is_valid("My-app"));
        assert_false(nap_app_is_valid("app/x"));
        assert_false(nap_app_is_valid(".."));
        assert_false(nap_app_is_valid(""));
        assert_false(nap_app_is_valid(NULL));
        /* A user name of 33 characters is a fine app name. */
        _cleanup_free_ char *u33 = repeat('c', NAP_USER_MAX + 1);
        assert_true(nap_app_is_valid(u33));
}

static void test_service_from_parts(void **state) {
        NapService s;
        NapError e = NAP_ERROR_NULL;
        char buf[NAP_SERVICE_NAME_MAX];
        assert_int_equal(nap_service_from_parts("alice", "web", &s, &e), 0);
        assert_string_equal(s.user, "alice");
        assert_string_equal(s.app, "web");
        assert_string_equal(nap_service_name(&s, buf), "alice_web");

        assert_int_equal(nap_service_from_parts("Alice", "web", &s, &e), -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_NAME);
        assert_string_equal(e.message, "Invalid user name 'Alice': must match [a-z][a-z0-9-]{0,31}");
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_service_from_parts("alice", "we_b", &s, &e), -EINVAL);
        assert_string_equal(e.message, "Invalid app name 'we_b': must match [a-z][a-z0-9-]{0,47}");
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_service_from_parts(NULL, "web", &s, &e), -EINVAL);
        assert_string_equal(e.message, "Invalid user name '': must match [a-z][a-z0-9-]{0,31}");
}

static void test_service_longest(void **state) {
        _cleanup_free_ char *u = repeat('u', NAP_USER_MAX), *a = repeat('a', NAP_APP_MAX);
        NapService s;
        char buf[NAP_SERVICE_NAME_MAX], name[NAP_SERVICE_NAME_MAX];
        assert_int_equal(nap_service_from_parts(u, a, &s, NULL), 0);
        snprintf(name, sizeof name, "%s_%s", u, a);
        assert_string_equal(nap_service_name(&s, buf), name);
        NapService t;
        assert_int_equal(nap_service_parse(name, &t, NULL), 0);
        assert_string_equal(t.user, u);
        assert_string_equal(t.app, a);
}

static void test_service_parse(void **state) {
        NapService s;
        assert_int_equal(nap_service_parse("alice_web", &s, NULL), 0);
        assert_string_equal(s.user, "alice");
        assert_string_equal(s.app, "web");
        assert_int_equal(nap_service_parse("a-1_b-2", &s, NULL), 0);
        assert_string_equal(s.user, "a-1");
        assert_string_equal(s.app, "b-2");

        _cleanup_free_ char *huge = repeat('a', 200);
        static const char *const bad[] = { "alice", "alice_", "_web", "alice_web_x", "alice__web", "Alice_web",
                                           "alice_Web", "al/ce_web", "alice_w/b", "../x_y", "alice_..", "",
                                           "alice_web\n", "alice web_x" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                NapError e = NAP_ERROR_NULL;
                if (nap_service_parse(bad[i], &s, &e) != -EINVAL)
                        fail_msg("service name '%s' accepted", bad[i]);
                assert_int_equal(e.kind, NAP_ERROR_INVALID_NAME);
        }
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_service_parse(huge, &s, &e), -EINVAL);
        assert_int_equal(nap_service_parse(NULL, &s, NULL), -EINVAL);
}

static void test_messages_are_safe(void **state) {
        NapService s;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_service_parse("ali\nce_w\x1b[31m", &s, &e), -EINVAL);
        assert_string_equal(e.message, "Invalid service name 'ali?ce_w?[31m': expected USER_APP, "
                                       "user [a-z][a-z0-9-]{0,31}, app [a-z][a-z0-9-]{0,47}");
        _cleanup_free_ char *huge = repeat('x', 200);
        char expected[256];
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_service_from_parts(huge, "web", &s, &e), -EINVAL);
        snprintf(expected, sizeof expected, "Invalid user name '%.64s…': must match [a-z][a-z0-9-]{0,31}", huge);
        assert_string_equal(e.message, expected);
}

static void test_instance_number(void **state) {
        unsigned n = 7;
        assert_int_equal(nap_instance_number_parse("1", &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(nap_instance_number_parse("999999999", &n), 0);
        assert_int_equal(n, 999999999);
        assert_int_equal(nap_instance_number_parse("1000000000", &n), -ERANGE);
        assert_int_equal(nap_instance_number_parse("18446744073709551617", &n), -ERANGE);
        static const char *const bad[] = { "0", "01", "", "+1", "-1", " 1", "1 ", "1x", "x", "0x1", "1.0" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                n = 7;
                if (nap_instance_number_parse(bad[i], &n) != -EINVAL)
                        fail_msg("instance number '%s' accepted", bad[i]);
                assert_int_equal(n, 7);
        }
        assert_int_equal(nap_instance_number_parse(NULL, &n), -EINVAL);
}

static void test_instance_parse(void **state) {
        NapInstance i;
        char buf[NAP_UNIT_NAME_MAX];

        assert_int_equal(nap_instance_parse("alice_web_common@3", &i, NULL), 0);
        assert_string_equal(i.service.user, "alice");
        assert_string_equal(i.service.app, "web");
        assert_int_equal(i.kind, NAP_KIND_COMMON);
        assert_int_equal(i.number, 3);
        assert_string_equal(nap_instance_name(&i, buf), "alice_web_common@3");
        assert_string_equal(nap_instance_unit_name(&i, buf), "alice_web_common@3.service");
        assert_string_equal(nap_instance_template_name(&i, buf), "alice_web_common@.service");

        /* a master per job: the job's number */
        assert_int_equal(nap_instance_parse("bob_sim_mpi_master@4.service", &i, NULL), 0);
        assert_int_equal(i.kind, NAP_KIND_MPI_MASTER);
        assert_int_equal(i.number, 4);
        assert_string_equal(nap_instance_name(&i, buf), "bob_sim_mpi_master@4");
        assert_string_equal(nap_instance_unit_name(&i, buf), "bob_sim_mpi_master@4.service");
        assert_string_equal(nap_instance_template_name(&i, buf), "bob_sim_mpi_master@.service");
        assert_int_equal(nap_instance_parse("bob_sim_mpi_master.service", &i, NULL), -EINVAL);

        assert_int_equal(nap_instance_parse("bob_sim_mpi_slave@999999999.service", &i, NULL), 0);
        assert_int_equal(i.kind, NAP_KIND_MPI_SLAVE);
        assert_int_equal(i.number, 999999999);
        assert_string_equal(nap_instance_template_name(&i, buf), "bob_sim_mpi_slave@.service");
}

static void test_instance_parse_bad(void **state) {
        static const char *const bad[] = {
                "alice_web_common", "alice_web_common@", "alice_web_common@0", "alice_web_common@01",
                "alice_web_common@1000000000", "alice_web_common@-1", "alice_web_common@+1", "alice_web_common@1x",
                "alice_web_common@1@2", "alice_web_mpi_master", "alice_web_mpi_slave", "alice_web_foo@1",
                "alice_web_Common@1", "alice_web", "alice", "", ".service", "alice_web_common@1.service.service",
                "alice_web_common@1.socket", "Alice_web_common@1", "alice_We_common@1", "al/ce_web_common@1",
                "alice_../_common@1", "_web_common@1", "alice__common@1", "alice_web_common@1\n",
                "alice_web_common@1 ", "alice_web_mpi@1", "alice_web_mpi_masterx",
        };
        for (size_t k = 0; k < ELEMENTSOF(bad); k++) {
                NapInstance i;
                NapError e = NAP_ERROR_NULL;
                if (nap_instance_parse(bad[k], &i, &e) != -EINVAL)
                        fail_msg("instance name '%s' accepted", bad[k]);
                assert_int_equal(e.kind, NAP_ERROR_INVALID_NAME);
        }
        NapInstance i;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_instance_parse("alice_web", &i, &e), -EINVAL);
        assert_string_equal(e.message, "Invalid instance name 'alice_web': expected USER_APP_common@N, "
                                       "USER_APP_mpi_master@N or USER_APP_mpi_slave@N");
        _cleanup_free_ char *huge = repeat('a', 300);
        assert_int_equal(nap_instance_parse(huge, &i, NULL), -EINVAL);
        assert_int_equal(nap_instance_parse(NULL, &i, NULL), -EINVAL);
}

static void test_instance_longest(void **state) {
        _cleanup_free_ char *u = repeat('u', NAP_USER_MAX), *a = repeat('a', NAP_APP_MAX);
        char name[NAP_UNIT_NAME_MAX], buf[NAP_UNIT_NAME_MAX];
        NapInstance i;
        snprintf(name, sizeof name, "%s_%s_mpi_slave@999999999.service", u, a);
        assert_int_equal(nap_instance_parse(name, &i, NULL), 0);
        assert_string_equal(nap_instance_unit_name(&i, buf), name);
}

static void test_instance_round_trip(void **state) {
        static const char *const names[] = { "a_b_common@1", "x-1_y-2_mpi_master@1", "u_app_mpi_slave@42" };
        for (size_t k = 0; k < ELEMENTSOF(names); k++) {
                NapInstance i;
                char buf[NAP_UNIT_NAME_MAX], unit[NAP_UNIT_NAME_MAX];
                assert_int_equal(nap_instance_parse(names[k], &i, NULL), 0);
                assert_string_equal(nap_instance_name(&i, buf), names[k]);
                snprintf(unit, sizeof unit, "%s.service", names[k]);
                assert_string_equal(nap_instance_unit_name(&i, buf), unit);
        }
}

static void test_env_name(void **state) {
        NapError e = NAP_ERROR_NULL;
        const char *good[] = { "A", "_", "greeting", "DATABASE_URL", "x1", "Z_9_z" };
        const char *bad[] = { "", "1A", "A-B", "A B", "A=B", "Ä", "A.B", "$A" };
        const char *reserved[] = { "PORT", "NOTIFY_SOCKET", "LISTEN_FDS", "INVOCATION_ID", "PODMAN_SYSTEMD_UNIT", "port" };
        for (size_t i = 0; i < ELEMENTSOF(good); i++)
                assert_int_equal(nap_env_name_check(good[i], NULL), 0);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                e = NAP_ERROR_NULL;
                assert_int_equal(nap_env_name_check(bad[i], &e), -EINVAL);
                assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
                assert_non_null(strstr(e.message, "[A-Za-z_][A-Za-z0-9_]{0,63}"));
        }
        for (size_t i = 0; i < ELEMENTSOF(reserved); i++) {
                e = NAP_ERROR_NULL;
                assert_int_equal(nap_env_name_check(reserved[i], &e), -EINVAL);
                assert_non_null(strstr(e.message, reserved[i]));
                assert_non_null(strstr(e.message, "set by nap or systemd"));
        }
        char longest[NAP_ENV_NAME_MAX + 2];
        memset(longest, 'A', sizeof longest);
        longest[NAP_ENV_NAME_MAX] = 0;
        assert_int_equal(nap_env_name_check(longest, NULL), 0);
        longest[NAP_ENV_NAME_MAX] = 'A';
        longest[NAP_ENV_NAME_MAX + 1] = 0;
        assert_int_equal(nap_env_name_check(longest, NULL), -EINVAL);
        assert_int_equal(nap_env_name_check(NULL, NULL), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_kind_strings),
                cmocka_unit_test(test_user_names),
                cmocka_unit_test(test_app_names),
                cmocka_unit_test(test_service_from_parts),
                cmocka_unit_test(test_service_longest),
                cmocka_unit_test(test_service_parse),
                cmocka_unit_test(test_messages_are_safe),
                cmocka_unit_test(test_instance_number),
                cmocka_unit_test(test_instance_parse),
                cmocka_unit_test(test_instance_parse_bad),
                cmocka_unit_test(test_instance_longest),
                cmocka_unit_test(test_instance_round_trip),
                cmocka_unit_test(test_env_name),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
