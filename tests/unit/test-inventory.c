/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* lib/cluster/inventory against a real etcd: nodes registering, readiness,
 * reservations admitted against capacity under concurrency, placement.
 * (The policy alone is test-schedule.c; agents on real hosts are the
 * integration tests'.) */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <inttypes.h>
#include <pthread.h>

#include "base/clock.h"
#include "base/strv.h"
#include "cluster/inventory.h"
#include "test-etcd-server.h"

#define PREFIX "/test-nap"
#define GIB (UINT64_C(1) << 30)

#include "test-nodes.h"


static NapReservation compute(const char *node, const char *name, uint64_t cpu, uint64_t mem) {
        NapReservation r = { .kind = NAP_RESERVATION_COMPUTE, .compute = { cpu, 0, mem, 0 } };
        snprintf(r.node, sizeof r.node, "%s", node);
        snprintf(r.name, sizeof r.name, "%s", name);
        return r;
}

static NapNodeInfo get(const char *name) {
        NapNodeInfo i = {};
        NapError e = NAP_ERROR_NULL;
        if (nap_node_get(etcd, PREFIX, name, &i, &e) < 0)
                fail_msg("%s", e.message);
        return i;
}

static void wipe(void) {
        assert_int_equal(etcd_delete(etcd, PREFIX "/", true, NULL, NULL), 0);
}

static void test_register_ready_and_leave(void **state) {
        REQUIRE_ETCD();
        wipe();
        int64_t lease = join("h1", 2000, GIB, "zone=a");
        NapNodeInfo i = get("h1");
        assert_true(i.ready);
        assert_int_equal(i.node.capacity.cpu_milli, 2000);
        assert_string_equal(i.node.labels[0], "zone=a");
        nap_node_info_done(&i);

        /* registering again (an agent restart) keeps one record */
        lease = join("h1", 2000, GIB, "zone=a");
        NapNodeInfo *l = NULL;
        size_t n = 0;
        assert_int_equal(nap_nodes_list(etcd, PREFIX, &l, &n, NULL), 0);
        assert_int_equal(n, 1);
        nap_node_info_array_free(l, n);

        /* the clean stop: record, then membership */
        assert_int_equal(nap_node_deregister(etcd, PREFIX, "h1", lease, NULL), 0);
        NapError e = NAP_ERROR_NULL;
        NapNodeInfo gone = {};
        assert_int_equal(nap_node_get(etcd, PREFIX, "h1", &gone, &e), -ENOENT);
        assert_int_equal(e.kind, NAP_ERROR_NO_SUCH_NODE);
        assert_int_equal(etcd_get(etcd, PREFIX "/members/h1", NULL, NULL), 0);
}

static void test_not_ready_when_membership_lapses(void **state) {
        REQUIRE_ETCD();
        wipe();
        int64_t lease = join("h1", 2000, GIB, "");
        (void) join("h2", 2000, GIB, "");
        /* h1's agent dies: its lease is revoked (what expiry does) */
        assert_int_equal(etcd_lease_revoke(etcd, lease, NULL), 0);
        NapNodeInfo i = get("h1");
        assert_false(i.ready);
        assert_null(i.status.reason); /* nobody noted it yet */
        nap_node_info_done(&i);
        /* h2's agent notes it, once */
        assert_int_equal(nap_nodes_mark_not_ready(etcd, PREFIX, "lease expired", 42, NULL, NULL), 1);
        assert_int_equal(nap_nodes_mark_not_ready(etcd, PREFIX, "lease expired", 43, NULL, NULL), 0);
        i = get("h1");
        assert_false(i.ready);
        assert_string_equal(i.status.reason, "lease expired");
        assert_int_equal(i.status.since_usec, 42);
        nap_node_info_done(&i);
        /* back: Ready, the status gone */
        (void) join("h1", 2000, GIB, "");
        i = get("h1");
        assert_true(i.ready);
        assert_null(i.status.reason);
        nap_node_info_done(&i);
}

static void test_reserve_and_release(void **state) {
        NapError e = NAP_ERROR_NULL;
        REQUIRE_ETCD();
        wipe();
        (void) join("h1", 1000, GIB, "");
        NapReservation a = compute("h1", "alice_a", 600, GIB / 2), b = compute("h1", "bob_b", 400, GIB / 2);
        assert_int_equal(nap_reserve(etcd, PREFIX, &a, NULL), 1);
        assert_int_equal(a.compute.limit_cpu_milli, 600); /* limit 0: the request */
        /* an exact fit passes */
        assert_int_equal(nap_reserve(etcd, PREFIX, &b, NULL), 1);
        NapNodeInfo i = get("h1");
        assert_int_equal(i.usage.cpu_milli, 1000);
        assert_int_equal(i.usage.memory, GIB);
        nap_node_info_done(&i);

        /* one more milli-core does not; the error says which and how much */
        NapReservation c = compute("h1", "carol_c", 1, 0);
        assert_int_equal(nap_reserve(etcd, PREFIX, &c, &e), -ENOSPC);
        assert_int_equal(e.kind, NAP_ERROR_INSUFFICIENT_RESOURCES);
        assert_string_equal(e.message, "Node h1 has not enough cpu_milli: total=1000, used=1000, requested=1");

        /* the same again: nothing changes; another under the name: refused */
        NapReservation again = compute("h1", "alice_a", 600, GIB / 2);
        assert_int_equal(nap_reserve(etcd, PREFIX, &again, NULL), 0);
        assert_int_equal(again.created_usec, a.created_usec); /* the first one's */
        NapReservation other = compute("h1", "alice_a", 100, 0);
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_reserve(etcd, PREFIX, &other, &e), -EEXIST);
        assert_int_equal(e.kind, NAP_ERROR_RESERVATION_EXISTS);

        NapReservation *l = NULL;
        size_t n = 0;
        assert_int_equal(nap_reservations_list(etcd, PREFIX, "h1", &l, &n, NULL), 0);
        assert_int_equal(n, 2);
        assert_string_equal(l[0].name, "alice_a");
        free(l);

        assert_int_equal(nap_release(etcd, PREFIX, NAP_RESERVATION_COMPUTE, "h1", "alice_a", NULL), 0);
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_release(etcd, PREFIX, NAP_RESERVATION_COMPUTE, "h1", "alice_a", &e), -ENOENT);
        assert_int_equal(e.kind, NAP_ERROR_NO_SUCH_RESERVATION);
        i = get("h1");
        assert_int_equal(i.usage.cpu_milli, 400);
        nap_node_info_done(&i);
}

static void test_bad_input_changes_nothing(void **state) {
        REQUIRE_ETCD();
        wipe();
        (void) join("h1", 1000, GIB, "");
        struct {
                NapReservation r;
                NapErrorKind kind;
        } bad[] = {
                { compute("h9", "alice_a", 100, 0), NAP_ERROR_NO_SUCH_NODE },
                { compute("h/1", "alice_a", 100, 0), NAP_ERROR_INVALID_NAME },
                { compute("h1", "alice/a", 100, 0), NAP_ERROR_INVALID_NAME },
                { compute("h1", "noowner", 100, 0), NAP_ERROR_INVALID_NAME },
                { compute("h1", "alice_a", 0, 0), NAP_ERROR_INVALID_PARAMETER },
                { compute("h1", "alice_a", NAP_CPU_MILLI_MAX + 1, 0), NAP_ERROR_INVALID_PARAMETER },
                { compute("h1", "alice_a", 100, NAP_BYTES_MAX + 1), NAP_ERROR_INVALID_PARAMETER },
        };
        for (size_t k = 0; k < ELEMENTSOF(bad); k++) {
                NapError e = NAP_ERROR_NULL;
                print_message("%s %s\n", bad[k].r.node, bad[k].r.name);
                assert_true(nap_reserve(etcd, PREFIX, &bad[k].r, &e) < 0);
                assert_int_equal(e.kind, bad[k].kind);
        }
        NapReservation below = compute("h1", "alice_a", 100, 0);
        below.compute.limit_cpu_milli = 50;
        assert_true(nap_reserve(etcd, PREFIX, &below, NULL) < 0);
        NapNodeInfo i = get("h1");
        assert_int_equal(i.usage.cpu_milli, 0);
        assert_int_equal(i.usage_revision, 0); /* never written */
        nap_node_info_done(&i);
        assert_int_equal(etcd_get(etcd, PREFIX "/names/compute/alice_a", NULL, NULL), 0);
}

typedef struct Racer {
        const char *url;
        int index;
        int result;
} Racer;

static void *race(void *userdata) {
        Racer *x = userdata;
        _cleanup_(etcd_client_freep) EtcdClient *c = client_for(x->url);
        char name[32];
        snprintf(name, sizeof name, "alice_r%d", x->index);
        NapReservation r = compute("h1", name, 40, 1 << 20);
        x->result = nap_reserve(c, PREFIX, &r, NULL);
        return NULL;
}

/* 100 clients at once, room for exactly 50: 50 win, the usage is the sum
 * of what was granted, nothing is over-committed. */
static void test_concurrent_reservations_never_overcommit(void **state) {
        pthread_t t[100];
        Racer x[100];
        int won = 0, refused = 0;
        REQUIRE_ETCD();
        wipe();
        (void) join("h1", 2000, 100 * GIB, "");
        for (int i = 0; i < 100; i++) {
                x[i] = (Racer) { .url = shared_etcd.url, .index = i };
                assert_int_equal(pthread_create(t + i, NULL, race, x + i), 0);
        }
        for (int i = 0; i < 100; i++) {
                assert_int_equal(pthread_join(t[i], NULL), 0);
                won += x[i].result == 1;
                refused += x[i].result == -ENOSPC;
        }
        print_message("%d reserved, %d refused\n", won, refused);
        assert_int_equal(won, 50);
        assert_int_equal(refused, 50);
        NapNodeInfo i = get("h1");
        NapReservation *l = NULL;
        size_t n = 0;
        assert_int_equal(nap_reservations_list(etcd, PREFIX, "h1", &l, &n, NULL), 0);
        uint64_t sum = 0;
        for (size_t k = 0; k < n; k++)
                sum += l[k].compute.request_cpu_milli;
        assert_int_equal(n, 50);
        assert_int_equal(i.usage.cpu_milli, sum);
        assert_int_equal(i.usage.cpu_milli, 2000);
        free(l);
        nap_node_info_done(&i);
}

static void test_schedule_spreads_and_batches(void **state) {
        NapError e = NAP_ERROR_NULL;
        NapReservation *placed = NULL;
        REQUIRE_ETCD();
        wipe();
        (void) join("h1", 4000, 4 * GIB, "zone=a");
        (void) join("h2", 4000, 4 * GIB, "zone=b");
        int64_t gone = join("h3", 4000, 4 * GIB, "zone=a");
        assert_int_equal(etcd_lease_revoke(etcd, gone, NULL), 0); /* NotReady: never picked */

        NapReservation r = compute("", "alice_job", 1000, GIB);
        assert_int_equal(nap_schedule(etcd, PREFIX, &r, 4, NAP_POLICY_SPREAD, NULL, &placed, &e), 0);
        /* spread: h1 h2 h1 h2, each seeing the ones before */
        assert_string_equal(placed[0].node, "h1");
        assert_string_equal(placed[1].node, "h2");
        assert_string_equal(placed[2].node, "h1");
        assert_string_equal(placed[3].node, "h2");
        assert_string_equal(placed[3].name, "alice_job.4");
        free(placed);
        NapNodeInfo i = get("h2");
        assert_int_equal(i.usage.cpu_milli, 2000);
        nap_node_info_done(&i);

        /* binpack on zone=a: h1 again (h3 has the label but is NotReady) */
        _cleanup_strv_free_ char **zone_a = NULL;
        assert_int_equal(nap_labels_parse("zone=a", &zone_a, NULL), 0);
        NapReservation one = compute("", "alice_one", 500, 0);
        assert_int_equal(nap_schedule(etcd, PREFIX, &one, 1, NAP_POLICY_BINPACK, zone_a, &placed, NULL), 0);
        assert_string_equal(placed[0].node, "h1");
        assert_string_equal(placed[0].name, "alice_one");
        free(placed);

        /* all or nothing: 3 more of 1000m fit (h1 500m left, h2 2000m) —
         * not 4 */
        NapReservation big = compute("", "alice_big", 1000, 0);
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_schedule(etcd, PREFIX, &big, 4, NAP_POLICY_SPREAD, NULL, &placed, &e), -ENOSPC);
        assert_int_equal(e.kind, NAP_ERROR_INSUFFICIENT_RESOURCES);
        assert_int_equal(etcd_get(etcd, PREFIX "/names/compute/alice_big.1", NULL, NULL), 0);
        i = get("h2");
        assert_int_equal(i.usage.cpu_milli, 2000);
        nap_node_info_done(&i);
}

static void test_delete_node(void **state) {
        NapError e = NAP_ERROR_NULL;
        REQUIRE_ETCD();
        wipe();
        (void) join("h1", 1000, GIB, "");
        NapReservation r = compute("h1", "alice_a", 100, 0);
        assert_int_equal(nap_reserve(etcd, PREFIX, &r, NULL), 1);
        assert_int_equal(nap_node_delete(etcd, PREFIX, "h1", false, &e), -EBUSY);
        assert_int_equal(e.kind, NAP_ERROR_NODE_IN_USE);
        assert_int_equal(nap_node_delete(etcd, PREFIX, "h1", true, NULL), 0);
        EtcdRange left = {};
        assert_int_equal(etcd_range_prefix(etcd, PREFIX "/", 0, true, &left, NULL), 0);
        assert_int_equal(left.n_kvs, 0); /* record, usage, membership, reservation and its name */
        etcd_range_done(&left);
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_node_delete(etcd, PREFIX, "h1", false, &e), -ENOENT);
        assert_int_equal(e.kind, NAP_ERROR_NO_SUCH_NODE);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_register_ready_and_leave),
                cmocka_unit_test(test_not_ready_when_membership_lapses),
                cmocka_unit_test(test_reserve_and_release),
                cmocka_unit_test(test_bad_input_changes_nothing),
                cmocka_unit_test(test_concurrent_reservations_never_overcommit),
                cmocka_unit_test(test_schedule_spreads_and_batches),
                cmocka_unit_test(test_delete_node),
        };
        return cmocka_run_group_tests(tests, shared_etcd_group_setup, shared_etcd_group_teardown);
}
