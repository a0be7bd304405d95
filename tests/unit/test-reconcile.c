/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* lib/cluster/reconcile: which nodes are due and where their assignments
 * go (pure), and against a real etcd: the leader election on its lease,
 * a move in one guarded txn (a stale read or a deposed leader writes
 * nothing), and a round moving a dead node's assignments with its
 * reservations released and its stale discovery endpoints removed. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cluster/reconcile.h"
#include "model/endpoint.h"
#include "test-etcd-server.h"

#define PREFIX "/test-nap"
#define GIB (UINT64_C(1) << 30)
#define SEC UINT64_C(1000000)

#include "test-nodes.h"

static void wipe(void) {
        assert_int_equal(etcd_delete(etcd, PREFIX "/", true, NULL, NULL), 0);
        assert_int_equal(etcd_delete(etcd, "/test-services/", true, NULL, NULL), 0);
}

/* ---- pure ------------------------------------------------------------- */

static void test_due(void **state) {
        NapNodeInfo n = { .ready = true, .status.since_usec = 100 * SEC };
        /* Ready: never */
        assert_false(nap_reconcile_node_due(&n, 1000 * SEC, 3 * SEC, 8 * SEC));
        n.ready = false;
        /* NotReady since 100 s, TTL 3, grace 8: last alive at 97, due at 105 */
        assert_false(nap_reconcile_node_due(&n, 104 * SEC, 3 * SEC, 8 * SEC));
        assert_true(nap_reconcile_node_due(&n, 105 * SEC, 3 * SEC, 8 * SEC));
        /* a grace shorter than the TTL: due once noted */
        assert_true(nap_reconcile_node_due(&n, 100 * SEC, 3 * SEC, 1 * SEC));
        /* not noted yet (no since): not due, whatever the time */
        n.status.since_usec = 0;
        assert_false(nap_reconcile_node_due(&n, 1000 * SEC, 3 * SEC, 8 * SEC));
}

static NapNodeInfo info(const char *name, bool ready, uint64_t cpu) {
        NapNodeInfo i = { .ready = ready, .node.capacity = { cpu, 4 * GIB, 0 } };
        snprintf(i.node.name, sizeof i.node.name, "%s", name);
        return i;
}

static NapAssignment wants(unsigned number, uint64_t cpu) {
        NapAssignment a = { .instance = { .kind = NAP_KIND_COMMON, .number = number },
                            .resources = { .request_cpu_milli = cpu } };
        snprintf(a.instance.service.user, sizeof a.instance.service.user, "alice");
        snprintf(a.instance.service.app, sizeof a.instance.service.app, "web");
        return a;
}

static void test_plan(void **state) {
        NapNodeInfo nodes[] = { info("h1", true, 2000), info("h2", false, 8000), info("h3", true, 1000) };
        NapAssignment l[] = { wants(1, 500), wants(2, 500), wants(3, 500), wants(4, 1200), wants(5, 0) };
        ssize_t t[ELEMENTSOF(l)];
        /* spread, never the NotReady h2 */
        assert_int_equal(nap_reconcile_plan(nodes, ELEMENTSOF(nodes), l, ELEMENTSOF(l), t), 4);
        assert_int_equal(t[0], 0);  /* h1 at 25 % beats h3 at 50 % */
        assert_int_equal(t[1], 0);  /* h1 at 50 % ties h3 at 50 %: the first name */
        assert_int_equal(t[2], 2);  /* h1 at 75 %, h3 at 50 % */
        assert_int_equal(t[3], -1); /* 1200 fits neither (h1 1000 left, h3 500 left) */
        assert_int_equal(t[4], 0);  /* no request: the least loaded, h1 at 50 % ties h3 */
        /* what was placed counts in the usage */
        assert_int_equal(nodes[0].usage.cpu_milli, 1000);
        assert_int_equal(nodes[2].usage.cpu_milli, 500);
        assert_int_equal(nodes[1].usage.cpu_milli, 0);
}

/* ---- etcd ------------------------------------------------------------- */

static void test_leader(void **state) {
        char holder[NAP_NODE_NAME_MAX + 1] = "";
        int64_t l1 = 0, l3 = 0, ttl = 0, rev1 = 0, rev3 = 0, again = 0;
        REQUIRE_ETCD();
        wipe();
        assert_int_equal(etcd_lease_grant(etcd, 30, &l1, &ttl, NULL), 0);
        assert_int_equal(etcd_lease_grant(etcd, 30, &l3, &ttl, NULL), 0);
        assert_int_equal(nap_leader_acquire(etcd, PREFIX, "h1", l1, &rev1, holder, NULL), 1);
        assert_true(rev1 > 0);
        assert_string_equal(holder, "h1");
        /* again on the same lease: still, the same key */
        assert_int_equal(nap_leader_acquire(etcd, PREFIX, "h1", l1, &again, NULL, NULL), 1);
        assert_int_equal(again, rev1);
        /* another node stands by */
        assert_int_equal(nap_leader_acquire(etcd, PREFIX, "h3", l3, &rev3, holder, NULL), 0);
        assert_string_equal(holder, "h1");
        assert_int_equal(rev3, 0);
        assert_int_equal(nap_leader_get(etcd, PREFIX, holder, NULL), 0);
        assert_string_equal(holder, "h1");
        /* the leader's lease ends (its membership lapses): the other takes over */
        assert_int_equal(etcd_lease_revoke(etcd, l1, NULL), 0);
        assert_int_equal(nap_leader_acquire(etcd, PREFIX, "h3", l3, &rev3, holder, NULL), 1);
        assert_true(rev3 > rev1);
        /* h1 back on a new lease: h3 keeps it */
        assert_int_equal(etcd_lease_grant(etcd, 30, &l1, &ttl, NULL), 0);
        assert_int_equal(nap_leader_acquire(etcd, PREFIX, "h1", l1, &rev1, holder, NULL), 0);
        assert_string_equal(holder, "h3");
        assert_int_equal(etcd_lease_revoke(etcd, l1, NULL), 0);
        assert_int_equal(etcd_lease_revoke(etcd, l3, NULL), 0);
}

/* h1 Ready with a lease, h2 a record alone (dead), an assignment on h2
 * with its reservation there; the assignment as created. */
static NapAssignment dead_h2_with_one(const char *greeting) {
        NapAssignment a = wants(0, 250);
        NapNode h2 = make_node("h2", 4000, 4 * GIB, "");
        NapReservation r = { .kind = NAP_RESERVATION_COMPUTE, .compute = { 250, 0, 0, 0 } };
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_node_apply(etcd, PREFIX, &h2, NULL), 0);
        nap_node_done(&h2);
        snprintf(a.node, sizeof a.node, "h2");
        a.enabled = true;
        assert_int_equal(nap_params_new(&a.params), 0);
        assert_int_equal(nap_params_set(a.params, "greeting", greeting, NULL), 0);
        if (nap_assignment_create(etcd, PREFIX, &a, &e) != 1)
                fail_msg("%s", e.message);
        snprintf(r.node, sizeof r.node, "h2");
        nap_instance_name(&a.instance, r.name);
        assert_int_equal(nap_reserve(etcd, PREFIX, &r, NULL), 1);
        return a;
}

static size_t count(const char *prefix) {
        EtcdRange range = {};
        assert_int_equal(etcd_range_prefix(etcd, prefix, 0, true, &range, NULL), 0);
        size_t n = range.n_kvs;
        etcd_range_done(&range);
        return n;
}

static void test_move(void **state) {
        NapAssignment a = {}, *l = NULL;
        NapNodeInfo h1 = {};
        size_t n = 0;
        int64_t lease = 0, leader = 0;
        REQUIRE_ETCD();
        wipe();
        lease = join("h1", 4000, 4 * GIB, "");
        a = dead_h2_with_one("hi");
        assert_int_equal(nap_leader_acquire(etcd, PREFIX, "h1", lease, &leader, NULL, NULL), 1);
        assert_int_equal(nap_node_get(etcd, PREFIX, "h1", &h1, NULL), 0);

        /* a deposed leader (another key's revision) writes nothing */
        assert_int_equal(nap_reconcile_move(etcd, PREFIX, &a, &h1, leader + 1000, NULL), 0);
        assert_int_equal(count(PREFIX "/assignments/h2/"), 1);
        assert_int_equal(count(PREFIX "/assignments/h1/"), 0);

        /* moved: the same instance under h1, generation 2 */
        assert_int_equal(nap_reconcile_move(etcd, PREFIX, &a, &h1, leader, NULL), 1);
        assert_int_equal(count(PREFIX "/assignments/h2/"), 0);
        assert_int_equal(nap_assignments_list(etcd, PREFIX, "h1", &l, &n, NULL, NULL, NULL), 0);
        assert_int_equal(n, 1);
        assert_int_equal(l[0].instance.number, a.instance.number);
        assert_string_equal(l[0].node, "h1");
        assert_int_equal(l[0].generation, 2);
        assert_int_equal(l[0].created_usec, a.created_usec);
        assert_string_equal(nap_params_get(l[0].params, "greeting"), "hi");
        assert_int_equal(l[0].resources.request_cpu_milli, 250);

        /* the same move again, from the stale read: nothing (never two copies) */
        assert_int_equal(nap_reconcile_move(etcd, PREFIX, &a, &h1, leader, NULL), 0);
        assert_int_equal(count(PREFIX "/assignments/"), 1);

        nap_assignment_array_free(l, 1);
        nap_assignment_done(&a);
        nap_node_info_done(&h1);
        assert_int_equal(etcd_lease_revoke(etcd, lease, NULL), 0);
}

static NapConfig *config(unsigned ttl, unsigned grace) {
        NapConfig *c = NULL;
        char text[256];
        snprintf(text, sizeof text, "[Nap]\nClusterPrefix=%s\nEtcdPrefix=/test-services\nNodeTTL=%u\nReconcileGraceSec=%u\n",
                 PREFIX, ttl, grace);
        assert_int_equal(nap_config_new_default(&c), 0);
        assert_int_equal(nap_config_parse(c, text, strlen(text), "test", NULL, NULL, NULL), 0);
        return c;
}

/* An endpoint as nap-discovery publishes it (without its lease). */
static void publish(const NapConfig *c, const NapAssignment *a, const char *host, unsigned port) {
        char name[NAP_UNIT_NAME_MAX], unit[NAP_UNIT_NAME_MAX + 8];
        nap_instance_name(&a->instance, name);
        snprintf(unit, sizeof unit, "%s.service", name);
        NapEndpoint ep = { .host = (char *) host, .port = port, .instance = name, .unit = unit };
        _cleanup_free_ char *key = nap_key_endpoint(c, &a->instance.service, host, port), *value = nap_endpoint_format(&ep);
        assert_int_equal(etcd_put(etcd, key, value, strlen(value), 0, NULL, NULL), 0);
}

static void test_round(void **state) {
        NapConfig *c = config(3, 8);
        NapReconcileStats s = {};
        NapAssignment a[3] = {};
        int64_t lease = 0, leader = 0;
        uint64_t now = realtime_usec();
        REQUIRE_ETCD();
        wipe();
        lease = join("h1", 4000, 4 * GIB, "");
        for (size_t i = 0; i < ELEMENTSOF(a); i++)
                a[i] = dead_h2_with_one("x");
        publish(c, a + 0, "10.0.0.1", 20100);  /* the dead h2's (make_node's address) */
        publish(c, a + 0, "10.0.0.9", 20100);  /* another host's: stays */
        assert_int_equal(nap_leader_acquire(etcd, PREFIX, "h1", lease, &leader, NULL, NULL), 1);

        /* h2 just noted NotReady: not due for grace - TTL = 5 s */
        assert_int_equal(nap_reconcile_round(etcd, c, leader, now, &s, NULL), 0);
        assert_int_equal(s.nodes, 0);
        assert_int_equal(count(PREFIX "/assignments/h2/"), 3);
        assert_int_equal(count(PREFIX "/status/h2"), 1);

        /* 5 s later: all three move to h1, h2's endpoint goes */
        assert_int_equal(nap_reconcile_round(etcd, c, leader, now + 5 * SEC + 1, &s, NULL), 0);
        assert_int_equal(s.nodes, 1);
        assert_int_equal(s.moved, 3);
        assert_int_equal(s.lost + s.no_room, 0);
        assert_int_equal(s.endpoints, 1);
        assert_int_equal(count(PREFIX "/assignments/h2/"), 0);
        assert_int_equal(count(PREFIX "/assignments/h1/"), 3);
        assert_int_equal(count("/test-services/alice_web/"), 1);
        assert_int_equal(count("/test-services/alice_web/10.0.0.9:20100"), 1);
        /* h2's reservations released (h1 reserves them when it realizes) */
        assert_int_equal(count(PREFIX "/reservations/h2/"), 0);
        assert_int_equal(count(PREFIX "/names/"), 0);

        /* a round with nothing to do changes nothing */
        assert_int_equal(nap_reconcile_round(etcd, c, leader, now + 60 * SEC, &s, NULL), 0);
        assert_int_equal(s.moved, 0);

        for (size_t i = 0; i < ELEMENTSOF(a); i++)
                nap_assignment_done(a + i);
        nap_config_free(c);
        assert_int_equal(etcd_lease_revoke(etcd, lease, NULL), 0);
}

/* No room anywhere: counted, nothing moves; a deposed leader's round moves nothing. */
static void test_round_no_room_and_deposed(void **state) {
        NapConfig *c = config(3, 8);
        NapReconcileStats s = {};
        NapAssignment a = {};
        int64_t lease = 0, leader = 0;
        uint64_t now = realtime_usec();
        REQUIRE_ETCD();
        wipe();
        lease = join("h1", 100, 4 * GIB, ""); /* 100 milli-cores: 250 does not fit */
        a = dead_h2_with_one("x");
        assert_int_equal(nap_leader_acquire(etcd, PREFIX, "h1", lease, &leader, NULL, NULL), 1);
        assert_int_equal(nap_reconcile_round(etcd, c, leader, now, &s, NULL), 0);
        assert_int_equal(nap_reconcile_round(etcd, c, leader, now + 6 * SEC, &s, NULL), 0);
        assert_int_equal(s.no_room, 1);
        assert_int_equal(s.moved, 0);
        assert_int_equal(count(PREFIX "/assignments/h2/"), 1);

        /* room now, but the leader key is another's: lost, nothing written */
        NapNode big = make_node("h1", 4000, 4 * GIB, "");
        assert_int_equal(nap_node_register(etcd, PREFIX, &big, lease, NULL), 0);
        nap_node_done(&big);
        assert_int_equal(nap_reconcile_round(etcd, c, leader + 1000, now + 7 * SEC, &s, NULL), 0);
        assert_int_equal(s.lost, 1);
        assert_int_equal(count(PREFIX "/assignments/h2/"), 1);
        assert_int_equal(count(PREFIX "/assignments/h1/"), 0);

        nap_assignment_done(&a);
        nap_config_free(c);
        assert_int_equal(etcd_lease_revoke(etcd, lease, NULL), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_due),
                cmocka_unit_test(test_plan),
                cmocka_unit_test(test_leader),
                cmocka_unit_test(test_move),
                cmocka_unit_test(test_round),
                cmocka_unit_test(test_round_no_room_and_deposed),
        };
        return cmocka_run_group_tests(tests, shared_etcd_group_setup, shared_etcd_group_teardown);
}
