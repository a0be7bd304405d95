/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The queue's callbacks, really called (seed 003 stored them and never
 * called one). When a job is admitted its callback is due (admission.h);
 * a delivery POSTs the job as the API shows it (nap_job_to_wire(), with
 * its Placements) to the callback URL with libcurl:
 *
 *   Content-Type: application/json
 *   X-Nap-Delivery: ID       the same on every attempt of one admission:
 *                            the receiver de-duplicates on it
 *   X-Nap-Attempt: N         1, 2, …
 *   X-Nap-Signature: sha256=HEX   HMAC-SHA256 of the body with the
 *                            owner's secret (nap_queue_secret())
 *
 * A 2xx answer delivers it; anything else (another status, no answer
 * within the timeout, a refused connection) is retried after backoff,
 * doubling from backoff_usec up to backoff_max_usec, until max_attempts
 * have failed: then the job's CallbackStatus is "failed" with the last
 * reason. Redirects are not followed. Every outcome is written to the job
 * in etcd before the next attempt, so a restart resumes where it stopped:
 * at least once (an attempt that reached the receiver just before a crash
 * is made again, with the same delivery id). Hosts sharing the queue
 * claim an attempt first (a CAS on the job): one POST per attempt, not
 * one per host. Nothing here logs. */

#include "cluster/queue.h"

typedef struct NapCallbackOptions {
        unsigned max_attempts;     /* 0: 8 */
        uint64_t backoff_usec;     /* 0: 500 ms */
        uint64_t backoff_max_usec; /* 0: 60 s */
        uint64_t timeout_usec;     /* per attempt; 0: 10 s */
} NapCallbackOptions;

/* The signature header's value for body: "sha256=" and 64 hex digits. */
void nap_callback_signature(const char *secret, const char *body, size_t size, char ret[static 7 + 65]);

/* One pass: every delivery due by now is attempted once. ret_delivered
 * (optional): how many were delivered; ret_next_usec (optional,
 * CLOCK_REALTIME): when the next one is due, 0 when none is pending. */
int nap_callbacks_deliver(EtcdClient *c, const char *prefix, const NapCallbackOptions *o, unsigned *ret_delivered,
                          uint64_t *ret_next_usec, NapError *e);
