/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Starts that wait in nap's own resource queue: start-common --queue
 * (ops-instance.c) and start-mpi --queue (ops-mpi.c). One job type for
 * both, nap-start: the jobs pinned to a node wait in one line per node,
 * whatever they start (docs/ARCHITECTURE.md "The resource queue"). */

#include <inttypes.h>
#include <stdio.h>

#include <jansson.h>

#include "base/debug-point.h"
#include "base/fileio.h"
#include "base/hex.h"
#include "base/sha256.h"
#include "cluster/admission.h"
#include "cluster/inventory.h"
#include "cluster/queue.h"
#include "ops/method-json.h"
#include "ops/ops-internal.h"
#include "ops/publish.h"

static int queue_configured(const NapContext *c, NapError *e) {
        if (!c->config->etcd)
                return nap_error_set(e, NAP_ERROR_QUEUE_NOT_CONFIGURED, -EOPNOTSUPP,
                                     "No resource queue on this host: nap.conf has no Etcd=");
        return 0;
}

int ops_queued_check(NapContext *c, const NapCompute *request, const char *request_id, NapError *e) {
        if (nap_compute_is_empty(request))
                return nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                                            "queue needs cpu or memory: there is nothing to wait for"),
                                           "queue");
        if (!request_id)
                return nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                                            "queue needs a request id (the job is found by it)"),
                                           "requestId");
        return queue_configured(c, e);
}

static int pass_error(NapError *e, const NapError *why, int r) {
        if (e)
                *e = *why;
        return r;
}

/* The job's request_id: the queue's ids have no ':' and are per type, a
 * start's per user, so USER.HEX (the hash of USER/ID). */
static void queued_job_name(const char *user, const char *request, char ret[static 65]) {
        uint8_t h[SHA256_DIGEST_SIZE];
        Sha256 x;
        sha256_init(&x);
        sha256_update(&x, user, strlen(user));
        sha256_update(&x, "/", 1);
        sha256_update(&x, request, strlen(request));
        sha256_final(&x, h);
        int n = snprintf(ret, 65, "%s.", user);
        if (n >= 0 && n + 2 * 12 < 65) /* a valid user name leaves room */
                hex_encode(h, 12, ret + n);
}

static int queue_etcd(NapContext *c, EtcdClient **ret, NapError *e) {
        int r = queue_configured(c, e);
        return r < 0 ? r : nap_context_etcd(c, ret, e);
}

/* The job of a queued start; NoSuchJob when there is none. */
static int queued_job_get(NapContext *c, EtcdClient *etcd, const char *user, const char *request, NapJob *ret,
                          NapError *e) {
        char name[65];
        queued_job_name(user, request, name);
        return nap_queue_get(etcd, c->config->cluster_prefix, NAP_QUEUE_TYPE_START, name, user, ret, e);
}

/* RequestTooLarge when the request exceeds the node's whole capacity: it
 * could never be admitted there. */
static int check_fits_node(EtcdClient *etcd, const char *prefix, const char *node, const NapCompute *r, NapError *e) {
        _cleanup_(nap_node_info_done) NapNodeInfo i = {};
        int k = nap_node_get(etcd, prefix, node, &i, e);
        if (k < 0)
                return k;
        if (r->request_cpu_milli > i.node.capacity.cpu_milli || r->request_memory > i.node.capacity.memory)
                return nap_error_set(e, NAP_ERROR_REQUEST_TOO_LARGE, -E2BIG,
                                     "The request (cpu_milli=%" PRIu64 ", memory=%" PRIu64 ") is larger than node %s "
                                     "(cpu_milli=%" PRIu64 ", memory=%" PRIu64 "): it would wait forever",
                                     r->request_cpu_milli, r->request_memory, node, i.node.capacity.cpu_milli,
                                     i.node.capacity.memory);
        return 0;
}

/* A compute request in the stored form of a reservation; NULL: none. */
static json_t *compute_json(const NapCompute *c) {
        NapReservation res = { .kind = NAP_RESERVATION_COMPUTE, .compute = *c };
        _cleanup_free_ char *stored = NULL;
        if (nap_reservation_to_json(&res, &stored) < 0)
                return NULL;
        return json_loads(stored, 0, NULL);
}

/* data: the queue's view of the request (whole CPUs and MiB, rounded up)
 * and nap's: the node, the method that starts it, the app, its
 * parameters, the request id, the exact reservation (start-mpi: and a
 * rank's request), and whether its client left (--no-block: nap-queued
 * starts it once admitted). */
static char *queued_job_data(const OpsQueuedRequest *q, const char *node) {
        const NapCompute *r = &q->reservation;
        char service[NAP_SERVICE_NAME_MAX];
        json_auto_t *j = json_pack("{s:[{s:I, s:I, s:i}], s:{s:s, s:s, s:s, s:s, s:o?, s:o?, s:o?, s:b}}", "instances",
                                   "VCPU", (json_int_t) MAX((r->request_cpu_milli + 999) / 1000, 1), "Memory",
                                   (json_int_t) MAX((r->request_memory + (1 << 20) - 1) >> 20, 1), "Disk", 0, "nap",
                                   "node", node, "method", q->method, "service", nap_service_name(q->service, service),
                                   "request", q->request, "reservation", compute_json(r), "rank",
                                   q->rank ? compute_json(q->rank) : NULL, "params", nap_json_params(q->params), "detached",
                                   q->detached);
        return j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
}

static int queued_position(EtcdClient *etcd, const char *prefix, const NapJob *j, unsigned *ret, NapError *e) {
        NapJobFilter f = { .status = NAP_JOB_QUEUED };
        NapJob *l = NULL;
        size_t n = 0;
        int r = nap_queue_list(etcd, prefix, NAP_QUEUE_TYPE_START, &f, &l, &n, NULL, e);
        *ret = 0;
        for (size_t i = 0; r >= 0 && i < n && *ret == 0; i++)
                if (streq(l[i].request_id, j->request_id))
                        *ret = i + 1;
        nap_job_array_free(l, n);
        return r;
}

static int queued_answer(EtcdClient *etcd, const char *prefix, const NapJob *j, NapQueuedStart *ret, NapError *e) {
        NapQueuedStart q = { .id = j->id };
        snprintf(q.job, sizeof q.job, "%s", j->request_id);
        int r = j->status == NAP_JOB_QUEUED ? queued_position(etcd, prefix, j, &q.position, e) : 0;
        if (r < 0)
                return r;
        if (ret)
                *ret = q;
        return 1;
}

/* The kind of start job j is ("start-common" from "nap:start-common/ID"),
 * into buf; "" when it is not one of nap's own. */
static const char *job_kind(const NapJob *j, char *buf, size_t size) {
        const char *k = nap_callback_is_internal(j->callback) ? j->callback + strlen(NAP_CALLBACK_INTERNAL_PREFIX) : "";
        snprintf(buf, size, "%.*s", (int) strcspn(k, "/"), k);
        return buf;
}

static bool job_is_kind(const NapJob *j, const char *kind) {
        char buf[32];
        return streq(job_kind(j, buf, sizeof buf), kind);
}

/* The crash tests' point KIND:what of j's start. */
static void job_debug_point(const NapJob *j, const char *what) {
        char kind[32], name[64];
        snprintf(name, sizeof name, "%s:%s", job_kind(j, kind, sizeof kind), what);
        nap_debug_point(name);
}

/* The request did not fit: a job for it, unless it never could. */
static int enqueue_start(NapContext *c, EtcdClient *etcd, const OpsQueuedRequest *q, NapQueuedStart *ret,
                         NapError *e) {
        _cleanup_(nap_job_done) NapJob j = {};
        _cleanup_free_ char *node = NULL;
        const char *prefix = c->config->cluster_prefix;
        int r = nap_config_node(c->config, &node, e);
        if (r >= 0)
                r = check_fits_node(etcd, prefix, node, &q->reservation, e);
        if (r < 0)
                return r;
        snprintf(j.type, sizeof j.type, NAP_QUEUE_TYPE_START);
        snprintf(j.owner, sizeof j.owner, "%s", q->service->user);
        queued_job_name(q->service->user, q->request, j.request_id);
        j.data = queued_job_data(q, node);
        j.callback = strdup_printf(NAP_CALLBACK_INTERNAL_PREFIX "%s/%s", q->kind, j.request_id);
        if (!j.data || !j.callback)
                return nap_error_errno(e, -ENOMEM, "Failed to queue the start");
        if (nap_job_request_id_check(j.request_id, NULL) < 0)
                return nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                                            "Request id %s cannot name a job", q->request), "requestId");
        r = nap_queue_create(etcd, prefix, &j, e);
        job_debug_point(&j, "queued");
        return r < 0 ? r : queued_answer(etcd, prefix, &j, ret, e);
}

int ops_queued_take(NapContext *c, const NapJob *j, NapIntent *in, const NapInstance *owner, NapReservation *ret,
                    NapError *e) {
        char name[NAP_UNIT_NAME_MAX];
        NapReservation held;
        EtcdClient *etcd;
        job_debug_point(j, "admitted");
        int r = nap_job_internal_reservation(j, &held, e);
        if (r >= 0)
                r = nap_context_etcd(c, &etcd, e);
        if (r < 0)
                return r;
        in->number = owner->number;
        snprintf(in->node, sizeof in->node, "%s", held.node);
        r = ops_intent_begin(c, in, e);
        if (r >= 0)
                r = nap_queue_hand_over(etcd, c->config->cluster_prefix, j, nap_instance_name(owner, name), ret, e);
        if (r >= 0)
                job_debug_point(j, "handed-over");
        return r;
}

/* 1 when a queued start waits for this host's node. */
static int node_has_waiting(NapContext *c, EtcdClient *etcd, NapError *e) {
        _cleanup_free_ char *node = NULL;
        NapJobFilter f = { .status = NAP_JOB_QUEUED };
        NapJob *l = NULL;
        size_t n = 0;
        bool waiting = false;
        int r = nap_config_node(c->config, &node, e);
        if (r >= 0)
                r = nap_queue_list(etcd, c->config->cluster_prefix, NAP_QUEUE_TYPE_START, &f, &l, &n, NULL, e);
        for (size_t i = 0; r >= 0 && i < n && !waiting; i++) {
                NapReservation held;
                waiting = nap_job_internal_reservation(l + i, &held, NULL) >= 0 && streq(held.node, node);
        }
        nap_job_array_free(l, n);
        return r < 0 ? r : waiting;
}

int ops_queued_start(NapContext *c, const OpsQueuedRequest *q, const OpsQueuedStarter *s, NapQueuedStart *ret,
                     NapError *e) {
        _cleanup_(nap_job_done) NapJob j = {};
        NapError why = NAP_ERROR_NULL;
        EtcdClient *etcd;
        int r = queue_etcd(c, &etcd, e);
        if (r < 0)
                return r;
        r = queued_job_get(c, etcd, q->service->user, q->request, &j, &why);
        if (r < 0 && why.kind != NAP_ERROR_NO_SUCH_JOB)
                return pass_error(e, &why, r);
        if (r >= 0 && !job_is_kind(&j, q->kind))
                return nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EEXIST,
                                                            "Request id %s was queued for another kind of start (%s)",
                                                            q->request, j.callback), "requestId");
        if (r >= 0 && j.status == NAP_JOB_QUEUED)
                return queued_answer(etcd, c->config->cluster_prefix, &j, ret, e);
        if (r >= 0 && j.status != NAP_JOB_RUNNING)
                return nap_error_set(e, NAP_ERROR_NO_SUCH_JOB, -ENOENT, "The queued start %s was %s without an instance",
                                     q->request, nap_job_status_to_string(j.status));
        if (r >= 0)
                return s->start_admitted(c, &j, s->userdata, e);
        r = node_has_waiting(c, etcd, e);
        if (r != 0) /* head of line per node: behind those already waiting for it */
                return r < 0 ? r : enqueue_start(c, etcd, q, ret, e);
        why = NAP_ERROR_NULL;
        r = s->start_now(c, s->userdata, &why);
        if (r >= 0 || why.kind != NAP_ERROR_INSUFFICIENT_RESOURCES)
                return r < 0 ? pass_error(e, &why, r) : 0;
        return enqueue_start(c, etcd, q, ret, e);
}

static int job_event(const EtcdEvent *ev, void *userdata) {
        NapJob j = {};
        bool left = ev->type == ETCD_EVENT_DELETE ||
                    nap_job_from_json(ev->kv.value, ev->kv.value_size, &j, NULL) < 0 || j.status != NAP_JOB_QUEUED;
        nap_job_done(&j);
        (void) userdata;
        return left; /* it left the queue: the watch ends */
}

int nap_queued_start_wait(NapContext *c, const char *user, const char *request_id,
                          const volatile sig_atomic_t *cancel, NapError *e) {
        _cleanup_(nap_job_done) NapJob j = {};
        _cleanup_free_ char *key = NULL;
        EtcdClient *etcd;
        int r = queue_etcd(c, &etcd, e);
        if (r >= 0)
                r = queued_job_get(c, etcd, user, request_id, &j, e);
        if (r >= 0 && j.status == NAP_JOB_QUEUED) {
                EtcdWatchOptions o = { .start_revision = j.revision + 1, .cancel = cancel, .on_event = job_event };
                if (!(key = nap_key_job(c->config->cluster_prefix, j.type, j.request_id)))
                        return nap_error_errno(e, -ENOMEM, "Failed to wait for the queue");
                r = etcd_watch(etcd, key, &o, NULL, e);
                if (r == 0 && cancel && *cancel)
                        return nap_queued_start_cancel(c, user, request_id, e) < 0 ? -ECANCELED
                               : nap_error_set(e, NAP_ERROR_NO_SUCH_JOB, -ECANCELED, "Cancelled: job %s left the queue",
                                               j.request_id);
                nap_job_done(&j);
                if (r >= 0)
                        r = queued_job_get(c, etcd, user, request_id, &j, e);
        }
        if (r >= 0 && j.status == NAP_JOB_CANCELLED)
                return nap_error_set(e, NAP_ERROR_NO_SUCH_JOB, -ECANCELED, "Job %s was cancelled", j.request_id);
        return r < 0 ? r : 0;
}

int nap_queued_start_cancel(NapContext *c, const char *user, const char *request_id, NapError *e) {
        _cleanup_(nap_job_done) NapJob j = {};
        char name[65];
        EtcdClient *etcd;
        int r = queue_etcd(c, &etcd, e);
        if (r < 0)
                return r;
        queued_job_name(user, request_id, name);
        return nap_queue_cancel(etcd, c->config->cluster_prefix, NAP_QUEUE_TYPE_START, name, user, &j, e);
}
