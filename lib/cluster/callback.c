/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/hex.h"
#include "base/sha256.h"
#include "base/strv.h"
#include "clients/http.h"
#include "cluster/callback.h"

static int oom(NapError *e) {
        return nap_error_errno(e, -ENOMEM, "Out of memory");
}

void nap_callback_signature(const char *secret, const char *body, size_t size, char ret[static 7 + 65]) {
        uint8_t d[SHA256_DIGEST_SIZE];
        hmac_sha256(secret, strlen(secret), body, size, d);
        memcpy(ret, "sha256=", 7);
        hex_encode(d, sizeof d, ret + 7);
}

static unsigned max_attempts(const NapCallbackOptions *o) {
        return o->max_attempts ?: 8;
}

/* The delay after the n-th failed attempt (n ≥ 1). */
static uint64_t backoff(const NapCallbackOptions *o, unsigned n) {
        uint64_t d = o->backoff_usec ?: 500 * USEC_PER_SEC / 1000, max = o->backoff_max_usec ?: 60 * USEC_PER_SEC;
        for (unsigned i = 1; i < n && d < max; i++)
                d *= 2;
        return MIN(d, max);
}

/* 0 delivered; < 0 not, with the reason in e. */
static int post(const NapCallbackOptions *o, const NapJob *j, const char *body, const char *secret, NapError *e) {
        char signature[7 + 65], delivery[sizeof j->delivery_id + 32], attempt[48], sig[128];
        NapHttpAnswer a = {};
        nap_callback_signature(secret, body, strlen(body), signature);
        snprintf(delivery, sizeof delivery, "X-Nap-Delivery: %s", j->delivery_id);
        snprintf(attempt, sizeof attempt, "X-Nap-Attempt: %u", j->attempts + 1);
        snprintf(sig, sizeof sig, "X-Nap-Signature: %s", signature);
        char *headers[] = { (char *) "Content-Type: application/json", delivery, attempt, sig, NULL };
        NapHttpRequest q = { .method = "POST", .url = j->callback, .body = body, .body_size = strlen(body),
                             .headers = headers, .timeout_usec = o->timeout_usec };
        int r = nap_http_request(&q, &a, e);
        long status = a.status;
        nap_http_answer_done(&a);
        if (r < 0)
                return r;
        if (status < 200 || status > 299)
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -EIO, "The callback answered HTTP %ld", status);
        return 0;
}

typedef struct Outcome {
        const NapCallbackOptions *options;
        const char *delivery_id;
        const char *error; /* NULL: delivered */
        char *delivery_key;
} Outcome;

static int change_outcome(NapJob *j, EtcdTxnOp *extra, size_t *n_extra, void *userdata, NapError *e) {
        Outcome *x = userdata;
        if (j->delivery != NAP_DELIVERY_PENDING || !streq(j->delivery_id, x->delivery_id))
                return 1; /* ended or delivered by another host meanwhile */
        j->attempts++;
        free(j->delivery_error);
        j->delivery_error = x->error ? strdup(x->error) : NULL;
        if (x->error && !j->delivery_error)
                return oom(e);
        if (!x->error)
                j->delivery = NAP_DELIVERY_DELIVERED;
        else if (j->attempts >= max_attempts(x->options))
                j->delivery = NAP_DELIVERY_FAILED;
        else
                j->next_attempt_usec = realtime_usec() + backoff(x->options, j->attempts);
        if (j->delivery != NAP_DELIVERY_PENDING)
                extra[(*n_extra)++] = (EtcdTxnOp) { .type = ETCD_TXN_DELETE, .key = x->delivery_key };
        return 0;
}

typedef struct Claim {
        const char *delivery_id;
        uint64_t until_usec; /* when another host may attempt it */
        bool claimed;
} Claim;

static int change_claim(NapJob *j, EtcdTxnOp *extra, size_t *n_extra, void *userdata, NapError *e) {
        Claim *x = userdata;
        x->claimed = j->delivery == NAP_DELIVERY_PENDING && streq(j->delivery_id, x->delivery_id) &&
                     j->next_attempt_usec <= realtime_usec();
        if (!x->claimed)
                return 1; /* delivered, ended, or being attempted by another host */
        j->next_attempt_usec = x->until_usec;
        return 0;
}

/* Marks a due delivery as being attempted (its next attempt moved past
 * this one's timeout) in one CAS, so that of the hosts seeing it due only
 * one POSTs it; a host dying mid-attempt leaves it to the others once the
 * claim expires. 1 claimed, with the job as written in ret. */
static int claim(EtcdClient *c, const char *prefix, const NapCallbackOptions *o, const NapJob *j, NapJob *ret,
                 NapError *e) {
        Claim x = { .delivery_id = j->delivery_id,
                    .until_usec = realtime_usec() + (o->timeout_usec ?: 10 * USEC_PER_SEC) + USEC_PER_SEC };
        NapJob current = {};
        int r = nap_queue_update_job(c, prefix, j, change_claim, &x, &current, e);
        if (r < 0 || !x.claimed) {
                nap_job_done(&current);
                return r < 0 ? r : 0;
        }
        *ret = current;
        return 1;
}

/* Attempts one job's delivery; 1 delivered. */
static int attempt(EtcdClient *c, const char *prefix, const NapCallbackOptions *o, const NapJob *j, NapError *e) {
        _cleanup_free_ char *body = NULL, *secret = NULL, *dk = nap_key_delivery(prefix, j->type, j->request_id);
        json_auto_t *wire = nap_job_to_wire(j);
        NapError why = NAP_ERROR_NULL;
        if (!wire || !dk || !(body = json_dumps(wire, JSON_COMPACT)))
                return oom(e);
        int r = nap_queue_secret(c, prefix, j->owner, &secret, e);
        if (r < 0)
                return r;
        int delivered = post(o, j, body, secret, &why) >= 0;
        Outcome x = { .options = o, .delivery_id = j->delivery_id, .error = delivered ? NULL : why.message,
                      .delivery_key = dk };
        r = nap_queue_update_job(c, prefix, j, change_outcome, &x, NULL, e);
        return r < 0 ? r : delivered;
}

/* TYPE and REQUEST_ID of a key under PREFIX/queue/deliveries/. */
static int split_key(const char *k, const char *dir, char *type, char *request_id) {
        const char *rest = startswith(k, dir), *slash = rest ? strchr(rest, '/') : NULL;
        if (!slash || (size_t) (slash - rest) > NAP_QUEUE_TYPE_MAX || strlen(slash + 1) > NAP_REQUEST_ID_MAX)
                return -EINVAL;
        snprintf(type, NAP_QUEUE_TYPE_MAX + 1, "%.*s", (int) (slash - rest), rest);
        snprintf(request_id, NAP_REQUEST_ID_MAX + 1, "%s", slash + 1);
        return 0;
}

/* One pending delivery: attempted when due; *next lowered to its due time otherwise. */
static int deliver_key(EtcdClient *c, const char *prefix, const NapCallbackOptions *o, const char *k,
                       const char *dir, uint64_t *next, NapError *e) {
        char type[NAP_QUEUE_TYPE_MAX + 1], rid[NAP_REQUEST_ID_MAX + 1];
        NapJob j = {};
        if (split_key(k, dir, type, rid) < 0)
                return 0;
        int r = nap_queue_get(c, prefix, type, rid, NULL, &j, NULL);
        if (r < 0 || j.delivery != NAP_DELIVERY_PENDING) {
                nap_job_done(&j);
                return etcd_delete(c, k, false, NULL, e) < 0 ? -EIO : 0; /* a stale index entry */
        }
        uint64_t now = realtime_usec();
        if (j.next_attempt_usec > now) {
                if (*next == 0 || j.next_attempt_usec < *next)
                        *next = j.next_attempt_usec;
                nap_job_done(&j);
                return 0;
        }
        NapJob mine = {};
        r = claim(c, prefix, o, &j, &mine, e);
        if (r > 0) /* else another host's attempt: its outcome wakes the watch, or a look after backoff */
                r = attempt(c, prefix, o, &mine, e);
        nap_job_done(&mine);
        if (r == 0 && j.attempts + 1 < max_attempts(o)) {
                uint64_t due = now + backoff(o, j.attempts + 1);
                if (*next == 0 || due < *next)
                        *next = due;
        }
        nap_job_done(&j);
        return r;
}

int nap_callbacks_deliver(EtcdClient *c, const char *prefix, const NapCallbackOptions *o, unsigned *ret_delivered,
                          uint64_t *ret_next_usec, NapError *e) {
        _cleanup_(etcd_range_done) EtcdRange range = {};
        _cleanup_free_ char *dir = nap_key_deliveries(prefix);
        uint64_t next = 0;
        unsigned delivered = 0;
        if (!dir)
                return oom(e);
        int r = etcd_range_prefix(c, dir, 0, true, &range, e);
        for (size_t i = 0; r >= 0 && i < range.n_kvs; i++) {
                r = deliver_key(c, prefix, o, range.kvs[i].key, dir, &next, e);
                delivered += r > 0;
        }
        if (r < 0)
                return r;
        if (ret_delivered)
                *ret_delivered = delivered;
        if (ret_next_usec)
                *ret_next_usec = next;
        return 0;
}
