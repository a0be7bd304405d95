/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* lib/cluster/rollout: a rollout's record (strict JSON, written comparing
 * its revision), which rollouts the reconciler's leader finishes, and its
 * steps against a real etcd: a dead host's rollout finished when the
 * app's record says its new commit, rolled back otherwise, each step
 * making only what is missing, a deposed leader writing nothing, and
 * running it again after it finished changing nothing. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cluster/reconcile.h"
#include "cluster/rollout.h"
#include "test-etcd-server.h"

#define PREFIX "/test-nap"
#define GIB (UINT64_C(1) << 30)
#define SEC UINT64_C(1000000)
#define FROM "0123456789abcdef0123456789abcdef01234567"
#define TO "89abcdef0123456789abcdef0123456789abcdef"

#include "test-nodes.h"

static void wipe(void) {
        assert_int_equal(etcd_delete(etcd, PREFIX "/", true, NULL, NULL), 0);
}

static NapService web(void) {
        NapService s = {};
        assert_int_equal(nap_service_parse("alice_web", &s, NULL), 0);
        return s;
}

/* An assignment of alice_web on node at commit (request: "" or given),
 * created. */
static NapAssignment assign(const char *node, const char *commit, const char *request) {
        NapAssignment a = { .instance = { .service = web(), .kind = NAP_KIND_COMMON }, .enabled = true,
                            .resources = { .request_cpu_milli = 100 } };
        NapError e = NAP_ERROR_NULL;
        snprintf(a.node, sizeof a.node, "%s", node);
        snprintf(a.commit, sizeof a.commit, "%s", commit);
        snprintf(a.request, sizeof a.request, "%s", request);
        assert_int_equal(nap_params_new(&a.params), 0);
        assert_int_equal(nap_params_set(a.params, "greeting", "hi", NULL), 0);
        if (nap_assignment_create(etcd, PREFIX, &a, &e) != 1)
                fail_msg("%s", e.message);
        return a;
}

static NapClusterRollout rollout(NapClusterRolloutPhase phase, const NapAssignment *old, size_t n) {
        NapClusterRollout r = { .service = web(), .from = FROM, .to = TO, .phase = phase, .node = "h1" };
        r.old = calloc(n ?: 1, sizeof *r.old);
        assert_non_null(r.old);
        for (; r.n_old < n; r.n_old++)
                assert_int_equal(nap_assignment_copy(old + r.n_old, r.old + r.n_old), 0);
        return r;
}

/* ---- the record -------------------------------------------------------- */

static void test_json(void **state) {
        NapAssignment a = { .instance = { .service = web(), .kind = NAP_KIND_COMMON, .number = 3 }, .node = "h2",
                            .commit = FROM, .generation = 1 };
        NapClusterRollout r = {}, back = {};
        NapError e = NAP_ERROR_NULL;
        _cleanup_free_ char *json = NULL, *again = NULL;
        assert_int_equal(nap_params_new(&a.params), 0);
        r = rollout(NAP_CLUSTER_ROLLOUT_ROLLING_BACK, &a, 1);
        r.taken_over = true;
        r.generation = 4;
        assert_int_equal(nap_cluster_rollout_to_json(&r, &json), 0);
        assert_int_equal(nap_cluster_rollout_from_json(json, strlen(json), &back, NULL), 0);
        assert_int_equal(nap_cluster_rollout_to_json(&back, &again), 0);
        assert_string_equal(json, again);
        assert_int_equal(back.phase, NAP_CLUSTER_ROLLOUT_ROLLING_BACK);
        assert_true(back.taken_over);
        assert_int_equal(back.n_old, 1);
        assert_int_equal(back.old[0].instance.number, 3);
        assert_string_equal(back.to, TO);
        nap_cluster_rollout_done(&back);

        /* damage, each named */
        static const struct { const char *text, *field; } bad[] = {
                { "{\"app\":\"alice_web\",\"from\":\"\",\"to\":\"\",\"phase\":\"rolling\",\"node\":\"h1\","
                  "\"takenOver\":false,\"generation\":1,\"time\":1,\"old\":[]}", "to" },
                { "{\"app\":\"alice_web\",\"from\":\"\",\"to\":\"" TO "\",\"phase\":\"paused\",\"node\":\"h1\","
                  "\"takenOver\":false,\"generation\":1,\"time\":1,\"old\":[]}", "phase" },
                { "{\"app\":\"alice_web\",\"from\":\"\",\"to\":\"" TO "\",\"phase\":\"rolling\",\"node\":\"h1\","
                  "\"generation\":1,\"time\":1,\"old\":[]}", "takenOver" },
                { "{\"app\":\"alice_web\",\"from\":\"\",\"to\":\"" TO "\",\"phase\":\"rolling\",\"node\":\"h1\","
                  "\"takenOver\":false,\"generation\":1,\"time\":1,\"old\":[{\"app\":\"bob_api\",\"number\":1,"
                  "\"node\":\"h2\",\"params\":{},\"port\":0,\"commit\":\"\",\"resources\":{},\"enabled\":true,"
                  "\"request\":\"\",\"generation\":1,\"created\":0}]}", "old" },
                { "{\"app\":\"alice_web\",\"from\":\"\",\"to\":\"" TO "\",\"phase\":\"rolling\",\"node\":\"h1\","
                  "\"takenOver\":false,\"generation\":1,\"time\":1,\"old\":{}}", "old" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                NapClusterRollout x = {};
                e = NAP_ERROR_NULL;
                assert_int_equal(nap_cluster_rollout_from_json(bad[i].text, strlen(bad[i].text), &x, &e), -EBADMSG);
                assert_int_equal(e.kind, NAP_ERROR_INTERNAL);
                assert_non_null(strstr(e.message, bad[i].field));
        }
        nap_cluster_rollout_done(&r);
        nap_assignment_done(&a);
}

static void test_put_get(void **state) {
        NapClusterRollout r = rollout(NAP_CLUSTER_ROLLOUT_ROLLING, NULL, 0), got = {}, *l = NULL;
        size_t n = 0;
        unsigned damaged = 0;
        REQUIRE_ETCD();
        wipe();
        NapService s = web();
        assert_int_equal(nap_cluster_rollout_get(etcd, PREFIX, &s, &got, NULL), 0);
        /* made where there is none */
        assert_int_equal(nap_cluster_rollout_put(etcd, PREFIX, &r, NULL, NULL), 1);
        assert_int_equal(r.generation, 1);
        assert_true(r.mod_revision > 0);
        /* another run's, read before it: not replaced */
        NapClusterRollout stale = rollout(NAP_CLUSTER_ROLLOUT_ROLLING_BACK, NULL, 0);
        assert_int_equal(nap_cluster_rollout_put(etcd, PREFIX, &stale, NULL, NULL), 0);
        assert_int_equal(nap_cluster_rollout_get(etcd, PREFIX, &s, &got, NULL), 1);
        assert_int_equal(got.phase, NAP_CLUSTER_ROLLOUT_ROLLING);
        assert_int_equal(got.mod_revision, r.mod_revision);
        nap_cluster_rollout_done(&got);
        /* a record under another app's key is damage: left out of the list */
        assert_int_equal(etcd_put(etcd, PREFIX "/rollouts/bob_api", "{}", 2, 0, NULL, NULL), 0);
        assert_int_equal(nap_cluster_rollouts_list(etcd, PREFIX, &l, &n, &damaged, NULL), 0);
        assert_int_equal(n, 1);
        assert_int_equal(damaged, 1);
        nap_cluster_rollout_array_free(l, n);
        /* finished: gone (no app record to set) */
        assert_int_equal(nap_cluster_rollout_finish(etcd, PREFIX, &r, NULL, NULL), 1);
        assert_int_equal(count(PREFIX "/rollouts/alice_web"), 0);
        nap_cluster_rollout_done(&r);
        nap_cluster_rollout_done(&stale);
}

static void test_orphaned(void **state) {
        NapClusterRollout r = { .node = "h1" };
        NapNodeInfo nodes[2] = { { .ready = true }, { .ready = false, .status.since_usec = 100 * SEC } };
        snprintf(nodes[0].node.name, sizeof nodes[0].node.name, "h1");
        snprintf(nodes[1].node.name, sizeof nodes[1].node.name, "h2");
        /* its node Ready: its own */
        assert_false(nap_reconcile_rollout_due(&r, nodes, 2, 1000 * SEC, 3 * SEC, 8 * SEC));
        /* taken over: the leader's, whatever the node */
        r.taken_over = true;
        assert_true(nap_reconcile_rollout_due(&r, nodes, 2, 1000 * SEC, 3 * SEC, 8 * SEC));
        r.taken_over = false;
        /* NotReady: once the grace has passed (the reconciler's rule) */
        snprintf(r.node, sizeof r.node, "h2");
        assert_false(nap_reconcile_rollout_due(&r, nodes, 2, 104 * SEC, 3 * SEC, 8 * SEC));
        assert_true(nap_reconcile_rollout_due(&r, nodes, 2, 105 * SEC, 3 * SEC, 8 * SEC));
        /* no record of the node at all */
        snprintf(r.node, sizeof r.node, "h9");
        assert_true(nap_reconcile_rollout_due(&r, nodes, 2, 0, 3 * SEC, 8 * SEC));
}

/* ---- the leader's steps ------------------------------------------------ */

static void active(const NapAssignment *a, NapObservedState state) {
        NapObserved o = { .instance = a->instance, .state = state, .generation = a->generation };
        memcpy(o.node, a->node, sizeof o.node);
        assert_int_equal(nap_observed_put(etcd, PREFIX, &o, 0, NULL), 0);
}

static void source_at(const char *commit) {
        NapAppSource src = { .service = web(), .url = (char *) "https://git.example/web.git", .node = "h1" };
        snprintf(src.commit, sizeof src.commit, "%s", commit);
        assert_int_equal(nap_app_source_put(etcd, PREFIX, &src, NULL), 0);
}

static const char *recorded(void) {
        static char commit[NAP_COMMIT_HEX_LEN + 1];
        NapAppSource src = {};
        NapService s = web();
        assert_int_equal(nap_app_source_get(etcd, PREFIX, &s, &src, NULL), 1);
        memcpy(commit, src.commit, sizeof commit);
        nap_app_source_done(&src);
        return commit;
}

/* "NUMBER@COMMIT(first 2)" of every assignment of the app, in key order. */
static const char *assignments(void) {
        static char out[512];
        NapAssignment *l = NULL;
        size_t n = 0, len = 0;
        out[0] = 0;
        assert_int_equal(nap_assignments_list_all(etcd, PREFIX, &l, &n, NULL, NULL, NULL), 0);
        for (size_t i = 0; i < n; i++)
                len += (size_t) snprintf(out + len, sizeof out - len, "%s%u@%.2s", i ? " " : "",
                                         l[i].instance.number, l[i].commit);
        nap_assignment_array_free(l, n);
        return out;
}

/* The one replacement made by a request: it, as listed. */
static NapAssignment made_by(const char *request) {
        NapAssignment *l = NULL, found = {};
        size_t n = 0;
        assert_int_equal(nap_assignments_list_all(etcd, PREFIX, &l, &n, NULL, NULL, NULL), 0);
        for (size_t i = 0; i < n; i++)
                if (streq(l[i].request, request))
                        assert_int_equal(nap_assignment_copy(l + i, &found), 0);
        nap_assignment_array_free(l, n);
        assert_int_not_equal(found.instance.number, 0);
        return found;
}

static NapConfig *config(void) {
        NapConfig *c = NULL;
        const char *text = "[Nap]\nClusterPrefix=" PREFIX "\nNodeTTL=3\nReconcileGraceSec=8\n";
        assert_int_equal(nap_config_new_default(&c), 0);
        assert_int_equal(nap_config_parse(c, text, strlen(text), "test", NULL, NULL, NULL), 0);
        return c;
}

/* h1, the deploying host, a record alone (dead); h2 alive, leading. */
static int64_t h1_dead_h2_leads(int64_t *ret_leader) {
        NapNode h1 = make_node("h1", 4000, 4 * GIB, "");
        assert_int_equal(nap_node_apply(etcd, PREFIX, &h1, NULL), 0);
        nap_node_done(&h1);
        int64_t lease = join("h2", 4000, 4 * GIB, "");
        assert_int_equal(nap_leader_acquire(etcd, PREFIX, "h2", lease, ret_leader, NULL, NULL), 1);
        return lease;
}

/* h1 dead, h2 leading; two old assignments on h2 at FROM, the app's
 * record at TO, h1's rollout of them recorded in phase. */
static int64_t h1_dead_with_two(NapClusterRolloutPhase phase, NapAssignment old[static 2], NapClusterRollout *ret,
                                int64_t *ret_leader) {
        wipe();
        int64_t lease = h1_dead_h2_leads(ret_leader);
        old[0] = assign("h2", FROM, "");
        old[1] = assign("h2", FROM, "");
        source_at(TO);
        *ret = rollout(phase, old, 2);
        assert_int_equal(nap_cluster_rollout_put(etcd, PREFIX, ret, NULL, NULL), 1);
        return lease;
}

/* h1 died after its first batch: old[0]'s replacement active, old[1]
 * untouched. The app's record says TO: finished. */
static void test_finish(void **state) {
        NapConfig *c = config();
        NapReconcileStats s = {};
        NapAssignment old[2] = {}, next = {};
        NapClusterRollout r = {};
        int64_t leader = 0, lease;
        uint64_t now = realtime_usec();
        char request[NAP_REQUEST_ID_MAX + 1], want[64];
        REQUIRE_ETCD();
        lease = h1_dead_with_two(NAP_CLUSTER_ROLLOUT_ROLLING, old, &r, &leader);
        snprintf(request, sizeof request, "roll:%u:%s", old[0].instance.number, TO);
        next = assign("h2", TO, request);
        active(&next, NAP_OBSERVED_ACTIVE);

        /* h1 just noted NotReady: its rollout is its own for the grace */
        assert_int_equal(nap_reconcile_round(etcd, c, leader, now, &s, NULL), 0);
        assert_int_equal(s.rollouts, 0);
        /* past it: taken over; old[0] withdrawn, old[1]'s replacement made */
        assert_int_equal(nap_reconcile_round(etcd, c, leader, now + 6 * SEC, &s, NULL), 0);
        assert_int_equal(s.rollouts, 1);
        assert_int_equal(s.rollouts_withdrawn, 1);
        assert_int_equal(s.rollouts_made, 1);
        assert_int_equal(s.rollouts_finished, 0);
        snprintf(want, sizeof want, "2@01 3@89 4@89");
        assert_string_equal(assignments(), want);
        /* not active yet: a round waits, making nothing more */
        assert_int_equal(nap_reconcile_round(etcd, c, leader, now + 7 * SEC, &s, NULL), 0);
        assert_int_equal(s.rollouts_made + s.rollouts_withdrawn + s.rollouts_finished, 0);
        assert_string_equal(assignments(), want);
        /* a deposed leader writes nothing */
        snprintf(request, sizeof request, "roll:%u:%s", old[1].instance.number, TO);
        nap_assignment_done(&next);
        next = made_by(request);
        active(&next, NAP_OBSERVED_ACTIVE);
        assert_int_equal(nap_reconcile_round(etcd, c, leader + 1000, now + 8 * SEC, &s, NULL), 0);
        assert_int_equal(s.rollouts_withdrawn, 0);
        assert_string_equal(assignments(), want);
        /* the record replaced meanwhile (a deploy): a step from the one read before writes nothing */
        NapClusterRollout stale = {}, fresh = {};
        NapClusterRolloutStep step = {};
        NapService s_web = web();
        EtcdTxnCompare guard = nap_cluster_rollout_leader_guard(PREFIX "/leader", leader);
        assert_int_equal(nap_cluster_rollout_get(etcd, PREFIX, &s_web, &stale, NULL), 1);
        assert_int_equal(nap_cluster_rollout_get(etcd, PREFIX, &s_web, &fresh, NULL), 1);
        assert_int_equal(nap_cluster_rollout_put(etcd, PREFIX, &fresh, NULL, NULL), 1);
        assert_int_equal(nap_cluster_rollout_step(etcd, PREFIX, &stale, &guard, &step, NULL), 0);
        assert_int_equal(step.withdrawn + step.made, 0);
        assert_true(step.lost > 0);
        assert_string_equal(assignments(), want);
        nap_cluster_rollout_done(&stale);
        nap_cluster_rollout_done(&fresh);
        /* active: old[1] withdrawn, then done: no record, the app's at TO */
        assert_int_equal(nap_reconcile_round(etcd, c, leader, now + 9 * SEC, &s, NULL), 0);
        assert_int_equal(s.rollouts_withdrawn, 1);
        assert_string_equal(assignments(), "3@89 4@89");
        assert_int_equal(nap_reconcile_round(etcd, c, leader, now + 10 * SEC, &s, NULL), 0);
        assert_int_equal(s.rollouts_finished, 1);
        assert_int_equal(count(PREFIX "/rollouts/"), 0);
        assert_string_equal(recorded(), TO);
        /* the same step again, from the record as it was: nothing changes */
        step = (NapClusterRolloutStep) {};
        r.taken_over = true;
        assert_int_equal(nap_cluster_rollout_step(etcd, PREFIX, &r, &guard, &step, NULL), 0);
        assert_false(step.finished);
        assert_int_equal(step.made + step.withdrawn, 0);
        assert_string_equal(assignments(), "3@89 4@89");
        assert_int_equal(count(PREFIX "/rollouts/"), 0);

        nap_cluster_rollout_done(&r);
        nap_assignment_done(&next);
        nap_assignment_done(old + 0);
        nap_assignment_done(old + 1);
        nap_config_free(c);
        assert_int_equal(etcd_lease_revoke(etcd, lease, NULL), 0);
}

/* h1 died rolling back: old[0] withdrawn already (its replacement at TO
 * runs), old[1] still there beside its failed replacement; the app's
 * record still says TO. Rolled back: old[0] replaced back at its own
 * commit, both replacements withdrawn, the record at FROM. */
static void test_roll_back(void **state) {
        NapConfig *c = config();
        NapReconcileStats s = {};
        NapAssignment old[2] = {}, next[2] = {}, back = {};
        NapClusterRollout r = {};
        int64_t leader = 0, lease;
        uint64_t now = realtime_usec();
        char request[NAP_REQUEST_ID_MAX + 1];
        REQUIRE_ETCD();
        lease = h1_dead_with_two(NAP_CLUSTER_ROLLOUT_ROLLING_BACK, old, &r, &leader);
        for (size_t k = 0; k < 2; k++) {
                snprintf(request, sizeof request, "roll:%u:%s", old[k].instance.number, TO);
                next[k] = assign("h2", TO, request);
        }
        active(next + 0, NAP_OBSERVED_ACTIVE);
        active(next + 1, NAP_OBSERVED_FAILED);
        assert_int_equal(nap_assignment_delete(etcd, PREFIX, "h2", &old[0].instance, NULL), 0);
        assert_string_equal(assignments(), "2@01 3@89 4@89");

        assert_int_equal(nap_reconcile_round(etcd, c, leader, now, &s, NULL), 0);
        assert_int_equal(nap_reconcile_round(etcd, c, leader, now + 6 * SEC, &s, NULL), 0);
        /* old[0] made again at FROM (a new number), old[1]'s replacement goes */
        assert_int_equal(s.rollouts_made, 1);
        assert_int_equal(s.rollouts_withdrawn, 1);
        assert_string_equal(assignments(), "2@01 3@89 5@01");
        snprintf(request, sizeof request, "roll:%u:%s", old[0].instance.number, FROM);
        back = made_by(request);
        /* until it is active, old[0]'s replacement at TO stays */
        assert_int_equal(nap_reconcile_round(etcd, c, leader, now + 7 * SEC, &s, NULL), 0);
        assert_string_equal(assignments(), "2@01 3@89 5@01");
        active(&back, NAP_OBSERVED_ACTIVE);
        assert_int_equal(nap_reconcile_round(etcd, c, leader, now + 8 * SEC, &s, NULL), 0);
        assert_string_equal(assignments(), "2@01 5@01");
        assert_int_equal(nap_reconcile_round(etcd, c, leader, now + 9 * SEC, &s, NULL), 0);
        assert_int_equal(s.rollouts_finished, 1);
        assert_int_equal(count(PREFIX "/rollouts/"), 0);
        assert_string_equal(recorded(), FROM);
        /* and again: nothing */
        assert_int_equal(nap_reconcile_round(etcd, c, leader, now + 10 * SEC, &s, NULL), 0);
        assert_int_equal(s.rollouts, 0);
        assert_string_equal(assignments(), "2@01 5@01");

        nap_cluster_rollout_done(&r);
        nap_assignment_done(&back);
        for (size_t k = 0; k < 2; k++) {
                nap_assignment_done(old + k);
                nap_assignment_done(next + k);
        }
        nap_config_free(c);
        assert_int_equal(etcd_lease_revoke(etcd, lease, NULL), 0);
}

/* A rolling rollout of one old assignment, its replacement at TO made
 * and in state, the app's record at recorded: taken over and rolled back
 * (the replacement withdrawn, the record at FROM). */
static void rolled_back(const char *recorded_at, NapObservedState state) {
        NapConfig *c = config();
        NapReconcileStats s = {};
        NapAssignment old = {}, next = {};
        NapClusterRollout r = {}, got = {};
        NapService web_s = web();
        int64_t leader = 0, lease;
        uint64_t now = realtime_usec();
        char request[NAP_REQUEST_ID_MAX + 1];
        wipe();
        lease = h1_dead_h2_leads(&leader);
        old = assign("h2", FROM, "");
        source_at(recorded_at);
        r = rollout(NAP_CLUSTER_ROLLOUT_ROLLING, &old, 1);
        assert_int_equal(nap_cluster_rollout_put(etcd, PREFIX, &r, NULL, NULL), 1);
        snprintf(request, sizeof request, "roll:%u:%s", old.instance.number, TO);
        next = assign("h2", TO, request);
        active(&next, state);
        assert_int_equal(nap_reconcile_round(etcd, c, leader, now, &s, NULL), 0);
        assert_int_equal(nap_reconcile_round(etcd, c, leader, now + 6 * SEC, &s, NULL), 0);
        assert_int_equal(nap_cluster_rollout_get(etcd, PREFIX, &web_s, &got, NULL), 1);
        assert_int_equal(got.phase, NAP_CLUSTER_ROLLOUT_ROLLING_BACK);
        assert_true(got.taken_over);
        nap_cluster_rollout_done(&got);
        assert_int_equal(nap_reconcile_round(etcd, c, leader, now + 7 * SEC, &s, NULL), 0);
        assert_int_equal(nap_reconcile_round(etcd, c, leader, now + 8 * SEC, &s, NULL), 0);
        assert_string_equal(assignments(), "1@01");
        assert_int_equal(count(PREFIX "/rollouts/"), 0);
        assert_string_equal(recorded(), FROM);
        nap_cluster_rollout_done(&r);
        nap_assignment_done(&old);
        nap_assignment_done(&next);
        nap_config_free(c);
        assert_int_equal(etcd_lease_revoke(etcd, lease, NULL), 0);
}

/* Rolling, but the app's record is not at TO (the deploy never recorded
 * it as passing its health check): rolled back, not finished, though the
 * replacement answers. And a replacement failing while the leader
 * finishes turns it to rolling back too. */
static void test_rule(void **state) {
        REQUIRE_ETCD();
        rolled_back(FROM, NAP_OBSERVED_ACTIVE);
        rolled_back(TO, NAP_OBSERVED_FAILED);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_json),     cmocka_unit_test(test_put_get),   cmocka_unit_test(test_orphaned),
                cmocka_unit_test(test_finish),   cmocka_unit_test(test_roll_back), cmocka_unit_test(test_rule),
        };
        return cmocka_run_group_tests(tests, shared_etcd_group_setup, shared_etcd_group_teardown);
}
