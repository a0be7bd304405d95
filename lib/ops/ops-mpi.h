/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* MPI jobs on one host (lib/model/mpi.h has the model, nap.profile(5) the
 * app's side, napctl(1) start-mpi the user's). Placing slaves on other
 * hosts of the cluster is not done here (issue 15). */

#include "clients/systemd1.h"
#include "model/mpi.h"
#include "ops/ops.h"

/* Starts a job of an MPI app: np (params' "np", else MpiRanks=; 1 to
 * MpiRanksMax=, InvalidParameter naming np outside) and the other params
 * substituted into the mpi process's command (InvalidParameter as for
 * start-common); the app built first when this deploy was not yet
 * (its build process, in USER_APP_mpi_build.service: UnitFailed with its
 * last log lines when it fails); then a new job number (never reused),
 * the job's reservation (o->resources: each rank's request and limits,
 * empty: the profile's MpiCpu=/MpiMemory=, else none; see
 * ops_mpi_reserve()), the job's tree, the master's and slaves' manifests
 * and units (no reload; each slave with a rank's limits), the record, and
 * the master started (which pulls in its slaves).
 * Returns once the master runs: ret is the job's record (state running).
 * InvalidProfile when the app is not an MPI app. Changes nothing on bad
 * input or when the job does not fit. Finished jobs of the app are
 * collected once it runs (their units, manifests and trees, their
 * reservations; their records stay). Crash-safe (intent "start-mpi",
 * with the reservation's node: undone by recovery, reservation too).
 * Of o (NULL: none) also: request_id: a second call with the same id
 * answers with the job the first one started (as it is now) instead of
 * starting another. queue (with a request id, a rank's request and
 * Etcd=): a job that does not fit now waits in the resource queue (a job
 * of type nap-start, as start-common's: ops-queued.c): 1 and *o->queued;
 * called again with the same id once admitted, it starts the job on the
 * job's reservation (no_block: nap-queued makes that call).
 * o->number, node and answer_timeout_usec are not used. */
int nap_start_mpi(NapContext *c, const char *service, const NapParams *params, const NapStartOptions *o,
                  NapMpiJob *ret, NapError *e);

/* The reservation step of a job, for whoever starts jobs (start-mpi;
 * the queue): ranks times rank's request (and limits) reserved on this
 * host's node (Node=) as one reservation named as the job's master
 * (USER_APP_mpi_master@J), in one etcd transaction: all or nothing.
 * *ret_node: the node, NULL when nothing was reserved (rank empty, or no
 * inventory: Etcd= unset; the slaves' limits still apply). When it does
 * not fit: InsufficientResources saying what the job asks and what the
 * node has free. The caller records the node (intent, job record) before
 * anything else of the job exists. */
int ops_mpi_reserve(NapContext *c, const NapService *s, unsigned job, unsigned ranks, const NapCompute *rank,
                    char **ret_node, NapError *e);
/* Releases it again; released already, or node NULL/"": 0. */
int ops_mpi_release(NapContext *c, const NapService *s, unsigned job, const char *node, NapError *e);

/* A job's record. Its master's ExecStopPost= records its end as it
 * happens (nap_mpi_job_ended()); a job that ended without that is
 * recorded here (its result, exit status and times from the master's
 * unit). The reservation of an ended job that was not collected yet is
 * released (again: released already is a no-op). NoSuchInstance when
 * the app never had that job. */
int nap_get_mpi_job(NapContext *c, const char *service, unsigned job, NapMpiJob *ret, NapError *e);

/* The end of a job as its master's ExecStopPost= sees it (x: from
 * $SERVICE_RESULT, $EXIT_CODE, $EXIT_STATUS; active_state "failed" when
 * the result is not "success"): recorded as nap_get_mpi_job() would,
 * then its reservation released. Idempotent: a job recorded already
 * (by a query, a stop, recovery) keeps its record, and a reservation
 * released already is not released again. Takes no lock: the master is
 * in its stop-post phase, and the other writers of a running job's
 * record wait for it to settle (queries) or stop it first (stop,
 * recovery). The record written and the release failed (etcd
 * unreachable): that error; a later query or the job's collection
 * releases it. */
int nap_mpi_job_ended(NapContext *c, const char *service, unsigned job, const NapUnitExit *x, NapError *e);

/* The job's master and slaves as list-instances shows them (state from
 * systemd); none once the job was collected. */
int nap_mpi_job_instances(NapContext *c, const NapMpiJob *job, NapInstanceInfo **ret, size_t *ret_n, NapError *e);
