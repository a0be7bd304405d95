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
 * last log lines when it fails); then a new job number (never reused), the
 * job's tree, the master's and slaves' manifests and units (no reload),
 * the record, and the master started (which pulls in its slaves).
 * Returns once the master runs: ret is the job's record (state running).
 * InvalidProfile when the app is not an MPI app. Changes nothing on bad
 * input. Finished jobs of the app are collected once it runs (their
 * units, manifests and trees; their records stay). Crash-safe (intent
 * "start-mpi": undone by recovery). */
int nap_start_mpi(NapContext *c, const char *service, const NapParams *params, NapMpiJob *ret, NapError *e);

/* A job's record; a job that ended since is recorded first (its result,
 * exit status and times from the master's unit). NoSuchInstance when the
 * app never had that job. */
int nap_get_mpi_job(NapContext *c, const char *service, unsigned job, NapMpiJob *ret, NapError *e);

/* The job's master and slaves as list-instances shows them (state from
 * systemd); none once the job was collected. */
int nap_mpi_job_instances(NapContext *c, const NapMpiJob *job, NapInstanceInfo **ret, size_t *ret_n, NapError *e);
