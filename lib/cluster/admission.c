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

/* 1 admitted, 0 does not fit now. */
static int admit_one(EtcdClient *c, const char *prefix, NapPlacer *p, const NapJob *j, const NapAdmitOptions *o,
                     int64_t *revision, NapError *e) {
        NapReservation rs[2 * NAP_JOB_INSTANCES_MAX];
        bool with_previous[2 * NAP_JOB_INSTANCES_MAX];
        unsigned n = job_reservations(j, rs, with_previous);
        Admitted a = { .etcd = c, .prefix = prefix, .rs = rs, .n_rs = n };
        int r = find_placed(c, prefix, rs, n, e);
        if (r == 0) {
                NapError e2 = NAP_ERROR_NULL;
                r = nap_placer_place_each(p, rs, n, with_previous, o->policy, NULL, &e2);
                if (r < 0 && e2.kind == NAP_ERROR_INSUFFICIENT_RESOURCES)
                        return 0;
                if (r < 0 && e)
                        *e = e2;
        }
        return r < 0 ? r : mark_running(&a, j, revision, e);
}

int nap_queue_admit_jobs(EtcdClient *c, const char *prefix, NapPlacer **placer, const NapJob *jobs, size_t n,
                         const NapAdmitOptions *o, unsigned *ret_admitted, bool *ret_blocked, int64_t *ret_revision,
                         NapError *e) {
        unsigned admitted = 0;
        bool blocked = false;
        int r = 0;
        for (size_t i = 0; r >= 0 && !blocked && i < n; i++) {
                if (!*placer && (r = nap_placer_new(c, prefix, placer, e)) < 0)
                        break;
                r = admit_one(c, prefix, *placer, jobs + i, o, ret_revision, e);
                blocked = r == 0 && !o->backfill;
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
