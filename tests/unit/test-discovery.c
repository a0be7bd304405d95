/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* lib/discovery: nap-discovery's decisions on virtual time. Each test
 * plays the probe's answers and etcd's replies and checks which request
 * the state machine asks for, and when. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "model/discovery.h"

#define MSEC 1000ULL
#define SEC DISCOVERY_USEC_PER_SEC
#define T0 (1000 * SEC) /* virtual time starts here: not 0, so "0" bugs show */

static void test_string_tables(void **state) {
        for (int i = 0; i < _DISCOVERY_PROBE_RESULT_MAX; i++)
                assert_non_null(discovery_probe_result_to_string(i));
        for (int i = 0; i < _DISCOVERY_STEP_MAX; i++)
                assert_non_null(discovery_step_to_string(i));
        for (int i = 0; i < _DISCOVERY_STATE_MAX; i++)
                assert_non_null(discovery_state_to_string(i));
        assert_null(discovery_step_to_string(_DISCOVERY_STEP_MAX));
        assert_null(discovery_state_to_string(-1));
        assert_string_equal(discovery_step_to_string(DISCOVERY_STEP_KEEPALIVE), "keepalive");
}

static void test_init(void **state) {
        Discovery d;

        discovery_init(&d, 60, T0);
        assert_int_equal(d.ttl_sec, 60);
        assert_int_equal(d.keepalive_usec, 20 * SEC);
        assert_int_equal(d.backoff_max_usec, 2 * SEC);
        discovery_init(&d, 3, T0);
        assert_int_equal(d.backoff_max_usec, 500 * MSEC); /* TTL/6: two retries per keep-alive interval */
        discovery_init(&d, 0, T0);
        assert_int_equal(d.ttl_sec, 1);
        assert_true(d.backoff_max_usec >= DISCOVERY_BACKOFF_MIN_USEC);
        assert_int_equal(discovery_state(&d), DISCOVERY_STATE_WAITING);
}

/* An app that is not up yet: probes go on, nothing is asked of etcd. */
static void test_never_publish_before_answer(void **state) {
        Discovery d;

        discovery_init(&d, 3, T0);
        for (unsigned i = 0; i < 100; i++) {
                assert_false(discovery_probe_done(&d, i % 2 ? DISCOVERY_PROBE_REFUSED : DISCOVERY_PROBE_TIMEOUT,
                                                  T0 + i * MSEC));
                assert_int_equal(discovery_next_step(&d, T0 + i * MSEC), DISCOVERY_STEP_NONE);
        }
        assert_true(discovery_next_wakeup(&d) == DISCOVERY_USEC_INFINITY);
        assert_int_equal(discovery_state(&d), DISCOVERY_STATE_WAITING);

        assert_true(discovery_probe_done(&d, DISCOVERY_PROBE_ANSWERED, T0 + SEC));
        assert_int_equal(discovery_state(&d), DISCOVERY_STATE_PUBLISHING);
        assert_int_equal(discovery_next_step(&d, T0 + SEC), DISCOVERY_STEP_GRANT);
}

/* Answered → grant → put → READY; keep-alives at TTL/3 exactly. */
static void publish(Discovery *d, uint64_t now) {
        assert_true(discovery_probe_done(d, DISCOVERY_PROBE_ANSWERED, now));
        assert_int_equal(discovery_next_step(d, now), DISCOVERY_STEP_GRANT);
        discovery_granted(d, 0x42, 3, now);
        assert_int_equal(discovery_next_step(d, now), DISCOVERY_STEP_PUT);
        discovery_put_done(d);
        assert_int_equal(discovery_state(d), DISCOVERY_STATE_PUBLISHED);
}

static void test_publish_and_keepalive(void **state) {
        Discovery d;

        discovery_init(&d, 3, T0);
        publish(&d, T0);
        assert_int_equal(d.lease, 0x42);
        assert_int_equal(discovery_next_step(&d, T0 + 999 * MSEC), DISCOVERY_STEP_NONE);
        assert_int_equal(discovery_next_wakeup(&d), T0 + SEC);
        assert_int_equal(discovery_next_step(&d, T0 + SEC), DISCOVERY_STEP_KEEPALIVE);
        discovery_kept_alive(&d, 3, T0 + SEC);
        assert_int_equal(discovery_next_wakeup(&d), T0 + 2 * SEC);
        /* etcd may grant more than asked: keep-alives follow its TTL. */
        discovery_kept_alive(&d, 6, T0 + 2 * SEC);
        assert_int_equal(discovery_next_wakeup(&d), T0 + 4 * SEC);
}

/* Steady state: one keep-alive per TTL/3 and nothing else, however often
 * the probe answers. */
static void test_requests_per_ttl(void **state) {
        Discovery d;
        unsigned requests = 0;

        discovery_init(&d, 60, T0);
        publish(&d, T0);
        for (uint64_t now = T0; now < T0 + 600 * SEC; now += 100 * MSEC) {
                (void) discovery_probe_done(&d, DISCOVERY_PROBE_ANSWERED, now);
                DiscoveryStep s = discovery_next_step(&d, now);
                if (s == DISCOVERY_STEP_NONE)
                        continue;
                assert_int_equal(s, DISCOVERY_STEP_KEEPALIVE);
                discovery_kept_alive(&d, 60, now);
                requests++;
        }
        assert_int_equal(requests, 30); /* 600 s / 20 s */
}

static void test_refused_withdraws_at_once(void **state) {
        Discovery d;

        discovery_init(&d, 3, T0);
        publish(&d, T0);
        assert_true(discovery_probe_done(&d, DISCOVERY_PROBE_REFUSED, T0 + 100 * MSEC));
        assert_int_equal(discovery_state(&d), DISCOVERY_STATE_WITHDRAWING);
        assert_int_equal(discovery_next_step(&d, T0 + 100 * MSEC), DISCOVERY_STEP_REVOKE);
        discovery_revoked(&d);
        assert_int_equal(d.lease, 0);
        assert_int_equal(discovery_state(&d), DISCOVERY_STATE_WAITING);
        assert_true(d.app_answered_once);
        assert_int_equal(discovery_next_step(&d, T0 + 200 * MSEC), DISCOVERY_STEP_NONE);
        assert_true(discovery_next_wakeup(&d) == DISCOVERY_USEC_INFINITY);
        /* Back: a new lease and put. */
        publish(&d, T0 + 300 * MSEC);
}

/* One slow answer is tolerated; two in a row withdraw. An answer in
 * between resets the count. */
static void test_timeouts(void **state) {
        Discovery d;

        discovery_init(&d, 3, T0);
        publish(&d, T0);
        assert_false(discovery_probe_done(&d, DISCOVERY_PROBE_TIMEOUT, T0 + SEC));
        assert_int_equal(discovery_probe_interval(&d, T0 + SEC), DISCOVERY_PROBE_FAST_USEC);
        assert_false(discovery_probe_done(&d, DISCOVERY_PROBE_ANSWERED, T0 + 2 * SEC));
        assert_int_equal(discovery_probe_interval(&d, T0 + 2 * SEC), DISCOVERY_PROBE_STEADY_USEC);
        assert_false(discovery_probe_done(&d, DISCOVERY_PROBE_TIMEOUT, T0 + 3 * SEC));
        assert_int_equal(discovery_state(&d), DISCOVERY_STATE_PUBLISHED);
        assert_true(discovery_probe_done(&d, DISCOVERY_PROBE_TIMEOUT, T0 + 4 * SEC));
        assert_int_equal(discovery_next_step(&d, T0 + 4 * SEC), DISCOVERY_STEP_REVOKE);
}

static void test_probe_intervals(void **state) {
        Discovery d;

        discovery_init(&d, 3, T0);
        assert_int_equal(discovery_probe_interval(&d, T0), DISCOVERY_PROBE_FAST_USEC);
        assert_int_equal(discovery_probe_interval(&d, T0 + 29 * SEC), DISCOVERY_PROBE_FAST_USEC);
        assert_int_equal(discovery_probe_interval(&d, T0 + 31 * SEC), DISCOVERY_PROBE_SLOW_USEC);
        publish(&d, T0 + 40 * SEC);
        assert_int_equal(discovery_probe_interval(&d, T0 + 41 * SEC), DISCOVERY_PROBE_STEADY_USEC);
        /* Silent again: fast again, counted from when it went silent. */
        assert_true(discovery_probe_done(&d, DISCOVERY_PROBE_REFUSED, T0 + 50 * SEC));
        assert_int_equal(discovery_probe_interval(&d, T0 + 51 * SEC), DISCOVERY_PROBE_FAST_USEC);
        assert_int_equal(discovery_probe_interval(&d, T0 + 81 * SEC), DISCOVERY_PROBE_SLOW_USEC);
}

/* etcd unreachable: 100 ms doubling to the cap, no request before
 * retry_at; a success resets it. */
static void test_backoff(void **state) {
        static const uint64_t want[] = { 100, 200, 400, 500, 500, 500 };
        Discovery d;
        uint64_t now = T0;

        discovery_init(&d, 3, T0);
        assert_true(discovery_probe_done(&d, DISCOVERY_PROBE_ANSWERED, now));
        for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                assert_int_equal(discovery_next_step(&d, now), DISCOVERY_STEP_GRANT);
                discovery_failed(&d, DISCOVERY_STEP_GRANT, -ECONNREFUSED, now);
                assert_true(discovery_etcd_failing(&d));
                assert_int_equal(d.last_error, -ECONNREFUSED);
                assert_int_equal(discovery_next_wakeup(&d), now + want[i] * MSEC);
                assert_int_equal(discovery_next_step(&d, now + want[i] * MSEC - 1), DISCOVERY_STEP_NONE);
                now += want[i] * MSEC;
        }
        assert_int_equal(discovery_state(&d), DISCOVERY_STATE_PUBLISHING);
        discovery_granted(&d, 7, 3, now);
        assert_false(discovery_etcd_failing(&d));
        assert_int_equal(discovery_next_step(&d, now), DISCOVERY_STEP_PUT);
        discovery_failed(&d, DISCOVERY_STEP_PUT, -ETIMEDOUT, now);
        assert_int_equal(discovery_next_wakeup(&d), now + 100 * MSEC); /* from the start again */
}

/* A keep-alive that finds the lease gone: grant and put again at once.
 * A put that finds the fresh lease gone again: not a tight loop. */
static void test_lease_lost(void **state) {
        Discovery d;

        discovery_init(&d, 3, T0);
        publish(&d, T0);
        discovery_failed(&d, DISCOVERY_STEP_KEEPALIVE, -ENOENT, T0 + SEC);
        assert_int_equal(d.lease, 0);
        assert_false(discovery_etcd_failing(&d));
        assert_int_equal(discovery_state(&d), DISCOVERY_STATE_PUBLISHING);
        assert_int_equal(discovery_next_step(&d, T0 + SEC), DISCOVERY_STEP_GRANT);
        discovery_granted(&d, 8, 3, T0 + SEC);
        discovery_failed(&d, DISCOVERY_STEP_PUT, -ENOENT, T0 + SEC);
        assert_int_equal(discovery_next_step(&d, T0 + SEC), DISCOVERY_STEP_NONE);
        assert_int_equal(discovery_next_wakeup(&d), T0 + SEC + 100 * MSEC);
        assert_int_equal(discovery_next_step(&d, T0 + SEC + 100 * MSEC), DISCOVERY_STEP_GRANT);
        discovery_granted(&d, 9, 3, T0 + SEC + 100 * MSEC);
        discovery_put_done(&d);
        /* A later loss is "the first" again: at once. */
        discovery_failed(&d, DISCOVERY_STEP_KEEPALIVE, -ENOENT, T0 + 5 * SEC);
        assert_int_equal(discovery_next_step(&d, T0 + 5 * SEC), DISCOVERY_STEP_GRANT);
}

/* etcd goes away for 10 s and comes back with its data wiped: the key is
 * back within two keep-alive intervals of etcd answering again. */
static void test_etcd_restart_wiped(void **state) {
        Discovery d;
        uint64_t now = T0, back = T0 + 10 * SEC, published_at = 0;

        discovery_init(&d, 3, T0);
        publish(&d, T0);
        while (now < back + 10 * SEC && published_at == 0) {
                DiscoveryStep s = discovery_next_step(&d, now);
                switch (s) {
                case DISCOVERY_STEP_NONE:
                        now = MAX(now + MSEC, MIN(discovery_next_wakeup(&d), now + SEC));
                        continue;
                case DISCOVERY_STEP_KEEPALIVE:
                        discovery_failed(&d, s, now < back ? -ECONNREFUSED : -ENOENT, now);
                        break;
                case DISCOVERY_STEP_GRANT:
                        if (now < back)
                                discovery_failed(&d, s, -ECONNREFUSED, now);
                        else
                                discovery_granted(&d, 10, 3, now);
                        break;
                case DISCOVERY_STEP_PUT:
                        discovery_put_done(&d);
                        published_at = now;
                        break;
                default:
                        fail_msg("unexpected step %s", discovery_step_to_string(s));
                }
                now += MSEC; /* each request takes a millisecond */
        }
        assert_true(published_at >= back);
        assert_true(published_at - back <= 2 * d.keepalive_usec);
        print_message("key back %llu ms after etcd (keep-alive interval %llu ms)\n",
                      (unsigned long long) ((published_at - back) / MSEC),
                      (unsigned long long) (d.keepalive_usec / MSEC));
}

/* The app goes silent while etcd is down: revoke is retried (the key must
 * not outlive the app longer than needed); -ENOENT counts as done. */
static void test_withdraw_retries(void **state) {
        Discovery d;

        discovery_init(&d, 3, T0);
        publish(&d, T0);
        assert_true(discovery_probe_done(&d, DISCOVERY_PROBE_REFUSED, T0 + SEC));
        discovery_failed(&d, DISCOVERY_STEP_REVOKE, -ECONNREFUSED, T0 + SEC);
        assert_int_equal(discovery_state(&d), DISCOVERY_STATE_WITHDRAWING);
        assert_int_equal(discovery_next_wakeup(&d), T0 + SEC + 100 * MSEC);
        assert_int_equal(discovery_next_step(&d, T0 + SEC + 100 * MSEC), DISCOVERY_STEP_REVOKE);
        discovery_failed(&d, DISCOVERY_STEP_REVOKE, -ENOENT, T0 + SEC + 100 * MSEC);
        assert_int_equal(d.lease, 0);
        assert_int_equal(discovery_state(&d), DISCOVERY_STATE_WAITING);
        assert_false(discovery_etcd_failing(&d));
}

/* Silent, revoke failing, then the app answers again before etcd is back:
 * the lease we still hold is kept alive, not replaced. */
static void test_back_before_revoke(void **state) {
        Discovery d;

        discovery_init(&d, 3, T0);
        publish(&d, T0);
        assert_true(discovery_probe_done(&d, DISCOVERY_PROBE_REFUSED, T0 + 100 * MSEC));
        discovery_failed(&d, DISCOVERY_STEP_REVOKE, -ETIMEDOUT, T0 + 100 * MSEC);
        assert_true(discovery_probe_done(&d, DISCOVERY_PROBE_ANSWERED, T0 + 150 * MSEC));
        assert_int_equal(discovery_state(&d), DISCOVERY_STATE_PUBLISHED);
        assert_int_equal(discovery_next_step(&d, T0 + 200 * MSEC), DISCOVERY_STEP_NONE);
        assert_int_equal(discovery_next_step(&d, T0 + SEC), DISCOVERY_STEP_KEEPALIVE);
        assert_int_equal(d.lease, 0x42);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_string_tables),
                cmocka_unit_test(test_init),
                cmocka_unit_test(test_never_publish_before_answer),
                cmocka_unit_test(test_publish_and_keepalive),
                cmocka_unit_test(test_requests_per_ttl),
                cmocka_unit_test(test_refused_withdraws_at_once),
                cmocka_unit_test(test_timeouts),
                cmocka_unit_test(test_probe_intervals),
                cmocka_unit_test(test_backoff),
                cmocka_unit_test(test_lease_lost),
                cmocka_unit_test(test_etcd_restart_wiped),
                cmocka_unit_test(test_withdraw_retries),
                cmocka_unit_test(test_back_before_revoke),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
