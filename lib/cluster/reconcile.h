/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The reconciler (docs/ARCHITECTURE.md "Cluster apps"): one per cluster,
 * elected on PREFIX/leader, moves the assignments of a node that has been
 * dead longer than ReconcileGraceSec= to Ready nodes with room.
 *
 *   PREFIX/leader     the node that reconciles, on its membership lease:
 *                     created if absent, gone with the holder's membership
 *
 * Dead since: a node's status (written when its membership was noted
 * gone) says since when it is NotReady; its lease ran out NodeTTL= after
 * its last renewal, so it was last alive at since - NodeTTL. Its
 * assignments move once now >= since - NodeTTL + grace: with the default
 * grace of NodeTTL + 5 s, 5 s after its membership went. Those 5 s are the
 * margin a host cut off from etcd has to stop its cluster instances on its
 * own (it does at NodeTTL after its last renewal was sent: nap-node(8)).
 *
 * A move, in one txn: the assignment's key under the old node deleted
 * and created under the new one, generation + 1, the same instance (app,
 * number, params, port, commit, resources, request); compared: the
 * assignment's mod_revision as read, the leader key's create_revision
 * (a deposed leader writes nothing), the new node's record's mod_revision
 * (a node that re-registered meanwhile is read again) and the new key's
 * absence. Before it, the old node's reservation of the instance is
 * released (reservation names are cluster-unique: the new node reserves
 * the same name when it realizes the instance); after it, the dead
 * host's discovery endpoints of the instance go (they would live until
 * their DiscoveryTTL= lease ran out). Placement picks, realization
 * reserves: the new node's nap-node reserves when it realizes.
 *
 * The decisions (which nodes are due, where each assignment goes) are
 * pure functions; nap_reconcile_round() does the I/O. Nothing here logs. */

#include <stdbool.h>
#include <stdint.h>

#include "cluster/assignment.h"
#include "cluster/inventory.h"

/* ---- decisions (pure) ------------------------------------------------- */

/* A node whose assignments must move now: NotReady, noted so (its status
 * has a since), and since - ttl + grace has passed. */
bool nap_reconcile_node_due(const NapNodeInfo *n, uint64_t now_usec, uint64_t ttl_usec, uint64_t grace_usec) _pure_;

/* Picks a node for each of the n assignments (of one dead node) among the
 * nodes (NapPlacer's pick: Ready, room for its requests, spread), each
 * seeing the ones placed before it: the picked node's usage grows by the
 * assignment's requests. ret_targets[i]: the index into nodes, or -1
 * when none has room. Returns how many were placed. */
size_t nap_reconcile_plan(NapNodeInfo *nodes, size_t n_nodes, const NapAssignment *l, size_t n,
                          ssize_t *ret_targets);

/* ---- leadership ------------------------------------------------------- */

/* Becomes the leader if nobody is: PREFIX/leader = node, on lease. 1: this
 * node leads (now, or already on this lease), *ret_revision the key's
 * create_revision (what moves are guarded by); 0: another does, its name
 * in ret_holder (optional, at least NAP_NODE_NAME_MAX + 1 bytes). */
int nap_leader_acquire(EtcdClient *c, const char *prefix, const char *node, int64_t lease, int64_t *ret_revision,
                       char *ret_holder, NapError *e);
/* Who leads ("" in ret: nobody). */
int nap_leader_get(EtcdClient *c, const char *prefix, char ret[static NAP_NODE_NAME_MAX + 1], NapError *e);

/* ---- moving ----------------------------------------------------------- */

/* a (as read, its mod_revision set) to target (its record's mod_revision
 * as read) in one txn, guarded as above by leader_revision. 1: moved;
 * 0: something changed meanwhile (read again). The old node's
 * reservation is the caller's (nap_reconcile_round() releases it first). */
int nap_reconcile_move(EtcdClient *c, const char *prefix, const NapAssignment *a, const NapNodeInfo *target,
                       int64_t leader_revision, NapError *e);

typedef struct NapReconcileStats {
        unsigned nodes;      /* dead nodes past the grace period */
        unsigned moved;      /* assignments moved */
        unsigned lost;       /* not moved: changed meanwhile (the next round reads again) */
        unsigned no_room;    /* not moved: no Ready node with room */
        unsigned endpoints;  /* stale discovery endpoints removed */
} NapReconcileStats;

/* One round by the leader (config: ClusterPrefix=, EtcdPrefix= for the
 * endpoints, NodeTTL=, ReconcileGraceSec=): nodes whose membership went
 * are noted NotReady (nap_nodes_mark_not_ready()), and every due node's
 * assignments are moved. A move lost to a change is counted, not an
 * error. now_usec: CLOCK_REALTIME. */
int nap_reconcile_round(EtcdClient *c, const NapConfig *config, int64_t leader_revision, uint64_t now_usec,
                        NapReconcileStats *ret, NapError *e);
