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
 * method_run_envelope()) to a pipe and exits; the loop reads it without
 * blocking and replies: through the deferred-reply API of lib/varlink.h,
 * or to the D-Bus call message kept referenced meanwhile.
 *
 * At most WORKERS_MAX run at once; more wait in FIFO order. */

#include <jansson.h>

#include "managerd-methods.h"
#include "managerd.h"

#define WORKERS_MAX 32U

/* envelope: the worker's result, borrowed for the call; NULL if the
 * worker failed (crashed, killed, wrote garbage, or the manager is going
 * away). Called exactly once per submitted worker. */
typedef void (*WorkerDone)(Manager *m, json_t *envelope, void *userdata);

/* Takes a reference on args. -ESHUTDOWN once the manager is exiting. */
int worker_submit(Manager *m, const Method *method, json_t *args, WorkerDone done, void *userdata);
/* Teardown: every pending done() is called with NULL; running workers
 * are left to finish on their own. */
void worker_free_all(Manager *m);
