/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The queue's pure parts (lib/cluster/queue.h): the request bodies and
 * routes of the HTTP API, the stored form, queue order and the seed's
 * reordering rules. The etcd side runs in tests/integration/test-queue.sh. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/callback.h"
#include "cluster/queue.h"

#define BODY(s) s, strlen(s)
#define SEED_BODY                                                                                                 \
        "{\"request_id\":\"d\",\"owner_id\":\"y\",\"data\":{\"instances\":[{\"VCPU\":1,\"Memory\":1,\"Disk\":1}]," \
        "\"project\":\"project id\"},\"callback\":\"http://cb.example/d\"}"

static void test_request_seed_readme(void **state) {
        NapJob j = {};
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_job_request_parse(BODY(SEED_BODY), &j, &e), 0);
        assert_string_equal(j.request_id, "d");
        assert_string_equal(j.owner, "y");
        assert_string_equal(j.callback, "http://cb.example/d");
        /* the seed's Data: the object as a string, keys sorted */
        assert_string_equal(j.data, "{\"instances\":[{\"Disk\":1,\"Memory\":1,\"VCPU\":1}],\"project\":\"project id\"}");
        assert_int_equal(j.n_instances, 1);
        assert_int_equal(j.instances[0].vcpu, 1);
        assert_int_equal(j.status, NAP_JOB_QUEUED);
        nap_job_done(&j);
}

static void assert_refused(const char *body, const char *parameter) {
        NapJob j = {};
        NapError e = NAP_ERROR_NULL;
        assert_true(nap_job_request_parse(body, strlen(body), &j, &e) < 0);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        assert_string_equal(e.parameter, parameter);
        assert_null(j.data);
}

static void test_request_refused(void **state) {
        assert_refused("nope", "");
        assert_refused("[]", "");
        assert_refused("{}", "request_id");
        assert_refused("{\"request_id\":\"a/b\",\"owner_id\":\"y\",\"data\":{},\"callback\":\"http://h/\"}", "request_id");
        assert_refused("{\"request_id\":\"..\",\"owner_id\":\"y\",\"data\":{},\"callback\":\"http://h/\"}", "request_id");
        assert_refused("{\"request_id\":\"a\",\"owner_id\":\"Y\",\"data\":{},\"callback\":\"http://h/\"}", "owner_id");
        assert_refused("{\"request_id\":\"a\",\"owner_id\":\"y\",\"data\":{},\"callback\":\"abc\"}", "callback");
        assert_refused("{\"request_id\":\"a\",\"owner_id\":\"y\",\"data\":{},\"callback\":\"file:///etc/passwd\"}",
                       "callback");
        assert_refused("{\"request_id\":\"a\",\"owner_id\":\"y\",\"data\":{},\"callback\":\"http://\"}", "callback");
        assert_refused("{\"request_id\":\"a\",\"owner_id\":\"y\",\"data\":[],\"callback\":\"http://h/\"}", "data");
        assert_refused("{\"request_id\":\"a\",\"owner_id\":\"y\",\"data\":{\"instances\":[]},\"callback\":\"http://h/\"}",
                       "data");
        assert_refused("{\"request_id\":\"a\",\"owner_id\":\"y\",\"data\":{\"instances\":[{\"VCPU\":0,\"Memory\":1,"
                       "\"Disk\":1}]},\"callback\":\"http://h/\"}",
                       "data");
        assert_refused("{\"request_id\":\"a\",\"owner_id\":\"y\",\"data\":{\"instances\":[{\"VCPU\":1,\"Memory\":1,"
                       "\"Disk\":-1}]},\"callback\":\"http://h/\"}",
                       "data");
        assert_refused("{\"request_id\":\"a\",\"owner_id\":\"y\",\"data\":{\"instances\":[{\"VCPU\":1.5,\"Memory\":1,"
                       "\"Disk\":1}]},\"callback\":\"http://h/\"}",
                       "data");
}

static void test_request_too_big(void **state) {
        size_t n = NAP_QUEUE_BODY_MAX + 1;
        char *big = malloc(n);
        NapJob j = {};
        NapError e = NAP_ERROR_NULL;
        memset(big, ' ', n);
        assert_int_equal(nap_job_request_parse(big, n, &j, &e), -E2BIG);
        free(big);
}

static void test_priority(void **state) {
        int64_t p = 0;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_priority_request_parse(BODY("{\"priority\": 83334}"), &p, &e), 0);
        assert_int_equal(p, 83334);
        assert_int_equal(nap_priority_request_parse(BODY("{\"priority\": -9223372036854775808}"), &p, &e), 0);
        assert_true(p == INT64_MIN);
        assert_true(nap_priority_request_parse(BODY("{\"priority\": \"1\"}"), &p, NULL) < 0);
        assert_true(nap_priority_request_parse(BODY("{\"priority\": 1.5}"), &p, NULL) < 0);
        assert_true(nap_priority_request_parse(BODY("{}"), &p, NULL) < 0);
}

static void test_priority_between(void **state) {
        int64_t p = 0;
        assert_int_equal(nap_queue_priority_between(10, 20, &p), 0);
        assert_int_equal(p, 15);
        assert_int_equal(nap_queue_priority_between(20, 10, &p), 0);
        assert_int_equal(p, 15);
        assert_int_equal(nap_queue_priority_between(-3, 3, &p), 0);
        assert_int_equal(p, 0);
        assert_int_equal(nap_queue_priority_between(INT64_MAX - 2, INT64_MAX, &p), 0);
        assert_true(p == INT64_MAX - 1);
        assert_int_equal(nap_queue_priority_between(5, 6, &p), -ERANGE);
        assert_int_equal(nap_queue_priority_between(5, 5, &p), -ERANGE);
}

static void test_order(void **state) {
        NapJob a = { .priority = 1, .id = 9 }, b = { .priority = 2, .id = 1 }, c = { .priority = 1, .id = 10 };
        assert_true(nap_job_compare(&a, &b) < 0);
        assert_true(nap_job_compare(&b, &a) > 0);
        assert_true(nap_job_compare(&a, &c) < 0); /* a tie: the lower ID */
        assert_int_equal(nap_job_compare(&a, &a), 0);
}

static void test_round_trip(void **state) {
        NapJob j = {}, again = {};
        char *json = NULL;
        assert_int_equal(nap_job_request_parse(BODY(SEED_BODY), &j, NULL), 0);
        snprintf(j.type, sizeof j.type, "vm");
        j.priority = -5;
        assert_int_equal(nap_job_set_status(&j, NAP_JOB_QUEUED, 1000), 0);
        assert_int_equal(nap_job_set_status(&j, NAP_JOB_RUNNING, 2000), 0);
        snprintf(j.instances[0].node, sizeof j.instances[0].node, "h1");
        j.delivery = NAP_DELIVERY_PENDING;
        snprintf(j.delivery_id, sizeof j.delivery_id, "7.2000");
        assert_int_equal(nap_job_to_json(&j, &json), 0);
        assert_int_equal(nap_job_from_json(json, strlen(json), &again, NULL), 0);
        assert_string_equal(again.data, j.data);
        assert_string_equal(again.instances[0].node, "h1");
        assert_int_equal(again.n_history, 2);
        assert_int_equal(again.history[1].status, NAP_JOB_RUNNING);
        assert_int_equal(again.priority, -5);
        assert_int_equal(again.delivery, NAP_DELIVERY_PENDING);
        assert_string_equal(again.delivery_id, "7.2000");
        assert_null(again.delivery_error);
        free(json);
        nap_job_done(&j);
        nap_job_done(&again);
        assert_true(nap_job_from_json(BODY("{\"type\":\"vm\"}"), &again, NULL) < 0);
}

static void test_wire(void **state) {
        NapJob j = { .id = 7, .type = "vm", .request_id = "d", .owner = "y", .data = (char *) "{}",
                     .callback = (char *) "http://h/", .priority = 5, .created_usec = 1535340428564319 };
        json_t *o = nap_job_to_wire(&j);
        char *s = json_dumps(o, JSON_COMPACT);
        assert_non_null(strstr(s, "{\"ID\":7,\"CreatedAt\":\"2018-08-27T03:27:08.564319000Z\",\"UpdatedAt\":null,"
                                  "\"DeletedAt\":null,\"RequestID\":\"d\",\"Type\":\"vm\",\"OwnerID\":\"y\","
                                  "\"Data\":\"{}\",\"Callback\":\"http://h/\",\"Priority\":5,\"Status\":\"queued\""));
        free(s);
        json_decref(o);
}

static void assert_route(const char *method, const char *path, NapQueueOp op, const char *type, const char *id) {
        NapQueueRoute r = {};
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_queue_route_parse(method, path, &r, &e), 0);
        assert_int_equal(r.op, op);
        assert_string_equal(r.type, type);
        assert_string_equal(r.request_id, id);
}

static void test_routes(void **state) {
        assert_route("GET", "/v1/vm/", NAP_QUEUE_OP_LIST, "vm", "");
        assert_route("GET", "/v1/vm", NAP_QUEUE_OP_LIST, "vm", "");
        assert_route("POST", "/v1/vm/", NAP_QUEUE_OP_CREATE, "vm", "");
        assert_route("GET", "/v1/vm/d/", NAP_QUEUE_OP_GET, "vm", "d");
        assert_route("GET", "/v1/vm/d", NAP_QUEUE_OP_GET, "vm", "d");
        assert_route("POST", "/v1/vm/a", NAP_QUEUE_OP_MOVE, "vm", "a");
        assert_route("DELETE", "/v1/vm/a/", NAP_QUEUE_OP_CANCEL, "vm", "a");
        assert_route("POST", "/v1/vm/a/done", NAP_QUEUE_OP_DONE, "vm", "a");
        assert_route("GET", "/v1/kube/a/history", NAP_QUEUE_OP_HISTORY, "kube", "a");
        assert_route("GET", "/v1/_secret", NAP_QUEUE_OP_SECRET, "", "");
        assert_route("POST", "/v1/_tokens/", NAP_QUEUE_OP_TOKEN, "", "");
}

static void assert_no_route(const char *method, const char *path, int error) {
        NapQueueRoute r = {};
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_queue_route_parse(method, path, &r, &e), error);
        assert_true(e.message[0]);
}

static void test_routes_refused(void **state) {
        assert_no_route("GET", "/", -ENOENT);
        assert_no_route("GET", "/v2/vm/", -ENOENT);
        assert_no_route("GET", "/v1/", -ENOENT);
        assert_no_route("GET", "/v1/vm/a/b/c", -ENOENT);
        assert_no_route("GET", "/v1/vm/a/nope", -ENOENT);
        assert_no_route("PUT", "/v1/vm/a", -EOPNOTSUPP);
        assert_no_route("DELETE", "/v1/vm/", -EOPNOTSUPP);
        assert_no_route("GET", "/v1/vm/a/done", -EOPNOTSUPP);
        assert_no_route("GET", "/v1/VM/", -EINVAL);
        assert_no_route("GET", "/v1/vm/a%2Fb", -EINVAL);
        assert_no_route("GET", "/v1/_tokens", -EOPNOTSUPP);
        assert_no_route("GET", "/v1/_nope", -ENOENT);
}

static void test_count(void **state) {
        size_t n = 0;
        assert_int_equal(nap_queue_count_parse("limit", "10", &n, NULL), 0);
        assert_int_equal(n, 10);
        assert_true(nap_queue_count_parse("limit", "-1", &n, NULL) < 0);
        assert_true(nap_queue_count_parse("limit", "1x", &n, NULL) < 0);
        assert_true(nap_queue_count_parse("limit", "10000000", &n, NULL) < 0);
        assert_true(nap_queue_count_parse("limit", "", &n, NULL) < 0);
}

static void test_tables(void **state) {
        for (NapJobStatus s = 0; s < _NAP_JOB_STATUS_MAX; s++)
                assert_int_equal(nap_job_status_from_string(nap_job_status_to_string(s)), s);
        for (NapDeliveryState s = 0; s < _NAP_DELIVERY_STATE_MAX; s++)
                assert_int_equal(nap_delivery_state_from_string(nap_delivery_state_to_string(s)), s);
}

static void test_signature(void **state) {
        char sig[7 + 65];
        /* RFC 4231 test case 2 */
        nap_callback_signature("Jefe", BODY("what do ya want for nothing?"), sig);
        assert_string_equal(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void test_reservation_name(void **state) {
        NapJob j = { .type = "vm", .request_id = "req-1", .owner = "alice" };
        char name[NAP_RESERVATION_NAME_MAX + 1];
        nap_job_reservation_name(&j, 0, name);
        assert_string_equal(name, "alice_q.vm.req-1.1");
        assert_int_equal(nap_reservation_name_check(name, NULL, NULL), 0);
}

/* A watch event putting job rid of type with priority (value as stored). */
static void index_put(NapJobIndex *x, const char *type, const char *rid, int64_t priority, int64_t revision) {
        NapJob j = {};
        char key[128], *json = NULL;
        assert_int_equal(nap_job_request_parse(BODY(SEED_BODY), &j, NULL), 0);
        snprintf(j.type, sizeof j.type, "%s", type);
        snprintf(j.request_id, sizeof j.request_id, "%s", rid);
        j.priority = priority;
        assert_int_equal(nap_job_to_json(&j, &json), 0);
        snprintf(key, sizeof key, "/nap/queue/jobs/%s/%s", type, rid);
        EtcdEvent ev = { .type = ETCD_EVENT_PUT,
                         .kv = { .key = key, .value = json, .value_size = strlen(json), .create_revision = revision,
                                 .mod_revision = revision } };
        assert_int_equal(nap_job_index_apply(x, &ev), 0);
        free(json);
        nap_job_done(&j);
}

static const char *index_ids(NapJobIndex *x, const char *type, size_t offset, size_t limit, char *buf) {
        NapJobFilter f = { .status = _NAP_JOB_STATUS_INVALID, .offset = offset, .limit = limit };
        NapJob *l = NULL;
        size_t n = 0, total = 0;
        assert_int_equal(nap_job_index_list(x, type, &f, &l, &n, &total, NULL), 0);
        buf[0] = 0;
        for (size_t i = 0; i < n; i++)
                strcat(strcat(buf, i ? "," : ""), l[i].request_id);
        nap_job_array_free(l, n);
        return buf;
}

static void test_index(void **state) {
        NapJobIndex *x = NULL;
        char buf[256], key[] = "/nap/queue/jobs/vm/b";
        assert_int_equal(nap_job_index_new("/nap", &x), 0);
        index_put(x, "vm", "a", 5, 10);
        index_put(x, "vm", "b", 3, 11);
        index_put(x, "vm", "c", 4, 12);
        index_put(x, "kube", "k", 1, 13);
        assert_string_equal(index_ids(x, "vm", 0, 0, buf), "b,c,a");
        assert_string_equal(index_ids(x, "vm", 1, 1, buf), "c");
        assert_string_equal(index_ids(x, "kube", 0, 0, buf), "k");
        index_put(x, "vm", "b", 9, 14); /* moved last */
        assert_string_equal(index_ids(x, "vm", 0, 0, buf), "c,a,b");
        EtcdEvent del = { .type = ETCD_EVENT_DELETE, .kv = { .key = key, .value = (char *) "" } };
        assert_int_equal(nap_job_index_apply(x, &del), 0);
        assert_string_equal(index_ids(x, "vm", 0, 0, buf), "c,a");
        EtcdEvent other = { .type = ETCD_EVENT_PUT, .kv = { .key = (char *) "/nap/usage/h1", .value = (char *) "{}" } };
        assert_int_equal(nap_job_index_apply(x, &other), 0);
        assert_string_equal(index_ids(x, "vm", 0, 0, buf), "c,a");
        nap_job_index_free(x);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_request_seed_readme),
                cmocka_unit_test(test_request_refused),
                cmocka_unit_test(test_request_too_big),
                cmocka_unit_test(test_priority),
                cmocka_unit_test(test_priority_between),
                cmocka_unit_test(test_order),
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_wire),
                cmocka_unit_test(test_routes),
                cmocka_unit_test(test_routes_refused),
                cmocka_unit_test(test_count),
                cmocka_unit_test(test_tables),
                cmocka_unit_test(test_signature),
                cmocka_unit_test(test_reservation_name),
                cmocka_unit_test(test_index),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
