/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Running a method away from the event loop, in a forked process.
 *
 * Why a process per call and not a thread: lib/ops is synchronous (a
 * StartCommon waits for daemon-reload and for the start job, a DeployApp
 * for git, a long GetJournal reads thousands of entries) and was not
 * written for threads (one sd_bus per context, libgit2 and libcurl global
 * state). A forked worker has its own bus connection and memory, needs no
 * locking beyond the app locks ops already takes (flock, shared by
 * processes), cannot crash or leak into the daemon, and the kernel cleans
 * up after it. It costs a fork and a bus connection, ~1 ms: cheap beside
 * what these calls wait for. The worker writes its result (the envelope of
 * nap_method_run()) to a pipe and exits; the loop reads it without
 * blocking and replies: through the deferred-reply API of lib/protocol/varlink.h,
 * or to the D-Bus call message kept referenced meanwhile.
 *
 * At most WORKERS_MAX run at once; more wait in FIFO order. */

#include <jansson.h>
#include <systemd/sd-event.h>

#include "ops/methods.h"

#define WORKERS_MAX 32U

typedef struct WorkerPool WorkerPool;

/* Called whenever a call is submitted or answered. */
typedef void (*WorkerPoolChanged)(void *userdata);

/* envelope: the worker's result, borrowed for the call; NULL if the
 * worker failed (crashed, killed, wrote garbage, or the pool is going
 * away). Called exactly once per submitted call. */
typedef void (*WorkerDone)(json_t *envelope, void *userdata);

/* context is borrowed: each worker runs its method with a copy of it. */
int worker_pool_new(sd_event *event, NapContext *context, WorkerPoolChanged changed, void *userdata,
                    WorkerPool **ret);
/* Takes a reference on args. -ESHUTDOWN once shut down. */
int worker_pool_submit(WorkerPool *p, const NapMethod *method, json_t *args, WorkerDone done, void *userdata);
/* New calls are refused from now on; running ones finish. */
void worker_pool_shut_down(WorkerPool *p);
/* Calls running or waiting for a slot. */
unsigned worker_pool_calls(const WorkerPool *p);
/* In a process just forked from the daemon: signals unblocked, every file
 * closed but keep, which becomes fd 3. */
void worker_child_setup(int keep);

/* Every pending done() is called with NULL; running workers are left to
 * finish on their own. */
WorkerPool *worker_pool_free(WorkerPool *p);
