/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A rollout across hosts as a cluster-wide intent (docs/ARCHITECTURE.md
 * "Rollouts across hosts"):
 *
 *   PREFIX/rollouts/USER_APP   the rollout under way (NapClusterRollout),
 *                              durable: written by the deploying host
 *                              before its first new assignment, updated
 *                              when it turns to rolling back, deleted
 *                              when done
 *
 * Its value is JSON, parsed strictly as assignments are: app, from, to
 * (commits; from "" when nothing was deployed before), phase ("rolling",
 * "rolling-back"), node (the deploying host), takenOver (the reconciler's
 * leader finishes it), generation (+ 1 on every write), time and old (the
 * assignments it replaces, as they were: what rolling back restores).
 *
 * Who finishes a dead host's rollout: the reconciler's leader, once the
 * deploying node is NotReady past the grace period (or gone), takes it
 * over and, one step a round, either finishes it or rolls it back. The
 * rule: the recorded deployed version (PREFIX/apps/USER_APP) is always
 * one that passed its health check. A deploy records its commit only
 * after it answered on the deploying host, so a rollout still "rolling"
 * whose app record says its `to` is finished; anything else (rolling
 * back, or the record not at `to`) goes back to each old assignment's
 * own commit, and the record to `from`. A replacement reported failed
 * while finishing turns it to rolling back. Every write of the leader
 * compares its leader key (a deposed leader writes nothing) and the
 * record's mod_revision; every step reads what is there and makes only
 * what is missing (the replacements' request ids are the deploying
 * host's, "roll:N:COMMIT"), so running it twice gives the same result.
 * Nothing here logs. */

#include <stdbool.h>
#include <stdint.h>

#include "cluster/assignment.h"
#include "cluster/inventory.h"

#define NAP_CLUSTER_ROLLOUT_OLD_MAX 4096U

typedef enum NapClusterRolloutPhase {
        NAP_CLUSTER_ROLLOUT_ROLLING,
        NAP_CLUSTER_ROLLOUT_ROLLING_BACK,
        _NAP_CLUSTER_ROLLOUT_PHASE_MAX,
        _NAP_CLUSTER_ROLLOUT_PHASE_INVALID = -1,
} NapClusterRolloutPhase;

const char *nap_cluster_rollout_phase_to_string(NapClusterRolloutPhase p) _pure_;
NapClusterRolloutPhase nap_cluster_rollout_phase_from_string(const char *s) _pure_;

typedef struct NapClusterRollout {
        NapService service;
        char from[NAP_COMMIT_HEX_LEN + 1]; /* "": nothing deployed before */
        char to[NAP_COMMIT_HEX_LEN + 1];   /* always a commit */
        NapClusterRolloutPhase phase;
        char node[NAP_NODE_NAME_MAX + 1];  /* the deploying host */
        bool taken_over;                   /* the reconciler's leader finishes it */
        uint64_t generation;               /* + 1 on every write */
        uint64_t time_usec;
        NapAssignment *old;                /* the assignments it replaces, as they were */
        size_t n_old;
        int64_t mod_revision;              /* as read or written; 0: not in etcd */
} NapClusterRollout;

void nap_cluster_rollout_done(NapClusterRollout *r);
void nap_cluster_rollout_array_free(NapClusterRollout *l, size_t n);
int nap_cluster_rollout_to_json(const NapClusterRollout *r, char **ret);
/* Strict: a damaged record (an old assignment of another app, more than
 * NAP_CLUSTER_ROLLOUT_OLD_MAX of them, an unknown phase…) is
 * NAP_ERROR_INTERNAL naming the field. mod_revision is left 0. */
int nap_cluster_rollout_from_json(const char *text, size_t size, NapClusterRollout *ret, NapError *e);
char *nap_key_cluster_rollout(const char *prefix, const NapService *s);

/* The leader key's guard for the leader's writes: its create_revision as
 * the leader read it (nap_leader_acquire()). */
EtcdTxnCompare nap_cluster_rollout_leader_guard(const char *leader_key, int64_t leader_revision);

/* Written: generation + 1, time now, comparing the mod_revision read (0:
 * there must be none) and guard (optional). 1: written,
 * r->mod_revision the new one; 0: changed meanwhile, nothing written. */
int nap_cluster_rollout_put(EtcdClient *c, const char *prefix, NapClusterRollout *r, const EtcdTxnCompare *guard,
                            NapError *e);
/* 1 and *ret; 0: none. A damaged record is an error naming the field. */
int nap_cluster_rollout_get(EtcdClient *c, const char *prefix, const NapService *s, NapClusterRollout *ret,
                            NapError *e);
/* Every rollout under way, by key; damaged ones left out (ret_damaged,
 * optional: how many). */
int nap_cluster_rollouts_list(EtcdClient *c, const char *prefix, NapClusterRollout **ret, size_t *ret_n,
                              unsigned *ret_damaged, NapError *e);

/* Done: the app's record set to the commit the rollout ended at (`to`
 * rolling, `from` rolling back; left alone if none or already there),
 * then the rollout deleted, comparing its mod_revision and guard
 * (optional). 1: done; 0: the rollout changed meanwhile. */
int nap_cluster_rollout_finish(EtcdClient *c, const char *prefix, const NapClusterRollout *r,
                               const EtcdTxnCompare *guard, NapError *e);

typedef struct NapClusterRolloutStep {
        unsigned made;     /* replacements created */
        unsigned withdrawn;/* assignments deleted */
        unsigned pending;  /* replacements not active yet */
        unsigned lost;     /* a write lost to a change (or a deposed leader) */
        bool rolled_back;  /* the step turned it to rolling back */
        bool finished;
} NapClusterRolloutStep;

/* One step of a rollout the leader finishes (see above), guarded by
 * guard: taken over (and its phase decided) first, then for each old
 * assignment what is missing is made and what is replaced is withdrawn,
 * once its replacement is reported active; when nothing is left, the
 * rollout is finished. Every write compares guard (required) and the
 * record's mod_revision as read. Never waits: the next round steps
 * again. */
int nap_cluster_rollout_step(EtcdClient *c, const char *prefix, NapClusterRollout *r, const EtcdTxnCompare *guard,
                             NapClusterRolloutStep *ret, NapError *e);
