/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The placement policy, on nodes made here (nap_schedule_pick() is pure):
 * the etcd side of placement is tested in test-inventory.c. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "base/strv.h"
#include "cluster/inventory.h"

#define GIB (UINT64_C(1) << 30)

static NapNodeInfo node(const char *name, uint64_t cpu, uint64_t mem, uint64_t used_cpu, uint64_t used_mem, bool ready,
                        const char *labels) {
        NapNodeInfo i = { .ready = ready, .node.capacity = { cpu, mem, 100 * GIB }, .usage = { used_cpu, used_mem, 0 } };
        snprintf(i.node.name, sizeof i.node.name, "%s", name);
        assert_int_equal(nap_labels_parse(labels, &i.node.labels, NULL), 0);
        return i;
}

static NapReservation compute(uint64_t cpu, uint64_t mem) {
        return (NapReservation) { .kind = NAP_RESERVATION_COMPUTE, .name = "alice_x",
                                  .compute = { cpu, cpu, mem, mem } };
}

static void free_nodes(NapNodeInfo *n, size_t k) {
        for (size_t i = 0; i < k; i++)
                nap_node_info_done(n + i);
}

static void test_spread_and_binpack(void **state) {
        NapNodeInfo n[] = {
                node("h1", 4000, 8 * GIB, 3000, 1 * GIB, true, ""),
                node("h2", 4000, 8 * GIB, 1000, 1 * GIB, true, ""),
                node("h3", 4000, 8 * GIB, 2000, 1 * GIB, true, ""),
        };
        NapReservation r = compute(500, GIB);
        assert_int_equal(nap_schedule_pick(n, 3, &r, NAP_POLICY_SPREAD, NULL), 1);  /* least loaded */
        assert_int_equal(nap_schedule_pick(n, 3, &r, NAP_POLICY_BINPACK, NULL), 0); /* most loaded that fits */
        /* memory can be the larger share: h2 has little memory left */
        n[1].usage.memory = 7 * GIB;
        assert_int_equal(nap_schedule_pick(n, 3, &r, NAP_POLICY_SPREAD, NULL), 2);
        free_nodes(n, 3);
}

static void test_exact_fit_passes_and_more_does_not(void **state) {
        NapNodeInfo n[] = { node("h1", 1000, GIB, 500, 0, true, "") };
        NapReservation exact = compute(500, GIB), over = compute(501, GIB);
        assert_int_equal(nap_schedule_pick(n, 1, &exact, NAP_POLICY_SPREAD, NULL), 0);
        assert_int_equal(nap_schedule_pick(n, 1, &over, NAP_POLICY_SPREAD, NULL), -1);
        free_nodes(n, 1);
}

static void test_not_ready_and_labels(void **state) {
        NapNodeInfo n[] = {
                node("h1", 4000, 8 * GIB, 0, 0, false, "gpu=1"),
                node("h2", 4000, 8 * GIB, 3000, 0, true, "gpu=1,zone=a"),
                node("h3", 4000, 8 * GIB, 0, 0, true, "zone=a"),
        };
        NapReservation r = compute(500, GIB);
        _cleanup_strv_free_ char **gpu = NULL, **zone_b = NULL;
        assert_int_equal(nap_labels_parse("gpu=1", &gpu, NULL), 0);
        assert_int_equal(nap_labels_parse("zone=b", &zone_b, NULL), 0);
        /* h1 is emptier but NotReady */
        assert_int_equal(nap_schedule_pick(n, 3, &r, NAP_POLICY_SPREAD, gpu), 1);
        assert_int_equal(nap_schedule_pick(n, 3, &r, NAP_POLICY_SPREAD, zone_b), -1);
        assert_int_equal(nap_schedule_pick(n, 3, &r, NAP_POLICY_SPREAD, NULL), 2);
        free_nodes(n, 3);
}

/* Requests of nothing weigh nothing: the node holding the fewest
 * instances, then the name (cluster apps' placement). */
static void test_counts_break_ties(void **state) {
        NapNodeInfo n[] = {
                node("h1", 4000, 8 * GIB, 0, 0, true, ""),
                node("h2", 4000, 8 * GIB, 0, 0, true, ""),
                node("h3", 4000, 8 * GIB, 0, 0, true, ""),
        };
        NapReservation none = compute(0, 0), some = compute(500, GIB);
        unsigned counts[] = { 2, 1, 1 };
        assert_int_equal(nap_schedule_pick(n, 3, &none, NAP_POLICY_SPREAD, NULL), 0);
        assert_int_equal(nap_schedule_pick_counted(n, 3, &none, NAP_POLICY_SPREAD, NULL, counts), 1);
        counts[1] = 3;
        assert_int_equal(nap_schedule_pick_counted(n, 3, &none, NAP_POLICY_SPREAD, NULL, counts), 2);
        /* the load first: h1 less loaded wins over fewer instances */
        n[1].usage.cpu_milli = n[2].usage.cpu_milli = 1000;
        assert_int_equal(nap_schedule_pick_counted(n, 3, &some, NAP_POLICY_SPREAD, NULL, counts), 0);
        /* NotReady ones are never picked, however empty */
        n[0].ready = false;
        assert_int_equal(nap_schedule_pick_counted(n, 3, &some, NAP_POLICY_SPREAD, NULL, counts), 2);
        free_nodes(n, 3);
}

static void test_ties_go_to_the_first_name(void **state) {
        /* in any order of the array */
        NapNodeInfo n[] = {
                node("h3", 4000, 8 * GIB, 0, 0, true, ""),
                node("h1", 4000, 8 * GIB, 0, 0, true, ""),
                node("h2", 4000, 8 * GIB, 0, 0, true, ""),
        };
        NapReservation r = compute(500, GIB);
        assert_int_equal(nap_schedule_pick(n, 3, &r, NAP_POLICY_SPREAD, NULL), 1);
        assert_int_equal(nap_schedule_pick(n, 3, &r, NAP_POLICY_BINPACK, NULL), 1);
        free_nodes(n, 3);
}

static void test_storage(void **state) {
        NapNodeInfo n[] = { node("h1", 1000, GIB, 0, 0, true, ""), node("h2", 1000, GIB, 0, 0, true, "") };
        n[0].usage.storage = 90 * GIB;
        NapReservation r = { .kind = NAP_RESERVATION_STORAGE, .name = "alice_disk",
                             .storage = { 20 * GIB, 20 * GIB } };
        assert_int_equal(nap_schedule_pick(n, 2, &r, NAP_POLICY_BINPACK, NULL), 1); /* h1 has only 10 G left */
        free_nodes(n, 2);
}

static void test_policy_names(void **state) {
        assert_int_equal(nap_policy_from_string("spread"), NAP_POLICY_SPREAD);
        assert_int_equal(nap_policy_from_string("binpack"), NAP_POLICY_BINPACK);
        assert_true(nap_policy_from_string("random") < 0);
        assert_string_equal(nap_policy_to_string(NAP_POLICY_BINPACK), "binpack");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_spread_and_binpack),
                cmocka_unit_test(test_exact_fit_passes_and_more_does_not),
                cmocka_unit_test(test_not_ready_and_labels),
                cmocka_unit_test(test_ties_go_to_the_first_name),
                cmocka_unit_test(test_counts_break_ties),
                cmocka_unit_test(test_storage),
                cmocka_unit_test(test_policy_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
