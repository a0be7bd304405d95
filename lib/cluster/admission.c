/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "cluster/admission.h"

static int oom(NapError *e) {
        return nap_error_errno(e, -ENOMEM, "Out of memory");
}

/* The reservations of job j, in placement order (compute, then its
 * storage when Disk > 0), with_previous set for the storage ones. */
static unsigned job_reservations(const NapJob *j, NapReservation *rs, bool *with_previous) {
        unsigned n = 0;
        for (unsigned i = 0; i < j->n_instances; i++) {
                const NapJobInstance *x = j->instances + i;
                rs[n] = (NapReservation) { .kind = NAP_RESERVATION_COMPUTE,
                                           .compute = { .request_cpu_milli = x->vcpu * 1000,
                                                        .request_memory = x->memory_mib << 20 } };
                nap_job_reservation_name(j, i, rs[n].name);
                with_previous[n++] = false;
                if (x->disk_gib == 0)
                        continue;
                rs[n] = (NapReservation) { .kind = NAP_RESERVATION_STORAGE,
                                           .storage = { .request_bytes = x->disk_gib << 30 } };
                nap_job_reservation_name(j, i, rs[n].name);
                with_previous[n++] = true;
        }
        return n;
}

typedef struct Admitted {
        EtcdClient *etcd;
        const char *prefix;
        NapReservation *rs;
        unsigned n_rs;
        char *delivery_key;
} Admitted;

static int release_placed(const Admitted *a) {
        for (unsigned i = 0; i < a->n_rs; i++)
                (void) nap_release(a->etcd, a->prefix, a->rs[i].kind, a->rs[i].node, a->rs[i].name, NULL);
        return 0;
}

static int change_admitted(NapJob *j, EtcdTxnOp *extra, size_t *n_extra, void *userdata, NapError *e) {
        Admitted *a = userdata;
        uint64_t now = realtime_usec();
        if (j->status == NAP_JOB_RUNNING)
                return 1; /* admitted meanwhile (another host): the reservations are its own */
        if (j->status != NAP_JOB_QUEUED) {
                /* cancelled or done while being placed: what was reserved goes */
                release_placed(a);
                return 1;
        }
        for (unsigned i = 0, k = 0; i < j->n_instances; i++) {
                snprintf(j->instances[i].node, sizeof j->instances[i].node, "%s", a->rs[k].node);
                k += j->instances[i].disk_gib > 0 ? 2 : 1;
        }
        if (nap_job_set_status(j, NAP_JOB_RUNNING, now) < 0)
                return oom(e);
        if (nap_callback_is_internal(j->callback))
                return 0; /* nap's own start: its caller watches the job, nothing is POSTed */
        j->delivery = NAP_DELIVERY_PENDING;
        snprintf(j->delivery_id, sizeof j->delivery_id, "%" PRId64 ".%" PRIu64, j->id, now);
        j->attempts = 0;
        j->next_attempt_usec = now;
        extra[(*n_extra)++] = (EtcdTxnOp) { .type = ETCD_TXN_PUT, .key = a->delivery_key, .value = j->delivery_id,
                                            .value_size = strlen(j->delivery_id) };
        return 0;
}

static int mark_running(Admitted *a, const NapJob *j, int64_t *revision, NapError *e) {
        _cleanup_free_ char *dk = nap_key_delivery(a->prefix, j->type, j->request_id);
        if (!dk)
                return oom(e);
        a->delivery_key = dk;
        NapJob now = {};
        int r = nap_queue_update_job(a->etcd, a->prefix, j, change_admitted, a, &now, e);
        bool admitted = r >= 0 && now.status == NAP_JOB_RUNNING;
        if (r >= 0)
                *revision = MAX(*revision, now.revision);
        nap_job_done(&now);
        return r < 0 ? r : admitted;
}

/* 1: the job's reservations exist already (an earlier pass placed it and
 * died before writing the job): their nodes are filled in. */
static int find_placed(EtcdClient *c, const char *prefix, NapReservation *rs, unsigned n, NapError *e) {
        char *keys[2 * NAP_JOB_INSTANCES_MAX + 1] = {};
        EtcdKeyValue kv[2 * NAP_JOB_INSTANCES_MAX] = {};
        int r = 0;
        for (unsigned i = 0; i < n && r >= 0; i++)
                if (!(keys[i] = nap_key_reservation_name(prefix, rs + i)))
                        r = oom(e);
        if (r >= 0)
                r = etcd_get_many(c, keys, kv, NULL, e);
        if (r > 0 && (unsigned) r != n)
                r = nap_error_set(e, NAP_ERROR_RESERVATION_EXISTS, -EEXIST,
                                  "Only %d of the %u reservations of %s exist; release them", r, n, rs[0].name);
        for (unsigned i = 0; i < n; i++) {
                if (r > 0)
                        snprintf(rs[i].node, sizeof rs[i].node, "%s", kv[i].value);
                etcd_key_value_done(kv + i);
                free(keys[i]);
        }
        return r < 0 ? r : r > 0;
}

/* Places the job's reservations: nap's own starts on their pinned node
 * (nap_reserve(): the instance runs on the host that asked), others by
 * the placer. 0: does not fit now. */
static int place(NapPlacer *p, EtcdClient *c, const char *prefix, NapReservation *rs, unsigned n,
                 const bool *with_previous, bool pinned, const NapAdmitOptions *o, NapError *e) {
        NapError e2 = NAP_ERROR_NULL;
        int r = pinned ? nap_reserve(c, prefix, rs, &e2)
                       : nap_placer_place_each(p, rs, n, with_previous, o->policy, NULL, &e2);
        if (r < 0 && e2.kind == NAP_ERROR_INSUFFICIENT_RESOURCES)
                return 0;
        if (r < 0 && e)
                *e = e2;
        return r < 0 ? r : 1;
}

/* 1 admitted, 0 does not fit now. */
static int admit_one(EtcdClient *c, const char *prefix, NapPlacer *p, const NapJob *j, const NapAdmitOptions *o,
                     int64_t *revision, NapError *e) {
        NapReservation rs[2 * NAP_JOB_INSTANCES_MAX];
        bool with_previous[2 * NAP_JOB_INSTANCES_MAX];
        bool pinned = nap_callback_is_internal(j->callback);
        unsigned n = pinned ? 1 : job_reservations(j, rs, with_previous);
        Admitted a = { .etcd = c, .prefix = prefix, .rs = rs, .n_rs = n };
        int r = pinned ? nap_job_internal_reservation(j, rs, e) : 0;
        if (r >= 0)
                r = find_placed(c, prefix, rs, n, e);
        if (r == 0)
                r = place(p, c, prefix, rs, n, with_previous, pinned, o, e);
        return r <= 0 ? r : mark_running(&a, j, revision, e);
}

/* Head of line per node for nap's own starts: they are pinned, so one
 * that waits for its node holds back the later ones for that node only. */
typedef struct BlockedNodes {
        char node[NAP_SCHEDULE_BATCH_MAX][NAP_NODE_NAME_MAX + 1];
        unsigned n;
} BlockedNodes;

static bool pinned_node(const NapJob *j, char ret[static NAP_NODE_NAME_MAX + 1]) {
        NapReservation r;
        if (!nap_callback_is_internal(j->callback) || nap_job_internal_reservation(j, &r, NULL) < 0)
                return false;
        snprintf(ret, NAP_NODE_NAME_MAX + 1, "%s", r.node);
        return true;
}

static bool node_blocked(const BlockedNodes *b, const char *node) {
        for (unsigned i = 0; i < b->n; i++)
                if (streq(b->node[i], node))
                        return true;
        return b->n == ELEMENTSOF(b->node); /* too many to tell: all wait */
}

int nap_queue_admit_jobs(EtcdClient *c, const char *prefix, NapPlacer **placer, const NapJob *jobs, size_t n,
                         const NapAdmitOptions *o, unsigned *ret_admitted, bool *ret_blocked, int64_t *ret_revision,
                         NapError *e) {
        BlockedNodes held = {};
        unsigned admitted = 0;
        bool blocked = false;
        int r = 0;
        for (size_t i = 0; r >= 0 && !blocked && i < n; i++) {
                char node[NAP_NODE_NAME_MAX + 1];
                bool pinned = pinned_node(jobs + i, node);
                if (pinned && node_blocked(&held, node))
                        continue;
                if (!*placer && (r = nap_placer_new(c, prefix, placer, e)) < 0)
                        break;
                r = admit_one(c, prefix, *placer, jobs + i, o, ret_revision, e);
                if (r == 0 && pinned && held.n < ELEMENTSOF(held.node))
                        snprintf(held.node[held.n++], sizeof held.node[0], "%s", node);
                blocked = r == 0 && !o->backfill && !pinned;
                admitted += r > 0;
        }
        if (r < 0)
                return r;
        *ret_admitted = admitted;
        if (ret_blocked)
                *ret_blocked = blocked;
        return 0;
}

int nap_queue_admit(EtcdClient *c, const char *prefix, const char *type, const NapAdmitOptions *o,
                    unsigned *ret_admitted, unsigned *ret_waiting, NapError *e) {
        _cleanup_(nap_placer_freep) NapPlacer *p = NULL;
        NapJobFilter f = { .status = NAP_JOB_QUEUED };
        NapJob *l = NULL;
        size_t n = 0;
        unsigned admitted = 0;
        int64_t revision = 0;
        int r = nap_queue_list(c, prefix, type, &f, &l, &n, NULL, e);
        if (r >= 0)
                r = nap_queue_admit_jobs(c, prefix, &p, l, n, o, &admitted, NULL, &revision, e);
        nap_job_array_free(l, n);
        if (r < 0)
                return r;
        if (ret_admitted)
                *ret_admitted = admitted;
        if (ret_waiting)
                *ret_waiting = (unsigned) n - admitted;
        return 0;
}

typedef struct HandOver {
        NapReservation from, to;
        char *keys[4];
        char *value;
} HandOver;

static void hand_over_done(HandOver *h) {
        for (size_t i = 0; i < ELEMENTSOF(h->keys); i++)
                free(h->keys[i]);
        free(h->value);
}

static int change_handed_over(NapJob *j, EtcdTxnOp *extra, size_t *n_extra, void *userdata, NapError *e) {
        HandOver *h = userdata;
        if (j->status != NAP_JOB_RUNNING)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EBUSY, "Job %s is %s, not admitted",
                                     j->request_id, nap_job_status_to_string(j->status));
        if (nap_job_set_status(j, NAP_JOB_DONE, realtime_usec()) < 0)
                return oom(e);
        /* the usage of the node is unchanged: the same request, renamed */
        extra[(*n_extra)++] = (EtcdTxnOp) { .type = ETCD_TXN_DELETE, .key = h->keys[0] };
        extra[(*n_extra)++] = (EtcdTxnOp) { .type = ETCD_TXN_DELETE, .key = h->keys[1] };
        extra[(*n_extra)++] = (EtcdTxnOp) { .type = ETCD_TXN_PUT, .key = h->keys[2], .value = h->value,
                                            .value_size = strlen(h->value) };
        extra[(*n_extra)++] = (EtcdTxnOp) { .type = ETCD_TXN_PUT, .key = h->keys[3], .value = h->to.node,
                                            .value_size = strlen(h->to.node) };
        return 0;
}

int nap_queue_hand_over(EtcdClient *c, const char *prefix, const NapJob *j, const char *name, NapReservation *ret,
                        NapError *e) {
        _cleanup_(hand_over_done) HandOver h = {};
        int r = nap_job_internal_reservation(j, &h.from, e);
        if (r < 0)
                return r;
        h.to = h.from;
        snprintf(h.to.name, sizeof h.to.name, "%s", name);
        h.to.created_usec = realtime_usec();
        if (!(h.keys[0] = nap_key_reservation(prefix, &h.from)) || !(h.keys[1] = nap_key_reservation_name(prefix, &h.from)) ||
            !(h.keys[2] = nap_key_reservation(prefix, &h.to)) || !(h.keys[3] = nap_key_reservation_name(prefix, &h.to)) ||
            nap_reservation_to_json(&h.to, &h.value) < 0)
                return oom(e);
        NapJob now = {};
        r = nap_queue_update_job(c, prefix, j, change_handed_over, &h, &now, e);
        nap_job_done(&now);
        if (r < 0)
                return r;
        *ret = h.to;
        return 0;
}
