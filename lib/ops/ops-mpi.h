/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* MPI jobs on one host (lib/model/mpi.h has the model, nap.profile(5) the
 * app's side, napctl(1) start-mpi the user's). Placing slaves on other
 * hosts of the cluster is not done here (issue 15). */

#include "model/mpi.h"
#include "ops/ops.h"

/* Starts a job of an MPI app: np (params' "np", else MpiRanks=; 1 to
 * MpiRanksMax=, InvalidParameter naming np outside) and the other params
 * substituted into the mpi process's command (InvalidParameter as for
 * start-common); the app built first when this deploy was not yet
 * (its build process, in USER_APP_mpi_build.service: UnitFailed with its
 * last log lines when it fails); then a new job number (never reused),
 * the job's reservation (rank: each rank's request and limits, NULL or
 * empty: none, else the profile's MpiCpu=/MpiMemory=; see
 * ops_mpi_reserve()), the job's tree, the master's and slaves' manifests
 * and units (no reload; each slave with a rank's limits), the record, and
 * the master started (which pulls in its slaves).
 * Returns once the master runs: ret is the job's record (state running).
 * InvalidProfile when the app is not an MPI app. Changes nothing on bad
 * input or when the job does not fit. Finished jobs of the app are
 * collected once it runs (their units, manifests and trees, their
 * reservations; their records stay). Crash-safe (intent "start-mpi",
 * with the reservation's node: undone by recovery, reservation too). */
int nap_start_mpi(NapContext *c, const char *service, const NapParams *params, const NapCompute *rank, NapMpiJob *ret,
                  NapError *e);

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

/* A job's record; a job that ended since is recorded first (its result,
 * exit status and times from the master's unit) and its reservation
 * released. NoSuchInstance when the
 * app never had that job. */
int nap_get_mpi_job(NapContext *c, const char *service, unsigned job, NapMpiJob *ret, NapError *e);

/* The job's master and slaves as list-instances shows them (state from
 * systemd); none once the job was collected. */
int nap_mpi_job_instances(NapContext *c, const NapMpiJob *job, NapInstanceInfo **ret, size_t *ret_n, NapError *e);
