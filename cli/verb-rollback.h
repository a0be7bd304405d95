/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* napctl rollback, refresh-instances and history: an app's rollouts and
 * earlier deploys (napctl(1), lib/ops/ops.h nap_rollback(),
 * nap_refresh_instances(), nap_deploy_history()).
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

#include "ops/ops.h"

/* options: --batch=, --drain= (progress is set here) */
int verb_rollback(NapContext *c, char **args, bool json, const NapRolloutOptions *options, NapError *e);
int verb_refresh_instances(NapContext *c, char **args, bool json, const NapRolloutOptions *options, NapError *e);
int verb_history(NapContext *c, char **args, bool json, NapError *e);
