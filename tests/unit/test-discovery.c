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
#define HCS 30u                   /* HealthCheckSec= (its default) */
#define PROBE_TIMEOUT (1 * SEC)   /* nap-discovery's --probe-timeout= default */

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
        for (int i = 0; i < _DISCOVERY_CHECK_MAX; i++)
                assert_int_equal(discovery_check_from_string(discovery_check_to_string(i)), i);
        assert_int_equal(discovery_check_from_string("udp"), -EINVAL);
}

static void test_init(void **state) {
        Discovery d;

        discovery_init(&d, 60, HCS, T0);
        assert_int_equal(d.ttl_sec, 60);
        assert_int_equal(d.keepalive_usec, 20 * SEC);
        assert_int_equal(d.backoff_max_usec, 2 * SEC);
        discovery_init(&d, 3, HCS, T0);
        assert_int_equal(d.backoff_max_usec, 500 * MSEC); /* TTL/6: two retries per keep-alive interval */
        discovery_init(&d, 0, HCS, T0);
        assert_int_equal(d.ttl_sec, 1);
        assert_true(d.backoff_max_usec >= DISCOVERY_BACKOFF_MIN_USEC);
        assert_int_equal(discovery_state(&d), DISCOVERY_STATE_WAITING);
}

/* An app that is not up yet: probes go on, nothing is asked of etcd. */
static void test_never_publish_before_answer(void **state) {
        Discovery d;

        discovery_init(&d, 3, HCS, T0);
        for (unsigned i = 0; i < 100; i++) {
                assert_false(discovery_probe_done(&d, DISCOVERY_CHECK_HTTP, i % 2 ? DISCOVERY_PROBE_REFUSED : DISCOVERY_PROBE_TIMEOUT,
                                                  T0 + i * MSEC));
                assert_int_equal(discovery_next_step(&d, T0 + i * MSEC), DISCOVERY_STEP_NONE);
        }
        assert_true(discovery_next_wakeup(&d) == DISCOVERY_USEC_INFINITY);
        assert_int_equal(discovery_state(&d), DISCOVERY_STATE_WAITING);

        assert_true(discovery_probe_done(&d, DISCOVERY_CHECK_HTTP, DISCOVERY_PROBE_ANSWERED, T0 + SEC));
        assert_int_equal(discovery_state(&d), DISCOVERY_STATE_PUBLISHING);
        assert_int_equal(discovery_next_step(&d, T0 + SEC), DISCOVERY_STEP_GRANT);
}

/* Answered → grant → put → READY; keep-alives at TTL/3 exactly. */
static void publish(Discovery *d, uint64_t now) {
        assert_true(discovery_probe_done(d, DISCOVERY_CHECK_HTTP, DISCOVERY_PROBE_ANSWERED, now));
        assert_int_equal(discovery_next_step(d, now), DISCOVERY_STEP_GRANT);
        discovery_granted(d, 0x42, 3, now);
        assert_int_equal(discovery_next_step(d, now), DISCOVERY_STEP_PUT);
        discovery_put_done(d);
        assert_int_equal(discovery_state(d), DISCOVERY_STATE_PUBLISHED);
}

static void test_publish_and_keepalive(void **state) {
        Discovery d;

        discovery_init(&d, 3, HCS, T0);
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

        discovery_init(&d, 60, HCS, T0);
        publish(&d, T0);
        for (uint64_t now = T0; now < T0 + 600 * SEC; now += 100 * MSEC) {
                (void) discovery_probe_done(&d, DISCOVERY_CHECK_HTTP, DISCOVERY_PROBE_ANSWERED, now);
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

        discovery_init(&d, 3, HCS, T0);
        publish(&d, T0);
        assert_true(discovery_probe_done(&d, DISCOVERY_CHECK_HTTP, DISCOVERY_PROBE_REFUSED, T0 + 100 * MSEC));
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

        discovery_init(&d, 3, HCS, T0);
        publish(&d, T0);
        assert_false(discovery_probe_done(&d, DISCOVERY_CHECK_HTTP, DISCOVERY_PROBE_TIMEOUT, T0 + SEC));
        assert_int_equal(discovery_probe_interval(&d, T0 + SEC), DISCOVERY_PROBE_FAST_USEC);
        assert_false(discovery_probe_done(&d, DISCOVERY_CHECK_HTTP, DISCOVERY_PROBE_ANSWERED, T0 + 2 * SEC));
        assert_int_equal(discovery_probe_interval(&d, T0 + 2 * SEC), DISCOVERY_PROBE_STEADY_USEC);
        assert_false(discovery_probe_done(&d, DISCOVERY_CHECK_HTTP, DISCOVERY_PROBE_TIMEOUT, T0 + 3 * SEC));
        assert_int_equal(discovery_state(&d), DISCOVERY_STATE_PUBLISHED);
        assert_true(discovery_probe_done(&d, DISCOVERY_CHECK_HTTP, DISCOVERY_PROBE_TIMEOUT, T0 + 4 * SEC));
        assert_int_equal(discovery_next_step(&d, T0 + 4 * SEC), DISCOVERY_STEP_REVOKE);
}

static void test_probe_intervals(void **state) {
        Discovery d;

        discovery_init(&d, 3, HCS, T0);
        assert_int_equal(discovery_probe_interval(&d, T0), DISCOVERY_PROBE_FAST_USEC);
        assert_int_equal(discovery_probe_interval(&d, T0 + 29 * SEC), DISCOVERY_PROBE_FAST_USEC);
        assert_int_equal(discovery_probe_interval(&d, T0 + 31 * SEC), DISCOVERY_PROBE_SLOW_USEC);
        publish(&d, T0 + 40 * SEC);
        assert_int_equal(discovery_probe_interval(&d, T0 + 41 * SEC), DISCOVERY_PROBE_STEADY_USEC);
        /* Silent again: fast again, counted from when it went silent. */
        assert_true(discovery_probe_done(&d, DISCOVERY_CHECK_HTTP, DISCOVERY_PROBE_REFUSED, T0 + 50 * SEC));
        assert_int_equal(discovery_probe_interval(&d, T0 + 51 * SEC), DISCOVERY_PROBE_FAST_USEC);
        assert_int_equal(discovery_probe_interval(&d, T0 + 81 * SEC), DISCOVERY_PROBE_SLOW_USEC);
}

/* etcd unreachable: 100 ms doubling to the cap, no request before
 * retry_at; a success resets it. */
static void test_backoff(void **state) {
        static const uint64_t want[] = { 100, 200, 400, 500, 500, 500 };
        Discovery d;
        uint64_t now = T0;

        discovery_init(&d, 3, HCS, T0);
        assert_true(discovery_probe_done(&d, DISCOVERY_CHECK_HTTP, DISCOVERY_PROBE_ANSWERED, now));
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

        discovery_init(&d, 3, HCS, T0);
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

        discovery_init(&d, 3, HCS, T0);
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

        discovery_init(&d, 3, HCS, T0);
        publish(&d, T0);
        assert_true(discovery_probe_done(&d, DISCOVERY_CHECK_HTTP, DISCOVERY_PROBE_REFUSED, T0 + SEC));
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

        discovery_init(&d, 3, HCS, T0);
        publish(&d, T0);
        assert_true(discovery_probe_done(&d, DISCOVERY_CHECK_HTTP, DISCOVERY_PROBE_REFUSED, T0 + 100 * MSEC));
        discovery_failed(&d, DISCOVERY_STEP_REVOKE, -ETIMEDOUT, T0 + 100 * MSEC);
        assert_true(discovery_probe_done(&d, DISCOVERY_CHECK_HTTP, DISCOVERY_PROBE_ANSWERED, T0 + 150 * MSEC));
        assert_int_equal(discovery_state(&d), DISCOVERY_STATE_PUBLISHED);
        assert_int_equal(discovery_next_step(&d, T0 + 200 * MSEC), DISCOVERY_STEP_NONE);
        assert_int_equal(discovery_next_step(&d, T0 + SEC), DISCOVERY_STEP_KEEPALIVE);
        assert_int_equal(d.lease, 0x42);
}

/* ---- HTTP checks only every HealthCheckSec=, TCP checks between ---- */

/* Waiting: only HTTP, as only an HTTP answer publishes; a TCP connect
 * that succeeds (the kernel's backlog) publishes nothing. */
static void test_waiting_checks_http(void **state) {
        Discovery d;

        discovery_init(&d, 3, HCS, T0);
        assert_int_equal(discovery_next_check(&d, T0), DISCOVERY_CHECK_HTTP);
        assert_false(discovery_probe_done(&d, DISCOVERY_CHECK_TCP, DISCOVERY_PROBE_ANSWERED, T0));
        assert_int_equal(discovery_state(&d), DISCOVERY_STATE_WAITING);
        assert_int_equal(discovery_next_check(&d, T0 + 50 * MSEC), DISCOVERY_CHECK_HTTP);
        assert_int_equal(discovery_probe_interval(&d, T0 + 50 * MSEC), DISCOVERY_PROBE_FAST_USEC);
}

/* Published: TCP checks 1, 2, 4, 5, 5… s apart while they answer, an HTTP
 * check HealthCheckSec after the last HTTP answer. */
static void test_checks_while_healthy(void **state) {
        static const uint64_t want[] = { 1, 2, 4, 5, 5, 5, 5 }; /* s; sum 27 < 30 */
        Discovery d;
        uint64_t now = T0;

        discovery_init(&d, 3, HCS, T0);
        publish(&d, T0);
        for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                uint64_t interval = discovery_probe_interval(&d, now);
                assert_int_equal(interval, want[i] * SEC);
                now += interval;
                assert_int_equal(discovery_next_check(&d, now), DISCOVERY_CHECK_TCP);
                assert_false(discovery_probe_done(&d, DISCOVERY_CHECK_TCP, DISCOVERY_PROBE_ANSWERED, now));
        }
        /* 27 s: the next TCP check would be at 32 s, but HTTP is due at 30. */
        assert_int_equal(discovery_probe_interval(&d, now), 3 * SEC);
        now += 3 * SEC;
        assert_int_equal(discovery_next_check(&d, now), DISCOVERY_CHECK_HTTP);
        assert_false(discovery_probe_done(&d, DISCOVERY_CHECK_HTTP, DISCOVERY_PROBE_ANSWERED, now));
        assert_int_equal(discovery_next_check(&d, now + SEC), DISCOVERY_CHECK_TCP);
        assert_int_equal(d.http_due, now + HCS * SEC);
        assert_int_equal(discovery_state(&d), DISCOVERY_STATE_PUBLISHED);
}

/* A refused TCP connect is proof: withdrawn at once. */
static void test_tcp_refused_withdraws(void **state) {
        Discovery d;

        discovery_init(&d, 3, HCS, T0);
        publish(&d, T0);
        assert_true(discovery_probe_done(&d, DISCOVERY_CHECK_TCP, DISCOVERY_PROBE_REFUSED, T0 + SEC));
        assert_int_equal(discovery_next_step(&d, T0 + SEC), DISCOVERY_STEP_REVOKE);
        /* Waiting again: HTTP every 50 ms; back only on an HTTP answer. */
        assert_int_equal(discovery_next_check(&d, T0 + SEC), DISCOVERY_CHECK_HTTP);
        assert_int_equal(discovery_probe_interval(&d, T0 + SEC), DISCOVERY_PROBE_FAST_USEC);
}

/* A TCP check without answer: HTTP at once, and TCP intervals from 1 s
 * again once it answers. */
static void test_tcp_timeout_asks_http(void **state) {
        Discovery d;
        uint64_t now = T0;

        discovery_init(&d, 3, HCS, T0);
        publish(&d, T0);
        for (unsigned i = 0; i < 3; i++) {
                now += discovery_probe_interval(&d, now);
                (void) discovery_probe_done(&d, DISCOVERY_CHECK_TCP, DISCOVERY_PROBE_ANSWERED, now);
        }
        assert_int_equal(discovery_probe_interval(&d, now), 5 * SEC);
        now += 5 * SEC;
        assert_false(discovery_probe_done(&d, DISCOVERY_CHECK_TCP, DISCOVERY_PROBE_TIMEOUT, now + PROBE_TIMEOUT));
        now += PROBE_TIMEOUT;
        assert_int_equal(discovery_probe_interval(&d, now), DISCOVERY_PROBE_FAST_USEC);
        now += DISCOVERY_PROBE_FAST_USEC;
        assert_int_equal(discovery_next_check(&d, now), DISCOVERY_CHECK_HTTP);
        assert_false(discovery_probe_done(&d, DISCOVERY_CHECK_HTTP, DISCOVERY_PROBE_ANSWERED, now));
        assert_int_equal(discovery_probe_interval(&d, now), DISCOVERY_PROBE_STEADY_USEC);
        assert_int_equal(discovery_next_check(&d, now + SEC), DISCOVERY_CHECK_TCP);
        /* Then a second timeout in a row (TCP, then HTTP) withdraws. */
        assert_false(discovery_probe_done(&d, DISCOVERY_CHECK_TCP, DISCOVERY_PROBE_TIMEOUT, now + 2 * SEC));
        assert_true(discovery_probe_done(&d, DISCOVERY_CHECK_HTTP, DISCOVERY_PROBE_TIMEOUT, now + 3 * SEC));
        assert_int_equal(discovery_next_step(&d, now + 3 * SEC), DISCOVERY_STEP_REVOKE);
}

/* --probe=tcp: TCP checks only, and a connect publishes. */
static void test_tcp_only(void **state) {
        Discovery d;

        discovery_init(&d, 3, 0, T0);
        assert_int_equal(discovery_next_check(&d, T0), DISCOVERY_CHECK_TCP);
        assert_true(discovery_probe_done(&d, DISCOVERY_CHECK_TCP, DISCOVERY_PROBE_ANSWERED, T0));
        assert_int_equal(discovery_next_step(&d, T0), DISCOVERY_STEP_GRANT);
        for (uint64_t now = T0; now < T0 + 100 * SEC; now += discovery_probe_interval(&d, now)) {
                assert_int_equal(discovery_next_check(&d, now), DISCOVERY_CHECK_TCP);
                (void) discovery_probe_done(&d, DISCOVERY_CHECK_TCP, DISCOVERY_PROBE_ANSWERED, now);
        }
        assert_int_equal(discovery_probe_interval(&d, T0 + 100 * SEC), DISCOVERY_PROBE_TCP_MAX_USEC);
}

/* The app as a simulation sees it: how a check at now goes, and how long
 * it takes. */
typedef DiscoveryProbeResult (*app_fn)(DiscoveryCheck check, uint64_t now, uint64_t *took);

typedef struct Run {
        unsigned checks[_DISCOVERY_CHECK_MAX];
        uint64_t max_gap;     /* between the ends of two checks */
        uint64_t withdrawn;   /* when REVOKE was asked for; 0: not */
} Run;

static void answer_etcd(Discovery *d, uint64_t now, Run *run) {
        for (DiscoveryStep s; (s = discovery_next_step(d, now)) != DISCOVERY_STEP_NONE;)
                switch (s) {
                case DISCOVERY_STEP_GRANT:
                        discovery_granted(d, 0x42, 3, now);
                        break;
                case DISCOVERY_STEP_PUT:
                        discovery_put_done(d);
                        break;
                case DISCOVERY_STEP_KEEPALIVE:
                        discovery_kept_alive(d, 3, now);
                        break;
                default:
                        if (run->withdrawn == 0)
                                run->withdrawn = now;
                        discovery_revoked(d);
                }
}

/* nap-discovery's loop on virtual time from *now until until (or the
 * first withdrawal): check, etcd, sleep the interval. */
static void simulate(Discovery *d, uint64_t *now, uint64_t until, app_fn app, Run *run) {
        uint64_t last = *now;
        while (*now < until && run->withdrawn == 0) {
                uint64_t took = 0;
                DiscoveryCheck check = discovery_next_check(d, *now);
                DiscoveryProbeResult r = app(check, *now, &took);
                *now += took;
                run->checks[check]++;
                run->max_gap = MAX(run->max_gap, *now - last);
                last = *now;
                (void) discovery_probe_done(d, check, r, *now);
                answer_etcd(d, *now, run);
                *now += discovery_probe_interval(d, *now);
        }
}

static DiscoveryProbeResult app_healthy(DiscoveryCheck check, uint64_t now, uint64_t *took) {
        *took = MSEC;
        return DISCOVERY_PROBE_ANSWERED;
}

/* SIGSTOPped: the kernel still accepts, nothing answers. */
static DiscoveryProbeResult app_hung(DiscoveryCheck check, uint64_t now, uint64_t *took) {
        *took = check == DISCOVERY_CHECK_TCP ? MSEC : PROBE_TIMEOUT;
        return check == DISCOVERY_CHECK_TCP ? DISCOVERY_PROBE_ANSWERED : DISCOVERY_PROBE_TIMEOUT;
}

static DiscoveryProbeResult app_closed(DiscoveryCheck check, uint64_t now, uint64_t *took) {
        *took = MSEC;
        return DISCOVERY_PROBE_REFUSED;
}

/* An hour of a healthy app: one HTTP check per HealthCheckSec (the old
 * probe made one a second), TCP checks never more than 5 s apart. */
static void test_http_rate_while_healthy(void **state) {
        Discovery d;
        Run run = {};
        uint64_t now = T0;

        discovery_init(&d, 3, HCS, T0);
        simulate(&d, &now, T0 + 3600 * SEC, app_healthy, &run);
        assert_int_equal(run.withdrawn, 0);
        assert_int_equal(discovery_state(&d), DISCOVERY_STATE_PUBLISHED);
        assert_in_range(run.checks[DISCOVERY_CHECK_HTTP], 3600 / HCS, 3600 / HCS + 2);
        assert_true(run.max_gap <= DISCOVERY_PROBE_TCP_MAX_USEC + MSEC);
        print_message("1 h healthy: %u HTTP checks (%.2f/min), %u TCP checks, longest gap %llu ms\n",
                      run.checks[DISCOVERY_CHECK_HTTP], run.checks[DISCOVERY_CHECK_HTTP] / 60.0,
                      run.checks[DISCOVERY_CHECK_TCP], (unsigned long long) (run.max_gap / MSEC));
}

/* The app, healthy and published, turns into failing at every moment over
 * two HTTP periods, 37 ms apart: the longest it took until its key was
 * withdrawn, failing the test at once past bound. */
static uint64_t worst_withdrawal(app_fn failing, uint64_t bound, const char *what) {
        uint64_t worst = 0;

        for (uint64_t at = T0 + 10 * SEC; at < T0 + 10 * SEC + 2 * HCS * SEC; at += 37 * MSEC) {
                Discovery d;
                Run run = {};
                uint64_t now = T0;

                discovery_init(&d, 3, HCS, T0);
                simulate(&d, &now, at, app_healthy, &run);
                assert_int_equal(discovery_state(&d), DISCOVERY_STATE_PUBLISHED);
                simulate(&d, &now, at + 10 * HCS * SEC, failing, &run);
                assert_true(run.withdrawn > 0);
                if (run.withdrawn - at > bound)
                        fail_msg("%s at %llu ms: withdrawn %llu ms later, bound %llu ms", what,
                                 (unsigned long long) ((at - T0) / MSEC),
                                 (unsigned long long) ((run.withdrawn - at) / MSEC),
                                 (unsigned long long) (bound / MSEC));
                worst = MAX(worst, run.withdrawn - at);
        }
        print_message("%s: withdrawn at worst %llu ms after (bound %llu ms)\n", what,
                      (unsigned long long) (worst / MSEC), (unsigned long long) (bound / MSEC));
        return worst;
}

/* The bound of discovery.h: an app that hangs is withdrawn within
 * HealthCheckSec + 2 probe timeouts + 50 ms (+ the TCP check in flight,
 * 1 ms here). */
static void test_hung_app_withdrawn_within_bound(void **state) {
        uint64_t bound = HCS * SEC + 2 * PROBE_TIMEOUT + DISCOVERY_PROBE_FAST_USEC + MSEC;

        /* Not much less either: the HTTP checks, not luck, find it. */
        assert_true(worst_withdrawal(app_hung, bound, "hung app") > HCS * SEC);
}

/* An app that closes its port: withdrawn within one TCP interval at most
 * (5 s), from a refused connect. */
static void test_closed_port_withdrawn_within_tcp_interval(void **state) {
        (void) worst_withdrawal(app_closed, DISCOVERY_PROBE_TCP_MAX_USEC + MSEC, "closed port");
}

/* First publication as before: the key is asked for within 50 ms (one
 * fast check) of the app's first HTTP answer. */
static void test_first_publish_within_fast_interval(void **state) {
        Discovery d;
        uint64_t now = T0, listening = T0 + 1234 * MSEC;

        discovery_init(&d, 3, HCS, T0);
        while (discovery_state(&d) == DISCOVERY_STATE_WAITING) {
                (void) discovery_probe_done(&d, discovery_next_check(&d, now),
                                            now >= listening ? DISCOVERY_PROBE_ANSWERED : DISCOVERY_PROBE_REFUSED, now);
                if (discovery_state(&d) == DISCOVERY_STATE_WAITING)
                        now += discovery_probe_interval(&d, now);
        }
        assert_true(now - listening <= DISCOVERY_PROBE_FAST_USEC);
        assert_int_equal(discovery_next_step(&d, now), DISCOVERY_STEP_GRANT);
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
                cmocka_unit_test(test_waiting_checks_http),
                cmocka_unit_test(test_checks_while_healthy),
                cmocka_unit_test(test_tcp_refused_withdraws),
                cmocka_unit_test(test_tcp_timeout_asks_http),
                cmocka_unit_test(test_tcp_only),
                cmocka_unit_test(test_http_rate_while_healthy),
                cmocka_unit_test(test_hung_app_withdrawn_within_bound),
                cmocka_unit_test(test_closed_port_withdrawn_within_tcp_interval),
                cmocka_unit_test(test_first_publish_within_fast_interval),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
