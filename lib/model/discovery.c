/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>

#include "model/discovery.h"

static const char *const check_table[_DISCOVERY_CHECK_MAX] = {
        [DISCOVERY_CHECK_TCP] = "tcp",
        [DISCOVERY_CHECK_HTTP] = "http",
};

static const char *const probe_result_table[_DISCOVERY_PROBE_RESULT_MAX] = {
        [DISCOVERY_PROBE_ANSWERED] = "answered",
        [DISCOVERY_PROBE_REFUSED] = "refused",
        [DISCOVERY_PROBE_TIMEOUT] = "timeout",
};

static const char *const step_table[_DISCOVERY_STEP_MAX] = {
        [DISCOVERY_STEP_NONE] = "none",
        [DISCOVERY_STEP_GRANT] = "grant",
        [DISCOVERY_STEP_PUT] = "put",
        [DISCOVERY_STEP_KEEPALIVE] = "keepalive",
        [DISCOVERY_STEP_REVOKE] = "revoke",
};

static const char *const state_table[_DISCOVERY_STATE_MAX] = {
        [DISCOVERY_STATE_WAITING] = "waiting",
        [DISCOVERY_STATE_PUBLISHING] = "publishing",
        [DISCOVERY_STATE_PUBLISHED] = "published",
        [DISCOVERY_STATE_WITHDRAWING] = "withdrawing",
};

const char *discovery_check_to_string(DiscoveryCheck c) {
        return c >= 0 && c < _DISCOVERY_CHECK_MAX ? check_table[c] : NULL;
}

DiscoveryCheck discovery_check_from_string(const char *s) {
        return string_table_lookup(check_table, ELEMENTSOF(check_table), s);
}

const char *discovery_probe_result_to_string(DiscoveryProbeResult r) {
        return r >= 0 && r < _DISCOVERY_PROBE_RESULT_MAX ? probe_result_table[r] : NULL;
}

const char *discovery_step_to_string(DiscoveryStep s) {
        return s >= 0 && s < _DISCOVERY_STEP_MAX ? step_table[s] : NULL;
}

const char *discovery_state_to_string(DiscoveryState s) {
        return s >= 0 && s < _DISCOVERY_STATE_MAX ? state_table[s] : NULL;
}

void discovery_init(Discovery *d, unsigned ttl_sec, unsigned health_check_sec, uint64_t now) {
        uint64_t ttl = MAX(ttl_sec, 1u);

        assert(d);

        /* Retries must come often enough that a restarted etcd gets the
         * key back within two keep-alive intervals (TTL/3 each). */
        *d = (Discovery) {
                .ttl_sec = ttl,
                .backoff_max_usec = MAX(MIN(DISCOVERY_BACKOFF_MAX_USEC, ttl * DISCOVERY_USEC_PER_SEC / 6),
                                        DISCOVERY_BACKOFF_MIN_USEC),
                .health_check_usec = (uint64_t) health_check_sec * DISCOVERY_USEC_PER_SEC,
                .keepalive_usec = ttl * DISCOVERY_USEC_PER_SEC / 3,
                .silent_since = now,
        };
}

static bool tcp_only(const Discovery *d) {
        return d->health_check_usec == 0;
}

DiscoveryCheck discovery_next_check(const Discovery *d, uint64_t now) {
        assert(d);

        if (tcp_only(d))
                return DISCOVERY_CHECK_TCP;
        /* Only HTTP can publish, and only HTTP can tell a slow app from a
         * hung one after a check without answer. */
        if (!d->app_up || d->timeouts > 0 || now >= d->http_due)
                return DISCOVERY_CHECK_HTTP;
        return DISCOVERY_CHECK_TCP;
}

/* An answer that says the app serves: HTTP, or TCP when that is all. */
static void serving(Discovery *d, DiscoveryCheck check, uint64_t now) {
        if (!d->app_up)
                d->tcp_interval_usec = DISCOVERY_PROBE_STEADY_USEC;
        d->app_up = d->app_answered_once = true;
        d->timeouts = 0;
        if (check == DISCOVERY_CHECK_HTTP)
                d->http_due = now + d->health_check_usec;
}

bool discovery_probe_done(Discovery *d, DiscoveryCheck check, DiscoveryProbeResult r, uint64_t now) {
        bool was_up;

        assert(d);

        was_up = d->app_up;
        switch (r) {
        case DISCOVERY_PROBE_ANSWERED:
                /* Healthy and still answering: look less often. */
                if (d->app_up && d->timeouts == 0)
                        d->tcp_interval_usec = MIN(d->tcp_interval_usec * 2, DISCOVERY_PROBE_TCP_MAX_USEC);
                /* A TCP connect to an app checked by HTTP only says that
                 * something listens (the kernel accepts for a hung app). */
                if (check == DISCOVERY_CHECK_HTTP || tcp_only(d))
                        serving(d, check, now);
                break;
        case DISCOVERY_PROBE_REFUSED:
                /* Nobody listens (any more): a definite answer. */
                d->app_up = false;
                break;
        case DISCOVERY_PROBE_TIMEOUT:
                /* One slow answer may be a busy app; two in a row is one
                 * that does not serve. */
                d->tcp_interval_usec = DISCOVERY_PROBE_STEADY_USEC;
                if (++d->timeouts >= DISCOVERY_TIMEOUTS_DOWN)
                        d->app_up = false;
                break;
        default:
                break;
        }
        if (was_up && !d->app_up)
                d->silent_since = now;
        return was_up != d->app_up;
}

uint64_t discovery_probe_interval(const Discovery *d, uint64_t now) {
        assert(d);

        if (d->app_up) {
                /* After a missed answer, ask again at once: a stopped app
                 * is withdrawn within 2 timeouts, not 2 intervals. */
                if (d->timeouts > 0)
                        return DISCOVERY_PROBE_FAST_USEC;
                if (tcp_only(d))
                        return d->tcp_interval_usec;
                return MIN(d->tcp_interval_usec, d->http_due > now ? d->http_due - now : 0);
        }
        if (now - d->silent_since < DISCOVERY_PROBE_FAST_FOR_USEC)
                return DISCOVERY_PROBE_FAST_USEC;
        return DISCOVERY_PROBE_SLOW_USEC;
}

DiscoveryStep discovery_next_step(const Discovery *d, uint64_t now) {
        assert(d);

        if (now < d->retry_at)
                return DISCOVERY_STEP_NONE;
        if (!d->app_up)
                /* Never publish before an answer; withdraw after silence. */
                return d->lease != 0 ? DISCOVERY_STEP_REVOKE : DISCOVERY_STEP_NONE;
        if (d->lease == 0)
                return DISCOVERY_STEP_GRANT;
        if (!d->published)
                return DISCOVERY_STEP_PUT;
        if (now >= d->keepalive_due)
                return DISCOVERY_STEP_KEEPALIVE;
        return DISCOVERY_STEP_NONE;
}

uint64_t discovery_next_wakeup(const Discovery *d) {
        assert(d);

        if (!d->app_up)
                return d->lease != 0 ? d->retry_at : DISCOVERY_USEC_INFINITY;
        if (d->lease == 0 || !d->published)
                return d->retry_at;
        return MAX(d->retry_at, d->keepalive_due);
}

static void succeeded(Discovery *d) {
        d->failures = 0;
        d->backoff_usec = 0;
        d->retry_at = 0;
        d->last_error = 0;
}

static uint64_t keepalive_interval(int64_t ttl_sec) {
        return (uint64_t) MAX(ttl_sec, (int64_t) 1) * DISCOVERY_USEC_PER_SEC / 3;
}

void discovery_granted(Discovery *d, int64_t lease, int64_t ttl_sec, uint64_t started) {
        assert(d);

        succeeded(d);
        d->lease = lease;
        d->published = false;
        d->keepalive_usec = keepalive_interval(ttl_sec);
        d->keepalive_due = started + d->keepalive_usec;
}

void discovery_put_done(Discovery *d) {
        assert(d);

        succeeded(d);
        d->losses = 0;
        d->published = true;
}

void discovery_kept_alive(Discovery *d, int64_t ttl_sec, uint64_t started) {
        assert(d);

        succeeded(d);
        d->keepalive_usec = keepalive_interval(ttl_sec);
        d->keepalive_due = started + d->keepalive_usec;
}

void discovery_revoked(Discovery *d) {
        assert(d);

        succeeded(d);
        d->lease = 0;
        d->published = false;
}

static void backoff(Discovery *d, uint64_t now) {
        d->backoff_usec = d->backoff_usec == 0 ? DISCOVERY_BACKOFF_MIN_USEC
                                               : MIN(d->backoff_usec * 2, d->backoff_max_usec);
        d->retry_at = now + d->backoff_usec;
}

void discovery_failed(Discovery *d, DiscoveryStep step, int r, uint64_t now) {
        assert(d);

        if (r == -ENOENT && step == DISCOVERY_STEP_REVOKE) {
                discovery_revoked(d); /* gone already: what we wanted */
                return;
        }
        if (r == -ENOENT && (step == DISCOVERY_STEP_PUT || step == DISCOVERY_STEP_KEEPALIVE)) {
                /* Lost (etcd restarted, a long outage): normal, so grant
                 * again at once; but not in a loop if that keeps happening. */
                d->lease = 0;
                d->published = false;
                d->failures = 0; /* etcd answered */
                d->last_error = 0;
                if (d->losses++ == 0)
                        d->retry_at = now;
                else
                        backoff(d, now);
                return;
        }
        backoff(d, now);
        d->failures++;
        d->last_error = r;
}

DiscoveryState discovery_state(const Discovery *d) {
        assert(d);

        if (d->app_up)
                return d->published ? DISCOVERY_STATE_PUBLISHED : DISCOVERY_STATE_PUBLISHING;
        return d->lease != 0 ? DISCOVERY_STATE_WITHDRAWING : DISCOVERY_STATE_WAITING;
}
