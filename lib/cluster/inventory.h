/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The node inventory on etcd (seed 004's node service, done for real):
 * nodes registering and leaving, their readiness, reservations checked
 * against capacity and written in one transaction, and placement.
 *
 * Admission (seed 004's CheckCompute/CheckStorage): the sum of the
 * requests reserved on a node, plus the new request, must not exceed its
 * capacity; an exact fit passes. Limits are not summed (they are what the
 * kernel enforces per unit, and may overcommit). A refusal names the
 * resource and the figures: "cpu_milli: total=2000, used=1500,
 * requested=600".
 *
 * Concurrency: a reservation is written together with its node's usage
 * key in one txn that compares the usage key's and the node record's
 * mod_revision with what the check read: two hosts reserving at once
 * cannot both pass on the same remaining capacity; the loser reads again
 * and checks again. A reservation is keyed by its name: reserving a name
 * that holds the very same request already succeeds without change (a
 * client retrying after a lost answer, or after an etcd leader change
 * left it not knowing), another request under that name is refused.
 * Releasing removes the reservation and its share of the usage in one
 * txn; releasing what is not there is NoSuchReservation and changes
 * nothing. Nothing here logs; every function takes the etcd client and the
 * key prefix (ClusterPrefix=). */

#include <stdbool.h>
#include <stdint.h>

#include "clients/etcd.h"
#include "model/node.h"

/* Conflicting writers are retried this often before giving up with
 * NAP_ERROR_NOT_AVAILABLE: a storm of reservations on one node makes
 * progress (one wins each round) but a client should not spin forever. */
#define NAP_INVENTORY_RETRIES 64

typedef struct NapNodeInfo {
        NapNode node;
        bool ready;              /* record and membership both exist */
        NapNodeStatus status;    /* why NotReady, when an agent noted it */
        NapUsage usage;          /* sums of the reserved requests */
        int64_t record_revision; /* mod_revision of the record */
        int64_t usage_revision;  /* of the usage key; 0: none yet */
        int64_t member_revision; /* create_revision of the membership; 0: NotReady */
} NapNodeInfo;

void nap_node_info_done(NapNodeInfo *i);
void nap_node_info_array_free(NapNodeInfo *l, size_t n);

/* ---- nodes ------------------------------------------------------------ */

/* The record (durable, overwriting an earlier one of the same name) and
 * the membership on lease: Ready. A stale NotReady status goes. */
int nap_node_register(EtcdClient *c, const char *prefix, const NapNode *n, int64_t lease, NapError *e);
/* The record alone (ApplyNode by hand): NotReady until an agent runs. */
int nap_node_apply(EtcdClient *c, const char *prefix, const NapNode *n, NapError *e);
/* The clean stop, in the seed's order: the record goes, then the
 * membership (the lease is revoked). */
int nap_node_deregister(EtcdClient *c, const char *prefix, const char *name, int64_t lease, NapError *e);
/* For every node with a record and no membership that has no status yet,
 * records reason and now: what agents do when they see a node leave.
 * Guarded by the record's and the membership's revisions: a node that
 * came back meanwhile is left alone. Returns how many were marked;
 * ret_members (optional): how many memberships there were. */
int nap_nodes_mark_not_ready(EtcdClient *c, const char *prefix, const char *reason, uint64_t now_usec,
                             unsigned *ret_members, NapError *e);

/* Every node with a record, by name. */
int nap_nodes_list(EtcdClient *c, const char *prefix, NapNodeInfo **ret, size_t *ret_n, NapError *e);
/* NoSuchNode when there is no record. */
int nap_node_get(EtcdClient *c, const char *prefix, const char *name, NapNodeInfo *ret, NapError *e);
/* Administration: a node with reservations is refused (NodeInUse) unless
 * force, which drops them too. Its record, status, usage and membership go. */
int nap_node_delete(EtcdClient *c, const char *prefix, const char *name, bool force, NapError *e);

/* ---- reservations ----------------------------------------------------- */

/* r: kind, name, node and the amounts (checked with nap_compute_check() /
 * nap_storage_check() first: limit 0 becomes the request). Sets
 * created_usec. 1: reserved now; 0: the same reservation was there. */
int nap_reserve(EtcdClient *c, const char *prefix, NapReservation *r, NapError *e);
int nap_release(EtcdClient *c, const char *prefix, NapReservationKind kind, const char *node, const char *name,
                NapError *e);
/* The reservations on a node, by kind then name. */
int nap_reservations_list(EtcdClient *c, const char *prefix, const char *node, NapReservation **ret,
                          size_t *ret_n, NapError *e);

/* ---- placement -------------------------------------------------------- */

typedef enum NapPolicy {
        NAP_POLICY_SPREAD,  /* the node left least loaded by it (default) */
        NAP_POLICY_BINPACK, /* the node left most loaded by it */
        _NAP_POLICY_MAX,
        _NAP_POLICY_INVALID = -EINVAL,
} NapPolicy;

const char *nap_policy_to_string(NapPolicy p) _pure_;
NapPolicy nap_policy_from_string(const char *s) _pure_;

/* Among the Ready nodes that carry every label of selector and where r
 * fits, the best by policy: the load of a node is the largest share of
 * its capacity its requests take (cpu, memory or storage) with r added;
 * spread takes the lowest, binpack the highest; ties go to the name that
 * sorts first. -1 when none fits. Pure: the nodes as read. */
ssize_t nap_schedule_pick(const NapNodeInfo *nodes, size_t n, const NapReservation *r, NapPolicy policy,
                          char *const *selector);
/* As nap_schedule_pick(), with counts[i] (optional) the instances node i
 * holds already: equal loads go to the node with fewer, then by name.
 * Instances that request nothing weigh nothing, so without counts they
 * would all go to the first name (cluster apps' placement). */
ssize_t nap_schedule_pick_counted(const NapNodeInfo *nodes, size_t n, const NapReservation *r, NapPolicy policy,
                                  char *const *selector, const unsigned *counts);

/* A placer keeps the inventory it read and places many requests without
 * reading it again: only a node whose txn lost is read again (the queue
 * and the benchmark place thousands). At most NAP_SCHEDULE_BATCH_MAX in
 * one call: etcd takes 128 compares and 128 operations per txn. */
#define NAP_SCHEDULE_BATCH_MAX 32U

typedef struct NapPlacer NapPlacer;

int nap_placer_new(EtcdClient *c, const char *prefix, NapPlacer **ret, NapError *e);
NapPlacer *nap_placer_free(NapPlacer *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(NapPlacer *, nap_placer_free);
int nap_placer_place(NapPlacer *p, const NapReservation *r, unsigned count, NapPolicy policy, char *const *selector,
                     NapReservation **ret, NapError *e);

/* Places count reservations of their own names and amounts (rs[i].node
 * is filled in) in one txn, all or none, as nap_placer_place(): the
 * queue admits a job of instances of different sizes so.
 * with_previous (optional): with_previous[i] puts rs[i] on the node of
 * rs[i - 1] (an instance's disk beside its cpu and memory), refused when
 * it does not fit there. */
int nap_placer_place_each(NapPlacer *p, NapReservation *rs, unsigned count, const bool *with_previous,
                          NapPolicy policy, char *const *selector, NapError *e);

/* Places count reservations like r (names r->name when count is 1, else
 * r->name.1 … r->name.count) on nodes picked as above, each seeing the
 * ones before it, and reserves them all in one txn: all or none. ret:
 * count reservations with their nodes. Retries on conflict; nothing fits:
 * InsufficientResources with the best node's figures. */
int nap_schedule(EtcdClient *c, const char *prefix, const NapReservation *r, unsigned count, NapPolicy policy,
                 char *const *selector, NapReservation **ret, NapError *e);
