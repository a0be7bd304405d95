/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* lib/cluster/assignment: the records' JSON (format, strict parse, named
 * errors), and create / list / delete against a real etcd: cluster-unique
 * numbers from the app's counter, a retried request making nothing new,
 * concurrent creators never sharing a number. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>

#include "base/clock.h"
#include "base/fileio.h"
#include "cluster/assignment.h"
#include "cluster/inventory.h"
#include "test-etcd-server.h"

#define PREFIX "/test-nap"
#define COMMIT "0123456789abcdef0123456789abcdef01234567"


static NapAssignment make(const char *service, const char *node) {
        NapAssignment a = { .enabled = true, .resources = { 100, 200, 1 << 20, 2 << 20 } };
        assert_int_equal(nap_service_parse(service, &a.instance.service, NULL), 0);
        a.instance.kind = NAP_KIND_COMMON;
        snprintf(a.node, sizeof a.node, "%s", node);
        snprintf(a.commit, sizeof a.commit, "%s", COMMIT);
        assert_int_equal(nap_params_new(&a.params), 0);
        assert_int_equal(nap_params_set(a.params, "greeting", "hi, there", NULL), 0);
        return a;
}

static void test_assignment_round_trip(void **state) {
        NapAssignment a = make("alice_web", "h2"), b = {};
        _cleanup_free_ char *json = NULL, *again = NULL;
        a.instance.number = 7;
        a.port = 20105;
        a.generation = 3;
        a.restart = 2;
        a.created_usec = 1234;
        snprintf(a.request, sizeof a.request, "req-1");
        assert_int_equal(nap_assignment_to_json(&a, &json), 0);
        print_message("%s\n", json);
        assert_int_equal(nap_assignment_from_json(json, strlen(json), &b, NULL), 0);
        assert_string_equal(b.instance.service.user, "alice");
        assert_string_equal(b.instance.service.app, "web");
        assert_int_equal(b.instance.number, 7);
        assert_int_equal(b.instance.kind, NAP_KIND_COMMON);
        assert_string_equal(b.node, "h2");
        assert_string_equal(nap_params_get(b.params, "greeting"), "hi, there");
        assert_int_equal(b.port, 20105);
        assert_string_equal(b.commit, COMMIT);
        assert_memory_equal(&a.resources, &b.resources, sizeof a.resources);
        assert_true(b.enabled);
        assert_string_equal(b.request, "req-1");
        assert_int_equal(b.generation, 3);
        assert_int_equal(b.restart, 2);
        assert_int_equal(b.created_usec, 1234);
        assert_int_equal(nap_assignment_to_json(&b, &again), 0);
        assert_string_equal(json, again);
        nap_assignment_done(&a);
        nap_assignment_done(&b);
}

/* Each damage is refused with the field named. */
/* A record refused as damaged, naming field, keeping nothing. */
static void assert_refused_by_field(const char *json, const char *field, int (*parse)(const char *, NapError *)) {
        NapError e = NAP_ERROR_NULL;
        char want[128];
        print_message("%s\n", json);
        assert_int_equal(parse(json, &e), -EBADMSG);
        assert_int_equal(e.kind, NAP_ERROR_INTERNAL);
        snprintf(want, sizeof want, "field '%s'", field);
        assert_non_null(strstr(e.message, want));
}

static int parse_assignment(const char *json, NapError *e) {
        NapAssignment a = {};
        int r = nap_assignment_from_json(json, strlen(json), &a, e);
        assert_null(a.params);
        return r;
}

static int parse_app_source(const char *json, NapError *e) {
        NapAppSource s = {};
        int r = nap_app_source_from_json(json, strlen(json), &s, e);
        assert_null(s.url);
        return r;
}

static void test_assignment_damaged(void **state) {
        static const struct {
                const char *json, *field;
        } bad[] = {
                { "[]", "(not a JSON object)" },
                { "{", "(not a JSON object)" },
                { "{\"app\":\"alice\",\"number\":1}", "app/number" },
                { "{\"app\":\"alice_web\",\"number\":0}", "app/number" },
                { "{\"app\":\"alice_web\",\"number\":1,\"node\":\"H2\"}", "node" },
                { "{\"app\":\"alice_web\",\"number\":1,\"node\":\"h2\",\"params\":{\"a\":1}}", "params" },
                { "{\"app\":\"alice_web\",\"number\":1,\"node\":\"h2\",\"params\":{},\"port\":70000}", "port" },
                { "{\"app\":\"alice_web\",\"number\":1,\"node\":\"h2\",\"params\":{},\"port\":0,\"commit\":\"abc\"}",
                  "commit" },
                { "{\"app\":\"alice_web\",\"number\":1,\"node\":\"h2\",\"params\":{},\"port\":0,\"commit\":\"\","
                  "\"resources\":{}}",
                  "resources" },
                { "{\"app\":\"alice_web\",\"number\":1,\"node\":\"h2\",\"params\":{},\"port\":0,\"commit\":\"\","
                  "\"resources\":{\"request_cpu_milli\":0,\"limit_cpu_milli\":0,\"request_memory\":0,"
                  "\"limit_memory\":0},\"enabled\":1}",
                  "enabled" },
                { "{\"app\":\"alice_web\",\"number\":1,\"node\":\"h2\",\"params\":{},\"port\":0,\"commit\":\"\","
                  "\"resources\":{\"request_cpu_milli\":0,\"limit_cpu_milli\":0,\"request_memory\":0,"
                  "\"limit_memory\":0},\"enabled\":true,\"request\":\".x\"}",
                  "request" },
                { "{\"app\":\"alice_web\",\"number\":1,\"node\":\"h2\",\"params\":{},\"port\":0,\"commit\":\"\","
                  "\"resources\":{\"request_cpu_milli\":0,\"limit_cpu_milli\":0,\"request_memory\":0,"
                  "\"limit_memory\":0},\"enabled\":true,\"request\":\"\",\"generation\":-1}",
                  "generation" },
                /* a restart asked at a generation the record never had */
                { "{\"app\":\"alice_web\",\"number\":1,\"node\":\"h2\",\"params\":{},\"port\":0,\"commit\":\"\","
                  "\"resources\":{\"request_cpu_milli\":0,\"limit_cpu_milli\":0,\"request_memory\":0,"
                  "\"limit_memory\":0},\"enabled\":true,\"request\":\"\",\"generation\":2,\"restart\":3}",
                  "restart" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_refused_by_field(bad[i].json, bad[i].field, parse_assignment);
}

static void test_observed_round_trip(void **state) {
        NapObserved o = { .state = NAP_OBSERVED_FAILED, .port = 20201, .generation = 2, .time_usec = 99 }, b = {};
        _cleanup_free_ char *json = NULL;
        assert_int_equal(nap_instance_parse("bob_api_common@12", &o.instance, NULL), 0);
        snprintf(o.node, sizeof o.node, "h3");
        o.reason = strdup("its last log lines: boom");
        assert_int_equal(nap_observed_to_json(&o, &json), 0);
        assert_int_equal(nap_observed_from_json(json, strlen(json), &b, NULL), 0);
        assert_int_equal(b.instance.number, 12);
        assert_int_equal(b.state, NAP_OBSERVED_FAILED);
        assert_int_equal(b.port, 20201);
        assert_string_equal(b.reason, "its last log lines: boom");
        assert_string_equal(b.commit, "");
        nap_observed_done(&b);

        NapError e = NAP_ERROR_NULL;
        const char *bad = "{\"app\":\"bob_api\",\"number\":12,\"node\":\"h3\",\"state\":\"sleeping\"}";
        assert_int_equal(nap_observed_from_json(bad, strlen(bad), &b, &e), -EBADMSG);
        assert_non_null(strstr(e.message, "field 'state'"));
        for (NapObservedState s = 0; s < _NAP_OBSERVED_STATE_MAX; s++)
                assert_int_equal(nap_observed_state_from_string(nap_observed_state_to_string(s)), s);
        nap_observed_done(&o);
}

static void test_keys(void **state) {
        NapInstance i;
        assert_int_equal(nap_instance_parse("alice_web_common@3", &i, NULL), 0);
        _cleanup_free_ char *a = nap_key_assignment("/nap", "h1", &i), *d = nap_key_assignments("/nap", "h1"),
                            *c = nap_key_counter("/nap", &i.service), *o = nap_key_observed("/nap", "h1", &i),
                            *r = nap_key_request("/nap", &i.service, "x1");
        assert_string_equal(a, "/nap/assignments/h1/alice_web_common@3");
        assert_string_equal(d, "/nap/assignments/h1/");
        assert_string_equal(c, "/nap/counters/alice_web");
        assert_string_equal(o, "/nap/observed/h1/alice_web_common@3");
        assert_string_equal(r, "/nap/requests/alice_web/x1");
}

/* ---- against etcd ----------------------------------------------------- */

static void join(const char *name) {
        NapNode n = { .capacity = { 2000, 1 << 30, 1 << 30 }, .registered_usec = realtime_usec() };
        snprintf(n.name, sizeof n.name, "%s", name);
        memset(n.machine_id, 'a', 32);
        memset(n.boot_id, 'b', 32);
        n.address = strdup("10.0.0.1");
        n.version = strdup("test");
        assert_int_equal(nap_node_apply(etcd, PREFIX, &n, NULL), 0);
        nap_node_done(&n);
}

static void wipe(void) {
        assert_int_equal(etcd_delete(etcd, PREFIX "/", true, NULL, NULL), 0);
}

static size_t count(const char *node) {
        NapAssignment *l = NULL;
        size_t n = 0;
        assert_int_equal(nap_assignments_list(etcd, PREFIX, node, &l, &n, NULL, NULL, NULL), 0);
        nap_assignment_array_free(l, n);
        return n;
}

static void test_create_list_delete(void **state) {
        REQUIRE_ETCD();
        wipe();
        join("h1");
        join("h2");
        NapAssignment a = make("alice_web", "h2"), b = make("alice_web", "h1"), c = make("bob_web", "h1");
        assert_int_equal(nap_assignment_create(etcd, PREFIX, &a, NULL), 1);
        assert_int_equal(nap_assignment_create(etcd, PREFIX, &b, NULL), 1);
        assert_int_equal(nap_assignment_create(etcd, PREFIX, &c, NULL), 1);
        assert_int_equal(a.instance.number, 1);
        assert_int_equal(b.instance.number, 2); /* the app's numbers, across nodes */
        assert_int_equal(c.instance.number, 1); /* another app counts on its own */

        NapAssignment *l = NULL;
        size_t n = 0;
        int64_t revision = 0;
        assert_int_equal(nap_assignments_list(etcd, PREFIX, "h2", &l, &n, &revision, NULL, NULL), 0);
        assert_int_equal(n, 1);
        assert_int_equal(l[0].instance.number, 1);
        assert_string_equal(nap_params_get(l[0].params, "greeting"), "hi, there");
        assert_int_equal(l[0].mod_revision, a.mod_revision);
        assert_true(revision >= a.mod_revision);
        nap_assignment_array_free(l, n);

        /* deleted: gone, and the number is not given again */
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_assignment_delete(etcd, PREFIX, "h2", &a.instance, NULL), 0);
        assert_int_equal(count("h2"), 0);
        assert_int_equal(nap_assignment_delete(etcd, PREFIX, "h2", &a.instance, &e), -ENOENT);
        assert_int_equal(e.kind, NAP_ERROR_NO_SUCH_INSTANCE);
        nap_assignment_done(&a);
        a = make("alice_web", "h2");
        assert_int_equal(nap_assignment_create(etcd, PREFIX, &a, NULL), 1);
        assert_int_equal(a.instance.number, 3);
        nap_assignment_done(&a);
        nap_assignment_done(&b);
        nap_assignment_done(&c);
}

/* Every node's in one read, and enabled changed by CAS. */
static void test_list_all_and_enabled(void **state) {
        REQUIRE_ETCD();
        wipe();
        join("h1");
        join("h2");
        NapAssignment a = make("alice_web", "h2"), b = make("alice_web", "h1");
        assert_int_equal(nap_assignment_create(etcd, PREFIX, &a, NULL), 1);
        assert_int_equal(nap_assignment_create(etcd, PREFIX, &b, NULL), 1);
        /* a record under another node's key than its value says: damaged */
        _cleanup_free_ char *value = NULL, *wrong = nap_key_assignment(PREFIX, "h1", &a.instance);
        assert_int_equal(nap_assignment_to_json(&a, &value), 0);
        assert_int_equal(etcd_put(etcd, wrong, value, strlen(value), 0, NULL, NULL), 0);

        NapAssignment *l = NULL;
        size_t n = 0;
        unsigned damaged = 0;
        assert_int_equal(nap_assignments_list_all(etcd, PREFIX, &l, &n, NULL, &damaged, NULL), 0);
        assert_int_equal(n, 2);
        assert_int_equal(damaged, 1);
        assert_string_equal(l[0].node, "h1"); /* by key */
        assert_int_equal(l[0].instance.number, 2);
        assert_string_equal(l[1].node, "h2");
        nap_assignment_array_free(l, n);
        assert_int_equal(etcd_delete(etcd, wrong, false, NULL, NULL), 0);

        int64_t before = a.mod_revision;
        assert_int_equal(nap_assignment_set_enabled(etcd, PREFIX, &a, false, NULL), 0);
        assert_false(a.enabled);
        assert_true(a.mod_revision > before);
        before = a.mod_revision;
        assert_int_equal(nap_assignment_set_enabled(etcd, PREFIX, &a, false, NULL), 0); /* already: nothing written */
        assert_int_equal(a.mod_revision, before);
        assert_int_equal(nap_assignments_list(etcd, PREFIX, "h2", &l, &n, NULL, NULL, NULL), 0);
        assert_int_equal(n, 1);
        assert_false(l[0].enabled);
        assert_int_equal(l[0].generation, 1); /* not a move */
        nap_assignment_array_free(l, n);

        /* a restart: a new generation, the restart asked at it, enabled
         * again (a restart leaves it running); each one another */
        before = a.mod_revision;
        assert_int_equal(nap_assignment_restart(etcd, PREFIX, &a, NULL), 0);
        assert_true(a.enabled);
        assert_int_equal(a.generation, 2);
        assert_int_equal(a.restart, 2);
        assert_true(a.mod_revision > before);
        assert_int_equal(nap_assignment_restart(etcd, PREFIX, &a, NULL), 0);
        assert_int_equal(a.generation, 3);
        assert_int_equal(a.restart, 3);
        assert_int_equal(nap_assignments_list(etcd, PREFIX, "h2", &l, &n, NULL, NULL, NULL), 0);
        assert_int_equal(n, 1);
        assert_true(l[0].enabled);
        assert_int_equal(l[0].generation, 3);
        assert_int_equal(l[0].restart, 3);
        nap_assignment_array_free(l, n);

        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_assignment_delete(etcd, PREFIX, "h2", &a.instance, NULL), 0);
        assert_int_equal(nap_assignment_set_enabled(etcd, PREFIX, &a, true, &e), -ENOENT);
        assert_int_equal(e.kind, NAP_ERROR_NO_SUCH_INSTANCE);
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_assignment_restart(etcd, PREFIX, &a, &e), -ENOENT);
        assert_int_equal(e.kind, NAP_ERROR_NO_SUCH_INSTANCE);

        /* reports of every node; one filed under another node's key is left out */
        NapObserved o = { .state = NAP_OBSERVED_INACTIVE, .generation = 1, .instance = b.instance };
        snprintf(o.node, sizeof o.node, "h1");
        assert_int_equal(nap_observed_put(etcd, PREFIX, &o, 0, NULL), 0);
        snprintf(o.node, sizeof o.node, "h2");
        _cleanup_free_ char *json = NULL, *misfiled = nap_key_observed(PREFIX, "h9", &o.instance);
        assert_int_equal(nap_observed_to_json(&o, &json), 0);
        assert_int_equal(etcd_put(etcd, misfiled, json, strlen(json), 0, NULL, NULL), 0);
        NapObserved *ol = NULL;
        assert_int_equal(nap_observed_list_all(etcd, PREFIX, &ol, &n, NULL), 0);
        assert_int_equal(n, 1);
        assert_string_equal(ol[0].node, "h1");
        assert_int_equal(ol[0].state, NAP_OBSERVED_INACTIVE);
        nap_observed_array_free(ol, n);
        nap_assignment_done(&a);
        nap_assignment_done(&b);
}

static void test_create_retried_and_refused(void **state) {
        REQUIRE_ETCD();
        wipe();
        join("h1");
        NapAssignment a = make("alice_web", "h1"), retry = make("alice_web", "h1");
        snprintf(a.request, sizeof a.request, "r-42");
        snprintf(retry.request, sizeof retry.request, "r-42");
        assert_int_equal(nap_assignment_create(etcd, PREFIX, &a, NULL), 1);
        assert_int_equal(nap_assignment_create(etcd, PREFIX, &retry, NULL), 0);
        assert_int_equal(retry.instance.number, a.instance.number);
        assert_int_equal(count("h1"), 1);

        /* bad input: a named error, nothing written */
        NapError e = NAP_ERROR_NULL;
        NapAssignment bad = make("alice_web", "h9");
        assert_int_equal(nap_assignment_create(etcd, PREFIX, &bad, &e), -ENOENT);
        assert_int_equal(e.kind, NAP_ERROR_NO_SUCH_NODE);
        snprintf(bad.node, sizeof bad.node, "h1");
        snprintf(bad.commit, sizeof bad.commit, "not-a-commit");
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_assignment_create(etcd, PREFIX, &bad, &e), -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        snprintf(bad.commit, sizeof bad.commit, "%s", "");
        snprintf(bad.request, sizeof bad.request, "../x");
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_assignment_create(etcd, PREFIX, &bad, &e), -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        assert_int_equal(count("h1"), 1);
        nap_assignment_done(&a);
        nap_assignment_done(&retry);
        nap_assignment_done(&bad);
}

#define RACERS 4
#define PER_RACER 10

static void *racer(void *userdata) {
        EtcdClient *c = client_for(shared_etcd.url);
        unsigned *numbers = userdata;
        for (unsigned i = 0; i < PER_RACER; i++) {
                NapAssignment a = make("alice_web", i % 2 ? "h1" : "h2");
                NapError e = NAP_ERROR_NULL;
                if (nap_assignment_create(c, PREFIX, &a, &e) != 1)
                        fail_msg("%s", e.message);
                numbers[i] = a.instance.number;
                nap_assignment_done(&a);
        }
        etcd_client_free(c);
        return NULL;
}

static void test_concurrent_creators_never_share_a_number(void **state) {
        REQUIRE_ETCD();
        wipe();
        join("h1");
        join("h2");
        pthread_t t[RACERS];
        unsigned numbers[RACERS][PER_RACER] = {};
        for (size_t i = 0; i < RACERS; i++)
                assert_int_equal(pthread_create(t + i, NULL, racer, numbers[i]), 0);
        for (size_t i = 0; i < RACERS; i++)
                assert_int_equal(pthread_join(t[i], NULL), 0);
        bool seen[RACERS * PER_RACER + 1] = {};
        for (size_t i = 0; i < RACERS; i++)
                for (size_t j = 0; j < PER_RACER; j++) {
                        unsigned k = numbers[i][j];
                        assert_true(k >= 1 && k <= RACERS * PER_RACER);
                        assert_false(seen[k]);
                        seen[k] = true;
                }
        assert_int_equal(count("h1") + count("h2"), RACERS * PER_RACER);
}

static void test_observed_on_a_lease(void **state) {
        REQUIRE_ETCD();
        wipe();
        NapObserved o = { .state = NAP_OBSERVED_ACTIVE, .port = 20201, .generation = 1 };
        assert_int_equal(nap_instance_parse("alice_web_common@1", &o.instance, NULL), 0);
        snprintf(o.node, sizeof o.node, "h1");
        int64_t lease = 0, ttl = 0;
        assert_int_equal(etcd_lease_grant(etcd, 30, &lease, &ttl, NULL), 0);
        assert_int_equal(nap_observed_put(etcd, PREFIX, &o, lease, NULL), 0);
        NapObserved *l = NULL;
        size_t n = 0;
        assert_int_equal(nap_observed_list(etcd, PREFIX, "h1", &l, &n, NULL), 0);
        assert_int_equal(n, 1);
        assert_int_equal(l[0].port, 20201);
        nap_observed_array_free(l, n);
        /* the host gone (its lease revoked): its reports go with it */
        assert_int_equal(etcd_lease_revoke(etcd, lease, NULL), 0);
        assert_int_equal(nap_observed_list(etcd, PREFIX, "h1", &l, &n, NULL), 0);
        assert_int_equal(n, 0);
        nap_observed_array_free(l, n);
}

/* A host reporting: activating, then (after a while) active. */
static void *reporter(void *userdata) {
        const NapObserved *o = userdata;
        EtcdClient *c = client_for(shared_etcd.url);
        NapObserved activating = *o;
        activating.state = NAP_OBSERVED_ACTIVATING;
        (void) usleep(200000);
        if (nap_observed_put(c, PREFIX, &activating, 0, NULL) < 0)
                fail();
        (void) usleep(200000);
        if (nap_observed_put(c, PREFIX, o, 0, NULL) < 0)
                fail();
        etcd_client_free(c);
        return NULL;
}

static void test_observed_wait(void **state) {
        REQUIRE_ETCD();
        wipe();
        NapObserved o = { .state = NAP_OBSERVED_ACTIVE, .port = 20207, .generation = 2 }, got = {};
        assert_int_equal(nap_instance_parse("alice_web_common@5", &o.instance, NULL), 0);
        snprintf(o.node, sizeof o.node, "h2");

        /* a report of the generation before does not count */
        NapObserved stale = o;
        stale.generation = 1;
        assert_int_equal(nap_observed_put(etcd, PREFIX, &stale, 0, NULL), 0);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, reporter, &o), 0);
        NapError e = NAP_ERROR_NULL;
        int r = nap_observed_wait(etcd, PREFIX, "h2", &o.instance, 2, 10 * USEC_PER_SEC, &got, &e);
        assert_int_equal(pthread_join(t, NULL), 0);
        if (r < 0)
                fail_msg("%s", e.message);
        assert_int_equal(got.state, NAP_OBSERVED_ACTIVE);
        assert_int_equal(got.port, 20207);
        assert_int_equal(got.generation, 2);
        nap_observed_done(&got);

        /* settled already: at once */
        assert_int_equal(nap_observed_wait(etcd, PREFIX, "h2", &o.instance, 2, USEC_PER_SEC, &got, NULL), 0);
        nap_observed_done(&got);

        /* nothing comes: UnitFailed, on time, saying what was last seen */
        uint64_t t0 = monotonic_usec();
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_observed_wait(etcd, PREFIX, "h2", &o.instance, 3, USEC_PER_SEC, &got, &e), -ETIMEDOUT);
        assert_true(monotonic_usec() - t0 < 3 * USEC_PER_SEC);
        assert_int_equal(e.kind, NAP_ERROR_UNIT_FAILED);
        print_message("%s\n", e.message);
        assert_non_null(strstr(e.message, "last reported: active"));
}

/* A host removing an instance: its report withdrawn after a while. */
static void *withdrawer(void *userdata) {
        const NapObserved *o = userdata;
        EtcdClient *c = client_for(shared_etcd.url);
        (void) usleep(300000);
        if (nap_observed_delete(c, PREFIX, o->node, &o->instance, NULL) < 0)
                fail();
        etcd_client_free(c);
        return NULL;
}

/* stop-app / start-app (a state wanted) and remove-instance (the report
 * gone) of another node's instance. */
static void test_observed_wait_state_and_gone(void **state) {
        REQUIRE_ETCD();
        wipe();
        NapObserved o = { .state = NAP_OBSERVED_ACTIVE, .port = 20207, .generation = 1 }, got = {};
        assert_int_equal(nap_instance_parse("alice_web_common@6", &o.instance, NULL), 0);
        snprintf(o.node, sizeof o.node, "h2");
        assert_int_equal(nap_observed_put(etcd, PREFIX, &o, 0, NULL), 0);

        /* active does not end a wait for inactive; failed does, whatever is wanted */
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_observed_wait_state(etcd, PREFIX, "h2", &o.instance, 1, NAP_OBSERVED_INACTIVE,
                                                 USEC_PER_SEC, &got, &e), -ETIMEDOUT);
        assert_non_null(strstr(e.message, "did not report alice_web_common@6 inactive"));
        o.state = NAP_OBSERVED_FAILED;
        assert_int_equal(nap_observed_put(etcd, PREFIX, &o, 0, NULL), 0);
        assert_int_equal(nap_observed_wait_state(etcd, PREFIX, "h2", &o.instance, 1, NAP_OBSERVED_INACTIVE,
                                                 USEC_PER_SEC, &got, NULL), 0);
        assert_int_equal(got.state, NAP_OBSERVED_FAILED);
        nap_observed_done(&got);

        /* gone: waited for, by a watch */
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, withdrawer, &o), 0);
        e = NAP_ERROR_NULL;
        int r = nap_observed_wait_gone(etcd, PREFIX, "h2", &o.instance, 10 * USEC_PER_SEC, &e);
        assert_int_equal(pthread_join(t, NULL), 0);
        if (r < 0)
                fail_msg("%s", e.message);
        /* none: at once */
        assert_int_equal(nap_observed_wait_gone(etcd, PREFIX, "h2", &o.instance, USEC_PER_SEC, NULL), 0);
        /* one that stays: UnitFailed, on time */
        assert_int_equal(nap_observed_put(etcd, PREFIX, &o, 0, NULL), 0);
        uint64_t t0 = monotonic_usec();
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_observed_wait_gone(etcd, PREFIX, "h2", &o.instance, USEC_PER_SEC, &e), -ETIMEDOUT);
        assert_true(monotonic_usec() - t0 < 3 * USEC_PER_SEC);
        assert_int_equal(e.kind, NAP_ERROR_UNIT_FAILED);
        assert_non_null(strstr(e.message, "did not remove alice_web_common@6"));
}

/* ---- app sources ------------------------------------------------------- */

static NapAppSource make_source(const char *service, const char *url) {
        NapAppSource s = { .time_usec = 42 };
        assert_int_equal(nap_service_parse(service, &s.service, NULL), 0);
        s.url = strdup(url);
        assert_non_null(s.url);
        snprintf(s.commit, sizeof s.commit, "%s", COMMIT);
        snprintf(s.node, sizeof s.node, "h1");
        return s;
}

static void test_app_source_round_trip(void **state) {
        NapAppSource s = make_source("alice_web", "https://git.example.com/alice/web.git"), back = {};
        _cleanup_free_ char *json = NULL;
        s.pushed = true;
        assert_int_equal(nap_app_source_to_json(&s, &json), 0);
        assert_string_equal(json, "{\"app\":\"alice_web\",\"commit\":\"" COMMIT "\",\"node\":\"h1\",\"pushed\":true,"
                                  "\"time\":42,\"url\":\"https://git.example.com/alice/web.git\"}");
        assert_int_equal(nap_app_source_from_json(json, strlen(json), &back, NULL), 0);
        assert_string_equal(back.service.user, "alice");
        assert_string_equal(back.url, s.url);
        assert_string_equal(back.commit, COMMIT);
        assert_true(back.pushed);
        assert_int_equal(back.time_usec, 42);
        nap_app_source_done(&s);
        nap_app_source_done(&back);
}

static void test_app_source_damaged(void **state) {
        static const struct {
                const char *json, *field;
        } bad[] = {
                { "[]", "(not a JSON object)" },
                { "{\"app\":\"alice\"}", "app" },
                { "{\"app\":\"alice_web\",\"url\":\"\"}", "url" },
                { "{\"app\":\"alice_web\",\"url\":\"a\\nb\"}", "url" },
                { "{\"app\":\"alice_web\",\"url\":\"/r\",\"commit\":\"\"}", "commit" },
                { "{\"app\":\"alice_web\",\"url\":\"/r\",\"commit\":\"" COMMIT "\",\"pushed\":0}", "pushed" },
                { "{\"app\":\"alice_web\",\"url\":\"/r\",\"commit\":\"" COMMIT "\",\"pushed\":false,"
                  "\"node\":\"-x\"}",
                  "node" },
                { "{\"app\":\"alice_web\",\"url\":\"/r\",\"commit\":\"" COMMIT "\",\"pushed\":false,"
                  "\"node\":\"h1\",\"time\":\"now\"}",
                  "time" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_refused_by_field(bad[i].json, bad[i].field, parse_app_source);
}

static void test_app_source_put_get(void **state) {
        REQUIRE_ETCD();
        wipe();
        NapService web, other;
        NapAppSource s = make_source("alice_web", "/srv/git/web"), got = {};
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_service_parse("alice_web", &web, NULL), 0);
        assert_int_equal(nap_service_parse("alice_other", &other, NULL), 0);
        assert_int_equal(nap_app_source_get(etcd, PREFIX, &web, &got, NULL), 0);
        assert_int_equal(nap_app_source_put(etcd, PREFIX, &s, NULL), 0);
        assert_int_equal(nap_app_source_get(etcd, PREFIX, &web, &got, NULL), 1);
        assert_string_equal(got.url, "/srv/git/web");
        assert_string_equal(got.commit, COMMIT);
        nap_app_source_done(&got);

        /* refused: nothing written */
        s.commit[0] = 0;
        assert_int_equal(nap_app_source_put(etcd, PREFIX, &s, &e), -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);

        /* a record under another app's key is damaged, not taken */
        _cleanup_free_ char *key = nap_key_app_source(PREFIX, &other), *value = NULL;
        snprintf(s.commit, sizeof s.commit, "%s", COMMIT);
        assert_int_equal(nap_app_source_to_json(&s, &value), 0);
        assert_int_equal(etcd_put(etcd, key, value, strlen(value), 0, NULL, NULL), 0);
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_app_source_get(etcd, PREFIX, &other, &got, &e), -EBADMSG);
        assert_null(got.url);
        nap_app_source_done(&s);
}

static void test_app_sources_list(void **state) {
        REQUIRE_ETCD();
        wipe();
        NapAppSource a = make_source("alice_web", "/srv/git/web"), b = make_source("alice_api", "/srv/git/api"),
                     al = make_source("al_web", "/srv/git/al"), *l = NULL;
        size_t n = 9;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_app_sources_list(etcd, PREFIX, "alice", &l, &n, NULL), 0);
        assert_int_equal(n, 0);
        nap_app_source_array_free(l, n);
        assert_int_equal(nap_app_source_put(etcd, PREFIX, &a, NULL), 0);
        assert_int_equal(nap_app_source_put(etcd, PREFIX, &b, NULL), 0);
        assert_int_equal(nap_app_source_put(etcd, PREFIX, &al, NULL), 0); /* user "al": not alice's */

        /* a damaged record and one under another app's key are left out */
        _cleanup_free_ char *bad = strdup_printf("%s/apps/alice_bad", PREFIX), *moved = NULL, *value = NULL;
        NapService other;
        assert_int_equal(etcd_put(etcd, bad, "{", 1, 0, NULL, NULL), 0);
        assert_int_equal(nap_service_parse("alice_other", &other, NULL), 0);
        moved = nap_key_app_source(PREFIX, &other);
        assert_int_equal(nap_app_source_to_json(&a, &value), 0);
        assert_int_equal(etcd_put(etcd, moved, value, strlen(value), 0, NULL, NULL), 0);

        assert_int_equal(nap_app_sources_list(etcd, PREFIX, "alice", &l, &n, NULL), 0);
        assert_int_equal(n, 2); /* by key: api, web */
        assert_string_equal(l[0].url, "/srv/git/api");
        assert_string_equal(l[1].url, "/srv/git/web");
        nap_app_source_array_free(l, n);

        assert_int_equal(nap_app_sources_list(etcd, PREFIX, "Alice_", &l, &n, &e), -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_NAME);
        nap_app_source_done(&a);
        nap_app_source_done(&b);
        nap_app_source_done(&al);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_assignment_round_trip),
                cmocka_unit_test(test_assignment_damaged),
                cmocka_unit_test(test_observed_round_trip),
                cmocka_unit_test(test_keys),
                cmocka_unit_test(test_create_list_delete),
                cmocka_unit_test(test_list_all_and_enabled),
                cmocka_unit_test(test_create_retried_and_refused),
                cmocka_unit_test(test_concurrent_creators_never_share_a_number),
                cmocka_unit_test(test_observed_on_a_lease),
                cmocka_unit_test(test_observed_wait),
                cmocka_unit_test(test_observed_wait_state_and_gone),
                cmocka_unit_test(test_app_source_round_trip),
                cmocka_unit_test(test_app_source_damaged),
                cmocka_unit_test(test_app_source_put_get),
                cmocka_unit_test(test_app_sources_list),
        };
        return cmocka_run_group_tests(tests, shared_etcd_group_setup, shared_etcd_group_teardown);
}
