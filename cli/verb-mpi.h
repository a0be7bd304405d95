/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* napctl's MPI verbs (napctl(1); StartMpi and GetMpiJob of io.nap.Manager):
 *   napctl start-mpi USER_APP [k=v,k=v]   start a job (np=N among the
 *                                         params), wait for its end and
 *                                         print its result; --no-block:
 *                                         print the job's units at once
 *   napctl mpi-job USER_APP JOB           a job's result and its units
 * A job that did not succeed is UnitFailed (napctl's exit status says
 * so); the job's number is checked before anything is sent. */

#include "verb-lifecycle.h"

int verb_start_mpi(Caller *c, char **args, const LifecycleOptions *o, NapError *e);
int verb_mpi_job(Caller *c, char **args, const LifecycleOptions *o, NapError *e);
