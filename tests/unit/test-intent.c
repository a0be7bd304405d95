/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sys/stat.h>
#include <utime.h>

#include "base/fileio.h"
#include "model/intent.h"
#include "test-util.h"

typedef TestState Fixture;

static const char rollout[] =
        "{\"app\":\"web\",\"commit\":\"0123456789abcdef0123456789abcdef01234567\",\"instances\":[1,2,3],"
        "\"operation\":\"rollout\",\"previous\":{\"commit\":\"89abcdef0123456789abcdef0123456789abcdef\","
        "\"url\":\"/srv/git/alice/web.git\"},\"running\":[1,3],\"time\":42,\"user\":\"alice\",\"version\":1}\n";

/* A rollout two replacements in, making a third. */
static const char rollout_added[] =
        "{\"added\":[4,5],\"app\":\"web\",\"instances\":[1,2,3],\"node\":\"n1\",\"number\":6,"
        "\"operation\":\"rollout\",\"running\":[1,3],\"time\":42,\"user\":\"alice\",\"version\":1}\n";

static void test_rollout_added_round_trip(void **state) {
        NapIntent in;
        assert_int_equal(nap_intent_parse(rollout_added, strlen(rollout_added), &in, NULL), 0);
        assert_int_equal(in.n_added, 2);
        assert_int_equal(in.added[1], 5);
        assert_int_equal(in.number, 6);
        assert_string_equal(in.node, "n1");
        _cleanup_free_ char *text = nap_intent_format(&in);
        assert_string_equal(text, rollout_added);
        nap_intent_done(&in);
}

static void test_rollout_round_trip(void **state) {
        NapIntent in;
        assert_int_equal(nap_intent_parse(rollout, strlen(rollout), &in, NULL), 0);
        assert_int_equal(in.operation, NAP_INTENT_ROLLOUT);
        assert_string_equal(in.service.user, "alice");
        assert_string_equal(in.previous_commit, "89abcdef0123456789abcdef0123456789abcdef");
        assert_string_equal(in.previous_url, "/srv/git/alice/web.git");
        assert_int_equal(in.n_instances, 3);
        assert_int_equal(in.n_running, 2);
        assert_int_equal(in.running[1], 3);
        _cleanup_free_ char *text = nap_intent_format(&in);
        assert_string_equal(text, rollout); /* deterministic: sorted keys, one line */
        nap_intent_done(&in);
}

static void test_damaged_records_are_refused(void **state) {
        static const char *const bad[] = {
                "", "[]", "{\"version\":1}",
                "{\"version\":2,\"operation\":\"deploy\",\"user\":\"alice\",\"app\":\"web\",\"time\":1}",
                "{\"version\":1,\"operation\":\"explode\",\"user\":\"alice\",\"app\":\"web\",\"time\":1}",
                "{\"version\":1,\"operation\":\"deploy\",\"user\":\"Alice\",\"app\":\"web\",\"time\":1}",
                "{\"version\":1,\"operation\":\"deploy\",\"user\":\"alice\",\"app\":\"web\",\"time\":1,\"x\":1}",
                "{\"version\":1,\"operation\":\"start-common\",\"user\":\"alice\",\"app\":\"web\",\"time\":1,"
                "\"request\":\"a/b\"}",
                "{\"version\":1,\"operation\":\"rollout\",\"user\":\"alice\",\"app\":\"web\",\"time\":1,"
                "\"instances\":[0]}",
                "{\"version\":1,\"operation\":\"rollout\",\"user\":\"alice\",\"app\":\"web\",\"time\":1,"
                "\"commit\":\"0123\"}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                NapIntent in;
                NapError e = NAP_ERROR_NULL;
                assert_true(nap_intent_parse(bad[i], strlen(bad[i]), &in, &e) < 0);
                assert_non_null(strstr(e.message, "Damaged intent record"));
                assert_null(in.previous_url);
                assert_null(in.instances);
        }
}

static void test_request_ids(void **state) {
        assert_true(nap_request_id_is_valid("napctl-0123456789abcdef"));
        assert_true(nap_request_id_is_valid("A.b_c:d-9"));
        assert_false(nap_request_id_is_valid(""));
        assert_false(nap_request_id_is_valid(".hidden"));
        assert_false(nap_request_id_is_valid("a/b"));
        assert_false(nap_request_id_is_valid("a b"));
        char long_id[NAP_REQUEST_ID_MAX + 2];
        memset(long_id, 'x', sizeof long_id - 1);
        long_id[sizeof long_id - 1] = 0;
        assert_false(nap_request_id_is_valid(long_id));
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_request_id_check("a/b", &e), -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        assert_string_equal(e.parameter, "requestId");
}

static int count_service(const NapService *s, void *userdata) {
        ++*(unsigned *) userdata;
        assert_string_equal(s->app, "web");
        return 0;
}

static void test_save_load_foreach_remove(void **state) {
        Fixture *f = *state;
        NapIntent in = { .operation = NAP_INTENT_START_COMMON, .service = f->service, .number = 7 };
        NapIntent back;
        unsigned n = 0;
        snprintf(in.request, sizeof in.request, "req-1");
        assert_int_equal(nap_intent_load(f->config, &f->service, &back, NULL), -ENOENT);
        assert_int_equal(nap_intent_foreach_service(f->config, count_service, &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(nap_intent_save(f->config, &in, NULL), 0);
        assert_int_equal(nap_intent_load(f->config, &f->service, &back, NULL), 0);
        assert_int_equal(back.number, 7);
        assert_string_equal(back.request, "req-1");
        nap_intent_done(&back);
        assert_int_equal(nap_intent_foreach_service(f->config, count_service, &n), 0);
        assert_int_equal(n, 1);
        nap_intent_remove(f->config, &f->service);
        assert_int_equal(nap_intent_load(f->config, &f->service, &back, NULL), -ENOENT);
}

static void test_request_records(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *instance = NULL;
        assert_int_equal(nap_request_lookup(f->config, "alice", "req-1", &instance), 0);
        assert_int_equal(nap_request_record(f->config, "alice", "req-1", "alice_web_common@3", NULL), 0);
        assert_int_equal(nap_request_lookup(f->config, "alice", "req-1", &instance), 1);
        assert_string_equal(instance, "alice_web_common@3");
        assert_int_equal(nap_request_lookup(f->config, "bob", "req-1", &instance), 0); /* per user */
        assert_int_equal(nap_request_expire(f->config, 3600ULL * 1000000ULL), 0);      /* young */
        _cleanup_free_ char *path = path_join(f->config->root, "requests", "alice", "req-1", NULL);
        struct utimbuf old = { .actime = 1000, .modtime = 1000 };
        assert_int_equal(utime(path, &old), 0);
        assert_int_equal(nap_request_expire(f->config, 3600ULL * 1000000ULL), 1);
        assert_int_equal(access(path, F_OK), -1);
}

/* destroy-app forgets its app's request records, not another app's. */
static void test_request_forget_service(void **state) {
        Fixture *f = *state;
        NapService web = { "alice", "web" }, web2 = { "alice", "web2" };
        _cleanup_free_ char *instance = NULL;
        assert_int_equal(nap_request_record(f->config, "alice", "a", "alice_web_common@3", NULL), 0);
        assert_int_equal(nap_request_record(f->config, "alice", "b", "alice_web_common@4", NULL), 0);
        assert_int_equal(nap_request_record(f->config, "alice", "c", "alice_web2_common@1", NULL), 0);
        assert_int_equal(nap_request_forget_service(f->config, &web), 2);
        assert_int_equal(nap_request_lookup(f->config, "alice", "a", &instance), 0);
        assert_int_equal(nap_request_lookup(f->config, "alice", "c", &instance), 1);
        assert_string_equal(instance, "alice_web2_common@1");
        assert_int_equal(nap_request_forget_service(f->config, &web), 0);
        assert_int_equal(nap_request_forget_service(f->config, &web2), 1);
}

static void test_destroy_app_round_trip(void **state) {
        static const char text[] = "{\"app\":\"web\",\"operation\":\"destroy-app\",\"time\":5,\"user\":\"alice\",\"version\":1}";
        NapIntent in = {};
        assert_int_equal(nap_intent_parse(text, strlen(text), &in, NULL), 0);
        assert_int_equal(in.operation, NAP_INTENT_DESTROY_APP);
        assert_string_equal(nap_intent_operation_to_string(NAP_INTENT_DESTROY_APP), "destroy-app");
        _cleanup_free_ char *back = nap_intent_format(&in);
        assert_non_null(back);
        NapIntent again = {};
        assert_int_equal(nap_intent_parse(back, strlen(back), &again, NULL), 0);
        assert_int_equal(again.operation, NAP_INTENT_DESTROY_APP);
        assert_string_equal(again.service.app, "web");
        nap_intent_done(&in);
        nap_intent_done(&again);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rollout_round_trip),
                cmocka_unit_test(test_rollout_added_round_trip),
                cmocka_unit_test(test_damaged_records_are_refused),
                cmocka_unit_test(test_request_ids),
                cmocka_unit_test_setup_teardown(test_save_load_foreach_remove, test_state_setup, test_state_teardown),
                cmocka_unit_test_setup_teardown(test_request_records, test_state_setup, test_state_teardown),
                cmocka_unit_test_setup_teardown(test_request_forget_service, test_state_setup, test_state_teardown),
                cmocka_unit_test(test_destroy_app_round_trip),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
