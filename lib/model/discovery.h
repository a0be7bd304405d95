/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* nap-discovery's decisions, kept apart from its I/O so they can be tested
 * on virtual time (tests/unit/test-discovery.c). The program feeds in what
 * the probe saw and how each etcd request went; this says which request is
 * due next and when to look again. Times are CLOCK_MONOTONIC µs.
 *
 * The rules (nap-discovery(8)):
 *  - Nothing is published before the app has answered an HTTP check
 *    (HEAD PATH, PATH from HealthPath=); a TCP connect is no answer: the
 *    kernel completes it for a hung app too.
 *  - The app answers: grant a lease (if none), put the key on it, then one
 *    keep-alive every TTL/3 (etcd's granted TTL): 3 requests per TTL.
 *  - A keep-alive or put that says the lease is gone (-ENOENT: expired,
 *    revoked, or etcd restarted with its data wiped): grant and put again
 *    at once.
 *  - The app stops answering (connection refused or reset at once, by
 *    either check; no answer in time twice in a row): revoke the lease, the
 *    key goes with it.
 *  - Any other failed request (etcd unreachable, …): try again after a
 *    backoff, 100 ms doubling up to min(2 s, TTL/6), so a restarted etcd
 *    sees the key again well within two keep-alive intervals.
 *  - Checks while waiting for the app: HTTP, every 50 ms (the key appears
 *    within ~50 ms of the first answer), every 500 ms once it has been
 *    silent for 30 s (an app that never listens does not cost 20 connects
 *    a second forever).
 *  - Checks while it answers, so that its log is not full of them: an HTTP
 *    check every HealthCheckSec= (health_check_usec) after the last HTTP
 *    answer, and between them TCP checks (connect, close: nothing the app
 *    logs), the first 1 s after the answer that made it up, each interval
 *    (to the next check of either kind) twice the last while the app keeps
 *    answering, up to 5 s. A refused TCP connect is
 *    proof at once (withdrawn within one TCP interval, ≤ 5 s, of the app
 *    closing its port). After any failed check (a timeout): the next check
 *    is HTTP, at once (50 ms), and TCP intervals start again at 1 s.
 *  - So a hung app (TCP accepts, HTTP never answers) that hangs at t is
 *    withdrawn by t + HealthCheckSec + 2 probe timeouts + 50 ms: its next
 *    HTTP check is due within HealthCheckSec of its last answer, then two
 *    timeouts in a row.
 *  - health_check_usec 0 (--probe=tcp, for apps that do not speak HTTP):
 *    every check is TCP, and a TCP connect counts as an answer. */

#include <stdbool.h>
#include <stdint.h>

#include "base/macro.h"

#define DISCOVERY_USEC_PER_SEC 1000000ULL
#define DISCOVERY_USEC_INFINITY UINT64_MAX

#define DISCOVERY_PROBE_FAST_USEC (50ULL * 1000ULL)
#define DISCOVERY_PROBE_SLOW_USEC (500ULL * 1000ULL)
#define DISCOVERY_PROBE_FAST_FOR_USEC (30ULL * DISCOVERY_USEC_PER_SEC)
#define DISCOVERY_PROBE_STEADY_USEC (1ULL * DISCOVERY_USEC_PER_SEC)
#define DISCOVERY_PROBE_TCP_MAX_USEC (5ULL * DISCOVERY_USEC_PER_SEC)
#define DISCOVERY_TIMEOUTS_DOWN 2u
#define DISCOVERY_BACKOFF_MIN_USEC (100ULL * 1000ULL)
#define DISCOVERY_BACKOFF_MAX_USEC (2ULL * DISCOVERY_USEC_PER_SEC)

typedef enum DiscoveryCheck {
        DISCOVERY_CHECK_TCP,      /* connect and close: is anything listening? */
        DISCOVERY_CHECK_HTTP,     /* HEAD PATH: does the app serve? */
        _DISCOVERY_CHECK_MAX,
        _DISCOVERY_CHECK_INVALID = -EINVAL,
} DiscoveryCheck;

typedef enum DiscoveryProbeResult {
        DISCOVERY_PROBE_ANSWERED, /* accepted and answered in time */
        DISCOVERY_PROBE_REFUSED,  /* nothing listens, or it closed/reset without answering */
        DISCOVERY_PROBE_TIMEOUT,  /* no answer in time: stopped, hung or overloaded */
        _DISCOVERY_PROBE_RESULT_MAX,
        _DISCOVERY_PROBE_RESULT_INVALID = -EINVAL,
} DiscoveryProbeResult;

typedef enum DiscoveryStep {
        DISCOVERY_STEP_NONE,      /* nothing due now */
        DISCOVERY_STEP_GRANT,     /* grant a lease (TTL = DiscoveryTTL=) */
        DISCOVERY_STEP_PUT,       /* put the key on the lease */
        DISCOVERY_STEP_KEEPALIVE, /* renew the lease */
        DISCOVERY_STEP_REVOKE,    /* revoke the lease: the key goes with it */
        _DISCOVERY_STEP_MAX,
        _DISCOVERY_STEP_INVALID = -EINVAL,
} DiscoveryStep;

/* What the outside sees, for STATUS= and for logging state changes. */
typedef enum DiscoveryState {
        DISCOVERY_STATE_WAITING,     /* the app does not answer; no key */
        DISCOVERY_STATE_PUBLISHING,  /* the app answers; the key is not in etcd yet */
        DISCOVERY_STATE_PUBLISHED,   /* the app answers; the key is on our lease */
        DISCOVERY_STATE_WITHDRAWING, /* the app stopped answering; the key is still there */
        _DISCOVERY_STATE_MAX,
        _DISCOVERY_STATE_INVALID = -EINVAL,
} DiscoveryState;

const char *discovery_check_to_string(DiscoveryCheck c) _pure_;
DiscoveryCheck discovery_check_from_string(const char *s) _pure_;
const char *discovery_probe_result_to_string(DiscoveryProbeResult r) _pure_;
const char *discovery_step_to_string(DiscoveryStep s) _pure_;
const char *discovery_state_to_string(DiscoveryState s) _pure_;

typedef struct Discovery {
        /* Settings, from discovery_init(). */
        uint64_t ttl_sec;            /* asked for */
        uint64_t backoff_max_usec;
        uint64_t health_check_usec;  /* between HTTP checks while up; 0: TCP checks only */

        /* The app, as the probe sees it. */
        bool app_up;
        bool app_answered_once;
        unsigned timeouts;           /* consecutive probe timeouts */
        uint64_t silent_since;       /* when it last stopped answering (or init) */
        uint64_t http_due;           /* while up: when the next HTTP check is due */
        uint64_t tcp_interval_usec;  /* while up: after the next TCP check that answers */

        /* etcd. */
        int64_t lease;               /* 0: none */
        uint64_t keepalive_usec;     /* granted TTL / 3 */
        uint64_t keepalive_due;
        bool published;              /* the key is on lease */
        unsigned failures;           /* consecutive failed requests, lost leases aside */
        unsigned losses;             /* leases lost since the last successful put */
        uint64_t backoff_usec;       /* last delay; 0 after a success */
        uint64_t retry_at;           /* no request before this */
        int last_error;              /* of the last failed request, negative errno */
} Discovery;

/* ttl_sec: DiscoveryTTL= (≥ 1; etcd raises it to its minimum).
 * health_check_sec: HealthCheckSec=; 0: TCP checks only. */
void discovery_init(Discovery *d, unsigned ttl_sec, unsigned health_check_sec, uint64_t now);

/* Which check to start now. */
DiscoveryCheck discovery_next_check(const Discovery *d, uint64_t now) _pure_;
/* A check finished. Returns true if the app's up/down verdict changed. */
bool discovery_probe_done(Discovery *d, DiscoveryCheck check, DiscoveryProbeResult r, uint64_t now);
/* How long after this check to start the next one. */
uint64_t discovery_probe_interval(const Discovery *d, uint64_t now) _pure_;

/* The etcd request to make now, if any. */
DiscoveryStep discovery_next_step(const Discovery *d, uint64_t now) _pure_;
/* When discovery_next_step() will have something to do without a new
 * probe result: DISCOVERY_USEC_INFINITY if not before one. */
uint64_t discovery_next_wakeup(const Discovery *d) _pure_;

/* Results of the requests. started: when the request was sent (a lease's
 * clock starts no earlier, so keep-alives count from there). */
void discovery_granted(Discovery *d, int64_t lease, int64_t ttl_sec, uint64_t started);
void discovery_put_done(Discovery *d);
void discovery_kept_alive(Discovery *d, int64_t ttl_sec, uint64_t started);
void discovery_revoked(Discovery *d);
/* Any step failed with r (negative errno). -ENOENT from PUT, KEEPALIVE or
 * REVOKE means etcd has no such lease: it is dropped (for REVOKE that is
 * success). Others are retried after the backoff. */
void discovery_failed(Discovery *d, DiscoveryStep step, int r, uint64_t now);

DiscoveryState discovery_state(const Discovery *d) _pure_;
/* Whether the last request failed (and is being retried). */
static inline bool discovery_etcd_failing(const Discovery *d) {
        return d->failures > 0;
}
