/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* napctl rollback and napctl history: an app's earlier deploys
 * (napctl(1), lib/ops/ops.h nap_rollback(), nap_deploy_history()).
 *   napctl rollback USER_APP [COMMIT]  redeploy the previous deployed
 *                                      commit, or COMMIT (4 to 40 hex
 *                                      digits of one in the history), and
 *                                      restart the instances with it
 *   napctl history USER_APP            the deploy history, newest first
 * args is the NULL-terminated argv after the verb. Prints the result
 * (JSON with json); errors go into e, nothing printed. */

#include <stdbool.h>

#include "ops/ops.h"

int verb_rollback(NapContext *c, char **args, bool json, NapError *e);
int verb_history(NapContext *c, char **args, bool json, NapError *e);
