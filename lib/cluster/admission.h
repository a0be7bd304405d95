/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Admission of the queue's jobs (lib/cluster/queue.h) against the node
 * inventory (lib/cluster/inventory.h), what seed 003's worker meant to do.
 *
 * One pass per type: the queued jobs in queue order; for each, every
 * instance of data.instances[] is placed by the inventory's placer
 * (nap_placer_place_each()): a compute reservation of VCPU × 1000
 * milli-cores and Memory MiB, and, when Disk > 0, a storage reservation
 * of Disk GiB on the same node, all of the job's in one txn: all or
 * nothing. Then the job becomes running with its placements, and its
 * callback is due (PREFIX/queue/deliveries/…, in the same txn).
 *
 * Head of line: strict priority by default: when the first queued job
 * does not fit, the pass stops, and no job behind it is admitted, even
 * one that would fit (no starvation of big jobs). With backfill, the pass
 * goes on past jobs that do not fit and admits whatever fits, in order.
 *
 * Crashes: the reservations are named after the job
 * (nap_job_reservation_name()), so they are the intent: a job still
 * queued whose first reservation exists was placed by a pass that died
 * before writing the job; the next pass finds the reservations and marks
 * it running with their nodes, without placing it again. A job cancelled
 * while being placed gets its fresh reservations released. */

#include "cluster/inventory.h"
#include "cluster/queue.h"

typedef struct NapAdmitOptions {
        bool backfill;
        NapPolicy policy;
} NapAdmitOptions;

/* Admits from jobs (queued ones of one type, in queue order, as read by
 * the caller: nap-queued reads them from its index), as a pass does.
 * *placer: the inventory as read, made on first need and kept for the
 * next call. ret_blocked (optional): strict priority stopped at a job
 * that does not fit. ret_revision: raised to the store revision of the
 * last write. */
int nap_queue_admit_jobs(EtcdClient *c, const char *prefix, NapPlacer **placer, const NapJob *jobs, size_t n,
                         const NapAdmitOptions *o, unsigned *ret_admitted, bool *ret_blocked, int64_t *ret_revision,
                         NapError *e);

/* One pass over type's queue, read from etcd. ret_admitted, ret_waiting
 * (optional): the jobs admitted, and those still queued after it. */
int nap_queue_admit(EtcdClient *c, const char *prefix, const char *type, const NapAdmitOptions *o,
                    unsigned *ret_admitted, unsigned *ret_waiting, NapError *e);

/* nap's own start (queue.h: NAP_QUEUE_TYPE_START), admitted: its
 * reservation becomes the instance's, named name, and the job is done, in
 * one txn (the node's usage does not change: the same request, renamed).
 * The instance then holds and releases it as any other (lib/ops). ret:
 * the reservation under its new name. */
int nap_queue_hand_over(EtcdClient *c, const char *prefix, const NapJob *j, const char *name, NapReservation *ret,
                        NapError *e);
