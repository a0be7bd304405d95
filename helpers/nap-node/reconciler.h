/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The cluster's reconciler (lib/cluster/reconcile.h), run by nap-node in a
 * thread of its own on every host: each round (a quarter of NodeTTL=, at
 * most half a second) it tries to become the leader on PREFIX/leader (on
 * the node's membership lease: a node that is not Ready does not lead,
 * and a dead leader's key goes with its membership), and the leader moves
 * the instances of the nodes dead past ReconcileGraceSec=. Any host may
 * win; the others stand by and take over within NodeTTL= of the leader's
 * death. A round is a few range reads of the inventory: polling keeps it
 * simple and bounds what a missed event could cost to one round. */

#include <stdint.h>

#include "model/config.h"

typedef struct Reconciler Reconciler;

/* Starts the thread for node; config is borrowed (outlives it). */
int reconciler_start(const NapConfig *config, const char *node, Reconciler **ret);
/* The membership lease the leader key goes on (0: not registered: does not lead). */
void reconciler_set_lease(Reconciler *r, int64_t lease);
/* Whether this node led at the last round. */
bool reconciler_leads(Reconciler *r);
/* Asks the thread to stop (within about a round) and waits for it. */
Reconciler *reconciler_stop(Reconciler *r);
