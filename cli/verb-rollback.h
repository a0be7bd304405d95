/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* napctl rollback, refresh-instances and history: an app's rollouts and
 * earlier deploys (napctl(1); rollback and history are the methods
 * Rollback and History of io.nap.Manager, refresh-instances is
 * lib/ops/ops.h nap_refresh_instances() in this process).
 *   napctl rollback USER_APP [COMMIT]  redeploy the previous deployed
 *                                      commit, or COMMIT (4 to 40 hex
 *                                      digits of one in the history), and
 *                                      replace the instances with it
 *   napctl refresh-instances USER_APP  replace every instance from the
 *                                      deployed tree (a rolling restart)
 *   napctl history USER_APP            the deploy history, newest first
 * args is the NULL-terminated argv after the verb. Prints the result
 * (JSON with json); errors go into e, nothing printed. */

#include <stdbool.h>

#include "napctl-call.h"
#include "ops/ops.h"

/* options: --batch=, --drain= (sent as the method's batch and drainSec) */
int verb_rollback(Caller *c, char **args, bool json, const NapRolloutOptions *options, NapError *e);
/* options: --batch=, --drain= (progress is set here) */
int verb_refresh_instances(NapContext *c, char **args, bool json, const NapRolloutOptions *options, NapError *e);
int verb_history(Caller *c, char **args, bool json, NapError *e);
