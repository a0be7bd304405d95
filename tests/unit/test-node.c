/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "base/strv.h"
#include "model/node.h"

static void test_node_names(void **state) {
        static const char *const good[] = { "h1", "node-1", "a", "0", "x123456789012345678901234567890123456789012345678901234567890ab" };
        static const char *const bad[] = { "", "-a", "a-", "A", "a_b", "a/b", "a.b", "a b", "..",
                                          "x1234567890123456789012345678901234567890123456789012345678901234" };
        for (size_t i = 0; i < ELEMENTSOF(good); i++)
                assert_int_equal(nap_node_name_check(good[i], NULL), 0);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                NapError e = NAP_ERROR_NULL;
                print_message("'%s'\n", bad[i]);
                assert_int_equal(nap_node_name_check(bad[i], &e), -EINVAL);
                assert_int_equal(e.kind, NAP_ERROR_INVALID_NAME);
        }
        assert_int_equal(nap_node_name_check(NULL, NULL), -EINVAL);
}

static void test_reservation_names(void **state) {
        char user[NAP_USER_MAX + 1];
        assert_int_equal(nap_reservation_name_check("alice_web_common@3", user, NULL), 0);
        assert_string_equal(user, "alice");
        assert_int_equal(nap_reservation_name_check("bob_job.1-A", user, NULL), 0);
        assert_string_equal(user, "bob");
        static const char *const bad[] = { "", "alice", "alice_", "_x", "Alice_x", "alice_a/b", "alice_a b",
                                          "alice_a\nb", "a-very-long-user-name-that-is-too-long_x" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(nap_reservation_name_check(bad[i], user, NULL), -EINVAL);
}

static void test_labels(void **state) {
        _cleanup_strv_free_ char **l = NULL, **sel = NULL, **none = NULL;
        assert_int_equal(nap_labels_parse("zone=a,gpu=1", &l, NULL), 0);
        assert_string_equal(l[0], "gpu=1"); /* sorted */
        assert_string_equal(l[1], "zone=a");
        assert_int_equal(nap_labels_parse("gpu=1", &sel, NULL), 0);
        assert_true(nap_labels_match(l, sel));
        assert_int_equal(nap_labels_parse("", &none, NULL), 0);
        assert_null(none);
        assert_true(nap_labels_match(l, none));
        strv_free(sel);
        sel = NULL;
        assert_int_equal(nap_labels_parse("gpu=2", &sel, NULL), 0);
        assert_false(nap_labels_match(l, sel));
        static const char *const bad[] = { "gpu", "=1", "gpu=1,gpu=2", "GPU=1", "a=b c", "a=1,,b=2", "a=x/y" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char **x = NULL;
                print_message("'%s'\n", bad[i]);
                assert_int_equal(nap_labels_parse(bad[i], &x, NULL), -EINVAL);
                assert_null(x);
        }
}

static void test_node_record_round_trip(void **state) {
        NapNode n = { .name = "h1", .address = strdup("10.0.0.1"), .machine_id = "0123456789abcdef0123456789abcdef",
                      .boot_id = "fedcba9876543210fedcba9876543210", .capacity = { 2000, 1 << 30, UINT64_C(1) << 40 },
                      .version = strdup("0.2"), .registered_usec = 1700000000000000 };
        _cleanup_free_ char *json = NULL;
        NapNode back = {};
        assert_int_equal(nap_labels_parse("gpu=1,zone=a", &n.labels, NULL), 0);
        assert_int_equal(nap_node_to_json(&n, &json), 0);
        assert_int_equal(nap_node_from_json(json, strlen(json), &back, NULL), 0);
        assert_string_equal(back.name, "h1");
        assert_string_equal(back.address, "10.0.0.1");
        assert_string_equal(back.boot_id, n.boot_id);
        assert_int_equal(back.capacity.memory, 1 << 30);
        assert_int_equal(back.capacity.storage, UINT64_C(1) << 40);
        assert_true(strv_equal(back.labels, n.labels));
        assert_int_equal(back.registered_usec, n.registered_usec);
        nap_node_done(&back);
        nap_node_done(&n);
}

static void test_node_record_refuses_damage(void **state) {
        static const char *const bad[] = {
                "", "[]", "{}", "{\"name\":\"H1\"}",
                "{\"name\":\"h1\",\"address\":\"a\",\"machine_id\":\"x\",\"boot_id\":\"x\",\"capacity\":{},\"labels\":{},\"version\":\"1\",\"registered\":0}",
                "{\"name\":\"h1\",\"address\":\"a\",\"machine_id\":\"0123456789abcdef0123456789abcdef\",\"boot_id\":\"0123456789abcdef0123456789abcdef\",\"capacity\":{\"cpu_milli\":-1,\"memory\":1,\"storage\":1},\"labels\":{},\"version\":\"1\",\"registered\":0}",
                "{\"name\":\"h1\",\"address\":\"a\",\"machine_id\":\"0123456789abcdef0123456789abcdef\",\"boot_id\":\"0123456789abcdef0123456789abcdef\",\"capacity\":{\"cpu_milli\":1,\"memory\":1,\"storage\":1},\"labels\":{\"a\":\"b/c\"},\"version\":\"1\",\"registered\":0}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                NapNode n = {};
                NapError e = NAP_ERROR_NULL;
                print_message("%s\n", bad[i]);
                assert_true(nap_node_from_json(bad[i], strlen(bad[i]), &n, &e) < 0);
                assert_non_null(strstr(e.message, "damaged"));
        }
}

static void test_reservations_and_usage(void **state) {
        NapReservation r = { .kind = NAP_RESERVATION_COMPUTE, .name = "alice_x", .node = "h1",
                             .compute = { 500, 1000, 64 << 20, 128 << 20 }, .created_usec = 5 };
        NapReservation back = { .kind = NAP_RESERVATION_COMPUTE };
        _cleanup_free_ char *json = NULL, *key = NULL;
        NapUsage u = { 100, 100, 100 };

        assert_int_equal(nap_reservation_to_json(&r, &json), 0);
        assert_int_equal(nap_reservation_from_json(json, strlen(json), &back, NULL), 0);
        assert_true(nap_reservation_same(&r, &back));
        back.compute.limit_memory++;
        assert_false(nap_reservation_same(&r, &back));

        nap_usage_add(&u, &r);
        assert_int_equal(u.cpu_milli, 600);
        assert_int_equal(u.memory, 100 + (64 << 20));
        assert_int_equal(u.storage, 100);
        nap_usage_remove(&u, &r);
        nap_usage_remove(&u, &r); /* never below 0 */
        assert_int_equal(u.cpu_milli, 0);

        key = nap_key_reservation("/nap", &r);
        assert_string_equal(key, "/nap/reservations/h1/compute/alice_x");
}

static void test_keys(void **state) {
        _cleanup_free_ char *node = nap_key_node("/nap", "h1"), *members = nap_key_members("/nap"),
                            *res = nap_key_reservations("/nap", "h1");
        assert_string_equal(node, "/nap/nodes/h1");
        assert_string_equal(members, "/nap/members/");
        _cleanup_free_ char *statuses = nap_key_statuses("/nap"), *usages = nap_key_usages("/nap");
        assert_string_equal(statuses, "/nap/status/");
        assert_string_equal(usages, "/nap/usage/");
        assert_string_equal(res, "/nap/reservations/h1/");
        assert_string_equal(nap_key_node_name("/nap/members/h2", members), "h2");
        assert_null(nap_key_node_name("/nap/members/h2/x", members));
        assert_null(nap_key_node_name("/nap/nodes/h2", members));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_node_names),
                cmocka_unit_test(test_reservation_names),
                cmocka_unit_test(test_labels),
                cmocka_unit_test(test_node_record_round_trip),
                cmocka_unit_test(test_node_record_refuses_damage),
                cmocka_unit_test(test_reservations_and_usage),
                cmocka_unit_test(test_keys),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
