/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The node's assignments made real on this host (docs/ARCHITECTURE.md
 * "Cluster apps"), in a thread of its own: realizing waits for systemd and
 * for apps to answer, while nap-node's loop must keep the membership lease
 * alive every third of NodeTTL=.
 *
 * Each pass reads PREFIX/assignments/NODE/ and this host's marks
 * (ROOT/cluster/realized/), then: every marked instance no longer
 * assigned is stopped and removed (before anything else: a host that comes
 * back stops what was moved away first), and every assignment without an
 * instance is made through the start-common path with its number. Each
 * instance's observed state goes to PREFIX/observed/NODE/ on the lease
 * given. Between passes it watches the assignments from the revision it
 * read (a change starts the next pass at once) for at most
 * REALIZE_RESYNC_USEC, after which it passes anyway (an instance that
 * failed meanwhile is reported). Nothing is kept in memory that etcd and
 * the local state do not hold, so a nap-node killed at any instant
 * finishes on its next start what it was doing. */

#include <stdbool.h>
#include <stdint.h>

#include "model/config.h"

#define REALIZE_RESYNC_USEC (10ULL * 1000000ULL)

typedef struct Realizer Realizer;

/* Starts the thread for node; config is borrowed (outlives the realizer). */
int realizer_start(const NapConfig *config, const char *node, Realizer **ret);
/* The membership lease the reports go on (0: not registered: no reports).
 * A lease going to 0 (lost) has every cluster instance here stopped at
 * once, and fencing done again before the node may register. */
void realizer_set_lease(Realizer *r, int64_t lease);
/* Fencing (before registering: at start and after a lost lease): every
 * marked instance no longer assigned to this node has been stopped and
 * removed. The node registers only once this is true. */
bool realizer_fenced(Realizer *r);
/* The membership was renewed: it may expire at deadline (CLOCK_MONOTONIC:
 * NodeTTL= after the renewal was sent). Past it without another renewal,
 * a thread of its own stops every cluster instance here, whatever the
 * other threads are blocked on (0: no deadline, not registered). */
void realizer_renewed(Realizer *r, uint64_t deadline);
/* Asks the thread to stop (within about a second, or once the instance
 * being started answers or fails) and waits for it. */
Realizer *realizer_stop(Realizer *r);
